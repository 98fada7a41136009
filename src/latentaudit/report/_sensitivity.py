"""A spike-in sensitivity measurement (:func:`latentaudit.sensitivity`) in a report: its
figure and its section."""

from __future__ import annotations

import math

from ._build import AuditContext, Unavailable
from ._plots import OKABE_ITO
from ._report import ReportFigure, ReportSection, ReportTable

__all__ = ["plot_sensitivity", "sensitivity_section", "sensitivity_view"]


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
        if regime not in settings.get("regimes", labels):
            continue
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


def sensitivity_view(result):
    """The curves of :func:`plot_sensitivity` as the report's interactive
    :class:`~latentaudit.report.CurveView` (values on hover, detection limits as markers).

    Parameters
    ----------
    result : SensitivityResult
        From :func:`latentaudit.sensitivity`.

    Returns
    -------
    CurveView

    Examples
    --------
    >>> import pandas as pd
    >>> from latentaudit.pipeline import SensitivityResult
    >>> from latentaudit.artefacts import Blur
    >>> runs = pd.DataFrame({"repeat": [0, 0], "strength": [0.0, 1.0], "known_q": [0.5, 1e-6],
    ...     "known_significant": [False, True], "known_found": [False, True],
    ...     "probe_auc": [0.5, 0.99], "unforeseen_f1": [0.1, 0.2],
    ...     "unforeseen_found": [False, False]})
    >>> settings = {"fraction": 0.1, "repeats": 1, "strengths": (0.0, 1.0),
    ...             "known_q_threshold": 1e-3, "min_f1": 0.5}
    >>> view = sensitivity_view(SensitivityResult(runs, Blur(), settings))
    >>> [line["name"] for line in view.payload()["series"]]
    ['known regime', 'unforeseen regime', 'probe AUC']
    """
    from ._views import CurveView

    curves = result.curves
    settings = result.settings
    x = curves["strength"].to_numpy()
    regimes = [r for r in ("known", "unforeseen")
               if r in settings.get("regimes", ("known", "unforeseen"))]
    series = [{"name": f"{regime} regime", "x": x, "y": curves[f"{regime}_rate"].to_numpy(),
               "lower": curves[f"{regime}_low"].to_numpy(),
               "upper": curves[f"{regime}_high"].to_numpy()} for regime in regimes]
    series.append({"name": "probe AUC", "x": x, "y": curves["probe_auc"].to_numpy()})
    limits = result.detection_limits.set_index("regime")["limit"]
    markers = {f"{regime} limit": float(limits[regime]) for regime in regimes
               if regime in limits.index and math.isfinite(limits[regime])}
    return CurveView(series, f"strength of {type(result.artefact).__name__}",
                     "share of repeats found; probe AUC", markers=markers or None,
                     title="Detection by strength",
                     caption="Hover a point for its value; bands: Wilson 95% intervals; "
                             "vertical lines: detection limits.", y_range=(0.0, 1.02))


def sensitivity_section(section: ReportSection, ctx: AuditContext) -> None:
    """The report section of a :class:`~latentaudit.pipeline.SensitivityResult`: what was
    planted, the detection limit of each regime, the curves and every run."""
    from ._figures import figure_to_png

    result = ctx.sensitivity
    if result is None:
        raise Unavailable("no sensitivity measurement was given (latentaudit.sensitivity, "
                          "or the 'latentaudit sensitivity' command)")
    settings = result.settings
    strengths = ", ".join(f"{s:g}" for s in settings["strengths"])
    section.paragraphs.append(
        f"A hidden group of {settings['fraction']:.0%} of the subjects, drawn at random "
        f"(independent of every metadata column), received {result.artefact!r} at the "
        f"strengths {strengths} (0: nothing planted, the null); the images were embedded "
        f"with the {settings['encoder']} and audited as configured, "
        f"{settings['repeats']} time(s) with other groups and seeds. Known regime: the "
        f"group is a metadata column ({settings['column']!r}, role "
        f"{settings['column_role']!r}); found when a finding on it has q < "
        f"{settings['known_q_threshold']:g}. Unforeseen regime: no column names it; found "
        f"when a cluster, the unclustered rows, the top outliers or a candidate subgroup "
        f"match it with F1 >= "
        f"{settings['min_f1']:g}. The audit saw the images and the metadata only.")
    for row in result.detection_limits.itertuples():
        limit = ("not found at any strength in most repeats" if not math.isfinite(row.limit)
                 else f"strength {row.limit:g}")
        section.items.append(f"{row.regime} regime: detection limit {limit} (found in "
                             f"{row.found_in} of {row.repeats} repeats; {row.criterion})")
    null = result.curves[result.curves["strength"] == 0]
    if len(null):
        rate = float(null["known_significant_rate"].iloc[0])
        alpha = settings["audit"].get("alpha", 0.05)
        section.items.append(f"null (strength 0): the group was reported at q <= {alpha:g} "
                             f"in {rate:.0%} of the repeats (nominal false discovery rate "
                             f"{alpha:g})")
    figure = plot_sensitivity(result).figure
    section.figures.append(ReportFigure(
        "Share of repeats found, by strength", figure_to_png(figure, dpi=100),
        "Lines: share of repeats in which each regime found the group, with Wilson 95% "
        "intervals; dotted: detection limits; dashed (right axis): out-of-fold probe AUC "
        "of membership."))
    section.views.append(sensitivity_view(result))
    section.tables.append(ReportTable(
        "Detection limits", result.detection_limits,
        "limit: median over repeats of the lowest strength found (inf: not found in most "
        "repeats); low/high: the smallest and largest per-repeat limit."))
    section.tables.append(ReportTable("By strength", result.curves.round(4),
                                      "Rates with Wilson 95% intervals; means with 95% "
                                      "intervals."))
    section.tables.append(ReportTable("Every run", result.runs.round(6), max_rows=30))
    section.data = {"settings": settings, "detection_limits": result.detection_limits,
                    "curves": result.curves, "runs": result.runs}
