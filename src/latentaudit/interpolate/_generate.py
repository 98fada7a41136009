"""Decoding synthetic rows into images, and rejecting the ones that leave the manifold.

torch is imported here only, so the resampling itself works on NumPy alone.
"""

from __future__ import annotations

import inspect
import logging
import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..data._rows import RowImages
from ..errors import ConfigError, DataError, InputShapeError, InputTypeError
from ..utils import check_option, check_random_state

__all__ = ["GenerationResult", "slerp"]

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


def slerp(a, b, weight, *, eps: float = 1e-7):
    """Spherical linear interpolation between pairs of tensors.

    ``slerp(a, b, w) = sin((1 - w) θ) / sin θ · a + sin(w θ) / sin θ · b``, with θ the
    angle between the flattened ``a[i]`` and ``b[i]``.  It keeps Gaussian noise (such as
    a Diffusion Autoencoder's stochastic code ``x_T``) at the norm noise has, where a
    straight line would shrink it.  Nearly parallel pairs fall back to linear
    interpolation.

    Parameters
    ----------
    a, b : torch.Tensor or numpy.ndarray
        ``(N, ...)``, the same shape.
    weight : float or array-like of shape (N,)
        0 gives ``a``, 1 gives ``b``.
    eps : float, default 1e-7
        Below this ``sin θ`` the pair counts as parallel.

    Returns
    -------
    torch.Tensor or numpy.ndarray
        ``(N, ...)``, of the type and dtype of ``a``.

    Raises
    ------
    ValueError
        (as :class:`~latentaudit.errors.InputShapeError`) when the shapes differ.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.interpolate import slerp
    >>> a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    >>> slerp(a, b, 0.5)
    tensor([[0.7071, 0.7071]])
    """
    as_numpy = isinstance(a, np.ndarray)
    a_t = torch.as_tensor(a)
    b_t = torch.as_tensor(b, dtype=a_t.dtype, device=a_t.device)
    if a_t.shape != b_t.shape or a_t.ndim == 0:
        raise InputShapeError(
            f"slerp needs a and b of the same shape (N, ...), got {tuple(a_t.shape)} and "
            f"{tuple(b_t.shape)}")
    n = a_t.shape[0]
    flat_a = a_t.reshape(n, -1).double()
    flat_b = b_t.reshape(n, -1).double()
    if isinstance(weight, torch.Tensor):
        w = weight.to(device=a_t.device, dtype=torch.float64).reshape(-1)
    else:
        w = torch.tensor(np.array(weight, dtype=np.float64), device=a_t.device).reshape(-1)
    w = w.expand(n) if w.numel() == 1 else w
    if w.shape != (n,):
        raise InputShapeError(f"weight must be a scalar or have {n} values, got {w.numel()}")
    norms = flat_a.norm(dim=1) * flat_b.norm(dim=1)
    cos = (flat_a * flat_b).sum(dim=1) / norms.clamp_min(torch.finfo(torch.float64).tiny)
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    sin_theta = torch.sin(theta)
    curved = sin_theta > eps
    safe = torch.where(curved, sin_theta, torch.ones_like(sin_theta))
    coef_a = torch.where(curved, torch.sin((1 - w) * theta) / safe, 1 - w)
    coef_b = torch.where(curved, torch.sin(w * theta) / safe, w)
    shape = (n,) + (1,) * (a_t.ndim - 1)
    out = (coef_a.reshape(shape) * a_t.double() + coef_b.reshape(shape) * b_t.double())
    out = out.to(a_t.dtype)
    return out.numpy() if as_numpy else out


