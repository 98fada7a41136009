"""Figures and reports of an audit.

:func:`plot_projection` draws a 2-D map of embeddings once per metadata column.
:class:`AuditReport` holds the sections of an audit (made by
:func:`latentaudit.pipeline.run_audit`) and writes them as one self-contained HTML page
(:func:`render_html`) and a JSON file of every number.  :class:`MapView` and
:class:`CurveView` are the page's interactive views (the map of the subjects, on which
groups can be drawn and exported as a delineation, and line charts).
"""

from ._html import render_html
from ._plots import plot_projection
from ._report import AuditReport, ReportFigure, ReportSection, ReportTable
from ._views import CurveView, MapView

__all__ = [
    "AuditReport",
    "CurveView",
    "MapView",
    "ReportFigure",
    "ReportSection",
    "ReportTable",
    "plot_projection",
    "render_html",
]
