"""The Hessian penalty of Peebles et al. (ECCV 2020), an unbiased stochastic estimate of how
far a generator's Hessian with respect to its input is from diagonal."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from ..errors import ConfigError, InputShapeError, InputTypeError
from ..utils import check_option

__all__ = ["hessian_penalty"]


def _no_autocast(device_type: str):
    try:
        return torch.autocast(device_type=device_type, enabled=False)
    except RuntimeError:  # a device type autocast does not know
        return contextlib.nullcontext()


def hessian_penalty(G: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, k: int = 2,
                    epsilon: float = 0.1, reduction: str = "max", *,
                    directions: torch.Tensor | None = None, G_z: torch.Tensor | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Penalise the off-diagonal terms of the Hessian of ``G`` with respect to ``z``.

    For each output :math:`G_o` the estimator draws ``k`` Rademacher directions
    :math:`v` (entries :math:`\pm 1`) and takes the unbiased sample variance, over the
    directions, of the central finite-difference estimate of the second directional
    derivative

    .. math:: v^\top H_o v \approx \frac{G_o(z + \epsilon v) - 2 G_o(z)
              + G_o(z - \epsilon v)}{\epsilon^2}.

    Because :math:`v^\top H v = \operatorname{tr} H + 2\sum_{i<j} H_{ij} v_i v_j`, the
    expected variance is :math:`2 \sum_{i \ne j} H_{ij}^2`: zero exactly when the
    Hessian is diagonal, i.e. when each input coordinate acts on the output independently
    of the others.  For ``G`` quadratic in ``z`` the finite difference is exact.  The
    per-output variances are then reduced over all outputs and samples (the maximum, as in
    the paper, or the mean).

    ``G`` is evaluated once on a batch of ``(2k + 1) N`` latents (or ``2k N`` when ``G_z``
    is given), so it must treat samples independently (no batch normalisation in training
    mode).  The evaluation runs outside autocast, because the finite difference divides
    rounding errors by :math:`\epsilon^2`.

    Parameters
    ----------
    G : callable
        Maps latents ``(N, *latent_shape)`` to a tensor ``(N, ...)``, e.g. a decoder.
    z : torch.Tensor
        Latents ``(N, *latent_shape)`` at which to evaluate the penalty.
    k : int, default 2
        Number of random directions (at least 2, for a variance).
    epsilon : float, default 0.1
        Finite-difference step.
    reduction : {"max", "mean", "none"}, default "max"
        Reduction of the per-output variances; ``"none"`` returns them, shaped like
        ``G(z)``.
    directions : torch.Tensor, optional
        ``(k, *z.shape)`` directions to use instead of random ones (then ``k`` is
        ignored); for tests and reproducibility.
    G_z : torch.Tensor, optional
        ``G(z)`` if it is already computed; it must carry the gradients wanted.
    generator : torch.Generator, optional
        Source of the random directions, per sample
        (:func:`~latentaudit.training.batch_randint`); without one, PyTorch's global
        generator (for standalone use; latentaudit's losses always pass one).

    Returns
    -------
    torch.Tensor
        A scalar (or the per-output variances for ``reduction="none"``), differentiable
        with respect to ``G``'s parameters.

    Raises
    ------
    ConfigError
        For ``k < 2``, ``epsilon <= 0`` or an unknown ``reduction``.
    InputShapeError
        If ``directions`` or ``G``'s output have the wrong shape.

    References
    ----------
    W. Peebles, J. Peebles, J.-Y. Zhu, A. Efros, A. Torralba. "The Hessian Penalty: A Weak
    Prior for Unsupervised Disentanglement". ECCV 2020.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders import hessian_penalty
    >>> separable = lambda z: (z ** 2).sum(dim=1, keepdim=True)  # diagonal Hessian
    >>> round(float(hessian_penalty(separable, torch.randn(4, 3))), 4)
    0.0
    >>> coupled = lambda z: (z[:, :1] * z[:, 1:2])  # one off-diagonal term
    >>> round(float(hessian_penalty(coupled, torch.zeros(1, 2), directions=torch.tensor(
    ...     [[[1.0, 1.0]], [[1.0, -1.0]]]))), 4)  # v'Hv = +2 and -2, variance 8
    8.0
    """
    check_option("reduction", reduction, ("max", "mean", "none"))
    if not isinstance(z, torch.Tensor) or not z.is_floating_point():
        raise InputTypeError(f"z must be a floating-point tensor, got "
                             f"{getattr(z, 'dtype', type(z).__name__)}")
    if not isinstance(epsilon, (int, float)) or isinstance(epsilon, bool) or epsilon <= 0:
        raise ConfigError(f"epsilon must be a positive number, got {epsilon!r}")
    if z.dtype in (torch.float16, torch.bfloat16):
        z = z.float()
    if directions is None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ConfigError(f"k must be an integer >= 2 (a variance needs two directions), "
                              f"got {k!r}")
        if generator is None:
            directions = torch.randint(0, 2, (k, *z.shape), device=z.device)
        else:  # per sample, so a distributed run draws what one process would
            from ..training import batch_randint

            directions = batch_randint(0, 2, (k, *z.shape), generator=generator,
                                       device=z.device, batch_dim=1)
        directions = directions.to(z.dtype).mul_(2).sub_(1)
    else:
        if directions.ndim != z.ndim + 1 or tuple(directions.shape[1:]) != tuple(z.shape):
            raise InputShapeError(f"directions must have shape (k, *z.shape) = (k, "
                                  f"{', '.join(map(str, z.shape))}), got "
                                  f"{tuple(directions.shape)}")
        if directions.shape[0] < 2:
            raise ConfigError("directions must hold at least two directions (a variance)")
        directions = directions.to(device=z.device, dtype=z.dtype)
    n = z.shape[0]
    steps = epsilon * directions
    inputs = [] if G_z is not None else [z]
    for step in steps:
        inputs.extend((z + step, z - step))
    with _no_autocast(z.device.type):
        out = G(torch.cat(inputs))
    if not isinstance(out, torch.Tensor):
        raise InputTypeError(f"G must return a tensor, got {type(out).__name__}")
    if out.shape[0] != len(inputs) * n:
        raise InputShapeError(f"G must return one output per latent: it got {len(inputs) * n} "
                              f"latents and returned a batch of {out.shape[0]}")
    chunks = out.float().split(n) if out.dtype in (torch.float16, torch.bfloat16) else \
        out.split(n)
    if G_z is None:
        centre, chunks = chunks[0], chunks[1:]
    else:
        centre = G_z.to(out.dtype if out.dtype not in (torch.float16, torch.bfloat16)
                        else torch.float32)
        if centre.shape != chunks[0].shape:
            raise InputShapeError(f"G_z has shape {tuple(centre.shape)} but G returns "
                                  f"{tuple(chunks[0].shape)} per batch of latents")
    second = torch.stack([(chunks[2 * j] - 2 * centre + chunks[2 * j + 1])
                          for j in range(len(steps))]) / (epsilon ** 2)
    variance = second.var(dim=0, correction=1)
    if reduction == "max":
        return variance.max()
    if reduction == "mean":
        return variance.mean()
    return variance
