"""Output folders: checked before a command reads its inputs, created after."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError, DataError
from ._config import dump_toml
from ._run import Run

__all__ = ["output_folder", "save_config"]


def output_folder(config: dict, command: str, create: bool = True) -> Path:
    """The output folder, created unless ``create`` is false (then only checked, so a
    command can say what is wrong before it reads its inputs and write nothing)."""
    output = config["output"]
    if not output:
        raise ConfigError(f"'latentaudit {command}' needs an output folder: pass --output DIR "
                          f"(or set output in the config)")
    path = Path(output)
    if path.exists() and not path.is_dir():
        raise DataError(f"output {str(path)!r} is a file, not a folder; choose another "
                        f"--output")
    if not create:
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create the output folder {str(path)!r}: {err.strerror}; "
                        f"choose another --output") from err
    return path


def save_config(run: Run) -> None:
    """Write the run's configuration as ``config.toml`` in its output folder."""
    text = dump_toml(run.config)
    target = run.output / "config.toml"
    partial = target.with_name("config.toml.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, target)
