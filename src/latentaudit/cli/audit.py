"""``latentaudit audit``: saved embeddings and their metadata -> the audit report."""

from __future__ import annotations

from pathlib import Path

from ..pipeline import check_audit_options, check_metadata
from ..report._build import check_column_names
from ._command import Command
from ._encoders import encoder_record, load_encoder
from ._inputs import embeddings_folder, load_nifti, read_metadata
from ._output import check_output, open_output
from ._results import audit_options, print_summary, write_report
from ._run import Run

__all__ = ["COMMAND"]


def join_metadata(embeddings, config: dict):
    """Replace the embeddings' metadata with the ``--metadata`` table, matched by id."""
    from ..data._base import align_metadata

    table = read_metadata(config)
    if table is None:
        return embeddings
    rows, _ = align_metadata(embeddings.ids, table, config["data"]["id_column"],
                             source="embeddings")
    embeddings.metadata = rows
    return embeddings


def drawn_groups(config: dict, embeddings):
    """The groups of ``--delineation`` for these embeddings (refused for others than the
    map's), and what the report records about them."""
    import numpy as np

    from ..audit import Delineation

    path = Path(config["inputs"]["delineation"])
    drawn = Delineation.read(path)
    labels = drawn.labels(embeddings.ids, z=embeddings.z)
    sizes = {str(g): int(n) for g, n in zip(*np.unique(labels, return_counts=True),
                                            strict=True)}
    return labels, {"file": str(path.resolve()), "groups": sizes, "outside": drawn.outside,
                    "map": drawn.map_fingerprint}


def run_audit_command(config: dict, run: Run) -> int:
    """``latentaudit audit``."""
    from ..embed import Embeddings
    from ..pipeline import run_audit

    folder = embeddings_folder(config["inputs"]["embeddings"], "audit")
    check_output(run)
    with run.stage("load", f"reading the embeddings in {folder} ..."):
        embeddings = Embeddings.load(folder)
        embeddings = join_metadata(embeddings, config)
        check_metadata(embeddings.metadata, id_column=embeddings.id_column)
        # a column named like the audit's own in subjects.csv: refused before any work
        check_column_names(embeddings.metadata, embeddings.id_column)
        check_audit_options(audit_options(config), embeddings.metadata)
    images = None
    data_record = {"embeddings": str(folder.resolve())}
    if config["data"]["images"]:
        with run.stage("load_images", f"reading {config['data']['images']} ..."):
            images = load_nifti({**config, "data": {**config["data"], "metadata": None}},
                                verbose=run.verbose)
        data_record["images"] = str(Path(config["data"]["images"]).resolve())
    encoder, record = None, None
    if config["encoder"]["pretrained"]:
        with run.stage("load_encoder", "loading the encoder ..."):
            encoder = load_encoder(config["encoder"]["pretrained"], config["encoder"]["kind"])
        record = encoder_record(encoder, f"{type(encoder).__name__} from "
                                         f"{config['encoder']['pretrained']}")
    provenance = {"data": data_record}
    if record:
        provenance["encoder"] = record
    labels = None
    if config["inputs"]["delineation"]:
        labels, provenance["delineation"] = drawn_groups(config, embeddings)
    open_output(run)
    with run.stage("audit", "auditing ..."):
        report = run_audit(embeddings, images=images, encoder=encoder, labels=labels,
                           options=audit_options(config), random_state=config["seed"],
                           provenance=provenance, verbose=run.verbose)
    path = write_report(report, run)
    print_summary(report, path)
    return 0


COMMAND = Command(
    name="audit", order=30, run=run_audit_command, scopes=("audit", "data", "analysis", "run"),
    outputs=("report.html", "report.json", "subjects.csv"),
    titles={"audit": "input"},
    help="embeddings + metadata -> the audit report",
    description="Audit saved embeddings: map, clusters, findings, probes, label issues, and "
                "with --images (and --encoder) the cluster images, Grad-CAM maps and "
                "counterfactuals. Writes OUTPUT/report.html, OUTPUT/report.json and "
                "OUTPUT/subjects.csv.")
