"""Figures and reports of an audit.

:func:`plot_projection` draws a 2-D map of embeddings once per metadata column.
"""

from ._plots import plot_projection

__all__ = ["plot_projection"]
