"""The k-nearest-neighbour graph shared by label issues, outliers and near-duplicates.

Small inputs get the exact graph from scikit-learn's brute-force search.  Large inputs get
an approximate graph from pynndescent (NN-descent), built with more neighbours than asked
for so that the ``n_neighbors`` kept reach a recall of about 0.95 or more on embedding-like
data; :func:`estimate_recall` measures it against the exact answer on a sample.

pynndescent compiles its kernels with numba, which takes tens of seconds in a fresh
process.  :func:`enable_numba_cache` turns numba's on-disk cache on for pynndescent's
compiled functions that allow it, so later processes load most of them from disk.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import sys
import time
import warnings

import numpy as np
from sklearn.neighbors import NearestNeighbors

from ..errors import ConfigError
from ..utils import check_option, check_random_state, optional_import

__all__ = [
    "KNNGraph",
    "build_knn_graph",
    "enable_numba_cache",
    "estimate_recall",
    "exact_neighbors",
]

logger = logging.getLogger(__name__)

_CACHE_STATE: dict[str, bool] = {}
# Parameters through which pynndescent hands a compiled function (the distance) to another.
# numba types such an argument by the function object of the running process, so its
# cache entries never match in a later process and would pile up on disk: leave those off.
_FUNCTION_PARAMETERS = frozenset(
    {"dist", "metric", "ground_metric", "rdist", "distance_func", "deheap_sort_function"}
)


@dataclasses.dataclass
class KNNGraph:
    """A k-nearest-neighbour graph without self-loops.

    Attributes
    ----------
    indices : numpy.ndarray of shape (n_samples, n_neighbors)
        Row positions of each row's neighbours, nearest first (``-1`` where NN-descent
        found fewer).
    distances : numpy.ndarray of shape (n_samples, n_neighbors)
        Euclidean distances, float32, ``inf`` where ``indices`` is ``-1``.
    method : str
        ``"exact"`` or ``"nndescent"``.
    build_seconds : float
        Wall time of the construction (numba compilation included on a first call).
    recall : float
        Recall against exact search, estimated on sampled rows (1.0 for ``"exact"``; NaN
        when :func:`build_knn_graph` was asked not to check it, ``min_recall=None``).
    build_neighbors : int or None
        Length of the lists NN-descent maintained in its last build (``None`` if exact).
    """

    indices: np.ndarray
    distances: np.ndarray
    method: str
    build_seconds: float = 0.0
    recall: float = 1.0
    build_neighbors: int | None = None

    @property
    def n_neighbors(self) -> int:
        """Number of neighbours per row."""
        return int(self.indices.shape[1])


def enable_numba_cache() -> bool:
    """Turn on numba's on-disk cache for pynndescent's compiled functions.

    pynndescent leaves the cache off for many of its functions, so every fresh process
    compiles them again (tens of seconds).  This switches it on for each one that does
    not have it yet; numba writes the cache next to pynndescent's sources, or to the
    user's cache folder when those are read-only (or to ``NUMBA_CACHE_DIR``).  Functions
    that numba cannot cache (those calling ``numba.get_num_threads()``, and those taking
    the distance function as an argument, whose cache entries would never match again)
    still compile in every process.  Set the environment variable
    ``LATENTAUDIT_NUMBA_CACHE=0`` to leave pynndescent untouched.

    Returns
    -------
    bool
        Whether caching was switched on (``False`` when disabled or pynndescent is
        missing).

    Examples
    --------
    >>> from latentaudit.audit._neighbors import enable_numba_cache
    >>> enable_numba_cache() in (True, False)
    True
    """
    if "done" in _CACHE_STATE:
        return _CACHE_STATE["done"]
    if os.environ.get("LATENTAUDIT_NUMBA_CACHE", "1").strip().lower() in ("0", "false", "no"):
        _CACHE_STATE["done"] = False
        return False
    try:
        import pynndescent  # noqa: F401
        from numba.core.dispatcher import Dispatcher
    except ImportError:
        _CACHE_STATE["done"] = False
        return False
    n_enabled = 0
    for name, module in list(sys.modules.items()):
        if not name.startswith("pynndescent") or module is None:
            continue
        for obj in list(vars(module).values()):
            if not isinstance(obj, Dispatcher) or type(obj._cache).__name__ != "NullCache":
                continue
            try:
                parameters = set(inspect.signature(obj.py_func).parameters)
            except (TypeError, ValueError):
                continue
            if parameters & _FUNCTION_PARAMETERS:
                continue
            try:
                obj.enable_caching()
                n_enabled += 1
            except Exception as err:  # no writable cache location, or numba changed
                logger.debug("numba cache not enabled for %s: %s", obj, err)
    logger.debug("enabled numba's disk cache for %d pynndescent functions", n_enabled)
    _CACHE_STATE["done"] = True
    return True


def _drop_self(indices: np.ndarray, distances: np.ndarray, n_neighbors: int, row_ids=None):
    """Remove each row's own index (or, when absent, its farthest neighbour)."""
    n = indices.shape[0]
    row_ids = np.arange(n) if row_ids is None else np.asarray(row_ids)
    is_self = indices == row_ids[:, None]
    # duplicates can push a row's own index out of its list; drop the last one instead
    first_self = np.where(is_self.any(axis=1), is_self.argmax(axis=1), indices.shape[1] - 1)
    keep = np.ones_like(is_self)
    keep[np.arange(n), first_self] = False
    indices = indices[keep].reshape(n, -1)[:, :n_neighbors]
    distances = distances[keep].reshape(n, -1)[:, :n_neighbors]
    return np.ascontiguousarray(indices, dtype=np.int64), np.ascontiguousarray(
        distances, dtype=np.float32
    )


