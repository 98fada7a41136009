"""Array transforms for medical images: orientation, resampling, pad/crop, intensity.

Every function works on NumPy arrays and returns a view where it can (reorientation,
slicing, cropping), so a 256^3 volume is copied only where a value has to change.

Orientation convention
----------------------
Volumes are brought to the closest canonical orientation, RAS+: axis 0 runs from the
patient's left to right (sagittal slices), axis 1 from posterior to anterior (coronal
slices), axis 2 from inferior to superior (axial slices).  A slice is shown as an image
(:func:`slice_to_image`) the way DICOM viewers show the usual acquisitions:

================  =============  =============================  ==================================
``slice_axis``    slice          rows (top to bottom)           columns (left to right)
================  =============  =============================  ==================================
0                 sagittal       superior to inferior           anterior to posterior (face left)
1                 coronal        superior to inferior           patient right to left (radiological)
2                 axial          anterior to posterior          patient right to left (radiological)
================  =============  =============================  ==================================

In array terms: the slice axis comes first, then the higher of the two remaining RAS axes
reversed (rows), then the lower one reversed (columns).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError, DataError, InputShapeError, InputTypeError
from ..utils import check_option

__all__ = [
    "center_slices",
    "pad_or_crop",
    "resample",
    "resize",
    "scale_intensity",
    "slice_to_image",
    "to_canonical",
]


# -- orientation ---------------------------------------------------------------------------
def to_canonical(img):
    """Reorient a nibabel image to the closest canonical (RAS+) orientation.

    Parameters
    ----------
    img : nibabel.spatialimages.SpatialImage
        A 3-D (or 4-D) image with an affine.

    Returns
    -------
    nibabel.spatialimages.SpatialImage
        The same image if it is already RAS+, else a reoriented one whose voxel axes run
        left to right, posterior to anterior and inferior to superior.  Only flips and
        transposes are applied (no interpolation).

    Raises
    ------
    TypeError
        (as :class:`latentaudit.errors.InputTypeError`) if ``img`` is not a nibabel image.

    Examples
    --------
    >>> import numpy as np, nibabel as nib
    >>> img = nib.Nifti1Image(np.zeros((4, 5, 6), "float32"), np.diag([-2, 2, 2, 1]))
    >>> nib.aff2axcodes(to_canonical(img).affine)
    ('R', 'A', 'S')
    """
    import nibabel as nib

    if not isinstance(img, nib.spatialimages.SpatialImage):
        raise InputTypeError(f"to_canonical expects a nibabel image, got {type(img).__name__}")
    return nib.as_closest_canonical(img)


def _reorient_to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flip and transpose the first three axes of ``data`` to RAS+ (views, no copy)."""
    from nibabel import orientations

    ornt = orientations.io_orientation(affine)
    if np.isnan(ornt).any():
        raise DataError(f"the affine {affine.tolist()} has a degenerate (zero) axis")
    if (ornt == [[0, 1], [1, 1], [2, 1]]).all():
        return data, affine
    new_affine = affine @ orientations.inv_ornt_aff(ornt, data.shape[:3])
    return orientations.apply_orientation(data, ornt), new_affine


def _ras_header(shape: Sequence[int], affine: np.ndarray) -> tuple[tuple[int, ...], np.ndarray]:
    """Shape and affine a volume will have after :func:`_reorient_to_ras`, from its header."""
    from nibabel import orientations

    affine = np.asarray(affine, dtype=float)
    ornt = orientations.io_orientation(affine)
    if np.isnan(ornt).any():
        raise DataError(f"the affine {affine.tolist()} has a degenerate (zero) axis")
    out = [0, 0, 0]
    for axis, (target, _) in enumerate(ornt):
        out[int(target)] = int(shape[axis])
    return tuple(out), affine @ orientations.inv_ornt_aff(ornt, tuple(shape)[:3])


def _voxel_sizes(affine: np.ndarray) -> np.ndarray:
    """Voxel size along each array axis, in mm, from an affine."""
    return np.sqrt((np.asarray(affine, dtype=float)[:3, :3] ** 2).sum(axis=0))


