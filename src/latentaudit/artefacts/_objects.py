"""Objects: things in the image that are not the patient (head-rest, bar, burned-in text)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ..errors import ConfigError
from ._base import Artefact, check_range, spatial_axis

__all__ = ["Bar", "BurnedInText", "HeadRest", "cushion"]


def _plane_axes(axes, n_spatial: int) -> tuple[int, int]:
    """Two spatial axes, in the given order, as indices into ``(C, *spatial)``."""
    try:
        first, second = axes
    except (TypeError, ValueError):
        raise ConfigError(f"axes must name two spatial axes, got {axes!r}") from None
    pair = (spatial_axis(first, n_spatial, "axes"), spatial_axis(second, n_spatial, "axes"))
    if pair[0] == pair[1]:
        raise ConfigError(f"axes must name two different spatial axes, got {axes!r}")
    return pair


def cushion(support: np.ndarray, *, centre, arc: tuple[float, float], gap: float,
            thickness: float, spacing: float, taper: float = 6.0,
            axes: tuple[int, int] = (0, 1)) -> tuple[np.ndarray, np.ndarray]:
    """The shape of a cushion moulded to an object: opacity and depth per pixel.

    The cushion is the shell between ``gap`` and ``gap + thickness`` from the object's
    surface (Euclidean distance, in the unit of ``spacing``), within the arc of directions
    ``arc`` seen from ``centre`` in the plane of ``axes``; its edges ramp over one pixel
    radially (half the thickness, if that is less) and over ``taper`` degrees around the
    arc.  This is the head-rest of
    :class:`HeadRest` and of the demo cohort's site C.

    Parameters
    ----------
    support : numpy.ndarray
        bool, the object (spatial axes only).
    centre : sequence of two floats
        Pixel coordinates (along ``axes``) of the centre the arc is measured from.
    arc : (float, float)
        From and to, in degrees; 0 points towards the far end of the second axis of
        ``axes``, positive angles towards index 0 of the first.
    gap, thickness : float
        Distance of the cushion from the surface and its thickness, in units of
        ``spacing``.
    spacing : float
        Size of a pixel.
    taper : float, default 6.0
        Width of the angular ramp at each end of the arc, in degrees.
    axes : tuple of two ints, default (0, 1)
        Axes of ``support`` spanning the plane of the arc; the cushion extends along the
        others.

    Returns
    -------
    alpha : numpy.ndarray
        float64 opacity in [0, 1], shaped like ``support``.
    depth : numpy.ndarray
        float64 in [0, 1]: 0 where the cushion touches the object, 1 at its outside.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.artefacts import cushion
    >>> head = np.zeros((32, 32), dtype=bool); head[8:24, 8:24] = True
    >>> alpha, depth = cushion(head, centre=(15.5, 15.5), arc=(-45, 45), gap=1, thickness=4,
    ...                        spacing=1.0)
    >>> bool(alpha[16, 26] == 1.0), bool(alpha[16, 5] == 0.0)   # right of the head, not left
    (True, True)
    """
    from scipy import ndimage

    distance = ndimage.distance_transform_edt(~np.asarray(support, dtype=bool)) * spacing
    step = min(spacing, thickness / 2)
    grid = np.indices(support.shape, dtype=np.float64)
    rows, cols = grid[axes[0]], grid[axes[1]]
    centre_row, centre_col = centre
    angle = np.degrees(np.arctan2(centre_row - rows, cols - centre_col))
    angular = np.clip((angle - arc[0]) / taper, 0, 1) * np.clip((arc[1] - angle) / taper, 0, 1)
    inner, outer = gap, gap + thickness
    radial = np.clip((distance - inner) / step, 0, 1) * np.clip((outer - distance) / step, 0, 1)
    alpha = angular * radial
    depth = np.clip((distance - inner) / thickness, 0, 1)
    return alpha, depth


def blend(signal: np.ndarray, opacity: np.ndarray, value) -> np.ndarray:
    """An object of brightness ``value`` laid over ``signal`` with ``opacity``."""
    return signal * (1 - opacity) + value * opacity


@dataclasses.dataclass(frozen=True, kw_only=True)
class HeadRest(Artefact):
    """A head-rest: a cushion moulded to the back of the head that shows in the image.

    Physical quantity: the cushion's visibility, i.e. the fraction of each pixel's signal
    it replaces with its own: ``strength`` (1 = an opaque cushion whose signal is
    ``intensity`` of full scale where it touches the head, 30% less at its outside, as at
    the demo cohort's site C; 0.2 = a faint one).  Its shape follows the object's surface
    (:func:`cushion`): a shell ``gap`` to ``gap + thickness`` away from it, over the
    ``arc`` of directions seen from the object's centre.  In 3-D it extends along the axis
    not in ``axes``, following the head's surface there too.

    Lengths are fractions of the field of view (the larger side of the plane of ``axes``)
    unless ``spacing`` gives the pixel size in another unit (e.g. mm).

    Parameters
    ----------
    strength : float, default 1.0
        In [0, 1].
    intensity : float, default 0.65
        Signal of the cushion at strength 1, as a fraction of full scale, in [0, 1].
    thickness : float, default 0.07
        Thickness of the cushion (0.07 of a 240 mm field of view: 17 mm).
    gap : float, default 0.005
        Distance between the scalp and the cushion.
    arc : (float, float), default (-45.0, 38.0)
        Directions covered, in degrees from the object's centre: 0 towards the far end of
        the second axis of ``axes`` (posterior in the demo's sagittal slices), positive
        towards index 0 of the first (superior).
    taper : float, default 6.0
        Angular ramp at each end of the arc, degrees.
    jitter : bool, default True
        Vary the cushion from image to image as cushions and positioning do: each end of
        the arc by N(0, 6) degrees, the thickness by x U(0.85, 1.15), the gap by
        x U(0.4, 1.6) and the intensity by x U(0.85, 1.1).
    spacing : float, optional
        Pixel size in the unit of ``thickness`` and ``gap``.
    centre : sequence of two floats, optional
        Pixel coordinates (along ``axes``) of the centre of the arc; default the centroid
        of the object's support.
    axes : tuple of two ints, default (-2, -1)
        The spatial axes of the plane in which the arc is measured.
    value_range : tuple of two floats or None, default (-1.0, 1.0)
        See :class:`Artefact`.

    Notes
    -----
    The mask marks the cushion: where its opacity (at strength 1) is above half its peak
    (above 0.5 for a cushion several pixels thick).

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.artefacts import HeadRest
    >>> image = -np.ones((1, 64, 64), dtype=np.float32); image[0, 16:48, 12:44] = 0.5
    >>> out, mask = HeadRest(strength=1.0, jitter=False)(image)
    >>> bool(mask[0, 32, 45]), bool(mask[0, 32, 8])   # behind the head (right), not before it
    (True, False)
    >>> print(out[0, 32, 42:50].round(2))   # head, the cushion (0.65 of full scale), air
    [ 0.5   0.5  -0.16  0.15  0.07 -0.22 -1.   -1.  ]
    """

    intensity: float = 0.65
    thickness: float = 0.07
    gap: float = 0.005
    arc: tuple[float, float] = (-45.0, 38.0)
    taper: float = 6.0
    jitter: bool = True
    spacing: float | None = None
    centre: tuple[float, float] | None = None
    axes: tuple[int, int] = (-2, -1)

    name = "head_rest"
    family = "objects"

    def _check(self) -> None:
        check_range("intensity", self.intensity, 0.0, 1.0)
        check_range("thickness", self.thickness, 0.0, np.inf, low_open=True)
        check_range("gap", self.gap, 0.0, np.inf)
        check_range("taper", self.taper, 0.0, 180.0, low_open=True)
        if self.spacing is not None:
            check_range("spacing", self.spacing, 0.0, np.inf, low_open=True)
        if len(tuple(self.arc)) != 2 or not self.arc[0] < self.arc[1]:
            raise ConfigError(f"arc must be (from, to) in degrees with from < to, got "
                              f"{self.arc!r}")

    def _apply(self, signal, rng, support):
        axes = _plane_axes(self.axes, signal.ndim - 1)
        plane = (axes[0] - 1, axes[1] - 1)
        arc_jitter = rng.normal(0.0, 6.0, 2)
        factors = rng.uniform([0.85, 0.4, 0.85], [1.15, 1.6, 1.1])
        arc, thickness, gap, intensity = self.arc, self.thickness, self.gap, self.intensity
        if self.jitter:
            arc = (arc[0] + arc_jitter[0], arc[1] + arc_jitter[1])
            thickness, gap = thickness * factors[0], gap * factors[1]
            intensity = min(1.0, intensity * factors[2])
        spacing = self.spacing
        if spacing is None:
            spacing = 1.0 / max(support.shape[plane[0]], support.shape[plane[1]])
        centre = self.centre
        if centre is None:
            centre = _centroid(support, plane)
        alpha, depth = cushion(support, centre=centre, arc=arc, gap=gap, thickness=thickness,
                               spacing=spacing, taper=self.taper, axes=plane)
        value = intensity * (1 - 0.3 * depth)
        return blend(signal, self.strength * alpha, self.strength * value), \
            alpha > 0.5 * alpha.max()


def _centroid(support: np.ndarray, plane: tuple[int, int]) -> tuple[float, float]:
    points = np.argwhere(support)
    if len(points) == 0:
        return ((support.shape[plane[0]] - 1) / 2, (support.shape[plane[1]] - 1) / 2)
    return (float(points[:, plane[0]].mean()), float(points[:, plane[1]].mean()))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Bar(Artefact):
    """A straight bar across the image: a strap, a coil housing, a table edge.

    Physical quantity: the bar's visibility, the fraction of each pixel's signal it
    replaces with its own (``intensity`` of full scale): ``strength``.  The bar is a band
    (a slab, in 3-D) perpendicular to ``axis``, ``thickness`` thick, centred at
    ``position`` along it, with one-pixel soft edges; it may cross the object.

    Parameters
    ----------
    strength : float, default 1.0
        In [0, 1].
    intensity : float, default 0.8
        Signal of the bar at strength 1, fraction of full scale, in [0, 1].
    thickness : float, default 0.05
        Fraction of the field of view along ``axis``.
    position : float, default 0.9
        Centre of the bar, as a fraction of the field of view along ``axis``.
    jitter : float, default 0.02
        Standard deviation of the bar's position from image to image (fraction of the
        field of view).
    axis : int, default -2
        The spatial axis the bar is perpendicular to (-2: a horizontal bar).
    value_range : tuple of two floats or None, default (-1.0, 1.0)
        See :class:`Artefact`.

    Notes
    -----
    The mask marks the bar: where its opacity (at strength 1) is above half its peak.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.artefacts import Bar
    >>> bar = Bar(strength=1.0, position=0.925, jitter=0.0)
    >>> out, mask = bar(-np.ones((1, 20, 20), dtype=np.float32))
    >>> np.flatnonzero(mask[0, :, 0]).tolist(), round(float(out[0, 18, 0]), 2)
    ([18], 0.6)
    """

    intensity: float = 0.8
    thickness: float = 0.05
    position: float = 0.9
    jitter: float = 0.02
    axis: int = -2

    name = "bar"
    family = "objects"

    def _check(self) -> None:
        check_range("intensity", self.intensity, 0.0, 1.0)
        check_range("thickness", self.thickness, 0.0, 1.0, low_open=True)
        check_range("position", self.position, 0.0, 1.0)
        check_range("jitter", self.jitter, 0.0, 1.0)

    def _apply(self, signal, rng, support):
        axis = spatial_axis(self.axis, signal.ndim - 1)
        size = signal.shape[axis]
        centre = (self.position + self.jitter * rng.standard_normal()) * size - 0.5
        half = self.thickness * size / 2
        offset = np.abs(np.arange(size, dtype=np.float64) - centre)
        profile = np.clip(half + 0.5 - offset, 0, 1)
        shape = [1] * signal.ndim
        shape[axis] = size
        alpha = profile.reshape(shape)
        out = blend(signal, self.strength * alpha, self.strength * self.intensity)
        return out, np.broadcast_to(alpha > 0.5 * alpha.max(), signal.shape)


@dataclasses.dataclass(frozen=True, kw_only=True)
class BurnedInText(Artefact):
    """Text burned into the pixels: a laterality marker, a site label, an annotation.

    Physical quantity: the text's contrast, the fraction of the way from each covered
    pixel's value to full white: ``strength`` (1 = white text).  The glyphs are Pillow's
    built-in bitmap font, scaled (nearest neighbour) to ``height``, placed at ``corner``
    in the plane of ``axes`` and, in 3-D, burned into every slice, as in a series exported
    with its annotations.  Deterministic (``random_state`` is not used).

    Parameters
    ----------
    strength : float, default 1.0
        In [0, 1].
    text : str, default "R"
        The text (printable ASCII).
    height : float, default 0.15
        Height of the text's ink (top of the tallest glyph to the bottom of the lowest),
        as a fraction of the field of view along ``axes[0]``.
    corner : (float, float), default (0.04, 0.04)
        Top-left corner of the text, as fractions of the field of view along ``axes``.
    axes : tuple of two ints, default (-2, -1)
        The spatial axes of the text's rows and columns.
    value_range : tuple of two floats or None, default (-1.0, 1.0)
        See :class:`Artefact`.

    Notes
    -----
    The mask marks the glyphs' pixels.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.artefacts import BurnedInText
    >>> out, mask = BurnedInText(text="R", height=0.25)(-np.ones((1, 32, 32), dtype=np.float32))
    >>> rows, cols = np.nonzero(mask[0])
    >>> (int(rows.min()), int(rows.max())), (int(cols.min()), int(cols.max()))  # 8 rows high
    ((1, 8), (1, 8))
    >>> float(out[0, 1, 1])   # white
    1.0
    """

    text: str = "R"
    height: float = 0.15
    corner: tuple[float, float] = (0.04, 0.04)
    axes: tuple[int, int] = (-2, -1)

    name = "burned_in_text"
    family = "objects"

    def _check(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip() \
                or not self.text.isprintable() or not self.text.isascii():
            raise ConfigError(f"text must be non-empty printable ASCII, got {self.text!r}")
        check_range("height", self.height, 0.0, 1.0, low_open=True)
        if len(tuple(self.corner)) != 2:
            raise ConfigError(f"corner must be (row, column) fractions, got {self.corner!r}")
        for value in self.corner:
            check_range("corner", value, 0.0, 1.0)

    def _apply(self, signal, rng, support):
        from scipy import ndimage

        axes = _plane_axes(self.axes, signal.ndim - 1)
        n_rows, n_cols = signal.shape[axes[0]], signal.shape[axes[1]]
        glyphs = _glyphs(self.text)
        pixels = max(1, int(round(self.height * n_rows)))
        zoom = pixels / glyphs.shape[0]
        scaled = ndimage.zoom(glyphs.astype(np.uint8), zoom, order=0, grid_mode=True,
                              mode="nearest") > 0
        plane = np.zeros((n_rows, n_cols), dtype=bool)
        top, left = int(round(self.corner[0] * n_rows)), int(round(self.corner[1] * n_cols))
        rows = min(scaled.shape[0], n_rows - top)
        cols = min(scaled.shape[1], n_cols - left)
        if rows > 0 and cols > 0:
            plane[top:top + rows, left:left + cols] = scaled[:rows, :cols]
        # put the plane's two axes where they belong among the image's axes
        shape = [1] * signal.ndim
        shape[axes[0]], shape[axes[1]] = n_rows, n_cols
        order = np.argsort([axes[0], axes[1]])
        glyph = np.transpose(plane, order).reshape(shape)
        glyph = np.broadcast_to(glyph, signal.shape)
        return signal + self.strength * (1 - signal) * glyph, glyph


@functools.lru_cache(maxsize=64)
def _glyphs(text: str) -> np.ndarray:
    """The text drawn with Pillow's built-in bitmap font, cropped to its ink."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default_imagefont() if hasattr(ImageFont, "load_default_imagefont") \
        else ImageFont.load_default()
    width = max(1, int(font.getlength(text)))
    canvas = Image.new("L", (width + 2, font.getbbox(text)[3] + 2))
    ImageDraw.Draw(canvas).text((1, 1), text, fill=255, font=font)
    drawn = np.asarray(canvas) > 127
    rows, cols = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))
    drawn = drawn[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    drawn.flags.writeable = False
    return drawn
