"""Encoders: the :class:`Encoder` and :class:`GenerativeEncoder` protocols, latentaudit's
generative encoders, the registry that builds them by name, and :class:`TorchEncoder` for
any user module.

Every trainable encoder is an :class:`torch.nn.Module` built from one config dataclass,
trained by :func:`latentaudit.training.train` through its ``fit``, and saved with
``save_pretrained`` (JSON config + safetensors weights, no pickled code).

Names are imported on first use, so the registry (``encoder_names``, used by the command
line to list its choices) answers without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._registry import (
    FAMILIES,
    Family,
    build_encoder,
    encoder_class,
    encoder_names,
    register_encoder,
)

# public name -> module defining it (imported on first use)
_LAZY = {
    "BaseEncoder": "._base",
    "ModelEncoder": "._base",
    "load_pretrained": "._saving",
    "BetaVAEConfig": "._betavae",
    "BetaVAEEncoder": "._betavae",
    "hessian_penalty": "._hessian",
    "Encoder": "._protocol",
    "GenerativeEncoder": "._protocol",
    "concat_codes": "._protocol",
    "interpolate_codes": "._protocol",
    "select_codes": "._protocol",
    "TorchEncoder": "._torch",
    "PixelPCAConfig": "._pixel_pca",
}

__all__ = [
    "FAMILIES",
    "BaseEncoder",
    "BetaVAEConfig",
    "BetaVAEEncoder",
    "DAEEncoder",
    "Encoder",
    "Family",
    "GenerativeEncoder",
    "ModelEncoder",
    "PixelPCAConfig",
    "PixelPCAEncoder",
    "TorchEncoder",
    "build_encoder",
    "concat_codes",
    "encoder_class",
    "encoder_names",
    "hessian_penalty",
    "interpolate_codes",
    "load_pretrained",
    "register_encoder",
    "select_codes",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    # Every family of the registry is public under its class name (the Diffusion
    # Autoencoder, and any family added with one registry line).
    for model_type, family in FAMILIES.items():
        if family.target.rpartition(":")[2] == name:
            return encoder_class(model_type)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from ._base import BaseEncoder, ModelEncoder
    from ._betavae import BetaVAEConfig, BetaVAEEncoder
    from ._hessian import hessian_penalty
    from ._pixel_pca import PixelPCAConfig, PixelPCAEncoder
    from ._protocol import (
        Encoder,
        GenerativeEncoder,
        concat_codes,
        interpolate_codes,
        select_codes,
    )
    from ._saving import load_pretrained
    from ._torch import TorchEncoder
    from .dae import DAEEncoder
