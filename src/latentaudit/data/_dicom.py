"""DICOM series (read with pydicom, the optional extra ``dicom``)."""

from __future__ import annotations

import logging
import os

import numpy as np

from ..errors import DataError, InputTypeError
from ..utils import optional_import
from ._volume import _VolumeDataset

__all__ = ["DicomDataset"]

logger = logging.getLogger(__name__)

# DICOM patient coordinates are LPS; nibabel's and ours are RAS
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _pydicom():
    return optional_import("pydicom", "dicom", "DicomDataset")


def _listable(folder: str) -> list[str]:
    return sorted(f for f in os.listdir(folder) if not f.startswith(".") and f != "DICOMDIR")


class DicomDataset(_VolumeDataset):
    """A dataset of DICOM series, as 3-D volumes or as 2-D slices of every subject.

    Each series (one folder of single-frame files, or one file) is one subject.  Slices are
    ordered along the normal of ``ImageOrientationPatient`` by ``ImagePositionPatient``
    (``InstanceNumber`` when positions are missing), ``RescaleSlope`` and
    ``RescaleIntercept`` are applied, and voxel sizes come from ``PixelSpacing`` and the
    distance between slices (``SpacingBetweenSlices`` or ``SliceThickness`` for a single
    slice).  The volume then goes through the same steps as in
    :class:`~latentaudit.data.NiftiDataset` (reorientation to RAS+, percentile scaling,
    slicing, region of interest, resampling, pad/crop, caching, metadata join), with the
    same parameters and the same item axis convention.

    Needs pydicom: ``pip install 'latentaudit[dicom]'``.  Multi-frame (enhanced) files
    and colour images are not supported; convert them to NIfTI (e.g. with dcm2niix).
    Compressed transfer syntaxes need pydicom's decoders (pylibjpeg or GDCM).

    Parameters
    ----------
    paths : str, os.PathLike or sequence of them
        A folder whose sub-folders are series (one subject each; a folder holding files
        and no sub-folder is one series), or a list of series folders and/or single
        files.  The id of a series is its folder (or file) name, ``.dcm`` removed.
    metadata, id_column, ids, spatial_dims, slice_axis, n_slices, size, spacing, crop, \
intensity, canonical, roi, on_error, cache_size, random_state, verbose
        As in :class:`~latentaudit.data.NiftiDataset`.  Every file of a series must be
        readable DICOM of one series with one orientation and evenly spaced, distinct
        slice positions, else the series is a bad input.

    Attributes
    ----------
    ids, slice_index, metadata, paths, skipped, image_shape
        As in :class:`~latentaudit.data.NiftiDataset`; ``paths`` holds series folders.

    Raises
    ------
    ImportError
        (as :class:`latentaudit.errors.MissingDependencyError`) without pydicom.
    ValueError
        (as :class:`latentaudit.errors.DataError`) for missing or unreadable files,
        mixed series, uneven or repeated slice positions, and the cases listed for
        :class:`~latentaudit.data.NiftiDataset`.

    Examples
    --------
    >>> import latentaudit as la
    >>> ds = la.DicomDataset("dicom/", spatial_dims=2, n_slices=4,
    ...                      size=(128, 128))  # doctest: +SKIP
    """

    def __init__(self, paths, metadata=None, *, id_column: str = "subject", ids=None,
                 spatial_dims: int = 3, slice_axis: int = 0, n_slices: int | None = 1,
                 size=None, spacing=None, crop: str = "center", intensity=(0.5, 99.5),
                 canonical: bool = True, roi=None, on_error: str = "raise",
                 cache_size: int = 8, random_state=None, verbose: bool = False) -> None:
        _pydicom()  # fail early, with the install hint
        super().__init__(paths, metadata, id_column=id_column, ids=ids,
                         spatial_dims=spatial_dims, slice_axis=slice_axis, n_slices=n_slices,
                         size=size, spacing=spacing, crop=crop, intensity=intensity,
                         canonical=canonical, roi=roi, on_error=on_error,
                         cache_size=cache_size, random_state=random_state, verbose=verbose)

    # -- finding series ----------------------------------------------------------------
    def _discover(self, paths):
        if isinstance(paths, (str, os.PathLike)):
            path = os.fspath(paths)
            if not os.path.exists(path):
                raise DataError(f"{path!r} does not exist; expected a folder of DICOM series, "
                                f"a series folder or a list of them")
            if os.path.isfile(path):
                sources = [path]
            else:
                names = _listable(path)
                subfolders = [os.path.join(path, n) for n in names
                              if os.path.isdir(os.path.join(path, n))]
                subfolders = [d for d in subfolders
                              if any(os.path.isfile(os.path.join(d, f)) for f in _listable(d))]
                if subfolders:
                    sources = subfolders
                    loose = [n for n in names if os.path.isfile(os.path.join(path, n))]
                    if loose:
                        logger.warning("DicomDataset: ignoring %d file(s) directly in %r; each "
                                       "sub-folder is one series", len(loose), path)
                elif any(os.path.isfile(os.path.join(path, n)) for n in names):
                    sources = [path]
                else:
                    raise DataError(f"folder {path!r} holds no DICOM series (no files and no "
                                    f"sub-folders with files)")
        else:
            try:
                sources = [os.fspath(p) for p in paths]
            except TypeError:
                raise InputTypeError(
                    f"paths must be a folder or a list of series folders/files, got "
                    f"{type(paths).__name__}") from None
            if not sources:
                raise DataError("paths is an empty list; give at least one DICOM series")
        entries = []
        for source in sources:
            name = os.path.basename(os.path.normpath(source))
            if name.lower().endswith(".dcm"):
                name = name[:-4]
            entries.append((source, name, source))
        return entries

    # -- reading -----------------------------------------------------------------------
    @staticmethod
    def _files(source: str) -> list[str]:
        if os.path.isfile(source):
            return [source]
        if not os.path.isdir(source):
            raise DataError(f"DICOM series {source!r} does not exist")
        files = [os.path.join(source, f) for f in _listable(source)
                 if os.path.isfile(os.path.join(source, f))]
        if not files:
            raise DataError(f"DICOM series folder {source!r} holds no files")
        return files

    @staticmethod
    def _read(path: str, pixels: bool):
        pydicom = _pydicom()
        try:
            return pydicom.dcmread(path, stop_before_pixels=not pixels)
        except Exception as err:  # InvalidDicomError, OSError, EOFError ...
            raise DataError(f"cannot read DICOM file {path!r}: {type(err).__name__}: "
                            f"{err}") from err

    def _geometry(self, source: str):
        files = self._files(source)
        headers = [self._read(f, pixels=False) for f in files]
        order, shape, affine = _series_geometry(headers, files, source)
        return [files[k] for k in order], shape, affine

    def _read_header(self, source):
        _, shape, affine = self._geometry(source)
        return shape, affine

    def _read_volume(self, source):
        files, (n_cols, n_rows, n_slices), affine = self._geometry(source)
        volume = np.empty((n_slices, n_rows, n_cols), dtype=np.float32)
        for slot, path in enumerate(files):
            ds = self._read(path, pixels=True)
            try:
                pixels = ds.pixel_array
            except Exception as err:  # no pixel data, missing decoder, truncated data
                raise DataError(f"cannot decode the pixel data of DICOM file {path!r}: "
                                f"{type(err).__name__}: {err}") from err
            if pixels.shape != (n_rows, n_cols):
                raise DataError(f"DICOM file {path!r} has pixel data of shape {pixels.shape}, "
                                f"expected ({n_rows}, {n_cols}) from its header")
            slope = _number(ds, "RescaleSlope", 1.0)
            intercept = _number(ds, "RescaleIntercept", 0.0)
            np.multiply(pixels, slope, out=volume[slot], casting="unsafe")
            volume[slot] += intercept
        # voxel axes i (columns), j (rows), k (slices), as the affine expects
        return volume.transpose(2, 1, 0), affine


