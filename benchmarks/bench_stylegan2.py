"""Benchmark: the StyleGAN2 encoder on the demo cohort, beside the Diffusion Autoencoder and
the β-VAE, and the speed of its training step.

Two sub-commands, run from the repository root:

``evaluate`` (default) evaluates the shipped demo model (``StyleGAN2Encoder.from_pretrained(
"demo")``, trained by ``scripts/train_demo_stylegan2.py`` on the training part of
:func:`latentaudit.datasets.demo_split`) on the *held-out* part, and the shipped DAE and a
β-VAE trained on the same training part for a given CPU budget the same way::

    .venv/bin/python benchmarks/bench_stylegan2.py evaluate --vae-cpu-minutes 60

It reports reconstruction PSNR on held-out images through the generative protocol
(``decode(encode(x), invert(x))``; for StyleGAN2 also with per-image refinement and from
``w`` alone with random noise), the acceptance check's figure (the first 300 images plus
fresh noise), cross-validated linear-probe accuracy of ``site`` and ``sex`` (all 2,000
images, and the 400 held-out ones alone) next to raw-pixel PCA and chance, and encoding
throughput.

``speed`` times our GAN training step (``gan_step`` through the loop's ``StepContext``,
plus the generator's EMA) at the ``cpu64`` configuration, the half of the comparison with
the reference implementation that lives in the repository::

    .venv/bin/python benchmarks/bench_stylegan2.py speed --steps 16 --threads 2

``--json PATH`` writes the figures; ``--figure PATH`` (evaluate) writes a montage.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA

import latentaudit as la
from latentaudit.encoders import BetaVAEEncoder
from latentaudit.encoders.dae import DAEEncoder
from latentaudit.encoders.stylegan2 import StyleGAN2Encoder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dae import probe, psnr, train_for_cpu_budget


def protocol_psnr(encoder, images: np.ndarray, steps=None, batch_size: int = 32) -> float:
    """PSNR of ``decode(encode(x), invert(x))``: the generative protocol's round trip."""
    x = torch.from_numpy(images)
    z = encoder.encode(x, batch_size=batch_size)
    codes = encoder.invert(x, steps=steps, batch_size=batch_size)
    return psnr(encoder.decode(z, codes, steps=steps, batch_size=batch_size).numpy(), images)


def probes(features: dict, meta, rows: np.ndarray | None, seed: int) -> dict:
    """5-fold CV accuracy (mean, std) of every feature set for site and sex (on ``rows``)."""
    out = {}
    for column in ("site", "sex"):
        labels = meta[column].to_numpy() if rows is None else meta[column].to_numpy()[rows]
        row = {"chance": round(float(np.unique(labels, return_counts=True)[1].max()
                                     / len(labels)), 4)}
        for name, feats in features.items():
            feats = feats if rows is None else feats[rows]
            row[name] = [round(v, 4) for v in probe(feats, labels, seed)]
        out[column] = row
    return out


def evaluate_stylegan2(enc: StyleGAN2Encoder, images, held_out, args) -> dict:
    results = {}
    x_held = images[held_out]
    t0 = time.perf_counter()
    w_all = enc.encode(images, batch_size=128).numpy()
    results["encode_images_per_s"] = round(len(images) / (time.perf_counter() - t0), 1)
    results["held_out_psnr_db"] = round(protocol_psnr(enc, x_held), 2)
    sub = x_held[:args.n_refine]
    t0 = time.perf_counter()
    results["held_out_refined_psnr_db"] = round(protocol_psnr(enc, sub, args.refine_steps), 2)
    results["refine_seconds_per_image"] = round((time.perf_counter() - t0) / len(sub), 3)
    results["refine_steps"] = args.refine_steps
    results["held_out_unrefined_psnr_db_same_images"] = round(protocol_psnr(enc, sub), 2)
    g = torch.Generator().manual_seed(args.seed)
    from_w = enc.decode(torch.from_numpy(w_all[held_out]), generator=g).numpy()
    results["held_out_w_only_random_noise_psnr_db"] = round(psnr(from_w, x_held), 2)
    mean_image = images[np.setdiff1d(np.arange(len(images)), held_out)].mean(0)
    results["held_out_mean_image_psnr_db"] = round(psnr(
        np.broadcast_to(mean_image, x_held.shape), x_held), 2)
    # the acceptance check's figure: the first 300 images plus fresh noise
    x300 = torch.as_tensor(images[:300])
    noisy = (x300 + 0.02 * torch.randn(x300.shape, generator=torch.Generator()
                                       .manual_seed(123))).clamp(-1, 1).numpy()
    results["check_first300_fresh_noise_psnr_db"] = round(protocol_psnr(enc, noisy), 2)
    return results, w_all


