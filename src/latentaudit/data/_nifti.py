"""NIfTI volumes (read with nibabel)."""

from __future__ import annotations

import os

import numpy as np

from ..errors import DataError, InputTypeError
from ._volume import _VolumeDataset

__all__ = ["NiftiDataset"]

_SUFFIXES = (".nii.gz", ".nii")


def _strip_suffix(name: str) -> str:
    lower = name.lower()
    for suffix in _SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return os.path.splitext(name)[0]


class NiftiDataset(_VolumeDataset):
    """A dataset of NIfTI volumes, as 3-D volumes or as 2-D slices of every subject.

    Each file is one subject.  A volume is reoriented to RAS+ (``canonical=True``), its
    intensities are scaled to [-1, 1] between two percentiles of the whole volume (so all
    slices of a subject share one scaling), an optional region of interest is cut out, and
    it is resampled and padded/cropped to a fixed size.  Items are channel-first float32
    tensors: ``(1, D, H, W)`` for ``spatial_dims=3``, ``(1, H, W)`` for ``spatial_dims=2``.

    Axes follow :func:`~latentaudit.data.slice_to_image`: a 2-D item is a slice along
    ``slice_axis`` (0 sagittal, 1 coronal, 2 axial, after reorientation), shown with the
    superior direction at the top row (anterior at the top for axial slices); a 3-D item is
    the stack of those slices, ``D`` running along ``slice_axis`` (left to right for the
    default sagittal axis).  ``size`` and ``spacing`` are given in this item axis order.

    Parameters
    ----------
    paths : str, os.PathLike or sequence of them
        A folder (every ``*.nii`` and ``*.nii.gz`` in it, sorted by name, not recursive), a
        single file, or a list of files.
    metadata : pandas.DataFrame, str or None, optional
        A table (or CSV/TSV file) with one row per subject, joined on ``id_column``.
        Every file needs a row and every row a file (see ``on_error``).
    id_column : str, default "subject"
        Column of ``metadata`` holding the subject ids.
    ids : sequence of str, optional
        One id per file.  Default: the file name without ``.nii``/``.nii.gz``.
    spatial_dims : {2, 3}, default 3
        3 gives one volume per subject; 2 gives ``n_slices`` slices per subject.
    slice_axis : {0, 1, 2}, default 0
        Axis the slices are taken along (0 sagittal, the default of the spine MRI paper).
        Also sets the axis order of 3-D items.
    n_slices : int or None, default 1
        Number of central slices per subject (2-D only); ``None`` takes every slice.
    size : int or tuple of int, optional
        Item size, ``(H, W)`` or ``(D, H, W)``.  Required when volumes differ in shape.
        Without ``spacing`` the volume (its physical field of view) is scaled to fit
        ``size`` keeping its aspect ratio, then padded; with ``spacing`` it is resampled
        to ``spacing`` first, then padded and/or cropped to ``size``.
    spacing : float or tuple of float, optional
        Voxel size in mm to resample to, in item axis order (in 2-D only the in-plane
        axes are resampled; slices stay as acquired).  Default: keep the file's voxels
        (unless ``size`` alone asks for a fit).
    crop : {"center", "random"}, default "center"
        Where the pad/crop window sits.  ``"random"`` (training-time augmentation) draws
        offsets from ``(random_state, epoch, index)``, reproducible in any DataLoader
        worker; see :meth:`set_epoch`.
    intensity : (float, float) or None, default (0.5, 99.5)
        Percentiles mapped to -1 and 1 (values beyond are clipped); ``None`` keeps the
        raw values.  Padding uses -1 (or the volume's minimum when ``None``).
    canonical : bool, default True
        Reorient to RAS+ first.  With ``False`` the stored voxel axes are used as if they
        were RAS.
    roi : latentaudit.data.ROI, optional
        Crop every subject around a label of its segmentation (needs ``size``).
    on_error : {"raise", "skip"}, default "raise"
        ``"raise"``: headers are checked now (missing or unreadable files, wrong
        dimensionality, too few slices, metadata ids) and problems found only in the voxel
        data (corrupt data, non-finite values, missing ROI label) raise a
        :class:`~latentaudit.errors.DataError` naming the file when the item is loaded.
        ``"skip"``: every file is loaded once now; bad files, ids missing from the table
        and table rows without a file are left out, listed in :attr:`skipped` and logged
        as one warning.
    cache_size : int, default 8
        Number of preprocessed subjects kept in memory per process (least recently used
        first out), so consecutive slices of a subject read the file once.  Use 0 to
        disable.
    random_state : None, int or numpy.random.RandomState
        Seed of the random crops.
    verbose : bool, default False
        Show a progress bar while checking the files.

    Attributes
    ----------
    ids : numpy.ndarray
        Subject id of every item (repeated for every slice of a subject).
    slice_index : numpy.ndarray
        Position of every item among its subject's slices (0 to ``n_slices - 1``).
    metadata : pandas.DataFrame
        One row per item, ``id_column`` first.
    paths : numpy.ndarray
        The file of every item.
    skipped : pandas.DataFrame
        Columns ``path``, ``id``, ``reason``: what ``on_error="skip"`` left out (``path``
        is None for a table row without a file).

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.DataError`) for a missing folder or file, a folder
        without NIfTI files, an unreadable file, a 4-D file with several volumes, fewer
        slices than ``n_slices``, ids that do not match the metadata, or items that differ
        in shape without ``size``; (as :class:`~latentaudit.errors.ConfigError`) for bad
        parameters.

    Examples
    --------
    >>> import latentaudit as la
    >>> ds = la.NiftiDataset("scans/", metadata="participants.csv", spatial_dims=2,
    ...                      n_slices=12, size=(256, 256))  # doctest: +SKIP
    >>> ds[0]["image"].shape  # doctest: +SKIP
    torch.Size([1, 256, 256])
    >>> ds.ids[:12], ds.slice_index[:12]  # doctest: +SKIP
    """

    def __init__(self, paths, metadata=None, *, id_column: str = "subject", ids=None,
                 spatial_dims: int = 3, slice_axis: int = 0, n_slices: int | None = 1,
                 size=None, spacing=None, crop: str = "center", intensity=(0.5, 99.5),
                 canonical: bool = True, roi=None, on_error: str = "raise",
                 cache_size: int = 8, random_state=None, verbose: bool = False) -> None:
        super().__init__(paths, metadata, id_column=id_column, ids=ids,
                         spatial_dims=spatial_dims, slice_axis=slice_axis, n_slices=n_slices,
                         size=size, spacing=spacing, crop=crop, intensity=intensity,
                         canonical=canonical, roi=roi, on_error=on_error,
                         cache_size=cache_size, random_state=random_state, verbose=verbose)

    def _discover(self, paths):
        if isinstance(paths, (str, os.PathLike)):
            path = os.fspath(paths)
            if os.path.isdir(path):
                files = sorted(os.path.join(path, f) for f in os.listdir(path)
                               if f.lower().endswith(_SUFFIXES) and not f.startswith(".")
                               and os.path.isfile(os.path.join(path, f)))
                if not files:
                    raise DataError(f"folder {path!r} holds no NIfTI file (*.nii, *.nii.gz)")
            elif os.path.exists(path):
                files = [path]
            else:
                raise DataError(f"{path!r} does not exist; expected a folder of NIfTI files, "
                                f"a NIfTI file or a list of files")
        else:
            try:
                files = [os.fspath(p) for p in paths]
            except TypeError:
                raise InputTypeError(
                    f"paths must be a folder, a file or a list of files, got "
                    f"{type(paths).__name__}") from None
            if not files:
                raise DataError("paths is an empty list; give at least one NIfTI file")
        return [(f, _strip_suffix(os.path.basename(f)), f) for f in files]

    def _read_header(self, source):
        import nibabel as nib

        if not os.path.isfile(source):
            raise DataError(f"NIfTI file {source!r} does not exist")
        try:
            img = nib.load(source)
        except Exception as err:  # nibabel raises several kinds for bad headers
            raise DataError(f"cannot read NIfTI file {source!r}: {err}") from err
        return img.shape, img.affine

    def _read_volume(self, source):
        import nibabel as nib

        try:
            # mmap=False: the array is ours to scale in place, never a view of the file
            img = nib.load(source, mmap=False)
            data = np.asarray(img.dataobj, dtype=np.float32)
        except Exception as err:  # gzip, zlib and nibabel raise many kinds
            raise DataError(f"cannot read the voxel data of NIfTI file {source!r}: "
                            f"{type(err).__name__}: {err}") from err
        return data, np.asarray(img.affine, dtype=float)
