"""The typed options of latentaudit's runs: one schema for TOML files, flags and the API.

Every option of a run has one :class:`Option` entry in :data:`OPTIONS`: its key
(``"section.name"`` as in a TOML file, or ``"name"`` at the top), its type, default,
range or choices, its help text and the command-line flags that set it.  From this one
list come the defaults, the ``latentaudit`` command's flags, the keys a TOML config may
hold, and the validation of every value, wherever it comes from (a config file, a flag,
``--set``, or the ``options`` of :func:`latentaudit.pipeline.run_audit`).

Values are never coerced: an integer option refuses ``2.9``, ``"2"`` and ``true``
instead of turning them into ``2`` or ``1``, and the message names the option, where
the value came from and how to write it.  Unknown keys are refused with the closest
known one.
"""

from __future__ import annotations

from ._option import Flag, Option, Source
from ._option_schema import OptionSchema

__all__ = ["OPTIONS", "Flag", "Option", "OptionSchema", "Source"]


def _encoder_kinds() -> tuple[str, ...]:
    """``demo`` builds these; ``train`` any family of the encoder registry."""
    return tuple(dict.fromkeys(("auto", "pca", *_trainable_kinds())))


def _trainable_kinds() -> tuple[str, ...]:
    from .encoders._registry import encoder_names

    return encoder_names()


def _opt(key, kind, default, help, **kw) -> Option:
    flags = kw.pop("flags", ())
    return Option(key, kind, default, help, flags=tuple(flags), **kw)


F = Flag

