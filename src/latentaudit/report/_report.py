"""The audit report: sections of text, tables and figures, written as one self-contained
HTML file and a JSON file of every number."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputTypeError
from ..utils import check_option

__all__ = ["AuditReport", "ReportFigure", "ReportSection", "ReportTable"]

_FORMAT = "latentaudit.report"
_FORMAT_VERSION = 1
STATUSES = ("ok", "unavailable", "failed")


@dataclasses.dataclass
class ReportFigure:
    """A figure of the report, already rendered.

    Attributes
    ----------
    title : str
        Heading shown above the figure.
    png : bytes
        The PNG file, inlined into the HTML as base64.
    caption : str
        What the figure shows, in a sentence or two.
    """

    title: str
    png: bytes
    caption: str = ""


@dataclasses.dataclass
class ReportTable:
    """A table of the report.

    Attributes
    ----------
    title : str
        Heading shown above the table.
    frame : pandas.DataFrame
        The rows.  All of them go to the JSON file; the HTML shows the first
        ``max_rows``.
    caption : str
        What the table holds.
    images : list of bytes or None, optional
        One PNG thumbnail per row, shown in a first column.
    max_rows : int, default 50
        Rows shown in the HTML.
    """

    title: str
    frame: pd.DataFrame
    caption: str = ""
    images: list | None = None
    max_rows: int = 50


@dataclasses.dataclass
class ReportSection:
    """One section of the report.

    Attributes
    ----------
    key : str
        Identifier (the anchor in the HTML and the key in the JSON).
    title : str
        Heading.
    status : {"ok", "unavailable", "failed"}
        ``"unavailable"``: the section could not be made from what was given (e.g. no
        images, an encoder that cannot decode); ``"failed"``: its step raised an error.
        Either way ``note`` says why; nothing is shown in its place.
    note : str
        Why a section is unavailable or failed, or a remark on an available one.
    paragraphs : list of str
        Text (plain, escaped in the HTML).
    items : list of str
        A numbered list (e.g. the top findings), shown after the paragraphs.
    remarks : list of str
        Text shown after the list.
    tables : list of ReportTable
    figures : list of ReportFigure
    views : list
        Interactive views (:class:`~latentaudit.report.MapView`,
        :class:`~latentaudit.report.CurveView`), drawn by the page's script before the
        static figures, which remain for readers without JavaScript.
    data : dict
        Numbers of the section for the JSON file (JSON-serialisable).
    seconds : float or None
        Time the section's step took.
    """

    key: str
    title: str
    status: str = "ok"
    note: str = ""
    paragraphs: list = dataclasses.field(default_factory=list)
    items: list = dataclasses.field(default_factory=list)
    remarks: list = dataclasses.field(default_factory=list)
    tables: list = dataclasses.field(default_factory=list)
    figures: list = dataclasses.field(default_factory=list)
    views: list = dataclasses.field(default_factory=list)
    data: dict = dataclasses.field(default_factory=dict)
    seconds: float | None = None

    def __post_init__(self) -> None:
        check_option("status", self.status, STATUSES)

    @property
    def ok(self) -> bool:
        """Whether the section holds results."""
        return self.status == "ok"

    def mark(self, status: str, note: str) -> ReportSection:
        """Set the status and the note saying why; drop whatever was half made."""
        check_option("status", status, STATUSES)
        self.status = status
        self.note = note
        if status != "ok":
            self.tables, self.figures, self.items, self.views = [], [], [], []
        return self


class AuditReport:
    """The result of an audit: ordered sections, a table of subjects and provenance.

    Made from fitted objects by :meth:`from_fitted` (which
    :func:`latentaudit.pipeline.run_audit` calls after fitting them); write it with
    :meth:`save` (HTML and JSON) or read the numbers with :meth:`to_dict`.

    Parameters
    ----------
    title : str
        Title of the report.
    sections : list of ReportSection, optional
        The sections, in order.
    subjects : pandas.DataFrame, optional
        One row per embedding row: id, cluster, map coordinates, whether the
        explaining classifier trained on it, metadata.
    provenance : dict, optional
        Data, encoder, versions, seeds, options and timings (JSON-serialisable).

    Attributes
    ----------
    created : str
        When the report was made (ISO 8601, UTC).

    Examples
    --------
    >>> from latentaudit.report import AuditReport, ReportSection
    >>> report = AuditReport("demo", [ReportSection("overview", "Overview",
    ...                                             paragraphs=["Nothing yet."])])
    >>> report.section("overview").ok
    True
    >>> "<html" in report.to_html()
    True
    """

    def __init__(self, title: str, sections=None, subjects: pd.DataFrame | None = None,
                 provenance: dict | None = None) -> None:
        if not isinstance(title, str):
            raise InputTypeError(f"title must be a str, got {type(title).__name__}")
        self.title = title
        self.sections: list[ReportSection] = list(sections or [])
        self.subjects = pd.DataFrame() if subjects is None else subjects
        self.provenance = dict(provenance or {})
        self.created = datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds")

    def __repr__(self) -> str:
        parts = ", ".join(f"{s.key}: {s.status}" for s in self.sections)
        return f"AuditReport({self.title!r}, sections: {parts})"

    @classmethod
    def from_fitted(cls, embeddings, auditor=None, *, projector=None, explainer=None,
                    interpolator=None, encoder=None, labels=None, images=None,
                    options=None, sections=None, reference=None, random_state=None,
                    provenance=None, sensitivity=None,
                    verbose: bool = False, strict: bool = False) -> AuditReport:
        """Make the report of objects already fitted, e.g. in a notebook; nothing is refit.

        Everything is read through public attributes: the embeddings' ids, metadata and
        images; the auditor's findings, clusters, probes and label issues; the
        projector's map; the explainer's classifier (Grad-CAM); the interpolator's
        synthetic rows and their provenance; and, with a generative encoder, decoded
        counterfactuals and synthetic subjects.  A section whose object was not given
        says so.

        Parameters
        ----------
        embeddings : Embeddings or None
            The rows: ids, metadata and (for the image sections) images.  None only to
            explain a delineation from its ``images`` (or a fitted Explainer's).
        auditor : ClusterAuditor, optional
            Fitted on ``embeddings``; without it (or with ``labels``), the report explains
            a delineation's groups.
        projector : Projector, optional
            Fitted on ``embeddings`` (its map, ``embedding_``, has one point per row).
        explainer : Explainer, optional
            Fitted on the cluster (or group) labels.
        interpolator : Interpolator, optional
            After ``fit_resample``: adds the "oversampling" section.
        encoder : GenerativeEncoder, optional
            The encoder that made the embeddings, for decoded images.
        labels : array-like of int, optional
            A delineation (one group per row, -1 for none, e.g. from
            :func:`latentaudit.audit.delineate`) to explain instead of the auditor's
            clusters; default the auditor's :attr:`labels_`, else the explainer's.
        images : array-like, Dataset or RowImages, optional
            One image per row (matched by id to the embeddings' rows), instead of the
            embeddings' own; without embeddings, the images of a delineation's rows.
        options : mapping, optional
            Options by section (``probes``, ``label_issues``, ``explain``, ``report``;
            see :func:`latentaudit.pipeline.run_audit`).
        sections : sequence of str, optional
            The sections, by key; default every section of an audit (of a delineation
            without ``auditor``), "oversampling" when an interpolator is given,
            "sensitivity" when a sensitivity result is given.
        reference : int, optional
            For a delineation: the group the others are compared with and moved from
            (default the largest).
        random_state : int, RandomState or None, default None
            Seed of the subjects shown.
        provenance : mapping, optional
            What to record about the data and the encoder.
        sensitivity : SensitivityResult, optional
            From :func:`latentaudit.sensitivity`: adds the "sensitivity" section
            (detection limits, curves and every run).
        verbose : bool, default False
            Show progress bars.
        strict : bool, default False
            Raise a section's error instead of reporting the section as failed.

        Returns
        -------
        AuditReport

        Raises
        ------
        ValueError
            (as :class:`latentaudit.errors.DataError`) for objects fitted on other rows,
            labels that are not one integer per row, or metadata columns named like the
            audit's own (``cluster``, ``map_x``, ``map_y``, ``classifier``).

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> import latentaudit as la
        >>> rng = np.random.default_rng(0)
        >>> site = np.repeat(["A", "B"], 60)
        >>> z = (rng.normal(size=(120, 8)) + 5.0 * (site == "B")[:, None]).astype("float32")
        >>> emb = la.Embeddings(z, metadata=pd.DataFrame({"site": site}))
        >>> aud = la.ClusterAuditor(random_state=0).fit(emb)
        >>> proj = la.Projector(method="pca").fit(emb)
        >>> report = la.AuditReport.from_fitted(emb, aud, projector=proj)
        >>> report.section("findings").ok, report.section("gradcam").status
        (True, 'unavailable')
        """
        from ._build import build_report

        return build_report(embeddings, auditor, projector=projector, explainer=explainer,
                            interpolator=interpolator, encoder=encoder, labels=labels,
                            images=images, options=options,
                            sections=sections, reference=reference,
                            random_state=random_state, provenance=provenance,
                            sensitivity=sensitivity, verbose=verbose, strict=strict)

    def add(self, section: ReportSection) -> ReportSection:
        """Append a section (replacing one with the same key) and return it."""
        self.sections = [s for s in self.sections if s.key != section.key]
        self.sections.append(section)
        return section

    def section(self, key: str) -> ReportSection:
        """The section with this key.

        Raises
        ------
        ValueError
            (as :class:`latentaudit.errors.ConfigError`) for an unknown key.
        """
        keys = [s.key for s in self.sections]
        check_option("section", key, keys)
        return self.sections[keys.index(key)]

    # -- output ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Every number of the report as JSON-ready Python objects.

        Returns
        -------
        dict
            ``format``, ``version``, ``title``, ``created``, ``provenance``,
            ``sections`` (key -> ``title``, ``status``, ``note``, ``paragraphs``,
            ``items``, ``remarks``, ``data``, ``tables`` (title -> list of row records),
            ``seconds``) and ``subjects`` (row records).
        """
        sections = {}
        for s in self.sections:
            sections[s.key] = {
                "title": s.title,
                "status": s.status,
                "note": s.note,
                "paragraphs": list(s.paragraphs),
                "items": list(s.items),
                "remarks": list(s.remarks),
                "data": s.data,
                "tables": {t.title: frame_records(t.frame) for t in s.tables},
                "figures": [f.title for f in s.figures],
                "views": [v.title for v in s.views],
                "seconds": s.seconds,
            }
        return jsonable({
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "title": self.title,
            "created": self.created,
            "provenance": self.provenance,
            "sections": sections,
            "subjects": frame_records(self.subjects),
        })

    def to_json(self, path: str | os.PathLike | None = None, *, indent: int = 1) -> str:
        """The JSON document of :meth:`to_dict` (strict JSON: NaN becomes null).

        Parameters
        ----------
        path : str or os.PathLike, optional
            Also write it here.
        indent : int, default 1
            Indentation.

        Returns
        -------
        str
        """
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False, ensure_ascii=False)
        if path is not None:
            _write_text(Path(path), text)
        return text

    def to_html(self, path: str | os.PathLike | None = None) -> str:
        """The report as one self-contained HTML page (inline CSS, images as base64 PNG,
        the script of its interactive views inline, no external resource).

        Parameters
        ----------
        path : str or os.PathLike, optional
            Also write it here.

        Returns
        -------
        str
        """
        from ._html import render_html

        text = render_html(self)
        if path is not None:
            _write_text(Path(path), text)
        return text

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``report.html``, ``report.json`` and ``subjects.csv`` into a folder.

        Parameters
        ----------
        folder : str or os.PathLike
            Created if needed.

        Returns
        -------
        pathlib.Path
            The path of ``report.html``.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.to_json(folder / "report.json")
        if len(self.subjects):
            self.subjects.to_csv(folder / "subjects.csv", index=False)
        html = folder / "report.html"
        self.to_html(html)
        return html


def _write_text(path: Path, text: str) -> None:
    # written beside and renamed, so an interrupted run never leaves half a report
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def frame_records(frame: pd.DataFrame) -> list[dict]:
    """Rows of a table as JSON-ready dicts (missing values as None)."""
    if frame is None or not len(frame.columns):
        return []
    out = []
    columns = [str(c) for c in frame.columns]
    for row in frame.itertuples(index=False, name=None):
        out.append({c: jsonable(v) for c, v in zip(columns, row, strict=True)})
    return out


def jsonable(value: Any) -> Any:
    """Convert NumPy, pandas and other values to what :mod:`json` writes strictly."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, pd.DataFrame):
        return frame_records(value)
    if isinstance(value, pd.Series):
        return [jsonable(v) for v in value.tolist()]
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp, datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def check_report(report) -> AuditReport:
    """Raise unless ``report`` is an :class:`AuditReport`."""
    if not isinstance(report, AuditReport):
        raise InputTypeError(f"expected an AuditReport, got {type(report).__name__}")
    return report
