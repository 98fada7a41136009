"""Candidate subgroups on the demo DAE's embeddings: is an unnamed 10% group singled out?

Usage::

    .venv/bin/python benchmarks/subgroups_dae.py [--families tilt:1.0,bar:1.0,...]
        [--sizes 400,1000,2000] [--seeds 4] [--null-seeds 20] [--cache DIR]
        [--encoder dae|sg2|pca|vae0|PATH] [--null-only]

A random 10% of the 2,000 demo-cohort subjects (seed 0) gets one artefact of
``latentaudit.artefacts`` at the given strength; every image is embedded by the shipped
demo DAE (``DAEEncoder.from_pretrained("demo")``, its 512-d semantic code; the clean
subjects once, the planted ones per family, cached in ``--cache``).  No metadata column
names the group; site and sex (strong structure in the embedding) and age, height,
weight are in the metadata.  For each family the script prints the probe AUC of the group
(a logistic regression on the embedding's 50 leading principal components, 5 folds, all
2,000 subjects), then, for each audited size, the default audit
``ClusterAuditor(random_state=seed).fit(z, metadata)`` over ``--seeds`` seeds: in how many
the best *significant* candidate (q <= 0.05; a finding of kind "subgroup" or "far_tail")
matches the group with F1 >= 0.5, the median of that F1 (0 when none is significant), in
how many of those matches the candidate's only evidence was a far tail (its finding of
kind "far_tail" significant, its kind "subgroup" not),
and the same for the best candidate whether significant or not.  Sizes: 400 = the
held-out rows of ``la.datasets.demo_split`` (the seeds vary only the audit); 2000 = every
subject; other sizes a random subset per seed.  The null: the clean embedding (strength
0) audited with ``--null-seeds`` seeds at each size; printed is the number of audits with
any finding of kind "subgroup" at q <= 0.05 (the false discovery rate bounds its expected
share by 0.05), the same for kind "far_tail" (rows far out along a direction; an
encoder's own heavy tail makes it true without a group), and the seconds of one fit.

``--encoder`` swaps the embedding (default ``dae``): ``sg2`` the shipped StyleGAN2 demo
weights (the inverter's ``w``), ``pca`` pixel PCA (32 components, fitted on the training
rows of ``demo_split``), ``vae0`` an untrained beta-VAE (cpu64 preset, seed 0), or the
folder of any saved encoder (``load_pretrained``).  ``--null-only`` runs the null alone.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import re
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict
from threadpoolctl import threadpool_limits

import latentaudit as la
from latentaudit import artefacts
from latentaudit.audit import ClusterAuditor

DEFAULT_FAMILIES = ("tilt:1.0,bar:1.0,burned_in_text:0.5,burned_in_text:1.0,blur:1.0,"
                    "ghosting:1.0,gain:1.0,spikes:1.0,contrast_curve:1.0,downsampling:0.5,"
                    "wrap_around:1.0")


def f1(found: np.ndarray, group: np.ndarray) -> float:
    hits = int(np.sum(found & group))
    return 0.0 if hits == 0 else 2.0 * hits / (found.sum() + group.sum())


def embed(encoder, images: np.ndarray) -> np.ndarray:
    return np.asarray(la.embed(encoder, la.ArrayDataset(images), verbose=False).z)


CANDIDATE_KINDS = ("subgroup", "far_tail")


def best_subgroups(aud: ClusterAuditor, group: np.ndarray) -> tuple[float, str, float]:
    """(best F1 among significant candidates, that one's evidence ("" if none), best F1
    among all candidates)."""
    table = aud.subgroups_
    scores = [f1(aud.subgroup_labels(int(k)), group) for k in table["subgroup"]]
    significant = [(score, evidence) for score, evidence in zip(
        scores, table["evidence"], strict=True) if evidence != "none"]
    best = max(significant, default=(0.0, ""))
    return best[0], best[1], max(scores, default=0.0)


def make_encoder(name: str, images: np.ndarray):
    """The encoder ``--encoder`` names (see the module's docstring)."""
    from latentaudit.encoders import build_encoder, load_pretrained

    if name == "dae":
        return la.DAEEncoder.from_pretrained("demo").eval()
    if name == "sg2":
        return la.StyleGAN2Encoder.from_pretrained("demo").eval()
    if name == "pca":
        train = np.ascontiguousarray(images[la.datasets.demo_split()[0]])
        return build_encoder("pixel_pca", images.shape[1:], latent_dim=32,
                             random_state=0).fit(la.ArrayDataset(train))
    if name == "vae0":
        torch.manual_seed(0)
        return build_encoder("beta_vae", images.shape[1:], preset="cpu64").eval()
    if Path(name).is_dir():
        return load_pretrained(name).eval()
    raise SystemExit(f"unknown encoder {name!r}: dae, sg2, pca, vae0 or a saved encoder's folder")


def audited_rows(size: int, seed: int, n: int) -> np.ndarray:
    if size == 400:
        return np.sort(la.datasets.demo_split()[1])
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(100 + seed).choice(n, size, replace=False))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=DEFAULT_FAMILIES)
    parser.add_argument("--sizes", default="400,1000,2000")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--null-seeds", type=int, default=20)
    parser.add_argument("--cache", default="/tmp/latentaudit_subgroups_dae")
    parser.add_argument("--encoder", default="dae")
    parser.add_argument("--null-only", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cache = Path(args.cache)
    if args.encoder != "dae":  # the DAE's embeddings keep the cache's top level
        cache = cache / re.sub(r"[^A-Za-z0-9_.-]+", "_", args.encoder.strip("/"))
    cache.mkdir(parents=True, exist_ok=True)
    demo = la.datasets.load_demo_cohort()
    images = np.asarray(demo.images).astype(np.float32)
    metadata = demo.metadata
    n = len(metadata)
    encoder = make_encoder(args.encoder, images)
    base_file = cache / "clean.npy"
    if base_file.exists():
        base = np.load(base_file)
    else:
        base = embed(encoder, images)
        np.save(base_file, base)
    rng = np.random.default_rng(0)
    group = np.zeros(n, bool)
    group[rng.choice(n, n // 10, replace=False)] = True
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"# {datetime.date.today()} {platform.node()} {platform.machine()}; demo cohort, "
          f"encoder {args.encoder} ({base.shape[1]}-d), 10% planted, sizes {sizes}, "
          f"{args.seeds} seeds, null {args.null_seeds} seeds")
    matched = {size: [0, 0, 0] for size in sizes}  # significant and matching, audits, far tail
    families = [] if args.null_only else args.families.split(",")
    if families:
        header = " | ".join(f"n={s}: sig F1>=0.5 (median; far tail) / any F1>=0.5 (median)"
                            for s in sizes)
        print(f"| artefact | strength | probe AUC | {header} |")
        print("|---|---|---|" + "---|" * len(sizes))
    with threadpool_limits(1):
        for item in families:
            family, strength = item.split(":")
            z_file = cache / f"{family}_{strength}.npy"
            z = base.copy()
            if z_file.exists():
                z[group] = np.load(z_file)
            else:
                artefact = artefacts.get_artefact(family, strength=float(strength))
                draw = np.random.default_rng(1)
                planted = np.stack([artefact(images[i], random_state=int(
                    draw.integers(2**31 - 1)))[0] for i in np.flatnonzero(group)])
                z[group] = embed(encoder, planted)
                np.save(z_file, z[group])
            auc = roc_auc_score(group, cross_val_predict(
                LogisticRegression(max_iter=3000),
                PCA(min(50, z.shape[1]), random_state=0).fit_transform(z),
                group, cv=5, method="predict_proba")[:, 1])
            cells = []
            for size in sizes:
                sig, kinds, any_ = [], [], []
                for seed in range(args.seeds):
                    rows = audited_rows(size, seed, n)
                    aud = ClusterAuditor(random_state=seed).fit(
                        z[rows], metadata.iloc[rows].reset_index(drop=True))
                    best = best_subgroups(aud, group[rows])
                    sig.append(best[0])
                    kinds.append(best[1])
                    any_.append(best[2])
                sig, kinds, any_ = np.array(sig), np.array(kinds), np.array(any_)
                tails = int(((sig >= 0.5) & (kinds == "far tail")).sum())  # far tail alone
                matched[size][0] += int((sig >= 0.5).sum())
                matched[size][1] += sig.size
                matched[size][2] += tails
                cells.append(f"{int((sig >= 0.5).sum())}/{sig.size} ({np.median(sig):.2f}; "
                             f"{tails}) / "
                             f"{int((any_ >= 0.5).sum())}/{any_.size} ({np.median(any_):.2f})")
            print(f"| {family} | {strength} | {auc:.3f} | " + " | ".join(cells) + " |",
                  flush=True)
        if families:
            print("# in all, a significant candidate with F1 >= 0.5 in "
                  + ", ".join(f"{m}/{a} audits at n={s} ({t} by a far tail alone)"
                              for s, (m, a, t) in matched.items()))
            print()
        print("| null (strength 0) | " + " | ".join(f"n={s}" for s in sizes) + " |")
        print("|---|" + "---|" * len(sizes))
        counts = {kind: [] for kind in CANDIDATE_KINDS}
        seconds = []
        for size in sizes:
            false = dict.fromkeys(CANDIDATE_KINDS, 0)
            for seed in range(args.null_seeds):
                rows = audited_rows(size, seed, n)
                start = time.perf_counter()
                aud = ClusterAuditor(random_state=seed).fit(
                    base[rows], metadata.iloc[rows].reset_index(drop=True))
                seconds.append((size, time.perf_counter() - start))
                for kind in CANDIDATE_KINDS:
                    found = aud.findings_[aud.findings_["kind"] == kind]
                    false[kind] += int((found["q_value"] <= aud.alpha).any())
            for kind in CANDIDATE_KINDS:
                counts[kind].append(f"{false[kind]}/{args.null_seeds}")
        for kind in CANDIDATE_KINDS:
            print(f"| audits with a finding of kind {kind} at q <= 0.05 | "
                  + " | ".join(counts[kind]) + " |")
        for size in sizes:
            fits = [s for k, s in seconds if k == size]
            print(f"# fit seconds at n={size}: median {np.median(fits):.2f}")


if __name__ == "__main__":
    main()
