"""Saving and loading latentaudit's own encoders: a JSON config plus safetensors weights,
no pickled code; the config's hash for provenance."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CheckpointError, ConfigError
from ..utils import atomic_path, atomic_write, resolve_device

if TYPE_CHECKING:
    from ._base import ModelEncoder

__all__ = ["SaveLoadMixin", "load_pretrained"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _tuples(value):
    # Configs hold tuples, never lists; JSON has only lists.
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


class SaveLoadMixin:
    """Configs as JSON, ``save_pretrained`` / ``from_pretrained`` and ``config_hash`` of
    :class:`~latentaudit.encoders.ModelEncoder`."""

    #: Weights shipped with latentaudit, by the name ``from_pretrained`` takes instead of a
    #: folder (``{"demo": folder}`` for a family with demo weights; none by default).
    shipped_weights: dict[str, Path] = {}

    @classmethod
    def _config_from_dict(cls, data: dict, source: str):
        names = {f.name for f in dataclasses.fields(cls.config_class)}
        unknown = sorted(set(data) - names)
        if unknown:
            import difflib

            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, sorted(names), n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ConfigError(f"{source} has unknown {cls.config_class.__name__} field(s): "
                              f"{', '.join(hints)}")
        return cls.config_class(**_tuples(data))

    def config_dict(self) -> dict:
        """The config as JSON-ready plain data.

        Returns
        -------
        dict
        """
        return _jsonable(dataclasses.asdict(self.config))

    @property
    def config_hash(self) -> str:
        """SHA-256 of the model type and config (canonical JSON), for provenance.

        Two models with the same architecture and options share the hash whatever their
        weights or the library version.

        Returns
        -------
        str
            64 hexadecimal digits.
        """
        payload = json.dumps({"model_type": self.model_type, "config": self.config_dict()},
                             sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    # -- save and load --------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Save the config (``config.json``) and weights (``model.safetensors``).

        Each file is written to a temporary name and renamed, so an interruption never
        leaves a half-written model.

        Parameters
        ----------
        directory : str or os.PathLike
            Folder to write into (created if needed).

        Returns
        -------
        pathlib.Path
            The folder.

        Examples
        --------
        >>> from latentaudit.encoders import BetaVAEEncoder
        >>> enc = BetaVAEEncoder(image_size=16, channels=(4, 8), latent_dim=8)
        >>> path = enc.save_pretrained("my_vae")  # doctest: +SKIP
        >>> same = BetaVAEEncoder.from_pretrained("my_vae")  # doctest: +SKIP
        """
        from safetensors.torch import save_file

        from .. import __version__

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        document = {"model_type": self.model_type, "latentaudit_version": __version__,
                    "config": self.config_dict()}
        config_path = directory / CONFIG_NAME
        with atomic_write(config_path) as handle:
            handle.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
        # Cloned so tied weights do not share storage, which safetensors refuses; loading
        # fills every tied name with the same values again.
        state = {k: v.detach().cpu().clone().contiguous() for k, v in self.state_dict().items()}
        weights_path = directory / WEIGHTS_NAME
        with atomic_path(weights_path) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt", "model_type": self.model_type,
                                                 "latentaudit_version": __version__})
            # safetensors creates the file readable by its owner only; give it the mode any
            # new file gets (the config's), so a shared model folder stays readable.
            os.chmod(tmp, config_path.stat().st_mode & 0o777)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device=None):
        """Load a model written by :meth:`save_pretrained`.

        Parameters
        ----------
        directory : str or os.PathLike
            The folder holding ``config.json`` and ``model.safetensors``, or the name of
            weights the family ships (:attr:`shipped_weights`: ``"demo"`` for the
            :class:`~latentaudit.DAEEncoder` and the
            :class:`~latentaudit.StyleGAN2Encoder` trained by
            ``scripts/train_demo_dae.py`` / ``scripts/train_demo_stylegan2.py`` on the
            training part of :func:`latentaudit.datasets.demo_split`; their folder's
            ``split.json`` names the held-out subjects).  An existing folder of that name
            wins.
        device : str or torch.device, optional
            Device to put the model on (default: CPU), as everywhere in latentaudit.

        Returns
        -------
        ModelEncoder
            The model, in eval mode.  Called on a subclass, the saved model must be of that
            type; called on :class:`ModelEncoder`, the type is read from the config.

        Raises
        ------
        CheckpointError
            If a file is missing or corrupt, or the weights do not fit the config; the
            message names the file.

        Examples
        --------
        >>> from latentaudit.encoders import BetaVAEEncoder
        >>> enc = BetaVAEEncoder.from_pretrained("my_vae")  # doctest: +SKIP
        >>> from latentaudit.encoders import DAEEncoder
        >>> DAEEncoder.from_pretrained("demo").latent_dim
        512
        """
        if isinstance(directory, str) and directory in cls.shipped_weights and not Path(
                directory).exists():
            directory = cls.shipped_weights[directory]
        return load_pretrained(directory, device=device, expected=cls)


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"the saved model's config file {str(path)!r} does not exist")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"the config file {str(path)!r} is not valid JSON: {err}"
                              ) from err
    if not isinstance(document, dict) or "model_type" not in document or not isinstance(
            document.get("config"), dict):
        raise CheckpointError(f"the config file {str(path)!r} lacks 'model_type' and a "
                              f"'config' object; it was not written by save_pretrained")
    return document


