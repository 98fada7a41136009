"""Render an :class:`~latentaudit.report.AuditReport` as one self-contained HTML page.

Everything the page needs is inside it: the CSS in a ``<style>`` element, every image as
a base64 PNG ``data:`` URI and, when a section has interactive views, their data and the one
script that draws them.  It loads nothing from anywhere, so it can be mailed, archived or
opened offline; without JavaScript the static figures remain.
"""

from __future__ import annotations

import base64
import html
import math
import numbers

import numpy as np
import pandas as pd

from ._report import AuditReport, ReportFigure, ReportSection, ReportTable, check_report

__all__ = ["render_html"]

_CSS = """
:root { --ink: #1d2430; --muted: #5b6475; --line: #dfe3ea; --paper: #ffffff;
        --wash: #f5f7fa; --accent: #0b6e99; --ok: #1b7f4b; --warn: #a15c00; --bad: #b3261e; }
* { box-sizing: border-box; }
html { background: var(--wash); }
body { margin: 0; font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       "Noto Sans", "Liberation Sans", sans-serif; color: var(--ink); }
header.top { background: #12324a; color: #fff; padding: 28px 0 22px; }
header.top .wrap, main.wrap, footer.wrap { max-width: 1180px; margin: 0 auto; padding: 0 28px; }
header.top h1 { margin: 0 0 6px; font-size: 28px; font-weight: 650; letter-spacing: .2px; }
header.top p { margin: 0; color: #c9d8e6; }
nav.toc { margin: 18px 0 0; display: flex; flex-wrap: wrap; gap: 8px; }
nav.toc a { color: #fff; text-decoration: none; font-size: 13px; padding: 3px 10px;
            border: 1px solid rgba(255,255,255,.35); border-radius: 14px; }
nav.toc a:hover { background: rgba(255,255,255,.12); }
nav.toc a.unavailable, nav.toc a.failed { opacity: .6; text-decoration: line-through; }
section.card { background: var(--paper); border: 1px solid var(--line); border-radius: 10px;
               margin: 22px 0; padding: 20px 26px 22px; box-shadow: 0 1px 2px rgba(0,0,0,.03); }
section.card h2 { margin: 0 0 12px; font-size: 20px; display: flex; align-items: center;
                  gap: 10px; }
section.card h3 { margin: 20px 0 8px; font-size: 15px; color: var(--ink); }
.badge { font-size: 11px; font-weight: 600; text-transform: uppercase; letter-spacing: .6px;
         padding: 2px 8px; border-radius: 10px; background: #e7f4ec; color: var(--ok); }
.badge.unavailable { background: #fff3e0; color: var(--warn); }
.badge.failed { background: #fdecea; color: var(--bad); }
.timing { margin-left: auto; font-size: 12px; font-weight: 400; color: var(--muted); }
.note { border-left: 4px solid var(--warn); background: #fff8ec; padding: 10px 14px;
        border-radius: 4px; margin: 6px 0 10px; }
.note.failed { border-color: var(--bad); background: #fdf1f0; }
.note.ok { border-color: var(--accent); background: #eef6fa; }
ol.findings { margin: 6px 0 4px 0; padding-left: 22px; }
ol.findings li { margin: 4px 0; }
p { margin: 8px 0; }
figure { margin: 14px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px;
             background: #fff; display: block; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; }
.tablewrap { overflow-x: auto; margin: 8px 0 14px; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th, td { padding: 5px 9px; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: middle; }
th { background: var(--wash); font-weight: 600; position: sticky; top: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.thumb { padding: 2px 6px; width: 1%; }
td.thumb img { width: 44px; height: 44px; image-rendering: pixelated; border-radius: 3px;
               display: block; }
tr:hover td { background: #fafbfd; }
.more { color: var(--muted); font-size: 12px; }
dl.prov { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px;
          font-size: 13px; margin: 8px 0; }
dl.prov dt { color: var(--muted); }
dl.prov dd { margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas,
             monospace; word-break: break-all; }
details { margin: 14px 0 0; }
details summary { cursor: pointer; color: var(--accent); font-weight: 600; font-size: 14px; }
footer.wrap { color: var(--muted); font-size: 12px; padding-bottom: 30px; }
"""


