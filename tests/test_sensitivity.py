"""Tests of la.sensitivity: the spike-in measurement, its calibration, its result."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

import latentaudit as la
from latentaudit.errors import ConfigError, DataError, InputTypeError
from latentaudit.pipeline import SensitivityResult

# A cheaper audit: fewer permutations (q < 0.001 comes from the chi2 tests and the probes,
# whose p values do not need them).
CHEAP = {"n_permutations": 19}


class Pixels(torch.nn.Module):
    """The pixels themselves as the embedding (the audit reduces them by PCA)."""

    spatial_dims = 2

    def __init__(self, latent_dim):
        super().__init__()
        self.latent_dim = latent_dim

    def encode(self, x):
        return x.flatten(1)


@pytest.fixture(scope="module")
def small_cohort():
    """300 demo subjects at 16x16 (4x4 means), every site and sex."""
    cohort = la.datasets.load_demo_cohort()
    rows = np.sort(np.random.default_rng(0).choice(len(cohort.images), 300, replace=False))
    images = cohort.images[rows].reshape(300, 1, 16, 4, 16, 4).mean(axis=(3, 5))
    metadata = cohort.metadata.iloc[rows].reset_index(drop=True)
    dataset = la.ArrayDataset(images.astype(np.float32), metadata)
    return dataset, Pixels(16 * 16)


def test_result_tables_and_determinism(small_cohort):
    dataset, encoder = small_cohort
    kwargs = dict(artefact=la.artefacts.HeadRest(), strengths=[0.0, 1.0], repeats=2,
                  audit=CHEAP, random_state=3)
    result = la.sensitivity(encoder, dataset, **kwargs)
    assert isinstance(result, SensitivityResult)
    runs = result.runs
    assert list(runs["strength"]) == [0.0, 1.0] * 2
    assert list(runs["repeat"]) == [0, 0, 1, 1]
    assert (runs["n"] == 300).all() and (runs["n_group"] == 30).all()
    assert runs["known_q"].between(0, 1).all() and runs["probe_auc"].between(0, 1).all()
    assert set(result.curves["strength"]) == {0.0, 1.0}
    assert list(result.detection_limits["regime"]) == ["known", "unforeseen"]
    again = la.sensitivity(encoder, dataset, **kwargs)
    pd.testing.assert_frame_equal(runs.drop(columns="seconds"),
                                  again.runs.drop(columns="seconds"))
    other = la.sensitivity(encoder, dataset, **{**kwargs, "random_state": 4,
                                                "regimes": "known"})
    assert not np.allclose(other.runs["probe_auc"], runs["probe_auc"])
    assert other.runs["unforeseen_f1"].isna().all() and not other.runs["unforeseen_found"].any()
    assert list(other.detection_limits["regime"]) == ["known"]
    assert "detection limit" in repr(result)
    ax = result.plot()
    assert ax.get_xlabel() == "strength of HeadRest"


def test_a_strong_head_rest_is_found_and_the_null_is_not(small_cohort):
    dataset, encoder = small_cohort
    result = la.sensitivity(encoder, dataset, artefact="fov_shift", strengths=[0.0, 1.0],
                            repeats=2, audit=CHEAP, random_state=0)
    null = result.runs[result.runs["strength"] == 0]
    strong = result.runs[result.runs["strength"] == 1]
    assert strong["known_found"].all() and (strong["probe_auc"] > 0.95).all()
    assert (strong["known_rank"] <= 3).all()
    assert not null["known_found"].any() and (null["probe_auc"] < 0.8).all()
    assert not null["unforeseen_found"].any()
    limits = result.detection_limits.set_index("regime")
    assert limits.loc["known", "limit"] == 1.0 and limits.loc["known", "found_in"] == 2


def test_the_audit_never_sees_the_planted_truth(small_cohort):
    """Only images (through the encoder) and the metadata reach the audit: the group's
    column is there in the known regime only, and nothing else is added."""
    dataset, encoder = small_cohort
    seen = []

    class Spy(la.ClusterAuditor):
        def fit(self, z, metadata=None, labels=None):
            seen.append(list(metadata.columns))
            assert labels is None
            return super().fit(z, metadata, labels)

    la.sensitivity(encoder, dataset, artefact="blur", strengths=[1.0], repeats=1,
                   audit=Spy(**CHEAP), random_state=0, column="scanner_x")
    columns = list(dataset.metadata.columns)
    assert seen == [columns + ["scanner_x"], columns]
    seen.clear()
    la.sensitivity(encoder, dataset, artefact="blur", strengths=[1.0], repeats=1,
                   audit=Spy(nuisance="site", **CHEAP), column_role="nuisance",
                   random_state=0)
    assert seen == [columns + ["hidden_group"], columns]


def test_the_unforeseen_regime_counts_the_candidate_subgroups(small_cohort):
    """The unforeseen regime's best output is the best of the clusters, the unclustered
    rows, the top outliers and every candidate subgroup the audit reported; a strong blur
    of 30 of 300 subjects is singled out by one of the subgroups."""
    from sklearn.metrics import f1_score

    dataset, encoder = small_cohort
    fitted = []

    class Spy(la.ClusterAuditor):
        def fit(self, z, metadata=None, labels=None):
            fitted.append(super().fit(z, metadata, labels))
            return fitted[-1]

    result = la.sensitivity(encoder, dataset, artefact="blur", strengths=[1.0], repeats=1,
                            audit=Spy(**CHEAP), random_state=0)
    known, auditor = fitted   # the known regime's audit sees the group, the other does not
    group = (known.metadata_["hidden_group"] == "yes").to_numpy()
    assert "hidden_group" not in auditor.metadata_.columns
    outputs = {}
    for label in np.unique(auditor.labels_):
        outputs["unclustered" if label == -1 else f"cluster {label}"] = auditor.labels_ == label
    top = np.zeros(len(group), dtype=bool)
    top[auditor.outliers()["index"].to_numpy()[:group.sum()]] = True
    outputs["outliers (top k)"] = top
    subgroups = [f"subgroup {k}" for k in auditor.subgroups_["subgroup"]]
    assert subgroups, "the audit reported no candidate subgroup"
    for name in subgroups:
        outputs[name] = auditor.subgroup_labels(int(name.split()[1]))
    f1 = {name: f1_score(group, members) for name, members in outputs.items()}
    run = result.runs.iloc[0]
    assert run["unforeseen_output"] == max(f1, key=f1.get)
    assert run["unforeseen_f1"] == pytest.approx(max(f1.values()))
    assert max(f1[name] for name in subgroups) >= 0.5
    assert run["unforeseen_found"]


def test_several_slices_per_subject_plant_the_whole_subject():
    rng = np.random.default_rng(0)
    images = rng.normal(-0.6, 0.05, size=(240, 1, 8, 8)).astype(np.float32)
    ids = np.repeat([f"s{i:03d}" for i in range(80)], 3)
    metadata = pd.DataFrame({"subject": ids[::3], "site": list("AB") * 40})
    dataset = la.ArrayDataset(images, metadata, ids=ids)

    result = la.sensitivity(Pixels(64), dataset, artefact=la.artefacts.Gain(),
                            strengths=[0.0, 1.0], repeats=1, aggregate="subject",
                            audit=CHEAP, random_state=0)
    runs = result.runs
    assert (runs["n"] == 80).all() and (runs["n_group"] == 8).all()
    assert runs.loc[runs["strength"] == 1, "probe_auc"].item() > 0.9


def test_bad_arguments_are_named(small_cohort):
    dataset, encoder = small_cohort
    with pytest.raises(ConfigError, match="already in the metadata"):
        la.sensitivity(encoder, dataset, artefact="blur", column="site", repeats=1,
                       strengths=[0.0])
    with pytest.raises(ConfigError, match="fraction"):
        la.sensitivity(encoder, dataset, artefact="blur", fraction=0.8)
    with pytest.raises(ConfigError, match="strengths"):
        la.sensitivity(encoder, dataset, artefact="blur", strengths=[0.5, 2.0])
    with pytest.raises(ConfigError, match="repeats"):
        la.sensitivity(encoder, dataset, artefact="blur", repeats=0)
    with pytest.raises(ConfigError, match="did you mean 'blur'"):
        la.sensitivity(encoder, dataset, artefact="blurr")
    with pytest.raises(InputTypeError, match="ImageDataset or a NumPy array"):
        la.sensitivity(encoder, [1, 2, 3], artefact="blur")
    with pytest.raises(InputTypeError, match="audit must be"):
        la.sensitivity(encoder, dataset, artefact="blur", audit="hdbscan")
    with pytest.raises(ConfigError, match="audit options"):
        la.sensitivity(encoder, dataset, artefact="blur", audit={"methd": "kmeans"})
    with pytest.raises(DataError, match="at least 2 subjects"):
        la.sensitivity(encoder, np.zeros((10, 1, 8, 8), np.float32), artefact="blur",
                       fraction=0.1)


# -- calibration ---------------------------------------------------------------------------
def test_null_false_finding_rate_is_within_the_nominal_fdr(small_cohort):
    """Strength 0 over 20 seeds: the hidden group (independent of everything) is reported
    at q <= alpha no more often than a test at the nominal FDR would be, and no output
    singles it out.

    At alpha = 0.05, a calibrated test reports the null group in Binomial(20, 0.05) of 20
    seeds: 2 happens with probability 0.19, so "at most 1 of 20" would fail a calibrated
    audit one time in four.  The bound is the binomial's 98% quantile (3 of 20): more
    false findings than that are evidence (at the 2% level) of a rate above alpha."""
    from scipy.stats import binom

    dataset, encoder = small_cohort
    result = la.sensitivity(encoder, dataset, artefact="blur", strengths=[0.0], repeats=20,
                            audit=CHEAP, column_role="nuisance", random_state=11)
    runs = result.runs
    assert len(runs) == 20
    alpha = result.settings["audit"]["alpha"]
    assert runs["known_significant"].sum() <= binom.ppf(0.98, len(runs), alpha)  # 3 of 20
    assert not runs["known_found"].any() and not runs["unforeseen_found"].any()
    assert result.detection_limits["limit"].map(math.isinf).all()


# (the demo's site C already lies on head-rests, so a planted one is no strong contrast)
FAMILIES = {"geometry": la.artefacts.Tilt(), "objects": la.artefacts.BurnedInText(),
            "intensity": la.artefacts.BiasField(pattern_seed=0),
            "noise": la.artefacts.RicianNoise(), "resolution": la.artefacts.Blur(),
            "acquisition": la.artefacts.Ghosting()}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_strong_artefact_of_every_family_is_found_at_every_seed(small_cohort, family):
    """Known regime, the group's column declared a nuisance: found at q < 0.001."""
    dataset, encoder = small_cohort
    result = la.sensitivity(encoder, dataset, artefact=FAMILIES[family], strengths=[1.0],
                            repeats=3, audit=CHEAP, column_role="nuisance", regimes="known",
                            random_state=5)
    assert result.runs["known_found"].all(), result.runs[["known_q", "probe_auc"]]


