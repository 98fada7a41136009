"""Benchmark: train the β-VAE on the demo cohort for a fixed CPU budget (steps, optionally
capped by minutes).

Reports
- held-out reconstruction MSE (and PSNR) against predicting the training mean image,
- cross-validated linear-probe accuracy (standardised logistic regression) of ``site`` and
  ``sex`` from the embedding (the posterior mean), next to the same probe on an untrained
  β-VAE's embedding and on the raw pixels' principal components, and chance,
- training and encoding throughput (images/s).

Run from the repository root, e.g.::

    .venv/bin/python benchmarks/bench_betavae.py --steps 1500

The budget is counted in optimiser steps so that the figures do not depend on how busy the
machine is; ``--minutes`` caps the wall-clock time as well.

Everything is printed; ``--json PATH`` also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import latentaudit as la
from latentaudit.data import ArrayDataset
from latentaudit.encoders import BetaVAEEncoder


def probe(features: np.ndarray, labels: np.ndarray, seed: int) -> tuple[float, float]:
    """Mean and standard deviation of 5-fold stratified CV accuracy."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    scores = cross_val_score(model, features, labels, cv=folds, scoring="accuracy")
    return float(scores.mean()), float(scores.std())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500, help="training steps")
    parser.add_argument("--minutes", type=float, default=None,
                        help="stop earlier when this wall-clock time is spent")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--beta", type=float, default=4.0)
    parser.add_argument("--latent-dim", type=int, default=512)
    parser.add_argument("--channels", type=str, default="16,32,64,128,256")  # the defaults
    parser.add_argument("--blocks-per-level", type=int, default=0)
    parser.add_argument("--hessian-weight", type=float, default=0.0)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", type=str, default=None)
    parser.add_argument("--json", type=str, default=None, help="also write the results here")
    parser.add_argument("--progress", action="store_true", help="show a progress bar")
    parser.add_argument("--save", type=str, default=None, help="save the trained model here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    cohort = la.datasets.load_demo_cohort()
    images = cohort.images
    meta = cohort.metadata
    cap = f", at most {args.minutes} min" if args.minutes else ""
    print(f"torch threads {args.threads}; training budget {args.steps} steps{cap}")
    print(f"demo cohort: {images.shape[0]} images of {images.shape[1:]}, "
          f"sites {sorted(meta['site'].unique())}")
    train_idx, test_idx = train_test_split(np.arange(len(images)), test_size=args.test_fraction,
                                           stratify=meta["site"], random_state=args.seed)
    train_images, test_images = images[train_idx], images[test_idx]

    torch.manual_seed(args.seed)
    channels = tuple(int(c) for c in args.channels.split(","))
    vae = BetaVAEEncoder(spatial_dims=2, in_channels=1, image_size=images.shape[-1],
                         latent_dim=args.latent_dim, channels=channels,
                         blocks_per_level=args.blocks_per_level, beta=args.beta,
                         hessian_weight=args.hessian_weight)
    n_params = sum(p.numel() for p in vae.parameters())
    untrained_z = vae.encode(images, batch_size=128).numpy()
    print(f"BetaVAEEncoder: {n_params / 1e6:.2f} M parameters, channels {channels}, "
          f"blocks_per_level {args.blocks_per_level}, latent_dim {args.latent_dim}, "
          f"beta {args.beta}, hessian_weight {args.hessian_weight}, lr {args.lr}, "
          f"batch {args.batch_size}")

    t0 = time.perf_counter()
    vae.fit(ArrayDataset(train_images), max_steps=args.steps, batch_size=args.batch_size,
            lr=args.lr, time_limit=None if args.minutes is None else 60 * args.minutes,
            checkpoint_dir=args.checkpoint_dir,
            random_state=args.seed, log_every=25, verbose=args.progress)
    train_seconds = time.perf_counter() - t0
    history = vae.history_
    steps = int(history["step"].iloc[-1])
    # Each history row holds the throughput of its window of steps; weight by its time.
    window_steps = history["step"].diff().fillna(history["step"].iloc[0])
    window_seconds = (window_steps * args.batch_size / history["images_per_s"]).sum()
    train_ips = float(steps * args.batch_size / window_seconds)
    print(f"trained {steps} steps ({steps * args.batch_size / len(train_idx):.1f} epochs) in "
          f"{train_seconds:.0f} s; training throughput {train_ips:.1f} images/s")
    print(history[["step", "loss", "recon_mse", "kl"]].iloc[
        np.unique(np.linspace(0, len(history) - 1, 8).astype(int))].to_string(index=False))

    t0 = time.perf_counter()
    recon = vae.reconstruct(test_images, batch_size=128).numpy()
    z = vae.encode(images, batch_size=128).numpy()
    encode_ips = (len(test_images) * 2 + len(images)) / (time.perf_counter() - t0)
    mse = float(np.mean((recon - test_images) ** 2))
    mean_image = train_images.mean(axis=0, keepdims=True)
    mse_mean = float(np.mean((mean_image - test_images) ** 2))
    psnr = 10 * np.log10(4.0 / mse)  # peak-to-peak 2 on [-1, 1]
    active = int((z.std(axis=0) > 0.1).sum())
    print(f"held-out reconstruction MSE {mse:.4f} (PSNR {psnr:.1f} dB) vs mean image "
          f"{mse_mean:.4f}: ratio {mse / mse_mean:.3f}")
    print(f"active latent dimensions (std of the mean > 0.1): {active} of {args.latent_dim}")

    results = {
        "machine": f"{platform.processor() or platform.machine()}, torch "
                   f"{torch.__version__}, {args.threads} threads",
        "train_seconds": round(train_seconds), "steps": steps,
        "batch_size": args.batch_size, "channels": list(channels),
        "parameters_M": round(n_params / 1e6, 2), "beta": args.beta,
        "hessian_weight": args.hessian_weight, "train_images_per_s": round(train_ips, 1),
        "encode_images_per_s": round(encode_ips, 1), "test_mse": round(mse, 5),
        "mean_image_mse": round(mse_mean, 5), "psnr_db": round(psnr, 2),
        "active_dims": active, "probes": {},
    }
    # Raw pixels reduced to as many principal components as the embedding has dimensions
    # (at most 256), so the baseline probe is cheap and of comparable size.
    from sklearn.decomposition import PCA

    pixels = PCA(n_components=min(256, args.latent_dim), random_state=args.seed).fit_transform(
        images.reshape(len(images), -1))
    for column in ("site", "sex"):
        labels = meta[column].to_numpy()
        chance = float(meta[column].value_counts(normalize=True).max())
        row = {"chance": chance}
        for name, feats in (("beta_vae", z), ("untrained", untrained_z),
                            ("pixel_pca", pixels)):
            row[name] = probe(feats, labels, args.seed)
        results["probes"][column] = row
        print(f"probe {column}: trained β-VAE {row['beta_vae'][0]:.3f} ± "
              f"{row['beta_vae'][1]:.3f}, untrained {row['untrained'][0]:.3f}, pixel PCA "
              f"{row['pixel_pca'][0]:.3f}, chance {chance:.3f}")
    # The ground truth, which only benchmarks read: flipped sex labels cap the accuracy of
    # any probe of the given sex; sites A and D share one protocol, so a probe that finds
    # both artefacts but cannot tell A from D scores 0.75 on site.
    truth = cohort.truth
    flipped = float(truth["sex_flipped"].mean())
    true_sex = truth["true_sex"].to_numpy()
    acc_true = probe(z, true_sex, args.seed)
    results["probes"]["sex"]["beta_vae_vs_true_sex"] = acc_true
    results["sex_flipped_rate"] = flipped
    print(f"{flipped:.1%} of sex labels are flipped; the trained β-VAE probed against the true "
          f"sex: {acc_true[0]:.3f} ± {acc_true[1]:.3f}")
    if args.save:
        vae.save_pretrained(args.save)
        print(f"model saved to {args.save}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return results


if __name__ == "__main__":
    main()
