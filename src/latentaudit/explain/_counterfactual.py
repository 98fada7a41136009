"""Decoded counterfactuals: move an image's embedding from one cluster toward another and
decode every step, to see what sets the clusters apart."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import torch

from ..encoders import GenerativeEncoder
from ..errors import ConfigError, DataError, InputShapeError, InputTypeError
from ..utils import check_option, check_random_state
from ._inputs import as_labels, image_rows, kept_mask

__all__ = ["Counterfactual", "counterfactual", "latent_direction"]

logger = logging.getLogger(__name__)

_DIRECTIONS = ("centroid", "probe")


@dataclasses.dataclass
class Counterfactual:
    """Images decoded along a path in latent space.

    Attributes
    ----------
    images : numpy.ndarray
        float32 ``(N, n_points, C, *spatial)``: for every input image, its decoding at each
        step; step 0 is the unmoved embedding (the reconstruction).
    alphas : numpy.ndarray
        ``(n_points,)``: how far along ``direction`` each point went (0 to ``scale``).
    difference : numpy.ndarray
        float32 ``(N, C, *spatial)``: last step minus first, i.e. what the move changed
        (the reconstruction error cancels out).
    latents : numpy.ndarray
        float32 ``(N, n_points, latent_dim)``: the decoded embeddings.
    direction : numpy.ndarray
        float32 ``(latent_dim,)``: the move of one full step (``alpha=1``).
    source, target : object
        The clusters the move goes from and to (None when a direction was given).
    kind : str
        How the direction was found: ``"centroid"``, ``"probe"`` or ``"given"``.
    """

    images: np.ndarray
    alphas: np.ndarray
    difference: np.ndarray
    latents: np.ndarray
    direction: np.ndarray
    source: object
    target: object
    kind: str

    def __repr__(self) -> str:
        return (f"Counterfactual(source={self.source!r}, target={self.target!r}, "
                f"kind={self.kind!r}, images={self.images.shape}, "
                f"alphas={np.round(self.alphas, 3).tolist()})")


def _to_numpy(z) -> np.ndarray:
    if isinstance(z, torch.Tensor):
        z = z.detach().float().cpu().numpy()
    return np.asarray(z, dtype=np.float32)


def latent_direction(embeddings, labels, source, target, *, kind: str = "centroid",
                     random_state=None) -> np.ndarray:
    """The latent move from one cluster to another.

    Parameters
    ----------
    embeddings : array-like
        ``(N, latent_dim)`` embeddings.
    labels : array-like
        One cluster label per row; -1 (noise) is left out.
    source, target : object
        The labels to move from and to.
    kind : {"centroid", "probe"}, default "centroid"
        ``"centroid"``: the difference of the two clusters' mean embeddings.
        ``"probe"``: the normal of a linear probe (logistic regression, classes weighted
        equally) separating the clusters, scaled so that it covers the centroids' gap
        along it; it leaves out directions in which the clusters merely differ in spread.
    random_state : int, RandomState or None, default None
        Seed of the probe's solver.

    Returns
    -------
    numpy.ndarray
        float32 ``(latent_dim,)``: adding it to a source embedding moves it by the full
        gap toward the target.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.DataError` or ``ConfigError``) for a label that
        no row has, or an invalid kind.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.explain import latent_direction
    >>> z = np.array([[0, 0], [0, 2], [4, 0], [4, 2]], dtype="float32")
    >>> latent_direction(z, [0, 0, 1, 1], source=0, target=1).tolist()
    [4.0, 0.0]
    """
    check_option("kind", kind, _DIRECTIONS)
    z = _to_numpy(embeddings)
    if z.ndim != 2:
        raise InputShapeError(f"embeddings must be (N, latent_dim), got shape {z.shape}")
    labels = as_labels(labels, len(z))
    keep = kept_mask(labels)
    in_source, in_target = keep & (labels == source), keep & (labels == target)
    for name, value, mask in (("source", source, in_source), ("target", target, in_target)):
        if not mask.any():
            raise DataError(f"no embedding has the {name} label {value!r}; labels present: "
                            f"{sorted(set(labels[keep].tolist()), key=str)}")
    gap = z[in_target].astype(np.float64).mean(axis=0) - z[in_source].astype(
        np.float64).mean(axis=0)
    if kind == "centroid":
        return gap.astype(np.float32)
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([z[in_source], z[in_target]]).astype(np.float64)
    y = np.r_[np.zeros(in_source.sum()), np.ones(in_target.sum())]
    # Fitted in the latent space's own coordinates, not standardised ones: standardising
    # inflates dimensions that barely vary (the ones a decoder ignores), and the normal
    # would then point where decoding changes nothing.
    probe = LogisticRegression(class_weight="balanced", max_iter=5000,
                               random_state=random_state).fit(x, y)
    normal = probe.coef_[0]
    unit = normal / np.linalg.norm(normal)
    return (unit * float(unit @ gap)).astype(np.float32)


def counterfactual(encoder, images, source=None, target=None, *, embeddings=None,
                   labels=None, direction="centroid", n_points: int = 5, scale: float = 1.0,
                   steps: int | None = None, batch_size: int = 32,
                   random_state=None, verbose: bool = False) -> Counterfactual:
    """Move images' embeddings from cluster ``source`` toward ``target`` and decode them.

    Every image is encoded, moved along a latent direction in ``n_points`` even steps from
    0 to ``scale`` times the direction, and decoded.  The direction is the difference of
    the clusters' mean embeddings (``"centroid"``), a linear probe's normal (``"probe"``),
    both computed from ``embeddings`` and ``labels``, or a vector you give.

    Decoding goes through the generative protocol
    (:class:`~latentaudit.encoders.GenerativeEncoder`): every image's codes come from
    ``encoder.invert`` (a Diffusion Autoencoder's stochastic code ``x_T``, a GAN's noise,
    None for a β-VAE) and every step is ``encoder.decode(moved, codes)``, so what is not
    in the embedding (the identity's fine detail) stays; what the codes leave open is
    drawn from one generator, the same for every step.

    Parameters
    ----------
    encoder : GenerativeEncoder
        An encoder with ``encode``, ``invert`` and ``decode`` (``DAEEncoder``,
        ``BetaVAEEncoder``, ``StyleGAN2Encoder`` or your own).
    images : array-like, torch.Tensor or Dataset
        ``(N, C, *spatial)`` images to move (typically images of ``source``).
    source, target : object
        Cluster labels; needed unless ``direction`` is a vector.
    embeddings : array-like, optional
        ``(M, latent_dim)`` embeddings (from this encoder) with ``labels``, from which the
        direction is computed.
    labels : array-like, optional
        One cluster label per row of ``embeddings``.
    direction : {"centroid", "probe"} or array-like, default "centroid"
        How to move (see :func:`latent_direction`), or the ``(latent_dim,)`` move itself.
    n_points : int, default 5
        Number of decoded images per input (points along the move), including the
        unmoved one; at least 2.
    scale : float, default 1.0
        How far to go: 1 moves by the full centroid gap, 2 twice as far.
    steps : int, optional
        Passed to ``invert`` and ``decode``: the steps of an iterative decoder (a
        Diffusion Autoencoder's DDIM steps); default the encoder's.  One-pass decoders
        ignore it.
    batch_size : int, default 32
        Images per encode/decode call.
    random_state : int, RandomState or None, default None
        Seed of the probe and of the generator ``decode`` draws from.
    verbose : bool, default False
        Show a progress bar.

    Returns
    -------
    Counterfactual
        The decoded sequences, their latents, the direction and the pixel difference
        between the last and the first step.

    Raises
    ------
    TypeError
        (as :class:`latentaudit.errors.InputTypeError`) if the encoder cannot decode.
    ValueError
        (as :class:`latentaudit.errors.ConfigError`, ``DataError`` or
        ``InputShapeError``) for invalid options or mismatched shapes.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.encoders import BetaVAEEncoder
    >>> from latentaudit.explain import counterfactual
    >>> enc = BetaVAEEncoder(image_size=16, channels=(4, 8), latent_dim=8)
    >>> images = np.zeros((2, 1, 16, 16), dtype="float32")
    >>> cf = counterfactual(enc, images, direction=np.ones(8, dtype="float32"), n_points=3)
    >>> cf.images.shape, cf.difference.shape
    ((2, 3, 1, 16, 16), (2, 1, 16, 16))
    """
    if not isinstance(encoder, GenerativeEncoder):
        raise InputTypeError(
            f"counterfactuals need a generative encoder (latent_dim, spatial_dims, encode, "
            f"invert and decode: the GenerativeEncoder protocol, e.g. DAEEncoder or "
            f"BetaVAEEncoder); {type(encoder).__name__} does not meet it")
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or \
            n_points < 2:
        raise ConfigError(f"n_points must be an integer >= 2 (the unmoved image and at "
                          f"least one move), got {n_points!r}")
    if not np.isfinite(scale):
        raise ConfigError(f"scale must be a finite number, got {scale!r}")
    if isinstance(direction, str):
        if source is None or target is None:
            raise ConfigError(f"direction={direction!r} needs source and target labels")
        if embeddings is None or labels is None:
            raise ConfigError(f"direction={direction!r} needs embeddings and labels to "
                              f"compute the move from (or use Explainer.counterfactual, "
                              f"which encodes the images it was fitted on)")
        kind = check_option("direction", direction, _DIRECTIONS)
        move = latent_direction(embeddings, labels, source, target, kind=kind,
                                random_state=random_state)
    else:
        kind = "given"
        move = _to_numpy(direction).ravel()
    latent_dim = getattr(encoder, "latent_dim", None)
    if latent_dim is not None and move.shape != (int(latent_dim),):
        raise InputShapeError(f"the direction has {move.size} entries but the encoder's "
                              f"latent_dim is {latent_dim}")
    data = image_rows(images, "images")
    alphas = np.linspace(0.0, float(scale), int(n_points)).astype(np.float32)
    options = {} if steps is None else {"steps": int(steps)}
    decode_seed = int(check_random_state(random_state).randint(2**31 - 1))
    move_t = torch.from_numpy(move)
    decoded_all, latents_all = [], []
    from tqdm.auto import tqdm

    with torch.no_grad(), tqdm(total=len(data) * len(alphas), disable=not verbose, unit="img",
                               desc="decoding counterfactuals") as bar:
        for _, batch in data.batches(np.arange(len(data)), batch_size):
            x = torch.from_numpy(batch)
            z = torch.as_tensor(encoder.encode(x)).detach().float().cpu()
            if z.ndim != 2 or z.shape[1] != move.size:
                raise InputShapeError(f"the encoder gave embeddings of shape "
                                      f"{tuple(z.shape)}, expected (n, {move.size})")
            codes = encoder.invert(x, **options)
            per_step, latents = [], []
            for alpha in alphas:
                moved = z + float(alpha) * move_t
                # The same draw at every step, so the steps differ by the move alone.
                generator = torch.Generator().manual_seed(decode_seed)
                out = encoder.decode(moved, codes, generator=generator, **options)
                per_step.append(_to_numpy(out))
                latents.append(moved.numpy())
                bar.update(len(batch))
            decoded_all.append(np.stack(per_step, axis=1))
            latents_all.append(np.stack(latents, axis=1))
    decoded = np.concatenate(decoded_all)
    if decoded.shape[2:] != data.image_shape:
        logger.warning("the decoded images have shape %s, the inputs %s", decoded.shape[2:],
                       data.image_shape)
    return Counterfactual(images=decoded, alphas=alphas,
                          difference=(decoded[:, -1] - decoded[:, 0]).astype(np.float32),
                          latents=np.concatenate(latents_all).astype(np.float32),
                          direction=move.astype(np.float32), source=source, target=target,
                          kind=kind)
