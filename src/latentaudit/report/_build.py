"""An audit report made from fitted objects: which sections, in which order, from what.

:func:`build_report` (behind :meth:`AuditReport.from_fitted
<latentaudit.report.AuditReport.from_fitted>`) reads the public attributes of an
:class:`~latentaudit.Embeddings`, a fitted :class:`~latentaudit.ClusterAuditor` and,
optionally, a :class:`~latentaudit.Projector`, an :class:`~latentaudit.Explainer` and an
:class:`~latentaudit.Interpolator`; it fits nothing.  Each kind of section is one
:class:`SectionSpec` (a key, a title and the function that fills it) in
``latentaudit.report._sections.SECTIONS``, so a new kind is one more entry.  A section
whose inputs are missing says so (status "unavailable"); one whose step raises is marked
"failed" instead of ending the report.
"""

from __future__ import annotations

import logging
import platform
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, InputTypeError, LatentAuditError
from ..utils import check_random_state
from ._report import AuditReport, ReportSection

__all__ = ["AuditContext", "SectionSpec", "build_report"]

logger = logging.getLogger(__name__)

_NOISE = -1
#: Columns of the subjects table that the audit fills (metadata may not use these names).
AUDIT_COLUMNS = ("cluster", "map_x", "map_y", "classifier")


class Unavailable(Exception):
    """Raised inside a section whose inputs are missing; the message becomes the note."""


class Step:
    """Times one section's step; an error marks the section instead of ending the report."""

    def __init__(self, section: ReportSection, timings: dict, strict: bool) -> None:
        self.section = section
        self.timings = timings
        self.strict = strict

    def __enter__(self) -> ReportSection:
        logger.info("%s ...", self.section.title)
        self.start = time.perf_counter()
        return self.section

    def __exit__(self, kind, error, tb) -> bool:
        seconds = time.perf_counter() - self.start
        total = (self.section.seconds or 0.0) + seconds
        self.section.seconds = round(total, 3)
        self.timings[self.section.key] = round(total, 3)
        if error is None:
            return False
        if isinstance(error, Unavailable):
            self.section.mark("unavailable", str(error))
            logger.info("%s: unavailable (%s)", self.section.title, error)
            return True
        # a wrong option is the user's to fix, not a section to report as failed
        if not isinstance(error, Exception) or self.strict or isinstance(error, ConfigError):
            return False
        self.section.mark("failed", f"This step failed: {failure_text(error)}")
        logger.warning("%s failed: %s", self.section.title, failure_text(error))
        logger.debug("".join(traceback.format_exception(kind, error, tb)))
        return True


def failure_text(error: BaseException) -> str:
    """How an error reads in a section's note."""
    return str(error) if isinstance(error, LatentAuditError) else (
        f"{type(error).__name__}: {error}")


@dataclass
class AuditContext:
    """Everything a section reads: the fitted objects and what follows from them.

    Attributes
    ----------
    embeddings : Embeddings or None
        The rows (ids, metadata, images), or None when the explainer's images name them.
    auditor, projector, explainer, interpolator, encoder : fitted objects or None
        What was given.
    options : dict
        The merged options (sections ``probes``, ``label_issues``, ``explain``,
        ``report``).
    random_state : int
        Seed of the samples shown.
    labels : numpy.ndarray or None
        One cluster (or group) label per row: those given, else the auditor's, else the
        explainer's.
    ids : numpy.ndarray
        The id of every row.
    id_column : str
        Their column's name.
    metadata : pandas.DataFrame
        The metadata without the id column.
    row_images : latentaudit.data.RowImages or None
        The image of every row.
    image_note : str
        Why there are no images, or how they were chosen.
    chosen : list of int
        The clusters shown (unexpected ones, or the groups of a delineation).
    reference : dict
        For every cluster, the one it is compared with and moved from.
    noun : str
        "cluster" for an audit, "group" for a delineation.
    sections : dict
        The report's sections by key (a section may read another's results).
    record : dict
        The report's provenance record.
    sensitivity : SensitivityResult or None
        A spike-in measurement of :func:`latentaudit.sensitivity`, for its section.
    """

    embeddings: object
    auditor: object
    projector: object
    explainer: object
    interpolator: object
    encoder: object
    options: dict
    random_state: int
    verbose: bool
    labels: np.ndarray | None
    ids: np.ndarray
    id_column: str
    metadata: pd.DataFrame
    row_images: object
    image_note: str
    chosen: list = field(default_factory=list)
    reference: dict = field(default_factory=dict)
    noun: str = "cluster"
    sections: dict = field(default_factory=dict)
    record: dict = field(default_factory=dict)
    sensitivity: object = None


