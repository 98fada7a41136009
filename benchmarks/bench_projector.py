"""Benchmark: 2-D maps of 512-dim embeddings, and CPU embedding throughput.

Part 1 (projection).  For N = 5k, 20k, 50k rows of 512-dim data it times, in ONE process
and alternating (ours first in even repeats, scikit-learn first in odd ones, so that a
slow spell of a shared machine hits both),

- ``latentaudit.Projector(method="tsne", random_state=0)`` with its defaults (PCA to 50
  dims, kNN graph, FFT-accelerated t-SNE stopping at a plateau of the KL divergence),
- scikit-learn's ``TSNE(random_state=0, n_jobs=...)`` (Barnes-Hut, its defaults) on the
  PCA-50 of the same data, the PCA timed with it,

each ``--repeats`` times, with the wall time and the CPU time (all threads) of every run,
the load average around it, and ours' own stage times (``Projector.timings_``).  Every
map of the first repeat is scored on the same random 5,000 points by scikit-learn's
trustworthiness at k = 10 and k = 15 (against the 512-dim data) and, where the data has
classes, the 10-nearest-neighbour class accuracy on the map (5-fold CV).  The speed-up
is the ratio of the median wall times (and of the median CPU times).

Data (``--data``): ``fashion`` (Fashion-MNIST images, 784 pixels reduced to 512 dims by
PCA, which keeps their neighbourhoods), ``gmm`` (a synthetic Gaussian mixture),
``blobs`` (scikit-learn's ``make_blobs(n, 512, centers=20, cluster_std=6)``, the
acceptance check's data) or ``power`` (``bench_audit.py``'s encoder-like embedding, a
power-law spectrum).

Part 2 (throughput).  Images per second of ``latentaudit.embed`` on the CPU for a small
convolutional encoder (conv-batchnorm-ReLU, 64x64 inputs, 512-dim output), float32
contiguous against float32 channels-last, and optionally bfloat16 autocast.

Run from the repository root (timings under the heavy lock on a shared machine)::

    .venv/bin/python benchmarks/bench_projector.py --skip-throughput     # projection
    .venv/bin/python benchmarks/bench_projector.py --sizes 20000 --data blobs --repeats 3
    .venv/bin/python benchmarks/bench_projector.py --skip-projection     # throughput

``--json PATH`` also writes the figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

TRUST_SAMPLES = 5000
TRUST_NEIGHBORS = (10, 15)


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------
def make_data(kind: str, n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """``n`` rows of ``dim``-dim float32 data and a class label per row (or None)."""
    rng = np.random.default_rng(seed)
    if kind == "fashion":
        import latentaudit as la

        ds = la.datasets.load_fashion_mnist("all")
        rows = np.sort(rng.choice(len(ds), size=min(n, len(ds)), replace=False))
        pixels = ds.images[rows].reshape(len(rows), -1).astype(np.float64)
        labels = ds.metadata["label"].to_numpy()[rows]
        pixels -= pixels.mean(axis=0)
        # PCA by the eigenvectors of the 784x784 covariance: an isometry up to the
        # dropped components, which carry almost no variance
        eigenvalues, eigenvectors = np.linalg.eigh(pixels.T @ pixels)
        top = eigenvectors[:, np.argsort(eigenvalues)[::-1][:dim]]
        kept = eigenvalues[np.argsort(eigenvalues)[::-1][:dim]].sum() / eigenvalues.sum()
        print(f"data: {len(rows)} Fashion-MNIST images, PCA {pixels.shape[1]} -> {dim} "
              f"dims keeps {100 * kept:.2f}% of the variance", flush=True)
        data = (pixels @ top).astype(np.float32)
    elif kind == "blobs":
        from sklearn.datasets import make_blobs

        data, labels = make_blobs(n, dim, centers=20, cluster_std=6.0, random_state=seed)
        data = data.astype(np.float32)
        print(f"data: make_blobs, {n} x {dim}, 20 centres, std 6", flush=True)
    elif kind == "power":
        spec = importlib.util.spec_from_file_location(
            "bench_audit", Path(__file__).with_name("bench_audit.py"))
        bench_audit = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench_audit)
        data, _, _ = bench_audit.make_embedding(n, dim, seed=seed)
        labels = None
        print(f"data: encoder-like embedding (power-law spectrum 1/i), {n} x {dim}",
              flush=True)
    else:
        # 10 classes in 3 groups: group centres far apart, class centres nearer, points
        # spread along a few directions per class (a low-dimensional structure)
        n_classes, n_groups = 10, 3
        group_of = np.arange(n_classes) % n_groups
        groups = rng.normal(scale=6.0, size=(n_groups, dim))
        centres = groups[group_of] + rng.normal(scale=2.5, size=(n_classes, dim))
        labels = rng.integers(0, n_classes, size=n)
        directions = rng.normal(size=(n_classes, 5, dim)) / np.sqrt(dim) * 8
        coefficients = rng.normal(size=(n, 5))
        data = (centres[labels] + np.einsum("nk,nkd->nd", coefficients, directions[labels])
                + rng.normal(scale=1.0, size=(n, dim))).astype(np.float32)
        print(f"data: Gaussian mixture, {n} x {dim}, {n_classes} classes", flush=True)
    order = rng.permutation(len(data))  # nested subsets: the first N rows are random
    return np.ascontiguousarray(data[order]), None if labels is None else labels[order]


# --------------------------------------------------------------------------------------
# projection: ours and scikit-learn's, alternating in this process
# --------------------------------------------------------------------------------------
def run_ours(X: np.ndarray, threads: int) -> tuple[np.ndarray, dict]:
    from latentaudit.projection import Projector

    proj = Projector(method="tsne", random_state=0, n_jobs=threads)
    xy = proj.fit_transform(X)
    return xy, {"n_iter": proj.n_iter_,
                "stages": {k: round(v, 2) for k, v in proj.timings_.items()}}


def run_sklearn(X: np.ndarray, threads: int) -> tuple[np.ndarray, dict]:
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    tsne = TSNE(n_components=2, random_state=0, n_jobs=threads)
    xy = tsne.fit_transform(PCA(n_components=50, random_state=0).fit_transform(X))
    return xy, {"n_iter": int(tsne.n_iter_)}


def run_umap(X: np.ndarray, threads: int) -> tuple[np.ndarray, dict]:
    from latentaudit.projection import Projector

    proj = Projector(method="umap", random_state=0, n_jobs=threads)
    return proj.fit_transform(X), {"n_iter": proj.n_iter_}


def compile_umap() -> float:
    """Seconds of umap-learn's numba compilation (import and a first small fit)."""
    from latentaudit.projection import Projector

    tick = time.perf_counter()
    Projector(method="umap", random_state=0).fit(
        np.random.default_rng(0).normal(size=(300, 512)))
    return time.perf_counter() - tick


