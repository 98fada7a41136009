"""The sections of an audit report, each filled from fitted objects (see ``_build``).

Every builder takes the section and the :class:`~latentaudit.report._build.AuditContext`,
reads public attributes only, fits nothing, and raises
:class:`~latentaudit.report._build.Unavailable` with the reason when its inputs are
missing.  :data:`SECTIONS` lists them in report order; a new kind of section is one more
entry there.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._build import AuditContext, SectionSpec, Unavailable, map_coordinates
from ._interactive import interactive_map
from ._report import ReportFigure, ReportSection, ReportTable
from ._sensitivity import sensitivity_section
from ._subgroups import subgroup_images

__all__ = ["SECTIONS"]

_NOISE = -1


def _is_categorical(values: pd.Series, max_levels: int = 10) -> bool:
    """Text, boolean and category columns, and numbers with at most ``max_levels`` values."""
    present = values.dropna()
    if present.nunique() < 2:
        return False
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return present.nunique() <= max_levels
    return present.nunique() < len(present)


def _thumbnails(images, rows) -> list | None:
    if images is None:
        return None
    from ._figures import thumbnail_png

    return [thumbnail_png(images.get([int(r)])[0]) for r in rows]


def _cluster_names(labels: np.ndarray) -> pd.Series:
    return pd.Series(np.where(labels == _NOISE, "none", labels.astype(str)), dtype=object)


def _sample_rows(labels: np.ndarray, cluster: int, n: int, seed: int) -> np.ndarray:
    members = np.flatnonzero(labels == cluster)
    rng = np.random.default_rng([seed, cluster + 1])
    return np.sort(rng.choice(members, size=min(n, members.size), replace=False))


def _need_auditor(ctx: AuditContext) -> None:
    if ctx.auditor is None:
        raise Unavailable("no fitted ClusterAuditor was given")


def _need_labels(ctx: AuditContext) -> None:
    if ctx.labels is None:
        raise Unavailable(f"there are no {ctx.noun} labels (no fitted ClusterAuditor, "
                          f"Explainer or delineation was given)")


def _q_text(q: float) -> str:
    return "q < 1e-300" if q == 0 else f"q = {q:.2g}"


# --------------------------------------------------------------------------------------
# overview and findings
# --------------------------------------------------------------------------------------
def overview(section: ReportSection, ctx: AuditContext) -> None:
    """Size, columns, the top findings and the label issues in a few lines."""
    n = len(ctx.ids)
    width = ctx.embeddings.latent_dim if ctx.embeddings is not None else None
    section.paragraphs.append(
        f"{n:,} subjects{f', {width}-dimensional embeddings' if width else ''}; metadata "
        f"columns: {', '.join(map(str, ctx.metadata.columns)) or 'none'}.")
    auditor = ctx.auditor
    if auditor is None:
        section.note = "There is no fitted ClusterAuditor, so there are no findings."
        return
    findings = auditor.findings_
    roles = findings["column"].map(auditor.column_roles_)
    significant = findings[(findings["q_value"] <= auditor.alpha) & (roles != "expected")]
    # what sets the largest cluster of each group apart is the absence of the others'
    # peculiarities; those findings stay in the full list, the summary names the others
    references = set(ctx.reference.values())
    reference_rows = significant["cluster"].isin(list(references)).fillna(False)
    top = significant[~reference_rows.to_numpy(dtype=bool)]
    top_n = int(ctx.options["report"]["top_findings"])
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
    issues = ctx.sections.get("label_issues")
    if issues is not None and issues.ok and issues.data:
        counts = "; ".join(f"{column}: {value['n_flagged']} subjects"
                           for column, value in issues.data.items())
        section.remarks.append(f"Possible label errors — {counts} (see Label issues).")
    section.data = {"n_subjects": int(n), "latent_dim": width,
                    "n_significant": int(len(top)), "top_findings": top.head(top_n)}


def findings(section: ReportSection, ctx: AuditContext) -> None:
    """Everything the auditor tested, ranked, and its clusters."""
    _need_auditor(ctx)
    auditor = ctx.auditor
    table = auditor.findings_.copy()
    roles = table["column"].map(auditor.column_roles_)
    significant = table[table["q_value"] <= auditor.alpha]
    expected = ", ".join(sorted(c for c, r in auditor.column_roles_.items()
                                if r == "expected")) or "none"
    within = f", within each {auditor.within_}" if auditor.within_ else ""
    section.paragraphs.append(
        f"The embedding was clustered ({auditor.cluster_method_}{within}) into "
        f"{auditor.n_clusters_} clusters; every cluster was tested against every metadata "
        f"column, every column that is not expected was probed, what the columns do not "
        f"explain was searched for candidate subgroups (two findings each: kind 'subgroup', a "
        f"second mode, and kind 'far_tail', more subjects far out than a tail holds), and "
        f"the false "
        f"discovery rate was controlled over all {len(table)} tests. {len(significant)} "
        f"pass q ≤ {auditor.alpha:g}. Findings of expected columns ({expected}) are ranked last: "
        f"they are structure the embedding should show.")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table["role"] = roles.to_numpy()
    section.tables.append(ReportTable(
        "All findings", table[["rank", "description", "column", "role", "kind", "cluster",
                               "test", "effect_size", "q_value", "n"]],
        "Effect sizes: Cramér's V (chi2, fisher), ε² (kruskal), AMI (ami), Somers' D "
        "(probe_logistic), R² (probe_ridge) or correlation ratio (held_out_mode or "
        "held_out_far_tail, a candidate subgroup: ClusterAuditor.subgroup_members gives its "
        "subjects); q: "
        "Benjamini-Hochberg adjusted p-value.",
        max_rows=25))
    section.tables.append(ReportTable("Clusters", auditor.summary(),
                                      "Each cluster's size and its strongest association."))
    section.data = {
        "n_clusters": int(auditor.n_clusters_), "alpha": float(auditor.alpha),
        "cluster_method": auditor.cluster_method_,
        "column_types": auditor.column_types_, "column_roles": auditor.column_roles_,
        "cluster_sizes": {str(k): int(v) for k, v in zip(
            *np.unique(auditor.labels_, return_counts=True), strict=True)},
        "knn_method": auditor.knn_method_, "knn_recall": float(auditor.knn_recall_),
    }


# --------------------------------------------------------------------------------------
# the map
# --------------------------------------------------------------------------------------
def projection(section: ReportSection, ctx: AuditContext) -> None:
    """The projector's map coloured by every metadata column, then by cluster."""
    from ._figures import figure_to_png
    from ._plots import plot_projection

    if ctx.projector is None:
        raise Unavailable("no fitted Projector was given")
    xy = map_coordinates(ctx)
    if xy is None:
        raise Unavailable(f"the Projector's map (embedding_) does not have one point per "
                          f"row ({len(ctx.ids)}); give the Projector fitted on these "
                          f"embeddings")
    projector, seed = ctx.projector, ctx.random_state
    method = projector.method
    what = {"tsne": "t-SNE", "pca": "PCA", "umap": "UMAP"}.get(method, method)
    columns = [c for c in ctx.metadata.columns if ctx.metadata[c].notna().any()]
    if columns:
        fig = plot_projection(xy, ctx.metadata, columns=columns, ncols=3, panel_size=3.3,
                              random_state=seed)
        section.figures.append(ReportFigure(
            f"{what} map by metadata column", figure_to_png(fig, dpi=100),
            "Each point is one subject; grey points have no value for that column."))
    section.paragraphs.append(
        f"{what} map of the {len(xy):,} embeddings, coloured by every metadata column "
        f"(one panel each). Groups that separate on the map by a column that should not "
        f"matter (site, scanner, protocol) are what this audit is looking for.")
    if ctx.labels is not None:
        n_thumbs = int(ctx.options["report"]["thumbnails"] or 0)
        thumbs = ({"images": ctx.row_images, "thumbnails": n_thumbs}
                  if ctx.row_images is not None and n_thumbs > 0 else {})
        noun = ctx.noun
        fig = plot_projection(xy, pd.DataFrame({noun: _cluster_names(ctx.labels)}),
                              columns=[noun], kinds={noun: "categorical"}, panel_size=5.0,
                              random_state=seed, **thumbs)
        section.figures.append(ReportFigure(
            f"{noun.capitalize()}s on the map", figure_to_png(fig, dpi=100),
            f"The {noun}s the audit tested (found in the embedding, not on the map); "
            f"'none' marks subjects in no {noun}."
            + (" Thumbnails show a few subjects where they lie." if thumbs else "")))
    section.data = {"method": method, "backend": getattr(projector, "backend_", None),
                    "perplexity": getattr(projector, "perplexity_", None),
                    "n_iter": getattr(projector, "n_iter_", None)}


