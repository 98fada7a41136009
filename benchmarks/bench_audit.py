"""Benchmark of ClusterAuditor at scale: a full fit plus label issues, and the kNN graph.

Usage::

    .venv/bin/python benchmarks/bench_audit.py            # N = 100,000 x 512 (several minutes)
    .venv/bin/python benchmarks/bench_audit.py --n 20000  # quicker

Each phase runs in its own process so that its peak memory and numba's compilation are
measured alone:

1. ``compile``: pynndescent's numba compilation in a fresh process with an empty cache,
   again in a second process (disk cache from the first), and in a third process with
   latentaudit's cache switch off (only the functions pynndescent caches itself).
2. ``fit``: ``ClusterAuditor(random_state=0, nuisance=["site"], expected=["sex"]).fit`` and
   ``label_issues("sex")`` on a synthetic embedding, after compiling numba on a tiny input
   in the same process; wall time, peak resident memory, the first finding, the recovery
   of planted flipped labels.
3. ``knn``: the approximate kNN graph (pynndescent, as ``ClusterAuditor`` builds it) against
   scikit-learn's exact brute-force search on the same data, in the same process: times,
   speed-up and recall of the approximate graph against the exact one over all rows.

The synthetic embedding imitates an encoder's: 12 clusters of a 512-d Gaussian whose
variances fall off as 1/i (a power-law spectrum, randomly rotated), four sites of which
site B is shifted, a sex label that one direction predicts with 1% of labels flipped, and an
age that another direction predicts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd


def make_embedding(n: int, dim: int = 512, seed: int = 0, spectrum: float = 1.0):
    """Synthetic encoder-like embedding with planted site shift and flipped labels.

    The i-th principal variance falls off as ``1 / i ** spectrum``: 1 imitates an
    encoder's embedding, smaller values spread the variance over more directions, which
    makes nearest neighbours harder to find.
    """
    rng = np.random.default_rng(seed)
    scale = np.sqrt(1.0 / np.arange(1, dim + 1) ** spectrum).astype(np.float32)
    z = rng.standard_normal((n, dim), dtype=np.float32) * scale
    centres = rng.standard_normal((12, dim), dtype=np.float32) * scale * 3.0
    z += centres[rng.integers(0, 12, n)]
    site = rng.choice(np.array(list("ABCD")), n)
    sex = rng.choice(np.array(["F", "M"]), n)
    age = rng.normal(50, 12, n)
    z[:, 1] += np.where(sex == "M", 1.2, -1.2).astype(np.float32)
    z[:, 2] += ((age - 50) / 12 * 0.8).astype(np.float32)
    z[site == "B", 3] += 2.5
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)).astype(np.float32))
    z = np.ascontiguousarray(z @ rotation, dtype=np.float32)
    flipped = rng.choice(n, size=n // 100, replace=False)
    given = sex.copy()
    given[flipped] = np.where(sex[flipped] == "M", "F", "M")
    meta = pd.DataFrame({"site": site, "sex": given, "age": age.round(1)})
    return z, meta, flipped


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def warm_up() -> float:
    """Compile pynndescent's kernels (numba) on a tiny input; returns seconds."""
    from latentaudit.audit._neighbors import build_knn_graph

    start = time.perf_counter()
    x = np.random.default_rng(0).normal(size=(2000, 8)).astype(np.float32)
    build_knn_graph(x, 15, method="nndescent", random_state=0)
    return time.perf_counter() - start


def phase_compile(_args) -> dict:
    return {"compile_seconds": warm_up()}


def phase_fit(args) -> dict:
    from latentaudit.audit import ClusterAuditor

    compile_seconds = warm_up()
    z, meta, flipped = make_embedding(args.n, spectrum=args.spectrum)
    rss_data = peak_rss_gb()
    start = time.perf_counter()
    aud = ClusterAuditor(random_state=0, nuisance=["site"], expected=["sex"],
                         n_jobs=args.threads).fit(z, meta)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    issues = aud.label_issues("sex")
    issues_seconds = time.perf_counter() - start
    k = flipped.size
    top = aud.findings_.iloc[0]
    return {
        "compile_seconds_in_process": compile_seconds,
        "fit_seconds": fit_seconds,
        "label_issues_seconds": issues_seconds,
        "total_seconds": fit_seconds + issues_seconds,
        "peak_rss_gb": peak_rss_gb(),
        "peak_rss_after_data_gb": rss_data,
        "fit_stages_seconds": {k: round(v, 2) for k, v in aud.timings_.items()},
        "n_clusters": aud.n_clusters_,
        "knn_method": aud.knn_method_,
        "knn_recall_sampled": aud.knn_recall_,
        "top_finding": top["description"],
        "top_q_value": float(top["q_value"]),
        "precision_at_k": float(np.isin(issues["index"].head(k), flipped).mean()),
        "k": int(k),
    }