@dataclass(frozen=True)
class SectionSpec:
    """One kind of section: its key, its title and the function that fills it.

    ``build(section, context)`` adds paragraphs, tables, figures and data to the section,
    or raises :class:`Unavailable` with the reason it cannot.
    """

    key: str
    title: str
    build: Callable[[ReportSection, AuditContext], None]


#: Sections of an audit; "oversampling" is added when an Interpolator is given.
AUDIT_SECTIONS = ("overview", "findings", "projection", "map", "clusters", "subgroups",
                  "probes", "label_issues", "gradcam", "counterfactuals", "provenance")
#: Sections of the explanation of a delineation (no auditor).
DELINEATION_SECTIONS = ("clusters", "gradcam", "counterfactuals", "provenance")


def versions() -> dict:
    """Versions of Python, the platform and the libraries an audit uses."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("latentaudit", "numpy", "scipy", "pandas", "scikit-learn", "torch",
                 "openTSNE", "matplotlib", "grad-cam", "nibabel"):
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out


def check_column_names(metadata: pd.DataFrame, id_column: str | None) -> None:
    """Refuse metadata columns that the subjects table uses for the audit's own values."""
    clash = [c for c in AUDIT_COLUMNS if c in metadata.columns and c != id_column]
    if clash:
        raise DataError(
            f"the metadata has a column named {clash[0]!r}, which the audit's table of "
            f"subjects uses for its own {', '.join(AUDIT_COLUMNS)}; rename that column "
            f"(e.g. to 'user_{clash[0]}') so that its values are not mixed up with the "
            f"audit's")


# --------------------------------------------------------------------------------------
# which clusters are shown, and what they are compared with
# --------------------------------------------------------------------------------------
def largest_of_group(labels: np.ndarray, metadata: pd.DataFrame, within: str | None) -> dict:
    """For every cluster, the largest cluster of its group (its reference)."""
    clusters = [int(c) for c in np.unique(labels) if c != _NOISE]
    if not clusters:
        return {}
    sizes = {c: int(np.sum(labels == c)) for c in clusters}
    if within is None or within not in metadata.columns:
        largest = max(clusters, key=lambda c: (sizes[c], -c))
        return {c: largest for c in clusters}
    group = {}
    for c in clusters:
        values = metadata.loc[labels == c, within].dropna()
        group[c] = values.mode().iloc[0] if len(values) else None
    return {c: max([k for k in clusters if group[k] == group[c]],
                   key=lambda k: (sizes[k], -k)) for c in clusters}


def clusters_of_interest(auditor, metadata: pd.DataFrame, limit: int
                         ) -> tuple[list[int], dict]:
    """Clusters named by significant findings of columns that are not expected, in the
    order of the findings, leaving out each group's largest cluster (the reference).

    Parameters
    ----------
    auditor : ClusterAuditor
        Fitted.
    metadata : pandas.DataFrame
        The rows' metadata (for the ``within`` column).
    limit : int
        The most clusters returned.

    Returns
    -------
    chosen : list of int
    reference : dict
        ``{cluster: the largest cluster of its group}``.
    """
    reference = largest_of_group(auditor.labels_, metadata, auditor.within_)
    findings = auditor.findings_
    roles = findings["column"].map(auditor.column_roles_)
    rows = findings[(findings["kind"] == "cluster") & findings["cluster"].notna()
                    & (findings["q_value"] <= auditor.alpha) & (roles != "expected")]
    chosen: list[int] = []
    for cluster in rows["cluster"]:
        cluster = int(cluster)
        if cluster == _NOISE or reference.get(cluster) == cluster or cluster in chosen:
            continue
        chosen.append(cluster)
        if len(chosen) >= limit:
            break
    return chosen, reference


