"""``latentaudit train``: an encoder trained on a folder of NIfTI files."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from ..encoders._registry import encoder_names
from ..errors import ConfigError
from ._command import Command
from ._encoders import encoder_record, new_encoder, train
from ._inputs import data_provenance, load_nifti
from ._output import output_folder, save_config
from ._run import Run

__all__ = ["COMMAND"]

def run_train(config: dict, run: Run) -> int:
    """``latentaudit train``."""
    kind = config["encoder"]["kind"]
    kind = "dae" if kind == "auto" else kind
    if kind not in encoder_names():
        raise ConfigError(f"'latentaudit train' trains a family of the encoder registry "
                          f"({', '.join(encoder_names())}), got encoder kind {kind!r}")
    if run.main:
        output_folder(config, "train", create=False)
    with run.stage("load", f"reading {config['data']['images']} ..."):
        dataset = load_nifti(config, verbose=run.verbose)
    encoder = new_encoder(kind, config, dataset.image_shape)
    steps = config["train"]["steps"]
    if not run.main:
        # Another process of a torchrun launch: it trains its slice of every batch; the
        # first process writes the folder, the checkpoints and the results.
        train(encoder, dataset, config, run, Path(config["output"]) / "checkpoints")
        return 0
    output = output_folder(config, "train")
    save_config(run)
    checkpoints = output / "checkpoints"
    run.keep(f"checkpoints are in {checkpoints} (continue with the same command and "
             f"--resume)", checkpoints)
    with run.stage("train", f"training a {type(encoder).__name__} for {steps} steps on "
                            f"{len(dataset)} images ..."):
        train(encoder, dataset, config, run, checkpoints)
    folder = encoder.save_pretrained(output / "encoder")
    history = getattr(encoder, "history_", None)
    if history is not None:
        history.to_csv(output / "history.csv", index=False)
    (output / "provenance.json").write_text(json.dumps({
        "command": run.command_line(), "data": data_provenance(config, dataset),
        "encoder": encoder_record(encoder, type(encoder).__name__, trained_steps=steps),
        "timings_seconds": run.timings}, indent=1, default=str), encoding="utf-8")
    print(f"encoder: {Path(folder).resolve()}")
    print(f"next: latentaudit embed --images {shlex.quote(str(config['data']['images']))} "
          f"--encoder {shlex.quote(str(folder))} --output OUTPUT")
    return 0


COMMAND = Command(
    name="train", order=10, run=run_train, scopes=("data", "train", "run"),
    titles={"train": "encoder"}, distributed=True,
    help="train an encoder on a folder of NIfTI files",
    description="Train a Diffusion Autoencoder or a beta-VAE on a folder of NIfTI files (and "
                "a metadata CSV). Writes OUTPUT/encoder (config.json + model.safetensors), "
                "OUTPUT/checkpoints (resume with --resume), OUTPUT/history.csv and "
                "OUTPUT/config.toml. With --nproc N (or under torchrun) N processes train "
                "data-parallel, each on a slice of every --batch-size batch.")
