"""The Diffusion Autoencoder (Preechakul et al., CVPR 2022): :class:`DAEEncoder`, its
config and presets, and the parts it is built from (semantic encoder, conditional UNet,
Gaussian diffusion with DDIM sampling and inversion, latent DDIM)."""

from ...nn import slerp
from .config import PRESETS, DAEConfig, preset
from .diffusion import GaussianDiffusion, beta_schedule, ddim_timesteps
from .latent import LatentDenoiser
from .model import DAEEncoder
from .semantic_encoder import SemanticEncoder
from .unet import ConditionalUNet, ResBlock

__all__ = [
    "PRESETS",
    "ConditionalUNet",
    "DAEConfig",
    "DAEEncoder",
    "GaussianDiffusion",
    "LatentDenoiser",
    "ResBlock",
    "SemanticEncoder",
    "beta_schedule",
    "ddim_timesteps",
    "preset",
    "slerp",
]
