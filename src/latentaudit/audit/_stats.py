"""The statistics behind :class:`~latentaudit.audit.ClusterAuditor`.

Contingency tests with Cramér's V (χ², Fisher's exact test or a Monte Carlo χ² test when
expected counts are small), Kruskal–Wallis with ε², adjusted mutual information with a
permutation null, agreement and correlation tests for out-of-fold probe predictions, and
Benjamini–Hochberg false discovery rate control.  NumPy, SciPy and scikit-learn only.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats
from sklearn.metrics import adjusted_mutual_info_score

__all__ = [
    "TestResult",
    "agreement_test",
    "ami_permutation_test",
    "benjamini_hochberg",
    "chi2_test",
    "contingency_table",
    "correlation_test",
    "kruskal_from_ranks",
    "kruskal_test",
    "mean_interval",
    "tie_correction",
    "wilson_interval",
]

# Cochran's rule: the χ² approximation is trusted when every expected count is at least 5.
_MIN_EXPECTED = 5.0


@dataclasses.dataclass(frozen=True)
class TestResult:
    """The outcome of one test.

    Attributes
    ----------
    test : str
        The test's name: ``"chi2"``, ``"fisher"``, ``"chi2_mc"``, ``"kruskal"``, ``"ami"``,
        ``"agreement"`` or ``"correlation"``.
    statistic : float
        The test statistic (χ², H, AMI, agreements or Spearman's rho).
    p_value : float
        The p-value.
    effect_size : float
        Cramér's V, ε², AMI, Cohen's κ or R², depending on the test.
    """

    __test__ = False  # not a pytest test class despite the name

    test: str
    statistic: float
    p_value: float
    effect_size: float


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values).

    Parameters
    ----------
    p_values : array-like of shape (m,)
        The p-values; NaN entries are ignored and stay NaN.

    Returns
    -------
    numpy.ndarray of shape (m,)
        ``q[i]`` is the smallest false discovery rate at which test ``i`` is rejected by
        the step-up procedure; rejecting every test with ``q <= alpha`` controls the
        FDR at ``alpha`` for independent or positively dependent tests.

    Examples
    --------
    >>> benjamini_hochberg([0.01, 0.04, 0.03, 0.5]).round(3).tolist()
    [0.04, 0.053, 0.053, 0.5]
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    q = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    if m == 0:
        return q
    order = valid[np.argsort(p[valid], kind="stable")]
    scaled = p[order] * m / np.arange(1, m + 1)
    # step-up: each q is the minimum over the ranks at or above it
    scaled = np.minimum.accumulate(scaled[::-1])[::-1]
    q[order] = np.clip(scaled, 0.0, 1.0)
    return q


def contingency_table(a_codes, b_codes, n_a: int | None = None, n_b: int | None = None):
    """Cross-tabulate two integer code vectors.

    Parameters
    ----------
    a_codes, b_codes : array-like of int, shape (n,)
        Codes in ``[0, n_a)`` and ``[0, n_b)``.
    n_a, n_b : int, optional
        Numbers of levels (default: the largest code plus one).

    Returns
    -------
    numpy.ndarray of shape (n_a, n_b)
        Counts, as int64.
    """
    a = np.asarray(a_codes, dtype=np.int64)
    b = np.asarray(b_codes, dtype=np.int64)
    n_a = int(a.max()) + 1 if n_a is None else int(n_a)
    n_b = int(b.max()) + 1 if n_b is None else int(n_b)
    return np.bincount(a * n_b + b, minlength=n_a * n_b).reshape(n_a, n_b)


def _chi2_statistic(tables: np.ndarray) -> np.ndarray:
    """Pearson's χ² of one (R, C) table or a stack (B, R, C) of tables, no continuity
    correction (so that Cramér's V is the plain one)."""
    tables = np.asarray(tables, dtype=np.float64)
    n = tables.sum(axis=(-2, -1), keepdims=True)
    expected = tables.sum(axis=-1, keepdims=True) * tables.sum(axis=-2, keepdims=True) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(expected > 0, (tables - expected) ** 2 / expected, 0.0)
    return terms.sum(axis=(-2, -1))


def _random_tables(table: np.ndarray, n_resamples: int, rng: np.random.Generator):
    """Tables with the margins of ``table`` drawn uniformly from the permutation null
    (the rows' counts are sequential multivariate hypergeometric draws)."""
    row_totals = table.sum(axis=1)
    col_totals = table.sum(axis=0)
    n_rows, n_cols = table.shape
    out = np.empty((n_resamples, n_rows, n_cols), dtype=np.int64)
    # the first row's draws share one urn, so they vectorise
    out[:, 0] = rng.multivariate_hypergeometric(col_totals, row_totals[0], size=n_resamples)
    if n_rows == 2:
        out[:, 1] = col_totals - out[:, 0]
        return out
    for b in range(n_resamples):
        remaining = col_totals - out[b, 0]
        for r in range(1, n_rows - 1):
            out[b, r] = rng.multivariate_hypergeometric(remaining, row_totals[r])
            remaining = remaining - out[b, r]
        out[b, -1] = remaining
    return out


def chi2_test(table, *, n_resamples: int = 199, rng=None) -> TestResult | None:
    """Test a contingency table for independence, with Cramér's V.

    The χ² approximation is used when every expected count is at least 5; otherwise a
    2x2 table gets Fisher's exact test and a larger one a Monte Carlo χ² test that draws
    tables with the same margins.

    Parameters
    ----------
    table : array-like of int, shape (R, C)
        Counts.  Empty rows and columns are dropped first.
    n_resamples : int, default 199
        Tables drawn for the Monte Carlo test.
    rng : numpy.random.Generator or int, optional
        Randomness of the Monte Carlo test.

    Returns
    -------
    TestResult or None
        ``statistic`` is χ² and ``effect_size`` Cramér's V (``sqrt(χ² / (n (min(R, C) -
        1)))``); ``None`` when fewer than two rows or columns are left.

    Examples
    --------
    >>> result = chi2_test([[40, 10], [10, 40]])
    >>> result.test, round(result.effect_size, 2)
    ('chi2', 0.6)
    """
    table = np.asarray(table, dtype=np.int64)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if table.ndim != 2 or min(table.shape) < 2:
        return None
    n = int(table.sum())
    chi2 = float(_chi2_statistic(table))
    effect = math.sqrt(chi2 / (n * (min(table.shape) - 1)))
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    if expected.min() >= _MIN_EXPECTED:
        df = (table.shape[0] - 1) * (table.shape[1] - 1)
        return TestResult("chi2", chi2, float(stats.chi2.sf(chi2, df)), effect)
    if table.shape == (2, 2):
        p = float(stats.fisher_exact(table).pvalue)
        return TestResult("fisher", chi2, p, effect)
    rng = np.random.default_rng(rng)
    simulated = _chi2_statistic(_random_tables(table, n_resamples, rng))
    # a small tolerance so that tables equal to the observed one count as "as extreme"
    exceed = int(np.sum(simulated >= chi2 * (1 - 1e-10) - 1e-12))
    return TestResult("chi2_mc", chi2, (exceed + 1) / (n_resamples + 1), effect)


def tie_correction(values) -> float:
    """The Kruskal–Wallis tie correction ``1 - sum(t^3 - t) / (n^3 - n)``."""
    _, counts = np.unique(np.asarray(values), return_counts=True)
    n = counts.sum()
    if n < 2:
        return 0.0
    counts = counts.astype(np.float64)
    return float(1.0 - np.sum(counts**3 - counts) / (float(n) ** 3 - n))


def kruskal_from_ranks(ranks, groups, n_groups: int, correction: float) -> TestResult | None:
    """Kruskal–Wallis from precomputed ranks (so that many groupings of one column share
    a single sort).  See :func:`kruskal_test`."""
    ranks = np.asarray(ranks, dtype=np.float64)
    groups = np.asarray(groups, dtype=np.int64)
    n = ranks.size
    counts = np.bincount(groups, minlength=n_groups)
    sums = np.bincount(groups, weights=ranks, minlength=n_groups)
    present = counts > 0
    if present.sum() < 2 or correction <= 0 or n < 3:
        return None
    h = 12.0 / (n * (n + 1.0)) * np.sum(sums[present] ** 2 / counts[present]) - 3.0 * (n + 1)
    h = max(h / correction, 0.0)
    p = float(stats.chi2.sf(h, int(present.sum()) - 1))
    return TestResult("kruskal", float(h), p, float(h / (n - 1.0)))


def kruskal_test(values, groups) -> TestResult | None:
    """Kruskal–Wallis H test of a continuous variable across groups, with ε².

    Parameters
    ----------
    values : array-like of float, shape (n,)
        The variable (no NaN).
    groups : array-like of int, shape (n,)
        Non-negative group codes.

    Returns
    -------
    TestResult or None
        ``statistic`` is H (tie-corrected, as :func:`scipy.stats.kruskal`) and
        ``effect_size`` is ε² = H / (n - 1); ``None`` with fewer than two groups or a
        constant variable.

    Examples
    --------
    >>> round(kruskal_test([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [0, 0, 0, 1, 1, 1]).effect_size, 3)
    0.771
    """
    values = np.asarray(values, dtype=np.float64)
    groups = np.asarray(groups, dtype=np.int64)
    if values.size == 0:
        return None
    ranks = stats.rankdata(values)
    return kruskal_from_ranks(ranks, groups, int(groups.max()) + 1, tie_correction(values))


def _mutual_information(table: np.ndarray) -> float:
    n = table.sum()
    nz = table > 0
    outer = np.outer(table.sum(axis=1), table.sum(axis=0))
    return float(np.sum(table[nz] / n * np.log(table[nz] * n / outer[nz])))


def ami_permutation_test(
    labels, codes, *, n_permutations: int = 199, rng=None
) -> TestResult | None:
    """Adjusted mutual information between two labellings, with a permutation p-value.

    Both margins stay fixed under permutation, so the expected mutual information that
    AMI subtracts is a constant and the permutation test of mutual information is the
    permutation test of AMI; only the observed AMI needs scikit-learn's (costlier)
    adjustment.

    Parameters
    ----------
    labels, codes : array-like of int, shape (n,)
        Non-negative codes of the clustering and of the (discretised) column.
    n_permutations : int, default 199
        Permutations of ``codes``; the smallest possible p-value is
        ``1 / (n_permutations + 1)``.
    rng : numpy.random.Generator or int, optional
        Randomness of the permutations.

    Returns
    -------
    TestResult or None
        ``statistic`` and ``effect_size`` are the AMI; ``None`` when either labelling
        has a single level.
    """
    labels = np.asarray(labels, dtype=np.int64)
    codes = np.asarray(codes, dtype=np.int64)
    _, labels = np.unique(labels, return_inverse=True)
    _, codes = np.unique(codes, return_inverse=True)
    n_a, n_b = int(labels.max()) + 1, int(codes.max()) + 1
    if n_a < 2 or n_b < 2:
        return None
    ami = float(adjusted_mutual_info_score(labels, codes))
    observed = _mutual_information(contingency_table(labels, codes, n_a, n_b))
    rng = np.random.default_rng(rng)
    exceed = 0
    for _ in range(n_permutations):
        mi = _mutual_information(contingency_table(labels, rng.permutation(codes), n_a, n_b))
        exceed += mi >= observed - 1e-12
    return TestResult("ami", ami, (exceed + 1) / (n_permutations + 1), ami)


def agreement_test(y_true, y_pred) -> TestResult | None:
    """One-sided test that predictions agree with labels more often than by chance.

    The null is the permutation distribution of the labels with both margins fixed; its
    mean and variance are exact (sums of hypergeometric moments) and the p-value uses
    the continuity-corrected normal approximation (1 for constant predictions).  It is
    valid when the predictions do not depend on the labels tested, e.g. one fold's
    held-out predictions; pooled out-of-fold predictions of all folds do depend on the
    other folds' labels, and a test of them is too liberal.

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (n,)
        Codes of the labels and of the predictions.

    Returns
    -------
    TestResult or None
        ``statistic`` is the number of agreements and ``effect_size`` Cohen's κ;
        ``None`` for fewer than 3 rows or a single label.

    Examples
    --------
    >>> round(agreement_test([0, 0, 1, 1] * 25, [0, 0, 1, 1] * 25).effect_size, 2)
    1.0
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    n = y_true.size
    if n < 3 or np.unique(y_true).size < 2:
        return None
    n_levels = int(max(y_true.max(), y_pred.max())) + 1
    c = np.bincount(y_true, minlength=n_levels).astype(np.float64)
    r = np.bincount(y_pred, minlength=n_levels).astype(np.float64)
    agreements = float(np.sum(y_true == y_pred))
    rc = r * c
    expected = rc.sum() / n
    var_diag = np.sum(rc * (n - r) * (n - c)) / (n * n * (n - 1.0))
    cov_off = (rc.sum() ** 2 - np.sum(rc**2)) / (n * n * (n - 1.0))
    var = var_diag + cov_off
    if var <= 1e-9 * n:
        # constant predictions: every permutation gives the same count, no evidence
        p = 1.0
    else:
        # continuity-corrected: the count is discrete
        p = float(stats.norm.sf((agreements - expected - 0.5) / math.sqrt(var)))
    chance = expected / n
    kappa = (agreements / n - chance) / (1.0 - chance) if chance < 1 else 0.0
    return TestResult("agreement", agreements, p, float(kappa))


def correlation_test(y_true, y_pred) -> TestResult | None:
    """One-sided permutation-moment test of a positive rank correlation.

    Spearman's rho between labels and predictions has mean 0 and variance
    ``1 / (n - 1)`` under permutation of the labels; the p-value uses the normal
    approximation.  Valid, like :func:`agreement_test`, for predictions that do not
    depend on the labels tested.  ``effect_size`` is the out-of-sample R²
    (``1 - SSE / SST``, at least 0), which is what a reader wants to know about a
    regression probe.

    Parameters
    ----------
    y_true, y_pred : array-like of float, shape (n,)
        Values and predictions.

    Returns
    -------
    TestResult or None
        ``statistic`` is Spearman's rho; ``None`` for fewer than 3 rows or a constant
        variable.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    n = y_true.size
    if n < 3 or np.ptp(y_true) == 0:
        return None
    if np.ptp(y_pred) == 0:
        rho = 0.0
    else:
        rho = float(np.corrcoef(stats.rankdata(y_true), stats.rankdata(y_pred))[0, 1])
    p = float(stats.norm.sf(rho * math.sqrt(n - 1.0)))
    sst = np.sum((y_true - y_true.mean()) ** 2)
    r2 = max(0.0, 1.0 - np.sum((y_true - y_pred) ** 2) / sst)
    return TestResult("correlation", rho, p, float(r2))


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion.

    Parameters
    ----------
    successes : float
        Number of successes.
    n : int
        Number of trials.
    confidence : float, default 0.95
        Coverage.

    Returns
    -------
    (float, float)
        Lower and upper bound.

    Examples
    --------
    >>> [round(b, 3) for b in wilson_interval(90, 100)]
    [0.826, 0.945]
    """
    if n <= 0:
        return (math.nan, math.nan)
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    phat = successes / n
    denom = 1.0 + z * z / n
    centre = (phat + z * z / (2.0 * n)) / denom
    half = z * math.sqrt(phat * (1.0 - phat) / n + z * z / (4.0 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Normal-approximation interval of a mean (used for the mean absolute error).

    Parameters
    ----------
    values : array-like of float
        The sample.
    confidence : float, default 0.95
        Coverage.

    Returns
    -------
    (float, float)
        Lower and upper bound.
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    if n < 2:
        return (math.nan, math.nan)
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    half = z * values.std(ddof=1) / math.sqrt(n)
    return (float(values.mean() - half), float(values.mean() + half))
