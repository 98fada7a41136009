"""The t-SNE engine behind ``Projector(method="tsne")``.

openTSNE holds the map, its affinities and the placement of new points; this module
supplies what decides the speed of a fit:

- the affinities come from latentaudit's own k-nearest-neighbour graph
  (:func:`latentaudit.audit._neighbors.build_knn_graph`: exact search for small inputs,
  NN-descent for large ones), wrapped as an openTSNE ``KNNIndex``;
- the repulsive forces of a 2-D map are computed by interpolation onto a regular grid and
  one FFT convolution (the FIt-SNE scheme of Linderman et al., 2019), on a rectangular
  grid that follows the map's extent, in single precision, with as many FFT threads as
  ``n_jobs``;
- the optimisation stops once the Kullback-Leibler divergence has stopped falling
  (:class:`KLPlateau`) instead of always running its full budget; early exaggeration
  ends once the divergence's fall has peaked and slowed (the rule of opt-SNE, Belkina et
  al., 2019).

Both force terms of a 2-D map are compiled loops (numba, which pynndescent already
brings): the attractive forces over the affinities' non-zeros, and the spreading of the
charges onto the grid and the reading back of the potentials, whose interpolation
weights are computed on the fly instead of being stored in a sparse matrix.  They run
without the GIL, so the attractive forces are computed beside the FFTs in a second
thread.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import joblib
import numba
import numpy as np
import scipy.fft
from openTSNE import tsne as _opentsne
from openTSNE.nearest_neighbors import KNNIndex

from .audit._neighbors import build_knn_graph, exact_neighbors

__all__ = ["GraphIndex", "KLPlateau", "TSNEFit", "fft_repulsion", "fit_tsne", "kl_gradient",
           "resolve_n_jobs"]

logger = logging.getLogger(__name__)

_EPSILON = np.finfo(np.float64).eps
# Interpolation nodes per grid box and their spacing in map units.  The squared Cauchy
# kernel is about one unit wide; 3 nodes a third of a unit apart keep the relative error
# of the forces near 2% (more nodes per box or wider spacing are worse at equal cost).
_NODES_PER_BOX = 3
_NODE_SPACING = 1.0 / 3.0
# the grid never has fewer boxes than this along the map's longer side
_MIN_BOXES = 50
# precision of the grid and its FFTs (the forces are summed in float64)
_GRID_DTYPE = np.float32
# maps with fewer points run single-threaded
_MIN_PARALLEL_SAMPLES = 5000
# The schedule: early exaggeration (12) for at most 250 iterations, then at most
# max_iter (default 500) plain iterations.  Early exaggeration is checked every
# _EARLY_EXAGGERATION_CHECK iterations and ends once the KL divergence's relative fall
# between checks has passed its peak and dropped below _EARLY_EXAGGERATION_TOL (opt-SNE's
# observation: the clusters have formed once the fall slows; on 50,000 Fashion-MNIST
# images it peaks near iteration 30 and slows to 1% by 60, while the old 1% per 50
# iterations ran 200).  The plain phase stops once it falls by less than _TOL over
# _CHECK_EVERY iterations.
EARLY_EXAGGERATION = 12.0
EARLY_EXAGGERATION_ITER = 250
_EARLY_EXAGGERATION_CHECK = 10
_EARLY_EXAGGERATION_TOL = 0.01
MAX_ITER = 500
_TOL = 0.02
_CHECK_EVERY = 50
# affinities from this many nearest neighbours per unit of perplexity
_NEIGHBORS_PER_PERPLEXITY = 2


def resolve_n_jobs(n_jobs) -> int:
    """Number of threads for ``n_jobs`` (``None``: every core this process may use).

    Parameters
    ----------
    n_jobs : int or None
        ``None`` or ``-1``: all usable cores; ``-2``: all but one, and so on.

    Returns
    -------
    int
        At least 1.

    Examples
    --------
    >>> resolve_n_jobs(1)
    1
    >>> resolve_n_jobs(None) >= 1
    True
    """
    return max(1, int(joblib.effective_n_jobs(-1 if n_jobs is None else int(n_jobs))))


class GraphIndex(KNNIndex):
    """openTSNE neighbour index backed by latentaudit's kNN graph.

    ``build`` returns the graph of the training points (exact up to
    ``exact_max_samples`` rows, NN-descent above); ``query`` searches new points exactly
    against the training points, so that every new point is placed independently of the
    others.

    Parameters
    ----------
    data : numpy.ndarray of shape (n_samples, n_features)
        The training points.
    k : int
        Neighbours per point.
    exact_max_samples : int, default 50000
        Largest input searched exactly.
    n_jobs : int, default 1
        Threads.
    random_state : int or None
        Seed of NN-descent.

    Examples
    --------
    >>> import numpy as np
    >>> index = GraphIndex(np.random.default_rng(0).normal(size=(40, 3)), 5)
    >>> indices, distances = index.build()
    >>> indices.shape
    (40, 5)
    """

    VALID_METRICS = ["euclidean"]

    def __init__(self, data, k, *, exact_max_samples: int = 50_000, n_jobs: int = 1,
                 random_state=None, **kwargs):
        data = np.ascontiguousarray(data, dtype=np.float32)
        super().__init__(data, k, n_jobs=n_jobs, random_state=random_state, **kwargs)
        self.exact_max_samples = exact_max_samples
        self.recall_ = 1.0

    def build(self):
        graph = build_knn_graph(self.data, self.k, exact_max_samples=self.exact_max_samples,
                                build_neighbors=self.k + 1, min_recall=0.9,
                                random_state=self.random_state, n_jobs=self.n_jobs)
        self.recall_ = float(graph.recall)
        return graph.indices, graph.distances.astype(np.float64)

    def query(self, query, k):
        indices, distances = exact_neighbors(
            self.data, np.ascontiguousarray(query, dtype=np.float32), k, n_jobs=self.n_jobs)
        return indices, distances.astype(np.float64)


@numba.njit(nogil=True, cache=True)
def _lagrange_weights(u: float, n_nodes: int, out: np.ndarray) -> None:
    """Weights of the Lagrange polynomials through ``n_nodes`` equispaced nodes at
    ``(j + 1/2) / n_nodes`` of a unit box, at the position ``u`` in ``[0, 1)``, into
    ``out``."""
    for j in range(n_nodes):
        node = (j + 0.5) / n_nodes
        weight = 1.0
        for other in range(n_nodes):
            if other != j:
                weight *= (u - (other + 0.5) / n_nodes) / (node - (other + 0.5) / n_nodes)
        out[j] = weight


@numba.njit(nogil=True, cache=True)
def _box_and_weights(y0, y1, low, inverse_box, n_boxes, wx, wy):
    scaled0 = (y0 - low[0]) * inverse_box
    scaled1 = (y1 - low[1]) * inverse_box
    cell0 = min(int(scaled0), n_boxes[0] - 1)
    cell1 = min(int(scaled1), n_boxes[1] - 1)
    _lagrange_weights(scaled0 - cell0, wx.size, wx)
    _lagrange_weights(scaled1 - cell1, wy.size, wy)
    return cell0, cell1


@numba.njit(nogil=True, cache=True)
def _spread(y, low, inverse_box, n_boxes, p, centre, grid):
    """Add each point's charges (1, y - centre) to the ``p x p`` nodes of its box."""
    wx = np.empty(p)
    wy = np.empty(p)
    for i in range(y.shape[0]):
        cell0, cell1 = _box_and_weights(y[i, 0], y[i, 1], low, inverse_box, n_boxes, wx, wy)
        a = y[i, 0] - centre[0]
        b = y[i, 1] - centre[1]
        for r in range(p):
            row = cell0 * p + r
            for c in range(p):
                column = cell1 * p + c
                w = wx[r] * wy[c]
                grid[0, row, column] += w
                grid[1, row, column] += w * a
                grid[2, row, column] += w * b


