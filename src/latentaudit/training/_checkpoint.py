"""Training checkpoints: atomic files of plain data and tensors, and the random states they
carry."""

from __future__ import annotations

import contextlib
import logging
import os
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError
from . import _distributed

__all__ = ["CHECKPOINT_NAME", "load_checkpoint"]

logger = logging.getLogger(__name__)

#: File name of the training checkpoint inside ``checkpoint_dir``.
CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = "latentaudit-training-checkpoint"
#: 2: several optimizers, schedulers, the EMA's module, the run's explicit generators.
VERSION = 2
# Options that fix the order of the data and the random streams: a resumed run must use the
# values it was started with, or it would not continue the same run.
_RESUME_FIXED = ("random_state", "batch_size", "grad_accum_steps")
_RESUME_WARN = ("lr", "lr_schedule", "warmup_steps", "weight_decay", "ema_decay",
                "grad_clip", "precision")


def derived_seed(random_state: int, *path: int) -> int:
    """A seed derived from the run's one seed, one per purpose (``path``)."""
    return int(np.random.default_rng([random_state, *path]).integers(2**62))


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a training checkpoint written by :func:`~latentaudit.training.train`.

    Only tensors and plain data are read (``torch.load(..., weights_only=True)``); no code
    is unpickled.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file, or the ``checkpoint_dir`` holding :data:`CHECKPOINT_NAME`.

    Returns
    -------
    dict
        With keys ``step``, ``model`` (a state dict), ``optimizers`` (name -> state),
        ``schedulers``, ``ema`` (a state dict or None) and ``ema_module``, ``scaler``,
        ``history`` (a list of row dicts), ``config`` (the plain options), ``generators``
        (the run's explicit generators' states) and ``rng`` (the global random states,
        one per process).

    Raises
    ------
    CheckpointError
        If the file is missing, unreadable or not a latentaudit training checkpoint.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from latentaudit.training import load_checkpoint, train
    >>> class Mean(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.m = torch.nn.Parameter(torch.zeros(1))
    ...     def loss(self, batch):
    ...         return ((batch[0] - self.m) ** 2).mean()
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> _ = train(Mean(), TensorDataset(torch.ones(8)), max_steps=3, batch_size=4,
    ...           checkpoint_dir=folder, verbose=False)
    >>> load_checkpoint(folder)["step"]
    3
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"training checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for truncated or foreign files
        raise CheckpointError(
            f"cannot read training checkpoint {str(path)!r}: {type(err).__name__}: {err}"
        ) from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(path)!r} is not a latentaudit training checkpoint (no format={FORMAT!r} "
            f"entry)")
    if ckpt.get("version", 0) != VERSION:
        newer = ckpt.get("version", 0) > VERSION
        raise CheckpointError(
            f"training checkpoint {str(path)!r} has format version {ckpt.get('version')}, "
            f"{'newer than' if newer else 'older than'} the one this latentaudit reads "
            f"({VERSION}); {'upgrade latentaudit' if newer else 'start a new run'}")
    return ckpt


def write_atomic(state: dict, path: Path) -> None:
    """``torch.save`` to a temporary file, flushed to disk, then renamed over ``path``: an
    interruption leaves the old checkpoint or the new one, never a broken file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    with contextlib.suppress(OSError):  # the rename itself, on file systems that allow it
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- global random states -----------------------------------------------------------------

def capture_rng(devices: Sequence[torch.device]) -> dict:
    """The global random states as tensors and plain data (loadable with weights_only).

    The loop's own draws come from explicit generators; these are what PyTorch's modules
    (dropout) and user datasets or losses may still draw from.
    """
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002 - saving the legacy global state
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                  int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
        "cuda": {},
    }
    for device in devices:
        if device.type == "cuda":
            index = device.index if device.index is not None else torch.cuda.current_device()
            state["cuda"][int(index)] = torch.cuda.get_rng_state(index)
    return state


def restore_rng(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, key, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(  # noqa: NPY002 - restoring the legacy global state
        (name, key.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    for index, cuda_state in state.get("cuda", {}).items():
        torch.cuda.set_rng_state(cuda_state, int(index))


def seed_globals(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeding the legacy global state
    torch.manual_seed(seed)


@contextlib.contextmanager
def isolated_rng(devices: Sequence[torch.device], seed: int | None = None):
    """Run a block with its own global random state (seeded if ``seed`` is given) and put
    the previous state back afterwards, so training neither consumes nor depends on the
    caller's randomness."""
    saved = capture_rng(devices)
    try:
        if seed is not None:
            seed_globals(seed)
        yield
    finally:
        restore_rng(saved)


# -- a run's checkpoint ------------------------------------------------------------------

