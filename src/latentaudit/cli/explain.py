"""``latentaudit explain``: a delineation of the subjects -> classifier, Grad-CAM,
counterfactuals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ._command import Command
from ._encoders import load_encoder
from ._inputs import embeddings_folder, load_nifti
from ._output import output_folder, save_config
from ._results import audit_options, print_summary, write_report
from ._run import Run

__all__ = ["COMMAND"]


def read_delineation(config: dict):
    """The subjects' ids, their group labels (from a column or from polygons on the
    audit's map) and the labels file's path."""
    import pandas as pd

    from ..data._base import read_table

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
        from ..audit import delineate

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


def run_explain_command(config: dict, run: Run) -> int:
    """``latentaudit explain``."""
    from ..embed import Embeddings
    from ..pipeline import run_explain

    ids, labels, labels_path = read_delineation(config)
    output_folder(config, "explain", create=False)
    with run.stage("load", f"reading {config['data']['images']} ..."):
        dataset = load_nifti(config, verbose=run.verbose)
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
            encoder = load_encoder(config["encoder"]["pretrained"])
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
    output_folder(config, "explain")
    save_config(run)
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
    titles={"explain": "delineation"},
    help="a delineation -> classifier, Grad-CAM, counterfactuals",
    description="Explain a delineation of the subjects into groups (e.g. the clusters of an "
                "audit, OUTPUT/subjects.csv): mean and difference images, a classifier "
                "trained to tell the groups apart with its Grad-CAM maps, and decoded "
                "counterfactuals. Writes OUTPUT/report.html and OUTPUT/report.json.")
