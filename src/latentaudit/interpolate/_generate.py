"""Decoding synthetic rows into images, and rejecting the ones that leave the manifold.

torch is imported here only, so the resampling itself works on NumPy alone.
"""

from __future__ import annotations

import logging
import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..data._rows import RowImages
from ..encoders import GenerativeEncoder, concat_codes, interpolate_codes, select_codes
from ..errors import ConfigError, DataError, InputShapeError, InputTypeError
from ..utils import check_option, check_random_state, resolve_device

__all__ = ["GenerationResult"]

logger = logging.getLogger(__name__)

_REJECT = (None, "distance", "radius", "both")


@dataclass
class GenerationResult:
    """What :meth:`Interpolator.generate` returns.

    Parameters
    ----------
    images : numpy.ndarray
        ``(n_synthetic, C, *spatial)`` float32, one decoded image per synthetic row, in
        the order of :attr:`Interpolator.provenance_` (rejected ones included).
    kept : numpy.ndarray
        ``(n_synthetic,)`` bool, False for the images rejected as off-manifold (all True
        without rejection).
    distances : numpy.ndarray
        ``(n_synthetic,)`` distance from the re-encoded image's embedding to the
        intended synthetic point (NaN without rejection).
    knn_distances : numpy.ndarray
        ``(n_synthetic,)`` distance from the re-encoded embedding to its k-th nearest
        real member of the group (NaN unless ``reject`` is ``"radius"`` or ``"both"``).
    provenance : pandas.DataFrame
        :attr:`Interpolator.provenance_` with the columns ``distance``,
        ``knn_distance``, ``radius`` (the group's kNN radius; NaN without rejection) and
        ``kept`` added.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.interpolate import GenerationResult
    >>> out = GenerationResult(np.zeros((2, 1, 4, 4), "float32"), np.array([True, False]),
    ...                        np.array([0.1, 9.0]), np.full(2, np.nan), None)
    >>> out.n_rejected, out.images_kept.shape
    (1, (1, 1, 4, 4))
    """

    images: np.ndarray
    kept: np.ndarray
    distances: np.ndarray
    knn_distances: np.ndarray
    provenance: pd.DataFrame | None

    @property
    def n_rejected(self) -> int:
        """Number of images rejected as off-manifold."""
        return int((~self.kept).sum())

    @property
    def images_kept(self) -> np.ndarray:
        """The images that passed the rejection test."""
        return self.images[self.kept]


def _as_numpy(tensor) -> np.ndarray:
    if isinstance(tensor, torch.Tensor):
        return tensor.detach().float().cpu().numpy()
    return np.asarray(tensor, dtype=np.float32)


