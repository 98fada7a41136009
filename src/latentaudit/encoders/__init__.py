"""Encoders: the :class:`Encoder` protocol, latentaudit's generative encoders, and
:class:`TorchEncoder` for any user module.

Every trainable encoder is an :class:`torch.nn.Module` built from one config dataclass,
trained by :func:`latentaudit.training.train` through its ``fit``, and saved with
``save_pretrained`` (JSON config + safetensors weights, no pickled code).
"""

from ._base import BaseEncoder, ModelEncoder, load_pretrained
from ._betavae import BetaVAEConfig, BetaVAEEncoder
from ._hessian import hessian_penalty
from ._protocol import Encoder, GenerativeEncoder
from ._torch import TorchEncoder

__all__ = [
    "BaseEncoder",
    "BetaVAEConfig",
    "BetaVAEEncoder",
    "DAEEncoder",
    "Encoder",
    "GenerativeEncoder",
    "ModelEncoder",
    "TorchEncoder",
    "hessian_penalty",
    "load_pretrained",
]


def __getattr__(name: str):
    # The Diffusion Autoencoder is a larger package; it is imported on first use.
    if name == "DAEEncoder":
        from .dae import DAEEncoder

        return DAEEncoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
