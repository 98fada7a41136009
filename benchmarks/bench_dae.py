"""Benchmark: the Diffusion Autoencoder (``cpu64``) on the demo cohort, next to the β-VAE
trained for the same CPU budget, and the speed of one ``paper64`` training step.

Three sub-commands, run from the repository root:

``evaluate`` (default) evaluates a trained DAE, by default the shipped demo model
(``DAEEncoder.from_pretrained("demo")``, trained by ``scripts/train_demo_dae.py`` on the
1,600 training rows of :func:`latentaudit.datasets.demo_split`), on images drawn from the
400 held-out rows, and can train a β-VAE on the same training rows for a given CPU time::

    .venv/bin/python benchmarks/bench_dae.py evaluate --vae-cpu-minutes 60

``train`` trains ``cpu64`` from scratch for a fixed CPU budget (CPU seconds of this
process, so other load on the machine does not change the budget), then evaluates it the
same way::

    .venv/bin/python benchmarks/bench_dae.py train --cpu-minutes 60

Both report stochastic reconstruction PSNR (DDIM inversion to ``x_T``, then decoding),
the round-trip error next to its first-order bound, semantic-only decoding (random
``x_T``) re-encoded to ``z_sem`` (cosine similarity to the original, against random pairs
of images), cross-validated linear-probe accuracy of ``site`` and ``sex`` from ``z_sem``
next to the β-VAE's, an untrained DAE's and raw-pixel PCA's, and training throughput.

``speed`` times our ``paper64`` training step (forward, noise-prediction MSE, backward,
Adam step; batch 16, 1x64x64), the configuration compared with the reference
implementation in ``docs/benchmarks.md``::

    .venv/bin/python benchmarks/bench_dae.py speed --steps 5 --threads 2

``--json PATH`` writes the figures; ``--figure PATH`` (evaluate/train) writes a montage.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import latentaudit as la
from latentaudit.data import ArrayDataset
from latentaudit.encoders import BetaVAEEncoder
from latentaudit.encoders.dae import DAEEncoder
from latentaudit.training import train


def probe(features: np.ndarray, labels: np.ndarray, seed: int) -> tuple[float, float]:
    """Mean and standard deviation of 5-fold stratified CV accuracy of a standardised
    logistic regression (the probe of ``bench_betavae.py``)."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    scores = cross_val_score(model, features, labels, cv=folds, scoring="accuracy")
    return float(scores.mean()), float(scores.std())


