"""What the loop feeds the model: the data order, the loader, batches on the device."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, Sampler, Subset

from ..errors import ConfigError, InputTypeError

__all__ = ["GlobalBatchSampler"]


class GlobalBatchSampler(Sampler):
    """Endless batches of dataset indices in an order fixed by a seed, sliced for one
    process of a distributed run.

    Each epoch is a fresh permutation drawn from ``(seed, epoch)``, cut into global
    batches of ``batch_size`` (an incomplete last batch is dropped, unless the dataset is
    smaller than one batch); process ``rank`` of ``world_size`` takes the rows
    ``[rank * b, (rank + 1) * b)`` of every global batch, ``b = batch_size /
    world_size``.  The global batches do not depend on the number of processes, and the
    batch at any position is rebuilt without replaying the ones before it: a run resumed
    at micro-batch ``start`` on another number of processes sees the same data.
    (:class:`torch.utils.data.DistributedSampler` deals indices to ranks with a stride
    over the whole epoch, so its batches change with the number of processes.)

    Parameters
    ----------
    n_items : int
        Size of the dataset.
    batch_size : int
        Global batch size, divisible by ``world_size``.
    seed : int
        Seed of the order.
    start : int, default 0
        Position (in global batches) to start from.
    rank, world_size : int, default 0 and 1
        This process's slice.
    stop : int, optional
        Position to stop before (default: never stop).

    Examples
    --------
    >>> from latentaudit.training import GlobalBatchSampler
    >>> one = iter(GlobalBatchSampler(10, 4, seed=0))
    >>> first = next(one)
    >>> halves = [next(iter(GlobalBatchSampler(10, 4, seed=0, rank=r, world_size=2)))
    ...           for r in (0, 1)]
    >>> halves[0] + halves[1] == first
    True
    """

    def __init__(self, n_items: int, batch_size: int, seed: int, start: int = 0,
                 rank: int = 0, world_size: int = 1, stop: int | None = None):
        if batch_size % world_size:
            raise ConfigError(
                f"batch_size={batch_size} is the global batch and must be divisible by the "
                f"number of processes ({world_size}); use e.g. batch_size="
                f"{max(world_size, batch_size - batch_size % world_size)}")
        self.n_items = n_items
        self.batch_size = batch_size
        self.seed = seed
        self.start = start
        self.rank = rank
        self.world_size = world_size
        self.stop = stop
        self.batches_per_epoch = max(1, n_items // batch_size)

    def permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, 0, epoch]).permutation(self.n_items)

    def global_batch(self, position: int) -> np.ndarray:
        epoch, i = divmod(position, self.batches_per_epoch)
        return self.permutation(epoch)[i * self.batch_size:(i + 1) * self.batch_size]

    def __iter__(self) -> Iterator[list[int]]:
        position = self.start
        epoch, perm = -1, None
        while self.stop is None or position < self.stop:
            current, i = divmod(position, self.batches_per_epoch)
            if current != epoch:
                epoch, perm = current, self.permutation(current)
            batch = perm[i * self.batch_size:(i + 1) * self.batch_size]
            # A dataset smaller than one batch gives a short batch; it is split as evenly.
            yield np.array_split(batch, self.world_size)[self.rank].tolist()
            position += 1


def epochs_of_batches(dataset, sampler_for, batches_per_epoch: int, start: int,
                      make_loader) -> Iterator:
    """Batches from position ``start`` on, one loader per epoch.

    Before each epoch the dataset's ``set_epoch(epoch)`` is called if it has one (the hook
    of latentaudit's random crops, as of :class:`torch.utils.data.DistributedSampler`), and
    the loader, with its worker processes, is made anew, so the workers see it too; the
    augmentation of any batch is then a function of the seed, the epoch and the item,
    and a resumed run draws what an uninterrupted one draws.
    """
    base = dataset
    while isinstance(base, Subset):
        base = base.dataset
    set_epoch = getattr(base, "set_epoch", None)
    position = start
    while True:
        epoch = position // batches_per_epoch
        if callable(set_epoch):
            set_epoch(epoch)
        stop = (epoch + 1) * batches_per_epoch
        yield from make_loader(sampler_for(position, stop), position)
        position = stop


def check_dataset(dataset, what: str) -> None:
    if isinstance(dataset, DataLoader):
        raise InputTypeError(
            f"{what} must be a dataset, got a DataLoader; pass its dataset (loader.dataset): "
            f"the training loop builds its own loader so that it can resume in the same "
            f"data order")
    if isinstance(dataset, IterableDataset) or not (
            hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
        raise InputTypeError(
            f"{what} must be a map-style dataset (with len() and integer indexing), got "
            f"{type(dataset).__name__}")
    if len(dataset) == 0:
        raise ConfigError(f"{what} is empty")


def split(dataset, validation, seed: int):
    """(train set, validation set or None, validation indices or None)."""
    if validation is None:
        return dataset, None, None
    if isinstance(validation, float):
        n = len(dataset)
        n_val = int(round(n * validation))
        if n_val < 1 or n_val >= n:
            raise ConfigError(
                f"validation={validation} of {n} items leaves {n_val} for validation and "
                f"{n - n_val} for training; both need at least one")
        perm = np.random.default_rng([seed, 1]).permutation(n)
        val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        return (Subset(dataset, train_idx.tolist()), Subset(dataset, val_idx.tolist()),
                torch.from_numpy(val_idx.astype(np.int64)))
    check_dataset(validation, "validation")
    return dataset, validation, None


def worker_seed_generator(seed: int, position: int) -> torch.Generator:
    """The loader's generator: it draws the base seed of the worker processes, so it is
    tied to the data position at which the loader starts (a resumed run restarts its
    workers from where the interrupted run was)."""
    return torch.Generator().manual_seed(int(np.random.default_rng(
        [seed, 2, position]).integers(2**62)))


def to_device(batch, device: torch.device, channels_last: bool):
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.is_floating_point():
            if batch.ndim == 4:
                batch = batch.contiguous(memory_format=torch.channels_last)
            elif batch.ndim == 5:
                batch = batch.contiguous(memory_format=torch.channels_last_3d)
        return batch
    if isinstance(batch, Mapping):
        return {k: to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device, channels_last) for v in batch)
    return batch


def batch_size_of(batch) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    if isinstance(batch, Mapping):
        for key in ("image", *batch.keys()):
            if key in batch:
                n = batch_size_of(batch[key])
                if n:
                    return n
    if isinstance(batch, (list, tuple)):
        for v in batch:
            n = batch_size_of(v)
            if n:
                return n
    return 0
