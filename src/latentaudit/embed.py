"""Batched, device-aware extraction of embeddings.

:func:`embed` runs any object that meets the encoder protocol (``latent_dim``,
``spatial_dims``, ``encode(x) -> Tensor[N, latent_dim]``) over a dataset and returns an
:class:`Embeddings` object: the ``(N, d)`` float32 array, the ids, the aligned metadata
table and a provenance record.  Embeddings are stored on disk without pickles, as a
folder of ``.npy`` and JSON files, and large arrays are written and read as memory-maps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import glob
import hashlib
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import CheckpointError, ConfigError, DataError, InputShapeError, InputTypeError
from .utils import check_option, resolve_device

__all__ = ["Embeddings", "embed"]

logger = logging.getLogger(__name__)

_FORMAT = "latentaudit.embeddings"
_FORMAT_VERSION = 1
_MANIFEST = "embeddings.json"
_DTYPES = {
    None: None,
    "float32": None,
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


# --------------------------------------------------------------------------------------
# the Embeddings container
# --------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------
# embed()
# --------------------------------------------------------------------------------------
def embed(encoder, dataset, batch_size: int = 64, device=None, num_workers: int = 0,
          aggregate: str | None = None, dtype=None, verbose: bool = True, *,
          aggregate_method: str = "concat", channels_last: bool | None = None,
          out: str | os.PathLike | None = None, shard: tuple[int, int] | None = None
          ) -> Embeddings:
    """Compute the embedding of every item of a dataset.

    Runs ``encoder.encode`` over batches under :func:`torch.inference_mode`, with the
    encoder in eval mode, and returns float32 NumPy results on the CPU.

    Parameters
    ----------
    encoder : Encoder
        Any object with ``latent_dim`` and ``encode(x) -> Tensor[N, latent_dim]``,
        e.g. :class:`latentaudit.DAEEncoder` or :class:`latentaudit.TorchEncoder`.
    dataset : ImageDataset, torch Dataset, numpy.ndarray or torch.Tensor
        A latentaudit dataset (ids, slice indices and metadata are carried over), any
        map-style dataset whose items are tensors, ``(image, ...)`` tuples or dicts with
        an ``"image"`` key, or an array of inputs.
    batch_size : int, default 64
        Items per call of ``encode``.
    device : str or torch.device, optional
        Where to run.  Default: where the encoder's parameters are.  A module is moved
        there for the call and moved back afterwards.
    num_workers : int, default 0
        DataLoader worker processes that load items while the encoder runs.
    aggregate : {None, "subject"}, default None
        ``"subject"`` combines each subject's slices into one row (see
        ``aggregate_method``); the metadata then has one row per subject.
    dtype : {None, "float32", "bfloat16", "float16"}, default None
        ``None`` and ``"float32"`` run in the encoder's own dtype; ``"bfloat16"`` and
        ``"float16"`` run under :func:`torch.autocast`.  bfloat16 belongs on GPUs: on a
        CPU it is slower than float32 (a warning says so).
    verbose : bool, default True
        Show a progress bar.
    aggregate_method : {"concat", "mean"}, default "concat"
        How ``aggregate="subject"`` combines slices: concatenation ordered by slice
        index (as in the paper; all subjects need the same number of slices) or mean.
    channels_last : bool, optional
        Run convolutional encoders with channels-last tensors.  Default: on for float32
        on the CPU, where it is usually faster, off elsewhere.
    out : str or os.PathLike, optional
        Stream the result into this folder (the layout of :meth:`Embeddings.save`) as a
        memory-map, so the whole array never has to be in memory; the returned object
        then holds a read-only memory-map.
    shard : tuple of (int, int), optional
        ``(k, K)``: embed only the k-th of K contiguous blocks of subjects, e.g.
        ``(dist.get_rank(), dist.get_world_size())`` under ``torchrun``; read the saved
        shards back with :meth:`Embeddings.load_many`.

    Returns
    -------
    Embeddings
        ``z`` float32 of shape ``(n_items, latent_dim)`` (or one row per subject with
        ``aggregate="subject"``), ids, metadata, slice indices and provenance (encoder
        class and config hash, library and torch versions, device, dtype, seeds,
        timings).

    Raises
    ------
    TypeError
        (as :class:`latentaudit.errors.InputTypeError`) when ``encoder`` lacks
        ``encode``/``latent_dim`` or ``encode`` does not return a tensor.
    ValueError
        (as :class:`latentaudit.errors.ConfigError`, ``InputShapeError`` or
        ``DataError``) for bad options, outputs of the wrong shape, or subjects that
        cannot be aggregated.

    Examples
    --------
    >>> import torch
    >>> import latentaudit as la
    >>> class Flatten(torch.nn.Module):
    ...     latent_dim, spatial_dims = 256, 2
    ...     def encode(self, x):
    ...         return x.flatten(1)
    >>> ds = la.ArrayDataset(torch.zeros(10, 1, 16, 16).numpy(), ids=list("aabbccddee"))
    >>> emb = la.embed(Flatten(), ds, batch_size=4, aggregate="subject", verbose=False)
    >>> emb.shape
    (5, 512)
    """
    import torch

    _check_encoder(encoder)
    batch_size = _check_positive_int("batch_size", batch_size)
    num_workers = _check_non_negative_int("num_workers", num_workers)
    check_option("aggregate", aggregate, [None, "subject"])
    check_option("aggregate_method", aggregate_method, ["concat", "mean"])
    if isinstance(dtype, torch.dtype):
        dtype = str(dtype).removeprefix("torch.")
    autocast_dtype = _DTYPES[check_option("dtype", dtype, list(_DTYPES))]

    items, ids, slice_index, metadata = _as_items(dataset)
    positions = np.arange(len(items))
    if shard is not None:
        positions = _shard_positions(ids, shard)
    module = encoder if isinstance(encoder, torch.nn.Module) else None
    run_device = resolve_device(device, encoder)
    if channels_last is None:
        channels_last = run_device.type == "cpu" and autocast_dtype is None
    channels_last = bool(channels_last) and module is not None and _has_conv(module)
    if autocast_dtype is not None:
        _check_autocast(run_device, autocast_dtype)

    latent_dim = int(encoder.latent_dim)
    rows_ids = ids[positions]
    rows_slices = slice_index[positions]
    if aggregate == "subject":
        plan = _AggregationPlan.build(rows_ids, rows_slices, aggregate_method)
    else:
        plan = _IdentityPlan(len(positions))
    # fail on a bad aggregation before spending time on the encoder
    target = plan.allocate(latent_dim, out)
    row_of_item = np.full(len(items), -1, dtype=np.int64)
    row_of_item[positions] = np.arange(len(positions))

    loader = torch.utils.data.DataLoader(
        items if shard is None else torch.utils.data.Subset(items, positions.tolist()),
        batch_size=batch_size, shuffle=False, num_workers=num_workers,
        pin_memory=run_device.type == "cuda")
    input_dtype = _encoder_dtype(encoder) if autocast_dtype is None else torch.float32
    started = time.perf_counter()
    encode_seconds = 0.0
    n_bad = 0
    try:
        with contextlib.ExitStack() as stack:
            if module is not None:
                stack.enter_context(_placed(module, run_device, channels_last))
            stack.enter_context(torch.inference_mode())
            progress = stack.enter_context(_progress(len(positions), verbose))
            for batch in loader:
                images = batch["image"].to(run_device, dtype=input_dtype,
                                           non_blocking=run_device.type == "cuda")
                if channels_last and images.ndim in (4, 5):
                    images = images.contiguous(memory_format=torch.channels_last if images.ndim == 4
                                               else torch.channels_last_3d)
                tick = time.perf_counter()
                if autocast_dtype is not None:
                    with torch.autocast(run_device.type, dtype=getattr(torch, autocast_dtype)):
                        z = encoder.encode(images)
                else:
                    z = encoder.encode(images)
                z = _check_output(z, len(images), latent_dim)
                z = z.detach().float().cpu().numpy()
                encode_seconds += time.perf_counter() - tick
                n_bad += int((~np.isfinite(z)).any(axis=1).sum())
                rows = row_of_item[np.asarray(batch["index"])]
                plan.write(target, rows, z)
                progress.update(len(images))
    except BaseException:
        # an interrupted run leaves no half-written array behind
        if out is not None:
            _discard_partial(target)
        raise
    total = time.perf_counter() - started
    if n_bad:
        warnings.warn(f"{n_bad} item embedding(s) contain NaN or infinite values; check the "
                      f"encoder and the inputs of those rows")

    provenance = {
        "encoder": type(encoder).__name__,
        "encoder_config_hash": _config_hash(encoder),
        "latent_dim": latent_dim,
        "dataset": type(dataset).__name__,
        "n_items": len(positions),
        "latentaudit_version": _library_version(),
        "torch_version": torch.__version__,
        "device": str(run_device),
        "dtype": autocast_dtype or str(input_dtype).removeprefix("torch."),
        "channels_last": channels_last,
        "batch_size": batch_size,
        "seeds": {"torch_initial_seed": int(torch.initial_seed())},
        "timings": {"total_s": round(total, 4), "encode_s": round(encode_seconds, 4),
                    "items_per_s": round(len(positions) / total, 2) if total > 0 else None},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "aggregate": plan.describe(),
        "shard": list(shard) if shard is not None else None,
    }
    if shard is None:
        provenance.pop("shard")
    out_metadata = metadata.iloc[positions].reset_index(drop=True)
    if aggregate == "subject":
        result = Embeddings(target, ids=plan.subjects,
                            metadata=plan.subject_metadata(out_metadata),
                            provenance=provenance)
    else:
        result = Embeddings(target, ids=rows_ids, metadata=out_metadata,
                            slice_index=rows_slices, provenance=provenance)
    del target  # the result holds the only reference, so the file can be sealed
    if out is not None:
        result._finish_streamed(out)
    logger.info("embedded %d items in %.1f s (%.1f items/s) on %s", len(positions), total,
                len(positions) / max(total, 1e-9), run_device)
    return result


# --------------------------------------------------------------------------------------
# aggregation plans: where each item's embedding goes in the output array
# --------------------------------------------------------------------------------------
class _IdentityPlan:
    def __init__(self, n_rows: int) -> None:
        self.n_rows = n_rows

    def allocate(self, latent_dim: int, out):
        return _allocate((self.n_rows, latent_dim), out)

    def write(self, target, rows: np.ndarray, z: np.ndarray) -> None:
        target[rows] = z

    def describe(self):
        return None


@dataclasses.dataclass
class _AggregationPlan:
    method: str
    subjects: np.ndarray  # unique ids, order of first appearance
    codes: np.ndarray  # subject row of every item
    rank: np.ndarray  # position of every item among its subject's slices
    counts: np.ndarray  # items per subject

    @classmethod
    def build(cls, ids, slice_index, method: str) -> _AggregationPlan:
        check_option("aggregate_method", method, ["concat", "mean"])
        ids = np.asarray(ids, dtype=object)
        slice_index = np.asarray(slice_index, dtype=np.int64)
        if len(ids) == 0:
            raise DataError("cannot aggregate an empty set of embeddings")
        codes, subjects = pd.factorize(pd.Series(ids, dtype=object), sort=False)
        codes = codes.astype(np.int64)
        counts = np.bincount(codes, minlength=len(subjects))
        order = np.lexsort((slice_index, codes))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.empty(len(ids), dtype=np.int64)
        rank[order] = np.arange(len(ids)) - starts[codes[order]]
        sorted_codes, sorted_slices = codes[order], slice_index[order]
        repeated = (sorted_codes[1:] == sorted_codes[:-1]) & (sorted_slices[1:] ==
                                                               sorted_slices[:-1])
        if method == "concat" and repeated.any():
            where = int(np.flatnonzero(repeated)[0])
            raise DataError(
                f"subject {subjects[sorted_codes[where]]!r} has slice index "
                f"{int(sorted_slices[where])} more than once; concatenation needs a distinct "
                f"slice index per slice")
        if method == "concat" and len(np.unique(counts)) > 1:
            values, first = np.unique(counts, return_index=True)
            examples = ", ".join(f"{subjects[i]!r} has {counts[i]}" for i in first[:4])
            raise DataError(
                f"aggregate_method='concat' needs the same number of slices for every "
                f"subject, got counts {values.tolist()} ({examples}); select a fixed number "
                f"of slices per subject (n_slices=) or use aggregate_method='mean'")
        return cls(method, np.asarray(subjects, dtype=object), codes, rank, counts)

    @property
    def n_slices(self) -> int:
        return int(self.counts.max())

    def allocate(self, latent_dim: int, out):
        self.latent_dim = latent_dim
        width = latent_dim * self.n_slices if self.method == "concat" else latent_dim
        return _allocate((len(self.subjects), width), out)

    def write(self, target, rows: np.ndarray, z: np.ndarray) -> None:
        subject_rows = self.codes[rows]
        if self.method == "concat":
            d = self.latent_dim
            columns = self.rank[rows][:, None] * d + np.arange(d)
            target[subject_rows[:, None], columns] = z
        else:
            np.add.at(target, subject_rows, z / self.counts[subject_rows][:, None])

    def describe(self) -> dict:
        return {"by": "subject", "method": self.method, "n_slices": self.n_slices}

    def subject_metadata(self, metadata: pd.DataFrame) -> pd.DataFrame:
        """First row of every subject, keeping the columns constant within subjects."""
        first = np.zeros(len(self.subjects), dtype=np.int64)
        seen = pd.Series(self.codes).drop_duplicates()
        first[seen.to_numpy()] = seen.index.to_numpy()
        table = metadata.reset_index(drop=True)
        if len(table.columns):
            varying = table.groupby(self.codes, sort=False).nunique(dropna=False).max() > 1
            dropped = [c for c in table.columns if varying.get(c, False)]
            if dropped:
                logger.info("aggregation drops metadata column(s) that vary within a "
                            "subject: %s", ", ".join(map(str, dropped)))
                table = table.drop(columns=dropped)
        return table.iloc[first].reset_index(drop=True)


def _allocate(shape: tuple[int, int], out):
    if out is None:
        return np.zeros(shape, dtype=np.float32)
    path = _prepare_out(out)
    return np.lib.format.open_memmap(path / "z.npy.partial", mode="w+", dtype=np.float32,
                                     shape=shape)


def _discard_partial(target) -> None:
    filename = getattr(target, "filename", None)
    del target
    if filename is not None:
        with contextlib.suppress(OSError):
            os.remove(filename)


def _prepare_out(out) -> Path:
    path = Path(out)
    if path.exists() and any(path.iterdir()):
        raise CheckpointError(f"out folder {str(path)!r} already exists and is not empty; "
                              f"choose a new folder or remove it")
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
class _IndexedItems:
    """Adapter giving any map-style dataset latentaudit's ``{"image", "index"}`` items."""

    def __init__(self, data) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict:
        import torch

        item = self.data[index]
        if isinstance(item, dict):
            if "image" not in item:
                raise DataError(f"dataset items that are dicts need an 'image' key, got keys "
                                f"{sorted(map(str, item))}")
            item = item["image"]
        elif isinstance(item, (tuple, list)):
            item = item[0]
        if isinstance(item, np.ndarray):
            item = torch.from_numpy(np.ascontiguousarray(item, dtype=np.float32))
        if not isinstance(item, torch.Tensor):
            raise InputTypeError(f"dataset item {index} is a {type(item).__name__}; expected "
                                 f"a tensor, an array, a tuple starting with one or a dict "
                                 f"with an 'image' key")
        return {"image": item, "index": index}


