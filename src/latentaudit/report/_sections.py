"""The sections of an audit report, each built from what the audit computed.

A step whose inputs are missing raises :class:`_Unavailable` (the section then says so);
one that fails marks its section as failed instead of ending the run (:class:`_Step`).
"""

from __future__ import annotations

import logging
import platform
import time
import traceback
from importlib import metadata as importlib_metadata

import numpy as np
import pandas as pd

from ..errors import ConfigError, LatentAuditError
from ._report import ReportFigure, ReportSection, ReportTable

__all__: list[str] = []

logger = logging.getLogger(__name__)

_NOISE = -1


def _is_categorical(values: pd.Series, max_levels: int = 10) -> bool:
    """Text, boolean and category columns, and numbers with at most ``max_levels`` values."""
    present = values.dropna()
    if present.nunique() < 2:
        return False
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return present.nunique() <= max_levels
    return present.nunique() < len(present)



class _Unavailable(Exception):
    """Raised inside a step whose inputs are missing; the message becomes the note."""


class _Step:
    """Times one section's step; an error marks the section instead of ending the run."""

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
        # a section may be worked on in several steps (the map, then its clusters)
        total = (self.section.seconds or 0.0) + seconds
        self.section.seconds = round(total, 3)
        self.timings[self.section.key] = round(total, 3)
        if error is None:
            return False
        if isinstance(error, _Unavailable):
            self.section.mark("unavailable", str(error))
            logger.info("%s: unavailable (%s)", self.section.title, error)
            return True
        # a wrong option is the user's to fix, not a section to report as failed
        if not isinstance(error, Exception) or self.strict or isinstance(error, ConfigError):
            return False
        what = error if isinstance(error, LatentAuditError) else (
            f"{type(error).__name__}: {error}")
        self.section.mark("failed", f"This step failed: {what}")
        logger.warning("%s failed: %s", self.section.title, what)
        logger.debug("".join(traceback.format_exception(kind, error, tb)))
        return True


def _versions() -> dict:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("latentaudit", "numpy", "scipy", "pandas", "scikit-learn", "torch",
                 "openTSNE", "matplotlib", "grad-cam", "nibabel"):
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out


def _thumbnails(images, rows) -> list | None:
    if images is None:
        return None
    from ._figures import thumbnail_png

    return [thumbnail_png(images.get([int(r)])[0]) for r in rows]


def _cluster_names(labels: np.ndarray) -> pd.Series:
    return pd.Series(np.where(labels == _NOISE, "none", labels.astype(str)), dtype=object)


def _bulk_of(labels: np.ndarray, metadata: pd.DataFrame, within: str | None) -> dict:
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
    out = {}
    for c in clusters:
        same = [k for k in clusters if group[k] == group[c]]
        out[c] = max(same, key=lambda k: (sizes[k], -k))
    return out


def _clusters_of_interest(auditor, metadata: pd.DataFrame, within: str | None,
                          limit: int) -> tuple[list[int], dict]:
    """Clusters named by significant findings of columns that are not expected, in the order
    of the findings, leaving out each group's largest cluster (the reference)."""
    bulk = _bulk_of(auditor.labels_, metadata, within)
    findings = auditor.findings_
    roles = findings["column"].map(auditor.column_roles_)
    rows = findings[(findings["kind"] == "cluster") & findings["cluster"].notna()
                    & (findings["q_value"] <= auditor.alpha) & (roles != "expected")]
    chosen: list[int] = []
    for cluster in rows["cluster"]:
        cluster = int(cluster)
        if cluster == _NOISE or bulk.get(cluster) == cluster or cluster in chosen:
            continue
        chosen.append(cluster)
        if len(chosen) >= limit:
            break
    return chosen, bulk


def _sample_rows(labels: np.ndarray, cluster: int, n: int, seed: int) -> np.ndarray:
    members = np.flatnonzero(labels == cluster)
    rng = np.random.default_rng([seed, cluster + 1])
    return np.sort(rng.choice(members, size=min(n, members.size), replace=False))


