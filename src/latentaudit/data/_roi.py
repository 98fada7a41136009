"""Regions of interest: crop every image around a label of its segmentation."""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import ConfigError, DataError, InputTypeError
from ..utils import check_option
from ._transforms import _shape_to_3d, _squeeze_to_3d

__all__ = ["ROI"]


class ROI:
    """A region of interest defined by a label of a per-subject segmentation.

    Pass it as ``roi=`` to :class:`~latentaudit.data.NiftiDataset` or
    :class:`~latentaudit.data.DicomDataset` to embed a local view instead of the whole
    volume.  For every subject the label's bounding box (the union of ``label`` if several
    are given), grown by ``margin``, replaces the volume; everything else (resampling to
    ``spacing``, fitting and padding to ``size``, intensity scaling computed on the whole
    volume) is unchanged.  With ``spatial_dims=2`` the ``n_slices`` slices are centred on
    the label's centre along ``slice_axis`` and cropped in-plane to the box; all slices of a
    subject share one crop window.  The region outside the volume, if the margin reaches
    past it, is padded with the background value.

    Segmentations are label maps in the image's voxel space (the same shape and affine,
    as SPINEPS, TotalSegmentator or TotalVibeSegmentator write them), read with nibabel.

    Parameters
    ----------
    segmentations : str, os.PathLike or mapping
        A folder holding one segmentation per subject, found with ``pattern``, or a
        mapping from subject id to file path.
    label : int or sequence of int
        The label value(s) to crop around, e.g. 20 (a vertebra in SPINEPS' instance map).
    margin : float or sequence of float, default 0
        Added on each side of the bounding box, per crop axis (``(rows, columns)`` in 2-D,
        ``(depth, rows, columns)`` in 3-D, in the item axis order) or one number for all.
    margin_unit : {"mm", "voxel"}, default "mm"
        Unit of ``margin``; millimetres are converted with the image's voxel size.
    pattern : str, default "{id}.nii*"
        Glob pattern of a subject's file in the ``segmentations`` folder; ``{id}`` is
        replaced by the subject id, e.g. ``"{id}_seg-vert_msk.nii.gz"`` for SPINEPS output.
        Exactly one file must match.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError` / ``DataError``) for a bad label,
        margin or unit, or a folder that does not exist.
    TypeError
        (as :class:`latentaudit.errors.InputTypeError`) for ``segmentations`` of another
        type.

    Examples
    --------
    >>> import latentaudit as la
    >>> roi = la.data.ROI({"sub-01": "segs/sub-01.nii.gz"}, label=[20, 21], margin=5)
    >>> roi.labels
    (20, 21)
    """

    def __init__(self, segmentations, label, *, margin=0.0, margin_unit: str = "mm",
                 pattern: str = "{id}.nii*") -> None:
        self.segmentations = segmentations
        self.label = label
        self.margin = margin
        self.margin_unit = margin_unit
        self.pattern = pattern
        if isinstance(segmentations, (str, os.PathLike)):
            if not os.path.isdir(segmentations):
                raise DataError(f"segmentation folder {os.fspath(segmentations)!r} does not exist")
        elif not isinstance(segmentations, Mapping):
            raise InputTypeError(
                f"segmentations must be a folder or a mapping of subject id to file, got "
                f"{type(segmentations).__name__}")
        self.labels  # noqa: B018  (validates label)
        check_option("margin_unit", margin_unit, ("mm", "voxel"))
        margins = np.atleast_1d(np.asarray(margin, dtype=float))
        if margins.ndim != 1 or not np.isfinite(margins).all() or (margins < 0).any():
            raise ConfigError(f"margin must be a non-negative number or sequence, got {margin!r}")
        if not isinstance(pattern, str) or "{id}" not in pattern:
            raise ConfigError(f"pattern must be a string containing '{{id}}', got {pattern!r}")

    @property
    def labels(self) -> tuple[int, ...]:
        """The label values as a tuple of ints."""
        values = [self.label] if np.isscalar(self.label) else list(self.label)
        if not values or not all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            raise ConfigError(f"label must be an int or a non-empty list of ints, "
                              f"got {self.label!r}")
        return tuple(int(v) for v in values)

    def segmentation_path(self, subject_id: str) -> str:
        """Path of the segmentation of ``subject_id``.

        Parameters
        ----------
        subject_id : str
            The subject id.

        Returns
        -------
        str
            The file path.

        Raises
        ------
        ValueError
            (as :class:`latentaudit.errors.DataError`) when no file, or several, match.
        """
        subject_id = str(subject_id)
        if isinstance(self.segmentations, Mapping):
            lookup = {str(k): v for k, v in self.segmentations.items()}
            if subject_id not in lookup:
                raise DataError(f"no segmentation given for subject {subject_id!r}")
            path = os.fspath(lookup[subject_id])
            if not os.path.isfile(path):
                raise DataError(
                    f"segmentation file {path!r} of subject {subject_id!r} does not exist")
            return path
        folder = os.fspath(self.segmentations)
        pattern = self.pattern.replace("{id}", glob.escape(subject_id))
        found = sorted(glob.glob(os.path.join(glob.escape(folder), pattern)))
        if len(found) != 1:
            what = "no file matches" if not found else f"{len(found)} files match"
            raise DataError(
                f"{what} {pattern!r} in segmentation folder {folder!r} for subject "
                f"{subject_id!r}; exactly one segmentation per subject is needed")
        return found[0]

    def __repr__(self) -> str:
        return (f"ROI(segmentations={self.segmentations!r}, label={self.label!r}, "
                f"margin={self.margin!r}, margin_unit={self.margin_unit!r}, "
                f"pattern={self.pattern!r})")

    # -- used by the volume datasets ---------------------------------------------------
    def margin_voxels(self, stack_spacing: Sequence[float], spatial_dims: int) -> np.ndarray:
        """The margin in whole voxels along the three stack axes.

        Parameters
        ----------
        stack_spacing : sequence of float
            Voxel size of the stack, three numbers (slice axis first for 2-D items).
        spatial_dims : {2, 3}
            Dimensions of the items; in 2-D the slice axis gets no margin (0).

        Returns
        -------
        numpy.ndarray
            Three non-negative integers (millimetres rounded up to whole voxels).

        Raises
        ------
        ValueError
            (as :class:`latentaudit.errors.ConfigError`) when ``margin`` has neither one
            number nor ``spatial_dims`` numbers.

        Examples
        --------
        >>> import latentaudit as la
        >>> roi = la.data.ROI({"sub-01": "segs/sub-01.nii.gz"}, label=20, margin=5)
        >>> roi.margin_voxels([3.0, 2.0, 2.0], spatial_dims=2).tolist()
        [0, 3, 3]
        """
        n_axes = spatial_dims
        margin = np.atleast_1d(np.asarray(self.margin, dtype=float))
        if margin.size == 1:
            margin = np.full(n_axes, margin[0])
        if margin.size != n_axes:
            raise ConfigError(
                f"ROI margin must be one number or {n_axes} numbers for spatial_dims="
                f"{spatial_dims}, got {self.margin!r}")
        spacing = np.asarray(stack_spacing, dtype=float)[3 - n_axes:]
        if self.margin_unit == "mm":
            margin = margin / spacing
        voxels = np.ceil(margin - 1e-6).astype(int)
        return np.concatenate([np.zeros(3 - n_axes, dtype=int), voxels])

    def read_segmentation(self, subject_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Read a subject's segmentation.

        Parameters
        ----------
        subject_id : str
            The subject id.

        Returns
        -------
        labels : numpy.ndarray
            The label map, 3-D (singleton axes beyond the third dropped).
        affine : numpy.ndarray
            Its 4x4 voxel-to-world affine.

        Raises
        ------
        ValueError
            (as :class:`latentaudit.errors.DataError`) when the file is missing or cannot
            be read; the message names the file and the subject.

        Examples
        --------
        >>> import os
        >>> import nibabel as nib, numpy as np
        >>> import latentaudit as la
        >>> folder = "segs"; os.makedirs(folder, exist_ok=True)
        >>> nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)),
        ...          os.path.join(folder, "sub-01.nii.gz"))
        >>> labels, affine = la.data.ROI(folder, label=1).read_segmentation("sub-01")
        >>> labels.shape, int(labels.sum())
        ((4, 4, 4), 64)
        """
        path = self.segmentation_path(subject_id)
        img = _open_segmentation(path, subject_id)
        try:
            data = np.asanyarray(img.dataobj)
        except Exception as err:  # nibabel, gzip and zlib raise many kinds
            raise _unreadable(path, subject_id, err) from err
        data = _squeeze_to_3d(data, path, what="segmentation")
        return data, np.asarray(img.affine, dtype=float)

    def segmentation_header(self, subject_id: str) -> tuple[tuple[int, ...], np.ndarray]:
        """Shape and affine of a subject's segmentation, without reading its voxels.

        Parameters
        ----------
        subject_id : str
            The subject id.

        Returns
        -------
        shape : tuple of int
            The 3-D shape.
        affine : numpy.ndarray
            The 4x4 voxel-to-world affine.

        Raises
        ------
        ValueError
            (as :class:`latentaudit.errors.DataError`) when the file is missing or its
            header cannot be read.

        Examples
        --------
        >>> import os
        >>> import nibabel as nib, numpy as np
        >>> import latentaudit as la
        >>> folder = "segs"; os.makedirs(folder, exist_ok=True)
        >>> nib.save(nib.Nifti1Image(np.ones((4, 5, 6), np.uint8), np.eye(4)),
        ...          os.path.join(folder, "sub-01.nii.gz"))
        >>> la.data.ROI(folder, label=1).segmentation_header("sub-01")[0]
        (4, 5, 6)
        """
        path = self.segmentation_path(subject_id)
        img = _open_segmentation(path, subject_id)
        shape = _shape_to_3d(img.shape, path, what="segmentation")
        return shape, np.asarray(img.affine, dtype=float)


def _unreadable(path: str, subject_id: str, err: Exception) -> DataError:
    return DataError(f"cannot read segmentation {path!r} of subject {subject_id!r}: {err}")


def _open_segmentation(path: str, subject_id: str):
    """The nibabel image of a segmentation (header read, voxels not yet)."""
    import nibabel as nib

    try:
        return nib.load(path)
    except Exception as err:  # nibabel, gzip and zlib raise many kinds
        raise _unreadable(path, subject_id, err) from err


def _check_same_space(image_shape, image_affine, seg_shape, seg_affine, seg_path: str,
                      subject_id: str) -> None:
    if tuple(image_shape) != tuple(seg_shape):
        raise DataError(
            f"segmentation {seg_path!r} of subject {subject_id!r} has shape {tuple(seg_shape)} "
            f"but the image has shape {tuple(image_shape)}; the segmentation must be in the "
            f"image's voxel space")
    if not np.allclose(image_affine, seg_affine, atol=1e-2, rtol=1e-4):
        raise DataError(
            f"segmentation {seg_path!r} of subject {subject_id!r} has another affine than its "
            f"image (image {np.round(image_affine, 3).tolist()}, segmentation "
            f"{np.round(seg_affine, 3).tolist()}); the segmentation must be in the image's "
            f"voxel space")


def _label_extent(mask: np.ndarray, subject_id: str, labels: Sequence[int],
                  seg_path: str) -> tuple[np.ndarray, np.ndarray]:
    """First and last voxel (inclusive) of a boolean mask along each axis."""
    lo, hi = [], []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        if hit.size == 0:
            raise DataError(
                f"the segmentation of subject {subject_id!r} ({seg_path!r}) does not contain "
                f"label {_labels_text(labels)}")
        lo.append(hit[0])
        hi.append(hit[-1])
    return np.asarray(lo), np.asarray(hi)


def _labels_text(labels: Sequence[int]) -> str:
    return str(labels[0]) if len(labels) == 1 else "any of " + ", ".join(map(str, labels))
