"""``latentaudit explain``: a delineation of the subjects -> classifier, Grad-CAM,
counterfactuals."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ._command import Command
from ._encoders import load_encoder
from ._inputs import embeddings_folder, load_nifti
from ._output import check_output, open_output
from ._results import audit_options, print_summary, write_report
from ._run import Run

__all__ = ["COMMAND"]


def _labels_table(config: dict):
    """The ``--labels`` table, its path and its id column."""
    from ..data._base import read_table

    path = Path(config["inputs"]["labels"])
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
    return table, path, id_column


def read_delineation(config: dict):
    """The subjects' ids, their group labels (from a column of ``--labels``) and the
    labels file's path."""
    import pandas as pd

    if not config["inputs"]["labels"]:
        raise ConfigError("'latentaudit explain' needs a delineation: pass --delineation "
                          "JSON (exported from the map of an audit report) or --labels CSV "
                          "(e.g. the subjects.csv of 'latentaudit audit')")
    table, path, id_column = _labels_table(config)
    ids = table[id_column].astype(str).to_numpy(dtype=object)
    column = config["inputs"]["label_column"]
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


def read_drawn(drawn, config: dict, dataset):
    """The ids and labels of a delineation file, for the subjects of ``--labels`` (whose
    map must be the one it was drawn on), else of ``--embeddings``, else of the images."""
    from ..audit import delineate
    from ..embeddings import Embeddings

    spec = config["inputs"]
    if spec["labels"]:
        table, _, id_column = _labels_table(config)
        ids = table[id_column].astype(str).to_numpy(dtype=object)
        if {"map_x", "map_y"} <= set(table.columns):
            return ids, delineate(table[["map_x", "map_y"]].to_numpy(dtype=float), drawn,
                                  ids=ids)
        return ids, drawn.labels(ids)
    if spec["embeddings"]:
        loaded = Embeddings.load(embeddings_folder(spec["embeddings"], "explain"))
        ids = np.asarray([str(i) for i in loaded.ids], dtype=object)
        return ids, drawn.labels(ids, z=loaded.z)
    ids = np.asarray([str(i) for i in dataset.subjects], dtype=object)
    return ids, drawn.labels(ids)


def run_explain_command(config: dict, run: Run) -> int:
    """``latentaudit explain``."""
    from ..audit import Delineation
    from ..embed import Embeddings
    from ..pipeline import run_explain

    spec = config["inputs"]
    drawn = Delineation.read(spec["delineation"]) if spec["delineation"] else None
    if drawn is None:
        ids, labels, labels_path = read_delineation(config)
    check_output(run)
    with run.stage("load", f"reading {config['data']['images']} ..."):
        dataset = load_nifti(config, verbose=run.verbose)
    if drawn is not None:
        ids, labels = read_drawn(drawn, config, dataset)
        labels_path = str(Path(spec["delineation"]).resolve())
    known = set(str(i) for i in dataset.ids)
    missing = [i for i in ids if i not in known]
    if missing:
        raise DataError(f"{len(missing)} subject(s) of the labels file have no image in "
                        f"{config['data']['images']!r}, e.g. "
                        f"{', '.join(repr(m) for m in missing[:3])}; label the subjects of "
                        f"this folder")
    encoder = embeddings = None
    if config["encoder"]["pretrained"]:
        with run.stage("load_encoder", "loading the encoder ..."):
            encoder = load_encoder(config["encoder"]["pretrained"], config["encoder"]["kind"])
    if spec["embeddings"]:
        folder = embeddings_folder(spec["embeddings"], "explain")
        loaded = Embeddings.load(folder)
        position = {str(i): k for k, i in enumerate(loaded.ids)}
        absent = [i for i in ids if i not in position]
        if absent:
            raise DataError(f"{len(absent)} labelled subject(s) have no embedding in "
                            f"{str(folder)!r}, e.g. {', '.join(repr(a) for a in absent[:3])}")
        rows = np.array([position[i] for i in ids])
        embeddings = Embeddings(np.asarray(loaded.z)[rows], ids=ids)
    open_output(run)
    options = audit_options(config)
    options["report"] = {**options["report"], "title": "latentaudit: explaining a delineation"}
    with run.stage("explain", "explaining the delineation ..."):
        report = run_explain(dataset, labels, ids=ids, encoder=encoder, embeddings=embeddings,
                             reference=spec["reference"], options=options,
                             random_state=config["seed"],
                             provenance={"data": {"images": str(Path(
                                 config["data"]["images"]).resolve()),
                                 "labels": labels_path}},
                             verbose=run.verbose)
    path = write_report(report, run)
    print_summary(report, path)
    return 0


COMMAND = Command(
    name="explain", order=40, run=run_explain_command, scopes=("explain", "data", "run"),
    outputs=("report.html", "report.json", "subjects.csv"),
    titles={"explain": "delineation"},
    help="a delineation -> classifier, Grad-CAM, counterfactuals",
    description="Explain a delineation of the subjects into groups (e.g. the clusters of an "
                "audit, OUTPUT/subjects.csv): mean and difference images, a classifier "
                "trained to tell the groups apart with its Grad-CAM maps, and decoded "
                "counterfactuals. Writes OUTPUT/report.html and OUTPUT/report.json.")
