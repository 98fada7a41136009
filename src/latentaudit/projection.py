"""Two-dimensional maps of embeddings: t-SNE, UMAP and PCA behind one transformer.

:class:`Projector` is a scikit-learn transformer.  t-SNE runs by default on openTSNE with
latentaudit's own kNN graph, FFT repulsion and convergence-based stop
(:mod:`latentaudit._tsne`); scikit-learn's ``TSNE`` stays available as the reference;
UMAP is an optional extra; embeddings are first reduced to 50 dimensions by PCA.
Backends that can place new points against a frozen map (openTSNE, UMAP, PCA) do so in
:meth:`Projector.transform`, one point independently of the others.
"""

from __future__ import annotations

import inspect
import logging
import numbers
import time

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ._stability import ProjectionStability
from ._streaming import project_rows, row_blocks
from ._validation import validate_embedding
from .errors import ConfigError
from .errors import NotFittedError as _NotFittedError
from .utils import check_option, check_random_state, optional_import
from .utils import validate_data as _validate_data

__all__ = ["ProjectionStability", "Projector"]

logger = logging.getLogger(__name__)

_BACKENDS = {
    "tsne": ("opentsne", "sklearn"),
    "umap": ("umap",),
    "pca": ("sklearn",),
}
# t-SNE places new points by optimising them against the frozen reference map only
_TRANSFORM_ITER = 250
# rows placed on the map at a time when the fit used a subsample (max_fit_samples)
_PLACE_BLOCK_ROWS = 65_536
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
        small inputs.  The affinities of the default backend come from the
        ``2 * perplexity`` nearest neighbours (exact search up to 50,000 rows,
        NN-descent above).
    n_neighbors : int, default 15
        UMAP's neighbourhood size.  (UMAP starts from a PCA initialisation, like
        t-SNE, so that a fixed ``random_state`` gives the same map.)
    min_dist : float, default 0.1
        UMAP's minimum distance between points of the map.
    metric : str, default "euclidean"
        Distance in the input space (t-SNE and UMAP).
    max_iter : int, optional
        t-SNE iterations after early exaggeration; UMAP epochs (default: UMAP's own).
        Ignored for PCA.  The default t-SNE runs early exaggeration for at most 250
        iterations and then at most 500 (``max_iter``). Early exaggeration ends once the
        Kullback-Leibler divergence's fall over 10 iterations has passed its peak and
        dropped below 1% (the rule of opt-SNE, Belkina et al., 2019), the rest once the
        divergence falls by less than 2% over 50 iterations; scikit-learn's ``TSNE`` runs
        250 + 750 (``max_iter``).
    max_fit_samples : int, optional
        Optimise the map (and fit the PCA) on at most this many randomly chosen rows
        and place the others with :meth:`transform`, a block of rows at a time: for
        very large inputs (a million rows, possibly memory-mapped), where a full fit
        would take hours.  ``None`` (default): every row is optimised.  Not for PCA
        maps or ``backend="sklearn"``.  ``benchmarks/bench_scale.py`` measures what it
        costs in trustworthiness.
    random_state : int, numpy.random.RandomState or None, default None
        Seed of every random choice; an int makes maps reproducible.
    n_jobs : int, optional
        Threads (``-1``: all cores).  Default: every core this process may use for the
        default t-SNE backend, the backend's own default otherwise.
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
    fit_rows_ : numpy.ndarray of int or None
        The rows the map was optimised on (``max_fit_samples``); ``None`` when all were.
    knn_recall_ : float
        Recall of the t-SNE kNN graph against exact search (1.0 when exact; default
        backend with the Euclidean metric only).
    timings_ : dict
        Seconds ``fit`` spent in each stage: ``pca``, then ``affinities`` (kNN graph
        and affinities), ``early_exaggeration`` and ``optimisation`` for the default
        t-SNE, or ``map`` for the other backends, and ``placement`` (the rows left out
        by ``max_fit_samples``).
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
                 max_iter: int | None = None, max_fit_samples: int | None = None,
                 random_state=None, n_jobs: int | None = None, backend: str = "auto",
                 verbose: bool = False) -> None:
        self.method = method
        self.n_components = n_components
        self.pca_components = pca_components
        self.perplexity = perplexity
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.max_iter = max_iter
        self.max_fit_samples = max_fit_samples
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
        self.__dict__.pop("knn_recall_", None)
        self.pca_ = None
        self.model_ = None
        self.perplexity_ = None
        self.fit_rows_ = None
        self.backend_ = backend
        if method == "pca":
            if n_components > min(n_samples, n_features):
                raise ConfigError(
                    f"method='pca' with n_components={n_components} needs at least "
                    f"{n_components} samples and features; got n_samples={n_samples}, "
                    f"{n_features} feature(s)")
            from sklearn.decomposition import PCA

            start = time.perf_counter()
            self.pca_ = PCA(n_components=n_components, random_state=seed).fit(X)
            self.embedding_ = self.pca_.transform(X).astype(np.float64)
            self.timings_ = {"pca": time.perf_counter() - start}
            return X

        if n_features < n_components:  # their initial map is the data's first components
            raise ConfigError(
                f"method={method!r} with n_components={n_components} needs at least "
                f"{n_components} features; got {n_features}")
        self.fit_rows_ = self._fit_rows(n_samples, seed, backend)
        sample = X if self.fit_rows_ is None else X[self.fit_rows_]
        start = time.perf_counter()
        reduced = self._fit_pca(sample, seed)
        self.timings_ = {"pca": time.perf_counter() - start}
        if method == "tsne":
            self.perplexity_ = self._effective_perplexity(len(sample))
            if backend == "opentsne":
                embedding = self._fit_opentsne(reduced, seed, n_components)
            else:
                start = time.perf_counter()
                embedding = self._fit_sklearn_tsne(reduced, seed, n_components)
                self.timings_["map"] = time.perf_counter() - start
        else:
            start = time.perf_counter()
            embedding = self._fit_umap(reduced, seed, n_components)
            self.timings_["map"] = time.perf_counter() - start
        if self.fit_rows_ is None:
            self.embedding_ = embedding
            return X
        # the other rows are placed on the frozen map, a block at a time (each point
        # independently of the others, so the blocks change nothing but the memory)
        start = time.perf_counter()
        self.embedding_ = np.empty((n_samples, n_components))
        self.embedding_[self.fit_rows_] = embedding
        rest = np.ones(n_samples, dtype=bool)
        rest[self.fit_rows_] = False
        rest = np.flatnonzero(rest)
        for rows in row_blocks(len(rest), _PLACE_BLOCK_ROWS):
            self.embedding_[rest[rows]] = self._place(self._reduce(X[rest[rows]]))
        self.timings_["placement"] = time.perf_counter() - start
        return X

    def _fit_rows(self, n_samples: int, seed: int, backend: str) -> np.ndarray | None:
        limit = self.max_fit_samples
        if limit is None:
            return None
        if isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 4:
            raise ConfigError(f"max_fit_samples must be an integer >= 4 or None, got "
                              f"{limit!r}")
        if n_samples <= limit:
            return None
        if backend == "sklearn":
            raise ConfigError(
                "max_fit_samples places the rows left out of the fit with transform, which "
                "scikit-learn's TSNE (backend='sklearn') cannot do; use the default backend")
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(n_samples, size=int(limit), replace=False))

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
        from ._tsne import fit_tsne

        max_iter = None if self.max_iter is None else _check_iter(self.max_iter)
        fitted = fit_tsne(X, n_components=n_components, perplexity=self.perplexity_,
                          metric=self.metric, max_iter=max_iter, n_jobs=self.n_jobs,
                          random_state=seed, verbose=bool(self.verbose))
        self.timings_.update(fitted.timings)
        self.n_iter_ = fitted.n_iter
        if fitted.knn_recall is not None:
            self.knn_recall_ = fitted.knn_recall
        self.model_ = fitted.model
        return np.array(fitted.model, dtype=np.float64)

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
        return self._place(self._reduce(X)).astype(X.dtype, copy=False)

    def _reduce(self, X) -> np.ndarray:
        if self.pca_ is None:
            return np.asarray(X, dtype=np.float64)
        return project_rows(X, self.pca_.mean_, self.pca_.components_, dtype=np.float64)

    def _place(self, reduced: np.ndarray) -> np.ndarray:
        if self.backend_ == "opentsne":
            # the interpolation grid prepared at fit comes back read-only from a
            # memory-mapped pickle (joblib); openTSNE's kernel needs writable buffers
            for name in ("interp_coeffs", "box_x_lower_bounds", "box_y_lower_bounds"):
                value = getattr(self.model_, name, None)
                if isinstance(value, np.ndarray) and not value.flags.writeable:
                    setattr(self.model_, name, value.copy())
            return np.asarray(self.model_.transform(
                np.ascontiguousarray(reduced, dtype=np.float64), n_iter=_TRANSFORM_ITER))
        return self._place_umap(reduced)

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
        from ._stability import map_stability

        return map_stability(self, X, n_seeds, n_clusters=n_clusters,
                             min_cluster_size=min_cluster_size, n_neighbors=n_neighbors,
                             max_samples=max_samples)


# scikit-learn's set_output machinery re-wraps ``transform`` when the class is created,
# which would drop an ``available_if`` decorator written in the class body: applied here,
# ``hasattr(Projector(backend="sklearn"), "transform")`` is False, as for sklearn's TSNE.
Projector.transform = available_if(Projector._can_transform)(Projector.transform)


def _check_iter(value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"max_iter must be a positive integer or None, got {value!r}")
    return int(value)
