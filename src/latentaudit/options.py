"""The typed options of latentaudit's runs: one schema for TOML files, flags and the API.

Every option of a run has one :class:`Option` entry in :data:`OPTIONS`: its key
(``"section.name"`` as in a TOML file, or ``"name"`` at the top), its type, default,
range or choices, its help text and the command-line flags that set it.  From this one
list come the defaults, the ``latentaudit`` command's flags, the keys a TOML config may
hold, and the validation of every value, wherever it comes from (a config file, a flag,
``--set``, or the ``options`` of :func:`latentaudit.pipeline.run_audit`).

Values are never coerced: an integer option refuses ``2.9``, ``"2"`` and ``true``
instead of turning them into ``2`` or ``1``, and the message names the option, where
the value came from and how to write it.  Unknown keys are refused with the closest
known one.
"""

from __future__ import annotations

import copy
import difflib
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

__all__ = ["OPTIONS", "Flag", "Option", "OptionSchema", "Source"]

#: The kinds of value an option can hold.
KINDS = ("int", "float", "bool", "str", "path", "str_list", "int_list", "float_list")

_NOT_GIVEN = object()


@dataclass(frozen=True)
class Source:
    """Where a layer of options came from, for messages.

    Parameters
    ----------
    label : str
        What to call it in a message, e.g. ``"config file 'study.toml'"``.
    syntax : {"toml", "json", "flag", "set", "python"}
        How a value is written there; the fix in a message uses it.
    flag : str, optional
        The flag given (syntax "flag").

    Examples
    --------
    >>> Source("config file 'a.toml'", "toml").label
    "config file 'a.toml'"
    """

    label: str
    syntax: str = "python"
    flag: str | None = None


#: The options of the Python API (the default source).
PYTHON = Source("the options", "python")


@dataclass(frozen=True)
class Flag:
    """A command-line flag that sets an option.

    Parameters
    ----------
    names : tuple of str
        The flag and its aliases, e.g. ``("--train-steps", "--steps")``.
    scopes : tuple of str
        Groups of flags a command shows (a command lists the scopes it takes, e.g.
        ``("data", "train", "run")``).
    help : str, optional
        Help text for this flag when it differs from the option's.
    const : object, optional
        For a switch (a flag without a value): the value it sets, e.g. ``False`` for
        ``--no-explain``.
    choices : tuple or callable, optional
        The values this flag accepts when narrower than the option's (a callable
        returns them, e.g. from a registry).

    Examples
    --------
    >>> Flag(("--no-explain",), ("analysis",), const=False).switch
    True
    """

    names: tuple[str, ...]
    scopes: tuple[str, ...]
    help: str | None = None
    const: Any = _NOT_GIVEN
    choices: tuple | Callable[[], Iterable] | None = None

    @property
    def switch(self) -> bool:
        """Whether the flag takes no value (it sets :attr:`const`)."""
        return self.const is not _NOT_GIVEN


class _Invalid(Exception):
    """A value that does not fit its option: ``problem`` and a good ``example``."""

    def __init__(self, problem: str, example: Any = _NOT_GIVEN) -> None:
        super().__init__(problem)
        self.problem = problem
        self.example = example


