"""Per-cluster mean images and voxel-wise difference maps with a significance mask: how
Graf et al. (2024) saw that one site's heads were shifted and two sites used other
head-rests."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from ..audit._stats import benjamini_hochberg
from ..errors import ConfigError, DataError
from ..utils import check_option, check_random_state
from ._inputs import as_labels, image_rows, kept_mask

__all__ = ["DifferenceMap", "difference_map", "mean_images"]

logger = logging.getLogger(__name__)

_TESTS = ("welch", "permutation")
# Permutation statistics are computed for at most this many (permutation x voxel) values
# at once, which bounds the memory to a few hundred MB whatever the image size.
_PERMUTATION_BLOCK = 2**24


@dataclasses.dataclass
class DifferenceMap:
    """A voxel-wise comparison of two groups of images.

    Every array is shaped like one image, ``(C, *spatial)``.

    Attributes
    ----------
    source, target : object
        The compared labels; ``target`` is ``"rest"`` when the source was compared with
        every other (non-noise) item.
    n_source, n_target : int
        Number of images in each group.
    mean_source, mean_target : numpy.ndarray
        The groups' mean images.
    difference : numpy.ndarray
        ``mean_source - mean_target``.
    statistic : numpy.ndarray
        Welch's t statistic per voxel (also the statistic of the permutation test).
    p_value : numpy.ndarray
        Two-sided p-value per voxel.
    q_value : numpy.ndarray
        Benjamini-Hochberg adjusted p-value over all voxels.
    significant : numpy.ndarray
        bool, ``q_value <= alpha`` (and ``|difference| >= min_difference``).
    test : str
        ``"welch"`` or ``"permutation"``.
    alpha : float
        The false discovery rate.
    """

    source: object
    target: object
    n_source: int
    n_target: int
    mean_source: np.ndarray
    mean_target: np.ndarray
    difference: np.ndarray
    statistic: np.ndarray
    p_value: np.ndarray
    q_value: np.ndarray
    significant: np.ndarray
    test: str
    alpha: float

    @property
    def fraction_significant(self) -> float:
        """Share of voxels whose difference is significant."""
        return float(self.significant.mean())

    def __repr__(self) -> str:
        return (f"DifferenceMap(source={self.source!r} (n={self.n_source}), "
                f"target={self.target!r} (n={self.n_target}), test={self.test!r}, "
                f"alpha={self.alpha}, shape={self.difference.shape}, "
                f"significant={self.fraction_significant:.1%} of voxels)")


class _Moments:
    """Count, mean and sum of squared deviations per voxel, merged batch by batch (Chan et
    al.'s parallel update), in float64 so large groups lose no precision."""

    def __init__(self, shape: tuple[int, ...]):
        self.n = 0
        self.mean = np.zeros(shape)
        self.m2 = np.zeros(shape)

    def add(self, batch: np.ndarray) -> None:
        if not len(batch):
            return
        batch = batch.astype(np.float64)
        n_b = len(batch)
        mean_b = batch.mean(axis=0)
        m2_b = ((batch - mean_b) ** 2).sum(axis=0)
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + delta**2 * (self.n * n_b / n)
        self.n = n

    @property
    def var(self) -> np.ndarray:
        return self.m2 / max(self.n - 1, 1)


def _groups(images, labels, what: str):
    source = image_rows(images, what)
    labels = as_labels(labels, len(source))
    return source, labels


def mean_images(images, labels, *, batch_size: int = 256):
    """The mean image of every label (cluster).

    Parameters
    ----------
    images : array-like, torch.Tensor or Dataset
        ``(N, C, *spatial)`` images, or a dataset of them (read in batches).
    labels : array-like
        One label per image; items labelled -1 (noise) are left out.
    batch_size : int, default 256
        Images read at a time.

    Returns
    -------
    classes : numpy.ndarray
        The sorted labels.
    means : numpy.ndarray
        float32 ``(n_classes, C, *spatial)``, ``means[k]`` the mean of ``classes[k]``.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.DataError`) if the labels do not match the images
        or no image is left.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.explain import mean_images
    >>> images = np.arange(4, dtype="float32").reshape(4, 1, 1, 1)
    >>> classes, means = mean_images(images, [0, 0, 1, -1])
    >>> classes.tolist(), means.ravel().tolist()
    ([0, 1], [0.5, 2.0])
    """
    source, labels = _groups(images, labels, "images")
    keep = kept_mask(labels)
    if not keep.any():
        raise DataError("every label is -1 (noise); no image is left to average")
    classes = np.unique(labels[keep])
    means = np.empty((len(classes), *source.image_shape), dtype=np.float32)
    for k, c in enumerate(classes):
        moments = _Moments(source.image_shape)
        for _, batch in source.batches(np.flatnonzero(keep & (labels == c)), batch_size):
            moments.add(batch)
        means[k] = moments.mean
    return classes, means


def _welch(a: _Moments, b: _Moments):
    from scipy import stats

    var_a, var_b = a.var / a.n, b.var / b.n
    se2 = var_a + var_b
    diff = a.mean - b.mean
    with np.errstate(divide="ignore", invalid="ignore"):
        t = diff / np.sqrt(se2)
        df = se2**2 / (var_a**2 / max(a.n - 1, 1) + var_b**2 / max(b.n - 1, 1))
        p = 2 * stats.t.sf(np.abs(t), df)
    flat = se2 == 0
    # Voxels constant within both groups: identical means are no evidence, different means
    # are (the t statistic is infinite there).
    t = np.where(flat, np.where(diff == 0, 0.0, np.sign(diff) * np.inf), t)
    p = np.where(flat, np.where(diff == 0, 1.0, 0.0), p)
    return t, np.nan_to_num(p, nan=1.0)


def _t_statistics(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Welch's t of every row of the 0/1 matrix ``groups`` (P, n) against data ``x``
    (n, V): group 1 minus group 0."""
    n = x.shape[0]
    n_a = groups.sum(axis=1, keepdims=True)
    n_b = n - n_a
    sum_all, sq_all = x.sum(axis=0), (x * x).sum(axis=0)
    sum_a, sq_a = groups @ x, groups @ (x * x)
    mean_a, mean_b = sum_a / n_a, (sum_all - sum_a) / n_b
    var_a = np.maximum(sq_a - n_a * mean_a**2, 0) / np.maximum(n_a - 1, 1)
    var_b = np.maximum((sq_all - sq_a) - n_b * mean_b**2, 0) / np.maximum(n_b - 1, 1)
    se = np.sqrt(var_a / n_a + var_b / n_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (mean_a - mean_b) / se
    return np.nan_to_num(t, nan=0.0, posinf=np.inf, neginf=-np.inf)


def _permutation_p(x: np.ndarray, is_source: np.ndarray, n_permutations: int,
                   rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    n, n_voxels = x.shape
    x = x - x.mean(axis=0)  # centring keeps the sums of squares accurate in float64
    permuted = np.stack([rng.permutation(is_source) for _ in range(n_permutations)])
    permuted = permuted.astype(np.float64)
    observed = is_source[None].astype(np.float64)
    t_obs = np.empty(n_voxels)
    exceed = np.zeros(n_voxels)
    block = max(1, _PERMUTATION_BLOCK // max(n_permutations, 1))
    for start in range(0, n_voxels, block):
        chunk = x[:, start:start + block].astype(np.float64)
        t = _t_statistics(chunk, observed)[0]
        t_perm = _t_statistics(chunk, permuted)
        t_obs[start:start + block] = t
        exceed[start:start + block] = (np.abs(t_perm) >= np.abs(t) - 1e-12).sum(axis=0)
    return t_obs, (1.0 + exceed) / (1.0 + n_permutations)


def difference_map(images, labels, source, target=None, *, test: str = "welch",
                   alpha: float = 0.05, min_difference: float = 0.0,
                   n_permutations: int = 1000, random_state=None,
                   batch_size: int = 256) -> DifferenceMap:
    """Voxel-wise difference between the mean images of two clusters, with the voxels
    whose difference is significant after false-discovery-rate control.

    Each voxel is tested on its own, by Welch's unequal-variance t-test or by a
    permutation test of Welch's t (the group labels shuffled ``n_permutations`` times,
    the same shuffles for every voxel); the p-values of all voxels are then adjusted with
    Benjamini-Hochberg.  A cluster whose images are shifted, or that shows an object the
    others lack, lights up where the images differ.

    Parameters
    ----------
    images : array-like, torch.Tensor or Dataset
        ``(N, C, *spatial)`` images, or a dataset of them.
    labels : array-like
        One label per image (e.g. ``ClusterAuditor.labels_``); items labelled -1 (noise)
        are left out.
    source : object
        The label of the first group.
    target : object, optional
        The label of the second group; by default every other (non-noise) item.
    test : {"welch", "permutation"}, default "welch"
        Welch's t-test (streams datasets in batches), or the permutation test (holds the
        two groups in memory).
    alpha : float, default 0.05
        False discovery rate of the significance mask.
    min_difference : float, default 0.0
        Also require ``|difference| >= min_difference`` (in image intensity units) for a
        voxel to be marked: with hundreds of images per cluster, differences too small to
        matter become significant.
    n_permutations : int, default 1000
        Shuffles of the permutation test.  Its smallest p-value is
        ``1 / (n_permutations + 1)``, and after the FDR correction over ``V`` voxels a
        region of ``k`` voxels can only be found if
        ``k >= V / (alpha * (n_permutations + 1))``: 1000 shuffles find regions down to 2%
        of the image at ``alpha=0.05``.
    random_state : int, RandomState or None, default None
        Seed of the permutations.
    batch_size : int, default 256
        Images read at a time.

    Returns
    -------
    DifferenceMap
        Means, difference (source minus target), t statistics, p- and q-values and the
        significance mask, each shaped like one image.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError` or ``DataError``) for an invalid
        option, a label that no image has, or a group of fewer than two images.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.explain import difference_map
    >>> rng = np.random.default_rng(0)
    >>> images = rng.normal(size=(40, 1, 8, 8)).astype("float32")
    >>> images[:20, :, :2, :2] += 3  # the first group has a bright corner
    >>> labels = np.repeat([0, 1], 20)
    >>> diff = difference_map(images, labels, source=0, target=1)
    >>> bool(diff.significant[0, :2, :2].all()), int(diff.significant.sum())
    (True, 4)
    """
    check_option("test", test, _TESTS)
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha!r}")
    if not min_difference >= 0:
        raise ConfigError(f"min_difference must be >= 0, got {min_difference!r}")
    if test == "permutation" and (isinstance(n_permutations, bool) or not isinstance(
            n_permutations, (int, np.integer)) or n_permutations < 1):
        raise ConfigError(f"n_permutations must be a positive integer, got {n_permutations!r}")
    data, labels = _groups(images, labels, "images")
    keep = kept_mask(labels)
    present = set(np.unique(labels[keep]).tolist())
    if source not in present:
        raise DataError(f"no image has the source label {source!r}; labels present: "
                        f"{sorted(present, key=str)}")
    in_source = keep & (labels == source)
    if target is None:
        in_target = keep & ~in_source
        target_name = "rest"
    else:
        if target not in present:
            raise DataError(f"no image has the target label {target!r}; labels present: "
                            f"{sorted(present, key=str)}")
        if target == source:
            raise ConfigError(f"source and target must differ, both are {source!r}")
        in_target = keep & (labels == target)
        target_name = target
    for name, mask in (("source", in_source), ("target", in_target)):
        if mask.sum() < 2:
            raise DataError(f"the {name} group has {int(mask.sum())} image(s); a voxel-wise "
                            f"test needs at least two per group")

    shape = data.image_shape
    if test == "welch":
        moments_a, moments_b = _Moments(shape), _Moments(shape)
        union = np.flatnonzero(in_source | in_target)
        for positions, batch in data.batches(union, batch_size):
            is_a = in_source[positions]
            moments_a.add(batch[is_a])
            moments_b.add(batch[~is_a])
        statistic, p_value = _welch(moments_a, moments_b)
        mean_a, mean_b = moments_a.mean, moments_b.mean
    else:
        union = np.flatnonzero(in_source | in_target)
        x = data.get(union).reshape(len(union), -1)
        is_source = in_source[union]
        mean_a = x[is_source].astype(np.float64).mean(axis=0).reshape(shape)
        mean_b = x[~is_source].astype(np.float64).mean(axis=0).reshape(shape)
        rng = check_random_state(random_state)
        statistic, p_value = _permutation_p(x, is_source, int(n_permutations), rng)
        statistic, p_value = statistic.reshape(shape), p_value.reshape(shape)
    # Pixels without a test (constant in both groups) count as p = 1: they are tests that
    # found nothing, and leaving them out would make the correction too lenient.
    q_value = benjamini_hochberg(np.nan_to_num(p_value, nan=1.0).ravel()).reshape(
        np.shape(p_value))
    difference = (mean_a - mean_b).astype(np.float32)
    result = DifferenceMap(
        source=source, target=target_name, n_source=int(in_source.sum()),
        n_target=int(in_target.sum()), mean_source=mean_a.astype(np.float32),
        mean_target=mean_b.astype(np.float32),
        difference=difference,
        statistic=np.asarray(statistic, dtype=np.float32),
        p_value=np.asarray(p_value, dtype=np.float64), q_value=q_value,
        significant=(q_value <= alpha) & (np.abs(difference) >= min_difference), test=test,
        alpha=float(alpha))
    logger.info("%r", result)
    return result
