"""Small helpers shared by every layer: seeding, option checking, optional imports."""

from __future__ import annotations

import difflib
import importlib
import itertools
import logging
import os
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, MissingDependencyError

__all__ = [
    "cache_dir",
    "check_option",
    "check_random_state",
    "check_spatial_dims",
    "optional_import",
    "resolve_device",
    "seed_everything",
]

logger = logging.getLogger(__name__)


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python's, NumPy's and PyTorch's global random number generators.

    The library itself never relies on global state (every random choice takes a
    ``random_state`` or a :class:`torch.Generator`); this is an opt-in convenience for
    user scripts.

    Parameters
    ----------
    seed : int
        The seed, a non-negative integer below ``2**32``.
    deterministic : bool, default False
        Also ask PyTorch for deterministic algorithms (slower on GPUs).

    Raises
    ------
    ValueError
        If ``seed`` is not an integer in ``[0, 2**32)``.

    Examples
    --------
    >>> import latentaudit as la
    >>> la.seed_everything(0)
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not (
        0 <= int(seed) < 2**32
    ):
        raise ConfigError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeding the legacy global state is the point
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        if hasattr(torch.backends, "cudnn"):
            torch.backends.cudnn.benchmark = False


def check_random_state(random_state: Any) -> np.random.RandomState:
    """Turn ``random_state`` into a :class:`numpy.random.RandomState`.

    Follows :func:`sklearn.utils.check_random_state`: ``None`` gives NumPy's global
    state, an int a new seeded state, and a ``RandomState`` is passed through.

    Parameters
    ----------
    random_state : None, int or numpy.random.RandomState
        The seed or state.

    Returns
    -------
    numpy.random.RandomState
    """
    from sklearn.utils import check_random_state as _sk_check_random_state

    return _sk_check_random_state(random_state)


def check_option(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Check that ``value`` is one of ``choices``, suggesting the closest one if not.

    Parameters
    ----------
    name : str
        The parameter's name, used in the message.
    value : object
        The value given.
    choices : iterable
        The allowed values.

    Returns
    -------
    object
        ``value`` unchanged.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError`) naming the allowed values and,
        for strings, the closest one ("did you mean ...?").

    Examples
    --------
    >>> check_option("method", "tsne", ["tsne", "umap", "pca"])
    'tsne'
    """
    choices = list(choices)
    if value in choices:
        return value
    hint = ""
    if isinstance(value, str):
        close = difflib.get_close_matches(value, [str(c) for c in choices], n=1, cutoff=0.5)
        if close:
            hint = f"; did you mean {close[0]!r}?"
    allowed = ", ".join(repr(c) for c in choices)
    raise ConfigError(f"{name} must be one of {allowed}, got {value!r}{hint}")


def optional_import(module: str, extra: str | None = None, feature: str | None = None):
    """Import an optional dependency or raise a helpful error.

    Parameters
    ----------
    module : str
        The module to import, e.g. ``"pydicom"``.
    extra : str, optional
        The name of the latentaudit extra that installs it, e.g. ``"dicom"``.
    feature : str, optional
        What needs it, for the message.

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    ImportError
        (as :class:`latentaudit.errors.MissingDependencyError`) when it is missing.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        what = feature or "this feature"
        how = f"pip install 'latentaudit[{extra}]'" if extra else f"pip install {module}"
        raise MissingDependencyError(
            f"{what} needs the optional package {module!r}, which is not installed; "
            f"install it with: {how}"
        ) from err


def check_spatial_dims(spatial_dims: int) -> int:
    """Check that ``spatial_dims`` is 2 or 3.

    Parameters
    ----------
    spatial_dims : int
        The number of spatial dimensions.

    Returns
    -------
    int
        ``spatial_dims`` unchanged.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError`) for anything but 2 or 3.
    """
    if isinstance(spatial_dims, bool) or spatial_dims not in (2, 3):
        raise ConfigError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    return int(spatial_dims)


def resolve_device(device=None, module=None):
    """The :class:`torch.device` to run on: the one asked for, checked, or where a module
    lives.

    The one place latentaudit turns a ``device=`` option into a device (training,
    embedding, decoding).

    Parameters
    ----------
    device : str, torch.device or None, default None
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, ...; None means "where ``module``
        is".
    module : object, optional
        A :class:`torch.nn.Module` (the device of its first parameter or buffer; the CPU
        when it has none) or another object with a ``device`` attribute (else the CPU).

    Returns
    -------
    torch.device

    Raises
    ------
    ConfigError
        For a string that names no device, or a CUDA/MPS device this machine lacks.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.utils import resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device(None, torch.nn.Linear(2, 2))
    device(type='cpu')
    """
    import torch

    if device is None:
        if isinstance(module, torch.nn.Module):
            for tensor in itertools.chain(module.parameters(), module.buffers()):
                return tensor.device
            return torch.device("cpu")
        own = getattr(module, "device", None)
        if isinstance(own, (str, torch.device)):
            return resolve_device(own)
        return torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"device must be e.g. 'cpu', 'cuda' or 'cuda:1', got {device!r}"
                          ) from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={str(device)!r} was asked for but PyTorch sees no CUDA "
                          f"GPU here; use device='cpu'")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device='mps' was asked for but MPS is not available here")
    return device


def config_hash(encoder) -> str | None:
    """The hash that identifies an encoder's configuration in provenance records.

    The encoder's own ``config_hash`` (a property or a method, as latentaudit's encoders
    have), else a SHA-256 of its ``config`` dataclass; None when it has neither.  The one
    place the hash is computed, so ``embed`` and the command line record the same one.

    Parameters
    ----------
    encoder : object
        Any encoder.

    Returns
    -------
    str or None

    Examples
    --------
    >>> from latentaudit.utils import config_hash
    >>> class Enc:
    ...     config_hash = "abc"
    >>> config_hash(Enc()), config_hash(object())
    ('abc', None)
    """
    import dataclasses
    import hashlib
    import json

    value = getattr(encoder, "config_hash", None)
    if callable(value):
        value = value()
    if value is not None:
        return str(value)
    config = getattr(encoder, "config", None)
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        text = json.dumps(dataclasses.asdict(config), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
    return None


def cache_dir(*parts: str) -> Path:
    """latentaudit's folder in the user's cache, created if missing.

    ``$LATENTAUDIT_CACHE`` if set, else ``$XDG_CACHE_HOME/latentaudit``, else
    ``~/.cache/latentaudit``; ``parts`` name a subfolder.  What is there can be made again
    (e.g. the 3-D demo cohort) and may be deleted.

    Parameters
    ----------
    *parts : str
        Subfolder names.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import os
    >>> from latentaudit.utils import cache_dir
    >>> os.environ["LATENTAUDIT_CACHE"] = "/tmp/la-cache-example"
    >>> str(cache_dir("demo"))
    '/tmp/la-cache-example/demo'
    >>> del os.environ["LATENTAUDIT_CACHE"]
    """
    root = os.environ.get("LATENTAUDIT_CACHE")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                ".cache")
        root = os.path.join(base, "latentaudit")
    folder = Path(root, *parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