def _accepts(function, name: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False
    return name in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _device_of(encoder, device) -> torch.device:
    if device is not None:
        return torch.device(device)
    if isinstance(encoder, torch.nn.Module):
        for tensor in (*encoder.parameters(), *encoder.buffers()):
            return tensor.device
    return torch.device("cpu")


def _as_numpy(tensor) -> np.ndarray:
    if isinstance(tensor, torch.Tensor):
        return tensor.detach().float().cpu().numpy()
    return np.asarray(tensor, dtype=np.float32)


def generate(interpolator, encoder, X_parent_images, *, reject, max_distance, radius_factor,
             steps, clip, batch_size, device, generator, verbose):
    """See :meth:`Interpolator.generate`."""
    check_option("reject", reject, _REJECT)
    if not callable(getattr(encoder, "decode", None)):
        raise InputTypeError(
            "generate needs a generative encoder with decode(z) (e.g. BetaVAEEncoder or "
            f"DAEEncoder), got {type(encoder).__name__}")
    if reject is not None and not callable(getattr(encoder, "encode", None)):
        raise InputTypeError(
            f"reject={reject!r} re-encodes the decoded images, so the encoder needs "
            f"encode(x); {type(encoder).__name__} has none")
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
    n_real = len(interpolator._fit_X)

    torch_device = _device_of(encoder, device)
    is_module = isinstance(encoder, torch.nn.Module)
    if is_module and device is not None:
        encoder.to(torch_device)
    was_training = encoder.training if is_module else False

    stochastic = X_parent_images is not None and callable(
        getattr(encoder, "encode_stochastic", None))
    if stochastic and not _accepts(encoder.decode, "x_T"):
        logger.warning("%s has encode_stochastic but its decode takes no x_T; decoding "
                       "from the embeddings alone", type(encoder).__name__)
        stochastic = False
    if X_parent_images is not None and not stochastic:
        logger.info("parent images are only used by encoders with encode_stochastic; "
                    "%s decodes from the embeddings alone", type(encoder).__name__)
    if X_parent_images is not None:
        X_parent_images = RowImages(X_parent_images, name="X_parent_images")
    if stochastic and len(X_parent_images) != n_real:
        raise DataError(
            f"X_parent_images has {len(X_parent_images)} images but fit_resample was given "
            f"{n_real} rows; pass one image per row, in the same order")

    decode_kwargs = {}
    if steps is not None and _accepts(encoder.decode, "steps"):
        decode_kwargs["steps"] = steps
    if generator is None and not stochastic and _accepts(encoder.decode, "generator"):
        seed = int(check_random_state(interpolator.random_state).randint(2**31 - 1))
        generator = torch.Generator(device=torch_device).manual_seed(seed)

    images, embeddings = [], []
    try:
        if is_module:
            encoder.eval()
        with torch.no_grad():
            noise = None
            if stochastic and n:
                parents = np.unique(np.concatenate([parent_a, parent_b]))
                noise = _invert_parents(encoder, X_parent_images, interpolator._fit_X,
                                        parents, steps, batch_size, torch_device, verbose)
                slot_a = np.searchsorted(parents, parent_a)
                slot_b = np.searchsorted(parents, parent_b)
            for start in tqdm(range(0, n, batch_size), disable=not verbose,
                              desc="decoding synthetic rows", unit="batch"):
                rows = slice(start, start + batch_size)
                z = torch.as_tensor(z_synthetic[rows], dtype=torch.float32,
                                    device=torch_device)
                kwargs = dict(decode_kwargs)
                if noise is not None:
                    kwargs["x_T"] = slerp(noise[slot_a[rows]], noise[slot_b[rows]],
                                          weight[rows]).to(torch_device)
                elif generator is not None:
                    kwargs["generator"] = generator
                decoded = encoder.decode(z, **kwargs)
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
        space_e = interpolator._to_geometry(reencoded)
        space_z = interpolator._to_geometry(z_synthetic)
        distances = np.linalg.norm(space_e - space_z, axis=1)
        index_of = {key: c for c, key in enumerate(interpolator._fit_keys)}
        codes = np.array([index_of[g] for g in provenance["group"]], dtype=np.int64)
        for code in np.unique(codes):
            rows = np.flatnonzero(codes == code)
            nn, radius, k = interpolator._group_radius(int(code))
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


def _invert_parents(encoder, source, fit_X, parents, steps, batch_size, device, verbose):
    """Stochastic codes ``x_T`` of the parent rows, on the CPU, in the order of
    ``parents``."""
    invert = encoder.encode_stochastic
    kwargs = {"steps": steps} if steps is not None and _accepts(invert, "steps") else {}
    codes = []
    for start in tqdm(range(0, len(parents), batch_size), disable=not verbose,
                      desc="inverting parents to x_T", unit="batch"):
        rows = parents[start:start + batch_size]
        x = torch.from_numpy(source.get(rows)).to(device)
        z = torch.as_tensor(fit_X[rows], dtype=torch.float32, device=device)
        codes.append(torch.as_tensor(invert(x, z, **kwargs)).float().cpu())
    return torch.cat(codes)
