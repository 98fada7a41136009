"""Layer factories chosen by ``spatial_dims``, so every network is written once for 2-D
and 3-D (the habit of MONAI's ``monai.networks.layers.factories``)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..utils import check_option, check_spatial_dims

__all__ = [
    "Attention",
    "Downsample",
    "GroupNorm",
    "Upsample",
    "conv",
    "conv_transpose",
    "group_count",
    "group_norm",
    "norm",
    "norm_removes_bias",
    "pool",
    "timestep_embedding",
]

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
#: What :func:`conv` (and every network built from it) may pad with.
PADDING_MODES = ("zeros", "replicate", "reflect")
_CONV_T = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_POOL = {
    "max": {2: nn.MaxPool2d, 3: nn.MaxPool3d},
    "avg": {2: nn.AvgPool2d, 3: nn.AvgPool3d},
    "adaptive_max": {2: nn.AdaptiveMaxPool2d, 3: nn.AdaptiveMaxPool3d},
    "adaptive_avg": {2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d},
}
NORMS = ("group", "batch", "instance", "layer", "none")


def conv(spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int = 3,
         stride: int = 1, padding: int | None = None, bias: bool = True,
         padding_mode: str = "zeros") -> nn.Module:
    """A 2-D or 3-D convolution, padded to keep the size by default.

    Parameters
    ----------
    spatial_dims : {2, 3}
        Number of spatial dimensions.
    in_channels, out_channels : int
        Channels in and out.
    kernel_size : int, default 3
        Kernel side.
    stride : int, default 1
        Stride.
    padding : int, optional
        Zero padding; default ``kernel_size // 2`` ("same" for odd kernels at stride 1).
    bias : bool, default True
        Add a learnable bias.
    padding_mode : {"zeros", "replicate", "reflect"}, default "zeros"
        What the padding holds: zeros, or the border pixels repeated or mirrored.

    Returns
    -------
    torch.nn.Module
        ``nn.Conv2d`` or ``nn.Conv3d``.

    Examples
    --------
    >>> from latentaudit.nn import conv
    >>> conv(3, 1, 8)
    Conv3d(1, 8, kernel_size=(3, 3, 3), stride=(1, 1, 1), padding=(1, 1, 1))
    """
    spatial_dims = check_spatial_dims(spatial_dims)
    check_option("padding_mode", padding_mode, PADDING_MODES)
    if padding is None:
        padding = kernel_size // 2
    return _CONV[spatial_dims](in_channels, out_channels, kernel_size, stride=stride,
                               padding=padding, bias=bias, padding_mode=padding_mode)


def conv_transpose(spatial_dims: int, in_channels: int, out_channels: int,
                   kernel_size: int = 4, stride: int = 2, padding: int = 1,
                   bias: bool = True) -> nn.Module:
    """A 2-D or 3-D transposed convolution (by default doubling the size).

    Parameters
    ----------
    spatial_dims : {2, 3}
        Number of spatial dimensions.
    in_channels, out_channels : int
        Channels in and out.
    kernel_size, stride, padding : int
        As in :class:`torch.nn.ConvTranspose2d`; the defaults (4, 2, 1) double every side.
    bias : bool, default True
        Add a learnable bias.

    Returns
    -------
    torch.nn.Module
    """
    spatial_dims = check_spatial_dims(spatial_dims)
    return _CONV_T[spatial_dims](in_channels, out_channels, kernel_size, stride=stride,
                                 padding=padding, bias=bias)


def group_count(channels: int, max_groups: int = 32) -> int:
    """The largest number of groups ``<= max_groups`` that divides ``channels``.

    Parameters
    ----------
    channels : int
        Number of channels.
    max_groups : int, default 32
        Upper bound (32 as in ADM and most diffusion UNets).

    Returns
    -------
    int
    """
    for groups in range(min(max_groups, channels), 0, -1):
        if channels % groups == 0:
            return groups
    return 1


def group_norm(x: torch.Tensor, num_groups: int, weight: torch.Tensor | None = None,
               bias: torch.Tensor | None = None, eps: float = 1e-5) -> torch.Tensor:
    """:func:`torch.nn.functional.group_norm` that keeps channels-last inputs fast on CPUs.

    PyTorch's CPU kernel for the backward pass of group norm is many times slower on a
    channels-last bfloat16 (or float16) tensor than on a contiguous one (measured with
    torch 2.14 on 2 cores: a 16x32x64x64 batch 30 ms against 0.8 ms), and the training
    loop trains convolutional models in channels-last on the CPU unless a model prefers
    otherwise (``channels_last_on_cpu``). Such an input is normalised in the contiguous
    layout and handed back in channels-last; the result is the same up to rounding.
    Float32 inputs, where the two layout copies cost about what they save, and everything
    else go to PyTorch unchanged.

    Parameters
    ----------
    x : torch.Tensor
        ``(N, C, *spatial)``.
    num_groups : int
        Groups of channels.
    weight, bias : torch.Tensor, optional
        Per-channel scale and shift.
    eps : float, default 1e-5
        Numerical guard.

    Returns
    -------
    torch.Tensor
        In the memory layout of ``x``.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.nn import group_norm
    >>> x = torch.randn(2, 8, 4, 4, dtype=torch.bfloat16)
    >>> y = group_norm(x.contiguous(memory_format=torch.channels_last), 4)
    >>> y.is_contiguous(memory_format=torch.channels_last)
    True
    """
    layout = _channels_last_format(x)
    if layout is None or x.device.type != "cpu" or x.dtype not in (torch.bfloat16,
                                                                   torch.float16):
        return F.group_norm(x, num_groups, weight, bias, eps)
    y = F.group_norm(x.contiguous(), num_groups, weight, bias, eps)
    return y.contiguous(memory_format=layout)


def _channels_last_format(x: torch.Tensor):
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(
            memory_format=torch.channels_last):
        return torch.channels_last
    if x.dim() == 5 and not x.is_contiguous() and x.is_contiguous(
            memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    return None


class GroupNorm(nn.GroupNorm):
    """:class:`torch.nn.GroupNorm` computed by :func:`group_norm` (fast for channels-last
    inputs on CPUs); same parameters and state dict.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.nn import GroupNorm
    >>> GroupNorm(2, 4)(torch.randn(1, 4, 3, 3)).shape
    torch.Size([1, 4, 3, 3])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


