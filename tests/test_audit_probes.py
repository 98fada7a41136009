"""Tests of the probes: they must match scikit-learn run directly."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

from latentaudit.audit import ClusterAuditor
from latentaudit.audit._probes import make_probe, out_of_fold, run_probe
from latentaudit.errors import ConfigError, DataError


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


def _data(n=240, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 6))
    site = np.where(z[:, 0] + 0.5 * rng.normal(size=n) > 0, "B", "A")
    age = 50 + 8 * z[:, 1] + 2 * rng.normal(size=n)
    noise = rng.choice(["x", "y", "z"], size=n)
    return z, pd.DataFrame({"site": site, "age": age, "noise": noise})


def test_linear_probes_match_sklearn_run_directly():
    z, meta = _data()
    aud = ClusterAuditor(analysis_components=None, clusterer="kmeans", n_clusters=2, random_state=0)
    aud.fit(z, meta)
    folds = StratifiedKFold(5, shuffle=True, random_state=7)
    table = aud.probe(["site"], cv=folds, n_permutations=0)
    expected_site = cross_val_predict(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), z, meta["site"],
        cv=folds)
    site = table.set_index("column").loc["site"]
    assert site["model"] == "logistic" and site["metric"] == "accuracy"
    assert site["score"] == pytest.approx(np.mean(expected_site == meta["site"]))
    assert site["ci_low"] < site["score"] < site["ci_high"]
    assert site["chance"] == pytest.approx(meta["site"].value_counts(normalize=True).max())
    kfolds = KFold(5, shuffle=True, random_state=7)
    table = aud.probe("age", cv=kfolds, n_permutations=0)
    expected_age = cross_val_predict(
        make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13))), z,
        meta["age"], cv=kfolds)
    assert table.loc[0, "metric"] == "mae"
    assert table.loc[0, "score"] == pytest.approx(np.mean(np.abs(expected_age - meta["age"])))
    assert table.loc[0, "score"] < table.loc[0, "chance"]


def test_svm_probe_matches_sklearn_svc():
    z, meta = _data()
    folds = StratifiedKFold(4, shuffle=True, random_state=1)
    codes = (meta["site"] == "B").to_numpy().astype(int)
    result = run_probe(z, codes, "categorical", model="svm", cv=folds, n_permutations=0)
    reference = cross_val_predict(make_pipeline(StandardScaler(), SVC()), z, codes, cv=folds)
    assert result["model"] == "svc"
    assert result["score"] == pytest.approx(np.mean(reference == codes))
    np.testing.assert_array_equal(result["predictions"], reference)


def test_out_of_fold_probabilities_match_cross_val_predict():
    z, meta = _data()
    codes = pd.factorize(meta["noise"], sort=True)[0]
    folds = StratifiedKFold(5, shuffle=True, random_state=2)
    ours = out_of_fold(z, codes, "categorical", cv=folds, method="predict_proba")
    reference = cross_val_predict(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), z, codes, cv=folds,
        method="predict_proba")
    np.testing.assert_allclose(ours, reference)
    # subsampled training still predicts every row, as probabilities
    capped = out_of_fold(z, codes, "categorical", method="predict_proba", random_state=0,
                         max_train_samples=50)
    assert capped.shape == (len(z), 3)
    np.testing.assert_allclose(capped.sum(axis=1), 1.0)


def test_permutation_p_values_separate_signal_from_noise():
    z, meta = _data()
    aud = ClusterAuditor(analysis_components=None, clusterer="kmeans", n_clusters=2, random_state=0)
    aud.fit(z, meta)
    table = aud.probe(["site", "noise"], cv=3, n_permutations=19, permutation_max_samples=120)
    table = table.set_index("column")
    assert table.loc["site", "p_value"] == pytest.approx(1 / 20)
    assert table.loc["site", "p_method"] == "permutation"
    assert table.loc["noise", "p_value"] > 0.1
    assert table.loc["site", "effect_size"] > 0.5  # Cohen's kappa
    # seeded: the same call gives the same table
    again = aud.probe(["site", "noise"], cv=3, n_permutations=19, permutation_max_samples=120)
    pd.testing.assert_frame_equal(table.reset_index(), again)


def test_analytic_p_values():
    z, meta = _data(400)
    codes = pd.factorize(meta["noise"])[0]
    null = run_probe(z, codes, "categorical", n_permutations=0, random_state=0)
    assert null["p_method"] == "analytic" and null["p_value"] > 0.05
    age = run_probe(z, meta["age"].to_numpy(), "continuous", n_permutations=0, random_state=0)
    assert age["p_value"] < 1e-10 and age["effect_size"] > 0.8


def test_singleton_classes_are_left_out():
    z, meta = _data()
    codes = (meta["site"] == "B").to_numpy().astype(int)
    codes[0] = 2  # a class with one member cannot be in every fold
    result = run_probe(z, codes, "categorical", n_permutations=0, random_state=0)
    assert result["n"] == len(codes) - 1
    assert not result["kept"][0]


def test_errors():
    z, _ = _data()
    with pytest.raises(ConfigError, match="did you mean 'svm'"):
        make_probe("categorical", "svn")
    with pytest.raises(DataError, match="at least two classes"):
        run_probe(z, np.zeros(len(z), dtype=int), "categorical")
    with pytest.raises(ConfigError, match="cv must be an integer >= 2"):
        run_probe(z, np.arange(len(z)) % 2, "categorical", cv=1)


@pytest.mark.slow
def test_analytic_p_values_are_valid_under_the_null():
    # blobs in the embedding, labels independent of them: the held-out fold tests,
    # combined by Bonferroni, must not reject more often than the level
    rng = np.random.default_rng(6)
    p_values = {"categorical": [], "continuous": []}
    for i in range(200):
        centres = rng.normal(size=(3, 8)) * 5
        z = centres[rng.integers(0, 3, 120)] + rng.normal(size=(120, 8))
        p_values["categorical"].append(run_probe(
            z, rng.integers(0, 3, 120), "categorical", n_permutations=0, random_state=i)["p_value"])
        p_values["continuous"].append(run_probe(
            z, rng.normal(size=120), "continuous", n_permutations=0, random_state=i)["p_value"])
    for values in p_values.values():
        values = np.array(values)
        assert np.mean(values <= 0.05) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 200)
        assert np.mean(values <= 0.2) <= 0.2 + 3 * np.sqrt(0.2 * 0.8 / 200)
