"""Over-sampling in latent space: SMOTE between embeddings of real subjects, with provenance,
decoded back into images.

:class:`Interpolator` follows imbalanced-learn's ``fit_resample`` contract; its
:meth:`~Interpolator.generate` decodes the synthetic rows with a generative encoder.
"""

from __future__ import annotations

import importlib

from ._base import BaseResampler
from ._interpolator import Interpolator

__all__ = ["BaseResampler", "GenerationResult", "Interpolator", "slerp"]


def __getattr__(name: str):
    # The decoding half needs torch; importing it lazily keeps the resampling NumPy-only.
    if name == "GenerationResult":
        return importlib.import_module("._generate", __name__).GenerationResult
    if name == "slerp":  # defined once, in latentaudit.nn
        return importlib.import_module("..nn", __name__).slerp
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
