"""Figures of a spike-in sensitivity measurement (:func:`latentaudit.sensitivity`)."""

from __future__ import annotations

import math

from ._plots import OKABE_ITO

__all__ = ["plot_sensitivity"]


def plot_sensitivity(result, ax=None):
    """Draw the share of repeats in which the audit found the planted group, by strength.

    One line per regime (known: the group is a metadata column; unforeseen: no column
    names it) with Wilson 95% intervals as bands, the probe AUC on a second axis and the
    detection limits as vertical lines.  A plain :class:`matplotlib.figure.Figure` (no
    pyplot state) when ``ax`` is not given.

    Parameters
    ----------
    result : SensitivityResult
        From :func:`latentaudit.sensitivity`.
    ax : matplotlib.axes.Axes, optional
        Where to draw.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import math, pandas as pd
    >>> from latentaudit.pipeline import SensitivityResult
    >>> from latentaudit.artefacts import Blur
    >>> runs = pd.DataFrame({"repeat": [0, 0], "strength": [0.0, 1.0], "known_q": [0.5, 1e-6],
    ...     "known_significant": [False, True], "known_found": [False, True],
    ...     "probe_auc": [0.5, 0.99], "unforeseen_f1": [0.1, 0.2],
    ...     "unforeseen_found": [False, False]})
    >>> settings = {"fraction": 0.1, "repeats": 1, "strengths": (0.0, 1.0),
    ...             "known_q_threshold": 1e-3, "min_f1": 0.5}
    >>> ax = plot_sensitivity(SensitivityResult(runs, Blur(), settings))
    >>> [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    ['known (q < 0.001)', 'unforeseen (F1 >= 0.5)']
    """
    if ax is None:
        from matplotlib.figure import Figure

        figure = Figure(figsize=(6.0, 3.6), layout="constrained")
        ax = figure.add_subplot()
    curves = result.curves
    settings = result.settings
    x = curves["strength"].to_numpy()
    labels = {"known": f"known (q < {settings['known_q_threshold']:g})",
              "unforeseen": f"unforeseen (F1 >= {settings['min_f1']:g})"}
    for (regime, label), colour in zip(labels.items(), OKABE_ITO, strict=False):
        ax.plot(x, curves[f"{regime}_rate"], "o-", color=colour, label=label)
        ax.fill_between(x, curves[f"{regime}_low"], curves[f"{regime}_high"], color=colour,
                        alpha=0.15, linewidth=0)
        limit = result.detection_limits.set_index("regime").loc[regime, "limit"]
        if math.isfinite(limit):
            ax.axvline(limit, color=colour, linestyle=":", linewidth=1)
    auc = ax.twinx()
    auc.plot(x, curves["probe_auc"], "s--", color="#555555", markersize=3,
             label="probe AUC (right axis)")
    auc.set_ylim(0.4, 1.02)
    auc.set_ylabel("probe AUC")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"strength of {type(result.artefact).__name__}")
    ax.set_ylabel(f"share of {settings['repeats']} repeat(s) found")
    handles, names = ax.get_legend_handles_labels()
    more, more_names = auc.get_legend_handles_labels()
    ax.legend(handles + more, names + more_names, loc="lower right", fontsize="small")
    ax.set_title(f"hidden group of {settings['fraction']:.0%}: detection by strength",
                 fontsize="medium")
    return ax
