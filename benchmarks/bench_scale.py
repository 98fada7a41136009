"""Benchmark: the analysis of up to 10^6 embeddings on one machine, from a memory-map.

Usage (from the repository root; timings under the heavy lock on a shared machine)::

    .venv/bin/python benchmarks/bench_scale.py --n 100000 --quality   # + full t-SNE fit
    .venv/bin/python benchmarks/bench_scale.py --n 1000000

Phases, each in a fresh process so that its time and peak memory are its own:

1. ``data``: a synthetic encoder-like embedding (``bench_audit.py``'s model: 12 clusters of
   a 512-d Gaussian with a 1/i spectrum, randomly rotated, four sites of which B is
   shifted, a sex label carried by one direction with 1% of the labels flipped) written
   block by block to ``DIR/z_N.npy`` (float32) with its metadata (``DIR/meta_N.csv``);
   reused when it exists.
2. ``audit``: ``ClusterAuditor(random_state=0, nuisance=["site"], expected=["sex"],
   knn_space=...).fit(z, metadata)`` and ``label_issues("sex")`` on
   ``numpy.load(path, mmap_mode="r")``
   (numba's compilation is done first on a tiny input and reported apart).
3. ``project``: ``Projector(random_state=0, max_fit_samples=M).fit(z)`` on the same
   memory-map: t-SNE optimised on M random rows, the others placed with ``transform``.
   Trustworthiness (k = 10, against the 512-d embedding) on 5,000 random rows that were
   optimised and on 5,000 that were placed.
4. ``quality`` (``--quality``): the same data mapped by a full fit (all rows optimised),
   and both maps scored by trustworthiness (k = 10) against the 512-d embedding on 5,000
   random rows, and on 5,000 random rows of those that were placed, not optimised.

Peak memory is the process's peak resident set (``ru_maxrss``), which counts the pages of
the memory-mapped input that were read.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

DIM = 512
TRUST_ROWS = 5000


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def paths(args) -> tuple[Path, Path]:
    folder = Path(args.dir)
    return folder / f"z_{args.n}.npy", folder / f"meta_{args.n}.csv"


def phase_data(args) -> dict:
    """Write the embedding block by block (bench_audit.py's model), never all in memory."""
    z_path, meta_path = paths(args)
    if z_path.exists() and meta_path.exists():
        return {"written": False}
    z_path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    scale = np.sqrt(1.0 / np.arange(1, DIM + 1)).astype(np.float32)
    centres = rng.standard_normal((12, DIM), dtype=np.float32) * scale * 3.0
    rotation, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)).astype(np.float32))
    out = np.lib.format.open_memmap(z_path.with_suffix(".tmp.npy"), mode="w+",
                                    dtype=np.float32, shape=(args.n, DIM))
    frames = []
    block = 65_536
    for start in range(0, args.n, block):
        m = min(block, args.n - start)
        z = rng.standard_normal((m, DIM), dtype=np.float32) * scale
        z += centres[rng.integers(0, 12, m)]
        site = rng.choice(np.array(list("ABCD")), m)
        sex = rng.choice(np.array(["F", "M"]), m)
        age = rng.normal(50, 12, m)
        z[:, 1] += np.where(sex == "M", 1.2, -1.2).astype(np.float32)
        z[:, 2] += ((age - 50) / 12 * 0.8).astype(np.float32)
        z[site == "B", 3] += 2.5
        out[start:start + m] = z @ rotation
        flipped = rng.random(m) < 0.01
        given = np.where(flipped, np.where(sex == "M", "F", "M"), sex)
        frames.append(pd.DataFrame({"site": site, "sex": given, "age": age.round(1),
                                    "flipped": flipped}))
    out.flush()
    del out
    os.replace(z_path.with_suffix(".tmp.npy"), z_path)
    pd.concat(frames, ignore_index=True).to_csv(meta_path, index=False)
    return {"written": True}


def load(args):
    z_path, meta_path = paths(args)
    z = np.load(z_path, mmap_mode="r")
    meta = pd.read_csv(meta_path)
    flipped = np.flatnonzero(meta.pop("flipped").to_numpy())
    return z, meta, flipped


def phase_audit(args) -> dict:
    from latentaudit.audit import ClusterAuditor
    from latentaudit.audit._neighbors import build_knn_graph

    start = time.perf_counter()
    build_knn_graph(np.random.default_rng(0).normal(size=(2000, 8)).astype(np.float32), 15,
                    method="nndescent", random_state=0)
    compile_seconds = time.perf_counter() - start
    z, meta, flipped = load(args)
    rss_before = peak_rss_gb()
    start = time.perf_counter()
    auditor = ClusterAuditor(random_state=0, nuisance=["site"], expected=["sex"],
                             knn_space=args.knn_space, n_jobs=args.threads).fit(z, meta)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    issues = auditor.label_issues("sex")
    issues_seconds = time.perf_counter() - start
    top = auditor.findings_.iloc[0]
    return {
        "compile_seconds": compile_seconds,
        "fit_seconds": fit_seconds,
        "label_issues_seconds": issues_seconds,
        "total_seconds": fit_seconds + issues_seconds,
        "peak_rss_gb": peak_rss_gb(),
        "rss_before_fit_gb": rss_before,
        "stages": {k: round(v, 1) for k, v in auditor.timings_.items()},
        "knn_space": args.knn_space, "knn_space_used": auditor.knn_space_,
        "knn_method": auditor.knn_method_,
        "knn_recall_sampled": auditor.knn_recall_,
        "n_clusters": auditor.n_clusters_,
        "top_finding": top["description"],
        "precision_at_k": float(np.isin(issues["index"].head(flipped.size), flipped).mean()),
        "k": int(flipped.size),
    }


