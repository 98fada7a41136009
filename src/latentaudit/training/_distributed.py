"""Data-parallel training on PyTorch's own engine (``torch.distributed``, launched with
``torchrun``), and random draws that do not depend on the number of processes.

A run of ``W`` processes splits every global batch into ``W`` equal, consecutive slices,
one per rank (rank ``r`` takes rows ``[r n, (r + 1) n)``).  The random numbers a loss draws
per sample come from :func:`batch_randn` and friends: every process draws the numbers of
the whole global batch from the run's generator, whose state is the same in every process,
and keeps its own rows.  A run on ``W`` processes therefore draws exactly what the
one-process run draws, and the generators stay in step across processes.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os

import torch

from ..errors import ConfigError

__all__ = ["batch_rand", "batch_randint", "batch_randn", "init_distributed",
           "is_main_process", "rank", "world_size"]

logger = logging.getLogger(__name__)


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() else None


def world_size() -> int:
    """Number of processes of the current ``torch.distributed`` process group (1 without
    one).

    Examples
    --------
    >>> from latentaudit.training import world_size
    >>> world_size()
    1
    """
    dist = _dist()
    return dist.get_world_size() if dist is not None and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank in the current process group (0 without one).

    Examples
    --------
    >>> from latentaudit.training import rank
    >>> rank()
    0
    """
    dist = _dist()
    return dist.get_rank() if dist is not None and dist.is_initialized() else 0


def is_main_process() -> bool:
    """True in the process that writes files and logs (rank 0, or the only one).

    Examples
    --------
    >>> from latentaudit.training import is_main_process
    >>> is_main_process()
    True
    """
    return rank() == 0


def launched_by_torchrun() -> bool:
    """True when the environment of ``torchrun`` (``torch.distributed.run``) says this
    process is one of several."""
    return "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: torch.device | None = None) -> bool:
    """Join the process group ``torchrun`` set up, if this process was launched by it.

    Called by :func:`~latentaudit.training.train` and :func:`~latentaudit.embed`; a
    process group that already exists is used as it is.  The backend is NCCL when the
    process trains on a CUDA device, gloo otherwise.

    Parameters
    ----------
    device : torch.device, optional
        Where this process computes.

    Returns
    -------
    bool
        Whether a process group of more than one process is in use.

    Examples
    --------
    >>> from latentaudit.training import init_distributed
    >>> init_distributed()  # not launched by torchrun: nothing to join
    False
    """
    dist = _dist()
    if dist is None:
        if launched_by_torchrun():
            raise ConfigError("this process was launched by torchrun but this PyTorch has "
                              "no torch.distributed support")
        return False
    if not dist.is_initialized():
        if not launched_by_torchrun():
            return False
        cuda = device is not None and device.type == "cuda"
        backend = "nccl" if cuda else "gloo"
        if cuda:
            torch.cuda.set_device(device)
        # One timeout for every collective: long enough for a slow checkpoint on rank 0.
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
        logger.info("joined a %s process group: rank %d of %d", backend, dist.get_rank(),
                    dist.get_world_size())
    return dist.get_world_size() > 1


def local_device(device: torch.device) -> torch.device:
    """Under ``torchrun`` on GPUs, ``cuda`` without an index means this process's GPU."""
    if device.type == "cuda" and device.index is None and launched_by_torchrun():
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def barrier() -> None:
    if world_size() > 1:
        _dist().barrier()


def all_reduce_mean_(tensors: list[torch.Tensor]) -> None:
    """Average tensors over the processes, in place, with one collective call."""
    if world_size() == 1 or not tensors:
        return
    dist = _dist()
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset:offset + n].view_as(t))
        offset += n


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    if world_size() == 1:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64,
                          device=device if device.type == "cuda" else "cpu")
    _dist().all_reduce(tensor)
    return tensor.tolist()


