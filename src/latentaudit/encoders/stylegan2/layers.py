"""The layers StyleGAN2 is built from (Karras et al., CVPR 2020), written once for 2-D and 3-D.

Convolutions come from :mod:`latentaudit.nn`'s factories; what StyleGAN2 adds is

- the *equalised learning rate* (Karras et al., ICLR 2018): weights are stored as draws of
  N(0, 1) (divided by the learning-rate multiplier) and scaled by
  ``lr_multiplier / sqrt(fan_in)`` every time they are used, so Adam's step is the same
  relative step in every layer.  It is a :mod:`torch.nn.utils.parametrize`
  parametrisation of the factory's module;
- FIR resampling with the separable binomial filter ``[1, 3, 3, 1]`` (the paper's
  "bilinear" filter), applied along one spatial axis at a time;
- modulated and demodulated convolutions, computed by scaling the activations instead of
  the weights (one shared convolution for the whole batch, mathematically equal to the
  per-sample convolution with the modulated weights);
- noise injection with a learned per-layer strength.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from ...nn import conv, conv_transpose
from ...utils import check_spatial_dims

__all__ = [
    "FIR_TAPS",
    "EqualizedLinear",
    "ModulatedConv",
    "SynthesisLayer",
    "ToImage",
    "blur",
    "equalize",
    "lrelu",
    "upsample",
]

#: Taps of the separable binomial ("bilinear") resampling filter of StyleGAN2.
FIR_TAPS = (1.0, 3.0, 3.0, 1.0)
_GAIN = math.sqrt(2.0)
_CONV_FN = {4: F.conv2d, 5: F.conv3d}


def lrelu(x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Leaky ReLU (slope 0.2) with StyleGAN's gain ``sqrt(2)``, after an optional per-channel
    bias.

    Parameters
    ----------
    x : torch.Tensor
        ``(N, C, ...)``.
    bias : torch.Tensor, optional
        ``(C,)``.

    Returns
    -------
    torch.Tensor

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.stylegan2.layers import lrelu
    >>> lrelu(torch.tensor([[-1.0, 1.0]]))
    tensor([[-0.2828,  1.4142]])
    """
    if bias is not None:
        x = x + bias.reshape(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x, 0.2) * _GAIN