# --------------------------------------------------------------------------------------
# probes and label issues
# --------------------------------------------------------------------------------------
def probes(section: ReportSection, ctx: AuditContext) -> None:
    """Table 1 of the paper for every tested column."""
    _need_auditor(ctx)
    auditor, options = ctx.auditor, ctx.options["probes"]
    columns = options["columns"] or list(auditor.column_types_)
    if not columns:
        raise Unavailable("no metadata column could be probed (constants and identifiers "
                          "are left out)")
    table = auditor.probe(columns, model=options["model"],
                          n_permutations=int(options["n_permutations"]))
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


def label_issues(section: ReportSection, ctx: AuditContext) -> None:
    """Subjects whose label disagrees with their neighbours and with a probe."""
    _need_auditor(ctx)
    auditor, options = ctx.auditor, ctx.options["label_issues"]
    columns = options["columns"]
    if columns is None:
        expected = [c for c, role in auditor.column_roles_.items() if role == "expected"]
        if auditor.within_ and auditor.within_ not in expected and expected:
            expected.append(auditor.within_)
        expected = [c for c in expected if _is_categorical(auditor.metadata_[c])]
        columns = expected or [c for c, kind in auditor.column_types_.items()
                               if kind == "categorical"]
    if isinstance(columns, str):
        columns = [columns]
    if not columns:
        raise Unavailable("no categorical metadata column to check labels of")
    show = int(options["show"])
    data = {}
    for column in columns:
        issues = auditor.label_issues(column)
        flagged = issues[issues["flagged"]]
        data[column] = {"n_flagged": int(len(flagged)), "n_checked": int(len(issues)),
                        "flagged": flagged}
        listed = flagged.head(show).drop(columns=["flagged"])
        section.items.append(
            f"{column}: {len(flagged)} of {len(issues)} subjects flagged — another {column} "
            f"is more likely than the given one by the average of two estimates: their "
            f"neighbours' labels in the embedding and a probe's out-of-fold prediction.")
        section.tables.append(ReportTable(
            f"{column}: flagged subjects, most suspicious first", listed,
            "score: 1 - the estimated probability of the given label (categorical) or a "
            "robust z-score (numeric). Check these subjects' records.",
            images=_thumbnails(ctx.row_images, listed["index"]), max_rows=show))
    section.paragraphs.append(
        "Each subject's label is estimated twice, from the labels of its neighbours in the "
        "embedding and by a probe's out-of-fold prediction, and the two estimates are "
        "averaged. Confident learning then estimates how many subjects given one label "
        "belong to another and flags that many, those the average finds least likely to "
        "carry their given label (never one whose given label is the most likely); labels "
        "the embedding cannot tell apart are not flagged as each other's errors (see "
        "ClusterAuditor.label_issues). A flagged subject is a candidate for a wrong "
        "label, not a proven one.")
    section.data = data


