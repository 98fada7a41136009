"""The options of a training run: one validated dataclass."""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..utils import check_option

__all__ = ["PRECISIONS", "SCHEDULES", "TrainingConfig"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SCHEDULES = ("constant", "cosine")


def _int(name: str, value, minimum: int, allow_none: bool = False):
    if value is None and allow_none:
        return None
    # bool is an int to Python, and 2.9 is not an int at all: both are refused rather
    # than coerced, so the run records the value that ran.
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) \
            or value < minimum:
        extra = " or None" if allow_none else ""
        raise ConfigError(f"{name} must be an integer >= {minimum}{extra}, got {value!r} "
                          f"({type(value).__name__})")
    return int(value)


def _float(name: str, value, low: float | None = None, high: float | None = None, *,
           low_open: bool = False, high_open: bool = False, allow_none: bool = False):
    if value is None and allow_none:
        return None
    ok = (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
          and math.isfinite(float(value)))
    if ok:
        v = float(value)
        ok = ((low is None or (v > low if low_open else v >= low))
              and (high is None or (v < high if high_open else v <= high)))
    if not ok:
        lo = "" if low is None else f"{'(' if low_open else '['}{low:g}"
        hi = "" if high is None else f"{high:g}{')' if high_open else ']'}"
        where = (f" in {lo}, {hi}" if low is not None and high is not None else
                 f" {'>' if low_open else '>='} {low:g}" if low is not None else "")
        extra = " or None" if allow_none else ""
        raise ConfigError(f"{name} must be a finite number{where}{extra}, got {value!r}")
    return float(value)


