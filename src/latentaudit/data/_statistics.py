"""Cheap statistics of every image: what a generative embedding may not keep.

A diffusion autoencoder's semantic code is trained to describe anatomy; a global gain, a
little extra noise, a ghost or a slight blur change the pixels but can leave the code
nearly unchanged.  :func:`image_statistics` measures such low-level properties directly,
with NumPy only, one row per image, 2-D and 3-D alike (``(N, C, *spatial)``, first
channel), so that :class:`~latentaudit.ClusterAuditor` can search them for a group no
column names (``image_statistics=True``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputShapeError

__all__ = ["STATISTICS", "image_statistics"]

#: Columns of :func:`image_statistics`, in order (``tilt_<axis>`` follow, one per
#: spatial axis).
STATISTICS = ("q05", "q25", "median", "q75", "q95", "mean", "std", "edge_energy",
              "noise_level")

_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _statistics(images: np.ndarray) -> np.ndarray:
    """The statistics of a batch ``(n, C, *spatial)``, one row per image."""
    x = np.asarray(images, dtype=np.float64)[:, 0]
    n, spatial = x.shape[0], x.shape[1:]
    flat = x.reshape(n, -1)
    quantiles = np.quantile(flat, _QUANTILES, axis=1).T
    axes = tuple(range(1, x.ndim))
    gradients = np.gradient(x, axis=axes) if len(axes) > 1 else [np.gradient(x, axis=1)]
    edge = np.sqrt(sum(g * g for g in gradients)).reshape(n, -1).mean(axis=1)
    # the discrete Laplacian of the interior; its median absolute value follows the noise
    # (edges are a small share of the pixels), as in Immerkaer's estimator
    inner = tuple(slice(1, -1) for _ in spatial)
    laplacian = -2.0 * len(spatial) * x[(slice(None), *inner)]
    for axis, size in enumerate(spatial):
        for step in (-1, 1):
            shifted = [slice(1, -1)] * len(spatial)
            shifted[axis] = slice(1 + step, size - 1 + step)
            laplacian = laplacian + x[(slice(None), *shifted)]
    noise = np.median(np.abs(laplacian).reshape(n, -1), axis=1)
    # first moments of the intensity along each axis: a smooth field or a shift tilts them
    tilts = []
    for axis, size in enumerate(spatial):
        shape = [1] * len(spatial)
        shape[axis] = size
        coordinate = np.linspace(-1.0, 1.0, size).reshape(shape)
        tilts.append((x * coordinate).reshape(n, -1).mean(axis=1))
    return np.column_stack([quantiles, flat.mean(axis=1), flat.std(axis=1), edge, noise,
                            *tilts])


def image_statistics(images, rows=None, *, batch_size: int = 256) -> pd.DataFrame:
    """Intensity histogram, edge energy, noise level and intensity tilt of every image.

    Parameters
    ----------
    images : array-like or RowImages
        ``(N, C, *spatial)`` images (2-D or 3-D; the first channel is measured), or a
        :class:`~latentaudit.data.RowImages` (read in batches, e.g.
        ``Embeddings.row_images``).
    rows : sequence of int, optional
        The rows to measure (default all), in the order wanted.
    batch_size : int, default 256
        Images read at a time.

    Returns
    -------
    pandas.DataFrame
        One row per image: ``q05``, ``q25``, ``median``, ``q75``, ``q95`` (the intensity
        histogram's quantiles), ``mean``, ``std``, ``edge_energy`` (mean gradient
        magnitude), ``noise_level`` (median absolute Laplacian), and ``tilt_0``,
        ``tilt_1``[, ``tilt_2``] (mean intensity times the position along each spatial
        axis, from -1 to 1).

    Raises
    ------
    ValueError
        (as :class:`~latentaudit.errors.InputShapeError`) for images that are not
        ``(N, C, H, W)`` or ``(N, C, D, H, W)``, or smaller than 3 pixels along an axis.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.data import image_statistics
    >>> rng = np.random.default_rng(0)
    >>> images = rng.normal(0.0, 0.1, size=(4, 1, 16, 16))
    >>> images[2:] += rng.normal(0.0, 0.3, size=(2, 1, 16, 16))  # two noisier images
    >>> stats = image_statistics(images)
    >>> list(stats.columns[-3:])
    ['noise_level', 'tilt_0', 'tilt_1']
    >>> bool(stats["noise_level"][2:].min() > 2 * stats["noise_level"][:2].max())
    True
    """
    batches = getattr(images, "batches", None)
    if batches is None:
        array = np.asarray(images)
        shape = array.shape
    else:
        shape = (len(images), *images.image_shape)
    if len(shape) not in (4, 5) or min(shape[2:]) < 3:
        raise InputShapeError(f"images must be (N, C, H, W) or (N, C, D, H, W) with at least "
                              f"3 pixels along each axis, got shape {tuple(shape)}")
    rows = np.arange(shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    if batches is None:
        parts = [_statistics(array[rows[start:start + batch_size]])
                 for start in range(0, len(rows), batch_size)]
    else:
        parts = [_statistics(chunk) for _, chunk in batches(rows, batch_size)]
    values = (np.vstack(parts) if parts else
              np.zeros((0, len(STATISTICS) + len(shape) - 2)))
    columns = [*STATISTICS, *(f"tilt_{axis}" for axis in range(len(shape) - 2))]
    return pd.DataFrame(values, columns=columns)
