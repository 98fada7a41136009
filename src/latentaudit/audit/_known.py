"""What the known metadata columns explain: design matrices, strata and residuals.

The audit asks what an embedding carries *beyond* the structure a user already knows about.
Two tools serve that question:

- :func:`known_design` builds a regression design from metadata columns (one-hot levels of
  categorical columns and their pairwise interactions, a cubic spline basis of continuous
  columns, indicators of missing values), and :func:`residualize` removes its least-squares
  fit from an array: what remains is the part of the embedding that the columns do not
  explain, where unnamed subgroups are searched for.
- :func:`known_strata` cuts the rows into strata of the same columns (levels, and quantile
  bins of continuous columns), within which a permutation test of another column is a test
  of conditional independence given the known columns.

NumPy, pandas and scikit-learn only.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from sklearn.preprocessing import SplineTransformer

from ..errors import ConfigError, DataError

__all__ = ["known_design", "known_strata", "residualize"]

_MIN_CELL = 5  # an interaction cell needs this many rows to get its own coefficient


def _categorical_codes(values: pd.Series) -> np.ndarray:
    """Integer codes of a column, missing values as their own level."""
    codes, _ = pd.factorize(values, sort=True, use_na_sentinel=True)
    codes = codes.astype(np.int64)
    codes[codes < 0] = codes.max() + 1
    return codes


def _one_hot(codes: np.ndarray, drop_first: bool = True) -> np.ndarray:
    levels = int(codes.max()) + 1
    out = np.zeros((codes.size, levels), dtype=np.float64)
    out[np.arange(codes.size), codes] = 1.0
    return out[:, 1:] if drop_first else out


def _spline_basis(values: pd.Series, n_knots: int) -> np.ndarray:
    x = values.to_numpy(dtype=np.float64)
    missing = np.isnan(x)
    filled = np.where(missing, np.nanmedian(x) if (~missing).any() else 0.0, x)
    distinct = np.unique(filled).size
    if distinct < 3:
        basis = (filled - filled.mean())[:, None]
    else:
        knots = max(2, min(n_knots, distinct - 1))
        spline = SplineTransformer(n_knots=knots, degree=3, knots="quantile",
                                   extrapolation="linear", include_bias=False)
        basis = spline.fit_transform(filled[:, None])
    if missing.any():
        basis = np.column_stack([basis, missing.astype(np.float64)])
    return basis


def known_design(metadata: pd.DataFrame, kinds: dict[str, str], *, n_knots: int = 4,
                 interactions: bool = True) -> np.ndarray:
    """A regression design that spans what metadata columns can explain.

    Parameters
    ----------
    metadata : pandas.DataFrame
        One row per embedding row.
    kinds : dict
        ``{column: "categorical" or "continuous"}`` of the columns to use.
    n_knots : int, default 4
        Knots (at quantiles) of the cubic spline basis of each continuous column, so that
        smooth non-linear effects (an age effect that speeds up late in life) are
        explained, not only linear ones.
    interactions : bool, default True
        Add one column per cell of every pair of categorical columns (e.g. site x sex)
        that holds at least 5 rows, so that an effect of one column that differs between
        the levels of another is explained too.

    Returns
    -------
    numpy.ndarray of shape (n_samples, n_terms)
        The design, with an intercept column first.  Missing values get an indicator
        column (categorical: a level of their own).

    Raises
    ------
    ValueError
        (as :class:`~latentaudit.errors.ConfigError`) for an unknown kind or column.

    Examples
    --------
    >>> import pandas as pd
    >>> meta = pd.DataFrame({"site": list("AABBCC"), "age": [20, 30, 40, 50, 60, 70]})
    >>> known_design(meta, {"site": "categorical"}).shape
    (6, 3)
    """
    n = len(metadata)
    blocks = [np.ones((n, 1))]
    categorical = []
    for column, kind in kinds.items():
        if column not in metadata.columns:
            raise ConfigError(f"column {column!r} is not in the metadata; columns: "
                              f"{list(metadata.columns)}")
        if kind == "categorical":
            codes = _categorical_codes(metadata[column])
            categorical.append(codes)
            blocks.append(_one_hot(codes))
        elif kind == "continuous":
            blocks.append(_spline_basis(metadata[column], n_knots))
        else:
            raise ConfigError(f"kind of column {column!r} must be 'categorical' or "
                              f"'continuous', got {kind!r}")
    if interactions:
        for a, b in itertools.combinations(categorical, 2):
            cells = a * (int(b.max()) + 1) + b
            values, counts = np.unique(cells, return_counts=True)
            kept = values[counts >= _MIN_CELL]
            if kept.size:
                blocks.append((cells[:, None] == kept[None, :]).astype(np.float64))
    return np.hstack(blocks)


def residualize(x, design) -> np.ndarray:
    """Remove the least-squares fit of a design from every column of ``x``.

    Parameters
    ----------
    x : array-like of shape (n_samples, n_features)
        Values, e.g. an embedding.
    design : array-like of shape (n_samples, n_terms)
        From :func:`known_design` (rank deficiency is fine).

    Returns
    -------
    numpy.ndarray of shape (n_samples, n_features), float64
        ``x`` minus its projection on the column space of ``design``.

    Raises
    ------
    ValueError
        (as :class:`~latentaudit.errors.DataError`) when the row counts differ.

    Examples
    --------
    >>> import numpy as np
    >>> group = np.repeat([0.0, 1.0], 3)
    >>> x = np.c_[10 * group + np.arange(6) % 3]
    >>> design = np.c_[np.ones(6), group]
    >>> (residualize(x, design).ravel().round(6) + 0.0).tolist()
    [-1.0, 0.0, 1.0, -1.0, 0.0, 1.0]
    """
    x = np.asarray(x, dtype=np.float64)
    design = np.asarray(design, dtype=np.float64)
    if x.shape[0] != design.shape[0]:
        raise DataError(f"x has {x.shape[0]} rows but the design has {design.shape[0]}")
    # an orthonormal basis of the design's column space (rank-revealing via SVD)
    u, s, _ = np.linalg.svd(design, full_matrices=False)
    basis = u[:, s > s.max() * max(design.shape) * np.finfo(np.float64).eps]
    return x - basis @ (basis.T @ x)


def known_strata(metadata: pd.DataFrame, kinds: dict[str, str], *, n_bins="auto",
                 min_size: int = 2, rows_per_stratum: int = 20) -> np.ndarray:
    """Strata of rows that agree on the known columns.

    Categorical columns contribute their levels, continuous ones ``n_bins`` quantile
    bins; a stratum is one combination.  Permuting another column within these strata
    keeps its relation to the known columns (approximately, for binned continuous ones)
    and breaks only its relation to everything else.

    Parameters
    ----------
    metadata : pandas.DataFrame
        One row per embedding row.
    kinds : dict
        ``{column: "categorical" or "continuous"}``; empty: one stratum.
    n_bins : int or "auto", default "auto"
        Quantile bins of each continuous column.  ``"auto"``: the most bins, up to 5,
        for which the combinations (levels of the categorical columns times bins of the
        continuous ones) hold ``rows_per_stratum`` rows on average, and 1 (the
        continuous columns are left to the residualisation) when even 2 bins would not.
        Finer strata leave a permutation test within them with nothing to permute: with
        sex, age, height and weight known, 5 bins make 250 strata of 300 rows.
    min_size : int, default 2
        Strata smaller than this are merged into one stratum of leftovers (a stratum of
        one row carries no information for a permutation test).
    rows_per_stratum : int, default 20
        The average stratum size that ``n_bins="auto"`` keeps.

    Returns
    -------
    numpy.ndarray of int64, shape (n_samples,)
        Stratum codes ``0 .. n_strata - 1``.

    Examples
    --------
    >>> import pandas as pd
    >>> meta = pd.DataFrame({"sex": list("FFMM"), "age": [20, 60, 30, 70]})
    >>> kinds = {"sex": "categorical", "age": "continuous"}
    >>> known_strata(meta, kinds, n_bins=2, min_size=1).tolist()
    [0, 1, 2, 3]
    """
    n = len(metadata)
    if isinstance(n_bins, str) and n_bins == "auto":
        n_bins = _auto_bins(metadata, kinds, n / max(int(rows_per_stratum), 1))
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ConfigError(f"n_bins must be 'auto' or at least 1, got {n_bins!r}")
    key = np.zeros(n, dtype=np.int64)
    for column, kind in kinds.items():
        values = metadata[column]
        if kind == "continuous":
            x = values.to_numpy(dtype=np.float64)
            codes = np.full(n, -1, dtype=np.int64)
            present = ~np.isnan(x)
            if present.any():
                edges = np.unique(np.quantile(x[present], np.linspace(0, 1, n_bins + 1)[1:-1]))
                codes[present] = np.searchsorted(edges, x[present], side="right")
            codes[~present] = codes.max() + 1
        else:
            codes = _categorical_codes(values)
        _, key = np.unique(key * (int(codes.max()) + 1) + codes, return_inverse=True)
    _, strata, counts = np.unique(key, return_inverse=True, return_counts=True)
    small = counts[strata] < min_size
    if small.any():
        strata = np.where(small, -1, strata)
        _, strata = np.unique(strata, return_inverse=True)
    return strata.astype(np.int64)


def _auto_bins(metadata: pd.DataFrame, kinds: dict[str, str], most_strata: float) -> int:
    """The most quantile bins (up to 5) that keep the number of strata within
    ``most_strata``; 1 when even two bins per continuous column exceed it."""
    levels = 1
    continuous = 0
    for column, kind in kinds.items():
        if kind == "continuous":
            continuous += 1
        else:
            levels *= max(int(metadata[column].nunique(dropna=False)), 1)
    if continuous == 0:
        return 5
    for bins in range(5, 1, -1):
        if levels * bins ** continuous <= most_strata:
            return bins
    return 1
