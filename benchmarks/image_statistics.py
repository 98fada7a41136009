"""Image statistics beside the embedding: does the audit then single out a low-level group?

Usage::

    .venv/bin/python benchmarks/image_statistics.py [--subjects 1000] [--strength 0.5]
        [--families gain,rician_noise,blur,ghosting,bias_field,spikes] [--cache DIR]

A random 10% of ``--subjects`` demo-cohort subjects (seed 0) gets one artefact of
``latentaudit.artefacts`` at ``--strength``; every image is embedded by the shipped demo
DAE (the unchanged subjects once, cached in ``--cache``), and no metadata column names the
group.  For each family the script prints the probe AUC of the group on the embedding (a
logistic regression on its 50 leading principal components, 5 folds: is the group in the
embedding at all?), then the default ``ClusterAuditor(random_state=0).fit(emb)`` with and
without ``image_statistics=True``: the F1 of the best candidate subgroup against the group
among the significant candidates (a finding of kind "subgroup" or "far_tail" at q <= 0.05;
0 when none is significant) and among all candidates, and the fit's seconds.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

import latentaudit as la
from latentaudit import artefacts
from latentaudit.audit import ClusterAuditor


def f1(found: np.ndarray, group: np.ndarray) -> float:
    hits = int(np.sum(found & group))
    return 0.0 if hits == 0 else 2.0 * hits / (found.sum() + group.sum())


def embed(encoder, images: np.ndarray) -> np.ndarray:
    return np.asarray(la.embed(encoder, la.ArrayDataset(images), verbose=False).z)


def audit(emb, group: np.ndarray, statistics: bool) -> tuple[float, float, float]:
    start = time.perf_counter()
    aud = ClusterAuditor(random_state=0, image_statistics=statistics).fit(emb)
    seconds = time.perf_counter() - start
    table = aud.subgroups_
    scores = [f1(aud.subgroup_labels(int(k)), group) for k in table["subgroup"]]
    # significant: its second mode, its far tail or both at q <= alpha
    best_significant = max((score for score, evidence in zip(
        scores, table["evidence"], strict=True) if evidence != "none"), default=0.0)
    return best_significant, max(scores, default=0.0), seconds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--families", default="gain,rician_noise,blur,ghosting,bias_field,"
                                              "spikes")
    parser.add_argument("--cache", default="/tmp/latentaudit_image_statistics")
    args = parser.parse_args(argv)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    demo = la.datasets.load_demo_cohort()
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(demo.metadata), args.subjects, replace=False))
    images = np.asarray(demo.images)[rows].astype(np.float32)
    metadata = demo.metadata.iloc[rows].reset_index(drop=True)
    encoder = la.DAEEncoder.from_pretrained("demo").eval()
    base_file = cache / f"base_{args.subjects}.npy"
    if base_file.exists():
        base = np.load(base_file)
    else:
        base = embed(encoder, images)
        np.save(base_file, base)
    group = np.zeros(len(rows), bool)
    group[rng.choice(len(rows), len(rows) // 10, replace=False)] = True
    print(f"# {datetime.date.today()} {platform.node()} {platform.processor() or ''}; "
          f"{args.subjects} demo subjects, 10% planted, strength {args.strength}")
    print("| artefact | probe AUC | F1 significant: embedding | with image statistics "
          "| F1 any candidate: embedding | with image statistics | fit s (without / with) |")
    print("|---|---|---|---|---|---|---|")
    for family in args.families.split(","):
        artefact = artefacts.get_artefact(family, strength=args.strength)
        planted = images.copy()
        draw = np.random.default_rng(1)
        for i in np.flatnonzero(group):
            planted[i], _ = artefact(images[i], random_state=int(draw.integers(2**31 - 1)))
        z_file = cache / f"{family}_{args.strength}_{args.subjects}.npy"
        if z_file.exists():
            z = np.load(z_file)
        else:
            z = base.copy()
            z[group] = embed(encoder, planted[group])
            np.save(z_file, z)
        reduced = PCA(50, random_state=0).fit_transform(z)
        auc = roc_auc_score(group, cross_val_predict(
            LogisticRegression(max_iter=3000), reduced, group, cv=5,
            method="predict_proba")[:, 1])
        emb = la.Embeddings(z, metadata=metadata, images=planted)
        without = audit(emb, group, False)
        with_stats = audit(emb, group, True)
        print(f"| {family} | {auc:.3f} | {without[0]:.2f} | {with_stats[0]:.2f} | "
              f"{without[1]:.2f} | {with_stats[1]:.2f} | {without[2]:.1f} / "
              f"{with_stats[2]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
