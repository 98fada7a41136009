"""A collection of options: defaults, merging of layers and unknown keys (see
:mod:`latentaudit.options`)."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Mapping, Sequence

from ._option import PYTHON, Option, Source
from .errors import ConfigError

__all__ = ["OptionSchema"]


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
