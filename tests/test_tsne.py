"""Tests of latentaudit._tsne: the FFT repulsion, the gradient, the stop rule, the kNN index."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from latentaudit._tsne import GraphIndex, KLPlateau, fft_repulsion, kl_gradient, resolve_n_jobs


def _exact_repulsion(y):
    d = y[:, None, :] - y[None, :, :]
    q = 1.0 / (1.0 + (d ** 2).sum(-1))
    np.fill_diagonal(q, 0.0)
    return (q[..., None] ** 2 * d).sum(axis=1) / q.sum(), q.sum(), q


def _two_clusters(n, scale, stretch=1.0, seed=0):
    y = np.random.default_rng(seed).normal(size=(n, 2)) * scale
    y[: n // 2, 0] += 4 * scale
    y[:, 1] *= stretch
    return y


@pytest.mark.parametrize("scale, stretch", [(1e-4, 1.0), (1.0, 1.0), (8.0, 1.0), (8.0, 0.1)])
def test_fft_repulsion_matches_the_exact_sum(scale, stretch):
    # tiny (a fresh initialisation), small, large and elongated maps (rectangular grid)
    y = _two_clusters(1500, scale, stretch)
    forces, sum_q = fft_repulsion(y)
    exact, exact_sum, _ = _exact_repulsion(y)
    assert forces.shape == (1500, 2) and forces.dtype == np.float64
    assert abs(sum_q - exact_sum) < 0.01 * exact_sum
    assert np.linalg.norm(forces - exact) < 0.05 * np.linalg.norm(exact)


def test_fft_repulsion_is_finer_with_finer_nodes():
    y = _two_clusters(1500, 8.0)
    exact, _, _ = _exact_repulsion(y)
    errors = [np.linalg.norm(fft_repulsion(y, node_spacing=h)[0] - exact) for h in (0.6, 0.2)]
    assert errors[1] < 0.3 * errors[0]


def test_fft_repulsion_threads_give_the_same_forces():
    y = _two_clusters(800, 5.0)
    one, sum_one = fft_repulsion(y, n_jobs=1)
    two, sum_two = fft_repulsion(y, n_jobs=2)
    np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-9)
    assert sum_two == pytest.approx(sum_one, rel=1e-6)


def test_kl_gradient_matches_the_exact_gradient_and_divergence():
    rng = np.random.default_rng(1)
    y = _two_clusters(400, 3.0)
    dense = rng.random((400, 400)) * (rng.random((400, 400)) < 0.05)
    dense = dense + dense.T
    np.fill_diagonal(dense, 0.0)
    dense /= dense.sum()
    kl, gradient = kl_gradient(y, sp.csr_matrix(dense), should_eval_error=True)
    repulsion, sum_q, q = _exact_repulsion(y)
    attraction = ((dense * q)[..., None] * (y[:, None] - y[None])).sum(axis=1)
    exact = attraction - repulsion
    assert np.linalg.norm(gradient - exact) < 0.05 * np.linalg.norm(exact)
    mask = dense > 0
    exact_kl = float((dense[mask] * np.log(dense[mask] / (q[mask] / sum_q))).sum())
    assert kl == pytest.approx(exact_kl, rel=0.01)
    # 1-D maps and placement against a frozen map go to openTSNE's interpolation
    kl_1d, gradient_1d = kl_gradient(y[:, :1].copy(), sp.csr_matrix(dense),
                                     should_eval_error=True)
    assert gradient_1d.shape == (400, 1) and np.isfinite(kl_1d)


def test_attractive_forces_and_divergence_terms_are_exact():
    from latentaudit._tsne import _attraction

    rng = np.random.default_rng(2)
    y = _two_clusters(300, 2.0)
    dense = rng.random((300, 300)) * (rng.random((300, 300)) < 0.1)
    np.fill_diagonal(dense, 0.0)
    P = sp.csr_matrix(dense / dense.sum())
    gradient = np.zeros_like(y)
    sum_p, divergence = _attraction(P.indptr, P.indices, P.data, y, gradient, True)
    d = y[:, None] - y[None]
    q = 1 / (1 + (d ** 2).sum(-1))
    dense = P.toarray()
    np.testing.assert_allclose(gradient, ((dense * q)[..., None] * d).sum(1), rtol=1e-9,
                               atol=1e-15)
    mask = dense > 0
    assert sum_p == pytest.approx(1.0)
    assert divergence == pytest.approx(float((dense[mask] * np.log(dense[mask] / q[mask])
                                              ).sum()), rel=1e-9)


def test_kl_plateau_stops_once_the_divergence_stops_falling():
    stop = KLPlateau(tol=0.02)
    stop.optimization_about_to_start()
    decisions = [stop(i, kl, None) for i, kl in [(50, 3.0), (100, 2.5), (150, 2.45),
                                                  (200, 2.44)]]
    assert decisions == [False, False, False, True]
    assert stop.stopped_at_ == 200 and len(stop.history_) == 4
    stop.optimization_about_to_start()
    assert stop.stopped_at_ is None and stop.history_ == []


def test_early_exaggeration_stops_only_after_the_fall_has_peaked():
    stop = KLPlateau(tol=0.01, after_peak=True)
    stop.optimization_about_to_start()
    # the divergence barely moves at first (the PCA start is tiny), then drops
    kls = [(10, 7.19), (20, 7.17), (30, 5.97), (40, 5.44), (50, 5.34), (60, 5.30)]
    decisions = [stop(i, kl, None) for i, kl in kls]
    assert decisions == [False, False, False, False, False, True]
    assert stop.stopped_at_ == 60
    plain = KLPlateau(tol=0.01)
    plain.optimization_about_to_start()
    assert [plain(i, kl, None) for i, kl in kls[:2]] == [False, True]


def test_graph_index_builds_and_queries_exact_neighbours():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(300, 6))
    index = GraphIndex(data, 7, random_state=0)
    indices, distances = index.build()
    d = np.linalg.norm(data[:, None] - data[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    np.testing.assert_array_equal(np.sort(indices, axis=1), np.sort(np.argsort(d, 1)[:, :7], 1))
    assert distances.dtype == np.float64 and index.recall_ == 1.0
    queries = rng.normal(size=(5, 6))
    found, _ = index.query(queries, 4)
    expected = np.argsort(np.linalg.norm(queries[:, None] - data[None], axis=-1), 1)[:, :4]
    np.testing.assert_array_equal(found, expected)


def test_resolve_n_jobs():
    assert resolve_n_jobs(1) == 1
    assert resolve_n_jobs(None) == resolve_n_jobs(-1) >= 1