def slice_to_image(volume: np.ndarray, slice_axis: int = 0, index: int | None = None):
    """Arrange a RAS+ volume as displayable slices along ``slice_axis``.

    See the module docstring for the convention: a sagittal or coronal slice has the
    superior direction at the top row; an axial slice has anterior at the top; coronal and
    axial slices show the patient's right on the left (radiological view); sagittal slices
    show the face on the left.

    Parameters
    ----------
    volume : numpy.ndarray
        A 3-D array in RAS+ orientation (e.g. after :func:`to_canonical`), or any array
        whose first three axes are RAS+.
    slice_axis : {0, 1, 2}, default 0
        0 sagittal, 1 coronal, 2 axial.
    index : int, optional
        Return only this slice, as a 2-D image.

    Returns
    -------
    numpy.ndarray
        A view: ``(n_slices, rows, columns)`` when ``index`` is None, else
        ``(rows, columns)``.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError` / ``InputShapeError``) for a bad
        ``slice_axis`` or an array with fewer than three dimensions.

    Examples
    --------
    >>> import numpy as np
    >>> vol = np.zeros((3, 4, 5))
    >>> slice_to_image(vol, slice_axis=0).shape  # (L-R slices, S-I rows, A-P columns)
    (3, 5, 4)
    >>> slice_to_image(vol, slice_axis=2, index=1).shape
    (4, 3)
    """
    volume = np.asarray(volume)
    if volume.ndim < 3:
        raise InputShapeError(f"slice_to_image expects a 3-D volume, got shape {volume.shape}")
    check_option("slice_axis", slice_axis, (0, 1, 2))
    stack = np.moveaxis(volume, slice_axis, 0)
    # remaining RAS axes a < b: rows run down b, columns run down a (both reversed)
    stack = np.swapaxes(stack, 1, 2)[:, ::-1, ::-1]
    if index is None:
        return stack
    return stack[index]


def _stack_spacing(spacing: Sequence[float], slice_axis: int) -> np.ndarray:
    """Voxel sizes in the axis order of :func:`slice_to_image`'s output."""
    rest = [a for a in range(3) if a != slice_axis]
    return np.array([spacing[slice_axis], spacing[rest[1]], spacing[rest[0]]], dtype=float)


def _stack_shape(shape: Sequence[int], slice_axis: int) -> tuple[int, int, int]:
    rest = [a for a in range(3) if a != slice_axis]
    return (int(shape[slice_axis]), int(shape[rest[1]]), int(shape[rest[0]]))


# -- resampling ----------------------------------------------------------------------------
def _resample_grid(array: np.ndarray, out_shape: Sequence[int], scale: Sequence[float],
                   order: int, anti_aliasing: bool) -> np.ndarray:
    """Resample ``array`` onto a grid of ``out_shape`` whose step is ``scale`` input voxels.

    The two grids share their centre, so resampling neither shifts nor flips the image.
    """
    from scipy import ndimage

    scale = np.asarray(scale, dtype=float)
    out_shape = tuple(int(n) for n in out_shape)
    if out_shape == array.shape and np.allclose(scale, 1.0):
        return array
    if not np.issubdtype(array.dtype, np.floating) and order > 0:
        array = array.astype(np.float32)
    if anti_aliasing and order > 0 and (scale > 1).any():
        # Gaussian prefilter against aliasing when shrinking (as in skimage's resize)
        sigma = np.maximum(0.0, (scale - 1.0) / 2.0)
        array = ndimage.gaussian_filter(array, sigma=sigma, mode="nearest")
    in_shape = np.asarray(array.shape, dtype=float)
    offset = (in_shape - 1.0) / 2.0 - scale * (np.asarray(out_shape, dtype=float) - 1.0) / 2.0
    return ndimage.affine_transform(array, scale, offset=offset, output_shape=out_shape,
                                    order=order, mode="nearest")


def _check_order(order) -> int:
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or not 0 <= order <= 5:
        raise ConfigError(f"order must be an integer from 0 to 5, got {order!r}")
    return int(order)


