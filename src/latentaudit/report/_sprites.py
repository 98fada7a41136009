"""Thumbnails of every subject packed into a few JPEG sprite sheets, for the report's
interactive map: one image per sheet instead of one per subject keeps a report of 100,000
subjects to tens of megabytes and lets the browser decode a sheet only when it is needed."""

from __future__ import annotations

import base64
import io

import numpy as np

from ..errors import ConfigError, DataError

__all__ = ["auto_thumbnail_size", "sprite_sheets"]

#: Thumbnails per row of a sheet; a sheet is at most this many rows of them too.
SHEET_TILES = 64


def auto_thumbnail_size(n_images: int) -> int:
    """The side of the map's thumbnails in pixels for a report of ``n_images`` subjects:
    64 up to 10,000 subjects, 48 up to 30,000, then 32 (about 25 MB of sprite sheets for
    100,000 brain slices).

    Examples
    --------
    >>> auto_thumbnail_size(2000), auto_thumbnail_size(100_000)
    (64, 32)
    """
    if n_images <= 10_000:
        return 64
    if n_images <= 30_000:
        return 48
    return 32


def _tile(pixels: np.ndarray, size: int) -> np.ndarray:
    """An 8-bit grey image fitted into a black ``size`` x ``size`` square (aspect kept)."""
    from PIL import Image

    height, width = pixels.shape
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    picture = Image.fromarray(pixels, mode="L")
    if (new_w, new_h) != (width, height):
        method = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
        picture = picture.resize((new_w, new_h), method)
    tile = np.zeros((size, size), dtype=np.uint8)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    tile[top:top + new_h, left:left + new_w] = np.asarray(picture)
    return tile


def sprite_sheets(images, n_images: int, *, size: int | None = None, quality: int = 85,
                  tiles: int = SHEET_TILES) -> dict:
    """Pack one thumbnail per image into grey JPEG sprite sheets.

    Each image is shown as :func:`~latentaudit.report._figures.thumbnail_png` shows it
    (first channel, middle slice of a volume, the image's own intensity range), fitted into
    a square of ``size`` pixels.  Thumbnail ``k`` is on sheet ``k // tiles**2``, at column
    ``k % tiles`` and row ``(k // tiles) % tiles`` of it.

    Parameters
    ----------
    images : array-like or dataset
        One image per row (``images[k]`` is an array, a tensor or a dict with ``"image"``).
    n_images : int
        How many (rows ``0 .. n_images - 1`` are read).
    size : int, optional
        Side of a thumbnail in pixels; default :func:`auto_thumbnail_size`.
    quality : int, default 85
        JPEG quality.
    tiles : int, default 64
        Thumbnails per row and column of a sheet.

    Returns
    -------
    dict
        ``size``, ``tiles``, ``n`` and ``sheets`` (``data:image/jpeg;base64`` URIs).

    Raises
    ------
    ValueError
        (as :class:`~latentaudit.errors.ConfigError`) for a size outside [8, 256], or
        (as :class:`~latentaudit.errors.DataError`) when fewer images than ``n_images``
        can be read.

    Examples
    --------
    >>> import numpy as np
    >>> sheets = sprite_sheets(np.zeros((5, 1, 16, 16), dtype="float32"), 5, size=8)
    >>> sheets["n"], len(sheets["sheets"]), sheets["sheets"][0][:23]
    (5, 1, 'data:image/jpeg;base64,')
    """
    from PIL import Image

    from ._figures import grey_pixels
    from ._plots import _read_image

    size = auto_thumbnail_size(n_images) if size is None else int(size)
    if not 8 <= size <= 256:
        raise ConfigError(f"thumbnail size must be between 8 and 256 pixels, got {size}")
    if len(images) < n_images:
        raise DataError(f"got {len(images)} images for {n_images} map points; give one "
                        f"image per point")
    per_sheet = tiles * tiles
    sheets = []
    for first in range(0, n_images, per_sheet):
        count = min(per_sheet, n_images - first)
        rows = -(-count // tiles)
        canvas = np.zeros((rows * size, tiles * size), dtype=np.uint8)
        for k in range(count):
            pixels = grey_pixels(_read_image(images, first + k))
            row, column = divmod(k, tiles)
            canvas[row * size:(row + 1) * size, column * size:(column + 1) * size] = _tile(
                pixels, size)
        buffer = io.BytesIO()
        Image.fromarray(canvas, mode="L").save(buffer, format="JPEG", quality=int(quality),
                                               optimize=True)
        sheets.append("data:image/jpeg;base64,"
                      + base64.b64encode(buffer.getvalue()).decode("ascii"))
    return {"size": size, "tiles": tiles, "n": int(n_images), "sheets": sheets}
