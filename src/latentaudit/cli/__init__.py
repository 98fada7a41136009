"""The ``latentaudit`` command line.

Subcommands (one module each in this package)::

    latentaudit demo      audit the bundled demo cohort end to end and write the report
    latentaudit train     train an encoder on a folder of NIfTI files (+ metadata CSV)
    latentaudit embed     embed a folder of NIfTI files with a trained encoder
    latentaudit audit     embeddings + metadata -> the audit report
    latentaudit explain   a delineation -> classifier, Grad-CAM, counterfactuals

Every option can also come from a TOML config file (``--config``); flags given on the
command line override it, and ``--set section.key=value`` reaches any option.  Flags and
keys come from one typed schema (:data:`latentaudit.options.OPTIONS`) that checks every
value wherever it came from.  The configuration actually used is written beside the
results as ``config.toml``.

Bad input (a missing folder, an unreadable file, a table without the id column, ids that
do not match, a column that mixes numbers and text, an option of the wrong type) ends with
one line saying what to fix and exit code 2; ``--debug`` shows the traceback.  Results
computed before an error are kept (e.g. the embeddings), and the line before the error says
how to continue from them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError, LatentAuditError, TrainingError
from ._command import Command, commands
from ._config import DEFAULT_CONFIG, dump_toml, load_config, parse_assignment
from ._distributed import join, launch, under_torchrun
from ._parser import build_parser, overrides
from ._run import Run
from .demo import DEMO_CONFIG

__all__ = ["DEFAULT_CONFIG", "DEMO_CONFIG", "EXIT_BAD_INPUT", "EXIT_FAILURE", "EXIT_OK",
           "Command", "build_parser", "commands", "dump_toml", "load_config", "main"]

logger = logging.getLogger(__name__)

#: Exit codes: success, an unexpected failure, bad input or options, interrupted.
EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


_parse_assignment = parse_assignment  # what --set does, for tests and callers


def _overrides(args) -> list[dict]:
    """The configuration layers given on the command line (flags, then each --set)."""
    return overrides(args)[0]


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if record.levelno >= logging.WARNING:
            return f"latentaudit: warning: {record.getMessage()}"
        return f"latentaudit: {record.getMessage()}"


def _configure_logging(debug: bool, quiet: bool) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s") if debug
                         else _Formatter())
    package = logging.getLogger("latentaudit")
    package.addHandler(handler)
    if debug:
        package.setLevel(logging.DEBUG)
    else:
        package.setLevel(logging.WARNING)
        if not quiet:
            for name in ("latentaudit.cli", "latentaudit.pipeline"):
                logging.getLogger(name).setLevel(logging.INFO)
    return handler


def _one_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``latentaudit`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: 0 on success, 2 for bad input or options, 1 for any other
        failure, 130 when interrupted.

    Examples
    --------
    >>> from latentaudit.cli import main
    >>> main(["train", "--images", "scans", "--set", "train.steps=2.9"])
    2
    """
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    debug = bool(getattr(args, "debug", False))
    quiet = bool(getattr(args, "quiet", False))
    handler = _configure_logging(debug, quiet)
    run = None
    try:
        command = commands()[args.command]
        layers, sources = overrides(args)
        config = load_config(args.config, base=command.base, overrides=layers,
                             sources=sources)
        if config["nproc"] > 1 and not under_torchrun():
            if not command.distributed:
                raise ConfigError(f"--nproc: 'latentaudit {command.name}' runs in one "
                                  f"process")
            return launch(argv, config["nproc"])
        main_process = True
        if under_torchrun():
            main_process = join(command, config)
            if not main_process:  # one process talks; the others only work
                logging.getLogger("latentaudit").setLevel(logging.ERROR)
        run = Run(args.command, config, verbose=not quiet and main_process, argv=argv,
                  main=main_process)
        return command.run(config, run)
    except KeyboardInterrupt:
        _report_kept(run)
        print("latentaudit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (LatentAuditError, OSError) as error:
        if debug:
            logger.exception("traceback of the error below")
        _report_kept(run)
        code = EXIT_FAILURE if isinstance(error, TrainingError) else EXIT_BAD_INPUT
        if isinstance(error, OSError) and not isinstance(error, LatentAuditError):
            where = f" {error.filename!r}" if getattr(error, "filename", None) else ""
            message = f"{error.strerror or _one_line(error)}{where}"
        else:
            message = _one_line(error)
        print(f"latentaudit: error: {message}", file=sys.stderr)
        return code
    except Exception as error:  # anything else is a bug: say so, briefly
        if debug:
            logger.exception("traceback of the error below")
        _report_kept(run)
        print(f"latentaudit: internal error: {type(error).__name__}: {_one_line(error)} "
              f"(rerun with --debug for the traceback, and please report it)", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        logging.getLogger("latentaudit").removeHandler(handler)


def _report_kept(run: Run | None) -> None:
    if run is None:
        return
    for note, path in run.kept:
        if path is None or Path(path).exists():
            print(f"latentaudit: kept: {note}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
