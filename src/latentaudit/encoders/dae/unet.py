"""ADM-style UNet blocks for the Diffusion Autoencoder, written once for 2-D and 3-D.

The decoder is the conditional UNet of Preechakul et al. (CVPR 2022): residual blocks whose
second group norm is modulated by the timestep (a scale and a shift) and by the semantic
code ``z_sem`` (an extra scale), self-attention at chosen resolutions, dropout, and residual
blocks that resample ("resblock up/down", as in BigGAN and ADM).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...nn import (
    Attention,
    Downsample,
    Upsample,
    conv,
    group_count,
    group_norm,
    norm,
    timestep_embedding,
)
from ...utils import check_spatial_dims

__all__ = ["ConditionalUNet", "ResBlock", "level_sizes"]


def level_sizes(image_size: int | Sequence[int], n_levels: int) -> list[int]:
    """The feature-map side (the largest spatial side) at every level of a UNet.

    Parameters
    ----------
    image_size : int or sequence of int
        The input's spatial size.
    n_levels : int
        Number of resolution levels (level ``i`` is downsampled ``i`` times).

    Returns
    -------
    list of int
        ``max(image_size) // 2**i`` for every level.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError`) when a side cannot be halved
        ``n_levels - 1`` times.
    """
    sizes = (image_size,) * 1 if isinstance(image_size, int) else tuple(image_size)
    factor = 2 ** (n_levels - 1)
    for side in sizes:
        if side % factor:
            raise ConfigError(
                f"image_size {tuple(sizes)} must be divisible by 2**(levels - 1) = {factor} for "
                f"a network with {n_levels} resolution levels")
    return [max(sizes) // 2**i for i in range(n_levels)]


class ResBlock(nn.Module):
    """A pre-activation residual block with optional resampling and adaptive group norm.

    With ``emb_dim`` (the decoder's blocks): ``GN -> SiLU -> [resample] -> conv -> GN ->
    modulate -> SiLU -> dropout -> conv (zero-initialised)``, where the modulation is
    ``h * (1 + s_t) + b_t`` from the timestep embedding followed by ``h * (1 + s_z)`` from
    ``z_sem`` (``cond_dim``).  Without ``emb_dim`` (the semantic encoder's blocks) the block
    stops after the first convolution, as the paper's reference implementation does.

    Parameters
    ----------
    spatial_dims : {2, 3}
        Number of spatial dimensions.
    in_channels : int
        Input channels.
    out_channels : int, optional
        Output channels (default: ``in_channels``).
    emb_dim : int, optional
        Size of the timestep embedding; None for an unconditioned block.
    cond_dim : int, optional
        Size of the semantic code (needs ``emb_dim``).
    dropout : float, default 0.0
        Dropout before the last convolution.
    resample : {None, "up", "down"}
        Double or halve every spatial side (nearest-neighbour or average pooling) inside the
        block, on both paths.
    num_groups : int, default 32
        Upper bound on the group norms' groups.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int | None = None,
                 *, emb_dim: int | None = None, cond_dim: int | None = None,
                 dropout: float = 0.0, resample: str | None = None,
                 num_groups: int = 32) -> None:
        super().__init__()
        spatial_dims = check_spatial_dims(spatial_dims)
        out_channels = out_channels or in_channels
        if cond_dim is not None and emb_dim is None:
            raise ConfigError("ResBlock: cond_dim needs emb_dim (the timestep embedding)")
        self.spatial_dims = spatial_dims
        self.out_channels = out_channels
        self.in_norm = norm("group", spatial_dims, in_channels, num_groups)
        self.in_conv = conv(spatial_dims, in_channels, out_channels, 3)
        if resample == "up":
            self.resample = Upsample(spatial_dims, in_channels, mode="nearest_noconv")
        elif resample == "down":
            self.resample = Downsample(spatial_dims, in_channels, mode="avg")
        elif resample is None:
            self.resample = None
        else:
            raise ConfigError(f"resample must be None, 'up' or 'down', got {resample!r}")
        self.conditioned = emb_dim is not None
        if self.conditioned:
            self.emb_proj = nn.Linear(emb_dim, 2 * out_channels)
            self.cond_proj = nn.Linear(cond_dim, out_channels) if cond_dim else None
            self.out_norm = norm("group", spatial_dims, out_channels, num_groups)
            self.out_groups = group_count(out_channels, num_groups)
            self.dropout = float(dropout)
            self.out_conv = conv(spatial_dims, out_channels, out_channels, 3)
            # Zero last convolution: each block starts as the identity (BigGAN/ADM), which
            # the reference found to speed training up.
            nn.init.zeros_(self.out_conv.weight)
            nn.init.zeros_(self.out_conv.bias)
        self.skip = (nn.Identity() if out_channels == in_channels
                     else conv(spatial_dims, in_channels, out_channels, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the block.

        Parameters
        ----------
        x : torch.Tensor
            ``(N, C_in, *spatial)``.
        emb : torch.Tensor, optional
            ``(N, emb_dim)`` timestep embedding, already passed through SiLU.
        cond : torch.Tensor, optional
            ``(N, cond_dim)`` semantic code, already passed through SiLU.

        Returns
        -------
        torch.Tensor
            ``(N, C_out, *spatial')``.
        """
        h = F.silu(self.in_norm(x))
        if self.resample is not None:
            h = self.resample(h)
            x = self.resample(x)
        h = self.in_conv(h)
        if self.conditioned:
            h = self._modulated_out(h, emb, cond)
        return self.skip(x) + h

    def _modulated_out(self, h: torch.Tensor, emb: torch.Tensor,
                       cond: torch.Tensor | None) -> torch.Tensor:
        shape = (h.shape[0], h.shape[1]) + (1,) * self.spatial_dims
        scale, shift = self.emb_proj(emb).chunk(2, dim=1)
        scale = scale + 1.0
        if self.cond_proj is not None and cond is not None:
            cond_scale = self.cond_proj(cond) + 1.0
        else:
            cond_scale = None
        # The norm's affine, the timestep's (scale, shift) and z_sem's scale all act per
        # sample and channel, so fold them into one multiply-add over the feature map:
        # ((n*w + b)*(1+s) + t)*(1+c) = n*A + B.  One pass instead of four (this block is
        # memory-bound on CPUs).
        weight = self.out_norm.weight * scale
        bias = self.out_norm.bias * scale + shift
        if cond_scale is not None:
            weight = weight * cond_scale
            bias = bias * cond_scale
        h = group_norm(h, self.out_groups, None, None, self.out_norm.eps)
        h = torch.addcmul(bias.reshape(shape).to(h.dtype), h, weight.reshape(shape).to(h.dtype))
        # In place: addcmul's backward does not need its output.
        h = F.silu(h, inplace=True)
        if self.dropout > 0 and self.training:
            h = dropout(h, self.dropout)
        return self.out_conv(h)


def dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout (training mode) with a mask drawn by one uniform draw per element.

    Same distribution as :func:`torch.nn.functional.dropout`, about twice as fast on CPUs,
    where ``bernoulli_`` dominates the cost of a dropout layer.

    Parameters
    ----------
    x : torch.Tensor
        Input.
    p : float
        Probability of zeroing an element, in ``[0, 1)``.

    Returns
    -------
    torch.Tensor
        ``x`` with elements zeroed with probability ``p`` and the rest scaled by
        ``1 / (1 - p)``.
    """
    keep = torch.rand_like(x).ge_(p).mul_(1.0 / (1.0 - p))
    return x * keep


class _Stage(nn.Module):
    """A residual block followed by optional attention and an optional resampling block."""

    def __init__(self, block: ResBlock, attention: nn.Module | None = None,
                 resample: ResBlock | nn.Module | None = None) -> None:
        super().__init__()
        self.block = block
        self.attention = attention
        self.resample = resample

    def forward(self, x, emb=None, cond=None):
        x = self.block(x, emb, cond)
        if self.attention is not None:
            x = self.attention(x)
        if self.resample is not None:
            x = (self.resample(x, emb, cond) if isinstance(self.resample, ResBlock)
                 else self.resample(x))
        return x


def _resampler(spatial_dims, channels, kind, updown, block_kwargs):
    if updown:
        return ResBlock(spatial_dims, channels, channels, resample=kind, **block_kwargs)
    if kind == "down":
        return Downsample(spatial_dims, channels, mode="conv")
    return Upsample(spatial_dims, channels, mode="nearest")


class DownPath(nn.Module):
    """The downsampling half of an ADM UNet (input convolution, levels, middle block).

    Used conditioned as the decoder's encoder half, and unconditioned as the semantic
    encoder.  ``forward`` returns the middle block's output and the skip features.

    Parameters
    ----------
    spatial_dims : {2, 3}
        Number of spatial dimensions.
    in_channels : int
        Image channels.
    base_channels : int
        Channels at the first level.
    channel_mult : sequence of int
        Channel multiplier of every level (one level per entry).
    num_res_blocks : int
        Residual blocks per level.
    attention_resolutions : sequence of int
        Feature-map sides at which self-attention follows each residual block.
    image_size : int or sequence of int
        Input size.
    emb_dim, cond_dim : int, optional
        Timestep embedding and semantic code sizes (None for the semantic encoder).
    dropout : float
        Dropout in the residual blocks.
    resblock_updown : bool
        Downsample with a residual block (else a strided convolution).
    num_heads, head_channels : int
        Attention heads, or channels per head.
    num_groups : int
        Upper bound on group-norm groups.
    """

    def __init__(self, spatial_dims, in_channels, base_channels, channel_mult, num_res_blocks,
                 attention_resolutions, image_size, *, emb_dim=None, cond_dim=None,
                 dropout=0.0, resblock_updown=True, num_heads=1, head_channels=None,
                 num_groups=32) -> None:
        super().__init__()
        sizes = level_sizes(image_size, len(channel_mult))
        kw = {"emb_dim": emb_dim, "cond_dim": cond_dim, "dropout": dropout,
              "num_groups": num_groups}
        attn_kw = {"num_heads": num_heads, "head_channels": head_channels,
                   "num_groups": num_groups}
        ch = channel_mult[0] * base_channels
        self.conv_in = conv(spatial_dims, in_channels, ch, 3)
        self.skip_channels = [ch]
        self.stages = nn.ModuleList()
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                out = mult * base_channels
                attn = (Attention(spatial_dims, out, **attn_kw)
                        if sizes[level] in attention_resolutions else None)
                self.stages.append(_Stage(ResBlock(spatial_dims, ch, out, **kw), attn))
                ch = out
                self.skip_channels.append(ch)
            if level != len(channel_mult) - 1:
                self.stages.append(_resampler(spatial_dims, ch, "down", resblock_updown, kw))
                self.skip_channels.append(ch)
        self.middle = nn.ModuleList([
            ResBlock(spatial_dims, ch, ch, **kw),
            Attention(spatial_dims, ch, **attn_kw),
            ResBlock(spatial_dims, ch, ch, **kw),
        ])
        self.out_channels = ch

    def forward(self, x, emb=None, cond=None):
        """Return ``(h, skips)``: the middle block's output and every stage's output."""
        h = self.conv_in(x)
        skips = [h]
        for stage in self.stages:
            h = stage(h, emb, cond) if isinstance(stage, (_Stage, ResBlock)) else stage(h)
            skips.append(h)
        h = self.middle[0](h, emb, cond)
        h = self.middle[1](h)
        h = self.middle[2](h, emb, cond)
        return h, skips


class ConditionalUNet(nn.Module):
    """The Diffusion Autoencoder's decoder: an ADM UNet conditioned on ``t`` and ``z_sem``.

    Parameters
    ----------
    spatial_dims : {2, 3}
        Number of spatial dimensions.
    in_channels : int
        Image channels (also the output channels: the network predicts noise or velocity).
    base_channels : int
        Channels at the first level.
    channel_mult : sequence of int
        Channel multiplier of every level.
    num_res_blocks : int
        Residual blocks per level on the way down (one more on the way up, as in ADM).
    attention_resolutions : sequence of int
        Feature-map sides with self-attention.
    image_size : int or sequence of int
        Input size.
    embed_dim : int
        Size of the timestep embedding.
    cond_dim : int
        Size of ``z_sem``.
    dropout : float
        Dropout in the residual blocks.
    resblock_updown : bool
        Resample with residual blocks (else strided convolution / nearest + conv).
    num_heads, head_channels : int
        Attention heads, or channels per head.
    num_groups : int
        Upper bound on group-norm groups.
    """

    def __init__(self, spatial_dims, in_channels, base_channels, channel_mult, num_res_blocks,
                 attention_resolutions, image_size, *, embed_dim=512, cond_dim=512,
                 dropout=0.1, resblock_updown=True, num_heads=1, head_channels=None,
                 num_groups=32) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.base_channels = base_channels
        self.time_mlp = nn.Sequential(nn.Linear(base_channels, embed_dim), nn.SiLU(),
                                      nn.Linear(embed_dim, embed_dim))
        kw = {"emb_dim": embed_dim, "cond_dim": cond_dim, "dropout": dropout,
              "num_groups": num_groups}
        attn_kw = {"num_heads": num_heads, "head_channels": head_channels,
                   "num_groups": num_groups}
        self.down = DownPath(spatial_dims, in_channels, base_channels, channel_mult,
                             num_res_blocks, attention_resolutions, image_size,
                             emb_dim=embed_dim, cond_dim=cond_dim, dropout=dropout,
                             resblock_updown=resblock_updown, num_heads=num_heads,
                             head_channels=head_channels, num_groups=num_groups)
        sizes = level_sizes(image_size, len(channel_mult))
        skip_channels = list(self.down.skip_channels)
        ch = self.down.out_channels
        self.up = nn.ModuleList()
        for level in reversed(range(len(channel_mult))):
            out = channel_mult[level] * base_channels
            for i in range(num_res_blocks + 1):
                block = ResBlock(spatial_dims, ch + skip_channels.pop(), out, **kw)
                attn = (Attention(spatial_dims, out, **attn_kw)
                        if sizes[level] in attention_resolutions else None)
                resample = None
                if level and i == num_res_blocks:
                    resample = _resampler(spatial_dims, out, "up", resblock_updown, kw)
                self.up.append(_Stage(block, attn, resample))
                ch = out
        self.out_norm = norm("group", spatial_dims, ch, num_groups)
        self.out_conv = conv(spatial_dims, ch, in_channels, 3)
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, z_sem: torch.Tensor) -> torch.Tensor:
        """Predict the noise (or velocity) of ``x`` at timesteps ``t`` given ``z_sem``.

        Parameters
        ----------
        x : torch.Tensor
            ``(N, C, *spatial)`` noisy images.
        t : torch.Tensor
            ``(N,)`` timesteps (integers or floats).
        z_sem : torch.Tensor
            ``(N, cond_dim)`` semantic codes.

        Returns
        -------
        torch.Tensor
            Same shape as ``x``.
        """
        emb = self.time_mlp(timestep_embedding(t, self.base_channels).to(x.dtype))
        # Every block applies SiLU to both conditions before its own projection; do it once.
        emb = F.silu(emb)
        cond = F.silu(z_sem)
        h, skips = self.down(x, emb, cond)
        for stage in self.up:
            h = stage(torch.cat([h, skips.pop()], dim=1), emb, cond)
        return self.out_conv(F.silu(self.out_norm(h)))