def run_evaluate(args) -> dict:
    cohort = la.datasets.load_demo_cohort()
    images, meta = np.asarray(cohort.images, np.float32), cohort.metadata
    train_rows, held_out = la.datasets.demo_split(meta)
    enc = StyleGAN2Encoder.from_pretrained(args.pretrained)
    results = {"mode": "evaluate", "model": str(args.pretrained),
               "held_out_images": int(len(held_out))}
    summary = Path(args.summary)
    if summary.is_file():
        results["stylegan2_training"] = json.loads(summary.read_text())
    sg, w_all = evaluate_stylegan2(enc, images, held_out, args)
    results["stylegan2"] = sg
    features = {"stylegan2": w_all,
                "untrained_stylegan2": StyleGAN2Encoder.from_config(enc.config).encode(
                    images, batch_size=128).numpy(),
                "pixel_pca": PCA(n_components=256, random_state=args.seed).fit_transform(
                    images.reshape(len(images), -1))}
    if not args.skip_dae:
        dae = DAEEncoder.from_pretrained("demo")
        sub = held_out[:args.n_dae]
        results["dae"] = {"held_out_psnr_db": round(protocol_psnr(dae, images[sub], 20), 2),
                          "held_out_images": int(len(sub)), "ddim_steps": 20}
        features["dae"] = dae.encode(images, batch_size=128).numpy()
    if args.vae_cpu_minutes > 0:
        torch.manual_seed(args.seed)
        vae = BetaVAEEncoder(spatial_dims=2, in_channels=1, image_size=images.shape[-1],
                             latent_dim=512)
        steps, cpu, wall = train_for_cpu_budget(
            vae, la.data.ArrayDataset(images[train_rows]), 60 * args.vae_cpu_minutes,
            f"{args.work_dir}/vae", slice_steps=100, batch_size=32,
            random_state=args.seed, **vae.default_training)
        results["beta_vae"] = {"steps": steps, "cpu_minutes": round(cpu / 60, 1),
                               "wall_minutes": round(wall / 60, 1),
                               "held_out_psnr_db": round(protocol_psnr(vae, images[held_out]),
                                                         2)}
        features["beta_vae"] = vae.encode(images, batch_size=128).numpy()
    results["probes_all_2000"] = probes(features, meta, None, args.seed)
    results["probes_held_out"] = probes(features, meta, held_out, args.seed)
    truth = cohort.truth
    if "sex_flipped" in truth:
        true_sex = np.where(truth["sex_flipped"].to_numpy(),
                            np.where(meta["sex"].to_numpy() == "F", "M", "F"),
                            meta["sex"].to_numpy())
        results["probe_true_sex_stylegan2"] = [round(v, 4) for v in
                                               probe(w_all, true_sex, args.seed)]
    if args.figure:
        montage(enc, images, held_out, args)
    return results


def montage(enc, images, held_out, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = 8
    x = torch.from_numpy(images[held_out[:k]])
    w = enc.encode(x)
    rows = [("held-out input", x.numpy()),
            ("decode(encode(x), invert(x))", enc.decode(w, enc.invert(x)).numpy()),
            (f"... invert(x, steps={args.refine_steps})",
             enc.decode(w, enc.invert(x, steps=args.refine_steps)).numpy()),
            ("w alone, random noise",
             enc.decode(w, generator=torch.Generator().manual_seed(0)).numpy()),
            ("samples, truncation 0.7",
             enc.sample(k, generator=torch.Generator().manual_seed(1), truncation=0.7)
             .numpy())]
    fig, axes = plt.subplots(len(rows), k, figsize=(1.4 * k, 1.5 * len(rows)))
    for r, (title, imgs) in enumerate(rows):
        for c in range(k):
            axes[r, c].imshow(imgs[c, 0], cmap="gray", vmin=-1, vmax=1)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_title(title, loc="left", fontsize=8)
    fig.tight_layout()
    Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.figure, dpi=110)
    print(f"figure written to {args.figure}")


