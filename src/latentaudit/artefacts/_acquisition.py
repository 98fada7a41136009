"""MR acquisition: ghosting along the phase-encoding axis, wrap-around (aliasing)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import ConfigError
from ._base import Artefact, check_range, snap, spatial_axis

__all__ = ["Ghosting", "WrapAround"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Ghosting(Artefact):
    """Ghosts along the phase-encoding axis, from a periodic phase error between k-space
    lines (motion, flow, an unstable gradient, EPI's odd/even echoes).

    Every ``period``-th k-space line along ``axis`` gets the phase error ``phi``.  In the
    image this adds ``period - 1`` copies of the object shifted by multiples of
    ``N / period`` pixels along ``axis``, each with amplitude ``2 sin(phi / 2) / period``
    of the object, and dims the object; the result is shown as a magnitude image.
    Physical quantity: the ghost-to-object amplitude ratio, ``strength * max_ghost``
    (strength 1 = 30% by default; ``phi = 2 arcsin(ratio * period / 2)``).
    Deterministic.

    Parameters
    ----------
    strength : float, default 1.0
        In [0, 1].
    max_ghost : float, default 0.3
        Ghost amplitude at strength 1, relative to the object; at most ``2 / period``.
    period : int, default 2
        Period of the phase error in k-space lines (2: the classic N/2 ghost), 2 to 16.
    axis : int, default -2
        The phase-encoding axis (spatial, negative counts from the end).
    value_range : tuple of two floats or None, default (-1.0, 1.0)
        See :class:`Artefact`.

    Notes
    -----
    The mask marks the pixels whose value changed: the ghosts and the dimmed object.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.artefacts import Ghosting
    >>> image = np.zeros((1, 16, 16)); image[0, 2:6, 6:10] = 1.0
    >>> out, mask = Ghosting(strength=1.0, max_ghost=0.5, value_range=(0, 1))(image)
    >>> round(float(out[0, 3, 7]), 3), round(float(out[0, 11, 7]), 3)  # object, N/2 ghost
    (0.866, 0.5)
    """

    max_ghost: float = 0.3
    period: int = 2
    axis: int = -2

    name = "ghosting"
    family = "acquisition"

    def _check(self) -> None:
        if isinstance(self.period, bool) or self.period not in range(2, 17):
            raise ConfigError(f"period must be an integer from 2 to 16, got {self.period!r}")
        check_range("max_ghost", self.max_ghost, 0.0, 2.0 / self.period, low_open=True)

    def _apply(self, signal, rng, support):
        axis = spatial_axis(self.axis, signal.ndim - 1)
        ratio = self.strength * self.max_ghost
        phi = 2 * math.asin(min(1.0, ratio * self.period / 2))
        n = signal.shape[axis]
        lines = np.where(np.arange(n) % self.period == 0, np.exp(1j * phi), 1.0)
        view = [1] * signal.ndim
        view[axis] = n
        kspace = np.fft.fft(signal, axis=axis) * lines.reshape(view)
        return snap(np.abs(np.fft.ifft(kspace, axis=axis)), signal), None


@dataclasses.dataclass(frozen=True, kw_only=True)
class WrapAround(Artefact):
    """Wrap-around (aliasing): a field of view smaller than the object along the
    phase-encoding axis, so what lies outside folds back in from the opposite side.

    The field of view along ``axis`` shrinks to the central ``1 - fraction`` of the image
    at the same pixel size; each part of the image outside it lands ``L`` pixels (the new
    field of view) further in, where its signal adds to what is there (locally uniform
    phase).  The image keeps its size: outside the new field of view it is empty (no
    signal), as a scanner pads a rectangular field of view.  Physical quantity: the
    reduction of the field of view, ``fraction = strength * max_fraction`` of it
    (strength 1 = 25% by default), rounded to whole pixels.  Deterministic.

    Parameters
    ----------
    strength : float, default 1.0
        In [0, 1].
    max_fraction : float, default 0.25
        Reduction at strength 1, in (0, 0.9].
    axis : int, default -2
        The phase-encoding axis (spatial, negative counts from the end).
    value_range : tuple of two floats or None, default (-1.0, 1.0)
        See :class:`Artefact`.

    Notes
    -----
    The mask marks the pixels whose value changed: where signal folded in and where the
    field of view was cut away.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.artefacts import WrapAround
    >>> row = np.array([[[0.1, 0.2, 0.0, 0.0, 0.0, 0.0, 0.3, 0.4]]])
    >>> out, _ = WrapAround(strength=1.0, max_fraction=0.5, axis=-1, value_range=(0, 1))(row)
    >>> out.round(2).tolist()   # new field of view: the middle 4; each end wraps to the other
    [[[0.0, 0.0, 0.3, 0.4, 0.1, 0.2, 0.0, 0.0]]]
    """

    max_fraction: float = 0.25
    axis: int = -2

    name = "wrap_around"
    family = "acquisition"

    def _check(self) -> None:
        check_range("max_fraction", self.max_fraction, 0.0, 0.9, low_open=True)

    def _apply(self, signal, rng, support):
        axis = spatial_axis(self.axis, signal.ndim - 1)
        n = signal.shape[axis]
        kept = max(1, int(round((1 - self.strength * self.max_fraction) * n)))
        start = (n - kept) // 2
        moved = np.moveaxis(signal, axis, 0)
        folded = np.zeros_like(moved)
        for position in range(n):
            folded[start + (position - start) % kept] += moved[position]
        return np.moveaxis(folded, 0, axis), None