#: Every option of latentaudit's runs.  Sections and keys are those of a TOML config
#: (see ``examples/audit.toml``); flags are grouped by scope (a command takes the
#: scopes it lists).  The audit's sections (``projection`` ... ``report``) are also the
#: ``options`` of :func:`latentaudit.pipeline.run_audit`.
OPTIONS = OptionSchema([
    # -- run -----------------------------------------------------------------------------
    _opt("output", "path", None, "folder for the results", metavar="DIR",
         flags=[F(("-o", "--output"), ("run",))]),
    _opt("seed", "int", 0, "seed of every random choice", low=0, high=2**32 - 1,
         metavar="N", flags=[F(("--seed",), ("run",))]),
    _opt("device", "str", "cpu", "torch device, e.g. cpu or cuda",
         flags=[F(("--device",), ("run",))]),
    _opt("nproc", "int", 1, "processes on this machine, launched with PyTorch's torchrun "
         "(train: --batch-size is the global batch, each process takes a slice; embed: one "
         "shard of the subjects each); under torchrun itself the launcher decides",
         low=1, metavar="N", flags=[F(("--nproc",), ("train", "embed"))]),
    # -- data ----------------------------------------------------------------------------
    _opt("data.images", "path", None, "folder of NIfTI files (*.nii, *.nii.gz), one per "
         "subject", metavar="DIR", flags=[F(("--images",), ("data",))]),
    _opt("data.metadata", "path", None, "CSV/TSV table with one row per subject",
         metavar="CSV", flags=[F(("--metadata",), ("data",))]),
    _opt("data.id_column", "str", "subject", "column of the table holding the subject "
         "ids, matched to the file names without .nii/.nii.gz", metavar="NAME",
         flags=[F(("--id-column",), ("data",))]),
    _opt("data.spatial_dims", "int", 2, "2: slices of every volume; 3: whole volumes",
         choices=(2, 3), flags=[F(("--spatial-dims",), ("data",))]),
    _opt("data.slice_axis", "int", 0, "axis of the 2-D slices: 0 sagittal, 1 coronal, "
         "2 axial", choices=(0, 1, 2), flags=[F(("--slice-axis",), ("data",))]),
    _opt("data.n_slices", "int", 1, "central slices per subject in 2-D", low=1,
         metavar="N", flags=[F(("--n-slices",), ("data",))]),
    _opt("data.size", "int", 64, "side of the (square) images or (cubic) volumes, in "
         "pixels", low=2, metavar="N", flags=[F(("--size",), ("data",))]),
    _opt("data.on_error", "str", "raise", "stop at a bad file or id, or leave it out and "
         "list it", choices=("raise", "skip"), flags=[F(("--on-error",), ("data",))]),
    _opt("data.n_subjects", "int", None, "audit a random subset of this many subjects of "
         "the demo cohort (default: all)", low=10, metavar="N",
         flags=[F(("--n-subjects",), ("demo",))]),
    _opt("data.demo_size", "int", 64, "image side of the demo cohort", choices=(64, 128),
         flags=[F(("--demo-size",), ("demo",))]),
    # -- encoder -------------------------------------------------------------------------
    _opt("encoder.kind", "str", "auto", "the model", choices=_encoder_kinds, flags=[
        F(("--encoder",), ("demo",),
          help="auto: the shipped Diffusion Autoencoder weights if installed, else a "
               "beta-VAE trained in the run; dae: the shipped weights (or a DAE trained in "
               "the run without them); betavae: a small beta-VAE trained in the run; pca: "
               "pixel PCA, a linear baseline without a deep model (seconds)"),
        F(("--encoder",), ("train",), help="the model family (default dae)",
          choices=_trainable_kinds)]),
    _opt("encoder.pretrained", "path", None, "a saved encoder", metavar="DIR", flags=[
        F(("--pretrained",), ("demo",), help="use this saved encoder instead of training "
                                               "one"),
        F(("--encoder",), ("embed",),
          help="a folder written by 'latentaudit train' (OUTPUT/encoder) or by "
               "save_pretrained, or 'demo' for the shipped demo DAE (required)"),
        F(("--encoder",), ("audit",),
          help="the encoder that made them, for decoded counterfactuals"),
        F(("--encoder",), ("explain",),
          help="generative encoder for counterfactuals ('demo' for the shipped demo DAE)"),
        F(("--encoder",), ("sensitivity",),
          help="the encoder to measure: a folder written by 'latentaudit train' or "
               "save_pretrained, or 'demo' for the shipped demo DAE (default: pixel PCA "
               "fitted on the images, a baseline without a deep model)")]),
    _opt("encoder.preset", "str", None, "the family's named configuration (default "
         "cpu64; pixel PCA: base); DAE: tiny, cpu64, paper64, paper256, tiny3d, volume64; "
         "beta-VAE: tiny, cpu64; StyleGAN2: tiny, tiny3d, cpu64, paper64, paper256; pixel "
         "PCA: tiny, base", flags=[F(("--preset",), ("train",))]),
    _opt("encoder.latent_dim", "int", None, "embedding length (default: the preset's; 32 "
         "for pixel PCA)", low=1, metavar="N", flags=[F(("--latent-dim",), ("train",))]),
    _opt("encoder.channels", "int_list", None, "channels per level (default: the "
         "preset's)", low=1),
    _opt("encoder.beta", "float", None, "beta-VAE weight of the KL term (default: the "
         "preset's)", low=0.0),
    # -- train ---------------------------------------------------------------------------
    _opt("train.steps", "int", 600, "optimiser steps of an encoder trained in the run",
         low=1, metavar="N", flags=[F(("--train-steps", "--steps"), ("train",)),
                                    F(("--train-steps",), ("demo",))]),
    _opt("train.batch_size", "int", 32, "images per training step", low=1, metavar="N",
         flags=[F(("--batch-size",), ("train",))]),
    _opt("train.lr", "float", None, "learning rate (default: the model's)", low=0.0,
         low_open=True),
    _opt("train.resume", "bool", False, "continue the run saved in OUTPUT/checkpoints",
         flags=[F(("--resume",), ("train",), const=True)]),
    _opt("train.precision", "str", "auto", "autocast precision of training (auto: float32 "
         "on CPUs, bf16/fp16 on GPUs; bf16 pays on CPUs with AVX512-BF16)",
         choices=("auto", "fp32", "bf16", "fp16"), flags=[F(("--precision",), ("train",))]),
    _opt("train.compile", "bool", False, "compile the encoder's networks with "
         "torch.compile for the run (slow first steps; faster ones after)",
         flags=[F(("--compile",), ("train",), const=True)]),
    # -- embed ---------------------------------------------------------------------------
    _opt("embed.batch_size", "int", 64, "images per batch when embedding", low=1,
         metavar="N", flags=[F(("--batch-size",), ("embed",))]),
    _opt("embed.aggregate", "str", "subject", "one row per subject (slices joined) or "
         "per slice", choices=("subject", "none"), flags=[F(("--aggregate",), ("embed",))]),
    _opt("embed.combine", "str", "concat", "how a subject's slices are joined",
         choices=("concat", "mean")),
    _opt("embed.reuse", "bool", True, "reuse the encoder and embeddings of an earlier run "
         "with the same settings in the output folder", flags=[
             F(("--fresh",), ("demo",), const=False,
               help="recompute the encoder and embeddings even if the output folder holds "
                    "them from a run with the same settings")]),
    # -- inputs --------------------------------------------------------------------------
    _opt("inputs.embeddings", "path", None, "saved embeddings", metavar="DIR", flags=[
        F(("--embeddings",), ("audit",),
          help="embeddings saved by 'latentaudit embed' (or its output folder) (required)"),
        F(("--embeddings",), ("explain",),
          help="the subjects' embeddings from that encoder (default: encode the images)")]),
    _opt("inputs.labels", "path", None, "table of subject ids and group labels, e.g. the "
         "subjects.csv of an audit (required unless --delineation is given)", metavar="CSV",
         flags=[F(("--labels",), ("explain",))]),
    _opt("inputs.label_column", "str", "cluster", "column of the groups; -1: in no group",
         metavar="NAME", flags=[F(("--label-column",), ("explain",))]),
    _opt("inputs.delineation", "path", None, "groups drawn on a report's interactive map "
         "(its exported delineation file), refused for other subjects or embeddings than "
         "the map's", metavar="JSON", flags=[
             F(("--delineation",), ("audit",),
               help="test the groups drawn on a report's map (its exported delineation "
                    "file) instead of clustering; refused for other embeddings than the "
                    "map's"),
             F(("--delineation",), ("explain",),
               help="explain the groups drawn on a report's map (its exported delineation "
                    "file); the subjects are those of --labels (the audit's subjects.csv, "
                    "whose map must be the one drawn on), else of --embeddings, else of "
                    "--images")]),
    _opt("inputs.reference", "int", None, "group the others are compared with (default "
         "the largest)", metavar="N", flags=[F(("--reference",), ("explain",))]),
    # -- projection ----------------------------------------------------------------------
    _opt("projection.method", "str", "tsne", "2-D map of the embeddings (tsne: openTSNE)",
         choices=("tsne", "pca", "umap"), flags=[F(("--projection",), ("analysis",))]),
    _opt("projection.perplexity", "float", 30.0, "t-SNE perplexity", low=0.0,
         low_open=True),
    _opt("projection.max_iter", "int", None, "t-SNE/UMAP iterations (default: the "
         "method's)", low=1),
    # -- audit ---------------------------------------------------------------------------
    _opt("audit.clusterer", "str", "hdbscan", "clustering of the embedding",
         choices=("hdbscan", "kmeans", "gmm"),
         flags=[F(("--cluster-method", "--clusterer"), ("analysis", "sensitivity"))]),
    _opt("audit.n_clusters", "int", None, "clusters of kmeans/gmm (default: chosen from "
         "the data)", low=2),
    _opt("audit.min_cluster_size", "int", None, "smallest HDBSCAN cluster (default: "
         "chosen from the data)", low=2),
    _opt("audit.columns", "str_list", None, "metadata columns tested (default: all)"),
    _opt("audit.expected", "str_list", None, "columns whose structure is expected (ranked "
         "last), e.g. sex age", metavar="COLUMN",
         flags=[F(("--expected",), ("analysis", "sensitivity"))]),
    _opt("audit.nuisance", "str_list", None, "columns that should not matter (also "
         "probed), e.g. site", metavar="COLUMN",
         flags=[F(("--nuisance",), ("analysis", "sensitivity"))]),
    _opt("audit.within", "str", None, "cluster within each group of this categorical "
         "column, e.g. sex", metavar="COLUMN",
         flags=[F(("--within",), ("analysis", "sensitivity"))]),
    _opt("audit.n_permutations", "int", 199, "permutations of the association tests",
         low=0),
    _opt("audit.alpha", "float", 0.05, "false discovery rate of the findings", low=0.0,
         high=1.0, low_open=True, high_open=True),
    # -- probes --------------------------------------------------------------------------
    _opt("probes.columns", "str_list", None, "columns probed (default: every tested "
         "column)"),
    _opt("probes.model", "str", "linear", "probe model ('svm' as in the paper's Table 1)",
         choices=("linear", "svm")),
    _opt("probes.n_permutations", "int", 0, "permutations of a probe's p-value", low=0),
    # -- label issues --------------------------------------------------------------------
    _opt("label_issues.columns", "str_list", None, "columns whose labels are checked "
         "(default: the expected categorical columns, or all categorical ones)",
         metavar="COLUMN", flags=[F(("--label-issues",), ("analysis",))]),
    _opt("label_issues.show", "int", 30, "rows listed per column", low=0),
    # -- explain -------------------------------------------------------------------------
    _opt("explain.enabled", "bool", True, "explain the clusters (classifier, Grad-CAM, "
         "counterfactuals)", flags=[
             F(("--no-explain",), ("analysis",), const=False,
               help="skip the classifier, Grad-CAM and counterfactual sections")]),
    _opt("explain.clusters", "int", 3, "unexpected clusters explained", low=0),
    _opt("explain.images", "int", 6, "images shown per cluster", low=1),
    _opt("explain.classifier_steps", "int", 300, "training steps of the explaining "
         "classifier", low=1, metavar="N",
         flags=[F(("--classifier-steps",), ("analysis", "explain"))]),
    _opt("explain.batch_size", "int", 32, "classifier batch size", low=1),
    _opt("explain.widths", "int_list", [16, 32, 64, 128], "classifier channels per level",
         low=1),
    _opt("explain.cam", "str", "gradcam", "class activation map method (see "
         "latentaudit.explain.cam_methods)"),
    _opt("explain.counterfactual_images", "int", 3, "subjects per counterfactual strip",
         low=1),
    _opt("explain.counterfactual_points", "int", 5, "points along a counterfactual move",
         low=2),
    _opt("explain.decoder_steps", "int", 10, "steps of an iterative decoder (a Diffusion "
         "Autoencoder's DDIM steps)", low=1),
    # -- report --------------------------------------------------------------------------
    _opt("report.title", "str", "latentaudit audit report", "title of the report"),
    _opt("report.thumbnails", "int", 8, "thumbnails on the map", low=0),
    _opt("report.top_findings", "int", 6, "findings in the overview", low=1),
])

#: The sections that are options of the audit itself (:func:`run_audit`).
AUDIT_SECTIONS = ("projection", "audit", "probes", "label_issues", "explain", "report")
