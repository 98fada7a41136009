"""Train the shipped demo Diffusion Autoencoder: the ``cpu64`` preset on the bundled demo
cohort, with latentaudit's own training loop.

This is the command that produced ``src/latentaudit/encoders/dae/_weights/demo``
(loaded by ``DAEEncoder.from_pretrained("demo")``)::

    .venv/bin/python scripts/train_demo_dae.py --threads 2

It trains on the training part of :func:`latentaudit.datasets.demo_split` (80% of the
subjects, stratified by site and sex) and records the split in ``split.json`` beside the
weights, so every figure about the shipped weights is measured on the held-out 20%.
It checkpoints every few minutes; after an interruption, run it again with ``--resume``
and it continues exactly where it stopped.  The latent DDIM (for unconditional sampling)
is trained afterwards on the normalised codes of the cohort, and the model is saved with
its latent statistics.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import latentaudit as la
from latentaudit.data import ArrayDataset
from latentaudit.encoders.dae import DAEEncoder
from latentaudit.encoders.dae.model import DEMO_WEIGHTS


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=700,
                        help="optimiser steps (700: about 35 CPU-minutes on 2 cores, the "
                             "budget of the StyleGAN2 demo model)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--ema-decay", type=float, default=0.995)
    parser.add_argument("--precision", default="bf16",
                        help="autocast precision; bf16 is ~1.8x faster than fp32 on CPUs "
                             "with AVX512-BF16")
    parser.add_argument("--latent-steps", type=int, default=3000,
                        help="optimiser steps of the latent DDIM")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", default="runs/dae_demo")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--out", default=str(DEMO_WEIGHTS), help="where to save the model")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    cohort = la.datasets.load_demo_cohort()
    train_rows, held_out_rows = la.datasets.demo_split(cohort.metadata)
    images = cohort.images[train_rows]
    print(f"demo cohort: {images.shape}; training cpu64 for {args.max_steps} steps of "
          f"{args.batch_size} ({args.precision})", flush=True)
    torch.manual_seed(args.seed)
    enc = DAEEncoder.from_preset("cpu64")
    n_params = sum(p.numel() for p in enc.parameters())
    print(f"parameters: {n_params / 1e6:.2f} M", flush=True)
    t0, cpu0 = time.perf_counter(), time.process_time()

    def report_cpu(step, info):
        # the budget is CPU time: print it where a checkpoint is written, so a run that is
        # stopped and resumed can be added up from its output
        if step % 50 == 0:
            print(f"step {step}: {time.process_time() - cpu0:.1f} CPU-s in this call",
                  flush=True)

    # channels_last is slower than the default layout under bf16 autocast on the CPU.
    enc.fit(ArrayDataset(images), max_steps=args.max_steps, batch_size=args.batch_size,
            lr=args.lr, ema_decay=args.ema_decay, warmup_steps=100,
            precision=args.precision, channels_last=False,
            checkpoint_dir=args.checkpoint_dir, checkpoint_every=50, resume=args.resume,
            random_state=args.seed, log_every=25, verbose=False, callbacks=[report_cpu])
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    history = enc.history_
    print(history[["step", "loss", "images_per_s"]].to_string(index=False), flush=True)
    print(f"DAE training: {seconds / 60:.1f} min wall, {cpu_seconds / 60:.1f} CPU-min in this "
          f"call", flush=True)

    torch.manual_seed(args.seed)
    enc.fit_latent(images, max_steps=args.latent_steps, batch_size=256, lr=1e-3,
                   ema_decay=0.999, random_state=args.seed, verbose=False)
    print(f"latent DDIM loss: {enc.latent_history_['loss'].iloc[-1]:.4f}", flush=True)

    out = Path(args.out)
    enc.save_pretrained(out)
    subjects = cohort.metadata["subject"].astype(str)
    split = {"name": la.datasets.DEMO_SPLIT_NAME,
             "rule": "latentaudit.datasets.demo_split(held_out=0.2, random_state=0)",
             "train_subjects": subjects.iloc[train_rows].tolist(),
             "held_out_subjects": subjects.iloc[held_out_rows].tolist()}
    (out / "split.json").write_text(json.dumps(split, indent=1) + "\n")
    history.to_csv(Path(args.checkpoint_dir) / "history.csv", index=False)
    summary = {"steps": int(history["step"].iloc[-1]), "batch_size": args.batch_size,
               "lr": args.lr, "ema_decay": args.ema_decay, "precision": args.precision,
               "threads": args.threads, "seed": args.seed,
               "final_loss": float(history["loss"].iloc[-1]),
               "wall_seconds_last_call": round(seconds, 1),
               "cpu_seconds_last_call": round(cpu_seconds, 1),
               "latent_steps": args.latent_steps,
               "torch": torch.__version__}
    (Path(args.checkpoint_dir) / "summary.json").write_text(json.dumps(summary, indent=2))
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    print(f"saved to {out} ({size:.1f} MB)", flush=True)
    z = enc.encode(images, batch_size=128).numpy()
    print(f"z_sem: {z.shape}, mean |z| {np.abs(z).mean():.3f}", flush=True)


if __name__ == "__main__":
    main()