# --------------------------------------------------------------------------------------
# images of the clusters
# --------------------------------------------------------------------------------------
def group_images(section: ReportSection, images, labels: np.ndarray, group: int,
                 reference: int | None, name: str, reference_name: str, n_images: int,
                 seed: int, finding: str = "") -> dict:
    """Add a few subjects of one group and its mean and difference images against the
    reference group (every other row when ``reference`` is None); return their figures."""
    from ..explain import difference_map
    from ._figures import difference_panel, image_grid

    rows = _sample_rows(labels, group, n_images, seed)
    section.figures.append(ReportFigure(
        f"{name[0].upper()}{name[1:]}: example subjects",
        image_grid(images.get(rows), images.names(rows), ncols=n_images),
        f"{len(rows)} subjects of {name} ({int(np.sum(labels == group))} subjects), drawn "
        f"at random.{finding}"))
    diff = difference_map(images, labels, group, reference)
    section.figures.append(ReportFigure(
        f"{name[0].upper()}{name[1:]} vs {reference_name}",
        difference_panel(diff.mean_source, diff.mean_target, diff.difference,
                         diff.significant, source_title=f"mean of {name}",
                         target_title=f"mean of {reference_name}"),
        f"Mean images, their difference (red: brighter in {name}), and the difference "
        f"where it is significant (Welch t-tests, Benjamini-Hochberg FDR {diff.alpha:g}): "
        f"{diff.fraction_significant:.0%} of the image."))
    return {"n": int(diff.n_source), "n_reference": int(diff.n_target),
            "fraction_significant": diff.fraction_significant,
            "max_abs_difference": float(np.max(np.abs(diff.difference)))}


