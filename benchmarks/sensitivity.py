"""Benchmark: detection limits of planted artefacts, by artefact family, encoder and source.

For every image source, encoder and artefact family, :func:`latentaudit.sensitivity`
plants one artefact in a random hidden group (10% of the rows) at a ladder of strengths
(0 = the null) and runs the audit as configured for that source, in both regimes:

- *known*: the group is a metadata column, nobody flagged (role "other", the audit's
  default) or, with ``--column-role nuisance``, declared a nuisance (a scanner the user
  suspects); found when a finding on it has q < 0.001;
- *unforeseen*: no column names it; found when a cluster, the unclustered rows or the top
  outliers match it with F1 >= 0.5.

The detection limit is the median over repeats of the lowest strength found ("-": not
found at any strength in most repeats).  Beside it, the paper's Table 1 layout: SVM probes
(SVC/SVR, 5-fold, 95% intervals) of each source's columns from each clean embedding.

Sources: ``demo`` (the demo cohort, 64x64, held-out rows of ``demo_split``; audit as
``latentaudit demo`` configures it: biology expected, site a nuisance, clusters within
sex) and ``fashion`` (Fashion-MNIST test images at 32x32; the class expected).  Encoders:
``pca`` (pixel PCA, 32 components, fitted on the source's training rows), ``vae0`` (an
untrained beta-VAE, cpu64 preset: a random conv net), ``vae`` (the same trained label-free
on the training rows for ``--vae-steps``), ``dae`` (the shipped demo DAE; demo only).

Run from the repository root; one source per call keeps each run short, then print the
tables of the saved runs::

    python benchmarks/sensitivity.py run --source demo --json /tmp/sens_demo.json
    python benchmarks/sensitivity.py run --source fashion --json /tmp/sens_fashion.json
    python benchmarks/sensitivity.py tables /tmp/sens_demo.json /tmp/sens_fashion.json

``run --quick`` is a seconds-long smoke run (pixel PCA, one family, two strengths).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np
import pandas as pd

#: One artefact per family (the demo's site C already lies on head-rests, so the objects
#: family plants burned-in text instead).
FAMILIES = {
    "geometry": ("tilt", {}),
    "objects": ("burned_in_text", {}),
    "intensity": ("bias_field", {"pattern_seed": 0}),
    "noise": ("rician_noise", {}),
    "resolution": ("blur", {}),
    "acquisition": ("ghosting", {}),
}
STRENGTHS = (0.0, 0.1, 0.25, 0.5, 1.0)
ENCODERS = {"demo": ("pca", "vae0", "vae", "dae"), "fashion": ("pca", "vae0", "vae")}
#: The audit of each source (the options of ClusterAuditor), as a user would configure it.
AUDITS = {
    "demo": {"expected": ["sex", "age", "height", "weight"], "nuisance": ["site"],
             "within": "sex"},
    "fashion": {"expected": ["label"]},
}
TABLE1 = {"demo": ["sex", "age", "site"], "fashion": ["label"]}


def load_source(source: str, n: int, seed: int):
    """(training rows, audited rows) of a source as ArrayDatasets, the audited ones with
    their metadata (nothing about any planted group)."""
    import latentaudit as la

    if source == "demo":
        cohort = la.datasets.load_demo_cohort()
        train_rows, test_rows = la.datasets.demo_split(cohort.metadata)
        images, metadata = cohort.images, cohort.metadata
    else:
        data = la.datasets.load_fashion_mnist("all", size=32)
        metadata = data.metadata.drop(columns=["label_name", "split"])
        images = data.images
        is_train = (data.metadata["split"] == "train").to_numpy()
        train_rows, test_rows = np.flatnonzero(is_train), np.flatnonzero(~is_train)
    rng = np.random.default_rng(seed)
    if n < len(test_rows):
        test_rows = np.sort(rng.choice(test_rows, n, replace=False))
    train = la.ArrayDataset(np.ascontiguousarray(images[train_rows]),
                            metadata.iloc[train_rows].reset_index(drop=True))
    test = la.ArrayDataset(np.ascontiguousarray(images[test_rows]),
                           metadata.iloc[test_rows].reset_index(drop=True))
    return train, test


def make_encoder(kind: str, train, *, vae_steps: int, seed: int):
    """An encoder of ``kind``, fitted label-free on ``train`` (images only)."""
    import torch

    import latentaudit as la
    from latentaudit.encoders import build_encoder

    torch.manual_seed(seed)
    if kind == "pca":
        return build_encoder("pixel_pca", train.image_shape, latent_dim=32,
                             random_state=seed).fit(train)
    if kind in ("vae0", "vae"):
        encoder = build_encoder("beta_vae", train.image_shape, preset="cpu64")
        if kind == "vae":
            encoder.fit(train, max_steps=vae_steps, batch_size=32, random_state=seed,
                        verbose=False)
        return encoder.eval()
    if kind == "dae":
        return la.DAEEncoder.from_pretrained("demo").eval()
    raise SystemExit(f"unknown encoder {kind!r}")


def table1(encoder, test, columns, audit: dict, seed: int) -> dict:
    """SVM probes (Table 1 of Graf et al. 2024) of ``columns`` from the clean embedding."""
    import latentaudit as la

    emb = la.embed(encoder, test, batch_size=64, verbose=False)
    auditor = la.ClusterAuditor(**{**audit, "random_state": seed}).fit(emb)
    probes = auditor.probe(columns, model="svm")
    return {row.column: {"metric": row.metric, "score": float(row.score),
                         "low": float(row.ci_low), "high": float(row.ci_high),
                         "chance": float(row.chance)} for row in probes.itertuples()}


def run(args) -> dict:
    import torch

    import latentaudit as la

    torch.set_num_threads(args.threads)
    if args.quick:
        args.n, args.repeats, args.strengths = 200, 1, (0.0, 1.0)
        args.encoders, args.families = ["pca"], ["intensity"]
    encoders = args.encoders or list(ENCODERS[args.source])
    families = args.families or list(FAMILIES)
    started = time.perf_counter()
    train, test = load_source(args.source, args.n, args.seed)
    audit = {**AUDITS[args.source], "n_permutations": args.permutations}
    out = {"source": args.source, "column_role": args.column_role,
           "label": args.source if args.column_role == "other" else
           f"{args.source} (declared)", "n": len(test), "n_train": len(train),
           "strengths": list(args.strengths), "repeats": args.repeats,
           "fraction": args.fraction, "audit": audit, "vae_steps": args.vae_steps,
           "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
           "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
                      f"{args.threads} torch threads",
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "limits": [], "table1": {}, "seconds": {}}
    for kind in encoders:
        tick = time.perf_counter()
        encoder = make_encoder(kind, train, vae_steps=args.vae_steps, seed=args.seed)
        out["seconds"][f"{kind}_fit"] = round(time.perf_counter() - tick, 1)
        out["table1"][kind] = table1(encoder, test, TABLE1[args.source], audit, args.seed)
        for family in families:
            name, params = FAMILIES[family]
            tick = time.perf_counter()
            result = la.sensitivity(encoder, test, artefact=la.artefacts.get_artefact(
                name, **params), strengths=args.strengths, fraction=args.fraction,
                repeats=args.repeats, audit=audit, column_role=args.column_role,
                random_state=args.seed)
            limits = result.detection_limits.set_index("regime")
            curves = result.curves.set_index("strength")
            null = curves.loc[0.0] if 0.0 in curves.index else None
            row = {"family": family, "artefact": name, "encoder": kind,
                   "known": float(limits.loc["known", "limit"]),
                   "unforeseen": float(limits.loc["unforeseen", "limit"]),
                   "known_found_in": int(limits.loc["known", "found_in"]),
                   "unforeseen_found_in": int(limits.loc["unforeseen", "found_in"]),
                   "null_significant": None if null is None else float(
                       null["known_significant_rate"]),
                   "auc": {f"{s:g}": round(float(curves.loc[s, "probe_auc"]), 3)
                           for s in curves.index},
                   "f1": {f"{s:g}": round(float(curves.loc[s, "unforeseen_f1"]), 3)
                          for s in curves.index},
                   "seconds": round(time.perf_counter() - tick, 1)}
            out["limits"].append(row)
            save(out, args.json)   # after every measurement: a killed run keeps its rows
            print(f"{args.source:8s} {kind:5s} {family:12s} known {_limit(row['known']):>5s} "
                  f"unforeseen {_limit(row['unforeseen']):>5s}  AUC {row['auc']}  "
                  f"({row['seconds']:.0f} s)", flush=True)
    out["seconds"]["total"] = round(time.perf_counter() - started, 1)
    save(out, args.json)
    print_tables([out])
    return out


def save(out: dict, path: str | None) -> None:
    """Write the figures so far (atomically) to ``path``, if given."""
    if path:
        with open(f"{path}.partial", "w", encoding="utf-8") as handle:
            json.dump(out, handle, indent=1)
        os.replace(f"{path}.partial", path)


def _limit(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:g}"


def print_tables(runs: list[dict]) -> None:
    """The detection-limit table (family x encoder x source) and the Table 1 layout."""
    rows = [{**row, "source": r.get("label", r["source"])} for r in runs
            for row in r["limits"]]
    if not rows:
        return
    frame = pd.DataFrame(rows)
    print("\nDetection limits (lowest strength found; known / unforeseen; - = not found)\n")
    columns = [(r.get("label", r["source"]), kind) for r in runs for kind in dict.fromkeys(
        row["encoder"] for row in r["limits"])]
    print("| family (artefact) | " + " | ".join(f"{s} {k}" for s, k in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for family in dict.fromkeys(frame["family"]):
        part = frame[frame["family"] == family]
        cells = []
        for source, kind in columns:
            hit = part[(part["source"] == source) & (part["encoder"] == kind)]
            cells.append("" if hit.empty else
                         f"{_limit(hit['known'].item())} / {_limit(hit['unforeseen'].item())}")
        print(f"| {family} ({part['artefact'].iloc[0]}) | " + " | ".join(cells) + " |")
    # the null runs of one encoder are the same for every family (same groups and seeds)
    nulls = frame.drop_duplicates(["source", "encoder"])["null_significant"].dropna()
    if len(nulls):
        print(f"\nNull (strength 0): the hidden group reported at q <= alpha in "
              f"{nulls.mean():.1%} of {len(nulls) * runs[0]['repeats']} distinct runs.")
    print("\nTable 1 layout: SVM probes of the clean embeddings (accuracy for categories, "
          "MAE for numbers; 95% CI)\n")
    for r in runs:
        if r.get("column_role", "other") != "other":
            continue  # the same clean embeddings as the run with the column undeclared
        names = list(next(iter(r["table1"].values())))
        print(f"| {r['source']} encoder | " + " | ".join(names) + " |")
        print("|---|" + "---:|" * len(names))
        for kind, probes in r["table1"].items():
            cells = [f"{p['score']:.3f} [{p['low']:.3f}, {p['high']:.3f}]"
                     for p in probes.values()]
            print(f"| {kind} | " + " | ".join(cells) + " |")
        chance = [f"{p['chance']:.3f}" for p in next(iter(r["table1"].values())).values()]
        print("| chance | " + " | ".join(chance) + " |\n")
    for r in runs:
        label = r.get("label", r["source"])
        print(f"{label}: {r['n']} audited rows ({r['n_train']} for fitting the encoders),"
              f" {r['repeats']} repeats, strengths {r['strengths']}, "
              f"{r['seconds'].get('total', float('nan')):.0f} s; {r['machine']}; {r['date']}; "
              f"command: {r['command']}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    go = sub.add_parser("run", help="measure one source")
    go.add_argument("--source", choices=sorted(ENCODERS), default="demo")
    go.add_argument("--encoders", nargs="+", default=None)
    go.add_argument("--families", nargs="+", choices=sorted(FAMILIES), default=None)
    go.add_argument("--strengths", nargs="+", type=float, default=STRENGTHS)
    go.add_argument("--n", type=int, default=400, help="audited rows")
    go.add_argument("--repeats", type=int, default=2)
    go.add_argument("--fraction", type=float, default=0.1)
    go.add_argument("--column-role", choices=("other", "nuisance"), default="other",
                    help="the known regime's column: undeclared (the audit's default) or "
                         "declared a nuisance")
    go.add_argument("--permutations", type=int, default=19)
    go.add_argument("--vae-steps", type=int, default=600)
    go.add_argument("--threads", type=int, default=2)
    go.add_argument("--seed", type=int, default=0)
    go.add_argument("--quick", action="store_true")
    go.add_argument("--json", default=None)
    show = sub.add_parser("tables", help="print the tables of saved runs")
    show.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    if args.what == "tables":
        runs = []
        for path in args.files:
            with open(path, encoding="utf-8") as handle:
                runs.append(json.load(handle))
        print_tables(runs)
        return runs
    return run(args)


if __name__ == "__main__":
    main()
