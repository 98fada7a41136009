"""Pixel PCA: a linear autoencoder of the flattened images, fitted in seconds."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DataError
from ._base import ModelEncoder

__all__ = ["PixelPCAConfig", "PixelPCAEncoder"]


@dataclass
class PixelPCAConfig:
    """The configuration of a :class:`PixelPCAEncoder`.

    Parameters
    ----------
    latent_dim : int, default 32
        Principal components kept (the length of one embedding).
    spatial_dims : {2, 3}, default 2
        2 for images, 3 for volumes.
    in_channels : int, default 1
        Image channels.
    image_size : int or tuple of int, optional
        Spatial size of the images (set by ``fit``).
    random_state : int, default 0
        Seed of the randomised SVD of large inputs.

    Examples
    --------
    >>> from latentaudit.encoders import PixelPCAConfig
    >>> PixelPCAConfig(latent_dim=8).latent_dim
    8
    """

    latent_dim: int = 32
    spatial_dims: int = 2
    in_channels: int = 1
    image_size: int | tuple[int, ...] | None = None
    random_state: int = 0


class PixelPCAEncoder(ModelEncoder):
    """Pixel PCA as an encoder: the leading principal components of the flattened images.

    A linear autoencoder fitted in seconds, without a deep model, and a baseline for the
    deep ones: ``encode`` projects images on the components, ``decode`` maps embeddings
    back to pixels (the generative protocol, with no codes: ``invert`` gives ``None``).
    It is a family of the encoder registry (``"pixel_pca"``, alias ``"pca"``), saved and
    loaded like the others (``save_pretrained``, ``from_pretrained``).

    Parameters
    ----------
    latent_dim : int, default 32
        Principal components kept.
    spatial_dims : {2, 3}, default 2
        2 for images ``(N, C, H, W)``, 3 for volumes ``(N, C, D, H, W)``.
    in_channels : int, default 1
        Image channels.
    image_size : int or tuple of int, optional
        Spatial size of the images; set by :meth:`fit` from the data.
    random_state : int, default 0
        Seed of the randomised SVD of large inputs.

    Attributes
    ----------
    mean : torch.Tensor
        The mean image, flattened (zero before :meth:`fit`, when every embedding is 0).
    components : torch.Tensor of shape (latent_dim, n_pixels)
        The principal axes, flattened.
    explained_variance_ratio : torch.Tensor of shape (latent_dim,)
        Share of the pixel variance each component explains.

    Examples
    --------
    >>> import numpy as np
    >>> import latentaudit as la
    >>> images = np.random.default_rng(0).normal(size=(40, 1, 8, 8)).astype("float32")
    >>> enc = la.PixelPCAEncoder(latent_dim=4).fit(images)
    >>> z = enc.encode(images)
    >>> z.shape, enc.decode(z).shape
    (torch.Size([40, 4]), torch.Size([40, 1, 8, 8]))
    """

    model_type = "pixel_pca"
    config_class = PixelPCAConfig
    presets = {"tiny": {"latent_dim": 8}, "base": {"latent_dim": 32}}
    default_preset = "base"

    def __init__(self, latent_dim: int = 32, *, spatial_dims: int = 2, in_channels: int = 1,
                 image_size: int | tuple[int, ...] | None = None,
                 random_state: int = 0) -> None:
        from ..utils import check_spatial_dims

        for name, value in (("latent_dim", latent_dim), ("in_channels", in_channels)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                from ..errors import ConfigError

                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        check_spatial_dims(spatial_dims)
        if isinstance(image_size, list):
            image_size = tuple(image_size)
        super().__init__(PixelPCAConfig(int(latent_dim), int(spatial_dims), int(in_channels),
                                        image_size, int(random_state)))
        n_pixels = self._n_pixels()
        self.register_buffer("mean", torch.zeros(n_pixels))
        self.register_buffer("components", torch.zeros(int(latent_dim), n_pixels))
        self.register_buffer("explained_variance_ratio", torch.zeros(int(latent_dim)))

    def _spatial_shape(self) -> tuple[int, ...] | None:
        size = self.config.image_size
        if size is None:
            return None
        return (int(size),) * self.spatial_dims if np.isscalar(size) else tuple(
            int(s) for s in size)

    def _n_pixels(self) -> int:
        shape = self._spatial_shape()
        return 0 if shape is None else self.in_channels * math.prod(shape)

    def _expected_spatial_shape(self) -> tuple[int, ...] | None:
        return self._spatial_shape()

    def _check_fitted(self) -> None:
        # Built for an image size but not fitted, the components are zero (every embedding
        # is 0), as an untrained network's weights are random; without a size there are
        # no components at all.
        from ..errors import NotFittedError

        if self._n_pixels() == 0:
            raise NotFittedError("this PixelPCAEncoder has no image size and no components "
                                 "yet; call fit(images) first (or give image_size)")

    # -- fitting --------------------------------------------------------------------------
    def fit(self, dataset, *, batch_size: int = 256, verbose: bool = False
            ) -> PixelPCAEncoder:
        """Compute the principal components of the images.

        Parameters
        ----------
        dataset : array-like, torch.Tensor or Dataset
            Images ``(N, C, *spatial)`` or a dataset of them (read into memory once).
        batch_size : int, default 256
            Items read at a time from a dataset.
        verbose : bool, default False
            Unused (the fit is one SVD); kept for the encoders' common ``fit`` options.

        Returns
        -------
        PixelPCAEncoder
            ``self``, with ``image_size``, ``spatial_dims`` and ``in_channels`` set from
            the images.

        Raises
        ------
        ValueError
            (as :class:`latentaudit.errors.DataError`) when there are fewer images or
            pixels than components, or the images are not finite.
        """
        from sklearn.decomposition import PCA

        from ..data._rows import RowImages

        rows = RowImages(dataset, name="images")
        if rows.spatial_dims is None:
            raise DataError(f"images must be (N, C, H, W) or (N, C, D, H, W), got items of "
                            f"shape {rows.image_shape}")
        flat = np.concatenate([batch.reshape(len(batch), -1) for _, batch in
                               rows.batches(np.arange(len(rows)), batch_size)])
        if not np.isfinite(flat).all():
            raise DataError("the images contain NaN or infinite values")
        k = self.latent_dim
        if k > min(flat.shape):
            raise DataError(f"latent_dim={k} principal components need at least {k} images "
                            f"and {k} pixels, got {flat.shape[0]} images of {flat.shape[1]} "
                            f"pixels; lower latent_dim")
        # scikit-learn's choice of solver: exact for small inputs, randomised for large ones
        pca = PCA(n_components=k, svd_solver="auto", random_state=self.config.random_state)
        pca.fit(flat)
        shape = rows.image_shape
        self.config.spatial_dims = len(shape) - 1
        self.config.in_channels = int(shape[0])
        spatial = tuple(int(s) for s in shape[1:])
        self.config.image_size = spatial[0] if len(set(spatial)) == 1 else spatial
        device = self.mean.device
        self.mean = torch.as_tensor(pca.mean_, dtype=torch.float32, device=device)
        self.components = torch.as_tensor(np.ascontiguousarray(pca.components_),
                                          dtype=torch.float32, device=device)
        self.explained_variance_ratio = torch.as_tensor(pca.explained_variance_ratio_,
                                                        dtype=torch.float32, device=device)
        return self

    # -- the protocol ---------------------------------------------------------------------
    def _encode_batch(self, images: torch.Tensor) -> torch.Tensor:
        self._check_fitted()
        flat = images.reshape(len(images), -1).to(self.mean.dtype)
        return (flat - self.mean) @ self.components.T

    def invert(self, x, **options):
        """What ``decode`` needs besides the embeddings: nothing (``None``).

        Parameters
        ----------
        x : torch.Tensor
            Images (only checked).
        **options
            Ignored (e.g. ``steps``).

        Returns
        -------
        None
        """
        self._check_images(x)
        return None

    def decode(self, z, codes=None, *, generator: torch.Generator | None = None, **options
               ) -> torch.Tensor:
        """Map embeddings back to images.

        Parameters
        ----------
        z : array-like of shape (N, latent_dim)
            Embeddings.
        codes : None
            What :meth:`invert` gives (nothing).
        generator : torch.Generator, optional
            Unused: decoding draws nothing.
        **options
            Ignored (e.g. ``steps``).

        Returns
        -------
        torch.Tensor
            ``(N, C, *spatial)`` float32.
        """
        self._check_fitted()
        z = self._check_latents(z).to(self.components.device)
        flat = z @ self.components + self.mean
        return flat.reshape(len(z), self.in_channels, *self._spatial_shape())
