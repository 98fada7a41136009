"""``latentaudit sensitivity``: how weak an artefact does the audit still find in my data?"""

from __future__ import annotations

import math

from ..options import OPTIONS, Flag, Option
from ..pipeline import DEFAULT_STRENGTHS, auditor_params, check_audit_options
from ..utils import atomic_write
from ._command import Command
from ._encoders import PCA_LATENT_DIM, encoder_record, load_encoder
from ._inputs import data_provenance, load_nifti
from ._output import check_output, open_output
from ._results import audit_options, write_report
from ._run import Run

__all__ = ["COMMAND"]


def _artefact_names() -> tuple[str, ...]:
    from ..artefacts import ARTEFACTS

    return tuple(ARTEFACTS)


_SCOPE = ("sensitivity",)
OPTIONS.extend([
    Option("sensitivity.artefact", "str", None, "the artefact planted in the hidden group "
           "(see latentaudit.artefacts) (required)", choices=_artefact_names,
           flags=(Flag(("--artefact",), _SCOPE),)),
    Option("sensitivity.strengths", "float_list", list(DEFAULT_STRENGTHS), "the ladder of "
           "strengths; 0 plants nothing (the null)", low=0.0, high=1.0, metavar="S",
           flags=(Flag(("--strengths",), _SCOPE),)),
    Option("sensitivity.fraction", "float", 0.1, "share of the subjects in the hidden group",
           low=0.0, low_open=True, high=0.5, metavar="F",
           flags=(Flag(("--fraction",), _SCOPE),)),
    Option("sensitivity.repeats", "int", 3, "repeats with other groups and seeds (they give "
           "the intervals)", low=1, metavar="N", flags=(Flag(("--repeats",), _SCOPE),)),
    Option("sensitivity.column", "str", "hidden_group", "metadata column of the group in the "
           "known regime", metavar="NAME"),
    Option("sensitivity.column_role", "str", "other", "how the audit treats that column: "
           "as any recorded column, or declared a nuisance", choices=("other", "nuisance"),
           flags=(Flag(("--column-role",), _SCOPE),)),
])


def run_sensitivity(config: dict, run: Run) -> int:
    """``latentaudit sensitivity``."""
    from ..errors import ConfigError
    from ..pipeline import sensitivity

    options = config["sensitivity"]
    if not options["artefact"]:
        raise ConfigError(f"'latentaudit sensitivity' needs the artefact to plant: pass "
                          f"--artefact NAME, one of {', '.join(_artefact_names())}")
    check_output(run)
    with run.stage("load", f"reading {config['data']['images']} ..."):
        dataset = load_nifti(config, verbose=run.verbose)
    opts = check_audit_options(audit_options(config), dataset.metadata)
    pretrained = config["encoder"]["pretrained"]
    if pretrained:
        with run.stage("load_encoder", f"loading the encoder {pretrained!r} ..."):
            encoder = load_encoder(pretrained, config["encoder"]["kind"])
        record = encoder_record(encoder, f"{type(encoder).__name__} from {pretrained}")
    else:
        from ..encoders import build_encoder

        latent = config["encoder"]["latent_dim"] or PCA_LATENT_DIM
        with run.stage("train", "fitting pixel PCA on the images (no --encoder given) ..."):
            encoder = build_encoder("pixel_pca", dataset.image_shape, latent_dim=latent,
                                    random_state=config["seed"]).fit(dataset)
        record = encoder_record(encoder, f"pixel PCA ({latent} components)")
    aggregate = None if config["embed"]["aggregate"] == "none" else "subject"
    strengths, repeats = options["strengths"], options["repeats"]
    with run.stage("sensitivity", f"planting {options['artefact']} at {len(strengths)} "
                                  f"strength(s), {repeats} repeat(s) ..."):
        result = sensitivity(
            encoder, dataset, artefact=options["artefact"], strengths=strengths,
            fraction=options["fraction"], repeats=repeats,
            audit=auditor_params(opts["audit"]), column=options["column"],
            column_role=options["column_role"], aggregate=aggregate,
            batch_size=config["embed"]["batch_size"], device=config["device"],
            random_state=config["seed"], verbose=run.verbose)
    output = open_output(run)
    for name, frame in (("runs", result.runs), ("curves", result.curves),
                        ("detection_limits", result.detection_limits)):
        with atomic_write(output / f"sensitivity_{name}.csv", newline="") as handle:
            frame.to_csv(handle, index=False)
    report = result.report(opts["report"]["title"].replace("audit report", "sensitivity"),
                           provenance={"data": data_provenance(config, dataset),
                                       "encoder": record})
    path = write_report(report, run)
    print(f"hidden group: {options['fraction']:.0%} of {result.runs['n'].iloc[0]} rows; "
          f"{options['artefact']} at {', '.join(f'{s:g}' for s in result.settings['strengths'])}")
    for row in result.detection_limits.itertuples():
        limit = "not found" if not math.isfinite(row.limit) else f"strength {row.limit:g}"
        print(f"  {row.regime}: detection limit {limit} ({row.found_in} of {row.repeats} "
              f"repeats; {row.criterion})")
    print(f"tables: {(output / 'sensitivity_runs.csv').resolve()} (and _curves, "
          f"_detection_limits)")
    print(f"report: {path.resolve()}")
    return 0


COMMAND = Command(
    name="sensitivity", order=50, run=run_sensitivity,
    scopes=("data", "sensitivity", "run"), titles={"sensitivity": "spike-in"},
    outputs=("report.html", "report.json", "subjects.csv", "sensitivity_runs.csv",
             "sensitivity_curves.csv", "sensitivity_detection_limits.csv"),
    help="plant an artefact in a hidden group at rising strengths: what does the audit find?",
    description="Positive control on your own data: a random hidden group (independent of "
                "every metadata column) gets one artefact of latentaudit.artefacts at a "
                "ladder of strengths (0: the null); the images are embedded with your encoder "
                "and audited as configured, with the group as a metadata column (known "
                "regime: q of its finding, probe AUC) and without (unforeseen regime: does a "
                "cluster or the outliers single it out, F1). Writes OUTPUT/report.html with "
                "the detection limits and curves, and OUTPUT/sensitivity_*.csv.")
