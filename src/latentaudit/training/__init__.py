"""The one training loop every model of latentaudit uses.

:func:`train` fits a model by its ``loss(batch, *, generator)`` (the default path), or by
its own ``configure_optimizers(config)`` and ``training_step(batch, step, ctx)`` (several
optimizers, e.g. a GAN's discriminator and generator); options are one validated
:class:`TrainingConfig`.  Optimisation, EMA of a named submodule, mixed precision,
checkpoints holding every optimizer and random state, exact resume and data-parallel runs
under ``torchrun`` are written once, here.  The encoders' ``fit`` methods and the
Explainer's classifier are thin calls into it.

Modules: ``_config`` (the options), ``_loop`` (the loop), ``_context`` (what a
``training_step`` gets), ``_data`` (data order and batches), ``_compile`` (what
``compile=True`` compiles), ``_ema``, ``_checkpoint`` (atomic checkpoints, random states),
``_distributed`` (process groups, per-sample draws).
"""

from ._checkpoint import CHECKPOINT_NAME, load_checkpoint
from ._config import TrainingConfig
from ._context import StepContext
from ._data import GlobalBatchSampler
from ._distributed import (
    batch_rand,
    batch_randint,
    batch_randn,
    init_distributed,
    is_main_process,
    rank,
    world_size,
)
from ._loop import train

__all__ = [
    "CHECKPOINT_NAME",
    "GlobalBatchSampler",
    "StepContext",
    "TrainingConfig",
    "batch_rand",
    "batch_randint",
    "batch_randn",
    "init_distributed",
    "is_main_process",
    "load_checkpoint",
    "rank",
    "train",
    "world_size",
]
