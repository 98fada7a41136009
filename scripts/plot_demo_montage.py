"""Draw docs/images/demo_montage.png: demo cohort slices, one row per site.

Usage::

    python scripts/plot_demo_montage.py [--output PATH] [--per-site N] [--cohort FILE]

Each row shows ``N`` subjects of one site as the library sees them (128x128, with noise);
the last column outlines the planted artefact (``.artefact_masks``) on the row's first
subject.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "docs" / "images" / "demo_montage.png"
DESCRIPTIONS = {
    "none": "no artefact",
    "fov_shift": "field of view shifted superiorly by 20% (fov_shift)",
    "head_rest": "head-rest behind the head (head_rest)",
}


def plot_demo_montage(output=DEFAULT_OUTPUT, *, per_site: int = 6, path=None) -> Path:
    """Draw the montage and return the path of the PNG file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from latentaudit.datasets import load_demo_cohort

    cohort = load_demo_cohort(size=128, path=path)
    meta, truth = cohort.metadata, cohort.truth
    sites = sorted(meta["site"].unique())
    fig = plt.figure(figsize=(1.75 * (per_site + 1), 2.15 * len(sites)), dpi=100)
    rows = fig.subfigures(len(sites), 1)
    for row, site in zip(np.atleast_1d(rows), sites, strict=True):
        members = np.flatnonzero(meta["site"].to_numpy() == site)[:per_site]
        artefact = truth["artefact"].iloc[members[0]]
        row.suptitle(f"site {site}: {DESCRIPTIONS.get(artefact, artefact)}", fontsize=11,
                     y=0.995)
        axes = row.subplots(1, per_site + 1)
        row.subplots_adjust(left=0.005, right=0.995, bottom=0.01, top=0.8, wspace=0.04)
        for ax, index in zip(axes[:len(members)], members, strict=True):
            ax.imshow(cohort.images[index, 0], cmap="gray", vmin=-1, vmax=1)
            ax.set_title(f"{meta['subject'].iloc[index]}  {meta['sex'].iloc[index]}, "
                         f"{meta['age'].iloc[index]:.0f} y", fontsize=7)
        ax = axes[-1]
        first = members[0]
        ax.imshow(cohort.images[first, 0], cmap="gray", vmin=-1, vmax=1)
        mask = cohort.artefact_masks[first, 0]
        if mask.any():
            overlay = np.zeros(mask.shape + (4,))
            overlay[mask] = (1.0, 0.15, 0.1, 0.55)
            ax.imshow(overlay)
            ax.set_title("artefact mask", fontsize=7, color="firebrick")
        else:
            ax.set_title("artefact mask: none", fontsize=7)
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Draw the demo cohort montage.")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--per-site", type=int, default=6)
    parser.add_argument("--cohort", type=Path, default=None,
                        help="a cohort file (default: the packaged one)")
    args = parser.parse_args(argv)
    print(plot_demo_montage(args.output, per_site=args.per_site, path=args.cohort))
    return 0


if __name__ == "__main__":
    sys.exit(main())
