"""The ``latentaudit`` command line.

Subcommands::

    latentaudit demo      audit the bundled demo cohort end to end and write the report
    latentaudit train     train an encoder on a folder of NIfTI files (+ metadata CSV)
    latentaudit embed     embed a folder of NIfTI files with a trained encoder
    latentaudit audit     embeddings + metadata -> the audit report
    latentaudit explain   a delineation -> classifier, Grad-CAM, counterfactuals

Every option can also come from a TOML config file (``--config``); flags given on the
command line override it, and ``--set section.key=value`` reaches any option.  The
configuration actually used is written beside the results as ``config.toml``.

Bad input (a missing folder, an unreadable file, a table without the id column, ids that
do not match, a column that mixes numbers and text) ends with one line saying what to fix
and exit code 2; ``--debug`` shows the traceback.  Results computed before an error are
kept (e.g. the embeddings), and the line before the error says how to continue from them.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import math
import os
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .encoders._registry import encoder_names
from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    LatentAuditError,
    MissingDependencyError,
    TrainingError,
)
from .pipeline import (
    AUDIT_DEFAULTS,
    _id_column,
    check_audit_options,
    check_metadata,
    merge_options,
)
from .utils import check_option

__all__ = ["DEFAULT_CONFIG", "DEMO_CONFIG", "EXIT_BAD_INPUT", "EXIT_FAILURE", "EXIT_OK",
           "build_parser", "dump_toml", "load_config", "main"]

logger = logging.getLogger(__name__)

#: Exit codes: success, an unexpected failure, bad input or options, interrupted.
EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

#: Every option the command line knows, by section, with its default.  ``None`` means
#: "unset" (it is left out of TOML files, which have no null).
DEFAULT_CONFIG: dict = {
    "output": None,
    "seed": 0,
    "device": "cpu",
    "data": {"images": None, "metadata": None, "id_column": "subject", "spatial_dims": 2,
             "slice_axis": 0, "n_slices": 1, "size": 64, "on_error": "raise",
             "n_subjects": None, "demo_size": 64},
    "encoder": {"kind": "auto", "pretrained": None, "preset": None, "latent_dim": None,
                "channels": None, "beta": None},
    "train": {"steps": 600, "batch_size": 32, "lr": None, "resume": False},
    "embed": {"batch_size": 64, "aggregate": "subject", "aggregate_method": "concat",
              "reuse": True},
    "inputs": {"embeddings": None, "labels": None, "label_column": "cluster",
               "polygons": None, "reference": None},
    **AUDIT_DEFAULTS,
}

#: What ``latentaudit demo`` changes in :data:`DEFAULT_CONFIG`: the demo cohort's site is
#: the nuisance, its biology is expected structure, and the clusters are looked for within
#: each sex (site effects hide inside the anatomy's main split).
DEMO_CONFIG: dict = {
    "output": "latentaudit-demo",
    "embed": {"aggregate": "none"},
    "audit": {"expected": ["sex", "age", "height", "weight"], "nuisance": ["site"],
              "within": "sex"},
    "report": {"title": "latentaudit demo: a simulated four-site head MRI cohort"},
}

#: ``demo`` builds these; ``train`` any family of the encoder registry.
_ENCODER_KINDS = tuple(dict.fromkeys(("auto", "pca", *encoder_names())))
_PCA_LATENT_DIM = 32


# ======================================================================================
# configuration
# ======================================================================================
def _read_toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise MissingDependencyError(
                "reading a TOML config on Python 3.10 needs the package 'tomli'; install it "
                "with: pip install tomli (or give the config as JSON)") from None
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {err}") from err


def load_config(path: str | os.PathLike | None, *, base: Mapping | None = None,
                overrides: Sequence[Mapping] = ()) -> dict:
    """Build a run's configuration: defaults, then a config file, then overrides.

    Parameters
    ----------
    path : str, os.PathLike or None
        A TOML (``.toml``) or JSON (``.json``) file with any of the options of
        :data:`DEFAULT_CONFIG`, or None.
    base : mapping, optional
        Defaults of the command, applied over :data:`DEFAULT_CONFIG` before the file.
    overrides : sequence of mapping
        Applied after the file (the command line's flags).

    Returns
    -------
    dict
        The merged configuration.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError` or ``DataError``) for a missing or
        invalid file, or an unknown option (with the closest known one).

    Examples
    --------
    >>> load_config(None, overrides=[{"train": {"steps": 10}}])["train"]["steps"]
    10
    """
    from_file: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"config file {str(path)!r} does not exist; check --config")
        if path.suffix.lower() == ".json":
            try:
                from_file = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise ConfigError(f"config file {str(path)!r} is not valid JSON: {err}"
                                  ) from err
        else:
            from_file = _read_toml(path)
    return merge_options(DEFAULT_CONFIG, base, from_file, *overrides)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    # JSON's string escapes are valid in TOML basic strings
    return json.dumps(str(value), ensure_ascii=False)


def dump_toml(config: Mapping) -> str:
    """Write a configuration as TOML (unset options as comments).

    Parameters
    ----------
    config : mapping
        Scalars and lists at the top, one level of tables below.

    Returns
    -------
    str
    """
    lines = ["# latentaudit configuration: the options this run used.",
             "# Run it again with: latentaudit <command> --config config.toml", ""]

    def scalars(table: Mapping) -> list[str]:
        out = []
        for key, value in table.items():
            if isinstance(value, Mapping):
                continue
            if value is None:
                out.append(f"# {key} = (unset)")
            else:
                out.append(f"{key} = {_toml_value(value)}")
        return out

    lines += scalars(config)
    for key, value in config.items():
        if isinstance(value, Mapping):
            lines += ["", f"[{key}]", *scalars(value)]
    return "\n".join(lines) + "\n"


def _parse_assignment(text: str) -> dict:
    """``section.key=value`` (the value read as TOML, else as text) -> nested dict."""
    if "=" not in text:
        raise ConfigError(f"--set needs KEY=VALUE (e.g. audit.method=kmeans), got {text!r}")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    if not key:
        raise ConfigError(f"--set needs a key before '=', got {text!r}")
    try:
        import tomllib

        value = tomllib.loads(f"value = {raw}")["value"]
    except Exception:  # not a TOML literal: take it as text
        value = raw
    node: dict = {}
    root = node
    parts = key.split(".")
    for part in parts[:-1]:
        node[part] = {}
        node = node[part]
    node[parts[-1]] = value
    return root


def _nested(pairs: Mapping[str, object]) -> dict:
    """``{"train.steps": 5, "seed": 1}`` -> ``{"train": {"steps": 5}, "seed": 1}``,
    leaving out values that are None (flags not given)."""
    out: dict = {}
    for key, value in pairs.items():
        if value is None:
            continue
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _fingerprint(*parts) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# ======================================================================================
# the command line
# ======================================================================================
class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions' paragraphs; defaults are written in each help text."""


def _common(parser: argparse.ArgumentParser, *, output_default: str | None = None) -> None:
    group = parser.add_argument_group("run")
    group.add_argument("-c", "--config", metavar="FILE",
                       help="TOML (or JSON) file with any option; flags override it")
    group.add_argument("-o", "--output", metavar="DIR", default=None,
                       help="folder for the results" + (
                           f" (default: {output_default})" if output_default else ""))
    group.add_argument("--seed", type=int, metavar="N", default=None,
                       help="seed of every random choice (default 0)")
    group.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda "
                       "(default cpu)")
    group.add_argument("--set", dest="assignments", action="append", default=[],
                       metavar="KEY=VALUE",
                       help="set any option of the config, e.g. --set audit.method=kmeans; "
                            "repeatable")
    group.add_argument("-q", "--quiet", action="store_true",
                       help="no progress bars or step messages")
    group.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks and debug messages")


def _data_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--images", metavar="DIR", default=None, required=False,
                       help="folder of NIfTI files (*.nii, *.nii.gz), one per subject"
                            + (" (required)" if required else ""))
    group.add_argument("--metadata", metavar="CSV", default=None,
                       help="CSV/TSV table with one row per subject")
    group.add_argument("--id-column", metavar="NAME", default=None,
                       help="column of the table holding the subject ids, matched to the "
                            "file names without .nii/.nii.gz (default subject)")
    group.add_argument("--spatial-dims", type=int, choices=(2, 3), default=None,
                       help="2: slices of every volume; 3: whole volumes (default 2)")
    group.add_argument("--slice-axis", type=int, choices=(0, 1, 2), default=None,
                       help="axis of the 2-D slices: 0 sagittal, 1 coronal, 2 axial "
                            "(default 0)")
    group.add_argument("--n-slices", type=int, metavar="N", default=None,
                       help="central slices per subject in 2-D (default 1)")
    group.add_argument("--size", type=int, metavar="N", default=None,
                       help="side of the (square) images or (cubic) volumes (default 64)")
    group.add_argument("--on-error", choices=("raise", "skip"), default=None,
                       help="stop at a bad file or id, or leave it out and list it "
                            "(default raise)")


def _audit_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("audit")
    group.add_argument("--projection", choices=("tsne", "pca", "umap"), default=None,
                       help="2-D map of the embeddings (default tsne, openTSNE)")
    group.add_argument("--cluster-method", choices=("hdbscan", "kmeans", "gmm"),
                       default=None, help="clustering of the embedding (default hdbscan)")
    group.add_argument("--expected", nargs="+", metavar="COLUMN", default=None,
                       help="columns whose structure is expected (ranked last), e.g. sex age")
    group.add_argument("--nuisance", nargs="+", metavar="COLUMN", default=None,
                       help="columns that should not matter (also probed), e.g. site")
    group.add_argument("--within", metavar="COLUMN", default=None,
                       help="cluster within each group of this categorical column, e.g. sex")
    group.add_argument("--label-issues", nargs="+", metavar="COLUMN", default=None,
                       help="columns whose labels are checked (default: the expected "
                            "categorical columns, or all categorical ones)")
    group.add_argument("--no-explain", action="store_true", default=None,
                       help="skip the classifier, Grad-CAM and counterfactual sections")
    group.add_argument("--classifier-steps", type=int, metavar="N", default=None,
                       help="training steps of the explaining classifier (default 300)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``latentaudit`` command.

    Returns
    -------
    argparse.ArgumentParser
    """
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="latentaudit", formatter_class=_HelpFormatter,
        description="Find what a medical-imaging dataset hides: site artefacts, protocol "
                    "drift, mislabelled metadata. An autoencoder embeds every image without "
                    "labels; the embeddings are mapped, clustered and tested against the "
                    "metadata, and what should not be there is explained.",
        epilog="Start with: latentaudit demo   (a few minutes on a laptop CPU; writes "
               "latentaudit-demo/report.html)")
    parser.add_argument("--version", action="version", version=f"latentaudit {__version__}")
    parser.add_argument("--debug", action="store_true", default=False,
                        help="show tracebacks and debug messages")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo", formatter_class=_HelpFormatter,
        help="audit the bundled demo cohort end to end and write the report",
        description="Audit the bundled demo cohort (2,000 simulated head MRI subjects from "
                    "four sites; site B's field of view is shifted, site C uses a head-rest, "
                    "a few sex labels are flipped) end to end: encoder, embeddings, map, "
                    "clusters, findings, probes, label issues, explanations, report.")
    group = demo.add_argument_group("demo")
    group.add_argument("--encoder", choices=_ENCODER_KINDS, default=None,
                       help="auto: the shipped Diffusion Autoencoder weights if installed, "
                            "else a beta-VAE trained in the run; dae: the shipped weights (or "
                            "a DAE trained in the run without them); betavae: a small "
                            "beta-VAE trained in the run; pca: pixel PCA, a linear baseline "
                            "without a deep model (seconds)")
    group.add_argument("--pretrained", metavar="DIR", default=None,
                       help="use this saved encoder instead of training one")
    group.add_argument("--train-steps", type=int, metavar="N", default=None,
                       help="training steps of an encoder trained in the run (default 600)")
    group.add_argument("--n-subjects", type=int, metavar="N", default=None,
                       help="audit a random subset of this many subjects (default: all)")
    group.add_argument("--demo-size", type=int, choices=(64, 128), default=None,
                       help="image side (default 64)")
    group.add_argument("--fresh", action="store_true",
                       help="recompute the encoder and embeddings even if the output folder "
                            "holds them from a run with the same settings")
    _audit_options(demo)
    _common(demo, output_default="latentaudit-demo")

    train = commands.add_parser(
        "train", formatter_class=_HelpFormatter,
        help="train an encoder on a folder of NIfTI files",
        description="Train a Diffusion Autoencoder or a beta-VAE on a folder of NIfTI files "
                    "(and a metadata CSV). Writes OUTPUT/encoder (config.json + "
                    "model.safetensors), OUTPUT/checkpoints (resume with --resume), "
                    "OUTPUT/history.csv and OUTPUT/config.toml.")
    _data_options(train, required=True)
    group = train.add_argument_group("encoder")
    group.add_argument("--encoder", choices=encoder_names(), default=None,
                       help="the model family (default dae)")
    group.add_argument("--preset", default=None,
                       help="the family's named configuration (default cpu64); DAE: tiny, "
                            "cpu64, paper64, paper256, tiny3d, volume64; beta-VAE: tiny, "
                            "cpu64")
    group.add_argument("--latent-dim", type=int, metavar="N", default=None,
                       help="embedding length (default: the preset's)")
    group.add_argument("--train-steps", "--steps", dest="train_steps", type=int, metavar="N",
                       default=None,
                       help="optimiser steps (default 600)")
    group.add_argument("--batch-size", type=int, metavar="N", default=None,
                       help="images per step (default 32)")
    group.add_argument("--resume", action="store_true", default=None,
                       help="continue the run saved in OUTPUT/checkpoints")
    _common(train)

    embed = commands.add_parser(
        "embed", formatter_class=_HelpFormatter,
        help="embed a folder of NIfTI files with a trained encoder",
        description="Embed every subject with a trained encoder and save the embeddings "
                    "(OUTPUT/embeddings: z.npy, ids, metadata, provenance) for 'latentaudit "
                    "audit'.")
    _data_options(embed, required=True)
    group = embed.add_argument_group("encoder")
    group.add_argument("--encoder", dest="pretrained", metavar="DIR", default=None,
                       help="a folder written by 'latentaudit train' (OUTPUT/encoder) or by "
                            "save_pretrained, or 'demo' for the shipped demo DAE (required)")
    group.add_argument("--batch-size", type=int, metavar="N", default=None,
                       help="images per batch (default 64)")
    group.add_argument("--aggregate", choices=("subject", "none"), default=None,
                       help="one row per subject (slices concatenated) or per slice "
                            "(default subject)")
    _common(embed)

    audit = commands.add_parser(
        "audit", formatter_class=_HelpFormatter,
        help="embeddings + metadata -> the audit report",
        description="Audit saved embeddings: map, clusters, findings, probes, label "
                    "issues, and with --images (and --encoder) the cluster images, "
                    "Grad-CAM maps and counterfactuals. Writes OUTPUT/report.html, "
                    "OUTPUT/report.json and OUTPUT/subjects.csv.")
    group = audit.add_argument_group("input")
    group.add_argument("--embeddings", metavar="DIR", default=None,
                       help="embeddings saved by 'latentaudit embed' (or its output folder) "
                            "(required)")
    group.add_argument("--encoder", dest="pretrained", metavar="DIR", default=None,
                       help="the encoder that made them, for decoded counterfactuals")
    _data_options(audit, required=False)
    _audit_options(audit)
    _common(audit)

    explain = commands.add_parser(
        "explain", formatter_class=_HelpFormatter,
        help="a delineation -> classifier, Grad-CAM, counterfactuals",
        description="Explain a delineation of the subjects into groups (e.g. the clusters "
                    "of an audit, OUTPUT/subjects.csv): mean and difference images, a "
                    "classifier trained to tell the groups apart with its Grad-CAM maps, "
                    "and decoded counterfactuals. Writes OUTPUT/report.html and "
                    "OUTPUT/report.json.")
    group = explain.add_argument_group("delineation")
    group.add_argument("--labels", metavar="CSV", default=None,
                       help="table of subject ids and group labels, e.g. the subjects.csv "
                            "of an audit (required)")
    group.add_argument("--label-column", metavar="NAME", default=None,
                       help="column of the groups (default cluster); -1: in no group")
    group.add_argument("--polygons", metavar="JSON", default=None,
                       help="delineate by polygons on the audit's map instead: a JSON object "
                            "{\"1\": [[x, y], ...], ...} applied to the map_x/map_y columns "
                            "of --labels")
    group.add_argument("--reference", type=int, metavar="N", default=None,
                       help="group the others are compared with (default the largest)")
    group.add_argument("--encoder", dest="pretrained", metavar="DIR", default=None,
                       help="generative encoder for counterfactuals ('demo' for the shipped "
                            "demo DAE)")
    group.add_argument("--embeddings", metavar="DIR", default=None,
                       help="the subjects' embeddings from that encoder (default: encode "
                            "the images)")
    group.add_argument("--classifier-steps", type=int, metavar="N", default=None,
                       help="training steps of the classifier (default 300)")
    _data_options(explain, required=True)
    _common(explain)
    return parser


def _overrides(args: argparse.Namespace) -> list[dict]:
    """The configuration given by flags (flags not given are None and left out)."""
    get = vars(args).get
    flags = {
        "output": get("output"), "seed": get("seed"), "device": get("device"),
        "data.images": get("images"), "data.metadata": get("metadata"),
        "data.id_column": get("id_column"), "data.spatial_dims": get("spatial_dims"),
        "data.slice_axis": get("slice_axis"), "data.n_slices": get("n_slices"),
        "data.size": get("size"), "data.on_error": get("on_error"),
        "data.n_subjects": get("n_subjects"), "data.demo_size": get("demo_size"),
        "encoder.pretrained": get("pretrained"), "encoder.preset": get("preset"),
        "encoder.latent_dim": get("latent_dim"),
        "train.steps": get("train_steps"), "train.batch_size": (
            get("batch_size") if args.command == "train" else None),
        "train.resume": get("resume"),
        "embed.batch_size": get("batch_size") if args.command == "embed" else None,
        "embed.aggregate": get("aggregate"),
        "embed.reuse": False if get("fresh") else None,
        "projection.method": get("projection"), "audit.method": get("cluster_method"),
        "audit.expected": get("expected"), "audit.nuisance": get("nuisance"),
        "audit.within": get("within"), "label_issues.columns": get("label_issues"),
        "explain.enabled": False if get("no_explain") else None,
        "explain.classifier_steps": get("classifier_steps"),
        "inputs.embeddings": get("embeddings"), "inputs.labels": get("labels"),
        "inputs.label_column": get("label_column"), "inputs.polygons": get("polygons"),
        "inputs.reference": get("reference"),
    }
    if args.command in ("demo", "train") and get("encoder") is not None:
        flags["encoder.kind"] = get("encoder")
    out = [_nested(flags)]
    out += [_parse_assignment(text) for text in get("assignments") or []]
    return out


# ======================================================================================
# running
# ======================================================================================
class _Run:
    """What a command has computed so far, for the message after an error."""

    def __init__(self, command: str, config: dict, verbose: bool,
                 argv: Sequence[str] = ()) -> None:
        self.command = command
        self.argv = list(argv)
        self.config = config
        self.verbose = verbose
        self.kept: list[tuple[str, Path | None]] = []
        self.timings: dict = {}
        self.started = time.perf_counter()

    @contextlib.contextmanager
    def stage(self, name: str, message: str):
        logger.info(message)
        tick = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - tick, 3)

    def keep(self, note: str, path: Path | None = None) -> None:
        """Remember a result to mention if the run fails (if ``path`` exists by then)."""
        self.kept.append((note, path))

    @property
    def output(self) -> Path:
        return Path(self.config["output"])

    def command_line(self) -> str:
        return "latentaudit " + " ".join(shlex.quote(str(a)) for a in self.argv)


def _output_folder(config: dict, command: str, create: bool = True) -> Path:
    """The output folder, created unless ``create`` is false (then only checked, so a
    command can say what is wrong before it reads its inputs and write nothing)."""
    output = config["output"]
    if not output:
        raise ConfigError(f"'latentaudit {command}' needs an output folder: pass --output DIR "
                          f"(or set output in the config)")
    path = Path(output)
    if path.exists() and not path.is_dir():
        raise DataError(f"output {str(path)!r} is a file, not a folder; choose another "
                        f"--output")
    if not create:
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create the output folder {str(path)!r}: {err.strerror}; "
                        f"choose another --output") from err
    return path


def _save_config(run: _Run) -> None:
    text = dump_toml(run.config)
    target = run.output / "config.toml"
    partial = target.with_name("config.toml.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, target)


# -- data -----------------------------------------------------------------------------
def _read_metadata(config: dict):
    from .data._base import read_table

    data = config["data"]
    if not data["metadata"]:
        return None
    path = Path(data["metadata"])
    if not path.is_file():
        raise DataError(f"metadata file {str(path)!r} does not exist; check --metadata")
    table = read_table(path, data["id_column"])
    id_column = data["id_column"]
    if id_column not in table.columns:
        raise DataError(
            f"metadata file {path.name!r} has no id column {id_column!r}; its columns are "
            f"{', '.join(map(str, table.columns))}; name the id column with --id-column")
    check_metadata(table, id_column=id_column, source=f"metadata file {path.name!r}")
    return table


def _load_nifti(config: dict, *, verbose: bool):
    from .data import NiftiDataset

    data = config["data"]
    if not data["images"]:
        raise ConfigError("no images given: pass --images FOLDER (a folder of NIfTI files) "
                          "or set data.images in the config")
    folder = Path(data["images"])
    if not folder.exists():
        raise DataError(f"image folder {str(folder)!r} does not exist; check --images")
    metadata = _read_metadata(config)
    dataset = NiftiDataset(
        folder, metadata=metadata, id_column=data["id_column"],
        spatial_dims=int(data["spatial_dims"]), slice_axis=int(data["slice_axis"]),
        n_slices=data["n_slices"], size=data["size"], on_error=data["on_error"],
        random_state=config["seed"], verbose=verbose)
    if len(dataset.skipped):
        logger.warning("left out %d file(s) or table row(s) (on_error='skip'); first: %s",
                       len(dataset.skipped), dataset.skipped.iloc[0].to_dict())
    return dataset


def _data_provenance(config: dict, dataset) -> dict:
    data = config["data"]
    out = {"images": str(Path(data["images"]).resolve()) if data["images"] else None,
           "metadata": str(Path(data["metadata"]).resolve()) if data["metadata"] else None,
           "n_items": len(dataset), "n_subjects": len(dataset.subjects),
           "image_shape": list(dataset.image_shape), "id_column": data["id_column"]}
    if len(getattr(dataset, "skipped", [])):
        out["skipped"] = dataset.skipped.to_dict("records")
    return out


def _demo_dataset(config: dict):
    from .data import ArrayDataset
    from .datasets import load_demo_cohort

    data = config["data"]
    cohort = load_demo_cohort(int(data["demo_size"]))
    n = len(cohort)
    keep = np.arange(n)
    wanted = data["n_subjects"]
    if wanted:
        wanted = int(wanted)
        if not 10 <= wanted <= n:
            raise ConfigError(f"n_subjects must be between 10 and {n}, got {wanted}")
        rng = np.random.default_rng(config["seed"])
        keep = np.sort(rng.choice(n, size=wanted, replace=False))
    dataset = ArrayDataset(cohort.images[keep], cohort.metadata.iloc[keep].reset_index(
        drop=True))
    provenance = {"source": "latentaudit.datasets.load_demo_cohort", "size": int(
        data["demo_size"]), "n_subjects": len(keep), "of": n,
        "subset_seed": config["seed"] if wanted else None}
    return dataset, provenance


# -- encoders -------------------------------------------------------------------------
def _demo_weights_available() -> bool:
    from .encoders.dae.model import DEMO_WEIGHTS

    return (Path(DEMO_WEIGHTS) / "config.json").is_file()


def _load_encoder(path: str):
    from .encoders import load_pretrained

    if str(path) == "demo" and not Path(path).exists():
        from .encoders.dae.model import DAEEncoder

        if not _demo_weights_available():
            raise CheckpointError("the shipped demo DAE weights are not installed with this "
                                  "copy of latentaudit; train an encoder with 'latentaudit "
                                  "train' and pass its folder")
        return DAEEncoder.from_pretrained("demo")
    folder = Path(path)
    if not folder.exists():
        raise CheckpointError(f"encoder folder {str(folder)!r} does not exist; pass the "
                              f"folder written by 'latentaudit train' (OUTPUT/encoder)")
    if (folder / "encoder" / "config.json").is_file() and not (folder / "config.json").is_file():
        folder = folder / "encoder"
    return load_pretrained(folder)


def _encoder_record(encoder, name: str, **extra) -> dict:
    record = {"name": name, "class": type(encoder).__name__,
              "latent_dim": int(encoder.latent_dim)}
    config_hash = getattr(encoder, "config_hash", None)
    if callable(config_hash):
        record["config_hash"] = config_hash()
        record["config"] = encoder.config_dict() if hasattr(encoder, "config_dict") else None
    elif hasattr(encoder, "config"):
        record["config"] = encoder.config
        record["config_hash"] = _fingerprint(encoder.config)
    record.update(extra)
    return record


def _new_encoder(kind: str, config: dict, image_shape: tuple):
    from .encoders import build_encoder

    enc = config["encoder"]
    channels = None if enc["channels"] is None else tuple(enc["channels"])
    return build_encoder(kind, tuple(image_shape), preset=enc["preset"],
                         latent_dim=enc["latent_dim"], channels=channels, beta=enc["beta"])


def _train(encoder, dataset, config: dict, run: _Run, checkpoint_dir: Path | None):
    train = config["train"]
    options = {"random_state": config["seed"]}
    if train["lr"]:
        options["lr"] = float(train["lr"])
    encoder.fit(dataset, max_steps=int(train["steps"]), batch_size=int(train["batch_size"]),
                device=config["device"], checkpoint_dir=checkpoint_dir,
                resume=bool(train["resume"]), verbose=run.verbose, **options)
    encoder.to("cpu")
    return encoder


# ======================================================================================
# commands
# ======================================================================================
def _embed_and_save(encoder, dataset, config: dict, run: _Run, folder: Path,
                    aggregate: str | None, provenance: Mapping | None = None):
    from .embed import embed

    embeddings = embed(encoder, dataset, batch_size=int(config["embed"]["batch_size"]),
                       device=config["device"], aggregate=aggregate,
                       aggregate_method=config["embed"]["aggregate_method"],
                       verbose=run.verbose)
    embeddings.provenance.update(provenance or {})
    embeddings.save(folder, overwrite=True)
    return embeddings


def _write_report(report, run: _Run) -> Path:
    report.provenance.setdefault("command", run.command_line())
    report.provenance["timings_seconds"] = {**run.timings,
                                            **report.provenance.get("timings_seconds", {}),
                                            "total": round(time.perf_counter() - run.started,
                                                           3)}
    path = report.save(run.output)
    return path


def _print_summary(report, path: Path) -> None:
    overview = {s.key: s for s in report.sections}.get("overview")
    if overview is not None and overview.items:
        print("Top findings:")
        for item in overview.items[:3]:
            print(f"  - {item}")
    issues = {s.key: s for s in report.sections}.get("label_issues")
    if issues is not None and issues.items:
        for item in issues.items:
            print(f"  - {item}")
    failed = [s.title for s in report.sections if s.status == "failed"]
    if failed:
        print(f"Sections that failed (see the report): {', '.join(failed)}")
    print(f"report: {path.resolve()}")


def _command_demo(config: dict, run: _Run) -> int:
    """``latentaudit demo``."""
    from .pipeline import _PixelPCA, run_audit

    output = _output_folder(config, "demo")
    _save_config(run)
    with run.stage("load", "loading the demo cohort ..."):
        dataset, data_record = _demo_dataset(config)
    check_audit_options(_audit_section(config), dataset.metadata)
    kind = check_option("encoder.kind", config["encoder"]["kind"], _ENCODER_KINDS)
    pretrained = config["encoder"]["pretrained"]
    if kind == "auto":
        kind = "dae" if (pretrained or _demo_weights_available()) else "betavae"
        if kind == "betavae":
            logger.info("the shipped demo DAE weights are not installed; training a small "
                        "beta-VAE in the run instead (--encoder to choose)")
    if kind == "dae" and not pretrained and _demo_weights_available():
        pretrained = "demo"

    stage_key = _fingerprint(config["data"], config["encoder"], config["train"],
                             config["embed"]["aggregate"], config["seed"], kind, pretrained)
    embeddings_dir = output / "embeddings"
    encoder_dir = output / "encoder"
    stamp = output / "stages.json"
    trained_here = kind != "pca" and not pretrained
    reuse = bool(config["embed"]["reuse"] and stamp.is_file()
                 and (embeddings_dir / "embeddings.json").is_file()
                 and json.loads(stamp.read_text(encoding="utf-8")).get("key") == stage_key
                 and (not trained_here or (encoder_dir / "config.json").is_file()))
    if not reuse:
        stamp.unlink(missing_ok=True)  # what follows replaces the saved stages

    encoder = None
    if kind == "pca":
        with run.stage("train", "fitting pixel PCA ..."):
            latent = int(config["encoder"]["latent_dim"] or _PCA_LATENT_DIM)
            encoder = _PixelPCA(latent).fit(dataset.images, random_state=config["seed"])
        record = _encoder_record(encoder, f"pixel PCA ({latent} components)")
    elif pretrained:
        with run.stage("load_encoder", f"loading the encoder {pretrained!r} ..."):
            encoder = _load_encoder(pretrained)
        name = ("the shipped demo Diffusion Autoencoder" if pretrained == "demo"
                else f"{type(encoder).__name__} from {pretrained}")
        record = _encoder_record(encoder, name, pretrained=str(pretrained))
    elif reuse:
        with run.stage("load_encoder", f"reusing the encoder trained before in "
                                       f"{encoder_dir} ..."):
            encoder = _load_encoder(str(encoder_dir))
        record = _encoder_record(encoder, f"{type(encoder).__name__} trained in the run",
                                 trained_steps=int(config["train"]["steps"]), reused=True)
    else:
        encoder = _new_encoder(kind, config, dataset.image_shape)
        steps = int(config["train"]["steps"])
        with run.stage("train", f"training a {type(encoder).__name__} for {steps} steps "
                                f"on {len(dataset)} images ..."):
            _train(encoder, dataset, config, run, None)
            encoder.save_pretrained(encoder_dir)
        run.keep(f"the trained encoder is in {encoder_dir}", encoder_dir)
        record = _encoder_record(encoder, f"{type(encoder).__name__} trained in the run",
                                 trained_steps=steps)

    aggregate = None if config["embed"]["aggregate"] == "none" else "subject"
    if reuse:
        from .embed import Embeddings

        with run.stage("embed", f"reusing the embeddings in {embeddings_dir} (same "
                                f"settings; --fresh recomputes them) ..."):
            embeddings = Embeddings.load(embeddings_dir)
    else:
        with run.stage("embed", f"embedding {len(dataset)} images ..."):
            embeddings = _embed_and_save(encoder, dataset, config, run, embeddings_dir,
                                         aggregate)
        stamp.write_text(json.dumps({"key": stage_key}), encoding="utf-8")
    run.keep(f"the embeddings are in {embeddings_dir} (rerun the same command to continue "
             f"from them, or: latentaudit audit --config "
             f"{shlex.quote(str(output / 'config.toml'))} --embeddings "
             f"{shlex.quote(str(embeddings_dir))})", embeddings_dir)

    with run.stage("audit", "auditing ..."):
        report = run_audit(embeddings, images=dataset, encoder=encoder,
                           options=_audit_section(config), random_state=config["seed"],
                           provenance={"data": data_record, "encoder": record},
                           verbose=run.verbose)
    path = _write_report(report, run)
    _print_summary(report, path)
    return EXIT_OK


def _audit_section(config: dict) -> dict:
    return {key: config[key] for key in AUDIT_DEFAULTS}


def _command_train(config: dict, run: _Run) -> int:
    """``latentaudit train``."""
    kind = config["encoder"]["kind"]
    kind = "dae" if kind == "auto" else kind
    if kind not in encoder_names():
        raise ConfigError(f"'latentaudit train' trains a family of the encoder registry "
                          f"({', '.join(encoder_names())}), got encoder kind {kind!r}")
    _output_folder(config, "train", create=False)
    with run.stage("load", f"reading {config['data']['images']} ..."):
        dataset = _load_nifti(config, verbose=run.verbose)
    encoder = _new_encoder(kind, config, dataset.image_shape)
    output = _output_folder(config, "train")
    _save_config(run)
    steps = int(config["train"]["steps"])
    checkpoints = output / "checkpoints"
    run.keep(f"checkpoints are in {checkpoints} (continue with the same command and "
             f"--resume)", checkpoints)
    with run.stage("train", f"training a {type(encoder).__name__} for {steps} steps on "
                            f"{len(dataset)} images ..."):
        _train(encoder, dataset, config, run, checkpoints)
    folder = encoder.save_pretrained(output / "encoder")
    history = getattr(encoder, "history_", None)
    if history is not None:
        history.to_csv(output / "history.csv", index=False)
    (output / "provenance.json").write_text(json.dumps({
        "command": run.command_line(), "data": _data_provenance(config, dataset),
        "encoder": _encoder_record(encoder, type(encoder).__name__, trained_steps=steps),
        "timings_seconds": run.timings}, indent=1, default=str), encoding="utf-8")
    print(f"encoder: {Path(folder).resolve()}")
    print(f"next: latentaudit embed --images {shlex.quote(str(config['data']['images']))} "
          f"--encoder {shlex.quote(str(folder))} --output OUTPUT")
    return EXIT_OK


def _command_embed(config: dict, run: _Run) -> int:
    """``latentaudit embed``."""
    pretrained = config["encoder"]["pretrained"]
    if not pretrained:
        raise ConfigError("'latentaudit embed' needs a trained encoder: pass --encoder DIR "
                          "(the OUTPUT/encoder of 'latentaudit train', or 'demo')")
    _output_folder(config, "embed", create=False)
    with run.stage("load", f"reading {config['data']['images']} ..."):
        dataset = _load_nifti(config, verbose=run.verbose)
    with run.stage("load_encoder", f"loading the encoder {pretrained!r} ..."):
        encoder = _load_encoder(pretrained)
    output = _output_folder(config, "embed")
    _save_config(run)
    aggregate = None if config["embed"]["aggregate"] == "none" else "subject"
    folder = output / "embeddings"
    where = str(Path(pretrained).resolve()) if Path(pretrained).exists() else str(pretrained)
    with run.stage("embed", f"embedding {len(dataset)} images ..."):
        embeddings = _embed_and_save(encoder, dataset, config, run, folder, aggregate, {
            "data": _data_provenance(config, dataset), "encoder_path": where})
    print(f"embeddings: {folder.resolve()} ({embeddings.shape[0]} rows x "
          f"{embeddings.shape[1]})")
    print(f"next: latentaudit audit --embeddings {shlex.quote(str(folder))} --output OUTPUT")
    return EXIT_OK


def _embeddings_folder(path: str | None, what: str = "--embeddings") -> Path:
    if not path:
        raise ConfigError(f"'latentaudit audit' needs saved embeddings: pass {what} DIR (the "
                          f"output of 'latentaudit embed')")
    folder = Path(path)
    if not folder.exists():
        raise DataError(f"embeddings folder {str(folder)!r} does not exist; check {what}")
    if not (folder / "embeddings.json").is_file() and (
            folder / "embeddings" / "embeddings.json").is_file():
        folder = folder / "embeddings"
    return folder


def _join_metadata(embeddings, config: dict):
    """Replace the embeddings' metadata with a table read from --metadata, by id."""
    from .data._base import align_metadata

    table = _read_metadata(config)
    if table is None:
        return embeddings
    rows, _ = align_metadata(embeddings.ids, table, config["data"]["id_column"],
                             source="embeddings")
    embeddings.metadata = rows
    return embeddings


def _command_audit(config: dict, run: _Run) -> int:
    """``latentaudit audit``."""
    from .embed import Embeddings
    from .pipeline import run_audit

    folder = _embeddings_folder(config["inputs"]["embeddings"])
    _output_folder(config, "audit", create=False)
    with run.stage("load", f"reading the embeddings in {folder} ..."):
        embeddings = Embeddings.load(folder)
        embeddings = _join_metadata(embeddings, config)
        check_metadata(embeddings.metadata,
                       id_column=_id_column(embeddings.metadata, embeddings.ids))
        check_audit_options(_audit_section(config), embeddings.metadata)
    images = None
    data_record = {"embeddings": str(folder.resolve())}
    if config["data"]["images"]:
        with run.stage("load_images", f"reading {config['data']['images']} ..."):
            images = _load_nifti({**config, "data": {**config["data"], "metadata": None}},
                                 verbose=run.verbose)
        data_record["images"] = str(Path(config["data"]["images"]).resolve())
    encoder, record = None, None
    if config["encoder"]["pretrained"]:
        with run.stage("load_encoder", "loading the encoder ..."):
            encoder = _load_encoder(config["encoder"]["pretrained"])
        record = _encoder_record(encoder, f"{type(encoder).__name__} from "
                                          f"{config['encoder']['pretrained']}")
    provenance = {"data": data_record}
    if record:
        provenance["encoder"] = record
    _output_folder(config, "audit")
    _save_config(run)
    with run.stage("audit", "auditing ..."):
        report = run_audit(embeddings, images=images, encoder=encoder,
                           options=_audit_section(config), random_state=config["seed"],
                           provenance=provenance, verbose=run.verbose)
    path = _write_report(report, run)
    _print_summary(report, path)
    return EXIT_OK


def _read_delineation(config: dict):
    import pandas as pd

    from .data._base import read_table

    spec = config["inputs"]
    if not spec["labels"]:
        raise ConfigError("'latentaudit explain' needs a delineation: pass --labels CSV (e.g. "
                          "the subjects.csv of 'latentaudit audit')")
    path = Path(spec["labels"])
    if not path.is_file():
        raise DataError(f"labels file {str(path)!r} does not exist; check --labels")
    id_column = config["data"]["id_column"]
    table = read_table(path)
    if id_column not in table.columns:
        if "id" in table.columns:
            id_column = "id"
        else:
            raise DataError(f"labels file {path.name!r} has no id column {id_column!r} (nor "
                            f"'id'); its columns are {', '.join(map(str, table.columns))}; "
                            f"name it with --id-column")
    ids = table[id_column].astype(str).to_numpy(dtype=object)
    if spec["polygons"]:
        from .audit import delineate

        polygons_path = Path(spec["polygons"])
        if not polygons_path.is_file():
            raise DataError(f"polygons file {str(polygons_path)!r} does not exist; check "
                            f"--polygons")
        try:
            polygons = json.loads(polygons_path.read_text(encoding="utf-8"))
            polygons = {int(k): np.asarray(v, dtype=float) for k, v in polygons.items()}
        except (json.JSONDecodeError, ValueError, TypeError, AttributeError) as err:
            raise DataError(f"polygons file {polygons_path.name!r} must be a JSON object "
                            f"{{\"label\": [[x, y], ...]}}: {err}") from err
        missing = [c for c in ("map_x", "map_y") if c not in table.columns]
        if missing:
            raise DataError(f"labels file {path.name!r} lacks the map columns {missing} that "
                            f"polygons are drawn on; use the subjects.csv of an audit")
        labels = delineate(table[["map_x", "map_y"]].to_numpy(dtype=float), polygons)
    else:
        column = spec["label_column"]
        if column not in table.columns:
            raise DataError(f"labels file {path.name!r} has no label column {column!r}; its "
                            f"columns are {', '.join(map(str, table.columns))}; name it with "
                            f"--label-column")
        values = pd.to_numeric(table[column], errors="coerce")
        if values.isna().any() or not np.all(values == np.round(values)):
            bad = table[column][values.isna() | (values != np.round(values))].astype(str)
            raise DataError(f"label column {column!r} of {path.name!r} must hold integer "
                            f"group labels (-1: in no group), got e.g. "
                            f"{', '.join(repr(v) for v in bad.unique()[:3])}")
        labels = values.to_numpy().astype(np.int64)
    return ids, labels, str(path.resolve())


def _command_explain(config: dict, run: _Run) -> int:
    """``latentaudit explain``."""
    from .embed import Embeddings
    from .pipeline import run_explain

    ids, labels, labels_path = _read_delineation(config)
    _output_folder(config, "explain", create=False)
    with run.stage("load", f"reading {config['data']['images']} ..."):
        dataset = _load_nifti(config, verbose=run.verbose)
    known = set(str(i) for i in dataset.ids)
    missing = [i for i in ids if i not in known]
    if missing:
        raise DataError(f"{len(missing)} subject(s) of the labels file have no image in "
                        f"{config['data']['images']!r}, e.g. "
                        f"{', '.join(repr(m) for m in missing[:3])}; label the subjects of "
                        f"this folder")
    encoder = embeddings = None
    spec = config["inputs"]
    if config["encoder"]["pretrained"]:
        with run.stage("load_encoder", "loading the encoder ..."):
            encoder = _load_encoder(config["encoder"]["pretrained"])
    if spec["embeddings"]:
        folder = _embeddings_folder(spec["embeddings"], "--embeddings")
        loaded = Embeddings.load(folder)
        position = {str(i): k for k, i in enumerate(loaded.ids)}
        absent = [i for i in ids if i not in position]
        if absent:
            raise DataError(f"{len(absent)} labelled subject(s) have no embedding in "
                            f"{str(folder)!r}, e.g. {', '.join(repr(a) for a in absent[:3])}")
        rows = np.array([position[i] for i in ids])
        embeddings = Embeddings(np.asarray(loaded.z)[rows], ids=ids)
    _output_folder(config, "explain")
    _save_config(run)
    options = _audit_section(config)
    options["report"] = {**options["report"],
                         "title": "latentaudit: explaining a delineation"}
    with run.stage("explain", "explaining the delineation ..."):
        report = run_explain(dataset, labels, ids=ids, encoder=encoder, embeddings=embeddings,
                             reference=spec["reference"], options=options,
                             random_state=config["seed"],
                             provenance={"data": {"images": str(Path(
                                 config["data"]["images"]).resolve()),
                                 "labels": labels_path}},
                             verbose=run.verbose)
    path = _write_report(report, run)
    _print_summary(report, path)
    return EXIT_OK


_COMMANDS = {"demo": (_command_demo, DEMO_CONFIG), "train": (_command_train, None),
             "embed": (_command_embed, None), "audit": (_command_audit, None),
             "explain": (_command_explain, None)}


# ======================================================================================
# entry point
# ======================================================================================
class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if record.levelno >= logging.WARNING:
            return f"latentaudit: warning: {record.getMessage()}"
        return f"latentaudit: {record.getMessage()}"


def _configure_logging(debug: bool, quiet: bool) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s") if debug
                         else _Formatter())
    package = logging.getLogger("latentaudit")
    package.addHandler(handler)
    if debug:
        package.setLevel(logging.DEBUG)
    else:
        package.setLevel(logging.WARNING)
        if not quiet:
            for name in ("latentaudit.cli", "latentaudit.pipeline"):
                logging.getLogger(name).setLevel(logging.INFO)
    return handler


def _one_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``latentaudit`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: 0 on success, 2 for bad input or options, 1 for any other
        failure, 130 when interrupted.

    Examples
    --------
    >>> from latentaudit.cli import main
    >>> main(["demo", "--encoder", "pca", "--n-subjects", "200", "--projection", "pca",
    ...       "--no-explain", "--output", "out"])  # doctest: +SKIP
    0
    """
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    debug = bool(getattr(args, "debug", False))
    quiet = bool(getattr(args, "quiet", False))
    handler = _configure_logging(debug, quiet)
    run = None
    try:
        command, base = _COMMANDS[args.command]
        config = load_config(args.config, base=base, overrides=_overrides(args))
        run = _Run(args.command, config, verbose=not quiet, argv=argv)
        return command(config, run)
    except KeyboardInterrupt:
        _report_kept(run)
        print("latentaudit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (LatentAuditError, OSError) as error:
        if debug:
            logger.exception("traceback of the error below")
        _report_kept(run)
        code = EXIT_FAILURE if isinstance(error, TrainingError) else EXIT_BAD_INPUT
        if isinstance(error, OSError) and not isinstance(error, LatentAuditError):
            where = f" {error.filename!r}" if getattr(error, "filename", None) else ""
            message = f"{error.strerror or _one_line(error)}{where}"
        else:
            message = _one_line(error)
        print(f"latentaudit: error: {message}", file=sys.stderr)
        return code
    except Exception as error:  # anything else is a bug: say so, briefly
        if debug:
            logger.exception("traceback of the error below")
        _report_kept(run)
        print(f"latentaudit: internal error: {type(error).__name__}: {_one_line(error)} "
              f"(rerun with --debug for the traceback, and please report it)", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        logging.getLogger("latentaudit").removeHandler(handler)


def _report_kept(run: _Run | None) -> None:
    if run is None:
        return
    for note, path in run.kept:
        if path is None or Path(path).exists():
            print(f"latentaudit: kept: {note}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
