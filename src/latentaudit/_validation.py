"""Degenerate inputs are findings, not results: the checks every analysis runs on an
embedding first.

An embedding that carries no information (every row the same, NaN from a diverged
encoder) must stop an audit with a message that says so, never yield clusters, findings or
label issues computed from nothing.  :func:`check_embedding` runs before
:class:`~latentaudit.ClusterAuditor`, :class:`~latentaudit.Projector` and
:func:`~latentaudit.pipeline.run_audit` analyse anything; :func:`validate_embedding` adds
scikit-learn's input validation (types, shapes, sparse and complex input) in front of it.

NumPy only (no torch).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ._streaming import row_blocks
from .errors import DataError, InputTypeError

__all__ = ["EmbeddingCheck", "check_embedding", "validate_embedding"]

_RANK_ROWS = 2000  # rows the rank is estimated on
_RELATIVE_TOL = 1e-6  # a dimension whose range is below this share of the largest value is constant


@dataclass(frozen=True)
class EmbeddingCheck:
    """What :func:`check_embedding` found about an embedding that passed.

    Attributes
    ----------
    n_rows, n_dims : int
        Its shape.
    n_distinct : int
        Rows that differ from every other row.
    n_constant_dims : int
        Dimensions with the same value in every row.
    rank : int
        Numerical rank of the centred embedding (estimated on at most 2,000 rows).
    """

    n_rows: int
    n_dims: int
    n_distinct: int
    n_constant_dims: int
    rank: int


def check_embedding(z, *, name: str = "the embeddings", owner: str | None = None,
                    min_rows: int = 2) -> EmbeddingCheck:
    """Refuse an embedding that carries no information; warn about a weak one.

    Errors: NaN or infinite values (all of them, or some rows), fewer than ``min_rows``
    rows, and a constant embedding (every row the same).  Warnings: constant
    dimensions, duplicated rows, and an embedding that varies along one direction only.

    Parameters
    ----------
    z : numpy.ndarray of shape (n_rows, n_dims)
        A real-valued embedding.
    name : str, default "the embeddings"
        What to call it in messages.
    owner : str, optional
        Who needs the rows (e.g. ``"ClusterAuditor"``), for the message on too few rows.
    min_rows : int, default 2
        The fewest rows the analysis can use.

    Returns
    -------
    EmbeddingCheck

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.DataError`) for NaN or infinite values, too few
        rows, or a constant (uninformative) embedding.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit._validation import check_embedding
    >>> check_embedding(np.random.default_rng(0).normal(size=(20, 4))).rank
    4
    >>> check_embedding(np.ones((40, 8)))
    Traceback (most recent call last):
    ...
    latentaudit.errors.DataError: the embeddings are constant: all 40 rows are identical ...
    """
    z = np.asarray(z)
    if z.ndim != 2:
        raise DataError(f"{name} must be 2-D (n_rows, n_dims), got shape {z.shape}")
    n, d = z.shape
    # one pass over blocks of rows: a memory-mapped million-row embedding is read, not
    # copied (per-row finiteness, column ranges, row hashes for the duplicate count)
    finite, low, high, hashes = _row_statistics(z)
    if n and not finite.any():
        raise DataError(
            f"{name} are all NaN or inf ({n} rows x {d} dimensions): there is no embedding "
            f"to analyse; a diverged or broken encoder gives this, so check the encoder and "
            f"its inputs")
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise DataError(
            f"{name} have NaN or inf values in {bad.size} of {n} rows (first at row "
            f"{int(bad[0])}); drop those rows or fix the encoder that made them")
    if n < min_rows:
        who = f"{owner} needs" if owner else "the analysis needs"
        raise DataError(f"{who} at least {min_rows} samples (rows, one per subject), got "
                        f"n_samples = {n}")
    if n == 0 or d == 0:
        return EmbeddingCheck(n, d, n, 0, 0)
    scale = float(max(np.abs(low).max(), np.abs(high).max()))
    spread = high - low
    constant = spread <= _RELATIVE_TOL * max(scale, np.finfo(np.float64).tiny)
    if constant.all():
        raise DataError(
            f"{name} are constant: all {n} rows are identical ({d} dimensions, each the same "
            f"in every row), so they are uninformative: nothing can be clustered, tested or "
            f"flagged from them. An untrained or collapsed encoder gives such embeddings; "
            f"check the encoder and its inputs")
    # equal rows hash alike; two different rows share a hash only if they differ
    # orthogonally to two random directions
    n_distinct = int(np.unique(hashes, axis=0).shape[0])
    rank = _rank(z, np.random.default_rng(0))
    if constant.any():
        warnings.warn(f"{int(constant.sum())} of the {d} dimensions of {name} are constant "
                      f"(the same in every row); they carry no information", UserWarning,
                      stacklevel=3)
    if n_distinct < n:
        warnings.warn(f"{n - n_distinct} of the {n} rows of {name} duplicate another row "
                      f"exactly ({n_distinct} distinct rows); were items embedded twice?",
                      UserWarning, stacklevel=3)
    if rank <= 1 < min(n - 1, d):
        warnings.warn(f"{name} vary along one direction only (rank 1): clusters and tests "
                      f"see a single number per row", UserWarning, stacklevel=3)
    return EmbeddingCheck(n, d, n_distinct, int(constant.sum()), rank)


def _row_statistics(z: np.ndarray):
    """Per-row finiteness, column minima and maxima, and two random projections of every
    row (summed row by row, so equal rows get equal hashes whatever their block)."""
    n, d = z.shape
    finite = np.ones(n, dtype=bool)
    low, high = np.full(d, np.inf), np.full(d, -np.inf)
    hashes = np.empty((n, 2))
    directions = np.random.default_rng(12345).normal(size=(2, d))
    for rows in row_blocks(n):
        block = np.asarray(z[rows], dtype=np.float64)
        finite[rows] = np.isfinite(block).all(axis=1)
        np.minimum(low, block.min(axis=0, initial=np.inf), out=low)
        np.maximum(high, block.max(axis=0, initial=-np.inf), out=high)
        with np.errstate(invalid="ignore", over="ignore"):  # non-finite rows are refused
            for j in range(2):
                hashes[rows, j] = (block * directions[j]).sum(axis=1)
    return finite, low, high, hashes


def _rank(values: np.ndarray, rng: np.random.Generator) -> int:
    rows = values
    if len(rows) > _RANK_ROWS:
        rows = rows[np.sort(rng.choice(len(rows), _RANK_ROWS, replace=False))]
    rows = np.asarray(rows, dtype=np.float64)
    centred = rows - rows.mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    if singular.size == 0 or singular[0] == 0:
        return 0
    return int((singular > singular[0] * 1e-5).sum())


def validate_embedding(estimator, X, *, reset: bool = True, ensure_min_samples: int = 1,
                       degenerate: bool = True, name: str = "X") -> np.ndarray:
    """scikit-learn's input validation, then :func:`check_embedding`.

    scikit-learn's ``validate_data`` refuses sparse and complex input, converts lists and
    DataFrames, and records ``n_features_in_`` (``reset=True``) or checks it; NaN and
    infinite values get latentaudit's message instead of scikit-learn's advice.

    Parameters
    ----------
    estimator : BaseEstimator
        The estimator being fitted (or used).
    X : array-like of shape (n_samples, n_features)
        The input.
    reset : bool, default True
        True in ``fit``; False to check new data against the fitted width.
    ensure_min_samples : int, default 1
        The fewest rows (the message names ``n_samples``, as scikit-learn's does).
    degenerate : bool, default True
        Also refuse constant input (see :func:`check_embedding`); only the NaN check runs
        when False (new points to place or look up).
    name : str, default "X"
        What to call the input in messages.

    Returns
    -------
    numpy.ndarray
        float64 or float32.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.DataError`) for invalid input.
    TypeError
        (as :class:`latentaudit.errors.InputTypeError`) for input of the wrong type.
    """
    try:
        from sklearn.utils.validation import validate_data
    except ImportError:  # pragma: no cover - scikit-learn < 1.6
        def validate_data(est, X, ensure_all_finite=True, **kwargs):
            return est._validate_data(X, force_all_finite=ensure_all_finite, **kwargs)
    try:
        # the fewest rows are checked below, in latentaudit's words
        X = validate_data(estimator, X, dtype=[np.float64, np.float32], accept_sparse=False,
                          ensure_all_finite=False, reset=reset)
    except TypeError as err:
        raise InputTypeError(str(err)) from err
    except ValueError as err:
        raise DataError(str(err)) from err
    owner = type(estimator).__name__
    if degenerate:
        check_embedding(X, name=name, owner=owner, min_rows=ensure_min_samples)
    elif len(X) < ensure_min_samples:
        raise DataError(f"{owner} needs at least {ensure_min_samples} samples (rows), got "
                        f"n_samples = {len(X)}")
    elif not np.isfinite(X).all():
        bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
        raise DataError(f"{name} has NaN or inf values in {bad.size} of {len(X)} rows (first "
                        f"at row {int(bad[0])})")
    return X
