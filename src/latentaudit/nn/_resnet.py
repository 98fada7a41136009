"""ResNet classifiers for 2-D images and 3-D volumes, written once through the layer
factories (the supervised baseline of Graf et al. (2024) is a ResNet10)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..utils import check_option, check_spatial_dims
from ._factories import PADDING_MODES, conv, norm, pool

__all__ = ["RESNET_LAYERS", "BasicBlock", "ResNet", "resnet10", "resnet18", "resnet34"]

#: Residual blocks per stage of the named architectures (all with :class:`BasicBlock`).
RESNET_LAYERS = {
    "resnet10": (1, 1, 1, 1),
    "resnet18": (2, 2, 2, 2),
    "resnet34": (3, 4, 6, 3),
}
_STEMS = ("standard", "strided", "small")


class _HalvingPool(nn.Module):
    """2x2 (2x2x2) average pooling to ``ceil(n / 2)`` per side, the size a 3x3 convolution
    of stride 2 and padding 1 gives: odd sides (and sides of 1) are first extended by one
    replicated row."""

    def __init__(self, spatial_dims: int) -> None:
        super().__init__()
        self.pool = pool("avg", spatial_dims, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        for size in reversed(x.shape[2:]):
            pads += [0, size % 2]
        if any(pads):
            x = F.pad(x, pads, mode="replicate")
        return self.pool(x)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (He et al., 2016).

    Parameters
    ----------
    spatial_dims : {2, 3}
        Number of spatial dimensions.
    in_channels, out_channels : int
        Channels in and out.
    stride : int, default 1
        Stride of the first convolution; 2 halves every spatial side.
    norm_kind : str, default "batch"
        Normalisation after each convolution (see :func:`latentaudit.nn.norm`).
    padding_mode : {"zeros", "replicate", "reflect"}, default "zeros"
        What the 3x3 convolutions pad with (see :class:`ResNet`).

    Examples
    --------
    >>> import torch
    >>> from latentaudit.nn import BasicBlock
    >>> BasicBlock(2, 4, 8, stride=2)(torch.zeros(1, 4, 16, 16)).shape
    torch.Size([1, 8, 8, 8])
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 stride: int = 1, norm_kind: str = "batch",
                 padding_mode: str = "zeros") -> None:
        super().__init__()
        # No bias before a normalisation that has its own shift.
        bias = norm_kind == "none"
        self.conv1 = conv(spatial_dims, in_channels, out_channels, 3, stride=stride, bias=bias,
                          padding_mode=padding_mode)
        self.norm1 = norm(norm_kind, spatial_dims, out_channels)
        self.conv2 = conv(spatial_dims, out_channels, out_channels, 3, bias=bias,
                          padding_mode=padding_mode)
        self.norm2 = norm(norm_kind, spatial_dims, out_channels)
        self.act = nn.ReLU(inplace=True)
        if stride not in (1, 2):
            raise ConfigError(f"stride must be 1 or 2, got {stride!r}")
        shortcut: list[nn.Module] = []
        if stride != 1:
            # Average pooling then a 1x1 convolution (ResNet-D) rather than a strided 1x1
            # convolution: no input pixel is skipped, and it avoids a crash of PyTorch's
            # CPU backward pass for strided 1x1 convolutions in channels-last format.
            shortcut.append(_HalvingPool(spatial_dims))
        if stride != 1 or in_channels != out_channels:
            shortcut += [conv(spatial_dims, in_channels, out_channels, 1, padding=0, bias=bias),
                         norm(norm_kind, spatial_dims, out_channels)]
        self.shortcut = nn.Sequential(*shortcut) if shortcut else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``x`` of shape ``(N, C, *spatial)``."""
        out = self.act(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class ResNet(nn.Module):
    """A ResNet classifier for images ``(N, C, H, W)`` or volumes ``(N, C, D, H, W)``.

    A stem, four stages of :class:`BasicBlock` (each after the first halves the spatial
    size and widens the channels), global average pooling and a linear layer giving one
    logit per class.  ``layers=(1, 1, 1, 1)`` is the ResNet10 that Graf et al. (2024) used
    as the supervised reference; :func:`resnet18` and :func:`resnet34` give the deeper ones.

    Parameters
    ----------
    spatial_dims : {2, 3}, default 2
        2 for images, 3 for volumes.
    in_channels : int, default 1
        Image channels.
    num_classes : int, default 2
        Number of outputs (logits).
    layers : sequence of int, default (1, 1, 1, 1)
        Residual blocks per stage; the number of stages is ``len(layers)``.
    widths : sequence of int, default (64, 128, 256, 512)
        Channels of each stage (one per entry of ``layers``).
    norm : str, default "batch"
        Normalisation (see :func:`latentaudit.nn.norm`); "group" or "instance" suit tiny
        batches of 3-D volumes.
    stem : {"standard", "strided", "small"}, default "standard"
        ``"standard"``: a 7x7 convolution of stride 2 and a 2x2 max pooling (the map
        entering the first stage is a quarter of the input's side).  ``"strided"``: the
        same convolution without the max pooling (half the input's side, as MONAI's
        ``no_max_pool``): finer maps in the first stages, e.g. 16^3 instead of 8^3 for a
        32^3 volume, at over twice the cost (on the 3-D demo cohort their class
        activation maps pointed worse, see :class:`latentaudit.Explainer`'s Notes).
        ``"small"``: one 3x3 convolution of stride 1 (the full side), for small inputs
        such as 28x28 or 32x32 images.
    zero_init_residual : bool, default True
        Start every block's last normalisation scale at zero, so each block begins as the
        identity; short trainings converge faster.
    padding_mode : {"zeros", "replicate", "reflect"}, default "zeros"
        What every convolution pads its input with.  ``"zeros"`` makes each side of the
        image an edge wherever the background is not zero (images scaled to [-1, 1] with
        a background of -1): the first layers respond to the borders of the field of view,
        and class activation maps can peak there, away from any evidence.
        ``"replicate"`` repeats the border pixels (voxels), so the field of view's edge
        looks like more of the background (``"reflect"`` mirrors them; not measured).

    Attributes
    ----------
    stem : torch.nn.Module
        The first convolution (and pooling).
    stages : torch.nn.ModuleList
        The residual stages; ``stages[i]``'s output is a natural Grad-CAM target layer.
    head : torch.nn.Linear
        The classification layer.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError`) for an invalid option.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.nn import ResNet
    >>> net = ResNet(spatial_dims=3, num_classes=3, widths=(4, 8, 8, 16))
    >>> net(torch.zeros(2, 1, 16, 16, 16)).shape
    torch.Size([2, 3])
    """

    def __init__(self, spatial_dims: int = 2, in_channels: int = 1, num_classes: int = 2,
                 layers: Sequence[int] = (1, 1, 1, 1),
                 widths: Sequence[int] = (64, 128, 256, 512), norm: str = "batch",
                 stem: str = "standard", zero_init_residual: bool = True,
                 padding_mode: str = "zeros") -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        layers = _positive_ints("layers", layers)
        widths = _positive_ints("widths", widths)
        if len(layers) != len(widths):
            raise ConfigError(f"layers and widths need one entry per stage, got "
                              f"{len(layers)} layers {layers} and {len(widths)} widths {widths}")
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        check_option("stem", stem, _STEMS)
        check_option("padding_mode", padding_mode, PADDING_MODES)
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)
        self.layers = layers
        self.widths = widths
        self.norm_kind = norm
        self.stem_kind = stem
        self.padding_mode = padding_mode

        bias = norm == "none"
        if stem in ("standard", "strided"):
            parts = [
                conv(spatial_dims, in_channels, widths[0], 7, stride=2, padding=3, bias=bias,
                     padding_mode=padding_mode),
                _norm_layer(norm, spatial_dims, widths[0]), nn.ReLU(inplace=True)]
            if stem == "standard":
                parts.append(pool("max", spatial_dims, 2))
            self.stem = nn.Sequential(*parts)
        else:
            self.stem = nn.Sequential(
                conv(spatial_dims, in_channels, widths[0], 3, bias=bias,
                     padding_mode=padding_mode),
                _norm_layer(norm, spatial_dims, widths[0]), nn.ReLU(inplace=True))
        stages = []
        previous = widths[0]
        for i, (n_blocks, width) in enumerate(zip(layers, widths, strict=True)):
            stride = 1 if i == 0 else 2
            blocks = [BasicBlock(spatial_dims, previous, width, stride, norm, padding_mode)]
            blocks += [BasicBlock(spatial_dims, width, width, 1, norm, padding_mode)
                       for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
            previous = width
        self.stages = nn.ModuleList(stages)
        self.pool = pool("adaptive_avg", spatial_dims)
        self.head = nn.Linear(previous, num_classes)
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, BasicBlock) and getattr(module.norm2, "weight", None) \
                        is not None:
                    nn.init.zeros_(module.norm2.weight)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features before the classification layer, ``(N, widths[-1])``."""
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return torch.flatten(self.pool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of images ``(N, in_channels, *spatial)``."""
        return self.head(self.features(x))

    def extra_repr(self) -> str:
        return (f"spatial_dims={self.spatial_dims}, in_channels={self.in_channels}, "
                f"num_classes={self.num_classes}, layers={self.layers}, widths={self.widths}, "
                f"norm={self.norm_kind!r}, stem={self.stem_kind!r}, "
                f"padding_mode={self.padding_mode!r}")