def _projection(section, z, analysed, row_images, opts, random_state):
    from ..projection import Projector
    from ._figures import figure_to_png
    from ._plots import plot_projection

    options = opts["projection"]
    projector = Projector(method=options["method"], perplexity=options["perplexity"],
                          max_iter=options["max_iter"], random_state=random_state)
    xy = projector.fit_transform(z)
    columns = [c for c in analysed.columns if analysed[c].notna().any()]
    fig = plot_projection(xy, analysed, columns=columns or None, ncols=3, panel_size=3.3,
                          random_state=random_state)
    what = {"tsne": "t-SNE", "pca": "PCA", "umap": "UMAP"}.get(options["method"],
                                                              options["method"])
    section.paragraphs.append(
        f"{what} map of the {len(z):,} embeddings, coloured by every metadata column "
        f"(one panel each). Groups that separate on the map by a column that should not "
        f"matter (site, scanner, protocol) are what this audit is looking for.")
    section.figures.append(ReportFigure(
        f"{what} map by metadata column", figure_to_png(fig, dpi=100),
        "Each point is one subject; grey points have no value for that column."))
    section.data = {"method": options["method"], "backend": getattr(projector, "backend_", None),
                    "perplexity": getattr(projector, "perplexity_", None),
                    "n_iter": getattr(projector, "n_iter_", None)}
    return xy


def _cluster_map(section, xy, labels, row_images, opts, random_state):
    from ._figures import figure_to_png
    from ._plots import plot_projection

    n_thumbs = int(opts["report"]["thumbnails"] or 0)
    thumbs = {}
    if row_images is not None and n_thumbs > 0:
        thumbs = {"images": row_images, "thumbnails": n_thumbs}
    fig = plot_projection(xy, pd.DataFrame({"cluster": _cluster_names(labels)}),
                          columns=["cluster"], kinds={"cluster": "categorical"},
                          panel_size=5.0, random_state=random_state, **thumbs)
    section.figures.append(ReportFigure(
        "Clusters on the map", figure_to_png(fig, dpi=100),
        "The clusters the audit tested (found in the embedding, not on the map); "
        "'none' marks subjects in no cluster."
        + (" Thumbnails show a few subjects where they lie." if thumbs else "")))


def _fit_auditor(section, embeddings, analysed, opts, random_state, verbose):
    from ..audit import ClusterAuditor

    options = opts["audit"]
    if len(analysed.columns) == 0:
        raise _Unavailable("the embeddings have no metadata columns to test the clusters "
                           "against; give a metadata table")
    auditor = ClusterAuditor(
        clusterer=options["method"], n_clusters=options["n_clusters"],
        min_cluster_size=options["min_cluster_size"], columns=options["columns"],
        expected=options["expected"], nuisance=options["nuisance"],
        within=options["within"], n_permutations=int(options["n_permutations"]),
        alpha=float(options["alpha"]), random_state=random_state, verbose=verbose)
    auditor.fit(embeddings)
    findings = auditor.findings_
    significant = findings[findings["q_value"] <= auditor.alpha]
    roles = findings["column"].map(auditor.column_roles_)
    expected = ", ".join(sorted(c for c, r in auditor.column_roles_.items()
                                if r == "expected")) or "none"
    section.paragraphs.append(
        f"The embedding was clustered ({auditor.cluster_method_}"
        f"{', within each ' + options['within'] if options['within'] else ''}) into "
        f"{auditor.n_clusters_} clusters; every cluster was tested against every metadata "
        f"column, the nuisance columns were probed, and the false discovery rate was "
        f"controlled over all {len(findings)} tests. {len(significant)} pass q ≤ "
        f"{auditor.alpha:g}. Findings of expected columns "
        f"({expected})"
        f" are ranked last: they are structure the embedding should show.")
    table = findings.copy()
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table["role"] = roles.to_numpy()
    section.tables.append(ReportTable(
        "All findings", table[["rank", "description", "column", "role", "kind", "cluster",
                               "test", "effect_size", "q_value", "n"]],
        "Effect sizes: Cramér's V (chi2, fisher), ε² (kruskal), AMI (ami), Cohen's κ "
        "(probe_logistic) or R² (probe_ridge); q: Benjamini-Hochberg adjusted p-value.",
        max_rows=25))
    section.tables.append(ReportTable("Clusters", auditor.summary(),
                                      "Each cluster's size and its strongest association."))
    section.data = {
        "n_clusters": int(auditor.n_clusters_), "alpha": float(auditor.alpha),
        "column_types": auditor.column_types_, "column_roles": auditor.column_roles_,
        "cluster_sizes": {str(k): int(v) for k, v in zip(
            *np.unique(auditor.labels_, return_counts=True), strict=True)},
        "knn_method": auditor.knn_method_, "knn_recall": float(auditor.knn_recall_),
    }
    return auditor


