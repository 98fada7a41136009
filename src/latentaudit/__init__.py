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
import sys
import types
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
    "Encoder": ".encoders",
    "GenerativeEncoder": ".encoders",
    "TorchEncoder": ".encoders",
    "BetaVAEEncoder": ".encoders",
    "DAEEncoder": ".encoders.dae",
    "PixelPCAEncoder": ".encoders",
    "embed": ".embed",
    "Embeddings": ".embeddings",
    "Projector": ".projection",
    "plot_projection": ".report",
    "ClusterAuditor": ".audit",
    "delineate": ".audit",
    "AuditReport": ".report",
    "Explainer": ".explain",
    "Interpolator": ".interpolate",
    "sensitivity": ".pipeline",
    "artefacts": ".artefacts",
    "datasets": ".datasets",
    "nn": ".nn",
    "data": ".data",
    "errors": ".errors",
}
# Public functions that share their name with the module defining them.
_SHADOWED_MODULES = {"embed"}

__all__ = ["LatentAuditError", "__version__", "seed_everything", *sorted(_LAZY)]


def __getattr__(name: str):
    try:
        module_name = _LAZY[name]
    except KeyError:
        if name.endswith("Encoder") and not name.startswith("_"):
            # Every encoder family of the registry is public under its class name, so a new
            # family needs no line here.
            from . import encoders

            try:
                value = getattr(encoders, name)
            except AttributeError:
                pass
            else:
                globals()[name] = value
                return value
        raise AttributeError(f"module 'latentaudit' has no attribute {name!r}") from None
    module = importlib.import_module(module_name, __name__)
    is_module = module.__name__.endswith("." + name) and name not in _SHADOWED_MODULES
    value = module if is_module else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    """Keeps ``la.embed`` the function: importing the submodule ``latentaudit.embed``
    would otherwise rebind the package attribute to the module."""

    def __setattr__(self, name, value):
        if name in _SHADOWED_MODULES and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from . import artefacts, data, datasets, errors, nn  # noqa: F401
    from .audit import ClusterAuditor, delineate  # noqa: F401
    from .data import (  # noqa: F401
        ArrayDataset,
        DicomDataset,
        ImageFolderDataset,
        NiftiDataset,
    )
    from .embed import embed  # noqa: F401
    from .embeddings import Embeddings  # noqa: F401
    from .encoders import (  # noqa: F401
        BetaVAEEncoder,
        Encoder,
        GenerativeEncoder,
        PixelPCAEncoder,
        TorchEncoder,
    )
    from .encoders.dae import DAEEncoder  # noqa: F401
    from .explain import Explainer  # noqa: F401
    from .interpolate import Interpolator  # noqa: F401
    from .pipeline import sensitivity  # noqa: F401
    from .projection import Projector  # noqa: F401
    from .report import AuditReport, plot_projection  # noqa: F401
