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
sex), ``fashion`` (Fashion-MNIST test images at 32x32; the class expected) and ``mri``
(real MRI and CT slices of ``la.datasets.load_slice_bank`` at 64x64: 2,000 slices of seven
volumes, the encoders fitted on the even position bands of ``slice_bank_split``, the
audited rows drawn from the odd ones; volume, axis, position and the augmentation's gamma
and angle expected).  Encoders: ``raw`` (the pixels themselves, flattened: the audit
reduces them to its own PCA space), ``pca`` (pixel PCA, 32 components, fitted on the source's
training rows), ``vae0`` (an untrained beta-VAE, cpu64 preset: a random conv net), ``vae``
(the same trained label-free on the training rows for ``--train-seconds``), ``vaeh`` (the
same with the Hessian penalty of Peebles et al. 2020 on the decoder, same time budget),
``daeb`` (a Diffusion Autoencoder, cpu64 preset, its semantic code) and ``sg2b`` (a
StyleGAN2 GAN and its inverter, cpu64 preset, the inverter's ``w``), each trained here like
the beta-VAEs; ``dae`` (the shipped demo DAE; demo only), ``sg2`` (the shipped StyleGAN2
demo weights, its ``w``; demo only).  Every encoder trained here gets the same CPU budget
(``--train-seconds`` of process CPU time at ``--threads`` threads, so other jobs on the
machine do not change it): a throwaway copy trains for a few steps to measure the CPU
seconds of one step, and the encoder then trains for as many steps as the budget buys.
Beside the probes of the Table 1 layout, ``resnet10``: a 2-D ResNet-10 trained with the
labels on the training rows for ``--resnet-seconds`` of CPU time per column (its learning
rate annealed to zero over the budget on a cosine), tested on the audited rows.

Every measurement (one encoder x family, one Table 1 row) is saved to ``--json`` as soon
as it exists, and the trained encoders to ``--work``; a rerun with the same arguments
skips what is saved, so a long run is several short ones (``--time-limit``)::

    python benchmarks/sensitivity.py run --source demo --json /tmp/sens_demo.json
    python benchmarks/sensitivity.py run --source fashion --json /tmp/sens_fashion.json
    python benchmarks/sensitivity.py run --source mri --json /tmp/sens_mri.json
    python benchmarks/sensitivity.py tables /tmp/sens_demo.json /tmp/sens_fashion.json ...

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
ENCODERS = {"demo": ("raw", "pca", "vae0", "vae", "vaeh", "daeb", "sg2b", "dae", "sg2"),
            "fashion": ("raw", "pca", "vae0", "vae", "vaeh", "daeb", "sg2b"),
            "mri": ("raw", "pca", "vae0", "vae", "vaeh", "daeb", "sg2b")}
#: Encoders trained label-free here, each for the same CPU budget (--train-seconds), and
#: the registry family they are built from.
TRAINED = {"vae": "beta_vae", "vaeh": "beta_vae", "daeb": "dae", "sg2b": "stylegan2"}
#: Steps of the throwaway run that measures the CPU cost of one training step.
CALIBRATION_STEPS = 6
#: The audit of each source (the options of ClusterAuditor), as a user would configure it.
AUDITS = {
    "demo": {"expected": ["sex", "age", "height", "weight"], "nuisance": ["site"],
             "within": "sex"},
    "fashion": {"expected": ["label"]},
    "mri": {"expected": ["volume", "axis", "position", "gamma", "angle"]},
}
TABLE1 = {"demo": ["sex", "age", "site"], "fashion": ["label"],
          "mri": ["volume", "axis", "position"]}


def load_source(source: str, n: int, seed: int):
    """(training rows, audited rows) of a source as ArrayDatasets, the audited ones with
    their metadata (nothing about any planted group)."""
    import latentaudit as la

    if source == "demo":
        cohort = la.datasets.load_demo_cohort()
        train_rows, test_rows = la.datasets.demo_split(cohort.metadata)
        images, metadata = cohort.images, cohort.metadata
    elif source == "mri":
        bank = la.datasets.load_slice_bank(2000, size=64, random_state=seed)
        train_rows, test_rows = la.datasets.slice_bank_split(bank.metadata)
        # person and modality follow from the volume: the audit is told the volume
        images, metadata = bank.images, bank.metadata.drop(columns=["person", "modality"])
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


def make_encoder(kind: str, train, *, train_seconds: float, seed: int, work: str | None,
                 source: str, train_steps: int | None = None):
    """An encoder of ``kind``, fitted label-free on ``train`` (images only); trained ones
    are kept in ``work`` and read back by a rerun.  ``train_seconds`` is a budget of
    process CPU time (see :func:`steps_for_budget`); ``train_steps`` a fixed number of
    steps instead."""
    import torch

    import latentaudit as la
    from latentaudit.encoders import build_encoder, load_pretrained

    torch.manual_seed(seed)
    if kind == "raw":  # the pixels themselves; the audit reduces them to its PCA space
        return la.TorchEncoder(torch.nn.Identity(), input_shape=train.image_shape,
                               pooling="flatten").eval()
    if kind == "pca":
        return build_encoder("pixel_pca", train.image_shape, latent_dim=32,
                             random_state=seed).fit(train)
    if kind == "dae":
        return la.DAEEncoder.from_pretrained("demo").eval()
    if kind == "sg2":
        return la.StyleGAN2Encoder.from_pretrained("demo").eval()
    if kind not in ("vae0", *TRAINED):
        raise SystemExit(f"unknown encoder {kind!r}")
    budget = f"_steps{train_steps}" if train_steps else f"_cpu{train_seconds:g}"
    name = f"{source}_{kind}_seed{seed}" + budget
    folder = os.path.join(work, name) if work else None
    if kind in TRAINED and folder and os.path.isfile(os.path.join(folder, "config.json")):
        encoder = load_pretrained(folder).eval()
        with open(os.path.join(folder, "steps.json"), encoding="utf-8") as handle:
            saved = json.load(handle)
        # older runs saved the number of steps alone
        saved = saved if isinstance(saved, dict) else {"steps": saved}
        encoder.steps_trained, encoder.cpu_seconds = saved["steps"], saved.get("cpu_seconds")
        return encoder

    def build():
        torch.manual_seed(seed)
        if kind == "vae0":
            return build_encoder("beta_vae", train.image_shape, preset="cpu64")
        # the Hessian penalty (Peebles et al. 2020) from the first step: the budget is short
        hessian = {"hessian_weight": 0.1, "hessian_warmup_steps": 0} if kind == "vaeh" else {}
        return build_encoder(TRAINED[kind], train.image_shape, preset="cpu64", **hessian)

    encoder = build()
    if kind in TRAINED:
        steps = train_steps or steps_for_budget(build, train, train_seconds, seed)
        tick = time.process_time()
        encoder.fit(train, max_steps=steps, batch_size=32, random_state=seed, verbose=False)
        encoder.cpu_seconds = round(time.process_time() - tick, 1)
        encoder.steps_trained = steps
        if folder:
            encoder.save_pretrained(folder)
            with open(os.path.join(folder, "steps.json"), "w", encoding="utf-8") as handle:
                json.dump({"steps": steps, "cpu_seconds": encoder.cpu_seconds}, handle)
    return encoder.eval()


def steps_for_budget(build, train, seconds: float, seed: int) -> int:
    """How many training steps of the encoder ``build()`` makes fit in ``seconds`` of
    process CPU time: a throwaway copy trains for :data:`CALIBRATION_STEPS` steps (its
    first step's set-up included, so the estimate errs on the short side) on the first 256
    training images, so that what a model does once after training (the DAE's pass over
    its training set for the latent statistics) does not count as steps."""
    import latentaudit as la

    images = getattr(train, "images", None)
    if images is not None and len(images) > 256:
        train = la.ArrayDataset(np.ascontiguousarray(images[:256]))
    probe = build()
    tick = time.process_time()
    probe.fit(train, max_steps=CALIBRATION_STEPS, batch_size=32, random_state=seed,
              verbose=False)
    per_step = (time.process_time() - tick) / CALIBRATION_STEPS
    return max(CALIBRATION_STEPS, int(seconds / per_step))


def supervised_table1(train, test, columns, *, seconds: float, seed: int,
                      max_steps: int | None = None) -> dict:
    """A 2-D ResNet-10 trained with the labels (one per column, ``seconds`` of process CPU
    time or ``max_steps`` of 32 images each, whichever ends first) on the training rows, scored
    on the audited rows: accuracy with a Wilson interval, or mean absolute error with a
    normal interval.  The learning rate follows a cosine from 1e-3 to zero over the budget
    (the share of it spent, in CPU time or steps), so the model scored is an annealed one and
    not wherever a constant-rate run happened to stop."""
    import torch

    from latentaudit.audit._stats import mean_interval, wilson_interval
    from latentaudit.nn import resnet10

    x_train = torch.from_numpy(np.ascontiguousarray(train.images))
    x_test = torch.from_numpy(np.ascontiguousarray(test.images))
    results = {}
    for column in columns:
        y_all = train.metadata[column]
        categorical = not pd.api.types.is_numeric_dtype(y_all) or y_all.nunique() <= 10
        if categorical:
            levels = sorted(pd.unique(pd.concat([y_all, test.metadata[column]])).tolist(),
                            key=str)
            code = {level: i for i, level in enumerate(levels)}
            y_train = torch.tensor([code[v] for v in y_all])
            y_test = np.array([code[v] for v in test.metadata[column]])
            outputs = len(levels)
        else:
            mean, sd = float(y_all.mean()), float(y_all.std())
            y_train = torch.tensor(((y_all.to_numpy() - mean) / sd), dtype=torch.float32)
            y_test = test.metadata[column].to_numpy(dtype=np.float64)
            outputs = 1
        torch.manual_seed(seed)
        model = resnet10(num_classes=outputs, widths=(16, 32, 64, 128))
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
        generator = torch.Generator().manual_seed(seed)
        started, steps = time.process_time(), 0
        model.train()
        while True:
            spent = (time.process_time() - started) / seconds if seconds > 0 else 1.0
            if max_steps:
                spent = max(spent, steps / max_steps)
            if spent >= 1.0:
                break
            for group in optimizer.param_groups:
                group["lr"] = 0.5e-3 * (1.0 + math.cos(math.pi * spent))
            rows = torch.randint(len(x_train), (32,), generator=generator)
            out = model(x_train[rows])
            loss = (torch.nn.functional.cross_entropy(out, y_train[rows]) if categorical
                    else torch.nn.functional.mse_loss(out[:, 0], y_train[rows]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
        model.eval()
        with torch.no_grad():
            out = torch.cat([model(x_test[i:i + 128]) for i in range(0, len(x_test), 128)])
        if categorical:
            hits = int((out.argmax(1).numpy() == y_test).sum())
            low, high = wilson_interval(hits, len(y_test))
            results[column] = {"metric": "accuracy", "score": hits / len(y_test),
                               "low": low, "high": high, "steps": steps,
                               "chance": float(pd.Series(y_test).value_counts(
                                   normalize=True).max())}
        else:
            errors = np.abs(out[:, 0].numpy() * sd + mean - y_test)
            low, high = mean_interval(errors)
            results[column] = {"metric": "mae", "score": float(errors.mean()),
                               "low": low, "high": high, "steps": steps,
                               "chance": float(np.abs(y_test - np.median(y_test)).mean())}
    return results


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
        args.encoders, args.families, args.resnet_seconds = ["pca"], ["intensity"], 0
    encoders = args.encoders or list(ENCODERS[args.source])
    families = args.families or list(FAMILIES)
    started = time.perf_counter()
    train, test = load_source(args.source, args.n, args.seed)
    audit = {**AUDITS[args.source], "n_permutations": args.permutations}
    out = {"source": args.source, "column_role": args.column_role,
           "label": args.source if args.column_role == "other" else
           f"{args.source} (declared)", "n": len(test), "n_train": len(train),
           "strengths": list(args.strengths), "repeats": args.repeats,
           "fraction": args.fraction, "audit": audit,
           "train_seconds": args.train_seconds, "resnet_seconds": args.resnet_seconds,
           "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
           "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
                      f"{args.threads} torch threads",
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "limits": [], "table1": {}, "seconds": {}, "steps": {}, "cpu_seconds": {}}
    if args.json and os.path.isfile(args.json):  # resume: keep what was measured
        with open(args.json, encoding="utf-8") as handle:
            saved = json.load(handle)
        for key in ("limits", "table1", "seconds", "steps", "cpu_seconds"):
            out[key] = saved.get(key, out[key])
        out["date"] = saved.get("date", out["date"])
        out["command"] = saved.get("command", out["command"])
    done = {(row["encoder"], row["family"]) for row in out["limits"]}

    def out_of_time() -> bool:
        return args.time_limit is not None and \
            time.perf_counter() - started > args.time_limit

    if TABLE1[args.source] and args.resnet_seconds > 0 and "resnet10" not in out["table1"]:
        tick = time.perf_counter()
        out["table1"]["resnet10"] = supervised_table1(
            train, test, TABLE1[args.source], seconds=args.resnet_seconds, seed=args.seed)
        out["seconds"]["resnet10_fit"] = round(time.perf_counter() - tick, 1)
        save(out, args.json)
        print(f"{args.source:8s} resnet10 (supervised) {out['table1']['resnet10']}", flush=True)
    for kind in encoders:
        todo = [family for family in families if (kind, family) not in done]
        if (not todo and kind in out["table1"]) or out_of_time():
            continue
        tick = time.perf_counter()
        encoder = make_encoder(kind, train, train_seconds=args.train_seconds, seed=args.seed,
                               work=args.work, source=args.source,
                               train_steps=args.train_steps)
        out["seconds"].setdefault(f"{kind}_fit", round(time.perf_counter() - tick, 1))
        if kind in TRAINED:
            out.setdefault("steps", {})[kind] = encoder.steps_trained
            if getattr(encoder, "cpu_seconds", None) is not None:
                out.setdefault("cpu_seconds", {})[kind] = encoder.cpu_seconds
        if kind not in out["table1"]:
            out["table1"][kind] = table1(encoder, test, TABLE1[args.source], audit, args.seed)
            save(out, args.json)
        for family in todo:
            if out_of_time():
                break
            name, params = FAMILIES[family]
            tick = time.perf_counter()
            result = la.sensitivity(encoder, test, artefact=la.artefacts.get_artefact(
                name, **params), strengths=args.strengths, fraction=args.fraction,
                repeats=args.repeats, audit=audit, column_role=args.column_role,
                random_state=args.seed)
            limits = result.detection_limits.set_index("regime")
            curves = result.curves.set_index("strength")
            null = curves.loc[0.0] if 0.0 in curves.index else None
            planted = result.runs[result.runs["strength"] > 0]
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
                   "outputs": planted.loc[planted["unforeseen_found"].astype(bool),
                                          "unforeseen_output"].tolist(),
                   "seconds": round(time.perf_counter() - tick, 1)}
            out["limits"].append(row)
            save(out, args.json)   # after every measurement: a killed run keeps its rows
            print(f"{args.source:8s} {kind:5s} {family:12s} known {_limit(row['known']):>5s} "
                  f"unforeseen {_limit(row['unforeseen']):>5s}  AUC {row['auc']}  "
                  f"({row['seconds']:.0f} s)", flush=True)
    out["seconds"]["total"] = round(out["seconds"].get("total", 0.0)
                                    + time.perf_counter() - started, 1)
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


def _in_order(kinds) -> list[str]:
    """Encoder kinds once each, in the order of :data:`ENCODERS` (others after)."""
    order = list(dict.fromkeys(k for kinds_ in ENCODERS.values() for k in kinds_))
    kinds = list(dict.fromkeys(kinds))
    return sorted(kinds, key=lambda k: (order.index(k) if k in order else len(order)))


def print_tables(runs: list[dict]) -> None:
    """The detection-limit table (family x encoder x source) and the Table 1 layout."""
    rows = [{**row, "source": r.get("label", r["source"])} for r in runs
            for row in r["limits"]]
    if not rows:
        return
    frame = pd.DataFrame(rows)
    print("\nDetection limits (lowest strength found; known / unforeseen; - = not found)\n")
    columns = [(r.get("label", r["source"]), kind) for r in runs
               for kind in _in_order(row["encoder"] for row in r["limits"])]
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
    for r in runs:
        if not r["limits"]:
            continue
        kinds = _in_order(row["encoder"] for row in r["limits"])
        planted = [s for s in r["strengths"] if s > 0]
        print(f"\nProbe AUC of the hidden group, {r.get('label', r['source'])}, at strengths "
              + " / ".join(f"{s:g}" for s in planted) + "\n")
        print("| family | " + " | ".join(kinds) + " |")
        print("|---|" + "---:|" * len(kinds))
        for family in dict.fromkeys(row["family"] for row in r["limits"]):
            cells = []
            for kind in kinds:
                hit = [row for row in r["limits"]
                       if row["family"] == family and row["encoder"] == kind]
                cells.append("" if not hit else " / ".join(
                    f"{hit[0]['auc'][f'{s:g}']:.3f}" for s in planted))
            print(f"| {family} | " + " | ".join(cells) + " |")
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
        probed = {kind: r["table1"][kind] for kind in _in_order(r["table1"])
                  if kind != "resnet10"}
        if not probed:
            continue
        names = list(next(iter(probed.values())))
        print(f"| {r['source']} encoder | " + " | ".join(names) + " |")
        print("|---|" + "---:|" * len(names))
        steps, cpu = r.get("steps", {}), r.get("cpu_seconds", {})
        for kind, probes in [*probed.items(), ("resnet10", r["table1"].get("resnet10"))]:
            if probes is None:
                continue
            cells = [f"{p['score']:.3f} [{p['low']:.3f}, {p['high']:.3f}]"
                     for p in probes.values()]
            label = {"resnet10": "ResNet-10, supervised"}.get(kind, kind)
            if kind in steps:
                label += f" ({steps[kind]} steps" + (
                    f", {cpu[kind]:.0f} CPU-s)" if kind in cpu else ")")
            print(f"| {label} | " + " | ".join(cells) + " |")
        chance = [f"{p['chance']:.3f}" for p in next(iter(probed.values())).values()]
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
    go.add_argument("--train-seconds", type=float, default=240,
                    help="CPU-time budget of each label-free trained encoder (vae, vaeh, "
                         "daeb, sg2b), in seconds of process CPU time")
    go.add_argument("--train-steps", "--vae-steps", dest="train_steps", type=int,
                    default=None, help="train every such encoder for this many steps "
                                       "instead of --train-seconds")
    go.add_argument("--resnet-seconds", type=float, default=60,
                    help="CPU-time budget of the supervised ResNet-10, per column (0: none)")
    go.add_argument("--work", default=None, help="folder keeping the trained encoders")
    go.add_argument("--time-limit", type=float, default=None,
                    help="stop starting new measurements after this many seconds (rerun "
                         "to resume)")
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
