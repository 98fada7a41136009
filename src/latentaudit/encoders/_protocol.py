"""What latentaudit expects of an encoder."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

__all__ = ["Encoder", "GenerativeEncoder"]


@runtime_checkable
class Encoder(Protocol):
    """Anything that maps images to fixed-length embeddings.

    latentaudit's own encoders meet this protocol, :class:`~latentaudit.TorchEncoder`
    makes any :class:`torch.nn.Module` meet it, and a user's class meets it by having these
    members (no inheritance needed); ``isinstance(obj, Encoder)`` checks for them.

    Attributes
    ----------
    latent_dim : int
        Length of one embedding.
    spatial_dims : int
        2 for images ``(N, C, H, W)``, 3 for volumes ``(N, C, D, H, W)``.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders import Encoder
    >>> class MeanIntensity:
    ...     latent_dim, spatial_dims = 1, 2
    ...     def encode(self, x):
    ...         return torch.as_tensor(x).float().mean(dim=(1, 2, 3))[:, None]
    >>> isinstance(MeanIntensity(), Encoder)
    True
    """

    latent_dim: int
    spatial_dims: int

    def encode(self, x) -> torch.Tensor:
        """Embed images.

        Parameters
        ----------
        x : torch.Tensor, numpy.ndarray, Dataset or DataLoader
            A batch ``(N, C, *spatial)``, or a dataset/loader whose items are
            ``{"image": ..., "index": ...}`` dicts (latentaudit's datasets).

        Returns
        -------
        torch.Tensor
            ``(N, latent_dim)`` float32.
        """
        ...


@runtime_checkable
class GenerativeEncoder(Encoder, Protocol):
    """An :class:`Encoder` that can also turn embeddings back into images.

    Examples
    --------
    >>> from latentaudit.encoders import BetaVAEEncoder, GenerativeEncoder
    >>> isinstance(BetaVAEEncoder(image_size=16, channels=(4, 8), latent_dim=8),
    ...            GenerativeEncoder)
    True
    """

    def decode(self, z) -> torch.Tensor:
        """Decode embeddings ``(N, latent_dim)`` into images ``(N, C, *spatial)`` in
        [-1, 1]."""
        ...
