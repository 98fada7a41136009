"""``latentaudit embed``: a folder of NIfTI files embedded with a trained encoder."""

from __future__ import annotations

import shlex
from pathlib import Path

from ..errors import ConfigError
from ._command import Command
from ._encoders import load_encoder
from ._inputs import data_provenance, load_nifti
from ._output import check_output, open_output
from ._results import embed_and_save
from ._run import Run

__all__ = ["COMMAND"]


def run_embed(config: dict, run: Run) -> int:
    """``latentaudit embed``."""
    from ..training._distributed import barrier

    pretrained = config["encoder"]["pretrained"]
    if not pretrained:
        raise ConfigError("'latentaudit embed' needs a trained encoder: pass --encoder DIR "
                          "(the OUTPUT/encoder of 'latentaudit train', or 'demo')")
    if run.main:
        check_output(run)
    with run.stage("load", f"reading {config['data']['images']} ..."):
        dataset = load_nifti(config, verbose=run.verbose)
    with run.stage("load_encoder", f"loading the encoder {pretrained!r} ..."):
        encoder = load_encoder(pretrained, config["encoder"]["kind"])
    aggregate = None if config["embed"]["aggregate"] == "none" else "subject"
    if not run.main:
        # Another process of a torchrun launch: once the first process has made the output
        # folder, it embeds its shard; the first process writes the merged embeddings.
        barrier()
        embed_and_save(encoder, dataset, config, run, None, aggregate)
        return 0
    output = open_output(run)
    barrier()
    folder = output / "embeddings"
    where = str(Path(pretrained).resolve()) if Path(pretrained).exists() else str(pretrained)
    with run.stage("embed", f"embedding {len(dataset)} images ..."):
        embeddings = embed_and_save(encoder, dataset, config, run, folder, aggregate, {
            "data": data_provenance(config, dataset), "encoder_path": where})
    print(f"embeddings: {folder.resolve()} ({embeddings.shape[0]} rows x "
          f"{embeddings.shape[1]})")
    print(f"next: latentaudit audit --embeddings {shlex.quote(str(folder))} --output OUTPUT")
    return 0


COMMAND = Command(
    name="embed", order=20, run=run_embed, scopes=("data", "embed", "run"),
    outputs=("embeddings/",),
    titles={"embed": "encoder"}, distributed=True,
    help="embed a folder of NIfTI files with a trained encoder",
    description="Embed every subject with a trained encoder and save the embeddings "
                "(OUTPUT/embeddings: z.npy, ids, metadata, provenance) for 'latentaudit "
                "audit'. With --nproc N (or under torchrun) each of N processes embeds one "
                "shard of the subjects; the result is the same as in one process.")
