"""Tests of what the known columns explain: designs, residuals and strata."""

import numpy as np
import pandas as pd
import pytest

from latentaudit.audit._known import known_design, known_strata, residualize
from latentaudit.errors import ConfigError, DataError


def _meta(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"site": rng.choice(list("ABC"), n), "sex": rng.choice(["F", "M"], n),
                         "age": rng.uniform(20, 80, n)})


def test_design_spans_levels_interactions_and_smooth_trends():
    meta = _meta()
    kinds = {"site": "categorical", "sex": "categorical", "age": "continuous"}
    design = known_design(meta, kinds)
    # intercept + 2 site + 1 sex + spline basis + 6 site x sex cells
    assert np.allclose(design[:, 0], 1.0)
    assert design.shape[1] == 1 + 2 + 1 + 5 + 6
    rng = np.random.default_rng(1)
    age = meta["age"].to_numpy()
    cell = (meta["site"] == "B") & (meta["sex"] == "M")  # an interaction, not additive
    x = np.c_[np.sin(age / 10.0), 3.0 * cell, rng.normal(size=len(meta))]
    res = residualize(x, design)
    assert np.abs(res[:, 0]).max() < 0.05  # a smooth non-linear age effect is explained
    assert np.abs(res[:, 1]).max() < 1e-8  # and an effect of one site x sex cell
    assert np.corrcoef(res[:, 2], x[:, 2])[0, 1] > 0.9  # what they do not explain stays
    assert np.abs(design.T @ res).max() < 1e-6
    no_cells = known_design(meta, kinds, interactions=False)
    assert no_cells.shape[1] == design.shape[1] - 6


def test_missing_values_get_their_own_indicator():
    meta = _meta(50)
    meta.loc[:4, "age"] = np.nan
    meta.loc[5:9, "site"] = None
    design = known_design(meta, {"site": "categorical", "age": "continuous"})
    assert np.isfinite(design).all()
    assert np.allclose(design[:5, -1], 1.0) and np.allclose(design[5:, -1], 0.0)


def test_strata_combine_levels_and_quantile_bins():
    meta = _meta(400)
    strata = known_strata(meta, {"sex": "categorical", "age": "continuous"}, n_bins=4)
    assert strata.max() + 1 == 8
    for s in np.unique(strata):
        assert meta.loc[strata == s, "sex"].nunique() == 1
    assert known_strata(meta, {}).tolist() == [0] * 400
    tiny = known_strata(meta.head(6), {"age": "continuous"}, n_bins=6, min_size=2)
    assert tiny.tolist() == [0] * 6  # strata of one row each are merged


def test_errors():
    meta = _meta(20)
    with pytest.raises(ConfigError, match="not in the metadata"):
        known_design(meta, {"height": "continuous"})
    with pytest.raises(ConfigError, match="kind of column"):
        known_design(meta, {"age": "ordinal"})
    with pytest.raises(DataError, match="rows"):
        residualize(np.zeros((5, 2)), np.ones((4, 1)))
    with pytest.raises(ConfigError, match="n_bins"):
        known_strata(meta, {"age": "continuous"}, n_bins=0)


def test_auto_bins_keep_strata_big_enough_to_permute_within():
    rng = np.random.default_rng(0)
    meta = pd.DataFrame({"sex": rng.choice(["F", "M"], 300), "age": rng.normal(50, 15, 300),
                         "height": rng.normal(170, 10, 300), "weight": rng.normal(75, 12, 300)})
    kinds = {"sex": "categorical", "age": "continuous", "height": "continuous",
             "weight": "continuous"}
    # 5 bins of three continuous columns: 250 combinations for 300 rows (singletons merged)
    assert known_strata(meta, kinds, n_bins=5).max() + 1 > 80  # most of one or two rows
    auto = known_strata(meta, kinds)
    assert auto.max() + 1 == 2  # 2 * 2**3 = 16 > 300 / 20: only sex is stratified
    assert np.bincount(auto).min() >= 20
    big = pd.concat([meta] * 10, ignore_index=True)
    # 3,000 rows: 4 bins (2 * 4**3 = 128 <= 150 < 2 * 5**3)
    assert np.array_equal(known_strata(big, kinds), known_strata(big, kinds, n_bins=4))
    assert known_strata(meta, {"sex": "categorical"}).max() + 1 == 2
    with pytest.raises(ConfigError, match="n_bins"):
        known_strata(meta, kinds, n_bins="many")


def test_a_column_the_probe_separates_is_reported_beside_four_expected_columns():
    """Several continuous expected columns once cut 300 rows into strata of one or two,
    and a group a probe separates at held-out AUC ~1 reached only q ~ 0.003."""
    from latentaudit.audit import ClusterAuditor

    rng = np.random.default_rng(1)
    n = 300
    meta = pd.DataFrame({"sex": rng.choice(["F", "M"], n), "age": rng.normal(50, 15, n),
                         "height": rng.normal(170, 10, n), "weight": rng.normal(75, 12, n)})
    group = np.zeros(n, bool)
    group[rng.choice(n, 30, replace=False)] = True
    z = rng.normal(size=(n, 16))
    z[:, 0] += 2.0 * (meta["sex"] == "M")
    z[group, 1] += 4.0
    aud = ClusterAuditor(expected=["sex", "age", "height", "weight"], n_subgroups=0,
                         random_state=0).fit(z, meta.assign(scanner=np.where(group, "b", "a")))
    probe = aud.findings_[(aud.findings_["kind"] == "probe")
                          & (aud.findings_["column"] == "scanner")]
    assert probe["statistic"].iloc[0] > 0.95 and probe["q_value"].iloc[0] < 1e-6
