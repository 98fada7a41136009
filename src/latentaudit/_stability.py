"""How much a map, and the clusters read from it, depend on the seed
(:meth:`latentaudit.Projector.stability`)."""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np
import pandas as pd
from sklearn.base import clone

from .errors import ConfigError, InputShapeError
from .utils import check_random_state

__all__ = ["ProjectionStability", "map_stability"]


def map_stability(projector, X, n_seeds: int = 5, *, n_clusters: int = 8,
                  min_cluster_size: int | None = None, n_neighbors: int = 10,
                  max_samples: int = 2000) -> ProjectionStability:
    """Fit copies of ``projector`` with ``n_seeds`` seeds and compare their clusters.

    The implementation of :meth:`latentaudit.Projector.stability`, which documents the
    parameters.

    Returns
    -------
    ProjectionStability

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit import Projector
    >>> X = np.random.default_rng(0).normal(size=(100, 5))
    >>> map_stability(Projector(method="pca", random_state=0), X, 2).kmeans_ari
    1.0
    """
    from sklearn.cluster import HDBSCAN, KMeans
    from sklearn.manifold import trustworthiness
    from sklearn.metrics import adjusted_rand_score

    if isinstance(n_seeds, bool) or not isinstance(n_seeds, numbers.Integral) or (
            n_seeds < 2):
        raise ConfigError(f"n_seeds must be an integer >= 2, got {n_seeds!r}")
    X = np.asarray(X)
    if X.ndim != 2:
        raise InputShapeError(f"X must be 2-D (n_samples, n_features), got shape "
                              f"{X.shape}")
    n = len(X)
    rng = check_random_state(projector.random_state)
    seeds = [int(s) for s in rng.randint(np.iinfo(np.int32).max, size=n_seeds)]
    if min_cluster_size is None:
        min_cluster_size = max(10, n // 100)
    min_cluster_size = int(min(min_cluster_size, max(2, n // 2)))
    sample = np.sort(rng.choice(n, size=min(n, max_samples), replace=False))
    k = int(min(n_neighbors, max(1, (len(sample) - 1) // 2 - 1)))

    kmeans_labels, hdbscan_labels, runs = [], [], []
    for seed in seeds:
        xy = clone(projector).set_params(random_state=seed).fit_transform(X)
        kmeans_labels.append(KMeans(n_clusters=min(n_clusters, n), n_init=4,
                                    random_state=0).fit_predict(xy))
        labels = HDBSCAN(min_cluster_size=min_cluster_size, copy=True).fit_predict(xy)
        hdbscan_labels.append(labels)
        runs.append({
            "seed": seed,
            "trustworthiness": float(trustworthiness(X[sample], xy[sample],
                                                     n_neighbors=k)),
            "n_hdbscan_clusters": int(len(set(labels) - {-1})),
            "hdbscan_noise_fraction": float(np.mean(labels == -1)),
        })
    pairs = []
    for a in range(n_seeds):
        for b in range(a + 1, n_seeds):
            pairs.append({
                "seed_a": seeds[a], "seed_b": seeds[b],
                "kmeans_ari": float(adjusted_rand_score(kmeans_labels[a],
                                                        kmeans_labels[b])),
                "hdbscan_ari": float(adjusted_rand_score(hdbscan_labels[a],
                                                         hdbscan_labels[b])),
            })
    pairs = pd.DataFrame(pairs)
    runs = pd.DataFrame(runs)
    return ProjectionStability(
        seeds=seeds,
        kmeans_ari=float(pairs["kmeans_ari"].mean()),
        hdbscan_ari=float(pairs["hdbscan_ari"].mean()),
        trustworthiness=float(runs["trustworthiness"].mean()),
        pairs=pairs, runs=runs)




@dataclasses.dataclass(frozen=True)
class ProjectionStability:
    """Result of :meth:`Projector.stability`.

    Attributes
    ----------
    seeds : list of int
        The seeds of the maps.
    kmeans_ari : float
        Mean adjusted Rand index between the k-means labels of every pair of maps.
    hdbscan_ari : float
        The same for HDBSCAN labels (noise points count as one label).
    trustworthiness : float
        Mean trustworthiness of the maps (on a subsample).
    pairs : pandas.DataFrame
        One row per pair of maps: ``seed_a``, ``seed_b``, ``kmeans_ari``,
        ``hdbscan_ari``.
    runs : pandas.DataFrame
        One row per map: ``seed``, ``trustworthiness``, ``n_hdbscan_clusters``,
        ``hdbscan_noise_fraction``.
    """

    seeds: list
    kmeans_ari: float
    hdbscan_ari: float
    trustworthiness: float
    pairs: pd.DataFrame
    runs: pd.DataFrame

    def __repr__(self) -> str:
        return (f"ProjectionStability(n_seeds={len(self.seeds)}, "
                f"kmeans_ari={self.kmeans_ari:.3f}, hdbscan_ari={self.hdbscan_ari:.3f}, "
                f"trustworthiness={self.trustworthiness:.3f})")
