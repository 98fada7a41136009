"""One population or a separate group?  Split likelihood-ratio tests on a 1-D projection.

A candidate subgroup is a direction in the embedding along which some rows sit apart.  Real
embeddings are skewed and heavy- or light-tailed along many directions (an encoder is not
linear in the anatomy), so a Gaussian null would call every long tail a group.  The null
here is a *sinh-arcsinh* population (Jones & Pewsey, Biometrika 2009): four parameters
(location, scale, skewness ``epsilon`` and tail weight ``delta``: heavier tails than
normal below 1, lighter above) that cover the unimodal shapes seen along embedding
directions.  The alternative adds a normal component holding at least ``min_weight`` of the
rows: a group that sits apart.

The test is *universal inference* (Wasserman, Ramdas & Balakrishnan, PNAS 2020): the
alternative is fitted on one part of the data (the rows the search used), the null by
maximum likelihood on another (held-out rows), and ``U`` is the held-out likelihood ratio of
the two.  Under the null, ``E[U] <= 1`` whatever the search did, so ``p = min(1, 1/U)`` is a
valid p-value at any sample size: no asymptotics for mixtures, no correction for the search.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special

__all__ = ["fit_group_density", "fit_sas", "group_logpdf", "sas_logpdf", "split_lr_test"]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_STARTS = ((0.0, 0.0), (0.5, 0.0), (-0.5, 0.0), (0.0, -0.5), (0.0, 0.5))


def sas_logpdf(x, location, log_scale, epsilon, log_delta) -> np.ndarray:
    """Log density of the sinh-arcsinh distribution of Jones & Pewsey (2009).

    ``Z = sinh(delta * asinh((X - location) / scale) - epsilon)`` is standard normal.

    Parameters
    ----------
    x : array-like
        Values.
    location, log_scale, epsilon, log_delta : float
        Location, log of the scale, skewness and log of the tail weight (0: normal
        tails).

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import stats
    >>> x = np.linspace(-3, 3, 7)
    >>> bool(np.allclose(sas_logpdf(x, 0.0, 0.0, 0.0, 0.0), stats.norm.logpdf(x)))
    True
    """
    scale, delta = np.exp(log_scale), np.exp(log_delta)
    y = (np.asarray(x, dtype=np.float64) - location) / scale
    s = delta * np.arcsinh(y) - epsilon
    # log cosh(s) computed stably for large |s|
    log_cosh = np.logaddexp(s, -s) - math.log(2.0)
    return (log_delta + log_cosh - _LOG_SQRT_2PI - 0.5 * np.log1p(y * y)
            - 0.5 * np.sinh(s) ** 2 - log_scale)


def _negative_loglik(theta, x):
    value = -np.sum(sas_logpdf(x, *theta))
    return value if np.isfinite(value) else 1e300


def fit_sas(x) -> tuple[np.ndarray, float]:
    """Maximum-likelihood sinh-arcsinh fit (several starts, L-BFGS).

    Parameters
    ----------
    x : array-like of float
        A sample.

    Returns
    -------
    (numpy.ndarray, float)
        ``(location, log_scale, epsilon, log_delta)`` and the maximised log-likelihood.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(2.0, 3.0, 2000)
    >>> theta, loglik = fit_sas(x)
    >>> np.round([theta[0], np.exp(theta[1])], 1).tolist()
    [2.0, 3.0]
    """
    x = np.asarray(x, dtype=np.float64)
    centre = float(np.median(x))
    spread = float(np.subtract(*np.percentile(x, [75, 25])) / 1.349) or float(x.std()) or 1.0
    best = None
    for epsilon, log_delta in _STARTS:
        start = np.array([centre, math.log(spread), epsilon, log_delta])
        result = optimize.minimize(_negative_loglik, start, args=(x,), method="L-BFGS-B",
                                   bounds=[(None, None), (None, None), (-20, 20), (-3, 3)])
        if best is None or result.fun < best.fun:
            best = result
    return best.x, -float(best.fun)


def group_logpdf(x, theta, min_weight: float) -> np.ndarray:
    """Log density of a sinh-arcsinh population plus a normal group.

    ``theta`` is ``(location, log_scale, epsilon, log_delta, weight_logit, mean,
    log_sd)``; the group's weight is ``min_weight + (0.5 - min_weight) *
    expit(weight_logit)``, between ``min_weight`` and one half.
    """
    weight = min_weight + (0.5 - min_weight) * special.expit(theta[4])
    bulk = sas_logpdf(x, *theta[:4])
    group = (-0.5 * ((np.asarray(x, dtype=np.float64) - theta[5]) / np.exp(theta[6])) ** 2
             - theta[6] - _LOG_SQRT_2PI)
    return np.logaddexp(math.log1p(-weight) + bulk, math.log(weight) + group)


def fit_group_density(x, members, *, min_weight: float = 0.05) -> np.ndarray:
    """Fit a sinh-arcsinh population plus a normal group, starting from a membership.

    Parameters
    ----------
    x : array-like of float
        The projection of the rows the search used.
    members : array-like of bool
        The candidate's members among them (the start of the group component).
    min_weight : float, default 0.05
        Smallest weight of the group component.

    Returns
    -------
    numpy.ndarray
        ``theta`` for :func:`group_logpdf`.
    """
    x = np.asarray(x, dtype=np.float64)
    members = np.asarray(members, dtype=bool)
    bulk, _ = fit_sas(x[~members]) if (~members).sum() >= 10 else fit_sas(x)
    inside = x[members] if members.sum() >= 2 else x
    weight = float(np.clip(members.mean(), min_weight + 1e-3, 0.5 - 1e-3))
    start = np.r_[bulk, special.logit((weight - min_weight) / (0.5 - min_weight)),
                  inside.mean(), math.log(max(inside.std(), 1e-3))]

    def negative(theta):
        value = -np.sum(group_logpdf(x, theta, min_weight))
        return value if np.isfinite(value) else 1e300

    bounds = [(None, None), (None, None), (-20, 20), (-3, 3), (-20, 20), (None, None),
              (-7, None)]
    return optimize.minimize(negative, start, method="L-BFGS-B", bounds=bounds).x


def split_lr_test(x_test, group_theta, *, min_weight: float = 0.05) -> tuple[float, float]:
    """Universal-inference test of one population against a separate group.

    Parameters
    ----------
    x_test : array-like of float
        The held-out rows' projection (rows the search did not see).
    group_theta : array-like
        The alternative, from :func:`fit_group_density` on the search rows.
    min_weight : float, default 0.05
        As given to :func:`fit_group_density`.

    Returns
    -------
    (float, float)
        ``log U`` (natural log of the held-out likelihood ratio of the alternative to
        the sinh-arcsinh maximum-likelihood fit) and the p-value ``min(1, 1/U)``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> def sample(n):
    ...     return np.r_[rng.normal(0, 1, int(0.9 * n)), rng.normal(4, 1, n - int(0.9 * n))]
    >>> search, held_out = sample(1000), sample(1000)
    >>> theta = fit_group_density(search, search > 2.5)
    >>> log_u, p = split_lr_test(held_out, theta)
    >>> p < 1e-6
    True
    >>> log_u, p = split_lr_test(rng.normal(0, 1, 1000), theta)
    >>> p
    1.0
    """
    x_test = np.asarray(x_test, dtype=np.float64)
    _, null_loglik = fit_sas(x_test)
    log_u = float(np.sum(group_logpdf(x_test, group_theta, min_weight)) - null_loglik)
    return log_u, float(min(1.0, math.exp(-log_u))) if log_u < 700 else 0.0
