"""Encoders for the commands: built by kind, trained, loaded, described."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import CheckpointError
from ._run import Run

__all__ = ["demo_weights_available", "encoder_record", "fingerprint", "load_encoder",
           "new_encoder", "train"]

PCA_LATENT_DIM = 32


def fingerprint(*parts) -> str:
    """A short hash of JSON-able parts (settings that must match for reuse)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def demo_weights_available(kind: str = "dae") -> bool:
    """Whether the encoder family ``kind`` ships demo weights and they are installed."""
    from ..encoders import encoder_class

    folder = getattr(encoder_class(kind), "shipped_weights", {}).get("demo")
    return folder is not None and (Path(folder) / "config.json").is_file()


def load_encoder(path: str, kind: str | None = None):
    """A saved encoder: a ``save_pretrained`` folder, a train run's folder, or "demo" (the
    demo weights of the family ``kind``, the DAE's when ``kind`` is None or "auto")."""
    from ..encoders import encoder_class, load_pretrained

    if str(path) == "demo" and not Path(path).exists():
        kind = "dae" if kind in (None, "auto") else kind
        if not demo_weights_available(kind):
            raise CheckpointError(f"no shipped demo weights of the {kind!r} encoder are "
                                  f"installed with this copy of latentaudit; train an "
                                  f"encoder with 'latentaudit train' and pass its folder")
        return encoder_class(kind).from_pretrained("demo")
    folder = Path(path)
    if not folder.exists():
        raise CheckpointError(f"encoder folder {str(folder)!r} does not exist; pass the "
                              f"folder written by 'latentaudit train' (OUTPUT/encoder)")
    if (folder / "encoder" / "config.json").is_file() and not (folder / "config.json").is_file():
        folder = folder / "encoder"
    return load_pretrained(folder)


def encoder_record(encoder, name: str, **extra) -> dict:
    """The provenance of an encoder: its class, size, configuration and its hash."""
    record = {"name": name, "class": type(encoder).__name__,
              "latent_dim": int(encoder.latent_dim)}
    from ..utils import config_hash

    # the hash embed() records too (a property on latentaudit's encoders, not a method)
    record["config_hash"] = config_hash(encoder)
    config_dict = getattr(encoder, "config_dict", None)
    if callable(config_dict):
        record["config"] = config_dict()
    elif hasattr(encoder, "config"):
        record["config"] = encoder.config
    record.update(extra)
    return record


def new_encoder(kind: str, config: dict, image_shape: tuple):
    """An untrained encoder of ``kind`` (a family of the encoder registry) for images of
    this shape.

    Its initial weights are drawn from a generator seeded with the run's ``seed`` (the
    caller's global random state is left alone), so two runs with one seed start from the
    same weights.
    """
    from ..encoders import build_encoder

    enc = config["encoder"]
    channels = None if enc["channels"] is None else tuple(enc["channels"])
    return build_encoder(kind, tuple(image_shape), preset=enc["preset"],
                         latent_dim=enc["latent_dim"], channels=channels, beta=enc["beta"],
                         random_state=config["seed"])


def train(encoder, dataset, config: dict, run: Run, checkpoint_dir: Path | None):
    """Fit ``encoder`` on ``dataset`` with the run's ``[train]`` options; back on the CPU."""
    options = {"random_state": config["seed"]}
    if config["train"]["lr"]:
        options["lr"] = config["train"]["lr"]
    if config["train"]["precision"] != "auto":
        options["precision"] = config["train"]["precision"]
    if config["train"]["compile"]:
        options["compile"] = True
    encoder.fit(dataset, max_steps=config["train"]["steps"],
                batch_size=config["train"]["batch_size"], device=config["device"],
                checkpoint_dir=checkpoint_dir, resume=config["train"]["resume"],
                verbose=run.verbose, **options)
    encoder.to("cpu")
    return encoder
