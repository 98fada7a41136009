"""Functions on tensors shared by every layer that handles latents and codes."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputShapeError

__all__ = ["slerp"]


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
    >>> from latentaudit.nn import slerp
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
