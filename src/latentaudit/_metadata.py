"""Checks of metadata tables shared by the command line and the Python API."""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd

from .errors import DataError, InputTypeError

__all__ = ["check_metadata"]

_MISSING_MARKERS_HINT = "leave missing values empty"


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
