"""StyleGAN2's networks (Karras et al., CVPR 2020): the mapping network, the synthesis
network with skip outputs, the residual discriminator with minibatch standard deviation,
and the inversion encoder that maps images to W+.  One implementation for 2-D and 3-D."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ...errors import ConfigError, InputShapeError
from ...nn import conv, group_count
from ...utils import check_spatial_dims
from .layers import EqualizedLinear, SynthesisLayer, ToImage, blur, equalize, lrelu, upsample

__all__ = [
    "Discriminator",
    "Generator",
    "Inverter",
    "MappingNetwork",
    "ResidualTrunk",
    "SynthesisNetwork",
    "level_shapes",
]


def level_shapes(image_size: Sequence[int]) -> list[tuple[int, ...]]:
    """The spatial shapes of the resolution levels, from the constant input up to the image.

    The smallest side must be a power of two of at least 4; the first level has 4 samples
    along it, and every side is halved the same number of times.

    Parameters
    ----------
    image_size : sequence of int
        Spatial shape of the images.

    Returns
    -------
    list of tuple of int
        Shapes of every level, smallest first, the last one ``image_size``.

    Raises
    ------
    ValueError
        (as :class:`~latentaudit.errors.ConfigError`) for sizes that cannot be halved down
        to 4 samples on the smallest side.

    Examples
    --------
    >>> from latentaudit.encoders.stylegan2.networks import level_shapes
    >>> level_shapes((16, 32))
    [(4, 8), (8, 16), (16, 32)]
    """
    sizes = tuple(int(s) for s in image_size)
    smallest = min(sizes)
    halvings = int(round(math.log2(smallest))) - 2 if smallest >= 4 else -1
    if halvings < 0 or 4 * 2 ** halvings != smallest or any(s % 2 ** halvings
                                                            for s in sizes):
        raise ConfigError(
            f"StyleGAN2 needs an image size whose smallest side is a power of two >= 4 and "
            f"whose other sides it divides, got {sizes}; resize, pad or crop the images "
            f"(e.g. to 64 or 128 per side)")
    return [tuple(s // 2 ** (halvings - i) for s in sizes) for i in range(halvings + 1)]


def _normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * x.square().mean(dim=1, keepdim=True).add(eps).rsqrt()


class MappingNetwork(nn.Module):
    """The mapping network ``z -> w``: a normalisation of ``z`` then fully connected layers
    with leaky ReLU, at a reduced learning rate.

    It also keeps ``w_avg``, the running mean of ``w`` over training (the centre of the
    truncation trick and the start of an inversion).

    Parameters
    ----------
    z_dim, w_dim : int
        Sizes of ``z`` and ``w``.
    num_layers : int, default 8
        Fully connected layers.
    lr_multiplier : float, default 0.01
        Learning-rate multiplier of every layer (the paper's 0.01).
    w_avg_beta : float, default 0.995
        Decay of the running mean of ``w``.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.stylegan2.networks import MappingNetwork
    >>> MappingNetwork(8, 8, num_layers=2)(torch.randn(3, 8)).shape
    torch.Size([3, 8])
    """

    def __init__(self, z_dim: int, w_dim: int, num_layers: int = 8,
                 lr_multiplier: float = 0.01, w_avg_beta: float = 0.995) -> None:
        super().__init__()
        self.w_avg_beta = float(w_avg_beta)
        dims = [z_dim] + [w_dim] * num_layers
        self.layers = nn.ModuleList(EqualizedLinear(a, b, lr_multiplier=lr_multiplier)
                                    for a, b in zip(dims, dims[1:], strict=False))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, *, update_w_avg: bool = False) -> torch.Tensor:
        """Map ``z`` ``(N, z_dim)`` to ``w`` ``(N, w_dim)``; with ``update_w_avg`` fold the
        batch's mean into ``w_avg``."""
        x = _normalize_2nd_moment(z)
        for layer in self.layers:
            x = lrelu(layer(x))
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().float().mean(0).lerp(self.w_avg, self.w_avg_beta))
        return x