@numba.njit(nogil=True, cache=True)
def _gather(y, low, inverse_box, n_boxes, p, centre, potential, inverse_sum_q, forces):
    """Read each point's potentials back from its box's nodes; write its force."""
    wx = np.empty(p)
    wy = np.empty(p)
    for i in range(y.shape[0]):
        cell0, cell1 = _box_and_weights(y[i, 0], y[i, 1], low, inverse_box, n_boxes, wx, wy)
        phi0 = 0.0
        phi1 = 0.0
        phi2 = 0.0
        for r in range(p):
            row = cell0 * p + r
            for c in range(p):
                column = cell1 * p + c
                w = wx[r] * wy[c]
                phi0 += w * potential[0, row, column]
                phi1 += w * potential[1, row, column]
                phi2 += w * potential[2, row, column]
        forces[i, 0] = ((y[i, 0] - centre[0]) * phi0 - phi1) * inverse_sum_q
        forces[i, 1] = ((y[i, 1] - centre[1]) * phi0 - phi2) * inverse_sum_q


@numba.njit(nogil=True, cache=True, fastmath=True)
def _attraction(indptr, indices, values, y, gradient, with_divergence):
    """Add ``sum_j p_ij q_ij (y_i - y_j)`` to ``gradient``; return ``sum p`` and
    ``sum p log(p / q)`` (with unnormalised ``q``; zeros unless ``with_divergence``)."""
    sum_p = 0.0
    divergence = 0.0
    for i in range(y.shape[0]):
        y0 = y[i, 0]
        y1 = y[i, 1]
        g0 = 0.0
        g1 = 0.0
        for position in range(indptr[i], indptr[i + 1]):
            j = indices[position]
            d0 = y0 - y[j, 0]
            d1 = y1 - y[j, 1]
            q = 1.0 / (1.0 + d0 * d0 + d1 * d1)
            weight = values[position] * q
            g0 += weight * d0
            g1 += weight * d1
            if with_divergence and values[position] > 0:
                sum_p += values[position]
                divergence += values[position] * np.log(values[position] / q)
        gradient[i, 0] += g0
        gradient[i, 1] += g1
    return sum_p, divergence


