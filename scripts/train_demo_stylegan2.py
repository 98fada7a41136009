"""Train the shipped demo StyleGAN2: the ``cpu64`` preset on the training part of the demo
cohort, with latentaudit's own training loop.

This is the command that produced ``src/latentaudit/encoders/stylegan2/_weights/demo``
(loaded by ``StyleGAN2Encoder.from_pretrained("demo")``)::

    .venv/bin/python scripts/train_demo_stylegan2.py --threads 2

It trains on the training part of :func:`latentaudit.datasets.demo_split` (80% of the
subjects, stratified by site and sex) and records the split in ``split.json`` beside the
weights, so every figure about the shipped weights is measured on the held-out 20%.
:meth:`StyleGAN2Encoder.fit` trains the GAN, then the inverter through the frozen
generator, each stage checkpointed in ``--checkpoint-dir``.  On a shared machine run it in
chunks: ``--time-limit SECONDS`` stops cleanly (exit status 3) and ``--resume`` continues
exactly where it stopped; the CPU time of every chunk is added up in
``CHECKPOINT_DIR/cpu_seconds.json``.  The weights are written in float16 (half the size;
loading casts them back to float32).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import latentaudit as la
from latentaudit.data import ArrayDataset
from latentaudit.encoders.stylegan2 import StyleGAN2Encoder
from latentaudit.encoders.stylegan2.model import DEMO_WEIGHTS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gan-steps", type=int, default=2000, help="GAN steps")
    parser.add_argument("--inversion-steps", type=int, default=800, help="inverter steps")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.0025, help="Adam, GAN stage")
    parser.add_argument("--inversion-lr", type=float, default=1e-3, help="Adam, inverter")
    parser.add_argument("--ema-decay", type=float, default=0.995,
                        help="EMA of the generator per step")
    parser.add_argument("--precision", default="bf16",
                        help="autocast precision of the forward passes (R1 runs in float32)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", default="runs/stylegan2_demo")
    parser.add_argument("--checkpoint-every", type=int, default=50)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="stop cleanly after this many seconds (resume later)")
    parser.add_argument("--out", default=str(DEMO_WEIGHTS), help="where to save the model")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    cohort = la.datasets.load_demo_cohort()
    train_rows, held_out_rows = la.datasets.demo_split(cohort.metadata)
    images = cohort.images[train_rows]
    print(f"demo cohort: {images.shape}; cpu64: {args.gan_steps} GAN + "
          f"{args.inversion_steps} inverter steps of {args.batch_size} ({args.precision})",
          flush=True)
    checkpoint_dir = Path(args.checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    enc = StyleGAN2Encoder(preset="cpu64")
    sizes = {name: sum(p.numel() for p in getattr(enc, name).parameters())
             for name in ("generator", "discriminator", "inverter")}
    print(f"parameters: {sizes}", flush=True)
    t0, cpu0 = time.perf_counter(), time.process_time()
    enc.fit(ArrayDataset(images), max_steps=args.gan_steps + args.inversion_steps,
            inversion_steps=args.inversion_steps, inversion_lr=args.inversion_lr,
            batch_size=args.batch_size, lr=args.lr, ema_decay=args.ema_decay,
            precision=args.precision, checkpoint_dir=checkpoint_dir,
            checkpoint_every=args.checkpoint_every, resume=args.resume,
            time_limit=args.time_limit, random_state=args.seed, log_every=25, verbose=False)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    ledger_path = checkpoint_dir / "cpu_seconds.json"
    ledger = json.loads(ledger_path.read_text()) if ledger_path.is_file() and args.resume \
        else {"chunks": []}
    ledger["chunks"].append({"cpu_seconds": round(cpu_seconds, 1),
                             "wall_seconds": round(seconds, 1),
                             "stop_reason": enc.history_.attrs["stop_reason"]})
    ledger["cpu_seconds"] = round(sum(c["cpu_seconds"] for c in ledger["chunks"]), 1)
    ledger["wall_seconds"] = round(sum(c["wall_seconds"] for c in ledger["chunks"]), 1)
    ledger_path.write_text(json.dumps(ledger, indent=1) + "\n")
    history = enc.history_
    shown = [c for c in ("stage", "step", "loss_g", "loss_d", "augment_p", "mse", "feature",
                         "images_per_s") if c in history]
    print(history[shown].tail(12).to_string(index=False), flush=True)
    print(f"this chunk: {seconds / 60:.1f} min wall, {cpu_seconds / 60:.1f} CPU-min; all "
          f"chunks: {ledger['cpu_seconds'] / 60:.1f} CPU-min", flush=True)
    if history.attrs["stop_reason"] != "max_steps":
        print("stopped at the time limit; run again with --resume to continue", flush=True)
        return 3

    out = Path(args.out)
    # float16 halves the file; loading casts the weights back to float32
    enc.to(torch.float16).save_pretrained(out)
    enc.to(torch.float32)
    subjects = cohort.metadata["subject"].astype(str)
    split = {"name": la.datasets.DEMO_SPLIT_NAME,
             "rule": "latentaudit.datasets.demo_split(held_out=0.2, random_state=0)",
             "train_subjects": subjects.iloc[train_rows].tolist(),
             "held_out_subjects": subjects.iloc[held_out_rows].tolist()}
    (out / "split.json").write_text(json.dumps(split, indent=1) + "\n")
    history.to_csv(checkpoint_dir / "history.csv", index=False)
    summary = {"gan_steps": args.gan_steps, "inversion_steps": args.inversion_steps,
               "batch_size": args.batch_size, "lr": args.lr,
               "inversion_lr": args.inversion_lr, "ema_decay": args.ema_decay,
               "precision": args.precision, "threads": args.threads, "seed": args.seed,
               "cpu_seconds": ledger["cpu_seconds"], "wall_seconds": ledger["wall_seconds"],
               "chunks": len(ledger["chunks"]), "parameters": sizes,
               "torch": torch.__version__}
    (checkpoint_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    print(f"saved to {out} ({size:.1f} MB)", flush=True)
    z = StyleGAN2Encoder.from_pretrained(out).encode(cohort.images, batch_size=128).numpy()
    print(f"w: {z.shape}, mean |w| {np.abs(z).mean():.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
