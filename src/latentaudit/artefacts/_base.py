"""What every artefact shares: the call convention, array layouts, signal units, masks."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError, InputShapeError, InputTypeError

__all__ = ["Artefact", "estimate_support"]


@dataclasses.dataclass(frozen=True)
class Artefact:
    """Base class of the parametric artefacts: ``Cls(strength=s, ...)(image) -> (image, mask)``.

    An artefact is a frozen dataclass of its parameters.  ``strength`` in [0, 1] sets its
    size through one physical quantity that each subclass names in its docstring (a shift
    in % of the field of view, a tilt in degrees, an SNR in dB, ...); strength 0 returns the
    image unchanged, bit for bit.  Everything else is a keyword parameter.

    Intensities are handled in *signal units*: ``value_range = (lo, hi)`` maps ``lo`` (no
    signal: air, background) to 0 and ``hi`` to 1, so multiplicative effects (gain, bias
    field, Rician noise, k-space effects) act on the magnitude signal as they would on a
    scanner.  The default ``(-1, 1)`` is latentaudit's image scaling; ``None`` takes each
    image's own minimum and maximum.  Results are clipped to the value range, as a display
    window would.

    Subclasses set the class attributes :attr:`name` and :attr:`family` and implement
    ``_apply(signal, rng, support)`` on one image in signal units (float64,
    ``(C, *spatial)``), returning the new signal and either a mask of where it acted
    (broadcastable to the image) or ``None`` for "every pixel whose value changed".

    Parameters
    ----------
    strength : float, default 1.0
        How strong the artefact is, in [0, 1].
    value_range : tuple of two floats or None, default (-1.0, 1.0)
        The intensities of "no signal" and "full signal".

    Attributes
    ----------
    name : str
        Short name used in tables, the command line and the demo cohort's ``truth``.
    family : str
        "geometry", "objects", "intensity", "noise", "resolution" or "acquisition".

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.artefacts import Gain
    >>> image = np.full((1, 8, 8), 0.0, dtype=np.float32)   # mid grey, in [-1, 1]
    >>> out, mask = Gain(strength=1.0)(image)
    >>> round(float(out[0, 0, 0]), 3), bool(mask.all())
    (0.413, True)
    >>> out, mask = Gain(strength=0.0)(image)
    >>> bool((out == image).all()), bool(mask.any())
    (True, False)
    """

    strength: float = 1.0
    value_range: tuple[float, float] | None = dataclasses.field(default=(-1.0, 1.0),
                                                                kw_only=True)

    name: ClassVar[str] = "artefact"
    family: ClassVar[str] = ""

    def __post_init__(self) -> None:
        strength = self.strength
        if isinstance(strength, bool) or not isinstance(strength, (int, float, np.number)) \
                or not 0.0 <= float(strength) <= 1.0:
            raise ConfigError(f"strength must be a number in [0, 1], got {strength!r}")
        object.__setattr__(self, "strength", float(strength))
        if self.value_range is not None:
            try:
                lo, hi = (float(v) for v in self.value_range)
            except (TypeError, ValueError):
                raise ConfigError(f"value_range must be (low, high) or None, got "
                                  f"{self.value_range!r}") from None
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ConfigError(f"value_range must be finite with low < high, got "
                                  f"{self.value_range!r}")
            object.__setattr__(self, "value_range", (lo, hi))
        self._check()

    def _check(self) -> None:
        """Validate the subclass's parameters (raise ConfigError)."""

    # -- public -------------------------------------------------------------------------
    def with_strength(self, strength: float) -> Artefact:
        """The same artefact at another strength.

        Parameters
        ----------
        strength : float
            The new strength, in [0, 1].

        Returns
        -------
        Artefact
            A copy with every other parameter unchanged.

        Examples
        --------
        >>> from latentaudit.artefacts import Blur
        >>> Blur(strength=1.0, max_fwhm=2.0).with_strength(0.25)
        Blur(strength=0.25, value_range=(-1.0, 1.0), max_fwhm=2.0, axes=None)
        """
        return dataclasses.replace(self, strength=strength)

    def get_params(self) -> dict:
        """The artefact's parameters, as given to the constructor.

        Returns
        -------
        dict
            Parameter name -> value.

        Examples
        --------
        >>> from latentaudit.artefacts import Tilt
        >>> Tilt(strength=0.5).get_params()["max_angle"]
        15.0
        """
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __call__(self, image, *, random_state=None, spatial_dims: int | None = None,
                 support=None) -> tuple[np.ndarray, np.ndarray]:
        """Apply the artefact to one image or a batch.

        Parameters
        ----------
        image : array-like
            One channel-first image ``(C, H, W)`` or volume ``(C, D, H, W)``, or a batch
            ``(N, C, H, W)`` / ``(N, C, D, H, W)``.  Without ``spatial_dims`` a 3-D array
            is one 2-D image, a 4-D array one 3-D volume and a 5-D array a batch of
            volumes; pass ``spatial_dims=2`` for a batch of 2-D images.
        random_state : None, int, numpy.random.Generator or numpy.random.RandomState
            Seed of every random choice (each image of a batch gets its own draws).  The
            same seed gives the same result, and at any strength the same random layout
            (field pattern, noise, spike positions), so a ladder of strengths grows one
            artefact.  ``None`` draws fresh entropy.
        spatial_dims : {2, 3}, optional
            Number of spatial axes.
        support : array-like of bool, optional
            Where the imaged object (e.g. the head) is, shaped like the spatial axes of one
            image (or like the batch without its channel axis).  Used by artefacts that
            relate to the object (field-of-view shift, tilt, head-rest, noise level).
            Default: estimated by :func:`estimate_support`.

        Returns
        -------
        image : numpy.ndarray
            Shaped like the input, float (the input's float dtype, else float32).
        mask : numpy.ndarray
            bool, shaped like the input: where the artefact acted (see each class).

        Raises
        ------
        ValueError
            (as :class:`~latentaudit.errors.InputShapeError`) for an image whose number of
            axes does not fit ``spatial_dims``, or a ``support`` of the wrong shape.
        TypeError
            (as :class:`~latentaudit.errors.InputTypeError`) for a non-numeric image.
        """
        x = np.asarray(image)
        if x.dtype.kind not in "fiub":
            raise InputTypeError(f"image must be a numeric array, got dtype {x.dtype}")
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        batch = _as_batch(x, spatial_dims)
        if self.strength == 0.0:
            return x.copy(), np.zeros(x.shape, dtype=bool)
        supports = None if support is None else _support_batch(support, batch)
        rng = _generator(random_state)
        out = np.empty_like(batch)
        mask = np.empty(batch.shape, dtype=bool)
        for i, item in enumerate(batch):
            lo, hi = _range_of(item, self.value_range)
            signal = (item.astype(np.float64) - lo) / (hi - lo)
            own = estimate_support(signal) if supports is None else supports[i]
            new, acted = self._apply(signal, rng, own)
            result = np.clip(lo + new * (hi - lo), lo, hi).astype(x.dtype)
            changed = result != item
            out[i] = np.where(changed, result, item)
            mask[i] = changed if acted is None else np.broadcast_to(acted, item.shape)
        return out.reshape(x.shape), mask.reshape(x.shape)

    def _apply(self, signal: np.ndarray, rng: np.random.Generator,
               support: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError(f"{type(self).__name__} is abstract: use one of the "
                                  f"artefacts in latentaudit.artefacts")


def estimate_support(signal: np.ndarray) -> np.ndarray:
    """Where the imaged object is: median-filtered signal above Otsu's threshold, holes
    filled (the ``median_otsu`` approach to masking MR images).

    Parameters
    ----------
    signal : numpy.ndarray
        One image ``(C, *spatial)`` in signal units (0 = no signal, 1 = full signal).

    Returns
    -------
    numpy.ndarray
        bool, shaped like the spatial axes: the channel mean, median-filtered over 3
        pixels along each axis (against noise), above the threshold that best separates
        two intensity classes (Otsu), with enclosed holes filled.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.artefacts import estimate_support
    >>> image = np.zeros((1, 9, 9)); image[0, 2:7, 2:7] = 0.8
    >>> image[0, 4, 4] = 0.1; image[0, 0, 8] = 1.0    # a dark spot inside, a speck outside
    >>> print(estimate_support(image).astype(int))   # the median filter rounds corners
    [[0 0 0 0 0 0 0 0 0]
     [0 0 0 0 0 0 0 0 0]
     [0 0 0 1 1 1 0 0 0]
     [0 0 1 1 1 1 1 0 0]
     [0 0 1 1 1 1 1 0 0]
     [0 0 1 1 1 1 1 0 0]
     [0 0 0 1 1 1 0 0 0]
     [0 0 0 0 0 0 0 0 0]
     [0 0 0 0 0 0 0 0 0]]
    """
    from scipy import ndimage

    mean = np.asarray(signal, dtype=np.float64).mean(axis=0)
    smooth = ndimage.median_filter(mean, size=3, mode="nearest")
    return ndimage.binary_fill_holes(smooth > otsu_threshold(smooth))


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """The threshold that maximises the between-class variance of ``values`` (Otsu 1979)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return hi
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts)[:-1].astype(np.float64)   # pixels at or below each cut
    total = float(counts.sum())
    cumulative = np.cumsum(counts * centres)
    mass = cumulative[:-1]
    mean_low = mass / np.maximum(weight, 1)
    mean_high = (cumulative[-1] - mass) / np.maximum(total - weight, 1)
    between = weight * (total - weight) * (mean_low - mean_high) ** 2
    return float(edges[1:-1][int(np.argmax(between))])


# -- helpers shared by the artefact modules ----------------------------------------------------
def spatial_axis(axis: int, n_spatial: int, name: str = "axis") -> int:
    """A spatial axis (negative counts from the end) as an index into ``(C, *spatial)``."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) \
            or not -n_spatial <= axis < n_spatial:
        raise ConfigError(f"{name} must be a spatial axis in [{-n_spatial}, {n_spatial - 1}] "
                          f"for {n_spatial}-D images, got {axis!r}")
    return 1 + int(axis) % n_spatial


def spatial_axes(axes, n_spatial: int, name: str = "axes") -> tuple[int, ...]:
    """Spatial axes (None: all) as sorted indices into ``(C, *spatial)``."""
    if axes is None:
        return tuple(range(1, n_spatial + 1))
    if isinstance(axes, (int, np.integer)):
        axes = (axes,)
    found = sorted({spatial_axis(a, n_spatial, name) for a in axes})
    return tuple(found)


def check_range(name: str, value, low: float, high: float, *, low_open: bool = False) -> None:
    """Raise ConfigError unless ``low <= value <= high`` (``low < value`` if ``low_open``)."""
    ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool) \
        and math.isfinite(float(value)) and float(value) <= high \
        and (float(value) > low if low_open else float(value) >= low)
    if not ok:
        bracket = "(" if low_open else "["
        raise ConfigError(f"{name} must be a number in {bracket}{low}, {high}], got {value!r}")


