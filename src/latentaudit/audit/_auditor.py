"""ClusterAuditor: find what should not be there in an embedding, and say how sure we are.

The paper looks at a t-SNE map coloured by site and sees "clusters that should not
exist".  :class:`ClusterAuditor` does the same systematically on any (N, d) embedding and a
metadata table: it clusters the embedding, tests every cluster against every column,
probes nuisance columns, corrects for multiple testing and ranks what it found, with a
sentence a person can read.  The same k-nearest-neighbour graph then serves label issues,
outliers, near-duplicates and look-ups.  NumPy, SciPy, pandas and scikit-learn only.
"""

from __future__ import annotations

import json
import logging
import numbers
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import BaseEstimator
from sklearn.cluster import HDBSCAN, KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score
from sklearn.mixture import GaussianMixture
from tqdm.auto import tqdm

from .._metadata import check_metadata
from ..errors import (
    CheckpointError,
    ConfigError,
    DataError,
    InputShapeError,
    InputTypeError,
    NotFittedError,
)
from ..utils import atomic_write, check_option, check_random_state
from ._neighbors import build_knn_graph, exact_neighbors
from ._probes import PROBE_MODELS, out_of_fold, run_probe
from ._stats import (
    ami_permutation_test,
    benjamini_hochberg,
    chi2_test,
    contingency_table,
    kruskal_from_ranks,
    tie_correction,
)

__all__ = ["ClusterAuditor"]

logger = logging.getLogger(__name__)

FINDING_COLUMNS = [
    "kind",
    "cluster",
    "column",
    "test",
    "statistic",
    "effect_size",
    "p_value",
    "q_value",
    "n",
    "description",
]
PROBE_COLUMNS = [
    "column",
    "model",
    "metric",
    "score",
    "ci_low",
    "ci_high",
    "chance",
    "effect_size",
    "p_value",
    "p_method",
    "n",
    "n_permutations",
]
_METHODS = ("hdbscan", "kmeans", "gmm")
_NOISE = -1
MIN_ROWS = 5  # fewer rows cannot be clustered and tested
_MIN_GROUP = 3  # smallest cluster (and rest) a per-cluster test is run on
_MAX_LEVELS = 50  # categorical columns with more levels are identifiers, not tested
_AMI_BINS = 10  # quantile bins of a continuous column for the AMI test
_SAVE_FORMAT = "latentaudit.ClusterAuditor"
_SAVE_VERSION = 1


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _cluster_name(cluster: int, group: str | None, n: int) -> str:
    where = f"{group}, " if group else ""
    if cluster == _NOISE:
        return f"unclustered points ({where}{n} subjects)"
    return f"cluster {cluster} ({where}{n} subjects)"


