"""Gaussian diffusion for the Diffusion Autoencoder: noise schedules, the training loss,
DDIM sampling and deterministic DDIM inversion.

Notation: ``alpha_bar[t]`` is the cumulative product of ``1 - beta``; the forward process is
``x_t = sqrt(alpha_bar[t]) * x_0 + sqrt(1 - alpha_bar[t]) * eps``.  Deterministic DDIM
(eta = 0) is the Euler method, in the variable ``sigma = sqrt((1 - alpha_bar) / alpha_bar)``,
for the probability-flow ODE ``d(x / sqrt(alpha_bar)) = eps(x, t) d(sigma)``, so a DDIM
trajectory can be run forwards (inversion, image -> ``x_T``) and backwards (decoding).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from ...errors import ConfigError
from ...utils import check_option

__all__ = ["GaussianDiffusion", "beta_schedule", "ddim_timesteps"]

BETA_SCHEDULES = ("linear", "cosine")
PREDICTIONS = ("eps", "v")

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def beta_schedule(name: str, timesteps: int = 1000) -> np.ndarray:
    """The noise schedule ``beta_1 .. beta_T``.

    Parameters
    ----------
    name : {"linear", "cosine"}
        ``"linear"``: Ho et al. (2020), from 1e-4 to 0.02 at T=1000 (scaled for other T).
        ``"cosine"``: Nichol & Dhariwal (2021), ``alpha_bar(s) = cos((s + 0.008) / 1.008 *
        pi / 2) ** 2``, betas capped at 0.999.
    timesteps : int, default 1000
        ``T``.

    Returns
    -------
    numpy.ndarray
        ``(T,)`` float64.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError`) for an unknown name or ``T < 1``.

    Examples
    --------
    >>> from latentaudit.encoders.dae.diffusion import beta_schedule
    >>> beta_schedule("linear", 1000)[[0, -1]].tolist()
    [0.0001, 0.02]
    """
    check_option("beta_schedule", name, BETA_SCHEDULES)
    if int(timesteps) != timesteps or timesteps < 1:
        raise ConfigError(f"timesteps must be a positive integer, got {timesteps!r}")
    timesteps = int(timesteps)
    if name == "linear":
        scale = 1000.0 / timesteps
        return np.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=np.float64)

    def alpha_bar(s):
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    return np.array([min(1.0 - alpha_bar((i + 1) / timesteps) / alpha_bar(i / timesteps), 0.999)
                     for i in range(timesteps)], dtype=np.float64)


def ddim_timesteps(timesteps: int, steps: int) -> np.ndarray:
    """The ``steps`` timesteps a DDIM sampler visits, evenly spread over ``0 .. T - 1``.

    Parameters
    ----------
    timesteps : int
        ``T``, the number of training timesteps.
    steps : int
        Number of DDIM steps, ``1 <= steps <= T``.

    Returns
    -------
    numpy.ndarray
        Increasing int64 timesteps, first 0 and (for ``steps > 1``) last ``T - 1``.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError`) when ``steps`` is out of range.
    """
    if isinstance(steps, bool) or int(steps) != steps or not 1 <= steps <= timesteps:
        raise ConfigError(f"steps must be an integer in [1, {timesteps}], got {steps!r}")
    if steps == 1:
        return np.array([timesteps - 1], dtype=np.int64)
    return np.round(np.linspace(0, timesteps - 1, int(steps))).astype(np.int64)


class GaussianDiffusion:
    """The diffusion process: ``q_sample``, the training loss, DDIM sampling and inversion.

    Holds no learnable state; the network is passed to each method as a callable
    ``model(x_t, t) -> prediction`` (the conditioning, e.g. ``z_sem``, is bound in it).

    Parameters
    ----------
    timesteps : int, default 1000
        ``T``.
    schedule : {"linear", "cosine"}, default "linear"
        The beta schedule.
    prediction : {"eps", "v"}, default "eps"
        What the network predicts: the noise (Ho et al.) or the velocity
        ``v = sqrt(alpha_bar) * eps - sqrt(1 - alpha_bar) * x_0`` (Salimans & Ho, 2022).

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.dae.diffusion import GaussianDiffusion
    >>> diffusion = GaussianDiffusion(1000, "linear")
    >>> x0 = torch.zeros(2, 1, 8, 8)
    >>> x_t = diffusion.q_sample(x0, torch.tensor([0, 999]), torch.ones_like(x0))
    >>> x_t.shape
    torch.Size([2, 1, 8, 8])
    """

    def __init__(self, timesteps: int = 1000, schedule: str = "linear",
                 prediction: str = "eps") -> None:
        check_option("prediction", prediction, PREDICTIONS)
        self.timesteps = int(timesteps)
        self.schedule = schedule
        self.prediction = prediction
        betas = beta_schedule(schedule, timesteps)
        # Kept in float64: the DDIM coefficients near t = 0 lose digits in float32.
        self.alpha_bar = torch.from_numpy(np.cumprod(1.0 - betas))

    def __repr__(self) -> str:
        return (f"GaussianDiffusion(timesteps={self.timesteps}, schedule={self.schedule!r}, "
                f"prediction={self.prediction!r})")

    # -- coefficients ------------------------------------------------------------------
    def _coef(self, t: torch.Tensor, ndim: int, dtype, device) -> tuple[torch.Tensor, ...]:
        a = self.alpha_bar.to(device)[t.to(device).long()]
        shape = (-1,) + (1,) * (ndim - 1)
        return (a.sqrt().to(dtype).reshape(shape), (1.0 - a).sqrt().to(dtype).reshape(shape))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Draw ``x_t ~ q(x_t | x_0)``.

        Parameters
        ----------
        x0 : torch.Tensor
            ``(N, C, *spatial)`` clean images.
        t : torch.Tensor
            ``(N,)`` integer timesteps in ``[0, T)``.
        noise : torch.Tensor
            The noise, shaped like ``x0``.

        Returns
        -------
        torch.Tensor
            ``x_t``, same shape as ``x0``.
        """
        sa, s1a = self._coef(t, x0.ndim, x0.dtype, x0.device)
        return sa * x0 + s1a * noise

    def target(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The regression target at ``t``: the noise, or the velocity for ``"v"``."""
        if self.prediction == "eps":
            return noise
        sa, s1a = self._coef(t, x0.ndim, x0.dtype, x0.device)
        return sa * noise - s1a * x0

    def split_prediction(self, x_t: torch.Tensor, t: torch.Tensor,
                         out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Turn a network output into ``(x0_hat, eps_hat)``.

        Parameters
        ----------
        x_t : torch.Tensor
            The noisy input.
        t : torch.Tensor
            ``(N,)`` timesteps.
        out : torch.Tensor
            The network's prediction (noise or velocity).

        Returns
        -------
        tuple of torch.Tensor
            The predicted clean image and noise.
        """
        sa, s1a = self._coef(t, x_t.ndim, x_t.dtype, x_t.device)
        if self.prediction == "eps":
            eps = out
            x0 = (x_t - s1a * eps) / sa
        else:
            x0 = sa * x_t - s1a * out
            eps = s1a * x_t + sa * out
        return x0, eps

    def loss(self, model: ModelFn, x0: torch.Tensor, *,
             generator: torch.Generator) -> torch.Tensor:
        """The training loss: mean squared error of the noise (or velocity) prediction at a
        uniformly drawn timestep.

        Parameters
        ----------
        model : callable
            ``model(x_t, t) -> prediction``.
        x0 : torch.Tensor
            ``(N, C, *spatial)`` clean images.
        generator : torch.Generator
            For the timesteps and the noise, drawn per sample
            (:func:`~latentaudit.training.batch_randint`, ``batch_randn``).

        Returns
        -------
        torch.Tensor
            Scalar loss.
        """
        from ...training import batch_randint, batch_randn

        t = batch_randint(0, self.timesteps, (x0.shape[0],), generator=generator,
                          device=x0.device)
        noise = batch_randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x_t = self.q_sample(x0, t, noise)
        out = model(x_t.contiguous(memory_format=_memory_format(x0)), t)
        return torch.nn.functional.mse_loss(out.float(), self.target(x0, t, noise).float())

    # -- DDIM ----------------------------------------------------------------------------
    def _ddim_step(self, model, x, t_from, t_to, clip_denoised):
        x0, eps = self._estimate(model, x, t_from, clip_denoised)
        a_to = float(self.alpha_bar[int(t_to)]) if t_to >= 0 else 1.0
        return math.sqrt(a_to) * x0 + math.sqrt(1.0 - a_to) * eps

    @torch.no_grad()
    def ddim_sample(self, model: ModelFn, x_T: torch.Tensor, steps: int = 20,
                    clip_denoised: bool = True, progress: bool = False) -> torch.Tensor:
        """Deterministic DDIM sampling (eta = 0) from ``x_T`` to an image.

        Parameters
        ----------
        model : callable
            ``model(x_t, t) -> prediction``.
        x_T : torch.Tensor
            ``(N, C, *spatial)`` starting noise (or a code from :meth:`ddim_invert`).
        steps : int, default 20
            Number of model evaluations.
        clip_denoised : bool, default True
            Clip every estimate of ``x_0`` to ``[-1, 1]``.
        progress : bool, default False
            Show a progress bar.

        Returns
        -------
        torch.Tensor
            ``x_0``, same shape as ``x_T``.
        """
        seq = ddim_timesteps(self.timesteps, steps)
        x = x_T
        from tqdm.auto import tqdm

        for i in tqdm(range(len(seq) - 1, -1, -1), disable=not progress, desc="DDIM"):
            t_to = int(seq[i - 1]) if i > 0 else -1
            x = self._ddim_step(model, x, int(seq[i]), t_to, clip_denoised)
        return x

    @torch.no_grad()
    def ddim_invert(self, model: ModelFn, x0: torch.Tensor, steps: int = 20,
                    clip_denoised: bool = True, progress: bool = False,
                    return_bound: bool = False):
        """Deterministic DDIM inversion: run the DDIM path from an image up to ``x_T``.

        The image is treated as the point at ``alpha_bar = 1`` below the sampler's grid
        ``t_0 = 0 < t_1 < ... < t_{K-1} = T - 1``; each step up from point ``k - 1`` to
        point ``k`` uses the model's estimate of the clean image at point ``k - 1`` (for
        the first step, the image itself), while decoding back down from point ``k`` uses
        the estimate at point ``k``.  In ``y = x / sqrt(alpha_bar)`` and ``sigma =
        sqrt((1 - alpha_bar) / alpha_bar)`` a step down is ``y' = (sigma' / sigma) y +
        (1 - sigma' / sigma) x0_hat``, so one step up and down returns ``y'`` moved by
        ``(1 - sigma_{k-1} / sigma_k) * (x0_hat_k - x0_hat_{k-1})``.  The round trip is
        therefore exact when the estimate of the clean image is constant along the path
        (and in the limit of small steps), and otherwise the Euclidean norm of its error
        is, to first order and for a denoiser whose estimate does not amplify
        perturbations of ``y`` (a non-expansive denoiser), at most
        ``B = sum_k (1 - sigma_{k-1} / sigma_k) ||x0_hat_k - x0_hat_{k-1}||`` per image.

        Parameters
        ----------
        model : callable
            ``model(x_t, t) -> prediction``.
        x0 : torch.Tensor
            ``(N, C, *spatial)`` images.
        steps : int, default 20
            Number of model evaluations; decode with the same number.
        clip_denoised : bool, default True
            Clip every estimate of the clean image to ``[-1, 1]`` (as when decoding).
        progress : bool, default False
            Show a progress bar.
        return_bound : bool, default False
            Also return ``B`` (one more model evaluation, at the top of the path).

        Returns
        -------
        torch.Tensor or (torch.Tensor, torch.Tensor)
            ``x_T``, shaped like ``x0``; with ``return_bound``, also ``B``, ``(N,)``.
        """
        seq = ddim_timesteps(self.timesteps, steps)
        sigma = [0.0] + [math.sqrt((1.0 - float(self.alpha_bar[int(t)]))
                                   / float(self.alpha_bar[int(t)])) for t in seq]
        x = x0
        previous = x0  # the clean-image estimate used by the step just taken
        bound = x0.new_zeros(len(x0), dtype=torch.float64) if return_bound else None
        from tqdm.auto import tqdm

        for k in tqdm(range(len(seq)), disable=not progress, desc="DDIM inversion"):
            if k == 0:
                # The first step starts at the image itself; the model sees it at t_0 (at
                # t_0 = 0 the two differ by sqrt(1 - alpha_bar_0) ~ 0.01 of noise).
                x0_hat, eps = x0, self._estimate(model, x, int(seq[0]), False)[1]
            else:
                x0_hat, eps = self._estimate(model, x, int(seq[k - 1]), clip_denoised)
                if bound is not None:
                    ratio = sigma[k - 1] / sigma[k]
                    bound += (1.0 - ratio) * _norms(x0_hat - previous)
                previous = x0_hat
            a_to = float(self.alpha_bar[int(seq[k])])
            x = math.sqrt(a_to) * x0_hat + math.sqrt(1.0 - a_to) * eps
        if bound is None:
            return x
        top, _ = self._estimate(model, x, int(seq[-1]), clip_denoised)
        bound += (1.0 - sigma[-2] / sigma[-1]) * _norms(top - previous)
        return x, bound

    def _estimate(self, model, x, t_value, clip_denoised):
        """The model's ``(x0_hat, eps_hat)`` at ``x`` and timestep ``t_value``."""
        t = torch.full((x.shape[0],), int(t_value), device=x.device, dtype=torch.long)
        x0, eps = self.split_prediction(x, t, model(x, t))
        if clip_denoised:
            x0 = x0.clamp(-1.0, 1.0)
            # Re-derive the noise from the clipped estimate so the step stays on the
            # deterministic DDIM path through x.
            sa, s1a = self._coef(t, x.ndim, x.dtype, x.device)
            eps = (x - sa * x0) / s1a
        return x0, eps


def _norms(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(len(x), -1).double().norm(dim=1)


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    if x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    if x.ndim == 5 and x.is_contiguous(memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    return torch.contiguous_format
