"""The argument parser, generated from the options schema and the command modules."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..options import OPTIONS, Flag, Option, Source
from ._command import Command, commands
from ._config import COMMAND_LINE, SET, parse_assignment

__all__ = ["build_parser", "overrides"]

#: Titles of the flag groups shared by several commands.
_TITLES = {"run": "run", "data": "data", "analysis": "audit"}


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions' paragraphs; defaults are written in each help text."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``latentaudit`` command.

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> args = build_parser().parse_args(["train", "--images", "scans", "--steps", "5"])
    >>> vars(args)["train.steps"], vars(args)["data.images"]
    (5, 'scans')
    """
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="latentaudit", formatter_class=_HelpFormatter,
        description="Find what a medical-imaging dataset hides: site artefacts, protocol "
                    "drift, mislabelled metadata. An autoencoder embeds every image without "
                    "labels; the embeddings are mapped, clustered and tested against the "
                    "metadata, and what should not be there is explained.",
        epilog="Start with: latentaudit demo   (a few minutes on a laptop CPU; writes "
               "latentaudit-demo/report.html)")
    parser.add_argument("--version", action="version", version=f"latentaudit {__version__}")
    parser.add_argument("--debug", action="store_true", default=False,
                        help="show tracebacks and debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in commands().values():
        sub = subparsers.add_parser(command.name, formatter_class=_HelpFormatter,
                                    help=command.help, description=command.description)
        _add_flags(sub, command)
    return parser


def _add_flags(parser: argparse.ArgumentParser, command: Command) -> None:
    added: set[str] = set()
    for scope in command.scopes:
        title = command.titles.get(scope, _TITLES.get(scope, scope))
        group = parser.add_argument_group(title)
        if scope == "run":
            group.add_argument("-c", "--config", metavar="FILE",
                               help="TOML (or JSON) file with any option; flags override it")
        for option in OPTIONS:
            if option.key in added:
                continue
            for flag in option.flags:
                if scope in flag.scopes:
                    _add_flag(group, option, flag, command)
                    added.add(option.key)
                    break
        if scope == "run":
            _run_control(group)


def _run_control(group) -> None:
    group.add_argument("--set", dest="assignments", action="append", default=[],
                       metavar="KEY=VALUE",
                       help="set any option of the config, e.g. --set audit.method=kmeans; "
                            "repeatable")
    group.add_argument("-q", "--quiet", action="store_true",
                       help="no progress bars or step messages")
    group.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks and debug messages")


def _default_text(option: Option, command: Command) -> str:
    default = option.default
    base = command.base or {}
    node = base.get(option.section, {}) if option.section else base
    if isinstance(node, dict) and option.name in node:
        default = node[option.name]
    if default is None:
        return ""
    if isinstance(default, bool):
        return ""  # switches say what they do
    if isinstance(default, (list, tuple)):
        return f" (default: {' '.join(str(v) for v in default)})"
    return f" (default: {default})"


def _add_flag(group, option: Option, flag: Flag, command: Command) -> None:
    text = flag.help or option.help
    if "(default" not in text:
        text += _default_text(option, command)
    kwargs: dict = {"dest": option.key, "default": argparse.SUPPRESS, "help": text}
    if flag.switch:
        kwargs.update(action="store_const", const=flag.const)
    else:
        kwargs["type"] = _converter(option, flag)
        if option.kind in ("str_list", "int_list", "float_list"):
            kwargs["nargs"] = "+"
        choices = flag.choices or option.allowed()
        if callable(choices):
            choices = tuple(choices())
        if choices is not None:
            kwargs["choices"] = choices
        else:
            kwargs["metavar"] = option.metavar or option.name.upper()
    group.add_argument(*flag.names, **kwargs)


def _converter(option: Option, flag: Flag):
    """The ``type=`` of a flag: reads the text as the option's kind and checks it (the
    choices are argparse's job, so its message lists them)."""
    source = Source("the command line", "flag", flag=flag.names[-1])

    def convert(text: str):
        value: object = text
        if option.kind in ("int", "int_list", "float", "float_list"):
            for parse in (int, float):
                try:
                    value = parse(text)
                    break
                except ValueError:
                    continue
        try:
            if option.kind in ("int_list", "float_list"):
                return option.element(value, source)
            if option.kind == "str_list":
                return value
            return option.check(value, source, choices=False)
        except ConfigError as error:
            raise argparse.ArgumentTypeError(str(error).removeprefix(
                f"{source.label}: ")) from None

    convert.__name__ = option.kind  # argparse names it in "invalid int value"
    return convert


def overrides(args: argparse.Namespace) -> tuple[list[dict], list[Source]]:
    """The configuration given on the command line: the flags, then each ``--set``.

    Parameters
    ----------
    args : argparse.Namespace
        From :func:`build_parser`.

    Returns
    -------
    layers : list of dict
        Nested options; flags not given are left out.
    sources : list of Source
        Where each layer came from.
    """
    flags: dict = {}
    for key, value in vars(args).items():
        if key not in OPTIONS:
            continue
        section, _, name = key.rpartition(".")
        node = flags.setdefault(section, {}) if section else flags
        node[name] = value
    layers, sources = [flags], [COMMAND_LINE]
    for text in getattr(args, "assignments", None) or []:
        layers.append(parse_assignment(text))
        sources.append(SET)
    return layers, sources