def _probes(section, auditor, opts, analysed):
    options = opts["probes"]
    columns = options["columns"] or list(auditor.column_types_)
    if not columns:
        raise _Unavailable("no metadata column could be probed (constants and identifiers "
                           "are left out)")
    table = auditor.probe(columns, model=options["model"],
                          n_permutations=int(options["n_permutations"]))
    table = table.copy()
    table.insert(1, "role", table["column"].map(auditor.column_roles_))
    model = ("linear model (logistic or ridge regression)" if options["model"] == "linear"
             else "SVM")
    section.paragraphs.append(
        f"Each column predicted from the embedding by a cross-validated {model}"
        ", as in Table 1 of Graf et al. (2024): accuracy for categories, mean absolute error "
        "for numbers, each against chance (the majority class, or always predicting the "
        "median). An embedding that predicts a nuisance column well carries that nuisance.")
    section.tables.append(ReportTable("Probe table", table[[
        "column", "role", "metric", "score", "ci_low", "ci_high", "chance", "effect_size",
        "p_value", "n"]], "95% confidence intervals; effect size: Cohen's κ or R²."))
    section.data = {"probes": table}


def _label_issues(section, auditor, analysed, row_images, opts):
    options = opts["label_issues"]
    columns = options["columns"]
    if columns is None:
        within = opts["audit"]["within"]
        expected = list(opts["audit"]["expected"] or [])
        if within and within not in expected and expected:
            expected.append(within)
        expected = [c for c in expected if _is_categorical(analysed[c])]
        columns = expected or [c for c, kind in auditor.column_types_.items()
                               if kind == "categorical"]
    if isinstance(columns, str):
        columns = [columns]
    if not columns:
        raise _Unavailable("no categorical metadata column to check labels of")
    show = int(options["show"])
    data = {}
    for column in columns:
        issues = auditor.label_issues(column)
        flagged = issues[issues["flagged"]]
        data[column] = {"n_flagged": int(len(flagged)), "n_checked": int(len(issues)),
                        "flagged": flagged}
        listed = flagged.head(show).drop(columns=["flagged"])
        section.items.append(
            f"{column}: {len(flagged)} of {len(issues)} subjects flagged — their {column} "
            f"label disagrees with both their neighbours in the embedding and a probe.")
        section.tables.append(ReportTable(
            f"{column}: flagged subjects, most suspicious first", listed,
            "score: 1 - the estimated probability of the given label (categorical) or a "
            "robust z-score (numeric). Check these subjects' records.",
            images=_thumbnails(row_images, listed["index"]), max_rows=show))
    section.paragraphs.append(
        "Subjects whose label disagrees with their neighbours in the embedding and with a "
        "probe's out-of-fold prediction (confident-learning style). A flagged subject is a "
        "candidate for a wrong label, not a proven one.")
    section.data = data


