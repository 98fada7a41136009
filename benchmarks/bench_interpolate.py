"""Latent-space SMOTE on the demo cohort: does it help a classifier that rarely sees a group?

Two scenarios, built on the bundled demo cohort (2,000 simulated heads, four sites):

- ``class``: the training split keeps only ``--keep`` (default 5%) of the women; a
  classifier predicts sex.  Reported: balanced accuracy and the recall of women.
- ``subgroup``: the training split keeps only ``--keep`` of the women at site C (who lie
  on a head-rest); everything else is kept.  Reported: balanced accuracy and the recall of
  women at site C.

The test split (30%, stratified by site and sex) is fixed and never touched by any
resampling; test labels are the true sexes (the cohort flips about 3% of the given ones,
and training uses the given ones, as a user would).  For each of ``--seeds`` seeds a new
imbalanced training set is drawn, and every arm is trained on it:

embedding classifiers (logistic regression on the embedding)
    ``none`` (real rows only), ``reweighting`` (inverse-frequency sample weights of the
    sexes, or of the (sex, site) cells in the subgroup scenario), ``latent SMOTE`` and
    ``latent Borderline-1`` (:class:`latentaudit.Interpolator`; in the subgroup scenario
    the group is (sex, site) and only (F, C) is over-sampled, to the median size of the
    other cells).
pixel classifiers (logistic regression on the pixels)
    ``none``, ``reweighting``, ``pixel SMOTE`` (the same SMOTE on pixel vectors),
    ``decoded latent SMOTE`` (the latent SMOTE rows decoded into images by the generative
    encoder with :meth:`Interpolator.generate`) and the same with ``reject="radius"``.

Embeddings come from a β-VAE (:class:`latentaudit.encoders.BetaVAEEncoder`) trained
label-free on the non-test images for ``--vae-steps`` steps (cached in ``--cache``), and
from PCA of the pixels (a linear generative encoder: decoding is the inverse projection).
Images are 2x2-averaged to 32x32 by default (``--size 64`` keeps them) so that the β-VAE
trains in minutes on two CPU cores.

Every figure is the mean over seeds with a 95% bootstrap confidence interval (test rows
resampled 1,000 times, the same resample for every seed).

Usage::

    python benchmarks/bench_interpolate.py                  # full run (tens of minutes)
    python benchmarks/bench_interpolate.py --quick          # 2 seeds, PCA only, a smoke test
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import latentaudit as la
from latentaudit.interpolate import Interpolator


class PCAEncoder:
    """PCA of the pixels as a (linear) generative encoder meeting latentaudit's protocol."""

    spatial_dims = 2

    def __init__(self, n_components: int, image_shape: tuple[int, ...], seed: int = 0):
        self.pca = PCA(n_components=n_components, random_state=seed)
        self.image_shape = image_shape
        self.latent_dim = n_components

    def fit(self, images: np.ndarray) -> PCAEncoder:
        self.pca.fit(images.reshape(len(images), -1))
        return self

    def encode(self, x) -> torch.Tensor:
        x = torch.as_tensor(x).reshape(len(x), -1).double().numpy()
        return torch.as_tensor(self.pca.transform(x), dtype=torch.float32)

    def decode(self, z) -> torch.Tensor:
        z = torch.as_tensor(z).double().numpy()
        images = self.pca.inverse_transform(z).reshape(len(z), *self.image_shape)
        return torch.as_tensor(images, dtype=torch.float32).clamp(-1, 1)


def classifier(C: float):
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))


def fit_predict(X_train, y_train, X_test, C, sample_weight=None):
    model = classifier(C)
    model.fit(X_train.reshape(len(X_train), -1), y_train,
              logisticregression__sample_weight=sample_weight)
    return model.predict(X_test.reshape(len(X_test), -1))


def balancing_weights(meta: pd.DataFrame, scenario: str) -> np.ndarray:
    """Inverse-frequency weights of the groups the scenario makes rare: the sexes, or the
    (sex, site) cells."""
    keys = ["sex"] if scenario == "class" else ["sex", "site"]
    size = meta.groupby(keys)[keys[0]].transform("size").to_numpy()
    weights = 1.0 / size
    return weights * len(weights) / weights.sum()