class SynthesisNetwork(nn.Module):
    """The synthesis network: a learned constant input, then per level two modulated
    convolutions (the first one upsampling) with noise, and skip outputs to image channels
    summed over the levels.

    Parameters
    ----------
    spatial_dims : {2, 3}
        Number of spatial dimensions.
    out_channels : int
        Image channels.
    image_size : sequence of int
        Spatial shape of the images (see :func:`level_shapes`).
    w_dim : int
        Size of ``w``.
    channels : sequence of int
        Feature channels at every level, smallest level first.

    Attributes
    ----------
    num_ws : int
        Number of ``w`` vectors the network takes (W+ has one per modulated layer, the
        skip outputs sharing theirs with the next level's first convolution).
    noise_shapes : list of tuple of int
        Spatial shape of the noise of every noise layer, in order.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.stylegan2.networks import SynthesisNetwork
    >>> net = SynthesisNetwork(2, 1, (16, 16), w_dim=8, channels=(8, 8, 4))
    >>> net.num_ws, net.noise_shapes
    (6, [(4, 4), (8, 8), (8, 8), (16, 16), (16, 16)])
    >>> noise = [torch.zeros(2, 1, *s) for s in net.noise_shapes]
    >>> net(torch.randn(2, 6, 8), noise).shape
    torch.Size([2, 1, 16, 16])
    """

    def __init__(self, spatial_dims: int, out_channels: int, image_size: Sequence[int],
                 w_dim: int, channels: Sequence[int]) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        shapes = level_shapes(image_size)
        if len(channels) != len(shapes):
            raise ConfigError(f"need one channel count per level ({len(shapes)}), got "
                              f"{len(channels)}")
        self.w_dim = int(w_dim)
        self.level_shapes = shapes
        self.constant = nn.Parameter(torch.randn(channels[0], *shapes[0]))
        self.layers = nn.ModuleList()
        self.to_images = nn.ModuleList()
        self.noise_shapes: list[tuple[int, ...]] = []
        previous = channels[0]
        for level, (shape, c) in enumerate(zip(shapes, channels, strict=True)):
            if level > 0:
                self.layers.append(SynthesisLayer(spatial_dims, previous, c, w_dim, up=True))
                self.noise_shapes.append(shape)
            self.layers.append(SynthesisLayer(spatial_dims, c, c, w_dim))
            self.noise_shapes.append(shape)
            self.to_images.append(ToImage(spatial_dims, c, out_channels, w_dim))
            previous = c
        self.num_ws = len(self.layers) + 1

    def forward(self, ws: torch.Tensor, noise: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """Render images from ``ws`` ``(N, num_ws, w_dim)`` and one noise tensor
        ``(N, 1, *shape)`` (or None for none) per noise layer."""
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise InputShapeError(f"the synthesis network takes ws of shape (N, {self.num_ws}, "
                                  f"{self.w_dim}), got {tuple(ws.shape)}")
        if len(noise) != len(self.noise_shapes):
            raise InputShapeError(f"the synthesis network takes {len(self.noise_shapes)} "
                                  f"noise tensors, got {len(noise)}")
        x = self.constant[None].expand(len(ws), *self.constant.shape)
        image = None
        layer_index = 0
        for level, to_image in enumerate(self.to_images):
            for _ in range(1 if level == 0 else 2):
                x = self.layers[layer_index](x, ws[:, layer_index], noise[layer_index])
                layer_index += 1
            skip = to_image(x, ws[:, layer_index])
            image = skip if image is None else upsample(image) + skip
        return image


class Generator(nn.Module):
    """StyleGAN2's generator: :class:`MappingNetwork` then :class:`SynthesisNetwork`, with
    style mixing and the truncation trick.

    Parameters
    ----------
    spatial_dims : {2, 3}
        Number of spatial dimensions.
    out_channels : int
        Image channels.
    image_size : sequence of int
        Spatial shape of the images.
    z_dim, w_dim : int
        Sizes of ``z`` and ``w``.
    channels : sequence of int
        Feature channels per level, smallest level first.
    mapping_layers : int, default 8
        Layers of the mapping network.
    mapping_lr_multiplier : float, default 0.01
        Learning-rate multiplier of the mapping network.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.stylegan2.networks import Generator
    >>> g = Generator(2, 1, (16, 16), z_dim=8, w_dim=8, channels=(8, 8, 4), mapping_layers=2)
    >>> gen = torch.Generator().manual_seed(0)
    >>> ws = g.ws(torch.randn(2, 8, generator=gen))
    >>> g.synthesis(ws, g.make_noise(2, generator=gen)).shape
    torch.Size([2, 1, 16, 16])
    """

    def __init__(self, spatial_dims: int, out_channels: int, image_size: Sequence[int],
                 z_dim: int, w_dim: int, channels: Sequence[int], mapping_layers: int = 8,
                 mapping_lr_multiplier: float = 0.01) -> None:
        super().__init__()
        self.z_dim = int(z_dim)
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers, mapping_lr_multiplier)
        self.synthesis = SynthesisNetwork(spatial_dims, out_channels, image_size, w_dim,
                                          channels)
        self.num_ws = self.synthesis.num_ws

    def truncate(self, ws: torch.Tensor, psi: float = 1.0) -> torch.Tensor:
        """The truncation trick: ``w_avg + psi * (ws - w_avg)`` (``psi=1`` changes nothing).

        Parameters
        ----------
        ws : torch.Tensor
            ``(N, w_dim)`` or ``(N, num_ws, w_dim)``.
        psi : float, default 1.0
            Truncation; 0 gives the average image, 1 the untruncated one.

        Returns
        -------
        torch.Tensor
        """
        if psi == 1.0:
            return ws
        return self.mapping.w_avg.to(ws.dtype).lerp(ws, float(psi))

    def ws(self, z: torch.Tensor, *, truncation: float = 1.0, mix_z: torch.Tensor | None = None,
           mix_cutoff: torch.Tensor | int | None = None, update_w_avg: bool = False
           ) -> torch.Tensor:
        """Latents ``z`` ``(N, z_dim)`` to ``ws`` ``(N, num_ws, w_dim)``, with style mixing.

        Parameters
        ----------
        z : torch.Tensor
            ``(N, z_dim)``.
        truncation : float, default 1.0
            Truncation ``psi``.
        mix_z : torch.Tensor, optional
            Second latents; from layer ``mix_cutoff`` on, the second ``w`` is used.
        mix_cutoff : int or torch.Tensor, optional
            Layer index of the crossover (one, or one per sample); ``num_ws`` means no mixing.
        update_w_avg : bool, default False
            Update the running mean of ``w`` (training).

        Returns
        -------
        torch.Tensor
        """
        w = self.truncate(self.mapping(z, update_w_avg=update_w_avg), truncation)
        ws = w[:, None].expand(-1, self.num_ws, -1)
        if mix_z is not None:
            w2 = self.truncate(self.mapping(mix_z), truncation)
            layer = torch.arange(self.num_ws, device=z.device)
            cutoff = torch.as_tensor(mix_cutoff, device=z.device).reshape(-1, 1)
            ws = torch.where((layer[None] >= cutoff)[..., None], w2[:, None], ws)
        return ws

    def make_noise(self, n: int, *, generator: torch.Generator | None = None,
                   device=None, zero: bool = False) -> list[torch.Tensor]:
        """One noise tensor ``(n, 1, *shape)`` per noise layer, standard normal or zero.

        Parameters
        ----------
        n : int
            Number of images.
        generator : torch.Generator, optional
            Source of the noise (drawn on its device, then moved to ``device``); ``None``
            uses a fresh default generator, never the global random state.
        device : torch.device, optional
            Where the noise goes (default: the generator network's device).
        zero : bool, default False
            All zeros (deterministic rendering).

        Returns
        -------
        list of torch.Tensor
        """
        device = self.synthesis.constant.device if device is None else device
        if zero:
            return [torch.zeros(n, 1, *s, device=device) for s in self.synthesis.noise_shapes]
        generator = torch.Generator() if generator is None else generator
        return [torch.randn(n, 1, *s, generator=generator, device=generator.device).to(device)
                for s in self.synthesis.noise_shapes]