def _cluster_images(section, auditor, row_images, image_note, chosen, bulk, opts,
                    random_state):
    from ..explain import difference_map
    from ._figures import difference_panel, image_grid

    if row_images is None:
        raise _Unavailable(f"no images: {image_note}; pass the images to see the clusters")
    if not chosen:
        section.note = ("No cluster besides each group's largest one is significantly "
                        "associated with a column outside the expected ones; there is no "
                        "unexpected cluster to show.")
        return
    labels = auditor.labels_
    n_images = int(opts["explain"]["images"])
    described = {}
    if hasattr(auditor, "summary"):
        summary = auditor.summary()
        described = dict(zip(summary["cluster"], summary["description"], strict=True))
    data = {}
    for cluster in chosen:
        reference = bulk.get(cluster)
        rows = _sample_rows(labels, cluster, n_images, random_state)
        finding = f" Its strongest finding: {described[cluster]}." if described.get(
            cluster) else ""
        section.figures.append(ReportFigure(
            f"Cluster {cluster}: example subjects",
            image_grid(row_images.get(rows), row_images.names(rows), ncols=n_images),
            f"{len(rows)} subjects of cluster {cluster} ({int(np.sum(labels == cluster))} "
            f"subjects), drawn at random.{finding}"))
        diff = difference_map(row_images, labels, cluster, reference)
        section.figures.append(ReportFigure(
            f"Cluster {cluster} vs cluster {reference}",
            difference_panel(diff.mean_source, diff.mean_target, diff.difference,
                             diff.significant, source_title=f"mean of cluster {cluster}",
                             target_title=f"mean of cluster {reference}"),
            f"Mean images, their difference (red: brighter in cluster {cluster}), and the "
            f"difference where it is significant (Welch t-tests, Benjamini-Hochberg FDR "
            f"{diff.alpha:g}): {diff.fraction_significant:.0%} of the image."))
        data[str(cluster)] = {"reference": reference, "n": int(diff.n_source),
                              "n_reference": int(diff.n_target),
                              "fraction_significant": diff.fraction_significant,
                              "max_abs_difference": float(np.max(np.abs(diff.difference)))}
    section.paragraphs.append(
        "For every unexpected cluster (named by a significant finding of a column that is "
        "not expected), a few of its subjects and its mean image beside the mean of the "
        "largest cluster of the same group, with their difference.")
    if image_note:
        section.note = f"Note: {image_note}."
    section.data = data


def _gradcam(section, labels, row_images, chosen, opts, random_state, verbose):
    from ..explain import Explainer
    from ._figures import overlay_grid

    options = opts["explain"]
    if not options["enabled"]:
        raise _Unavailable("explanations were turned off (explain.enabled = false)")
    if row_images is None:
        raise _Unavailable("no images were given; the classifier needs them")
    if not chosen:
        raise _Unavailable("there is no unexpected cluster to explain")
    spatial_dims = row_images[0]["image"].ndim - 1
    explainer = Explainer(spatial_dims=spatial_dims, widths=tuple(options["widths"]),
                          method=options["method"], max_steps=int(options["classifier_steps"]),
                          batch_size=int(options["batch_size"]), random_state=random_state,
                          verbose=verbose)
    explainer.fit(row_images, labels)
    n_images = int(options["images"])
    section.paragraphs.append(
        f"A ResNet10 classifier was trained on the images to tell the "
        f"{explainer.n_classes_} clusters apart ({int(options['classifier_steps'])} steps); "
        f"on {len(explainer.test_indices_)} held-out subjects its accuracy is "
        f"{explainer.accuracy_:.2f} (balanced {explainer.balanced_accuracy_:.2f}). The maps "
        f"({explainer.method_}, layer {explainer.target_layer_}) show where it looks to "
        f"recognise each unexpected cluster.")
    data = {"accuracy": explainer.accuracy_, "balanced_accuracy": explainer.balanced_accuracy_,
            "classes": explainer.classes_.tolist(),
            "confusion_matrix": explainer.confusion_matrix_, "method": explainer.method_,
            "target_layer": explainer.target_layer_, "clusters": {}}
    for cluster in chosen:
        rows = _sample_rows(labels, cluster, n_images, random_state)
        images = row_images.get(rows)
        maps = explainer.explain(images, target=cluster)
        section.figures.append(ReportFigure(
            f"Cluster {cluster}: Grad-CAM",
            overlay_grid(images, maps, row_images.names(rows), ncols=n_images),
            f"Maps for the class 'cluster {cluster}' over {len(rows)} of its subjects (red: "
            f"most evidence)."))
        data["clusters"][str(cluster)] = {"rows": rows, "mean_map_peak": float(maps.max())}
    section.data = data
    return explainer


