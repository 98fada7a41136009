"""Configuration of the Diffusion Autoencoder and its named presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ...errors import ConfigError
from ...utils import check_option

__all__ = ["PRESETS", "DAEConfig", "preset"]


@dataclass
class DAEConfig:
    """Configuration of :class:`~latentaudit.DAEEncoder`; the fields are its parameters.

    Examples
    --------
    >>> from latentaudit.encoders.dae import DAEConfig
    >>> DAEConfig(image_size=16, base_channels=8).latent_dim
    512
    """

    spatial_dims: int = 2
    in_channels: int = 1
    image_size: int | tuple[int, ...] = 64
    latent_dim: int = 512
    base_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 1, 2, 2)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16,)
    encoder_channel_mult: tuple[int, ...] = (1, 1, 2, 4, 4)
    encoder_num_res_blocks: int = 2
    encoder_attention_resolutions: tuple[int, ...] = (16,)
    embed_dim: int = 512
    dropout: float = 0.1
    num_heads: int = 1
    head_channels: int | None = None
    num_groups: int = 32
    resblock_updown: bool = True
    timesteps: int = 1000
    beta_schedule: str = "linear"
    prediction: str = "eps"
    sample_steps: int = 20
    latent_ddim: bool = False
    latent_hidden_dim: int = 2048
    latent_num_layers: int = 10
    latent_dropout: float = 0.0


_PAPER = {"in_channels": 1, "latent_dim": 512, "base_channels": 64, "channel_mult": (1, 1, 2, 2),
          "num_res_blocks": 2, "attention_resolutions": (16,),
          "encoder_channel_mult": (1, 1, 2, 4, 4), "encoder_num_res_blocks": 2,
          "encoder_attention_resolutions": (16,), "embed_dim": 512, "dropout": 0.1,
          "resblock_updown": True, "timesteps": 1000, "beta_schedule": "linear",
          "prediction": "eps", "sample_steps": 20, "latent_ddim": True,
          "latent_hidden_dim": 2048, "latent_num_layers": 10}

#: Named configurations.  ``paper256``/``paper64`` are the settings of Graf et al. (2024)
#: (the Diffusion Autoencoder of Preechakul et al. as used on 1-channel MRI), for GPUs;
#: ``cpu64`` is sized for two CPU cores (the shipped demo model) and predicts v rather than
#: the noise: after a CPU budget of training, a noise predictor's error at the top of the
#: schedule is multiplied by sqrt((1 - alpha_bar) / alpha_bar), about 150 at t = T - 1, in
#: its estimate of the image, so decoding from a random x_T gave noise; v-prediction's
#: estimate of the image is not amplified there.  ``tiny``/``tiny3d`` are
#: for tests; ``volume64`` is a 3-D model for 64^3 volumes on a GPU.
PRESETS: dict[str, dict] = {
    "tiny": {"spatial_dims": 2, "image_size": 16, "latent_dim": 16, "base_channels": 8,
             "channel_mult": (1, 2), "num_res_blocks": 1, "attention_resolutions": (8,),
             "encoder_channel_mult": (1, 2), "encoder_num_res_blocks": 1,
             "encoder_attention_resolutions": (8,), "embed_dim": 32, "dropout": 0.0,
             "num_groups": 4, "sample_steps": 10, "latent_ddim": True,
             "latent_hidden_dim": 32, "latent_num_layers": 3},
    "tiny3d": {"spatial_dims": 3, "image_size": 8, "latent_dim": 16, "base_channels": 8,
               "channel_mult": (1, 2), "num_res_blocks": 1, "attention_resolutions": (4,),
               "encoder_channel_mult": (1, 2), "encoder_num_res_blocks": 1,
               "encoder_attention_resolutions": (4,), "embed_dim": 32, "dropout": 0.0,
               "num_groups": 4, "sample_steps": 10, "latent_ddim": True,
               "latent_hidden_dim": 32, "latent_num_layers": 3},
    "paper256": {**_PAPER, "spatial_dims": 2, "image_size": 256},
    "paper64": {**_PAPER, "spatial_dims": 2, "image_size": 64},
    "cpu64": {"spatial_dims": 2, "in_channels": 1, "image_size": 64, "latent_dim": 512,
              "base_channels": 32, "channel_mult": (1, 2, 2, 2), "num_res_blocks": 1,
              "attention_resolutions": (8,), "encoder_channel_mult": (1, 2, 2, 4, 4),
              "encoder_num_res_blocks": 1, "encoder_attention_resolutions": (8,),
              "embed_dim": 128, "dropout": 0.0, "resblock_updown": True,
              "timesteps": 1000, "beta_schedule": "linear", "prediction": "v",
              "sample_steps": 20, "latent_ddim": True, "latent_hidden_dim": 256,
              "latent_num_layers": 3},
    "volume64": {"spatial_dims": 3, "in_channels": 1, "image_size": 64, "latent_dim": 512,
                 "base_channels": 32, "channel_mult": (1, 2, 2, 4), "num_res_blocks": 2,
                 "attention_resolutions": (8,), "encoder_channel_mult": (1, 2, 2, 4, 4),
                 "encoder_num_res_blocks": 2, "encoder_attention_resolutions": (8,),
                 "embed_dim": 512, "dropout": 0.1, "resblock_updown": True,
                 "timesteps": 1000, "beta_schedule": "linear", "prediction": "eps",
                 "sample_steps": 20, "latent_ddim": True, "latent_hidden_dim": 2048,
                 "latent_num_layers": 10},
}

def preset(name: str, **overrides) -> DAEConfig:
    """The :class:`DAEConfig` of a named preset, with some fields replaced.

    Parameters
    ----------
    name : str
        One of :data:`PRESETS`: ``"tiny"``, ``"tiny3d"``, ``"paper256"``, ``"paper64"``,
        ``"cpu64"``, ``"volume64"``.
    **overrides
        Fields to change.

    Returns
    -------
    DAEConfig

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError`) for an unknown preset or field.

    Examples
    --------
    >>> from latentaudit.encoders.dae import preset
    >>> preset("paper64").channel_mult
    (1, 1, 2, 2)
    """
    check_option("preset", name, tuple(PRESETS))
    fields = {f.name for f in dataclasses.fields(DAEConfig)}
    for key in overrides:
        check_option("DAEConfig field", key, sorted(fields))
    return DAEConfig(**{**PRESETS[name], **overrides})


def _positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _int_tuple(name, value, minimum=1, allow_empty=False):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,)
    try:
        value = tuple(value)
    except TypeError:
        raise ConfigError(f"{name} must be a tuple of integers, got {value!r}") from None
    if not value and not allow_empty:
        raise ConfigError(f"{name} must not be empty")
    return tuple(_positive_int(f"{name} entries", v, minimum) for v in value)
