"""StyleGAN2 (Karras et al., CVPR 2020) as a latentaudit encoder: a GAN trained on the
images, and an inversion encoder trained through the frozen generator, whose ``w`` is the
embedding."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from ...data import item_image
from ...errors import InputShapeError, InputTypeError
from .._base import ModelEncoder, eval_mode
from .augment import AUGMENTATIONS
from .config import PRESETS, StyleGAN2Config, _fraction, _positive_int, validated
from .networks import Discriminator, Generator, Inverter, level_shapes

__all__ = ["StyleGAN2Encoder"]

logger = logging.getLogger(__name__)

#: Where the shipped demo model lives inside the package.
DEMO_WEIGHTS = Path(__file__).resolve().parent / "_weights" / "demo"

def _level_channels(shapes, base: int, maximum: int) -> tuple[int, ...]:
    return tuple(max(1, min(base // max(shape), maximum)) for shape in shapes)


def _adam(params, **settings) -> torch.optim.Adam:
    # One fused kernel per step instead of ~10 small ones per parameter: on CPUs the
    # optimiser step of these many small tensors otherwise costs a tenth of the step.
    return torch.optim.Adam(params, eps=1e-8, fused=True, **settings)


class StyleGAN2Encoder(ModelEncoder):
    r"""StyleGAN2 as an encoder: a GAN, and an inversion encoder whose ``w`` is the embedding.

    Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (CVPR 2020), as
    Graf et al. (2024) compare it with the Diffusion Autoencoder.  Three networks:

    - the **generator**: a mapping network (``mapping_layers`` fully connected layers at
      learning-rate multiplier 0.01) from ``z`` to ``w``, then a synthesis network from a
      learned constant through modulated/demodulated 3x3 convolutions with noise inputs,
      with skip outputs to ``in_channels`` image channels at every level; style mixing and
      the truncation trick;
    - the **discriminator**: residual blocks down to the smallest level, minibatch standard
      deviation, a convolution and two fully connected layers;
    - the **inverter** (pSp/e4e style): a residual trunk from the image to ``w`` plus
      per-layer W+ residuals.

    All layers use the equalised learning rate.  :meth:`fit` trains in two stages through
    the shared training loop: the GAN (non-saturating logistic loss, lazy R1 on real images
    every ``r1_interval`` steps, optional lazy path-length regularisation, style mixing,
    differentiable augmentation with an ADA-style adaptive probability, an EMA of the
    generator), then the inverter through the frozen EMA generator (pixel MSE, a perceptual
    distance on the discriminator's features, and a regulariser pulling the W+ layers to
    their mean).

    :meth:`encode` returns the inverter's ``w`` (the mean over the W+ layers);
    :meth:`invert` returns the codes (the W+ residuals and per-layer noise) with which
    :meth:`decode` reproduces the images, optionally refined per image by gradient descent;
    :meth:`decode` renders ``w`` (and codes) through the generator.

    Parameters
    ----------
    spatial_dims : {2, 3}, default 2
        2 for images ``(N, C, H, W)``, 3 for volumes ``(N, C, D, H, W)``.
    in_channels : int, default 1
        Image channels (the skip outputs produce any number).
    image_size : int or tuple of int, default 64
        Side of the images, or one per axis; the smallest side a power of two >= 4 that
        divides the others.
    latent_dim : int, default 512
        Size of ``z`` and ``w`` (the embedding).
    mapping_layers : int, default 8
        Layers of the mapping network.
    mapping_lr_multiplier : float, default 0.01
        Its learning-rate multiplier.
    channel_base, channel_max : int, default 8192, 256
        Channels at a level whose largest side is ``s``: ``min(channel_base // s,
        channel_max)`` (generator and discriminator).
    inverter_channel_base, inverter_channel_max : int, optional
        The same for the inverter (default: the discriminator's).
    w_plus : bool, default True
        Invert to W+ (one ``w`` per layer) rather than W.
    mbstd_group_size : int, default 4
        Group size of the minibatch standard deviation.
    style_mixing_prob : float, default 0.9
        Share of generated training images that mix two latents.
    r1_gamma : float, default 1.0
        Weight of the R1 penalty.
    r1_interval : int, default 16
        R1 every this many steps (lazy regularisation).
    path_length_weight : float, default 0.0
        Weight of the path-length regulariser (the paper: 2); 0 turns it off.
    path_length_interval : int, default 4
        Path-length regularisation every this many steps.
    augment : tuple of str, default all four
        Differentiable augmentations (see
        :func:`~latentaudit.encoders.stylegan2.augment.augment`).
    augment_p : float, default 0.0
        Initial (or, with ``ada_target=None``, fixed) augmentation probability.
    ada_target : float or None, default 0.6
        Target of ``E[sign(D(real))]`` for the adaptive probability; None keeps
        ``augment_p`` fixed.
    ada_interval : int, default 4
        Steps between adjustments of the probability.
    ada_kimg : float, default 100
        Thousands of images over which the probability can move from 0 to 1.
    inversion_feature_weight : float, default 1.0
        Weight of the discriminator-feature distance in the inverter's loss.
    inversion_delta_weight : float, default 0.01
        Weight of the regulariser on the W+ layers' spread around their mean.
    inversion_refine_lr : float, default 0.01
        Adam learning rate of the per-image refinement of :meth:`invert`.

    Any family can also be built from a named configuration,
    ``StyleGAN2Encoder(preset="tiny", latent_dim=16)`` (see
    :data:`~latentaudit.encoders.stylegan2.PRESETS`: ``"tiny"``, ``"tiny3d"``,
    ``"cpu64"`` (the shipped demo model, for two CPU cores), ``"paper64"``,
    ``"paper256"`` (the paper's configuration F, for GPUs)).

    Attributes
    ----------
    config : StyleGAN2Config
        The configuration.
    generator : Generator
        Mapping and synthesis networks (after :meth:`fit`, their EMA weights).
    discriminator : Discriminator
        The discriminator.
    inverter : Inverter
        Images to W+.
    augment_p : torch.Tensor
        Current augmentation probability (a buffer, saved with the model).
    history_ : pandas.DataFrame
        Training history of both stages, after :meth:`fit`.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from latentaudit import StyleGAN2Encoder
    >>> images = np.random.default_rng(0).uniform(-1, 1, (16, 1, 16, 16)).astype("float32")
    >>> enc = StyleGAN2Encoder(preset="tiny")
    >>> enc = enc.fit(images, max_steps=4, batch_size=8, verbose=False)
    >>> w = enc.encode(images[:2])
    >>> w.shape
    torch.Size([2, 8])
    >>> codes = enc.invert(images[:2])
    >>> enc.decode(w, codes).shape
    torch.Size([2, 1, 16, 16])
    """

    model_type = "stylegan2"
    config_class = StyleGAN2Config
    shipped_weights = {"demo": DEMO_WEIGHTS}
    presets = PRESETS
    default_preset = "cpu64"

    def __init__(self, spatial_dims: int = 2, in_channels: int = 1,
                 image_size: int | tuple[int, ...] = 64, latent_dim: int = 512,
                 mapping_layers: int = 8, mapping_lr_multiplier: float = 0.01,
                 channel_base: int = 8192, channel_max: int = 256,
                 inverter_channel_base: int | None = None,
                 inverter_channel_max: int | None = None, w_plus: bool = True,
                 mbstd_group_size: int = 4, style_mixing_prob: float = 0.9,
                 r1_gamma: float = 1.0, r1_interval: int = 16,
                 path_length_weight: float = 0.0, path_length_interval: int = 4,
                 augment: tuple[str, ...] = AUGMENTATIONS, augment_p: float = 0.0,
                 ada_target: float | None = 0.6, ada_interval: int = 4,
                 ada_kimg: float = 100.0, inversion_feature_weight: float = 1.0,
                 inversion_delta_weight: float = 0.01,
                 inversion_refine_lr: float = 0.01) -> None:
        options = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        config = StyleGAN2Config(**options)
        config = validated(config)
        super().__init__(config)
        sd = config.spatial_dims
        self._sizes = (config.image_size if isinstance(config.image_size, tuple)
                       else (config.image_size,) * sd)
        shapes = level_shapes(self._sizes)
        channels = _level_channels(shapes, config.channel_base, config.channel_max)
        inverter_channels = _level_channels(
            shapes, config.inverter_channel_base or config.channel_base,
            config.inverter_channel_max or config.channel_max)
        self.generator = Generator(sd, config.in_channels, self._sizes, config.latent_dim,
                                   config.latent_dim, channels, config.mapping_layers,
                                   config.mapping_lr_multiplier)
        self.discriminator = Discriminator(sd, config.in_channels, self._sizes, channels,
                                           config.mbstd_group_size)
        self.inverter = Inverter(sd, config.in_channels, self._sizes, inverter_channels,
                                 config.latent_dim, self.generator.num_ws, config.w_plus)
        self.register_buffer("augment_p", torch.tensor(config.augment_p))
        # sum of sign(D(real)) and count since the last adjustment of augment_p
        self.register_buffer("ada_stats", torch.zeros(2))
        self.register_buffer("path_length_mean", torch.zeros([]))
        self._stage = "gan"

    # -- construction -----------------------------------------------------------------
    def _expected_spatial_shape(self) -> tuple[int, ...]:
        return self._sizes

    @property
    def num_ws(self) -> int:
        """Number of ``w`` vectors the synthesis network takes (the layers of W+)."""
        return self.generator.num_ws

    @property
    def ema_module(self) -> str | None:
        """The submodule whose EMA the training loop keeps: the generator while the GAN
        trains, none while the inverter trains."""
        return "generator" if self._stage == "gan" else None

    # -- embedding, inversion, decoding --------------------------------------------------
    def w_plus(self, images: torch.Tensor) -> torch.Tensor:
        """The inverter's W+ of images (differentiable).

        Parameters
        ----------
        images : torch.Tensor
            ``(N, C, *spatial)`` on the model's device.

        Returns
        -------
        torch.Tensor
            ``(N, num_ws, latent_dim)``.
        """
        return self.inverter(images, self.generator.mapping.w_avg)

    def _encode_batch(self, images: torch.Tensor) -> torch.Tensor:
        return self.w_plus(images).mean(1)

    def invert(self, x, *, steps: int | None = None, batch_size: int = 64,
               verbose: bool = False) -> dict:
        """The codes with which :meth:`decode` reproduces images from their :meth:`encode`.

        The inverter gives W+; the codes are its layers' offsets from their mean (the
        embedding) and the noise of every noise layer (zero).  With ``steps > 0`` both are
        then refined for each image by Adam on the reconstruction loss the inverter was
        trained with (pixel MSE plus the discriminator-feature distance), the embedding held
        fixed; gradients are switched on for that inside, so it works under
        :func:`torch.no_grad` and :func:`torch.inference_mode` too.

        Parameters
        ----------
        x : torch.Tensor or numpy.ndarray
            Images ``(N, C, *spatial)`` in [-1, 1].
        steps : int, optional
            Optimisation steps per image; None or 0: the inverter alone.
        batch_size : int, default 64
            Images per batch.
        verbose : bool, default False
            Show a progress bar.

        Returns
        -------
        dict
            ``{"w_residual": (N, num_ws, latent_dim), "noise": [(N, 1, *shape), ...]}``,
            on ``x``'s device for a tensor, else on the CPU.

        Examples
        --------
        >>> import torch
        >>> from latentaudit import StyleGAN2Encoder
        >>> enc = StyleGAN2Encoder(preset="tiny")
        >>> x = torch.zeros(2, 1, 16, 16)
        >>> codes = enc.invert(x, steps=2)
        >>> codes["w_residual"].shape, len(codes["noise"])
        (torch.Size([2, 6, 8]), 5)
        """
        from .inversion import invert

        return invert(self, x, steps=0 if steps is None else steps, batch_size=batch_size,
                      verbose=verbose)

    def decode(self, z, codes=None, *, generator: torch.Generator | None = None,
               truncation: float = 1.0, batch_size: int = 64, steps: int | None = None
               ) -> torch.Tensor:
        """Render embeddings ``w`` (and the codes of :meth:`invert`) into images.

        Parameters
        ----------
        z : torch.Tensor or numpy.ndarray
            ``(N, latent_dim)``: embeddings from :meth:`encode`, or any ``w``.
        codes : dict, optional
            From :meth:`invert` (or :func:`~latentaudit.encoders.select_codes` of it):
            the W+ residuals and the noise.  None renders ``w`` alone at every layer with
            noise drawn from ``generator``.
        generator : torch.Generator, optional
            Source of the noise when ``codes`` is None (``None``: a fresh default
            generator, never the global random state).
        truncation : float, default 1.0
            The truncation trick's ``psi``: W+ is pulled towards the generator's average
            ``w`` (1 leaves it, 0 gives the average image).
        batch_size : int, default 64
            Embeddings per forward pass.
        steps : int, optional
            Accepted for the generative protocol and ignored: rendering is one pass.

        Returns
        -------
        torch.Tensor
            ``(N, C, *spatial)`` float32 in [-1, 1]; on ``z``'s device for a tensor, else on
            the CPU.

        Raises
        ------
        InputShapeError, InputTypeError
            For embeddings or codes of the wrong shape or type.

        Examples
        --------
        >>> import torch
        >>> from latentaudit import StyleGAN2Encoder
        >>> enc = StyleGAN2Encoder(preset="tiny")
        >>> a = enc.decode(torch.zeros(2, 8), generator=torch.Generator().manual_seed(0))
        >>> b = enc.decode(torch.zeros(2, 8), generator=torch.Generator().manual_seed(0))
        >>> a.shape, bool(torch.equal(a, b))
        (torch.Size([2, 1, 16, 16]), True)
        """
        w = self._check_latents(z)
        n = len(w)
        residual, noise = self._checked_codes(codes, n)
        if noise is None:
            noise = self.generator.make_noise(n, generator=generator, device="cpu")
        psi = _fraction("truncation", truncation, 0.0, float("inf"))
        batch_size = _positive_int("batch_size", batch_size)
        device = self.device
        outputs = []
        with torch.no_grad(), eval_mode(self):
            for start in range(0, n, batch_size):
                rows = slice(start, start + batch_size)
                ws = w[rows].to(device)[:, None].expand(-1, self.num_ws, -1)
                if residual is not None:
                    ws = ws + residual[rows].to(device)
                ws = self.generator.truncate(ws, psi)
                images = self.generator.synthesis(ws, [t[rows].to(device) for t in noise])
                outputs.append(images.clamp(-1.0, 1.0).float().to(w.device))
        if not outputs:
            return torch.empty(0, self.in_channels, *self._sizes, device=w.device)
        return torch.cat(outputs)

    def _checked_codes(self, codes, n: int):
        if codes is None:
            return None, None
        if not isinstance(codes, dict) or set(codes) != {"w_residual", "noise"}:
            raise InputTypeError(
                f"{type(self).__name__}.decode expects codes from invert(): a dict with "
                f"'w_residual' and 'noise', got "
                f"{sorted(codes) if isinstance(codes, dict) else type(codes).__name__}")
        residual = torch.as_tensor(codes["w_residual"]).float()
        if tuple(residual.shape) != (n, self.num_ws, self.latent_dim):
            raise InputShapeError(f"codes['w_residual'] must have shape ({n}, {self.num_ws}, "
                                  f"{self.latent_dim}) for {n} embeddings, got "
                                  f"{tuple(residual.shape)}")
        shapes = self.generator.synthesis.noise_shapes
        noise = [torch.as_tensor(t).float() for t in codes["noise"]]
        if len(noise) != len(shapes) or any(tuple(t.shape) != (n, 1, *s)
                                            for t, s in zip(noise, shapes, strict=True)):
            raise InputShapeError(
                f"codes['noise'] must hold {len(shapes)} tensors shaped (N, 1, *shape) for "
                f"the shapes {shapes}, got {[tuple(t.shape) for t in noise]}")
        return residual, noise

    def sample(self, n: int, *, generator: torch.Generator | None = None,
               truncation: float = 1.0, batch_size: int = 64) -> torch.Tensor:
        """Generate ``n`` new images from random ``z`` (and random noise).

        Parameters
        ----------
        n : int
            Number of images.
        generator : torch.Generator, optional
            Source of ``z`` and the noise (``None``: a fresh default generator).
        truncation : float, default 1.0
            The truncation trick's ``psi`` (0.5-0.7 gives typical, less varied images).
        batch_size : int, default 64
            Images per forward pass.

        Returns
        -------
        torch.Tensor
            ``(n, C, *spatial)`` in [-1, 1], on the CPU.

        Examples
        --------
        >>> import torch
        >>> from latentaudit import StyleGAN2Encoder
        >>> enc = StyleGAN2Encoder(preset="tiny")
        >>> enc.sample(3, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([3, 1, 16, 16])
        """
        n = _positive_int("n", n, 0)
        generator = torch.Generator() if generator is None else generator
        z = torch.randn(n, self.generator.z_dim, generator=generator, device=generator.device)
        with torch.no_grad(), eval_mode(self):
            w = torch.cat([self.generator.mapping(chunk.to(self.device)).cpu()
                           for chunk in z.split(batch_size)]) if n else z.cpu()
        return self.decode(w, generator=generator, truncation=truncation,
                           batch_size=batch_size)

    # -- training ---------------------------------------------------------------------
    def configure_optimizers(self, config) -> dict[str, torch.optim.Optimizer]:
        """The optimisers of the current stage, for the shared training loop.

        GAN stage: Adam for the generator and for the discriminator at the loop's ``lr``
        and ``betas``, both adjusted for lazy regularisation (see
        :func:`~latentaudit.encoders.stylegan2.steps.optimizer_settings`).  Inversion stage:
        Adam for the inverter.

        Parameters
        ----------
        config : TrainingConfig
            The loop's options (``lr``, ``betas``).

        Returns
        -------
        dict of str to torch.optim.Optimizer
        """
        from .steps import optimizer_settings

        cfg = self.config
        lr, betas = float(config.lr), tuple(config.betas)
        if self._stage == "inversion":
            return {"inverter": _adam(self.inverter.parameters(), lr=lr, betas=betas)}
        pl_interval = cfg.path_length_interval if cfg.path_length_weight > 0 else None
        r1_interval = cfg.r1_interval if cfg.r1_gamma > 0 else None
        return {
            "generator": _adam(self.generator.parameters(),
                                          **optimizer_settings(lr, betas, pl_interval)),
            "discriminator": _adam(self.discriminator.parameters(),
                                              **optimizer_settings(lr, betas, r1_interval)),
        }

    def training_step(self, batch, step: int, ctx) -> dict[str, float]:
        """One training step of the current stage, for the shared training loop.

        Parameters
        ----------
        batch : dict, tuple or torch.Tensor
            Images, on the training device.
        step : int
            Optimiser steps done so far.
        ctx : step context
            The loop's (``generator``, ``autocast``, ``backward``, ``step``).

        Returns
        -------
        dict of str to float
            The step's logs.
        """
        from .steps import gan_step, inversion_step

        x = self._check_images(item_image(batch), "training images")
        step_fn = gan_step if self._stage == "gan" else inversion_step
        return step_fn(self, x, step, ctx)

    def fit(self, dataset, *, max_steps: int, batch_size: int = 32,
            inversion_steps: int | None = None, inversion_lr: float = 1e-3, device=None,
            checkpoint_dir: str | os.PathLike | None = None, resume: bool = False,
            verbose: bool = True, **options) -> StyleGAN2Encoder:
        """Train the GAN, then the inverter through the frozen generator.

        Two runs of the shared training loop, each resumable on its own:

        1. ``max_steps - inversion_steps`` GAN steps (:func:`~latentaudit.encoders.
           stylegan2.steps.gan_step`): Adam with the paper's ``lr=0.0025`` and ``betas=(0,
           0.99)``, no gradient clipping, an EMA of the generator (``ema_decay``, default
           0.999) whose weights the generator keeps at the end;
        2. ``inversion_steps`` inverter steps (:func:`~latentaudit.encoders.stylegan2.
           steps.inversion_step`), Adam at ``inversion_lr``; the inverter's residual trunk
           starts from the trained discriminator's (when their channels agree).

        With ``checkpoint_dir``, the stages checkpoint into its ``gan`` and ``inversion``
        folders; ``resume=True`` continues whichever stage was interrupted.  A
        ``time_limit`` covers both stages; when it stops the GAN stage, the inverter is not
        trained yet and ``history_.attrs["stop_reason"]`` is ``"time_limit"``.

        Parameters
        ----------
        dataset : Dataset, numpy.ndarray or torch.Tensor
            Training images in [-1, 1]: a map-style dataset yielding ``{"image", "index"}``
            dicts (latentaudit's datasets) or an array ``(N, C, *spatial)``.
        max_steps : int
            Optimiser steps of both stages together (each GAN step steps the generator and
            the discriminator).
        batch_size : int, default 32
            Images per step.
        inversion_steps : int, optional
            Steps of the inverter's stage; default a quarter of ``max_steps``.
        inversion_lr : float, default 1e-3
            Adam's learning rate for the inverter.
        device : str or torch.device, optional
            Where to train (the model stays there).
        checkpoint_dir : str or os.PathLike, optional
            Folder for the two stages' checkpoints.
        resume : bool, default False
            Continue the run saved in ``checkpoint_dir``.
        verbose : bool, default True
            Show progress bars.
        **options
            Other options of the training loop (``lr``, ``betas``, ``ema_decay`` apply to
            the GAN stage; ``precision``, ``time_limit``, ``random_state``, ... to both).

        Returns
        -------
        self
            With ``history_`` (both stages, a ``stage`` column).

        Raises
        ------
        ConfigError
            For step counts that do not add up.
        InputShapeError
            If the images do not fit the model.
        TrainingError
            If a loss becomes NaN or infinite.
        """
        from ._stages import fit_in_stages

        return fit_in_stages(self, dataset, max_steps=max_steps, batch_size=batch_size,
                             inversion_steps=inversion_steps, inversion_lr=inversion_lr,
                             device=device, checkpoint_dir=checkpoint_dir, resume=resume,
                             verbose=verbose, **options)

    def extra_repr(self) -> str:
        cfg = self.config
        return (f"spatial_dims={cfg.spatial_dims}, in_channels={cfg.in_channels}, "
                f"image_size={cfg.image_size}, latent_dim={cfg.latent_dim}, "
                f"num_ws={self.num_ws}")
