"""What a command of the ``latentaudit`` command line is, and how they are found.

A command is one module of this package (its name does not start with ``_``) holding a
:class:`Command` named ``COMMAND``.  Adding a command is adding such a module: the parser,
``--help``, the config file and the dispatch pick it up.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["Command", "commands"]


@dataclass(frozen=True)
class Command:
    """One subcommand of ``latentaudit``.

    Parameters
    ----------
    name : str
        What the user types, e.g. ``"train"``.
    help : str
        One line for ``latentaudit --help``.
    description : str
        The paragraph of ``latentaudit NAME --help``.
    scopes : tuple of str
        The groups of flags it takes (see :class:`latentaudit.options.Flag`), in the
        order of its help; ``"run"`` adds ``--config``, ``--set``, ``--quiet``, ...
    run : callable
        ``run(config, run) -> exit code``, with the checked configuration and the
        :class:`~latentaudit.cli._run.Run` that records stages and results.
    order : int
        Position in ``latentaudit --help``.
    base : mapping, optional
        The command's own defaults over the schema's (e.g. the demo's output folder).
    titles : mapping, optional
        Titles of its flag groups in ``--help`` (scope -> title; default the scope).
    distributed : bool, default False
        Whether it runs under ``torchrun`` (several processes, see
        :mod:`latentaudit.cli._distributed`); others refuse to.

    Examples
    --------
    >>> from latentaudit.cli._command import commands
    >>> list(commands())[:2]
    ['demo', 'train']
    """

    name: str
    help: str
    description: str
    scopes: tuple[str, ...]
    run: Callable
    order: int = 100
    base: Mapping | None = None
    titles: Mapping[str, str] = field(default_factory=dict)
    distributed: bool = False


@functools.cache
def commands() -> dict[str, Command]:
    """Every command module of :mod:`latentaudit.cli`, by name, in help order.

    Returns
    -------
    dict of str to Command
    """
    package = importlib.import_module(__package__)
    found = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__package__}.{info.name}")
        command = getattr(module, "COMMAND", None)
        if not isinstance(command, Command):
            raise TypeError(f"command module {module.__name__} must define COMMAND, a "
                            f"latentaudit.cli._command.Command")
        found.append(command)
    found.sort(key=lambda c: (c.order, c.name))
    return {command.name: command for command in found}