def cluster_images(section: ReportSection, ctx: AuditContext) -> None:
    """A few subjects of every unexpected cluster, and its mean against the reference's."""
    _need_labels(ctx)
    if ctx.row_images is None:
        raise Unavailable(f"no images: {ctx.image_note}")
    noun = ctx.noun
    if not ctx.chosen:
        section.note = (f"No {noun} besides each group's largest one is significantly "
                        f"associated with a column outside the expected ones; there is no "
                        f"unexpected {noun} to show.")
        return
    labels, images = ctx.labels, ctx.row_images
    n_images = int(ctx.options["explain"]["images"])
    described = {}
    if ctx.auditor is not None:
        summary = ctx.auditor.summary()
        described = dict(zip(summary["cluster"], summary["description"], strict=True))
    data = {}
    for cluster in ctx.chosen:
        reference = ctx.reference.get(cluster)
        finding = (f" Its strongest finding: {described[cluster]}."
                   if described.get(cluster) else "")
        data[str(cluster)] = {"reference": reference, **group_images(
            section, images, labels, cluster, reference, f"{noun} {cluster}",
            f"{noun} {reference}", n_images, ctx.random_state, finding)}
    section.paragraphs.append(
        f"For every unexpected {noun} (named by a significant finding of a column that is "
        f"not expected, or delineated), a few of its subjects and its mean image beside the "
        f"mean of the reference {noun}, with their difference.")
    if ctx.image_note:
        section.note = f"Note: {ctx.image_note}."
    section.data = data


def gradcam(section: ReportSection, ctx: AuditContext) -> None:
    """Where the fitted classifier looks to recognise each unexpected cluster."""
    from ._figures import overlay_grid

    explainer, noun = ctx.explainer, ctx.noun
    if ctx.row_images is None:
        raise Unavailable(f"no images: {ctx.image_note}")
    if explainer is None:
        raise Unavailable("no fitted Explainer was given")
    classes = explainer.classes_.tolist()
    shown = [c for c in ctx.chosen if c in classes]
    if not shown:
        raise Unavailable(f"there is no unexpected {noun} among the classes the Explainer "
                          f"tells apart ({classes})")
    n_images = int(ctx.options["explain"]["images"])
    held_out = len(explainer.test_indices_)
    accuracy = (f"on {held_out} held-out subjects its accuracy is {explainer.accuracy_:.2f} "
                f"(balanced {explainer.balanced_accuracy_:.2f})" if held_out
                else "it kept no held-out subjects, so its accuracy is not measured")
    layers = explainer.target_layer_
    layer_text = (f"layer {layers}" if isinstance(layers, str)
                  else f"layers {' + '.join(layers)}, averaged")
    section.paragraphs.append(
        f"A {explainer.arch} classifier was trained on the images to tell the "
        f"{explainer.n_classes_} {noun}s apart ({explainer.max_steps} steps); {accuracy}. "
        f"The maps ({explainer.cam_}, {layer_text}) show where it "
        f"looks to recognise each unexpected {noun}.")
    data = {"accuracy": explainer.accuracy_, "balanced_accuracy": explainer.balanced_accuracy_,
            "classes": classes, "confusion_matrix": explainer.confusion_matrix_,
            "cam": explainer.cam_,
            "target_layer": layers if isinstance(layers, str) else list(layers),
            "clusters": {}}
    for cluster in shown:
        rows = _sample_rows(ctx.labels, cluster, n_images, ctx.random_state)
        images = ctx.row_images.get(rows)
        maps = explainer.explain(images, target=cluster)
        section.figures.append(ReportFigure(
            f"{noun.capitalize()} {cluster}: Grad-CAM",
            overlay_grid(images, maps, ctx.row_images.names(rows), ncols=n_images),
            f"Maps for the class '{noun} {cluster}' over {len(rows)} of its subjects (red: "
            f"most evidence)."))
        data["clusters"][str(cluster)] = {"rows": rows, "mean_map_peak": float(maps.max())}
    section.data = data