def _counterfactuals(section, encoder, embeddings, labels, row_images, chosen, bulk,
                     explainer, opts, random_state, verbose):
    from ..explain import counterfactual
    from ._figures import counterfactual_strip

    options = opts["explain"]
    if not options["enabled"]:
        raise _Unavailable("explanations were turned off (explain.enabled = false)")
    if encoder is None:
        raise _Unavailable("no encoder was given; decoded counterfactuals need the "
                           "generative encoder that made the embeddings")
    from ..encoders import GenerativeEncoder

    if not isinstance(encoder, GenerativeEncoder):
        raise _Unavailable(f"the encoder ({type(encoder).__name__}) cannot decode "
                           f"embeddings into images (it does not meet the generative "
                           f"protocol: encode, invert, decode)")
    if row_images is None:
        raise _Unavailable("no images were given")
    if not chosen:
        raise _Unavailable("there is no unexpected cluster to move toward")
    same_space = int(getattr(encoder, "latent_dim", -1)) == embeddings.latent_dim
    if not same_space and explainer is None:
        raise _Unavailable("the move between clusters needs embeddings in the encoder's "
                           "latent space (these are not: e.g. slices were aggregated, or none "
                           "were given) or the classifier's step, which encodes the images "
                           "itself, and that step did not run")
    n_images = int(options["counterfactual_images"])
    kind = getattr(type(encoder), "name", None) or type(encoder).__name__
    if not isinstance(kind, str):
        kind = type(encoder).__name__
    data = {}
    for cluster in chosen:
        reference = bulk.get(cluster)
        if reference is None or reference == cluster:
            continue
        rows = _sample_rows(labels, reference, n_images, random_state)
        images = row_images.get(rows)
        common = {"steps": int(options["counterfactual_steps"]),
                  "diffusion_steps": int(options["diffusion_steps"])}
        if same_space:
            cf = counterfactual(encoder, images, reference, cluster,
                                embeddings=np.asarray(embeddings.z), labels=labels,
                                random_state=random_state, verbose=verbose, **common)
        else:
            cf = explainer.counterfactual(encoder, images, reference, cluster, **common)
        section.figures.append(ReportFigure(
            f"Cluster {reference} → cluster {cluster}",
            counterfactual_strip(cf.images, cf.alphas, cf.difference,
                                 row_titles=row_images.names(rows)),
            f"Subjects of cluster {reference} decoded after moving their embedding toward "
            f"cluster {cluster} by the difference of the clusters' mean embeddings (α = 1: "
            f"the whole way). The last column is what the move changed."))
        data[str(cluster)] = {"source": reference, "rows": rows, "alphas": cf.alphas,
                              "mean_abs_change": float(np.mean(np.abs(cf.difference)))}
    keeps = (" (each decoded with the codes its inversion gives besides the embedding, "
             "e.g. a Diffusion Autoencoder's stochastic code, so it stays recognisable)")
    section.paragraphs.append(
        f"What the embedding encodes about each unexpected cluster, decoded by the "
        f"{kind}: subjects of the reference cluster are moved step by step toward it{keeps}.")
    section.data = data


def _q_text(q: float) -> str:
    return "q < 1e-300" if q == 0 else f"q = {q:.2g}"


def _overview(section, embeddings, analysed, auditor, issues_sec, opts, references):
    n, d = embeddings.shape
    section.paragraphs.append(
        f"{n:,} subjects, {d}-dimensional embeddings; metadata columns: "
        f"{', '.join(map(str, analysed.columns)) or 'none'}.")
    if auditor is None:
        section.note = "The clustering and tests failed, so there are no findings."
        return
    findings = auditor.findings_
    roles = findings["column"].map(auditor.column_roles_)
    significant = findings[(findings["q_value"] <= auditor.alpha) & (roles != "expected")]
    # what sets the largest cluster of each group apart is the absence of the others'
    # peculiarities; those findings stay in the full list, the summary names the others
    reference_rows = significant["cluster"].isin(list(references)).fillna(False)
    top = significant[~reference_rows.to_numpy(dtype=bool)]
    top_n = int(opts["report"]["top_findings"])
    if len(top):
        section.paragraphs.append(
            f"Top findings ({min(top_n, len(top))} of {len(significant)} significant ones "
            f"about columns that are not expected structure; findings about each group's "
            f"largest cluster, the reference, and the rest are in the full list below):")
        section.items = [f"{row.description} ({_q_text(row.q_value)})"
                         for row in top.head(top_n).itertuples()]
    else:
        section.paragraphs.append(
            f"No finding about a column outside the expected ones passes the false "
            f"discovery rate of {auditor.alpha:g}.")
    if issues_sec.ok and issues_sec.data:
        counts = "; ".join(f"{column}: {value['n_flagged']} subjects"
                           for column, value in issues_sec.data.items())
        section.remarks.append(f"Possible label errors — {counts} (see Label issues).")
    section.data = {"n_subjects": int(n), "latent_dim": int(d),
                    "n_significant": int(len(top)),
                    "top_findings": top.head(top_n)}