class _DiscriminatorBlock(nn.Module):
    """Residual block that halves the size: 3x3 conv, blur + strided 3x3 conv, and a
    blurred strided 1x1 skip, summed with gain sqrt(1/2)."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = equalize(conv(spatial_dims, in_channels, in_channels, 3))
        self.conv1 = equalize(conv(spatial_dims, in_channels, out_channels, 3, stride=2,
                                   padding=0))
        self.skip = equalize(conv(spatial_dims, in_channels, out_channels, 1, stride=2,
                                  padding=0, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip(blur(x, (1, 1)))
        x = lrelu(self.conv0(x))
        x = lrelu(self.conv1(blur(x, (2, 2))))
        return (x + skip) * math.sqrt(0.5)


class ResidualTrunk(nn.Module):
    """The residual downsampling trunk shared by the discriminator and the inversion
    encoder: a 1x1 convolution from the image, then one :class:`_DiscriminatorBlock` per
    level down to the smallest level.

    Parameters
    ----------
    spatial_dims : {2, 3}
        Number of spatial dimensions.
    in_channels : int
        Image channels.
    image_size : sequence of int
        Spatial shape of the images.
    channels : sequence of int
        Feature channels per level, smallest level first (as for the generator).

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.stylegan2.networks import ResidualTrunk
    >>> trunk = ResidualTrunk(2, 1, (16, 16), channels=(8, 8, 4))
    >>> [tuple(f.shape) for f in trunk(torch.randn(2, 1, 16, 16))]
    [(2, 4, 16, 16), (2, 8, 8, 8), (2, 8, 4, 4)]
    """

    def __init__(self, spatial_dims: int, in_channels: int, image_size: Sequence[int],
                 channels: Sequence[int]) -> None:
        super().__init__()
        self.level_shapes = level_shapes(image_size)
        channels = tuple(channels)
        self.from_image = equalize(conv(spatial_dims, in_channels, channels[-1], 1))
        self.blocks = nn.ModuleList(
            _DiscriminatorBlock(spatial_dims, channels[i], channels[i - 1])
            for i in range(len(channels) - 1, 0, -1))
        self.out_channels = channels[0]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features at every level, the image's level first."""
        x = lrelu(self.from_image(x))
        features = [x]
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features


