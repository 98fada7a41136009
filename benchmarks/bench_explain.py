"""Benchmark: explain the demo cohort's planted site artefacts.

On the bundled demo cohort (site B: field of view shifted, site C: head-rest, A and D clean)
it measures

- the Explainer's classifier (ResNet10) for site C against the rest: held-out accuracy and
  balanced accuracy, training time;
- where its maps point: the pointing game (the map's maximum inside the planted head-rest
  mask, dilated by 0-2 pixels) on the held-out head-rest images, for every 2-D CAM method,
  and the faithfulness of Grad-CAM (confidence drop when the top pixels are removed,
  against random pixels, and ROAD);
- a three-class classifier (clean, B, C) and the pointing game for both artefacts;
- the mean-difference maps of C and B against the clean sites: share of the significant
  pixels inside the (dilated) planted region, share of the region found, Dice;
- decoded counterfactuals from site B toward the clean sites with a generative encoder (the
  shipped DAE demo weights if present, else a β-VAE trained here): the head's vertical
  centre of mass along the path, against the clean sites' mean.

It writes example pictures to ``docs/images/explain_*.png`` and prints a Markdown section.
Run from the repository root::

    .venv/bin/python benchmarks/bench_explain.py            # about 10 minutes on one core
    .venv/bin/python benchmarks/bench_explain.py --quick    # a smoke run

``--json PATH`` also writes the figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

import latentaudit as la
from latentaudit.explain import (
    Explainer,
    cam_methods,
    counterfactual,
    difference_map,
    overlay,
    pointing_game,
)

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"


def row_centre(images: np.ndarray) -> np.ndarray:
    """Vertical centre of mass (row, 0 = top) of images in [-1, 1], weighted by intensity."""
    w = (np.asarray(images)[:, 0] + 1.0) / 2.0
    rows = np.arange(w.shape[1])[None, :, None]
    return (w * rows).sum(axis=(1, 2)) / w.sum(axis=(1, 2))


def overlap(significant: np.ndarray, region: np.ndarray, dilate: int = 2) -> dict:
    dilated = ndimage.binary_dilation(region, iterations=dilate)
    n_sig = int(significant.sum())
    return {
        "significant_pixels": n_sig,
        "region_pixels": int(region.sum()),
        "inside_dilated_region": float((significant & dilated).sum() / max(n_sig, 1)),
        "region_found": float((significant & region).sum() / max(region.sum(), 1)),
        "dice": float(2 * (significant & region).sum() / max(n_sig + region.sum(), 1)),
    }


def classifier_section(cohort, args, results):
    site = cohort.metadata["site"].to_numpy()
    labels = (site == "C").astype(int)
    t0 = time.perf_counter()
    exp = Explainer(widths=args.widths, max_steps=args.steps, batch_size=32,
                    random_state=args.seed).fit(cohort.images, labels)
    fit_s = time.perf_counter() - t0
    held = exp.test_indices_
    rest_c = held[labels[held] == 1]
    print(f"\nResNet10 {args.widths}, {args.steps} steps: site C vs rest, held-out accuracy "
          f"{exp.accuracy_:.3f} (balanced {exp.balanced_accuracy_:.3f}) on {len(held)} images "
          f"({len(rest_c)} with head-rest); fit {fit_s:.1f} s; maps from {exp.target_layer_} "
          f"{exp.cam_shape_}")
    results["head_rest_classifier"] = {
        "accuracy": exp.accuracy_, "balanced_accuracy": exp.balanced_accuracy_,
        "n_held_out": int(len(held)), "n_head_rest_held_out": int(len(rest_c)),
        "fit_seconds": fit_s, "target_layer": exp.target_layer_,
        "cam_shape": list(exp.cam_shape_)}
    masks = cohort.artefact_masks[rest_c]
    games = {}
    methods = [m for m in cam_methods(2) if m not in args.skip_methods]
    maps_by_method = {}
    for method in methods:
        t0 = time.perf_counter()
        maps = exp.explain(cohort.images[rest_c], target=1, cam=method)
        seconds = time.perf_counter() - t0
        games[method] = {f"tolerance_{t}": float(pointing_game(maps, masks, tolerance=t).mean())
                         for t in (0, 1, 2)}
        games[method]["ms_per_image"] = 1000 * seconds / len(rest_c)
        maps_by_method[method] = maps
        print(f"  {method:>20}: pointing game {games[method]['tolerance_0']:.2f} / "
              f"{games[method]['tolerance_1']:.2f} / {games[method]['tolerance_2']:.2f} "
              f"(tolerance 0/1/2 px), {games[method]['ms_per_image']:.1f} ms/image")
    results["pointing_game"] = games
    faith = {}
    for baseline in ("min", "mean"):
        table = exp.faithfulness(cohort.images[rest_c], target=1, maps=maps_by_method["gradcam"],
                                 fractions=(0.02, 0.05, 0.1, 0.2), baseline=baseline)
        faith[baseline] = table.to_dict(orient="list")
        print(f"  Grad-CAM faithfulness (removed pixels -> image {baseline}):")
        print(table.round(3).to_string(index=False))
    results["faithfulness_gradcam"] = faith
    mean_maps = exp.mean_maps(cohort.images[held], labels[held])
    return exp, rest_c, maps_by_method, mean_maps


def three_class_section(cohort, args, results):
    site = cohort.metadata["site"].to_numpy()
    group = np.where(np.isin(site, ["A", "D"]), "clean", site)
    t0 = time.perf_counter()
    exp = Explainer(widths=args.widths, max_steps=args.steps, batch_size=32,
                    random_state=args.seed).fit(cohort.images, group)
    fit_s = time.perf_counter() - t0
    held = exp.test_indices_
    out = {"classes": exp.classes_.tolist(), "accuracy": exp.accuracy_,
           "balanced_accuracy": exp.balanced_accuracy_, "fit_seconds": fit_s,
           "confusion_matrix": exp.confusion_matrix_.tolist()}
    for artefact_site in ("B", "C"):
        items = held[group[held] == artefact_site]
        maps = exp.explain(cohort.images[items], target=artefact_site)
        out[f"pointing_game_{artefact_site}"] = {
            f"tolerance_{t}": float(pointing_game(maps, cohort.artefact_masks[items],
                                                  tolerance=t).mean()) for t in (0, 1, 2)}
    print(f"\nthree clusters (clean, B, C): held-out accuracy {exp.accuracy_:.3f} (balanced "
          f"{exp.balanced_accuracy_:.3f}); pointing game, tolerance 2 px: B (shift) "
          f"{out['pointing_game_B']['tolerance_2']:.2f}, C (head-rest) "
          f"{out['pointing_game_C']['tolerance_2']:.2f}")
    results["three_class_classifier"] = out


def difference_section(cohort, args, results):
    site = cohort.metadata["site"].to_numpy()
    group = np.where(np.isin(site, ["A", "D"]), "clean", site)
    out, maps = {}, {}
    for source in ("C", "B"):
        region = cohort.artefact_masks[site == source, 0].mean(axis=0) >= 0.1
        for test in ("welch", "permutation"):
            t0 = time.perf_counter()
            diff = difference_map(cohort.images, group, source, "clean", test=test,
                                  n_permutations=args.permutations, random_state=args.seed)
            seconds = time.perf_counter() - t0
            stats = overlap(diff.significant[0], region)
            stats["seconds"] = seconds
            stats["fraction_of_image_significant"] = diff.fraction_significant
            out[f"{source}_vs_clean_{test}"] = stats
            maps[(source, test)] = diff
            print(f"  {source} vs clean, {test:>11}: {diff.fraction_significant:.1%} of pixels "
                  f"significant (FDR 0.05); {stats['inside_dilated_region']:.2f} of them inside "
                  f"the dilated planted region, {stats['region_found']:.2f} of the region found, "
                  f"Dice {stats['dice']:.2f}; {seconds:.2f} s")
    # A and D are both clean: nothing should differ.
    null = difference_map(cohort.images, site, "A", "D")
    out["A_vs_D_welch_fraction_significant"] = null.fraction_significant
    print(f"  A vs D (both clean), welch: {null.fraction_significant:.2%} of pixels significant")
    results["difference_maps"] = out
    return maps


def generative_encoder(cohort, args):
    try:
        from latentaudit.encoders.dae import DAEEncoder

        encoder = DAEEncoder.from_pretrained("demo")
        return encoder, "DAEEncoder.from_pretrained('demo')", 0.0
    except (ImportError, OSError, la.LatentAuditError) as err:
        print(f"\n(no DAE demo weights: {type(err).__name__}: {err}; training a β-VAE)")
    from latentaudit.encoders import BetaVAEEncoder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        encoder = BetaVAEEncoder(image_size=cohort.images.shape[-1], channels=(16, 32, 64, 128),
                                 latent_dim=32, beta=1.0)
    t0 = time.perf_counter()
    encoder.fit(cohort.images, max_steps=args.vae_steps, batch_size=32, verbose=False,
                random_state=args.seed)
    seconds = time.perf_counter() - t0
    what = (f"BetaVAEEncoder(channels=(16, 32, 64, 128), latent_dim=32, beta=1), "
            f"{args.vae_steps} steps of 32 images")
    return encoder, what, seconds


def counterfactual_section(cohort, args, results):
    site = cohort.metadata["site"].to_numpy()
    group = np.where(np.isin(site, ["A", "D"]), "clean", site)
    encoder, what, train_s = generative_encoder(cohort, args)
    z = encoder.encode(cohort.images, batch_size=128).numpy()
    rng = np.random.default_rng(args.seed)
    shifted = rng.choice(np.flatnonzero(site == "B"), args.n_counterfactuals, replace=False)
    clean_centre = float(row_centre(cohort.images[group == "clean"]).mean())
    out = {"encoder": what, "encoder_train_seconds": train_s,
           "clean_sites_mean_row_centre": clean_centre,
           "site_B_mean_row_centre": float(row_centre(cohort.images[site == "B"]).mean())}
    strips = {}
    for direction in ("centroid", "probe"):
        t0 = time.perf_counter()
        cf = counterfactual(encoder, cohort.images[shifted], "B", "clean", embeddings=z,
                            labels=group, direction=direction, steps=5,
                            random_state=args.seed)
        seconds = time.perf_counter() - t0
        centres = np.stack([row_centre(cf.images[:, s]) for s in range(cf.images.shape[1])], 1)
        out[direction] = {
            "alphas": cf.alphas.tolist(), "mean_row_centre_per_step": centres.mean(0).tolist(),
            "moved_up_fraction": float(np.mean(centres[:, -1] < centres[:, 0])),
            "seconds": seconds}
        strips[direction] = cf
        print(f"  counterfactual B -> clean ({direction}): head centre row "
              + " -> ".join(f"{c:.1f}" for c in centres.mean(0))
              + f" (clean sites {clean_centre:.1f}); {out[direction]['moved_up_fraction']:.0%} "
              f"of {len(shifted)} images moved up")
    results["counterfactual"] = out
    return strips, what


# -- pictures ----------------------------------------------------------------------------------
def picture_gradcam(cohort, rest_c, maps_by_method, mean_maps, exp, path):
    import matplotlib.pyplot as plt

    show = rest_c[:5]
    methods = ["gradcam", "hirescam", "gradcam++", "scorecam"]
    methods = [m for m in methods if m in maps_by_method]
    fig, axes = plt.subplots(len(methods) + 1, len(show) + 1,
                             figsize=(2.0 * (len(show) + 1), 2.1 * (len(methods) + 1)))
    for j, i in enumerate(show):
        ax = axes[0, j]
        ax.imshow(cohort.images[i, 0], cmap="gray", vmin=-1, vmax=1)
        ax.contour(cohort.artefact_masks[i, 0], levels=[0.5], colors="red", linewidths=0.8)
        ax.set_title(f"site C #{i}", fontsize=8)
    for r, method in enumerate(methods, start=1):
        for j, i in enumerate(show):
            cam = maps_by_method[method][j]
            ax = axes[r, j]
            ax.imshow(overlay(cohort.images[i], cam))
            ax.contour(cohort.artefact_masks[i, 0], levels=[0.5], colors="white",
                       linewidths=0.6)
            peak = np.unravel_index(np.argmax(cam), cam.shape)
            ax.plot(peak[1], peak[0], marker="+", color="white", markersize=9, mew=2)
        axes[r, 0].set_ylabel(method, fontsize=9)
    axes[0, -1].imshow(mean_maps[1], cmap="jet", vmin=0, vmax=1)
    axes[0, -1].set_title("mean Grad-CAM,\nheld-out site C", fontsize=8)
    axes[1, -1].imshow(mean_maps[0], cmap="jet", vmin=0, vmax=1)
    axes[1, -1].set_title("mean Grad-CAM,\nheld-out rest", fontsize=8)
    for ax in axes[2:, -1]:
        ax.set_visible(False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Classifier site C vs rest (held-out accuracy {exp.accuracy_:.3f}): maps on "
                 f"held-out head-rest images. Red/white: planted head-rest; +: map maximum",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def picture_difference(maps, path):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(10, 5.4))
    for r, (source, name) in enumerate((("C", "head-rest"), ("B", "shifted field of view"))):
        diff = maps[(source, "welch")]
        axes[r, 0].imshow(diff.mean_source[0], cmap="gray", vmin=-1, vmax=1)
        axes[r, 0].set_title(f"mean, site {source} ({name})", fontsize=8)
        axes[r, 1].imshow(diff.mean_target[0], cmap="gray", vmin=-1, vmax=1)
        axes[r, 1].set_title("mean, clean sites A+D", fontsize=8)
        im = axes[r, 2].imshow(diff.difference[0], cmap="RdBu_r", vmin=-1, vmax=1)
        axes[r, 2].set_title(f"difference {source} - clean", fontsize=8)
        fig.colorbar(im, ax=axes[r, 2], fraction=0.046)
        shown = np.ma.masked_where(~diff.significant[0], diff.difference[0])
        axes[r, 3].imshow(diff.mean_target[0], cmap="gray", vmin=-1, vmax=1)
        axes[r, 3].imshow(shown, cmap="RdBu_r", vmin=-1, vmax=1)
        axes[r, 3].set_title(f"significant (Welch, BH-FDR 0.05):\n"
                             f"{diff.fraction_significant:.0%} of pixels", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def picture_counterfactual(strips, what, path):
    import matplotlib.pyplot as plt

    cf = strips["centroid"]
    rows = min(3, len(cf.images))
    steps = cf.images.shape[1]
    fig, axes = plt.subplots(rows, steps + 1, figsize=(1.9 * (steps + 1), 2.0 * rows + 0.4))
    for r in range(rows):
        for s in range(steps):
            ax = axes[r, s]
            ax.imshow(cf.images[r, s, 0], cmap="gray", vmin=-1, vmax=1)
            centre = row_centre(cf.images[r:r + 1, s])[0]
            ax.axhline(centre, color="yellow", linewidth=0.8)
            if r == 0:
                ax.set_title(f"alpha = {cf.alphas[s]:.2f}", fontsize=8)
        ax = axes[r, steps]
        ax.imshow(cf.difference[r, 0], cmap="RdBu_r", vmin=-1, vmax=1)
        if r == 0:
            ax.set_title("last - first", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Site B (shifted) moved toward the clean sites' centroid and decoded; yellow: "
                 f"the head's centre of mass\n{what}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150, help="classifier training steps")
    parser.add_argument("--widths", type=str, default="16,32,64,128")
    parser.add_argument("--vae-steps", type=int, default=600)
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--n-counterfactuals", type=int, default=64)
    parser.add_argument("--skip-methods", type=str, default="",
                        help="comma-separated CAM methods to leave out")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a smoke run with tiny budgets")
    parser.add_argument("--no-pictures", action="store_true")
    parser.add_argument("--json", type=str, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    args.widths = tuple(int(w) for w in args.widths.split(","))
    args.skip_methods = [m for m in args.skip_methods.split(",") if m]
    if args.quick:
        args.steps, args.vae_steps, args.permutations = 30, 20, 100
        args.n_counterfactuals = 8
        args.skip_methods += ["sess", "ablationcam", "scorecam", "kpcacam"]
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    cohort = la.datasets.load_demo_cohort()
    results = {
        "command": "python benchmarks/bench_explain.py " + " ".join(argv or []),
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}, "
                   f"torch {torch.__version__}, {args.threads} CPU thread(s)",
        "cohort": {"n_images": int(len(cohort.images)),
                   "image_shape": list(cohort.images.shape[1:])},
    }
    print(f"demo cohort: {cohort.images.shape}; {results['machine']}")
    exp, rest_c, maps_by_method, mean_maps = classifier_section(cohort, args, results)
    three_class_section(cohort, args, results)
    print("\nmean-difference maps against the clean sites A+D:")
    diff_maps = difference_section(cohort, args, results)
    strips, what = counterfactual_section(cohort, args, results)
    results["total_seconds"] = time.perf_counter() - started
    if not args.no_pictures:
        IMAGES.mkdir(parents=True, exist_ok=True)
        picture_gradcam(cohort, rest_c, maps_by_method, mean_maps, exp,
                        IMAGES / "explain_gradcam.png")
        picture_difference(diff_maps, IMAGES / "explain_difference.png")
        picture_counterfactual(strips, what, IMAGES / "explain_counterfactual.png")
        print(f"\npictures written to {IMAGES}/explain_*.png")
    print(f"total {results['total_seconds']:.0f} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2, default=float))
    return results


if __name__ == "__main__":
    main()