@dataclass(frozen=True)
class Option:
    """One option of a run.

    Parameters
    ----------
    key : str
        ``"section.name"`` (a TOML table and key) or ``"name"`` (top level).
    kind : {"int", "float", "bool", "str", "path", "str_list", "int_list", "float_list"}
        The type of value.  ``"path"`` is text naming a file or folder;
        ``"str_list"`` also takes one text (as a list of one).
    default : object
        The default; ``None`` means unset (decided later, e.g. from the data).
    help : str
        What it does, for ``--help`` and messages.
    low, high : float, optional
        Inclusive range of a number (of every element of a ``"int_list"`` or
        ``"float_list"``).
    low_open : bool, default False
        Make ``low`` exclusive (e.g. a learning rate must be > 0).
    high_open : bool, default False
        Make ``high`` exclusive.
    choices : tuple or callable, optional
        The allowed values (a callable returns them, e.g. from a registry).
    flags : tuple of Flag
        The flags that set it.
    metavar : str, optional
        The value's name in ``--help``.

    Examples
    --------
    >>> steps = Option("train.steps", "int", 600, "optimiser steps", low=1)
    >>> steps.check(20)
    20
    >>> steps.check(2.9)
    Traceback (most recent call last):
    ...
    latentaudit.errors.ConfigError: train.steps must be an integer, got 2.9 (a decimal \
number); write a whole number, e.g. steps=3
    """

    key: str
    kind: str
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | Callable[[], Iterable] | None = None
    flags: tuple[Flag, ...] = ()
    metavar: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"option {self.key!r}: kind must be one of {KINDS}, got "
                             f"{self.kind!r}")

    @property
    def section(self) -> str | None:
        """The TOML table holding the option (None at the top level)."""
        return self.key.rpartition(".")[0] or None

    @property
    def name(self) -> str:
        """The key within its section."""
        return self.key.rpartition(".")[2]

    @property
    def nullable(self) -> bool:
        """Whether the option may be unset (its default is None)."""
        return self.default is None

    def allowed(self) -> tuple | None:
        """The allowed values, or None when any value of the kind (in range) is."""
        if self.choices is None:
            return None
        return tuple(self.choices() if callable(self.choices) else self.choices)

    # -- checking ---------------------------------------------------------------------
    def check(self, value: Any, source: Source = PYTHON, *, choices: bool = True) -> Any:
        """Return ``value`` if it fits the option, normalised (a text for a list of
        texts becomes a list of one, an integer for a float becomes a float).

        Parameters
        ----------
        value : object
            The value given.
        source : Source
            Where it came from, for the message.
        choices : bool, default True
            Also check the value against the choices.

        Returns
        -------
        object

        Raises
        ------
        ConfigError
            Naming the option, the value, where it came from and how to write it.

        Examples
        --------
        >>> Option("data.size", "int", 64, "image side", low=1).check("16", Source(
        ...     "config file 'a.toml'", "toml"))
        Traceback (most recent call last):
        ...
        latentaudit.errors.ConfigError: config file 'a.toml': data.size must be an \
integer, got the text '16'; write it without quotes: size = 16
        """
        try:
            return self._check(value, choices)
        except _Invalid as invalid:
            raise self._error(invalid, source) from None

    def element(self, value: Any, source: Source = PYTHON) -> int | float:
        """Check one element of an ``"int_list"`` or ``"float_list"`` option (a flag's
        value)."""
        try:
            value = _as_int(value, None) if self.kind == "int_list" else _as_float(value,
                                                                                    None)
            self._in_range(value)
            return value
        except _Invalid as invalid:
            raise self._error(_Invalid(f"elements {invalid.problem}"), source) from None

    def _error(self, invalid: _Invalid, source: Source) -> ConfigError:
        where = "" if source is PYTHON else f"{source.label}: "
        fix = ""
        if invalid.example is not _NOT_GIVEN:
            fix = f"; {self.written(invalid.example, source)}"
        return ConfigError(f"{where}{self.key} {invalid.problem}{fix}")

    def written(self, example: Any, source: Source) -> str:
        """How to write ``example`` for this option in ``source``'s syntax."""
        if isinstance(example, _Phrase):
            return example.render(self, source)
        return f"e.g. {self.spelling(example, source)}"

    def spelling(self, value: Any, source: Source) -> str:
        """``value`` written for this option in ``source``'s syntax."""
        literal = _literal(value)
        flag = source.flag or next((f.names[-1] for f in self.flags if not f.switch), None)
        if source.syntax == "flag" and flag:
            if isinstance(value, (list, tuple)):
                return f"{flag} {' '.join(str(v) for v in value)}"
            return f"{flag} {value}"
        if source.syntax in ("set", "flag"):
            return f"--set {self.key}={literal}"
        if source.syntax == "json":
            return f'"{self.name}": {_json_literal(value)}'
        if source.syntax == "python":
            return f"{self.name}={value!r}"
        return f"{self.name} = {literal}"

    def _check(self, value: Any, choices: bool = True) -> Any:
        if value is None:
            if self.nullable:
                return None
            raise _Invalid("must be set, got nothing", self.default)
        kind = self.kind
        if kind == "int":
            value = _as_int(value, self.default)
            self._in_range(value)
        elif kind == "float":
            value = _as_float(value, self.default)
            self._in_range(value)
        elif kind == "bool":
            if not isinstance(value, bool):
                if isinstance(value, str) and value.strip().lower() in ("true", "false"):
                    raise _Invalid(f"must be true or false, got the text {value!r}",
                                   _Phrase("unquoted", value.strip().lower() == "true"))
                raise _Invalid(f"must be true or false, got {_described(value)}",
                               _Phrase("bool"))
        elif kind in ("str", "path"):
            if not isinstance(value, str):
                what = "a file or folder path (text)" if kind == "path" else "a text"
                raise _Invalid(f"must be {what}, got {_described(value)}",
                               _Phrase("quoted", value if self.default is None
                                       else self.default))
            if kind == "path" and not value.strip():
                raise _Invalid("must name a file or folder, got an empty text")
        elif kind == "str_list":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, (list, tuple)) or not all(
                    isinstance(v, str) for v in value):
                raise _Invalid(f"must be a list of texts (e.g. column names), got "
                               f"{_described(value)}", ["site", "sex"])
            value = list(value)
        elif kind in ("int_list", "float_list"):
            what, parse, example = (("integers", _as_int, [16, 32]) if kind == "int_list"
                                    else ("numbers", _as_float, [0.5, 1.0]))
            if not isinstance(value, (list, tuple)) or not value:
                raise _Invalid(f"must be a non-empty list of {what}, got "
                               f"{_described(value)}", self.default or example)
            checked = []
            for item in value:
                try:
                    item = parse(item, None)
                    self._in_range(item)
                except _Invalid:
                    raise _Invalid(f"must be a list of {what} each {self.describe_range()}"
                                   f", got the element {_described(item)} in "
                                   f"{_described(value)}", self.default or example) from None
                checked.append(item)
            value = checked
        allowed = self.allowed() if choices else None
        if allowed is not None and value not in allowed:
            hint = ""
            if isinstance(value, str):
                close = difflib.get_close_matches(value, [str(a) for a in allowed], n=1,
                                                  cutoff=0.5)
                if close:
                    hint = f"; did you mean {close[0]!r}?"
            raise _Invalid(f"must be one of {', '.join(repr(a) for a in allowed)}, got "
                           f"{value!r}{hint}")
        return value

    def _in_range(self, value: float) -> None:
        low, high = self.low, self.high
        if low is not None and (value < low or (self.low_open and value == low)):
            relation = "greater than" if self.low_open else "at least"
            bound = f"{relation} {_number(low)}"
            if high is not None:
                bound = self._interval()
            raise _Invalid(f"must be {bound}, got {_number(value)}")
        if high is not None and (value > high or (self.high_open and value == high)):
            relation = "less than" if self.high_open else "at most"
            bound = self._interval() if low is not None else f"{relation} {_number(high)}"
            raise _Invalid(f"must be {bound}, got {_number(value)}")

    def _interval(self) -> str:
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        return f"in {left}{_number(self.low)}, {_number(self.high)}{right}"

    def describe_range(self) -> str:
        """The range in words, e.g. ``">= 1"`` (empty without one)."""
        if self.low is not None and self.high is not None:
            return self._interval()
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {_number(self.low)}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {_number(self.high)}"
        return ""


