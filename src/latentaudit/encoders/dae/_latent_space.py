"""The DAE's latent space: statistics of ``z_sem`` (normalisation) and the latent DDIM
that samples new subjects."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.utils.data import TensorDataset

from ...errors import ConfigError, InputShapeError, NotFittedError
from .._base import eval_mode
from .config import _positive_int

if TYPE_CHECKING:
    from .model import DAEEncoder


class LatentSpaceMixin:
    """Latent statistics and the latent DDIM of
    :class:`~latentaudit.encoders.dae.DAEEncoder`."""

    @torch.no_grad()
    def compute_latent_stats(self, x, *, batch_size: int = 64,
                             verbose: bool = False) -> DAEEncoder:
        """Store the per-dimension mean and standard deviation of ``z_sem`` over ``x``.

        :meth:`manipulate` and the latent DDIM work in the space normalised by these;
        :meth:`fit` calls this on its training images.

        Parameters
        ----------
        x : torch.Tensor, numpy.ndarray, Dataset or DataLoader
            Images, as for :meth:`encode`.
        batch_size : int, default 64
            Images per forward pass.
        verbose : bool, default False
            Show a progress bar.

        Returns
        -------
        self
        """
        z = self.encode(x, batch_size=batch_size, verbose=verbose).double()
        if len(z) < 2:
            raise InputShapeError(f"latent statistics need at least 2 images, got {len(z)}")
        self.latent_mean.copy_(z.mean(0).float())
        self.latent_std.copy_(z.std(0).clamp_min(1e-6).float())
        self.latent_count.fill_(len(z))
        return self

    def _require_stats(self, what: str) -> None:
        if int(self.latent_count) == 0:
            raise NotFittedError(
                f"{what} needs the statistics of z_sem over the training images; call fit "
                f"or compute_latent_stats first")

    def normalize(self, z_sem) -> torch.Tensor:
        """``(z_sem - latent_mean) / latent_std``: the space of :meth:`manipulate` and the
        latent DDIM.

        Parameters
        ----------
        z_sem : torch.Tensor or numpy.ndarray
            ``(N, latent_dim)``.

        Returns
        -------
        torch.Tensor

        Raises
        ------
        NotFittedError
            Before the statistics are computed.
        """
        self._require_stats("normalize")
        z = self._latents(z_sem)
        return (z - self.latent_mean.to(z.device)) / self.latent_std.to(z.device)

    def denormalize(self, z_normalized) -> torch.Tensor:
        """Inverse of :meth:`normalize`.

        Parameters
        ----------
        z_normalized : torch.Tensor or numpy.ndarray
            ``(N, latent_dim)``.

        Returns
        -------
        torch.Tensor
        """
        self._require_stats("denormalize")
        z = self._latents(z_normalized)
        return z * self.latent_std.to(z.device) + self.latent_mean.to(z.device)

    # -- latent DDIM
    def fit_latent(self, x=None, *, z_sem=None, max_steps: int = 5000, batch_size: int = 256,
                   device=None, verbose: bool = False, **options) -> DAEEncoder:
        """Train the latent DDIM on the normalised codes of the training images.

        Parameters
        ----------
        x : torch.Tensor, numpy.ndarray, Dataset or DataLoader, optional
            Training images (encoded with :meth:`encode`).
        z_sem : torch.Tensor or numpy.ndarray, optional
            Their codes, if already computed (instead of ``x``).
        max_steps : int, default 5000
            Optimiser steps.
        batch_size : int, default 256
            Codes per step.
        device : str or torch.device, optional
            Where to train.
        verbose : bool, default False
            Show a progress bar.
        **options
            Other options of :func:`latentaudit.training.train` (default: lr 1e-4,
            ``ema_decay`` 0.999).

        Returns
        -------
        self
            With ``latent_history_``.

        Raises
        ------
        ConfigError
            If the model was built with ``latent_ddim=False``.
        NotFittedError
            If neither the latent statistics nor images to compute them from exist.
        """
        if self.latent_net is None:
            raise ConfigError("this DAEEncoder was built with latent_ddim=False; build it "
                              "with latent_ddim=True to sample new subjects")
        if (x is None) == (z_sem is None):
            raise ConfigError("fit_latent needs exactly one of x (images) or z_sem (codes)")
        if z_sem is None:
            z_sem = self.encode(x, verbose=verbose)
            if int(self.latent_count) == 0:
                self.compute_latent_stats(x)
        z_norm = self.normalize(z_sem).detach().float().cpu()
        from ...training import train

        settings = {"lr": 1e-4, "ema_decay": 0.999, "weight_decay": 0.0, **options}
        self.latent_history_ = train(self.latent_net, TensorDataset(z_norm),
                                     max_steps=max_steps, batch_size=batch_size,
                                     device=device or self.device, verbose=verbose,
                                     **settings)
        self.latent_ddim_trained.fill_(1)
        return self

    def sample(self, n: int, steps: int | None = None, *, latent_steps: int = 50,
               generator: torch.Generator | None = None, batch_size: int = 64,
               verbose: bool = False) -> torch.Tensor:
        """Sample new images: a ``z_sem`` from the latent DDIM, then random ``x_T``.

        Parameters
        ----------
        n : int
            Number of images.
        steps : int, optional
            DDIM steps of the image decoder.
        latent_steps : int, default 50
            DDIM steps of the latent model.
        generator : torch.Generator, optional
            Source of all the noise.
        batch_size : int, default 64
            Images per forward pass.
        verbose : bool, default False
            Show progress bars.

        Returns
        -------
        torch.Tensor
            ``(n, C, *spatial)`` images in [-1, 1], on the CPU.

        Raises
        ------
        NotFittedError
            If the latent DDIM has not been trained (:meth:`fit_latent`).
        """
        if self.latent_net is None or int(self.latent_ddim_trained) == 0:
            raise NotFittedError("sample needs a trained latent DDIM: build the model with "
                                 "latent_ddim=True and call fit_latent")
        n = _positive_int("n", n)
        with torch.no_grad(), eval_mode(self):
            z_norm = self.latent_net.sample(n, latent_steps, generator=generator)
        z = self.denormalize(z_norm.cpu())
        return self.decode(z, None, steps, generator=generator, batch_size=batch_size,
                           verbose=verbose)