def counterfactuals(section: ReportSection, ctx: AuditContext) -> None:
    """Subjects of the reference cluster decoded while moving toward each unexpected one."""
    from ..encoders import GenerativeEncoder
    from ..explain import counterfactual
    from ._figures import counterfactual_strip

    encoder, noun = ctx.encoder, ctx.noun
    options = ctx.options["explain"]
    if encoder is None:
        raise Unavailable("no encoder was given; decoded counterfactuals need the "
                          "generative encoder that made the embeddings")
    if not isinstance(encoder, GenerativeEncoder):
        raise Unavailable(f"the encoder ({type(encoder).__name__}) cannot decode embeddings "
                          f"into images (it does not meet the generative protocol: encode, "
                          f"invert, decode)")
    _need_labels(ctx)
    if ctx.row_images is None:
        raise Unavailable(f"no images: {ctx.image_note}")
    if not ctx.chosen:
        raise Unavailable(f"there is no unexpected {noun} to move toward")
    same_space = (ctx.embeddings is not None
                  and int(encoder.latent_dim) == ctx.embeddings.latent_dim)
    if not same_space and ctx.explainer is None:
        raise Unavailable(f"the move between {noun}s needs embeddings in the encoder's "
                          f"latent space (these are not: e.g. slices were aggregated) or a "
                          f"fitted Explainer, whose images the encoder can embed")
    n_images = int(options["counterfactual_images"])
    common = {"n_points": int(options["counterfactual_points"]),
              "steps": int(options["decoder_steps"])}
    data = {}
    for cluster in ctx.chosen:
        reference = ctx.reference.get(cluster)
        if reference is None or reference == cluster:
            continue
        rows = _sample_rows(ctx.labels, reference, n_images, ctx.random_state)
        images = ctx.row_images.get(rows)
        if same_space:
            cf = counterfactual(encoder, images, reference, cluster,
                                embeddings=np.asarray(ctx.embeddings.z), labels=ctx.labels,
                                random_state=ctx.random_state, verbose=ctx.verbose, **common)
        else:
            cf = ctx.explainer.counterfactual(encoder, images, reference, cluster, **common)
        section.figures.append(ReportFigure(
            f"{noun.capitalize()} {reference} → {noun} {cluster}",
            counterfactual_strip(cf.images, cf.alphas, cf.difference,
                                 row_titles=ctx.row_images.names(rows)),
            f"Subjects of {noun} {reference} decoded after moving their embedding toward "
            f"{noun} {cluster} by the difference of the {noun}s' mean embeddings (α = 1: "
            f"the whole way). The last column is what the move changed."))
        data[str(cluster)] = {"source": reference, "rows": rows, "alphas": cf.alphas,
                              "mean_abs_change": float(np.mean(np.abs(cf.difference)))}
    section.paragraphs.append(
        f"What the embedding encodes about each unexpected {noun}, decoded by the "
        f"{type(encoder).__name__}: subjects of the reference {noun} are moved step by step "
        f"toward it (each decoded with the codes its inversion gives besides the embedding, "
        f"e.g. a Diffusion Autoencoder's stochastic code, so it stays recognisable).")
    section.data = data


# --------------------------------------------------------------------------------------
# oversampling and provenance
# --------------------------------------------------------------------------------------
def oversampling(section: ReportSection, ctx: AuditContext) -> None:
    """What the Interpolator made: rows per group, their parents, decoded examples."""
    from ..encoders import GenerativeEncoder

    res = ctx.interpolator
    if res is None:
        raise Unavailable("no fitted Interpolator was given")
    if getattr(res, "provenance_", None) is None:
        raise Unavailable("the Interpolator has made no synthetic rows (call fit_resample)")
    prov = res.provenance_
    made = prov["group"].value_counts()
    counts = pd.DataFrame({
        "group": [str(g) for g in res.group_counts_],
        "real": list(res.group_counts_.values()),
        "synthetic": [int(made.get(g, 0)) for g in res.group_counts_]})
    counts["after"] = counts["real"] + counts["synthetic"]
    section.paragraphs.append(
        f"The Interpolator ({res.method}, {res.k_neighbors} neighbours, {res.geometry} "
        f"geometry) made {len(prov):,} synthetic rows between real subjects of the same "
        f"group; each lies on the segment between its two parents, at the recorded weight, "
        f"so every synthetic subject traces back to two real ones.")
    section.tables.append(ReportTable("Rows per group", counts,
                                      "Real rows, synthetic rows made, and the total after."))
    section.tables.append(ReportTable(
        "Synthetic rows and their parents", prov.reset_index(), "parent_a, parent_b: row "
        "positions of the parents (with their ids); weight: where on the segment.",
        max_rows=20))
    section.data = {"counts": counts, "n_synthetic": int(len(prov)),
                    "sampling_strategy": res.sampling_strategy_}
    encoder = ctx.encoder
    if encoder is None or not isinstance(encoder, GenerativeEncoder):
        section.note = "No generative encoder was given, so no synthetic row is decoded."
        return
    if int(encoder.latent_dim) != int(res.n_features_in_):
        section.note = (f"The synthetic rows ({res.n_features_in_}-dimensional) are not in "
                        f"the encoder's latent space ({encoder.latent_dim}), so none is "
                        f"decoded.")
        return
    section.figures.append(_decoded_synthetic(ctx, res, encoder))