# -- report section and command line ------------------------------------------------------
def test_report_section_shows_limits_curves_and_runs(small_cohort):
    dataset, encoder = small_cohort
    result = la.sensitivity(encoder, dataset, artefact="gain", strengths=[0.0, 1.0],
                            repeats=1, audit=CHEAP, random_state=0)
    report = result.report()
    assert [s.key for s in report.sections] == ["sensitivity", "provenance"]
    section = report.section("sensitivity")
    assert section.ok and len(section.figures) == 1
    assert [t.title for t in section.tables] == ["Detection limits", "By strength",
                                                 "Every run"]
    assert any(item.startswith("known regime: detection limit") for item in section.items)
    assert any(item.startswith("null (strength 0)") for item in section.items)
    assert "Gain(" in section.paragraphs[0]
    # the interactive curves: the report's one CurveView component, not a second mechanism
    (view,) = section.views
    assert type(view).__name__ == "CurveView"
    names = [line["name"] for line in view.payload()["series"]]
    assert names == ["known regime", "unforeseen regime", "probe AUC"]
    assert 'data-la-view="curves"' in report.to_html()
    # from_fitted adds the section before the provenance when given a result
    emb = result.embeddings
    aud = la.ClusterAuditor(**CHEAP, random_state=0).fit(emb)
    full = la.AuditReport.from_fitted(emb, aud, sensitivity=result)
    assert [s.key for s in full.sections][-2:] == ["sensitivity", "provenance"]
    plain = la.AuditReport.from_fitted(emb, aud, sections=["sensitivity"])
    assert plain.section("sensitivity").status == "unavailable"


