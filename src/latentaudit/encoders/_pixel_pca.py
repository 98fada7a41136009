"""Pixel PCA: a linear autoencoder of the flattened images, fitted in seconds."""

from __future__ import annotations

import numbers

import numpy as np

from ..errors import ConfigError, InputShapeError

__all__: list[str] = []


class _PixelPCA:
    """Pixel PCA as an encoder: principal components of the flattened images.

    A linear autoencoder fitted in seconds, without a deep model: ``encode`` projects an
    image on the leading components, ``decode`` maps a latent back to pixels.  The command
    line's ``--encoder pca`` uses it for quick looks and fast tests; it meets the encoder
    protocol (``latent_dim``, ``spatial_dims``, ``encode``, ``decode``).
    """

    name = "pixel PCA"

    def __init__(self, latent_dim: int = 32) -> None:
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, numbers.Integral) \
                or latent_dim < 1:
            raise ConfigError(f"latent_dim must be a positive integer, got {latent_dim!r}")
        self.latent_dim = int(latent_dim)
        self.config = {"model_type": "pixel_pca", "latent_dim": self.latent_dim}

    def fit(self, images, random_state=0) -> _PixelPCA:
        from sklearn.decomposition import PCA

        images = np.asarray(images, dtype=np.float32)
        if images.ndim not in (4, 5):
            raise InputShapeError(f"images must be (N, C, H, W) or (N, C, D, H, W), got "
                                  f"shape {images.shape}")
        flat = images.reshape(len(images), -1)
        k = min(self.latent_dim, *flat.shape)
        pca = PCA(n_components=k, svd_solver="randomized", random_state=random_state)
        pca.fit(flat)
        self.latent_dim = int(k)
        self.config["latent_dim"] = self.latent_dim
        self.spatial_dims = images.ndim - 2
        self.image_shape = tuple(images.shape[1:])
        self.mean_ = pca.mean_.astype(np.float32)
        self.components_ = pca.components_.astype(np.float32)
        self.explained_variance_ratio_ = pca.explained_variance_ratio_
        return self

    def encode(self, x, **_):
        import torch

        x = torch.as_tensor(np.asarray(x.detach().cpu() if hasattr(x, "detach") else x,
                                       dtype=np.float32))
        flat = x.reshape(len(x), -1) - torch.from_numpy(self.mean_)
        return flat @ torch.from_numpy(self.components_).T

    def invert(self, x, **_):
        return None  # the components are all decode needs

    def decode(self, z, codes=None, *, generator=None, **_):
        import torch

        z = torch.as_tensor(np.asarray(z.detach().cpu() if hasattr(z, "detach") else z,
                                       dtype=np.float32))
        flat = z @ torch.from_numpy(self.components_) + torch.from_numpy(self.mean_)
        return flat.reshape(len(z), *self.image_shape)
