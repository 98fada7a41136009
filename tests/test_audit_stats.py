"""Tests of the audit's statistics against SciPy and scikit-learn run directly."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import adjusted_mutual_info_score
from threadpoolctl import threadpool_limits

from latentaudit.audit import benjamini_hochberg
from latentaudit.audit._stats import (
    agreement_test,
    ami_permutation_test,
    chi2_test,
    contingency_table,
    correlation_test,
    kruskal_test,
    mean_interval,
    wilson_interval,
)


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny problems only lose time to thread start-up on a shared machine
    with threadpool_limits(1):
        yield


def test_benjamini_hochberg_matches_scipy_and_keeps_nan():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(size=40), rng.uniform(0, 1e-3, size=10)])
    np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p))
    q = benjamini_hochberg([0.01, np.nan, 0.04])
    assert np.isnan(q[1])
    np.testing.assert_allclose(q[[0, 2]], [0.02, 0.04])
    assert benjamini_hochberg([]).size == 0


def test_benjamini_hochberg_hand_computed():
    # sorted p 0.01, 0.03, 0.04, 0.5 -> 0.04, 0.06, 0.0533, 0.5 -> step-up minimum
    np.testing.assert_allclose(benjamini_hochberg([0.01, 0.04, 0.03, 0.5]),
                               [0.04, 0.16 / 3, 0.16 / 3, 0.5])


def test_contingency_table_counts():
    table = contingency_table([0, 0, 1, 2, 2, 2], [1, 1, 0, 0, 1, 1], 3, 2)
    np.testing.assert_array_equal(table, [[0, 2], [1, 0], [1, 2]])


def test_chi2_matches_scipy_for_large_counts():
    table = np.array([[120, 80, 60], [40, 90, 110]])
    result = chi2_test(table)
    chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
    assert result.test == "chi2"
    assert result.statistic == pytest.approx(chi2)
    assert result.p_value == pytest.approx(p)
    n = table.sum()
    assert result.effect_size == pytest.approx(np.sqrt(chi2 / (n * 1)))
    assert result.effect_size == pytest.approx(stats.contingency.association(table))


def test_chi2_uses_fisher_for_small_2x2():
    table = np.array([[8, 2], [1, 5]])
    result = chi2_test(table)
    assert result.test == "fisher"
    assert result.p_value == pytest.approx(stats.fisher_exact(table).pvalue)


def test_chi2_monte_carlo_for_small_tables_agrees_with_exact_test():
    table = np.array([[6, 1, 0], [1, 3, 5]])
    result = chi2_test(table, n_resamples=4000, rng=0)
    assert result.test == "chi2_mc"
    exact = stats.fisher_exact(table).pvalue  # SciPy's R x C exact test
    # the Monte Carlo χ² p-value is close to the exact conditional one (both small)
    assert result.p_value == pytest.approx(exact, abs=0.01)
    # same seed, same answer
    assert chi2_test(table, n_resamples=200, rng=3) == chi2_test(table, n_resamples=200, rng=3)


def test_chi2_monte_carlo_three_rows_keeps_margins_and_is_calibrated():
    rng = np.random.default_rng(1)
    p_values = []
    for _ in range(150):
        a = rng.integers(0, 3, size=30)
        b = rng.integers(0, 4, size=30)
        result = chi2_test(contingency_table(a, b, 3, 4), n_resamples=99, rng=rng)
        p_values.append(result.p_value)
    p_values = np.array(p_values)
    # valid under the null: rejections at 5% no more frequent than 5% (plus noise)
    assert np.mean(p_values <= 0.05) <= 0.08
    assert 0.35 < np.median(p_values) < 0.7


def test_chi2_returns_none_without_two_levels():
    assert chi2_test([[5, 0], [7, 0]]) is None
    assert chi2_test([[5, 3]]) is None


def test_kruskal_matches_scipy_with_ties():
    rng = np.random.default_rng(2)
    values = rng.integers(0, 6, size=90).astype(float)
    groups = rng.integers(0, 3, size=90)
    result = kruskal_test(values, groups)
    reference = stats.kruskal(*[values[groups == g] for g in range(3)])
    assert result.statistic == pytest.approx(reference.statistic)
    assert result.p_value == pytest.approx(reference.pvalue)
    assert result.effect_size == pytest.approx(reference.statistic / 89)
    assert kruskal_test(np.ones(10), np.r_[np.zeros(5), np.ones(5)].astype(int)) is None


def test_ami_permutation_test_detects_association_and_not_noise():
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 3, size=300)
    labels = np.where(rng.uniform(size=300) < 0.8, codes, rng.integers(0, 3, size=300))
    strong = ami_permutation_test(labels, codes, n_permutations=99, rng=0)
    assert strong.effect_size == pytest.approx(adjusted_mutual_info_score(labels, codes))
    assert strong.p_value == pytest.approx(1 / 100)
    null_p = [
        ami_permutation_test(rng.integers(0, 3, 200), rng.integers(0, 4, 200),
                             n_permutations=49, rng=rng).p_value
        for _ in range(60)
    ]
    assert np.mean(np.array(null_p) <= 0.1) <= 0.2
    assert ami_permutation_test(np.zeros(10), codes[:10]) is None


def test_agreement_test_moments_match_permutations():
    rng = np.random.default_rng(4)
    y_true = rng.integers(0, 3, size=60)
    y_pred = rng.integers(0, 3, size=60)
    observed = agreement_test(y_true, y_pred)
    perms = np.array([np.sum(rng.permutation(y_true) == y_pred) for _ in range(20000)])
    r = np.bincount(y_pred, minlength=3)
    c = np.bincount(y_true, minlength=3)
    assert perms.mean() == pytest.approx(np.sum(r * c) / 60, rel=0.01)
    z = (observed.statistic - perms.mean() - 0.5) / perms.std()  # continuity-corrected
    assert observed.p_value == pytest.approx(stats.norm.sf(z), abs=0.02)
    assert agreement_test(y_true, np.zeros(60, dtype=int)).p_value == 1.0  # constant
    perfect = agreement_test(np.tile([0, 1, 2], 20), np.tile([0, 1, 2], 20))
    assert perfect.effect_size == pytest.approx(1.0)
    assert perfect.p_value < 1e-10


def test_correlation_test():
    rng = np.random.default_rng(5)
    y = rng.normal(size=200)
    good = correlation_test(y, y + 0.3 * rng.normal(size=200))
    assert good.p_value < 1e-10
    assert 0.8 < good.effect_size < 1.0
    bad = correlation_test(y, rng.normal(size=200))
    assert bad.p_value > 0.01
    assert bad.effect_size == 0.0


def test_intervals():
    low, high = wilson_interval(90, 100)
    assert low == pytest.approx(0.8256, abs=1e-3)
    assert high == pytest.approx(0.9448, abs=1e-3)
    ci = stats.binomtest(90, 100).proportion_ci(method="wilson")
    assert (low, high) == pytest.approx((ci.low, ci.high))
    low, high = mean_interval(np.arange(10.0))
    assert low < 4.5 < high
