"""Benchmark: 3-D class activation maps on the 3-D demo cohort, seed by seed.

For each planted site (B: the field of view shifted, its mask the voxels that moved in or
out of view, about a fifth of the volume; C: a head-rest, a thin shell behind the head)
against the clean sites A and D, and for each seed, it trains the Explainer's classifier
(a ResNet10, by default of the test suite's tiny widths (4, 8, 8, 16); ``--widths``; 16
volumes a step, learning rate 3e-3; at 16^3: 80 + 80 volumes, 120 steps, a fifth held
out) and plays the pointing game (the map's maximum inside the planted mask dilated by
0 / 1 / 2 voxels) on the held-out volumes of the site, for several (method, target layer)
settings of the same classifier: Grad-CAM at the "auto" layer (the default) and at stage
2, LayerCAM and HiResCAM at the first, finest stage (``target_layer=0``) and averaged
over the first two stages (``target_layer=(0, 1)``); LayerCAM at stage 2 is the 16^3
setting of the Explainer's Notes, LayerCAM at stage 0 with ``--padding replicate`` (the
ResNet's ``padding_mode``) the 32^3 one.

It also checks that the classifier relies on the artefact: the share of held-out site
volumes still classified as the site once the planted voxels are set to the background.

Run from the repository root::

    .venv/bin/python benchmarks/bench_explain_3d.py              # 16^3, seeds 0-4, ~3 min
    .venv/bin/python benchmarks/bench_explain_3d.py --widths 32,64,128,256 \
        --seeds 0,1,2,3,4,5,6,7,8,9                              # the 16^3 setting, ~20 min
    .venv/bin/python benchmarks/bench_explain_3d.py --size 32    # 32^3 (100 + 100 volumes,
                                                                 # 300 steps, 30% held out)
    .venv/bin/python benchmarks/bench_explain_3d.py --size 32 --widths 32,64,128,256 \
        --padding replicate --sites C                            # the 32^3 setting, ~15 min
    .venv/bin/python benchmarks/bench_explain_3d.py --size 32 --widths 32,64,128,256 \
        --padding replicate --members 3 --sites C                # 3 classifiers a fit, ~3x

``--members N`` trains N classifiers a fit (``Explainer(n_members=N)``: their maps are
averaged).  ``--seeds`` may list the seeds in any order (they run in that order); the
tables list them in increasing order.  ``--json PATH`` also writes the figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time

import numpy as np
import torch

import latentaudit as la
from latentaudit.explain import Explainer, pointing_game

SETTINGS = {  # name -> (cam, target_layer)
    "gradcam @ auto (default)": ("gradcam", "auto"),
    "gradcam @ stage 2": ("gradcam", 2),
    "layercam @ stage 0 (32^3 setting)": ("layercam", 0),
    "layercam @ stage 1": ("layercam", 1),
    "layercam @ stage 2 (16^3 setting)": ("layercam", 2),
    "hirescam @ stage 0": ("hirescam", 0),
    "layercam @ stages 0+1": ("layercam", (0, 1)),
    "hirescam @ stages 0+1": ("hirescam", (0, 1)),
}
TOLERANCES = (0, 1, 2)


def site_rows(cohort, site_name: str, n: int):
    site = cohort.metadata["site"].to_numpy()
    rng = np.random.default_rng(0)
    rows = np.sort(np.concatenate([
        np.flatnonzero(site == site_name)[:n],
        rng.choice(np.flatnonzero((site == "A") | (site == "D")), n, replace=False)]))
    masks = cohort.artefact_masks[rows]
    if masks.ndim == 5:
        masks = masks[:, 0]
    return cohort.images[rows], (site[rows] == site_name).astype(int), masks


def run(size: int, seeds, sites, widths=(4, 8, 8, 16), padding_mode="zeros",
        stem="auto", max_steps=None, n_members=1) -> dict:
    cohort = la.datasets.load_demo_cohort(size, spatial_dims=3)
    if size <= 16:
        n, steps, test_size = 80, 120, 0.2
    else:
        n, steps, test_size = 100, 300, 0.3
    steps = steps if max_steps is None else max_steps
    results = {"size": size, "n_per_class": n, "max_steps": steps, "test_size": test_size,
               "widths": list(widths), "padding_mode": padding_mode, "stem": stem,
               "n_members": n_members, "sites": {}}
    for site_name in sites:
        images, labels, masks = site_rows(cohort, site_name, n)
        per_seed = []
        for seed in seeds:
            start = time.perf_counter()
            exp = Explainer(spatial_dims=3, max_steps=steps, test_size=test_size,
                            random_state=seed, widths=tuple(widths), batch_size=16,
                            lr=3e-3, padding_mode=padding_mode,
                            stem=stem, n_members=n_members).fit(images, labels)
            fit_s = time.perf_counter() - start
            held = exp.test_indices_[labels[exp.test_indices_] == 1]
            removed = images[held].copy()
            removed[:, 0][masks[held]] = float(images[labels == 0].min())
            still = float(np.mean(exp.predict(removed) == 1))
            row = {"seed": seed, "accuracy": exp.accuracy_, "fit_s": round(fit_s, 1),
                   "auto_layer": exp.target_layer_, "still_site_without_artefact": still,
                   "pointing": {}}
            for name, (cam, layer) in SETTINGS.items():
                maps = exp.explain(images[held], target=1, cam=cam, target_layer=layer)
                row["pointing"][name] = [round(float(pointing_game(
                    maps, masks[held], tolerance=t).mean()), 2) for t in TOLERANCES]
            per_seed.append(row)
            print(f"  {site_name} seed {seed}: acc {exp.accuracy_:.2f}, fit {fit_s:.0f} s, "
                  f"{row['pointing']}", flush=True)
        results["sites"][site_name] = per_seed
    return results


def markdown(results: dict, command: str) -> str:
    size = results["size"]
    n_members = results.get("n_members", 1)
    members = ("" if n_members == 1 else
               f" x {n_members} (`n_members={n_members}`: {n_members} classifiers a fit, "
               f"their maps averaged)")
    lines = [f"Command: `{command}`. Date {datetime.date.today()}; {platform.machine()}, "
             f"{torch.get_num_threads()} torch thread(s). 3-D demo cohort at {size}^3, "
             f"{results['n_per_class']} site volumes + {results['n_per_class']} from A/D, "
             f"ResNet10 of widths {tuple(results['widths'])}{members}, "
             f"stem {results['stem']!r}, "
             f"padding {results['padding_mode']!r}, "
             f"{results['max_steps']} steps, {results['test_size']:.0%} held out.", ""]
    for site_name, rows in results["sites"].items():
        rows = sorted(rows, key=lambda r: r["seed"])  # --seeds may list them in any order
        seeds = [r["seed"] for r in rows]
        accuracy = ", ".join(f"{r['accuracy']:.2f}" for r in rows)
        still = ", ".join(f"{r['still_site_without_artefact']:.2f}" for r in rows)
        lines.append(f"**Site {site_name}** (held-out accuracy {accuracy}; held-out site "
                     f"volumes still classified as {site_name} with the planted voxels set "
                     f"to background: {still}; auto layer {rows[0]['auto_layer']}). "
                     f"Pointing game within 1 voxel, per seed:")
        lines.append("")
        lines.append("| setting | " + " | ".join(f"seed {s}" for s in seeds)
                     + " | min (0 / 2 vx) |")
        lines.append("|---|" + "---|" * (len(seeds) + 1))
        for name in SETTINGS:
            values = [r["pointing"][name] for r in rows]
            lines.append(f"| {name} | " + " | ".join(f"{v[1]:.2f}" for v in values)
                         + f" | **{min(v[1] for v in values):.2f}** "
                         f"({min(v[0] for v in values):.2f} / {min(v[2] for v in values):.2f}) |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--sites", default="B,C")
    parser.add_argument("--widths", default="4,8,8,16",
                        help="the ResNet10's stage widths (the test suite's tiny network by "
                             "default; the 3-D setting of the Notes is 32,64,128,256)")
    parser.add_argument("--padding", default="zeros", choices=("zeros", "replicate"),
                        help="the ResNet's padding_mode (the 32^3 setting of the Notes is "
                             "replicate)")
    parser.add_argument("--stem", default="auto",
                        choices=("auto", "standard", "strided", "small"))
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps (default 120 at 16^3, 300 at 32^3)")
    parser.add_argument("--members", type=int, default=1,
                        help="the Explainer's n_members: classifiers trained per fit, their "
                             "maps averaged (each fit takes that many times as long)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    start = time.perf_counter()
    widths = tuple(int(w) for w in args.widths.split(","))
    results = run(args.size, seeds, args.sites.split(","), widths, args.padding, args.stem,
                  args.steps, args.members)
    results["total_s"] = round(time.perf_counter() - start, 1)
    command = ".venv/bin/python benchmarks/bench_explain_3d.py " + " ".join(argv or [])
    print(markdown(results, command.strip()))
    print(f"total {results['total_s']} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return results


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
