"""Latent DDIM: a small diffusion model over normalised ``z_sem``, so a Diffusion
Autoencoder can sample new subjects without an input image (Preechakul et al., sec. 4.4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...nn import timestep_embedding
from .diffusion import GaussianDiffusion

__all__ = ["LatentDenoiser"]


class _SkipLayer(nn.Module):
    """Linear -> scale by the timestep -> LayerNorm -> SiLU (the paper's MLP layer)."""

    def __init__(self, in_features: int, out_features: int, cond_features: int,
                 dropout: float) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.cond = nn.Linear(cond_features, out_features)
        self.norm = nn.LayerNorm(out_features)
        self.dropout = float(dropout)
        nn.init.kaiming_normal_(self.linear.weight, nonlinearity="relu")
        nn.init.kaiming_normal_(self.cond.weight, nonlinearity="relu")

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.linear(h) * (1.0 + self.cond(cond))
        h = F.silu(self.norm(h))
        return F.dropout(h, self.dropout, self.training) if self.dropout else h


class LatentDenoiser(nn.Module):
    """An MLP with skip connections that denoises a noisy normalised ``z_sem``.

    Every hidden layer after the first receives the noisy input again (concatenated), and
    is scaled by a projection of the timestep embedding; the last layer is linear.  It
    predicts v = sqrt(alpha_bar) noise - sqrt(1 - alpha_bar) z rather than the noise (the
    paper's choice): a noise predictor's error is multiplied by about 150 in its estimate
    of ``z`` at the top of the linear schedule, and with the few thousand codes of one
    cohort its samples landed far from every code; with v they decode to plausible images.

    Parameters
    ----------
    latent_dim : int
        Size of ``z_sem``.
    hidden_dim : int, default 2048
        Width of the hidden layers (2048 in the paper).
    num_layers : int, default 10
        Number of linear layers, at least 2 (10 in the paper).
    time_dim : int, default 64
        Size of the sinusoidal timestep embedding.
    dropout : float, default 0.0
        Dropout after each hidden layer.
    timesteps : int, default 1000
        Diffusion steps ``T`` of the latent model.
    beta_schedule : {"linear", "cosine"}, default "linear"
        Noise schedule of the latent model.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders.dae.latent import LatentDenoiser
    >>> net = LatentDenoiser(8, hidden_dim=16, num_layers=3)
    >>> loss = net.loss([torch.randn(4, 8)], generator=torch.Generator().manual_seed(0))
    >>> net.sample(2, steps=5, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([2, 8])
    """

    def __init__(self, latent_dim: int, hidden_dim: int = 2048, num_layers: int = 10,
                 time_dim: int = 64, dropout: float = 0.0, timesteps: int = 1000,
                 beta_schedule: str = "linear") -> None:
        super().__init__()
        if num_layers < 2:
            raise ConfigError(f"latent num_layers must be >= 2, got {num_layers}")
        self.latent_dim = int(latent_dim)
        self.time_dim = int(time_dim)
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, latent_dim), nn.SiLU(),
                                      nn.Linear(latent_dim, latent_dim))
        self.layers = nn.ModuleList()
        for i in range(num_layers - 1):
            fan_in = latent_dim if i == 0 else hidden_dim + latent_dim
            self.layers.append(_SkipLayer(fan_in, hidden_dim, latent_dim, dropout))
        self.out = nn.Linear(hidden_dim + latent_dim, latent_dim)
        self.diffusion = GaussianDiffusion(timesteps, beta_schedule, "v")

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Predict v for ``z`` ``(N, latent_dim)`` at timesteps ``t`` ``(N,)``."""
        cond = F.silu(self.time_mlp(timestep_embedding(t, self.time_dim).to(z.dtype)))
        h = z
        for i, layer in enumerate(self.layers):
            if i:
                h = torch.cat([h, z], dim=1)
            h = layer(h, cond)
        return self.out(torch.cat([h, z], dim=1))

    def loss(self, batch, *, generator: torch.Generator) -> torch.Tensor:
        """v-prediction MSE on a batch of normalised latents.

        Parameters
        ----------
        batch : torch.Tensor, or a list/tuple whose first element is the latents
            ``(N, latent_dim)``.
        generator : torch.Generator
            Source of the timesteps and the noise.

        Returns
        -------
        torch.Tensor
            Scalar loss.
        """
        z = batch[0] if isinstance(batch, (list, tuple)) else batch
        z = z.to(next(self.parameters()).device).float()
        return self.diffusion.loss(self, z, generator=generator)

    @torch.no_grad()
    def sample(self, n: int, steps: int = 50,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` normalised latents by deterministic DDIM from Gaussian noise.

        Parameters
        ----------
        n : int
            Number of latents.
        steps : int, default 50
            DDIM steps.
        generator : torch.Generator, optional
            Source of the starting noise (drawn on the generator's device); None uses a
            fresh ``torch.Generator()``, never the global random state.

        Returns
        -------
        torch.Tensor
            ``(n, latent_dim)`` on the model's device.
        """
        device = next(self.parameters()).device
        if generator is None:  # never the global random state
            generator = torch.Generator()
        noise = torch.randn(int(n), self.latent_dim, generator=generator,
                            device=generator.device).to(device)
        return self.diffusion.ddim_sample(self, noise, steps, clip_denoised=False)
