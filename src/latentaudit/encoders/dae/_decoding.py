"""The DAE's generative protocol: the stochastic code ``x_T`` (DDIM inversion) and
decoding, and what is built on them (reconstruction, interpolation, manipulation)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ...errors import ConfigError, InputShapeError
from ...nn import slerp
from .._base import eval_mode


class DecodingMixin:
    """Inversion and decoding of :class:`~latentaudit.encoders.dae.DAEEncoder`."""

    def invert(self, x, z_sem=None, steps: int | None = None, *,
               batch_size: int = 64, clip_denoised: bool = True,
               verbose: bool = False) -> torch.Tensor:
        """The codes of images for :meth:`decode`: the stochastic code ``x_T``, by
        deterministic DDIM inversion conditioned on ``z_sem`` (the generative protocol's
        ``invert``).

        Decoding ``(z_sem, x_T)`` with the same number of steps gives the image back.  The
        round trip is exact only in the limit of small steps: at a finite number of steps
        the error is, to first order, ``sum_i (1 - sigma_{i-1} / sigma_i) *
        |x0_hat_i - x0_hat_{i-1}|`` (``sigma = sqrt((1 - alpha_bar) / alpha_bar)``,
        ``x0_hat_i`` the model's estimate of the image at the i-th step of the path), i.e.
        it is bounded by how much the model's estimate of the clean image changes along
        the path, and it vanishes as the steps shrink.

        Parameters
        ----------
        x : torch.Tensor or numpy.ndarray
            Images ``(N, C, *spatial)`` in [-1, 1].
        z_sem : torch.Tensor or numpy.ndarray, optional
            Their semantic codes ``(N, latent_dim)``; computed with :meth:`encode` when
            None.
        steps : int, optional
            DDIM steps (default: ``config.sample_steps``); decode with the same number.
        batch_size : int, default 64
            Images per forward pass.
        clip_denoised : bool, default True
            Clip the model's estimates of the clean image to [-1, 1] (as :meth:`decode`
            does by default).
        verbose : bool, default False
            Show a progress bar.

        Returns
        -------
        torch.Tensor
            ``x_T``, shaped like ``x``; on ``x``'s device for a tensor, else on the CPU.

        Raises
        ------
        InputShapeError, InputTypeError
            For images or codes of the wrong shape or type.
        """
        batch_size = self._check_batch_size(batch_size)
        x, out_device = self._images(x)
        steps = self._steps(steps)
        z = self.encode(x, batch_size=batch_size) if z_sem is None else self._latents(
            z_sem, len(x))
        device, fmt = self.device, self._memory_format()
        codes = []
        from tqdm.auto import tqdm

        with torch.no_grad(), eval_mode(self):
            for start in tqdm(range(0, len(x), batch_size), disable=not verbose,
                              desc="DDIM inversion", unit="batch"):
                xb = x[start:start + batch_size].to(device).contiguous(memory_format=fmt)
                zb = z[start:start + batch_size].to(device)
                codes.append(self.diffusion.ddim_invert(self._denoiser(zb), xb, steps,
                                                        clip_denoised).float().to(out_device))
        if not codes:
            return torch.empty(0, *x.shape[1:], device=out_device)
        return torch.cat(codes).contiguous()

    def decode(self, z_sem, codes=None, steps: int | None = None, *,
               generator: torch.Generator | None = None, batch_size: int = 64,
               clip_denoised: bool = True, verbose: bool = False) -> torch.Tensor:
        """Decode semantic codes into images by deterministic DDIM (the generative
        protocol's ``decode``).

        Parameters
        ----------
        z_sem : torch.Tensor or numpy.ndarray
            ``(N, latent_dim)`` semantic codes.
        codes : torch.Tensor or numpy.ndarray, optional
            ``(N, C, *spatial)`` stochastic codes ``x_T`` (from :meth:`invert`).  When
            None, Gaussian noise is drawn from ``generator``: the images then share the
            semantics of ``z_sem`` and differ in the details that ``x_T`` carries.
        steps : int, optional
            DDIM steps (default: ``config.sample_steps``).
        generator : torch.Generator, optional
            Source of the noise when ``codes`` is None (drawn on the generator's device);
            the same generator state gives the same images.  None uses a fresh
            ``torch.Generator()`` (its default seed), never the global random state.
        batch_size : int, default 64
            Codes per forward pass.
        clip_denoised : bool, default True
            Clip the model's estimates of the clean image to [-1, 1] at every step.
        verbose : bool, default False
            Show a progress bar.

        Returns
        -------
        torch.Tensor
            ``(N, C, *spatial)`` float32 images in [-1, 1]; on ``z_sem``'s device for a
            tensor, else on the CPU.

        Raises
        ------
        InputShapeError
            If ``z_sem`` is not ``(N, latent_dim)`` or ``codes`` does not match it.

        Examples
        --------
        >>> import torch
        >>> from latentaudit import DAEEncoder
        >>> enc = DAEEncoder.from_preset("tiny")
        >>> z = torch.zeros(2, enc.latent_dim)
        >>> a = enc.decode(z, steps=3, generator=torch.Generator().manual_seed(0))
        >>> b = enc.decode(z, steps=3, generator=torch.Generator().manual_seed(0))
        >>> bool(torch.equal(a, b)), tuple(a.shape)
        (True, (2, 1, 16, 16))
        """
        batch_size = self._check_batch_size(batch_size)
        out_device = z_sem.device if isinstance(z_sem, torch.Tensor) else torch.device("cpu")
        z = self._latents(z_sem)
        steps = self._steps(steps)
        shape = (len(z), self.in_channels, *self._sizes)
        if codes is None:
            if generator is None:
                generator = torch.Generator()
            x_T = torch.randn(shape, generator=generator, device=generator.device)
        else:
            x_T, _ = self._images(codes, "codes (x_T)")
            if tuple(x_T.shape) != shape:
                raise InputShapeError(f"codes (x_T) must have shape {shape} to match z_sem, "
                                      f"got {tuple(x_T.shape)}")
        device, fmt = self.device, self._memory_format()
        images = []
        from tqdm.auto import tqdm

        with torch.no_grad(), eval_mode(self):
            for start in tqdm(range(0, len(z), batch_size), disable=not verbose,
                              desc="DDIM decoding", unit="batch"):
                zb = z[start:start + batch_size].to(device)
                xb = x_T[start:start + batch_size].to(device).contiguous(memory_format=fmt)
                out = self.diffusion.ddim_sample(self._denoiser(zb), xb, steps, clip_denoised)
                images.append(out.clamp(-1.0, 1.0).float().to(out_device))
        if not images:
            return torch.empty(0, *shape[1:], device=out_device)
        return torch.cat(images).contiguous()

    def reconstruct(self, x, steps: int | None = None, *, batch_size: int = 64,
                    verbose: bool = False) -> torch.Tensor:
        """Encode images to ``(z_sem, x_T)`` and decode them back.

        Parameters
        ----------
        x : torch.Tensor or numpy.ndarray
            Images ``(N, C, *spatial)``.
        steps : int, optional
            DDIM steps for the inversion and the decoding.
        batch_size : int, default 64
            Images per forward pass.
        verbose : bool, default False
            Show progress bars.

        Returns
        -------
        torch.Tensor
            Reconstructions shaped like ``x``, in [-1, 1].
        """
        x, _ = self._images(x)
        z = self.encode(x, batch_size=batch_size)
        x_T = self.invert(x, z, steps, batch_size=batch_size, verbose=verbose)
        return self.decode(z, x_T, steps, batch_size=batch_size, verbose=verbose)

    def interpolate(self, x_a, x_b, alphas, steps: int | None = None, *,
                    batch_size: int = 64, verbose: bool = False) -> torch.Tensor:
        """Images between two images: linear interpolation of ``z_sem`` and spherical
        interpolation of ``x_T``, decoded.

        Parameters
        ----------
        x_a, x_b : torch.Tensor or numpy.ndarray
            Start and end images, ``(N, C, *spatial)`` (pairs) or one image ``(C,
            *spatial)`` each.
        alphas : sequence of float
            Interpolation weights; 0 gives the reconstruction of ``x_a``, 1 that of
            ``x_b``.
        steps : int, optional
            DDIM steps.
        batch_size : int, default 64
            Images per forward pass.
        verbose : bool, default False
            Show progress bars.

        Returns
        -------
        torch.Tensor
            ``(N, len(alphas), C, *spatial)``, or ``(len(alphas), C, *spatial)`` for single
            images.

        Examples
        --------
        >>> import torch
        >>> from latentaudit import DAEEncoder
        >>> enc = DAEEncoder.from_preset("tiny")
        >>> a, b = torch.zeros(1, 16, 16), torch.ones(1, 16, 16) * 0.5
        >>> enc.interpolate(a, b, [0.0, 0.5, 1.0], steps=5).shape
        torch.Size([3, 1, 16, 16])
        """
        single = isinstance(x_a, (torch.Tensor, np.ndarray)) and \
            x_a.ndim == self.spatial_dims + 1
        if single:
            x_a, x_b = x_a[None], x_b[None]
        xa, out_device = self._images(x_a, "x_a")
        xb, _ = self._images(x_b, "x_b")
        if xa.shape != xb.shape:
            raise InputShapeError(f"x_a and x_b must have the same shape, got "
                                  f"{tuple(xa.shape)} and {tuple(xb.shape)}")
        alphas = torch.as_tensor(np.asarray(alphas, dtype=np.float64).reshape(-1))
        if not len(alphas):
            raise ConfigError("alphas must hold at least one weight")
        both = torch.cat([xa, xb])
        z = self.encode(both, batch_size=batch_size)
        x_T = self.invert(both, z, steps, batch_size=batch_size, verbose=verbose)
        n, k = len(xa), len(alphas)
        z_a, z_b = z[:n].double(), z[n:].double()
        weights = alphas.to(z.device)
        z_mix = torch.lerp(z_a[:, None], z_b[:, None], weights[None, :, None])
        t_a = x_T[:n].repeat_interleave(k, dim=0)
        t_b = x_T[n:].repeat_interleave(k, dim=0)
        t_mix = slerp(t_a, t_b, weights.repeat(n).to(t_a.device))
        images = self.decode(z_mix.reshape(n * k, -1).float(), t_mix, steps,
                             batch_size=batch_size, verbose=verbose)
        images = images.reshape(n, k, *images.shape[1:]).to(out_device)
        return images[0] if single else images

    def manipulate(self, x, direction, scale=0.3, steps: int | None = None, *,
                   batch_size: int = 64, verbose: bool = False) -> torch.Tensor:
        """Move images along a direction of the normalised latent space and decode them
        with their own stochastic codes (so only what ``z_sem`` carries changes).

        ``z' = denormalize(normalize(z_sem) + scale * sqrt(latent_dim) * d / |d|)``, the
        convention of the paper's code: with unit-variance coordinates, ``scale`` is a
        fraction of the typical length of a normalised code.

        Parameters
        ----------
        x : torch.Tensor or numpy.ndarray
            Images ``(N, C, *spatial)``.
        direction : array-like
            ``(latent_dim,)`` (or ``(N, latent_dim)``, one per image) in the normalised
            space, e.g. the normal of a linear probe fitted on :meth:`normalize`-d codes.
        scale : float or array-like, default 0.3
            Step length (per image if an array ``(N,)``); negative moves the other way.
        steps : int, optional
            DDIM steps.
        batch_size : int, default 64
            Images per forward pass.
        verbose : bool, default False
            Show progress bars.

        Returns
        -------
        torch.Tensor
            The manipulated images, shaped like ``x``.

        Raises
        ------
        NotFittedError
            Before the latent statistics exist (:meth:`fit`, :meth:`compute_latent_stats`).
        InputShapeError
            For a direction of the wrong length.
        """
        self._require_stats("manipulate")
        x, out_device = self._images(x)
        d = torch.as_tensor(np.asarray(direction, dtype=np.float64))
        if d.ndim == 1:
            d = d[None].expand(len(x), -1)
        if d.ndim != 2 or d.shape != (len(x), self.latent_dim):
            raise InputShapeError(f"direction must have shape ({self.latent_dim},) or "
                                  f"({len(x)}, {self.latent_dim}), got {tuple(d.shape)}")
        norms = d.norm(dim=1, keepdim=True)
        if bool((norms == 0).any()):
            raise ConfigError("direction must not be the zero vector")
        scale = torch.as_tensor(np.asarray(scale, dtype=np.float64)).reshape(-1, 1)
        if len(scale) not in (1, len(x)):
            raise InputShapeError(f"scale must be a number or hold one value per image "
                                  f"({len(x)}), got {len(scale)} values")
        z = self.encode(x, batch_size=batch_size)
        x_T = self.invert(x, z, steps, batch_size=batch_size, verbose=verbose)
        shift = scale * math.sqrt(self.latent_dim) * d / norms
        z_new = self.denormalize(self.normalize(z).double().cpu() + shift)
        return self.decode(z_new.float(), x_T, steps, batch_size=batch_size,
                           verbose=verbose).to(out_device)
