"""Benchmark: the 3-D Diffusion Autoencoder on the 3-D demo cohort, reconstruction of
held-out volumes.

The cohort is ``la.datasets.load_demo_cohort(size, spatial_dims=3)`` (400 whole heads,
made on first use and cached); its fixed split is ``la.datasets.demo_split`` of its
metadata (320 training, 80 held-out volumes, stratified by site x sex).  A DAE (preset
``tiny3d`` at the cohort's size) trains on the training volumes, is saved and loaded again,
and reconstructs the held-out volumes (DDIM inversion to ``x_T``, then decoding).  Printed:
PSNR (peak-to-peak range 2) of the reconstructions and of semantic-only decoding (random
``x_T``), next to predicting the training volumes' mean, and the times.  From the
repository root::

    .venv/bin/python benchmarks/bench_dae_3d.py --size 16 --steps 400 --threads 2

``--json PATH`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time

import numpy as np
import torch

import latentaudit as la
from latentaudit.encoders import DAEEncoder


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-volume PSNR in dB for images in [-1, 1] (peak-to-peak 2)."""
    mse = ((a - b) ** 2).reshape(len(a), -1).mean(axis=1)
    return 10 * np.log10(4.0 / mse)


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    cohort = la.datasets.load_demo_cohort(args.size, spatial_dims=3)
    train_rows, held_out = la.datasets.demo_split(cohort.metadata)
    held_out = held_out[:args.n_eval] if args.n_eval else held_out
    loaded_s = time.perf_counter() - start
    images = cohort.images
    enc = DAEEncoder.from_preset(args.preset, image_size=args.size)
    cpu = time.process_time()
    start = time.perf_counter()
    enc.fit(images[train_rows], max_steps=args.steps, batch_size=args.batch_size, lr=args.lr,
            random_state=0)
    train_s, train_cpu = time.perf_counter() - start, time.process_time() - cpu
    with tempfile.TemporaryDirectory() as folder:
        enc.save_pretrained(folder)
        loaded = la.encoders.load_pretrained(folder)
    x = torch.from_numpy(images[held_out])
    same = bool(torch.equal(loaded.encode(x[:4]), enc.encode(x[:4])))
    start = time.perf_counter()
    rec = loaded.reconstruct(x, steps=args.sample_steps).numpy()
    rec_s = time.perf_counter() - start
    semantic = loaded.decode(loaded.encode(x), steps=args.sample_steps,
                             generator=torch.Generator().manual_seed(0)).numpy()
    mean = np.broadcast_to(images[train_rows].mean(axis=0), x.shape)
    out = {
        "cohort": f"load_demo_cohort({args.size}, spatial_dims=3)",
        "train_volumes": len(train_rows), "held_out_volumes": len(held_out),
        "preset": args.preset, "steps": args.steps, "batch_size": args.batch_size,
        "lr": args.lr, "sample_steps": args.sample_steps,
        "parameters": sum(p.numel() for p in enc.parameters()),
        "saved_and_loaded_encode_identically": same,
        "psnr_reconstruction_mean": float(psnr(rec, x.numpy()).mean()),
        "psnr_reconstruction_min": float(psnr(rec, x.numpy()).min()),
        "psnr_semantic_only_mean": float(psnr(semantic, x.numpy()).mean()),
        "psnr_training_mean_volume": float(psnr(mean, x.numpy()).mean()),
        "cohort_load_s": loaded_s, "train_s": train_s, "train_cpu_s": train_cpu,
        "reconstruct_s_per_volume": rec_s / len(held_out),
        "threads": args.threads, "machine": f"{platform.machine()}, {platform.processor()}",
        "torch": torch.__version__,
    }
    print(f"3-D DAE ({args.preset}, {out['parameters']:,} parameters) on the 3-D demo "
          f"cohort at {args.size}^3: trained {args.steps} steps of {args.batch_size} on "
          f"{len(train_rows)} volumes in {train_s:.0f} s ({train_cpu:.0f} CPU-s); saved and "
          f"loaded (same codes: {same})")
    print(f"held-out reconstruction ({len(held_out)} volumes, {args.sample_steps} DDIM steps): "
          f"PSNR {out['psnr_reconstruction_mean']:.1f} dB (min "
          f"{out['psnr_reconstruction_min']:.1f}); semantic-only decoding "
          f"{out['psnr_semantic_only_mean']:.1f} dB; predicting the training mean volume "
          f"{out['psnr_training_mean_volume']:.1f} dB; {out['reconstruct_s_per_volume']:.2f} "
          f"s per volume")
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=16, choices=(16, 32, 48, 64))
    parser.add_argument("--preset", default="tiny3d")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--sample-steps", type=int, default=20)
    parser.add_argument("--n-eval", type=int, default=0, help="held-out volumes (0: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    out = run(args)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(out, handle, indent=2)
    return out


if __name__ == "__main__":
    main()
