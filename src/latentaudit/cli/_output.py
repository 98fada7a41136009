"""Output folders are owned: a command writes only what its manifest lists.

Every command records in ``OUTPUT/latentaudit-manifest.json`` the files it created.  A
command writes into a folder that is missing, empty, or holds its own earlier run; a
folder holding another command's run, or files latentaudit did not make, is refused
unless ``--overwrite`` is given.  Even then, only files the manifest lists are replaced: a
file latentaudit did not make is never replaced or removed, and nothing is removed
recursively.  A run that was killed is reconciled by the next one: what it had written
under its declared outputs (from the snapshot taken when it started) becomes listed, and
the temporary files of its interrupted atomic writes are removed.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

from ..errors import ConfigError, DataError
from ..utils import TEMPORARY_SUFFIX, atomic_write, remove_stale_temporaries
from ._config import dump_toml
from ._run import Run

__all__ = ["MANIFEST", "check_output", "close_output", "open_output", "read_manifest",
           "save_config"]

#: The manifest of an output folder.
MANIFEST = "latentaudit-manifest.json"
_FORMAT = "latentaudit-output-folder"
_VERSION = 1


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The manifest of an output folder (None without one).

    Parameters
    ----------
    folder : str or os.PathLike

    Returns
    -------
    dict or None
        ``files`` (the relative paths latentaudit made there, with the command that wrote
        each), ``runs`` (command, start, end, status) and, while a run is going or after
        one was killed, ``pending``.

    Raises
    ------
    DataError
        For a manifest that is not one (unreadable, truncated, another format).
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"the output folder's manifest {str(path)!r} cannot be read "
                        f"({err}); latentaudit will not guess what it made there: choose "
                        f"another --output") from err
    if not isinstance(document, dict) or document.get("format") != _FORMAT or not (
            isinstance(document.get("files"), dict) and isinstance(document.get("runs"), list)):
        raise DataError(f"{str(path)!r} is not a latentaudit output manifest; choose another "
                        f"--output")
    return document


def _write_manifest(folder: Path, manifest: dict) -> None:
    with atomic_write(folder / MANIFEST) as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)


def _snapshot(folder: Path, outputs) -> dict[str, list[int]]:
    """Size and modification time of every file under the declared outputs."""
    found: dict[str, list[int]] = {}
    for name in outputs:
        target = folder / name.rstrip("/")
        candidates = target.rglob("*") if name.endswith("/") else [target]
        for path in candidates:
            if path.name.endswith(TEMPORARY_SUFFIX) or not path.is_file():
                continue
            stat = path.stat()
            found[path.relative_to(folder).as_posix()] = [stat.st_size, stat.st_mtime_ns]
    return found


def _made(folder: Path, pending: dict) -> list[str]:
    """The files a run created or changed under its outputs since its snapshot."""
    before = pending.get("before", {})
    after = _snapshot(folder, pending.get("outputs", []))
    return sorted(name for name, stamp in after.items() if before.get(name) != stamp)


def _reconcile(folder: Path, manifest: dict) -> dict:
    """Fold a killed run's files into the manifest."""
    pending = manifest.pop("pending", None)
    if pending:
        for name in _made(folder, pending):
            manifest["files"][name] = pending["command"]
        if manifest["runs"] and manifest["runs"][-1].get("status") == "running":
            manifest["runs"][-1]["status"] = "interrupted"
    return manifest


