"""Options of the audit (by section, with their defaults) and checks of the metadata."""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, InputTypeError
from ..options import AUDIT_SECTIONS, OPTIONS
from ..utils import check_option

__all__ = ["AUDIT_DEFAULTS", "auditor_params", "check_audit_options", "check_metadata",
           "merge_options"]

#: Options of :func:`run_audit` and :func:`run_explain`, by section, with their defaults.
#: ``None`` means "decided from the data" (see :func:`run_audit`).  Their types and ranges
#: are those of :data:`latentaudit.options.OPTIONS`, which checks them.
AUDIT_DEFAULTS: dict = OPTIONS.defaults(AUDIT_SECTIONS)

_MISSING_MARKERS_HINT = "leave missing values empty"


# --------------------------------------------------------------------------------------
# options
# --------------------------------------------------------------------------------------
def merge_options(defaults: Mapping, *overrides: Mapping | None, where: str = "") -> dict:
    """Merge nested option dictionaries; later ones win.  Unknown keys are errors.

    Parameters
    ----------
    defaults : mapping
        Every allowed key with its default; a nested mapping is a section.
    *overrides : mapping or None
        Options to apply in order.
    where : str
        Prefix of key names in messages (e.g. ``"audit."``).

    Returns
    -------
    dict
        A new nested dictionary.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError`) for an unknown key (with the
        closest known one), or a section given a plain value.

    Examples
    --------
    >>> merge_options({"audit": {"method": "hdbscan"}}, {"audit": {"method": "kmeans"}})
    {'audit': {'method': 'kmeans'}}
    """
    result = copy.deepcopy(dict(defaults))
    for override in overrides:
        if not override:
            continue
        if not isinstance(override, Mapping):
            raise ConfigError(f"options{' of ' + where.rstrip('.') if where else ''} must be a "
                              f"table (mapping), got {type(override).__name__}")
        for key, value in override.items():
            check_option(f"option '{where}{key}' (known options)", key, list(result))
            if isinstance(result[key], Mapping):
                if not isinstance(value, Mapping):
                    raise ConfigError(f"'{where}{key}' is a section of options (a TOML table), "
                                      f"got the value {value!r}")
                result[key] = merge_options(result[key], value, where=f"{where}{key}.")
            else:
                result[key] = copy.deepcopy(value)
    return result


def check_audit_options(options: Mapping | None, metadata: pd.DataFrame | None = None) -> dict:
    """Merge audit options into :data:`AUDIT_DEFAULTS` and check them against the metadata.

    Run it before anything slow, so a misspelt column ends the run at once.

    Parameters
    ----------
    options : mapping or None
        Options by section (see :func:`run_audit`).
    metadata : pandas.DataFrame, optional
        The table the audit will see; the column names in the options must be among its
        columns.

    Returns
    -------
    dict
        The merged options.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError`) for an unknown option, method or
        column, suggesting the closest one, or a value of the wrong type or out of range
        (checked by :data:`latentaudit.options.OPTIONS`).

    Examples
    --------
    >>> import pandas as pd
    >>> opts = check_audit_options({"audit": {"nuisance": ["site"]}},
    ...                            pd.DataFrame({"site": ["A", "B"]}))
    >>> opts["audit"]["nuisance"]
    ['site']
    """
    opts = OPTIONS.merge(options, sections=AUDIT_SECTIONS)
    if metadata is not None:
        known = [str(c) for c in metadata.columns]
        for section, key in (("audit", "columns"), ("audit", "expected"),
                             ("audit", "nuisance"), ("audit", "within"),
                             ("probes", "columns"), ("label_issues", "columns")):
            names = opts[section][key]
            if names is None:
                continue
            if isinstance(names, str):
                names = [names]
            if not isinstance(names, (list, tuple)):
                raise ConfigError(f"{section}.{key} must be a column name or a list of them, "
                                  f"got {names!r}")
            for name in names:
                check_option(f"{section}.{key} (a metadata column)", name, known)
    return opts


def auditor_params(audit: Mapping) -> dict:
    """The :class:`~latentaudit.ClusterAuditor` parameters of a checked ``audit`` section.

    Parameters
    ----------
    audit : mapping
        The ``"audit"`` section of :func:`check_audit_options`'s result.

    Returns
    -------
    dict

    Examples
    --------
    >>> params = auditor_params(check_audit_options({"audit": {"alpha": 0.1}})["audit"])
    >>> params["alpha"], params["clusterer"]
    (0.1, 'hdbscan')
    """
    return {"clusterer": audit["clusterer"], "n_clusters": audit["n_clusters"],
            "min_cluster_size": audit["min_cluster_size"], "columns": audit["columns"],
            "expected": audit["expected"], "nuisance": audit["nuisance"],
            "within": audit["within"], "n_permutations": int(audit["n_permutations"]),
            "alpha": float(audit["alpha"])}


# --------------------------------------------------------------------------------------
# metadata checks
# --------------------------------------------------------------------------------------
def _value_kind(value) -> str | None:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, numbers.Number):
        return None if isinstance(value, float) and math.isnan(value) else "number"
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            float(text)
        except ValueError:
            return "text"
        return "number"
    return "text"


def check_metadata(metadata: pd.DataFrame, *, id_column: str | None = None,
                   source: str = "the metadata table") -> pd.DataFrame:
    """Reject metadata columns that mix numbers and text.

    A column such as ``age`` holding ``52``, ``61.5`` and ``"n/a"`` is read as text, so it
    would be tested as a category with one level per age.  This check names the column
    and the offending values instead.

    Parameters
    ----------
    metadata : pandas.DataFrame
        The table.
    id_column : str, optional
        The id column, which may mix anything.
    source : str
        What the table is, for messages (e.g. the CSV file's name).

    Returns
    -------
    pandas.DataFrame
        ``metadata`` unchanged.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.DataError`) naming the first mixed column, how
        many values of each kind it holds, examples and the rows they are in.

    Examples
    --------
    >>> import pandas as pd
    >>> check_metadata(pd.DataFrame({"age": [50, 61]})).shape
    (2, 1)
    """
    if not isinstance(metadata, pd.DataFrame):
        raise InputTypeError(f"metadata must be a pandas DataFrame, got "
                             f"{type(metadata).__name__}")
    for column in metadata.columns:
        if column == id_column:
            continue
        values = metadata[column]
        if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
            continue  # numbers, booleans, dates and categories are one kind each
        kinds = values.astype(object).map(_value_kind)
        counts = kinds.value_counts()
        if counts.get("number", 0) and counts.get("text", 0):
            minority = "text" if counts["text"] <= counts["number"] else "number"
            rows = np.flatnonzero((kinds == minority).to_numpy())
            examples = pd.unique(values.iloc[rows].astype(str))[:3]
            if id_column is not None and id_column in metadata.columns:
                where = "subjects " + ", ".join(
                    repr(str(v)) for v in metadata[id_column].iloc[rows[:3]])
            else:
                where = "rows " + ", ".join(str(int(r) + 1) for r in rows[:3])
            more = f" and {len(rows) - 3} more" if len(rows) > 3 else ""
            shown = ", ".join(repr(str(e)) for e in examples)
            if minority == "text":
                fix = (f"make it all numbers ({_MISSING_MARKERS_HINT} instead of writing "
                       f"{shown})")
            else:
                fix = "make it all text (or all numbers)"
            raise DataError(
                f"column {str(column)!r} of {source} mixes numbers and text: "
                f"{int(counts['number'])} numeric and {int(counts['text'])} text values, e.g. "
                f"{shown} at {where}{more}; {fix}")
    return metadata

