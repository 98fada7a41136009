"""The whole audit in one call (:func:`run_audit`) and the explanation of a delineation
made elsewhere (:func:`run_explain`): thin orchestration that fits the estimators and hands
them to :meth:`AuditReport.from_fitted <latentaudit.report.AuditReport.from_fitted>`."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .._validation import check_embedding
from ..data._rows import RowImages
from ..errors import ConfigError, DataError, InputShapeError, InputTypeError
from ..report._build import (
    DELINEATION_SECTIONS,
    check_column_names,
    clusters_of_interest,
    failure_text,
)
from ..report._report import AuditReport
from ._options import auditor_params, check_audit_options, check_metadata

__all__ = ["run_audit", "run_explain"]

logger = logging.getLogger(__name__)


def _row_images(images, ids) -> tuple[RowImages | None, str]:
    """Match images to embedding rows: one per row, the middle slice of a subject's slices."""
    if images is None:
        return None, "no images were given"
    rows = RowImages.match(images, ids)
    if rows.spatial_dims is None:
        raise InputShapeError(f"images must be (N, C, H, W) or (N, C, D, H, W), got images of "
                              f"shape {rows.image_shape}")
    several = getattr(images, "ids", None) is not None and len(images) > len(ids)
    return rows, "one image per subject is shown: the middle of its slices" if several else ""


