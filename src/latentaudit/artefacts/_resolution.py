"""Resolution: less detail than the rest of the data (blur, down-then-up sampling)."""

from __future__ import annotations

import dataclasses
import math

from ._base import Artefact, check_range, spatial_axes

__all__ = ["Blur", "Downsampling"]

_FWHM_PER_SIGMA = 2 * math.sqrt(2 * math.log(2))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Blur(Artefact):
    """A wider point-spread function: motion-free blur from another reconstruction
    filter, a smoothing kernel or a softer detector.

    Physical quantity: the full width at half maximum of the added Gaussian point-spread
    function, ``strength * max_fwhm`` pixels (strength 1 = 3 pixels by default), along
    ``axes``.  Deterministic.

    Parameters
    ----------
    strength : float, default 1.0
        In [0, 1].
    max_fwhm : float, default 3.0
        FWHM at strength 1, in pixels, in (0, 100].
    axes : int or tuple of int, optional
        Spatial axes to blur (negative count from the end); default all.
    value_range : tuple of two floats or None, default (-1.0, 1.0)
        See :class:`Artefact`.

    Notes
    -----
    The mask marks the pixels whose value changed (edges and texture).

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.artefacts import Blur
    >>> step = np.zeros((1, 1, 8)); step[..., 4:] = 1.0
    >>> out, mask = Blur(strength=1.0, max_fwhm=2.0, value_range=(0, 1))(step)
    >>> out.round(2).tolist(), mask[0, 0].astype(int).tolist()
    ([[[0.0, 0.0, 0.03, 0.27, 0.73, 0.97, 1.0, 1.0]]], [0, 1, 1, 1, 1, 1, 1, 0])
    """

    max_fwhm: float = 3.0
    axes: int | tuple[int, ...] | None = None

    name = "blur"
    family = "resolution"

    def _check(self) -> None:
        check_range("max_fwhm", self.max_fwhm, 0.0, 100.0, low_open=True)

    def _apply(self, signal, rng, support):
        from scipy import ndimage

        axes = spatial_axes(self.axes, signal.ndim - 1)
        sigma = self.strength * self.max_fwhm / _FWHM_PER_SIGMA
        return ndimage.gaussian_filter(signal, sigma, mode="nearest", axes=axes), None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Downsampling(Artefact):
    """Acquired coarser, stored finer: down-sampled, then interpolated back to the grid
    (thick slices, a lower matrix, a different scanner's resolution).

    Physical quantity: the resolution loss factor ``f = 1 + strength * (max_factor - 1)``
    along ``axes`` (strength 1 = 4x coarser by default): the image is smoothed (Gaussian,
    sigma ``(f - 1) / 2`` pixels, against aliasing), resampled to ``round(n / f)`` pixels
    and back with linear interpolation.  Deterministic.

    Parameters
    ----------
    strength : float, default 1.0
        In [0, 1].
    max_factor : float, default 4.0
        Factor at strength 1, in (1, 64].
    axes : int or tuple of int, optional
        Spatial axes that lose resolution (e.g. ``-3`` for thick slices of a volume);
        default all.
    value_range : tuple of two floats or None, default (-1.0, 1.0)
        See :class:`Artefact`.

    Notes
    -----
    The mask marks the pixels whose value changed.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.artefacts import Downsampling
    >>> stripes = np.tile([0.0, 1.0], 8)[None, None]   # finest detail: 2-pixel period
    >>> out, _ = Downsampling(strength=1.0, value_range=(0, 1))(stripes)
    >>> round(float(stripes.std()), 2), round(float(out.std()), 2)   # mostly gone
    (0.5, 0.05)
    """

    max_factor: float = 4.0
    axes: int | tuple[int, ...] | None = None

    name = "downsampling"
    family = "resolution"

    def _check(self) -> None:
        check_range("max_factor", self.max_factor, 1.0, 64.0, low_open=True)

    def _apply(self, signal, rng, support):
        from scipy import ndimage

        axes = spatial_axes(self.axes, signal.ndim - 1)
        factor = 1 + self.strength * (self.max_factor - 1)
        sigma = [0.0] * signal.ndim
        down = [1.0] * signal.ndim
        for axis in axes:
            sigma[axis] = (factor - 1) / 2
            n = signal.shape[axis]
            down[axis] = max(1, round(n / factor)) / n
        smooth = ndimage.gaussian_filter(signal, sigma, mode="nearest")
        coarse = ndimage.zoom(smooth, down, order=1, grid_mode=True, mode="nearest")
        up = [n / m for n, m in zip(signal.shape, coarse.shape, strict=True)]
        return ndimage.zoom(coarse, up, order=1, grid_mode=True, mode="nearest"), None