def _write_nifti_study(folder, n=60, seed=0):
    import nibabel as nib

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    grid = np.stack(np.mgrid[:12, :12, :12], axis=-1).astype(np.float32)
    rows = []
    for i in range(n):
        radius = rng.uniform(3.5, 5.0)
        volume = (np.linalg.norm(grid - 6.0, axis=-1) < radius).astype(np.float32) * 100
        volume += rng.normal(0, 5, volume.shape).astype(np.float32)
        nib.save(nib.Nifti1Image(volume, np.eye(4)), folder / f"sub-{i:02d}.nii.gz")
        rows.append({"subject": f"sub-{i:02d}", "site": "AB"[i % 2], "age": 30.0 + i})
    pd.DataFrame(rows).to_csv(folder.parent / "participants.csv", index=False)
    return folder, folder.parent / "participants.csv"


def test_command_line_writes_tables_and_report(tmp_path, capsys):
    from latentaudit.cli import main

    images, table = _write_nifti_study(tmp_path / "scans")
    out = tmp_path / "out"
    code = main(["sensitivity", "--images", str(images), "--metadata", str(table),
                 "--size", "12", "--artefact", "gain", "--strengths", "0", "1",
                 "--repeats", "1", "--fraction", "0.2", "--set", "audit.n_permutations=19",
                 "--output", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "known: detection limit" in printed and "unforeseen: detection limit" in printed
    runs = pd.read_csv(out / "sensitivity_runs.csv")
    assert list(runs["strength"]) == [0.0, 1.0] and (runs["n_group"] == 12).all()
    assert runs["probe_auc"].iloc[1] > 0.9       # a gain of this strength is plain to see
    for name in ("sensitivity_curves.csv", "sensitivity_detection_limits.csv",
                 "report.html", "report.json", "config.toml"):
        assert (out / name).is_file(), name
    assert "Sensitivity: how weak" in (out / "report.html").read_text()
    assert "strengths = [0.0, 1.0]" in (out / "config.toml").read_text()


def test_command_line_refuses_what_it_cannot_run(tmp_path, capsys):
    from latentaudit.cli import main

    assert main(["sensitivity", "--images", str(tmp_path), "--output",
                 str(tmp_path / "o")]) != 0
    assert "--artefact NAME" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sensitivity", "--artefact", "blur", "--strengths", "0", "1.5"])
    assert "must be in [0, 1], got 1.5" in capsys.readouterr().err


def _benchmark():
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "sensitivity.py"
    spec = importlib.util.spec_from_file_location("bench_sensitivity", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


@pytest.mark.parametrize("source", ["demo", "mri"])
def test_the_benchmark_quick_mode_prints_both_tables(tmp_path, capsys, source):
    """benchmarks/sensitivity.py run --quick: pixel PCA, one family, two strengths; a rerun
    with the same --json measures nothing again."""
    import json

    bench = _benchmark()
    out = bench.main(["run", "--quick", "--source", source, "--json",
                      str(tmp_path / "r.json")])
    printed = capsys.readouterr().out
    assert "| intensity (bias_field) | " in printed and "| pca | " in printed
    assert out["limits"][0]["null_significant"] in (0.0, 1.0)
    assert list(out["table1"]["pca"]) == bench.TABLE1[source]
    again = bench.main(["tables", str(tmp_path / "r.json")])
    assert again == [json.loads((tmp_path / "r.json").read_text())]
    resumed = bench.main(["run", "--quick", "--source", source, "--json",
                          str(tmp_path / "r.json")])
    assert resumed["limits"] == out["limits"] and resumed["table1"] == out["table1"]


def test_the_benchmark_supervised_resnet_scores_held_out_rows():
    """The Table 1 row of a ResNet-10 trained with the labels: accuracy with a Wilson
    interval for a category, mean absolute error with an interval for a number."""
    rng = np.random.default_rng(0)
    images = rng.normal(-0.5, 0.1, size=(80, 1, 16, 16)).astype(np.float32)
    group = np.arange(80) % 2 == 0
    images[group, :, :8] += 1.0          # a bright top half: the category is easy
    metadata = pd.DataFrame({"kind": np.where(group, "top", "none"),
                             "score": rng.normal(50, 10, 80)})
    train = la.ArrayDataset(images[:60], metadata.iloc[:60].reset_index(drop=True))
    test = la.ArrayDataset(images[60:], metadata.iloc[60:].reset_index(drop=True))
    table = _benchmark().supervised_table1(train, test, ["kind", "score"], seconds=120.0,
                                           seed=0, max_steps=40)
    kind, score = table["kind"], table["score"]
    assert kind["metric"] == "accuracy" and score["metric"] == "mae"
    assert kind["steps"] == 40 and kind["score"] >= 0.8
    assert kind["low"] <= kind["score"] <= kind["high"] <= 1.0
    assert score["low"] <= score["score"] <= score["high"] and score["score"] > 0


def test_the_benchmark_budget_is_cpu_time_not_wall_clock():
    """Every encoder the benchmark trains gets the same CPU budget: the steps it can afford
    are measured in process CPU time, so a step that sleeps (another job holding the
    core) costs nothing, and one that computes twice as long buys half the steps."""
    import time

    class Burner:
        def __init__(self, cpu_per_step, sleep=0.0):
            self.cpu_per_step, self.sleep = cpu_per_step, sleep

        def fit(self, train, *, max_steps, **options):
            for _ in range(max_steps):
                tick = time.process_time()
                while time.process_time() - tick < self.cpu_per_step:
                    pass
                time.sleep(self.sleep)
            return self

    steps_for_budget = _benchmark().steps_for_budget
    cheap = steps_for_budget(lambda: Burner(0.01), None, 0.6, 0)
    dear = steps_for_budget(lambda: Burner(0.02), None, 0.6, 0)
    waiting = steps_for_budget(lambda: Burner(0.01, sleep=0.05), None, 0.6, 0)
    assert 35 <= cheap <= 60 and 17 <= dear <= 30, (cheap, dear)
    assert abs(waiting - cheap) <= 0.2 * cheap, (waiting, cheap)
    # never fewer steps than the calibration run made
    assert steps_for_budget(lambda: Burner(0.01), None, 0.0, 0) == _benchmark().CALIBRATION_STEPS


@pytest.mark.parametrize("kind", ["daeb", "sg2b"])
def test_the_benchmark_trains_the_dae_and_stylegan2_like_the_vaes(tmp_path, kind):
    """The DAE and StyleGAN2 columns can be trained here on any source (not only the
    shipped demo weights), kept in --work and read back by a rerun with their steps."""
    import torch

    bench = _benchmark()
    images = np.random.default_rng(0).random((16, 1, 32, 32), dtype=np.float32)
    train = la.ArrayDataset(images)
    encoder = bench.make_encoder(kind, train, train_seconds=0, seed=0, work=str(tmp_path),
                                 source="toy", train_steps=2)
    assert encoder.steps_trained == 2 and encoder.cpu_seconds > 0
    again = bench.make_encoder(kind, train, train_seconds=0, seed=0, work=str(tmp_path),
                               source="toy", train_steps=2)
    assert again.steps_trained == 2 and again.cpu_seconds == encoder.cpu_seconds
    with torch.no_grad():
        x = torch.from_numpy(images[:4])
        assert torch.allclose(encoder.encode(x), again.encode(x), atol=1e-5)
