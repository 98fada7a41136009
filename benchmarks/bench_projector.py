"""Benchmark: 2-D maps of 512-dim embeddings, and CPU embedding throughput.

Part 1 (projection).  For N = 5k, 20k, 50k rows of 512-dim data with real structure
(Fashion-MNIST images, reduced from 784 pixels to 512 dimensions by PCA, which keeps
their neighbourhoods; ``--data gmm`` uses a synthetic Gaussian mixture instead) it times

- ``latentaudit.Projector(method="tsne")``: PCA to 50 dims, then openTSNE's
  FFT-accelerated t-SNE,
- scikit-learn's ``TSNE`` (Barnes-Hut) on the same PCA-50 input, with its defaults
  (1000 iterations), the reference,
- ``Projector(method="umap")`` when umap-learn is installed; the numba compilation of a
  fresh process (import and a first small fit) is timed separately,

each in a fresh subprocess, reporting wall time, CPU time and peak resident memory (``VmHWM``,
and the increase over the process's footprint after loading the data).  Every map is
scored on the same random subsample of at most 5,000 points by scikit-learn's
trustworthiness (k = 10, against the 512-dim data) and, for Fashion-MNIST, by the
10-nearest-neighbour class accuracy on the map (5-fold CV).

Part 2 (throughput).  Images per second of ``latentaudit.embed`` on the CPU for a small
convolutional encoder (conv-batchnorm-ReLU, 64x64 inputs, 512-dim output), float32
contiguous against float32 channels-last, and optionally bfloat16 autocast.

Run from the repository root::

    .venv/bin/python benchmarks/bench_projector.py                       # everything
    .venv/bin/python benchmarks/bench_projector.py --sizes 5000 --skip-throughput
    .venv/bin/python benchmarks/bench_projector.py --sklearn-max 20000    # no sklearn at 50k

``--json PATH`` also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

TRUST_SAMPLES = 5000
TRUST_NEIGHBORS = 10


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------
def make_data(kind: str, n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of ``dim``-dim float32 data and a class label per row."""
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
    return np.ascontiguousarray(data[order]), labels[order]