def _per_axis(value, ndim: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        arr = np.full(ndim, float(arr))
    if arr.shape != (ndim,):
        raise ConfigError(f"{name} must be a number or {ndim} numbers, got {value!r}")
    if not (np.isfinite(arr).all() and (arr > 0).all()):
        raise ConfigError(f"{name} must be positive and finite, got {value!r}")
    return arr


def resample(volume: np.ndarray, spacing_in, spacing_out, order: int = 1, *,
             anti_aliasing: bool = True) -> np.ndarray:
    """Resample an image to a new voxel size.

    Parameters
    ----------
    volume : numpy.ndarray
        A 2-D or 3-D array (or any number of dimensions).
    spacing_in, spacing_out : float or sequence of float
        Voxel size of the input and of the output along every axis (e.g. mm); a single
        number applies to all axes.
    order : int, default 1
        Spline order (0 nearest neighbour, for label maps; 1 linear; 3 cubic).
    anti_aliasing : bool, default True
        Smooth with a Gaussian before shrinking an axis, to avoid aliasing (ignored for
        ``order=0``).

    Returns
    -------
    numpy.ndarray
        The resampled array, of shape ``round(shape * spacing_in / spacing_out)``;
        float input keeps its dtype, integer input becomes float32 unless ``order=0``.
        The input itself is returned when nothing changes.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError`) for non-positive spacings or a bad
        ``order``.

    Examples
    --------
    >>> import numpy as np
    >>> resample(np.zeros((10, 20), "float32"), (1.0, 1.0), (2.0, 4.0)).shape
    (5, 5)
    """
    volume = np.asarray(volume)
    order = _check_order(order)
    spacing_in = _per_axis(spacing_in, volume.ndim, "spacing_in")
    spacing_out = _per_axis(spacing_out, volume.ndim, "spacing_out")
    factor = spacing_in / spacing_out
    out_shape = np.maximum(1, np.round(np.asarray(volume.shape) * factor)).astype(int)
    return _resample_grid(volume, out_shape, spacing_out / spacing_in, order, anti_aliasing)


def resize(array: np.ndarray, shape: Sequence[int], order: int = 1, *,
           anti_aliasing: bool = True) -> np.ndarray:
    """Resize an image to a given shape (the field of view is kept, voxels stretch).

    Parameters
    ----------
    array : numpy.ndarray
        The image (any number of dimensions).
    shape : sequence of int
        Output shape, one entry per axis.
    order : int, default 1
        Spline order (0 for label maps).
    anti_aliasing : bool, default True
        Gaussian smoothing before shrinking an axis.

    Returns
    -------
    numpy.ndarray
        Array of the given shape.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError`) if ``shape`` does not match the
        number of axes or has non-positive entries.

    Examples
    --------
    >>> import numpy as np
    >>> resize(np.zeros((8, 8, 8), "float32"), (4, 16, 8)).shape
    (4, 16, 8)
    """
    array = np.asarray(array)
    order = _check_order(order)
    shape = tuple(shape)
    if len(shape) != array.ndim or not all(
            isinstance(s, (int, np.integer)) and s > 0 for s in shape):
        raise ConfigError(f"shape must be {array.ndim} positive integers for an array of "
                          f"shape {array.shape}, got {shape!r}")
    scale = np.asarray(array.shape, dtype=float) / np.asarray(shape, dtype=float)
    return _resample_grid(array, shape, scale, order, anti_aliasing)


def _fit_spacing(shape: Sequence[int], spacing: Sequence[float], size: Sequence[int]) -> float:
    """Isotropic voxel size at which a field of view of ``shape * spacing`` fits ``size``."""
    extent = np.asarray(shape, dtype=float) * np.asarray(spacing, dtype=float)
    return float(np.max(extent / np.asarray(size, dtype=float)))


# -- pad / crop ----------------------------------------------------------------------------
def pad_or_crop(array: np.ndarray, size: Sequence[int], mode: str = "center", rng=None,
                pad_value: float = 0.0) -> np.ndarray:
    """Pad and/or crop the trailing axes of an array to ``size``.

    Parameters
    ----------
    array : numpy.ndarray
        E.g. ``(H, W)``, ``(C, H, W)``, ``(D, H, W)`` or ``(C, D, H, W)``.
    size : sequence of int
        Target size of the last ``len(size)`` axes.
    mode : {"center", "random"}, default "center"
        ``"center"`` keeps the middle; ``"random"`` places the window (or the padding) at a
        random offset, for training-time augmentation.
    rng : None, int, numpy.random.Generator or numpy.random.RandomState
        Source of the random offsets for ``mode="random"``.
    pad_value : float, default 0.0
        Value of added voxels (-1 for images scaled to [-1, 1]).

    Returns
    -------
    numpy.ndarray
        A view of ``array`` when only cropping, else a new array.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError`) for a bad ``size`` or ``mode``.
    TypeError
        (as :class:`latentaudit.errors.InputTypeError`) for an ``rng`` of another type.

    Examples
    --------
    >>> import numpy as np
    >>> pad_or_crop(np.ones((1, 6, 3)), (4, 5), pad_value=-1).shape
    (1, 4, 5)
    """
    array = np.asarray(array)
    check_option("mode", mode, ("center", "random"))
    size = tuple(size)
    k = len(size)
    if not 0 < k <= array.ndim or not all(
            isinstance(s, (int, np.integer)) and s > 0 for s in size):
        raise ConfigError(f"size must be 1 to {array.ndim} positive integers for an array of "
                          f"shape {array.shape}, got {size!r}")
    if mode == "random":
        rng = _as_generator(rng)
    lead = array.ndim - k

    def offset(excess: int) -> int:
        if excess <= 0:
            return 0
        if mode == "center":
            return excess // 2
        return int(rng.integers(0, excess + 1))

    crop = [slice(None)] * lead
    place = [slice(None)] * lead
    needs_pad = False
    for n, s in zip(array.shape[lead:], size, strict=True):
        if n >= s:
            start = offset(n - s)
            crop.append(slice(start, start + s))
            place.append(slice(None))
        else:
            start = offset(s - n)
            crop.append(slice(None))
            place.append(slice(start, start + n))
            needs_pad = True
    cropped = array[tuple(crop)]
    if not needs_pad:
        return cropped
    out = np.full(array.shape[:lead] + size, pad_value, dtype=array.dtype)
    out[tuple(place)] = cropped
    return out


def _as_generator(rng) -> np.random.Generator:
    """A Generator from None (drawn from NumPy's global state), an int, or a generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng(np.random.randint(0, 2**31 - 1))  # noqa: NPY002
    if isinstance(rng, np.random.RandomState):
        return np.random.default_rng(rng.randint(0, 2**31 - 1))
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise InputTypeError(f"rng must be None, an int, a numpy Generator or RandomState, got "
                         f"{type(rng).__name__}")


def _extract_box(array: np.ndarray, starts: Sequence[int], stops: Sequence[int],
                 pad_value: float) -> np.ndarray:
    """Cut ``array[starts:stops]``; parts outside the array are filled with ``pad_value``."""
    inside = tuple(slice(max(a, 0), min(b, n))
                   for a, b, n in zip(starts, stops, array.shape, strict=True))
    view = array[inside]
    shape = tuple(int(b - a) for a, b in zip(starts, stops, strict=True))
    if view.shape == shape:
        return view
    out = np.full(shape, pad_value, dtype=array.dtype)
    place = tuple(slice(s.start - a, s.stop - a) for s, a in zip(inside, starts, strict=True))
    out[place] = view
    return out


# -- intensity -----------------------------------------------------------------------------
def _check_percentiles(lower, upper) -> tuple[float, float]:
    try:
        lower, upper = float(lower), float(upper)
    except (TypeError, ValueError):
        raise ConfigError(f"percentiles must be numbers, got {lower!r}, {upper!r}") from None
    if not 0.0 <= lower < upper <= 100.0:
        raise ConfigError(
            f"percentiles must satisfy 0 <= lower < upper <= 100, got lower={lower}, "
            f"upper={upper}")
    return lower, upper


def _scale_inplace(array: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """Percentile-scale a writeable float array to [-1, 1] in place (see scale_intensity)."""
    # percentiles ignore voxel order: read in memory order (an F-ordered volume would
    # otherwise be transposed into a C-ordered copy) and partition one private copy
    flat = array.ravel(order="K")
    if np.may_share_memory(flat, array):
        flat = flat.copy()
    lo, hi = np.percentile(flat, [lower, upper], overwrite_input=True)
    del flat
    lo, hi = float(lo), float(hi)
    if hi > lo:
        array -= lo
        array *= 2.0 / (hi - lo)
        array -= 1.0
        np.clip(array, -1.0, 1.0, out=array)
    else:
        # constant image (or a spike on a constant background): the limit of the formula
        np.copyto(array, np.where(array > lo, 1.0, -1.0).astype(array.dtype, copy=False))
    return array


def scale_intensity(array: np.ndarray, lower: float = 0.5, upper: float = 99.5) -> np.ndarray:
    """Scale intensities to [-1, 1] between two percentiles, clipping outside them.

    Parameters
    ----------
    array : array-like
        An image or volume of real numbers.
    lower, upper : float, default 0.5 and 99.5
        Percentiles mapped to -1 and 1.  ``(0, 100)`` is min-max scaling.

    Returns
    -------
    numpy.ndarray
        A new float32 array in [-1, 1].  When the two percentiles coincide (a constant
        image) values at or below them become -1 and values above become 1, so a blank
        image is all -1 (background) instead of NaN.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.DataError` / ``ConfigError``) for non-finite
        values or percentiles outside ``0 <= lower < upper <= 100``.

    Examples
    --------
    >>> import numpy as np
    >>> scale_intensity(np.arange(5.0), 0, 100)
    array([-1. , -0.5,  0. ,  0.5,  1. ], dtype=float32)
    """
    lower, upper = _check_percentiles(lower, upper)
    out = np.array(array, dtype=np.float32, copy=True)
    if out.size == 0:
        raise DataError("cannot scale an empty array")
    if not np.isfinite(out).all():
        raise DataError("array contains NaN or infinite values; cannot scale intensities")
    return _scale_inplace(out, lower, upper)


# -- slices --------------------------------------------------------------------------------
def center_slices(n_total: int, n_slices: int) -> np.ndarray:
    """Indices of the ``n_slices`` central slices of ``n_total``.

    Parameters
    ----------
    n_total : int
        Number of slices in the volume.
    n_slices : int
        Number wanted.

    Returns
    -------
    numpy.ndarray
        ``arange(start, start + n_slices)`` with ``start = (n_total - n_slices) // 2``.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError`) if ``n_slices`` is not between 1 and
        ``n_total``.

    Examples
    --------
    >>> center_slices(10, 4)
    array([3, 4, 5, 6])
    """
    if isinstance(n_slices, bool) or not isinstance(n_slices, (int, np.integer)) or n_slices < 1:
        raise ConfigError(f"n_slices must be a positive integer, got {n_slices!r}")
    if n_slices > n_total:
        raise ConfigError(f"n_slices={n_slices} is larger than the {n_total} slices available")
    start = (int(n_total) - int(n_slices)) // 2
    return np.arange(start, start + int(n_slices))


# -- checks shared by the datasets --------------------------------------------------------
def _shape_to_3d(shape, path: str, what: str = "image") -> tuple[int, int, int]:
    """Validate a header shape: 3-D, 2-D (one slice) or 4-D with one volume."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2:
        return shape + (1,)
    if len(shape) == 3:
        return shape
    if len(shape) >= 4 and all(s == 1 for s in shape[3:]):
        return shape[:3]
    if len(shape) == 4:
        raise DataError(
            f"{what} {path!r} is 4-D with {shape[3]} volumes (shape {shape}); a 3-D volume "
            f"is expected: split it first, e.g. with nibabel's img.slicer[..., 0]")
    raise DataError(f"{what} {path!r} has {len(shape)} dimensions (shape {shape}); a 3-D "
                    f"volume is expected")


