"""Clustering of the analysis space: HDBSCAN, k-means or Gaussian mixtures, optionally within
the groups of a column, on a subsample for large inputs; the clusters' members and summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.cluster import HDBSCAN, KMeans
from sklearn.metrics import silhouette_score
from sklearn.mixture import GaussianMixture

from ..utils import check_random_state
from ._neighbors import exact_neighbors

__all__: list[str] = []

_CLUSTERERS = ("hdbscan", "kmeans", "gmm")
_NOISE = -1


class _Clustering:
    """:class:`~latentaudit.audit.ClusterAuditor`'s clustering step."""

    def members(self, cluster: int) -> np.ndarray:
        """Row positions of one cluster.

        Parameters
        ----------
        cluster : int
            A label of :attr:`labels_` (``-1``: rows in no cluster).

        Returns
        -------
        numpy.ndarray of int64

        Raises
        ------
        NotFittedError
            Before ``fit``.

        Examples
        --------
        >>> import numpy as np
        >>> from latentaudit.audit import ClusterAuditor
        >>> aud = ClusterAuditor(clusterer="kmeans", n_clusters=2, random_state=0)
        >>> aud = aud.fit(np.r_[np.zeros((10, 2)), np.ones((10, 2)) * 5])
        >>> aud.members(aud.labels_[0]).size
        10
        """
        self._check_fitted()
        return np.flatnonzero(self.labels_ == int(cluster))

    def summary(self) -> pd.DataFrame:
        """One row per cluster: its size and its strongest association.

        Returns
        -------
        pandas.DataFrame
            ``cluster``, ``n``, ``fraction``, ``top_column``, ``top_test``,
            ``top_effect_size``, ``top_q_value``, ``description`` (of the cluster's
            first-ranked finding; empty when it has none), clusters in label order
            and ``-1`` last.

        Raises
        ------
        NotFittedError
            Before ``fit``.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from latentaudit.audit import ClusterAuditor
        >>> rng = np.random.default_rng(0)
        >>> site = np.repeat(["A", "B"], 100)
        >>> z = rng.normal(size=(200, 8)) + 6.0 * (site == "B")[:, None]
        >>> aud = ClusterAuditor(random_state=0).fit(z, pd.DataFrame({"site": site}))
        >>> aud.summary()[["cluster", "n"]].values.tolist()
        [[0, 100], [1, 100]]
        """
        self._check_fitted()
        clusters, sizes = np.unique(self.labels_, return_counts=True)
        order = np.argsort(np.where(clusters == _NOISE, np.iinfo(np.int64).max, clusters))
        per_cluster = self.findings_.dropna(subset=["cluster"])
        out = []
        for cluster, size in zip(clusters[order], sizes[order], strict=True):
            first = per_cluster[per_cluster["cluster"] == cluster].head(1)
            row = {"cluster": int(cluster), "n": int(size),
                   "fraction": float(size / self.n_samples_)}
            if len(first):
                top = first.iloc[0]
                row.update(top_column=top["column"], top_test=top["test"],
                           top_effect_size=float(top["effect_size"]),
                           top_q_value=float(top["q_value"]), description=top["description"])
            else:
                row.update(top_column=None, top_test=None, top_effect_size=np.nan,
                           top_q_value=np.nan, description="")
            out.append(row)
        return pd.DataFrame(out)

    def _cluster(self, space: np.ndarray, metadata: pd.DataFrame, seed: int) -> np.ndarray:
        space = np.ascontiguousarray(space, dtype=np.float64)
        n = space.shape[0]
        rng = check_random_state(seed)
        if self.within_ is None:
            return _relabel_by_size(self._cluster_rows(space, rng))
        labels = np.full(n, _NOISE, dtype=np.int64)
        groups = metadata[self.within_]
        offset = 0
        for value in pd.unique(groups.dropna()):
            rows = np.flatnonzero((groups == value).to_numpy())
            part = _relabel_by_size(self._cluster_rows(space[rows], rng))
            labels[rows] = np.where(part >= 0, part + offset, _NOISE)
            offset += int(part.max()) + 1 if (part >= 0).any() else 0
        return labels

    def _cluster_rows(self, x: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
        n = x.shape[0]
        seed = int(rng.randint(2**31 - 1))
        sample = np.arange(n)
        if n > self.cluster_max_samples:
            sample = np.sort(rng.choice(n, size=self.cluster_max_samples, replace=False))
        xs = x[sample]
        if self.clusterer == "hdbscan":
            size = self.min_cluster_size or max(10, round(0.01 * xs.shape[0]))
            if xs.shape[0] < max(2 * size, 4):
                return np.zeros(n, dtype=np.int64)
            sample_labels = HDBSCAN(min_cluster_size=int(size), copy=True).fit(xs).labels_
            if sample.size == n:
                return sample_labels.astype(np.int64)
            return _propagate(xs, sample_labels, x, n_jobs=self.n_jobs)
        k = self.n_clusters or self._choose_n_clusters(xs, seed)
        k = min(int(k), xs.shape[0])
        if self.clusterer == "kmeans":
            model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(xs)
        else:
            model = GaussianMixture(n_components=k, random_state=seed).fit(xs)
        return model.predict(x).astype(np.int64)

    def _choose_n_clusters(self, x: np.ndarray, seed: int) -> int:
        rng = check_random_state(seed)
        if x.shape[0] > 5000:
            x = x[rng.choice(x.shape[0], size=5000, replace=False)]
        top = min(self.max_clusters, x.shape[0] - 1)
        if self.clusterer == "kmeans":
            scores = {}
            for k in range(2, max(top, 2) + 1):
                fitted = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(x)
                if np.unique(fitted).size > 1:
                    scores[k] = silhouette_score(x, fitted, random_state=seed)
            return max(scores, key=scores.get) if scores else 2
        bic = {k: GaussianMixture(n_components=k, random_state=seed).fit(x).bic(x)
               for k in range(1, max(top, 1) + 1)}
        return min(bic, key=bic.get)



def _relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Number the clusters by decreasing size (0 = largest), keeping -1."""
    labels = np.asarray(labels, dtype=np.int64)
    clustered = labels[labels != _NOISE]
    if clustered.size == 0:
        return labels
    values, counts = np.unique(clustered, return_counts=True)
    rank = np.empty(values.size, dtype=np.int64)
    rank[np.lexsort((values, -counts))] = np.arange(values.size)
    out = np.full(labels.shape, _NOISE, dtype=np.int64)
    inside = labels != _NOISE
    out[inside] = rank[np.searchsorted(values, labels[inside])]
    return out


def _propagate(sample_x, sample_labels, x, *, n_jobs=None, k: int = 5) -> np.ndarray:
    """Give every row the majority label of its ``k`` nearest clustered rows."""
    indices, _ = exact_neighbors(sample_x, x, min(k, sample_x.shape[0]), n_jobs=n_jobs)
    votes = np.asarray(sample_labels, dtype=np.int64)[indices] + 1  # noise -> 0
    n_labels = int(votes.max()) + 1
    counts = np.zeros((x.shape[0], n_labels), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(x.shape[0]), votes.shape[1]), votes.ravel()), 1)
    # ties go to the nearest neighbour's label
    best = counts.max(axis=1, keepdims=True)
    nearest = votes[:, 0]
    winner = np.where(counts[np.arange(x.shape[0]), nearest] == best[:, 0], nearest,
                      counts.argmax(axis=1))
    return winner - 1
