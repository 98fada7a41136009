"""Rows carry identity: the default id column, the row that stands for a subject, and what
an estimator takes from :class:`~latentaudit.Embeddings` given in place of an array.

NumPy and pandas only (no torch), so the analysis layer can use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["DEFAULT_ID_COLUMN", "Rows", "middle_rows", "rows_of"]

#: Name of the id column when none is given: datasets, embeddings and result tables.
DEFAULT_ID_COLUMN = "subject"


def middle_rows(ids, slice_index=None) -> pd.Series:
    """The row that stands for each id: the middle of its rows in slice order.

    Parameters
    ----------
    ids : sequence of str
        The id of every row; several rows may share one (the slices of a volume).
    slice_index : sequence of int, optional
        The position of every row among its id's rows; default the order of the rows.

    Returns
    -------
    pandas.Series
        Row position indexed by id, ids in order of first appearance.

    Examples
    --------
    >>> from latentaudit._identity import middle_rows
    >>> middle_rows(["a", "b", "a", "a"], [2, 0, 0, 1]).to_dict()
    {'a': 3, 'b': 1}
    """
    ids = np.asarray([str(i) for i in ids], dtype=object)
    slices = np.zeros(len(ids)) if slice_index is None else np.asarray(slice_index)
    codes, uniques = pd.factorize(pd.Series(ids, dtype=object), sort=False)
    order = np.lexsort((np.arange(len(ids)), slices, codes))
    counts = np.bincount(codes, minlength=len(uniques))
    starts = np.cumsum(counts) - counts
    return pd.Series(order[starts + (counts - 1) // 2], index=pd.Index(uniques, dtype=object))


@dataclass
class Rows:
    """What an estimator reads from its input: the array, the table, the ids.

    Attributes
    ----------
    z : array-like
        The embedding as given (an :class:`~latentaudit.Embeddings`' ``z``).
    metadata : pandas.DataFrame or None
        One row per row of ``z``.
    ids : numpy.ndarray of str
        The id of every row (the row positions when nothing names them).
    id_column : str
        The name of the ids' column.
    embeddings : Embeddings or None
        The :class:`~latentaudit.Embeddings` given, if one was.
    """

    z: object
    metadata: pd.DataFrame | None
    ids: np.ndarray
    id_column: str
    embeddings: object = None


def rows_of(X, metadata=None, *, id_column: str = DEFAULT_ID_COLUMN) -> Rows:
    """Unpack an estimator's input: an :class:`~latentaudit.Embeddings`, or an array and an
    optional metadata table.

    An Embeddings brings its metadata (unless ``metadata`` is given) and its ids; with an
    array, the ids are the table's ``id_column`` when it has one, else the row positions.

    Parameters
    ----------
    X : Embeddings or array-like of shape (n_samples, n_features)
        The embedding.
    metadata : pandas.DataFrame, optional
        One row per row of ``X``.
    id_column : str, default "subject"
        The table's id column (ignored for an Embeddings, which names its own).

    Returns
    -------
    Rows

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from latentaudit._identity import rows_of
    >>> rows = rows_of(np.zeros((2, 3)), pd.DataFrame({"subject": ["s1", "s2"]}))
    >>> rows.ids.tolist(), rows.id_column
    (['s1', 's2'], 'subject')
    """
    from .embeddings import Embeddings

    if isinstance(X, Embeddings):
        table = X.metadata if metadata is None else metadata
        return Rows(X.z, table, np.asarray(X.ids, dtype=object), X.id_column, X)
    n = len(X) if hasattr(X, "__len__") else 0
    if isinstance(metadata, pd.DataFrame) and id_column in metadata.columns \
            and len(metadata) == n:
        ids = metadata[id_column].astype(str).to_numpy(dtype=object)
    else:
        ids = np.array([str(i) for i in range(n)], dtype=object)
    return Rows(X, metadata, ids, id_column)