def fft_repulsion(embedding, *, n_jobs: int = 1, node_spacing: float = _NODE_SPACING,
                  nodes_per_box: int = _NODES_PER_BOX, min_boxes: int = _MIN_BOXES):
    """Repulsive forces of a 2-D t-SNE map by grid interpolation and FFT convolution.

    Computes, for every point ``i`` of the map,
    ``sum_j q_ij ** 2 (y_i - y_j) / Z`` with ``q_ij = 1 / (1 + |y_i - y_j| ** 2)`` and
    ``Z = sum_{i != j} q_ij``, in ``O(n + G log G)`` for a grid of ``G`` nodes instead of
    ``O(n ** 2)``: each point spreads its charges onto the nodes of its grid box by
    Lagrange interpolation, one FFT convolution gives the kernel sums at every node,
    and each point reads them back through the same weights.

    Parameters
    ----------
    embedding : numpy.ndarray of shape (n_samples, 2)
        The map.
    n_jobs : int, default 1
        FFT threads.
    node_spacing : float, default 1/3
        Distance between interpolation nodes, in map units.
    nodes_per_box : int, default 3
        Interpolation nodes per box and axis.
    min_boxes : int, default 50
        Fewest boxes along the longer axis of the map.

    Returns
    -------
    forces : numpy.ndarray of shape (n_samples, 2)
        ``sum_j q_ij ** 2 (y_i - y_j) / Z`` (float64).
    sum_q : float
        ``Z``.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.random.default_rng(0).normal(size=(500, 2))
    >>> forces, sum_q = fft_repulsion(y)
    >>> d = y[:, None] - y[None]
    >>> q = 1 / (1 + (d ** 2).sum(-1)); np.fill_diagonal(q, 0)
    >>> exact = (q[..., None] ** 2 * d).sum(1) / q.sum()
    >>> bool(np.linalg.norm(forces - exact) < 0.01 * np.linalg.norm(exact))
    True
    """
    y = np.ascontiguousarray(embedding, dtype=np.float64)
    n = y.shape[0]
    p = int(nodes_per_box)
    low, high = y.min(axis=0), y.max(axis=0)
    extent = np.maximum(high - low, 1e-12)
    # square boxes, fine enough for min_boxes along the longer side; the grid covers the
    # map's bounding rectangle, not a square around it
    box = min(extent.max() / min_boxes, p * node_spacing) * (1 + 1e-7)
    n_boxes = np.maximum(np.ceil(extent / box).astype(np.int64), 1)
    m = n_boxes * p
    # charges 1 and y (centred: smaller numbers)
    centre = (low + high) / 2
    grid = np.zeros((3, int(m[0]), int(m[1])), dtype=_GRID_DTYPE)
    _spread(y, low, 1.0 / box, n_boxes, p, centre, grid)
    potential, sum_q = _convolve(grid, box / p, max(1, int(n_jobs)))
    sum_q -= n  # the self terms, q_ii = 1
    forces = np.empty((n, 2), dtype=np.float64)
    _gather(y, low, 1.0 / box, n_boxes, p, centre, potential, 1.0 / (sum_q + _EPSILON),
            forces)
    return forces, sum_q


