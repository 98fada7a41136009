"""The :class:`Embeddings` container: an ``(N, d)`` array with the ids, metadata and
provenance of its rows; per-subject aggregation; storage on disk without pickles, as a
folder of ``.npy`` and JSON files, with large arrays written and read as memory-maps.

:func:`latentaudit.embed` (in :mod:`latentaudit.embed`) makes them from an encoder and a
dataset.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._aggregation import _AggregationPlan, _prepare_out
from .errors import CheckpointError, ConfigError, DataError, InputShapeError, InputTypeError

__all__ = ["Embeddings"]

_FORMAT = "latentaudit.embeddings"
_FORMAT_VERSION = 1
_MANIFEST = "embeddings.json"


class Embeddings:
    """Embeddings of a dataset: an ``(N, d)`` array with ids, metadata and provenance.

    Usually made by :func:`embed` or :meth:`load`.  Everything after the embedding step
    (projection, clustering, probes) works on :attr:`z` and :attr:`metadata`.

    Parameters
    ----------
    z : array-like of shape (n_rows, latent_dim)
        The embeddings; kept as given when already a float32 NumPy array (a memory-map
        stays a memory-map), converted to float32 otherwise.
    ids : sequence of str, optional
        Subject id of every row.  Default ``"0", "1", ...``.
    metadata : pandas.DataFrame, optional
        One row per row of ``z``, in the same order.  Default: a table of the ids.
    slice_index : sequence of int, optional
        Position of every row among its subject's slices.  Default: all zeros.
    provenance : dict, optional
        How the embeddings were made (JSON-serialisable).

    Attributes
    ----------
    z : numpy.ndarray of shape (n_rows, latent_dim)
        float32 embeddings (possibly a read-only memory-map).
    ids : numpy.ndarray of str
        Subject id of every row.
    metadata : pandas.DataFrame
        Metadata, one row per row of ``z``.
    slice_index : numpy.ndarray of int64
        Position of every row among its subject's slices (0 once aggregated).
    provenance : dict
        Encoder class and config hash, library version, seeds, devices, timings.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.InputShapeError` or ``DataError``) when ``z`` is
        not 2-D or the ids, metadata and slice indices do not have one entry per row.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit import Embeddings
    >>> emb = Embeddings(np.zeros((3, 4), dtype="float32"), ids=["a", "b", "c"])
    >>> emb.shape
    (3, 4)
    """

    def __init__(self, z, ids=None, metadata: pd.DataFrame | None = None, slice_index=None,
                 provenance: dict | None = None) -> None:
        if not (isinstance(z, np.ndarray) and z.dtype == np.float32):
            z = _to_numpy(z).astype(np.float32, copy=False)
        if z.ndim != 2:
            raise InputShapeError(f"embeddings must be a 2-D array (n_rows, latent_dim), "
                                  f"got shape {z.shape}")
        n = len(z)
        if ids is None:
            ids = np.array([str(i) for i in range(n)], dtype=object)
        ids = np.asarray([str(i) for i in ids], dtype=object)
        if ids.shape != (n,):
            raise DataError(f"got {len(ids)} ids for {n} embeddings; give one id per row")
        if metadata is None:
            metadata = pd.DataFrame({"subject": ids})
        if not isinstance(metadata, pd.DataFrame):
            raise InputTypeError(
                f"metadata must be a pandas DataFrame, got {type(metadata).__name__}")
        if len(metadata) != n:
            raise DataError(f"metadata has {len(metadata)} rows for {n} embeddings; give one "
                            f"row per embedding")
        if slice_index is None:
            slice_index = np.zeros(n, dtype=np.int64)
        slice_index = np.asarray(slice_index, dtype=np.int64)
        if slice_index.shape != (n,):
            raise DataError(f"slice_index must have one entry per embedding ({n}), got shape "
                            f"{slice_index.shape}")
        self.z = z
        self.ids = ids
        self.metadata = metadata.reset_index(drop=True)
        self.slice_index = slice_index
        self.provenance = dict(provenance or {})

    # -- basics ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.z)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_rows, latent_dim)``."""
        return tuple(self.z.shape)

    @property
    def latent_dim(self) -> int:
        """Number of columns of :attr:`z`."""
        return int(self.z.shape[1])

    @property
    def is_memmap(self) -> bool:
        """Whether :attr:`z` is a memory-map of a file rather than an array in memory."""
        return isinstance(self.z, np.memmap)

    def __array__(self, dtype=None, copy=None):
        # lets estimators take the object itself: Projector().fit_transform(emb)
        z = np.asarray(self.z)
        return z.astype(dtype, copy=False) if dtype is not None else z

    def __repr__(self) -> str:
        columns = ", ".join(map(str, self.metadata.columns)) or "none"
        where = ", memory-mapped" if self.is_memmap else ""
        return (f"Embeddings(n_rows={len(self)}, latent_dim={self.latent_dim}, "
                f"n_subjects={len(pd.unique(self.ids))}{where}, metadata columns: {columns})")

    # -- aggregation -------------------------------------------------------------------
    def aggregate(self, method: str = "concat", out: str | os.PathLike | None = None
                  ) -> Embeddings:
        """Combine the rows of each subject into one row.

        Parameters
        ----------
        method : {"concat", "mean"}, default "concat"
            ``"concat"`` concatenates a subject's slice embeddings ordered by
            :attr:`slice_index` (the paper's subject embedding; every subject must have
            the same number of slices), giving ``n_slices * latent_dim`` columns;
            ``"mean"`` averages them.
        out : str or os.PathLike, optional
            Write the result into this folder as a memory-map (see :meth:`save`).

        Returns
        -------
        Embeddings
            One row per subject, in order of first appearance; the metadata keeps the
            columns that are constant within every subject.

        Raises
        ------
        ValueError
            (as :class:`latentaudit.errors.DataError`) for ``"concat"`` when subjects
            have different numbers of slices or repeat a slice index.

        Examples
        --------
        >>> import numpy as np
        >>> from latentaudit import Embeddings
        >>> emb = Embeddings(np.arange(8, dtype="float32").reshape(4, 2),
        ...                  ids=["a", "a", "b", "b"], slice_index=[1, 0, 0, 1])
        >>> emb.aggregate("concat").z
        array([[2., 3., 0., 1.],
               [4., 5., 6., 7.]], dtype=float32)
        """
        plan = _AggregationPlan.build(self.ids, self.slice_index, method)
        target = plan.allocate(self.latent_dim, out)
        step = 65536
        for start in range(0, len(self), step):
            stop = min(start + step, len(self))
            plan.write(target, np.arange(start, stop),
                       np.asarray(self.z[start:stop], dtype=np.float32))
        provenance = dict(self.provenance)
        provenance["aggregate"] = plan.describe()
        result = Embeddings(target, ids=plan.subjects,
                            metadata=plan.subject_metadata(self.metadata),
                            provenance=provenance)
        if out is not None:
            result._finish_streamed(out)
        return result

    # -- storage -----------------------------------------------------------------------
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
            Replace a folder that already holds saved embeddings.

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
            if not (path / _MANIFEST).exists():
                raise CheckpointError(f"refusing to overwrite {str(path)!r}: it does not hold "
                                      f"saved embeddings (no {_MANIFEST})")
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        if not same_file:
            (path / _MANIFEST).unlink(missing_ok=True)
            tmp = path / "z.npy.partial"
            target = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                               shape=self.z.shape)
            step = max(1, (64 << 20) // max(1, 4 * self.latent_dim))
            for start in range(0, len(self), step):
                target[start:start + step] = self.z[start:start + step]
            target.flush()
            del target
            os.replace(tmp, z_path)
        self._write_sidecars(path)
        return path

    def _write_sidecars(self, path: Path) -> None:
        np.save(path / "slice_index.npy", self.slice_index, allow_pickle=False)
        _write_json(path / "ids.json", [str(i) for i in self.ids])
        _write_metadata(path / "metadata.json", self.metadata)
        _write_json(path / "provenance.json", _jsonable(self.provenance))
        _write_json(path / _MANIFEST, {
            "format": _FORMAT, "version": _FORMAT_VERSION, "n_rows": len(self),
            "latent_dim": self.latent_dim, "dtype": "float32",
            "metadata_dtypes": {str(c): str(t) for c, t in self.metadata.dtypes.items()},
        })

    def _finish_streamed(self, out) -> None:
        """Seal a folder whose z.npy was filled in place: flush, sidecars, reopen read-only."""
        path = Path(out)
        self.z.flush()
        filename = self.z.filename
        del self.z
        os.replace(filename, path / "z.npy")
        self.z = np.load(path / "z.npy", mmap_mode="r", allow_pickle=False)
        self._write_sidecars(path)

    @classmethod
    def load(cls, path: str | os.PathLike, *, mmap: bool | str = False) -> Embeddings:
        """Read embeddings written by :meth:`save` (or by ``embed(..., out=path)``).

        Parameters
        ----------
        path : str or os.PathLike
            The folder.
        mmap : bool or {"r", "r+", "c"}, default False
            Memory-map ``z.npy`` instead of reading it into memory (``True`` means
            read-only, ``"r"``); use it for arrays larger than memory.

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
        manifest = _read_json(manifest_path)
        if manifest.get("format") != _FORMAT or manifest.get("version", 0) > _FORMAT_VERSION:
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
            ids = _read_json(path / "ids.json")
            metadata = _read_metadata(path / "metadata.json",
                                      manifest.get("metadata_dtypes", {}))
            provenance = _read_json(path / "provenance.json")
        except (OSError, ValueError) as err:
            raise CheckpointError(f"cannot load embeddings from {str(path)!r}: {err}") from err
        if z.shape != (manifest["n_rows"], manifest["latent_dim"]):
            raise CheckpointError(
                f"{str(path / 'z.npy')!r} has shape {z.shape}, but the manifest says "
                f"({manifest['n_rows']}, {manifest['latent_dim']})")
        return cls(z, ids=ids, metadata=metadata, slice_index=slice_index,
                   provenance=provenance)

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
            under ``"parts"``.

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
            if not isinstance(part, Embeddings):
                raise InputTypeError(f"concatenate takes Embeddings objects, got "
                                     f"{type(part).__name__}")
        dims = sorted({p.latent_dim for p in parts})
        if len(dims) != 1:
            raise DataError(f"cannot concatenate embeddings of different latent dimensions "
                            f"{dims}")
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
            path = _prepare_out(out)
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
                     provenance=provenance)
        if out is not None:
            result._finish_streamed(out)
        return result



def _to_numpy(z) -> np.ndarray:
    try:
        import torch

        if isinstance(z, torch.Tensor):
            return z.detach().float().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return np.asarray(z)


def _common_items(dicts: list[dict]) -> dict:
    first = dicts[0]
    return {k: v for k, v in first.items() if all(d.get(k) == v for d in dicts[1:])}


def _jsonable(value: Any):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _write_json(path: Path, value) -> None:
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(value, fh)
    os.replace(tmp, path)


def _read_json(path: Path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _write_metadata(path: Path, metadata: pd.DataFrame) -> None:
    table = metadata.copy()
    table.columns = [str(c) for c in table.columns]
    tmp = path.with_name(path.name + ".partial")
    table.to_json(tmp, orient="table", index=False, date_format="iso")
    os.replace(tmp, path)


def _read_metadata(path: Path, dtypes: dict) -> pd.DataFrame:
    table = pd.read_json(path, orient="table")
    # the table schema keeps kinds, not resolutions (datetime64[us] comes back as [ns])
    for column, dtype in dtypes.items():
        if column in table.columns and str(table[column].dtype) != dtype:
            with contextlib.suppress(TypeError, ValueError):
                table[column] = table[column].astype(dtype)
    return table