def minibatch_stddev(x: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """Append the minibatch standard deviation as one more channel (Karras et al., 2018).

    Samples are split into groups (sample ``i`` in group ``i % (N / G)``, with ``G`` the
    largest divisor of ``N`` not above ``group_size``); the standard deviation of every
    feature over its group, averaged over channels and positions, is appended to every
    sample of the group.

    Parameters
    ----------
    x : torch.Tensor
        ``(N, C, *spatial)``.
    group_size : int, default 4
        Largest group.

    Returns
    -------
    torch.Tensor
        ``(N, C + 1, *spatial)``.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.stylegan2.networks import minibatch_stddev
    >>> minibatch_stddev(torch.randn(6, 3, 4, 4)).shape
    torch.Size([6, 4, 4, 4])
    """
    n = x.shape[0]
    group = group_count(n, group_size)
    y = x.reshape(group, -1, *x.shape[1:]).float()
    y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt()
    y = y.flatten(1).mean(1).to(x.dtype)  # (N / G,)
    y = y.reshape(-1, 1, *([1] * (x.ndim - 2))).repeat(group, 1, *x.shape[2:])
    return torch.cat([x, y], dim=1)


class Discriminator(nn.Module):
    """StyleGAN2's residual discriminator with a minibatch standard deviation layer.

    Parameters
    ----------
    spatial_dims : {2, 3}
        Number of spatial dimensions.
    in_channels : int
        Image channels.
    image_size : sequence of int
        Spatial shape of the images.
    channels : sequence of int
        Feature channels per level, smallest level first.
    mbstd_group_size : int, default 4
        Group size of :func:`minibatch_stddev`.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.stylegan2.networks import Discriminator
    >>> d = Discriminator(2, 1, (16, 16), channels=(8, 8, 4))
    >>> d(torch.randn(4, 1, 16, 16)).shape
    torch.Size([4])
    """

    def __init__(self, spatial_dims: int, in_channels: int, image_size: Sequence[int],
                 channels: Sequence[int], mbstd_group_size: int = 4) -> None:
        super().__init__()
        self.mbstd_group_size = int(mbstd_group_size)
        self.trunk = ResidualTrunk(spatial_dims, in_channels, image_size, channels)
        c = channels[0]
        self.conv = equalize(conv(spatial_dims, c + 1, c, 3))
        self.fc = EqualizedLinear(c * math.prod(self.trunk.level_shapes[0]), c)
        self.out = EqualizedLinear(c, 1)

    def forward(self, x: torch.Tensor, *, return_features: bool = False):
        """Logits ``(N,)`` of images ``(N, C, *spatial)`` being real; with
        ``return_features`` also the trunk's features at every level."""
        features = self.trunk(x)
        h = minibatch_stddev(features[-1], self.mbstd_group_size)
        h = lrelu(self.conv(h))
        h = lrelu(self.fc(h.flatten(1)))
        logits = self.out(h).squeeze(1)
        return (logits, features) if return_features else logits


class Inverter(nn.Module):
    """The inversion encoder: images to W+ (pSp/e4e style) through a :class:`ResidualTrunk`.

    ``w`` comes from the features of the smallest level (flattened, a fully connected
    layer, then a linear head, as an offset from the generator's ``w_avg``); the W+
    residual of every layer from the features of the level that layer renders (averaged
    over positions, then a linear head, zero at the start so that training starts from
    single-``w`` inversion), as pSp maps a feature pyramid to styles.

    Parameters
    ----------
    spatial_dims : {2, 3}
        Number of spatial dimensions.
    in_channels : int
        Image channels.
    image_size : sequence of int
        Spatial shape of the images.
    channels : sequence of int
        Feature channels per level, smallest level first.
    w_dim : int
        Size of ``w``.
    num_ws : int
        Number of ``w`` vectors of the generator.
    w_plus : bool, default True
        Predict per-layer residuals (W+); otherwise all layers get the same ``w``.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.stylegan2.networks import Inverter
    >>> inv = Inverter(2, 1, (16, 16), channels=(8, 8, 4), w_dim=8, num_ws=6)
    >>> inv(torch.randn(2, 1, 16, 16), w_avg=torch.zeros(8)).shape
    torch.Size([2, 6, 8])
    """

    def __init__(self, spatial_dims: int, in_channels: int, image_size: Sequence[int],
                 channels: Sequence[int], w_dim: int, num_ws: int, w_plus: bool = True
                 ) -> None:
        super().__init__()
        self.num_ws, self.w_dim = int(num_ws), int(w_dim)
        self.trunk = ResidualTrunk(spatial_dims, in_channels, image_size, channels)
        levels = len(channels)
        c = channels[0]
        # at least 128 wide, so that a small w_dim is not also a bottleneck before it
        hidden = max(w_dim, 128)
        self.fc = EqualizedLinear(c * math.prod(self.trunk.level_shapes[0]), hidden)
        self.to_w = EqualizedLinear(hidden, w_dim)
        with torch.no_grad():
            self.to_w.parametrizations.weight.original.mul_(0.1)
        # ws index j drives a layer of level (j + 1) // 2 (the last one: the top level's
        # skip output); the trunk lists the image's level first.
        self.levels = [min((j + 1) // 2, levels - 1) for j in range(self.num_ws)]
        self.to_residual = None
        if w_plus:
            self.to_residual = nn.ModuleList(
                EqualizedLinear(channels[level], w_dim) for level in self.levels)
            with torch.no_grad():
                for head in self.to_residual:
                    head.parametrizations.weight.original.zero_()

    def forward(self, x: torch.Tensor, w_avg: torch.Tensor) -> torch.Tensor:
        """W+ ``(N, num_ws, w_dim)`` of images ``(N, C, *spatial)``."""
        features = self.trunk(x)[::-1]  # smallest level first
        w = (self.to_w(lrelu(self.fc(features[0].flatten(1)))) + w_avg)[:, None]
        if self.to_residual is None:
            return w.expand(-1, self.num_ws, -1)
        pooled = [f.flatten(2).mean(2) for f in features]
        residual = torch.stack([head(pooled[level]) for head, level
                                in zip(self.to_residual, self.levels, strict=True)], dim=1)
        return w + residual
