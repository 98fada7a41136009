"""Tests of the sprite sheets of the report's map (latentaudit.report._sprites)."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from latentaudit.errors import ConfigError, DataError
from latentaudit.report._sprites import auto_thumbnail_size, sprite_sheets


def _decode(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/webp;base64,")
    data = base64.b64decode(uri.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float64)


def _tile(sheet: np.ndarray, k: int, size: int, tiles: int) -> np.ndarray:
    row, column = divmod(k, tiles)
    return sheet[row * size:(row + 1) * size, column * size:(column + 1) * size]


def test_every_image_lands_in_its_tile():
    # image k: black with a bright square whose position encodes k
    n, side, size, tiles = 23, 16, 8, 4
    images = np.full((n, 1, side, side), -1.0, dtype=np.float32)
    for k in range(n):
        r, c = divmod(k % 16, 4)
        images[k, 0, 4 * r:4 * r + 4, 4 * c:4 * c + 4] = 1.0
    result = sprite_sheets(images, n, size=size, tiles=tiles, quality=95)
    assert result["n"] == n and result["size"] == size and result["tiles"] == tiles
    assert len(result["sheets"]) == 2  # 16 thumbnails per sheet
    sheets = [_decode(uri) for uri in result["sheets"]]
    assert sheets[0].shape == (4 * size, 4 * size)
    assert sheets[1].shape == (2 * size, 4 * size)  # 7 thumbnails: two rows
    for k in range(n):
        tile = _tile(sheets[k // 16], k % 16, size, tiles)
        r, c = divmod(k % 16, 4)
        bright = np.unravel_index(np.argmax(tile), tile.shape)
        assert (bright[0] // 2, bright[1] // 2) == (r, c), k
        assert tile.max() > 200 and np.median(tile) < 40


def test_volumes_non_square_images_and_upscaling():
    volume = np.zeros((2, 1, 5, 12, 6), dtype=np.float32)
    volume[:, :, :, :, 3:] = 1.0  # every slice bright on the right ...
    volume[:, :, 2] = volume[:, :, 2, :, ::-1]  # ... but the middle one, bright on the left
    sheet = _decode(sprite_sheets(volume, 2, size=12, tiles=2, quality=95)["sheets"][0])
    tile = _tile(sheet, 0, 12, 2)
    # a 12 x 6 slice fitted into columns 3..8 of a 12 x 12 square, black at the sides
    assert tile[:, 3:6].mean() > 200 and tile[:, 6:9].mean() < 40
    assert tile[:, :3].mean() < 30 and tile[:, 9:].mean() < 30
    small = np.linspace(-1, 1, 16, dtype=np.float32).reshape(1, 1, 4, 4)
    sheet = _decode(sprite_sheets(small, 1, size=16, tiles=1, quality=95)["sheets"][0])
    assert sheet.shape == (16, 16)
    assert sheet[0, 0] < 30 and sheet[-1, -1] > 220  # pixels repeated, dark to bright


def test_sizes_and_errors():
    assert [auto_thumbnail_size(n) for n in (10, 10_000, 10_001, 30_000, 30_001)] == [
        64, 64, 48, 48, 32]
    images = np.zeros((3, 1, 8, 8), dtype=np.float32)
    with pytest.raises(ConfigError, match="between 8 and 256"):
        sprite_sheets(images, 3, size=4)
    with pytest.raises(DataError, match="got 3 images for 5 map points"):
        sprite_sheets(images, 5)