@dataclass(frozen=True)
class _Phrase:
    """A fix that is more than "e.g. VALUE"."""

    how: str
    value: Any = None

    def render(self, option: Option, source: Source) -> str:
        if self.how == "unquoted":
            return f"write it without quotes: {option.spelling(self.value, source)}"
        if self.how == "bool":
            if source.syntax == "flag":
                return f"e.g. {option.spelling(True, source)}"
            return (f"write {option.spelling(True, source)} or "
                    f"{option.spelling(False, source)}")
        if self.how == "quoted":
            example = self.value if isinstance(self.value, str) else (
                "runs/study" if option.kind == "path" else str(self.value))
            if source.syntax in ("toml", "json", "set"):
                return f"write it in quotes, e.g. {option.spelling(example, source)}"
            return f"e.g. {option.spelling(example, source)}"
        if self.how == "whole":
            return f"write a whole number, e.g. {option.spelling(self.value, source)}"
        raise AssertionError(self.how)  # pragma: no cover


def _literal(value: Any) -> str:
    """``value`` as a TOML literal."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def _json_literal(value: Any) -> str:
    import json

    return json.dumps(value)


def _number(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def _described(value: Any) -> str:
    """``value`` with what it is: ``2.9 (a decimal number)``, ``the text 'x'``."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, numbers.Integral):
        return f"{int(value)} (an integer)"
    if isinstance(value, numbers.Real):
        return f"{float(value)!r} (a decimal number)"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, (list, tuple)):
        return f"the list {list(value)!r}"
    return f"a {type(value).__name__}"


