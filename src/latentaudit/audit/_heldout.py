"""A calibrated test of "the embedding predicts this column", from held-out predictions.

Cross-validated probe scores cannot be tested as if they were independent: every fold's
model was trained on the other folds' labels, so the folds' statistics are correlated
under the null, and a pooled test is too liberal exactly where it matters (p-values of
1e-5 came out several times too small when tried).  Bonferroni over the folds is valid but
loses most of the power.

:func:`heldout_probe_test` uses *prequential* (forward-chaining) folds instead: the rows are
cut into ``n_folds`` random folds; the model trained on folds ``0 .. k-1`` predicts fold
``k``, for ``k = 2 .. n_folds - 1``.  Fold ``k``'s labels were never seen by its model, so,
when the column is independent of the embedding, its rank statistic has its permutation
distribution given everything before it; the folds' standardised statistics are then
independent standard normals and their sum over ``sqrt(#folds)`` is an exact (up to the
normal approximation of rank statistics) z-test that uses 60% of the rows as test rows
(with five folds).

The statistic is a linear rank statistic with the exact permutation mean and variance of
Hoeffding's combinatorial central limit theorem: for a categorical column, the sum over
rows of the within-fold rank of the probability the model gives the row's own label
(Mann-Whitney's U for two levels, a one-vs-rest AUC sum for more); for a continuous one,
Spearman's correlation of predictions and values.  With ``strata`` (rows that agree on the
columns one expects the embedding to carry), the permutation is within strata, which makes
the test one of conditional independence: does the embedding predict the column beyond
what the expected columns explain?
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from scipy import stats
from sklearn.model_selection import KFold, StratifiedKFold
from threadpoolctl import threadpool_limits

from ..errors import ConfigError, DataError
from ..utils import check_random_state
from ._probes import make_probe, model_name

__all__ = ["heldout_probe_test", "rank_assignment_test", "stratified_rank_correlation"]

_PROBE_THREADS = 1  # see _probes: small solver iterations do not gain from threads


def _within_ranks(values: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """Ranks (average for ties) of ``values`` (1-D or column-wise 2-D) within strata."""
    ranks = np.empty(values.shape, dtype=np.float64)
    for stratum in np.unique(strata):
        rows = strata == stratum
        ranks[rows] = stats.rankdata(values[rows], axis=0)
    return ranks


def rank_assignment_test(scores, codes, strata=None) -> tuple[float, float, float]:
    """Do rows score their own label higher than permuted labels would?

    ``T = sum_i R[i, codes[i]]`` where ``R[:, l]`` are the within-stratum ranks of
    ``scores[:, l]``; its mean and variance under random permutation of the labels within
    strata are exact (Hoeffding's combinatorial CLT), and the z-score is returned with its
    one-sided p-value.

    Parameters
    ----------
    scores : array-like of shape (n, n_levels)
        A model's scores (e.g. probabilities) of each level for each row; the model must
        not have seen these rows' labels.
    codes : array-like of int, shape (n,)
        The rows' levels, ``0 .. n_levels - 1``.
    strata : array-like of int, shape (n,), optional
        Permutation strata (default: one).

    Returns
    -------
    (float, float, float)
        ``z``, its one-sided p-value, and the mean one-vs-rest AUC of the levels present
        (within strata, weighted by the levels' sizes).

    Examples
    --------
    >>> import numpy as np
    >>> codes = np.repeat([0, 1], 50)
    >>> scores = np.c_[1.0 - codes, codes.astype(float)]
    >>> z, p, auc = rank_assignment_test(scores, codes)
    >>> round(auc, 3), p < 1e-10
    (1.0, True)
    """
    scores = np.asarray(scores, dtype=np.float64)
    codes = np.asarray(codes, dtype=np.int64)
    n, n_levels = scores.shape
    strata = np.zeros(n, dtype=np.int64) if strata is None else np.asarray(strata)
    ranks = _within_ranks(scores, strata)
    observed = mean = variance = 0.0
    auc_num = auc_den = 0.0
    for stratum in np.unique(strata):
        rows = np.flatnonzero(strata == stratum)
        m = rows.size
        if m < 2:
            continue
        r = ranks[rows]
        c = codes[rows]
        counts = np.bincount(c, minlength=n_levels).astype(np.float64)
        if np.count_nonzero(counts) < 2:
            continue
        observed += r[np.arange(m), c].sum()
        # c(i, j) = r[i, c_j]: row means a_i, level means b_l, grand mean g
        share = counts / m
        a = r @ share
        b = r.mean(axis=0)
        g = float(share @ b)
        mean += m * g
        d = r - a[:, None] - b[None, :] + g
        variance += float(((d**2) @ counts).sum() / (m - 1))
        # one-vs-rest Mann-Whitney AUC of each level present in the stratum
        for level in np.flatnonzero(counts):
            n1 = counts[level]
            if n1 == m:
                continue
            u = r[c == level, level].sum() - n1 * (n1 + 1) / 2
            auc_num += u / (m - n1)  # = n1 * AUC
            auc_den += n1
    if variance <= 0:
        return 0.0, 1.0, 0.5
    z = (observed - mean) / math.sqrt(variance)
    return float(z), float(stats.norm.sf(z)), float(auc_num / auc_den) if auc_den else 0.5


def stratified_rank_correlation(predictions, values, strata=None) -> tuple[float, float, float]:
    """Within-stratum Spearman test of a positive association of predictions and values.

    Parameters
    ----------
    predictions, values : array-like of float, shape (n,)
        Held-out predictions and the true values.
    strata : array-like of int, shape (n,), optional
        Permutation strata (default: one).

    Returns
    -------
    (float, float, float)
        ``z`` (exact permutation moments of the sum of rank products within strata), its
        one-sided p-value, and Spearman's rho pooled over strata.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(50.0)
    >>> z, p, rho = stratified_rank_correlation(x, x)
    >>> round(rho, 3), p < 1e-6
    (1.0, True)
    """
    predictions = np.asarray(predictions, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    strata = np.zeros(n, dtype=np.int64) if strata is None else np.asarray(strata)
    rp = _within_ranks(predictions, strata)
    rv = _within_ranks(values, strata)
    observed = mean = variance = 0.0
    sxx = syy = 0.0
    for stratum in np.unique(strata):
        rows = strata == stratum
        m = int(rows.sum())
        if m < 3:
            continue
        a = rp[rows] - rp[rows].mean()
        b = rv[rows] - rv[rows].mean()
        observed += float(a @ b)
        variance += float((a @ a) * (b @ b) / (m - 1))
        sxx += float(a @ a)
        syy += float(b @ b)
    if variance <= 0:
        return 0.0, 1.0, 0.0
    z = (observed - mean) / math.sqrt(variance)
    return float(z), float(stats.norm.sf(z)), float(observed / math.sqrt(sxx * syy))


def _folds(kind: str, y: np.ndarray, n_folds: int, seed: int) -> list[np.ndarray]:
    if kind == "categorical":
        smallest = int(np.bincount(y)[np.bincount(y) > 0].min())
        if smallest >= n_folds:
            splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            return [test for _, test in splitter.split(np.zeros(y.size), y)]
    splitter = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [test for _, test in splitter.split(np.zeros(y.size))]


def heldout_probe_test(x, y, kind: str, *, strata=None, model: str = "linear",
                       n_folds: int = 5, max_samples: int | None = 20_000,
                       random_state=None) -> dict:
    """Probe a column from an embedding and test it on rows the probe never saw.

    Parameters
    ----------
    x : array-like of shape (n_samples, n_features)
        The embedding (or its analysis space); rows with a missing target removed.
    y : array-like of shape (n_samples,)
        Integer codes (categorical) or values (continuous).
    kind : {"categorical", "continuous"}
        The column's type.
    strata : array-like of int, optional
        Rows that agree on the expected columns (:func:`~._known.known_strata`): the
        test then asks whether the embedding predicts the column beyond them.
    model : {"linear", "svm"}, default "linear"
        The probe (:func:`~._probes.make_probe`).
    n_folds : int, default 5
        Prequential folds; the models trained on the first ``k`` folds (``k >= 2``) are
        tested on fold ``k``.
    max_samples : int or None, default 20000
        Larger inputs are probed on a random subsample of this size (stratified by level
        for categorical columns), which bounds the cost on large cohorts.
    random_state : int, numpy.random.RandomState or None
        Seed of the subsample and the folds.

    Returns
    -------
    dict
        ``model``, ``metric`` ("auc" or "spearman"), ``score`` (the mean one-vs-rest AUC
        or Spearman's rho over the test folds), ``effect_size`` (Somers' D ``2 AUC - 1``,
        or the held-out R², at least 0), ``statistic`` (the combined z), ``p_value``
        (one-sided), ``n`` (rows used), ``n_test`` (rows tested).

    Raises
    ------
    ValueError
        (as :class:`~latentaudit.errors.DataError`) for fewer than 20 rows or a
        categorical column with fewer than two levels of two rows each.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 300)
    >>> x = rng.normal(size=(300, 5)) + 1.5 * y[:, None]
    >>> result = heldout_probe_test(x, y, "categorical", random_state=0)
    >>> result["score"] > 0.9, result["p_value"] < 1e-10
    (True, True)
    """
    if kind not in ("categorical", "continuous"):
        raise ConfigError(f"kind must be 'categorical' or 'continuous', got {kind!r}")
    if isinstance(n_folds, bool) or not isinstance(n_folds, numbers.Integral) or n_folds < 3:
        raise ConfigError(f"n_folds must be an integer >= 3, got {n_folds!r}")
    x = np.asarray(x)
    y = np.asarray(y)
    n = y.size
    strata = np.zeros(n, dtype=np.int64) if strata is None else np.asarray(strata, np.int64)
    rng = check_random_state(random_state)
    sample_seed, fold_seed = (int(s) for s in rng.randint(2**31 - 1, size=2))
    if kind == "categorical":
        y = y.astype(np.int64)
        _, y = np.unique(y, return_inverse=True)
        counts = np.bincount(y)
        if np.count_nonzero(counts >= 2) < 2:
            raise DataError("a probe needs at least two levels with two rows each")
    else:
        y = y.astype(np.float64)
    if n < 20:
        raise DataError(f"a held-out probe test needs at least 20 rows, got {n}")
    rows = np.arange(n)
    if max_samples is not None and n > max_samples:
        sampler = check_random_state(sample_seed)
        if kind == "categorical":
            # stratified by level: every level keeps its share (at least one row)
            keep = []
            for level in np.flatnonzero(np.bincount(y)):
                members = np.flatnonzero(y == level)
                take = max(1, int(round(members.size * max_samples / n)))
                keep.append(sampler.choice(members, size=min(take, members.size),
                                           replace=False))
            rows = np.sort(np.concatenate(keep))
        else:
            rows = np.sort(sampler.choice(n, size=int(max_samples), replace=False))
    xs, ys, ss = x[rows], y[rows], strata[rows]
    folds = _folds(kind, ys, n_folds, fold_seed)
    z_values, scores, r2_num, r2_den, n_test = [], [], 0.0, 0.0, 0
    with threadpool_limits(limits=_PROBE_THREADS):
        for k in range(2, n_folds):
            train = np.concatenate(folds[:k])
            test = folds[k]
            if kind == "categorical":
                present = np.unique(ys[train])
                if present.size < 2:
                    continue
                fitted = make_probe(kind, model, probability=model != "linear")
                fitted.fit(xs[train], ys[train])
                proba = np.zeros((test.size, int(ys.max()) + 1))
                proba[:, fitted.classes_] = fitted.predict_proba(xs[test])
                z, _, auc = rank_assignment_test(proba, ys[test], ss[test])
                scores.append((auc, test.size))
            else:
                fitted = make_probe(kind, model).fit(xs[train], ys[train])
                predicted = fitted.predict(xs[test])
                z, _, rho = stratified_rank_correlation(predicted, ys[test], ss[test])
                scores.append((rho, test.size))
                r2_num += float(np.sum((ys[test] - predicted) ** 2))
                r2_den += float(np.sum((ys[test] - ys[test].mean()) ** 2))
            z_values.append(z)
            n_test += test.size
    if not z_values:
        raise DataError("no test fold had two levels to test")
    combined = float(np.sum(z_values) / math.sqrt(len(z_values)))
    score = float(sum(s * w for s, w in scores) / sum(w for _, w in scores))
    if kind == "categorical":
        effect = max(0.0, 2.0 * score - 1.0)
        metric = "auc"
    else:
        effect = max(0.0, 1.0 - r2_num / r2_den) if r2_den > 0 else 0.0
        metric = "spearman"
    return {"model": model_name(kind, model), "metric": metric, "score": score,
            "effect_size": float(effect), "statistic": combined,
            "p_value": float(stats.norm.sf(combined)), "n": int(rows.size),
            "n_test": int(n_test)}
