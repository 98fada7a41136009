"""Inversion of StyleGAN2: the reconstruction loss the inverter is trained with, and the
codes of images (W+ residuals and noise), optionally refined per image by optimisation."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .._base import eval_mode
from .config import _positive_int
from .losses import feature_distance

__all__ = ["invert", "noise_regularizer", "reconstruction_loss"]


def reconstruction_loss(model, images: torch.Tensor, ws: torch.Tensor,
                        noise: Sequence[torch.Tensor],
                        image_features: Sequence[torch.Tensor] | None = None
                        ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-image loss of rendering ``ws`` and ``noise`` against ``images``.

    Pixel MSE, plus ``inversion_feature_weight`` times the distance between the
    discriminator trunk's features of the rendering and of the images
    (:func:`~latentaudit.encoders.stylegan2.losses.feature_distance`), plus
    ``inversion_delta_weight`` times the mean squared spread of the W+ layers around their
    mean (the latent regulariser: the mean, which is the embedding, should carry the image).

    Parameters
    ----------
    model : StyleGAN2Encoder
        The model (its generator and discriminator are used as they are).
    images : torch.Tensor
        Targets ``(N, C, *spatial)``.
    ws : torch.Tensor
        ``(N, num_ws, latent_dim)``.
    noise : sequence of torch.Tensor
        Noise of every noise layer.
    image_features : sequence of torch.Tensor, optional
        The discriminator trunk's features of ``images``, if already computed.

    Returns
    -------
    loss : torch.Tensor
        ``(N,)``.
    parts : dict of torch.Tensor
        ``mse``, ``feature``, ``delta``: the batch means of the three terms (detached).
    """
    cfg = model.config
    rendering = model.generator.synthesis(ws, noise)
    mse = (rendering.float() - images.float()).square().flatten(1).mean(1)
    delta = (ws - ws.mean(1, keepdim=True)).float().square().flatten(1).mean(1)
    loss = mse + cfg.inversion_delta_weight * delta
    parts = {"mse": mse.detach().mean(), "delta": delta.detach().mean()}
    if cfg.inversion_feature_weight > 0:
        trunk = model.discriminator.trunk
        if image_features is None:
            with torch.no_grad():
                image_features = trunk(images)
        feature = feature_distance(trunk(rendering), image_features)
        loss = loss + cfg.inversion_feature_weight * feature
        parts["feature"] = feature.detach().mean()
    return loss, parts


def noise_regularizer(noise: Sequence[torch.Tensor]) -> torch.Tensor:
    """Penalty on spatial autocorrelation of noise maps (the StyleGAN2 projector's), so
    that optimised noise stays noise instead of painting the image.

    For every map, at every scale down to 8 samples per side, the squared mean product of
    each sample with its neighbour along each axis.

    Parameters
    ----------
    noise : sequence of torch.Tensor
        Maps ``(N, 1, *spatial)``.

    Returns
    -------
    torch.Tensor
        ``(N,)``.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.stylegan2.inversion import noise_regularizer
    >>> smooth = torch.ones(1, 1, 16, 16)
    >>> rough = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> bool(noise_regularizer([smooth]) > 100 * noise_regularizer([rough]))
    True
    """
    total = 0
    for n in noise:
        n = n.float()
        while True:
            for axis in range(2, n.ndim):
                total = total + (n * n.roll(1, dims=axis)).flatten(1).mean(1).square()
            if min(n.shape[2:]) <= 8:
                break
            n = torch.nn.functional.avg_pool2d(n, 2) if n.ndim == 4 else \
                torch.nn.functional.avg_pool3d(n, 2)
    return total


def _refine(model, images: torch.Tensor, w: torch.Tensor, residual: torch.Tensor,
            noise: list[torch.Tensor], steps: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    cfg = model.config
    # Inference tensors (from torch.inference_mode) cannot enter autograd: work on copies
    # made with inference mode off.
    with torch.inference_mode(False), torch.enable_grad():
        images, w = images.clone(), w.clone()
        residual = residual.clone().requires_grad_(True)
        noise = [n.clone().requires_grad_(True) for n in noise]
        frozen = [p for p in model.parameters() if p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
        try:
            with torch.no_grad():
                image_features = model.discriminator.trunk(images)
            optimizer = torch.optim.Adam([residual, *noise], lr=cfg.inversion_refine_lr)
            for _ in range(steps):
                ws = w[:, None] + residual
                loss, _ = reconstruction_loss(model, images, ws, noise, image_features)
                loss = loss + 1e3 * noise_regularizer(noise)
                optimizer.zero_grad(set_to_none=True)
                loss.sum().backward()
                optimizer.step()
                with torch.no_grad():
                    # the embedding is the layers' mean: keep the residuals centred
                    residual.sub_(residual.mean(1, keepdim=True))
        finally:
            for p in frozen:
                p.requires_grad_(True)
    return residual.detach(), [n.detach() for n in noise]


def invert(model, x, *, steps: int = 0, batch_size: int = 64, verbose: bool = False) -> dict:
    """The codes of images (see :meth:`StyleGAN2Encoder.invert`)."""
    steps = _positive_int("steps", steps, 0)
    batch_size = _positive_int("batch_size", batch_size)
    x = model._check_images(x)
    out_device = x.device
    device = model.device
    residuals, noises = [], []
    from tqdm.auto import tqdm

    with torch.no_grad(), eval_mode(model):
        for start in tqdm(range(0, len(x), batch_size), disable=not verbose,
                          desc="StyleGAN2 inversion", unit="batch"):
            images = x[start:start + batch_size].to(device)
            ws = model.w_plus(images)
            w = ws.mean(1)
            residual = ws - w[:, None]
            noise = model.generator.make_noise(len(images), device=device, zero=True)
            if steps:
                residual, noise = _refine(model, images, w, residual, noise, steps)
            residuals.append(residual.float().to(out_device))
            noises.append([n.float().to(out_device) for n in noise])
    if not residuals:
        return {"w_residual": torch.empty(0, model.num_ws, model.latent_dim,
                                          device=out_device),
                "noise": [torch.empty(0, 1, *s, device=out_device)
                          for s in model.generator.synthesis.noise_shapes]}
    return {"w_residual": torch.cat(residuals),
            "noise": [torch.cat(layer) for layer in zip(*noises, strict=True)]}
