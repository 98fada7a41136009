"""Exponential moving average of the weights of a model or of one named submodule."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError

__all__ = ["EMA"]


class EMA:
    """Exponential moving average of the floating-point parameters of ``module``.

    Parameters
    ----------
    model : torch.nn.Module
        The model being trained.
    decay : float
        ``shadow = decay * shadow + (1 - decay) * weights`` after every optimiser step.
    module_name : str or None, default None
        Dotted name of the submodule whose weights are averaged (a GAN's generator, not
        its discriminator); None for the whole model.
    """

    def __init__(self, model: nn.Module, decay: float, module_name: str | None = None):
        self.decay = decay
        self.module_name = module_name or None
        if self.module_name is None:
            self.module = model
        else:
            try:
                self.module = model.get_submodule(self.module_name)
            except AttributeError as err:
                raise ConfigError(
                    f"{type(model).__name__}.ema_module names {self.module_name!r}, which is "
                    f"not one of its submodules") from err
        self.param_names = [n for n, p in self.module.named_parameters()
                            if p.is_floating_point()]
        params = dict(self.module.named_parameters())
        self.shadow = {n: params[n].detach().clone() for n in self.param_names}

    @torch.no_grad()
    def update(self) -> None:
        params = dict(self.module.named_parameters())
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
    def copy_to_module(self) -> None:
        params = dict(self.module.named_parameters())
        for n in self.param_names:
            params[n].copy_(self.shadow[n])

    @contextlib.contextmanager
    def swapped_in(self):
        """The averaged weights in the module for a block, the trained ones after."""
        params = dict(self.module.named_parameters())
        backup = {n: params[n].detach().clone() for n in self.param_names}
        self.copy_to_module()
        try:
            yield
        finally:
            with torch.no_grad():
                for n in self.param_names:
                    params[n].copy_(backup[n])
