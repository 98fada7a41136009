"""Benchmark: training and embedding on 1 and on 2 processes under ``torchrun`` (gloo,
CPU), the figures of the distributed section of ``docs/scaling.md``.

Run from the repository root, one at a time on an otherwise idle machine (under the heavy
lock of the shared machine)::

    .venv/bin/python benchmarks/bench_distributed.py train --repeats 2
    .venv/bin/python benchmarks/bench_distributed.py embed --repeats 2

``train`` trains the command line's β-VAE (``cpu64`` preset) and a ``cpu64`` Diffusion
Autoencoder on the 64x64 demo cohort with the same global batch on 1 process (with all
the machine's cores as threads) and on 2 processes (the cores split between them),
alternating ``1, 2, 1, 2, ...`` so that drifting machine load hits both alike, and prints
images per second of the timed steps (after two warm-up steps) and the ratio.  It also
prints how far apart the two runs' weights end up.

``embed`` embeds the demo cohort with the shipped demo DAE the same way.

Add ``--json PATH`` to write the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve()


# -- what each launched process runs -------------------------------------------------------
def _worker_train(args) -> None:
    import latentaudit as la
    from latentaudit.encoders import build_encoder
    from latentaudit.training import is_main_process

    cohort = la.datasets.load_demo_cohort()
    n = args.images
    data = la.ArrayDataset(cohort.images[:n])
    encoder = build_encoder(args.model, tuple(cohort.images.shape[1:]), preset="cpu64",
                            random_state=0)
    stamps = []
    encoder.fit(data, max_steps=args.steps, batch_size=args.batch_size, verbose=False,
                random_state=0, warmup_steps=0,
                callbacks=[lambda step, logs: stamps.append(time.perf_counter())])
    if is_main_process():
        timed = args.steps - 2
        seconds = stamps[-1] - stamps[1]
        state = {k: v.detach().cpu().numpy().tolist() for k, v in encoder.state_dict().items()}
        Path(args.out).write_text(json.dumps({
            "images_per_s": timed * args.batch_size / seconds, "seconds": seconds,
            "state": state}))


def _worker_embed(args) -> None:
    import latentaudit as la
    from latentaudit.training import is_main_process

    cohort = la.datasets.load_demo_cohort()
    data = la.ArrayDataset(cohort.images[:args.images], cohort.metadata.iloc[:args.images])
    encoder = la.DAEEncoder.from_pretrained("demo")
    la.embed(encoder, data, batch_size=args.batch_size, verbose=False)  # warm-up
    tick = time.perf_counter()
    emb = la.embed(encoder, data, batch_size=args.batch_size, verbose=False)
    seconds = time.perf_counter() - tick
    if is_main_process():
        Path(args.out).write_text(json.dumps({
            "images_per_s": len(data) / seconds, "seconds": seconds,
            "z": np.asarray(emb.z).tolist()}))


# -- the launcher ------------------------------------------------------------------------------
def _launch(mode: str, nproc: int, args, out: Path) -> dict:
    cores = os.cpu_count() or 1
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, cores // nproc)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE.parents[1] / "src"),
                                                     os.environ.get("PYTHONPATH")) if p)
    worker = [str(HERE), mode, "--worker", mode, "--out", str(out), "--steps", str(args.steps),
              "--batch-size", str(args.batch_size), "--images", str(args.images),
              "--model", args.model]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node", str(nproc), *worker]
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.read_text())


def compare(mode: str, args) -> dict:
    runs = {1: [], 2: []}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for nproc in (1, 2):
                out = Path(tmp) / f"{mode}-{nproc}-{repeat}.json"
                runs[nproc].append(_launch(mode, nproc, args, out))
                print(f"{mode} {args.model if mode == 'train' else 'dae-demo'} nproc={nproc} "
                      f"repeat {repeat}: {runs[nproc][-1]['images_per_s']:.1f} images/s",
                      flush=True)
    for nproc in (1, 2):
        speeds = [r["images_per_s"] for r in runs[nproc]]
        results[f"images_per_s_{nproc}proc"] = round(float(np.median(speeds)), 2)
    results["speedup_2_over_1"] = round(results["images_per_s_2proc"]
                                        / results["images_per_s_1proc"], 3)
    if mode == "train":
        a, b = runs[1][0]["state"], runs[2][0]["state"]
        results["max_abs_weight_diff"] = float(max(
            np.max(np.abs(np.asarray(a[k]) - np.asarray(b[k]))) for k in a))
    else:
        a, b = np.asarray(runs[1][0]["z"]), np.asarray(runs[2][0]["z"])
        results["max_abs_embedding_diff"] = float(np.max(np.abs(a - b)))
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("train", "embed"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--model", default="betavae", help="train: betavae or dae")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.worker == "train":
        return _worker_train(args)
    if args.worker == "embed":
        return _worker_embed(args)
    results = compare(args.mode, args)
    results["machine"] = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} "
                          f"CPUs, torch {torch.__version__}, "
                          f"{time.strftime('%Y-%m-%d')}")
    results["command"] = "python benchmarks/bench_distributed.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    print(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
