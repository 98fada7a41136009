"""The one training loop every model of latentaudit uses.

:func:`train` fits any :class:`torch.nn.Module` that has a ``loss(batch)`` method returning a
scalar tensor, or a tuple ``(tensor, dict of scalars to log)``.  The encoders' ``fit`` methods
are thin calls into it, and so are the Explainer's classifier and the Diffusion Autoencoder,
so optimisation, EMA, mixed precision, checkpoints and resuming are written once.

Models that need extra randomness in their loss (a VAE's reparameterisation noise, a
diffusion model's timesteps) draw it from PyTorch's global generator inside ``loss``; the
loop seeds that generator from ``random_state`` and saves and restores it with every
checkpoint, so a resumed run draws the same numbers as an uninterrupted one.  The caller's
own global random state is put back when training ends.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, Sampler, Subset

from .errors import CheckpointError, ConfigError, InputTypeError, TrainingError
from .utils import check_option, resolve_device

__all__ = ["CHECKPOINT_NAME", "load_checkpoint", "train"]

logger = logging.getLogger(__name__)

#: File name of the training checkpoint inside ``checkpoint_dir``.
CHECKPOINT_NAME = "checkpoint.pt"
_CHECKPOINT_FORMAT = "latentaudit-training-checkpoint"
_CHECKPOINT_VERSION = 1

_PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_SCHEDULES = ("constant", "cosine")
# Options that fix the order of the data and the random streams: a resumed run must use the
# values it was started with, or it would not continue the same run.
_RESUME_FIXED = ("random_state", "batch_size", "grad_accum_steps", "n_train", "n_val")


def train(model: nn.Module, dataset, *, max_steps: int, batch_size: int = 32,
          lr: float = 2e-4, weight_decay: float = 0.0,
          betas: tuple[float, float] = (0.9, 0.999), lr_schedule: str = "constant",
          warmup_steps: int = 0, min_lr_ratio: float = 0.0, grad_clip: float | None = 1.0,
          grad_accum_steps: int = 1, ema_decay: float | None = None,
          use_ema_weights: bool = True, precision: str = "auto", device=None,
          channels_last: bool | str = "auto", compile: bool = False,
          validation=None, val_every: int | None = None,
          checkpoint_dir: str | os.PathLike | None = None,
          checkpoint_every: int | None = None, resume: bool = False,
          time_limit: float | None = None, random_state: int | None = 0,
          num_workers: int = 0, log_every: int = 10,
          callbacks: Sequence[Callable[[int, dict], Any]] = (),
          verbose: bool = True) -> pd.DataFrame:
    """Train ``model`` by minimising ``model.loss(batch)`` over ``dataset``.

    Parameters
    ----------
    model : torch.nn.Module
        A module with a ``loss(batch)`` method returning a scalar tensor or
        ``(scalar tensor, dict)``; the dict's values (floats or scalar tensors) are logged.
        If it has ``set_training_step(step)``, the loop calls it before every optimiser step
        (for schedules inside the loss, e.g. a penalty's warm-up).
    dataset : torch.utils.data.Dataset
        A map-style dataset (``len`` and integer indexing); items are collated by PyTorch's
        default collate, so latentaudit's ``{"image", "index"}`` dicts become batched dicts.
        The loop builds its own loader so that it can resume in the same data order.
    max_steps : int
        Number of optimiser steps of the whole run (a resumed run counts the steps already
        done).
    batch_size : int, default 32
        Items per micro-batch; one optimiser step sees ``batch_size * grad_accum_steps``.
    lr : float, default 2e-4
        Peak learning rate of AdamW.
    weight_decay : float, default 0.0
        Decoupled weight decay, applied to weight matrices and kernels only (not to biases
        or normalisation scales).  ``0`` gives Adam.
    betas : (float, float), default (0.9, 0.999)
        AdamW's moment coefficients.
    lr_schedule : {"constant", "cosine"}, default "constant"
        Learning rate after the warm-up: constant, or a cosine decay to
        ``min_lr_ratio * lr`` at ``max_steps``.
    warmup_steps : int, default 0
        Linear warm-up from ``lr / warmup_steps`` to ``lr``.
    min_lr_ratio : float, default 0.0
        Final learning rate of the cosine schedule, as a fraction of ``lr``.
    grad_clip : float or None, default 1.0
        Clip the global gradient norm to this value; ``None`` does not clip.
    grad_accum_steps : int, default 1
        Micro-batches whose gradients are summed before each optimiser step.
    ema_decay : float or None, default None
        Keep an exponential moving average of the weights with this decay (e.g. 0.999).
    use_ema_weights : bool, default True
        With ``ema_decay``, load the averaged weights into ``model`` when training ends, and
        validate with them.
    precision : {"auto", "fp32", "bf16", "fp16"}, default "auto"
        Autocast precision of the forward pass (weights stay float32).  ``"auto"`` picks
        bf16 on GPUs that support it, fp16 (with loss scaling) on other GPUs and float32 on
        the CPU, where bf16 autocast is many times slower than float32.
    device : str or torch.device, optional
        Where to train; the model is moved there and stays there.  Default: the device of
        the model's parameters.
    channels_last : bool or "auto", default "auto"
        Use the channels-last memory format for the model and the image batches.
        ``"auto"`` turns it on for convolutional models on the CPU, where it is faster.
    compile : bool, default False
        Wrap ``model.loss`` in :func:`torch.compile` (the first steps are slow while it
        compiles).
    validation : float, Dataset or None, default None
        A fraction in (0, 1) of ``dataset`` held out at random (with ``random_state``), or a
        separate dataset, whose mean loss is evaluated every ``val_every`` steps and at the
        end (in eval mode, without gradients, with the EMA weights if any).
    val_every : int, optional
        Steps between validations.  Default: a tenth of ``max_steps``.
    checkpoint_dir : str or os.PathLike, optional
        Where to write :data:`CHECKPOINT_NAME`: every ``checkpoint_every`` steps and at the
        end, atomically (a temporary file renamed over the old one), so an interruption
        never leaves a broken checkpoint.
    checkpoint_every : int, optional
        Steps between checkpoints.  Default: ``min(500, max(1, max_steps // 10))``.
    resume : bool, default False
        Continue from the checkpoint in ``checkpoint_dir`` if there is one: model,
        optimiser, EMA, loss scaler, data order, random states and history are restored,
        so the run continues exactly where it stopped.  Without a checkpoint, training
        starts from the beginning.
    time_limit : float, optional
        Stop cleanly (with a checkpoint) after this many seconds; ``resume=True`` continues.
    random_state : int or None, default 0
        Seed of the data order, the validation split and the global random generators the
        loss draws from.  ``None`` draws a seed from NumPy's global generator.
    num_workers : int, default 0
        Loader worker processes.  An exact resume assumes the dataset's items do not depend
        on random state inside workers.
    log_every : int, default 10
        Steps per history row (the row holds the mean loss since the previous row).
    callbacks : sequence of callables, default ()
        Each is called as ``callback(step, logs)`` after every optimiser step (after any
        checkpoint of that step is written); ``logs`` holds the step's ``loss``, ``lr`` and
        the model's logged scalars.  An exception raised by a callback stops training.
    verbose : bool, default True
        Show a progress bar with the running loss.

    Returns
    -------
    pandas.DataFrame
        The training history, one row per log step: ``step``, ``loss``, ``val_loss`` (NaN
        where not evaluated), ``lr``, ``grad_norm``, ``images_per_s`` and the model's logged
        scalars.  ``history.attrs["stop_reason"]`` is ``"max_steps"`` or ``"time_limit"``.

    Raises
    ------
    TrainingError
        If the loss or the gradient norm becomes NaN or infinite; the message names the step
        and the last good checkpoint, which is left untouched.
    ConfigError
        For invalid options, or a checkpoint started with a different ``batch_size``,
        ``grad_accum_steps``, ``random_state`` or dataset size.
    CheckpointError
        If the checkpoint to resume from cannot be read.
    InputTypeError
        If ``model`` has no ``loss`` method or ``dataset`` is not a map-style dataset.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from latentaudit.training import train
    >>> class Line(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.line = torch.nn.Linear(1, 1)
    ...     def loss(self, batch):
    ...         x, y = batch
    ...         return torch.mean((self.line(x) - y) ** 2)
    >>> x = torch.linspace(-1, 1, 64)[:, None]
    >>> history = train(Line(), TensorDataset(x, 3 * x), max_steps=200, batch_size=16,
    ...                 lr=0.05, verbose=False)
    >>> bool(history["loss"].iloc[-1] < 0.01)
    True
    """
    trainer = _Trainer(model, dataset, locals())
    return trainer.run()


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a training checkpoint written by :func:`train`.

    Only tensors and plain data are read (``torch.load(..., weights_only=True)``); no code
    is unpickled.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file, or the ``checkpoint_dir`` holding :data:`CHECKPOINT_NAME`.

    Returns
    -------
    dict
        With keys ``step``, ``model`` (a state dict), ``optimizer``, ``ema`` (a state
        dict or None), ``history`` (a list of row dicts), ``options`` and the saved random
        states.

    Raises
    ------
    CheckpointError
        If the file is missing, unreadable or not a latentaudit training checkpoint.

    Examples
    --------
    >>> from latentaudit.training import load_checkpoint
    >>> ckpt = load_checkpoint("runs/vae")  # doctest: +SKIP
    >>> ckpt["step"]  # doctest: +SKIP
    1000
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
    if not isinstance(ckpt, dict) or ckpt.get("format") != _CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{str(path)!r} is not a latentaudit training checkpoint (no "
            f"format={_CHECKPOINT_FORMAT!r} entry)")
    if ckpt.get("version", 0) > _CHECKPOINT_VERSION:
        raise CheckpointError(
            f"training checkpoint {str(path)!r} has format version {ckpt['version']}, newer "
            f"than this latentaudit reads ({_CHECKPOINT_VERSION}); upgrade latentaudit")
    return ckpt


# -- pieces of the loop --------------------------------------------------------------------

class _EpochBatchSampler(Sampler):
    """Endless batches of indices: each epoch a fresh permutation drawn from
    ``(seed, epoch)``, so the batch at any position can be rebuilt without replaying the
    ones before it, which is what an exact resume needs."""

    def __init__(self, n_items: int, batch_size: int, seed: int, start_batch: int = 0):
        self.n_items = n_items
        self.batch_size = batch_size
        self.seed = seed
        self.start_batch = start_batch
        # The last incomplete batch of an epoch is dropped, so every step sees the same
        # number of items, unless the dataset is smaller than one batch.
        self.batches_per_epoch = max(1, n_items // batch_size)

    def permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, 0, epoch]).permutation(self.n_items)

    def __iter__(self) -> Iterator[list[int]]:
        position = self.start_batch
        epoch, perm = -1, None
        while True:
            current, i = divmod(position, self.batches_per_epoch)
            if current != epoch:
                epoch, perm = current, self.permutation(current)
            yield perm[i * self.batch_size:(i + 1) * self.batch_size].tolist()
            position += 1


class _EMA:
    """Exponential moving average of a model's floating-point parameters; buffers are
    copied as they are."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.param_names = [n for n, p in model.named_parameters() if p.is_floating_point()]
        params = dict(model.named_parameters())
        self.shadow = {n: params[n].detach().clone() for n in self.param_names}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        torch._foreach_lerp_([self.shadow[n] for n in self.param_names],
                             [params[n].detach() for n in self.param_names], 1.0 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        missing = set(self.param_names) - set(state)
        if missing:
            raise CheckpointError(f"the checkpoint's EMA lacks parameters {sorted(missing)[:5]}")
        for n in self.param_names:
            self.shadow[n].copy_(state[n])

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        for n in self.param_names:
            params[n].copy_(self.shadow[n])

    @contextlib.contextmanager
    def swapped_in(self, model: nn.Module):
        params = dict(model.named_parameters())
        backup = {n: params[n].detach().clone() for n in self.param_names}
        self.copy_to(model)
        try:
            yield
        finally:
            with torch.no_grad():
                for n in self.param_names:
                    params[n].copy_(backup[n])


def _capture_rng(devices: Sequence[torch.device]) -> dict:
    """The global random states as tensors and plain data (loadable with weights_only)."""
    version, internal, gauss = random.getstate()
    # The legacy global state is what user datasets and losses may draw from.
    np_state = np.random.get_state()  # noqa: NPY002
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


def _restore_rng(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, key, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (name, key.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    for index, cuda_state in state.get("cuda", {}).items():
        torch.cuda.set_rng_state(cuda_state, int(index))


def _seed_globals(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)


@contextlib.contextmanager
def _isolated_rng(devices: Sequence[torch.device], seed: int | None = None):
    """Run a block with its own global random state (seeded if ``seed`` is given) and put
    the previous state back afterwards, so training neither consumes nor depends on the
    caller's randomness."""
    saved = _capture_rng(devices)
    try:
        if seed is not None:
            _seed_globals(seed)
        yield
    finally:
        _restore_rng(saved)


def _to_device(batch, device: torch.device, channels_last: bool):
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.is_floating_point():
            if batch.ndim == 4:
                batch = batch.contiguous(memory_format=torch.channels_last)
            elif batch.ndim == 5:
                batch = batch.contiguous(memory_format=torch.channels_last_3d)
        return batch
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device, channels_last) for v in batch)
    return batch


def _batch_size_of(batch) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    if isinstance(batch, Mapping):
        for key in ("image", *batch.keys()):
            if key in batch:
                n = _batch_size_of(batch[key])
                if n:
                    return n
    if isinstance(batch, (list, tuple)):
        for v in batch:
            n = _batch_size_of(v)
            if n:
                return n
    return 0


def _unpack_loss(out, model_name: str) -> tuple[torch.Tensor, dict]:
    logs: Mapping = {}
    if isinstance(out, tuple):
        if len(out) != 2 or not isinstance(out[1], Mapping):
            raise InputTypeError(
                f"{model_name}.loss(batch) must return a scalar tensor or (tensor, dict), got "
                f"a tuple of {len(out)} items")
        out, logs = out
    if not isinstance(out, torch.Tensor) or out.numel() != 1:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InputTypeError(
            f"{model_name}.loss(batch) must return a scalar tensor, got {shape}")
    return out.reshape(()), dict(logs)


def _resolve_precision(precision: str, device: torch.device) -> str:
    check_option("precision", precision, _PRECISIONS)
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("precision='fp16' needs a GPU; on the CPU use 'fp32' (or 'bf16')")
    return precision


def _has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())


def _is_plain(value) -> bool:
    """True for data that ``torch.load(weights_only=True)`` reads back without code."""
    if isinstance(value, (int, float, str, bool, type(None))):
        return True
    if isinstance(value, (tuple, list)):
        return all(_is_plain(v) for v in value)
    return False


def _check_int(name: str, value, minimum: int, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_dataset(dataset, what: str) -> None:
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


class _Trainer:
    """State of one call of :func:`train`."""

    def __init__(self, model: nn.Module, dataset, options: dict):
        self.model = model
        self.model_name = type(model).__name__
        self.opts = {k: v for k, v in options.items() if k not in ("model", "dataset")}
        o = self.opts
        if not callable(getattr(model, "loss", None)):
            raise InputTypeError(
                f"the model to train must have a loss(batch) method returning a scalar "
                f"tensor; {self.model_name} has none")
        _check_dataset(dataset, "dataset")
        o["max_steps"] = _check_int("max_steps", o["max_steps"], 1)
        o["batch_size"] = _check_int("batch_size", o["batch_size"], 1)
        o["grad_accum_steps"] = _check_int("grad_accum_steps", o["grad_accum_steps"], 1)
        o["warmup_steps"] = _check_int("warmup_steps", o["warmup_steps"], 0)
        o["log_every"] = _check_int("log_every", o["log_every"], 1)
        o["num_workers"] = _check_int("num_workers", o["num_workers"], 0)
        o["val_every"] = _check_int("val_every", o["val_every"], 1, allow_none=True)
        o["checkpoint_every"] = _check_int("checkpoint_every", o["checkpoint_every"], 1,
                                           allow_none=True)
        check_option("lr_schedule", o["lr_schedule"], _SCHEDULES)
        if not (isinstance(o["lr"], (int, float)) and o["lr"] > 0):
            raise ConfigError(f"lr must be a positive number, got {o['lr']!r}")
        if o["weight_decay"] < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {o['weight_decay']!r}")
        if not 0 <= o["min_lr_ratio"] <= 1:
            raise ConfigError(f"min_lr_ratio must be in [0, 1], got {o['min_lr_ratio']!r}")
        if o["grad_clip"] is not None and not o["grad_clip"] > 0:
            raise ConfigError(f"grad_clip must be positive or None, got {o['grad_clip']!r}")
        if o["ema_decay"] is not None and not 0 < o["ema_decay"] < 1:
            raise ConfigError(f"ema_decay must be in (0, 1) or None, got {o['ema_decay']!r}")
        if o["time_limit"] is not None and not o["time_limit"] > 0:
            raise ConfigError(f"time_limit must be positive seconds, got {o['time_limit']!r}")
        if o["resume"] and o["checkpoint_dir"] is None:
            raise ConfigError("resume=True needs checkpoint_dir, the folder of the run to "
                              "continue")
        if o["channels_last"] not in (True, False, "auto"):
            raise ConfigError(f"channels_last must be True, False or 'auto', got "
                              f"{o['channels_last']!r}")
        seed = o["random_state"]
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))  # noqa: NPY002
        elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"random_state must be a non-negative integer or None, got "
                              f"{seed!r}")
        o["random_state"] = int(seed)

        self.device = resolve_device(o["device"], model)
        self.precision = _resolve_precision(o["precision"], self.device)
        cl = o["channels_last"]
        self.channels_last = (self.device.type == "cpu" and _has_conv(model)
                              if cl == "auto" else bool(cl))

        self.train_set, self.val_set, self.val_indices = self._split(dataset, o["validation"])
        o["n_train"] = len(self.train_set)
        o["n_val"] = 0 if self.val_set is None else len(self.val_set)
        if o["val_every"] is None:
            o["val_every"] = max(1, o["max_steps"] // 10)
        if o["checkpoint_every"] is None:
            o["checkpoint_every"] = min(500, max(1, o["max_steps"] // 10))
        self.checkpoint_path = (None if o["checkpoint_dir"] is None
                                else Path(o["checkpoint_dir"]) / CHECKPOINT_NAME)
        self.last_good_step: int | None = None

    # -- set-up ---------------------------------------------------------------------------
    def _split(self, dataset, validation):
        seed = self.opts["random_state"]
        if validation is None:
            return dataset, None, None
        if isinstance(validation, (float, np.floating)) and not isinstance(validation, bool):
            if not 0 < validation < 1:
                raise ConfigError(f"validation must be a fraction in (0, 1) or a dataset, got "
                                  f"{validation!r}")
            n = len(dataset)
            n_val = int(round(n * float(validation)))
            if n_val < 1 or n_val >= n:
                raise ConfigError(
                    f"validation={validation} of {n} items leaves {n_val} for validation and "
                    f"{n - n_val} for training; both need at least one")
            perm = np.random.default_rng([seed, 1]).permutation(n)
            val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
            return (Subset(dataset, train_idx.tolist()), Subset(dataset, val_idx.tolist()),
                    torch.from_numpy(val_idx.astype(np.int64)))
        _check_dataset(validation, "validation")
        return dataset, validation, None

    def _build_optimizer(self) -> torch.optim.Optimizer:
        o = self.opts
        decay, no_decay = [], []
        for p in self.model.parameters():
            if p.requires_grad:
                # Biases and normalisation scales are vectors; decaying them only hurts.
                (decay if p.ndim >= 2 else no_decay).append(p)
        if not decay and not no_decay:
            raise ConfigError(f"{self.model_name} has no trainable parameters")
        groups = [{"params": decay, "weight_decay": float(o["weight_decay"])},
                  {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW([g for g in groups if g["params"]], lr=float(o["lr"]),
                                 betas=tuple(o["betas"]))

    def lr_at(self, step: int) -> float:
        """Learning rate of the update taking the model from ``step`` to ``step + 1``."""
        o = self.opts
        base, warmup, total = float(o["lr"]), o["warmup_steps"], o["max_steps"]
        if step < warmup:
            return base * (step + 1) / warmup
        if o["lr_schedule"] == "constant" or total <= warmup:
            return base
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        ratio = o["min_lr_ratio"]
        return base * (ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * progress)))

    def _loader(self, start_batch: int) -> Iterator:
        o = self.opts
        sampler = _EpochBatchSampler(len(self.train_set), o["batch_size"], o["random_state"],
                                     start_batch)
        # A generator of our own keeps the loader from drawing its worker seed from the
        # global generator, which the loss's random stream must not share.
        generator = torch.Generator().manual_seed(o["random_state"])
        loader = DataLoader(self.train_set, batch_sampler=sampler,
                            num_workers=o["num_workers"], generator=generator,
                            pin_memory=self.device.type == "cuda",
                            persistent_workers=o["num_workers"] > 0)
        return iter(loader)

    # -- checkpoints ----------------------------------------------------------------------
    def _save_checkpoint(self, step: int) -> None:
        if self.checkpoint_path is None:
            return
        path = self.checkpoint_path
        path.parent.mkdir(parents=True, exist_ok=True)
        options = {k: v for k, v in self.opts.items()
                   if _is_plain(v) and k not in ("checkpoint_dir", "callbacks")}
        state = {
            "format": _CHECKPOINT_FORMAT,
            "version": _CHECKPOINT_VERSION,
            "model_class": f"{type(self.model).__module__}.{type(self.model).__qualname__}",
            "step": step,
            "micro_batches": self.micro_batches,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "rng": _capture_rng([self.device]),
            "options": options,
            "history": list(self.history),
            "window": dict(self.window),
            "val_indices": self.val_indices,
        }
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
        self.last_good_step = step
        logger.debug("wrote checkpoint of step %d to %s", step, path)

    def _restore(self, ckpt: dict) -> int:
        saved = ckpt["options"]
        for key in _RESUME_FIXED:
            if key in saved and saved[key] != self.opts[key]:
                raise ConfigError(
                    f"cannot resume the run in {str(self.checkpoint_path.parent)!r} exactly: "
                    f"it was started with {key}={saved[key]!r}, now {key}={self.opts[key]!r}; "
                    f"use the same value, or a new checkpoint_dir to start afresh")
        if ckpt.get("val_indices") is not None and self.val_indices is not None and not (
                torch.equal(ckpt["val_indices"], self.val_indices)):
            raise ConfigError("cannot resume exactly: the validation split differs from the "
                              "checkpoint's")
        changed = [k for k in ("lr", "lr_schedule", "warmup_steps", "weight_decay",
                               "ema_decay", "grad_clip", "precision")
                   if k in saved and saved[k] != self.opts[k]]
        if changed:
            logger.warning("resuming with options changed since the checkpoint: %s",
                           ", ".join(f"{k}: {saved[k]!r} -> {self.opts[k]!r}" for k in changed))
        try:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(
                f"the checkpoint {str(self.checkpoint_path)!r} does not fit this "
                f"{self.model_name}: {err}") from err
        if self.ema is not None and ckpt.get("ema") is not None:
            self.ema.load_state_dict(ckpt["ema"])
        if self.scaler is not None and ckpt.get("scaler") is not None:
            self.scaler.load_state_dict(ckpt["scaler"])
        _restore_rng(ckpt["rng"])
        self.history = list(ckpt["history"])
        self.window = dict(ckpt["window"])
        self.micro_batches = int(ckpt["micro_batches"])
        self.last_good_step = int(ckpt["step"])
        return int(ckpt["step"])

    # -- the loop -------------------------------------------------------------------------
    def _validate(self, step: int) -> float:
        o = self.opts
        loader = DataLoader(self.val_set, batch_size=o["batch_size"], shuffle=False,
                            num_workers=o["num_workers"])
        was_training = self.model.training
        ema_ctx = (self.ema.swapped_in(self.model)
                   if self.ema is not None and o["use_ema_weights"] else contextlib.nullcontext())
        total, count = 0.0, 0
        # A fixed seed per step makes the validation loss reproducible and keeps it from
        # consuming the training stream's random numbers.
        with _isolated_rng([self.device], o["random_state"] + 7919 * (step + 1)), \
                ema_ctx, torch.no_grad():
            self.model.eval()
            try:
                for batch in loader:
                    batch = _to_device(batch, self.device, self.channels_last)
                    with self._autocast():
                        loss, _ = _unpack_loss(self.loss_fn(batch), self.model_name)
                    n = _batch_size_of(batch) or 1
                    total += float(loss) * n
                    count += n
            finally:
                self.model.train(was_training)
        return total / max(count, 1)

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _nonfinite(self, what: str, value: float, step: int) -> TrainingError:
        if self.checkpoint_path is None:
            kept = "no checkpoint was written (checkpoint_dir=None)"
        elif self.last_good_step is None:
            kept = f"no checkpoint had been written yet to {str(self.checkpoint_path)!r}"
        else:
            kept = (f"the last good checkpoint, of step {self.last_good_step}, is kept in "
                    f"{str(self.checkpoint_path)!r}; continue from it with resume=True")
        return TrainingError(
            f"{self.model_name}: the {what} became {value} at step {step + 1}; training "
            f"stopped. {kept[0].upper()}{kept[1:]}. Try a lower lr, grad_clip, "
            f"warmup_steps or precision='fp32'.")

    def run(self) -> pd.DataFrame:
        o = self.opts
        model = self.model
        model.to(self.device)
        kernels = [p for p in model.parameters() if p.ndim in (4, 5)]
        was_channels_last = bool(kernels) and all(
            not p.is_contiguous() and p.is_contiguous(
                memory_format=torch.channels_last if p.ndim == 4 else torch.channels_last_3d)
            for p in kernels)
        if self.channels_last:
            has_3d = any(isinstance(m, nn.Conv3d) for m in model.modules())
            model.to(memory_format=torch.channels_last_3d if has_3d else torch.channels_last)
        self.optimizer = self._build_optimizer()
        self.ema = _EMA(model, o["ema_decay"]) if o["ema_decay"] is not None else None
        self.scaler = (torch.amp.GradScaler(self.device.type) if self.precision == "fp16"
                       else None)
        self.loss_fn = torch.compile(model.loss) if o["compile"] else model.loss
        self.history: list[dict] = []
        self.window = {"loss": 0.0, "grad_norm": 0.0, "steps": 0, "images": 0,
                       "seconds": 0.0, "logs": {}}
        self.micro_batches = 0

        start_step = 0
        ckpt = None
        if o["resume"]:
            if self.checkpoint_path.is_file():
                ckpt = load_checkpoint(self.checkpoint_path)
            else:
                logger.info("no checkpoint in %s; training from the start",
                            self.checkpoint_path.parent)

        was_training = model.training
        model.train()
        stop_reason = "max_steps"
        with _isolated_rng([self.device]):
            if ckpt is not None:
                start_step = self._restore(ckpt)
                logger.info("resuming %s from step %d", self.model_name, start_step)
            else:
                _seed_globals(o["random_state"])
            try:
                stop_reason = self._loop(start_step)
            finally:
                model.train(was_training)
                if self.channels_last and not was_channels_last:
                    # Channels-last is a speed detail of training; the model goes back to
                    # the layout it came in, so its outputs match a freshly loaded copy
                    # bit for bit.
                    model.to(memory_format=torch.contiguous_format)
        if self.ema is not None and o["use_ema_weights"]:
            self.ema.copy_to(model)
        history = pd.DataFrame(self.history, columns=self._columns())
        history.attrs["stop_reason"] = stop_reason
        return history

    def _columns(self) -> list[str]:
        base = ["step", "loss", "val_loss", "lr", "grad_norm", "images_per_s"]
        extra: list[str] = []
        for row in self.history:
            extra.extend(k for k in row if k not in base and k not in extra)
        return base + extra

    def _loop(self, start_step: int) -> str:
        o = self.opts
        model = self.model
        max_steps = o["max_steps"]
        if start_step >= max_steps:
            logger.info("the checkpoint is already at step %d >= max_steps=%d; nothing to "
                        "train", start_step, max_steps)
            return "max_steps"
        data = self._loader(self.micro_batches)
        params = [p for p in model.parameters() if p.requires_grad]
        set_step = getattr(model, "set_training_step", None)
        t_begin = time.monotonic()
        stop_reason = "max_steps"
        from tqdm.auto import tqdm

        bar = tqdm(total=max_steps, initial=start_step, disable=not o["verbose"],
                   desc=f"training {self.model_name}", unit="step", dynamic_ncols=True)
        running = None
        try:
            for step in range(start_step, max_steps):
                t0 = time.perf_counter()
                lr = self.lr_at(step)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                if callable(set_step):
                    set_step(step)
                self.optimizer.zero_grad(set_to_none=True)
                step_loss, n_images, step_logs = 0.0, 0, {}
                for _ in range(o["grad_accum_steps"]):
                    batch = _to_device(next(data), self.device, self.channels_last)
                    self.micro_batches += 1
                    with self._autocast():
                        loss, logs = _unpack_loss(self.loss_fn(batch), self.model_name)
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        raise self._nonfinite("loss", value, step)
                    scaled = loss / o["grad_accum_steps"]
                    (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
                    step_loss += value / o["grad_accum_steps"]
                    n_images += _batch_size_of(batch)
                    for k, v in logs.items():
                        step_logs[k] = step_logs.get(k, 0.0) + float(v) / o["grad_accum_steps"]
                if self.scaler is not None:
                    self.scaler.unscale_(self.optimizer)
                max_norm = o["grad_clip"] if o["grad_clip"] is not None else math.inf
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
                if self.scaler is not None:
                    # The scaler skips steps with overflowing gradients by itself.
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    if not math.isfinite(grad_norm):
                        raise self._nonfinite("gradient norm", grad_norm, step)
                    self.optimizer.step()
                if self.ema is not None:
                    self.ema.update(model)
                done = step + 1
                elapsed = time.perf_counter() - t0

                w = self.window
                w["loss"] += step_loss
                w["grad_norm"] += grad_norm if math.isfinite(grad_norm) else 0.0
                w["steps"] += 1
                w["images"] += n_images
                w["seconds"] += elapsed
                for k, v in step_logs.items():
                    w["logs"][k] = w["logs"].get(k, 0.0) + v
                running = step_loss if running is None else 0.9 * running + 0.1 * step_loss
                bar.update(1)
                bar.set_postfix(loss=f"{running:.4g}", lr=f"{lr:.2g}", refresh=False)

                out_of_time = (o["time_limit"] is not None
                               and time.monotonic() - t_begin >= o["time_limit"])
                last = done == max_steps or out_of_time
                validate = self.val_set is not None and (done % o["val_every"] == 0 or last)
                val_loss = self._validate(done) if validate else math.nan
                if done % o["log_every"] == 0 or validate or last:
                    self._emit_row(done, lr, val_loss)
                if done % o["checkpoint_every"] == 0 or last:
                    self._save_checkpoint(done)
                step_info = {"loss": step_loss, "lr": lr, "grad_norm": grad_norm, **step_logs}
                if validate:
                    step_info["val_loss"] = val_loss
                for callback in o["callbacks"]:
                    callback(done, step_info)
                if out_of_time and done < max_steps:
                    stop_reason = "time_limit"
                    logger.info("time_limit of %.0f s reached after step %d", o["time_limit"],
                                done)
                    break
        finally:
            bar.close()
        return stop_reason

    def _emit_row(self, step: int, lr: float, val_loss: float) -> None:
        w = self.window
        n = max(w["steps"], 1)
        row = {"step": step, "loss": w["loss"] / n if w["steps"] else math.nan,
               "val_loss": val_loss, "lr": lr, "grad_norm": w["grad_norm"] / n,
               "images_per_s": w["images"] / w["seconds"] if w["seconds"] > 0 else math.nan}
        row.update({k: v / n for k, v in w["logs"].items()})
        self.history.append(row)
        self.window = {"loss": 0.0, "grad_norm": 0.0, "steps": 0, "images": 0,
                       "seconds": 0.0, "logs": {}}
