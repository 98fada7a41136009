"""Configuration of the StyleGAN2 encoder and its named presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ...errors import ConfigError
from ...utils import check_option, check_spatial_dims
from .augment import AUGMENTATIONS
from .networks import level_shapes

__all__ = ["PRESETS", "StyleGAN2Config", "preset", "validated"]


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
              "mapping_layers": 8, "channel_base": 1024, "channel_max": 64,
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


def _positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _fraction(name, value, low=0.0, high=1.0):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            low <= value <= high):
        raise ConfigError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def _non_negative(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def validated(config: StyleGAN2Config) -> StyleGAN2Config:
    """The config with every field checked and normalised (ints, tuples).

    Parameters
    ----------
    config : StyleGAN2Config
        The fields as given.

    Returns
    -------
    StyleGAN2Config
        A checked copy.

    Raises
    ------
    ValueError
        (as :class:`~latentaudit.errors.ConfigError`) naming the first invalid field.

    Examples
    --------
    >>> from latentaudit.encoders.stylegan2.config import StyleGAN2Config, validated
    >>> validated(StyleGAN2Config(image_size=[16, 32])).image_size
    (16, 32)
    """
    sd = check_spatial_dims(config.spatial_dims)
    size = config.image_size
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = _positive_int("image_size", size)
        sizes = (size,) * sd
    else:
        try:
            sizes = tuple(_positive_int("image_size entries", s) for s in size)
        except TypeError:
            raise ConfigError(f"image_size must be an int or {sd} ints, got {size!r}") from None
        if len(sizes) != sd:
            raise ConfigError(f"image_size must be an int or {sd} sizes for spatial_dims={sd}, "
                              f"got {size!r}")
        size = sizes
    level_shapes(sizes)  # raises for sizes StyleGAN2 cannot build
    augment_ops = tuple(config.augment)
    for name in augment_ops:
        check_option("augment entries", name, AUGMENTATIONS)
    optional_int = {}
    for name in ("inverter_channel_base", "inverter_channel_max"):
        value = getattr(config, name)
        optional_int[name] = None if value is None else _positive_int(name, value)
    return dataclasses.replace(
        config, spatial_dims=sd, image_size=size,
        in_channels=_positive_int("in_channels", config.in_channels),
        latent_dim=_positive_int("latent_dim", config.latent_dim),
        mapping_layers=_positive_int("mapping_layers", config.mapping_layers),
        mapping_lr_multiplier=_fraction("mapping_lr_multiplier",
                                        config.mapping_lr_multiplier, 1e-6, 1.0),
        channel_base=_positive_int("channel_base", config.channel_base),
        channel_max=_positive_int("channel_max", config.channel_max), **optional_int,
        w_plus=bool(config.w_plus),
        mbstd_group_size=_positive_int("mbstd_group_size", config.mbstd_group_size),
        style_mixing_prob=_fraction("style_mixing_prob", config.style_mixing_prob),
        r1_gamma=_non_negative("r1_gamma", config.r1_gamma),
        r1_interval=_positive_int("r1_interval", config.r1_interval),
        path_length_weight=_non_negative("path_length_weight", config.path_length_weight),
        path_length_interval=_positive_int("path_length_interval",
                                           config.path_length_interval),
        augment=augment_ops, augment_p=_fraction("augment_p", config.augment_p),
        ada_target=(None if config.ada_target is None
                    else _fraction("ada_target", config.ada_target)),
        ada_interval=_positive_int("ada_interval", config.ada_interval),
        ada_kimg=_fraction("ada_kimg", config.ada_kimg, 1e-6, float("inf")),
        inversion_feature_weight=_non_negative("inversion_feature_weight",
                                               config.inversion_feature_weight),
        inversion_delta_weight=_non_negative("inversion_delta_weight",
                                             config.inversion_delta_weight),
        inversion_refine_lr=_fraction("inversion_refine_lr", config.inversion_refine_lr,
                                      1e-8, float("inf")))
