"""Tests of latentaudit._streaming: block-wise PCA and projection."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from latentaudit._streaming import StreamingPCA, project_rows, row_blocks
from latentaudit.errors import ConfigError


def test_row_blocks_cover_every_row_once():
    covered = np.concatenate([np.arange(20)[rows] for rows in row_blocks(20, 7)])
    np.testing.assert_array_equal(covered, np.arange(20))
    assert list(row_blocks(0, 7)) == []


def test_streaming_pca_equals_scikit_learns_on_a_memory_map(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(500, 12)) * np.linspace(4, 0.5, 12) + 3).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    ours = StreamingPCA(4, block_rows=64).fit(mapped)
    theirs = PCA(4, svd_solver="full").fit(x.astype(np.float64))
    np.testing.assert_allclose(ours.mean_, theirs.mean_, rtol=1e-6)
    np.testing.assert_allclose(ours.components_, theirs.components_, atol=1e-6)
    np.testing.assert_allclose(ours.explained_variance_ratio_,
                               theirs.explained_variance_ratio_, rtol=1e-6)
    scores = ours.transform(mapped)
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores, theirs.transform(x), atol=1e-4)
    # the blocks change nothing
    np.testing.assert_allclose(
        project_rows(mapped, ours.mean_, ours.components_, block_rows=7),
        project_rows(mapped, ours.mean_, ours.components_, block_rows=500), atol=1e-5)
    with pytest.raises(ConfigError, match="n_components"):
        StreamingPCA(13).fit(x)


@pytest.mark.parametrize("k", [10, 298, 299, 300])
def test_pca_with_fewer_rows_than_features_matches_scikit_learn(k):
    """n < d: the components come from the rows' Gram matrix (k <= n - 2), the scatter's
    eigensolver otherwise; both agree with scikit-learn."""
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(300, 20)) * np.geomspace(10, 1, 20)
    basis = np.linalg.qr(rng.normal(size=(1024, 20)))[0].T
    x = latent @ basis + 0.01 * rng.normal(size=(300, 1024))
    ours = StreamingPCA(k, block_rows=64).fit(x)
    theirs = PCA(k, svd_solver="full").fit(x)
    lead = min(k, 10)  # the noise floor's components are not unique
    assert np.allclose(ours.components_[:lead], theirs.components_[:lead], atol=1e-8)
    assert np.allclose(ours.explained_variance_[:lead], theirs.explained_variance_[:lead])
    assert np.allclose(ours.explained_variance_ratio_.sum(),
                       theirs.explained_variance_ratio_.sum())
    assert np.allclose(ours.transform(x, np.float64)[:, :lead],
                       theirs.transform(x)[:, :lead], atol=1e-8)


def test_pca_of_rank_deficient_rows_falls_back_to_the_scatter():
    """Fewer rows than features and a wanted eigenvalue of zero (rank 5, 10 components):
    the Gram path gives way to the scatter's eigensolver, finite and equal to scikit-learn
    on the components that carry variance."""
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(50, 5)) * np.geomspace(5, 1, 5)) @ rng.normal(size=(5, 200))
    ours = StreamingPCA(10).fit(x)
    theirs = PCA(10, svd_solver="full").fit(x)
    assert np.isfinite(ours.components_).all()
    assert np.allclose(np.abs(ours.components_[:5]), np.abs(theirs.components_[:5]),
                       atol=1e-8)
    assert np.allclose(ours.explained_variance_[:5], theirs.explained_variance_[:5])