def load_pretrained(directory: str | os.PathLike, device=None,
                    expected: type | None = None) -> ModelEncoder:
    """Load any latentaudit encoder saved with ``save_pretrained``.

    Parameters
    ----------
    directory : str or os.PathLike
        The folder holding ``config.json`` and ``model.safetensors``.
    device : str or torch.device, optional
        Device to put the model on (default: CPU), as everywhere in latentaudit.
    expected : type, optional
        Require the saved model to be of this class (or a subclass).

    Returns
    -------
    ModelEncoder
        The model, in eval mode.

    Raises
    ------
    CheckpointError
        If a file is missing or corrupt, the model type is unknown or unexpected, or the
        weights do not fit the config.

    Examples
    --------
    >>> from latentaudit.encoders import load_pretrained
    >>> enc = load_pretrained("my_vae")  # doctest: +SKIP
    """
    from safetensors.torch import load_file

    from ._base import ModelEncoder

    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"no saved model at {str(directory)!r}: the folder does not exist")
    config_path = directory / CONFIG_NAME
    document = _read_json(config_path)
    model_type = document["model_type"]
    if expected is not None and getattr(expected, "model_type", None) == model_type:
        cls = expected  # a class of the caller's own, registered or not
    else:
        from ._registry import FAMILIES, encoder_class, encoder_names

        if model_type not in FAMILIES:
            hint = ("; load it with its class's from_pretrained, or make the family known "
                    "with latentaudit.encoders.register_encoder")
            raise CheckpointError(
                f"the config file {str(config_path)!r} names model_type {model_type!r}, "
                f"which this latentaudit does not know (known: "
                f"{', '.join(encoder_names(aliases=False))}){hint}")
        cls = encoder_class(model_type)
    if expected is not None and expected is not ModelEncoder and not issubclass(cls, expected):
        raise CheckpointError(
            f"{str(config_path)!r} describes a {cls.__name__} (model_type {model_type!r}), "
            f"not a {expected.__name__}; load it with {cls.__name__}.from_pretrained")
    try:
        config = cls._config_from_dict(document["config"], source=repr(str(config_path)))
        model = cls.from_config(config)
    except (ConfigError, TypeError, ValueError) as err:
        raise CheckpointError(f"the config in {str(config_path)!r} is invalid: {err}") from err
    weights_path = directory / WEIGHTS_NAME
    if not weights_path.is_file():
        raise CheckpointError(f"the saved model's weights file {str(weights_path)!r} does not "
                              f"exist")
    try:
        state = load_file(str(weights_path), device="cpu")
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"cannot read the weights file {str(weights_path)!r}: "
                              f"{type(err).__name__}: {err}") from err
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"the weights in {str(weights_path)!r} do not fit the config in "
                              f"{str(config_path)!r}: {err}") from err
    if device is not None:
        model.to(resolve_device(device))
    model.eval()
    return model