def run_speed(args) -> dict:
    """Our half of the comparison with the reference: GAN training steps at cpu64."""
    from latentaudit.encoders.stylegan2.steps import gan_step
    from latentaudit.training import StepContext, TrainingConfig

    torch.manual_seed(0)
    enc = StyleGAN2Encoder(preset="cpu64", augment_p=0.0, ada_target=None)
    enc.to(memory_format=torch.channels_last)
    batch = args.batch_size
    config = TrainingConfig(max_steps=10 ** 6, batch_size=batch, lr=0.0025,
                            betas=(0.0, 0.99), grad_clip=None, precision=args.precision)
    ctx = StepContext(config, torch.device("cpu"), torch.Generator().manual_seed(0),
                      enc.configure_optimizers(config), None, args.precision, False,
                      lambda what, value: RuntimeError(f"{what} became {value}"))
    ema = {n: p.detach().clone() for n, p in enc.generator.named_parameters()}
    reals = (torch.rand(args.steps + 1, batch, 1, 64, 64) * 2 - 1).contiguous(
        memory_format=torch.channels_last)

    def step(i):
        gan_step(enc, reals[i], i, ctx)
        params = dict(enc.generator.named_parameters())
        with torch.no_grad():
            torch._foreach_lerp_(list(ema.values()), [params[n].detach() for n in ema],
                                 1 - 0.995)

    step(0)  # warm-up (oneDNN primitives; R1 at step 0)
    wall, cpu = [], []
    for i in range(1, args.steps + 1):  # step 16 brings the lazy R1 again
        w, c = time.perf_counter(), time.process_time()
        step(i)
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return {"mode": "speed", "batch_size": batch, "precision": args.precision,
            "parameters_g_d": sum(p.numel() for p in enc.generator.parameters())
            + sum(p.numel() for p in enc.discriminator.parameters()),
            "seconds_per_step_mean": round(statistics.mean(wall), 3),
            "cpu_seconds_per_step_mean": round(statistics.mean(cpu), 3),
            "images_per_s": round(batch / statistics.mean(wall), 2)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="evaluate", choices=("evaluate", "speed"))
    parser.add_argument("--pretrained", default="demo", help="evaluate: the model to load")
    parser.add_argument("--summary", default="runs/stylegan2_demo/summary.json",
                        help="evaluate: the summary written by train_demo_stylegan2.py")
    parser.add_argument("--vae-cpu-minutes", type=float, default=0.0,
                        help="evaluate: CPU budget of the β-VAE (0: no β-VAE)")
    parser.add_argument("--skip-dae", action="store_true", help="evaluate: leave out the DAE")
    parser.add_argument("--n-dae", type=int, default=100,
                        help="evaluate: held-out images for the DAE's reconstruction")
    parser.add_argument("--refine-steps", type=int, default=50,
                        help="evaluate: per-image refinement steps of invert")
    parser.add_argument("--n-refine", type=int, default=64,
                        help="evaluate: held-out images refined")
    parser.add_argument("--steps", type=int, default=16, help="speed: timed steps")
    parser.add_argument("--batch-size", type=int, default=16, help="speed: images per step")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                        help="speed: autocast precision")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default="runs/bench_stylegan2")
    parser.add_argument("--figure", default=None, help="evaluate: write a montage PNG here")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {"evaluate": run_evaluate, "speed": run_speed}[args.mode](args)
    results["machine"] = (f"{platform.processor() or platform.machine()}, torch "
                          f"{torch.__version__}, {args.threads} threads")
    results["date"] = time.strftime("%Y-%m-%d")
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