def _norm_layer(kind: str, spatial_dims: int, channels: int) -> nn.Module:
    # ResNet.__init__'s ``norm`` argument hides the factory of the same name there.
    return norm(kind, spatial_dims, channels)


def _positive_ints(name: str, values) -> tuple[int, ...]:
    if isinstance(values, (int, np.integer)) or not len(values):
        raise ConfigError(f"{name} must be a non-empty sequence of positive integers, "
                          f"got {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ConfigError(f"{name} must hold positive integers, got {tuple(values)!r}")
        out.append(int(v))
    return tuple(out)


def _named(arch: str, **kwargs) -> ResNet:
    return ResNet(layers=RESNET_LAYERS[arch], **kwargs)


def resnet10(spatial_dims: int = 2, in_channels: int = 1, num_classes: int = 2,
             **kwargs) -> ResNet:
    """ResNet10: one :class:`BasicBlock` per stage.

    Parameters
    ----------
    spatial_dims : {2, 3}, default 2
        2 for images, 3 for volumes.
    in_channels : int, default 1
        Image channels.
    num_classes : int, default 2
        Number of outputs.
    **kwargs
        ``widths``, ``norm``, ``stem``, ``zero_init_residual`` of :class:`ResNet`.

    Returns
    -------
    ResNet

    Examples
    --------
    >>> from latentaudit.nn import resnet10
    >>> resnet10(num_classes=4, widths=(8, 16, 32, 64)).layers
    (1, 1, 1, 1)
    """
    return _named("resnet10", spatial_dims=spatial_dims, in_channels=in_channels,
                  num_classes=num_classes, **kwargs)


def resnet18(spatial_dims: int = 2, in_channels: int = 1, num_classes: int = 2,
             **kwargs) -> ResNet:
    """ResNet18: two :class:`BasicBlock` per stage.  Parameters as for :func:`resnet10`.

    Returns
    -------
    ResNet

    Examples
    --------
    >>> from latentaudit.nn import resnet18
    >>> resnet18(widths=(8, 16, 32, 64)).layers
    (2, 2, 2, 2)
    """
    return _named("resnet18", spatial_dims=spatial_dims, in_channels=in_channels,
                  num_classes=num_classes, **kwargs)


def resnet34(spatial_dims: int = 2, in_channels: int = 1, num_classes: int = 2,
             **kwargs) -> ResNet:
    """ResNet34: (3, 4, 6, 3) :class:`BasicBlock` per stage.  Parameters as for
    :func:`resnet10`.

    Returns
    -------
    ResNet

    Examples
    --------
    >>> from latentaudit.nn import resnet34
    >>> resnet34(widths=(8, 16, 32, 64)).layers
    (3, 4, 6, 3)
    """
    return _named("resnet34", spatial_dims=spatial_dims, in_channels=in_channels,
                  num_classes=num_classes, **kwargs)
