"""What a model's ``training_step`` gets from the loop: the run's generator, mixed
precision, and stepping of its optimizers (with clipping and the gradient all-reduce of a
distributed run)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping

import torch

from . import _distributed as distributed
from ._config import TrainingConfig

__all__ = ["StepContext"]


class StepContext:
    """The loop's side of one training step, passed to ``model.training_step(batch, step,
    ctx)``.

    A model that defines ``configure_optimizers(config)`` and ``training_step(batch, step,
    ctx)`` computes its losses and steps the optimizers it wants through this object:
    ``ctx.backward(loss)`` then ``ctx.step("name")``.  Everything random in a step comes
    from :attr:`generator` (per-sample draws through
    :func:`~latentaudit.training.batch_randn` and friends, so that the run does not depend
    on the number of processes).

    Attributes
    ----------
    config : TrainingConfig
        The run's options.
    device : torch.device
        Where the model and the batch are.
    generator : torch.Generator
        The run's generator, on ``device``; saved in every checkpoint and restored on
        resume; in step across the processes of a distributed run.
    optimizers : dict of str to torch.optim.Optimizer
        What ``configure_optimizers`` returned.
    rank, world_size : int
        This process and the number of processes (0 and 1 without ``torchrun``).

    Examples
    --------
    A two-optimizer model (a toy GAN: D and G take turns):

    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from latentaudit.training import batch_randn, train
    >>> class ToyGAN(torch.nn.Module):
    ...     ema_module = "G"  # the loop keeps the EMA of the generator only
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.G, self.D = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    ...     def configure_optimizers(self, config):
    ...         return {"D": torch.optim.Adam(self.D.parameters(), lr=config.lr),
    ...                 "G": torch.optim.Adam(self.G.parameters(), lr=config.lr)}
    ...     def training_step(self, batch, step, ctx):
    ...         real = batch[0]
    ...         noise = batch_randn(real.shape, generator=ctx.generator)
    ...         with ctx.autocast():
    ...             d_loss = (torch.nn.functional.softplus(self.D(self.G(noise).detach()))
    ...                       + torch.nn.functional.softplus(-self.D(real))).mean()
    ...         ctx.backward(d_loss)
    ...         ctx.step("D")
    ...         with ctx.autocast():
    ...             g_loss = torch.nn.functional.softplus(-self.D(self.G(noise))).mean()
    ...         ctx.backward(g_loss)
    ...         ctx.step("G")
    ...         return {"loss": g_loss.item(), "d_loss": d_loss.item()}
    >>> history = train(ToyGAN(), TensorDataset(torch.randn(32, 2)), max_steps=4,
    ...                 batch_size=8, lr=1e-3, ema_decay=0.9, log_every=2, verbose=False)
    >>> list(history["step"]), "d_loss" in history
    ([2, 4], True)
    """

    def __init__(self, config: TrainingConfig, device: torch.device,
                 generator: torch.Generator, optimizers: Mapping[str, torch.optim.Optimizer],
                 scaler, precision: str, reduce_gradients: bool,
                 on_nonfinite: Callable[[str, float], Exception]):
        self.config = config
        self.device = device
        self.generator = generator
        self.optimizers = dict(optimizers)
        self.rank = distributed.rank()
        self.world_size = distributed.world_size()
        self._scaler = scaler
        self._precision = precision
        # In a distributed run, the default path's gradients are averaged by
        # DistributedDataParallel during backward; a model's own training_step is not
        # wrapped in DDP (see the loop), so step() averages them.
        self._reduce = reduce_gradients and self.world_size > 1
        self._on_nonfinite = on_nonfinite
        self.grad_norms: dict[str, float] = {}

    def autocast(self):
        """The run's mixed precision for a forward pass (a no-op in float32).

        Returns
        -------
        context manager
        """
        if self._precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self._precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        """Back-propagate ``loss`` (scaled when fp16 needs it).

        Parameters
        ----------
        loss : torch.Tensor
            A scalar.
        **kwargs
            Passed to :meth:`torch.Tensor.backward` (``retain_graph``, ``inputs``).

        Raises
        ------
        TrainingError
            If ``loss`` is NaN or infinite in any process (without fp16 loss scaling,
            which skips such steps by itself).
        """
        if self._scaler is None:
            bad = float(loss.detach().float()) if not bool(torch.isfinite(loss.detach())) \
                else None
            if self.world_size > 1:  # every process stops, or none
                flags = distributed.all_reduce_sum([0.0 if bad is None else 1.0], self.device)
                if flags[0] and bad is None:
                    bad = math.nan
            if bad is not None:
                raise self._on_nonfinite("loss", bad)
        (self._scaler.scale(loss) if self._scaler is not None else loss).backward(**kwargs)

    def zero_grad(self, *names: str) -> None:
        """Forget the gradients of some optimizers' parameters (default: all).

        Parameters
        ----------
        *names : str
            Optimizer names.
        """
        for name in names or tuple(self.optimizers):
            self.optimizers[name].zero_grad(set_to_none=True)

    def step(self, name: str) -> float:
        """Update the parameters of one optimizer from their gradients.

        Averages the gradients over the processes of a distributed run (one collective
        call for all of them), unscales them under fp16, clips their norm to
        ``config.grad_clip``, steps the optimizer and zeroes its gradients.

        Parameters
        ----------
        name : str
            A key of :attr:`optimizers`.

        Returns
        -------
        float
            The gradient norm before clipping.

        Raises
        ------
        TrainingError
            If the gradient norm is NaN or infinite (without fp16 loss scaling).
        KeyError
            For an unknown name.
        """
        optimizer = self.optimizers[name]
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if self._reduce:
            # Averaged before unscaling, so every process sees the same overflow.
            distributed.all_reduce_mean_([p.grad for p in params if p.grad is not None])
        if self._scaler is not None:
            self._scaler.unscale_(optimizer)
        clip = self.config.grad_clip if self.config.grad_clip is not None else math.inf
        with_grad = [p for p in params if p.grad is not None]
        norm = float(torch.nn.utils.clip_grad_norm_(with_grad, clip)) if with_grad else 0.0
        if self._scaler is not None:
            self._scaler.step(optimizer)  # skips steps with overflowing gradients
        else:
            if not math.isfinite(norm):
                raise self._on_nonfinite(f"gradient norm of {name!r}", norm)
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        self.grad_norms[name] = norm
        return norm
