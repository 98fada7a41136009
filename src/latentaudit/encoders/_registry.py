"""The encoder families latentaudit builds by name: one mapping ``model_type -> class``.

Every place that turns a name into an encoder uses it: :func:`load_pretrained` (the
``model_type`` of a saved ``config.json``), the command line's ``--encoder`` choices and
its construction of a new encoder, and :func:`build_encoder`.  Classes are imported on
first use, so listing the families imports none of them.

A new family is its own package plus one line in :data:`FAMILIES`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from ._base import ModelEncoder

__all__ = ["FAMILIES", "Family", "build_encoder", "encoder_class", "encoder_names",
           "register_encoder"]


@dataclass(frozen=True)
class Family:
    """Where an encoder family's class lives, and the other names it answers to.

    Parameters
    ----------
    target : str
        ``"package.module:ClassName"``, imported on first use.
    aliases : tuple of str, default ()
        Other names for the family (e.g. the command line's ``betavae``).
    """

    target: str
    aliases: tuple[str, ...] = ()


#: model_type -> family.  The key is the ``model_type`` that ``save_pretrained`` writes.
FAMILIES: dict[str, Family] = {
    "beta_vae": Family("latentaudit.encoders._betavae:BetaVAEEncoder", aliases=("betavae",)),
    "dae": Family("latentaudit.encoders.dae.model:DAEEncoder"),
    "stylegan2": Family("latentaudit.encoders.stylegan2.model:StyleGAN2Encoder"),
    "pixel_pca": Family("latentaudit.encoders._pixel_pca:PixelPCAEncoder", aliases=("pca",)),
}


def register_encoder(model_type: str, target: str | type, aliases: tuple[str, ...] = ()
                     ) -> None:
    """Make a family of your own known by name (to :func:`load_pretrained`,
    :func:`build_encoder` and the command line), as the built-in ones are.

    Parameters
    ----------
    model_type : str
        The class's ``model_type``.
    target : str or type
        The class, or ``"package.module:ClassName"`` to import it on first use.
    aliases : tuple of str, default ()
        Other names for the family.

    Raises
    ------
    ConfigError
        If the name or an alias is taken by another family.

    Examples
    --------
    >>> from latentaudit.encoders import BetaVAEEncoder, encoder_class, register_encoder
    >>> class WideVAE(BetaVAEEncoder):
    ...     model_type = "wide_vae"
    >>> register_encoder("wide_vae", WideVAE)
    >>> encoder_class("wide_vae") is WideVAE
    True
    """
    taken = {name: key for key, fam in FAMILIES.items() for name in (key, *fam.aliases)
             if key != model_type}
    for name in (model_type, *aliases):
        if name in taken:
            raise ConfigError(f"the encoder name {name!r} is taken by the family "
                              f"{taken[name]!r}")
    _CLASSES.pop(model_type, None)
    if isinstance(target, type):
        if getattr(target, "model_type", None) != model_type:
            raise ConfigError(f"{target.__name__}.model_type is "
                              f"{getattr(target, 'model_type', None)!r}, not {model_type!r}")
        _CLASSES[model_type] = target
        target = f"{target.__module__}:{target.__qualname__}"
    FAMILIES[model_type] = Family(str(target), tuple(aliases))


#: Classes already imported, by model_type.
_CLASSES: dict[str, type] = {}


def encoder_names(*, aliases: bool = True) -> tuple[str, ...]:
    """The names of every known encoder family.

    Parameters
    ----------
    aliases : bool, default True
        Include the families' other names (e.g. ``"betavae"``).

    Returns
    -------
    tuple of str
        Sorted.

    Examples
    --------
    >>> from latentaudit.encoders import encoder_names
    >>> encoder_names(aliases=False)[:2]
    ('beta_vae', 'dae')
    """
    names = set(FAMILIES)
    if aliases:
        names.update(a for fam in FAMILIES.values() for a in fam.aliases)
    return tuple(sorted(names))


def _model_type(name: str) -> str:
    if name in FAMILIES:
        return name
    for key, fam in FAMILIES.items():
        if name in fam.aliases:
            return key
    import difflib

    close = difflib.get_close_matches(str(name), encoder_names(), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown encoder {name!r}: expected one of "
                      f"{', '.join(encoder_names())}{hint}")


def encoder_class(name: str) -> type[ModelEncoder]:
    """The class of an encoder family, imported on first use.

    Parameters
    ----------
    name : str
        A ``model_type`` (``"dae"``, ``"beta_vae"``, ...) or an alias (``"betavae"``).

    Returns
    -------
    type

    Raises
    ------
    ConfigError
        For an unknown name (with the closest known one).

    Examples
    --------
    >>> from latentaudit.encoders import encoder_class
    >>> encoder_class("betavae").__name__
    'BetaVAEEncoder'
    """
    if not isinstance(name, str):
        raise ConfigError(f"an encoder name must be a string, got {type(name).__name__}")
    model_type = _model_type(name)
    cls = _CLASSES.get(model_type)
    if cls is None:
        module, _, qualname = FAMILIES[model_type].target.partition(":")
        cls = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        if getattr(cls, "model_type", None) != model_type:
            raise ConfigError(f"the registry names {FAMILIES[model_type].target} for "
                              f"{model_type!r}, whose model_type is "
                              f"{getattr(cls, 'model_type', None)!r}")
        _CLASSES[model_type] = cls
    return cls


def build_encoder(name: str, image_shape: tuple[int, ...] | None = None, *,
                  preset: str | None = None, random_state: int | None = None,
                  **options) -> ModelEncoder:
    """Build a new (untrained) encoder by family name.

    Parameters
    ----------
    name : str
        A family name or alias (see :func:`encoder_names`).
    image_shape : tuple of int, optional
        ``(C, *spatial)`` of the images it will see: sets ``spatial_dims``,
        ``in_channels`` and ``image_size``.
    preset : str, optional
        A named configuration of the family (its ``presets``); default: the family's
        ``default_preset`` when ``image_shape`` is given, else the constructor's defaults.
    random_state : int, optional
        Seed of the initial weights: the same seed gives the same weights, bit for bit,
        whatever the caller's global random state, which is left untouched.  Without
        one, PyTorch's global generator initialises the weights (as ``torch.nn`` layers
        do).
    **options
        Constructor parameters to set; ``None`` values keep the preset's.

    Returns
    -------
    ModelEncoder

    Raises
    ------
    ConfigError
        For an unknown family, preset or option (with the closest known name).

    Examples
    --------
    >>> import torch
    >>> from latentaudit.encoders import build_encoder
    >>> enc = build_encoder("betavae", (1, 16, 16), preset="tiny", latent_dim=4)
    >>> type(enc).__name__, enc.latent_dim
    ('BetaVAEEncoder', 4)
    >>> a = build_encoder("dae", (1, 16, 16), preset="tiny", random_state=0)
    >>> b = build_encoder("dae", (1, 16, 16), preset="tiny", random_state=0)
    >>> all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    True
    """
    cls = encoder_class(name)
    options = {k: v for k, v in options.items() if v is not None}
    if random_state is not None:
        if isinstance(random_state, bool) or not isinstance(random_state, int) \
                or random_state < 0:
            raise ConfigError(f"random_state must be a non-negative integer or None, got "
                              f"{random_state!r}")
        import torch

        # Layers initialise themselves from the global generator; a forked one seeded
        # here gives the weights of the seed and leaves the caller's state as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(random_state)
            return build_encoder(name, image_shape, preset=preset, **options)
    if image_shape is not None:
        return cls.for_images(image_shape, preset=preset, **options)
    if preset is not None:
        return cls.from_preset(preset, **options)
    cls._check_option_names(options)
    return cls(**options)
