"""Tests of the held-out (prequential) probe test: validity under the null, power, exactness
of the rank statistics."""

import numpy as np
import pytest
from scipy import stats
from threadpoolctl import threadpool_limits

from latentaudit.audit import heldout_probe_test
from latentaudit.audit._heldout import rank_assignment_test, stratified_rank_correlation
from latentaudit.errors import ConfigError, DataError


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


def _null_p_values(setting, n_datasets=120, n=150, d=8, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_datasets):
        x = rng.standard_t(3, size=(n, d))  # heavy tails
        strata = None
        if setting == "binary":
            y, kind = (rng.random(n) < 0.15).astype(int), "categorical"
        elif setting == "levels":
            y, kind = rng.integers(0, 4, n), "categorical"
        elif setting == "continuous":
            y, kind = rng.exponential(size=n), "continuous"
        else:  # the embedding carries a stratum that the column depends on
            strata = rng.integers(0, 2, n)
            x[:, 0] += 3.0 * strata
            y, kind = (rng.random(n) < np.where(strata == 1, 0.5, 0.1)).astype(int), "categorical"
        out.append(heldout_probe_test(x, y, kind, strata=strata, random_state=i)["p_value"])
    return np.array(out)


@pytest.mark.parametrize("setting", ["binary", "levels", "continuous", "strata"])
def test_p_values_are_valid_under_the_null(setting):
    p = _null_p_values(setting)
    for level in (0.05, 0.2):
        assert np.mean(p <= level) <= level + 3 * np.sqrt(level * (1 - level) / p.size)


def test_strata_make_it_a_test_beyond_the_expected_column():
    rng = np.random.default_rng(1)
    n = 400
    strata = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 6))
    x[:, 0] += 3.0 * strata
    y = (rng.random(n) < np.where(strata == 1, 0.6, 0.1)).astype(int)
    assert heldout_probe_test(x, y, "categorical", random_state=0)["p_value"] < 1e-6
    assert heldout_probe_test(x, y, "categorical", strata=strata,
                              random_state=0)["p_value"] > 0.01


def test_a_probe_at_auc_090_on_a_few_hundred_rows_is_found_far_below_1e_3():
    rng = np.random.default_rng(2)
    n = 400
    y = np.zeros(n, dtype=int)
    y[rng.choice(n, 20, replace=False)] = 1  # 5%
    x = rng.normal(size=(n, 30))
    x[y == 1, 0] += 2.8
    result = heldout_probe_test(x, y, "categorical", random_state=0)
    assert result["metric"] == "auc" and result["score"] > 0.85
    assert result["p_value"] < 1e-5
    assert result["n_test"] == pytest.approx(0.6 * n, abs=2)
    assert result["effect_size"] == pytest.approx(2 * result["score"] - 1)


def test_continuous_column_and_subsample():
    rng = np.random.default_rng(3)
    n = 3000
    x = rng.normal(size=(n, 5))
    y = x[:, 1] + rng.normal(size=n)
    result = heldout_probe_test(x, y, "continuous", max_samples=500, random_state=0)
    assert result["n"] == 500 and result["metric"] == "spearman"
    assert result["score"] > 0.5 and 0.3 < result["effect_size"] < 0.7
    assert result["p_value"] < 1e-10
    # a stratified subsample keeps every level of a categorical column
    levels = np.r_[np.zeros(n - 30, int), np.ones(30, int)]
    sub = heldout_probe_test(x, levels, "categorical", max_samples=300, random_state=0)
    assert sub["n"] == 300


def test_rank_statistics_match_textbook_tests():
    rng = np.random.default_rng(4)
    scores = rng.normal(size=60)
    y = (rng.random(60) < 0.3).astype(int)
    z, p, auc = rank_assignment_test(np.c_[-scores, scores], y)
    u = stats.mannwhitneyu(scores[y == 1], scores[y == 0], alternative="greater",
                           method="asymptotic", use_continuity=False)
    assert p == pytest.approx(u.pvalue, rel=1e-6)
    assert auc == pytest.approx(u.statistic / ((y == 1).sum() * (y == 0).sum()))
    values = rng.normal(size=60)
    z, p, rho = stratified_rank_correlation(scores, values)
    assert rho == pytest.approx(stats.spearmanr(scores, values).statistic)
    assert z == pytest.approx(rho * np.sqrt(59))


def test_errors():
    x = np.zeros((30, 2))
    with pytest.raises(ConfigError, match="kind"):
        heldout_probe_test(x, np.zeros(30), "ordinal")
    with pytest.raises(ConfigError, match="n_folds"):
        heldout_probe_test(x, np.zeros(30), "continuous", n_folds=2)
    with pytest.raises(DataError, match="two levels"):
        heldout_probe_test(x, np.r_[np.zeros(29), 1], "categorical")
    with pytest.raises(DataError, match="at least 20 rows"):
        heldout_probe_test(x[:10], np.arange(10) % 2, "categorical")