# --------------------------------------------------------------------------------------
# one projection in a fresh process
# --------------------------------------------------------------------------------------
def _rss_mib() -> float:
    """Peak resident memory of this process so far (MiB).

    ``VmHWM`` of the process's own address space: unlike ``ru_maxrss``, it does not carry
    over the parent's footprint through fork and exec.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(spec: dict) -> None:
    X = np.load(spec["data"])[: spec["n"]]
    X = np.ascontiguousarray(X)
    baseline = _rss_mib()
    result = {"method": spec["method"], "n": spec["n"]}
    if spec["method"] == "umap":
        tick = time.perf_counter()
        import umap  # noqa: F401  (compiles part of umap's numba code)

        from latentaudit.projection import Projector

        rng = np.random.default_rng(0)
        Projector(method="umap", random_state=0).fit(rng.normal(size=(300, X.shape[1])))
        result["compile_s"] = time.perf_counter() - tick
        baseline = _rss_mib()
    tick = time.perf_counter()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = cpu.ru_utime + cpu.ru_stime
    if spec["method"] == "ours":
        from latentaudit.projection import Projector

        xy = Projector(method="tsne", random_state=0, n_jobs=-1).fit_transform(X)
    elif spec["method"] == "umap":
        from latentaudit.projection import Projector

        xy = Projector(method="umap", random_state=0, n_jobs=-1).fit_transform(X)
    else:
        from sklearn.decomposition import PCA
        from sklearn.manifold import TSNE

        reduced = PCA(n_components=50, random_state=0).fit_transform(X)
        xy = TSNE(n_components=2, init="pca", learning_rate="auto", random_state=0,
                  n_jobs=-1).fit_transform(reduced)
    result["seconds"] = time.perf_counter() - tick
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    # CPU time of all threads: less sensitive than wall time to other work on the machine
    result["cpu_seconds"] = cpu.ru_utime + cpu.ru_stime - cpu_before
    result["peak_rss_mib"] = _rss_mib()
    result["extra_rss_mib"] = result["peak_rss_mib"] - baseline
    np.save(spec["out"], np.asarray(xy, dtype=np.float64))
    print("RESULT " + json.dumps(result), flush=True)


def run_worker(spec: dict) -> dict:
    env = dict(os.environ)
    load_before = os.getloadavg()[0]
    completed = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                               capture_output=True, text=True, env=env, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"worker {spec['method']} at N={spec['n']} failed:\n"
                           f"{completed.stderr[-3000:]}")
    line = next(x for x in completed.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    result["load_before"] = load_before
    result["load_after"] = os.getloadavg()[0]
    return result


def score(X: np.ndarray, labels: np.ndarray, xy: np.ndarray, seed: int) -> dict:
    from sklearn.manifold import trustworthiness
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(X), size=min(len(X), TRUST_SAMPLES), replace=False))
    scores = {"trustworthiness": float(trustworthiness(X[sample], xy[sample],
                                                       n_neighbors=TRUST_NEIGHBORS))}
    knn = KNeighborsClassifier(n_neighbors=10)
    scores["knn_accuracy"] = float(cross_val_score(knn, xy[sample], labels[sample],
                                                   cv=5).mean())
    return scores


def bench_projection(args) -> list[dict]:
    sizes = [int(s) for s in args.sizes.split(",")]
    X, labels = make_data(args.data, max(sizes), 512, args.seed)
    have_umap = subprocess.run([sys.executable, "-c", "import umap"], capture_output=True,
                               check=False).returncode == 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data_path = os.path.join(tmp, "X.npy")
        np.save(data_path, X)
        for n in sizes:
            methods = ["ours"]
            if args.sklearn_max is None or n <= args.sklearn_max:
                methods.append("sklearn")
            if have_umap and not args.no_umap:
                methods.append("umap")
            for method in methods:
                out = os.path.join(tmp, f"{method}-{n}.npy")
                print(f"N={n} {method} ...", flush=True)
                result = run_worker({"data": data_path, "n": n, "method": method,
                                     "out": out})
                result.update(score(X[:n], labels[:n], np.load(out), args.seed))
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
def markdown(projection: list[dict], throughput: list[dict], args) -> str:
    lines = []
    if projection:
        lines += ["| N | method | wall time (s) | CPU time (s) | peak RSS (MiB) | "
                  "RSS increase (MiB) | trustworthiness | 10-NN accuracy | "
                  "load avg before/after |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|---|"]
        names = {"ours": "latentaudit Projector (PCA-50 + openTSNE FFT)",
                 "sklearn": "scikit-learn TSNE (PCA-50 + Barnes-Hut)",
                 "umap": "latentaudit Projector (PCA-50 + UMAP)"}
        for r in projection:
            extra = f" (+ {r['compile_s']:.0f} s numba compile)" if "compile_s" in r else ""
            lines.append(
                f"| {r['n']:,} | {names[r['method']]} | {r['seconds']:.1f}{extra} | "
                f"{r['cpu_seconds']:.1f} | "
                f"{r['peak_rss_mib']:.0f} | {r['extra_rss_mib']:.0f} | "
                f"{r['trustworthiness']:.4f} | {r.get('knn_accuracy', float('nan')):.3f} | "
                f"{r['load_before']:.1f} / {r['load_after']:.1f} |")
        by = {(r["n"], r["method"]): r for r in projection}
        lines.append("")
        for n in sorted({r["n"] for r in projection}):
            if (n, "sklearn") in by:
                ours, ref = by[(n, "ours")], by[(n, "sklearn")]
                cpu_ratio = ref["cpu_seconds"] / ours["cpu_seconds"]
                lines.append(f"- N = {n:,}: ours is {ref['seconds'] / ours['seconds']:.1f}x "
                             f"faster in wall time ({cpu_ratio:.1f}x in CPU time); "
                             f"trustworthiness {ours['trustworthiness']:.4f} vs "
                             f"{ref['trustworthiness']:.4f}")
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
    parser.add_argument("--data", choices=["fashion", "gmm"], default="fashion")
    parser.add_argument("--sklearn-max", type=int, default=None,
                        help="skip scikit-learn's TSNE above this N")
    parser.add_argument("--no-umap", action="store_true")
    parser.add_argument("--skip-projection", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--throughput-images", type=int, default=1024)
    parser.add_argument("--bf16", action="store_true", help="also time bf16 autocast (slow)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return None
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}", flush=True)
    projection = [] if args.skip_projection else bench_projection(args)
    throughput = [] if args.skip_throughput else bench_throughput(args)
    text = markdown(projection, throughput, args)
    print("\n" + text)
    if args.json:
        Path(args.json).write_text(json.dumps({"projection": projection,
                                               "throughput": throughput}, indent=2))
    return projection, throughput


if __name__ == "__main__":
    main()