def _squeeze_to_3d(data: np.ndarray, path: str, what: str = "image") -> np.ndarray:
    _shape_to_3d(data.shape, path, what)
    if data.ndim == 2:
        return data[:, :, np.newaxis]
    return data[(Ellipsis,) + (0,) * (data.ndim - 3)] if data.ndim > 3 else data


def _check_size(size, spatial_dims: int, name: str = "size") -> tuple[int, ...] | None:
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size),) * spatial_dims
    try:
        size = tuple(size)
    except TypeError:
        raise ConfigError(f"{name} must be an int or {spatial_dims} ints, got {size!r}") from None
    if len(size) != spatial_dims or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
            for s in size):
        raise ConfigError(
            f"{name} must be a positive int or {spatial_dims} positive ints for "
            f"spatial_dims={spatial_dims}, got {size!r}")
    return tuple(int(s) for s in size)


def _check_intensity(intensity, allowed_strings: Sequence[str] = ()):
    if intensity is None:
        return None
    if isinstance(intensity, str):
        if intensity in allowed_strings:
            return intensity
        if allowed_strings:
            check_option("intensity", intensity, allowed_strings)  # raises, with a suggestion
        raise ConfigError(
            f"intensity must be None or a (lower, upper) pair of percentiles, got {intensity!r}")
    try:
        lower, upper = intensity
    except (TypeError, ValueError):
        choices = ", ".join(repr(s) for s in allowed_strings)
        raise ConfigError(
            f"intensity must be None, a (lower, upper) pair of percentiles"
            f"{' or ' + choices if choices else ''}, got {intensity!r}") from None
    return _check_percentiles(lower, upper)