def imbalanced_training_rows(pool_meta: pd.DataFrame, scenario: str, keep: float,
                             seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if scenario == "class":
        rare = (pool_meta["sex"] == "F").to_numpy()
    else:
        rare = ((pool_meta["sex"] == "F") & (pool_meta["site"] == "C")).to_numpy()
    rare_rows = np.flatnonzero(rare)
    n_keep = max(3, int(round(keep * len(rare_rows))))
    kept = rng.choice(rare_rows, size=n_keep, replace=False)
    return np.sort(np.concatenate([np.flatnonzero(~rare), kept]))


def oversampler(method: str, scenario: str, meta: pd.DataFrame, seed: int) -> Interpolator:
    if scenario == "class":
        return Interpolator(method, k_neighbors=5, random_state=seed)
    cells = meta.groupby(["sex", "site"]).size()
    target = int(cells.drop(("F", "C")).median())
    return Interpolator(method, groups=["sex", "site"], sampling_strategy={("F", "C"): target},
                        k_neighbors=5, random_state=seed)


def run_scenario(scenario, args, images, meta, true_sex, test, pool, embeddings, log):
    """Predictions of every arm on the test rows, for every seed."""
    predictions: dict[str, list[np.ndarray]] = {}
    timings: dict[str, float] = {}

    def record(name, pred, seconds):
        predictions.setdefault(name, []).append(pred)
        timings[name] = timings.get(name, 0.0) + seconds

    X_test_pix = images[test]
    for seed in range(args.seeds):
        rows = pool[imbalanced_training_rows(meta.iloc[pool], scenario, args.keep, seed)]
        train_meta = meta.iloc[rows].reset_index(drop=True)
        y_train = train_meta["sex"].to_numpy()
        n_rare = int(((train_meta["sex"] == "F") & (
            (train_meta["site"] == "C") if scenario == "subgroup" else True)).sum())
        log(f"[{scenario}] seed {seed}: {len(rows)} training rows, {n_rare} in the rare group")

        t = time.perf_counter()
        pred = fit_predict(images[rows], y_train, X_test_pix, args.C_pixels)
        record("pixels / none", pred, time.perf_counter() - t)
        t = time.perf_counter()
        weights = balancing_weights(train_meta, scenario)
        pred = fit_predict(images[rows], y_train, X_test_pix, args.C_pixels, weights)
        record("pixels / reweighting", pred, time.perf_counter() - t)
        t = time.perf_counter()
        pix_res = oversampler("smote", scenario, train_meta, seed)
        flat = images[rows].reshape(len(rows), -1)
        target = train_meta if scenario == "subgroup" else y_train
        flat_res, y_res = pix_res.fit_resample(flat, target)
        y_res = y_res["sex"].to_numpy() if scenario == "subgroup" else y_res
        pred = fit_predict(flat_res, y_res, X_test_pix, args.C_pixels)
        record("pixels / pixel SMOTE", pred, time.perf_counter() - t)

        for emb_name, (encoder, z) in embeddings.items():
            z_train, z_test = z[rows], z[test]
            t = time.perf_counter()
            record(f"{emb_name} embedding / none",
                   fit_predict(z_train, y_train, z_test, args.C_embedding),
                   time.perf_counter() - t)
            t = time.perf_counter()
            record(f"{emb_name} embedding / reweighting",
                   fit_predict(z_train, y_train, z_test, args.C_embedding, weights),
                   time.perf_counter() - t)
            for method, label in (("smote", "latent SMOTE"),
                                  ("borderline1", "latent Borderline-1")):
                t = time.perf_counter()
                res = oversampler(method, scenario, train_meta, seed)
                z_res, y_res = res.fit_resample(z_train, target)
                y_res = y_res["sex"].to_numpy() if scenario == "subgroup" else y_res
                record(f"{emb_name} embedding / {label}",
                       fit_predict(z_res, y_res, z_test, args.C_embedding),
                       time.perf_counter() - t)
                if method != "smote":
                    continue
                # decode the same synthetic rows into images for the pixel classifier
                y_new = y_res[len(rows):]
                for reject in (None, "radius"):
                    t = time.perf_counter()
                    out = res.generate(encoder, reject=reject, batch_size=128)
                    keep_rows = out.kept
                    X_aug = np.concatenate([images[rows], out.images[keep_rows]])
                    y_aug = np.concatenate([y_train, y_new[keep_rows]])
                    name = f"pixels / decoded latent SMOTE ({emb_name})"
                    if reject:
                        name += f", reject={reject!r}"
                        log(f"    {emb_name}: {out.n_rejected} of {len(out.kept)} decoded "
                            f"images rejected")
                    record(name, fit_predict(X_aug, y_aug, X_test_pix, args.C_pixels),
                           time.perf_counter() - t)
    return predictions, timings


_ARM_RANK = ("none", "reweighting", "pixel SMOTE", "latent SMOTE", "latent Borderline-1",
             "decoded")


def _arm_order(arm: str):
    """Pixel classifiers first, then each embedding; within each, the baselines first."""
    classifier_kind, _, what = arm.partition(" / ")
    rank = next(i for i, start in enumerate(_ARM_RANK) if what.startswith(start))
    return (classifier_kind != "pixels", classifier_kind, rank, what)


def summarise(predictions, truth, rare_mask, n_boot, seed=0):
    rng = np.random.default_rng(seed)
    n = len(truth)
    boots = [rng.integers(0, n, n) for _ in range(n_boot)]
    rows = []

    def metrics(preds, index):
        bal = np.mean([balanced_accuracy_score(truth[index], p[index]) for p in preds])
        rare = rare_mask[index]
        rec = np.mean([(p[index][rare] == truth[index][rare]).mean() for p in preds])
        return bal, rec

    for name, preds in predictions.items():
        point = metrics(preds, np.arange(n))
        draws = np.array([metrics(preds, b) for b in boots])
        low, high = np.percentile(draws, [2.5, 97.5], axis=0)
        rows.append({"arm": name, "balanced_accuracy": point[0], "bal_low": low[0],
                     "bal_high": high[0], "rare_recall": point[1], "rec_low": low[1],
                     "rec_high": high[1]})
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, rare_label: str) -> str:
    lines = [f"| arm | balanced accuracy (95% CI) | {rare_label} (95% CI) |",
             "|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.arm} | {r.balanced_accuracy:.3f} ({r.bal_low:.3f}-{r.bal_high:.3f})"
                     f" | {r.rare_recall:.3f} ({r.rec_low:.3f}-{r.rec_high:.3f}) |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--keep", type=float, default=0.05,
                        help="fraction of the rare group kept in training")
    parser.add_argument("--size", type=int, default=32, choices=(32, 64))
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--vae-steps", type=int, default=800)
    parser.add_argument("--vae-batch", type=int, default=32)
    parser.add_argument("--no-vae", action="store_true", help="PCA embeddings only")
    parser.add_argument("--C-pixels", type=float, default=0.01)
    parser.add_argument("--C-embedding", type=float, default=1.0)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--scenarios", default="class,subgroup")
    parser.add_argument("--cache", default="runs/bench_interpolate",
                        help="folder where the trained beta-VAE is kept between runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="write the tables as JSON here")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.no_vae, args.bootstrap = 2, True, 200
    torch.set_num_threads(args.threads)

    def log(message):
        print(message, flush=True)

    t_start = time.perf_counter()
    cohort = la.datasets.load_demo_cohort()
    images = cohort.images
    if args.size == 32:
        images = images.reshape(-1, 1, 32, 2, 32, 2).mean(axis=(3, 5))
    meta = cohort.metadata.reset_index(drop=True)
    true_sex = cohort.truth["true_sex"].to_numpy()
    strata = meta["site"].astype(str) + meta["sex"].astype(str)
    pool, test = train_test_split(np.arange(len(meta)), test_size=0.3, stratify=strata,
                                  random_state=0)
    pool, test = np.sort(pool), np.sort(test)
    log(f"demo cohort: {len(meta)} images of {images.shape[1:]}, {len(pool)} for training "
        f"pools, {len(test)} for testing")

    embeddings = {}
    pca = PCAEncoder(args.latent_dim, images.shape[1:]).fit(images[pool])
    embeddings["PCA"] = (pca, pca.encode(images).numpy())
    vae_note = "not used (--no-vae)"
    if not args.no_vae:
        from latentaudit.encoders import BetaVAEEncoder

        channels = (16, 32, 64) if args.size == 32 else (16, 32, 64, 128)
        cache = Path(args.cache) / f"betavae_s{args.size}_d{args.latent_dim}_n{args.vae_steps}"
        if (cache / "config.json").is_file():
            vae = BetaVAEEncoder.from_pretrained(cache)
            vae_note = f"loaded from {cache}"
        else:
            torch.manual_seed(0)
            vae = BetaVAEEncoder(image_size=args.size, channels=channels,
                                 latent_dim=args.latent_dim, beta=1.0)
            t = time.perf_counter()
            vae.fit(images[pool], max_steps=args.vae_steps, batch_size=args.vae_batch,
                    verbose=False, random_state=0)
            vae.save_pretrained(cache)
            vae_note = (f"trained {args.vae_steps} steps (batch {args.vae_batch}) in "
                        f"{time.perf_counter() - t:.0f} s, saved to {cache}")
        z_vae = vae.encode(images, batch_size=256).numpy()
        recon = vae.decode(z_vae[test]).numpy()
        mse = float(((recon - images[test]) ** 2).mean())
        mean_mse = float(((images[pool].mean(axis=0) - images[test]) ** 2).mean())
        vae_note += f"; test reconstruction MSE {mse:.4f} (mean image: {mean_mse:.4f})"
        embeddings["beta-VAE"] = (vae, z_vae)
    log(f"beta-VAE: {vae_note}")

    results = {}
    for scenario in args.scenarios.split(","):
        predictions, timings = run_scenario(scenario, args, images, meta, true_sex, test,
                                            pool, embeddings, log)
        truth = true_sex[test]
        if scenario == "class":
            rare = truth == "F"
            rare_label = "recall of women"
        else:
            rare = (truth == "F") & (meta["site"].to_numpy()[test] == "C")
            rare_label = "recall of women at site C"
        table = summarise(predictions, truth, rare, args.bootstrap)
        table = table.sort_values("arm", key=lambda arms: arms.map(_arm_order)).reset_index(
            drop=True)
        results[scenario] = table
        print(f"\n### Scenario: {scenario} (keep {args.keep:.0%} of the rare group, "
              f"{args.seeds} seeds, test n={len(test)}, rare n={int(rare.sum())})\n")
        print(markdown(table, rare_label))
    print(f"\ntotal time {time.perf_counter() - t_start:.0f} s; images {args.size}x{args.size}; "
          f"beta-VAE {vae_note}")
    if args.out:
        Path(args.out).write_text(json.dumps(
            {k: v.to_dict(orient="records") for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
