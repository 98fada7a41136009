"""``TrainingConfig(compile=True)``: what the training loop compiles, and undoing it after.

A model names the submodules worth compiling in ``compile_modules`` (the networks: a
Diffusion Autoencoder's semantic encoder and UNet); each is compiled in place for the run,
so its parameters, state-dict keys, EMA and checkpoints stay those of the plain module,
and the loss's glue around them (random timesteps and noise drawn from the run's
``torch.Generator``, which a compiled graph cannot take) stays eager.  A model that names
none has its ``loss`` compiled whole, as before.  When training ends the modules run
eagerly again: a compiled module would be recompiled for every new batch size and for
inference without gradients, which is where an encoder is used after ``fit``.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..errors import ConfigError

__all__ = ["compile_targets", "compiled_modules"]


def compile_targets(model: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """The ``(name, submodule)`` pairs ``model.compile_modules`` names, or None.

    Parameters
    ----------
    model : torch.nn.Module
        The model to train.

    Returns
    -------
    list of (str, torch.nn.Module) or None
        None when the model names no submodules (the loop then compiles ``model.loss``).

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError`) when a name is not a submodule.

    Examples
    --------
    >>> from torch import nn
    >>> class Net(nn.Module):
    ...     compile_modules = ("body",)
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.body = nn.Linear(2, 2)
    >>> [name for name, _ in compile_targets(Net())]
    ['body']
    >>> compile_targets(nn.Linear(2, 2)) is None
    True
    """
    names = getattr(model, "compile_modules", None)
    if not names:
        return None
    if isinstance(names, str):
        names = (names,)
    targets = []
    for name in names:
        try:
            targets.append((str(name), model.get_submodule(str(name))))
        except AttributeError as err:
            raise ConfigError(f"{type(model).__name__}.compile_modules names {name!r}, which "
                              f"is not one of its submodules") from err
    return targets


@contextlib.contextmanager
def compiled_modules(modules: list[tuple[str, nn.Module]], **options):
    """Run the modules' ``forward`` through :func:`torch.compile` inside the block.

    The compiled function is set as the instance's ``forward`` (the module's parameters,
    buffers and hooks are untouched) and removed at exit, whatever happens inside.

    Parameters
    ----------
    modules : list of (str, torch.nn.Module)
        What :func:`compile_targets` returns.
    **options
        Passed to :func:`torch.compile` (``backend``, ``mode``, ...).

    Yields
    ------
    None

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Linear(2, 2)
    >>> with compiled_modules([("net", net)], backend="eager"):
    ...     "forward" in vars(net)
    True
    >>> "forward" in vars(net)
    False
    """
    done = []
    try:
        for _, module in modules:
            if "forward" in vars(module):
                continue  # already replaced by its owner: leave it alone
            module.forward = torch.compile(module.forward, **options)
            done.append(module)
        yield
    finally:
        for module in done:
            del module.forward
