"""Which labels to flag: confident learning with a count of the errors per pair of levels.

Ranking rows by how unlikely their given label is (``1 - p(given)``) is easy; deciding how
many of them to flag is the hard part.  A fixed threshold is either timid (it misses errors
whose estimated probabilities are only a little less sure than their class's typical row) or
flags the ambiguous rows of overlapping classes.  :func:`confident_flags` follows
confident learning (Northcutt, Jiang & Chuang, "Confident learning: estimating uncertainty
in dataset labels", JAIR 2021):

1. a level's threshold is the mean probability of that level over the rows given it (its
   average self-confidence);
2. the *confident joint* counts, for every pair (given ``i``, likely ``j``), the rows given
   ``i`` whose probability of ``j`` reaches ``j``'s threshold (the largest such ``j``);
3. each row of counts is rescaled to the number of rows given ``i``, estimating how many of
   them belong to ``j``;
4. for each pair, that many rows given ``i`` with the largest margin ``p(j) - p(i)`` are
   flagged, and no row whose most likely level is its given one.

One addition: a pair of levels the embedding does not tell apart (the rows given ``j``
score ``p(j) / (p(i) + p(j))`` above the rows given ``i`` with an AUC below
``min_separation``, e.g. two sites with the same protocol) is not flagged at all.  There,
confident learning counts half of each level as errors, but no error between them can be
identified, and flagging them would bury the identifiable ones.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ..errors import ConfigError, InputShapeError

__all__ = ["confident_flags", "pair_separation"]


def pair_separation(proba, codes) -> np.ndarray:
    """How well the probabilities tell each pair of given levels apart.

    Parameters
    ----------
    proba : array-like of shape (n, n_levels)
        Estimated probabilities of each level (out-of-fold or from neighbours).
    codes : array-like of int, shape (n,)
        Given levels.

    Returns
    -------
    numpy.ndarray of shape (n_levels, n_levels)
        ``[i, j]``: AUC with which ``p(j) / (p(i) + p(j))`` ranks the rows given ``j``
        above the rows given ``i`` (symmetric; 1 on the diagonal and for levels with no
        rows).

    Examples
    --------
    >>> import numpy as np
    >>> codes = np.repeat([0, 1], 4)
    >>> proba = np.c_[1.0 - 0.2 * codes, 0.2 * codes + 0.0]
    >>> float(pair_separation(proba, codes)[0, 1])
    1.0
    """
    proba = np.asarray(proba, dtype=np.float64)
    codes = np.asarray(codes, dtype=np.int64)
    n_levels = proba.shape[1]
    out = np.ones((n_levels, n_levels))
    for i in range(n_levels):
        for j in range(i + 1, n_levels):
            rows = (codes == i) | (codes == j)
            n_j = int(np.sum(codes[rows] == j))
            n_i = int(rows.sum()) - n_j
            if n_i == 0 or n_j == 0:
                continue
            ratio = proba[rows, j] / np.maximum(proba[rows, i] + proba[rows, j], 1e-300)
            ranks = stats.rankdata(ratio)
            u = ranks[codes[rows] == j].sum() - n_j * (n_j + 1) / 2
            out[i, j] = out[j, i] = u / (n_i * n_j)
    return out


def confident_flags(proba, codes, *, min_separation: float = 0.75):
    """Flag rows whose given level is likely wrong (confident learning, pair-gated).

    Parameters
    ----------
    proba : array-like of shape (n, n_levels)
        Estimated probabilities of each level for each row, from a model that did not
        see the row's own label (out-of-fold probes, neighbours).
    codes : array-like of int, shape (n,)
        Given levels, ``0 .. n_levels - 1``.
    min_separation : float, default 0.75
        Pairs of levels told apart with a lower AUC (:func:`pair_separation`) are never
        flagged as errors of one another.

    Returns
    -------
    flagged : numpy.ndarray of bool, shape (n,)
        The rows flagged.
    counts : numpy.ndarray of shape (n_levels, n_levels)
        Estimated number of rows given ``i`` that belong to ``j`` (the calibrated
        confident joint, with unidentifiable pairs set to 0).

    Raises
    ------
    ValueError
        (as :class:`~latentaudit.errors.InputShapeError`) for mismatched shapes, (as
        :class:`~latentaudit.errors.ConfigError`) for ``min_separation`` outside [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> truth = np.repeat([0, 1], 100)
    >>> p1 = np.clip(truth + rng.normal(0, 0.1, 200), 0.01, 0.99)
    >>> given = truth.copy(); given[[3, 150]] = 1 - given[[3, 150]]
    >>> flagged, counts = confident_flags(np.c_[1 - p1, p1], given)
    >>> np.flatnonzero(flagged).tolist()
    [3, 150]
    """
    proba = np.asarray(proba, dtype=np.float64)
    codes = np.asarray(codes, dtype=np.int64)
    if proba.ndim != 2 or proba.shape[0] != codes.shape[0]:
        raise InputShapeError(f"proba must have shape (n, n_levels) with n = {codes.shape[0]}, "
                              f"got {proba.shape}")
    if not 0.0 <= min_separation <= 1.0:
        raise ConfigError(f"min_separation must be in [0, 1], got {min_separation!r}")
    n, n_levels = proba.shape
    given_counts = np.bincount(codes, minlength=n_levels)
    thresholds = np.array([proba[codes == k, k].mean() if given_counts[k] else np.inf
                           for k in range(n_levels)])
    above = proba >= thresholds[None, :]
    likely = np.where(above, proba, -np.inf).argmax(axis=1)
    counted = above.any(axis=1)
    joint = np.zeros((n_levels, n_levels))
    np.add.at(joint, (codes[counted], likely[counted]), 1.0)
    totals = joint.sum(axis=1, keepdims=True)
    calibrated = np.divide(joint * given_counts[:, None], totals,
                           out=np.zeros_like(joint), where=totals > 0)
    separation = pair_separation(proba, codes)
    calibrated[separation < min_separation] = 0.0
    np.fill_diagonal(calibrated, 0.0)
    flagged = np.zeros(n, dtype=bool)
    for i in range(n_levels):
        members = np.flatnonzero(codes == i)
        for j in np.flatnonzero(calibrated[i] >= 0.5):
            k = min(int(round(calibrated[i, j])), members.size)
            margin = proba[members, j] - proba[members, i]
            # largest margins first; ties by row position, for reproducibility
            order = np.lexsort((members, -margin))
            flagged[members[order[:k]]] = True
    flagged &= proba.argmax(axis=1) != codes
    return flagged, calibrated
