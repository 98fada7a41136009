"""The Diffusion Autoencoder (Preechakul et al., CVPR 2022) as a latentaudit encoder."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from ...data._rows import item_image
from ...errors import ConfigError, InputShapeError, InputTypeError
from ...utils import check_option, check_spatial_dims
from .._base import ModelEncoder
from ._decoding import DecodingMixin
from ._latent_space import LatentSpaceMixin
from .config import PRESETS, DAEConfig, _int_tuple, _positive_int
from .diffusion import BETA_SCHEDULES, PREDICTIONS, GaussianDiffusion, ddim_timesteps
from .latent import LatentDenoiser
from .semantic_encoder import SemanticEncoder
from .unet import ConditionalUNet

__all__ = ["DAEEncoder"]

logger = logging.getLogger(__name__)

#: Where the shipped demo model lives inside the package.
DEMO_WEIGHTS = Path(__file__).resolve().parent / "_weights" / "demo"


class DAEEncoder(LatentSpaceMixin, DecodingMixin, ModelEncoder):
    """Diffusion Autoencoder: a semantic encoder plus a conditional diffusion decoder.

    Preechakul et al., "Diffusion Autoencoders: Toward a Meaningful and Decodable
    Representation" (CVPR 2022), as Graf et al. (2024) use it on 1-channel MRI.  The
    semantic encoder (the downsampling half of an ADM UNet, then GroupNorm, SiLU, global
    average pooling and a linear layer) maps an image to ``z_sem``; the decoder, an ADM UNet
    whose group norms are modulated by the timestep and by ``z_sem``, learns to remove
    noise from the image given ``z_sem`` (T=1000, noise-prediction MSE).  ``z_sem`` is the
    embedding latentaudit audits.  Decoding is deterministic DDIM from a stochastic code
    ``x_T``: the DDIM inversion of the image reproduces it, random noise gives another
    image with the same semantics.  An optional latent DDIM over normalised ``z_sem``
    samples new subjects.

    One implementation serves 2-D and 3-D through :mod:`latentaudit.nn`.  Training runs
    through :func:`latentaudit.training.train` (EMA, mixed precision, checkpoints,
    channels-last on the CPU, optional :func:`torch.compile`).

    Parameters
    ----------
    spatial_dims : {2, 3}, default 2
        2 for images ``(N, C, H, W)``, 3 for volumes ``(N, C, D, H, W)``.
    in_channels : int, default 1
        Image channels.
    image_size : int or tuple of int, default 64
        Side of the square (cubic) images, or one size per spatial axis; divisible by
        ``2 ** (levels - 1)`` for the decoder and the encoder.
    latent_dim : int, default 512
        Length of ``z_sem``, the embedding (the same for any image size).
    base_channels : int, default 64
        Channels of the first level of both networks.
    channel_mult : tuple of int, default (1, 1, 2, 2)
        Decoder UNet: channel multiplier of each resolution level.
    num_res_blocks : int, default 2
        Decoder: residual blocks per level (one more on the way up).
    attention_resolutions : tuple of int, default (16,)
        Decoder: feature-map sides with self-attention (the middle block always has it).
    encoder_channel_mult : tuple of int, default (1, 1, 2, 4, 4)
        Semantic encoder: channel multiplier of each level.
    encoder_num_res_blocks : int, default 2
        Semantic encoder: residual blocks per level.
    encoder_attention_resolutions : tuple of int, default (16,)
        Semantic encoder: feature-map sides with self-attention.
    embed_dim : int, default 512
        Size of the timestep embedding.
    dropout : float, default 0.1
        Dropout in the decoder's residual blocks.
    num_heads : int, default 1
        Attention heads (ignored when ``head_channels`` is set).
    head_channels : int, optional
        Channels per attention head.
    num_groups : int, default 32
        Upper bound on the groups of every group norm.
    resblock_updown : bool, default True
        Resample with residual blocks (BigGAN/ADM) rather than strided convolutions.
    timesteps : int, default 1000
        Diffusion steps ``T``.
    beta_schedule : {"linear", "cosine"}, default "linear"
        Noise schedule.
    prediction : {"eps", "v"}, default "eps"
        The decoder predicts the noise (as in the paper) or the velocity.
    sample_steps : int, default 20
        Default number of DDIM steps for decoding and inversion.
    latent_ddim : bool, default False
        Build the latent DDIM (train it with :meth:`fit_latent`, use it with
        :meth:`sample`).
    latent_hidden_dim : int, default 2048
        Width of the latent denoiser.
    latent_num_layers : int, default 10
        Depth of the latent denoiser.
    latent_dropout : float, default 0.0
        Dropout of the latent denoiser.

    Attributes
    ----------
    config : DAEConfig
        The configuration.
    semantic_encoder : SemanticEncoder
        Image -> ``z_sem``.
    unet : ConditionalUNet
        The conditional noise predictor.
    diffusion : GaussianDiffusion
        Noise schedule, loss, DDIM sampling and inversion.
    latent_net : LatentDenoiser or None
        The latent DDIM's denoiser.
    latent_mean, latent_std : torch.Tensor
        ``(latent_dim,)`` statistics of ``z_sem`` over the training images (buffers, saved
        with the model), set by :meth:`fit` or :meth:`compute_latent_stats`.
    history_ : pandas.DataFrame
        Training history, after :meth:`fit`.

    See Also
    --------
    latentaudit.encoders.dae.preset : the named configurations (``"tiny"``, ``"paper64"``,
        ``"paper256"``, ``"cpu64"``, ``"tiny3d"``, ``"volume64"``).

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from latentaudit import DAEEncoder
    >>> images = np.random.default_rng(0).uniform(-1, 1, (16, 1, 16, 16)).astype("float32")
    >>> enc = DAEEncoder.from_preset("tiny")
    >>> enc = enc.fit(images, max_steps=2, batch_size=8, verbose=False)
    >>> z = enc.encode(images[:2])
    >>> z.shape
    torch.Size([2, 16])
    >>> x_T = enc.invert(images[:2], z, steps=5)
    >>> enc.decode(z, x_T, steps=5).shape
    torch.Size([2, 1, 16, 16])
    """

    model_type = "dae"
    config_class = DAEConfig
    shipped_weights = {"demo": DEMO_WEIGHTS}
    default_training = {"lr": 1e-4, "ema_decay": 0.999, "weight_decay": 0.0}
    presets = PRESETS
    default_preset = "cpu64"
    #: What ``fit(..., compile=True)`` compiles: the two networks, not the loss's glue.
    compile_modules = ("semantic_encoder", "unet")

    def __init__(self, spatial_dims: int = 2, in_channels: int = 1,
                 image_size: int | tuple[int, ...] = 64, latent_dim: int = 512,
                 base_channels: int = 64, channel_mult: tuple[int, ...] = (1, 1, 2, 2),
                 num_res_blocks: int = 2, attention_resolutions: tuple[int, ...] = (16,),
                 encoder_channel_mult: tuple[int, ...] = (1, 1, 2, 4, 4),
                 encoder_num_res_blocks: int = 2,
                 encoder_attention_resolutions: tuple[int, ...] = (16,),
                 embed_dim: int = 512, dropout: float = 0.1, num_heads: int = 1,
                 head_channels: int | None = None, num_groups: int = 32,
                 resblock_updown: bool = True, timesteps: int = 1000,
                 beta_schedule: str = "linear", prediction: str = "eps",
                 sample_steps: int = 20, latent_ddim: bool = False,
                 latent_hidden_dim: int = 2048, latent_num_layers: int = 10,
                 latent_dropout: float = 0.0) -> None:
        spatial_dims = check_spatial_dims(spatial_dims)
        if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
            image_size = _positive_int("image_size", image_size)
            sizes = (image_size,) * spatial_dims
        else:
            sizes = _int_tuple("image_size", image_size)
            if len(sizes) != spatial_dims:
                raise ConfigError(f"image_size must be an int or {spatial_dims} sizes for "
                                  f"spatial_dims={spatial_dims}, got {image_size!r}")
            image_size = sizes
        channel_mult = _int_tuple("channel_mult", channel_mult)
        encoder_channel_mult = _int_tuple("encoder_channel_mult", encoder_channel_mult)
        for name, mult in (("channel_mult", channel_mult),
                           ("encoder_channel_mult", encoder_channel_mult)):
            factor = 2 ** (len(mult) - 1)
            if any(s % factor for s in sizes):
                raise ConfigError(
                    f"image_size {image_size!r} must be divisible by 2**(len({name}) - 1) = "
                    f"{factor} ({name}={mult} halves the size {len(mult) - 1} times)")
        if not 0 <= dropout < 1 or not 0 <= latent_dropout < 1:
            raise ConfigError(f"dropout and latent_dropout must be in [0, 1), got {dropout!r} "
                              f"and {latent_dropout!r}")
        check_option("beta_schedule", beta_schedule, BETA_SCHEDULES)
        check_option("prediction", prediction, PREDICTIONS)
        timesteps = _positive_int("timesteps", timesteps, 2)
        ddim_timesteps(timesteps, sample_steps)  # validates sample_steps
        base_channels = _positive_int("base_channels", base_channels)
        config = DAEConfig(
            spatial_dims=spatial_dims, in_channels=_positive_int("in_channels", in_channels),
            image_size=image_size, latent_dim=_positive_int("latent_dim", latent_dim),
            base_channels=base_channels, channel_mult=channel_mult,
            num_res_blocks=_positive_int("num_res_blocks", num_res_blocks),
            attention_resolutions=_int_tuple("attention_resolutions", attention_resolutions,
                                             allow_empty=True),
            encoder_channel_mult=encoder_channel_mult,
            encoder_num_res_blocks=_positive_int("encoder_num_res_blocks",
                                                 encoder_num_res_blocks),
            encoder_attention_resolutions=_int_tuple("encoder_attention_resolutions",
                                                     encoder_attention_resolutions,
                                                     allow_empty=True),
            embed_dim=_positive_int("embed_dim", embed_dim), dropout=float(dropout),
            num_heads=_positive_int("num_heads", num_heads),
            head_channels=(None if head_channels is None
                           else _positive_int("head_channels", head_channels)),
            num_groups=_positive_int("num_groups", num_groups),
            resblock_updown=bool(resblock_updown), timesteps=timesteps,
            beta_schedule=beta_schedule, prediction=prediction,
            sample_steps=int(sample_steps), latent_ddim=bool(latent_ddim),
            latent_hidden_dim=_positive_int("latent_hidden_dim", latent_hidden_dim),
            latent_num_layers=_positive_int("latent_num_layers", latent_num_layers, 2),
            latent_dropout=float(latent_dropout))
        super().__init__(config)
        self._sizes = sizes
        common = {"num_heads": config.num_heads, "head_channels": config.head_channels,
                  "num_groups": config.num_groups, "resblock_updown": config.resblock_updown}
        self.semantic_encoder = SemanticEncoder(
            spatial_dims, config.in_channels, base_channels, encoder_channel_mult,
            config.encoder_num_res_blocks, config.encoder_attention_resolutions, image_size,
            latent_dim=config.latent_dim, **common)
        self.unet = ConditionalUNet(
            spatial_dims, config.in_channels, base_channels, channel_mult,
            config.num_res_blocks, config.attention_resolutions, image_size,
            embed_dim=config.embed_dim, cond_dim=config.latent_dim, dropout=config.dropout,
            **common)
        self.diffusion = GaussianDiffusion(timesteps, beta_schedule, prediction)
        self.latent_net = (LatentDenoiser(config.latent_dim, config.latent_hidden_dim,
                                          config.latent_num_layers,
                                          dropout=config.latent_dropout)
                           if config.latent_ddim else None)
        self.register_buffer("latent_mean", torch.zeros(config.latent_dim))
        self.register_buffer("latent_std", torch.ones(config.latent_dim))
        # How many images the statistics were computed on (0: not yet), and whether the
        # latent DDIM was trained: saved with the weights.
        self.register_buffer("latent_count", torch.zeros(1, dtype=torch.int64))
        self.register_buffer("latent_ddim_trained", torch.zeros(1, dtype=torch.int64))

    # -- construction -----------------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str, **overrides) -> DAEEncoder:
        """Build a model from a named preset.

        Parameters
        ----------
        name : {"tiny", "tiny3d", "paper64", "paper256", "cpu64", "volume64"}
            ``"paper256"``/``"paper64"``: the paper's settings at 256x256 / 64x64 (base 64
            channels, decoder multipliers (1, 1, 2, 2), encoder (1, 1, 2, 4, 4), attention
            at 16, 2 residual blocks, latent 512, T=1000, 20 DDIM steps; train with Adam
            at 1e-4 and EMA 0.999, the defaults of :meth:`fit`), for GPUs.  ``"cpu64"``: a
            smaller model for two CPU cores (the shipped demo model), with v-prediction
            so that decoding from a random ``x_T`` works after a CPU's training budget.
            ``"tiny"`` and ``"tiny3d"``: for tests.  ``"volume64"``: 3-D, 64^3 volumes, for GPUs.
        **overrides
            Parameters to change, e.g. ``in_channels=3``.

        Returns
        -------
        DAEEncoder

        Raises
        ------
        ValueError
            (as :class:`latentaudit.errors.ConfigError`) for an unknown preset or field.

        Examples
        --------
        >>> from latentaudit import DAEEncoder
        >>> DAEEncoder.from_preset("tiny").latent_dim
        16
        """
        return super().from_preset(name, **overrides)

    def _expected_spatial_shape(self) -> tuple[int, ...]:
        return self._sizes

    @property
    def channels_last_on_cpu(self) -> bool:
        """Whether the training loop's ``channels_last="auto"`` trains this model
        channels-last on a CPU: for volumes, not for 2-D images.

        Measured through the training loop (float32, 2 threads; ``docs/benchmarks.md``,
        "Diffusion Autoencoder: training step against the reference implementation"): a
        2-D step is faster contiguous (the ``cpu64`` step 1.21x on a 2-core AMD EPYC,
        about 1.05x on a 2-core Intel Xeon; group norm's channels-last backward kernel
        is several times slower there), a 3-D step faster in channels-last (1.29x on the
        EPYC, a 32^3 model at batch 4).

        Examples
        --------
        >>> from latentaudit import DAEEncoder
        >>> DAEEncoder.from_preset("tiny").channels_last_on_cpu
        False
        >>> DAEEncoder.from_preset("tiny3d").channels_last_on_cpu
        True
        """
        return self.config.spatial_dims == 3

    # -- helpers -------------------------------------------------------------------------
    def _memory_format(self) -> torch.memory_format:
        # A kernel with several input and output channels: with one channel the two
        # layouts cannot be told apart.
        weight = self.unet.down.stages[0].block.in_conv.weight
        if weight.ndim == 4 and weight.is_contiguous(memory_format=torch.channels_last) \
                and not weight.is_contiguous():
            return torch.channels_last
        if weight.ndim == 5 and weight.is_contiguous(memory_format=torch.channels_last_3d) \
                and not weight.is_contiguous():
            return torch.channels_last_3d
        return torch.contiguous_format

    def _denoiser(self, z_sem: torch.Tensor):
        unet = self.unet

        def model(x_t, t):
            return unet(x_t, t, z_sem)

        return model

    def _steps(self, steps) -> int:
        steps = self.config.sample_steps if steps is None else steps
        ddim_timesteps(self.config.timesteps, steps)
        return int(steps)

    def _images(self, x, what="images") -> tuple[torch.Tensor, torch.device]:
        if not isinstance(x, (torch.Tensor, np.ndarray)):
            raise InputTypeError(f"{type(self).__name__} expects {what} as a torch.Tensor or "
                                 f"numpy.ndarray, got {type(x).__name__}")
        out_device = x.device if isinstance(x, torch.Tensor) else torch.device("cpu")
        return self._check_images(x, what), out_device

    def _latents(self, z, n: int | None = None, what: str = "z_sem") -> torch.Tensor:
        z = self._check_latents(z)
        if n is not None and len(z) != n:
            raise InputShapeError(f"{what} has {len(z)} rows but there are {n} images; give "
                                  f"one row per image")
        return z

    def _check_batch_size(self, batch_size) -> int:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        return batch_size

    def _encode_batch(self, images: torch.Tensor) -> torch.Tensor:
        return self.semantic_encoder(images.contiguous(memory_format=self._memory_format()))

    # -- training ----------------------------------------------------------------------
    def loss(self, batch, *, generator: torch.Generator) -> torch.Tensor:
        """The training loss of one batch: the decoder's noise-prediction MSE (or velocity
        MSE) at a uniformly drawn timestep, conditioned on the batch's own ``z_sem``.

        Parameters
        ----------
        batch : dict, tuple or torch.Tensor
            A batch from a latentaudit dataset (``{"image": (N, C, *spatial), ...}``), a
            tuple whose first element is the images, or the images.
        generator : torch.Generator
            Source of the timesteps and the noise, drawn per image
            (:func:`latentaudit.training.train` passes the run's generator).

        Returns
        -------
        torch.Tensor
            Scalar loss.

        Examples
        --------
        >>> import torch
        >>> from latentaudit import DAEEncoder
        >>> enc = DAEEncoder.from_preset("tiny")
        >>> g = torch.Generator().manual_seed(0)
        >>> enc.loss({"image": torch.zeros(2, 1, 16, 16)}, generator=g).backward()
        """
        x = self._check_images(item_image(batch), "training images").to(self.device)
        z_sem = self.semantic_encoder(x)
        return self.diffusion.loss(self._denoiser(z_sem), x, generator=generator)

    def fit(self, dataset, *, max_steps: int, batch_size: int = 16, device=None,
            checkpoint_dir: str | os.PathLike | None = None, resume: bool = False,
            verbose: bool = False, **options) -> DAEEncoder:
        """Train the semantic encoder and the decoder jointly, then store the statistics
        of ``z_sem`` over ``dataset``.

        A thin call into :func:`latentaudit.training.train`; the defaults are the paper's
        (Adam, learning rate 1e-4, EMA 0.999, whose weights the model keeps).

        Parameters
        ----------
        dataset : Dataset, numpy.ndarray or torch.Tensor
            Training images in [-1, 1]: a map-style dataset yielding ``{"image", "index"}``
            dicts (latentaudit's datasets) or an array ``(N, C, *spatial)``.
        max_steps : int
            Optimiser steps of the whole run.
        batch_size : int, default 16
            Images per step.
        device : str or torch.device, optional
            Where to train (the model stays there).
        checkpoint_dir : str or os.PathLike, optional
            Folder for atomic checkpoints, from which ``resume=True`` continues.
        resume : bool, default False
            Continue the run saved in ``checkpoint_dir``.
        verbose : bool, default False
            Show progress bars.
        **options
            Any other option of :func:`latentaudit.training.train` (``lr``,
            ``ema_decay``, ``precision``, ``time_limit``, ``compile``, ...).

        Returns
        -------
        self

        Raises
        ------
        InputShapeError
            If the images do not fit the model.
        TrainingError
            If the loss becomes NaN or infinite.
        """
        super().fit(dataset, max_steps=max_steps, batch_size=batch_size, device=device,
                    checkpoint_dir=checkpoint_dir, resume=resume, verbose=verbose, **options)
        self.compute_latent_stats(self._training_dataset(dataset), batch_size=max(
            batch_size, 64), verbose=verbose)
        return self

    def extra_repr(self) -> str:
        cfg = self.config
        return (f"spatial_dims={cfg.spatial_dims}, in_channels={cfg.in_channels}, "
                f"image_size={cfg.image_size}, latent_dim={cfg.latent_dim}, "
                f"base_channels={cfg.base_channels}, channel_mult={cfg.channel_mult}, "
                f"encoder_channel_mult={cfg.encoder_channel_mult}")

