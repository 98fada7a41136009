"""``latentaudit demo``: the bundled demo cohort audited end to end."""

from __future__ import annotations

import json
import logging
import shlex

import numpy as np

from ..pipeline import check_audit_options
from ..utils import atomic_write
from ._command import Command
from ._encoders import (
    PCA_LATENT_DIM,
    demo_weights_available,
    encoder_record,
    fingerprint,
    load_encoder,
    new_encoder,
    train,
)
from ._output import open_output
from ._results import audit_options, embed_and_save, print_summary, write_report
from ._run import Run

__all__ = ["COMMAND", "DEMO_CONFIG"]

logger = logging.getLogger("latentaudit.cli")

#: What ``latentaudit demo`` changes in the schema's defaults: the demo cohort's site is
#: the nuisance, its biology is expected structure, and the clusters are looked for within
#: each sex (site effects hide inside the anatomy's main split).
DEMO_CONFIG: dict = {
    "output": "latentaudit-demo",
    "embed": {"aggregate": "none"},
    "audit": {"expected": ["sex", "age", "height", "weight"], "nuisance": ["site"],
              "within": "sex"},
    "report": {"title": "latentaudit demo: a simulated four-site head MRI cohort"},
}


def demo_dataset(config: dict):
    """The demo cohort (a seeded subset with ``data.n_subjects``) and its provenance."""
    from ..data import ArrayDataset
    from ..datasets import load_demo_cohort
    from ..errors import ConfigError

    data = config["data"]
    cohort = load_demo_cohort(data["demo_size"])
    n = len(cohort)
    keep = np.arange(n)
    wanted = data["n_subjects"]
    if wanted:
        if wanted > n:
            raise ConfigError(f"data.n_subjects must be between 10 and {n} (the demo cohort's "
                              f"size), got {wanted}")
        rng = np.random.default_rng(config["seed"])
        keep = np.sort(rng.choice(n, size=wanted, replace=False))
    dataset = ArrayDataset(cohort.images[keep], cohort.metadata.iloc[keep].reset_index(
        drop=True))
    provenance = {"source": "latentaudit.datasets.load_demo_cohort",
                  "size": data["demo_size"], "n_subjects": len(keep), "of": n,
                  "subset_seed": config["seed"] if wanted else None}
    return dataset, provenance


def run_demo(config: dict, run: Run) -> int:
    """``latentaudit demo``."""
    from ..encoders import build_encoder
    from ..pipeline import run_audit

    output = open_output(run)
    with run.stage("load", "loading the demo cohort ..."):
        dataset, data_record = demo_dataset(config)
    check_audit_options(audit_options(config), dataset.metadata)
    kind = config["encoder"]["kind"]
    pretrained = config["encoder"]["pretrained"]
    if kind == "auto":
        kind = "dae" if (pretrained or demo_weights_available()) else "betavae"
        if kind == "betavae":
            logger.info("the shipped demo DAE weights are not installed; training a small "
                        "beta-VAE in the run instead (--encoder to choose)")
    if kind not in ("pca", "pixel_pca") and not pretrained and demo_weights_available(kind):
        pretrained = "demo"  # the family's shipped demo weights

    stage_key = fingerprint(config["data"], config["encoder"], config["train"],
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
            latent = config["encoder"]["latent_dim"] or PCA_LATENT_DIM
            encoder = build_encoder("pixel_pca", dataset.image_shape, latent_dim=latent,
                                    random_state=config["seed"]).fit(dataset)
        record = encoder_record(encoder, f"pixel PCA ({latent} components)")
    elif pretrained:
        with run.stage("load_encoder", f"loading the encoder {pretrained!r} ..."):
            encoder = load_encoder(pretrained, kind)
        name = (f"the shipped demo {type(encoder).__name__}" if pretrained == "demo"
                else f"{type(encoder).__name__} from {pretrained}")
        record = encoder_record(encoder, name, pretrained=str(pretrained))
    elif reuse:
        with run.stage("load_encoder", f"reusing the encoder trained before in "
                                       f"{encoder_dir} ..."):
            encoder = load_encoder(str(encoder_dir))
        record = encoder_record(encoder, f"{type(encoder).__name__} trained in the run",
                                trained_steps=config["train"]["steps"], reused=True)
    else:
        encoder = new_encoder(kind, config, dataset.image_shape)
        steps = config["train"]["steps"]
        with run.stage("train", f"training a {type(encoder).__name__} for {steps} steps "
                                f"on {len(dataset)} images ..."):
            train(encoder, dataset, config, run, None)
            encoder.save_pretrained(encoder_dir)
        run.keep(f"the trained encoder is in {encoder_dir}", encoder_dir)
        record = encoder_record(encoder, f"{type(encoder).__name__} trained in the run",
                                trained_steps=steps)

    aggregate = None if config["embed"]["aggregate"] == "none" else "subject"
    if reuse:
        from ..embed import Embeddings

        with run.stage("embed", f"reusing the embeddings in {embeddings_dir} (same "
                                f"settings; --fresh recomputes them) ..."):
            embeddings = Embeddings.load(embeddings_dir)
    else:
        with run.stage("embed", f"embedding {len(dataset)} images ..."):
            embeddings = embed_and_save(encoder, dataset, config, run, embeddings_dir,
                                        aggregate)
        with atomic_write(stamp) as handle:
            json.dump({"key": stage_key}, handle)
    run.keep(f"the embeddings are in {embeddings_dir} (rerun the same command to continue "
             f"from them, or: latentaudit audit --config "
             f"{shlex.quote(str(output / 'config.toml'))} --embeddings "
             f"{shlex.quote(str(embeddings_dir))} --overwrite)", embeddings_dir)

    with run.stage("audit", "auditing ..."):
        report = run_audit(embeddings, images=dataset, encoder=encoder,
                           options=audit_options(config), random_state=config["seed"],
                           provenance={"data": data_record, "encoder": record},
                           verbose=run.verbose)
    path = write_report(report, run)
    print_summary(report, path)
    return 0


COMMAND = Command(
    name="demo", order=0, run=run_demo, base=DEMO_CONFIG,
    outputs=("stages.json", "encoder/", "embeddings/", "report.html", "report.json",
             "subjects.csv"),
    scopes=("demo", "analysis", "run"),
    help="audit the bundled demo cohort end to end and write the report",
    description="Audit the bundled demo cohort (2,000 simulated head MRI subjects from four "
                "sites; site B's field of view is shifted, site C uses a head-rest, a few "
                "sex labels are flipped) end to end: encoder, embeddings, map, clusters, "
                "findings, probes, label issues, explanations, report.")