def _projector(args, max_fit_samples):
    from latentaudit import Projector

    return Projector(random_state=0, max_fit_samples=max_fit_samples, n_jobs=args.threads)


def phase_project(args) -> dict:
    z, _, _ = load(args)
    rss_before = peak_rss_gb()
    start = time.perf_counter()
    projector = _projector(args, args.fit_samples).fit(z)
    seconds = time.perf_counter() - start
    np.save(Path(args.dir) / f"map_{args.n}_{args.fit_samples}.npy", projector.embedding_)
    np.save(Path(args.dir) / f"rows_{args.n}_{args.fit_samples}.npy", projector.fit_rows_)
    result = {"seconds": seconds, "peak_rss_gb": peak_rss_gb(),
              "rss_before_fit_gb": rss_before, "fit_samples": args.fit_samples,
              "n_iter": projector.n_iter_,
              "stages": {k: round(v, 1) for k, v in projector.timings_.items()}}
    if projector.fit_rows_ is not None:
        # the map's quality on rows it optimised and on rows it placed, in the same map
        from sklearn.manifold import trustworthiness

        rng = np.random.default_rng(2)
        placed = np.setdiff1d(np.arange(args.n), projector.fit_rows_)
        for name, rows in (("optimised", projector.fit_rows_), ("placed", placed)):
            sample = np.sort(rng.choice(rows, size=min(TRUST_ROWS, rows.size), replace=False))
            result[f"trustworthiness_10_{name}"] = float(trustworthiness(
                np.asarray(z[sample]), projector.embedding_[sample], n_neighbors=10))
    return result


def phase_quality(args) -> dict:
    from sklearn.manifold import trustworthiness

    z, _, _ = load(args)
    start = time.perf_counter()
    full = _projector(args, None).fit(z)
    seconds = time.perf_counter() - start
    sub = np.load(Path(args.dir) / f"map_{args.n}_{args.fit_samples}.npy")
    rng = np.random.default_rng(1)
    rows = np.sort(rng.choice(args.n, size=min(TRUST_ROWS, args.n), replace=False))
    fit_rows = np.load(Path(args.dir) / f"rows_{args.n}_{args.fit_samples}.npy")
    placed = np.setdiff1d(np.arange(args.n), fit_rows)
    placed = np.sort(rng.choice(placed, size=min(TRUST_ROWS, placed.size), replace=False))
    scores = {}
    for name, sample in (("all", rows), ("placed", placed)):
        x = np.asarray(z[sample])
        scores[name] = {"full_fit": float(trustworthiness(x, full.embedding_[sample],
                                                          n_neighbors=10)),
                        "subsample_fit": float(trustworthiness(x, sub[sample],
                                                               n_neighbors=10))}
    return {"full_fit_seconds": seconds, "full_fit_stages": {
        k: round(v, 1) for k, v in full.timings_.items()}, "trustworthiness_10": scores}


PHASES = {"data": phase_data, "audit": phase_audit, "project": phase_project,
          "quality": phase_quality}


def run_phase(name: str, args) -> dict:
    command = [sys.executable, __file__, "--phase", name, "--n", str(args.n), "--dir",
               args.dir, "--threads", str(args.threads), "--fit-samples",
               str(args.fit_samples), "--seed", str(args.seed), "--knn-space", args.knn_space]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"phase {name} failed:\n{result.stderr[-3000:]}")
    out = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"{name}: {json.dumps(out)}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="rows of the embedding")
    parser.add_argument("--dir", default="/tmp/la_bench_scale", help="data folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fit-samples", type=int, default=50_000,
                        help="Projector(max_fit_samples=...)")
    parser.add_argument("--knn-space", choices=["auto", "embedding", "reduced"],
                        default="auto",
                        help="ClusterAuditor(knn_space=...): the kNN graph in the 512-d "
                             "embedding or in its 50-d analysis space (auto, the default: "
                             "the embedding up to 100,000 rows)")
    parser.add_argument("--quality", action="store_true",
                        help="also a full t-SNE fit, and trustworthiness of both maps")
    parser.add_argument("--skip", nargs="*", default=[], choices=sorted(PHASES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](args)))
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1024**3:.0f} GiB; "
          f"load average {os.getloadavg()[0]:.1f}; N = {args.n:,} x {DIM} float32, "
          f"{args.threads} threads", flush=True)
    names = ["data", "audit", "project"] + (["quality"] if args.quality else [])
    results = {name: run_phase(name, args) for name in names if name not in args.skip}
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    audit, project = results.get("audit"), results.get("project")
    if audit:
        print(f"ClusterAuditor: fit {audit['fit_seconds']:.0f} s + label_issues "
              f"{audit['label_issues_seconds']:.0f} s = {audit['total_seconds']:.0f} s, "
              f"peak RSS {audit['peak_rss_gb']:.2f} GB; stages {audit['stages']}")
    if project:
        print(f"Projector (t-SNE on {project['fit_samples']:,} rows, the rest placed): "
              f"{project['seconds']:.0f} s, peak RSS {project['peak_rss_gb']:.2f} GB; "
              f"stages {project['stages']}; trustworthiness (k=10) optimised rows "
              f"{project.get('trustworthiness_10_optimised', float('nan')):.4f}, placed rows "
              f"{project.get('trustworthiness_10_placed', float('nan')):.4f}")
    if "quality" in results:
        q = results["quality"]
        print(f"full fit {q['full_fit_seconds']:.0f} s; trustworthiness (k=10) "
              f"{q['trustworthiness_10']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
