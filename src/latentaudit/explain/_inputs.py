"""The images and labels the Explainer's parts are given: images as
:class:`~latentaudit.data.RowImages` (also from an Embeddings), label checks, seeds."""

from __future__ import annotations

import numpy as np
import torch

from ..data._rows import RowImages
from ..errors import DataError, InputShapeError
from ..utils import check_random_state

__all__ = ["as_labels", "image_rows", "kept_mask", "seed_from"]


def image_rows(images, name: str = "images", spatial_dims: int | None = None) -> RowImages:
    """The images of an array, a tensor, a dataset or an :class:`~latentaudit.Embeddings`
    that carries them, as :class:`~latentaudit.data.RowImages` (read lazily)."""
    from ..embeddings import Embeddings

    if isinstance(images, Embeddings):
        if images.row_images is None:
            raise DataError(f"the Embeddings given as {name} carry no images; attach them with "
                            f"emb.attach_images(dataset)")
        images = images.row_images
    return RowImages(images, spatial_dims=spatial_dims, name=name)


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