def _as_items(dataset):
    """Items, ids, slice indices and metadata of whatever the user passed."""
    import torch

    from .data import ImageDataset

    if isinstance(dataset, ImageDataset):
        ids = np.asarray(dataset.ids, dtype=object)
        slice_index = np.asarray(dataset.slice_index, dtype=np.int64)
        return dataset, ids, slice_index, dataset.metadata
    if isinstance(dataset, (np.ndarray, torch.Tensor)):
        if dataset.ndim < 2:
            raise InputShapeError(f"an array of inputs must be (N, ...) with at least 2 "
                                  f"dimensions, got shape {tuple(dataset.shape)}")
        # a memory-mapped array stays on disk: items are read one by one
        items = _IndexedItems(dataset if isinstance(dataset, np.ndarray)
                              else dataset.detach().cpu())
    elif hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__"):
        items = _IndexedItems(dataset)
    else:
        raise InputTypeError(
            f"dataset must be a latentaudit ImageDataset, a map-style torch Dataset, a "
            f"NumPy array or a torch Tensor, got {type(dataset).__name__}")
    n = len(items)
    ids = getattr(dataset, "ids", None)
    ids = (np.asarray([str(i) for i in ids], dtype=object) if ids is not None
           else np.array([str(i) for i in range(n)], dtype=object))
    metadata = getattr(dataset, "metadata", None)
    if not isinstance(metadata, pd.DataFrame) or len(metadata) != n:
        metadata = pd.DataFrame({"subject": ids})
    slice_index = getattr(dataset, "slice_index", None)
    slice_index = (np.asarray(slice_index, dtype=np.int64) if slice_index is not None
                   else pd.Series(ids).groupby(ids).cumcount().to_numpy())
    return items, ids, slice_index, metadata


