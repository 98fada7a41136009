"""The whole audit in one call (:func:`run_audit`) and the explanation of a delineation
made elsewhere (:func:`run_explain`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..data._rows import RowImages
from ..encoders._pixel_pca import _PixelPCA  # noqa: F401  (the CLI's --encoder pca)
from ..errors import DataError, InputShapeError, InputTypeError
from ..report._report import AuditReport, ReportSection
from ..report._sections import (
    _NOISE,
    _cluster_images,
    _cluster_map,
    _clusters_of_interest,
    _counterfactuals,
    _fit_auditor,
    _gradcam,
    _label_issues,
    _overview,
    _probes,
    _projection,
    _Step,
    _versions,
)
from ._options import check_audit_options, check_metadata

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


def run_audit(embeddings, *, images=None, encoder=None, options: Mapping | None = None,
              random_state: int = 0, provenance: Mapping | None = None,
              verbose: bool = False, strict: bool = False) -> AuditReport:
    """Audit embeddings: map, clusters, findings, probes, label issues and explanations.

    Parameters
    ----------
    embeddings : Embeddings or tuple of (array-like, pandas.DataFrame)
        The embeddings with their metadata (one row per subject), e.g. from
        :func:`latentaudit.embed` or :meth:`latentaudit.Embeddings.load`.
    images : array-like or dataset, optional
        The images the embeddings were made from: an array with one image per row, or a
        latentaudit dataset (its ids are matched to the rows; of a subject's slices the
        middle one is shown).  Without images the sections that show images (thumbnails,
        cluster images, Grad-CAM, counterfactuals) say they are unavailable.
    encoder : generative encoder, optional
        The encoder that made the embeddings; with ``decode`` it gives the counterfactual
        strips.
    options : mapping, optional
        Options by section, merged into :data:`AUDIT_DEFAULTS`:

        - ``projection``: ``method`` ("tsne", "pca", "umap"), ``perplexity``,
          ``max_iter`` (see :class:`latentaudit.Projector`).
        - ``audit``: ``method``, ``n_clusters``, ``min_cluster_size``, ``columns``,
          ``expected``, ``nuisance``, ``within``, ``n_permutations``, ``alpha`` (see
          :class:`latentaudit.audit.ClusterAuditor`).
        - ``probes``: ``columns`` (default every tested column), ``model``,
          ``n_permutations``.
        - ``label_issues``: ``columns`` (default the categorical ``expected`` columns,
          or every categorical column when none is expected) and ``show`` (rows listed
          per column).
        - ``explain``: ``enabled``, ``clusters`` (most explained), ``images`` (per
          cluster), ``classifier_steps``, ``batch_size``, ``widths``, ``method`` (CAM),
          ``counterfactual_images``, ``counterfactual_steps``, ``diffusion_steps``.
        - ``report``: ``title``, ``thumbnails`` (on the map), ``top_findings``.
    random_state : int, default 0
        Seed of every random choice.
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
        Sections ``overview``, ``findings``, ``projection``, ``clusters``, ``probes``,
        ``label_issues``, ``gradcam``, ``counterfactuals`` and ``provenance``; write it
        with :meth:`~latentaudit.report.AuditReport.save`.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.DataError` or ``ConfigError``) for a metadata
        column that mixes numbers and text, images that do not match the rows, or
        unknown options.

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
    from ..embeddings import Embeddings

    started = time.perf_counter()
    if isinstance(embeddings, tuple):
        z, table = embeddings
        embeddings = Embeddings(np.asarray(z, dtype=np.float32), metadata=pd.DataFrame(table))
    if not isinstance(embeddings, Embeddings):
        raise InputTypeError(f"embeddings must be an Embeddings object or a (z, metadata) "
                             f"tuple, got {type(embeddings).__name__}")
    z = np.asarray(embeddings.z, dtype=np.float32)
    metadata = embeddings.metadata.reset_index(drop=True)
    opts = check_audit_options(options, metadata)
    id_column = embeddings.id_column if embeddings.id_column in metadata.columns else None
    check_metadata(metadata, id_column=id_column)
    row_images, image_note = _row_images(images, embeddings.ids)
    if images is None and embeddings.row_images is not None:
        row_images, image_note = embeddings.row_images, ""
    analysed = metadata.drop(columns=[id_column]) if id_column else metadata.copy()

    report = AuditReport(opts["report"]["title"])
    timings: dict = {}

    def step(section):
        return _Step(section, timings, strict)

    overview = ReportSection("overview", "Overview")
    findings_sec = ReportSection("findings", "Findings, ranked")
    projection_sec = ReportSection("projection", "Map of the embeddings")
    clusters_sec = ReportSection("clusters", "Clusters: mean and difference images")
    probes_sec = ReportSection("probes", "Probes: what the embedding predicts")
    issues_sec = ReportSection("label_issues", "Label issues")
    cam_sec = ReportSection("gradcam", "Grad-CAM: where a classifier of the clusters looks")
    cf_sec = ReportSection("counterfactuals", "Counterfactuals: decoded moves between clusters")
    prov_sec = ReportSection("provenance", "Provenance")
    for section in (overview, findings_sec, projection_sec, clusters_sec, probes_sec,
                    issues_sec, cam_sec, cf_sec, prov_sec):
        report.add(section)

    # -- projection -----------------------------------------------------------------------
    xy = None
    with step(projection_sec):
        xy = _projection(projection_sec, z, analysed, row_images, opts, random_state)

    # -- clustering, tests, findings -----------------------------------------------------
    auditor, bulk = None, {}
    with step(findings_sec):
        auditor = _fit_auditor(findings_sec, embeddings, analysed, opts, random_state,
                               verbose)
    if auditor is None:
        reason = ("unavailable because the clustering and tests failed "
                  f"({findings_sec.note})")
        for section in (clusters_sec, probes_sec, issues_sec, cam_sec, cf_sec):
            section.mark("unavailable", f"This section is {reason}.")
    else:
        if xy is not None:
            with step(projection_sec):
                _cluster_map(projection_sec, xy, auditor.labels_, row_images, opts,
                             random_state)
        with step(probes_sec):
            _probes(probes_sec, auditor, opts, analysed)
        with step(issues_sec):
            _label_issues(issues_sec, auditor, analysed, row_images, opts)
        within = opts["audit"]["within"]
        chosen, bulk = _clusters_of_interest(auditor, analysed, within,
                                             int(opts["explain"]["clusters"]))
        with step(clusters_sec):
            _cluster_images(clusters_sec, auditor, row_images, image_note, chosen, bulk,
                            opts, random_state)
        explainer = None
        with step(cam_sec):
            explainer = _gradcam(cam_sec, auditor.labels_, row_images, chosen, opts,
                                 random_state, verbose)
        with step(cf_sec):
            _counterfactuals(cf_sec, encoder, embeddings, auditor.labels_, row_images,
                             chosen, bulk, explainer, opts, random_state, verbose)

    references = set(bulk.values()) if auditor is not None else set()
    _overview(overview, embeddings, analysed, auditor, issues_sec, opts, references)
    subjects = pd.DataFrame({"id": [str(i) for i in embeddings.ids]})
    if auditor is not None:
        subjects["cluster"] = auditor.labels_
    if xy is not None:
        subjects["map_x"], subjects["map_y"] = xy[:, 0], xy[:, 1]
    for column in analysed.columns:
        if column not in subjects.columns:
            subjects[column] = analysed[column].to_numpy()
    report.subjects = subjects

    total = round(time.perf_counter() - started, 3)
    record = dict(provenance or {})
    record.setdefault("embeddings", {
        "n_rows": int(z.shape[0]), "latent_dim": int(z.shape[1]),
        "made_by": embeddings.provenance})
    record["seed"] = int(random_state)
    record["options"] = opts
    record["versions"] = _versions()
    record["timings_seconds"] = {**record.get("timings_seconds", {}), **timings,
                                 "audit_total": total}
    encoder_name = embeddings.provenance.get("encoder") or "an encoder"
    if isinstance(record.get("encoder"), Mapping) and record["encoder"].get("name"):
        encoder_name = record["encoder"]["name"]
    n_clusters = auditor.n_clusters_ if auditor is not None else 0
    record.setdefault("summary", f"{len(z):,} subjects · {z.shape[1]}-dimensional embeddings "
                                 f"from {encoder_name} · {n_clusters} clusters")
    report.provenance = record
    prov_sec.data = record
    prov_sec.seconds = None
    prov_sec.paragraphs = [
        "How this report was made: the data, the encoder and its configuration hash, the "
        "library versions, the seeds, every option and how long each step took."]
    return report


# --------------------------------------------------------------------------------------
# explaining a delineation made elsewhere
# --------------------------------------------------------------------------------------
def run_explain(images, labels, *, ids=None, encoder=None, embeddings=None,
                reference=None, options: Mapping | None = None, random_state: int = 0,
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
    encoder : generative encoder, optional
        For the counterfactual strips.
    embeddings : Embeddings, optional
        The subjects' embeddings in ``encoder``'s latent space (rows in the order of
        ``labels``); default: computed from the images by the classifier's step.
    reference : int, optional
        The group the others are compared with and moved from; default the largest.
    options : mapping, optional
        As for :func:`run_audit` (the ``explain`` and ``report`` sections are used).
    random_state : int, default 0
        Seed.
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

    started = time.perf_counter()
    opts = check_audit_options(options)
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"labels must be one integer group label per subject, got an array "
                        f"of dtype {labels.dtype} and shape {labels.shape}")
    ids = [str(i) for i in (range(len(labels)) if ids is None else ids)]
    if len(ids) != len(labels):
        raise DataError(f"got {len(ids)} ids for {len(labels)} labels")
    groups = [int(g) for g in np.unique(labels) if g != _NOISE]
    if len(groups) < 2:
        raise DataError(f"a delineation needs at least two groups to compare; got "
                        f"{groups} (label -1 marks subjects in none)")
    row_images, image_note = _row_images(images, ids)
    sizes = {g: int(np.sum(labels == g)) for g in groups}
    if reference is None:
        reference = max(groups, key=lambda g: (sizes[g], -g))
    elif int(reference) not in groups:
        raise DataError(f"reference group {reference!r} is not among the labels {groups}")
    reference = int(reference)
    chosen = [g for g in sorted(groups, key=lambda g: (sizes[g], g)) if g != reference]
    chosen = chosen[: int(opts["explain"]["clusters"])]
    bulk = {g: reference for g in groups}

    report = AuditReport(opts["report"]["title"])
    timings: dict = {}
    clusters_sec = report.add(ReportSection("clusters", "Groups: mean and difference images"))
    cam_sec = report.add(ReportSection("gradcam", "Grad-CAM: where a classifier of the "
                                                  "groups looks"))
    cf_sec = report.add(ReportSection("counterfactuals", "Counterfactuals: decoded moves "
                                                         "between groups"))
    prov_sec = report.add(ReportSection("provenance", "Provenance"))

    class _Labels:  # what the section builders read of an auditor
        labels_ = labels

    with _Step(clusters_sec, timings, strict):
        _cluster_images(clusters_sec, _Labels, row_images, image_note, chosen, bulk, opts,
                        random_state)
    explainer = None
    with _Step(cam_sec, timings, strict):
        explainer = _gradcam(cam_sec, labels, row_images, chosen, opts, random_state,
                             verbose)
    if embeddings is None:
        # no embeddings: let the classifier's images give the move (or none at all)
        embeddings = Embeddings(np.zeros((len(labels), 1), dtype=np.float32), ids=ids)
    with _Step(cf_sec, timings, strict):
        _counterfactuals(cf_sec, encoder, embeddings, labels, row_images, chosen, bulk,
                         explainer, opts, random_state, verbose)
    report.subjects = pd.DataFrame({"id": ids, "group": labels})
    record = dict(provenance or {})
    record["seed"] = int(random_state)
    record["options"] = {k: opts[k] for k in ("explain", "report")}
    record["versions"] = _versions()
    record["timings_seconds"] = {**record.get("timings_seconds", {}), **timings,
                                 "explain_total": round(time.perf_counter() - started, 3)}
    record.setdefault("summary", f"{len(labels):,} subjects in {len(groups)} groups; "
                                 f"reference group {reference}")
    record["delineation"] = {"groups": sizes, "reference": reference, "explained": chosen}
    report.provenance = record
    prov_sec.data = record
    return report

