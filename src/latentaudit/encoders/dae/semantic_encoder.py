"""The semantic encoder of the Diffusion Autoencoder: image -> ``z_sem``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...nn import norm
from .unet import DownPath

__all__ = ["SemanticEncoder"]


class SemanticEncoder(nn.Module):
    """The downsampling half of an ADM UNet, then GroupNorm -> SiLU -> global average
    pooling -> linear to ``latent_dim``.

    The code has the same size for any image size, and carries no timestep: it is what the
    decoder needs to know about the image besides the noise.

    Parameters
    ----------
    spatial_dims : {2, 3}
        Number of spatial dimensions.
    in_channels : int
        Image channels.
    base_channels : int
        Channels at the first level.
    channel_mult : sequence of int
        Channel multiplier of every level.
    num_res_blocks : int
        Residual blocks per level.
    attention_resolutions : sequence of int
        Feature-map sides with self-attention.
    image_size : int or sequence of int
        Input size.
    latent_dim : int
        Size of ``z_sem``.
    dropout : float, default 0.0
        Kept for symmetry with the decoder; unconditioned blocks have no dropout layer.
    resblock_updown : bool, default True
        Downsample with residual blocks.
    num_heads, head_channels : int
        Attention heads, or channels per head.
    num_groups : int, default 32
        Upper bound on group-norm groups.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.dae.semantic_encoder import SemanticEncoder
    >>> enc = SemanticEncoder(2, 1, 8, (1, 2), 1, (), 16, latent_dim=4, num_groups=4)
    >>> enc(torch.zeros(2, 1, 16, 16)).shape
    torch.Size([2, 4])
    """

    def __init__(self, spatial_dims, in_channels, base_channels, channel_mult, num_res_blocks,
                 attention_resolutions, image_size, *, latent_dim=512, dropout=0.0,
                 resblock_updown=True, num_heads=1, head_channels=None,
                 num_groups=32) -> None:
        super().__init__()
        self.body = DownPath(spatial_dims, in_channels, base_channels, channel_mult,
                             num_res_blocks, attention_resolutions, image_size,
                             dropout=dropout, resblock_updown=resblock_updown,
                             num_heads=num_heads, head_channels=head_channels,
                             num_groups=num_groups)
        self.out_norm = norm("group", spatial_dims, self.body.out_channels, num_groups)
        self.proj = nn.Linear(self.body.out_channels, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``x`` of shape ``(N, C, *spatial)`` to ``(N, latent_dim)``."""
        h, _ = self.body(x)
        h = F.silu(self.out_norm(h))
        return self.proj(h.mean(dim=tuple(range(2, h.ndim))))