def _png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _format_value(value, column: str) -> tuple[str, bool]:
    """The text of a table cell and whether it is a number (right-aligned)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "", False
    if isinstance(value, (bool, np.bool_)):
        return ("yes" if value else "no"), False
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}" if abs(int(value)) >= 10_000 else str(int(value)), True
    if isinstance(value, numbers.Real):
        value = float(value)
        if not math.isfinite(value):
            return str(value), True
        name = column.lower()
        if name.startswith(("p_", "q_")) or name in ("p", "q", "p_value", "q_value"):
            if value == 0:
                return "< 1e-300", True  # below what a double holds
            return (f"{value:.1e}" if value < 1e-3 else f"{value:.3f}"), True
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.2e}", True
        if abs(value) >= 100:
            return f"{value:.1f}", True
        return f"{value:.3g}", True
    return str(value), False


def _table_html(table: ReportTable) -> str:
    frame = table.frame
    parts = [f"<h3>{html.escape(table.title)}</h3>"] if table.title else []
    if table.caption:
        parts.append(f"<p class=\"more\">{html.escape(table.caption)}</p>")
    if frame is None or not len(frame):
        parts.append("<p class=\"more\">(no rows)</p>")
        return "\n".join(parts)
    shown = frame.head(table.max_rows)
    columns = [str(c) for c in shown.columns]
    numeric = [pd.api.types.is_numeric_dtype(shown[c]) and not pd.api.types.is_bool_dtype(
        shown[c]) for c in shown.columns]
    head = []
    if table.images is not None:
        head.append("<th>image</th>")
    for column, is_number in zip(columns, numeric, strict=True):
        klass = " class=\"num\"" if is_number else ""
        head.append(f"<th{klass}>{html.escape(column.replace('_', ' '))}</th>")
    rows = []
    for k, row in enumerate(shown.itertuples(index=False, name=None)):
        cells = []
        if table.images is not None:
            png = table.images[k] if k < len(table.images) else None
            if png:
                cells.append(f"<td class=\"thumb\"><img src=\"{_png_uri(png)}\" "
                             f"alt=\"row {k + 1}\"></td>")
            else:
                cells.append("<td class=\"thumb\"></td>")
        for column, value in zip(columns, row, strict=True):
            text, is_number = _format_value(value, column)
            klass = " class=\"num\"" if is_number else ""
            cells.append(f"<td{klass}>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("<div class=\"tablewrap\"><table><thead><tr>" + "".join(head)
                 + "</tr></thead><tbody>" + "\n".join(rows) + "</tbody></table></div>")
    if len(frame) > len(shown):
        parts.append(f"<p class=\"more\">Showing {len(shown)} of {len(frame)} rows; all are "
                     f"in report.json.</p>")
    return "\n".join(parts)


def _figure_html(figure: ReportFigure) -> str:
    caption = ""
    if figure.title or figure.caption:
        title = f"<strong>{html.escape(figure.title)}.</strong> " if figure.title else ""
        caption = f"<figcaption>{title}{html.escape(figure.caption)}</figcaption>"
    alt = html.escape(figure.title or figure.caption or "figure", quote=True)
    return f"<figure><img src=\"{_png_uri(figure.png)}\" alt=\"{alt}\">{caption}</figure>"


_PROVENANCE_GROUPS = (("Run", ("command", "summary", "seed", "delineation")),
                      ("Data", ("data",)), ("Encoder", ("encoder",)),
                      ("Embeddings", ("embeddings",)),
                      ("Timings (seconds)", ("timings_seconds",)),
                      ("Versions", ("versions",)))


def _definition_list(pairs) -> str:
    rows = [f"<dt>{html.escape(key)}</dt><dd>{html.escape(value)}</dd>" for key, value in pairs]
    return "<dl class=\"prov\">" + "".join(rows) + "</dl>"


def _provenance_html(provenance: dict) -> str:
    parts, used = [], set()
    for title, keys in _PROVENANCE_GROUPS:
        pairs = []
        for key in keys:
            if key not in provenance:
                continue
            used.add(key)
            value = provenance[key]
            prefix = "" if isinstance(value, dict) else key
            pairs += list(_flatten(value, prefix))
        if pairs:
            parts.append(f"<h3>{html.escape(title)}</h3>" + _definition_list(pairs))
    rest = {k: v for k, v in provenance.items() if k not in used and k != "options"}
    if rest:
        parts.append("<h3>Other</h3>" + _definition_list(_flatten(rest)))
    if "options" in provenance:
        parts.append("<details><summary>Every option of this run (— : decided from the "
                     "data)</summary>" + _definition_list(
                         _flatten(provenance["options"], "", missing="—")) + "</details>")
    return "\n".join(parts)


def _flatten(value, prefix: str = "", missing: str = ""):
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            yield from _flatten(item, name, missing)
    elif isinstance(value, (list, tuple)) and any(isinstance(v, dict) for v in value):
        for k, item in enumerate(value):
            yield from _flatten(item, f"{prefix}[{k}]", missing)
    else:
        if isinstance(value, float):
            text = f"{value:.4g}"
        elif isinstance(value, (list, tuple)):
            text = ", ".join(str(v) for v in value)
        else:
            text = missing if value is None else str(value)
        yield prefix, text


def _section_html(section: ReportSection) -> str:
    status = section.status
    badge = {"ok": "done", "unavailable": "unavailable", "failed": "failed"}[status]
    timing = (f"<span class=\"timing\">{section.seconds:.1f} s</span>"
              if section.seconds is not None else "")
    parts = [f"<section class=\"card\" id=\"{html.escape(section.key, quote=True)}\">",
             f"<h2>{html.escape(section.title)} <span class=\"badge {status}\">{badge}</span>"
             f"{timing}</h2>"]
    if section.note:
        parts.append(f"<div class=\"note {status}\">{html.escape(section.note)}</div>")
    for paragraph in section.paragraphs:
        parts.append(f"<p>{html.escape(paragraph)}</p>")
    if section.items:
        parts.append("<ol class=\"findings\">" + "".join(
            f"<li>{html.escape(item)}</li>" for item in section.items) + "</ol>")
    for paragraph in section.remarks:
        parts.append(f"<p>{html.escape(paragraph)}</p>")
    for k, view in enumerate(section.views):
        parts.append(view.to_html(f"{section.key}-view-{k + 1}"))
    for figure in section.figures:
        parts.append(_figure_html(figure))
    for table in section.tables:
        parts.append(_table_html(table))
    if section.key == "provenance" and section.data:
        parts.append(_provenance_html(section.data))
    parts.append("</section>")
    return "\n".join(parts)


def render_html(report: AuditReport) -> str:
    """The report as one self-contained HTML page.

    Parameters
    ----------
    report : AuditReport
        The report.

    Returns
    -------
    str
        The page: inline CSS, images as base64 PNG, the views' script (if any view), no
        external resource.

    Raises
    ------
    TypeError
        (as :class:`latentaudit.errors.InputTypeError`) for anything but an
        :class:`~latentaudit.report.AuditReport`.

    Examples
    --------
    >>> from latentaudit.report import AuditReport
    >>> page = render_html(AuditReport("empty"))
    >>> page.startswith("<!DOCTYPE html>")
    True
    """
    report = check_report(report)
    subtitle = report.provenance.get("summary") or ""
    toc = "".join(
        f"<a class=\"{s.status}\" href=\"#{html.escape(s.key, quote=True)}\">"
        f"{html.escape(s.title)}</a>" for s in report.sections)
    body = "\n".join(_section_html(s) for s in report.sections)
    version = report.provenance.get("versions", {}).get("latentaudit", "")
    assets = ""
    if any(s.views for s in report.sections):
        from ._views import views_assets

        assets = views_assets()
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="latentaudit {html.escape(str(version), quote=True)}">
<title>{html.escape(report.title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header class="top"><div class="wrap">
<h1>{html.escape(report.title)}</h1>
<p>{html.escape(subtitle)}</p>
<nav class="toc">{toc}</nav>
</div></header>
<main class="wrap">
{body}
</main>
<footer class="wrap"><p>Written by latentaudit {html.escape(str(version))} on
{html.escape(report.created)}. Every number shown here is also in report.json beside this
file.</p></footer>
{assets}
</body>
</html>
"""