def _groups_of(labels: np.ndarray, reference, limit: int) -> tuple[list[int], dict]:
    groups = [int(g) for g in np.unique(labels) if g != _NOISE]
    if len(groups) < 2:
        raise DataError(f"a delineation needs at least two groups to compare; got {groups} "
                        f"(label -1 marks subjects in none)")
    sizes = {g: int(np.sum(labels == g)) for g in groups}
    if reference is None:
        reference = max(groups, key=lambda g: (sizes[g], -g))
    elif int(reference) not in groups:
        raise DataError(f"reference group {reference!r} is not among the labels {groups}")
    reference = int(reference)
    chosen = [g for g in sorted(groups, key=lambda g: (sizes[g], g)) if g != reference]
    return chosen[:limit], {g: reference for g in groups}


# --------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------
def build_report(embeddings=None, auditor=None, *, projector=None, explainer=None,
                 interpolator=None, encoder=None, labels=None, images=None, options=None,
                 sections=None, sensitivity=None,
                 reference=None, random_state=None, provenance=None,
                 verbose: bool = False, strict: bool = False) -> AuditReport:
    """See :meth:`AuditReport.from_fitted <latentaudit.report.AuditReport.from_fitted>`."""
    from ..embeddings import Embeddings
    from ..pipeline._options import check_audit_options

    started = time.perf_counter()
    opts = check_audit_options(options)
    if embeddings is not None and not isinstance(embeddings, Embeddings):
        raise InputTypeError(f"embeddings must be an Embeddings object (or None), got "
                             f"{type(embeddings).__name__}")
    if embeddings is None and explainer is None and images is None:
        raise DataError("a report needs the rows: give the Embeddings (or, to explain a "
                        "delineation, its images or a fitted Explainer)")
    seed = int(check_random_state(random_state).randint(2**31 - 1))
    context = _context(embeddings, auditor, projector, explainer, interpolator, encoder,
                       labels, images, opts, reference, seed, verbose)
    context.sensitivity = sensitivity
    if sections is None:
        sections = AUDIT_SECTIONS if context.noun == "cluster" else DELINEATION_SECTIONS
        if interpolator is not None:
            sections = (*sections[:-1], "oversampling", sections[-1])
        if sensitivity is not None:
            sections = (*sections[:-1], "sensitivity", sections[-1])
    from ._sections import SECTIONS

    specs = {spec.key: spec for spec in SECTIONS}
    for key in sections:
        if key not in specs:
            raise ConfigError(f"unknown report section {key!r}; known: {list(specs)}")
    nouns = "clusters" if context.noun == "cluster" else "groups"
    report = AuditReport(opts["report"]["title"])
    for key in sections:
        title = specs[key].title.format(nouns=nouns, Nouns=nouns.capitalize())
        context.sections[key] = report.add(ReportSection(key, title))
    timings: dict = {}
    # the interactive map and the overview sum up the others, and the provenance records
    # their timings
    last = ("map", "overview", "provenance")
    order = [k for k in sections if k not in last]
    order += [k for k in last if k in sections]
    report.provenance = context.record = _record(context, provenance, opts, timings,
                                                 random_state)
    for key in order:
        if key == "provenance":
            report.provenance["timings_seconds"]["report_total"] = round(
                time.perf_counter() - started, 3)
        with Step(context.sections[key], timings, strict):
            specs[key].build(context.sections[key], context)
    report.subjects = subjects_table(context)
    return report


