"""Two-dimensional maps of embeddings: t-SNE, UMAP and PCA behind one transformer.

:class:`Projector` is a scikit-learn transformer.  t-SNE runs on openTSNE's
FFT-accelerated implementation by default (scikit-learn's ``TSNE`` stays available as the
reference); UMAP is an optional extra; embeddings are first reduced to 50 dimensions by
PCA.  Backends that can place new points against a frozen map (openTSNE, UMAP, PCA) do so
in :meth:`Projector.transform`, one point independently of the others.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import numbers

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, clone
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ._validation import validate_embedding
from .errors import ConfigError, InputShapeError
from .errors import NotFittedError as _NotFittedError
from .utils import check_option, check_random_state, optional_import

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    def _validate_data(estimator, X="no_validation", **kwargs):
        return estimator._validate_data(X, **kwargs)

__all__ = ["ProjectionStability", "Projector"]

logger = logging.getLogger(__name__)

_BACKENDS = {
    "tsne": ("opentsne", "sklearn"),
    "umap": ("umap",),
    "pca": ("sklearn",),
}
# t-SNE places new points by optimising them against the frozen reference map only
_TRANSFORM_ITER = 250
_EARLY_EXAGGERATION_ITER = 250


class Projector(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Project embeddings to two (or a few) dimensions for plotting.

    Parameters
    ----------
    method : {"tsne", "umap", "pca"}, default "tsne"
        The projection.  ``"umap"`` needs the optional ``umap-learn`` package
        (``pip install 'latentaudit[umap]'``).
    n_components : int, default 2
        Dimensions of the map (t-SNE allows at most 3).
    pca_components : int or None, default 50
        Reduce the input to this many principal components before t-SNE or UMAP, which
        removes noise and speeds up the neighbour search; ``None`` skips it.  Ignored
        for ``method="pca"``.
    perplexity : float, default 30.0
        t-SNE's effective number of neighbours; lowered to ``(n_samples - 1) / 3`` for
        small inputs.
    n_neighbors : int, default 15
        UMAP's neighbourhood size.  (UMAP starts from a PCA initialisation, like
        t-SNE, so that a fixed ``random_state`` gives the same map.)
    min_dist : float, default 0.1
        UMAP's minimum distance between points of the map.
    metric : str, default "euclidean"
        Distance in the input space (t-SNE and UMAP).
    max_iter : int, optional
        t-SNE iterations after the 250 of early exaggeration (default: 500 for openTSNE,
        750 for scikit-learn, matching their defaults of 750 and 1000 in all); UMAP
        epochs (default: UMAP's own).  Ignored for PCA.
    random_state : int, numpy.random.RandomState or None, default None
        Seed of every random choice; an int makes maps reproducible.
    n_jobs : int, optional
        Threads (``-1``: all cores).  Default: one thread for openTSNE, the backend's
        default otherwise.
    backend : {"auto", "opentsne", "sklearn", "umap"}, default "auto"
        Implementation: for ``"tsne"``, ``"opentsne"`` (default, FFT-accelerated, can
        :meth:`transform`) or ``"sklearn"`` (scikit-learn's ``TSNE``, the reference,
        cannot transform new points); ``"umap"`` for UMAP; ``"sklearn"`` for PCA.
    verbose : bool, default False
        Let the backend report its progress.

    Attributes
    ----------
    embedding_ : numpy.ndarray of shape (n_samples, n_components)
        The map of the training points (centred for t-SNE).
    pca_ : sklearn.decomposition.PCA or None
        The PCA pre-reduction (or the projection itself for ``method="pca"``).
    model_ : object
        The fitted backend object (openTSNE ``TSNEEmbedding``, ``umap.UMAP``,
        scikit-learn ``TSNE``) or None for PCA.
    backend_ : str
        The backend used.
    perplexity_ : float or None
        The perplexity used (t-SNE).
    n_iter_ : int
        Iterations run, early exaggeration included (t-SNE), or epochs (UMAP); not set
        for PCA.
    n_features_in_ : int
        Number of input features.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit import Projector
    >>> X = np.random.default_rng(0).normal(size=(200, 64))
    >>> proj = Projector(method="tsne", random_state=0)
    >>> xy = proj.fit_transform(X)
    >>> xy.shape
    (200, 2)
    >>> proj.transform(X[:5]).shape   # place new points against the frozen map
    (5, 2)
    """

    def __init__(self, method: str = "tsne", n_components: int = 2, *,
                 pca_components: int | None = 50, perplexity: float = 30.0,
                 n_neighbors: int = 15, min_dist: float = 0.1, metric: str = "euclidean",
                 max_iter: int | None = None, random_state=None, n_jobs: int | None = None,
                 backend: str = "auto", verbose: bool = False) -> None:
        self.method = method
        self.n_components = n_components
        self.pca_components = pca_components
        self.perplexity = perplexity
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.max_iter = max_iter
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.backend = backend
        self.verbose = verbose

    # -- scikit-learn plumbing ---------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.non_deterministic = self.random_state is None and self.method != "pca"
        return tags

    @property
    def _n_features_out(self) -> int:
        return int(self.n_components)

    # -- fitting -----------------------------------------------------------------------
    def fit(self, X, y=None) -> Projector:
        """Compute the map of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Embeddings (or any feature vectors).
        y : None
            Ignored; present for scikit-learn's API.

        Returns
        -------
        Projector
            ``self``, fitted.

        Raises
        ------
        ValueError
            (as :class:`latentaudit.errors.ConfigError`) for a bad option, or a
            scikit-learn ``ValueError`` for an input with too few samples or features,
            NaN or infinite values.
        ImportError
            (as :class:`latentaudit.errors.MissingDependencyError`) for
            ``method="umap"`` without ``umap-learn``.
        """
        self._fit(X)
        return self

    def fit_transform(self, X, y=None, **fit_params) -> np.ndarray:
        """Compute the map of ``X`` and return it.

        Unlike ``fit(X).transform(X)``, this returns the optimised positions of the
        training points themselves (:attr:`embedding_`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Embeddings.
        y : None
            Ignored.

        Returns
        -------
        numpy.ndarray of shape (n_samples, n_components)
            The map, in ``X``'s floating dtype.
        """
        X = self._fit(X)
        return self.embedding_.astype(X.dtype, copy=True)

    def _fit(self, X) -> np.ndarray:
        method = check_option("method", self.method, list(_BACKENDS))
        backend = self.backend if self.backend != "auto" else _BACKENDS[method][0]
        check_option(f"backend (for method={method!r})", backend, ["auto", *_BACKENDS[method]])
        n_components = self._check_n_components(method)
        min_samples = max(n_components + 1, 4) if method != "pca" else 2
        # NaN and constant (uninformative) input get latentaudit's errors (t-SNE of constant
        # data is all NaN)
        X = validate_embedding(self, X, ensure_min_samples=min_samples, reset=True)
        n_samples, n_features = X.shape
        seed = self._seed()

        self.__dict__.pop("n_iter_", None)
        self.pca_ = None
        self.model_ = None
        self.perplexity_ = None
        self.backend_ = backend
        if method == "pca":
            if n_components > min(n_samples, n_features):
                raise ConfigError(
                    f"method='pca' with n_components={n_components} needs at least "
                    f"{n_components} samples and features; got n_samples={n_samples}, "
                    f"{n_features} feature(s)")
            from sklearn.decomposition import PCA

            self.pca_ = PCA(n_components=n_components, random_state=seed).fit(X)
            self.embedding_ = self.pca_.transform(X).astype(np.float64)
            return X

        reduced = self._fit_pca(X, seed)
        if method == "tsne":
            self.perplexity_ = self._effective_perplexity(n_samples)
            if backend == "opentsne":
                self.embedding_ = self._fit_opentsne(reduced, seed, n_components)
            else:
                self.embedding_ = self._fit_sklearn_tsne(reduced, seed, n_components)
        else:
            self.embedding_ = self._fit_umap(reduced, seed, n_components)
        return X

    def _check_n_components(self, method: str) -> int:
        n = self.n_components
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ConfigError(f"n_components must be a positive integer, got {n!r}")
        if method == "tsne" and n > 3:
            raise ConfigError(f"t-SNE maps to at most 3 dimensions, got n_components={n}; "
                              f"use method='pca' or 'umap' for more")
        return int(n)

    def _seed(self) -> int:
        if isinstance(self.random_state, numbers.Integral) and not isinstance(
                self.random_state, bool):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _fit_pca(self, X: np.ndarray, seed: int) -> np.ndarray:
        k = self.pca_components
        if k is None:
            return X
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ConfigError(f"pca_components must be a positive integer or None, got {k!r}")
        k = min(int(k), X.shape[0])
        if X.shape[1] <= k:
            return X
        from sklearn.decomposition import PCA

        self.pca_ = PCA(n_components=k, random_state=seed).fit(X)
        logger.info("PCA to %d dimensions keeps %.1f%% of the variance", k,
                    100 * float(self.pca_.explained_variance_ratio_.sum()))
        return self.pca_.transform(X)

    def _effective_perplexity(self, n_samples: int) -> float:
        perplexity = self.perplexity
        if isinstance(perplexity, bool) or not isinstance(perplexity, numbers.Real) or not (
                perplexity > 0):
            raise ConfigError(f"perplexity must be a positive number, got {perplexity!r}")
        limit = (n_samples - 1) / 3
        if perplexity > limit:
            logger.info("perplexity %.3g is too large for %d samples; using %.3g",
                        perplexity, n_samples, limit)
            return float(limit)
        return float(perplexity)

    def _fit_opentsne(self, X: np.ndarray, seed: int, n_components: int) -> np.ndarray:
        import openTSNE

        options = {}
        if self.max_iter is not None:
            options["n_iter"] = _check_iter(self.max_iter)
        if n_components > 2:
            # openTSNE's FFT gradient handles at most 2 dimensions
            options["negative_gradient_method"] = "bh"
        tsne = openTSNE.TSNE(
            n_components=n_components, perplexity=self.perplexity_, metric=self.metric,
            n_jobs=1 if self.n_jobs is None else int(self.n_jobs), random_state=seed,
            verbose=bool(self.verbose), early_exaggeration_iter=_EARLY_EXAGGERATION_ITER,
            **options)
        model = tsne.fit(np.ascontiguousarray(X, dtype=np.float64))
        self.n_iter_ = int(tsne.early_exaggeration_iter + tsne.n_iter)
        # openTSNE's transform centres the reference map in place; centring it now keeps
        # embedding_ and later transforms in one frame
        model -= (np.max(model, axis=0) + np.min(model, axis=0)) / 2
        self.model_ = model
        return np.array(model, dtype=np.float64)

    def _fit_sklearn_tsne(self, X: np.ndarray, seed: int, n_components: int) -> np.ndarray:
        from sklearn.manifold import TSNE

        total = 1000 if self.max_iter is None else (
            _check_iter(self.max_iter) + _EARLY_EXAGGERATION_ITER)
        name = "max_iter" if "max_iter" in inspect.signature(TSNE).parameters else "n_iter"
        tsne = TSNE(n_components=n_components, perplexity=self.perplexity_,
                    metric=self.metric, init="pca", learning_rate="auto",
                    random_state=seed, n_jobs=self.n_jobs, verbose=int(bool(self.verbose)),
                    **{name: total})
        embedding = tsne.fit_transform(X)
        self.model_ = tsne
        self.n_iter_ = int(tsne.n_iter_)
        return np.asarray(embedding, dtype=np.float64)

    def _fit_umap(self, X: np.ndarray, seed: int, n_components: int) -> np.ndarray:
        umap = optional_import("umap", "umap", feature="Projector(method='umap')")
        options = {}
        if self.max_iter is not None:
            options["n_epochs"] = _check_iter(self.max_iter)
        n_neighbors = int(min(self.n_neighbors, len(X) - 1))
        # UMAP's compiled code writes into its input, which may be a read-only memory-map
        X = np.array(X, dtype=np.float32, order="C")
        # PCA initialisation, as for t-SNE: umap-learn's spectral initialisation is not
        # reproducible when the neighbour graph falls apart into components
        model = umap.UMAP(n_components=n_components, n_neighbors=n_neighbors, init="pca",
                          min_dist=self.min_dist, metric=self.metric, random_state=seed,
                          n_jobs=1 if self.n_jobs is None else int(self.n_jobs),
                          verbose=bool(self.verbose), **options)
        embedding = model.fit_transform(X)
        self.model_ = model
        # UMAP's own default: 500 epochs up to 10,000 points, 200 beyond
        self.n_iter_ = int(model.n_epochs or (500 if len(X) <= 10_000 else 200))
        return np.asarray(embedding, dtype=np.float64)

    # -- new points --------------------------------------------------------------------
    def _can_transform(self) -> bool:
        # scikit-learn's TSNE has no transform; neither has a Projector that uses it, so
        # scikit-learn's checks (and hasattr) treat it as scikit-learn treats TSNE.
        if self.method == "tsne" and self.backend == "sklearn":
            raise ConfigError(
                "scikit-learn's TSNE (backend='sklearn') cannot place new points on a "
                "fitted map; use backend='opentsne' (the default) or method='umap'/'pca', "
                "or refit on all points with fit_transform")
        return True

    def transform(self, X) -> np.ndarray:
        """Place new points on the frozen map.

        Each point is placed independently of the others (transforming points one at a
        time or all together gives the same result).  For t-SNE (openTSNE) a point
        starts at the median of its nearest training points on the map and is then
        optimised against the training points only; training points themselves land
        near their fitted positions.

        Parameters
        ----------
        X : array-like of shape (n_points, n_features)
            New embeddings, with the features the projector was fitted on.

        Returns
        -------
        numpy.ndarray of shape (n_points, n_components)
            Positions on the map, in ``X``'s floating dtype.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            (as :class:`latentaudit.errors.NotFittedError`) before :meth:`fit`.
        AttributeError
            for ``backend="sklearn"`` t-SNE, which has no ``transform`` (like scikit-learn's
            TSNE); the error's cause says why.
        """
        self._check_fitted()
        X = _validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        if self.method == "pca":
            return self.pca_.transform(X).astype(X.dtype, copy=False)
        reduced = self.pca_.transform(X) if self.pca_ is not None else X
        if self.backend_ == "opentsne":
            placed = np.asarray(self.model_.transform(
                np.ascontiguousarray(reduced, dtype=np.float64), n_iter=_TRANSFORM_ITER))
        else:
            placed = self._place_umap(reduced)
        return placed.astype(X.dtype, copy=False)

    def _place_umap(self, X: np.ndarray) -> np.ndarray:
        # UMAP's own transform refines new points by stochastic gradient descent whose
        # epochs, edge pruning and negative samples depend on the whole batch; placing
        # each point at the membership-weighted mean of its training neighbours (UMAP's
        # initial placement) keeps every point independent of the others
        X = np.array(X, dtype=np.float32, order="C")
        if getattr(self.model_, "_input_hash", None) is not None:
            import joblib

            # UMAP answers its own training input with its fitted graph, not with the
            # bipartite graph to the training points: return the fitted map instead,
            # which is where each training point lands on its own anyway
            if joblib.hash(X) == self.model_._input_hash:
                return self.embedding_.copy()
        mode = self.model_.transform_mode
        self.model_.transform_mode = "graph"
        try:
            graph = self.model_.transform(X).tocsr()
        finally:
            self.model_.transform_mode = mode
        graph.eliminate_zeros()
        weights = np.asarray(graph.sum(axis=1)).ravel()
        placed = np.full((X.shape[0], self.embedding_.shape[1]), np.nan)
        has = weights > 0
        placed[has] = (graph[has] @ self.embedding_) / weights[has, None]
        exact = graph.multiply(graph >= 1.0).tocsr()
        rows = np.flatnonzero(np.diff(exact.indptr))
        if len(rows):
            placed[rows] = self.embedding_[exact.indices[exact.indptr[rows]]]
        if not has.all():
            logger.warning("%d point(s) have no neighbour among the training points within "
                           "UMAP's disconnection distance and are placed at NaN",
                           int((~has).sum()))
        return placed

    def _check_fitted(self) -> None:
        try:
            check_is_fitted(self, "embedding_")
        except Exception as err:
            raise _NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit or fit_transform "
                f"first") from err

    # -- diagnostics -------------------------------------------------------------------
    def stability(self, X, n_seeds: int = 5, *, n_clusters: int = 8,
                  min_cluster_size: int | None = None, n_neighbors: int = 10,
                  max_samples: int = 2000) -> ProjectionStability:
        """How much the map, and the clusters one would read from it, depend on the seed.

        Fits a copy of this projector (same parameters) with ``n_seeds`` different seeds,
        clusters every map with k-means and with HDBSCAN, and compares the labels between
        every pair of maps by the adjusted Rand index (1: the same clusters, about 0:
        unrelated).  Also measures each map's trustworthiness (how far its neighbourhoods
        are those of ``X``; 1 is perfect) on a subsample.  The projector itself is not
        changed.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The embeddings.
        n_seeds : int, default 5
            Number of maps (at least 2).
        n_clusters : int, default 8
            k of k-means.
        min_cluster_size : int, optional
            HDBSCAN's smallest cluster; default ``max(10, n_samples // 100)``.
        n_neighbors : int, default 10
            Neighbourhood size of the trustworthiness.
        max_samples : int, default 2000
            Trustworthiness is computed on at most this many points (its cost grows
            with the square of the number of points).

        Returns
        -------
        ProjectionStability
            Mean pairwise ARIs, mean trustworthiness, and per-pair and per-seed tables.

        Raises
        ------
        ValueError
            (as :class:`latentaudit.errors.ConfigError`) for ``n_seeds < 2``.

        Examples
        --------
        >>> import numpy as np
        >>> from latentaudit import Projector
        >>> X = np.random.default_rng(0).normal(size=(150, 20))
        >>> report = Projector(random_state=0).stability(X, n_seeds=2)
        >>> 0 <= report.trustworthiness <= 1
        True
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
        rng = check_random_state(self.random_state)
        seeds = [int(s) for s in rng.randint(np.iinfo(np.int32).max, size=n_seeds)]
        if min_cluster_size is None:
            min_cluster_size = max(10, n // 100)
        min_cluster_size = int(min(min_cluster_size, max(2, n // 2)))
        sample = np.sort(rng.choice(n, size=min(n, max_samples), replace=False))
        k = int(min(n_neighbors, max(1, (len(sample) - 1) // 2 - 1)))

        kmeans_labels, hdbscan_labels, runs = [], [], []
        for seed in seeds:
            xy = clone(self).set_params(random_state=seed).fit_transform(X)
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


# scikit-learn's set_output machinery re-wraps ``transform`` when the class is created,
# which would drop an ``available_if`` decorator written in the class body: applied here,
# ``hasattr(Projector(backend="sklearn"), "transform")`` is False, as for sklearn's TSNE.
Projector.transform = available_if(Projector._can_transform)(Projector.transform)


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


def _check_iter(value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"max_iter must be a positive integer or None, got {value!r}")
    return int(value)