def _listing(names, limit: int = 3) -> str:
    names = list(names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def check_output(run: Run, outputs=None) -> Path:
    """Check the output folder before the command reads its inputs; create nothing.

    Parameters
    ----------
    run : Run
        The run (its configuration's ``output``, its command, ``overwrite``).
    outputs : sequence of str, optional
        What the command writes there (``"name"`` a file, ``"name/"`` a folder); default
        the run's (its command's declared outputs).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ConfigError
        Without an output folder.
    DataError
        For a file where the folder should be, a folder that is not empty and not the
        command's own (without ``--overwrite``), or a file latentaudit did not make where
        the command would write one (always).
    """
    command = run.command
    outputs = list(dict.fromkeys(["config.toml", *(run.outputs if outputs is None
                                                   else outputs)]))
    output = run.config["output"]
    if not output:
        raise ConfigError(f"'latentaudit {command}' needs an output folder: pass --output DIR "
                          f"(or set output in the config)")
    path = Path(output)
    if not path.exists():
        return path
    if not path.is_dir():
        raise DataError(f"output {str(path)!r} is a file, not a folder; choose another "
                        f"--output")
    entries = [p.name for p in path.iterdir() if not p.name.endswith(TEMPORARY_SUFFIX)]
    if not entries:
        return path
    manifest = read_manifest(path)
    if manifest is None:
        if not run.overwrite:
            raise DataError(
                f"refusing to write into {str(path)!r}: it is not empty ({_listing(entries)}) "
                f"and was not made by latentaudit (no {MANIFEST}); choose another --output, or "
                f"pass --overwrite to write beside its files (none of them is ever replaced)")
        owned: dict = {}
    else:
        manifest = _reconcile(path, manifest)
        owned = manifest["files"]
        last = manifest["runs"][-1]["command"] if manifest["runs"] else None
        if last != command and not run.overwrite:
            theirs = sorted(name for name in owned if _declared(name, outputs))
            what = (f"would replace its {_listing(theirs)}" if theirs
                    else "would mix two runs in one folder")
            raise DataError(
                f"refusing to write into {str(path)!r}: it holds a 'latentaudit {last}' run "
                f"(see {MANIFEST}) and a 'latentaudit {command}' run there {what}; choose "
                f"another --output, or pass --overwrite to replace the files latentaudit made "
                f"there")
    foreign = [name for name in outputs if not name.endswith("/")
               and (path / name).exists() and name not in owned]
    if foreign:
        raise DataError(
            f"refusing to replace {_listing(str(path / n) for n in foreign)}: not made by "
            f"latentaudit (not in {MANIFEST}); latentaudit never replaces a file it did not "
            f"make, with --overwrite or without: move it away or choose another --output")
    return path


def _declared(name: str, outputs) -> bool:
    for output in outputs:
        if output.endswith("/") and name.startswith(output):
            return True
        if name == output:
            return True
    return False


def open_output(run: Run, outputs=None) -> Path:
    """Create the output folder (checked again), record the run as pending in the
    manifest, remove dead writers' temporary files and write ``config.toml``.

    Parameters
    ----------
    run : Run
    outputs : sequence of str, optional
        As for :func:`check_output`; ``config.toml`` is added.

    Returns
    -------
    pathlib.Path
    """
    outputs = list(dict.fromkeys(["config.toml", *(run.outputs if outputs is None
                                                   else outputs)]))
    path = check_output(run, outputs)  # again: the inputs took time to read
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create the output folder {str(path)!r}: {err.strerror}; "
                        f"choose another --output") from err
    remove_stale_temporaries(path)
    manifest = read_manifest(path)
    manifest = _reconcile(path, manifest) if manifest else {
        "format": _FORMAT, "version": _VERSION, "files": {}, "runs": []}
    manifest["runs"].append({"command": run.command, "started": _now(), "status": "running",
                             "command_line": run.command_line()})
    manifest["pending"] = {"command": run.command, "outputs": outputs,
                           "before": _snapshot(path, outputs)}
    _write_manifest(path, manifest)
    run.output_state = {"path": path, "outputs": outputs}
    save_config(run)
    return path


def close_output(run: Run, status: str) -> None:
    """Record what the run made in the manifest (after success or failure)."""
    state = getattr(run, "output_state", None)
    if not state:
        return
    path = state["path"]
    manifest = read_manifest(path)
    if manifest is None:  # the folder was removed meanwhile
        return
    pending = manifest.pop("pending", None)
    if pending:
        for name in _made(path, pending):
            manifest["files"][name] = pending["command"]
    manifest["runs"][-1].update(status=status, finished=_now())
    _write_manifest(path, manifest)
    run.output_state = None


def save_config(run: Run) -> None:
    """Write the run's configuration as ``config.toml`` in its output folder."""
    with atomic_write(run.output / "config.toml") as handle:
        handle.write(dump_toml(run.config))
