"""One option of a run and the checking of its values (see :mod:`latentaudit.options`).

:class:`Option` is one entry of the schema: its key, type, default, range or choices and
flags, and :meth:`Option.check`, which refuses a value that does not fit (never coercing
it) with a message naming the option, where the value came from and how to write it.
:class:`Source` says where a value came from, :class:`Flag` is a command-line flag that
sets an option.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

__all__ = ["KINDS", "PYTHON", "Flag", "Option", "Source"]

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