def _number(ds, keyword: str, default: float) -> float:
    value = ds.get(keyword)
    if value is None or value == "":
        return default
    return float(value)


def _series_geometry(headers, files, source: str):
    """Slice order, voxel shape ``(columns, rows, slices)`` and RAS affine of a series."""
    n = len(headers)
    for h, f in zip(headers, files, strict=True):
        if int(h.get("NumberOfFrames", 1) or 1) > 1:
            raise DataError(f"DICOM file {f!r} is multi-frame; multi-frame DICOM is not "
                            f"supported, convert the series to NIfTI (e.g. with dcm2niix)")
        if int(h.get("SamplesPerPixel", 1) or 1) != 1:
            raise DataError(f"DICOM file {f!r} is a colour image; one channel is expected")
        if "Rows" not in h or "Columns" not in h:
            raise DataError(f"DICOM file {f!r} has no image (no Rows/Columns)")
    sizes = {(int(h.Rows), int(h.Columns)) for h in headers}
    if len(sizes) > 1:
        raise DataError(f"DICOM series {source!r} mixes image sizes {sorted(sizes)}")
    n_rows, n_cols = sizes.pop()
    uids = {str(h.SeriesInstanceUID) for h in headers if "SeriesInstanceUID" in h}
    if len(uids) > 1:
        raise DataError(f"folder {source!r} holds {len(uids)} DICOM series; put each series "
                        f"in its own folder")

    if all("ImageOrientationPatient" in h for h in headers):
        orientations = np.array([[float(v) for v in h.ImageOrientationPatient]
                                 for h in headers])
        if not np.allclose(orientations, orientations[0], atol=1e-4):
            raise DataError(f"DICOM series {source!r} mixes slice orientations")
        row_cos, col_cos = orientations[0, :3], orientations[0, 3:]
    else:
        logger.warning("DICOM series %r has no ImageOrientationPatient; assuming axial", source)
        row_cos, col_cos = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    normal = np.cross(row_cos, col_cos)

    def thickness() -> float:
        for keyword in ("SpacingBetweenSlices", "SliceThickness"):
            value = headers[0].get(keyword)
            if value not in (None, "") and float(value) > 0:
                return abs(float(value))
        return 1.0

    if all("ImagePositionPatient" in h for h in headers):
        positions = np.array([[float(v) for v in h.ImagePositionPatient] for h in headers])
        along = positions @ normal
        order = np.argsort(along, kind="stable")
        steps = np.diff(along[order])
        if n > 1:
            if (steps < 1e-3).any():
                k = int(np.argmax(steps < 1e-3))
                raise DataError(
                    f"DICOM series {source!r} has several slices at one position "
                    f"({files[order[k]]!r} and {files[order[k + 1]]!r}); is it several "
                    f"echoes or time points? Put each volume in its own folder")
            step = float(np.median(steps))
            if np.abs(steps - step).max() > 0.01 * step + 1e-3:
                raise DataError(
                    f"DICOM series {source!r} has unevenly spaced slices (steps from "
                    f"{steps.min():.3f} to {steps.max():.3f} mm); missing slices or a gantry "
                    f"tilt? Resample it to a regular grid first")
        else:
            step = thickness()
        origin = positions[order[0]]
    else:
        numbers = [h.get("InstanceNumber") for h in headers]
        if all(v is not None for v in numbers):
            order = np.argsort([int(v) for v in numbers], kind="stable")
        else:
            logger.warning("DICOM series %r has neither positions nor instance numbers; "
                           "slices are taken in file-name order", source)
            order = np.arange(n)
        step = thickness()
        origin = np.zeros(3)

    spacing = headers[0].get("PixelSpacing") or headers[0].get("ImagerPixelSpacing")
    if spacing is None:
        logger.warning("DICOM series %r has no PixelSpacing; assuming 1 mm pixels", source)
        spacing = (1.0, 1.0)
    row_spacing, col_spacing = float(spacing[0]), float(spacing[1])
    affine = np.eye(4)
    affine[:3, 0] = row_cos * col_spacing  # voxel axis i: along a row, column index grows
    affine[:3, 1] = col_cos * row_spacing  # voxel axis j: down a column, row index grows
    affine[:3, 2] = normal * step
    affine[:3, 3] = origin
    return order, (n_cols, n_rows, n), _LPS_TO_RAS @ affine