def exact_neighbors(data, queries, n_neighbors: int, *, n_jobs=None):
    """Exact Euclidean nearest neighbours by brute force (scikit-learn).

    Parameters
    ----------
    data : array-like of shape (n_samples, n_features)
        The points searched.
    queries : array-like of shape (n_queries, n_features)
        The query points.
    n_neighbors : int
        Neighbours per query (at most ``n_samples``).
    n_jobs : int, optional
        Threads.

    Returns
    -------
    indices : numpy.ndarray of shape (n_queries, n_neighbors)
    distances : numpy.ndarray of shape (n_queries, n_neighbors)
    """
    search = NearestNeighbors(n_neighbors=n_neighbors, algorithm="brute", n_jobs=n_jobs)
    search.fit(data)
    distances, indices = search.kneighbors(queries)
    return indices.astype(np.int64), distances.astype(np.float32)


def _default_build_neighbors(n_neighbors: int) -> int:
    # NN-descent's recall for the nearest k rises steeply with the size of the list it
    # maintains; twice the request (at least 30) reached recall >= 0.95 on embedding-like
    # data of 100k x 512 (benchmarks/bench_audit.py).
    return max(2 * (n_neighbors + 1), 30)


def build_knn_graph(
    x,
    n_neighbors: int = 15,
    *,
    method: str = "auto",
    exact_max_samples: int = 20_000,
    build_neighbors: int | None = None,
    min_recall: float | None = 0.95,
    max_rebuilds: int = 2,
    random_state=None,
    n_jobs=None,
) -> KNNGraph:
    """Build the k-nearest-neighbour graph of the rows of ``x``.

    Parameters
    ----------
    x : array-like of shape (n_samples, n_features)
        The points (converted to C-contiguous float32).
    n_neighbors : int, default 15
        Neighbours kept per row (self excluded).
    method : {"auto", "exact", "nndescent"}, default "auto"
        ``"auto"`` is exact for at most ``exact_max_samples`` rows and NN-descent above.
    exact_max_samples : int, default 20000
        Threshold of ``"auto"``.
    build_neighbors : int, optional
        Length of the lists NN-descent maintains (default ``max(2 (k + 1), 30)``); more is
        slower and more accurate.
    min_recall : float or None, default 0.95
        Recall against exact search that an NN-descent graph must reach, estimated on 200
        sampled rows.  Below it, the graph is built again with lists 1.5 times as long, at
        most ``max_rebuilds`` times, and then exactly.  ``None`` accepts the first graph.
    max_rebuilds : int, default 2
        Rebuilds with longer lists before falling back to exact search.
    random_state : int, numpy.random.RandomState or None
        Seed of NN-descent.
    n_jobs : int, optional
        Threads (``None``: the library's default).

    Returns
    -------
    KNNGraph

    Raises
    ------
    ValueError
        (as :class:`~latentaudit.errors.ConfigError`) for a bad ``method``, when
        ``n_neighbors`` is not below the number of rows, or for ``min_recall`` outside
        (0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> graph = build_knn_graph(np.random.default_rng(0).normal(size=(50, 3)), 5)
    >>> graph.indices.shape, graph.method
    ((50, 5), 'exact')
    """
    check_option("method", method, ["auto", "exact", "nndescent"])
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = x.shape[0]
    if not 1 <= n_neighbors < n:
        raise ConfigError(
            f"n_neighbors must be between 1 and n_samples - 1 = {n - 1}, got {n_neighbors}"
        )
    if min_recall is not None and not 0 < min_recall <= 1:
        raise ConfigError(f"min_recall must be in (0, 1] or None, got {min_recall!r}")
    if method == "auto":
        method = "exact" if n <= exact_max_samples else "nndescent"
    start = time.perf_counter()
    recall, size = 1.0, None
    if method == "nndescent":
        size = build_neighbors or _default_build_neighbors(n_neighbors)
        size = min(max(size, n_neighbors + 1), n - 1)
        rng = check_random_state(random_state)
        for attempt in range(int(max_rebuilds) + 1):
            indices, distances = _nndescent(x, size, rng, n_jobs)
            indices = np.ascontiguousarray(indices[:, :n_neighbors])
            distances = np.ascontiguousarray(distances[:, :n_neighbors])
            if min_recall is None:
                recall = float("nan")
                break
            recall = estimate_recall(x, indices, random_state=rng, n_jobs=n_jobs)
            if recall >= min_recall:
                break
            logger.info("NN-descent with lists of %d: estimated recall %.3f < %.3f",
                        size, recall, min_recall)
            if attempt == max_rebuilds or size >= n - 1:
                method = "exact"
                break
            size = min(int(1.5 * size), n - 1)
        if method == "exact":
            logger.warning("NN-descent did not reach recall %.2f on this data (%.3f with "
                           "lists of %d); building the exact kNN graph instead", min_recall,
                           recall, size)
            recall, size = 1.0, None
    if method == "exact":
        indices, distances = exact_neighbors(x, x, n_neighbors + 1, n_jobs=n_jobs)
        indices, distances = _drop_self(indices, distances, n_neighbors)
    distances[indices < 0] = np.inf
    seconds = time.perf_counter() - start
    logger.info("%s kNN graph of %d x %d in %.1f s", method, n, n_neighbors, seconds)
    return KNNGraph(indices, distances, method, seconds, recall, size)


