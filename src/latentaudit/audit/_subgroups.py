"""Candidate subgroups that no column names: search the residual embedding, test held out.

What an audit is for is the group no one thought to label (a head-rest, a shifted field of
view, a scanner upgrade).  :func:`find_subgroups` looks for it where the known structure is
accounted for:

1. **Residual.**  What the known metadata columns explain (levels, their pairwise cells,
   smooth trends of numeric columns; :func:`~._known.known_design`) is removed from the
   analysis space, so that sites and sexes do not hide a subtler group inside them.
2. **Split.**  The rows are cut at random into a *search* half and a *test* half.
3. **Search** (search half only).  The residual is whitened, so that a direction of low
   variance in which a group sits far apart counts as much as a direction of high
   variance; candidate directions come from projection pursuit (FastICA's non-Gaussian
   components, and gradient ascent of the bimodality coefficient from random starts, which
   prefers a separate group to a long tail of single outliers) and from k-means cells.  Each
   gives a first membership (the upper class of Otsu's split of the projection, or the
   cell), refined by iterating a linear discriminant between members and the rest (in
   whitened space, the direction of their mean difference).  Candidates of
   ``min_fraction`` to ``max_fraction`` of the rows are kept, near-duplicates merged, and
   ranked by the skewness of their out-of-fold projections (a group on one side skews the
   projection towards it; a cut through a continuum does not), as slice discovery ranks
   its slices (Domino, Eyuboglu et al., ICLR 2022; the spotlight, d'Eon et al., AAAI 2022),
   but without a model error to guide it: the target is a group that sits apart.
4. **Test** (test half only).  Along the candidate's direction the test rows are projected
   and the question is whether a second mode sits where the search found the group.  The
   search half gives the bulk's centre, the gap (the density's low point between the bulk
   and the group) and the group's centre; three tests of the held-out rows follow, and
   the smallest p-value, tripled (Bonferroni), is the candidate's.  The first two are
   valid whatever the population's shape (skewed, heavy- or light-tailed) as long as it
   is unimodal with its mode on the bulk's side:

   - *gap windows* (:func:`gap_test`): with equal windows around the gap and the group's
     centre, a unimodal population puts at least as many rows in the gap window as in the
     group window, so the count in the group window among the two is binomial with
     probability at most 1/2.  Exact and strong for a compact group far from the bulk.
   - *falling density* (:func:`rise_test`): beyond a start point between the bulk and the
     gap the density of a unimodal population can only fall, so the empirical distribution
     of the rows beyond it lies under its least concave majorant up to sampling noise; the
     largest distance (Grenander's estimator of a decreasing density, Hartigan's dip
     restricted to one side) is compared with its distribution for a flat density, the
     least favourable decreasing one.  It sees a group that is spread out where the
     windows catch few rows.
   - *far tail* (:func:`tail_test`): a group whose members' severity varies (an artefact
     applied more or less strongly) spreads evenly from the bulk's edge far beyond it, a
     plateau with no second mode, which no test of unimodality can tell from a heavy
     tail; what sets it apart is how many rows lie far out.  The null hypothesis is that
     at most 2.5% of the population lies beyond 6 robust SD of the search rows' scores,
     and the count of test rows beyond is binomial.  Heavy tails up to Student's t with
     2 degrees of freedom (0.9%) stay within it; a tail as heavy as a Cauchy's (3.6%)
     does not, and is reported.

   The search is accounted for because it never saw the test rows.

   The two kinds of evidence say different things, and each has its own p-value
   (``p_mode``: the gap windows and the falling density, the smaller doubled; ``p_far``:
   the far tail).  A second mode says the rows form a group.  A far tail says only that
   more rows lie far out along one direction than a tail holds: true of a group whose
   severity varies, and also of an encoder that places some ordinary images far out (the
   shipped StyleGAN2 demo inverter's ``w`` does on the clean demo cohort, where the
   images of the far rows barely differ from the rest; docs/benchmarks.md).
   ``ClusterAuditor`` reports them as two findings of different kinds.

A group that a probe would separate but that forms only a short shoulder of the bulk (no
second mode, and few rows far out) is still returned as a candidate, with its members, but
it does not reach significance: one-dimensional shape alone cannot tell such a group from a
skewed or heavy-tailed continuum, and long tails are common in real embeddings.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import warnings

import numpy as np
from scipy import stats
from sklearn.cluster import KMeans
from sklearn.decomposition import FastICA
from sklearn.isotonic import isotonic_regression

from ..errors import ConfigError
from ..utils import check_random_state
from ._known import residualize

__all__ = ["Subgroup", "find_subgroups", "gap_test", "rise_test", "tail_test"]

logger = logging.getLogger(__name__)

_MIN_ROWS = 100  # fewer rows: no search
_REFINE_STEPS = 15
_BC_STARTS = 20
_BC_STEPS = 40
_KMEANS_K = (2, 3, 4, 5, 6)
_HONEST_FOLDS = 5
# whitening gives every direction equal weight; with few rows per direction the search then
# finds groups that only noise sets apart, so the search keeps the leading directions
_ROWS_PER_DIMENSION = 10
_RISE_START = 0.75  # the falling-density test starts this far from the bulk to the gap
_RISE_DRAWS = 1000  # draws of its null distribution (flat density), per number of rows
# the far-tail test: a one-sided tail that holds more than this share of the population
# beyond this many robust SDs of the bulk is a group (see tail_test)
_TAIL_SHARE = 0.025
_TAIL_SDS = 6.0


@dataclasses.dataclass
class Subgroup:
    """One candidate subgroup.

    Attributes
    ----------
    members : numpy.ndarray of bool, shape (n_samples,)
        Rows on the group's side of the discriminant (every row, search, test or neither).
    score : numpy.ndarray of float, shape (n_samples,)
        Each row's discriminant score (positive: member); ranks rows by how much they
        look like the group.
    direction : numpy.ndarray of shape (n_features,)
        The discriminant in the analysis space (``score = residual @ direction + offset``).
    offset : float
        See ``direction``.
    p_value : float
        The held-out test of any evidence: three times the smallest p-value of
        :func:`gap_test`, :func:`rise_test` and :func:`tail_test` (at most 1).
    p_mode : float
        The held-out test of a second mode: twice the smaller p-value of :func:`gap_test`
        and :func:`rise_test` (at most 1).
    p_far : float
        The held-out test of a far tail (:func:`tail_test`): a group of varying severity,
        or a heavy tail of the analysis space itself (see the module's notes).
    separation : float
        Distance between the members' and the other rows' mean projection, in standard
        deviations of the others, on the test rows.
    effect_size : float
        Correlation ratio of the split on the test rows (between-group share of the
        projection's variance, square-rooted): size and separation in one number.
    n_test : int
        Test rows.
    window_counts : tuple of int
        Test rows in the gap window and in the group window (:func:`gap_test`).
    rise_counts : tuple of int
        Test rows beyond the start point and how many of them sit above a falling
        density (:func:`rise_test`).
    far_counts : tuple of int
        Test rows beyond the far-tail threshold and all test rows (:func:`tail_test`).
    """

    members: np.ndarray
    score: np.ndarray
    direction: np.ndarray
    offset: float
    p_value: float
    separation: float
    effect_size: float
    n_test: int
    window_counts: tuple[int, int]
    rise_counts: tuple[int, int] = (0, 0)
    far_counts: tuple[int, int] = (0, 0)
    p_mode: float = 1.0
    p_far: float = 1.0

    @property
    def size(self) -> int:
        """Number of members."""
        return int(self.members.sum())


def gap_test(search_scores, search_members, test_scores) -> tuple[float, tuple[int, int]]:
    """Is there a second mode where the search found a group?  An exact binomial test.

    On the search rows, the bulk's centre ``m`` (median of the non-members), the group's
    centre ``g`` (median of the members) and the gap ``a`` (the lowest point of a kernel
    density estimate between them) give two equal windows, one around ``a`` and one around
    ``g``, of half-width ``min(a - m, g - a) / 3``.  A unimodal density with its mode at or
    below the gap window decreases across both, so on the test rows the group window holds
    a binomial share of at most one half of the rows in the two windows.

    Parameters
    ----------
    search_scores : array-like of float
        Projections of the search rows (out-of-fold, so that they look like held-out
        ones), members on the positive side.
    search_members : array-like of bool
        The candidate's members among the search rows.
    test_scores : array-like of float
        Projections of the test rows, which the search never saw.

    Returns
    -------
    (float, (int, int))
        The one-sided p-value and the test rows in the gap and group windows.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> def sample(n):
    ...     return np.r_[rng.normal(0, 1, n - n // 10), rng.normal(6, 1, n // 10)]
    >>> search = sample(1000)
    >>> p, counts = gap_test(search, search > 3, sample(1000))
    >>> p < 1e-6, counts
    (True, (11, 52))
    >>> p, counts = gap_test(search, search > 3, rng.normal(0, 1.5, 1000))
    >>> p > 0.05
    True
    """
    search_scores = np.asarray(search_scores, dtype=np.float64)
    search_members = np.asarray(search_members, dtype=bool)
    test_scores = np.asarray(test_scores, dtype=np.float64)
    centres = _centres(search_scores, search_members)
    if centres is None:
        return 1.0, (0, 0)
    bulk, gap, group = centres
    half = min(gap - bulk, group - gap) / 3.0
    if not half > 0:
        return 1.0, (0, 0)
    in_gap = int(np.sum(np.abs(test_scores - gap) <= half))
    in_group = int(np.sum(np.abs(test_scores - group) <= half))
    if in_gap + in_group == 0:
        return 1.0, (0, 0)
    p = float(stats.binomtest(in_group, in_gap + in_group, 0.5, alternative="greater").pvalue)
    return p, (in_gap, in_group)


def _centres(search_scores: np.ndarray, search_members: np.ndarray):
    """Bulk centre, gap and group centre on the search rows, or None (no group side)."""
    if search_members.sum() < 2 or (~search_members).sum() < 2:
        return None
    bulk = float(np.median(search_scores[~search_members]))
    group = float(np.median(search_scores[search_members]))
    if not group > bulk:
        return None
    grid = np.linspace(bulk, group, 101)
    try:
        density = stats.gaussian_kde(search_scores)(grid)
    except (np.linalg.LinAlgError, ValueError):
        return None
    return bulk, float(grid[int(np.argmin(density))]), group


def _majorant_excess(values: np.ndarray) -> float:
    """Largest distance between the empirical distribution of positive ``values`` and
    its least concave majorant through the origin (the distribution of a decreasing
    density on ``[0, inf)`` is concave).  The majorant's slopes are the antitonic
    regression of the empirical slopes, weighted by the spacings (Grenander)."""
    m = values.size
    points, counts = np.unique(values, return_counts=True)
    widths = np.diff(np.r_[0.0, points])
    slopes = isotonic_regression(counts / m / widths, sample_weight=widths, increasing=False)
    majorant = np.cumsum(slopes * widths)
    below = (np.cumsum(counts) - counts) / m  # the distribution just before each point
    return float(np.max(majorant - below))


@functools.lru_cache(maxsize=256)
def _flat_excess_draws(m: int) -> np.ndarray:
    """The null distribution of :func:`_majorant_excess` for ``m`` rows of a flat density
    (sorted; a fixed generator per ``m``, so that a p-value is a function of the data)."""
    rng = np.random.default_rng(m)
    return np.sort([_majorant_excess(rng.uniform(size=m)) for _ in range(_RISE_DRAWS)])


def rise_test(search_scores, search_members, test_scores) -> tuple[float, tuple[int, int]]:
    """Does the density rise again after the gap?  A test of a falling density.

    On the search rows, the bulk's centre ``m`` (median of the non-members), the group's
    centre (median of the members) and the gap ``a`` between them (the lowest point of a
    kernel density estimate) give a start point ``t = m + 0.75 (a - m)``.  A unimodal
    population whose mode is at or below ``t`` has a non-increasing density beyond it, so
    the held-out rows beyond ``t`` have a concave distribution function; the statistic is
    the largest distance between their empirical distribution and its least concave
    majorant, and its p-value comes from 1,000 draws of the same number of rows from a
    flat density, the least favourable non-increasing one.  A group that makes the density
    rise again after the gap (compact or spread out) gives a large distance.

    Parameters
    ----------
    search_scores : array-like of float
        Projections of the search rows (out-of-fold), members on the positive side.
    search_members : array-like of bool
        The candidate's members among the search rows.
    test_scores : array-like of float
        Projections of the test rows, which the search never saw.

    Returns
    -------
    (float, (int, int))
        The p-value (at least 1/1001), the test rows beyond the start point and how many
        of them the distance amounts to (rows above a falling density).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> def sample(n, spread):
    ...     return np.r_[rng.normal(0, 1, n - n // 10), rng.uniform(4, 4 + spread, n // 10)]
    >>> search = sample(1000, 6.0)
    >>> p, counts = rise_test(search, search > 3, sample(1000, 6.0))
    >>> p < 0.01
    True
    >>> p, counts = rise_test(search, search > 3, rng.normal(0, 1.5, 1000))
    >>> p > 0.05
    True
    """
    search_scores = np.asarray(search_scores, dtype=np.float64)
    search_members = np.asarray(search_members, dtype=bool)
    test_scores = np.asarray(test_scores, dtype=np.float64)
    centres = _centres(search_scores, search_members)
    if centres is None:
        return 1.0, (0, 0)
    bulk, gap, _ = centres
    start = bulk + _RISE_START * (gap - bulk)
    beyond = test_scores[test_scores > start] - start
    m = int(beyond.size)
    if m < 5:
        return 1.0, (m, 0)
    excess = _majorant_excess(beyond)
    draws = _flat_excess_draws(m)
    exceed = draws.size - int(np.searchsorted(draws, excess, side="left"))
    return float((1 + exceed) / (draws.size + 1)), (m, int(round(excess * m)))


def tail_test(search_scores, test_scores, *, share: float = _TAIL_SHARE,
              sds: float = _TAIL_SDS) -> tuple[float, tuple[int, int]]:
    """Does more than a tail's share of the rows lie far out?  An exact binomial test.

    A group whose members' severity varies (an artefact applied more or less strongly)
    spreads evenly from the bulk's edge far beyond it: a plateau, not a second mode, which
    no test of unimodality can tell from a heavy tail.  What sets it apart is how many rows
    lie far out.  On the search rows the threshold is fixed at ``median + sds * MAD`` of
    their (out-of-fold) scores, MAD the median absolute deviation scaled to a normal SD;
    the null hypothesis is that at most ``share`` of the population lies beyond it, so the
    number of test rows beyond it is at most binomial with probability ``share``.  With
    the defaults, a one-sided tail that holds at most 2.5% of the rows beyond 6 robust SD
    is not a group (beyond that point: Student's t with 3 degrees of freedom 0.3%, with 2
    degrees 0.9%, the exponential distribution 0.7%; the directions that the search finds
    in the demo DAE's embeddings without any planted group at most about 2%), but a group
    of 5% or more whose typical member sits 6 robust SD out is.  So is a tail as heavy as
    the Cauchy distribution's (3.6%) or a log-normal's with shape 1 (3.2%): in an
    embedding such a tail is itself worth a look.  The shipped StyleGAN2 demo inverter's
    ``w`` has such tails along the directions the search finds (up to 4.5% on the demo
    cohort, the same rows at every seed), so on it this test reports candidates without
    any planted group (docs/benchmarks.md); a candidate keeps this test's p-value apart
    (``Subgroup.p_far``).

    Parameters
    ----------
    search_scores : array-like of float
        Projections of the search rows (out-of-fold), members on the positive side.
    test_scores : array-like of float
        Projections of the test rows, which the search never saw.
    share : float, default 0.025
        Largest share of the population beyond the threshold under the null hypothesis.
    sds : float, default 6.0
        The threshold's distance from the search rows' median, in robust SDs.

    Returns
    -------
    (float, (int, int))
        The one-sided p-value, the test rows beyond the threshold and all test rows.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> def sample(n):  # a comet: 10% spread evenly from the bulk's edge to 15 SD out
    ...     return np.r_[rng.normal(0, 1, n - n // 10), rng.uniform(2, 15, n // 10)]
    >>> p, counts = tail_test(sample(1000), sample(1000))
    >>> p < 1e-6, counts
    (True, (56, 1000))
    >>> p, counts = tail_test(rng.standard_t(3, 1000), rng.standard_t(3, 1000))
    >>> p > 0.05
    True
    """
    search_scores = np.asarray(search_scores, dtype=np.float64)
    test_scores = np.asarray(test_scores, dtype=np.float64)
    centre = float(np.median(search_scores))
    spread = 1.4826 * float(np.median(np.abs(search_scores - centre)))
    n = int(test_scores.size)
    if not spread > 0 or n == 0:
        return 1.0, (0, n)
    far = int(np.sum(test_scores > centre + sds * spread))
    return float(stats.binom.sf(far - 1, n, share)), (far, n)


def _whitener(x: np.ndarray):
    """Mean and whitening matrix of ``x``: its leading principal directions, at most one
    per ``_ROWS_PER_DIMENSION`` rows (directions of almost no variance dropped)."""
    mean = x.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(x - mean, rowvar=False))
    keep = values > max(values.max(), 1e-300) * 1e-6
    keep &= np.arange(values.size) >= values.size - max(2, x.shape[0] // _ROWS_PER_DIMENSION)
    return mean, vectors[:, keep] / np.sqrt(values[keep])


def _discriminant(white: np.ndarray, members: np.ndarray):
    """Linear discriminant of members vs the rest in whitened space: ``(w, b)``.

    In whitened space the within-group covariance is ``I - share (1 - share) d d'`` (``d``
    the difference of the means), whose inverse maps ``d`` to a multiple of itself: the
    direction is ``d``.  The score ``w . x + b`` is the log-odds of membership (equal
    within-group variances along ``d``) divided by the groups' distance in within-group
    standard deviations, so that scores of discriminants fitted on different rows share
    one scale (the within-group SD) and positive means member.
    """
    share = float(members.mean())
    inside, outside = white[members].mean(axis=0), white[~members].mean(axis=0)
    difference = inside - outside
    length = float(np.linalg.norm(difference))
    if not length > 0:
        return np.zeros(white.shape[1]), -1.0
    u = difference / length
    s = white @ u
    within = math.sqrt(max(
        (np.sum((s[members] - s[members].mean()) ** 2)
         + np.sum((s[~members] - s[~members].mean()) ** 2)) / max(s.size - 2, 1), 1e-12))
    w = u / within
    distance = length / within
    b = -float(0.5 * (inside + outside) @ w) + math.log(share / (1.0 - share)) / distance
    return w, b


def _refine(white: np.ndarray, members: np.ndarray, low: int, high: int):
    for _ in range(_REFINE_STEPS):
        if not low <= members.sum() <= high:
            return None
        w, b = _discriminant(white, members)
        new = white @ w + b > 0
        if np.array_equal(new, members):
            break
        members = new
    if not low <= members.sum() <= high:
        return None
    return members


def _upper_mode(values: np.ndarray, low: int) -> np.ndarray:
    """The rows above the best two-class split of a 1-D projection (Otsu's threshold:
    most between-class variance), the longer tail on the upper side, at least ``low``
    rows in the upper class and at most half."""
    values = values * np.sign(stats.skew(values) or 1.0)
    ordered = np.sort(values)
    n = ordered.size
    sums = np.cumsum(ordered)
    lower = np.arange(1, n)  # rows below each cut
    mean_low = sums[:-1] / lower
    mean_high = (sums[-1] - sums[:-1]) / (n - lower)
    between = lower * (n - lower) * (mean_high - mean_low) ** 2
    upper = n - lower
    between[(upper < low) | (upper > n // 2)] = -np.inf
    cut = int(np.argmax(between))
    if not np.isfinite(between[cut]):
        return values >= ordered[-low]
    return values > ordered[cut]


def _bimodality_directions(white: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Directions of high bimodality coefficient (skew² + 1) / kurtosis, by projected
    gradient ascent from random starts."""
    n = white.shape[0]
    out = []
    for _ in range(_BC_STARTS):
        u = rng.normal(size=white.shape[1])
        u /= np.linalg.norm(u)
        for _ in range(_BC_STEPS):
            s = white @ u
            c = s - s.mean()
            m2, m3, m4 = (c**2).mean(), (c**3).mean(), (c**4).mean()
            skew, kurt = m3 / m2**1.5, m4 / m2**2
            g2 = 2.0 * (white.T @ c) / n
            g3 = 3.0 * (white.T @ c**2) / n
            g4 = 4.0 * (white.T @ c**3) / n
            g_skew = g3 / m2**1.5 - 1.5 * m3 * g2 / m2**2.5
            g_kurt = g4 / m2**2 - 2.0 * m4 * g2 / m2**3
            grad = 2.0 * skew * g_skew / kurt - (skew**2 + 1.0) * g_kurt / kurt**2
            grad -= (grad @ u) * u
            norm = np.linalg.norm(grad)
            if not norm > 1e-12:
                break
            u = u + 0.5 * grad / norm
            u /= np.linalg.norm(u)
        out.append(white @ u)
    return out


def _skewness_directions(white: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Directions of large third moment: the power method on the whitened data's
    third-moment tensor, ``u <- E[(x.u)^2 x]``, from random starts.  For a population
    plus one shifted group the tensor is (up to noise) of rank one along the shift, so
    the iteration converges to the group's direction (Anandkumar et al., JMLR 2014)."""
    out = []
    for _ in range(_BC_STARTS):
        u = rng.normal(size=white.shape[1])
        u /= np.linalg.norm(u)
        for _ in range(_BC_STEPS):
            s = white @ u
            step = white.T @ (s * s) / white.shape[0]
            norm = np.linalg.norm(step)
            if not norm > 1e-12:
                break
            u = step / norm
        out.append(white @ u)
    return out


def _seeds(white: np.ndarray, low: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    seeds: list[np.ndarray] = []
    projections = []
    for fun in ("logcosh", "cube"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sources = FastICA(whiten=False, fun=fun, max_iter=200, tol=1e-3,
                              random_state=int(rng.integers(2**31 - 1))).fit_transform(white)
        projections += list(sources.T)
    projections += _bimodality_directions(white, rng)
    projections += _skewness_directions(white, rng)
    for values in projections:
        seeds.append(_upper_mode(values, low))
    for k in _KMEANS_K:
        labels = KMeans(k, n_init=1, random_state=int(rng.integers(2**31 - 1))).fit_predict(white)
        seeds += [labels == c for c in range(k)]
    return seeds


def _honest_scores(white: np.ndarray, members: np.ndarray, seed: int) -> np.ndarray:
    """Out-of-fold projections of the search rows on the candidate's discriminant."""
    folds = np.random.default_rng(seed).integers(0, _HONEST_FOLDS, white.shape[0])
    out = np.empty(white.shape[0])
    for fold in range(_HONEST_FOLDS):
        inside = folds == fold
        train = ~inside
        if members[train].sum() < 2 or (~members[train]).sum() < 2:
            w, b = _discriminant(white, members)
        else:
            w, b = _discriminant(white[train], members[train])
        out[inside] = white[inside] @ w + b
    return out


def _correlation_ratio(values: np.ndarray, members: np.ndarray) -> tuple[float, float]:
    """(separation in SDs of the non-members, correlation ratio) of a split of values."""
    if members.sum() < 2 or (~members).sum() < 2:
        return 0.0, 0.0
    inside, outside = values[members], values[~members]
    spread = outside.std() or 1.0
    separation = float((inside.mean() - outside.mean()) / spread)
    between = members.mean() * (1 - members.mean()) * (inside.mean() - outside.mean()) ** 2
    total = values.var()
    return separation, float(math.sqrt(min(1.0, between / total))) if total > 0 else 0.0


def find_subgroups(x, design=None, *, min_fraction: float = 0.05, max_fraction: float = 0.5,
                   n_subgroups: int = 5, max_samples: int | None = 6000,
                   random_state=None) -> list[Subgroup]:
    """Search the residual embedding for groups no column names; test each held out.

    Parameters
    ----------
    x : array-like of shape (n_samples, n_features)
        The analysis space (e.g. the embedding's leading principal components).
    design : array-like of shape (n_samples, n_terms), optional
        What the known columns explain (:func:`~._known.known_design`); removed first.
        Default: only the mean.
    min_fraction, max_fraction : float, default 0.05 and 0.5
        Sizes of the groups looked for, as fractions of the rows (at least 10 rows of
        the search half).
    n_subgroups : int, default 5
        Most candidates returned (and tested).
    max_samples : int or None, default 6000
        Search and test on a random subsample of this many rows (half each); every row
        still gets a score and a membership.
    random_state : int, numpy.random.RandomState or None
        Seed of the split, the subsample and the search.

    Returns
    -------
    list of Subgroup
        Most skewed first (on the search half's out-of-fold projections); empty for
        fewer than 100 rows.

    Raises
    ------
    ValueError
        (as :class:`~latentaudit.errors.ConfigError`) for fractions outside
        ``0 < min_fraction < max_fraction <= 0.5``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(1000, 6))
    >>> group = np.zeros(1000, bool); group[:100] = True
    >>> x[group, 2] += 8.0
    >>> found = find_subgroups(x, random_state=0)
    >>> best = found[0]
    >>> int((best.members & group).sum()), int(best.members.sum()), best.p_value < 1e-6
    (100, 100, True)
    """
    if not 0 < min_fraction < max_fraction <= 0.5:
        raise ConfigError("fractions must satisfy 0 < min_fraction < max_fraction <= 0.5, "
                          f"got {min_fraction!r} and {max_fraction!r}")
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if n < _MIN_ROWS:
        return []
    residual = residualize(x, np.ones((n, 1)) if design is None else design)
    rng = check_random_state(random_state)
    rows = np.arange(n)
    if max_samples is not None and n > max_samples:
        rows = np.sort(rng.choice(n, size=int(max_samples), replace=False))
    order = rng.permutation(rows)
    search, test = np.sort(order[: order.size // 2]), np.sort(order[order.size // 2:])
    mean, whitening = _whitener(residual[search])
    white_search = (residual[search] - mean) @ whitening
    white_test = (residual[test] - mean) @ whitening
    low = max(10, int(math.ceil(min_fraction * search.size)))
    high = int(max_fraction * search.size)
    seed = int(rng.randint(2**31 - 1))
    refined: list[np.ndarray] = []
    for start in _seeds(white_search, low, seed):
        members = _refine(white_search, start, low, high)
        if members is not None and not any(np.array_equal(members, m) for m in refined):
            refined.append(members)
    # a group on one side makes the projection skewed towards it (a cut through a
    # continuum does not): rank by the skewness of the out-of-fold projections, and of
    # near-duplicates keep the most skewed
    scored = [(members, _honest_scores(white_search, members, seed)) for members in refined]
    scored.sort(key=lambda item: -float(stats.skew(item[1])))
    ranked: list[tuple[np.ndarray, np.ndarray]] = []
    for members, honest in scored:
        if not any(_jaccard(members, kept) >= 0.5 for kept, _ in ranked):
            ranked.append((members, honest))
    found = []
    for members, honest in ranked[: int(n_subgroups)]:
        w, b = _discriminant(white_search, members)
        test_scores = white_test @ w + b
        p_gap, counts = gap_test(honest, members, test_scores)
        p_rise, rise = rise_test(honest, members, test_scores)
        p_far, far = tail_test(honest, test_scores)
        p = min(1.0, 3.0 * min(p_gap, p_rise, p_far))
        separation, effect = _correlation_ratio(test_scores, test_scores > 0)
        direction = whitening @ w
        offset = b - float(mean @ direction)
        score = residual @ direction + offset
        found.append(Subgroup(members=score > 0, score=score, direction=direction,
                              offset=offset, p_value=p, separation=separation,
                              effect_size=effect, n_test=int(test.size),
                              window_counts=counts, rise_counts=rise, far_counts=far,
                              p_mode=min(1.0, 2.0 * min(p_gap, p_rise)), p_far=p_far))
    return found


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = np.sum(a | b)
    return float(np.sum(a & b) / union) if union else 0.0