class _Fits:
    """Fits one estimator after the other; a failure is kept for its section's note."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.failed: dict[str, str] = {}
        self.seconds: dict[str, float] = {}

    def run(self, section: str, fit):
        started = time.perf_counter()
        try:
            return fit()
        except Exception as error:  # the section says so; the audit goes on
            if self.strict or isinstance(error, ConfigError):  # options are the user's to fix
                raise
            self.failed[section] = f"This step failed: {failure_text(error)}"
            logger.warning("%s failed: %s", section, failure_text(error))
            return None
        finally:
            self.seconds[section] = round(time.perf_counter() - started, 3)

    def mark(self, report: AuditReport) -> None:
        for key, seconds in self.seconds.items():
            if key in [s.key for s in report.sections]:
                section = report.section(key)
                section.seconds = round((section.seconds or 0.0) + seconds, 3)
        for key, note in self.failed.items():
            report.section(key).mark("failed", note)
        if "findings" in self.failed:
            reason = (f"This section is unavailable because the clustering and tests failed "
                      f"({self.failed['findings']}).")
            for key in ("clusters", "subgroups", "probes", "label_issues", "gradcam",
                        "counterfactuals"):
                report.section(key).mark("unavailable", reason)


def run_audit(embeddings, *, images=None, encoder=None, labels=None,
              options: Mapping | None = None, random_state=None,
              provenance: Mapping | None = None, verbose: bool = False,
              strict: bool = False) -> AuditReport:
    """Audit embeddings: map, clusters, findings, probes, label issues and explanations.

    Parameters
    ----------
    embeddings : Embeddings or tuple of (array-like, pandas.DataFrame)
        The embeddings with their metadata (one row per subject), e.g. from
        :func:`latentaudit.embed` or :meth:`latentaudit.Embeddings.load`.
    images : array-like or dataset, optional
        The images the embeddings were made from: an array with one image per row, or a
        latentaudit dataset (its ids are matched to the rows; of a subject's slices the
        middle one is shown).  Default: the embeddings' own (:func:`latentaudit.embed`
        keeps them).  Without images the sections that show images (thumbnails, cluster
        images, Grad-CAM, counterfactuals) say they are unavailable.
    encoder : GenerativeEncoder, optional
        The encoder that made the embeddings; it decodes the counterfactual strips.
    labels : array-like of int, optional
        Groups to test instead of clustering, one per row (``-1``: in none), e.g. drawn on
        a report's map (:meth:`latentaudit.audit.Delineation.labels`).
    options : mapping, optional
        Options by section, merged into :data:`AUDIT_DEFAULTS`:

        - ``projection``: ``method`` ("tsne", "pca", "umap"), ``perplexity``,
          ``max_iter`` (see :class:`latentaudit.Projector`).
        - ``audit``: ``clusterer``, ``n_clusters``, ``min_cluster_size``, ``columns``,
          ``expected``, ``nuisance``, ``within``, ``n_permutations``, ``alpha`` (see
          :class:`latentaudit.audit.ClusterAuditor`).
        - ``probes``: ``columns`` (default every tested column), ``model``,
          ``n_permutations``.
        - ``label_issues``: ``columns`` (default the categorical ``expected`` columns,
          or every categorical column when none is expected) and ``show`` (rows listed
          per column).
        - ``explain``: ``enabled``, ``clusters`` (most explained), ``images`` (per
          cluster), ``classifier_steps``, ``batch_size``, ``widths``, ``cam``,
          ``counterfactual_images``, ``counterfactual_points``, ``decoder_steps``.
        - ``report``: ``title``, ``thumbnails`` (on the map), ``top_findings``.
    random_state : int, RandomState or None, default None
        Seed of every random choice (an int makes the report reproducible).
    provenance : mapping, optional
        What to record about the data and the encoder (merged into the report's
        provenance with the versions, seeds, options and timings).
    verbose : bool, default False
        Show the layers' progress bars.
    strict : bool, default False
        Raise a step's error instead of reporting the section as failed.

    Returns
    -------
    AuditReport
        Sections ``overview``, ``findings``, ``projection``, ``map`` (interactive),
        ``clusters``, ``probes``, ``label_issues``, ``gradcam``, ``counterfactuals`` and
        ``provenance``; write it
        with :meth:`~latentaudit.report.AuditReport.save`.  A step that fails marks its
        section as failed.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.DataError` or ``ConfigError``) for embeddings that
        carry no information (constant, NaN, fewer than 5 rows), a metadata column that
        mixes numbers and text or is named like the audit's own columns, images that do
        not match the rows, or unknown options.

    Notes
    -----
    The audit is thin orchestration: it fits a :class:`~latentaudit.Projector`, a
    :class:`~latentaudit.ClusterAuditor` and (with images, when there are unexpected
    clusters) an :class:`~latentaudit.Explainer`, then makes the report with
    :meth:`AuditReport.from_fitted <latentaudit.report.AuditReport.from_fitted>`, which is
    what to call on objects fitted in a notebook.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from latentaudit.pipeline import run_audit
    >>> rng = np.random.default_rng(0)
    >>> site = np.repeat(["A", "B"], 60)
    >>> z = rng.normal(size=(120, 8)) + 5.0 * (site == "B")[:, None]
    >>> report = run_audit((z, pd.DataFrame({"site": site})),
    ...                    options={"projection": {"method": "pca"}})
    >>> report.section("findings").ok
    True
    """
    from ..audit import ClusterAuditor
    from ..embeddings import Embeddings
    from ..explain import Explainer
    from ..projection import Projector

    started = time.perf_counter()
    if isinstance(embeddings, tuple):
        z, table = embeddings
        embeddings = Embeddings(np.asarray(z, dtype=np.float32), metadata=pd.DataFrame(table))
    if not isinstance(embeddings, Embeddings):
        raise InputTypeError(f"embeddings must be an Embeddings object or a (z, metadata) "
                             f"tuple, got {type(embeddings).__name__}")
    metadata = embeddings.metadata
    opts = check_audit_options(options, metadata)
    id_column = embeddings.id_column if embeddings.id_column in metadata.columns else None
    check_metadata(metadata, id_column=id_column)
    check_column_names(metadata, embeddings.id_column)
    # an uninformative embedding stops the audit here, before anything is fitted
    check_embedding(embeddings.z, name="the embeddings", owner="the audit", min_rows=5)
    if images is not None:  # a copy that carries the images: the caller's object is unchanged
        embeddings = Embeddings(embeddings.z, ids=embeddings.ids, metadata=metadata,
                                slice_index=embeddings.slice_index,
                                provenance=embeddings.provenance,
                                id_column=embeddings.id_column, images=_row_images(
                                    images, embeddings.ids)[0])
    fits = _Fits(strict)
    projection, audit, explain = opts["projection"], opts["audit"], opts["explain"]
    projector = fits.run("projection", lambda: Projector(
        method=projection["method"], perplexity=projection["perplexity"],
        max_iter=projection["max_iter"], random_state=random_state).fit(embeddings))
    auditor = fits.run("findings", lambda: ClusterAuditor(
        **auditor_params(audit), random_state=random_state,
        verbose=verbose).fit(embeddings, labels=labels))
    explainer = None
    if auditor is not None and explain["enabled"] and embeddings.row_images is not None:
        chosen, _ = clusters_of_interest(auditor, metadata, int(explain["clusters"]))
        if chosen:
            explainer = fits.run("gradcam", lambda: Explainer(
                spatial_dims=embeddings.row_images.spatial_dims,
                widths=tuple(explain["widths"]), cam=explain["cam"],
                max_steps=int(explain["classifier_steps"]),
                batch_size=int(explain["batch_size"]), random_state=random_state,
                verbose=verbose).fit(embeddings, auditor.labels_))
    report = AuditReport.from_fitted(
        embeddings, auditor, projector=projector, explainer=explainer,
        encoder=encoder if explain["enabled"] else None, options=opts,
        random_state=random_state, provenance=provenance, verbose=verbose, strict=strict)
    fits.mark(report)
    if not explain["enabled"]:
        for key in ("gradcam", "counterfactuals"):
            report.section(key).mark("unavailable", "explanations were turned off "
                                                    "(explain.enabled = false)")
    record = report.provenance
    record["timings_seconds"]["fits"] = fits.seconds
    record["timings_seconds"]["audit_total"] = round(time.perf_counter() - started, 3)
    n_clusters = auditor.n_clusters_ if auditor is not None else 0
    encoder_name = embeddings.provenance.get("encoder") or "an encoder"
    if isinstance(record.get("encoder"), Mapping) and record["encoder"].get("name"):
        encoder_name = record["encoder"]["name"]
    record.setdefault("summary", f"{len(embeddings):,} subjects · {embeddings.latent_dim}-"
                                 f"dimensional embeddings from {encoder_name} · "
                                 f"{n_clusters} clusters")
    return report


def run_explain(images, labels, *, ids=None, encoder=None, embeddings=None,
                reference=None, options: Mapping | None = None, random_state=None,
                provenance: Mapping | None = None, verbose: bool = False,
                strict: bool = False) -> AuditReport:
    """Explain a delineation: mean and difference images, a classifier's Grad-CAM maps
    and decoded counterfactuals for every delineated group.

    Parameters
    ----------
    images : array-like or dataset
        One image per label, or a latentaudit dataset matched to ``ids`` (the middle slice
        of each subject).
    labels : array-like of int
        The delineation: one group label per subject, ``-1`` for subjects in none (e.g.
        ``ClusterAuditor.labels_`` or :func:`latentaudit.audit.delineate`).
    ids : sequence of str, optional
        The subject of every label (needed when ``images`` is a dataset of slices).
    encoder : GenerativeEncoder, optional
        For the counterfactual strips.
    embeddings : Embeddings, optional
        The subjects' embeddings (rows in the order of ``labels``); in ``encoder``'s
        latent space they give the moves, otherwise the classifier's images are embedded.
    reference : int, optional
        The group the others are compared with and moved from; default the largest.
    options : mapping, optional
        As for :func:`run_audit` (the ``explain`` and ``report`` sections are used).
    random_state : int, RandomState or None, default None
        Seed of every random choice.
    provenance : mapping, optional
        What to record about the data.
    verbose : bool, default False
        Show progress bars.
    strict : bool, default False
        Raise a step's error instead of reporting the section as failed.

    Returns
    -------
    AuditReport
        Sections ``clusters``, ``gradcam``, ``counterfactuals`` and ``provenance``.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.DataError`) for fewer than two groups or images
        that do not match the labels.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.pipeline import run_explain
    >>> images = np.random.default_rng(0).normal(size=(40, 1, 16, 16)).astype("float32")
    >>> labels = np.repeat([0, 1], 20)
    >>> report = run_explain(images, labels, options={"explain": {
    ...     "classifier_steps": 5, "widths": [4, 8, 8, 8]}})  # doctest: +SKIP
    """
    from ..embeddings import Embeddings
    from ..explain import Explainer

    started = time.perf_counter()
    opts = check_audit_options(options)
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"labels must be one integer group label per subject, got an array "
                        f"of dtype {labels.dtype} and shape {labels.shape}")
    ids = [str(i) for i in (range(len(labels)) if ids is None else ids)]
    if len(ids) != len(labels):
        raise DataError(f"got {len(ids)} ids for {len(labels)} labels")
    groups = [int(g) for g in np.unique(labels) if g != -1]
    if len(groups) < 2:
        raise DataError(f"a delineation needs at least two groups to compare; got "
                        f"{groups} (label -1 marks subjects in none)")
    row_images, _ = _row_images(images, ids)
    if embeddings is not None:
        if len(embeddings) != len(labels):
            raise DataError(f"got {len(embeddings)} embedding rows for {len(labels)} labels")
        embeddings = Embeddings(embeddings.z, ids=ids, provenance=embeddings.provenance,
                                images=row_images)
    explain = opts["explain"]
    fits = _Fits(strict)
    explainer = None
    if explain["enabled"]:
        explainer = fits.run("gradcam", lambda: Explainer(
            spatial_dims=row_images.spatial_dims, widths=tuple(explain["widths"]),
            cam=explain["cam"], max_steps=int(explain["classifier_steps"]),
            batch_size=int(explain["batch_size"]), random_state=random_state,
            verbose=verbose).fit(embeddings if embeddings is not None else row_images,
                                 labels))
    report = AuditReport.from_fitted(
        embeddings, None, explainer=explainer, encoder=encoder if explain["enabled"] else None,
        labels=labels, images=row_images, options=opts, sections=DELINEATION_SECTIONS,
        reference=reference, random_state=random_state, provenance=provenance,
        verbose=verbose, strict=strict)
    fits.mark(report)
    if not explain["enabled"]:
        for key in ("gradcam", "counterfactuals"):
            report.section(key).mark("unavailable", "explanations were turned off "
                                                    "(explain.enabled = false)")
    sizes = {g: int(np.sum(labels == g)) for g in groups}
    chosen = [int(k) for k in report.section("clusters").data] if report.section(
        "clusters").ok else []
    record = report.provenance
    record["options"] = {k: opts[k] for k in ("explain", "report")}
    record["timings_seconds"]["fits"] = fits.seconds
    record["timings_seconds"]["explain_total"] = round(time.perf_counter() - started, 3)
    reference = int(reference) if reference is not None else max(
        groups, key=lambda g: (sizes[g], -g))
    record.setdefault("summary", f"{len(labels):,} subjects in {len(groups)} groups; "
                                 f"reference group {reference}")
    record["delineation"] = {"groups": sizes, "reference": reference, "explained": chosen}
    return report
