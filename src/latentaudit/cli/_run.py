"""A command's run: its configuration, stages, timings and the results kept so far."""

from __future__ import annotations

import contextlib
import logging
import shlex
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["Run"]

logger = logging.getLogger("latentaudit.cli")


class Run:
    """What a command has computed so far, for the provenance and the message after an
    error.

    Parameters
    ----------
    command : str
        The command's name.
    config : dict
        The checked configuration.
    verbose : bool
        Show progress bars and step messages.
    argv : sequence of str
        The command line, for the provenance.
    main : bool, default True
        Whether this process writes the results: False in all but the first process of a
        ``torchrun`` launch, which only compute their share.

    Examples
    --------
    >>> run = Run("audit", {"output": "out"}, verbose=False, argv=["audit", "-q"])
    >>> run.command_line()
    'latentaudit audit -q'
    """

    def __init__(self, command: str, config: dict, verbose: bool,
                 argv: Sequence[str] = (), main: bool = True) -> None:
        self.command = command
        self.main = main
        self.argv = list(argv)
        self.config = config
        self.verbose = verbose
        self.kept: list[tuple[str, Path | None]] = []
        self.timings: dict = {}
        self.started = time.perf_counter()

    @contextlib.contextmanager
    def stage(self, name: str, message: str):
        """Log ``message``, then time the block as stage ``name``."""
        logger.info(message)
        tick = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - tick, 3)

    def keep(self, note: str, path: Path | None = None) -> None:
        """Remember a result to mention if the run fails (if ``path`` exists by then)."""
        self.kept.append((note, path))

    @property
    def output(self) -> Path:
        """The output folder."""
        return Path(self.config["output"])

    def command_line(self) -> str:
        """The command as typed (quoted for a shell)."""
        return "latentaudit " + " ".join(shlex.quote(str(a)) for a in self.argv)