def _shard_positions(ids: np.ndarray, shard) -> np.ndarray:
    try:
        index, count = (int(v) for v in shard)
    except (TypeError, ValueError):
        raise ConfigError(f"shard must be a pair (k, K) of integers, got {shard!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"shard must be (k, K) with 0 <= k < K, got {shard!r}")
    codes, subjects = pd.factorize(pd.Series(ids, dtype=object), sort=False)
    blocks = np.array_split(np.arange(len(subjects)), count)
    mine = np.zeros(len(subjects), dtype=bool)
    mine[blocks[index]] = True
    return np.flatnonzero(mine[codes])


def _check_encoder(encoder) -> None:
    missing = [name for name in ("encode", "latent_dim") if not hasattr(encoder, name)]
    if missing or not callable(getattr(encoder, "encode", None)):
        raise InputTypeError(
            f"encoder must meet the Encoder protocol (latent_dim, spatial_dims, "
            f"encode(x) -> Tensor[N, latent_dim]); {type(encoder).__name__} lacks "
            f"{', '.join(missing) or 'a callable encode'}; wrap a plain module in "
            f"latentaudit.TorchEncoder")


def _check_output(z, n: int, latent_dim: int):
    import torch

    if not isinstance(z, torch.Tensor):
        raise InputTypeError(f"encoder.encode must return a torch.Tensor of shape (N, "
                             f"latent_dim), got {type(z).__name__}")
    if z.shape != (n, latent_dim):
        raise InputShapeError(
            f"encoder.encode returned shape {tuple(z.shape)} for a batch of {n}; expected "
            f"({n}, {latent_dim}) (latent_dim={latent_dim})")
    return z


def _encoder_dtype(encoder):
    import torch

    if isinstance(encoder, torch.nn.Module):
        for param in encoder.parameters():
            if param.is_floating_point():
                return param.dtype
    return torch.float32


def _has_conv(module) -> bool:
    import torch

    kinds = (torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)
    return any(isinstance(m, kinds) for m in module.modules())


def _check_autocast(device, dtype: str) -> None:
    import torch

    if device.type == "cuda" and dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"dtype='bfloat16' is not supported by {device}; use dtype='float16' "
                          f"or None")
    if device.type == "cpu" and dtype == "float16":
        raise ConfigError("dtype='float16' needs a GPU; on the CPU use dtype=None (float32)")
    if device.type == "cpu":
        warnings.warn("dtype='bfloat16' on the CPU is slower than float32 for conv encoders "
                      "(0.8x on a CPU with native bfloat16 instructions, far slower on CPUs "
                      "without them); bfloat16 belongs on GPUs")


@contextlib.contextmanager
def _placed(module, device, channels_last: bool):
    """Eval mode, device and memory format for the call; the module's own state after."""
    import torch

    was_training = module.training
    home = resolve_device(None, module)
    conv_weights = [p for p in module.parameters() if p.ndim in (4, 5)]
    was_contiguous = all(p.is_contiguous() for p in conv_weights)
    module.eval()
    if device != home:
        module.to(device)
    if channels_last:
        spatial = {p.ndim for p in conv_weights}
        module.to(memory_format=torch.channels_last_3d if spatial == {5}
                  else torch.channels_last)
    try:
        yield module
    finally:
        if channels_last and was_contiguous:
            module.to(memory_format=torch.contiguous_format)
        if device != home:
            module.to(home)
        module.train(was_training)


@contextlib.contextmanager
def _progress(total: int, verbose: bool):
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="embed", unit="img", disable=not verbose, leave=False)
    try:
        yield bar
    finally:
        bar.close()


def _config_hash(encoder) -> str | None:
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


def _library_version() -> str:
    from . import __version__

    return __version__


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_non_negative_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


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
