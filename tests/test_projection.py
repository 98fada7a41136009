"""Tests of latentaudit.projection: the Projector transformer and its stability report."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from latentaudit.errors import ConfigError, MissingDependencyError, NotFittedError
from latentaudit.projection import ProjectionStability, Projector

HAS_UMAP = importlib.util.find_spec("umap") is not None
needs_umap = pytest.mark.skipif(not HAS_UMAP, reason="umap-learn is not installed")

_TSNE_NOT_SELF_CONSISTENT = (
    "t-SNE's fit_transform returns the optimised map of the training points; transform "
    "places points against that frozen map, near but not exactly on their fitted positions")


def _expected_failures(estimator):
    if estimator.method == "pca":
        return {"check_transformer_n_iter": "PCA is not iterative; max_iter only applies to "
                                            "t-SNE and UMAP, so there is no n_iter_"}
    if estimator.method == "tsne" and estimator.backend == "sklearn":
        return {}  # no transform, as scikit-learn's TSNE: the checks that need one skip it
    return {"check_transformer_general": _TSNE_NOT_SELF_CONSISTENT,
            "check_transformer_data_not_an_array": _TSNE_NOT_SELF_CONSISTENT}


@parametrize_with_checks([Projector(method="pca", random_state=0),
                          Projector(method="tsne", max_iter=50, random_state=0)],
                         expected_failed_checks=_expected_failures)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.slow
@parametrize_with_checks([Projector(method="tsne", backend="sklearn", max_iter=50,
                                    random_state=0)],
                         expected_failed_checks=_expected_failures)
def test_sklearn_compatible_sklearn_backend(estimator, check):
    check(estimator)


@needs_umap
@pytest.mark.slow
@parametrize_with_checks([Projector(method="umap", max_iter=50, random_state=0)])
def test_sklearn_compatible_umap(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=300, n_features=64, centers=3, cluster_std=1.0,
                      random_state=0)
    return X, y


@pytest.fixture(scope="module")
def fitted_tsne(blobs):
    X, _ = blobs
    return Projector(method="tsne", random_state=0).fit(X)


# -- maps -------------------------------------------------------------------------------
def test_tsne_separates_clusters(blobs, fitted_tsne):
    X, y = blobs
    xy = fitted_tsne.embedding_
    assert xy.shape == (300, 2)
    labels = KMeans(n_clusters=3, n_init=4, random_state=0).fit_predict(xy)
    assert adjusted_rand_score(y, labels) == pytest.approx(1.0)
    assert fitted_tsne.backend_ == "opentsne"
    assert fitted_tsne.pca_.n_components_ == 50
    # early exaggeration (at most 250) and the rest (at most 500) both stop at a plateau
    assert 100 <= fitted_tsne.n_iter_ < 750
    assert set(fitted_tsne.timings_) == {"pca", "affinities", "early_exaggeration",
                                         "optimisation"}
    assert fitted_tsne.knn_recall_ == 1.0
    assert fitted_tsne.fit_rows_ is None


def test_max_iter_caps_the_iterations_after_early_exaggeration(blobs):
    X, _ = blobs
    proj = Projector(max_iter=50, random_state=0).fit(X)
    assert proj.n_iter_ <= 250 + 50


def test_other_metrics_use_opentsnes_neighbour_search(blobs):
    X, y = blobs
    proj = Projector(metric="cosine", max_iter=100, random_state=0).fit(X)
    labels = KMeans(n_clusters=3, n_init=4, random_state=0).fit_predict(proj.embedding_)
    assert adjusted_rand_score(y, labels) > 0.9
    assert not hasattr(proj, "knn_recall_")


def test_fit_transform_is_reproducible(blobs):
    X, _ = blobs
    a = Projector(random_state=3, max_iter=100).fit_transform(X)
    b = Projector(random_state=3, max_iter=100).fit_transform(X)
    np.testing.assert_array_equal(a, b)
    assert Projector(random_state=3).fit_transform(X.astype(np.float32)).dtype == np.float32


def test_pca_components_none_skips_pre_reduction(blobs):
    X, _ = blobs
    proj = Projector(pca_components=None, max_iter=50, random_state=0).fit(X[:100])
    assert proj.pca_ is None
    proj = Projector(method="pca", n_components=3, random_state=0).fit(X)
    assert proj.embedding_.shape == (300, 3)
    assert proj.pca_.n_components_ == 3


def test_small_inputs_lower_the_perplexity():
    X = np.random.default_rng(0).normal(size=(13, 5))
    proj = Projector(perplexity=30, max_iter=50, random_state=0).fit(X)
    assert proj.perplexity_ == pytest.approx(4.0)


def test_max_fit_samples_optimises_a_subsample_and_places_the_rest(blobs, tmp_path):
    X, y = blobs
    path = tmp_path / "z.npy"
    np.save(path, X.astype(np.float32))
    z = np.load(path, mmap_mode="r")  # a memory-mapped input is read, not copied
    proj = Projector(max_fit_samples=120, max_iter=100, random_state=0).fit(z)
    assert proj.fit_rows_.shape == (120,) and proj.embedding_.shape == (300, 2)
    assert proj.pca_.n_samples_ == 120
    assert "placement" in proj.timings_
    rest = np.setdiff1d(np.arange(300), proj.fit_rows_)
    np.testing.assert_allclose(proj.embedding_[rest], proj.transform(np.asarray(z)[rest]),
                               rtol=1e-5, atol=1e-4)  # transform returns float32
    labels = KMeans(n_clusters=3, n_init=4, random_state=0).fit_predict(proj.embedding_)
    assert adjusted_rand_score(y, labels) == pytest.approx(1.0)
    # at or under the limit: every row is optimised
    assert Projector(max_fit_samples=300, max_iter=50, random_state=0).fit(X).fit_rows_ is None
    with pytest.raises(ConfigError, match="max_fit_samples"):
        Projector(max_fit_samples=2).fit(X)
    with pytest.raises(ConfigError, match="cannot do"):
        Projector(max_fit_samples=100, backend="sklearn").fit(X)


# -- transform ---------------------------------------------------------------------------
def test_transform_of_training_points_lands_near_their_positions(blobs, fitted_tsne):
    X, _ = blobs
    placed = fitted_tsne.transform(X)
    extent = np.ptp(fitted_tsne.embedding_, axis=0).max()
    distances = np.linalg.norm(placed - fitted_tsne.embedding_, axis=1)
    assert np.median(distances) < 0.03 * extent
    assert np.percentile(distances, 95) < 0.1 * extent


@pytest.mark.parametrize("method", ["tsne", "pca",
                                    pytest.param("umap", marks=[needs_umap, pytest.mark.slow])])
def test_transform_is_batch_independent(blobs, method):
    X, _ = blobs
    proj = Projector(method=method, max_iter=100, random_state=0).fit(X)
    new = X[:12] + np.random.default_rng(1).normal(scale=0.5, size=(12, X.shape[1]))
    together = proj.transform(new)
    one_by_one = np.vstack([proj.transform(new[i:i + 1]) for i in range(len(new))])
    reversed_order = proj.transform(new[::-1])[::-1]
    np.testing.assert_allclose(one_by_one, together, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(reversed_order, together, rtol=1e-10, atol=1e-10)


def test_sklearn_backend_cannot_transform(blobs):
    X, _ = blobs
    proj = Projector(backend="sklearn", max_iter=50, random_state=0)
    xy = proj.fit_transform(X[:60])
    assert xy.shape == (60, 2) and proj.backend_ == "sklearn"
    assert not hasattr(proj, "transform")  # as scikit-learn's TSNE
    with pytest.raises(AttributeError, match="has no attribute 'transform'") as error:
        proj.transform(X[:5])
    assert isinstance(error.value.__cause__, ConfigError)
    assert "cannot place new points" in str(error.value.__cause__)


def test_not_fitted_and_bad_options(blobs):
    X, _ = blobs
    with pytest.raises(NotFittedError, match="not fitted"):
        Projector().transform(X)
    with pytest.raises(ConfigError, match="did you mean 'tsne'"):
        Projector(method="tnse").fit(X)
    with pytest.raises(ConfigError, match="backend"):
        Projector(method="pca", backend="opentsne").fit(X)
    with pytest.raises(ConfigError, match="at most 3"):
        Projector(n_components=4).fit(X)
    with pytest.raises(ConfigError, match="perplexity"):
        Projector(perplexity=-1).fit(X)


@pytest.mark.skipif(HAS_UMAP, reason="umap-learn is installed")
def test_umap_without_the_package_says_how_to_install(blobs):
    X, _ = blobs
    with pytest.raises(MissingDependencyError, match=r"latentaudit\[umap\]"):
        Projector(method="umap").fit(X)


# -- stability ---------------------------------------------------------------------------
def test_stability_of_well_separated_clusters(blobs):
    X, _ = blobs
    report = Projector(max_iter=100, random_state=0).stability(X, n_seeds=3, n_clusters=3)
    assert isinstance(report, ProjectionStability)
    assert len(report.seeds) == 3 and len(set(report.seeds)) == 3
    assert len(report.pairs) == 3 and len(report.runs) == 3
    assert report.kmeans_ari == pytest.approx(1.0)
    assert report.hdbscan_ari > 0.9
    assert report.trustworthiness > 0.9


def test_stability_flags_unstable_clusters():
    # structureless noise: k-means cuts different clusters on every map
    X = np.random.default_rng(0).normal(size=(300, 20))
    report = Projector(max_iter=100, random_state=0).stability(X, n_seeds=3, n_clusters=6)
    assert report.kmeans_ari < 0.8
    with pytest.raises(ConfigError, match="n_seeds"):
        Projector().stability(X, n_seeds=1)

