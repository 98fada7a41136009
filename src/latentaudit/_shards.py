"""Splitting an embedding run into shards whose results are those of the whole run, bit
for bit, and putting the shards of a ``torchrun`` launch back together."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import CheckpointError, ConfigError

__all__ = ["combine_processes", "parse_shard", "shard_batches", "shard_folder"]

logger = logging.getLogger(__name__)


def parse_shard(shard) -> tuple[int, int]:
    """``(k, K)`` checked: integers with ``0 <= k < K``."""
    try:
        index, count = (int(v) for v in shard)
    except (TypeError, ValueError):
        raise ConfigError(f"shard must be a pair (k, K) of integers, got {shard!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"shard must be (k, K) with 0 <= k < K, got {shard!r}")
    return index, count


def shard_batches(ids: np.ndarray, batch_size: int, shard=None) -> list[np.ndarray]:
    """The batches (dataset positions, in encoding order) a run or one shard encodes.

    Items are taken subject by subject (subjects in the order of their first item, a
    subject's items in dataset order) and whole subjects are packed into batches of at
    most ``batch_size`` items; a subject with more items fills batches of its own.  Shard
    ``k`` of ``K`` takes the ``k``-th of ``K`` contiguous runs of these units.

    A shard therefore encodes exactly the batches the whole run encodes (the same items
    in the same order), so its embeddings are those of the whole run bit for bit (an
    encoder's output for an item may depend on the rest of its batch in the last bits),
    no subject is split between shards, and the shards in order hold the subjects in
    order.

    Parameters
    ----------
    ids : numpy.ndarray
        The subject of every item.
    batch_size : int
        Largest batch.
    shard : (int, int), optional
        ``(k, K)``; None for the whole run.

    Returns
    -------
    list of numpy.ndarray
        The batches, each an int64 array of dataset positions.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit._shards import shard_batches
    >>> ids = np.array(["a", "b", "a", "c", "b", "c"], dtype=object)
    >>> [b.tolist() for b in shard_batches(ids, 4)]
    [[0, 2, 1, 4], [3, 5]]
    >>> [b.tolist() for b in shard_batches(ids, 4, (1, 2))]
    [[3, 5]]
    """
    codes, subjects = pd.factorize(pd.Series(ids, dtype=object), sort=False)
    order = np.argsort(codes, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(subjects)))])
    units: list[list[np.ndarray]] = []
    current: list[np.ndarray] = []
    filled = 0
    for s in range(len(subjects)):
        members = order[bounds[s]:bounds[s + 1]].astype(np.int64)
        if current and filled + len(members) > batch_size:
            units.append([np.concatenate(current)])
            current, filled = [], 0
        if len(members) > batch_size:
            units.append([members[i:i + batch_size] for i in range(0, len(members),
                                                                     batch_size)])
            continue
        current.append(members)
        filled += len(members)
    if current:
        units.append([np.concatenate(current)])
    if shard is not None:
        index, count = parse_shard(shard)
        units = [units[u] for u in np.array_split(np.arange(len(units)), count)[index]]
    return [batch for unit in units for batch in unit]


def combine_processes(target: np.ndarray) -> None:
    """Add up, in place, the arrays the processes of a process group filled: each process
    wrote its own rows and left the others zero, so the sum is every process's rows
    (adding zeros is exact)."""
    import torch
    import torch.distributed as dist

    tensor = torch.from_numpy(target)  # shares the memory
    if dist.get_backend() == "nccl":
        on_gpu = tensor.cuda()
        dist.all_reduce(on_gpu)
        tensor.copy_(on_gpu.cpu())
    else:
        dist.all_reduce(tensor)


def shard_folder(root: str | os.PathLike, index: int, count: int) -> Path:
    """Where process ``index`` of ``count`` keeps its shard, so that a run started again
    after a process was killed redoes that shard alone."""
    return Path(root) / f"shard-{index:05d}-of-{count:05d}"


def finished_shard(folder: Path, expected_ids, provenance: dict):
    """The embeddings of a shard finished by an earlier run of the same job, or None.

    The shard counts as finished when its manifest was written (the last file) and it was
    made by an encoder of the same config hash, with the same aggregation, for the same
    ids.  An unfinished shard's files are removed so it can be redone.
    """
    from .embeddings import Embeddings

    if not folder.is_dir():
        return None
    if not (folder / "embeddings.json").is_file():
        _remove_unfinished(folder)
        return None
    try:
        part = Embeddings.load(folder, mmap=True)
    except CheckpointError:
        _remove_unfinished(folder)
        return None
    def how(description):  # the aggregation (a shard's slice count may differ)
        return {k: v for k, v in (description or {}).items() if k in ("by", "method")}

    same = (part.provenance.get("encoder_config_hash") == provenance["encoder_config_hash"]
            and how(part.provenance.get("aggregate")) == how(provenance["aggregate"])
            and [str(i) for i in part.ids] == [str(i) for i in expected_ids])
    if not same:
        raise CheckpointError(
            f"{str(folder)!r} holds a shard of another embedding run (other encoder, "
            f"aggregation or items); remove it or choose another shard folder")
    logger.info("reusing the finished shard in %s", folder)
    return part


#: What an embedding run writes into its folder (see Embeddings.save).
_SHARD_FILES = ("z.npy", "z.npy.partial", "slice_index.npy", "ids.json", "metadata.json",
                "provenance.json", "embeddings.json")


def _remove_unfinished(folder: Path) -> None:
    foreign = [p.name for p in folder.iterdir() if p.name not in _SHARD_FILES
               and not p.name.endswith(".partial")]
    if foreign:
        raise CheckpointError(f"the shard folder {str(folder)!r} holds files that an "
                              f"embedding run did not write ({', '.join(sorted(foreign))}); "
                              f"remove them or choose another shard folder")
    for path in folder.iterdir():
        path.unlink()
    logger.info("redoing the unfinished shard in %s", folder)
