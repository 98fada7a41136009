"""latentaudit: find what a medical-imaging dataset hides.

A generative autoencoder embeds every image without labels; the embeddings are
projected, clustered and tested against the metadata; what should not be there is
flagged, explained and decoded back into images.

Heavy submodules (torch models, plotting) are imported on first use, so
``import latentaudit`` stays quick and the analysis layer works on NumPy arrays alone.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING

from .errors import LatentAuditError
from .utils import seed_everything

__version__ = "0.1.0.dev0"

# The library logs, the application decides where the records go.
logging.getLogger(__name__).addHandler(logging.NullHandler())

# public name -> module that defines it (imported lazily on first attribute access)
_LAZY = {
    "ArrayDataset": ".data",
    "NiftiDataset": ".data",
    "ImageFolderDataset": ".data",
    "DicomDataset": ".data",
    "datasets": ".datasets",
    "nn": ".nn",
    "data": ".data",
    "errors": ".errors",
}

__all__ = ["LatentAuditError", "__version__", "seed_everything", *sorted(_LAZY)]


def __getattr__(name: str):
    try:
        module_name = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'latentaudit' has no attribute {name!r}") from None
    module = importlib.import_module(module_name, __name__)
    value = module if module.__name__.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from . import data, datasets, errors, nn  # noqa: F401
    from .data import (  # noqa: F401
        ArrayDataset,
        DicomDataset,
        ImageFolderDataset,
        NiftiDataset,
    )
