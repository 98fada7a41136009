"""The training schedule of :meth:`StyleGAN2Encoder.fit`: the GAN stage, then the inverter's
stage through the frozen generator, each a resumable run of the shared training loop."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd

from ...errors import ConfigError
from .._base import ModelEncoder
from .config import _positive_int


def fit_in_stages(model, dataset, *, max_steps: int, batch_size: int = 32,
                  inversion_steps: int | None = None, inversion_lr: float = 1e-3,
                  device=None, checkpoint_dir: str | os.PathLike | None = None,
                  resume: bool = False, verbose: bool = True, **options):
    """Train ``model`` (a StyleGAN2Encoder): the GAN, then the inverter.

    The body of :meth:`StyleGAN2Encoder.fit`, which documents the parameters.

    Parameters
    ----------
    model : StyleGAN2Encoder
        The encoder to train (in place).
    dataset, max_steps, batch_size, inversion_steps, inversion_lr, device, checkpoint_dir, \
resume, verbose, **options
        As :meth:`StyleGAN2Encoder.fit`.

    Returns
    -------
    StyleGAN2Encoder
        ``model``, with ``history_`` (both stages, a ``stage`` column).
    """
    max_steps = _positive_int("max_steps", max_steps)
    if inversion_steps is None:
        inversion_steps = max_steps // 4
    inversion_steps = _positive_int("inversion_steps", inversion_steps, 0)
    if inversion_steps > max_steps:
        raise ConfigError(f"inversion_steps ({inversion_steps}) cannot exceed max_steps "
                          f"({max_steps})")
    gan_only = {"lr", "betas", "ema_decay"}
    stages = [
        ("gan", max_steps - inversion_steps,
         {"lr": 0.0025, "betas": (0.0, 0.99), "grad_clip": None, "ema_decay": 0.999,
          "weight_decay": 0.0, **options}),
        ("inversion", inversion_steps,
         {"grad_clip": None, "weight_decay": 0.0,
          **{k: v for k, v in options.items() if k not in gan_only},
          "lr": float(inversion_lr), "betas": (0.9, 0.999), "ema_decay": None}),
    ]
    time_limit = options.get("time_limit")
    start = time.monotonic()
    histories = []
    stop_reason = "max_steps"
    try:
        for stage, steps, stage_options in stages:
            if steps == 0:
                continue
            if time_limit is not None:
                stage_options["time_limit"] = max(
                    1e-3, time_limit - (time.monotonic() - start))
            model._stage = stage
            if stage == "inversion":
                _start_inverter_from_discriminator(model)
            folder = None if checkpoint_dir is None else Path(checkpoint_dir) / stage
            frozen = ([model.generator, model.discriminator] if stage == "inversion"
                      else [model.inverter])
            for module in frozen:
                module.requires_grad_(False)
            try:
                ModelEncoder.fit(model, dataset, max_steps=steps, batch_size=batch_size,
                                device=device, checkpoint_dir=folder, resume=resume,
                                verbose=verbose, **stage_options)
            finally:
                for module in frozen:
                    module.requires_grad_(True)
            history = model.history_.assign(stage=stage)
            histories.append(history)
            stop_reason = model.history_.attrs.get("stop_reason", "max_steps")
            if stop_reason != "max_steps":
                break
    finally:
        model._stage = "gan"
    model.history_ = pd.concat(histories, ignore_index=True) if histories else None
    if model.history_ is not None:
        model.history_.attrs["stop_reason"] = stop_reason
    return model


def _start_inverter_from_discriminator(model) -> None:
    # The trained discriminator's trunk already reads these images; the inverter's
    # trunk (same architecture unless its channels were set apart) starts from it.  A
    # resumed inverter stage then loads its own checkpoint over this.
    source = model.discriminator.trunk.state_dict()
    target = model.inverter.trunk.state_dict()
    if source.keys() == target.keys() and all(
            source[k].shape == target[k].shape for k in source):
        model.inverter.trunk.load_state_dict(source)
