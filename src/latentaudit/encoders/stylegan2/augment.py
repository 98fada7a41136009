"""Differentiable augmentation for GAN training on small datasets.

The operations are those of DiffAugment (Zhao et al., NeurIPS 2020): translation, cutout,
brightness and contrast, each differentiable with respect to the image, applied to real
and generated images alike before the discriminator sees them.  As in ADA (Karras et al.,
NeurIPS 2020) each operation is applied to each image with a probability ``p``, which the
training step adapts so that the discriminator's overfitting heuristic
``r_t = E[sign(D(real))]`` stays near a target.  Written once for 2-D and 3-D; every
random draw comes from an explicit :class:`torch.Generator`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...training import batch_rand
from ...utils import check_option, check_spatial_dims

__all__ = ["AUGMENTATIONS", "augment"]

#: The augmentations :func:`augment` knows, in the order it applies them.
AUGMENTATIONS = ("translation", "cutout", "brightness", "contrast")


def _uniform(n: int, generator: torch.Generator, device, *shape) -> torch.Tensor:
    # per-sample draws: a distributed run augments each image as a one-process run would
    return batch_rand((n, *shape), generator=generator, device=device)


def _translation(x: torch.Tensor, generator: torch.Generator, ratio: float = 0.125
                 ) -> torch.Tensor:
    # Shifts by whole pixels (up to ratio * side), sampled at pixel centres, zero outside.
    n, spatial = x.shape[0], x.shape[2:]
    sides = torch.tensor(spatial[::-1], dtype=torch.float32, device=x.device)  # grid order
    limit = torch.floor(sides * ratio)
    shift = torch.round((_uniform(n, generator, x.device, len(spatial)) * 2 - 1) * limit)
    theta = torch.zeros(n, len(spatial), len(spatial) + 1, device=x.device)
    theta[:, :, :-1] = torch.eye(len(spatial), device=x.device)
    theta[:, :, -1] = 2 * shift / sides
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _cutout(x: torch.Tensor, generator: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    # Zero a box of half the side on every axis, its centre anywhere in the image.
    n, spatial = x.shape[0], x.shape[2:]
    mask = torch.ones(n, 1, *spatial, dtype=x.dtype, device=x.device)
    keep = None
    centres = _uniform(n, generator, x.device, len(spatial))
    for axis, side in enumerate(spatial):
        half = int(side * ratio + 0.5) // 2
        centre = torch.floor(centres[:, axis] * side)
        coords = torch.arange(side, device=x.device, dtype=torch.float32)
        inside = ((coords[None] >= centre[:, None] - half)
                  & (coords[None] < centre[:, None] + half))  # (n, side)
        shape = [n] + [1] * len(spatial)
        shape[axis + 1] = side
        inside = inside.reshape(shape)
        keep = inside if keep is None else keep & inside
    return x * (mask - keep[:, None].to(x.dtype))


def _brightness(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    shift = _uniform(x.shape[0], generator, x.device) - 0.5
    return x + shift.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)


def _contrast(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    factor = (_uniform(x.shape[0], generator, x.device) + 0.5).reshape(-1, *([1] * (x.ndim - 1)))
    mean = x.mean(dim=tuple(range(1, x.ndim)), keepdim=True)
    return (x - mean) * factor.to(x.dtype) + mean


_OPS = {"translation": _translation, "cutout": _cutout, "brightness": _brightness,
        "contrast": _contrast}


def augment(x: torch.Tensor, p: float, operations=AUGMENTATIONS, *,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Augment a batch of images, each operation applied to each image with probability p.

    Parameters
    ----------
    x : torch.Tensor
        ``(N, C, *spatial)``, 2 or 3 spatial axes; gradients flow through.
    p : float
        Probability in [0, 1] that an operation is applied to an image; 0 returns ``x``.
    operations : sequence of str, default :data:`AUGMENTATIONS`
        Which of ``"translation"`` (by up to 1/8 of each side, whole pixels, zeros
        outside), ``"cutout"`` (a zeroed box of half the side), ``"brightness"`` (plus
        U(-0.5, 0.5)) and ``"contrast"`` (times U(0.5, 1.5) around the image mean).
    generator : torch.Generator, optional
        Source of every random draw (``None``: a fresh default generator, never the
        global random state).

    Returns
    -------
    torch.Tensor
        Same shape as ``x``.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.stylegan2.augment import augment
    >>> x = torch.rand(4, 1, 16, 16)
    >>> y = augment(x, 1.0, ("brightness",), generator=torch.Generator().manual_seed(0))
    >>> bool(torch.allclose((y - x).std(dim=(1, 2, 3)), torch.zeros(4), atol=1e-6))
    True
    """
    check_spatial_dims(x.ndim - 2)
    for name in operations:
        check_option("augmentation", name, AUGMENTATIONS)
    if p <= 0 or not operations:
        return x
    generator = torch.Generator() if generator is None else generator
    for name in AUGMENTATIONS:
        if name not in operations:
            continue
        chosen = _uniform(x.shape[0], generator, x.device) < p
        changed = _OPS[name](x, generator)
        x = torch.where(chosen.reshape(-1, *([1] * (x.ndim - 1))), changed, x)
    return x
