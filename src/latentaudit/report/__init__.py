"""Figures and reports of an audit.

:func:`plot_projection` draws a 2-D map of embeddings once per metadata column.
:class:`AuditReport` holds the sections of an audit (made by
:func:`latentaudit.pipeline.run_audit`) and writes them as one self-contained HTML page
(:func:`render_html`) and a JSON file of every number.
"""

from ._html import render_html
from ._plots import plot_projection
from ._report import AuditReport, ReportFigure, ReportSection, ReportTable

__all__ = [
    "AuditReport",
    "ReportFigure",
    "ReportSection",
    "ReportTable",
    "plot_projection",
    "render_html",
]