class ClusterAuditor(BaseEstimator):
    """Cluster an embedding and test the clusters against the metadata.

    ``fit`` reduces the embedding by PCA, clusters it (HDBSCAN by default), tests every
    cluster against every metadata column, probes the nuisance columns, controls the
    false discovery rate over everything tested and ranks the findings.  It also builds
    the k-nearest-neighbour graph that :meth:`label_issues`, :meth:`outliers` and
    :meth:`duplicates` read.

    Parameters
    ----------
    method : {"hdbscan", "kmeans", "gmm"}, default "hdbscan"
        Clustering: scikit-learn's HDBSCAN (clusters of any shape, points in no cluster
        labelled -1), k-means, or a Gaussian mixture.  Ignored when ``fit`` gets
        ``labels``.
    n_clusters : int, optional
        Clusters of k-means and Gaussian mixtures; by default chosen from 2 to
        ``max_clusters`` by the silhouette (k-means) or from 1 to ``max_clusters`` by BIC
        (mixtures), on at most 5,000 rows.
    min_cluster_size : int, optional
        HDBSCAN's smallest cluster; default ``max(10, 1%)`` of the rows clustered.
    max_clusters : int, default 10
        Upper end of the automatic choice of ``n_clusters``.
    n_components : int or None, default 50
        Principal components of the analysis space (clusters, probes, label issues);
        ``None`` or at least the embedding's width: no reduction.
    cluster_components : int or None, default 10
        Leading principal components that the clustering sees (density-based
        clustering works poorly in many dimensions); ``None``: all of the analysis space.
    cluster_max_samples : int, default 10000
        Larger inputs are clustered on a random subsample of this size (HDBSCAN's cost
        grows with the square of the rows) and every other row takes the majority label
        of its 5 nearest clustered rows.
    columns : list of str, optional
        Metadata columns to test (default: all, except identifiers, constants and
        categorical columns with more than 50 levels).
    expected : list of str, optional
        Columns whose association with the clusters is expected structure (e.g.
        ``"sex"``); they are tested but ranked after everything else.
    nuisance : list of str, optional
        Columns whose association is the unexpected finding (e.g. ``"site"``).  With
        ``probe_nuisance``, each is also probed from the embedding: one predicted above
        chance is a finding of kind ``"probe"`` even when no cluster follows it.
    within : str, optional
        A categorical column (typically an expected one) to cluster within: each of its
        groups is clustered on its own and each cluster is tested against the rest of
        its group, so site effects hidden inside, e.g., the sexes come out.
    max_categories : int, default 10
        Numeric columns with at most this many distinct values are categorical.
    n_neighbors : int, default 15
        Neighbours per row in the kNN graph.
    knn_method : {"auto", "exact", "nndescent"}, default "auto"
        Exact brute force up to 20,000 rows, pynndescent's NN-descent above.  An
        NN-descent graph whose recall, estimated on 200 sampled rows, is below 0.95 is
        built again with longer lists, and exactly if that does not help
        (:attr:`knn_recall_` reports the estimate).
    knn_space : {"embedding", "reduced"}, default "embedding"
        Where neighbours are searched: the embedding as given or the PCA-reduced
        analysis space (faster; neighbours then follow the leading components).
    n_permutations : int, default 199
        Permutations of the AMI test and draws of the Monte Carlo χ² test.
    probe_nuisance : bool, default True
        Probe the nuisance columns during ``fit``.
    probe_max_samples : int, default 20000
        Rows (sampled at random) that the probes of ``fit`` use, and the most training
        rows of each fold's probe in :meth:`label_issues`.
    alpha : float, default 0.05
        False discovery rate at which a finding counts as significant (it ranks before
        the ones that are not).
    n_jobs : int, optional
        Threads of the neighbour searches (NN-descent and scikit-learn's brute force).
        Probes run their folds one after the other: with small per-fold work, worker
        processes cost more than they save, and BLAS already uses the cores.
    verbose : bool, default False
        Show a progress bar.
    random_state : int, numpy.random.RandomState or None, default None
        Seed of every random choice (PCA, subsamples, clustering, permutations, folds,
        NN-descent).

    Attributes
    ----------
    labels_ : numpy.ndarray of int64, shape (n_samples,)
        One cluster label per row, largest cluster 0, ``-1`` for rows in no cluster.
    n_clusters_ : int
        Number of clusters (``-1`` not counted).
    findings_ : pandas.DataFrame
        Everything tested, most important first: columns ``kind`` ("cluster" or
        "probe"), ``cluster`` (``<NA>`` for tests of the whole clustering and for
        probes), ``column``, ``test`` ("chi2", "fisher", "chi2_mc", "kruskal", "ami",
        "probe_logistic", "probe_ridge"), ``statistic``, ``effect_size`` (Cramér's V,
        ε², AMI, Cohen's κ or R²), ``p_value``, ``q_value`` (Benjamini–Hochberg over
        all rows), ``n`` (the cluster's size, or the rows tested) and ``description``.
        Ranking: findings of expected columns last; within each part, significant ones
        (``q_value <= alpha``) first, by effect size on a correlation scale (V, √ε²,
        AMI, κ, √R²).
    column_types_ : dict
        ``{column: "categorical" or "continuous"}`` of the columns tested.
    column_roles_ : dict
        ``{column: "expected", "nuisance" or "other"}``.
    explained_variance_ratio_ : numpy.ndarray or None
        Variance explained by each principal component of the analysis space.
    knn_indices_, knn_distances_ : numpy.ndarray of shape (n_samples, n_neighbors)
        The kNN graph (self excluded).
    knn_method_ : str
        ``"exact"`` or ``"nndescent"``.
    knn_recall_ : float
        Recall of the graph against exact search on 200 sampled rows (1.0 if exact).
    n_samples_, n_features_in_ : int
        Shape of the embedding.
    timings_ : dict
        Seconds ``fit`` spent in each stage (``pca``, ``clusters``, ``knn_graph``,
        ``tests``, ``probes``).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from latentaudit.audit import ClusterAuditor
    >>> rng = np.random.default_rng(0)
    >>> site = np.repeat(["A", "B"], 100)
    >>> z = rng.normal(size=(200, 8)) + 6.0 * (site == "B")[:, None]
    >>> aud = ClusterAuditor(random_state=0).fit(z, pd.DataFrame({"site": site}))
    >>> aud.findings_.loc[0, "column"]
    'site'
    """

    def __init__(
        self,
        *,
        method: str = "hdbscan",
        n_clusters: int | None = None,
        min_cluster_size: int | None = None,
        max_clusters: int = 10,
        n_components: int | None = 50,
        cluster_components: int | None = 10,
        cluster_max_samples: int = 10_000,
        columns: Sequence[str] | None = None,
        expected: Sequence[str] | None = None,
        nuisance: Sequence[str] | None = None,
        within: str | None = None,
        max_categories: int = 10,
        n_neighbors: int = 15,
        knn_method: str = "auto",
        knn_space: str = "embedding",
        n_permutations: int = 199,
        probe_nuisance: bool = True,
        probe_max_samples: int = 20_000,
        alpha: float = 0.05,
        n_jobs: int | None = None,
        verbose: bool = False,
        random_state=None,
    ):
        self.method = method
        self.n_clusters = n_clusters
        self.min_cluster_size = min_cluster_size
        self.max_clusters = max_clusters
        self.n_components = n_components
        self.cluster_components = cluster_components
        self.cluster_max_samples = cluster_max_samples
        self.columns = columns
        self.expected = expected
        self.nuisance = nuisance
        self.within = within
        self.max_categories = max_categories
        self.n_neighbors = n_neighbors
        self.knn_method = knn_method
        self.knn_space = knn_space
        self.n_permutations = n_permutations
        self.probe_nuisance = probe_nuisance
        self.probe_max_samples = probe_max_samples
        self.alpha = alpha
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.random_state = random_state

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> None:
        check_option("method", self.method, _METHODS)
        check_option("knn_method", self.knn_method, ["auto", "exact", "nndescent"])
        check_option("knn_space", self.knn_space, ["embedding", "reduced"])
        for name, low, allow_none in [
            ("n_clusters", 1, True),
            ("min_cluster_size", 2, True),
            ("max_clusters", 2, False),
            ("n_components", 1, True),
            ("cluster_components", 1, True),
            ("cluster_max_samples", 100, False),
            ("max_categories", 1, False),
            ("n_neighbors", 1, False),
            ("n_permutations", 1, False),
            ("probe_max_samples", 10, False),
        ]:
            value = getattr(self, name)
            if value is None and allow_none:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                none = " or None" if allow_none else ""
                raise ConfigError(f"{name} must be an integer >= {low}{none}, got {value!r}")
        if not (isinstance(self.alpha, numbers.Real) and 0 < self.alpha < 1):
            raise ConfigError(f"alpha must be a number in (0, 1), got {self.alpha!r}")

    @staticmethod
    def _check_z(z, name: str = "z") -> np.ndarray:
        if hasattr(z, "detach"):  # a torch tensor, without importing torch
            z = z.detach().cpu().numpy()
        try:
            array = np.asarray(z)
        except (TypeError, ValueError) as err:
            raise InputTypeError(f"{name} must be an array of shape (n_samples, n_features), "
                                 f"got {type(z).__name__}") from err
        if array.ndim != 2 or array.shape[1] == 0:
            raise InputShapeError(
                f"{name} must have shape (n_samples, n_features) with at least one feature, "
                f"got {array.shape}")
        if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
            raise InputTypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
        array = np.ascontiguousarray(array, dtype=np.float32)
        if not np.isfinite(array).all():
            bad = int((~np.isfinite(array).all(axis=1)).sum())
            raise DataError(f"{name} has {bad} rows with NaN or infinite values")
        return array

    @staticmethod
    def _check_metadata(metadata, n: int) -> pd.DataFrame:
        if metadata is None:
            return pd.DataFrame(index=pd.RangeIndex(n))
        if isinstance(metadata, pd.Series):
            metadata = metadata.to_frame()
        if not isinstance(metadata, pd.DataFrame):
            raise InputTypeError(
                f"metadata must be a pandas DataFrame, got {type(metadata).__name__}")
        if len(metadata) != n:
            raise DataError(
                f"metadata must have one row per embedding row ({n}), got {len(metadata)}")
        metadata = metadata.reset_index(drop=True)
        metadata.columns = [str(c) for c in metadata.columns]
        return check_metadata(metadata)

    def _check_names(self, names, metadata: pd.DataFrame, what: str) -> list[str]:
        if names is None:
            return []
        if isinstance(names, str):
            names = [names]
        names = list(names)
        for name in names:
            check_option(f"{what} column", name, list(metadata.columns))
        return names

    def _infer_types(self, metadata: pd.DataFrame, columns: list[str]) -> dict[str, str]:
        types: dict[str, str] = {}
        for column in columns:
            values = metadata[column]
            kind = self._column_kind(values)
            if kind is None:
                logger.info("column %r is not tested (constant, identifier or not numeric "
                            "or categorical)", column)
                continue
            types[column] = kind
        return types

    def _column_kind(self, values: pd.Series) -> str | None:
        present = values.dropna()
        n_unique = present.nunique()
        if n_unique < 2 or pd.api.types.is_datetime64_any_dtype(values):
            return None
        if pd.api.types.is_bool_dtype(values) or isinstance(values.dtype, pd.CategoricalDtype):
            return "categorical"
        if pd.api.types.is_numeric_dtype(values):
            return "categorical" if n_unique <= self.max_categories else "continuous"
        if n_unique > _MAX_LEVELS or n_unique == len(present):
            return None
        return "categorical"

    # ------------------------------------------------------------------ fit
    def fit(self, z, metadata=None, labels=None):
        """Cluster the embedding, test the clusters against the metadata, rank findings.

        Parameters
        ----------
        z : array-like of shape (n_samples, n_features)
            The embedding (NumPy array; a torch tensor is converted).
        metadata : pandas.DataFrame, optional
            One row per embedding row, in the same order (the index is ignored).
            Without it only the clusters and the kNN graph are computed.
        labels : array-like of int, shape (n_samples,), optional
            Cluster labels to test instead of clustering, e.g. from :func:`delineate`
            (``-1``: in no cluster).

        Returns
        -------
        ClusterAuditor
            ``self``.

        Raises
        ------
        ValueError
            (as :class:`~latentaudit.errors.ConfigError`) for bad parameters or unknown
            column names, (as :class:`~latentaudit.errors.DataError`) for non-finite
            embeddings or a metadata table of the wrong length, (as
            :class:`~latentaudit.errors.InputShapeError`) for wrongly shaped input.
        TypeError
            (as :class:`~latentaudit.errors.InputTypeError`) for inputs of the wrong
            type.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> site = np.repeat(["A", "B"], 100)
        >>> z = rng.normal(size=(200, 8)) + 6.0 * (site == "B")[:, None]
        >>> aud = ClusterAuditor(random_state=0).fit(z, pd.DataFrame({"site": site}))
        >>> aud.n_clusters_, aud.findings_.loc[0, "description"]
        (2, 'cluster 0 (100 subjects): site = A for 100% vs 50% overall')
        """
        self._check_params()
        z = self._check_z(z)
        n, d = z.shape
        if n < MIN_ROWS:
            raise DataError(f"ClusterAuditor needs at least {MIN_ROWS} rows, got {n}")
        metadata = self._check_metadata(metadata, n)
        columns = self._check_names(self.columns, metadata, "columns")
        columns = columns or list(metadata.columns)
        expected = self._check_names(self.expected, metadata, "expected")
        nuisance = self._check_names(self.nuisance, metadata, "nuisance")
        within = self._check_names(self.within, metadata, "within")
        if len(within) > 1:
            raise ConfigError(f"within must name one column, got {self.within!r}")
        rng = check_random_state(self.random_state)
        seeds = [int(s) for s in rng.randint(2**31 - 1, size=8)]
        steps = tqdm(total=5, desc="audit", disable=not self.verbose)
        self.timings_ = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            self.timings_[stage] = now - clock
            clock = now
            steps.update()

        self.n_samples_, self.n_features_in_ = n, d
        self._z = z
        self._metadata = metadata
        self._fit_projection(z, seeds[0])
        lap("pca")

        self.column_types_ = self._infer_types(metadata, [c for c in columns if c not in within])
        for column in [c for c in (*expected, *nuisance) if c not in within]:
            if column not in self.column_types_:
                kind = self._column_kind(metadata[column])
                if kind is not None:
                    self.column_types_[column] = kind
        self.column_roles_ = {
            c: "expected" if c in expected else "nuisance" if c in nuisance else "other"
            for c in self.column_types_
        }
        self._within = within[0] if within else None

        if labels is not None:
            self.labels_ = self._check_labels(labels, n)
            self._cluster_source = "given"
        else:
            self.labels_ = self._cluster(metadata, seeds[1])
            self._cluster_source = self.method
        self.n_clusters_ = int(np.unique(self.labels_[self.labels_ != _NOISE]).size)
        lap("clusters")

        self._fit_graph(seeds[2])
        lap("knn_graph")

        rows = self._cluster_tests(metadata, seeds[3])
        lap("tests")
        if self.probe_nuisance:
            rows += self._probe_findings(metadata, nuisance, seeds[4])
        lap("probes")
        steps.close()
        self.findings_ = self._rank(rows)
        logger.info("audit of %d x %d: %d clusters, %d findings with q <= %g",
                    n, d, self.n_clusters_, int((self.findings_["q_value"] <= self.alpha).sum()),
                    self.alpha)
        return self

    def _fit_projection(self, z: np.ndarray, seed: int) -> None:
        n, d = z.shape
        full = min(n, d)
        analysis = self.n_components if self.n_components and self.n_components < full else None
        clustering = self.cluster_components
        if not clustering or clustering >= (analysis or d):
            clustering = None
        self._pca_mean = self._pca_components = None
        self.explained_variance_ratio_ = None
        self._reduced = z
        self._cluster_space = None
        if analysis is None and clustering is None:
            return
        pca = PCA(n_components=int(max(analysis or 0, clustering or 0)), random_state=seed)
        pca.fit(z)
        components = pca.components_.astype(np.float32)
        mean = pca.mean_.astype(np.float32)
        scores = ((z - mean) @ components.T).astype(np.float32)
        if analysis is not None:
            self._pca_mean, self._pca_components = mean, components
            self.explained_variance_ratio_ = pca.explained_variance_ratio_
            self._reduced = np.ascontiguousarray(scores)
        if clustering is not None:
            self._cluster_space = np.ascontiguousarray(scores[:, : int(clustering)])

    def _project(self, z: np.ndarray) -> np.ndarray:
        if self._pca_components is None:
            return z
        return ((z - self._pca_mean) @ self._pca_components.T).astype(np.float32)

    @staticmethod
    def _check_labels(labels, n: int) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise InputShapeError(f"labels must have shape ({n},), got {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            if np.issubdtype(labels.dtype, np.floating) and np.all(labels == np.round(labels)):
                labels = labels.astype(np.int64)
            else:
                raise InputTypeError(f"labels must be integers, got dtype {labels.dtype}")
        if np.any(labels < _NOISE):
            raise DataError("labels must be >= -1 (-1 marks rows in no cluster)")
        return labels.astype(np.int64)

    # ------------------------------------------------------------------ clustering
    def _cluster(self, metadata: pd.DataFrame, seed: int) -> np.ndarray:
        space = self._reduced if self._cluster_space is None else self._cluster_space
        space = np.ascontiguousarray(space, dtype=np.float64)
        n = space.shape[0]
        rng = check_random_state(seed)
        if self._within is None:
            return _relabel_by_size(self._cluster_rows(space, rng))
        labels = np.full(n, _NOISE, dtype=np.int64)
        groups = metadata[self._within]
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
        if self.method == "hdbscan":
            size = self.min_cluster_size or max(10, round(0.01 * xs.shape[0]))
            if xs.shape[0] < max(2 * size, 4):
                return np.zeros(n, dtype=np.int64)
            sample_labels = HDBSCAN(min_cluster_size=int(size), copy=True).fit(xs).labels_
            if sample.size == n:
                return sample_labels.astype(np.int64)
            return _propagate(xs, sample_labels, x, n_jobs=self.n_jobs)
        k = self.n_clusters or self._choose_n_clusters(xs, seed)
        k = min(int(k), xs.shape[0])
        if self.method == "kmeans":
            model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(xs)
        else:
            model = GaussianMixture(n_components=k, random_state=seed).fit(xs)
        return model.predict(x).astype(np.int64)

    def _choose_n_clusters(self, x: np.ndarray, seed: int) -> int:
        rng = check_random_state(seed)
        if x.shape[0] > 5000:
            x = x[rng.choice(x.shape[0], size=5000, replace=False)]
        top = min(self.max_clusters, x.shape[0] - 1)
        if self.method == "kmeans":
            scores = {}
            for k in range(2, max(top, 2) + 1):
                fitted = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(x)
                if np.unique(fitted).size > 1:
                    scores[k] = silhouette_score(x, fitted, random_state=seed)
            return max(scores, key=scores.get) if scores else 2
        bic = {k: GaussianMixture(n_components=k, random_state=seed).fit(x).bic(x)
               for k in range(1, max(top, 1) + 1)}
        return min(bic, key=bic.get)

    # ------------------------------------------------------------------ kNN graph
    def _fit_graph(self, seed: int) -> None:
        data = self._z if self.knn_space == "embedding" else self._reduced
        k = min(self.n_neighbors, self.n_samples_ - 1)
        graph = build_knn_graph(data, k, method=self.knn_method, random_state=seed,
                                n_jobs=self.n_jobs)
        self.knn_indices_ = graph.indices
        self.knn_distances_ = graph.distances
        self.knn_method_ = graph.method
        self.knn_recall_ = float(graph.recall)

    # ------------------------------------------------------------------ tests
    def _references(self, metadata: pd.DataFrame):
        """(name, row mask) of each population the clusters are compared within."""
        if self._within is None:
            yield None, np.ones(self.n_samples_, dtype=bool)
            return
        groups = metadata[self._within]
        for value in pd.unique(groups.dropna()):
            yield f"{self._within} = {value}", (groups == value).to_numpy()

    def _cluster_tests(self, metadata: pd.DataFrame, seed: int) -> list[dict]:
        rng = np.random.default_rng(seed)
        rows: list[dict] = []
        for group, mask in self._references(metadata):
            for column, kind in self.column_types_.items():
                values = metadata.loc[mask, column]
                valid = values.notna().to_numpy()
                labels = self.labels_[mask][valid]
                values = values[valid]
                clusters, groups = np.unique(labels, return_inverse=True)
                if clusters.size < 2 or values.size < 2 * _MIN_GROUP:
                    continue
                test = self._categorical_tests if kind == "categorical" else self._continuous_tests
                rows += test(column, values, clusters, groups, group, rng)
        return rows

    def _categorical_tests(self, column, values, clusters, groups, group, rng):
        codes, levels = pd.factorize(values, sort=True)
        if len(levels) < 2:
            return []
        n = codes.size
        table = contingency_table(groups, codes, clusters.size, len(levels))
        overall = table.sum(axis=0) / n
        where = f"of {group}" if group else "overall"
        rows = []
        if clusters.size >= 3:
            result = chi2_test(table, n_resamples=self.n_permutations, rng=rng)
            if result is not None:
                rows.append(self._row("cluster", None, column, result, n,
                                      f"{column} differs between the {clusters.size} clusters"
                                      f"{' within ' + group if group else ''} (Cramér's V = "
                                      f"{result.effect_size:.2f})"))
        for index, cluster in enumerate(clusters):
            inside = table[index]
            size = int(inside.sum())
            if size < _MIN_GROUP or n - size < _MIN_GROUP:
                continue
            result = chi2_test(np.vstack([inside, table.sum(axis=0) - inside]),
                               n_resamples=self.n_permutations, rng=rng)
            if result is None:
                continue
            share = inside / size
            # the level whose share departs most from its overall share; an absence
            # ("site = B for 0% vs 25% overall") is as telling as an excess
            top = int(np.argmax(np.abs(share - overall) + 1e-9 * (share > overall)))
            text = (f"{_cluster_name(int(cluster), group, size)}: {column} = {levels[top]} "
                    f"for {share[top]:.0%} vs {overall[top]:.0%} {where}")
            rows.append(self._row("cluster", int(cluster), column, result, size, text))
        rows += self._ami_row(column, groups, codes, group, rng)
        return rows

    def _continuous_tests(self, column, values, clusters, groups, group, rng):
        x = values.to_numpy(dtype=np.float64)
        n = x.size
        correction = tie_correction(x)
        if correction <= 0:
            return []
        ranks = stats.rankdata(x)
        rows = []
        if clusters.size >= 3:
            result = kruskal_from_ranks(ranks, groups, clusters.size, correction)
            if result is not None:
                rows.append(self._row("cluster", None, column, result, n,
                                      f"{column} differs between the {clusters.size} clusters"
                                      f"{' within ' + group if group else ''} (ε² = "
                                      f"{result.effect_size:.2f})"))
        for index, cluster in enumerate(clusters):
            inside = groups == index
            size = int(inside.sum())
            if size < _MIN_GROUP or n - size < _MIN_GROUP:
                continue
            result = kruskal_from_ranks(ranks, inside.astype(np.int64), 2, correction)
            if result is None:
                continue
            median_in, median_out = np.median(x[inside]), np.median(x[~inside])
            text = (f"{_cluster_name(int(cluster), group, size)}: {column} median "
                    f"{_fmt(median_in)} vs {_fmt(median_out)} elsewhere"
                    f"{' in ' + group if group else ''} ({median_in - median_out:+.3g})")
            rows.append(self._row("cluster", int(cluster), column, result, size, text))
        bins = pd.qcut(x, _AMI_BINS, labels=False, duplicates="drop")
        rows += self._ami_row(column, groups, np.asarray(bins, dtype=np.int64), group, rng)
        return rows

    def _ami_row(self, column, groups, codes, group, rng):
        result = ami_permutation_test(groups, codes, n_permutations=self.n_permutations, rng=rng)
        if result is None:
            return []
        where = f" within {group}" if group else ""
        text = (f"the clustering{where} and {column} share information (AMI = "
                f"{result.effect_size:.2f}, permutation p = {result.p_value:.2g})")
        return [self._row("cluster", None, column, result, int(codes.size), text)]

    @staticmethod
    def _row(kind, cluster, column, result, n, description) -> dict:
        return {
            "kind": kind,
            "cluster": cluster,
            "column": column,
            "test": result.test,
            "statistic": float(result.statistic),
            "effect_size": float(result.effect_size),
            "p_value": float(result.p_value),
            "n": int(n),
            "description": description,
        }

    # ------------------------------------------------------------------ probes
    def _column_target(self, metadata: pd.DataFrame, column: str):
        """(valid row mask, target, levels) of a column for probes and label issues."""
        kind = self.column_types_.get(column) or self._column_kind(metadata[column])
        if kind is None:
            raise DataError(f"column {column!r} is constant or an identifier; nothing to "
                            "predict")
        values = metadata[column]
        valid = values.notna().to_numpy()
        if kind == "categorical":
            codes, levels = pd.factorize(values[valid], sort=True)
            return kind, valid, codes.astype(np.int64), levels
        return kind, valid, values[valid].to_numpy(dtype=np.float64), None

    def _probe_findings(self, metadata, nuisance, seed) -> list[dict]:
        rows = []
        rng = check_random_state(seed)
        for column in nuisance:
            if column not in self.column_types_ or column == self._within:
                continue
            kind, valid, target, levels = self._column_target(metadata, column)
            index = np.flatnonzero(valid)
            if index.size > self.probe_max_samples:
                keep = np.sort(rng.choice(index.size, self.probe_max_samples, replace=False))
                index, target = index[keep], target[keep]
            try:
                result = run_probe(self._reduced[index], target, kind, n_permutations=0,
                                   random_state=rng)
            except DataError as err:
                logger.info("nuisance column %r not probed: %s", column, err)
                continue
            if kind == "categorical":
                text = (f"{column} is predicted from the embedding with accuracy "
                        f"{result['score']:.2f} (chance {result['chance']:.2f}, "
                        f"κ = {result['effect_size']:.2f})")
            else:
                text = (f"{column} is predicted from the embedding with mean absolute error "
                        f"{_fmt(result['score'])} (predicting the median: "
                        f"{_fmt(result['chance'])}, R² = {result['effect_size']:.2f})")
            rows.append({
                "kind": "probe",
                "cluster": None,
                "column": column,
                "test": f"probe_{result['model']}",
                "statistic": result["score"],
                "effect_size": result["effect_size"],
                "p_value": result["p_value"],
                "n": result["n"],
                "description": text,
            })
        return rows

    def _rank(self, rows: list[dict]) -> pd.DataFrame:
        if not rows:
            frame = pd.DataFrame({c: pd.Series(dtype=object) for c in FINDING_COLUMNS})
            frame["cluster"] = frame["cluster"].astype("Int64")
            return frame
        frame = pd.DataFrame(rows)
        frame["q_value"] = benjamini_hochberg(frame["p_value"].to_numpy())
        square_root = frame["test"].isin(["kruskal"]) | frame["test"].eq("probe_ridge")
        strength = np.where(square_root, np.sqrt(frame["effect_size"].clip(lower=0)),
                            frame["effect_size"])
        expected = frame["column"].map(self.column_roles_).eq("expected")
        significant = frame["q_value"] <= self.alpha
        order = np.lexsort((frame["q_value"].to_numpy(), -strength,
                            ~significant.to_numpy(), expected.to_numpy()))
        frame = frame.iloc[order].reset_index(drop=True)
        frame["cluster"] = pd.array(frame["cluster"].tolist(), dtype="Int64")
        return frame[FINDING_COLUMNS]

    # ------------------------------------------------------------------ public methods
    def _check_fitted(self) -> None:
        if not hasattr(self, "labels_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(z, metadata) first")

    def _check_column(self, column: str) -> str:
        self._check_fitted()
        if not isinstance(column, str):
            raise InputTypeError(f"column must be a str, got {type(column).__name__}")
        check_option("column", column, list(self._metadata.columns))
        return column

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
        >>> aud = ClusterAuditor(method="kmeans", n_clusters=2, random_state=0)
        >>> aud = aud.fit(np.r_[np.zeros((10, 2)), np.ones((10, 2)) * 5])
        >>> aud.members(aud.labels_[0]).size
        10
        """
        self._check_fitted()
        return np.flatnonzero(self.labels_ == int(cluster))

    def probe(
        self,
        columns=None,
        *,
        model: str = "linear",
        space: str = "reduced",
        cv=5,
        n_permutations: int = 100,
        permutation_max_samples: int | None = 2000,
        confidence: float = 0.95,
    ) -> pd.DataFrame:
        """Predict metadata columns from the embedding: the paper's Table 1 for any model.

        Parameters
        ----------
        columns : str or list of str, optional
            Columns to probe (default: every column tested in ``fit``).
        model : {"linear", "svm"}, default "linear"
            ``"linear"``: logistic regression (categorical) or ridge regression with
            built-in cross-validated regularisation (continuous), fast on large
            cohorts; ``"svm"``: RBF ``SVC``/``SVR`` as in the paper (cost grows with the
            square of the rows).  Inputs are standardised inside each fold.
        space : {"reduced", "embedding"}, default "reduced"
            Probe the PCA-reduced analysis space or the embedding as given.
        cv : int or scikit-learn splitter, default 5
            Folds (stratified for categorical columns, shuffled, seeded) or a splitter.
        n_permutations : int, default 100
            Permutations of the p-value's test (scikit-learn's
            ``permutation_test_score``); 0: an analytic test of each fold's held-out
            predictions against the exact permutation moments of that fold's labels,
            combined over the folds by Bonferroni (fast, slightly conservative).
        permutation_max_samples : int or None, default 2000
            Rows the permutation test uses (a random subsample; ``None``: all).
        confidence : float, default 0.95
            Coverage of the interval of the score (Wilson for accuracy, normal for the
            mean absolute error).

        Returns
        -------
        pandas.DataFrame
            One row per column: ``column``, ``model``, ``metric`` ("accuracy" or
            "mae"), ``score``, ``ci_low``, ``ci_high``, ``chance`` (majority-class
            accuracy, or the MAE of always predicting the median), ``effect_size``
            (Cohen's κ or out-of-fold R²), ``p_value``, ``p_method``, ``n``,
            ``n_permutations``.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        ValueError
            (as :class:`~latentaudit.errors.ConfigError`) for unknown columns or bad
            options.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> site = np.repeat(["A", "B"], 100)
        >>> z = rng.normal(size=(200, 8)) + 6.0 * (site == "B")[:, None]
        >>> aud = ClusterAuditor(random_state=0).fit(z, pd.DataFrame({"site": site}))
        >>> table = aud.probe("site", n_permutations=0)
        >>> table.loc[0, "column"], table.loc[0, "metric"], float(table.loc[0, "score"])
        ('site', 'accuracy', 1.0)
        """
        self._check_fitted()
        check_option("model", model, PROBE_MODELS)
        check_option("space", space, ["reduced", "embedding"])
        if columns is None:
            columns = list(self.column_types_)
        elif isinstance(columns, str):
            columns = [columns]
        x = self._reduced if space == "reduced" else self._z
        if x is None:
            raise DataError("this auditor was saved without its embedding; use "
                            "space='reduced'")
        rng = check_random_state(self.random_state)
        out = []
        for column in columns:
            self._check_column(column)
            kind, valid, target, _ = self._column_target(self._metadata, column)
            result = run_probe(
                x[valid], target, kind, model=model, cv=cv, n_permutations=n_permutations,
                permutation_max_samples=permutation_max_samples, confidence=confidence,
                random_state=int(rng.randint(2**31 - 1)),
            )
            out.append({"column": column, **{k: result[k] for k in PROBE_COLUMNS[1:]}})
        return pd.DataFrame(out, columns=PROBE_COLUMNS)

    def label_issues(
        self, column: str, *, method: str = "both", model: str = "linear", cv=5
    ) -> pd.DataFrame:
        """Rows whose label disagrees with their neighbourhood and with a probe.

        Confident-learning style: each row gets a predicted distribution of its label
        from the labels of its kNN-graph neighbours (with one pseudo-neighbour drawn from
        the class frequencies) and from an out-of-fold probe on the analysis space; the
        two are averaged.  A categorical row's score is ``1 - p(given label)``; it is
        flagged when another label is the most likely one and reaches that label's
        average self-confidence.  A continuous row's score is its robust z-score: the
        distance between the given value and the predicted one (mean of the
        neighbours' values and the ridge prediction) over 1.4826 median absolute
        deviations; flagged above 3.5.

        Parameters
        ----------
        column : str
            The metadata column.
        method : {"both", "knn", "probe"}, default "both"
            Which evidence to use.
        model : {"linear", "svm"}, default "linear"
            The probe (see :meth:`probe`).
        cv : int or scikit-learn splitter, default 5
            Folds of the probe.

        Returns
        -------
        pandas.DataFrame
            One row per row with a label, most suspicious first: ``index`` (row
            position), ``given``, ``suggested``, ``score`` and ``flagged``.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        ValueError
            (as :class:`~latentaudit.errors.ConfigError`) for an unknown column or
            option; (as :class:`~latentaudit.errors.DataError`) for a constant column.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> site = np.repeat(["A", "B"], 100)
        >>> z = rng.normal(size=(200, 8)) + 6.0 * (site == "B")[:, None]
        >>> aud = ClusterAuditor(random_state=0).fit(z, pd.DataFrame({"site": site}))
        >>> given = site.copy()
        >>> given[7] = "B"  # a row of site A labelled B
        >>> aud = ClusterAuditor(random_state=0).fit(z, pd.DataFrame({"site": given}))
        >>> top = aud.label_issues("site").iloc[0]
        >>> int(top["index"]), top["given"], top["suggested"]
        (7, 'B', 'A')
        """
        self._check_column(column)
        check_option("method", method, ["both", "knn", "probe"])
        check_option("model", model, PROBE_MODELS)
        kind, valid, target, levels = self._column_target(self._metadata, column)
        index = np.flatnonzero(valid)
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        neighbours = self.knn_indices_[index]
        position = np.full(self.n_samples_, -1, dtype=np.int64)
        position[index] = np.arange(index.size)
        neighbours = np.where(neighbours >= 0, position[np.maximum(neighbours, 0)], -1)
        given_values = self._metadata.loc[valid, column].to_numpy()
        if kind == "categorical":
            frame = self._categorical_issues(index, target, levels, neighbours, method,
                                             model, cv, seed)
        else:
            frame = self._continuous_issues(index, target, neighbours, method, model, cv, seed)
        frame.insert(1, "given", given_values)
        order = np.lexsort((frame["index"].to_numpy(), -frame["score"].to_numpy()))
        return frame.iloc[order].reset_index(drop=True)

    def _categorical_issues(self, index, codes, levels, neighbours, method, model, cv, seed):
        n, n_levels = codes.size, len(levels)
        prior = np.bincount(codes, minlength=n_levels) / n
        estimates = []
        if method in ("both", "knn"):
            counts = np.zeros((n, n_levels))
            rows = np.arange(n)
            for j in range(neighbours.shape[1]):
                present = neighbours[:, j] >= 0
                np.add.at(counts, (rows[present], codes[neighbours[present, j]]), 1.0)
            estimates.append((counts + prior) / (counts.sum(axis=1, keepdims=True) + 1.0))
        if method in ("both", "probe"):
            estimates.append(self._oof_probabilities(self._reduced[index], codes, n_levels,
                                                     prior, model, cv, seed))
        proba = np.mean(estimates, axis=0)
        self_confidence = proba[np.arange(n), codes]
        suggested = proba.argmax(axis=1)
        thresholds = np.array([
            proba[codes == k, k].mean() if np.any(codes == k) else 1.0 for k in range(n_levels)
        ])
        flagged = (suggested != codes) & (proba[np.arange(n), suggested] >= thresholds[suggested])
        return pd.DataFrame({
            "index": index,
            "suggested": np.asarray(levels)[suggested],
            "score": 1.0 - self_confidence,
            "flagged": flagged,
        })

    def _oof_probabilities(self, x, codes, n_levels, prior, model, cv, seed):
        proba = np.tile(prior, (codes.size, 1))
        counts = np.bincount(codes, minlength=n_levels)
        usable = counts[codes] >= 2  # folds need two members per class
        present = np.flatnonzero(counts >= 2)
        if present.size < 2:
            return proba
        remap = np.full(n_levels, -1)
        remap[present] = np.arange(present.size)
        predicted = out_of_fold(x[usable], remap[codes[usable]], "categorical", model=model,
                                cv=cv, random_state=seed, method="predict_proba",
                                max_train_samples=self.probe_max_samples)
        proba[np.ix_(np.flatnonzero(usable), present)] = predicted
        proba[usable] /= proba[usable].sum(axis=1, keepdims=True)
        return proba

    def _continuous_issues(self, index, values, neighbours, method, model, cv, seed):
        estimates = []
        if method in ("both", "knn"):
            present = neighbours >= 0
            gathered = np.where(present, values[np.maximum(neighbours, 0)], 0.0)
            counts = present.sum(axis=1)
            mean = np.where(counts > 0, gathered.sum(axis=1) / np.maximum(counts, 1),
                            np.median(values))
            estimates.append(mean)
        if method in ("both", "probe"):
            estimates.append(out_of_fold(self._reduced[index], values, "continuous",
                                         model=model, cv=cv, random_state=seed,
                                         max_train_samples=self.probe_max_samples))
        suggested = np.mean(estimates, axis=0)
        residual = values - suggested
        scale = 1.4826 * np.median(np.abs(residual - np.median(residual)))
        if not scale > 0:
            scale = residual.std() or 1.0
        score = np.abs(residual) / scale
        return pd.DataFrame({"index": index, "suggested": suggested, "score": score,
                             "flagged": score > 3.5})

    def outliers(self, top: int | None = None) -> pd.DataFrame:
        """Rows far from their neighbours, relative to how far their neighbours are.

        The score is a row's mean distance to its kNN-graph neighbours divided by the
        median of the same quantity over those neighbours (a simplified local outlier
        factor): about 1 inside any cluster, dense or sparse, and large for a row off
        on its own.

        Parameters
        ----------
        top : int, optional
            Return only the ``top`` highest scores.

        Returns
        -------
        pandas.DataFrame
            ``index`` (row position), ``score`` and ``distance`` (mean distance to the
            neighbours), highest score first.

        Raises
        ------
        NotFittedError
            Before ``fit``.

        Examples
        --------
        >>> import numpy as np
        >>> z = np.random.default_rng(0).normal(size=(100, 4))
        >>> z[3] += 30.0
        >>> int(ClusterAuditor(random_state=0).fit(z).outliers(top=1).loc[0, "index"])
        3
        """
        self._check_fitted()
        distances = np.where(np.isfinite(self.knn_distances_), self.knn_distances_, np.nan)
        spread = np.nanmean(distances, axis=1)
        neighbours = self.knn_indices_
        around = np.where(neighbours >= 0, spread[np.maximum(neighbours, 0)], np.nan)
        reference = np.nanmedian(around, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(reference > 0, spread / reference,
                             np.where(spread > 0, np.inf, 1.0))
        frame = pd.DataFrame({"index": np.arange(self.n_samples_), "score": score,
                              "distance": spread})
        order = np.lexsort((frame["index"].to_numpy(), -frame["score"].to_numpy()))
        frame = frame.iloc[order].reset_index(drop=True)
        return frame if top is None else frame.head(int(top))

    def duplicates(self, threshold: float | None = None) -> pd.DataFrame:
        """Pairs of rows closer than a threshold in the kNN graph (near-duplicates).

        Parameters
        ----------
        threshold : float, optional
            Largest distance of a pair; default a tenth of the median distance from a
            row to its nearest neighbour.

        Returns
        -------
        pandas.DataFrame
            ``index_a < index_b`` and their ``distance``, closest first.

        Raises
        ------
        NotFittedError
            Before ``fit``.

        Examples
        --------
        >>> import numpy as np
        >>> z = np.random.default_rng(0).normal(size=(100, 4))
        >>> z[9] = z[4]
        >>> ClusterAuditor(random_state=0).fit(z).duplicates()[["index_a", "index_b"]].values
        array([[4, 9]])
        """
        self._check_fitted()
        if threshold is None:
            threshold = 0.1 * float(np.median(self.knn_distances_[:, 0]))
        rows, cols = np.nonzero(self.knn_distances_ <= threshold)
        a = rows
        b = self.knn_indices_[rows, cols]
        distance = self.knn_distances_[rows, cols]
        pairs = pd.DataFrame({"index_a": np.minimum(a, b), "index_b": np.maximum(a, b),
                              "distance": distance.astype(np.float64)})
        pairs = pairs[pairs["index_b"] >= 0].drop_duplicates(["index_a", "index_b"])
        return pairs.sort_values(["distance", "index_a", "index_b"]).reset_index(drop=True)

    def nearest(self, query_z, k: int = 10) -> pd.DataFrame:
        """The rows most similar to query embeddings (the paper's embedding look-up).

        The search is exact, in the space of the kNN graph (``knn_space``).

        Parameters
        ----------
        query_z : array-like of shape (n_queries, n_features) or (n_features,)
            Query embeddings, from the same encoder as the fitted ones.
        k : int, default 10
            Rows returned per query.

        Returns
        -------
        pandas.DataFrame
            ``query``, ``rank`` (0: nearest), ``index`` (row position), ``distance``,
            then the metadata columns of the rows found.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        ValueError
            (as :class:`~latentaudit.errors.InputShapeError`) when the queries do not
            have the embedding's width.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> site = np.repeat(["A", "B"], 100)
        >>> z = rng.normal(size=(200, 8)) + 6.0 * (site == "B")[:, None]
        >>> aud = ClusterAuditor(random_state=0).fit(z, pd.DataFrame({"site": site}))
        >>> aud.nearest(z[5], k=2)[["rank", "index", "site"]].values.tolist()[0]
        [0, 5, 'A']
        """
        self._check_fitted()
        queries = np.asarray(query_z)
        if queries.ndim == 1:
            queries = queries[None, :]
        queries = self._check_z(queries, "query_z")
        if queries.shape[1] != self.n_features_in_:
            raise InputShapeError(f"query_z must have {self.n_features_in_} features, got "
                                  f"{queries.shape[1]}")
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        k = min(int(k), self.n_samples_)
        if self.knn_space == "reduced":
            data, queries = self._reduced, self._project(queries)
        else:
            data = self._z
            if data is None:
                raise DataError("this auditor was saved without its embedding, which "
                                "look-ups with knn_space='embedding' need")
        indices, distances = exact_neighbors(data, queries, k, n_jobs=self.n_jobs)
        frame = pd.DataFrame({
            "query": np.repeat(np.arange(queries.shape[0]), k),
            "rank": np.tile(np.arange(k), queries.shape[0]),
            "index": indices.ravel(),
            "distance": distances.ravel().astype(np.float64),
        })
        found = self._metadata.iloc[frame["index"].to_numpy()].reset_index(drop=True)
        return pd.concat([frame, found], axis=1)

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

    # ------------------------------------------------------------------ persistence
    def save(self, path, *, include_embedding: bool = True) -> Path:
        """Write the fitted auditor to a folder, without pickles.

        ``auditor.json`` holds the parameters and small fitted state, ``arrays.npz``
        the arrays (labels, kNN graph, PCA, analysis space and, unless excluded, the
        embedding), ``findings.json`` and ``metadata.json`` the tables (column-wise JSON
        that keeps the dtypes and round-trips floats exactly).

        Parameters
        ----------
        path : str or os.PathLike
            The folder (created if needed; files in it are overwritten).
        include_embedding : bool, default True
            Store the embedding itself (needed for ``probe(space="embedding")`` and for
            look-ups when ``knn_space="embedding"``).

        Returns
        -------
        pathlib.Path
            The folder.

        Raises
        ------
        NotFittedError
            Before ``fit``.

        Examples
        --------
        >>> import tempfile
        >>> import numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> site = np.repeat(["A", "B"], 100)
        >>> z = rng.normal(size=(200, 8)) + 6.0 * (site == "B")[:, None]
        >>> aud = ClusterAuditor(random_state=0).fit(z, pd.DataFrame({"site": site}))
        >>> folder = aud.save(tempfile.mkdtemp())
        >>> sorted(p.name for p in folder.iterdir())
        ['arrays.npz', 'auditor.json', 'findings.json', 'metadata.json']
        """
        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        params = self.get_params()
        if isinstance(params["random_state"], np.integer):
            params["random_state"] = int(params["random_state"])
        if not isinstance(params["random_state"], (int, type(None))):
            logger.warning("random_state %r is not saved (only ints and None are)",
                           params["random_state"])
            params["random_state"] = None
        for key in ("columns", "expected", "nuisance"):
            if params[key] is not None and not isinstance(params[key], str):
                params[key] = list(params[key])
        state = {
            "format": _SAVE_FORMAT,
            "version": _SAVE_VERSION,
            "params": params,
            "column_types": self.column_types_,
            "column_roles": self.column_roles_,
            "within": self._within,
            "cluster_source": self._cluster_source,
            "knn_method": self.knn_method_,
            "knn_recall": self.knn_recall_,
            "n_samples": self.n_samples_,
            "n_features_in": self.n_features_in_,
            "timings": self.timings_,
        }
        arrays = {
            "labels": self.labels_,
            "knn_indices": self.knn_indices_,
            "knn_distances": self.knn_distances_,
        }
        if self._pca_components is not None:
            arrays.update(pca_mean=self._pca_mean, pca_components=self._pca_components,
                          explained_variance_ratio=self.explained_variance_ratio_,
                          reduced=self._reduced)
        if include_embedding and self._z is not None:
            arrays["z"] = self._z
        with atomic_write(folder / "auditor.json") as handle:
            handle.write(json.dumps(state, indent=2, default=_json_default))
        with atomic_write(folder / "arrays.npz", "wb") as handle:
            np.savez(handle, **arrays)
        _write_table(self.findings_, folder / "findings.json")
        _write_table(self._metadata, folder / "metadata.json")
        return folder

    @classmethod
    def load(cls, path) -> ClusterAuditor:
        """Read an auditor written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike
            The folder.

        Returns
        -------
        ClusterAuditor
            Fitted: findings, labels, summaries, label issues, outliers, duplicates and
            look-ups work as before saving.

        Raises
        ------
        OSError
            (as :class:`~latentaudit.errors.CheckpointError`) when files are missing or
            not an auditor's.

        Examples
        --------
        >>> import tempfile
        >>> import numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> site = np.repeat(["A", "B"], 100)
        >>> z = rng.normal(size=(200, 8)) + 6.0 * (site == "B")[:, None]
        >>> aud = ClusterAuditor(random_state=0).fit(z, pd.DataFrame({"site": site}))
        >>> again = ClusterAuditor.load(aud.save(tempfile.mkdtemp()))
        >>> again.findings_.equals(aud.findings_)
        True
        """
        folder = Path(path)
        try:
            state = json.loads((folder / "auditor.json").read_text())
            with np.load(folder / "arrays.npz", allow_pickle=False) as stored:
                arrays = {key: stored[key] for key in stored.files}
            findings = _read_table(folder / "findings.json")
            metadata = _read_table(folder / "metadata.json")
        except (OSError, ValueError, KeyError) as err:
            raise CheckpointError(f"cannot read a saved ClusterAuditor from {str(folder)!r}: "
                                  f"{err}") from err
        if state.get("format") != _SAVE_FORMAT:
            raise CheckpointError(f"{str(folder / 'auditor.json')!r} is not a saved "
                                  "ClusterAuditor")
        auditor = cls(**state["params"])
        auditor.column_types_ = state["column_types"]
        auditor.column_roles_ = state["column_roles"]
        auditor._within = state["within"]
        auditor._cluster_source = state["cluster_source"]
        auditor.knn_method_ = state["knn_method"]
        auditor.knn_recall_ = state["knn_recall"]
        auditor.n_samples_ = state["n_samples"]
        auditor.n_features_in_ = state["n_features_in"]
        auditor.timings_ = state.get("timings", {})
        auditor.labels_ = arrays["labels"].astype(np.int64)
        auditor.n_clusters_ = int(np.unique(auditor.labels_[auditor.labels_ != _NOISE]).size)
        auditor.knn_indices_ = arrays["knn_indices"]
        auditor.knn_distances_ = arrays["knn_distances"]
        auditor._z = arrays.get("z")
        if "pca_components" in arrays:
            auditor._pca_mean = arrays["pca_mean"]
            auditor._pca_components = arrays["pca_components"]
            auditor.explained_variance_ratio_ = arrays["explained_variance_ratio"]
            auditor._reduced = arrays["reduced"]
        else:
            if auditor._z is None:
                raise CheckpointError(f"{str(folder)!r} holds neither the embedding nor a "
                                      "reduced space")
            auditor._pca_mean = auditor._pca_components = None
            auditor.explained_variance_ratio_ = None
            auditor._reduced = auditor._z
        findings["cluster"] = findings["cluster"].astype("Int64")
        auditor.findings_ = findings[FINDING_COLUMNS]
        metadata.index = pd.RangeIndex(len(metadata))
        auditor._metadata = metadata
        return auditor


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _column_to_json(values: pd.Series) -> dict:
    dtype = values.dtype
    missing = values.isna().to_numpy()
    if isinstance(dtype, pd.CategoricalDtype):
        return {"dtype": "category", "categories": _column_to_json(
            pd.Series(dtype.categories))["values"], "ordered": bool(dtype.ordered),
            "values": [int(c) for c in values.cat.codes]}
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return {"dtype": str(dtype), "values": [None if m else pd.Timestamp(t).isoformat()
                                                 for t, m in zip(values, missing, strict=True)]}
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        raw = values.astype(object).tolist()
        items = [None if m else (v.item() if isinstance(v, np.generic) else v)
                 for v, m in zip(raw, missing, strict=True)]
        return {"dtype": str(dtype), "values": items}
    raw = values.astype(object).tolist()
    kind = "object" if pd.api.types.is_object_dtype(dtype) else str(dtype)  # keeps "str"
    return {"dtype": kind, "values": [None if m else v if isinstance(v, str) else str(v)
                                      for v, m in zip(raw, missing, strict=True)]}


def _column_from_json(column: dict) -> pd.Series:
    dtype = column["dtype"]
    if dtype == "category":
        categories = pd.Index(column["categories"])
        return pd.Series(pd.Categorical.from_codes(column["values"], categories=categories,
                                                   ordered=column["ordered"]))
    values = pd.Series(column["values"], dtype=object)
    if dtype.startswith("datetime64"):
        return pd.to_datetime(values, format="ISO8601").astype(dtype)
    if dtype == "object":
        return values
    if dtype in ("float64", "float32"):
        return values.astype("float64").astype(dtype)
    return values.astype(dtype)


def _write_table(frame: pd.DataFrame, path: os.PathLike) -> None:
    """A table as JSON: Python's float repr round-trips exactly, dtypes are kept."""
    table = {"columns": [str(c) for c in frame.columns], "n_rows": len(frame),
             "data": [_column_to_json(frame[c]) for c in frame.columns]}
    with atomic_write(path) as handle:
        handle.write(json.dumps(table, allow_nan=True))


def _read_table(path: os.PathLike) -> pd.DataFrame:
    table = json.loads(Path(path).read_text())
    columns = {name: _column_from_json(column)
               for name, column in zip(table["columns"], table["data"], strict=True)}
    return pd.DataFrame(columns, index=pd.RangeIndex(table["n_rows"]))


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
