"""Tests of the kNN graph: exact for small inputs, NN-descent (pynndescent) for large."""

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from latentaudit.audit._neighbors import (
    build_knn_graph,
    enable_numba_cache,
    estimate_recall,
    exact_neighbors,
)
from latentaudit.errors import ConfigError


def test_exact_graph_matches_sklearn_without_self():
    x = np.random.default_rng(0).normal(size=(300, 6))
    graph = build_knn_graph(x, 7)
    assert graph.method == "exact"
    assert graph.indices.shape == (300, 7) and graph.distances.dtype == np.float32
    dist, ind = NearestNeighbors(n_neighbors=8).fit(x).kneighbors(x)
    np.testing.assert_array_equal(graph.indices, ind[:, 1:])
    np.testing.assert_allclose(graph.distances, dist[:, 1:], rtol=1e-4, atol=1e-5)
    assert not np.any(graph.indices == np.arange(300)[:, None])
    assert estimate_recall(x, graph.indices, n_queries=50, random_state=0) == 1.0


def test_duplicates_never_list_a_row_as_its_own_neighbour():
    x = np.repeat(np.random.default_rng(1).normal(size=(20, 3)), 3, axis=0)  # triplicates
    graph = build_knn_graph(x, 2)
    assert not np.any(graph.indices == np.arange(60)[:, None])
    np.testing.assert_allclose(graph.distances, 0.0, atol=1e-3)
    # each row's two neighbours are its two copies
    np.testing.assert_array_equal(np.sort(graph.indices // 3, axis=1),
                                  np.repeat(np.arange(20), 3)[:, None].repeat(2, axis=1))


def test_recall_of_a_wrong_graph_is_low():
    x = np.random.default_rng(2).normal(size=(200, 4))
    wrong = np.random.default_rng(3).integers(0, 200, size=(200, 5))
    assert estimate_recall(x, wrong, n_queries=100, random_state=0) < 0.2


def test_exact_neighbors_of_queries():
    data = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    indices, distances = exact_neighbors(data, [[0.9, 0.1]], 2)
    np.testing.assert_array_equal(indices, [[1, 0]])
    np.testing.assert_allclose(distances, [[np.hypot(0.1, 0.1), np.hypot(0.9, 0.1)]], rtol=1e-5)


def test_bad_options():
    x = np.zeros((10, 2))
    with pytest.raises(ConfigError, match="did you mean 'exact'"):
        build_knn_graph(x, 3, method="exakt")
    with pytest.raises(ConfigError, match="n_neighbors must be between 1 and n_samples - 1"):
        build_knn_graph(x, 10)
    with pytest.raises(ConfigError, match="min_recall must be in"):
        build_knn_graph(x, 3, min_recall=1.5)


@pytest.mark.slow
def test_nndescent_graph_reaches_recall():
    # numba compiles pynndescent on first use (tens of seconds, cached on disk after)
    rng = np.random.default_rng(4)
    centers = rng.normal(size=(8, 24)) * 4
    x = centers[rng.integers(0, 8, 4000)] + rng.normal(size=(4000, 24))
    assert enable_numba_cache() in (True, False)
    graph = build_knn_graph(x, 10, method="nndescent", random_state=0, n_jobs=1)
    assert graph.method == "nndescent"
    assert graph.indices.shape == (4000, 10)
    assert not np.any(graph.indices == np.arange(4000)[:, None])
    assert estimate_recall(x, graph.indices, n_queries=300, random_state=0) >= 0.95
    again = build_knn_graph(x, 10, method="nndescent", random_state=0, n_jobs=1)
    np.testing.assert_array_equal(graph.indices, again.indices)


@pytest.mark.slow
def test_a_graph_below_the_recall_floor_is_rebuilt_then_made_exact():
    # An isotropic 64-d Gaussian is hard for NN-descent: with short lists its recall is
    # far below 0.95, so the graph is built again with longer lists until it gets there.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 64)).astype(np.float32)
    first = build_knn_graph(x, 10, method="nndescent", build_neighbors=11, min_recall=None,
                            random_state=0, n_jobs=1)
    assert estimate_recall(x, first.indices, n_queries=300, random_state=1) < 0.95
    graph = build_knn_graph(x, 10, method="nndescent", build_neighbors=11, min_recall=0.95,
                            max_rebuilds=3, random_state=0, n_jobs=1)
    assert graph.build_neighbors is None or graph.build_neighbors > 11
    assert estimate_recall(x, graph.indices, n_queries=300, random_state=1) >= 0.93
    assert graph.recall >= 0.95
    # a floor NN-descent cannot reach in the rebuilds allowed ends with the exact graph
    exact = build_knn_graph(x, 10, method="nndescent", build_neighbors=11, min_recall=1.0,
                            max_rebuilds=0, random_state=0, n_jobs=1)
    assert exact.method == "exact" and exact.recall == 1.0
    reference = build_knn_graph(x, 10, method="exact")
    np.testing.assert_array_equal(exact.indices, reference.indices)
