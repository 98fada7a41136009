"""Geometry: the object sits elsewhere in the field of view (shifted, tilted)."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import ConfigError
from ._base import Artefact, check_range, spatial_axes, spatial_axis

__all__ = ["FieldOfViewShift", "Tilt"]


def moved_region(before, after) -> np.ndarray:
    """Where an object moved in or out: pixels whose occupancy changed by at least 1%.

    The mask of the geometric artefacts.

    Parameters
    ----------
    before : array-like of bool
        The object's support before the move.
    after : array-like of float or bool
        The same support after the move (moved by linear interpolation, partly covered
        pixels hold fractions).

    Returns
    -------
    numpy.ndarray
        bool, shaped like ``before``; for a move by whole pixels exactly
        ``before XOR after``.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.artefacts import moved_region
    >>> before = np.array([1, 1, 0, 0], dtype=bool)
    >>> moved_region(before, np.array([0.0, 1.0, 1.0, 0.0])).tolist()
    [True, False, True, False]
    """
    return np.abs(np.asarray(after, dtype=np.float64) - before) >= 0.01


@dataclasses.dataclass(frozen=True, kw_only=True)
class FieldOfViewShift(Artefact):
    """A field of view placed off centre: the anatomy moves, part of it leaves the image.

    Physical quantity: the shift of the field of view along ``axis``, as a fraction of the
    field of view: ``strength * max_shift`` (strength 1 = 25% by default).  The demo
    cohort's site B is this artefact at 50 of 256 pixels (19.5%, Graf et al. 2024 found a
    50-voxel shift in NAKO), ``FieldOfViewShift(strength=0.78125)``.

    The content moves opposite to the field of view, by linear interpolation (exact for
    whole-pixel shifts); what comes into view from beyond the old field of view is
    background (no signal), as it is above a head.  (A renderer that knows what lies
    beyond, like the demo cohort's, moves the field of view itself by
    :meth:`shift_pixels` instead.)  Deterministic (``random_state`` is not used).

    Parameters
    ----------
    strength : float, default 1.0
        In [0, 1].
    max_shift : float, default 0.25
        Shift at strength 1, as a fraction of the field of view, in (0, 1).
    axis : int, default -2
        The spatial axis along which the field of view moves (-2: image rows).
    direction : {-1, 1}, default -1
        Where the field of view moves: -1 towards index 0 (up, in a displayed image, so the
        anatomy moves down), 1 towards the far end.
    value_range : tuple of two floats or None, default (-1.0, 1.0)
        See :class:`Artefact`.

    Notes
    -----
    The mask marks the region the object moved into or out of: the pixels whose occupancy
    by the object's support (see ``support`` in :meth:`Artefact.__call__`) changed by at
    least 1% when it moved with the image; for a whole-pixel shift, the support before
    XOR after.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.artefacts import FieldOfViewShift
    >>> image = -np.ones((1, 8, 8), dtype=np.float32); image[0, 2:6, 2:6] = 1.0
    >>> out, mask = FieldOfViewShift(strength=1.0, max_shift=0.25)(image)
    >>> print((out[0] > 0).astype(int))
    [[0 0 0 0 0 0 0 0]
     [0 0 0 0 0 0 0 0]
     [0 0 0 0 0 0 0 0]
     [0 0 0 0 0 0 0 0]
     [0 0 1 1 1 1 0 0]
     [0 0 1 1 1 1 0 0]
     [0 0 1 1 1 1 0 0]
     [0 0 1 1 1 1 0 0]]
    >>> int(mask.sum())   # two rows moved in at the bottom, two left at the top
    16
    """

    max_shift: float = 0.25
    axis: int = -2
    direction: int = -1

    name = "fov_shift"
    family = "geometry"

    def _check(self) -> None:
        check_range("max_shift", self.max_shift, 0.0, 1.0, low_open=True)
        if self.direction not in (-1, 1):
            raise ConfigError(f"direction must be -1 or 1, got {self.direction!r}")

    def shift_pixels(self, size: int) -> float:
        """The content's displacement in pixels for a field of view of ``size`` pixels.

        Parameters
        ----------
        size : int
            Number of pixels along ``axis``.

        Returns
        -------
        float
            Signed shift of the content (opposite to the field of view).

        Examples
        --------
        >>> from latentaudit.artefacts import FieldOfViewShift
        >>> FieldOfViewShift(strength=0.78125).shift_pixels(256)
        50.0
        """
        return -self.direction * self.strength * self.max_shift * size

    def _apply(self, signal, rng, support):
        from scipy import ndimage

        axis = spatial_axis(self.axis, signal.ndim - 1)
        offset = [0.0] * signal.ndim
        offset[axis] = self.shift_pixels(signal.shape[axis])
        moved = ndimage.shift(signal, offset, order=1, mode="constant", cval=0.0,
                              prefilter=False)
        after = ndimage.shift(support.astype(np.float64), offset[1:], order=1,
                              mode="constant", cval=0.0, prefilter=False)
        return moved, moved_region(support, after)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Tilt(Artefact):
    """The object tilted in the field of view (a head pitched in the coil).

    Physical quantity: the rotation angle, ``strength * max_angle`` degrees (strength 1 =
    15 degrees by default), about the centre of the image in the plane of ``axes``;
    linear interpolation, background (no signal) where the rotation brings in what lay
    outside the image.  In 3-D every plane parallel to ``axes`` turns alike.
    Deterministic (``random_state`` is not used).

    Parameters
    ----------
    strength : float, default 1.0
        In [0, 1].
    max_angle : float, default 15.0
        Angle at strength 1, in degrees, in (0, 180]; the sense follows ``direction``.
    direction : {-1, 1}, default 1
        1 turns counter-clockwise as displayed (from the far end of the second axis of
        ``axes`` towards index 0 of the first), -1 clockwise.
    axes : tuple of two ints, default (-2, -1)
        The spatial axes of the plane of rotation.
    value_range : tuple of two floats or None, default (-1.0, 1.0)
        See :class:`Artefact`.

    Notes
    -----
    The mask marks the region the object moved into or out of: the pixels whose occupancy
    by the object's support changed by at least 1% when it turned with the image.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.artefacts import Tilt
    >>> image = -np.ones((1, 16, 16), dtype=np.float32); image[0, 6:10, 2:14] = 1.0
    >>> out, mask = Tilt(strength=1.0, max_angle=90.0)(image)
    >>> print(int((out[0] > 0)[:, 8].sum()), int((out[0] > 0)[8, :].sum()))
    12 4
    """

    max_angle: float = 15.0
    direction: int = 1
    axes: tuple[int, int] = (-2, -1)

    name = "tilt"
    family = "geometry"

    def _check(self) -> None:
        check_range("max_angle", self.max_angle, 0.0, 180.0, low_open=True)
        if self.direction not in (-1, 1):
            raise ConfigError(f"direction must be -1 or 1, got {self.direction!r}")
        if len(tuple(self.axes)) != 2:
            raise ConfigError(f"axes must name two spatial axes, got {self.axes!r}")

    def _apply(self, signal, rng, support):
        from scipy import ndimage

        n_spatial = signal.ndim - 1
        axes = spatial_axes(self.axes, n_spatial)
        if len(axes) != 2:
            raise ConfigError(f"axes must name two different spatial axes, got {self.axes!r}")
        angle = self.direction * self.strength * self.max_angle
        turned = ndimage.rotate(signal, angle, axes=axes, reshape=False, order=1,
                                mode="constant", cval=0.0, prefilter=False)
        after = ndimage.rotate(support.astype(np.float64), angle,
                               axes=tuple(a - 1 for a in axes), reshape=False, order=1,
                               mode="constant", cval=0.0, prefilter=False)
        return turned, moved_region(support, after)