def norm(kind: str, spatial_dims: int, channels: int, num_groups: int = 32,
         affine: bool = True, eps: float = 1e-5) -> nn.Module:
    """A normalisation layer for ``(N, C, *spatial)`` tensors.

    Parameters
    ----------
    kind : {"group", "batch", "instance", "layer", "none"}
        ``"layer"`` is GroupNorm with one group (normalises over channels and space).
    spatial_dims : {2, 3}
        Number of spatial dimensions.
    channels : int
        Number of channels.
    num_groups : int, default 32
        For ``"group"``: upper bound on the groups; the largest divisor of ``channels``
        not above it is used.
    affine : bool, default True
        Learnable scale and shift.
    eps : float, default 1e-5
        Numerical guard.

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    ValueError
        For an unknown ``kind`` (with a suggestion).
    """
    check_option("norm", kind, NORMS)
    spatial_dims = check_spatial_dims(spatial_dims)
    if kind == "group":
        return GroupNorm(group_count(channels, num_groups), channels, eps=eps, affine=affine)
    if kind == "layer":
        return GroupNorm(1, channels, eps=eps, affine=affine)
    if kind == "batch":
        cls = nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d
        return cls(channels, eps=eps, affine=affine)
    if kind == "instance":
        cls = nn.InstanceNorm2d if spatial_dims == 2 else nn.InstanceNorm3d
        return cls(channels, eps=eps, affine=affine)
    return nn.Identity()


def norm_removes_bias(layer: nn.Module) -> bool:
    """Whether the normalisation ``layer`` subtracts a mean of each channel on its own, so a
    per-channel bias added to its input has no effect on its output.

    A convolution followed by such a layer should have no bias: that bias's gradient is
    zero plus rounding noise, which Adam's normalised update turns into steps of the size
    of the learning rate whose sign the summation order decides (the number of threads,
    of processes, the batch split), so runs that should agree to rounding drift apart.

    Parameters
    ----------
    layer : torch.nn.Module
        A layer made by :func:`norm` (or any module).

    Returns
    -------
    bool
        True for batch norm, instance norm, and group norm with one channel per group.

    Examples
    --------
    >>> from latentaudit.nn import norm, norm_removes_bias
    >>> norm_removes_bias(norm("group", 2, 16)), norm_removes_bias(norm("group", 2, 64))
    (True, False)
    """
    if isinstance(layer, nn.GroupNorm):
        return layer.num_groups == layer.num_channels
    return isinstance(layer, (nn.modules.batchnorm._BatchNorm,
                              nn.modules.instancenorm._InstanceNorm))


def pool(kind: str, spatial_dims: int, kernel_size: int | None = 2,
         output_size: int = 1) -> nn.Module:
    """A pooling layer.

    Parameters
    ----------
    kind : {"max", "avg", "adaptive_max", "adaptive_avg"}
        The pooling.
    spatial_dims : {2, 3}
        Number of spatial dimensions.
    kernel_size : int, default 2
        Window (and stride) of ``"max"`` and ``"avg"``.
    output_size : int, default 1
        Output side of the adaptive kinds (1: global pooling).

    Returns
    -------
    torch.nn.Module
    """
    check_option("pool", kind, tuple(_POOL))
    spatial_dims = check_spatial_dims(spatial_dims)
    cls = _POOL[kind][spatial_dims]
    if kind.startswith("adaptive"):
        return cls(output_size)
    return cls(kernel_size)