def _decoded_synthetic(ctx: AuditContext, res, encoder) -> ReportFigure:
    """The first synthetic rows decoded, between the images of their parents."""
    import torch

    from ..utils import resolve_device
    from ._figures import image_grid

    prov = res.provenance_
    k = min(4, len(prov))
    device = resolve_device(None, encoder)
    z = torch.as_tensor(np.asarray(res.z_synthetic_[:k], dtype=np.float32), device=device)
    generator = torch.Generator(device=device).manual_seed(ctx.random_state)
    with torch.no_grad():
        decoded = encoder.decode(z, generator=generator)
    decoded = decoded.detach().float().cpu().numpy()
    parents = res.embeddings_.row_images if res.embeddings_ is not None else (
        ctx.row_images if len(res.ids_) == len(ctx.ids) else None)
    panels, titles = [], []
    for i in range(k):
        a, b, w = (int(prov["parent_a"].iloc[i]), int(prov["parent_b"].iloc[i]),
                   float(prov["weight"].iloc[i]))
        if parents is not None:
            panels += [parents.get([a])[0], decoded[i], parents.get([b])[0]]
            titles += [f"{res.ids_[a]}", f"synthetic (w={w:.2f})", f"{res.ids_[b]}"]
        else:
            panels.append(decoded[i])
            titles.append(f"synthetic (w={w:.2f})")
    ncols = 3 if parents is not None else k
    caption = ("Each row: a parent, the decoded synthetic subject and the other parent "
               "(w: weight toward the second)." if parents is not None else
               "Decoded synthetic subjects (the parents' images were not given).")
    return ReportFigure("Decoded synthetic subjects",
                        image_grid(np.stack(panels), titles, ncols=ncols), caption)


def provenance(section: ReportSection, ctx: AuditContext) -> None:
    """How the report was made (the report's provenance record)."""
    section.data = ctx.record
    section.paragraphs = [
        "How this report was made: the data, the encoder and its configuration hash, the "
        "fitted objects and their parameters, the library versions, the seeds, every "
        "option and how long each step took."]


#: The kinds of section, in report order.  A new kind is one more entry (and its key in
#: ``_build.AUDIT_SECTIONS`` to be part of an audit by default).
SECTIONS: list[SectionSpec] = [
    SectionSpec("overview", "Overview", overview),
    SectionSpec("findings", "Findings, ranked", findings),
    SectionSpec("projection", "Map of the embeddings", projection),
    SectionSpec("map", "Interactive map", interactive_map),
    SectionSpec("clusters", "{Nouns}: mean and difference images", cluster_images),
    SectionSpec("subgroups", "Candidate subgroups: groups no column names", subgroup_images),
    SectionSpec("probes", "Probes: what the embedding predicts", probes),
    SectionSpec("label_issues", "Label issues", label_issues),
    SectionSpec("gradcam", "Grad-CAM: where a classifier of the {nouns} looks", gradcam),
    SectionSpec("counterfactuals", "Counterfactuals: decoded moves between {nouns}",
                counterfactuals),
    SectionSpec("oversampling", "Oversampling: synthetic subjects in latent space",
                oversampling),
    SectionSpec("sensitivity", "Sensitivity: how weak a planted artefact is still found",
                sensitivity_section),
    SectionSpec("provenance", "Provenance", provenance),
]