@functools.lru_cache(maxsize=8)
def _kernel_spectrum(shape: tuple[int, int], spacing: float, power: int) -> np.ndarray:
    """rFFT of the Cauchy kernel ``(1 + d^2) ** -power`` on a grid of nodes.

    The grid has ``shape`` nodes ``spacing`` apart; the kernel is laid out circularly
    (offset ``d`` at index ``d`` and ``size - d``), so that its FFT convolution with a
    zero-padded grid is the linear convolution.  The kernel is even, so its spectrum is
    real.  Once the map is larger than ``min_boxes`` boxes the spacing is fixed and the
    spectrum only changes when the grid grows: it is cached.
    """
    axes = []
    for size in shape:
        d = np.arange(size, dtype=_GRID_DTYPE)
        axes.append((np.minimum(d, size - d) * _GRID_DTYPE(spacing)) ** 2)
    kernel = (1.0 + axes[0][:, None] + axes[1][None, :]) ** -power
    spectrum = np.ascontiguousarray(scipy.fft.rfft2(kernel).real)
    spectrum.flags.writeable = False
    return spectrum


def _convolve(grid: np.ndarray, spacing: float, workers: int):
    """Kernel sums over the charges of ``grid`` at every node, and the map's ``Z``.

    ``grid`` has shape ``(3, m0, m1)``: the charges 1, ``y_1`` and ``y_2``.  Returns the
    squared-kernel sums of every channel at every node, and ``sum_ab g(a) q(a, b) g(b)``
    for the unit charges ``g`` (``Z`` with the self terms), read off the same spectrum by
    Parseval's theorem instead of a fourth convolution.  The FFTs run axis by axis so
    that the zero padding is never transformed along the second axis, and only the
    ``m0`` rows needed come back.
    """
    _, m0, m1 = grid.shape
    shape = (scipy.fft.next_fast_len(2 * m0 - 1), scipy.fft.next_fast_len(2 * m1 - 1, True))
    spectrum = scipy.fft.rfft(grid, n=shape[1], axis=2, workers=workers)
    spectrum = scipy.fft.fft(spectrum, n=shape[0], axis=1, workers=workers, overwrite_x=True)
    # |G|^2 K summed over the full spectrum: the rfft half counts twice except its
    # first column (and its last one for an even length)
    power = spectrum[0].real ** 2 + spectrum[0].imag ** 2
    power *= _kernel_spectrum(shape, float(spacing), 1)
    twice = slice(1, shape[1] // 2 + (shape[1] % 2))
    sum_q = (power.sum(dtype=np.float64) + power[:, twice].sum(dtype=np.float64)) / (
        shape[0] * shape[1])
    spectrum *= _kernel_spectrum(shape, float(spacing), 2)
    spectrum = scipy.fft.ifft(spectrum, axis=1, workers=workers, overwrite_x=True)[:, :m0]
    potential = scipy.fft.irfft(spectrum, n=shape[1], axis=2, workers=workers)[:, :, :m1]
    return potential, float(sum_q)


def kl_gradient(embedding, P, dof=1, *, n_jobs=1, should_eval_error=False,
                reference_embedding=None, fft_params=None, **params):
    """Gradient (and optionally the KL divergence) of a t-SNE map, openTSNE's signature.

    2-D maps optimised on their own use :func:`fft_repulsion` for the repulsive forces
    and, with ``n_jobs > 1``, compute the attractive forces in a second thread meanwhile;
    placing new points against a frozen map (``reference_embedding``), other dimensions
    and heavy-tailed kernels (``dof != 1``) use openTSNE's interpolation.

    Parameters
    ----------
    embedding : numpy.ndarray of shape (n_samples, n_components)
        The map.
    P : scipy.sparse.csr_matrix
        The affinities (symmetric, summing to 1; exaggerated in early exaggeration).
    dof : float, default 1
        Degrees of freedom of the Student-t kernel.
    n_jobs : int, default 1
        Threads.
    should_eval_error : bool, default False
        Also compute the KL divergence.
    reference_embedding : numpy.ndarray, optional
        A frozen map that ``embedding`` is placed against.
    fft_params : dict, optional
        openTSNE's interpolation settings for the cases it handles (default: its
        defaults, 3 nodes per box, at least 50 boxes, boxes one unit wide).
    **params
        openTSNE's other gradient parameters (ignored).

    Returns
    -------
    kl_divergence : float or None
    gradient : numpy.ndarray of shape (n_samples, n_components)

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> y = np.random.default_rng(0).normal(size=(30, 2))
    >>> P = sp.csr_matrix(np.full((30, 30), 1 / 870) - np.eye(30) / 870)
    >>> kl, gradient = kl_gradient(y, P, should_eval_error=True)
    >>> gradient.shape, bool(kl > 0)
    ((30, 2), True)
    """
    if reference_embedding is not None or dof != 1 or embedding.shape[1] != 2:
        fft_params = fft_params or {"n_interpolation_points": _NODES_PER_BOX,
                                    "min_num_intervals": _MIN_BOXES, "ints_in_interval": 1}
        return _opentsne.kl_divergence_fft(
            embedding, P, dof, fft_params, reference_embedding=reference_embedding,
            n_jobs=n_jobs, should_eval_error=should_eval_error)
    gradient = np.zeros_like(embedding, dtype=np.float64, order="C")
    # threads cost more than they save on small maps
    n_jobs = n_jobs if embedding.shape[0] >= _MIN_PARALLEL_SAMPLES else 1

    y = np.ascontiguousarray(embedding, dtype=np.float64)

    def attract():
        # compiled without the GIL: it runs beside the FFTs
        return _attraction(P.indptr, P.indices, np.asarray(P.data, dtype=np.float64), y,
                           gradient, bool(should_eval_error))

    if n_jobs > 1:
        with ThreadPoolExecutor(max_workers=1) as pool:
            attraction = pool.submit(attract)
            forces, sum_q = fft_repulsion(y, n_jobs=n_jobs, node_spacing=_NODE_SPACING)
            sum_p, kl_divergence = attraction.result()
    else:
        forces, sum_q = fft_repulsion(y, n_jobs=1, node_spacing=_NODE_SPACING)
        sum_p, kl_divergence = attract()
    gradient -= forces
    if should_eval_error:
        kl_divergence += sum_p * np.log(sum_q + _EPSILON)
    return kl_divergence, gradient


class KLPlateau:
    """openTSNE callback: stop a phase once the KL divergence has stopped falling.

    Called every few iterations with the current divergence, it stops the phase when the
    divergence fell by less than ``tol`` (relative) since the previous call.  With
    ``after_peak`` it stops only once that fall has also passed its largest value: at
    the start of early exaggeration the divergence barely moves for a few iterations
    before it drops, and that pause is not convergence.

    Parameters
    ----------
    tol : float
        Smallest relative decrease between two calls that keeps the optimisation going.
    after_peak : bool, default False
        Ignore small decreases until a larger one has been seen.

    Attributes
    ----------
    stopped_at_ : int or None
        Iterations the phase ran before it was stopped (``None``: not stopped).
    history_ : list of (int, float)
        ``(iteration, divergence)`` at every call of the current phase.

    Examples
    --------
    >>> stop = KLPlateau(tol=0.01)
    >>> stop.optimization_about_to_start()
    >>> stop(50, 2.0, None), stop(100, 1.99, None), stop.stopped_at_
    (False, True, 100)
    >>> early = KLPlateau(tol=0.01, after_peak=True)
    >>> [early(i, kl, None) for i, kl in [(10, 7.2), (20, 7.19), (30, 6.0), (40, 5.98)]]
    [False, False, False, True]
    """

    def __init__(self, tol: float, after_peak: bool = False) -> None:
        self.tol = tol
        self.after_peak = after_peak
        self.stopped_at_: int | None = None
        self.history_: list[tuple[int, float]] = []
        self._largest_fall = 0.0

    def optimization_about_to_start(self) -> None:
        self.history_ = []
        self.stopped_at_ = None
        self._largest_fall = 0.0

    def __call__(self, iteration, error, embedding) -> bool:
        previous = self.history_[-1][1] if self.history_ else None
        self.history_.append((int(iteration), float(error)))
        if previous is None:
            return False
        fall = (previous - error) / max(abs(error), _EPSILON)
        peaked = not self.after_peak or fall < self._largest_fall
        self._largest_fall = max(self._largest_fall, fall)
        if fall >= self.tol or not peaked:
            return False
        self.stopped_at_ = int(iteration)
        logger.debug("KL divergence %.4f after %d iterations, %.4f before: stopping",
                     error, iteration, previous)
        return True


@dataclasses.dataclass
class TSNEFit:
    """What :func:`fit_tsne` returns.

    Attributes
    ----------
    model : openTSNE.TSNEEmbedding
        The optimised map (centred; it places new points with ``transform``).
    n_iter : int
        Iterations run, early exaggeration included.
    timings : dict
        Seconds of ``affinities`` (kNN graph included), ``early_exaggeration`` and
        ``optimisation``.
    knn_recall : float or None
        Recall of the kNN graph against exact search (``None`` for metrics other than
        Euclidean, searched by openTSNE).
    """

    model: object
    n_iter: int
    timings: dict
    knn_recall: float | None


def fit_tsne(X, *, n_components: int = 2, perplexity: float = 30.0,
             metric: str = "euclidean", max_iter: int | None = None, n_jobs=None,
             random_state: int = 0, verbose: bool = False) -> TSNEFit:
    """Optimise a t-SNE map of ``X`` (the engine of ``Projector(method="tsne")``).

    Affinities from the ``2 * perplexity`` nearest neighbours, PCA initialisation, early
    exaggeration 12 for at most 250 iterations and then at most ``max_iter`` (default
    500) iterations, each phase ending once the KL divergence stops falling
    (:class:`KLPlateau`), learning rate ``n / exaggeration`` (openTSNE's ``"auto"``).

    Parameters
    ----------
    X : numpy.ndarray of shape (n_samples, n_features)
        The points (usually reduced to 50 dimensions by PCA).
    n_components : int, default 2
        Dimensions of the map (FFT gradients up to 2, Barnes-Hut for 3).
    perplexity : float, default 30.0
        Effective number of neighbours.
    metric : str, default "euclidean"
        Input distance; other metrics use openTSNE's own neighbour search.
    max_iter : int, optional
        Most iterations after early exaggeration.
    n_jobs : int, optional
        Threads (``None``: every usable core).
    random_state : int, default 0
        Seed.
    verbose : bool, default False
        openTSNE's progress output.

    Returns
    -------
    TSNEFit

    Examples
    --------
    >>> import numpy as np
    >>> fitted = fit_tsne(np.random.default_rng(0).normal(size=(100, 5)), perplexity=10)
    >>> np.asarray(fitted.model).shape, fitted.n_iter <= 750
    ((100, 2), True)
    """
    import openTSNE

    start = time.perf_counter()
    timings = {}
    n_jobs = resolve_n_jobs(n_jobs)
    X = np.ascontiguousarray(X, dtype=np.float64)
    max_iter = MAX_ITER if max_iter is None else int(max_iter)
    k = min(len(X) - 1, int(_NEIGHBORS_PER_PERPLEXITY * perplexity))
    knn_recall = None
    if metric == "euclidean":
        index = GraphIndex(X, k, n_jobs=n_jobs, random_state=random_state)
        affinities = openTSNE.affinity.PerplexityBasedNN(
            knn_index=index, perplexity=perplexity, n_jobs=n_jobs, verbose=verbose)
        knn_recall = index.recall_
    else:  # openTSNE's own approximate search knows the other metrics
        affinities = openTSNE.affinity.PerplexityBasedNN(
            X, perplexity=perplexity, method="auto", metric=metric, n_jobs=n_jobs,
            random_state=random_state, k_neighbors=k, verbose=verbose)
    init = openTSNE.initialization.pca(X, n_components, random_state=random_state)
    # FFT gradients for 1-D and 2-D maps (ours in 2-D), Barnes-Hut for 3-D ones
    gradient = kl_gradient if n_components <= 2 else "bh"
    model = openTSNE.TSNEEmbedding(init, affinities, negative_gradient_method=gradient,
                                   n_jobs=n_jobs, random_state=random_state,
                                   verbose=verbose)
    timings["affinities"] = time.perf_counter() - start
    start = time.perf_counter()
    stop = KLPlateau(_EARLY_EXAGGERATION_TOL, after_peak=True)
    model.optimize(EARLY_EXAGGERATION_ITER, exaggeration=EARLY_EXAGGERATION, inplace=True,
                   callbacks=[stop], callbacks_every_iters=_EARLY_EXAGGERATION_CHECK)
    n_iter = stop.stopped_at_ or EARLY_EXAGGERATION_ITER
    timings["early_exaggeration"] = time.perf_counter() - start
    start = time.perf_counter()
    stop = KLPlateau(_TOL)
    model.optimize(max_iter, inplace=True, callbacks=[stop],
                   callbacks_every_iters=_CHECK_EVERY)
    timings["optimisation"] = time.perf_counter() - start
    n_iter += stop.stopped_at_ or max_iter
    # transform places new points against a grid of the frozen map; preparing it now (it
    # centres the map in place) keeps the map and every later placement in one frame
    if n_components <= 2:
        model.prepare_interpolation_grid()
    else:
        model -= (np.max(model, axis=0) + np.min(model, axis=0)) / 2
    return TSNEFit(model, int(n_iter), timings, knn_recall)