def broadcast_flag(flag: bool, device: torch.device) -> bool:
    """Rank 0's value of ``flag``, in every process (so all stop at the same step)."""
    if world_size() == 1:
        return flag
    tensor = torch.tensor([int(flag)], device=device if device.type == "cuda" else "cpu")
    _dist().broadcast(tensor, src=0)
    return bool(tensor.item())


def gather_objects(obj) -> list:
    """Every process's ``obj``, in rank order (in every process)."""
    if world_size() == 1:
        return [obj]
    out = [None] * world_size()
    _dist().all_gather_object(out, obj)
    return out


@contextlib.contextmanager
def main_process_first():
    """Let rank 0 run a block (e.g. create a folder) before the other processes."""
    if not is_main_process():
        barrier()
    try:
        yield
    finally:
        if is_main_process():
            barrier()


# -- per-sample random draws ------------------------------------------------------------

def _sharded(draw, shape, batch_dim: int):
    shape = tuple(int(s) for s in shape)
    if not shape:
        raise ConfigError("batch draws need a shape with a batch axis")
    w = world_size()
    if w == 1:
        return draw(shape)
    axis = batch_dim % len(shape)
    n = shape[axis]
    full = list(shape)
    full[axis] = n * w
    return draw(tuple(full)).narrow(axis, rank() * n, n)


def batch_randn(shape, *, generator: torch.Generator, device=None, dtype=None,
                batch_dim: int = 0) -> torch.Tensor:
    """Standard normal numbers for this process's samples of a global batch.

    Without a process group this is ``torch.randn(shape, generator=generator, ...)``.
    Under ``torch.distributed`` with ``W`` processes, the numbers of all ``W * n``
    samples are drawn and this process's ``n`` (its slice of the global batch, in rank
    order) are returned, so the result does not depend on the number of processes and
    ``generator`` advances alike in every process.

    Parameters
    ----------
    shape : tuple of int
        This process's shape; ``shape[batch_dim]`` is its number of samples.
    generator : torch.Generator
        The source (e.g. the one :func:`~latentaudit.training.train` passes to ``loss``).
    device, dtype : optional
        Of the result (default: the generator's device, float32).
    batch_dim : int, default 0
        The sample axis.

    Returns
    -------
    torch.Tensor

    Examples
    --------
    >>> import torch
    >>> from latentaudit.training import batch_randn
    >>> g = torch.Generator().manual_seed(0)
    >>> batch_randn((2, 3), generator=g).shape
    torch.Size([2, 3])
    """
    device = generator.device if device is None else device

    def draw(full):
        return torch.randn(full, generator=generator, device=generator.device,
                           dtype=dtype).to(device)

    return _sharded(draw, shape, batch_dim)


def batch_rand(shape, *, generator: torch.Generator, device=None, dtype=None,
               batch_dim: int = 0) -> torch.Tensor:
    """Uniform numbers in [0, 1) for this process's samples; see :func:`batch_randn`.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.training import batch_rand
    >>> float(batch_rand((4,), generator=torch.Generator().manual_seed(0)).max()) < 1
    True
    """
    device = generator.device if device is None else device

    def draw(full):
        return torch.rand(full, generator=generator, device=generator.device,
                          dtype=dtype).to(device)

    return _sharded(draw, shape, batch_dim)


def batch_randint(low: int, high: int, shape, *, generator: torch.Generator, device=None,
                  batch_dim: int = 0) -> torch.Tensor:
    """Integers in ``[low, high)`` for this process's samples; see :func:`batch_randn`.

    Examples
    --------
    >>> import torch
    >>> from latentaudit.training import batch_randint
    >>> batch_randint(0, 10, (5,), generator=torch.Generator().manual_seed(0)).shape
    torch.Size([5])
    """
    device = generator.device if device is None else device

    def draw(full):
        return torch.randint(low, high, full, generator=generator,
                             device=generator.device).to(device)

    return _sharded(draw, shape, batch_dim)