def _bool(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be True or False, got {value!r}")
    return bool(value)


@dataclasses.dataclass
class TrainingConfig:
    """Every option of :func:`~latentaudit.training.train`, validated with their types.

    Building one checks every field: an integer option refuses ``2.9``, ``"2"`` and
    ``True`` instead of coercing them, so what a run records is what ran.
    :meth:`replace` makes a changed (and again validated) copy.

    Parameters
    ----------
    max_steps : int
        Optimiser steps of the whole run (a resumed run counts the steps already done).
    batch_size : int, default 32
        Items per micro-batch, over all processes together (the *global* batch: under
        ``torchrun`` with ``W`` processes each takes ``batch_size / W`` of them); one
        optimiser step sees ``batch_size * grad_accum_steps`` items.
    lr : float, default 2e-4
        Peak learning rate (of AdamW on the default path; models with
        ``configure_optimizers`` read it as they like).
    weight_decay : float, default 0.0
        Decoupled weight decay of weight matrices and kernels (not biases or norm
        scales); ``0`` gives Adam.
    betas : (float, float), default (0.9, 0.999)
        AdamW's moment coefficients.
    lr_schedule : {"constant", "cosine"}, default "constant"
        After the warm-up: constant, or a cosine decay to ``min_lr_ratio * lr`` at
        ``max_steps``.  Applied as a factor to every optimiser's own learning rates
        unless the model gives an optimiser a scheduler of its own.
    warmup_steps : int, default 0
        Linear warm-up from ``lr / warmup_steps`` to ``lr``.
    min_lr_ratio : float, default 0.0
        Final learning rate of the cosine schedule, as a fraction of ``lr``.
    grad_clip : float or None, default 1.0
        Clip the global gradient norm (of each optimiser's parameters) to this value;
        ``None`` does not clip.
    grad_accum_steps : int, default 1
        Micro-batches whose gradients are summed before each optimiser step (default
        path only: a model with ``training_step`` sees the whole step's batch at once).
    ema_decay : float or None, default None
        Keep an exponential moving average of the weights (of the model's
        ``ema_module`` if it names one, else of the whole model) with this decay.
    use_ema_weights : bool, default True
        With ``ema_decay``, load the averaged weights when training ends, and validate
        with them.
    precision : {"auto", "fp32", "bf16", "fp16"}, default "auto"
        Autocast precision of the forward pass (weights stay float32).  ``"auto"``: bf16
        on GPUs that support it, fp16 with loss scaling on other GPUs, float32 on the CPU.
    device : str, torch.device or None, default None
        Where to train; default: where the model is.  Under ``torchrun`` on GPUs,
        ``"cuda"`` means each process's own GPU (``cuda:LOCAL_RANK``).
    channels_last : bool or "auto", default "auto"
        Channels-last memory format; ``"auto"``: on for convolutional models on the CPU,
        unless the model's ``channels_last_on_cpu`` attribute says otherwise (a 2-D
        Diffusion Autoencoder trains faster contiguous; see ``docs/benchmarks.md``).
    compile : bool, default False
        Compile the model for the run with :func:`torch.compile` (inductor: fused
        kernels, a C++ compiler on CPUs): the submodules the model names in its
        ``compile_modules`` attribute (a Diffusion Autoencoder: its semantic encoder and
        UNet; also on the ``training_step`` path), else ``model.loss``.  They run eagerly
        again after training.  The first steps (and the first validation) wait for the
        compilation, minutes on a CPU.  Experimental: see ``docs/benchmarks.md`` (the
        DAE's training step) for what is measured.
    validation : float, Dataset or None, default None
        A fraction in (0, 1) of the dataset held out at random, or a separate dataset,
        whose mean loss is evaluated every ``val_every`` steps and at the end.
    val_every : int or None, default None
        Steps between validations (default: a tenth of ``max_steps``).
    checkpoint_dir : str, os.PathLike or None, default None
        Folder of the atomic checkpoint.
    checkpoint_every : int or None, default None
        Steps between checkpoints (default: ``min(500, max(1, max_steps // 10))``).
    resume : bool, default False
        Continue from the checkpoint in ``checkpoint_dir``.
    time_limit : float or None, default None
        Stop cleanly (with a checkpoint) after this many seconds.
    random_state : int or None, default 0
        Seed of the data order, the validation split, the run's generator (every random
        draw of a loss) and PyTorch's global generator (dropout); ``None`` draws one.
    num_workers : int, default 0
        Loader worker processes.
    log_every : int, default 10
        Steps per history row.
    callbacks : sequence of callables, default ()
        Each called as ``callback(step, logs)`` after every optimiser step, in every
        process.
    verbose : bool, default False
        Show a progress bar (in the first process only).

    Raises
    ------
    ConfigError
        For a value of the wrong type or out of range (the message names the option).

    Examples
    --------
    >>> from latentaudit.training import TrainingConfig
    >>> config = TrainingConfig(max_steps=100, batch_size=16)
    >>> config.replace(lr=1e-3).lr
    0.001
    >>> TrainingConfig(max_steps=2.9)
    Traceback (most recent call last):
    ...
    latentaudit.errors.ConfigError: max_steps must be an integer >= 1, got 2.9 (float)
    """

    max_steps: int
    batch_size: int = 32
    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    grad_clip: float | None = 1.0
    grad_accum_steps: int = 1
    ema_decay: float | None = None
    use_ema_weights: bool = True
    precision: str = "auto"
    device: Any = None
    channels_last: bool | str = "auto"
    compile: bool = False
    validation: Any = None
    val_every: int | None = None
    checkpoint_dir: str | os.PathLike | None = None
    checkpoint_every: int | None = None
    resume: bool = False
    time_limit: float | None = None
    random_state: int | None = 0
    num_workers: int = 0
    log_every: int = 10
    callbacks: Sequence[Callable[[int, dict], Any]] = ()
    verbose: bool = False

    def __post_init__(self) -> None:
        self.max_steps = _int("max_steps", self.max_steps, 1)
        self.batch_size = _int("batch_size", self.batch_size, 1)
        self.lr = _float("lr", self.lr, 0.0, low_open=True)
        self.weight_decay = _float("weight_decay", self.weight_decay, 0.0)
        try:
            betas = tuple(self.betas)
        except TypeError:
            betas = ()
        if len(betas) != 2:
            raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        self.betas = tuple(_float("betas entries", b, 0.0, 1.0, high_open=True)
                           for b in betas)
        check_option("lr_schedule", self.lr_schedule, SCHEDULES)
        self.warmup_steps = _int("warmup_steps", self.warmup_steps, 0)
        self.min_lr_ratio = _float("min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        self.grad_clip = _float("grad_clip", self.grad_clip, 0.0, low_open=True,
                                allow_none=True)
        self.grad_accum_steps = _int("grad_accum_steps", self.grad_accum_steps, 1)
        self.ema_decay = _float("ema_decay", self.ema_decay, 0.0, 1.0, low_open=True,
                                high_open=True, allow_none=True)
        self.use_ema_weights = _bool("use_ema_weights", self.use_ema_weights)
        check_option("precision", self.precision, PRECISIONS)
        if self.channels_last not in ("auto",) and not isinstance(self.channels_last,
                                                                    (bool, np.bool_)):
            raise ConfigError(f"channels_last must be True, False or 'auto', got "
                              f"{self.channels_last!r}")
        if self.channels_last != "auto":
            self.channels_last = bool(self.channels_last)
        self.compile = _bool("compile", self.compile)
        validation = self.validation
        if isinstance(validation, numbers.Real) and not isinstance(validation, bool):
            self.validation = _float("validation", validation, 0.0, 1.0, low_open=True,
                                     high_open=True)
        elif isinstance(validation, (bool, str)):
            raise ConfigError(f"validation must be a fraction in (0, 1), a dataset or None, "
                              f"got {validation!r}")
        self.val_every = _int("val_every", self.val_every, 1, allow_none=True)
        if self.checkpoint_dir is not None and not isinstance(self.checkpoint_dir,
                                                              (str, os.PathLike)):
            raise ConfigError(f"checkpoint_dir must be a path or None, got "
                              f"{self.checkpoint_dir!r}")
        self.checkpoint_every = _int("checkpoint_every", self.checkpoint_every, 1,
                                     allow_none=True)
        self.resume = _bool("resume", self.resume)
        if self.resume and self.checkpoint_dir is None:
            raise ConfigError("resume=True needs checkpoint_dir, the folder of the run to "
                              "continue")
        self.time_limit = _float("time_limit", self.time_limit, 0.0, low_open=True,
                                 allow_none=True)
        self.random_state = _int("random_state", self.random_state, 0, allow_none=True)
        self.num_workers = _int("num_workers", self.num_workers, 0)
        self.log_every = _int("log_every", self.log_every, 1)
        if callable(self.callbacks) or not all(callable(c) for c in self.callbacks):
            raise ConfigError("callbacks must be a sequence of callables "
                              "callback(step, logs)")
        self.callbacks = tuple(self.callbacks)
        self.verbose = _bool("verbose", self.verbose)

    @classmethod
    def build(cls, config: TrainingConfig | None = None, **options) -> TrainingConfig:
        """A config from ``config`` (or the defaults) with ``options`` set.

        Parameters
        ----------
        config : TrainingConfig, optional
            The starting point.
        **options
            Fields to set.

        Returns
        -------
        TrainingConfig

        Raises
        ------
        ConfigError
            For an unknown option (with the closest known name) or an invalid value.

        Examples
        --------
        >>> from latentaudit.training import TrainingConfig
        >>> TrainingConfig.build(max_steps=3, lr=0.1).lr
        0.1
        >>> TrainingConfig.build(max_steps=3, batchsize=8)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        latentaudit.errors.ConfigError: unknown ... 'batchsize'; did you mean 'batch_size'?
        """
        names = [f.name for f in dataclasses.fields(cls)]
        for key in options:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"unknown training option {key!r}{hint}")
        if config is None:
            if "max_steps" not in options:
                raise ConfigError("max_steps is needed: the number of optimiser steps")
            return cls(**options)
        if not isinstance(config, cls):
            raise ConfigError(f"config must be a TrainingConfig, got {type(config).__name__}")
        return dataclasses.replace(config, **options)

    def replace(self, **changes) -> TrainingConfig:
        """A copy with some fields changed (validated again)."""
        return type(self).build(self, **changes)

    def plain(self) -> dict:
        """The fields that are plain data (what a checkpoint records)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("callbacks", "validation", "device", "checkpoint_dir"):
                value = (value if f.name == "validation" and isinstance(value, float)
                         else None if value is None or f.name in ("callbacks", "validation")
                         else str(value))
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


def resolve_precision(precision: str, device: torch.device) -> str:
    """The autocast precision a run on ``device`` uses for ``precision``."""
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("precision='fp16' needs a GPU; on the CPU use 'fp32' (or 'bf16')")
    return precision