def _as_int(value: Any, default: Any) -> int:
    if isinstance(value, bool):
        raise _Invalid(f"must be an integer, got {_described(value)}",
                       _Phrase("whole", default if isinstance(default, int) else 1))
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, str):
        try:
            parsed = int(value.strip())
        except ValueError:
            example = default if isinstance(default, int) and not isinstance(
                default, bool) else 1
            raise _Invalid(f"must be an integer, got the text {value!r}",
                           _Phrase("whole", example)) from None
        raise _Invalid(f"must be an integer, got the text {value!r}",
                       _Phrase("unquoted", parsed))
    if isinstance(value, numbers.Real):
        number = float(value)
        example = round(number) if math.isfinite(number) else (
            default if isinstance(default, int) else 1)
        raise _Invalid(f"must be an integer, got {_described(value)}",
                       _Phrase("whole", example))
    raise _Invalid(f"must be an integer, got {_described(value)}",
                   _Phrase("whole", default if isinstance(default, int) else 1))


def _as_float(value: Any, default: Any) -> float:
    if isinstance(value, bool):
        raise _Invalid(f"must be a number, got {_described(value)}",
                       default if isinstance(default, float) else 1.0)
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isnan(number):
            raise _Invalid("must be a number, got nan",
                           default if isinstance(default, float) else 1.0)
        return number
    if isinstance(value, str):
        try:
            parsed = float(value.strip())
        except ValueError:
            raise _Invalid(f"must be a number, got the text {value!r}",
                           default if isinstance(default, float) else 1.0) from None
        raise _Invalid(f"must be a number, got the text {value!r}",
                       _Phrase("unquoted", parsed))
    raise _Invalid(f"must be a number, got {_described(value)}",
                   default if isinstance(default, float) else 1.0)