METHODS = {"ours": run_ours, "sklearn": run_sklearn, "umap": run_umap}


def timed(method: str, X: np.ndarray, threads: int) -> tuple[np.ndarray, dict]:
    load_before = os.getloadavg()[0]
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = cpu.ru_utime + cpu.ru_stime
    tick = time.perf_counter()
    xy, extra = METHODS[method](X, threads)
    seconds = time.perf_counter() - tick
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    return np.asarray(xy, dtype=np.float64), {
        "method": method, "seconds": seconds,
        # CPU time of all threads: less sensitive than wall time to other work
        "cpu_seconds": cpu.ru_utime + cpu.ru_stime - cpu_before,
        "load_before": load_before, "load_after": os.getloadavg()[0], **extra}


def score(X: np.ndarray, labels, xy: np.ndarray, seed: int) -> dict:
    from sklearn.manifold import trustworthiness
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(X), size=min(len(X), TRUST_SAMPLES), replace=False))
    scores = {f"trustworthiness_{k}": float(trustworthiness(X[sample], xy[sample],
                                                            n_neighbors=k))
              for k in TRUST_NEIGHBORS}
    if labels is not None:
        knn = KNeighborsClassifier(n_neighbors=10)
        scores["knn_accuracy"] = float(cross_val_score(knn, xy[sample], labels[sample],
                                                       cv=5).mean())
    return scores


def bench_projection(args) -> list[dict]:
    sizes = [int(s) for s in args.sizes.split(",")]
    X_all, labels_all = make_data(args.data, max(sizes), 512, args.seed)
    rows = []
    with_umap = not args.no_umap and importlib.util.find_spec("umap") is not None
    if with_umap:
        print(f"umap-learn's numba compilation: {compile_umap():.1f} s (not timed below)",
              flush=True)
    for n in sizes:
        X = X_all[:n]
        labels = None if labels_all is None else labels_all[:n]
        methods = ["ours"]
        if args.sklearn_max is None or n <= args.sklearn_max:
            methods.append("sklearn")
        if with_umap:
            methods.append("umap")
        for repeat in range(args.repeats):
            for method in methods if repeat % 2 == 0 else methods[::-1]:
                print(f"N={n} {method} (repeat {repeat + 1}) ...", flush=True)
                xy, result = timed(method, X, args.threads)
                result.update(n=n, repeat=repeat)
                if repeat == 0:
                    result.update(score(X, labels, xy, args.seed))
                print("   " + json.dumps(result), flush=True)
                rows.append(result)
    return rows


