"""A run's configuration: the schema's defaults, a command's, a config file, the flags.

Every layer is checked against :data:`latentaudit.options.OPTIONS` as it is merged, so a
message names where a bad value came from (the file, a flag, ``--set``) and how to write
it there.  What ran is written back as ``config.toml`` by :func:`dump_toml`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, MissingDependencyError
from ..options import OPTIONS, Source

__all__ = ["COMMAND_LINE", "DEFAULT_CONFIG", "dump_toml", "load_config", "parse_assignment"]

#: Every option the command line knows, by section, with its default.  ``None`` means
#: "unset" (it is left out of TOML files, which have no null).
DEFAULT_CONFIG: dict = OPTIONS.defaults()

#: Flags given on the command line.
COMMAND_LINE = Source("the command line", "flag")
#: ``--set KEY=VALUE``.
SET = Source("--set", "set")


def _toml_module():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise MissingDependencyError(
                "reading TOML on Python 3.10 needs the package 'tomli'; install it with: "
                "pip install tomli (or give the config as JSON)") from None
    return tomllib


def _read_toml(path: Path) -> dict:
    tomllib = _toml_module()
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {err}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text (byte "
                          f"{err.start}); save it as UTF-8") from err


def _read_file(path: str | os.PathLike) -> tuple[dict, Source]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"config file {str(path)!r} does not exist; check --config")
    if path.suffix.lower() == ".json":
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ConfigError(f"config file {str(path)!r} is not valid JSON: {err}") from err
        except UnicodeDecodeError as err:
            raise ConfigError(f"config file {str(path)!r} is not UTF-8 text (byte "
                              f"{err.start}); save it as UTF-8") from err
        return document, Source(f"config file {path.name!r}", "json")
    return _read_toml(path), Source(f"config file {path.name!r}", "toml")


def load_config(path: str | os.PathLike | None, *, base: Mapping | None = None,
                overrides: Sequence[Mapping] = (),
                sources: Sequence[Source] | None = None) -> dict:
    """Build a run's configuration: defaults, then a config file, then overrides.

    Parameters
    ----------
    path : str, os.PathLike or None
        A TOML (``.toml``) or JSON (``.json``) file with any of the options of
        :data:`DEFAULT_CONFIG`, or None.
    base : mapping, optional
        Defaults of the command, applied over :data:`DEFAULT_CONFIG` before the file.
    overrides : sequence of mapping
        Applied after the file (the command line's flags, ``--set``).
    sources : sequence of Source, optional
        Where each override came from, for messages (default: the command line).

    Returns
    -------
    dict
        The merged configuration, every value checked.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError` or ``DataError``) for a missing or
        invalid file, an unknown option (with the closest known one), or a value of the
        wrong type or out of range (naming the option, where it came from and the fix).

    Examples
    --------
    >>> load_config(None, overrides=[{"train": {"steps": 10}}])["train"]["steps"]
    10
    """
    layers: list = [base]
    origins = [Source("the command's defaults", "python")]
    if path is not None:
        document, origin = _read_file(path)
        layers.append(document)
        origins.append(origin)
    sources = list(sources or [])
    for position, override in enumerate(overrides):
        layers.append(override)
        origins.append(sources[position] if position < len(sources) else COMMAND_LINE)
    return OPTIONS.merge(*layers, sources=origins)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    # JSON's string escapes are valid in TOML basic strings
    return json.dumps(str(value), ensure_ascii=False)


def dump_toml(config: Mapping) -> str:
    """Write a configuration as TOML (unset options as comments).

    Parameters
    ----------
    config : mapping
        Scalars and lists at the top, one level of tables below.

    Returns
    -------
    str

    Examples
    --------
    >>> print(dump_toml({"seed": 0, "train": {"steps": 5, "lr": None}}))
    # latentaudit configuration: the options this run used.
    # Run it again with: latentaudit <command> --config config.toml
    <BLANKLINE>
    seed = 0
    <BLANKLINE>
    [train]
    steps = 5
    # lr = (unset)
    <BLANKLINE>
    """
    lines = ["# latentaudit configuration: the options this run used.",
             "# Run it again with: latentaudit <command> --config config.toml", ""]

    def scalars(table: Mapping) -> list[str]:
        out = []
        for key, value in table.items():
            if isinstance(value, Mapping):
                continue
            if value is None:
                out.append(f"# {key} = (unset)")
            else:
                out.append(f"{key} = {_toml_value(value)}")
        return out

    lines += scalars(config)
    for key, value in config.items():
        if isinstance(value, Mapping):
            lines += ["", f"[{key}]", *scalars(value)]
    return "\n".join(lines) + "\n"


def parse_assignment(text: str) -> dict:
    """``section.key=value`` (the value read as TOML, else as text) -> nested dict.

    Parameters
    ----------
    text : str
        What followed ``--set``.

    Returns
    -------
    dict

    Examples
    --------
    >>> parse_assignment("audit.n_clusters=4")
    {'audit': {'n_clusters': 4}}
    """
    if "=" not in text:
        raise ConfigError(f"--set needs KEY=VALUE (e.g. audit.method=kmeans), got {text!r}")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    if not key:
        raise ConfigError(f"--set needs a key before '=', got {text!r}")
    tomllib = _toml_module()
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:  # not a TOML literal: take it as text
        value = raw
    node: dict = {}
    root = node
    parts = key.split(".")
    for part in parts[:-1]:
        node[part] = {}
        node = node[part]
    node[parts[-1]] = value
    return root
