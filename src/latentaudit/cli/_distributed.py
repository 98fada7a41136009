"""Commands on several processes: ``--nproc N`` launches PyTorch's own ``torchrun``
(``torch.distributed.run``) with the same command line, and a process started by it joins
the process group before the command runs.  No process management of our own: the
launcher starts, watches and stops the workers."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..errors import ConfigError
from ._command import Command

__all__ = ["join", "launch", "under_torchrun"]

logger = logging.getLogger(__name__)


def under_torchrun() -> bool:
    """Whether this process is one of several started by ``torchrun``."""
    from ..training._distributed import launched_by_torchrun

    return launched_by_torchrun()


def launch(argv: Sequence[str], nproc: int) -> int:
    """Run ``latentaudit ARGV`` in ``nproc`` processes on this machine with
    ``torch.distributed.run --standalone`` and return the exit code (the first failing
    process's, 0 when all succeed)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    args = ["--standalone", "--nproc_per_node", str(int(nproc)), "-m", "latentaudit",
            *_without_nproc(argv)]
    logger.info("launching %d processes: torchrun %s", nproc, " ".join(args))
    try:
        torchrun(args)
    except ChildFailedError as err:
        codes = [f.exitcode for _, f in sorted(err.failures.items()) if f.exitcode]
        return int(codes[0]) if codes else 1
    return 0


def _without_nproc(argv: Sequence[str]) -> list[str]:
    """The command line without ``--nproc N``: the launched processes run under the
    launcher (and torchrun's own parser would take ``--nproc`` for one of its options)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def join(command: Command, config: dict) -> bool:
    """Join the process group of a ``torchrun`` launch; whether this is the process that
    writes the results and talks (rank 0).

    Raises
    ------
    ConfigError
        For a command that runs in one process only.
    """
    from ..training import init_distributed, is_main_process
    from ..training._distributed import local_device
    from ..utils import resolve_device

    if not command.distributed:
        raise ConfigError(f"'latentaudit {command.name}' runs in one process; under torchrun "
                          f"only 'train' and 'embed' run (one per process)")
    init_distributed(local_device(resolve_device(config["device"])))
    return is_main_process()