def train_for_cpu_budget(model, dataset, cpu_seconds: float, checkpoint_dir: str,
                         slice_steps: int, **options) -> tuple[int, float, float]:
    """Train ``model`` with :func:`latentaudit.training.train` until this process has
    spent ``cpu_seconds`` of CPU time, in slices that resume from a checkpoint (an exact
    continuation).  Returns (steps, CPU seconds, wall seconds)."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    steps = 0
    histories = []
    while time.process_time() - cpu0 < cpu_seconds:
        steps += slice_steps
        history = train(model, dataset, max_steps=steps, checkpoint_dir=checkpoint_dir,
                        resume=True, verbose=False, **options)
        histories.append(history)
    model.history_ = histories[-1] if histories else None
    return steps, time.process_time() - cpu0, time.perf_counter() - wall0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB for images in [-1, 1] (peak-to-peak 2)."""
    return float(10 * np.log10(4.0 / np.mean((a - b) ** 2)))


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def evaluate(dae: DAEEncoder, images: np.ndarray, meta, args, vae=None) -> dict:
    """Reconstruction and semantic decoding on ``args.n_eval`` images drawn from the
    held-out rows of ``demo_split``; linear probes on all images (cross-validated)."""
    rng = np.random.default_rng(args.seed)
    _, held_out = la.datasets.demo_split(meta)
    sub = np.sort(rng.choice(held_out, size=min(args.n_eval, len(held_out)), replace=False))
    x = torch.from_numpy(images[sub])
    results = {}

    t0 = time.perf_counter()
    z_all = dae.encode(images, batch_size=128).numpy()
    encode_ips = len(images) / (time.perf_counter() - t0)
    z = torch.from_numpy(z_all[sub])

    # Stochastic reconstruction: DDIM inversion to x_T, then DDIM decoding.
    t0 = time.perf_counter()
    with torch.no_grad():
        x_T = []
        bounds = []
        for start in range(0, len(x), 32):
            xb, zb = x[start:start + 32], z[start:start + 32]
            code, bound = dae.diffusion.ddim_invert(dae._denoiser(zb), xb, args.steps,
                                                    return_bound=True)
            x_T.append(code)
            bounds.append(bound)
        x_T, bounds = torch.cat(x_T), torch.cat(bounds)
    recon = dae.decode(z, x_T, args.steps, batch_size=32).numpy()
    recon_seconds = time.perf_counter() - t0
    err = np.linalg.norm((recon - images[sub]).reshape(len(sub), -1), axis=1)
    results["reconstruction_psnr_db"] = round(psnr(recon, images[sub]), 2)
    results["roundtrip_rms_error"] = round(float(np.mean(err) / math.sqrt(images[0].size)), 4)
    results["roundtrip_error_within_bound"] = float(np.mean(err <= bounds.numpy()))
    results["roundtrip_bound_rms"] = round(
        float(bounds.mean()) / math.sqrt(images[0].size), 4)
    results["reconstruct_seconds_per_image"] = round(recon_seconds / len(sub), 3)

    # Semantic-only decoding: the same z_sem with random x_T, encoded again.
    g = torch.Generator().manual_seed(args.seed)
    semantic = dae.decode(z, None, args.steps, generator=g, batch_size=32).numpy()
    z_again = dae.encode(semantic, batch_size=128).numpy()
    mean, std = dae.latent_mean.numpy(), dae.latent_std.numpy()
    pairs = rng.permutation(len(sub))
    results["semantic_decode_cosine"] = round(float(cosine(z.numpy(), z_again).mean()), 4)
    results["semantic_decode_cosine_normalised"] = round(float(cosine(
        (z.numpy() - mean) / std, (z_again - mean) / std).mean()), 4)
    results["random_pair_cosine"] = round(float(cosine(z.numpy(), z.numpy()[pairs]).mean()), 4)
    results["random_pair_cosine_normalised"] = round(float(cosine(
        (z.numpy() - mean) / std, (z.numpy()[pairs] - mean) / std).mean()), 4)
    results["semantic_decode_psnr_db"] = round(psnr(semantic, images[sub]), 2)
    results["encode_images_per_s"] = round(encode_ips, 1)

    # Linear probes.
    untrained = DAEEncoder.from_config(dae.config)
    untrained_z = untrained.encode(images, batch_size=128).numpy()
    pixels = PCA(n_components=256, random_state=args.seed).fit_transform(
        images.reshape(len(images), -1))
    features = {"dae": z_all, "untrained_dae": untrained_z, "pixel_pca": pixels}
    if vae is not None:
        features["beta_vae"] = vae.encode(images, batch_size=128).numpy()
    results["probes"] = {}
    for column in ("site", "sex"):
        labels = meta[column].to_numpy()
        row = {"chance": float(meta[column].value_counts(normalize=True).max())}
        for name, feats in features.items():
            row[name] = [round(v, 4) for v in probe(feats, labels, args.seed)]
        results["probes"][column] = row
    if args.figure:
        montage(dae, images, sub, recon, semantic, args)
    return results