class OptionSchema:
    """A list of :class:`Option` entries: defaults, merging and validation.

    Parameters
    ----------
    options : iterable of Option
        The entries; keys must be unique.

    Examples
    --------
    >>> schema = OptionSchema([Option("seed", "int", 0, "seed", low=0),
    ...                        Option("train.steps", "int", 600, "steps", low=1)])
    >>> schema.defaults()
    {'seed': 0, 'train': {'steps': 600}}
    >>> schema.merge({"train": {"steps": 5}})["train"]["steps"]
    5
    """

    def __init__(self, options: Iterable[Option] = ()) -> None:
        self._options: dict[str, Option] = {}
        self.extend(options)

    def extend(self, options: Iterable[Option]) -> None:
        """Add entries (a command module adds the options only it uses).

        Parameters
        ----------
        options : iterable of Option

        Raises
        ------
        ValueError
            For a key that is already there.
        """
        for option in options:
            if option.key in self._options:
                raise ValueError(f"option {option.key!r} is defined twice")
            if option.key in self.sections():
                raise ValueError(f"option {option.key!r} has the name of a section")
            if option.section in self._options:
                raise ValueError(f"section {option.section!r} has the name of an option")
            if option.default is not None:
                option.check(option.default)
            self._options[option.key] = option

    def __iter__(self):
        return iter(self._options.values())

    def __len__(self) -> int:
        return len(self._options)

    def __getitem__(self, key: str) -> Option:
        return self._options[key]

    def __contains__(self, key: object) -> bool:
        return key in self._options

    def sections(self) -> list[str]:
        """The TOML tables, in the order of their first option."""
        return list(dict.fromkeys(o.section for o in self if o.section))

    def defaults(self, sections: Sequence[str] | None = None) -> dict:
        """Every option (of ``sections``, if given) with its default, nested by section.

        Parameters
        ----------
        sections : sequence of str, optional
            Keep only these tables (and no top-level options).

        Returns
        -------
        dict
        """
        out: dict = {}
        for option in self:
            if sections is not None and option.section not in sections:
                continue
            node = out.setdefault(option.section, {}) if option.section else out
            node[option.name] = copy.deepcopy(option.default)
        return out

    def merge(self, *layers: Mapping | None, sources: Sequence[Source] | None = None,
              sections: Sequence[str] | None = None) -> dict:
        """The defaults, then each layer of options over them, every value checked.

        Parameters
        ----------
        *layers : mapping or None
            Nested options (``{"train": {"steps": 5}, "seed": 1}``), later ones win.
        sources : sequence of Source, optional
            Where each layer came from (for messages); default: the Python API.
        sections : sequence of str, optional
            Only these tables are allowed (see :meth:`defaults`).

        Returns
        -------
        dict
            A new nested dictionary holding exactly the values that will be used.

        Raises
        ------
        ConfigError
            For an unknown key (with the closest known one), a table given a plain
            value, or a value that does not fit its option.
        """
        result = self.defaults(sections)
        sources = list(sources) if sources is not None else []
        for position, layer in enumerate(layers):
            if layer is None:
                continue
            source = sources[position] if position < len(sources) else PYTHON
            self._merge_layer(result, layer, source, sections)
        return result

    def check(self, config: Mapping, sections: Sequence[str] | None = None,
              source: Source = PYTHON) -> dict:
        """Check a complete configuration (e.g. one read back from a run's config.toml).

        Same as ``merge(config)``: missing keys take their defaults.
        """
        return self.merge(config, sources=[source], sections=sections)

    def _merge_layer(self, result: dict, layer: Mapping, source: Source,
                     sections: Sequence[str] | None) -> None:
        where = "" if source is PYTHON else f"{source.label}: "
        if not isinstance(layer, Mapping):
            raise ConfigError(f"{where}options must be a table (mapping), got "
                              f"{type(layer).__name__}")
        for key, value in layer.items():
            key = str(key)
            if key in result and isinstance(result[key], dict) and (
                    sections is None or key in sections):
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{where}{key!r} is a section of options (a TOML "
                                      f"table [{key}]), got the value {value!r}")
                for name, item in value.items():
                    full = f"{key}.{name}"
                    if full not in self._options:
                        self._unknown(full, where, sections)
                    result[key][str(name)] = self._options[full].check(item, source)
            elif key in self._options and self._options[key].section is None and (
                    sections is None):
                result[key] = self._options[key].check(value, source)
            else:
                self._unknown(key, where, sections)

    def _unknown(self, key: str, where: str, sections: Sequence[str] | None) -> None:
        known = [o.key for o in self
                 if sections is None or o.section in sections]
        known_sections = [s for s in self.sections() if sections is None or s in sections]
        section, _, name = key.rpartition(".")
        if section and section in known_sections:
            pool = [o.name for o in self if o.section == section]
            close = difflib.get_close_matches(name, pool, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{where}unknown option {key!r}{hint} (the options of "
                              f"[{section}] are {', '.join(pool)})")
        close = difflib.get_close_matches(key, known + known_sections, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        tops = [k for k in known if "." not in k]
        raise ConfigError(f"{where}unknown option {key!r}{hint} (known: the sections "
                          f"{', '.join(known_sections)}"
                          + (f" and the keys {', '.join(tops)}" if tops else "") + ")")


def _encoder_kinds() -> tuple[str, ...]:
    """``demo`` builds these; ``train`` any family of the encoder registry."""
    return tuple(dict.fromkeys(("auto", "pca", *_trainable_kinds())))


def _trainable_kinds() -> tuple[str, ...]:
    from .encoders._registry import encoder_names

    return encoder_names()


def _opt(key, kind, default, help, **kw) -> Option:
    flags = kw.pop("flags", ())
    return Option(key, kind, default, help, flags=tuple(flags), **kw)


F = Flag

#: Every option of latentaudit's runs.  Sections and keys are those of a TOML config
#: (see ``examples/audit.toml``); flags are grouped by scope (a command takes the
#: scopes it lists).  The audit's sections (``projection`` ... ``report``) are also the
#: ``options`` of :func:`latentaudit.pipeline.run_audit`.
OPTIONS = OptionSchema([
    # -- run -----------------------------------------------------------------------------
    _opt("output", "path", None, "folder for the results", metavar="DIR",
         flags=[F(("-o", "--output"), ("run",))]),
    _opt("seed", "int", 0, "seed of every random choice", low=0, high=2**32 - 1,
         metavar="N", flags=[F(("--seed",), ("run",))]),
    _opt("device", "str", "cpu", "torch device, e.g. cpu or cuda",
         flags=[F(("--device",), ("run",))]),
    _opt("nproc", "int", 1, "processes on this machine, launched with PyTorch's torchrun "
         "(train: --batch-size is the global batch, each process takes a slice; embed: one "
         "shard of the subjects each); under torchrun itself the launcher decides",
         low=1, metavar="N", flags=[F(("--nproc",), ("train", "embed"))]),
    # -- data ----------------------------------------------------------------------------
    _opt("data.images", "path", None, "folder of NIfTI files (*.nii, *.nii.gz), one per "
         "subject", metavar="DIR", flags=[F(("--images",), ("data",))]),
    _opt("data.metadata", "path", None, "CSV/TSV table with one row per subject",
         metavar="CSV", flags=[F(("--metadata",), ("data",))]),
    _opt("data.id_column", "str", "subject", "column of the table holding the subject "
         "ids, matched to the file names without .nii/.nii.gz", metavar="NAME",
         flags=[F(("--id-column",), ("data",))]),
    _opt("data.spatial_dims", "int", 2, "2: slices of every volume; 3: whole volumes",
         choices=(2, 3), flags=[F(("--spatial-dims",), ("data",))]),
    _opt("data.slice_axis", "int", 0, "axis of the 2-D slices: 0 sagittal, 1 coronal, "
         "2 axial", choices=(0, 1, 2), flags=[F(("--slice-axis",), ("data",))]),
    _opt("data.n_slices", "int", 1, "central slices per subject in 2-D", low=1,
         metavar="N", flags=[F(("--n-slices",), ("data",))]),
    _opt("data.size", "int", 64, "side of the (square) images or (cubic) volumes, in "
         "pixels", low=2, metavar="N", flags=[F(("--size",), ("data",))]),
    _opt("data.on_error", "str", "raise", "stop at a bad file or id, or leave it out and "
         "list it", choices=("raise", "skip"), flags=[F(("--on-error",), ("data",))]),
    _opt("data.n_subjects", "int", None, "audit a random subset of this many subjects of "
         "the demo cohort (default: all)", low=10, metavar="N",
         flags=[F(("--n-subjects",), ("demo",))]),
    _opt("data.demo_size", "int", 64, "image side of the demo cohort", choices=(64, 128),
         flags=[F(("--demo-size",), ("demo",))]),
    # -- encoder -------------------------------------------------------------------------
    _opt("encoder.kind", "str", "auto", "the model", choices=_encoder_kinds, flags=[
        F(("--encoder",), ("demo",),
          help="auto: the shipped Diffusion Autoencoder weights if installed, else a "
               "beta-VAE trained in the run; dae: the shipped weights (or a DAE trained in "
               "the run without them); betavae: a small beta-VAE trained in the run; pca: "
               "pixel PCA, a linear baseline without a deep model (seconds)"),
        F(("--encoder",), ("train",), help="the model family (default dae)",
          choices=_trainable_kinds)]),
    _opt("encoder.pretrained", "path", None, "a saved encoder", metavar="DIR", flags=[
        F(("--pretrained",), ("demo",), help="use this saved encoder instead of training "
                                               "one"),
        F(("--encoder",), ("embed",),
          help="a folder written by 'latentaudit train' (OUTPUT/encoder) or by "
               "save_pretrained, or 'demo' for the shipped demo DAE (required)"),
        F(("--encoder",), ("audit",),
          help="the encoder that made them, for decoded counterfactuals"),
        F(("--encoder",), ("explain",),
          help="generative encoder for counterfactuals ('demo' for the shipped demo DAE)"),
        F(("--encoder",), ("sensitivity",),
          help="the encoder to measure: a folder written by 'latentaudit train' or "
               "save_pretrained, or 'demo' for the shipped demo DAE (default: pixel PCA "
               "fitted on the images, a baseline without a deep model)")]),
    _opt("encoder.preset", "str", None, "the family's named configuration (default "
         "cpu64); DAE: tiny, cpu64, paper64, paper256, tiny3d, volume64; beta-VAE: tiny, "
         "cpu64", flags=[F(("--preset",), ("train",))]),
    _opt("encoder.latent_dim", "int", None, "embedding length (default: the preset's; 32 "
         "for pixel PCA)", low=1, metavar="N", flags=[F(("--latent-dim",), ("train",))]),
    _opt("encoder.channels", "int_list", None, "channels per level (default: the "
         "preset's)", low=1),
    _opt("encoder.beta", "float", None, "beta-VAE weight of the KL term (default: the "
         "preset's)", low=0.0),
    # -- train ---------------------------------------------------------------------------
    _opt("train.steps", "int", 600, "optimiser steps of an encoder trained in the run",
         low=1, metavar="N", flags=[F(("--train-steps", "--steps"), ("train",)),
                                    F(("--train-steps",), ("demo",))]),
    _opt("train.batch_size", "int", 32, "images per training step", low=1, metavar="N",
         flags=[F(("--batch-size",), ("train",))]),
    _opt("train.lr", "float", None, "learning rate (default: the model's)", low=0.0,
         low_open=True),
    _opt("train.resume", "bool", False, "continue the run saved in OUTPUT/checkpoints",
         flags=[F(("--resume",), ("train",), const=True)]),
    # -- embed ---------------------------------------------------------------------------
    _opt("embed.batch_size", "int", 64, "images per batch when embedding", low=1,
         metavar="N", flags=[F(("--batch-size",), ("embed",))]),
    _opt("embed.aggregate", "str", "subject", "one row per subject (slices joined) or "
         "per slice", choices=("subject", "none"), flags=[F(("--aggregate",), ("embed",))]),
    _opt("embed.combine", "str", "concat", "how a subject's slices are joined",
         choices=("concat", "mean")),
    _opt("embed.reuse", "bool", True, "reuse the encoder and embeddings of an earlier run "
         "with the same settings in the output folder", flags=[
             F(("--fresh",), ("demo",), const=False,
               help="recompute the encoder and embeddings even if the output folder holds "
                    "them from a run with the same settings")]),
    # -- inputs --------------------------------------------------------------------------
    _opt("inputs.embeddings", "path", None, "saved embeddings", metavar="DIR", flags=[
        F(("--embeddings",), ("audit",),
          help="embeddings saved by 'latentaudit embed' (or its output folder) (required)"),
        F(("--embeddings",), ("explain",),
          help="the subjects' embeddings from that encoder (default: encode the images)")]),
    _opt("inputs.labels", "path", None, "table of subject ids and group labels, e.g. the "
         "subjects.csv of an audit (required unless --delineation is given)", metavar="CSV",
         flags=[F(("--labels",), ("explain",))]),
    _opt("inputs.label_column", "str", "cluster", "column of the groups; -1: in no group",
         metavar="NAME", flags=[F(("--label-column",), ("explain",))]),
    _opt("inputs.delineation", "path", None, "groups drawn on a report's interactive map "
         "(its exported delineation file), refused for other subjects or embeddings than "
         "the map's", metavar="JSON", flags=[
             F(("--delineation",), ("audit",),
               help="test the groups drawn on a report's map (its exported delineation "
                    "file) instead of clustering; refused for other embeddings than the "
                    "map's"),
             F(("--delineation",), ("explain",),
               help="explain the groups drawn on a report's map (its exported delineation "
                    "file); the subjects are those of --labels (the audit's subjects.csv, "
                    "whose map must be the one drawn on), else of --embeddings, else of "
                    "--images")]),
    _opt("inputs.reference", "int", None, "group the others are compared with (default "
         "the largest)", metavar="N", flags=[F(("--reference",), ("explain",))]),
    # -- projection ----------------------------------------------------------------------
    _opt("projection.method", "str", "tsne", "2-D map of the embeddings (tsne: openTSNE)",
         choices=("tsne", "pca", "umap"), flags=[F(("--projection",), ("analysis",))]),
    _opt("projection.perplexity", "float", 30.0, "t-SNE perplexity", low=0.0,
         low_open=True),
    _opt("projection.max_iter", "int", None, "t-SNE/UMAP iterations (default: the "
         "method's)", low=1),
    # -- audit ---------------------------------------------------------------------------
    _opt("audit.clusterer", "str", "hdbscan", "clustering of the embedding",
         choices=("hdbscan", "kmeans", "gmm"),
         flags=[F(("--clusterer",), ("analysis", "sensitivity"))]),
    _opt("audit.n_clusters", "int", None, "clusters of kmeans/gmm (default: chosen from "
         "the data)", low=2),
    _opt("audit.min_cluster_size", "int", None, "smallest HDBSCAN cluster (default: "
         "chosen from the data)", low=2),
    _opt("audit.columns", "str_list", None, "metadata columns tested (default: all)"),
    _opt("audit.expected", "str_list", None, "columns whose structure is expected (ranked "
         "last), e.g. sex age", metavar="COLUMN",
         flags=[F(("--expected",), ("analysis", "sensitivity"))]),
    _opt("audit.nuisance", "str_list", None, "columns that should not matter (also "
         "probed), e.g. site", metavar="COLUMN",
         flags=[F(("--nuisance",), ("analysis", "sensitivity"))]),
    _opt("audit.within", "str", None, "cluster within each group of this categorical "
         "column, e.g. sex", metavar="COLUMN",
         flags=[F(("--within",), ("analysis", "sensitivity"))]),
    _opt("audit.n_permutations", "int", 199, "permutations of the association tests",
         low=0),
    _opt("audit.alpha", "float", 0.05, "false discovery rate of the findings", low=0.0,
         high=1.0, low_open=True, high_open=True),
    # -- probes --------------------------------------------------------------------------
    _opt("probes.columns", "str_list", None, "columns probed (default: every tested "
         "column)"),
    _opt("probes.model", "str", "linear", "probe model ('svm' as in the paper's Table 1)",
         choices=("linear", "svm")),
    _opt("probes.n_permutations", "int", 0, "permutations of a probe's p-value", low=0),
    # -- label issues --------------------------------------------------------------------
    _opt("label_issues.columns", "str_list", None, "columns whose labels are checked "
         "(default: the expected categorical columns, or all categorical ones)",
         metavar="COLUMN", flags=[F(("--label-issues",), ("analysis",))]),
    _opt("label_issues.show", "int", 30, "rows listed per column", low=0),
    # -- explain -------------------------------------------------------------------------
    _opt("explain.enabled", "bool", True, "explain the clusters (classifier, Grad-CAM, "
         "counterfactuals)", flags=[
             F(("--no-explain",), ("analysis",), const=False,
               help="skip the classifier, Grad-CAM and counterfactual sections")]),
    _opt("explain.clusters", "int", 3, "unexpected clusters explained", low=0),
    _opt("explain.images", "int", 6, "images shown per cluster", low=1),
    _opt("explain.classifier_steps", "int", 300, "training steps of the explaining "
         "classifier", low=1, metavar="N",
         flags=[F(("--classifier-steps",), ("analysis", "explain"))]),
    _opt("explain.batch_size", "int", 32, "classifier batch size", low=1),
    _opt("explain.widths", "int_list", [16, 32, 64, 128], "classifier channels per level",
         low=1),
    _opt("explain.cam", "str", "gradcam", "class activation map method (see "
         "latentaudit.explain.cam_methods)"),
    _opt("explain.counterfactual_images", "int", 3, "subjects per counterfactual strip",
         low=1),
    _opt("explain.counterfactual_points", "int", 5, "points along a counterfactual move",
         low=2),
    _opt("explain.decoder_steps", "int", 10, "steps of an iterative decoder (a Diffusion "
         "Autoencoder's DDIM steps)", low=1),
    # -- report --------------------------------------------------------------------------
    _opt("report.title", "str", "latentaudit audit report", "title of the report"),
    _opt("report.thumbnails", "int", 8, "thumbnails on the map", low=0),
    _opt("report.top_findings", "int", 6, "findings in the overview", low=1),
])

#: The sections that are options of the audit itself (:func:`run_audit`).
AUDIT_SECTIONS = ("projection", "audit", "probes", "label_issues", "explain", "report")