def _context(embeddings, auditor, projector, explainer, interpolator, encoder, labels,
             images, opts, reference, random_state, verbose) -> AuditContext:
    from .._identity import DEFAULT_ID_COLUMN
    from ..data._rows import RowImages

    note = ""
    if embeddings is not None:
        ids, id_column = np.asarray(embeddings.ids, dtype=object), embeddings.id_column
        metadata = embeddings.metadata.reset_index(drop=True)
        metadata = metadata.drop(columns=[id_column]) if id_column in metadata else metadata
        row_images = (embeddings.row_images if images is None
                      else RowImages.match(images, ids))
        if row_images is None:
            note = "the embeddings carry no images (attach them with Embeddings.attach_images)"
    else:
        row_images = (explainer.row_images_ if images is None else
                      images if isinstance(images, RowImages) else RowImages(images))
        ids = row_images.ids
        id_column = explainer.id_column_ if explainer is not None else DEFAULT_ID_COLUMN
        metadata = pd.DataFrame(index=pd.RangeIndex(len(ids)))
    if row_images is not None and not note:
        source_ids = getattr(row_images.source, "ids", None)
        if source_ids is not None and len(pd.unique(np.asarray(source_ids))) < len(source_ids):
            note = "one image per subject is shown: the middle of its slices"
    n = len(ids)
    delineation = labels is not None or (auditor is None and explainer is not None)
    noun = "group" if delineation else "cluster"
    if auditor is not None and len(auditor.labels_) != n:
        raise DataError(f"the ClusterAuditor was fitted on {len(auditor.labels_)} rows, the "
                        f"embeddings have {n}; give the objects fitted on these rows")
    if labels is None:
        labels = auditor.labels_ if auditor is not None else (
            explainer.labels_ if explainer is not None else None)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"the cluster labels must be one integer per row ({n}), got an "
                            f"array of dtype {labels.dtype} and shape {labels.shape}")
    check_column_names(metadata, id_column)
    context = AuditContext(
        embeddings=embeddings, auditor=auditor, projector=projector, explainer=explainer,
        interpolator=interpolator, encoder=encoder, options=opts,
        random_state=int(random_state), verbose=verbose, labels=labels, ids=ids,
        id_column=id_column or DEFAULT_ID_COLUMN, metadata=metadata, row_images=row_images,
        image_note=note, noun=noun)
    limit = int(opts["explain"]["clusters"])
    if auditor is not None and not delineation:
        context.chosen, context.reference = clusters_of_interest(auditor, metadata, limit)
    elif labels is not None:
        context.chosen, context.reference = _groups_of(labels, reference, limit)
    return context


def _record(context: AuditContext, provenance, opts: dict, timings: dict,
            random_state) -> dict:
    from ._report import jsonable

    record = dict(provenance or {})
    made = {}
    for name in ("auditor", "projector", "explainer", "interpolator"):
        fitted = getattr(context, name)
        if fitted is not None:
            made[name] = {"class": type(fitted).__name__,
                          "params": jsonable(fitted.get_params(deep=False))}
    if context.encoder is not None:
        made["encoder"] = {"class": type(context.encoder).__name__}
    record.setdefault("fitted", made)
    if context.embeddings is not None:
        n, d = context.embeddings.shape
        record.setdefault("embeddings", {"n_rows": int(n), "latent_dim": int(d),
                                         "id_column": context.id_column,
                                         "made_by": context.embeddings.provenance})
    record["seed"] = (int(random_state) if isinstance(random_state, (int, np.integer))
                      else None)
    record["options"] = opts
    record["versions"] = versions()
    record["timings_seconds"] = {**record.get("timings_seconds", {})}
    record["timings_seconds"]["sections"] = timings
    return record


def subjects_table(context: AuditContext) -> pd.DataFrame:
    """One row per subject: its id (under the id column's name), its cluster (or group),
    its place on the map, whether the classifier was trained ("train") or measured ("held
    out") on it, then the metadata under the users' own column names."""
    table = pd.DataFrame({context.id_column: [str(i) for i in context.ids]})
    if context.labels is not None:
        table[context.noun] = context.labels
    xy = map_coordinates(context)
    if xy is not None:
        table["map_x"], table["map_y"] = xy[:, 0], xy[:, 1]
    explainer = context.explainer
    if explainer is not None and explainer.row_images_ is not None and len(
            explainer.row_images_) == len(table):
        # which subjects trained the classifier and which measured it
        split = np.full(len(table), "", dtype=object)
        split[explainer.train_indices_] = "train"
        split[explainer.test_indices_] = "held out"
        table["classifier"] = split
    for column in context.metadata.columns:
        table[column] = context.metadata[column].to_numpy()
    return table


def map_coordinates(context: AuditContext) -> np.ndarray | None:
    """The projector's map of the rows, when it was fitted on them."""
    projector = context.projector
    xy = getattr(projector, "embedding_", None) if projector is not None else None
    if xy is None or len(xy) != len(context.ids) or np.ndim(xy) != 2 or xy.shape[1] < 2:
        return None
    return np.asarray(xy)
