"""β-VAE encoder (Higgins et al., ICLR 2017) for 2-D and 3-D images, with the optional
Hessian penalty of Peebles et al. (ECCV 2020) on the decoder."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data._rows import item_image
from ..errors import ConfigError, InputTypeError
from ..nn import Upsample, conv, norm_removes_bias
from ..nn import norm as norm_layer
from ..utils import check_option, check_spatial_dims
from ._base import ModelEncoder
from ._hessian import hessian_penalty

__all__ = ["BetaVAEConfig", "BetaVAEEncoder"]

# Batch norm is left out on purpose: an image's embedding must not depend on the other
# images of its batch, and the Hessian penalty evaluates the decoder on a mixed batch.
_NORMS = ("group", "layer", "instance", "none")
_CHANNEL_LADDER = (16, 32, 64, 128, 256)


@dataclass
class BetaVAEConfig:
    """Configuration of :class:`BetaVAEEncoder`; the fields are its parameters.

    Examples
    --------
    >>> from latentaudit.encoders import BetaVAEConfig, BetaVAEEncoder
    >>> config = BetaVAEConfig(image_size=16, channels=(4, 8), latent_dim=8)
    >>> BetaVAEEncoder.from_config(config).latent_dim
    8
    """

    spatial_dims: int = 2
    in_channels: int = 1
    image_size: int | tuple[int, ...] = 64
    latent_dim: int = 512
    channels: tuple[int, ...] | None = None
    blocks_per_level: int = 0
    norm: str = "group"
    beta: float = 4.0
    hessian_weight: float = 0.0
    hessian_warmup_steps: int = 1000
    hessian_k: int = 2
    hessian_epsilon: float = 0.1
    hessian_reduction: str = "max"


def _block(spatial_dims: int, cin: int, cout: int, norm_kind: str, stride: int = 1):
    normalise = norm_layer(norm_kind, spatial_dims, cout)
    # No bias where the normalisation removes it (see norm_removes_bias).
    return nn.Sequential(conv(spatial_dims, cin, cout, 3, stride=stride,
                              bias=not norm_removes_bias(normalise)), normalise, nn.SiLU())


def _default_channels(sizes: tuple[int, ...]) -> tuple[int, ...]:
    """As many levels of (16, 32, 64, 128, 256) as halve every size evenly down to 2."""
    levels = 0
    while levels < len(_CHANNEL_LADDER) and all(
            s % 2 ** (levels + 1) == 0 and s // 2 ** (levels + 1) >= 2 for s in sizes):
        levels += 1
    return _CHANNEL_LADDER[:max(levels, 1)]


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _drop_removed_biases(module, state_dict, prefix, *args) -> None:
    for name in module._removed_biases:
        state_dict.pop(prefix + name, None)


class BetaVAEEncoder(ModelEncoder):
    r"""β-VAE: a convolutional variational autoencoder whose KL term is weighted by β.

    The encoder halves the image size once per entry of ``channels`` (a strided 3x3
    convolution, normalisation, SiLU, plus ``blocks_per_level`` further 3x3 convolutions)
    and maps the flattened features to the mean and log-variance of a Gaussian posterior;
    the decoder mirrors it (nearest-neighbour upsampling and convolutions).  One
    implementation serves 2-D and 3-D through :mod:`latentaudit.nn`.

    The loss of a batch, per pixel, is

    .. math:: \frac{1}{P}\Big(\lVert \hat x - x \rVert^2
              + \beta\,\mathrm{KL}\big(q(z \mid x)\,\Vert\,\mathcal N(0, I)\big)\Big)
              + \lambda_H\, r(t)\, \mathcal{H}(\mathrm{dec}, z)

    averaged over the batch, with :math:`P` the pixels (voxels times channels) of one image,
    :math:`z` a posterior sample, and, if ``hessian_weight`` :math:`\lambda_H > 0`, the
    Hessian penalty :math:`\mathcal H` (:func:`~latentaudit.encoders.hessian_penalty`) of
    the decoder with respect to the latent at the (detached) posterior sample, ramped up
    linearly by :math:`r(t) = \min(1, (t+1)/T_{warm})` over ``hessian_warmup_steps``.
    That is the "β-VAE + Hessian penalty" baseline of Graf et al. (2024), Table 1.

    Parameters
    ----------
    spatial_dims : {2, 3}, default 2
        2 for images ``(N, C, H, W)``, 3 for volumes ``(N, C, D, H, W)``.
    in_channels : int, default 1
        Image channels.
    image_size : int or tuple of int, default 64
        Side of the (square or cubic) images, or one size per spatial axis; each must be
        divisible by ``2 ** len(channels)``.
    latent_dim : int, default 512
        Length of the embedding (512, as in the paper).
    channels : tuple of int, optional
        Channels at each resolution; one halving of the size per entry.  Default: as many
        levels of (16, 32, 64, 128, 256) as the image size allows, down to 2 pixels a
        side (64x64 images to 2x2 with all five, in the spirit of the β-VAE papers'
        small convolutional networks, at about 50 images/s on one CPU core; 16x16
        images with three).
    blocks_per_level : int, default 0
        Extra 3x3 convolutions at each resolution.
    norm : {"group", "layer", "instance", "none"}, default "group"
        Normalisation after each convolution (per sample; batch norm is not offered so an
        embedding never depends on the rest of its batch).
    beta : float, default 4.0
        Weight of the KL term (1 gives the plain VAE).
    hessian_weight : float, default 0.0
        Weight of the Hessian penalty; 0 turns it off.
    hessian_warmup_steps : int, default 1000
        Training steps over which the penalty's weight ramps up linearly from 0.
    hessian_k : int, default 2
        Rademacher directions per estimate.
    hessian_epsilon : float, default 0.1
        Finite-difference step of the estimate.
    hessian_reduction : {"max", "mean"}, default "max"
        Reduction over outputs: the maximum as in the paper's reference, or the mean.

    Attributes
    ----------
    config : BetaVAEConfig
        The configuration.
    history_ : pandas.DataFrame
        Training history, after :meth:`fit`.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.encoders import BetaVAEEncoder
    >>> images = np.random.default_rng(0).uniform(-1, 1, (32, 1, 16, 16)).astype("float32")
    >>> enc = BetaVAEEncoder(image_size=16, channels=(4, 8), latent_dim=8)
    >>> enc = enc.fit(images, max_steps=5, batch_size=8, verbose=False)
    >>> enc.encode(images).shape
    torch.Size([32, 8])
    >>> enc.decode(enc.encode(images[:2])).shape
    torch.Size([2, 1, 16, 16])
    """

    model_type = "beta_vae"
    config_class = BetaVAEConfig
    default_training = {"lr": 1e-3, "weight_decay": 0.0, "warmup_steps": 100}
    presets = {
        # For tests: two halvings, 8 latent dimensions.
        "tiny": {"channels": (4, 8), "latent_dim": 8, "beta": 1.0},
        # The command line's β-VAE for a CPU: four halvings, 64 latent dimensions.
        "cpu64": {"channels": (16, 32, 64, 128), "latent_dim": 64, "beta": 1.0},
    }
    default_preset = "cpu64"

    def __init__(self, spatial_dims: int = 2, in_channels: int = 1,
                 image_size: int | tuple[int, ...] = 64, latent_dim: int = 512,
                 channels: tuple[int, ...] | None = None, blocks_per_level: int = 0,
                 norm: str = "group", beta: float = 4.0, hessian_weight: float = 0.0,
                 hessian_warmup_steps: int = 1000, hessian_k: int = 2,
                 hessian_epsilon: float = 0.1, hessian_reduction: str = "max") -> None:
        spatial_dims = check_spatial_dims(spatial_dims)
        if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
            image_size = int(image_size)
            sizes = (image_size,) * spatial_dims
        else:
            sizes = tuple(_positive_int("image_size entries", s) for s in image_size)
            if len(sizes) != spatial_dims:
                raise ConfigError(f"image_size must be an int or {spatial_dims} sizes for "
                                  f"spatial_dims={spatial_dims}, got {image_size!r}")
            image_size = sizes
        if channels is None:
            channels = _default_channels(sizes)
        if isinstance(channels, (int, np.integer)) or not len(channels):
            raise ConfigError(f"channels must be a non-empty tuple of positive integers, got "
                              f"{channels!r}")
        channels = tuple(_positive_int("channels entries", c) for c in channels)
        factor = 2 ** len(channels)
        if any(s < factor or s % factor for s in sizes):
            raise ConfigError(
                f"image_size {image_size!r} must be divisible by 2**len(channels) = {factor} "
                f"(channels={channels} halves the size {len(channels)} times); pick another "
                f"size or fewer channel levels")
        check_option("norm", norm, _NORMS)
        check_option("hessian_reduction", hessian_reduction, ("max", "mean"))
        if not beta >= 0:
            raise ConfigError(f"beta must be >= 0, got {beta!r}")
        if not hessian_weight >= 0:
            raise ConfigError(f"hessian_weight must be >= 0, got {hessian_weight!r}")
        if not hessian_epsilon > 0:
            raise ConfigError(f"hessian_epsilon must be positive, got {hessian_epsilon!r}")
        config = BetaVAEConfig(
            spatial_dims=spatial_dims, in_channels=_positive_int("in_channels", in_channels),
            image_size=image_size, latent_dim=_positive_int("latent_dim", latent_dim),
            channels=channels,
            blocks_per_level=_positive_int("blocks_per_level", blocks_per_level, 0),
            norm=norm, beta=float(beta), hessian_weight=float(hessian_weight),
            hessian_warmup_steps=_positive_int("hessian_warmup_steps", hessian_warmup_steps, 0),
            hessian_k=_positive_int("hessian_k", hessian_k, 2),
            hessian_epsilon=float(hessian_epsilon), hessian_reduction=hessian_reduction)
        super().__init__(config)
        self._sizes = sizes
        bottom = tuple(s // factor for s in sizes)
        self._bottom = (channels[-1], *bottom)
        flat = channels[-1] * math.prod(bottom)

        layers: list[nn.Module] = [_block(spatial_dims, config.in_channels, channels[0], norm)]
        previous = channels[0]
        for c in channels:
            layers.append(_block(spatial_dims, previous, c, norm, stride=2))
            layers.extend(_block(spatial_dims, c, c, norm) for _ in range(blocks_per_level))
            previous = c
        self.encoder = nn.Sequential(*layers)
        self.to_posterior = nn.Linear(flat, 2 * config.latent_dim)

        self.from_latent = nn.Linear(config.latent_dim, flat)
        up: list[nn.Module] = [self._norm(channels[-1]), nn.SiLU()]
        targets = (*channels[-2::-1], channels[0])
        previous = channels[-1]
        for c in targets:
            normalise = self._norm(c)
            up.extend([Upsample(spatial_dims, previous, c, mode="nearest",
                                bias=not norm_removes_bias(normalise)), normalise, nn.SiLU()])
            up.extend(_block(spatial_dims, c, c, norm) for _ in range(blocks_per_level))
            previous = c
        up.append(conv(spatial_dims, previous, config.in_channels, 3))
        self.decoder = nn.Sequential(*up)
        # Weights saved when these convolutions still had a bias load unchanged: the
        # normalisation after each removed that bias exactly.
        self._removed_biases = {f"{name}.bias" for name, module in self.named_modules()
                                if isinstance(module, nn.modules.conv._ConvNd)
                                and module.bias is None}
        self.register_load_state_dict_pre_hook(_drop_removed_biases)

    def _norm(self, channels: int) -> nn.Module:
        return norm_layer(self.config.norm, self.spatial_dims, channels)

    def _expected_spatial_shape(self) -> tuple[int, ...]:
        return self._sizes

    # -- the networks ---------------------------------------------------------------------
    def posterior(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of :math:`q(z \\mid x)` (differentiable).

        Parameters
        ----------
        images : torch.Tensor
            ``(N, C, *spatial)`` on the model's device.

        Returns
        -------
        mean, log_variance : torch.Tensor
            Each ``(N, latent_dim)``.
        """
        features = self.encoder(images).flatten(1)
        mean, log_variance = self.to_posterior(features).chunk(2, dim=1)
        # Bounded so exp() stays finite early in training.
        return mean, log_variance.clamp(-30.0, 20.0)

    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's raw output for latents ``(N, latent_dim)`` (differentiable, not
        clamped).

        Parameters
        ----------
        z : torch.Tensor
            ``(N, latent_dim)`` on the model's device.

        Returns
        -------
        torch.Tensor
            ``(N, C, *spatial)``.
        """
        return self.decoder(self.from_latent(z).reshape(len(z), *self._bottom))

    def forward(self, images: torch.Tensor, *, generator: torch.Generator | None = None):
        """Reconstruct images: from a posterior sample drawn from ``generator``, or from
        the posterior mean without one.

        Parameters
        ----------
        images : torch.Tensor
            ``(N, C, *spatial)``.
        generator : torch.Generator, optional
            Source of the posterior sample (per image, see
            :func:`~latentaudit.training.batch_randn`); None decodes the mean.

        Returns
        -------
        reconstruction, mean, log_variance : torch.Tensor
        """
        mean, log_variance = self.posterior(images)
        z = mean if generator is None else self._sample(mean, log_variance, generator)
        return self.decode_latent(z), mean, log_variance

    @staticmethod
    def _sample(mean, log_variance, generator):
        from ..training import batch_randn

        eps = batch_randn(mean.shape, generator=generator, device=mean.device,
                          dtype=mean.dtype)
        return mean + torch.exp(0.5 * log_variance) * eps

    def _encode_batch(self, images: torch.Tensor) -> torch.Tensor:
        return self.posterior(images)[0]

    # -- training -------------------------------------------------------------------------
    def loss(self, batch, *, generator: torch.Generator):
        """Training loss of one batch (see the class description).

        Parameters
        ----------
        batch : dict, tuple or torch.Tensor
            A batch from a latentaudit dataset (``{"image": (N, C, *spatial), ...}``), a
            tuple whose first element is the images, or the images.
        generator : torch.Generator
            Source of the posterior samples and of the Hessian penalty's directions
            (:func:`latentaudit.training.train` passes the run's).

        Returns
        -------
        loss : torch.Tensor
            Scalar.
        logs : dict
            ``recon_mse`` (mean squared error per pixel), ``kl`` (nats per image),
            ``hessian_penalty`` (when on) and ``hessian_weight`` (after warm-up).

        Examples
        --------
        >>> import torch
        >>> from latentaudit.encoders import BetaVAEEncoder
        >>> enc = BetaVAEEncoder(image_size=16, channels=(4, 8), latent_dim=8)
        >>> loss, logs = enc.loss({"image": torch.zeros(2, 1, 16, 16)},
        ...                       generator=torch.Generator().manual_seed(0))
        >>> loss.backward()
        """
        cfg = self.config
        x = self._check_images(item_image(batch), "training images")
        x = x.to(self.device)
        step = self._current_step()
        mean, log_variance = self.posterior(x)
        z = self._sample(mean, log_variance, generator)
        reconstruction = self.decode_latent(z)
        pixels = x[0].numel()
        squared = (reconstruction.float() - x).pow(2).flatten(1).sum(1).mean()
        mean32, log_var32 = mean.float(), log_variance.float()
        kl = 0.5 * (mean32.pow(2) + log_var32.exp() - 1.0 - log_var32).sum(1).mean()
        total = (squared + cfg.beta * kl) / pixels
        logs = {"recon_mse": squared.detach() / pixels, "kl": kl.detach()}
        if cfg.hessian_weight > 0 and self.training:
            warm = cfg.hessian_warmup_steps
            ramp = 1.0 if warm == 0 else min(1.0, (step + 1) / warm)
            penalty = hessian_penalty(self.decode_latent, z.detach(), k=cfg.hessian_k,
                                      epsilon=cfg.hessian_epsilon,
                                      reduction=cfg.hessian_reduction, generator=generator)
            total = total + cfg.hessian_weight * ramp * penalty
            logs["hessian_penalty"] = penalty.detach()
            logs["hessian_weight"] = cfg.hessian_weight * ramp
        return total, logs

    # -- generation -----------------------------------------------------------------------
    def invert(self, x, *, steps: int | None = None, batch_size: int = 64) -> None:
        """The codes of images for :meth:`decode` (the generative protocol's ``invert``):
        None, since a β-VAE decodes from the embedding alone.

        Parameters
        ----------
        x : torch.Tensor, numpy.ndarray, Dataset or DataLoader
            Images, as for :meth:`encode` (checked, not used).
        steps : int, optional
            Accepted for the protocol and ignored (decoding is one pass).
        batch_size : int, default 64
            Accepted for the protocol and ignored.

        Returns
        -------
        None

        Examples
        --------
        >>> import torch
        >>> from latentaudit.encoders import BetaVAEEncoder
        >>> enc = BetaVAEEncoder.from_preset("tiny", image_size=16)
        >>> enc.invert(torch.zeros(1, 1, 16, 16)) is None
        True
        """
        if isinstance(x, (torch.Tensor, np.ndarray)):
            self._check_images(x)
        return None

    def decode(self, z, codes=None, *, generator: torch.Generator | None = None,
               steps: int | None = None, batch_size: int = 64) -> torch.Tensor:
        """Decode latents into images in [-1, 1] (the generative protocol's ``decode``).

        Parameters
        ----------
        z : torch.Tensor or numpy.ndarray
            ``(N, latent_dim)`` latents, e.g. from :meth:`encode`.
        codes : None
            What :meth:`invert` returns for a β-VAE; anything else is refused.
        generator : torch.Generator, optional
            Accepted for the protocol; decoding is deterministic and draws nothing.
        steps : int, optional
            Accepted for the protocol and ignored (decoding is one pass).
        batch_size : int, default 64
            Latents per forward pass.

        Returns
        -------
        torch.Tensor
            ``(N, C, *spatial)`` float32, clamped to [-1, 1]; on ``z``'s device for a
            tensor, else on the CPU.

        Raises
        ------
        InputShapeError
            If ``z`` is not ``(N, latent_dim)``.
        InputTypeError
            If ``codes`` is not None.

        Examples
        --------
        >>> import torch
        >>> from latentaudit.encoders import BetaVAEEncoder
        >>> enc = BetaVAEEncoder.from_preset("tiny", image_size=16)
        >>> enc.decode(torch.zeros(3, 8)).shape
        torch.Size([3, 1, 16, 16])
        """
        if codes is not None:
            raise InputTypeError(f"a BetaVAEEncoder decodes from the embedding alone: codes "
                                 f"must be None (what invert returns), got "
                                 f"{type(codes).__name__}")
        return self._map_latents(z, lambda chunk: self.decode_latent(chunk).clamp(-1.0, 1.0),
                                 batch_size, (self.in_channels, *self._sizes))

    def reconstruct(self, x, *, batch_size: int = 64) -> torch.Tensor:
        """Decode the posterior mean of images: ``decode(encode(x))``.

        Parameters
        ----------
        x : torch.Tensor, numpy.ndarray, Dataset or DataLoader
            Images, as for :meth:`encode`.
        batch_size : int, default 64
            Images per forward pass.

        Returns
        -------
        torch.Tensor
            Reconstructions in [-1, 1], shaped like the images.
        """
        return self.decode(self.encode(x, batch_size=batch_size), batch_size=batch_size)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode ``n`` latents drawn from the prior :math:`\\mathcal N(0, I)`.

        Parameters
        ----------
        n : int
            Number of images.
        generator : torch.Generator, optional
            Source of the latents; None uses a fresh ``torch.Generator()``, never the
            global random state.

        Returns
        -------
        torch.Tensor
            ``(n, C, *spatial)`` images in [-1, 1], on the CPU.
        """
        if generator is None:  # never the global random state
            generator = torch.Generator()
        z = torch.randn(int(n), self.latent_dim, generator=generator, device=generator.device)
        return self.decode(z.cpu())

    def extra_repr(self) -> str:
        cfg = self.config
        return (f"spatial_dims={cfg.spatial_dims}, in_channels={cfg.in_channels}, "
                f"image_size={cfg.image_size}, latent_dim={cfg.latent_dim}, beta={cfg.beta}, "
                f"hessian_weight={cfg.hessian_weight}")

