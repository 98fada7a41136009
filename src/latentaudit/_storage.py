"""Embeddings on disk: the ``save``, ``load``, ``load_many`` and ``concatenate`` half of
:class:`~latentaudit.Embeddings`; JSON and metadata tables written atomically (beside,
then renamed), and ``.npy`` arrays filled in place as memory-maps."""

from __future__ import annotations

import contextlib
import glob
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._identity import DEFAULT_ID_COLUMN
from .errors import CheckpointError, ConfigError, DataError, InputTypeError
from .utils import atomic_path, atomic_write

if TYPE_CHECKING:  # pragma: no cover
    from .embeddings import Embeddings

__all__: list[str] = []

_FORMAT = "latentaudit.embeddings"
_FORMAT_VERSION = 1
_MANIFEST = "embeddings.json"
#: Every file :meth:`_Storage.save` writes (an interrupted save leaves some of them).
_FILES = ("z.npy", "slice_index.npy", "ids.json", "metadata.json", "provenance.json",
          _MANIFEST)


class _Storage:
    """:class:`~latentaudit.Embeddings` on disk: ``save``, ``load``, ``load_many`` and
    ``concatenate``."""

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the embeddings into a folder, without pickles.

        The folder holds ``z.npy`` (readable with :func:`numpy.load`, memory-mappable),
        ``slice_index.npy``, ``ids.json``, ``metadata.json`` (pandas' table-schema JSON,
        which keeps the column dtypes), ``provenance.json`` and a manifest
        ``embeddings.json`` written last, so a folder without it is known to be
        incomplete.

        Parameters
        ----------
        path : str or os.PathLike
            The folder; created if needed.
        overwrite : bool, default False
            Replace saved embeddings in ``path`` (complete, or left incomplete by an
            interrupted save): only the files listed above are replaced, each atomically;
            any other file in the folder is left alone.

        Returns
        -------
        pathlib.Path
            The folder.

        Raises
        ------
        FileExistsError
            (as :class:`latentaudit.errors.CheckpointError`) when ``path`` already holds
            files and ``overwrite`` is False.

        Examples
        --------
        >>> import numpy as np, tempfile
        >>> from latentaudit import Embeddings
        >>> emb = Embeddings(np.ones((2, 3), dtype="float32"))
        >>> folder = emb.save(tempfile.mkdtemp() + "/emb")
        >>> Embeddings.load(folder).shape
        (2, 3)
        """
        path = Path(path)
        z_path = path / "z.npy"
        same_file = (self.is_memmap and getattr(self.z, "filename", None) is not None
                     and z_path.exists() and os.path.samefile(self.z.filename, z_path))
        if path.exists() and any(path.iterdir()) and not same_file:
            if not overwrite:
                raise CheckpointError(f"{str(path)!r} already exists and is not empty; pass "
                                      f"overwrite=True to replace it")
            if not any((path / name).exists() for name in _FILES):
                raise CheckpointError(f"refusing to overwrite {str(path)!r}: it does not hold "
                                      f"saved embeddings (no {_MANIFEST})")
        path.mkdir(parents=True, exist_ok=True)
        if not same_file:
            # without its manifest the folder reads as incomplete until the sidecars are in
            (path / _MANIFEST).unlink(missing_ok=True)
            with atomic_path(z_path) as tmp:
                target = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                                   shape=self.z.shape)
                step = max(1, (64 << 20) // max(1, 4 * self.latent_dim))
                for start in range(0, len(self), step):
                    target[start:start + step] = self.z[start:start + step]
                target.flush()
                del target
        self._write_sidecars(path)
        return path

    def _write_sidecars(self, path: Path) -> None:
        with atomic_write(path / "slice_index.npy", "wb") as handle:
            np.save(handle, self.slice_index, allow_pickle=False)
        write_json(path / "ids.json", [str(i) for i in self.ids])
        write_metadata(path / "metadata.json", self.metadata)
        write_json(path / "provenance.json", jsonable(self.provenance))
        write_json(path / _MANIFEST, {
            "format": _FORMAT, "version": _FORMAT_VERSION, "n_rows": len(self),
            "latent_dim": self.latent_dim, "dtype": "float32", "id_column": self.id_column,
            "metadata_dtypes": {str(c): str(t) for c, t in self.metadata.dtypes.items()},
        })

    @classmethod
    def load(cls, path: str | os.PathLike, *, mmap: bool | str = False,
             images=None) -> Embeddings:
        """Read embeddings written by :meth:`save` (or by ``embed(..., out=path)``).

        Parameters
        ----------
        path : str or os.PathLike
            The folder.
        mmap : bool or {"r", "r+", "c"}, default False
            Memory-map ``z.npy`` instead of reading it into memory (``True`` means
            read-only, ``"r"``); use it for arrays larger than memory.
        images : array-like, torch.Tensor or dataset, optional
            The images the embeddings were made from (saved embeddings hold none; see
            :meth:`attach_images`).

        Returns
        -------
        Embeddings

        Raises
        ------
        OSError
            (as :class:`latentaudit.errors.CheckpointError`) when the folder is missing,
            incomplete or inconsistent.

        Examples
        --------
        >>> emb = Embeddings.load("runs/embeddings", mmap=True)  # doctest: +SKIP
        """
        path = Path(path)
        manifest_path = path / _MANIFEST
        if not manifest_path.exists():
            what = "does not exist" if not path.exists() else f"has no {_MANIFEST}"
            raise CheckpointError(
                f"cannot load embeddings from {str(path)!r}: the folder {what} (an "
                f"interrupted save or embed(out=...) leaves no manifest)")
        manifest = read_json(manifest_path)
        if not isinstance(manifest, dict) or not isinstance(manifest.get("n_rows"), int) or (
                not isinstance(manifest.get("latent_dim"), int)):
            raise CheckpointError(f"{str(manifest_path)!r} is not a latentaudit embeddings "
                                  f"manifest (a JSON object with n_rows and latent_dim); save "
                                  f"the embeddings again")
        version = manifest.get("version", 0)
        if manifest.get("format") != _FORMAT or not isinstance(version, int) or (
                version > _FORMAT_VERSION):
            raise CheckpointError(
                f"{str(manifest_path)!r} is not a latentaudit embeddings manifest of version "
                f"<= {_FORMAT_VERSION}: got format {manifest.get('format')!r}, version "
                f"{manifest.get('version')!r}")
        if mmap is True:
            mmap = "r"
        if mmap not in (False, None, "r", "r+", "c"):
            raise ConfigError(f"mmap must be True, False, 'r', 'r+' or 'c', got {mmap!r}")
        try:
            z = np.load(path / "z.npy", mmap_mode=mmap or None, allow_pickle=False)
            slice_index = np.load(path / "slice_index.npy", allow_pickle=False)
            ids = read_json(path / "ids.json")
            metadata = read_metadata(path / "metadata.json",
                                      manifest.get("metadata_dtypes", {}))
            provenance = read_json(path / "provenance.json")
        except Exception as err:  # numpy, json and pandas raise many kinds for corrupt files
            raise CheckpointError(f"cannot load embeddings from {str(path)!r}: "
                                  f"{type(err).__name__}: {err}; the folder is incomplete or "
                                  f"corrupt: save the embeddings again") from err
        if z.shape != (manifest["n_rows"], manifest["latent_dim"]):
            raise CheckpointError(
                f"{str(path / 'z.npy')!r} has shape {z.shape}, but the manifest says "
                f"({manifest['n_rows']}, {manifest['latent_dim']})")
        return cls(z, ids=ids, metadata=metadata, slice_index=slice_index,
                   provenance=provenance, id_column=manifest.get("id_column", DEFAULT_ID_COLUMN),
                   images=images)

    @classmethod
    def load_many(cls, paths, *, out: str | os.PathLike | None = None) -> Embeddings:
        """Read and concatenate embeddings saved by several workers (shards).

        Parameters
        ----------
        paths : str, os.PathLike or sequence of them
            The folders, or one glob pattern such as ``"runs/emb-shard-*"``.  Shards
            written by ``embed(..., shard=(k, K))`` are put in shard order whatever the
            order of ``paths``, and a missing shard is an error.
        out : str or os.PathLike, optional
            Write the concatenation into this folder as a memory-map rather than into
            memory.

        Returns
        -------
        Embeddings

        Raises
        ------
        ValueError
            (as :class:`latentaudit.errors.DataError`) when shards are missing, repeat
            rows, or have different latent dimensions.

        Examples
        --------
        >>> emb = Embeddings.load_many("runs/emb-shard-*")  # doctest: +SKIP
        """
        if isinstance(paths, (str, os.PathLike)):
            pattern = os.fspath(paths)
            paths = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
            if not paths:
                raise DataError(f"no folder matches {pattern!r}")
        parts = [cls.load(p, mmap=True) for p in paths]
        shards = [p.provenance.get("shard") for p in parts]
        if all(s is not None for s in shards):
            counts = {int(s[1]) for s in shards}
            if len(counts) != 1:
                raise DataError(f"the shards come from runs with different shard counts: "
                                f"{sorted(counts)}")
            count = counts.pop()
            found = sorted(int(s[0]) for s in shards)
            if found != list(range(count)):
                missing = sorted(set(range(count)) - set(found))
                raise DataError(
                    f"expected shards 0..{count - 1} exactly once; missing {missing}, "
                    f"given {found}")
            order = np.argsort([int(s[0]) for s in shards], kind="stable")
            parts = [parts[i] for i in order]
        return cls.concatenate(parts, out=out)

    @classmethod
    def concatenate(cls, parts: Sequence[Embeddings], *,
                    out: str | os.PathLike | None = None) -> Embeddings:
        """Stack several :class:`Embeddings` row-wise.

        Parameters
        ----------
        parts : sequence of Embeddings
            Parts with the same latent dimension.
        out : str or os.PathLike, optional
            Write the result into this folder as a memory-map rather than into memory.

        Returns
        -------
        Embeddings
            Rows in the order of ``parts``; the provenance lists each part's provenance
            under ``"parts"``.  It carries no images (attach them with
            :meth:`attach_images`).

        Raises
        ------
        ValueError
            (as :class:`latentaudit.errors.DataError`) for different latent dimensions,
            or when the same item (subject and slice index) appears in two parts.

        Examples
        --------
        >>> import numpy as np
        >>> from latentaudit import Embeddings
        >>> a = Embeddings(np.zeros((2, 3), dtype="float32"), ids=["a", "b"])
        >>> b = Embeddings(np.ones((1, 3), dtype="float32"), ids=["c"])
        >>> Embeddings.concatenate([a, b]).shape
        (3, 3)
        """
        parts = list(parts)
        if not parts:
            raise DataError("concatenate needs at least one Embeddings object, got none")
        for part in parts:
            if not isinstance(part, cls):
                raise InputTypeError(f"concatenate takes Embeddings objects, got "
                                     f"{type(part).__name__}")
        dims = sorted({p.latent_dim for p in parts})
        if len(dims) != 1:
            raise DataError(f"cannot concatenate embeddings of different latent dimensions "
                            f"{dims}")
        id_columns = sorted({p.id_column for p in parts})
        if len(id_columns) != 1:
            raise DataError(f"cannot concatenate embeddings whose ids are in different "
                            f"columns {id_columns}")
        ids = np.concatenate([p.ids for p in parts])
        slice_index = np.concatenate([p.slice_index for p in parts])
        keys = pd.DataFrame({"id": ids, "slice": slice_index})
        repeated = keys.duplicated()
        if repeated.any():
            first = keys[repeated].iloc[0]
            raise DataError(
                f"{int(repeated.sum())} row(s) appear in more than one part, e.g. subject "
                f"{first['id']!r} slice {int(first['slice'])}; were the same items embedded "
                f"twice?")
        n = len(ids)
        if out is not None:
            path = prepare_out(out)
            z = np.lib.format.open_memmap(path / "z.npy.partial", mode="w+",
                                          dtype=np.float32, shape=(n, dims[0]))
            start = 0
            for part in parts:
                z[start:start + len(part)] = part.z
                start += len(part)
        else:
            z = np.concatenate([np.asarray(p.z) for p in parts], axis=0)
        metadata = pd.concat([p.metadata for p in parts], ignore_index=True)
        provenance = _common_items([p.provenance for p in parts])
        provenance.pop("shard", None)
        provenance["parts"] = [p.provenance for p in parts]
        result = cls(z, ids=ids, metadata=metadata, slice_index=slice_index,
                     provenance=provenance, id_column=id_columns[0])
        if out is not None:
            finish_streamed(result, out)
        return result


def _common_items(dicts: list[dict]) -> dict:
    first = dicts[0]
    return {k: v for k, v in first.items() if all(d.get(k) == v for d in dicts[1:])}



def allocate_rows(shape: tuple[int, int], out):
    if out is None:
        return np.zeros(shape, dtype=np.float32)
    path = prepare_out(out)
    return np.lib.format.open_memmap(path / "z.npy.partial", mode="w+", dtype=np.float32,
                                     shape=shape)


def finish_streamed(embeddings, out) -> None:
    """Seal a folder whose ``z.npy`` was filled in place (``embed(..., out=)``, merges):
    flush, rename into place, write the sidecars and reopen ``z`` read-only."""
    path = Path(out)
    embeddings.z.flush()
    filename = embeddings.z.filename
    del embeddings.z
    os.replace(filename, path / "z.npy")
    embeddings.z = np.load(path / "z.npy", mmap_mode="r", allow_pickle=False)
    embeddings._write_sidecars(path)


def discard_partial(target) -> None:
    filename = getattr(target, "filename", None)
    del target
    if filename is not None:
        with contextlib.suppress(OSError):
            os.remove(filename)


def prepare_out(out) -> Path:
    path = Path(out)
    if path.exists() and any(path.iterdir()):
        raise CheckpointError(f"out folder {str(path)!r} already exists and is not empty; "
                              f"choose a new folder or remove it")
    path.mkdir(parents=True, exist_ok=True)
    return path


def jsonable(value: Any):
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def write_json(path: Path, value) -> None:
    with atomic_write(path) as handle:
        json.dump(value, handle)


def read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{str(path)!r} is not valid JSON ({err}): the file is truncated "
                              f"or corrupt; save the embeddings again (latentaudit embed, or "
                              f"Embeddings.save)") from err


def write_metadata(path: Path, metadata: pd.DataFrame) -> None:
    table = metadata.copy()
    table.columns = [str(c) for c in table.columns]
    with atomic_write(path) as handle:
        table.to_json(handle, orient="table", index=False, date_format="iso")


def read_metadata(path: Path, dtypes: dict) -> pd.DataFrame:
    table = pd.read_json(path, orient="table")
    # the table schema keeps kinds, not resolutions (datetime64[us] comes back as [ns])
    for column, dtype in dtypes.items():
        if column in table.columns and str(table[column].dtype) != dtype:
            with contextlib.suppress(TypeError, ValueError):
                table[column] = table[column].astype(dtype)
    return table