def check_seed(name: str, value) -> None:
    """Raise ConfigError unless ``value`` is None or a non-negative integer."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                              or value < 0):
        raise ConfigError(f"{name} must be None or a non-negative integer, got {value!r}")


def snap(new: np.ndarray, old: np.ndarray, tolerance: float = 1e-12) -> np.ndarray:
    """Keep ``old`` where a round trip (e.g. through the FFT) changed it by rounding only."""
    return np.where(np.abs(new - old) <= tolerance, old, new)


def _as_batch(x: np.ndarray, spatial_dims: int | None) -> np.ndarray:
    if spatial_dims is None:
        if x.ndim not in (3, 4, 5):
            raise InputShapeError(
                f"image must be (C, H, W), (C, D, H, W) or a batch (N, C, D, H, W), got "
                f"shape {x.shape}; for a batch of 2-D images pass spatial_dims=2")
        spatial_dims = 3 if x.ndim >= 4 else 2
    elif isinstance(spatial_dims, bool) or spatial_dims not in (2, 3):
        raise ConfigError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    if x.ndim == spatial_dims + 1:
        return x[None]
    if x.ndim == spatial_dims + 2:
        return x
    raise InputShapeError(
        f"a {spatial_dims}-D image must have {spatial_dims + 1} axes (C, *spatial) or "
        f"{spatial_dims + 2} for a batch, got shape {x.shape}")


def _support_batch(support, batch: np.ndarray) -> np.ndarray:
    support = np.asarray(support, dtype=bool)
    spatial = batch.shape[2:]
    if support.shape == spatial:
        return np.broadcast_to(support, (len(batch), *spatial))
    if support.shape == (len(batch), *spatial):
        return support
    raise InputShapeError(f"support must be shaped like the spatial axes {spatial} or "
                          f"{(len(batch), *spatial)} for the batch, got {support.shape}")


def _range_of(item: np.ndarray, value_range) -> tuple[float, float]:
    if value_range is not None:
        return value_range
    lo, hi = float(item.min()), float(item.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def _generator(random_state: Any) -> np.random.Generator:
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31 - 1))
    try:
        return np.random.default_rng(random_state)
    except (TypeError, ValueError):
        raise ConfigError(f"random_state must be None, a non-negative int, a NumPy Generator "
                          f"or RandomState, got {random_state!r}") from None
