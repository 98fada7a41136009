"""The audit report's interactive map section: the audit's fitted objects as a
:class:`~latentaudit.report.MapView`.

It is built after the other sections (it shows their results: the clusters, the top
findings, the label issues, the outliers and, with an Interpolator, the synthetic subjects)
and placed right after the static map.  Groups drawn on it are exported as a delineation
file for ``latentaudit explain --delineation`` or ``latentaudit audit --delineation``.
"""

from __future__ import annotations

import pandas as pd

from ._build import AuditContext, Unavailable, map_coordinates
from ._report import ReportSection
from ._views import MapView

__all__ = ["interactive_map"]


def _synthetic_rows(interpolator, ids) -> pd.DataFrame | None:
    """The Interpolator's synthetic rows with their parents as positions on the map (its
    parents are matched by id; rows whose parents are not on the map are left out)."""
    provenance = getattr(interpolator, "provenance_", None)
    if provenance is None or not len(provenance):
        return None
    column = interpolator.id_column_
    position = {str(i): k for k, i in enumerate(ids)}
    a = provenance[f"{column}_a"].astype(str).map(position)
    b = provenance[f"{column}_b"].astype(str).map(position)
    keep = (a.notna() & b.notna()).to_numpy()
    if not keep.any():
        return None
    return pd.DataFrame({"parent_a": a[keep].astype(int).to_numpy(),
                         "parent_b": b[keep].astype(int).to_numpy(),
                         "weight": provenance["weight"].to_numpy()[keep]})


def interactive_map(section: ReportSection, ctx: AuditContext) -> None:
    """Every subject of the map, to hover, colour, ring and draw groups on."""
    xy = map_coordinates(ctx)
    if xy is None:
        raise Unavailable("there is no map of these rows (a fitted Projector); see the "
                          "static map's section")
    auditor = ctx.auditor
    issues = ctx.sections.get("label_issues")
    label_issues = ({column: value["flagged"] for column, value in issues.data.items()}
                    if issues is not None and issues.ok and issues.data else None)
    n_outliers = max(10, min(200, len(xy) // 100))
    synthetic = (_synthetic_rows(ctx.interpolator, ctx.ids)
                 if ctx.interpolator is not None else None)
    view = MapView.from_audit(
        xy, ctx.ids, ctx.metadata, labels=ctx.labels,
        findings=None if auditor is None else auditor.findings_,
        alpha=0.05 if auditor is None else float(auditor.alpha),
        top_findings=int(ctx.options["report"]["top_findings"]), label_issues=label_issues,
        outliers=None if auditor is None else auditor.outliers(top=n_outliers),
        images=ctx.row_images, z=None if ctx.embeddings is None else ctx.embeddings.z,
        method=ctx.projector.method, synthetic=synthetic, title="",
        source={"report": ctx.options["report"]["title"]})
    view.payload()  # the thumbnails are made here, inside the section's timed step
    section.views.append(view)
    rings = "the label issues and outliers" + (" and the synthetic subjects"
                                               if synthetic is not None else "")
    section.paragraphs.append(
        f"Every subject is a point of the map below. Hover a point to see its scan, id and "
        f"metadata; click to pin it; wheel to zoom, drag to pan; colour by any column, the "
        f"{ctx.noun}s or a finding; show {rings}. Draw groups with the lasso or polygon and "
        f"export them as a delineation file, then test and explain them: latentaudit "
        f"explain --delineation FILE (or latentaudit audit --delineation FILE).")
    if ctx.row_images is None:
        section.note = f"No images: {ctx.image_note or 'none were given'}; hovering shows "\
                       f"no scan."
    section.data = {"n_points": int(len(xy)), "identity": view.payload()["identity"],
                    "thumbnail_size": (view.payload()["thumbs"]["size"]
                                       if "thumbs" in view.payload() else None),
                    "n_synthetic": 0 if synthetic is None else int(len(synthetic))}
