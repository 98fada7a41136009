"""Random access to images given as an array, a tensor or a dataset, and label checks,
shared by the Explainer's parts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data._base import as_image_array
from ..errors import DataError, InputShapeError, InputTypeError
from ..utils import check_random_state

__all__ = ["ImageSource", "as_labels", "kept_mask", "seed_from"]


def _item_image(item) -> np.ndarray:
    if isinstance(item, Mapping):
        if "image" not in item:
            raise InputTypeError(f"dataset items given as dicts must hold the image under "
                                 f"'image'; got keys {sorted(map(str, item))}")
        item = item["image"]
    elif isinstance(item, (tuple, list)) and item and not np.isscalar(item[0]):
        item = item[0]
    if isinstance(item, torch.Tensor):
        item = item.detach().cpu().numpy()
    return np.asarray(item, dtype=np.float32)


class ImageSource:
    """Images of an array ``(N, C, *spatial)``, a tensor or a map-style dataset, read by
    position (datasets lazily, so a large one is never loaded whole)."""

    def __init__(self, images, name: str = "images", spatial_dims: int | None = None) -> None:
        self.name = name
        self.array: np.ndarray | None = None
        self.dataset = None
        if isinstance(images, ImageSource):
            self.array, self.dataset = images.array, images.dataset
            self.image_shape = images.image_shape
        elif isinstance(images, (np.ndarray, torch.Tensor)):
            self.array = as_image_array(images, spatial_dims, name)
            self.image_shape = tuple(self.array.shape[1:])
        elif isinstance(images, Dataset) or (hasattr(images, "__getitem__")
                                             and hasattr(images, "__len__")
                                             and not isinstance(images, (str, bytes))):
            if isinstance(images, (list, tuple)):
                self.array = as_image_array(np.asarray(images), spatial_dims, name)
                self.image_shape = tuple(self.array.shape[1:])
            else:
                self.dataset = images
                if len(images) == 0:
                    raise DataError(f"{name} is an empty dataset")
                first = _item_image(images[0])
                if first.ndim not in (3, 4):
                    raise InputShapeError(
                        f"{name}: dataset items must be images (C, H, W) or (C, D, H, W), "
                        f"got shape {first.shape}")
                self.image_shape = tuple(first.shape)
        else:
            raise InputTypeError(
                f"{name} must be an array or tensor (N, C, H, W) / (N, C, D, H, W) or a "
                f"dataset of such images, got {type(images).__name__}")
        self.spatial_dims = len(self.image_shape) - 1
        if spatial_dims is not None and self.spatial_dims != spatial_dims:
            expected = "(C, H, W)" if spatial_dims == 2 else "(C, D, H, W)"
            raise InputShapeError(
                f"{name}: expected images {expected} for spatial_dims={spatial_dims}, got "
                f"items of shape {self.image_shape}")

    def __len__(self) -> int:
        return len(self.array) if self.array is not None else len(self.dataset)

    def get(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """The images at ``positions`` as one float32 array."""
        positions = np.asarray(positions, dtype=np.int64)
        if self.array is not None:
            return np.ascontiguousarray(self.array[positions], dtype=np.float32)
        out = np.empty((len(positions), *self.image_shape), dtype=np.float32)
        for k, i in enumerate(positions):
            image = _item_image(self.dataset[int(i)])
            if image.shape != self.image_shape:
                raise InputShapeError(f"{self.name}: item {int(i)} has shape {image.shape}, "
                                      f"item 0 {self.image_shape}; all must match")
            out[k] = image
        return out

    def batches(self, positions, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(positions, images)`` in chunks of ``batch_size``."""
        positions = np.asarray(positions, dtype=np.int64)
        for start in range(0, len(positions), batch_size):
            chunk = positions[start:start + batch_size]
            yield chunk, self.get(chunk)


def as_labels(labels, n: int, name: str = "labels") -> np.ndarray:
    """One label per item, as a 1-D NumPy array."""
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(getattr(labels, "values", labels))
    if labels.ndim != 1:
        raise InputShapeError(f"{name} must be one-dimensional (one label per image), got "
                              f"shape {labels.shape}")
    if len(labels) != n:
        raise DataError(f"got {len(labels)} {name} for {n} images; give one per image")
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise DataError(f"{name} contain NaN or infinite values")
    return labels


def kept_mask(labels: np.ndarray) -> np.ndarray:
    """False where a label is -1, the noise label of density-based clusterings."""
    if labels.dtype.kind in "iuf":
        return labels != -1
    if labels.dtype.kind == "O":
        return np.array([not (isinstance(v, (int, float, np.integer, np.floating))
                              and not isinstance(v, bool) and v == -1) for v in labels],
                        dtype=bool)
    return np.ones(len(labels), dtype=bool)


def seed_from(random_state) -> int:
    """One integer seed drawn from ``random_state`` (an int, a RandomState or None)."""
    return int(check_random_state(random_state).randint(0, 2**31 - 1))