def montage(dae, images, sub, recon, semantic, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = 8
    rows = [("input", images[sub[:k]]), ("reconstruction (z_sem, x_T)", recon[:k]),
            ("z_sem, random x_T", semantic[:k])]
    inter = dae.interpolate(images[sub[:1]], images[sub[1:2]], np.linspace(0, 1, k),
                            steps=args.steps)[0].numpy()
    rows.append((f"interpolation {sub[0]} -> {sub[1]}", inter))
    if int(dae.latent_ddim_trained):
        rows.append(("latent DDIM samples",
                     dae.sample(k, args.steps, generator=torch.Generator().manual_seed(1))
                     .numpy()))
    fig, axes = plt.subplots(len(rows), k, figsize=(1.4 * k, 1.5 * len(rows)))
    for r, (title, imgs) in enumerate(rows):
        for c in range(k):
            ax = axes[r, c]
            ax.imshow(imgs[c, 0], cmap="gray", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_title(title, loc="left", fontsize=8)
    fig.tight_layout()
    Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.figure, dpi=110)
    print(f"figure written to {args.figure}")


def train_vae(images, cpu_seconds, args) -> tuple[BetaVAEEncoder, dict]:
    torch.manual_seed(args.seed)
    vae = BetaVAEEncoder(spatial_dims=2, in_channels=1, image_size=images.shape[-1],
                         latent_dim=512)
    steps, cpu, wall = train_for_cpu_budget(
        vae, ArrayDataset(images), cpu_seconds, f"{args.work_dir}/vae", slice_steps=100,
        batch_size=32, random_state=args.seed, **{**vae.default_training})
    info = {"steps": steps, "cpu_minutes": round(cpu / 60, 1), "wall_minutes": round(wall / 60, 1),
            "images_per_cpu_s": round(steps * 32 / cpu, 2)}
    print(f"β-VAE: {steps} steps in {cpu / 60:.1f} CPU-min ({wall / 60:.1f} min wall)",
          flush=True)
    return vae, info


def run_evaluate(args) -> dict:
    cohort = la.datasets.load_demo_cohort()
    images, meta = cohort.images, cohort.metadata
    dae = DAEEncoder.from_pretrained(args.pretrained)
    results = {"mode": "evaluate", "model": str(args.pretrained)}
    summary = Path(args.summary)
    if summary.is_file():
        results["dae_training"] = json.loads(summary.read_text())
    train_rows, held_out = la.datasets.demo_split(meta)
    results["evaluated_on"] = f"held-out rows of demo_split ({len(held_out)})"
    vae = None
    if args.vae_cpu_minutes > 0:
        vae, results["vae_training"] = train_vae(images[train_rows],
                                                 60 * args.vae_cpu_minutes, args)
    results.update(evaluate(dae, images, meta, args, vae))
    return results


def run_train(args) -> dict:
    cohort = la.datasets.load_demo_cohort()
    images, meta = cohort.images, cohort.metadata
    train_rows, _ = la.datasets.demo_split(meta)
    torch.manual_seed(args.seed)
    dae = DAEEncoder.from_preset("cpu64")
    steps, cpu, wall = train_for_cpu_budget(
        dae, ArrayDataset(images[train_rows]), 60 * args.cpu_minutes, f"{args.work_dir}/dae",
        slice_steps=50, batch_size=32, lr=2e-4, ema_decay=0.995, warmup_steps=100,
        precision=args.precision, channels_last=False, random_state=args.seed)
    dae.compute_latent_stats(images[train_rows], batch_size=128)
    results = {"mode": "train", "dae_training": {
        "steps": steps, "cpu_minutes": round(cpu / 60, 1), "wall_minutes": round(wall / 60, 1),
        "images_per_cpu_s": round(steps * 32 / cpu, 2), "precision": args.precision}}
    print(f"DAE: {steps} steps in {cpu / 60:.1f} CPU-min ({wall / 60:.1f} min wall)", flush=True)
    vae, results["vae_training"] = train_vae(images[train_rows], cpu, args)
    results.update(evaluate(dae, images, meta, args, vae))
    return results


def run_speed(args) -> dict:
    """Our half of the comparison with the reference: one paper64 training step."""
    torch.manual_seed(0)
    enc = DAEEncoder.from_preset("paper64", latent_ddim=False)
    if args.channels_last:
        enc.to(memory_format=torch.channels_last)
    n_params = sum(p.numel() for p in enc.parameters())
    opt = torch.optim.Adam(enc.parameters(), lr=1e-4)
    x = torch.rand(16, 1, 64, 64) * 2 - 1
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    generator = torch.Generator().manual_seed(0)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            loss = enc.loss(x, generator=generator)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up (oneDNN primitive creation)
    wall, cpu = [], []
    for _ in range(args.steps):
        w, c = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    result = {"mode": "speed", "parameters": n_params, "batch_size": 16,
              "precision": args.precision, "channels_last": args.channels_last,
              "seconds_per_step_median": round(statistics.median(wall), 3),
              "cpu_seconds_per_step_median": round(statistics.median(cpu), 3),
              "images_per_s": round(16 / statistics.median(wall), 2)}
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="evaluate",
                        choices=("evaluate", "train", "speed"))
    parser.add_argument("--pretrained", default="demo", help="evaluate: the DAE to load")
    parser.add_argument("--summary", default="runs/dae_demo/summary.json",
                        help="evaluate: the training summary written by train_demo_dae.py")
    parser.add_argument("--vae-cpu-minutes", type=float, default=0.0,
                        help="evaluate: CPU budget of the β-VAE (0: no β-VAE)")
    parser.add_argument("--cpu-minutes", type=float, default=60.0,
                        help="train: CPU budget of each model (CPU seconds of this process)")
    parser.add_argument("--precision", default="bf16", help="train/speed: autocast precision")
    parser.add_argument("--channels-last", action="store_true", help="speed: channels-last")
    parser.add_argument("--steps", type=int, default=20,
                        help="evaluate/train: DDIM steps; speed: timed training steps")
    parser.add_argument("--n-eval", type=int, default=200,
                        help="held-out images for reconstruction and semantic decoding")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default="runs/bench_dae")
    parser.add_argument("--figure", default=None, help="write a montage PNG here")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.mode == "speed" and args.precision not in ("fp32", "bf16"):
        parser.error("--precision must be fp32 or bf16")
    runner = {"evaluate": run_evaluate, "train": run_train, "speed": run_speed}[args.mode]
    results = runner(args)
    results["machine"] = (f"{platform.processor() or platform.machine()}, torch "
                          f"{torch.__version__}, {args.threads} threads")
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
