"""Batched, device-aware extraction of embeddings.

:func:`embed` runs any object that meets the encoder protocol (``latent_dim``,
``spatial_dims``, ``encode(x) -> Tensor[N, latent_dim]``) over a dataset and returns an
:class:`~latentaudit.Embeddings` object (defined in :mod:`latentaudit.embeddings`): the
``(N, d)`` float32 array, the ids, the aligned metadata table and a provenance record.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import time
import warnings

import numpy as np
import pandas as pd

from ._aggregation import _AggregationPlan, _IdentityPlan
from ._identity import DEFAULT_ID_COLUMN, middle_rows
from ._shards import combine_processes, finished_shard, shard_batches, shard_folder
from ._storage import discard_partial, finish_streamed
from .data._rows import RowImages
from .embeddings import Embeddings
from .errors import ConfigError, DataError, InputShapeError, InputTypeError
from .utils import check_option, config_hash, resolve_device

__all__ = ["Embeddings", "embed"]

logger = logging.getLogger(__name__)

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

def embed(encoder, dataset, batch_size: int = 64, device=None, num_workers: int = 0,
          aggregate: str | None = None, dtype=None, verbose: bool = False, *,
          combine: str = "concat", channels_last: bool | None = None,
          out: str | os.PathLike | None = None, shard: tuple[int, int] | None = None,
          shard_dir: str | os.PathLike | None = None) -> Embeddings:
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
        ``combine``); the metadata then has one row per subject.
    dtype : {None, "float32", "bfloat16", "float16"}, default None
        ``None`` and ``"float32"`` run in the encoder's own dtype; ``"bfloat16"`` and
        ``"float16"`` run under :func:`torch.autocast`.  bfloat16 belongs on GPUs: on a
        CPU it is slower than float32 (a warning says so).
    verbose : bool, default False
        Show a progress bar.
    combine : {"concat", "mean"}, default "concat"
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
        ``(k, K)``: embed only the k-th of K contiguous blocks of subjects; read the saved
        shards back with :meth:`Embeddings.load_many`.  Shards are cut at batch
        boundaries of the whole run (the same batches, whole subjects), so their
        embeddings equal the whole run's bit for bit.
    shard_dir : str or os.PathLike, optional
        Under ``torchrun``: the folder where each process keeps its shard
        (``shard-k-of-K``); a run started again after a process died reuses the finished
        shards and redoes the others alone.  The shards are removed once merged.

    Under ``torchrun`` (``torch.distributed`` initialised, or launched by it) and without
    ``shard``, every process embeds one shard and the shards are merged in every process:
    the result is that of one process, in the dataset's order (``out`` is written by the
    first process).

    Returns
    -------
    Embeddings
        ``z`` float32 of shape ``(n_items, latent_dim)`` (or one row per subject with
        ``aggregate="subject"``), ids (under the dataset's ``id_column``), metadata,
        slice indices, provenance (encoder class and config hash, library and torch
        versions, device, dtype, seeds, timings) and a handle to the images
        (:meth:`Embeddings.image`; a subject's middle slice once aggregated).

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
    check_option("combine", combine, ["concat", "mean"])
    if isinstance(dtype, torch.dtype):
        dtype = str(dtype).removeprefix("torch.")
    autocast_dtype = _DTYPES[check_option("dtype", dtype, list(_DTYPES))]

    from .training._distributed import barrier, init_distributed, local_device, rank, world_size

    items, ids, slice_index, metadata, id_column = _as_items(dataset)
    if len(items) == 0:
        raise DataError("the dataset has no images: there is nothing to embed")
    module = encoder if isinstance(encoder, torch.nn.Module) else None
    run_device = local_device(resolve_device(device, encoder))
    # Under torchrun each process encodes one shard; the result is the whole run's.
    processes = 1 if shard is not None or not init_distributed(run_device) else world_size()
    if processes > 1:
        work = shard_batches(ids, batch_size, (rank(), processes))
        positions = np.arange(len(items))
    else:
        work = shard_batches(ids, batch_size, shard)
        positions = (np.arange(len(items)) if shard is None else
                     np.sort(np.concatenate(work)) if work else np.zeros(0, np.int64))
    if channels_last is None:
        channels_last = run_device.type == "cpu" and autocast_dtype is None
    channels_last = bool(channels_last) and module is not None and _has_conv(module)
    if autocast_dtype is not None:
        _check_autocast(run_device, autocast_dtype)

    latent_dim = int(encoder.latent_dim)
    if not len(positions):
        # a shard with nothing to embed (fewer batches than shards)
        return _empty_shard(encoder, ids, slice_index, metadata, id_column, aggregate,
                            combine, shard, out)
    rows_ids = ids[positions]
    rows_slices = slice_index[positions]
    if aggregate == "subject":
        plan = _AggregationPlan.build(rows_ids, rows_slices, combine)
    else:
        plan = _IdentityPlan(len(positions))
    writes = out is not None and (processes == 1 or rank() == 0)
    if shard_dir is not None and processes > 1:
        # each process embeds (or finds finished) its shard in a folder of its own
        mine = shard_folder(shard_dir, rank(), processes)
        expected = _shard_ids(ids, slice_index, work, aggregate, combine)
        if finished_shard(mine, expected, {"encoder_config_hash": config_hash(encoder),
                                           "aggregate": plan.describe()}) is None:
            embed(encoder, dataset, batch_size, device, num_workers, aggregate, dtype,
                  verbose, combine=combine, channels_last=channels_last,
                  out=mine, shard=(rank(), processes))
        barrier()
        work = []  # nothing left to encode here: the shards are merged below
    # fail on a bad aggregation before spending time on the encoder
    target = plan.allocate(latent_dim, out if writes else None)
    row_of_item = np.full(len(items), -1, dtype=np.int64)
    row_of_item[positions] = np.arange(len(positions))

    loader = torch.utils.data.DataLoader(
        items, batch_sampler=[batch.tolist() for batch in work], num_workers=num_workers,
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
            progress = stack.enter_context(_progress(sum(map(len, work)), verbose))
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
        if processes > 1:
            if shard_dir is not None:
                _merge_shard_folders(target, plan, ids, batch_size, shard_dir, processes)
            else:
                combine_processes(target)
    except BaseException:
        # an interrupted run leaves no half-written array behind
        if writes:
            discard_partial(target)
        raise
    total = time.perf_counter() - started
    if n_bad:
        warnings.warn(f"{n_bad} item embedding(s) contain NaN or infinite values; check the "
                      f"encoder and the inputs of those rows")

    provenance = {
        "encoder": type(encoder).__name__,
        "encoder_config_hash": config_hash(encoder),
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
        "processes": processes,
    }
    if shard is None:
        provenance.pop("shard")
    out_metadata = metadata.iloc[positions].reset_index(drop=True)
    # a handle to the images (never a copy): the rows' own, or each subject's middle slice
    images = RowImages(items, rows=positions, ids=rows_ids)
    if aggregate == "subject":
        images = images.subset(middle_rows(rows_ids, rows_slices).loc[plan.subjects].to_numpy())
        result = Embeddings(target, ids=plan.subjects,
                            metadata=plan.subject_metadata(out_metadata),
                            provenance=provenance, id_column=id_column, images=images)
    else:
        result = Embeddings(target, ids=rows_ids, metadata=out_metadata,
                            slice_index=rows_slices, provenance=provenance,
                            id_column=id_column, images=images)
    del target  # the result holds the only reference, so the file can be sealed
    if writes:
        finish_streamed(result, out)
    if processes > 1 and shard_dir is not None:
        barrier()  # every process has merged: the shards can go
        _remove_shard(shard_folder(shard_dir, rank(), processes))
    logger.info("embedded %d items in %.1f s (%.1f items/s) on %s", len(positions), total,
                len(positions) / max(total, 1e-9), run_device)
    return result



# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def _as_items(dataset):
    """Items, ids, slice indices, metadata and id column of whatever the user passed."""
    import torch

    from .data import ImageDataset

    if isinstance(dataset, ImageDataset):
        ids = np.asarray(dataset.ids, dtype=object)
        slice_index = np.asarray(dataset.slice_index, dtype=np.int64)
        return dataset, ids, slice_index, dataset.metadata, dataset.id_column
    if isinstance(dataset, (np.ndarray, torch.Tensor)) or (
            hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
        items = RowImages(dataset, name="dataset")
    else:
        raise InputTypeError(
            f"dataset must be a latentaudit ImageDataset, a map-style torch Dataset, a "
            f"NumPy array or a torch Tensor, got {type(dataset).__name__}")
    n = len(items)
    id_column = getattr(dataset, "id_column", DEFAULT_ID_COLUMN)
    ids = getattr(dataset, "ids", None)
    ids = (np.asarray([str(i) for i in ids], dtype=object) if ids is not None
           else np.array([str(i) for i in range(n)], dtype=object))
    metadata = getattr(dataset, "metadata", None)
    if not isinstance(metadata, pd.DataFrame) or len(metadata) != n:
        metadata = pd.DataFrame({id_column: ids})
    slice_index = getattr(dataset, "slice_index", None)
    slice_index = (np.asarray(slice_index, dtype=np.int64) if slice_index is not None
                   else pd.Series(ids).groupby(ids).cumcount().to_numpy())
    return items, ids, slice_index, metadata, id_column


def _shard_ids(ids, slice_index, work, aggregate, method) -> np.ndarray:
    """The ids of the rows a shard's embeddings hold (subjects once aggregated)."""
    positions = np.sort(np.concatenate(work)) if work else np.zeros(0, np.int64)
    if aggregate == "subject" and len(positions):
        return _AggregationPlan.build(ids[positions], slice_index[positions], method).subjects
    return ids[positions]