def phase_knn(args) -> dict:
    from sklearn.neighbors import NearestNeighbors

    from latentaudit.audit._neighbors import _drop_self, build_knn_graph

    compile_seconds = warm_up()
    z, _, _ = make_embedding(args.n, spectrum=args.spectrum)
    k = 15
    start = time.perf_counter()
    graph = build_knn_graph(z, k, method="nndescent", random_state=0, n_jobs=args.threads)
    approx_seconds = time.perf_counter() - start
    if graph.method != "nndescent":
        raise RuntimeError("NN-descent fell back to exact search on this data")
    start = time.perf_counter()
    search = NearestNeighbors(n_neighbors=k + 1, algorithm="brute", n_jobs=args.threads).fit(z)
    distances, indices = search.kneighbors(z)
    exact_seconds = time.perf_counter() - start
    exact, _ = _drop_self(indices, distances, k)
    hits = (graph.indices[:, :, None] == exact[:, None, :]).any(axis=2).sum()
    return {
        "compile_seconds_in_process": compile_seconds,
        "nndescent_seconds": approx_seconds,
        "exact_seconds": exact_seconds,
        "speedup": exact_seconds / approx_seconds,
        "recall_all_rows": float(hits / exact.size),
        "recall_sampled": graph.recall,
        "build_neighbors": graph.build_neighbors,
        "n_neighbors": k,
    }


PHASES = {"compile": phase_compile, "fit": phase_fit, "knn": phase_knn}


def run_phase(name: str, args, env=None) -> dict:
    command = [sys.executable, __file__, "--phase", name, "--n", str(args.n),
               "--threads", str(args.threads), "--spectrum", str(args.spectrum)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"phase {name} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="rows of the embedding")
    parser.add_argument("--threads", type=int, default=2, help="threads (n_jobs)")
    parser.add_argument("--spectrum", type=float, default=1.0,
                        help="principal variances fall off as 1 / i ** SPECTRUM")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--skip", nargs="*", default=[], choices=sorted(PHASES),
                        help="phases to leave out")
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](args)))
        return

    load_before = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average before {load_before[0]:.2f}; "
          f"N = {args.n:,} x 512 (spectrum 1 / i ** {args.spectrum:g}), {args.threads} "
          f"threads")
    results = {}
    if "compile" not in args.skip:
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            cold = run_phase("compile", args, env)["compile_seconds"]
            warm = run_phase("compile", args, env)["compile_seconds"]
            env_off = dict(env, LATENTAUDIT_NUMBA_CACHE="0")
            off = run_phase("compile", args, env_off)["compile_seconds"]
        results["compile"] = {"first_process": cold, "second_process": warm,
                              "second_process_without_latentaudit_cache": off}
        print(f"numba compile: first process {cold:.1f} s, second process {warm:.1f} s "
              f"(without latentaudit's cache switch: {off:.1f} s)")
    if "fit" not in args.skip:
        fit = run_phase("fit", args)
        results["fit"] = fit
        print(f"fit {fit['fit_seconds']:.1f} s + label_issues {fit['label_issues_seconds']:.1f} s"
              f" = {fit['total_seconds']:.1f} s; peak RSS {fit['peak_rss_gb']:.2f} GB "
              f"(data alone {fit['peak_rss_after_data_gb']:.2f} GB); kNN recall (sampled) "
              f"{fit['knn_recall_sampled']:.3f}; {fit['n_clusters']} clusters; top finding: "
              f"{fit['top_finding']!r} (q = {fit['top_q_value']:.2g}); flipped labels "
              f"precision@{fit['k']} = {fit['precision_at_k']:.3f}; stages (s): "
              f"{fit['fit_stages_seconds']}")
    if "knn" not in args.skip:
        knn = run_phase("knn", args)
        results["knn"] = knn
        print(f"kNN graph (k = 15): pynndescent {knn['nndescent_seconds']:.1f} s, exact "
              f"brute force {knn['exact_seconds']:.1f} s, speed-up {knn['speedup']:.1f}x, "
              f"recall {knn['recall_all_rows']:.3f} (lists of {knn['build_neighbors']})")
    load_after = os.getloadavg()
    print(f"load average after {load_after[0]:.2f} (1 min), {load_after[1]:.2f} (5 min)")
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