class _Gain(nn.Module):
    """Parametrisation ``w -> gain * w`` (the equalised learning rate)."""

    def __init__(self, gain: float) -> None:
        super().__init__()
        self.gain = float(gain)

    def forward(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor * self.gain

    def extra_repr(self) -> str:
        return f"gain={self.gain:.4g}"


def equalize(module: nn.Module, lr_multiplier: float = 1.0, bias_init: float = 0.0
             ) -> nn.Module:
    """Give a linear or convolution module the equalised learning rate.

    The stored weight is re-drawn from N(0, 1) / ``lr_multiplier`` and used as
    ``weight * lr_multiplier / sqrt(fan_in)``; the stored bias is filled with
    ``bias_init / lr_multiplier`` and used times ``lr_multiplier``.  A multiplier below 1
    slows the layer's learning by that factor (the mapping network uses 0.01).

    Parameters
    ----------
    module : torch.nn.Linear, torch.nn.Conv2d/3d or torch.nn.ConvTranspose2d/3d
        The layer, e.g. from :func:`latentaudit.nn.conv`.
    lr_multiplier : float, default 1.0
        Learning-rate multiplier of the layer.
    bias_init : float, default 0.0
        Initial value of the bias (as used).

    Returns
    -------
    torch.nn.Module
        ``module``, parametrised in place.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.stylegan2.layers import equalize
    >>> layer = equalize(torch.nn.Linear(100, 10))
    >>> round(float(layer.parametrizations.weight.original.detach().std()), 1)
    1.0
    >>> round(float(layer.weight.detach().std() * 10), 1)
    1.0
    """
    weight = module.weight
    kernel = math.prod(weight.shape[2:])
    transposed = isinstance(module, nn.modules.conv._ConvTransposeNd)
    fan_in = (weight.shape[0] if transposed else weight.shape[1]) * kernel
    with torch.no_grad():
        weight.normal_().div_(lr_multiplier)
        if getattr(module, "bias", None) is not None:
            module.bias.fill_(bias_init / lr_multiplier)
    parametrize.register_parametrization(module, "weight",
                                         _Gain(lr_multiplier / math.sqrt(fan_in)))
    if getattr(module, "bias", None) is not None and lr_multiplier != 1.0:
        parametrize.register_parametrization(module, "bias", _Gain(lr_multiplier))
    return module


def EqualizedLinear(in_features: int, out_features: int, *, lr_multiplier: float = 1.0,
                    bias_init: float = 0.0, bias: bool = True) -> nn.Linear:
    """A :class:`torch.nn.Linear` with the equalised learning rate (see :func:`equalize`).

    Parameters
    ----------
    in_features, out_features : int
        Sizes in and out.
    lr_multiplier : float, default 1.0
        Learning-rate multiplier.
    bias_init : float, default 0.0
        Initial bias.
    bias : bool, default True
        Learn a bias.

    Returns
    -------
    torch.nn.Linear

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.stylegan2.layers import EqualizedLinear
    >>> EqualizedLinear(8, 4, bias_init=1.0)(torch.zeros(2, 8))
    tensor([[1., 1., 1., 1.],
            [1., 1., 1., 1.]], grad_fn=<AddmmBackward0>)
    """
    return equalize(nn.Linear(in_features, out_features, bias=bias), lr_multiplier, bias_init)


@functools.lru_cache(maxsize=64)
def _fir_kernel(channels: int, spatial_dims: int, gain: float, dtype, device,
                inference: bool) -> torch.Tensor:
    # Cached: the same few kernels serve every call of a network.  ``inference`` is part
    # of the key: a kernel made under torch.inference_mode is an inference tensor, which
    # autograd refuses (invert's refinement after an embedding under inference mode).
    taps = torch.tensor(FIR_TAPS, dtype=torch.float64)
    taps = taps / taps.sum()
    kernel = taps
    for _ in range(spatial_dims - 1):
        kernel = kernel[..., None] * taps
    kernel = (kernel * gain).to(dtype=dtype, device=device)
    return kernel[None, None].expand(channels, 1, *kernel.shape).contiguous()


def blur(x: torch.Tensor, padding: tuple[int, int], gain: float = 1.0) -> torch.Tensor:
    """Filter every spatial axis with the normalised binomial filter ``[1, 3, 3, 1] / 8``.

    The image is zero-padded by ``padding`` (before, after) on every spatial axis, then
    filtered by a depthwise convolution with the separable kernel.

    Parameters
    ----------
    x : torch.Tensor
        ``(N, C, *spatial)`` with 2 or 3 spatial axes.
    padding : (int, int)
        Zero padding before and after, on every spatial axis.
    gain : float, default 1.0
        Overall gain (e.g. ``2 ** spatial_dims`` after a stride-2 transposed convolution,
        which leaves a quarter (2-D) of the output pixels non-zero).

    Returns
    -------
    torch.Tensor
        ``(N, C, *(side + sum(padding) - 3))``.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.stylegan2.layers import blur
    >>> blur(torch.ones(1, 1, 4, 4), (1, 2))[0, 0, 1]
    tensor([0.8750, 1.0000, 0.8750, 0.5000])
    """
    spatial_dims = check_spatial_dims(x.ndim - 2)
    # One depthwise convolution with the outer product of the taps: on CPUs it is faster
    # than one convolution per axis (and fastest in channels-last memory).
    kernel = _fir_kernel(x.shape[1], spatial_dims, float(gain), x.dtype, x.device,
                         torch.is_inference_mode_enabled())
    before, after = padding
    if before != after:
        x = F.pad(x, [before, after] * spatial_dims)
        before = 0
    return _CONV_FN[x.ndim](x, kernel, padding=before, groups=x.shape[1])


def upsample(x: torch.Tensor) -> torch.Tensor:
    """Double every spatial side with the binomial filter (bilinear interpolation).

    Upsampling by 2 with the filter ``[1, 3, 3, 1]`` is linear interpolation at the
    half-pixel positions, which :func:`torch.nn.functional.interpolate` computes in one
    optimised kernel; at the image border it repeats the edge pixel where the paper's
    zero-padded filter would fade it.

    Parameters
    ----------
    x : torch.Tensor
        ``(N, C, *spatial)`` with 2 or 3 spatial axes.

    Returns
    -------
    torch.Tensor
        ``(N, C, *(2 * spatial))``.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.stylegan2.layers import upsample
    >>> upsample(torch.tensor([[[[0.0, 4.0]]]]))[0, 0, 0]
    tensor([0., 1., 3., 4.])
    """
    spatial_dims = check_spatial_dims(x.ndim - 2)
    mode = "bilinear" if spatial_dims == 2 else "trilinear"
    return F.interpolate(x, scale_factor=2.0, mode=mode, align_corners=False)


class ModulatedConv(nn.Module):
    r"""Modulated (and demodulated) convolution of StyleGAN2.

    For an input with channels :math:`i` and a style vector :math:`s = A(w)` (a learned
    affine map of the latent :math:`w`), the convolution of sample :math:`n` uses the weights

    .. math:: w'_{oik} = s_{ni}\, w_{oik}, \qquad
              w''_{oik} = w'_{oik} \Big/ \sqrt{\textstyle\sum_{i,k} {w'_{oik}}^2 + \epsilon}

    (the second step, demodulation, only if ``demodulate``).  It is computed as the paper's
    supplement suggests, by scaling the activations: ``conv(x * s) * d`` with
    :math:`d_{no} = (\sum_{i,k} (s_{ni} w_{oik})^2 + \epsilon)^{-1/2}`, so the whole batch
    shares one ordinary convolution.  With ``up=True`` the convolution is a stride-2
    transposed convolution followed by the binomial filter (the output doubles in size).

    Parameters
    ----------
    spatial_dims : {2, 3}
        Number of spatial dimensions.
    in_channels, out_channels : int
        Channels in and out.
    kernel_size : int
        Kernel side (3, or 1 for :class:`ToImage`).
    w_dim : int
        Size of the latent ``w``.
    demodulate : bool, default True
        Normalise every output channel to unit expected variance.
    up : bool, default False
        Double the spatial size.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.stylegan2.layers import ModulatedConv
    >>> layer = ModulatedConv(2, 4, 8, 3, w_dim=16, up=True)
    >>> layer(torch.randn(2, 4, 8, 8), torch.randn(2, 16)).shape
    torch.Size([2, 8, 16, 16])
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 kernel_size: int, w_dim: int, *, demodulate: bool = True,
                 up: bool = False) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.demodulate = demodulate
        self.up = up
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        if up:
            self.conv = equalize(conv_transpose(spatial_dims, in_channels, out_channels,
                                                kernel_size, stride=2, padding=0, bias=False))
        else:
            self.conv = equalize(conv(spatial_dims, in_channels, out_channels, kernel_size,
                                      bias=False))

    def styles(self, w: torch.Tensor) -> torch.Tensor:
        """The per-sample input-channel scales :math:`s = A(w)`, ``(N, in_channels)``."""
        return self.affine(w)

    def modulated_weight(self, w: torch.Tensor) -> torch.Tensor:
        """The explicit per-sample weights :math:`w''` (for checks and fused kernels).

        Parameters
        ----------
        w : torch.Tensor
            ``(N, w_dim)``.

        Returns
        -------
        torch.Tensor
            ``(N, out_channels, in_channels, *kernel)``, in the layout of an ordinary
            (not transposed) convolution.
        """
        weight = self._weight()
        s = self.styles(w)
        expand = (1,) * self.spatial_dims
        modulated = weight[None] * s.reshape(len(s), 1, -1, *expand)
        if self.demodulate:
            d = modulated.square().sum(dim=tuple(range(2, modulated.ndim))).add(1e-8).rsqrt()
            modulated = modulated * d.reshape(*d.shape, 1, *expand)
        return modulated

    def _weight(self) -> torch.Tensor:
        # (out, in, *kernel) whatever the kind of convolution
        weight = self.conv.weight
        return weight.transpose(0, 1) if self.up else weight

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Convolve ``x`` ``(N, in_channels, *spatial)`` with weights modulated by ``w``
        ``(N, w_dim)``."""
        s = self.styles(w)
        expand = (1,) * self.spatial_dims
        out = self.conv(x * s.reshape(*s.shape, *expand))
        if self.demodulate:
            weight = self._weight()
            squared = weight.square().flatten(2).sum(2)  # (out, in)
            d = (s.square() @ squared.t()).add(1e-8).rsqrt()
            out = out * d.reshape(*d.shape, *expand)
        if self.up:
            # A stride-2 transposed 3x3 convolution gives 2n+1 samples per axis; the filter
            # (padded by one on each side) brings them to 2n.
            out = blur(out, (1, 1), gain=2.0 ** self.spatial_dims)
        return out


class SynthesisLayer(nn.Module):
    """One layer of the synthesis network: modulated 3x3 convolution, noise, bias, leaky
    ReLU.

    Parameters
    ----------
    spatial_dims : {2, 3}
        Number of spatial dimensions.
    in_channels, out_channels : int
        Channels in and out.
    w_dim : int
        Size of the latent ``w``.
    up : bool, default False
        Double the spatial size first.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.stylegan2.layers import SynthesisLayer
    >>> layer = SynthesisLayer(2, 4, 4, w_dim=8)
    >>> layer(torch.randn(2, 4, 8, 8), torch.randn(2, 8), torch.randn(2, 1, 8, 8)).shape
    torch.Size([2, 4, 8, 8])
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, w_dim: int,
                 *, up: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv(spatial_dims, in_channels, out_channels, 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None
                ) -> torch.Tensor:
        """Apply the layer; ``noise`` is ``(N, 1, *spatial_out)`` or None (no noise)."""
        x = self.conv(x, w)
        if noise is not None:
            x = x + noise * self.noise_strength
        return lrelu(x, self.bias)


class ToImage(nn.Module):
    """A modulated 1x1 convolution to image channels (no demodulation), plus a bias: the
    "tRGB" skip output of StyleGAN2 for any number of channels.

    Parameters
    ----------
    spatial_dims : {2, 3}
        Number of spatial dimensions.
    in_channels : int
        Feature channels.
    out_channels : int
        Image channels.
    w_dim : int
        Size of the latent ``w``.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.stylegan2.layers import ToImage
    >>> ToImage(2, 8, 1, w_dim=4)(torch.randn(2, 8, 4, 4), torch.randn(2, 4)).shape
    torch.Size([2, 1, 4, 4])
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, w_dim: int
                 ) -> None:
        super().__init__()
        self.conv = ModulatedConv(spatial_dims, in_channels, out_channels, 1, w_dim,
                                  demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Project features ``(N, in_channels, *spatial)`` to an image."""
        out = self.conv(x, w)
        return out + self.bias.reshape(1, -1, *([1] * (out.ndim - 2)))
