"""Interactive views of the HTML report: the map of the subjects and line charts.

A view is the data it shows, checked and encoded compactly into the page as JSON; one small
script embedded once per page (``_assets/views.js``, plain JavaScript, no library, no
network) draws every view.  Without JavaScript the page shows the static figures and a
note in place of each view.

- :class:`MapView`: every subject a point, coloured by any metadata column, cluster or
  finding; hover shows its thumbnail, id and metadata; click pins it; wheel zooms, drag
  pans; label issues and outliers can be ringed; oversampled (synthetic) subjects can be
  shown between their parents; groups drawn with a lasso or polygon are exported as a
  delineation file (:class:`latentaudit.audit.Delineation`).
- :class:`CurveView`: lines with optional bands and marked x positions (sensitivity curves
  and their detection limits), with values on hover.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
from collections.abc import Mapping, Sequence
from importlib import resources

import numpy as np
import pandas as pd

from ..errors import DataError, InputShapeError, InputTypeError

__all__ = ["CurveView", "MapView", "views_assets"]

_MISSING_CODE = 65535  # categorical code of a missing value (uint16)
_MAX_CATEGORIES = 20
_HIGHLIGHT_COLOURS = ("#d62728", "#111111", "#9467bd", "#17becf", "#bcbd22", "#8c564b")


def _b64(array: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def _json_for_html(value) -> str:
    # "<" escaped so that nothing in the data can end the <script> element early
    return json.dumps(value, separators=(",", ":"), allow_nan=False,
                      ensure_ascii=False).replace("<", "\\u003c")


def _viridis_lut() -> str:
    from matplotlib import colormaps

    colours = (colormaps["viridis"](np.linspace(0, 1, 256))[:, :3] * 255).round()
    return "".join(f"{int(r):02x}{int(g):02x}{int(b):02x}" for r, g, b in colours)


def _column(name: str, values: pd.Series, group: str) -> dict:
    """One column of the map: a colour layer and a line of the hover card."""
    from ._plots import (
        _OTHER_COLOR,
        MISSING_COLOR,
        OKABE_ITO,
        _as_numbers,
        _category_order,
        _infer_kind,
        _looks_like_id,
        _tab20,
    )

    values = values.reset_index(drop=True)
    record = {"name": str(name), "group": group, "missing": MISSING_COLOR, "card": True}
    if _looks_like_id(values):
        record.update(kind="text", colour=False,
                      text=[None if pd.isna(v) else str(v) for v in values.to_numpy()])
        return record
    if _infer_kind(values) == "continuous":
        numbers, _ = _as_numbers(values)
        finite = numbers[np.isfinite(numbers)]
        if finite.size == 0:
            record.update(kind="text", colour=False, text=[None] * len(values))
            return record
        record.update(kind="number", colour=True, values=_b64(numbers, "<f4"),
                      min=float(finite.min()), max=float(finite.max()))
        return record
    levels = _category_order(values)
    counts = values.value_counts()
    lumped = len(levels) > _MAX_CATEGORIES
    if lumped:
        keep = set(counts.index[:_MAX_CATEGORIES - 1])
        levels = [level for level in levels if level in keep]
    palette = OKABE_ITO if len(levels) <= len(OKABE_ITO) else _tab20()
    colours = [palette[k % len(palette)] for k in range(len(levels))]
    code_of = {level: k for k, level in enumerate(levels)}
    other = len(levels)
    codes = np.array([_MISSING_CODE if pd.isna(v) else code_of.get(v, other)
                      for v in values.to_numpy()], dtype=np.uint16)
    names = [str(level) for level in levels]
    if lumped:
        names.append("other")
        colours.append(_OTHER_COLOR)
    record.update(kind="category", colour=True, levels=names, colours=colours,
                  codes=_b64(codes, "<u2"))
    return record


def _as_rows(value, n: int, name: str) -> tuple[np.ndarray, list]:
    """Rows (and a note per row) of a highlight: a table with ``index`` (and ``note``), a
    boolean mask or row positions."""
    notes: list = []
    if isinstance(value, pd.DataFrame):
        if "index" not in value.columns:
            raise DataError(f"highlight {name!r} is a table without an 'index' column of row "
                            f"positions; its columns are {list(value.columns)}")
        rows = value["index"].to_numpy()
        if "note" in value.columns:
            notes = [None if pd.isna(v) else str(v) for v in value["note"].to_numpy()]
    else:
        rows = np.asarray(value)
        if rows.dtype == bool:
            if rows.shape != (n,):
                raise InputShapeError(f"highlight {name!r} is a mask of shape {rows.shape}; "
                                      f"give one entry per point ({n})")
            rows = np.flatnonzero(rows)
    if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
        raise InputTypeError(f"highlight {name!r} must hold integer row positions, got "
                             f"{rows.dtype} of shape {rows.shape}")
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise DataError(f"highlight {name!r} names rows outside [0, {n})")
    return rows.astype(np.int64), notes


@dataclasses.dataclass(eq=False)
class MapView:
    """An interactive map of the subjects, drawn in the HTML report.

    Parameters
    ----------
    xy : array-like of shape (n_points, 2)
        The map (e.g. :meth:`latentaudit.Projector.fit_transform`).
    ids : sequence of str
        The subject of every point.
    metadata : pandas.DataFrame, optional
        One row per point: shown on hover; every column can colour the map.
    layers : mapping of str to array-like, optional
        Further colourings, one value per point, listed after the metadata (clusters,
        findings).
    highlights : mapping of str to table, mask or rows, optional
        Points that can be ringed: a table with an ``index`` column of row positions and
        optionally a ``note`` shown on hover (e.g. label issues, outliers), a boolean mask
        or row positions.
    images : array-like or dataset, optional
        One image per point, shown on hover (packed into sprite sheets).
    synthetic : pandas.DataFrame, optional
        Oversampled subjects: ``parent_a``, ``parent_b`` (row positions) and ``weight``
        (:attr:`latentaudit.Interpolator.provenance_`); drawn where the interpolation puts
        them between their parents, with their parents on hover.
    identity : dict, optional
        :func:`latentaudit.audit.map_identity` of the map, copied into every delineation
        exported from it; default computed from ``xy`` and ``ids``.
    title : str
        Heading above the map.
    caption : str
        A sentence under it.
    colour_by : str, optional
        The colouring shown first; default the first categorical column.
    thumbnail_size : int, optional
        Side of the thumbnails; default from the number of points.
    source : dict, optional
        What the report says about itself (title, date), copied into exported
        delineations.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> view = MapView(np.zeros((3, 2)), ["a", "b", "c"],
    ...                pd.DataFrame({"site": ["A", "B", "A"]}))
    >>> payload = view.payload()
    >>> payload["n"], [c["name"] for c in payload["columns"]]
    (3, ['site'])
    >>> "data-la-view=\\"map\\"" in view.to_html("map-1")
    True
    """

    xy: object
    ids: object
    metadata: pd.DataFrame | None = None
    layers: Mapping | None = None
    highlights: Mapping | None = None
    images: object = None
    synthetic: pd.DataFrame | None = None
    identity: dict | None = None
    title: str = "Interactive map"
    caption: str = ""
    colour_by: str | None = None
    thumbnail_size: int | None = None
    source: dict | None = None

    def __post_init__(self) -> None:
        from ..audit._delineate import _as_points

        self.xy = _as_points(self.xy).astype(np.float32)
        self.ids = np.asarray([str(i) for i in self.ids], dtype=object)
        n = len(self.xy)
        if self.ids.shape != (n,):
            raise DataError(f"got {len(self.ids)} ids for {n} map points")
        if not np.all(np.isfinite(self.xy)):
            raise DataError("the map has non-finite coordinates")
        if self.metadata is not None and len(self.metadata) != n:
            raise DataError(f"metadata has {len(self.metadata)} rows for {n} map points")
        for name, values in dict(self.layers or {}).items():
            if len(values) != n:
                raise DataError(f"layer {name!r} has {len(values)} values for {n} points")

    @classmethod
    def from_audit(cls, xy, ids, metadata=None, *, labels=None, findings=None,
                   alpha: float = 0.05, top_findings: int = 6, label_issues=None,
                   outliers=None, images=None, z=None, method: str | None = None,
                   source: dict | None = None, **options) -> MapView:
        """The map of an audit: its clusters, top findings, label issues and outliers.

        Parameters
        ----------
        xy : array-like of shape (n_points, 2)
            The map.
        ids : sequence of str
            The subject of every point.
        metadata : pandas.DataFrame, optional
            One row per point.
        labels : array-like of int, optional
            Cluster labels (``ClusterAuditor.labels_``; ``-1`` is shown as "none").
        findings : pandas.DataFrame, optional
            ``ClusterAuditor.findings_``: each of the first ``top_findings`` significant
            cluster findings (``q_value <= alpha``) about a metadata column becomes a
            colouring, the column's values inside the cluster and grey elsewhere.
        alpha : float, default 0.05
            The false discovery rate of a significant finding.
        top_findings : int, default 6
            Findings offered as colourings.
        label_issues : mapping of str to pandas.DataFrame, optional
            ``ClusterAuditor.label_issues(column)`` per column (the flagged rows are
            ringed, with the given and suggested labels on hover).
        outliers : pandas.DataFrame, optional
            ``ClusterAuditor.outliers(top=...)`` (``index`` and ``score``).
        images : array-like or dataset, optional
            One image per point.
        z : array-like, optional
            The embeddings the map was made from (their fingerprint goes into exported
            delineations).
        method : str, optional
            The projection's name.
        source : dict, optional
            The report's title and date.
        **options
            Further fields of :class:`MapView` (``title``, ``caption``, ...).

        Returns
        -------
        MapView

        Examples
        --------
        >>> import numpy as np
        >>> view = MapView.from_audit(np.zeros((4, 2)), list("abcd"), labels=[0, 0, 1, -1])
        >>> [c["levels"] for c in view.payload()["columns"]]
        [['0', '1', 'none']]
        """
        from ..audit._delineation import map_identity

        n = len(ids)
        layers = {}
        if labels is not None:
            labels = np.asarray(labels)
            layers["cluster"] = pd.Series(np.where(labels == -1, "none", labels.astype(str)),
                                          dtype=object)
        if findings is not None and labels is not None and metadata is not None:
            significant = findings[(findings["kind"] == "cluster")
                                   & findings["cluster"].notna()
                                   & (findings["q_value"] <= alpha)]
            for rank, row in enumerate(significant.head(top_findings).itertuples(), 1):
                if row.column not in metadata.columns:
                    continue
                values = metadata[row.column].reset_index(drop=True).astype(object)
                values[labels != int(row.cluster)] = None
                layers[f"finding {rank}: {row.description}"] = values
        highlights = {}
        for column, table in dict(label_issues or {}).items():
            flagged = table[table["flagged"]] if "flagged" in table.columns else table
            notes = [f"{column} given {g}, suggested {s} (score {score:.2f})" for g, s, score
                     in zip(flagged["given"], flagged["suggested"], flagged["score"],
                            strict=True)]
            highlights[f"label issues: {column}"] = pd.DataFrame(
                {"index": flagged["index"].to_numpy(), "note": notes})
        if outliers is not None and len(outliers):
            highlights["outliers"] = pd.DataFrame(
                {"index": outliers["index"].to_numpy(),
                 "note": [f"outlier score {v:.2f}" for v in outliers["score"]]})
        identity = map_identity(xy, ids, z=z, method=method)
        if n and identity["map"]["n_points"] != n:
            raise DataError(f"got {n} ids for {identity['map']['n_points']} map points")
        return cls(xy, ids, metadata, layers=layers, highlights=highlights, images=images,
                   identity=identity, source=source, **options)

    @property
    def n_points(self) -> int:
        """Points on the map."""
        return len(self.xy)

    def payload(self) -> dict:
        """Everything the script needs, JSON-ready (arrays as base64 little-endian);
        computed once (the thumbnails are the slow part)."""
        if getattr(self, "_payload", None) is None:
            self._payload = self._make_payload()
        return self._payload

    def _make_payload(self) -> dict:
        from ..audit._delineation import map_identity
        from ._sprites import sprite_sheets

        n = self.n_points
        columns = []
        metadata = self.metadata if self.metadata is not None else pd.DataFrame(index=range(n))
        for name in metadata.columns:
            if metadata[name].astype(object).map(str).tolist() == self.ids.tolist():
                continue  # the id column: the card shows the id already
            columns.append(_column(name, metadata[name], "metadata"))
        for name, values in dict(self.layers or {}).items():
            column = _column(name, pd.Series(list(values)), "audit")
            # a finding's colouring repeats a metadata column: not a line of the card
            column["card"] = not str(name).startswith("finding ")
            columns.append(column)
        colourable = [c["name"] for c in columns if c["colour"]]
        if self.colour_by is not None and self.colour_by not in colourable:
            from ..utils import check_option

            check_option("colour_by (a column or layer)", self.colour_by, colourable)
        default = self.colour_by or next(
            (c["name"] for c in columns if c["kind"] == "category"), None)
        highlights = []
        for k, (name, value) in enumerate(dict(self.highlights or {}).items()):
            rows, notes = _as_rows(value, n, name)
            highlights.append({"name": str(name), "rows": _b64(rows, "<u4"), "notes": notes,
                               "colour": _HIGHLIGHT_COLOURS[k % len(_HIGHLIGHT_COLOURS)]})
        payload = {
            "kind": "map", "title": self.title, "n": n,
            "x": _b64(self.xy[:, 0], "<f4"), "y": _b64(self.xy[:, 1], "<f4"),
            "ids": self.ids.tolist(), "columns": columns, "colour_by": default,
            "highlights": highlights, "lut": _viridis_lut(),
            "identity": self.identity or map_identity(self.xy, self.ids),
            "source": dict(self.source or {}),
        }
        if self.images is not None:
            payload["thumbs"] = sprite_sheets(self.images, n, size=self.thumbnail_size)
        if self.synthetic is not None and len(self.synthetic):
            payload["synthetic"] = self._synthetic_payload(n)
        return payload

    def _synthetic_payload(self, n: int) -> dict:
        table = self.synthetic
        missing = [c for c in ("parent_a", "parent_b", "weight") if c not in table.columns]
        if missing:
            raise DataError(f"synthetic lacks the provenance columns {missing} (expected "
                            f"Interpolator.provenance_)")
        a = table["parent_a"].to_numpy(dtype=np.int64)
        b = table["parent_b"].to_numpy(dtype=np.int64)
        weight = table["weight"].to_numpy(dtype=np.float64)
        if a.size and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= n):
            raise DataError(f"synthetic parents must be rows of the map, in [0, {n})")
        return {"a": _b64(a, "<u4"), "b": _b64(b, "<u4"), "weight": _b64(weight, "<f4"),
                "n": int(len(a))}

    def to_html(self, element_id: str) -> str:
        """The view's HTML: a placeholder, a note for browsers without JavaScript and the
        data (the script of :func:`views_assets` draws it)."""
        return _view_html(element_id, "map", self.title, self.caption, self.payload(),
                          "The interactive map needs JavaScript; the static maps of this "
                          "section show the same points.")


@dataclasses.dataclass(eq=False)
class CurveView:
    """Lines with values on hover, e.g. sensitivity curves and their detection limits.

    Parameters
    ----------
    series : sequence of dict
        One line each: ``name``, ``x``, ``y`` and optionally ``lower``/``upper`` (a band)
        and ``notes`` (one text per point, shown on hover).
    x_label, y_label : str
        Axis titles.
    markers : mapping of str to float, optional
        Vertical lines at these x positions, labelled (e.g. detection limits).
    title : str
        Heading above the chart.
    caption : str
        A sentence under it.
    y_range : tuple of float, optional
        The y axis's range; default the data's.

    Examples
    --------
    >>> view = CurveView([{"name": "known", "x": [0, 0.5, 1], "y": [0.1, 0.6, 0.9]}],
    ...                  "strength", "detection rate")
    >>> view.payload()["series"][0]["name"]
    'known'
    """

    series: Sequence
    x_label: str = "x"
    y_label: str = "y"
    markers: Mapping | None = None
    title: str = "Curves"
    caption: str = ""
    y_range: tuple | None = None

    def payload(self) -> dict:
        """Everything the script needs, JSON-ready."""
        from ..report._report import jsonable
        from ._plots import OKABE_ITO

        lines = []
        for k, line in enumerate(self.series):
            if not isinstance(line, Mapping) or "x" not in line or "y" not in line:
                raise InputTypeError("every series must be a mapping with 'x' and 'y'")
            x = np.asarray(line["x"], dtype=np.float64)
            y = np.asarray(line["y"], dtype=np.float64)
            if x.shape != y.shape or x.ndim != 1:
                raise InputShapeError(f"series {k}: x and y must be 1-D of one length, got "
                                      f"{x.shape} and {y.shape}")
            record = {"name": str(line.get("name", f"series {k + 1}")), "x": x, "y": y,
                      "colour": line.get("colour", OKABE_ITO[k % len(OKABE_ITO)])}
            for key in ("lower", "upper"):
                if line.get(key) is not None:
                    record[key] = np.asarray(line[key], dtype=np.float64)
            if line.get("notes") is not None:
                record["notes"] = [str(v) for v in line["notes"]]
            lines.append(record)
        return jsonable({"kind": "curves", "title": self.title, "x_label": self.x_label,
                         "y_label": self.y_label, "series": lines,
                         "markers": dict(self.markers or {}),
                         "y_range": list(self.y_range) if self.y_range else None})

    def to_html(self, element_id: str) -> str:
        """The view's HTML (see :meth:`MapView.to_html`)."""
        return _view_html(element_id, "curves", self.title, self.caption, self.payload(),
                          "This chart needs JavaScript; its numbers are in report.json.")


def _view_html(element_id: str, kind: str, title: str, caption: str, payload: dict,
               fallback: str) -> str:
    ident = html.escape(element_id, quote=True)
    heading = f"<h3>{html.escape(title)}</h3>" if title else ""
    note = f"<p class=\"more\">{html.escape(caption)}</p>" if caption else ""
    return (f"{heading}{note}<div class=\"la-view\" id=\"{ident}\" data-la-view=\"{kind}\">"
            f"<noscript><p class=\"note\">{html.escape(fallback)}</p></noscript>"
            f"<script type=\"application/json\" class=\"la-data\">{_json_for_html(payload)}"
            f"</script></div>")


def views_assets() -> str:
    """The style and script that draw every view of a page, to embed once (at the end of
    the body).

    Returns
    -------
    str
        A ``<style>`` and a ``<script>`` element.

    Examples
    --------
    >>> "<script>" in views_assets()
    True
    """
    folder = resources.files("latentaudit.report") / "_assets"
    css = (folder / "views.css").read_text(encoding="utf-8")
    script = (folder / "views.js").read_text(encoding="utf-8")
    return f"<style>{css}</style>\n<script>{script}</script>"
