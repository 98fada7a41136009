"""Configuration of the StyleGAN2 encoder and its named presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ...utils import check_option

__all__ = ["PRESETS", "StyleGAN2Config", "preset"]


@dataclass
class StyleGAN2Config:
    """Configuration of :class:`~latentaudit.StyleGAN2Encoder`; the fields are its
    parameters (see the class for their meaning).

    Examples
    --------
    >>> from latentaudit.encoders.stylegan2 import StyleGAN2Config
    >>> StyleGAN2Config().mapping_lr_multiplier
    0.01
    """

    spatial_dims: int = 2
    in_channels: int = 1
    image_size: int | tuple[int, ...] = 64
    latent_dim: int = 512
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    channel_base: int = 8192
    channel_max: int = 256
    inverter_channel_base: int | None = None
    inverter_channel_max: int | None = None
    w_plus: bool = True
    mbstd_group_size: int = 4
    style_mixing_prob: float = 0.9
    r1_gamma: float = 1.0
    r1_interval: int = 16
    path_length_weight: float = 0.0
    path_length_interval: int = 4
    augment: tuple[str, ...] = ("translation", "cutout", "brightness", "contrast")
    augment_p: float = 0.0
    ada_target: float | None = 0.6
    ada_interval: int = 4
    ada_kimg: float = 100.0
    inversion_feature_weight: float = 1.0
    inversion_delta_weight: float = 0.01
    inversion_refine_lr: float = 0.01


_PAPER = {"latent_dim": 512, "mapping_layers": 8, "mapping_lr_multiplier": 0.01,
          "channel_base": 32768, "channel_max": 512, "mbstd_group_size": 4,
          "style_mixing_prob": 0.9, "r1_interval": 16, "path_length_weight": 2.0,
          "path_length_interval": 4}

#: Named configurations.  ``paper64``/``paper256`` follow the paper's configuration F
#: (channels ``min(32768 / side, 512)``, path-length regularisation), for GPUs; ``cpu64``
#: is sized for two CPU cores (the shipped demo model); ``tiny``/``tiny3d`` are for tests.
PRESETS: dict[str, dict] = {
    "tiny": {"spatial_dims": 2, "image_size": 16, "latent_dim": 8, "mapping_layers": 2,
             "channel_base": 64, "channel_max": 8, "mbstd_group_size": 2},
    "tiny3d": {"spatial_dims": 3, "image_size": 8, "latent_dim": 8, "mapping_layers": 2,
               "channel_base": 32, "channel_max": 4, "mbstd_group_size": 2},
    "cpu64": {"spatial_dims": 2, "in_channels": 1, "image_size": 64, "latent_dim": 512,
              "mapping_layers": 8, "channel_base": 4096, "channel_max": 128,
              "r1_gamma": 1.0, "path_length_weight": 0.0},
    "paper64": {**_PAPER, "spatial_dims": 2, "image_size": 64, "r1_gamma": 0.1},
    "paper256": {**_PAPER, "spatial_dims": 2, "image_size": 256, "r1_gamma": 1.0},
}


def preset(name: str, **overrides) -> StyleGAN2Config:
    """The :class:`StyleGAN2Config` of a named preset, with some fields replaced.

    Parameters
    ----------
    name : str
        One of :data:`PRESETS`: ``"tiny"``, ``"tiny3d"``, ``"cpu64"``, ``"paper64"``,
        ``"paper256"``.
    **overrides
        Fields to change.

    Returns
    -------
    StyleGAN2Config

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError`) for an unknown preset or field.

    Examples
    --------
    >>> from latentaudit.encoders.stylegan2 import preset
    >>> preset("tiny", latent_dim=16).latent_dim
    16
    """
    check_option("preset", name, tuple(PRESETS))
    fields = {f.name for f in dataclasses.fields(StyleGAN2Config)}
    for key in overrides:
        check_option("StyleGAN2Config field", key, sorted(fields))
    return StyleGAN2Config(**{**PRESETS[name], **overrides})
