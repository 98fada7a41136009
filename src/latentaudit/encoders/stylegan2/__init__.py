"""StyleGAN2 (Karras et al., CVPR 2020) as a latentaudit encoder: :class:`StyleGAN2Encoder`,
its config and presets, the networks (mapping, synthesis, discriminator, inverter), the
layers (modulated convolutions, equalised learning rate), the losses and the differentiable
augmentation."""

from .augment import AUGMENTATIONS, augment
from .config import PRESETS, StyleGAN2Config, preset
from .layers import ModulatedConv, equalize
from .losses import (
    discriminator_loss,
    feature_distance,
    generator_loss,
    path_length_penalty,
    r1_penalty,
)
from .model import StyleGAN2Encoder
from .networks import Discriminator, Generator, Inverter, MappingNetwork, SynthesisNetwork

__all__ = [
    "AUGMENTATIONS",
    "PRESETS",
    "Discriminator",
    "Generator",
    "Inverter",
    "MappingNetwork",
    "ModulatedConv",
    "StyleGAN2Config",
    "StyleGAN2Encoder",
    "SynthesisNetwork",
    "augment",
    "discriminator_loss",
    "equalize",
    "feature_distance",
    "generator_loss",
    "path_length_penalty",
    "preset",
    "r1_penalty",
]