def save_run(run, step: int) -> None:
    """Write the checkpoint of a run (``run``: the loop's state) after ``step``; every
    process takes part (their random states are gathered), the first one writes."""
    if run.checkpoint_path is None:
        return
    # Every process's global random state (dropout masks differ per process).
    rng_states = _distributed.gather_objects(capture_rng([run.device]))
    if run.main:
        state = {
            "format": FORMAT,
            "version": VERSION,
            "model_class": f"{type(run.model).__module__}.{type(run.model).__qualname__}",
            "step": step,
            "micro_batches": run.micro_batches,
            "model": run.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in run.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in run.schedulers.items()},
            "ema": None if run.ema is None else run.ema.state_dict(),
            "ema_module": None if run.ema is None else run.ema.module_name,
            "scaler": None if run.scaler is None else run.scaler.state_dict(),
            "generators": {"loss": run.generator.get_state()},
            "rng": rng_states,
            "config": run.config.plain(),
            "seed": run.seed,
            "n_train": len(run.train_set),
            "n_val": 0 if run.val_set is None else len(run.val_set),
            "world_size": run.world,
            "history": list(run.history),
            "window": dict(run.window),
            "val_indices": run.val_indices,
        }
        write_atomic(state, run.checkpoint_path)
        logger.debug("wrote checkpoint of step %d to %s", step, run.checkpoint_path)
    _distributed.barrier()
    run.last_good_step = step


def restore_run(run, ckpt: dict) -> int:
    """Put the state of a checkpoint back into a run (``run``: the loop's state); return
    the step it was saved at."""
    c = run.config
    saved = ckpt["config"]
    where = str(run.checkpoint_path.parent)
    for key in _RESUME_FIXED:
        now = run.seed if key == "random_state" else getattr(c, key)
        before = ckpt["seed"] if key == "random_state" else saved.get(key)
        if before != now:
            raise ConfigError(
                f"cannot resume the run in {where!r} exactly: it was started with "
                f"{key}={before!r}, now {key}={now!r}; use the same value, or a new "
                f"checkpoint_dir to start afresh")
    for key, now in (("n_train", len(run.train_set)),
                     ("n_val", 0 if run.val_set is None else len(run.val_set))):
        if ckpt[key] != now:
            raise ConfigError(f"cannot resume the run in {where!r} exactly: it was "
                              f"started with {ckpt[key]} {key[2:]} items, now {now}")
    if ckpt["step"] > c.max_steps:
        raise ConfigError(
            f"the checkpoint in {where!r} is at step {ckpt['step']}, past max_steps="
            f"{c.max_steps}; a resume cannot stop before the checkpoint's step (ask "
            f"for max_steps >= {ckpt['step']}, or start afresh in a new folder)")
    if ckpt.get("val_indices") is not None and run.val_indices is not None and not (
            torch.equal(ckpt["val_indices"], run.val_indices)):
        raise ConfigError("cannot resume exactly: the validation split differs from the "
                          "checkpoint's")
    changed = [k for k in _RESUME_WARN if saved.get(k) != getattr(c, k)
               and not (isinstance(getattr(c, k), tuple) and list(getattr(c, k)) ==
                        saved.get(k))]
    if changed:
        logger.warning("resuming with options changed since the checkpoint: %s",
                       ", ".join(f"{k}: {saved.get(k)!r} -> {getattr(c, k)!r}"
                                 for k in changed))
    if set(ckpt["optimizers"]) != set(run.optimizers):
        raise CheckpointError(f"the checkpoint {str(run.checkpoint_path)!r} holds the "
                              f"optimizers {sorted(ckpt['optimizers'])}, this "
                              f"{run.model_name} has {sorted(run.optimizers)}")
    try:
        run.model.load_state_dict(ckpt["model"])
        for name, optimizer in run.optimizers.items():
            optimizer.load_state_dict(ckpt["optimizers"][name])
        for name, scheduler in run.schedulers.items():
            scheduler.load_state_dict(ckpt["schedulers"][name])
    except (RuntimeError, ValueError, KeyError) as err:
        raise CheckpointError(
            f"the checkpoint {str(run.checkpoint_path)!r} does not fit this "
            f"{run.model_name}: {err}") from err
    if run.ema is not None and ckpt.get("ema") is not None:
        if ckpt.get("ema_module") != run.ema.module_name:
            raise CheckpointError(f"the checkpoint keeps the EMA of "
                                  f"{ckpt.get('ema_module')!r}, this run of "
                                  f"{run.ema.module_name!r}")
        run.ema.load_state_dict(ckpt["ema"])
    if run.scaler is not None and ckpt.get("scaler") is not None:
        run.scaler.load_state_dict(ckpt["scaler"])
    run.generator.set_state(ckpt["generators"]["loss"])
    rng = ckpt["rng"]
    if run.rank < len(rng):
        restore_rng(rng[run.rank])
    else:  # resumed on more processes than saved: a fresh, reproducible stream
        seed_globals(derived_seed(run.seed, 4, run.rank, int(ckpt["step"])))
    if len(rng) != run.world:
        logger.info("resuming a run of %d process(es) on %d: data order, step count and "
                    "the run's generator continue exactly; dropout masks (PyTorch's "
                    "global generator) differ", len(rng), run.world)
    run.history = list(ckpt["history"])
    run.window = dict(ckpt["window"])
    run.micro_batches = int(ckpt["micro_batches"])
    run.last_good_step = int(ckpt["step"])
    return int(ckpt["step"])