def _nndescent(x: np.ndarray, size: int, rng, n_jobs):
    """NN-descent graph of ``x`` with lists of ``size``, self removed."""
    pynndescent = optional_import("pynndescent", feature="the approximate kNN graph")
    enable_numba_cache()
    seed = int(rng.randint(np.iinfo(np.int32).max))
    with warnings.catch_warnings():
        # numba says which of pynndescent's functions it cannot cache; nothing to do
        warnings.filterwarnings("ignore", message=".*Cannot cache compiled function.*")
        index = pynndescent.NNDescent(
            x,
            n_neighbors=size,
            # pynndescent samples min(60, size) candidates per row and round; 60 for short
            # lists lifted the recall of 100k x 512 embeddings with a flat spectrum from
            # 0.94 to 0.97 for 10% more time (benchmarks/bench_audit.py --spectrum 0.5)
            max_candidates=min(60, x.shape[0] - 1),
            metric="euclidean",
            random_state=seed,
            n_jobs=-1 if n_jobs is None else n_jobs,
            low_memory=True,
            compressed=True,
            verbose=False,
        )
        indices, distances = index.neighbor_graph
    del index
    return _drop_self(indices, distances, size - 1)


def estimate_recall(
    x, indices, *, n_queries: int = 200, random_state=None, n_jobs=None
) -> float:
    """Fraction of the true nearest neighbours that a graph contains, on a sample.

    Parameters
    ----------
    x : array-like of shape (n_samples, n_features)
        The points the graph was built on.
    indices : numpy.ndarray of shape (n_samples, k)
        The graph's neighbour lists (self excluded).
    n_queries : int, default 200
        Rows sampled; each costs one exact search over ``x``.
    random_state : int, numpy.random.RandomState or None
        Seed of the sample.
    n_jobs : int, optional
        Threads of the exact search.

    Returns
    -------
    float
        Mean over the sampled rows of ``|graph ∩ exact| / k``.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    indices = np.asarray(indices)
    n, k = indices.shape
    rows = check_random_state(random_state).choice(n, size=min(n_queries, n), replace=False)
    exact, dist = exact_neighbors(x, x[rows], k + 1, n_jobs=n_jobs)
    exact, _ = _drop_self(exact, dist, k, rows)
    hits = [np.intersect1d(a, b).size for a, b in zip(indices[rows], exact, strict=True)]
    return float(np.mean(hits) / k)