def _merge_shard_folders(target, plan, ids, batch_size, shard_dir, processes) -> None:
    """Fill ``target`` (the whole run's rows) from the shards of every process."""
    subjects = pd.Index(getattr(plan, "subjects", []))
    for k in range(processes):
        part = Embeddings.load(shard_folder(shard_dir, k, processes), mmap=True)
        if isinstance(plan, _AggregationPlan):
            rows = subjects.get_indexer(pd.Index(part.ids))
        else:  # the whole run's rows are the dataset's items
            work = shard_batches(ids, batch_size, (k, processes))
            rows = np.sort(np.concatenate(work)) if work else np.zeros(0, np.int64)
        target[rows] = np.asarray(part.z)
        del part


def _empty_shard(encoder, ids, slice_index, metadata, id_column, aggregate, method, shard,
                 out) -> Embeddings:
    """The embeddings of a shard without items: no rows, the columns of the whole run."""
    latent_dim = int(encoder.latent_dim)
    if aggregate == "subject":
        whole = _AggregationPlan.build(ids, slice_index, method)
        width = latent_dim * whole.n_slices if method == "concat" else latent_dim
        table = whole.subject_metadata(metadata).iloc[:0]
        aggregation = {**whole.describe(), "n_slices": whole.n_slices}
    else:
        width, table, aggregation = latent_dim, metadata.iloc[:0], None
    result = Embeddings(np.zeros((0, width), dtype=np.float32),
                        ids=np.zeros(0, dtype=object), metadata=table.reset_index(drop=True),
                        id_column=id_column, provenance={
                            "encoder": type(encoder).__name__,
                            "encoder_config_hash": config_hash(encoder),
                            "latent_dim": latent_dim, "n_items": 0,
                            "aggregate": aggregation, "shard": list(shard)})
    if out is not None:
        result.save(out)
    return result


def _remove_shard(folder) -> None:
    """Remove what the shard's run wrote (and the folders if then empty)."""
    for name in ("embeddings.json", "z.npy", "slice_index.npy", "ids.json",
                 "metadata.json", "provenance.json"):
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
    for path in (folder, folder.parent):
        with contextlib.suppress(OSError):
            path.rmdir()


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
