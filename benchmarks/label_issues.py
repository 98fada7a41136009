"""Label issues: ClusterAuditor.label_issues against cleanlab's find_label_issues.

Usage::

    pip install 'latentaudit[bench]'          # cleanlab (or CLEANLAB_PATH=<its folder>)
    .venv/bin/python benchmarks/label_issues.py [--quick]

Both methods see the same embeddings and the same flipped labels, in one run.  cleanlab
gets out-of-fold probabilities of a standardised logistic regression (C = 0.1, 5 folds) on
the embedding and its default ``find_label_issues`` (prune by noise rate) and
``get_label_quality_scores``; latentaudit runs ``ClusterAuditor(random_state=0).fit`` on the
embedding and one metadata column, then ``label_issues``.  Figures: average precision of
the ranking (AP) and precision, recall and F1 of the flagged set, against the rows whose
label was flipped.

Settings (every flip drawn from a fixed seed):

- demo cohort, sex, the shipped flips (3%), embeddings of the shipped DAE (``--quick``:
  raw-pixel PCA-64 instead, no DAE run); the same with 1% and 10% of the true sexes flipped;
  the site labels with 5% flipped uniformly to another site (sites A and D share one
  protocol, so flips between them cannot be identified);
- Fashion-MNIST (the first 10,000 training images, pixel PCA-64), 5% of the labels flipped
  to the most confusable class (the acceptance check's setting), 2% and 10% likewise, and
  10% flipped uniformly;
- scikit-learn's digits (1,797 8x8 images, pixel PCA-32), 5% flipped uniformly.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import os
import platform
import sys
import time

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import latentaudit as la

FASHION = "/usr/share/datasets/fashion-mnist"
# the most confusable class of each Fashion-MNIST class (T-shirt <-> shirt, ...)
CONFUSE = {0: 6, 6: 0, 2: 4, 4: 2, 1: 3, 3: 6, 5: 7, 7: 9, 9: 7, 8: 6}


def flip(labels, rate, seed, confuse=None):
    """Flip a fraction of labels: to ``confuse[label]`` or uniformly to another level."""
    rng = np.random.default_rng(seed)
    flipped = rng.random(labels.size) < rate
    given = labels.copy()
    levels = np.unique(labels)
    for i in np.flatnonzero(flipped):
        given[i] = confuse[labels[i]] if confuse else rng.choice(levels[levels != labels[i]])
    return given, flipped


def settings(quick: bool):
    cohort = la.datasets.load_demo_cohort()
    if quick:
        images = np.asarray(cohort.images).reshape(len(cohort.images), -1)
        z, source = PCA(64, random_state=0).fit_transform(images), "pixel PCA-64"
    else:
        from latentaudit.encoders.dae import DAEEncoder

        z = np.asarray(la.embed(DAEEncoder.from_pretrained("demo"), cohort, verbose=False).z)
        source = "shipped DAE"
    true_sex = cohort.truth["true_sex"].to_numpy().astype(str)
    yield (f"demo, sex, shipped 3% ({source})", z, cohort.metadata["sex"].to_numpy().astype(str),
           cohort.truth["sex_flipped"].to_numpy().astype(bool))
    for rate, seed in ((0.01, 1), (0.10, 10)):
        given, flipped = flip(true_sex, rate, seed)
        yield f"demo, sex, {rate:.0%} ({source})", z, given, flipped
    site = cohort.metadata["site"].to_numpy().astype(str)
    given, flipped = flip(site, 0.05, 5)
    yield f"demo, site, 5% uniform ({source})", z, given, flipped

    n = 10_000
    x = np.frombuffer(gzip.open(f"{FASHION}/train-images-idx3-ubyte.gz").read(), np.uint8,
                      offset=16).reshape(-1, 784)[:n].astype(np.float32) / 255
    y = np.frombuffer(gzip.open(f"{FASHION}/train-labels-idx1-ubyte.gz").read(), np.uint8,
                      offset=8)[:n].astype(int)
    zf = PCA(64, random_state=0).fit_transform(x)
    names = np.array(["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                      "sneaker", "bag", "boot"])
    # the acceptance check's flips: rng(3), 5%, to the most confusable class
    rng = np.random.default_rng(3)
    flipped = rng.random(n) < 0.05
    given = y.copy()
    given[flipped] = [CONFUSE[v] for v in y[flipped]]
    yield "Fashion-MNIST, 5% plausible", zf, names[given], flipped
    for rate, seed in ((0.02, 11), (0.10, 12)):
        given, flipped = flip(y, rate, seed, CONFUSE)
        yield f"Fashion-MNIST, {rate:.0%} plausible", zf, names[given], flipped
    given, flipped = flip(y, 0.10, 13)
    yield "Fashion-MNIST, 10% uniform", zf, names[given], flipped
    digits = load_digits()
    given, flipped = flip(digits.target, 0.05, 14)
    yield ("digits, 5% uniform", PCA(32, random_state=0).fit_transform(digits.data), given,
           flipped)


def scores(flag, flipped):
    tp = int((flag & flipped).sum())
    precision = tp / max(int(flag.sum()), 1)
    recall = tp / max(int(flipped.sum()), 1)
    f1 = 0.0 if tp == 0 else 2 * precision * recall / (precision + recall)
    return int(flag.sum()), precision, recall, f1


def compare(z, given, flipped):
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    start = time.perf_counter()
    auditor = la.ClusterAuditor(random_state=0).fit(z, pd.DataFrame({"y": given}))
    issues = auditor.label_issues("y")
    score = np.zeros(len(given))
    score[issues["index"].to_numpy()] = issues["score"].to_numpy()
    flag = np.zeros(len(given), dtype=bool)
    flag[issues.loc[issues["flagged"], "index"].to_numpy()] = True
    ours = (average_precision_score(flipped, score), *scores(flag, flipped),
            time.perf_counter() - start)
    start = time.perf_counter()
    _, codes = np.unique(given, return_inverse=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    proba = cross_val_predict(model, z, codes, cv=5, method="predict_proba")
    theirs_flag = find_label_issues(codes, proba)
    theirs_score = 1 - get_label_quality_scores(codes, proba)
    theirs = (average_precision_score(flipped, theirs_score), *scores(theirs_flag, flipped),
              time.perf_counter() - start)
    return ours, theirs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="demo cohort on pixel PCA instead of the DAE (no DAE run)")
    args = parser.parse_args(argv)
    if os.environ.get("CLEANLAB_PATH"):  # a copy of cleanlab kept outside the venv
        sys.path.insert(0, os.environ["CLEANLAB_PATH"])
    try:
        import cleanlab
    except ImportError:
        print("this benchmark needs cleanlab: pip install 'latentaudit[bench]' (or "
              "CLEANLAB_PATH=<folder holding cleanlab>)", file=sys.stderr)
        return 2
    print(f"# label issues: latentaudit vs cleanlab {cleanlab.__version__}")
    print(f"date {datetime.date.today()}; machine {platform.machine()}, "
          f"{os.cpu_count()} CPUs, {platform.platform()}; python {platform.python_version()}")
    print(f"command: python benchmarks/label_issues.py{' --quick' if args.quick else ''}")
    print()
    print("| setting | errors | AP latentaudit | AP cleanlab | flagged (P / R) latentaudit "
          "| flagged (P / R) cleanlab | F1 latentaudit | F1 cleanlab |")
    print("|---|---:|---:|---:|---|---|---:|---:|")
    worst = np.inf
    for name, z, given, flipped in settings(args.quick):
        ours, theirs = compare(z, given, flipped)
        worst = min(worst, ours[4] - theirs[4])
        print(f"| {name} | {int(flipped.sum())} | {ours[0]:.3f} | {theirs[0]:.3f} | "
              f"{ours[1]} ({ours[2]:.2f} / {ours[3]:.2f}) | "
              f"{theirs[1]} ({theirs[2]:.2f} / {theirs[3]:.2f}) | **{ours[4]:.3f}** | "
              f"{theirs[4]:.3f} |", flush=True)
    print()
    print(f"smallest F1 difference (latentaudit - cleanlab): {worst:+.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
