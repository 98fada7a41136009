"""The audit: clusters, metadata tests, probes, label issues, outliers and look-ups.

Works on plain NumPy arrays (any model's embeddings) and a pandas metadata table; it
does not import torch.

- :class:`ClusterAuditor`: cluster an embedding, test the clusters against the metadata,
  probe every column not expected, rank the findings; label issues, outliers,
  near-duplicates and nearest-neighbour look-ups from one kNN graph.
- :func:`heldout_probe_test`: the calibrated test behind the probes of ``fit``.
- :func:`confident_flags`: the rule that flags label issues.
- :func:`delineate`: turn polygons drawn on a 2-D map into cluster labels.
- :class:`Delineation`: groups drawn on a report's map, read from the exported JSON file,
  checked against the map and embeddings they were drawn on.
- :func:`points_in_polygon`: the point-in-polygon test behind it.
- :func:`benjamini_hochberg`: the false discovery rate correction used for findings.
"""

from ._auditor import ClusterAuditor
from ._delineate import delineate, points_in_polygon
from ._delineation import Delineation
from ._heldout import heldout_probe_test
from ._label_flags import confident_flags
from ._stats import benjamini_hochberg

__all__ = ["ClusterAuditor", "Delineation", "benjamini_hochberg", "confident_flags",
           "delineate", "heldout_probe_test", "points_in_polygon"]