def generate(interpolator, encoder, X_parent_images, *, n_real, to_geometry, group_radius,
             reject, max_distance, radius_factor, steps, clip, batch_size, device, generator,
             verbose):
    """See :meth:`Interpolator.generate`.

    ``n_real`` (rows given to ``fit_resample``), ``to_geometry`` (coordinates of the
    distances) and ``group_radius`` (a group's neighbours, kNN radius and ``k``) are the
    Interpolator's, handed over by the method.
    """
    check_option("reject", reject, _REJECT)
    if not isinstance(encoder, GenerativeEncoder):
        raise InputTypeError(
            "generate needs a generative encoder (latent_dim, spatial_dims, encode, invert "
            "and decode: the GenerativeEncoder protocol, e.g. BetaVAEEncoder or "
            f"DAEEncoder); {type(encoder).__name__} does not meet it")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size < 1:
        raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if max_distance is not None and not (isinstance(max_distance, numbers.Real)
                                         and max_distance > 0):
        raise ConfigError(f"max_distance must be a positive number or None, got "
                          f"{max_distance!r}")
    if not (isinstance(radius_factor, numbers.Real) and radius_factor > 0):
        raise ConfigError(f"radius_factor must be a positive number, got {radius_factor!r}")
    if clip is not None:
        if len(clip) != 2 or not clip[0] < clip[1]:
            raise ConfigError(f"clip must be None or (low, high) with low < high, got {clip!r}")

    provenance = interpolator.provenance_
    z_synthetic = interpolator.z_synthetic_
    parent_a = provenance["parent_a"].to_numpy()
    parent_b = provenance["parent_b"].to_numpy()
    weight = provenance["weight"].to_numpy()
    n = len(provenance)

    torch_device = resolve_device(device, encoder)
    is_module = isinstance(encoder, torch.nn.Module)
    if is_module and device is not None:
        encoder.to(torch_device)
    was_training = encoder.training if is_module else False

    if X_parent_images is not None:
        X_parent_images = RowImages(X_parent_images, name="X_parent_images")
    if X_parent_images is not None and len(X_parent_images) != n_real:
        raise DataError(
            f"X_parent_images has {len(X_parent_images)} images but fit_resample was given "
            f"{n_real} rows; pass one image per row, in the same order")
    options = {} if steps is None else {"steps": steps}
    if generator is None:
        seed = int(check_random_state(interpolator.random_state).randint(2**31 - 1))
        generator = torch.Generator(device=torch_device).manual_seed(seed)

    images, embeddings = [], []
    try:
        if is_module:
            encoder.eval()
        with torch.no_grad():
            codes = None
            if X_parent_images is not None and n:
                parents = np.unique(np.concatenate([parent_a, parent_b]))
                codes = _invert_parents(encoder, X_parent_images, parents, options,
                                        batch_size, torch_device, verbose)
                slot_a = np.searchsorted(parents, parent_a)
                slot_b = np.searchsorted(parents, parent_b)
            for start in tqdm(range(0, n, batch_size), disable=not verbose,
                              desc="decoding synthetic rows", unit="batch"):
                rows = slice(start, start + batch_size)
                z = torch.as_tensor(z_synthetic[rows], dtype=torch.float32,
                                    device=torch_device)
                mixed = None if codes is None else interpolate_codes(
                    select_codes(codes, slot_a[rows]), select_codes(codes, slot_b[rows]),
                    weight[rows])
                decoded = encoder.decode(z, mixed, generator=generator, **options)
                if not isinstance(decoded, torch.Tensor):
                    decoded = torch.as_tensor(np.asarray(decoded))
                if decoded.ndim < 3 or decoded.shape[0] != z.shape[0]:
                    raise InputShapeError(
                        f"{type(encoder).__name__}.decode returned shape "
                        f"{tuple(decoded.shape)} for {z.shape[0]} embeddings; expected "
                        "(N, C, *spatial)")
                if clip is not None:
                    decoded = decoded.clamp(float(clip[0]), float(clip[1]))
                if reject is not None:
                    embeddings.append(_as_numpy(encoder.encode(decoded)).astype(np.float64))
                images.append(_as_numpy(decoded))
    finally:
        if is_module:
            encoder.train(was_training)

    if images:
        images = np.concatenate(images)
    else:
        images = np.zeros((0,), dtype=np.float32)
    kept = np.ones(n, dtype=bool)
    distances = np.full(n, np.nan)
    knn_distances = np.full(n, np.nan)
    radii = np.full(n, np.nan)
    if reject is not None and n:
        reencoded = np.concatenate(embeddings)
        if reencoded.shape != z_synthetic.shape:
            raise InputShapeError(
                f"{type(encoder).__name__}.encode returned embeddings of shape "
                f"{reencoded.shape[1:]}, but the Interpolator was fitted on "
                f"{z_synthetic.shape[1:]}; use the encoder whose embeddings were resampled")
        space_e = to_geometry(reencoded)
        space_z = to_geometry(z_synthetic)
        distances = np.linalg.norm(space_e - space_z, axis=1)
        groups = provenance["group"].tolist()  # labels, or tuples of several columns
        for group in dict.fromkeys(groups):
            rows = np.flatnonzero([g == group for g in groups])
            nn, radius, k = group_radius(group)
            radii[rows] = radius
            if reject in ("distance", "both"):
                limit = radius if max_distance is None else float(max_distance)
                kept[rows] &= distances[rows] <= limit
            if reject in ("radius", "both"):
                found, _ = nn.kneighbors(space_e[rows])
                knn_distances[rows] = np.sort(found, axis=1)[:, k - 1]
                kept[rows] &= knn_distances[rows] <= radius_factor * radius
        logger.info("generate: %d of %d synthetic images rejected as off-manifold",
                    int((~kept).sum()), n)
    table = provenance.copy()
    table["distance"] = distances
    table["knn_distance"] = knn_distances
    table["radius"] = radii
    table["kept"] = kept
    return GenerationResult(images=images, kept=kept, distances=distances,
                            knn_distances=knn_distances, provenance=table)


def _invert_parents(encoder, source, parents, options, batch_size, device, verbose):
    """The codes of the parent rows (``encoder.invert``), in the order of ``parents``."""
    chunks = []
    for start in tqdm(range(0, len(parents), batch_size), disable=not verbose,
                      desc="inverting the parents", unit="batch"):
        rows = parents[start:start + batch_size]
        chunks.append(encoder.invert(torch.from_numpy(source.get(rows)).to(device), **options))
    return concat_codes(chunks)