# --------------------------------------------------------------------------------------
# embedding throughput
# --------------------------------------------------------------------------------------
def bench_throughput(args) -> list[dict]:
    import torch

    import latentaudit as la
    from latentaudit.embed import embed

    torch.set_num_threads(args.threads)

    class SmallCNN(torch.nn.Module):
        """Four conv-batchnorm-ReLU stages and a linear head: 64x64 -> 512."""

        latent_dim, spatial_dims = 512, 2

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            layers, channels = [], [1, 32, 64, 128, 256]
            for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
                layers += [torch.nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                           torch.nn.BatchNorm2d(c_out), torch.nn.ReLU(inplace=True)]
            self.features = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1),
                                                torch.nn.Flatten())
            self.head = torch.nn.Linear(256, 512)

        def encode(self, x):
            return self.head(self.features(x))

    cohort = la.datasets.load_demo_cohort()
    images = cohort.images[: args.throughput_images]
    encoder = SmallCNN().eval()
    configs = [("float32, contiguous", {"channels_last": False}),
               ("float32, channels-last", {"channels_last": True})]
    if args.bf16:
        configs.append(("bfloat16 autocast, contiguous", {"channels_last": False,
                                                          "dtype": "bfloat16"}))
    rows, reference = [], None
    embed(encoder, images[:128], batch_size=64, verbose=False)  # warm-up
    for name, options in configs:
        n = len(images) if "dtype" not in options else min(len(images), 256)
        best = np.inf
        for _ in range(args.repeats):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tick = time.perf_counter()
                emb = embed(encoder, images[:n], batch_size=64, verbose=False, **options)
                best = min(best, time.perf_counter() - tick)
        if reference is None:
            reference = emb.z
        difference = float(np.abs(emb.z - reference[:n]).max())
        rows.append({"config": name, "images": n, "images_per_s": n / best,
                     "max_abs_diff_vs_contiguous": difference})
        print("   " + json.dumps(rows[-1]), flush=True)
    return rows


# --------------------------------------------------------------------------------------
def markdown(projection: list[dict], throughput: list[dict]) -> str:
    lines = []
    if projection:
        names = {"ours": "latentaudit Projector (t-SNE)",
                 "sklearn": "scikit-learn TSNE (PCA-50 + Barnes-Hut)",
                 "umap": "latentaudit Projector (PCA-50 + UMAP)"}
        lines += ["| N | method | runs | wall time (s), median | CPU time (s), median | "
                  "iterations | trustworthiness k=10 / k=15 | 10-NN accuracy | load avg |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|---|"]
        medians = {}
        for n in sorted({r["n"] for r in projection}):
            for method in names:
                runs = [r for r in projection if r["n"] == n and r["method"] == method]
                if not runs:
                    continue
                wall = statistics.median(r["seconds"] for r in runs)
                cpu = statistics.median(r["cpu_seconds"] for r in runs)
                medians[n, method] = (wall, cpu, runs[0])
                first = runs[0]
                loads = [f"{r['load_before']:.1f}-{r['load_after']:.1f}" for r in runs]
                lines.append(
                    f"| {n:,} | {names[method]} | {len(runs)} | {wall:.1f} | {cpu:.1f} | "
                    f"{first['n_iter']} | {first['trustworthiness_10']:.4f} / "
                    f"{first['trustworthiness_15']:.4f} | "
                    f"{first.get('knn_accuracy', float('nan')):.3f} | {', '.join(loads)} |")
        lines.append("")
        for (n, method), (wall, cpu, first) in medians.items():
            if method != "sklearn" or (n, "ours") not in medians:
                continue
            ours_wall, ours_cpu, ours = medians[n, "ours"]
            lines.append(
                f"- N = {n:,}: ours is {wall / ours_wall:.1f}x faster than scikit-learn in "
                f"wall time ({cpu / ours_cpu:.1f}x in CPU time); trustworthiness k=10 "
                f"{ours['trustworthiness_10']:.4f} vs {first['trustworthiness_10']:.4f} "
                f"(difference {ours['trustworthiness_10'] - first['trustworthiness_10']:+.4f})"
                f", k=15 {ours['trustworthiness_15']:.4f} vs "
                f"{first['trustworthiness_15']:.4f}; ours' stages (s, first run): "
                f"{ours['stages']}")
    if throughput:
        lines += ["", "| embed on CPU | images | images/s | max abs diff vs contiguous |",
                  "|---|---:|---:|---:|"]
        for r in throughput:
            lines.append(f"| {r['config']} | {r['images']} | {r['images_per_s']:.1f} | "
                         f"{r['max_abs_diff_vs_contiguous']:.2e} |")
        base = throughput[0]["images_per_s"]
        for r in throughput[1:]:
            lines.append(f"\n{r['config']}: {r['images_per_s'] / base:.2f}x the throughput of "
                         f"float32 contiguous")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,20000,50000")
    parser.add_argument("--data", choices=["fashion", "gmm", "blobs", "power"],
                        default="fashion")
    parser.add_argument("--sklearn-max", type=int, default=None,
                        help="skip scikit-learn's TSNE above this N")
    parser.add_argument("--no-umap", action="store_true")
    parser.add_argument("--skip-projection", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--throughput-images", type=int, default=1024)
    parser.add_argument("--bf16", action="store_true", help="also time bf16 autocast (slow)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each projection and of each throughput config")
    parser.add_argument("--threads", type=int, default=2,
                        help="n_jobs of both t-SNEs, and torch threads of the throughput")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}", flush=True)
    projection = [] if args.skip_projection else bench_projection(args)
    throughput = [] if args.skip_throughput else bench_throughput(args)
    text = markdown(projection, throughput)
    print("\n" + text)
    if args.json:
        Path(args.json).write_text(json.dumps({"projection": projection,
                                               "throughput": throughput}, indent=2))
    return projection, throughput


if __name__ == "__main__":
    main()
