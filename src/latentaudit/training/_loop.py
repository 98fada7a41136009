"""The one training loop every model of latentaudit uses: :func:`train`."""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from ..errors import ConfigError, InputTypeError, TrainingError
from ..utils import remove_stale_temporaries, resolve_device
from . import _checkpoint as ckpt_io
from . import _data as data
from . import _distributed as distributed
from ._compile import compile_targets, compiled_modules
from ._config import TrainingConfig, resolve_precision
from ._context import StepContext
from ._ema import EMA

__all__ = ["train"]

logger = logging.getLogger(__name__)


def train(model: nn.Module, dataset, config: TrainingConfig | None = None,
          **options) -> pd.DataFrame:
    """Train ``model`` over ``dataset``: the loop every latentaudit model uses.

    Two kinds of model are trained:

    - **one loss** (the default): ``model.loss(batch, *, generator)`` returns a scalar
      tensor or ``(scalar, dict of scalars to log)``; the loop builds AdamW over every
      trainable parameter (weight decay on matrices and kernels only), accumulates
      gradients over ``grad_accum_steps`` micro-batches and steps.  A ``loss(batch)``
      without ``generator`` works too.
    - **its own step**: ``model.configure_optimizers(config)`` returns a dict ``name ->``
      optimizer (or ``(optimizer, lr_scheduler)``), and ``model.training_step(batch,
      step, ctx)`` computes its losses and steps the optimizers it wants through
      :class:`StepContext` (``ctx.backward(loss)``, ``ctx.step(name)``): alternating
      discriminator and generator steps, lazy regularisation every k steps, ...  It
      returns a dict of floats to log (``"loss"`` fills the history's loss column).

    Either way the loop keeps the EMA of ``model.ema_module`` (a dotted submodule name;
    the whole model when the model does not name one) when ``ema_decay`` is set, runs
    mixed precision, validation and callbacks, and writes atomic checkpoints holding the
    model, every optimizer and scheduler, the EMA, the loss scaler, the data position, the
    run's explicit generator and every process's global random state, so a run killed
    at any point resumes to the same weights as an uninterrupted one.

    Randomness is explicit: the loss (or ``training_step``) gets the run's
    :class:`torch.Generator`, seeded from ``random_state`` and checkpointed; per-sample
    draws go through :func:`batch_randn` / :func:`batch_rand` / :func:`batch_randint`.
    PyTorch's global generator (which dropout uses) is seeded too, and the caller's
    global random states are put back when training ends.

    Under ``torchrun`` (``python -m torch.distributed.run``) the same call trains
    data-parallel: ``batch_size`` is the global batch, each process takes its slice of
    every batch (:class:`GlobalBatchSampler`), gradients are averaged (by
    :class:`~torch.nn.parallel.DistributedDataParallel` on the default path, with
    ``no_sync`` while accumulating; by ``ctx.step`` on a model's own step), and only the
    first process writes checkpoints and shows progress.  A checkpoint resumes on any
    number of processes.

    Parameters
    ----------
    model : torch.nn.Module
        The model (see above).  If it has ``set_training_step(step)``, the loop calls it
        before every step.
    dataset : torch.utils.data.Dataset
        A map-style dataset; items are collated by PyTorch's default collate, so
        latentaudit's ``{"image", "index"}`` dicts become batched dicts.
    config : TrainingConfig, optional
        The options; ``**options`` set or override single fields.
    **options
        Fields of :class:`TrainingConfig` (``max_steps`` is needed when ``config`` is
        not given): ``batch_size``, ``lr``, ``ema_decay``, ``checkpoint_dir``,
        ``resume``, ``random_state``, ...

    Returns
    -------
    pandas.DataFrame
        The training history, one row per log step: ``step``, ``loss``, ``val_loss`` (NaN
        where not evaluated), ``lr``, ``grad_norm``, ``images_per_s`` and the logged
        scalars (averaged over the processes); with several optimizers also ``lr/NAME``
        and ``grad_norm/NAME``.  ``history.attrs["stop_reason"]`` is ``"max_steps"`` or
        ``"time_limit"``.

    Raises
    ------
    TrainingError
        If a loss or a gradient norm becomes NaN or infinite; the message names the step
        and the last good checkpoint, which is left untouched.
    ConfigError
        For invalid options; a checkpoint started with another ``batch_size``,
        ``grad_accum_steps``, ``random_state`` or dataset; or one already past
        ``max_steps``.
    CheckpointError
        If the checkpoint to resume from cannot be read or does not fit the model.
    InputTypeError
        If ``model`` has neither ``loss`` nor ``training_step``, or ``dataset`` is not a
        map-style dataset.

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
    config = TrainingConfig.build(config, **options)
    return _Trainer(model, dataset, config).run()


def _accepts_generator(function) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False
    return "generator" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _unpack_loss(out, model_name: str) -> tuple[torch.Tensor, dict]:
    logs: dict = {}
    if isinstance(out, tuple):
        if len(out) != 2 or not isinstance(out[1], dict):
            raise InputTypeError(
                f"{model_name}.loss(batch) must return a scalar tensor or (tensor, dict), got "
                f"a tuple of {len(out)} items")
        out, logs = out
    if not isinstance(out, torch.Tensor) or out.numel() != 1:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InputTypeError(f"{model_name}.loss(batch) must return a scalar tensor, got "
                             f"{shape}")
    return out.reshape(()), dict(logs)


def _seed(random_state: int, *path: int) -> int:
    return ckpt_io.derived_seed(random_state, *path)


class _LossModule(nn.Module):
    """``model.loss`` as a ``forward``, so DistributedDataParallel can wrap it (DDP
    averages the gradients of what runs through its ``forward`` only)."""

    def __init__(self, model: nn.Module, loss_fn, pass_generator: bool):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn
        self.pass_generator = pass_generator

    def forward(self, batch, generator):
        if self.pass_generator:
            return self.loss_fn(batch, generator=generator)
        return self.loss_fn(batch)


class _Trainer:
    """State of one call of :func:`train`."""

    def __init__(self, model: nn.Module, dataset, config: TrainingConfig):
        self.model = model
        self.model_name = type(model).__name__
        self.config = config
        self.custom = callable(getattr(model, "training_step", None))
        if self.custom and not callable(getattr(model, "configure_optimizers", None)):
            raise InputTypeError(f"{self.model_name} has training_step but no "
                                 f"configure_optimizers(config) returning its optimizers")
        if not self.custom and not callable(getattr(model, "loss", None)):
            raise InputTypeError(
                f"the model to train must have a loss(batch) method returning a scalar "
                f"tensor, or configure_optimizers and training_step; {self.model_name} "
                f"has neither")
        if self.custom and config.grad_accum_steps != 1:
            raise ConfigError("grad_accum_steps applies to models trained by one loss; a "
                              "model with training_step gets the whole step's batch at once")
        self.compile_targets = compile_targets(model) if config.compile else None
        if self.custom and config.compile and self.compile_targets is None:
            raise ConfigError(f"compile=True: {self.model_name} has training_step and names "
                              f"no compile_modules to compile")
        if self.custom and config.validation is not None and not callable(
                getattr(model, "loss", None)):
            raise ConfigError(f"validation needs {self.model_name}.loss(batch) to evaluate")
        data.check_dataset(dataset, "dataset")

        device = distributed.local_device(resolve_device(config.device, model))
        self.distributed = distributed.init_distributed(device)
        self.rank, self.world = distributed.rank(), distributed.world_size()
        self.device = device
        self.precision = resolve_precision(config.precision, device)
        self.seed = (config.random_state if config.random_state is not None
                     else int(np.random.randint(0, 2**31 - 1)))  # noqa: NPY002 - as documented
        if self.distributed and config.random_state is None:
            # every process must train with the same seed: the first one's
            self.seed = distributed.gather_objects(self.seed)[0]
        cl = config.channels_last
        self.channels_last = (device.type == "cpu" and any(
            isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())
            and getattr(model, "channels_last_on_cpu", True)
            if cl == "auto" else bool(cl))

        self.train_set, self.val_set, self.val_indices = data.split(
            dataset, config.validation, self.seed)
        if self.world > 1 and len(self.train_set) < config.batch_size:
            raise ConfigError(f"a distributed run needs at least one full batch: "
                              f"{len(self.train_set)} training items < batch_size="
                              f"{config.batch_size}")
        self.val_every = config.val_every or max(1, config.max_steps // 10)
        self.checkpoint_every = config.checkpoint_every or min(
            500, max(1, config.max_steps // 10))
        self.checkpoint_path = (None if config.checkpoint_dir is None
                                else Path(config.checkpoint_dir) / ckpt_io.CHECKPOINT_NAME)
        if self.checkpoint_path is not None:
            # a run killed inside a checkpoint write left its temporary file
            remove_stale_temporaries(self.checkpoint_path.parent, recursive=False)
        self.last_good_step: int | None = None
        self.main = self.rank == 0

    # -- set-up ---------------------------------------------------------------------------
    def _default_optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        decay, no_decay = [], []
        for p in self.model.parameters():
            if p.requires_grad:
                # Biases and normalisation scales are vectors; decaying them only hurts.
                (decay if p.ndim >= 2 else no_decay).append(p)
        if not decay and not no_decay:
            raise ConfigError(f"{self.model_name} has no trainable parameters")
        groups = [{"params": decay, "weight_decay": c.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        # One fused kernel over all parameters where PyTorch has it (CPU, CUDA).
        fused = True if self.device.type in ("cpu", "cuda") else None
        return torch.optim.AdamW([g for g in groups if g["params"]], lr=c.lr, betas=c.betas,
                                 fused=fused)

    def _optimizers(self):
        """{name: optimizer}, {name: scheduler}."""
        if not self.custom:
            return {"main": self._default_optimizer()}, {}
        given = self.model.configure_optimizers(self.config)
        if not isinstance(given, dict) or not given:
            raise InputTypeError(f"{self.model_name}.configure_optimizers must return a "
                                 f"non-empty dict name -> optimizer, got "
                                 f"{type(given).__name__}")
        optimizers, schedulers = {}, {}
        for name, value in given.items():
            scheduler = None
            if isinstance(value, tuple) and len(value) == 2:
                value, scheduler = value
            if not isinstance(value, torch.optim.Optimizer):
                raise InputTypeError(f"configure_optimizers()[{name!r}] must be a "
                                     f"torch.optim.Optimizer (or (optimizer, scheduler)), got "
                                     f"{type(value).__name__}")
            optimizers[str(name)] = value
            if scheduler is not None:
                schedulers[str(name)] = scheduler
        return optimizers, schedulers

    def lr_factor(self, step: int) -> float:
        """The schedule's factor for the update taking the model from ``step`` to
        ``step + 1``."""
        c = self.config
        warmup, total = c.warmup_steps, c.max_steps
        if step < warmup:
            return (step + 1) / warmup
        if c.lr_schedule == "constant" or total <= warmup:
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        ratio = c.min_lr_ratio
        return ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    def _loader(self, start: int):
        """Local batches from global batch ``start`` on (see GlobalBatchSampler)."""
        c = self.config

        def sampler_for(begin, stop):
            return data.GlobalBatchSampler(len(self.train_set), c.batch_size, self.seed,
                                           begin, self.rank, self.world, stop=stop)

        def make_loader(sampler, begin):
            return DataLoader(self.train_set, batch_sampler=sampler,
                              num_workers=c.num_workers,
                              generator=data.worker_seed_generator(self.seed, begin),
                              pin_memory=self.device.type == "cuda")

        per_epoch = sampler_for(0, None).batches_per_epoch
        return data.epochs_of_batches(self.train_set, sampler_for, per_epoch, start,
                                      make_loader)

    def _sync_initial_weights(self) -> None:
        """Every process starts from the first one's weights (as DDP does for its
        module), whatever each initialised."""
        if self.world == 1:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for tensor in [*self.model.parameters(), *self.model.buffers()]:
                dist.broadcast(tensor.data, src=0)

    # -- pieces of a step -----------------------------------------------------------------
    def _nonfinite(self, what: str, value: float) -> TrainingError:
        step = self.current_step
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

    def _default_step(self, data_iter) -> tuple[float, dict, int]:
        c = self.config
        loss_total, logs_total, n_images = 0.0, {}, 0
        accum = c.grad_accum_steps
        for micro in range(accum):
            batch = data.to_device(next(data_iter), self.device, self.channels_last)
            self.micro_batches += 1
            last = micro == accum - 1
            # Accumulating, DDP must not all-reduce until the last micro-batch.
            sync = (self.loss_module.no_sync() if self.distributed and not last
                    else contextlib.nullcontext())
            with sync:
                with self.ctx.autocast():
                    loss, logs = _unpack_loss(self.loss_module(batch, self.generator),
                                              self.model_name)
                self.ctx.backward(loss / accum)
            loss_total += float(loss.detach()) / accum
            n_images += data.batch_size_of(batch)
            for k, v in logs.items():
                logs_total[k] = logs_total.get(k, 0.0) + float(v) / accum
        self.ctx.step("main")
        return loss_total, logs_total, n_images

    def _custom_step(self, data_iter, step: int) -> tuple[float, dict, int]:
        batch = data.to_device(next(data_iter), self.device, self.channels_last)
        self.micro_batches += 1
        logs = self.model.training_step(batch, step, self.ctx)
        if not isinstance(logs, dict):
            raise InputTypeError(f"{self.model_name}.training_step must return a dict of "
                                 f"floats to log, got {type(logs).__name__}")
        logs = {k: float(v) for k, v in logs.items()}
        loss = logs.pop("loss", math.nan)
        return loss, logs, data.batch_size_of(batch)

    def _validate(self, step: int) -> float:
        c = self.config
        # Each process evaluates every world-th item; the sums are added up.
        part = (self.val_set if self.world == 1 else
                Subset(self.val_set, list(range(self.rank, len(self.val_set), self.world))))
        loader = DataLoader(part, batch_size=max(1, c.batch_size // self.world),
                            shuffle=False, num_workers=c.num_workers)
        was_training = self.model.training
        ema_ctx = (self.ema.swapped_in() if self.ema is not None and c.use_ema_weights
                   else contextlib.nullcontext())
        generator = torch.Generator(self.device).manual_seed(_seed(self.seed, 5, step))
        pass_generator = _accepts_generator(self.model.loss)
        total, count = 0.0, 0
        # A fixed seed per step makes the validation loss reproducible and keeps it from
        # consuming the training streams.
        with ckpt_io.isolated_rng([self.device], _seed(self.seed, 6, step)), ema_ctx, \
                torch.no_grad():
            self.model.eval()
            try:
                for batch in loader:
                    batch = data.to_device(batch, self.device, self.channels_last)
                    with self.ctx.autocast():
                        out = (self.model.loss(batch, generator=generator) if pass_generator
                               else self.model.loss(batch))
                    loss, _ = _unpack_loss(out, self.model_name)
                    n = data.batch_size_of(batch) or 1
                    total += float(loss) * n
                    count += n
            finally:
                self.model.train(was_training)
        total, count = distributed.all_reduce_sum([total, float(count)], self.device)
        return total / max(count, 1.0)

    # -- the run --------------------------------------------------------------------------
    def run(self) -> pd.DataFrame:
        c = self.config
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
        self._sync_initial_weights()
        self.optimizers, self.schedulers = self._optimizers()
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        ema_name = getattr(model, "ema_module", None)
        self.ema = EMA(model, c.ema_decay, ema_name) if c.ema_decay is not None else None
        self.scaler = (torch.amp.GradScaler(self.device.type) if self.precision == "fp16"
                       else None)
        self.generator = torch.Generator(self.device).manual_seed(_seed(self.seed, 3))
        self.ctx = StepContext(c, self.device, self.generator, self.optimizers, self.scaler,
                               self.precision, reduce_gradients=self.custom,
                               on_nonfinite=self._nonfinite)
        if not self.custom:
            whole = c.compile and self.compile_targets is None
            loss_fn = torch.compile(model.loss) if whole else model.loss
            self.loss_module = _LossModule(model, loss_fn, _accepts_generator(model.loss))
            if self.distributed:
                from torch.nn.parallel import DistributedDataParallel

                # Parameters a loss never touches (a DAE's latent DDIM) would stall DDP's
                # reduction without find_unused_parameters.
                self.loss_module = DistributedDataParallel(
                    self.loss_module, device_ids=[self.device] if self.device.type == "cuda"
                    else None, find_unused_parameters=True)
        self.history: list[dict] = []
        self.window = {"loss": 0.0, "grad_norm": 0.0, "steps": 0, "images": 0,
                       "seconds": 0.0, "logs": {}}
        self.micro_batches = 0

        ckpt = None
        if c.resume:
            if self.checkpoint_path.is_file():
                ckpt = ckpt_io.load_checkpoint(self.checkpoint_path)
            else:
                logger.info("no checkpoint in %s; training from the start",
                            self.checkpoint_path.parent)

        was_training = model.training
        model.train()
        stop_reason = "max_steps"
        start_step = 0
        with ckpt_io.isolated_rng([self.device]):
            if ckpt is not None:
                start_step = ckpt_io.restore_run(self, ckpt)
                logger.info("resuming %s from step %d", self.model_name, start_step)
            else:
                # Process 0 draws dropout masks as a one-process run would.
                ckpt_io.seed_globals(self.seed if self.rank == 0 else
                                     _seed(self.seed, 4, self.rank))
            try:
                with compiled_modules(self.compile_targets or []):
                    stop_reason = self._loop(start_step)
            finally:
                model.train(was_training)
                if self.channels_last and not was_channels_last:
                    # Channels-last is a speed detail of training; the model goes back to
                    # the layout it came in, so its outputs match a freshly loaded copy
                    # bit for bit.
                    model.to(memory_format=torch.contiguous_format)
        if self.ema is not None and c.use_ema_weights:
            self.ema.copy_to_module()
        history = pd.DataFrame(self.history, columns=self._columns())
        history.attrs["stop_reason"] = stop_reason
        return history

    def _columns(self) -> list[str]:
        base = ["step", "loss", "val_loss", "lr", "grad_norm", "images_per_s"]
        extra: list[str] = []
        for row in self.history:
            extra.extend(k for k in row if k not in base and k not in extra)
        return base + extra

    def _set_lr(self, step: int) -> dict[str, float]:
        factor = self.lr_factor(step)
        lrs = {}
        for name, optimizer in self.optimizers.items():
            if name not in self.schedulers:
                for group in optimizer.param_groups:
                    group["lr"] = group["initial_lr"] * factor
            lrs[name] = float(optimizer.param_groups[0]["lr"])
        return lrs

    def _loop(self, start_step: int) -> str:
        c = self.config
        if start_step >= c.max_steps:
            logger.info("the checkpoint is already at step %d = max_steps; nothing to train",
                        start_step)
            return "max_steps"
        data_iter = self._loader(self.micro_batches)
        set_step = getattr(self.model, "set_training_step", None)
        t_begin = time.monotonic()
        stop_reason = "max_steps"
        from tqdm.auto import tqdm

        bar = tqdm(total=c.max_steps, initial=start_step, disable=not (c.verbose and self.main),
                   desc=f"training {self.model_name}", unit="step", dynamic_ncols=True)
        running = None
        try:
            for step in range(start_step, c.max_steps):
                t0 = time.perf_counter()
                self.current_step = step
                lrs = self._set_lr(step)
                if callable(set_step):
                    set_step(step)
                self.ctx.zero_grad()
                self.ctx.grad_norms = {}
                if self.custom:
                    loss, logs, n_images = self._custom_step(data_iter, step)
                else:
                    loss, logs, n_images = self._default_step(data_iter)
                for scheduler in self.schedulers.values():
                    scheduler.step()
                if self.scaler is not None:
                    self.scaler.update()
                if self.ema is not None:
                    self.ema.update()
                keys = sorted(logs)
                # The logged values of a distributed run are the means over processes.
                values = distributed.all_reduce_sum([loss, *(logs[k] for k in keys),
                                                     float(n_images)], self.device)
                loss = values[0] / self.world
                logs = {k: v / self.world for k, v in zip(keys, values[1:-1], strict=True)}
                n_images = int(values[-1])
                if not self.custom and not math.isfinite(loss) and self.scaler is None:
                    raise self._nonfinite("loss", loss)
                grad_norm = (self.ctx.grad_norms.get("main") if not self.custom else
                             next(iter(self.ctx.grad_norms.values()), math.nan))
                grad_norm = math.nan if grad_norm is None else grad_norm
                lr = next(iter(lrs.values()))
                if len(self.optimizers) > 1:
                    logs.update({f"lr/{k}": v for k, v in lrs.items()})
                    logs.update({f"grad_norm/{k}": v for k, v in self.ctx.grad_norms.items()})
                done = step + 1
                elapsed = time.perf_counter() - t0
                self._accumulate(loss, grad_norm, n_images, elapsed, logs)
                running = loss if running is None or not math.isfinite(running) else \
                    0.9 * running + 0.1 * loss
                bar.update(1)
                bar.set_postfix(loss=f"{running:.4g}", lr=f"{lr:.2g}", refresh=False)

                out_of_time = distributed.broadcast_flag(
                    c.time_limit is not None and time.monotonic() - t_begin >= c.time_limit,
                    self.device)
                last = done == c.max_steps or out_of_time
                validate = self.val_set is not None and (done % self.val_every == 0 or last)
                val_loss = self._validate(done) if validate else math.nan
                if done % c.log_every == 0 or validate or last:
                    self._emit_row(done, lr, val_loss)
                if done % self.checkpoint_every == 0 or last:
                    ckpt_io.save_run(self, done)
                step_info = {"loss": loss, "lr": lr, "grad_norm": grad_norm, **logs}
                if validate:
                    step_info["val_loss"] = val_loss
                for callback in c.callbacks:
                    callback(done, step_info)
                if out_of_time and done < c.max_steps:
                    stop_reason = "time_limit"
                    logger.info("time_limit of %.0f s reached after step %d", c.time_limit,
                                done)
                    break
        finally:
            bar.close()
        return stop_reason

    def _accumulate(self, loss, grad_norm, n_images, seconds, logs) -> None:
        w = self.window
        w["loss"] += loss
        w["grad_norm"] += grad_norm if math.isfinite(grad_norm) else 0.0
        w["steps"] += 1
        w["images"] += n_images
        w["seconds"] += seconds
        for k, v in logs.items():
            w["logs"][k] = w["logs"].get(k, 0.0) + v

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
