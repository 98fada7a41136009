"""Probes: how well can a metadata column be predicted from the embedding?

A probe is a cross-validated scikit-learn model on standardised inputs: logistic or ridge
regression (``model="linear"``, fast, the default) or an RBF support-vector machine
(``model="svm"``, the paper's Table 1).  It reports accuracy (categorical columns) or the
mean absolute error (continuous columns) of the out-of-fold predictions with a confidence
interval, and a p-value: by permutation (scikit-learn's ``permutation_test_score``, on a
subsample so that large cohorts stay fast) or, with ``n_permutations=0``, from each fold's
held-out predictions tested against the exact permutation moments of that fold's labels
(:func:`~latentaudit.audit._stats.agreement_test`,
:func:`~latentaudit.audit._stats.correlation_test`), combined over folds by Bonferroni.
"""

from __future__ import annotations

import logging
import numbers

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import (
    KFold,
    StratifiedKFold,
    permutation_test_score,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR
from threadpoolctl import threadpool_limits

from ..errors import ConfigError, DataError
from ..utils import check_option, check_random_state
from ._stats import agreement_test, correlation_test, mean_interval, wilson_interval

__all__ = ["make_cv", "make_probe", "out_of_fold", "run_probe"]

logger = logging.getLogger(__name__)

PROBE_MODELS = ("linear", "svm")
# Probes fit in one BLAS/OpenMP thread: each solver iteration is too small for threads to
# pay off, and on a busy machine their synchronisation made a logistic regression of
# 16k x 50 about a hundred times slower (benchmarks/bench_audit.py).
_PROBE_THREADS = 1
_RIDGE_ALPHAS = np.logspace(-3, 3, 13)


def make_probe(kind: str, model: str = "linear", *, probability: bool = False):
    """The probe estimator: a pipeline of a ``StandardScaler`` and the model.

    Parameters
    ----------
    kind : {"categorical", "continuous"}
        The column's type.
    model : {"linear", "svm"}, default "linear"
        ``"linear"``: ``LogisticRegression`` or ``RidgeCV``; ``"svm"``: ``SVC`` or ``SVR``
        with an RBF kernel (scikit-learn's defaults, as in the paper).
    probability : bool, default False
        Let the SVM predict probabilities (Platt scaling by ``CalibratedClassifierCV``;
        slower; used for label issues).

    Returns
    -------
    sklearn.pipeline.Pipeline

    Examples
    --------
    >>> make_probe("categorical").steps[-1][0]
    'logisticregression'
    """
    check_option("kind", kind, ["categorical", "continuous"])
    check_option("model", model, PROBE_MODELS)
    if kind == "categorical":
        if model == "linear":
            estimator = LogisticRegression(max_iter=1000)
        elif probability:
            # Platt scaling fitted on held-out folds of the training data, without the
            # deprecated SVC(probability=True)
            estimator = CalibratedClassifierCV(SVC(), method="sigmoid", cv=3)
        else:
            estimator = SVC()
    else:
        estimator = RidgeCV(alphas=_RIDGE_ALPHAS) if model == "linear" else SVR()
    return make_pipeline(StandardScaler(), estimator)


def model_name(kind: str, model: str) -> str:
    """Short name of the probe's estimator ("logistic", "ridge", "svc", "svr")."""
    if model == "linear":
        return "logistic" if kind == "categorical" else "ridge"
    return "svc" if kind == "categorical" else "svr"


def make_cv(kind: str, y, cv=5, random_state=None):
    """The cross-validation splitter of a probe.

    Parameters
    ----------
    kind : {"categorical", "continuous"}
        Categorical columns get stratified folds.
    y : array-like
        The target (codes for categorical columns).
    cv : int or scikit-learn splitter, default 5
        Number of folds (shuffled, seeded by ``random_state``; lowered to the size of
        the smallest class), or a splitter used as given.
    random_state : int, numpy.random.RandomState or None
        Seed of the shuffling.

    Returns
    -------
    scikit-learn splitter
    """
    if not isinstance(cv, numbers.Integral):
        return cv
    if isinstance(cv, bool) or cv < 2:
        raise ConfigError(f"cv must be an integer >= 2 or a splitter, got {cv!r}")
    seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    if kind == "categorical":
        counts = np.bincount(np.asarray(y, dtype=np.int64))
        smallest = int(counts[counts > 0].min())
        return StratifiedKFold(n_splits=max(2, min(int(cv), smallest)), shuffle=True,
                               random_state=seed)
    return KFold(n_splits=int(cv), shuffle=True, random_state=seed)


def out_of_fold(x, y, kind, *, model="linear", cv=5, random_state=None, method="predict",
                max_train_samples=None):
    """Out-of-fold predictions (or class probabilities) of a probe.

    Parameters
    ----------
    x : array-like of shape (n_samples, n_features)
        Inputs.
    y : array-like of shape (n_samples,)
        Targets (integer codes for categorical columns).
    kind : {"categorical", "continuous"}
        The column's type.
    model : {"linear", "svm"}, default "linear"
        See :func:`make_probe`.
    cv : int or scikit-learn splitter, default 5
        See :func:`make_cv`.
    random_state : int, numpy.random.RandomState or None
        Seed of the folds and of the training subsamples.
    method : {"predict", "predict_proba"}, default "predict"
        What to return.
    max_train_samples : int, optional
        Fit each fold's model on at most this many of its training rows (a random
        subsample), which bounds the cost on large cohorts; every row still gets a
        prediction.  ``None``: all training rows (then the result equals scikit-learn's
        ``cross_val_predict``).

    Returns
    -------
    numpy.ndarray
        ``(n_samples,)`` predictions or ``(n_samples, n_classes)`` probabilities, columns
        in the order of ``np.unique(y)``.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    rng = check_random_state(random_state)
    fold_seed, sample_seed = (int(s) for s in rng.randint(2**31 - 1, size=2))
    splitter = make_cv(kind, y, cv, fold_seed)
    sampler = check_random_state(sample_seed)
    classes = np.unique(y) if method == "predict_proba" else None
    if classes is not None:
        out = np.zeros((y.size, classes.size))
    else:
        out = np.empty(y.size, dtype=np.float64 if kind == "continuous" else y.dtype)
    with threadpool_limits(limits=_PROBE_THREADS):
        for train, test in splitter.split(x, y):
            if max_train_samples is not None and train.size > max_train_samples:
                train = np.sort(sampler.choice(train, size=int(max_train_samples),
                                               replace=False))
            fitted = make_probe(kind, model, probability=classes is not None)
            fitted.fit(x[train], y[train])
            if classes is None:
                out[test] = fitted.predict(x[test])
            else:
                columns = np.searchsorted(classes, fitted.classes_)
                out[np.ix_(test, columns)] = fitted.predict_proba(x[test])
    return out


def _check_classes(y: np.ndarray, min_count: int = 2):
    """Rows whose class has at least ``min_count`` members (folds need two per class)."""
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    return counts[inverse] >= min_count


def _held_out_p_value(kind: str, y, predictions, fold_of) -> float:
    """Bonferroni-combined p-value of the folds' held-out agreement tests.

    A fold's model never saw the fold's labels, so under no association those labels are
    exchangeable given the fold's predictions and the fold's permutation test is exact
    (up to the normal approximation).  Pooling the folds is not: each fold's predictions
    depend on the other folds' labels, which inflates pooled tests (about 7% of null
    p-values fell below 0.05 when tried).  Bonferroni over the folds is valid under any
    dependence.
    """
    test = agreement_test if kind == "categorical" else correlation_test
    folds = np.unique(fold_of)
    p_values = []
    for fold in folds:
        rows = fold_of == fold
        result = test(y[rows], predictions[rows])
        p_values.append(1.0 if result is None else result.p_value)
    return float(min(1.0, folds.size * min(p_values)))


def run_probe(
    x,
    y,
    kind: str,
    *,
    model: str = "linear",
    cv=5,
    n_permutations: int = 100,
    permutation_max_samples: int | None = 2000,
    confidence: float = 0.95,
    random_state=None,
    n_jobs=None,
) -> dict:
    """Cross-validate one probe and test it against chance.

    Parameters
    ----------
    x : array-like of shape (n_samples, n_features)
        Inputs (rows with a missing target already removed).
    y : array-like of shape (n_samples,)
        Targets: integer codes for categorical columns, floats for continuous ones.
    kind : {"categorical", "continuous"}
        The column's type.
    model : {"linear", "svm"}, default "linear"
        See :func:`make_probe`.
    cv : int or scikit-learn splitter, default 5
        See :func:`make_cv`.
    n_permutations : int, default 100
        Label permutations of the permutation test; 0 uses the analytic test of each
        fold's held-out predictions instead (Bonferroni over folds).
    permutation_max_samples : int or None, default 2000
        Rows (sampled at random) that the permutation test uses; ``None``: all.
    confidence : float, default 0.95
        Coverage of the interval of the score.
    random_state : int, numpy.random.RandomState or None
        Seed of folds, permutations and subsample.
    n_jobs : int, optional
        Parallel jobs of scikit-learn.

    Returns
    -------
    dict
        ``model``, ``metric`` ("accuracy" or "mae"), ``score``, ``ci_low``, ``ci_high``,
        ``chance`` (majority-class accuracy, or the MAE of predicting the median),
        ``effect_size`` (Cohen's κ or out-of-fold R²), ``p_value``, ``p_method``,
        ``n``, ``n_permutations``, ``predictions`` (out-of-fold) and ``kept`` (mask of
        the input rows used: classes with a single member are left out).

    Raises
    ------
    ValueError
        (as :class:`~latentaudit.errors.DataError`) when fewer than two classes or
        too few rows remain.
    """
    check_option("model", model, PROBE_MODELS)
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence!r}")
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, numbers.Integral) or (
        n_permutations < 0
    ):
        raise ConfigError(f"n_permutations must be a non-negative integer, got {n_permutations!r}")
    rng = check_random_state(random_state)
    fold_seed, perm_seed, sample_seed = (int(s) for s in rng.randint(2**31 - 1, size=3))
    x = np.asarray(x)
    y = np.asarray(y)
    kept = np.ones(y.shape[0], dtype=bool)
    if kind == "categorical":
        y = y.astype(np.int64)
        keep = kept = _check_classes(y)
        if not keep.all():
            logger.warning("probe: %d rows of classes with a single member left out",
                           int((~keep).sum()))
            x, y = x[keep], y[keep]
        if np.unique(y).size < 2:
            raise DataError("a probe needs at least two classes with two members each")
    else:
        y = y.astype(np.float64)
    n = y.size
    if n < 4:
        raise DataError(f"a probe needs at least 4 rows, got {n}")
    splitter = make_cv(kind, y, cv, fold_seed)
    # the folds' loop written out (what cross_val_predict does) to know each row's fold
    predictions = np.empty(n, dtype=y.dtype)
    fold_of = np.empty(n, dtype=np.int64)
    with threadpool_limits(limits=_PROBE_THREADS):
        for fold, (train, test) in enumerate(splitter.split(x, y)):
            fitted = make_probe(kind, model).fit(x[train], y[train])
            predictions[test] = fitted.predict(x[test])
            fold_of[test] = fold
    row = {"model": model_name(kind, model), "n": int(n)}
    if kind == "categorical":
        correct = predictions == y
        score = float(correct.mean())
        low, high = wilson_interval(float(correct.sum()), n, confidence)
        chance = float(np.bincount(y).max() / n)
        analytic = agreement_test(y, predictions)
        row.update(metric="accuracy", score=score, ci_low=low, ci_high=high, chance=chance)
        scoring = "accuracy"
    else:
        errors = np.abs(predictions - y)
        score = float(errors.mean())
        low, high = mean_interval(errors, confidence)
        chance = float(np.abs(y - np.median(y)).mean())
        analytic = correlation_test(y, predictions)
        row.update(metric="mae", score=score, ci_low=low, ci_high=high, chance=chance)
        scoring = "neg_mean_absolute_error"
    row["effect_size"] = analytic.effect_size if analytic is not None else 0.0
    if n_permutations == 0:
        row.update(p_value=_held_out_p_value(kind, y, predictions, fold_of),
                   p_method="analytic", n_permutations=0)
    else:
        rows = np.arange(n)
        if permutation_max_samples is not None and n > permutation_max_samples:
            rows = np.sort(check_random_state(sample_seed).choice(
                n, size=int(permutation_max_samples), replace=False))
        xs, ys = x[rows], y[rows]
        if kind == "categorical":
            keep = _check_classes(ys)
            xs, ys = xs[keep], ys[keep]
        with threadpool_limits(limits=_PROBE_THREADS):
            _, _, p = permutation_test_score(
                make_probe(kind, model), xs, ys, cv=make_cv(kind, ys, cv, fold_seed),
                n_permutations=int(n_permutations), random_state=perm_seed, scoring=scoring,
                n_jobs=n_jobs,
            )
        row.update(p_value=float(p), p_method="permutation", n_permutations=int(n_permutations))
    row["predictions"] = predictions
    row["kept"] = kept
    return row
