"""StyleGAN2's losses: the non-saturating logistic GAN loss, the R1 penalty on real images,
the path-length regulariser, and the inversion loss through a frozen generator."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "discriminator_loss",
    "feature_distance",
    "generator_loss",
    "path_length_penalty",
    "r1_penalty",
]


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating logistic loss of the generator: ``mean(softplus(-D(G(z))))``.

    Parameters
    ----------
    fake_logits : torch.Tensor
        ``(N,)`` discriminator logits of generated images.

    Returns
    -------
    torch.Tensor
        Scalar.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.stylegan2.losses import generator_loss
    >>> round(float(generator_loss(torch.zeros(3))), 4)  # log 2
    0.6931
    """
    return F.softplus(-fake_logits).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Logistic loss of the discriminator: ``mean(softplus(D(fake))) + mean(softplus(-D(real)))``.

    Parameters
    ----------
    real_logits, fake_logits : torch.Tensor
        ``(N,)`` logits of real and generated images.

    Returns
    -------
    torch.Tensor
        Scalar.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.stylegan2.losses import discriminator_loss
    >>> float(discriminator_loss(torch.full((2,), 30.0), torch.full((2,), -30.0))) < 1e-12
    True
    """
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def r1_penalty(discriminator: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
               gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The R1 gradient penalty (Mescheder et al., 2018) on *real* images only.

    .. math:: R_1 = \frac{\gamma}{2}\, \mathbb E_{x \sim \text{data}}
              \lVert \nabla_x D(x) \rVert^2

    The gradient is taken with respect to the real images as given (before any
    augmentation the ``discriminator`` callable applies), with a graph so the penalty can
    be back-propagated into the discriminator's weights.

    Parameters
    ----------
    discriminator : callable
        Images ``(N, C, *spatial)`` to logits ``(N,)`` (augmentation included, if any).
    real : torch.Tensor
        Real images; they are detached, so nothing flows back to where they came from.
    gamma : float
        Weight :math:`\gamma`.

    Returns
    -------
    penalty : torch.Tensor
        Scalar.
    logits : torch.Tensor
        ``(N,)`` logits of the real images (detached), e.g. for ADA's statistics.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.stylegan2.losses import r1_penalty
    >>> a = torch.tensor([1.0, 2.0])
    >>> penalty, _ = r1_penalty(lambda x: x.flatten(1) @ a, torch.zeros(4, 1, 1, 2), gamma=2.0)
    >>> float(penalty)  # gamma / 2 * |a|^2
    5.0
    """
    real = real.detach().requires_grad_(True)
    logits = discriminator(real)
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    penalty = grad.float().square().flatten(1).sum(1).mean() * (gamma / 2)
    return penalty, logits.detach()


def path_length_penalty(images: torch.Tensor, ws: torch.Tensor, mean_length: torch.Tensor,
                        *, generator: torch.Generator | None = None, decay: float = 0.01
                        ) -> torch.Tensor:
    r"""The path-length regulariser of StyleGAN2.

    .. math:: \mathbb E_{w, y} \big(\lVert J_w^\top y \rVert_2 - a\big)^2

    with :math:`y` Gaussian images scaled by ``1 / sqrt(pixels)`` and :math:`a` the running
    mean of the lengths (``mean_length``, updated in place with ``decay``).

    Parameters
    ----------
    images : torch.Tensor
        Generated images ``(N, C, *spatial)``, with a graph back to ``ws``.
    ws : torch.Tensor
        ``(N, num_ws, w_dim)`` that made them.
    mean_length : torch.Tensor
        Scalar buffer of the running mean length.
    generator : torch.Generator, optional
        Source of :math:`y`.
    decay : float, default 0.01
        Update rate of the running mean.

    Returns
    -------
    torch.Tensor
        Scalar penalty (unweighted).
    """
    from ...training import batch_randn

    generator = torch.Generator() if generator is None else generator
    pixels = math.prod(images.shape[2:])
    y = batch_randn(images.shape, generator=generator, device=images.device,
                    dtype=images.dtype) / math.sqrt(pixels)
    (grad,) = torch.autograd.grad((images * y).sum(), ws, create_graph=True)
    lengths = grad.float().square().sum(2).mean(1).sqrt()
    with torch.no_grad():
        mean_length.copy_(mean_length.lerp(lengths.mean(), decay))
    return (lengths - mean_length).square().mean()


def feature_distance(features_a: Sequence[torch.Tensor], features_b: Sequence[torch.Tensor]
                     ) -> torch.Tensor:
    """A perceptual distance from discriminator features that needs no downloaded weights.

    As in LPIPS, every feature map is normalised to unit length along the channels at
    every position; the distance is the mean squared difference, summed over levels.

    Parameters
    ----------
    features_a, features_b : sequence of torch.Tensor
        Feature maps ``(N, C_l, *spatial_l)`` of two batches, level by level.

    Returns
    -------
    torch.Tensor
        ``(N,)`` distances.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.stylegan2.losses import feature_distance
    >>> f = [torch.randn(2, 4, 8, 8)]
    >>> feature_distance(f, f)
    tensor([0., 0.])
    """
    total = 0
    for a, b in zip(features_a, features_b, strict=True):
        a = a.float() * a.float().square().sum(1, keepdim=True).add(1e-10).rsqrt()
        b = b.float() * b.float().square().sum(1, keepdim=True).add(1e-10).rsqrt()
        total = total + (a - b).square().sum(1).flatten(1).mean(1)
    return total