class Downsample(nn.Module):
    """Halve every spatial side, by a strided convolution or by average pooling.

    Parameters
    ----------
    spatial_dims : {2, 3}
        Number of spatial dimensions.
    channels : int
        Input channels.
    out_channels : int, optional
        Output channels (default: ``channels``).  With ``mode="avg"`` a 1x1 convolution
        changes the channels when they differ.
    mode : {"conv", "avg"}, default "conv"
        Strided 3x3 convolution (learned) or average pooling.
    """

    def __init__(self, spatial_dims: int, channels: int, out_channels: int | None = None,
                 mode: str = "conv") -> None:
        super().__init__()
        check_option("mode", mode, ("conv", "avg"))
        out_channels = out_channels or channels
        if mode == "conv":
            self.op = conv(spatial_dims, channels, out_channels, 3, stride=2, padding=1)
        else:
            layers = [pool("avg", spatial_dims, 2)]
            if out_channels != channels:
                layers.append(conv(spatial_dims, channels, out_channels, 1))
            self.op = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Downsample ``x`` of shape ``(N, C, *spatial)`` by 2 along every spatial axis."""
        return self.op(x)


class Upsample(nn.Module):
    """Double every spatial side, by nearest-neighbour interpolation followed by a
    convolution, or by a transposed convolution.

    Parameters
    ----------
    spatial_dims : {2, 3}
        Number of spatial dimensions.
    channels : int
        Input channels.
    out_channels : int, optional
        Output channels (default: ``channels``).
    mode : {"nearest", "nearest_noconv", "transpose"}, default "nearest"
        ``"nearest"`` interpolates then applies a 3x3 convolution (no checkerboard
        artefacts); ``"nearest_noconv"`` only interpolates (channels must not change);
        ``"transpose"`` uses a learned transposed convolution.
    bias : bool, default True
        Whether the convolution has a bias (leave it out before a normalisation that
        removes it, see :func:`norm_removes_bias`).
    """

    def __init__(self, spatial_dims: int, channels: int, out_channels: int | None = None,
                 mode: str = "nearest", bias: bool = True) -> None:
        super().__init__()
        check_option("mode", mode, ("nearest", "nearest_noconv", "transpose"))
        out_channels = out_channels or channels
        self.mode = mode
        if mode == "nearest":
            self.op = conv(spatial_dims, channels, out_channels, 3, bias=bias)
        elif mode == "transpose":
            self.op = conv_transpose(spatial_dims, channels, out_channels, bias=bias)
        else:
            if out_channels != channels:
                raise ConfigError("Upsample(mode='nearest_noconv') cannot change the number "
                                  f"of channels ({channels} -> {out_channels})")
            self.op = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample ``x`` of shape ``(N, C, *spatial)`` by 2 along every spatial axis."""
        if self.mode != "transpose":
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.op(x)


class Attention(nn.Module):
    """Multi-head self-attention over all spatial positions, with a residual connection.

    The ADM/DDPM attention block for 2-D and 3-D feature maps: group norm, a 1x1
    projection to queries, keys and values, :func:`torch.nn.functional.
    scaled_dot_product_attention` (flash or memory-efficient kernels where the device
    has them), a zero-initialised output projection, and ``x + out``.

    Parameters
    ----------
    spatial_dims : {2, 3}
        Number of spatial dimensions.
    channels : int
        Channels of the feature map.
    num_heads : int, default 1
        Attention heads; must divide ``channels`` (ignored when ``head_channels`` is set).
    head_channels : int, optional
        Channels per head; sets the number of heads to ``channels // head_channels``.
    num_groups : int, default 32
        Upper bound on the group norm's groups.
    """

    def __init__(self, spatial_dims: int, channels: int, num_heads: int = 1,
                 head_channels: int | None = None, num_groups: int = 32) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        if head_channels is not None:
            if channels % head_channels:
                raise ConfigError(f"head_channels ({head_channels}) must divide channels "
                                  f"({channels})")
            num_heads = channels // head_channels
        if num_heads < 1 or channels % num_heads:
            raise ConfigError(f"num_heads ({num_heads}) must be >= 1 and divide channels "
                              f"({channels})")
        self.num_heads = num_heads
        self.norm = norm("group", spatial_dims, channels, num_groups)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = nn.Conv1d(channels, channels, 1)
        # Zero output projection: the block starts as the identity (as in ADM).
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply attention to ``x`` of shape ``(N, C, *spatial)``; same shape out."""
        n, c, *spatial = x.shape
        h = self.norm(x).reshape(n, c, -1)
        q, k, v = self.qkv(h).reshape(n, 3, self.num_heads, c // self.num_heads, -1).unbind(1)
        # SDPA wants (N, heads, L, head_dim)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2),
                                             v.transpose(-1, -2))
        out = out.transpose(-1, -2).reshape(n, c, -1)
        return x + self.proj(out).reshape(n, c, *spatial)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps, as in DDPM/ADM.

    Parameters
    ----------
    t : torch.Tensor
        ``(N,)`` timesteps.
    dim : int
        Embedding size.
    max_period : float, default 10000
        Lowest frequency's period.

    Returns
    -------
    torch.Tensor
        ``(N, dim)`` float32.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32,
                                                           device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb
