"""Tests of the ``latentaudit`` command line: every subcommand, the config file, and every
kind of bad input (one clear line, exit code 2, no traceback unless --debug)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tomllib

from latentaudit import cli
from latentaudit.cli import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, load_config, main
from latentaudit.errors import ConfigError, DataError

# a tiny beta-VAE and classifier: every step runs, in seconds
TINY_VAE = ["--set", "encoder.channels=[4, 8]", "--set", "encoder.latent_dim=8"]
TINY_EXPLAIN = ["--classifier-steps", "3", "--set", "explain.widths=[4, 8, 8, 8]",
                "--set", "explain.images=2", "--set", "explain.counterfactual_images=2",
                "--set", "explain.counterfactual_points=2", "--set", "explain.batch_size=8"]
FAST_AUDIT = ["--projection", "pca", "--set", "audit.n_permutations=19", "-q"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_bad_input(code, err, *fragments):
    assert code == EXIT_BAD_INPUT, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("latentaudit: error: "), err
    for fragment in fragments:
        assert fragment in last, last


# --------------------------------------------------------------------------------------
# a small NIfTI study
# --------------------------------------------------------------------------------------
def _write_study(folder, n: int = 16, seed: int = 0):
    """n NIfTI volumes (16 x 16 x 16) of a bright ball; site B's ball sits higher."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    grid = np.stack(np.mgrid[:16, :16, :16], axis=-1).astype(np.float32)
    rows = []
    for i in range(n):
        site = "AB"[i % 2]
        centre = np.array([8.0, 8.0, 10.0 if site == "B" else 7.0])
        volume = (np.linalg.norm(grid - centre, axis=-1) < 5).astype(np.float32) * 100
        volume += rng.normal(0, 5, volume.shape).astype(np.float32)
        nib.save(nib.Nifti1Image(volume, np.eye(4)), folder / f"sub-{i:02d}.nii.gz")
        rows.append({"subject": f"sub-{i:02d}", "site": site, "sex": "FM"[(i // 2) % 2],
                     "age": float(30 + i)})
    table = pd.DataFrame(rows)
    table.to_csv(folder.parent / "participants.csv", index=False)
    return folder, folder.parent / "participants.csv", table


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return _write_study(tmp_path_factory.mktemp("study") / "scans")


@pytest.fixture(scope="module")
def trained(study, tmp_path_factory):
    """A tiny beta-VAE trained by 'latentaudit train' and the embeddings 'embed' made."""
    scans, csv, _ = study
    out = tmp_path_factory.mktemp("runs")
    code = main(["train", "--images", str(scans), "--metadata", str(csv), "--encoder",
                 "betavae", "--size", "16", "--train-steps", "3", "--batch-size", "8",
                 "--output", str(out / "train"), "-q", *TINY_VAE])
    assert code == EXIT_OK
    # three slices per subject, concatenated into one row per subject
    code = main(["embed", "--images", str(scans), "--metadata", str(csv), "--encoder",
                 str(out / "train" / "encoder"), "--size", "16", "--n-slices", "3",
                 "--output", str(out / "embed"), "-q"])
    assert code == EXIT_OK
    return out


# --------------------------------------------------------------------------------------
# help, version, python -m
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [None, "demo", "train", "embed", "audit", "explain",
                                     "sensitivity"])
def test_every_command_has_help(command, capsys):
    argv = ([command] if command else []) + ["--help"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: latentaudit" in out
    assert "--output" in out or command is None
    assert "(default: None)" not in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == EXIT_BAD_INPUT
    assert "COMMAND" in capsys.readouterr().out


def test_python_dash_m_runs_the_same_cli():
    result = subprocess.run([sys.executable, "-m", "latentaudit", "--version"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0
    assert result.stdout.startswith("latentaudit ")


# --------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------
def test_config_file_then_flags_then_set(tmp_path):
    path = tmp_path / "audit.toml"
    path.write_text('seed = 3\n[audit]\nclusterer = "kmeans"\nnuisance = ["site"]\n'
                    '[train]\nsteps = 7\n', encoding="utf-8")
    config = load_config(path, overrides=[{"train": {"steps": 9}},
                                          cli._parse_assignment("audit.alpha=0.1")])
    assert config["seed"] == 3 and config["audit"]["clusterer"] == "kmeans"
    assert config["audit"]["nuisance"] == ["site"]
    assert config["train"]["steps"] == 9 and config["audit"]["alpha"] == 0.1
    assert config["projection"]["method"] == "tsne"  # untouched default


def test_config_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[audit\nmethod = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[audit]\nclusterr = 'kmeans'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="did you mean 'clusterer'"):
        load_config(unknown)
    with pytest.raises(DataError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        cli._parse_assignment("audit.clusterer")


def test_set_reads_toml_values_else_text():
    assert cli._parse_assignment("explain.widths=[4, 8]") == {"explain": {"widths": [4, 8]}}
    assert cli._parse_assignment("audit.within=sex") == {"audit": {"within": "sex"}}
    assert cli._parse_assignment("explain.enabled=false") == {"explain": {"enabled": False}}


def test_dump_toml_round_trips_the_whole_config():
    config = load_config(None, base=cli.DEMO_CONFIG)
    text = cli.dump_toml(config)
    back = tomllib.loads(text)
    unset = [k for k, v in config["audit"].items() if v is None]
    assert all(k not in back["audit"] for k in unset)
    assert load_config(None, base=back) == config


def test_the_example_config_is_valid():
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "audit.toml"
    config = load_config(example)
    assert config["audit"]["nuisance"] == ["site"]


def test_the_example_config_names_every_trainable_kind_and_preset(capsys):
    from pathlib import Path

    from latentaudit.encoders import encoder_class, encoder_names

    example = Path(__file__).resolve().parents[1] / "examples" / "audit.toml"
    section = example.read_text(encoding="utf-8").split("[encoder]")[1].split("\n[")[0]
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    preset_help = " ".join(out.split("--preset PRESET")[-1].split("--latent-dim")[0].split())
    for name in encoder_names():
        assert f'"{name}"' in section, f"examples/audit.toml does not name kind {name!r}"
        for preset in encoder_class(name).presets:
            assert re.search(rf"\b{preset}\b", section), (name, preset)
            assert re.search(rf"\b{preset}\b", preset_help), (name, preset)


@pytest.mark.parametrize("toml, fragments", [
    ('[train]\nsteps = "2"\n', ["train.steps must be an integer", "steps = 2"]),
    ("[train]\nsteps = 2.9\n", ["train.steps must be an integer", "steps = 3"]),
    ("[train]\nbatch_size = 8.5\n", ["train.batch_size must be an integer"]),
    ("[encoder]\nlatent_dim = true\n", ["encoder.latent_dim must be an integer",
                                        "true (a boolean)"]),
    ('[data]\nsize = "sixteen"\n', ["data.size must be an integer", "'sixteen'"]),
    ("output = 5\n", ["output must be a file or folder path", 'output = "']),
    ("[train]\nstepz = 5\n", ["unknown option 'train.stepz'", "did you mean 'steps'"]),
])
def test_typed_toml_values_are_refused_before_any_work(toml, fragments, tmp_path, capsys):
    config = tmp_path / "study.toml"
    config.write_text(toml, encoding="utf-8")
    code, _, err = run(capsys, "train", "--config", config, "--images", tmp_path / "none",
                       "--output", tmp_path / "out")
    assert_bad_input(code, err, "config file 'study.toml'", *fragments)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, fragments", [
    (["--steps", "2.9"], ["argument --train-steps/--steps", "must be an integer",
                          "--steps 3"]),
    (["--size", "sixteen"], ["argument --size", "must be an integer"]),
    (["--batch-size", "0"], ["argument --batch-size", "at least 1, got 0"]),
])
def test_typed_flags_are_refused_by_the_parser(argv, fragments, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--images", "x", *argv])
    assert exit_info.value.code == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in err, err


def test_set_values_are_typed_too(tmp_path, capsys):
    code, _, err = run(capsys, "train", "--images", tmp_path, "--output", tmp_path / "out",
                       "--set", "encoder.channels=[4, 8.5]")
    assert_bad_input(code, err, "--set: encoder.channels", "the element 8.5")


def test_every_flag_of_the_schema_reaches_a_command():
    from latentaudit.options import OPTIONS

    parser_scopes = {scope for command in cli.commands().values() for scope in command.scopes}
    for option in OPTIONS:
        for flag in option.flags:
            assert set(flag.scopes) & parser_scopes, (option.key, flag.names)


def test_a_new_command_is_one_module(tmp_path, monkeypatch, capsys):
    """A module in the package with a COMMAND is a command: flags, config and dispatch."""
    import latentaudit.cli
    from latentaudit.cli import _command

    (tmp_path / "hello.py").write_text(
        "from latentaudit.cli._command import Command\n"
        "def run(config, run):\n"
        "    print('hello', config['data']['size'], run.output.name)\n"
        "    return 0\n"
        "COMMAND = Command(name='hello', help='say hello', description='Hello.',\n"
        "                  scopes=('data', 'run'), run=run)\n", encoding="utf-8")
    monkeypatch.setattr(latentaudit.cli, "__path__", [*latentaudit.cli.__path__,
                                                      str(tmp_path)])
    _command.commands.cache_clear()
    try:
        code, out, _ = run(capsys, "hello", "--size", "16", "--output", tmp_path / "o")
        assert code == EXIT_OK and out.strip() == "hello 16 o"
        assert "hello" in cli.commands()
    finally:
        monkeypatch.undo()
        _command.commands.cache_clear()
        sys.modules.pop("latentaudit.cli.hello", None)
    assert "hello" not in cli.commands()


# --------------------------------------------------------------------------------------
# demo
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The fast path of 'latentaudit demo': 200 subjects, pixel PCA, PCA map."""
    out = tmp_path_factory.mktemp("demo") / "out"
    code = main(["demo", "--encoder", "pca", "--n-subjects", "200", "--output", str(out),
                 "--no-explain", *FAST_AUDIT])
    assert code == EXIT_OK
    return out


def test_demo_fast_path_writes_report_config_and_embeddings(demo_run):
    out = demo_run
    for name in ("report.html", "report.json", "subjects.csv", "config.toml",
                 "embeddings/embeddings.json"):
        assert (out / name).is_file(), name
    saved = tomllib.loads((out / "config.toml").read_text(encoding="utf-8"))
    assert saved["encoder"]["kind"] == "pca" and saved["data"]["n_subjects"] == 200
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["provenance"]["data"]["n_subjects"] == 200
    assert report["provenance"]["encoder"]["config_hash"]
    assert report["provenance"]["command"].startswith("latentaudit demo")
    assert report["sections"]["gradcam"]["status"] == "unavailable"
    assert "turned off" in report["sections"]["gradcam"]["note"]


def test_demo_writes_into_latentaudit_demo_by_default(tmp_path, monkeypatch):
    """README: without ``--output``, ``latentaudit demo`` writes
    ``latentaudit-demo/report.html`` (with ``report.json`` beside it) in the working
    folder."""
    monkeypatch.chdir(tmp_path)
    code = main(["demo", "--encoder", "pca", "--n-subjects", "60", "--no-explain",
                 *FAST_AUDIT])
    assert code == EXIT_OK
    assert (tmp_path / "latentaudit-demo" / "report.html").is_file()
    assert (tmp_path / "latentaudit-demo" / "report.json").is_file()


def test_the_seed_chooses_the_demo_subset():
    """docs/reliability.md: ``--seed`` seeds the demo's subset (``--n-subjects``) too: the
    same seed gives the same subjects, another seed others."""
    from latentaudit.cli.demo import demo_dataset

    def subjects(seed):
        config = {"seed": seed, "data": {"demo_size": 64, "n_subjects": 50}}
        dataset, record = demo_dataset(config)
        assert record["subset_seed"] == seed and len(dataset) == 50
        return list(dataset.ids)

    assert subjects(0) == subjects(0)
    assert subjects(0) != subjects(1)


def test_demo_finds_the_planted_sites_and_flipped_labels(demo_run):
    from latentaudit.datasets import load_demo_cohort

    report = json.loads((demo_run / "report.json").read_text(encoding="utf-8"))
    top = report["sections"]["overview"]["data"]["top_findings"]
    assert [row["column"] for row in top[:3]] == ["site"] * 3
    subjects = pd.read_csv(demo_run / "subjects.csv")
    truth = load_demo_cohort().truth.set_index("subject").loc[subjects["subject"]]
    # the explained clusters are made of the artefact sites B (shifted field of view)
    # and C (head-rest)
    explained = report["sections"]["clusters"]["data"]
    assert explained
    for cluster in explained:
        members = subjects["cluster"] == int(cluster)
        share = truth["artefact"].to_numpy()[members.to_numpy()] != "none"
        assert share.mean() > 0.9
    flipped = set(truth.index[truth["sex_flipped"].to_numpy()])
    listed = {row["subject"] for row in
              report["sections"]["label_issues"]["tables"]["sex: flagged subjects, most "
                                                           "suspicious first"]}
    assert len(flipped) >= 3
    assert len(flipped & listed) / len(flipped) >= 0.5


@pytest.fixture(scope="module")
def headline_run(tmp_path_factory):
    """The README's headline, in the default suite: ``latentaudit demo`` with the shipped
    Diffusion Autoencoder on all 2,000 subjects; without the classifier / Grad-CAM /
    counterfactual sections and with a PCA map, which do not change the findings or the
    label issues (the slow test runs the whole command)."""
    out = tmp_path_factory.mktemp("headline") / "out"
    code = main(["demo", "--encoder", "dae", "--output", str(out), "--no-explain",
                 "--projection", "pca", "-q"])
    assert code == EXIT_OK
    return out


def test_demo_uses_the_shipped_weights_of_the_chosen_family(tmp_path):
    """``demo --encoder stylegan2`` loads StyleGAN2's shipped demo weights (no training), as
    ``--encoder dae`` loads the DAE's; a family without demo weights says so."""
    from latentaudit.cli._encoders import demo_weights_available, load_encoder
    from latentaudit.errors import CheckpointError

    out = tmp_path / "out"
    code = main(["demo", "--encoder", "stylegan2", "--n-subjects", "60", "--output", str(out),
                 "--no-explain", "--projection", "pca", "-q"])
    assert code == EXIT_OK
    record = json.loads((out / "report.json").read_text(encoding="utf-8"))[
        "provenance"]["encoder"]
    assert record["pretrained"] == "demo" and record["class"] == "StyleGAN2Encoder"
    assert "trained_steps" not in record and not (out / "encoder").exists()
    assert demo_weights_available("dae") and not demo_weights_available("betavae")
    with pytest.raises(CheckpointError, match="no shipped demo weights of the 'betavae'"):
        load_encoder("demo", "betavae")


def test_headline_demo_finds_the_planted_sites_and_flipped_labels(headline_run):
    """README: "The report's top findings are the cohort's planted site artefacts (site B's
    shifted field of view, site C's head-rest) and its label issues list most of the
    flipped sex labels." Floors: every explained cluster is at least 80% one planted
    artefact, both artefacts are explained, recall of the flipped labels >= 0.6 ("most")
    and precision of the flagged subjects >= 0.8 (measured 2026-11-30 with the t-SNE map:
    46 of the 60 flipped labels among 47 flagged, recall 0.77, precision 0.98)."""
    from latentaudit.datasets import load_demo_cohort

    report = json.loads((headline_run / "report.json").read_text(encoding="utf-8"))
    assert report["provenance"]["encoder"]["pretrained"] == "demo"
    top = report["sections"]["overview"]["data"]["top_findings"]
    assert [row["column"] for row in top[:3]] == ["site"] * 3
    subjects = pd.read_csv(headline_run / "subjects.csv")
    assert len(subjects) == 2000
    truth = load_demo_cohort().truth.set_index("subject").loc[subjects["subject"]]
    artefacts = set()
    for cluster in report["sections"]["clusters"]["data"]:
        members = (subjects["cluster"] == int(cluster)).to_numpy()
        values, counts = np.unique(truth["artefact"].to_numpy()[members], return_counts=True)
        assert counts.max() / counts.sum() >= 0.8, dict(zip(values, counts, strict=True))
        artefacts.add(values[np.argmax(counts)])
    assert artefacts == {"fov_shift", "head_rest"}
    flipped = set(np.flatnonzero(truth["sex_flipped"].to_numpy()))
    flagged = {row["index"] for row in
               report["sections"]["label_issues"]["data"]["sex"]["flagged"]}
    found = len(flipped & flagged)
    assert len(flipped) == 60
    assert found / len(flipped) >= 0.6, (found, len(flagged))
    assert found / len(flagged) >= 0.8, (found, len(flagged))


def test_demo_reuses_its_embeddings_unless_fresh(demo_run, capsys):
    argv = ["demo", "--encoder", "pca", "--n-subjects", "200", "--output", str(demo_run),
            "--no-explain", *FAST_AUDIT]
    stamp = (demo_run / "stages.json").read_text()
    code, out, err = run(capsys, *argv[:-1])  # without -q, to see the step messages
    assert code == EXIT_OK and "reusing the embeddings" in err
    # the run's wall time, as report.json records it, is printed before the report's path
    total = json.loads((demo_run / "report.json").read_text())["provenance"][
        "timings_seconds"]["total"]
    minutes, seconds = divmod(round(total), 60)
    assert f"done in {minutes} min {seconds:02d} s" in out
    assert (demo_run / "stages.json").read_text() == stamp
    # --fresh turns reuse off
    args = cli.build_parser().parse_args([*argv, "--fresh"])
    assert cli._overrides(args)[0]["embed"]["reuse"] is False


def test_demo_keeps_the_embeddings_when_the_audit_fails(tmp_path, capsys, monkeypatch):
    import latentaudit.pipeline

    def failing(*args, **kwargs):
        raise DataError("the audit could not run")

    monkeypatch.setattr(latentaudit.pipeline, "run_audit", failing)
    out = tmp_path / "out"
    code, _, err = run(capsys, "demo", "--encoder", "pca", "--n-subjects", "60", "--output",
                       out, "--no-explain", *FAST_AUDIT)
    assert_bad_input(code, err, "the audit could not run")
    assert "kept: the embeddings are in" in err and "latentaudit audit --config" in err
    assert (out / "embeddings" / "embeddings.json").is_file()
    monkeypatch.undo()
    assert "--overwrite)" in err
    # ... and the run continues from them, with the demo's saved options (an audit into
    # the demo's folder replaces the demo's report: --overwrite says so)
    code, out_text, err = run(capsys, "audit", "--config", out / "config.toml", "--embeddings",
                              out / "embeddings", "--overwrite", *FAST_AUDIT)
    assert code == EXIT_OK, err
    report = json.loads((out / "report.json").read_text())
    assert report["provenance"]["options"]["audit"]["within"] == "sex"
    assert report["sections"]["findings"]["status"] == "ok"
    assert "report:" in out_text


def test_an_unexpected_error_is_an_internal_error(tmp_path, capsys, monkeypatch):
    import latentaudit.pipeline

    def failing(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(latentaudit.pipeline, "run_audit", failing)
    code, _, err = run(capsys, "demo", "--encoder", "pca", "--n-subjects", "60", "--output",
                       tmp_path / "out", "--no-explain", *FAST_AUDIT)
    assert code == EXIT_FAILURE
    assert "internal error: ZeroDivisionError: a bug" in err and "Traceback" not in err


def test_demo_rejects_a_misspelt_column_before_any_work(tmp_path, capsys):
    code, _, err = run(capsys, "demo", "--encoder", "pca", "--n-subjects", "60", "--output",
                       tmp_path / "out", "--nuisance", "sitte", *FAST_AUDIT)
    assert_bad_input(code, err, "did you mean 'site'")
    assert not (tmp_path / "out" / "embeddings").exists()


# --------------------------------------------------------------------------------------
# train, embed, audit, explain on NIfTI files
# --------------------------------------------------------------------------------------
def test_config_toml_records_exactly_the_values_that_ran(trained):
    saved = tomllib.loads((trained / "train" / "config.toml").read_text(encoding="utf-8"))
    assert saved["train"]["steps"] == 3 and type(saved["train"]["steps"]) is int
    assert saved["encoder"]["channels"] == [4, 8] and saved["encoder"]["latent_dim"] == 8
    assert saved["encoder"]["kind"] == "betavae" and saved["data"]["size"] == 16
    # and it is a valid config that runs the same again
    again = load_config(trained / "train" / "config.toml")
    assert again["train"] == {**again["train"], **saved["train"]}


def test_train_writes_a_loadable_encoder(trained):
    from latentaudit.encoders import load_pretrained

    encoder = load_pretrained(trained / "train" / "encoder")
    assert encoder.latent_dim == 8
    history = pd.read_csv(trained / "train" / "history.csv")
    assert len(history) >= 1
    assert (trained / "train" / "config.toml").is_file()
    assert (trained / "train" / "checkpoints").is_dir()


@pytest.mark.parametrize("family", ["dae", "stylegan2"])
def test_train_a_tiny_generative_encoder(family, study, tmp_path, capsys):
    scans, csv, _ = study
    code, out, err = run(capsys, "train", "--images", scans, "--metadata", csv, "--encoder",
                         family, "--preset", "tiny", "--size", "16", "--train-steps", "2",
                         "--batch-size", "4", "--output", tmp_path / family, "-q")
    assert code == EXIT_OK, err
    config = json.loads((tmp_path / family / "encoder" / "config.json").read_text())
    assert config["model_type"] == family
    assert "latentaudit embed" in out
    # the saved encoder embeds (the command that 'train' prints next)
    code, _, err = run(capsys, "embed", "--images", scans, "--metadata", csv, "--encoder",
                       tmp_path / family / "encoder", "--size", "16",
                       "--output", tmp_path / f"{family}_embed", "-q")
    assert code == EXIT_OK, err


def test_embed_saves_one_row_per_subject(trained, study):
    from latentaudit.embed import Embeddings

    _, _, table = study
    embeddings = Embeddings.load(trained / "embed" / "embeddings")
    assert embeddings.shape == (len(table), 3 * 8)
    assert list(embeddings.ids) == table["subject"].tolist()
    assert embeddings.metadata["site"].tolist() == table["site"].tolist()
    assert embeddings.provenance["data"]["n_subjects"] == len(table)


def test_audit_with_images_and_encoder(trained, study, tmp_path, capsys):
    scans, _, _ = study
    code, out, err = run(capsys, "audit", "--embeddings", trained / "embed", "--images", scans,
                         "--size", "16", "--n-slices", "3",
                         "--encoder", trained / "train" / "encoder",
                         "--nuisance", "site", "--output", tmp_path / "audit",
                         "--clusterer", "kmeans", "--set", "audit.n_clusters=2",
                         *TINY_EXPLAIN, *FAST_AUDIT)
    assert code == EXIT_OK, err
    report = json.loads((tmp_path / "audit" / "report.json").read_text())
    statuses = {k: v["status"] for k, v in report["sections"].items()}
    assert statuses["findings"] == "ok" and statuses["label_issues"] == "ok"
    assert all(status in ("ok", "unavailable") for status in statuses.values()), statuses
    assert report["provenance"]["encoder"]["class"] == "BetaVAEEncoder"
    # the images are matched to the subjects' rows: one (the middle slice) per subject
    assert statuses["clusters"] == "ok"
    assert "middle of its slices" in report["sections"]["clusters"]["note"]
    # the counterfactuals' move comes from the classifier's images, as the embeddings
    # (three slices concatenated) are not in the encoder's latent space
    assert statuses["counterfactuals"] == "ok"
    subjects = pd.read_csv(tmp_path / "audit" / "subjects.csv")
    assert len(subjects) == 16 and set(subjects["cluster"]) <= {-1, 0, 1}


def test_3d_train_embed_audit_explain_on_nifti_volumes(study, tmp_path, capsys):
    """The command line on whole volumes (``--spatial-dims 3``): a 3-D encoder is trained,
    embeds one row per volume, and the audit runs end to end with the 3-D classifier,
    Grad-CAM and counterfactuals."""
    scans, csv, table = study
    volumes = ["--images", scans, "--spatial-dims", "3", "--size", "16"]
    code, _, err = run(capsys, "train", *volumes, "--metadata", csv, "--encoder", "betavae",
                       "--train-steps", "3", "--batch-size", "8",
                       "--output", tmp_path / "train", "-q", *TINY_VAE)
    assert code == EXIT_OK, err
    encoder = tmp_path / "train" / "encoder"
    assert json.loads((encoder / "config.json").read_text())["config"]["spatial_dims"] == 3
    code, _, err = run(capsys, "embed", *volumes, "--metadata", csv, "--encoder", encoder,
                       "--output", tmp_path / "embed", "-q")
    assert code == EXIT_OK, err
    code, _, err = run(capsys, "audit", "--embeddings", tmp_path / "embed", *volumes,
                       "--encoder", encoder, "--nuisance", "site",
                       "--output", tmp_path / "audit", "--clusterer", "kmeans",
                       "--set", "audit.n_clusters=2", *TINY_EXPLAIN, *FAST_AUDIT)
    assert code == EXIT_OK, err
    report = json.loads((tmp_path / "audit" / "report.json").read_text())
    statuses = {k: v["status"] for k, v in report["sections"].items()}
    for key in ("findings", "clusters", "label_issues", "gradcam", "counterfactuals"):
        assert statuses[key] == "ok", (key, report["sections"][key]["note"])
    subjects = pd.read_csv(tmp_path / "audit" / "subjects.csv")
    assert subjects["subject"].tolist() == table["subject"].tolist()


def test_audit_runs_on_nifti_volumes_written_from_the_3d_demo_cohort(demo_volumes, tmp_path,
                                                                     capsys):
    """``latentaudit train / embed / audit`` on whole heads of the 3-D demo cohort written
    as a NIfTI study (``DemoCohort.to_nifti``): 12 subjects per site, every section of the
    report is built, and the subjects keep their ids."""
    site = demo_volumes.metadata["site"].to_numpy()
    rows = np.sort(np.concatenate([np.flatnonzero(site == s)[:12] for s in "ABCD"]))
    scans, csv = demo_volumes.to_nifti(tmp_path / "study", rows=rows)
    volumes = ["--images", scans, "--spatial-dims", "3", "--size", "16"]
    code, _, err = run(capsys, "train", *volumes, "--metadata", csv, "--encoder", "betavae",
                       "--train-steps", "3", "--batch-size", "8",
                       "--output", tmp_path / "train", "-q", *TINY_VAE)
    assert code == EXIT_OK, err
    encoder = tmp_path / "train" / "encoder"
    code, _, err = run(capsys, "embed", *volumes, "--metadata", csv, "--encoder", encoder,
                       "--output", tmp_path / "embed", "-q")
    assert code == EXIT_OK, err
    code, _, err = run(capsys, "audit", "--embeddings", tmp_path / "embed", *volumes,
                       "--encoder", encoder, "--nuisance", "site", "--expected", "sex",
                       "--output", tmp_path / "audit", "--clusterer", "kmeans",
                       "--set", "audit.n_clusters=2", *TINY_EXPLAIN, *FAST_AUDIT)
    assert code == EXIT_OK, err
    report = json.loads((tmp_path / "audit" / "report.json").read_text())
    statuses = {k: v["status"] for k, v in report["sections"].items()}
    for key in ("findings", "clusters", "label_issues", "gradcam", "counterfactuals"):
        assert statuses[key] == "ok", (key, report["sections"][key]["note"])
    subjects = pd.read_csv(tmp_path / "audit" / "subjects.csv")
    assert subjects["subject"].tolist() == demo_volumes.metadata["subject"].iloc[rows].tolist()


def test_audit_replaces_metadata_from_a_csv(trained, study, tmp_path, capsys):
    _, _, table = study
    extra = table.assign(scanner=np.where(table["site"] == "A", "X", "Y"))
    csv = tmp_path / "more.csv"
    extra.to_csv(csv, index=False)
    code, _, err = run(capsys, "audit", "--embeddings", trained / "embed", "--metadata", csv,
                       "--output", tmp_path / "audit", "--no-explain", *FAST_AUDIT)
    assert code == EXIT_OK, err
    report = json.loads((tmp_path / "audit" / "report.json").read_text())
    assert "scanner" in report["sections"]["findings"]["data"]["column_types"]


def test_explain_a_delineation(trained, study, tmp_path, capsys):
    scans, _, table = study
    labels = pd.DataFrame({"id": table["subject"], "cluster": (table["site"] == "B").astype(int)})
    labels.to_csv(tmp_path / "labels.csv", index=False)
    code, out, err = run(capsys, "explain", "--labels", tmp_path / "labels.csv", "--images",
                         scans, "--size", "16", "--encoder", trained / "train" / "encoder",
                         "--output", tmp_path / "explain", *TINY_EXPLAIN, "-q")
    assert code == EXIT_OK, err
    report = json.loads((tmp_path / "explain" / "report.json").read_text())
    assert {k: v["status"] for k, v in report["sections"].items()} == {
        "clusters": "ok", "gradcam": "ok", "counterfactuals": "ok", "provenance": "ok"}
    assert report["provenance"]["delineation"]["groups"] == {"0": 8, "1": 8}


def test_explain_and_audit_a_delineation_drawn_on_the_map(trained, study, tmp_path, capsys):
    from latentaudit.audit import Delineation
    from latentaudit.embeddings import Embeddings

    scans, _, _ = study
    embeddings = Embeddings.load(trained / "embed" / "embeddings")
    ids = [str(i) for i in embeddings.ids]
    xy = np.c_[np.arange(16.0), np.zeros(16)]  # the map an audit would have drawn
    subjects = pd.DataFrame({"subject": ids, "map_x": xy[:, 0], "map_y": xy[:, 1]})
    subjects.to_csv(tmp_path / "subjects.csv", index=False)
    squares = {1: [[-0.5, -1], [5.5, -1], [5.5, 1], [-0.5, 1]],
               2: [[5.5, -1], [15.5, -1], [15.5, 1], [5.5, 1]]}
    path = Delineation.draw(xy, ids, squares, z=embeddings.z).write(tmp_path / "d.json")
    # its subjects from the map it was drawn on, from the embeddings, or from the images
    for k, source in enumerate((["--labels", tmp_path / "subjects.csv"],
                                ["--embeddings", trained / "embed"], [])):
        code, _, err = run(capsys, "explain", "--delineation", path, *source, "--images",
                           scans, "--size", "16", "--output", tmp_path / f"explain{k}",
                           "--set", "explain.enabled=false", "-q")
        assert code == EXIT_OK, err
        report = json.loads((tmp_path / f"explain{k}" / "report.json").read_text())
        assert report["provenance"]["delineation"]["groups"] == {"1": 6, "2": 10}
    # the audit tests the drawn groups instead of clusters
    code, _, err = run(capsys, "audit", "--delineation", path, "--embeddings",
                       trained / "embed", "--output", tmp_path / "audit", "--no-explain",
                       *FAST_AUDIT)
    assert code == EXIT_OK, err
    audited = pd.read_csv(tmp_path / "audit" / "subjects.csv", dtype={"subject": str})
    assert audited["cluster"].tolist() == [1] * 6 + [2] * 10
    report = json.loads((tmp_path / "audit" / "report.json").read_text())
    assert report["provenance"]["delineation"]["groups"] == {"1": 6, "2": 10}
    # refused: another map, other embeddings, other subjects
    moved = subjects.copy()
    moved.loc[3, "map_x"] += 0.25
    moved.to_csv(tmp_path / "moved.csv", index=False)
    code, _, err = run(capsys, "explain", "--delineation", path, "--labels",
                       tmp_path / "moved.csv", "--images", scans, "--size", "16",
                       "--output", tmp_path / "refused1", "-q")
    assert_bad_input(code, err, "drawn on another map")
    Embeddings(np.asarray(embeddings.z) * 2, ids=ids).save(tmp_path / "other")
    code, _, err = run(capsys, "audit", "--delineation", path, "--embeddings",
                       tmp_path / "other", "--output", tmp_path / "refused2", "-q")
    assert_bad_input(code, err, "other embeddings")
    few = tmp_path / "few"
    few.mkdir()
    for name in sorted(scans.iterdir())[:10]:
        (few / name.name).write_bytes(name.read_bytes())
    code, _, err = run(capsys, "explain", "--delineation", path, "--images", few, "--size",
                       "16", "--output", tmp_path / "refused3", "-q")
    assert_bad_input(code, err, "drawn on other subjects", "not among them")
    code, _, err = run(capsys, "explain", "--delineation", tmp_path / "none.json", "--images",
                       scans, "--output", tmp_path / "refused4", "-q")
    assert_bad_input(code, err, "does not exist")


# --------------------------------------------------------------------------------------
# bad input: one line, exit code 2, no traceback
# --------------------------------------------------------------------------------------
def test_missing_image_folder(tmp_path, capsys):
    code, _, err = run(capsys, "train", "--images", tmp_path / "nowhere", "--output",
                       tmp_path / "out")
    assert_bad_input(code, err, "does not exist", "--images")
    assert not (tmp_path / "out").exists()  # nothing written for a run that never started


@pytest.mark.parametrize("command", ["train", "embed", "explain"])
def test_output_problems_come_before_reading_the_images(command, tmp_path, capsys):
    # the images do not exist either, but the output is what is reported first
    args = [command, "--images", tmp_path / "nowhere"]
    if command == "embed":
        args += ["--encoder", "demo"]
    if command == "explain":
        labels = tmp_path / "labels.csv"
        labels.write_text("subject,cluster\na,0\nb,1\n")
        args += ["--labels", labels]
    code, _, err = run(capsys, *args)
    assert_bad_input(code, err, "needs an output folder", "--output")
    afile = tmp_path / "afile"
    afile.write_text("")
    code, _, err = run(capsys, *args, "--output", afile)
    assert_bad_input(code, err, "is a file, not a folder")


def test_debug_shows_the_traceback(tmp_path, capsys):
    code, _, err = run(capsys, "--debug", "train", "--images", tmp_path / "nowhere",
                       "--output", tmp_path / "out")
    assert code == EXIT_BAD_INPUT
    assert "Traceback" in err
    assert err.strip().splitlines()[-1].startswith("latentaudit: error:")


def test_unreadable_nifti(study, tmp_path, capsys):
    scans, csv, _ = study
    broken = tmp_path / "scans"
    broken.mkdir()
    for path in sorted(scans.iterdir())[:4]:
        (broken / path.name).write_bytes(path.read_bytes())
    (broken / "sub-99.nii.gz").write_bytes(b"this is not a NIfTI file")
    code, _, err = run(capsys, "embed", "--images", broken, "--encoder", "whatever",
                       "--output", tmp_path / "out")
    assert_bad_input(code, err, "sub-99.nii.gz")


def test_csv_without_the_id_column(study, tmp_path, capsys):
    scans, _, table = study
    csv = tmp_path / "participants.csv"
    table.rename(columns={"subject": "participant"}).to_csv(csv, index=False)
    code, _, err = run(capsys, "train", "--images", scans, "--metadata", csv, "--output",
                       tmp_path / "out")
    assert_bad_input(code, err, "no id column 'subject'", "participant", "--id-column")


def test_ids_that_do_not_match(study, tmp_path, capsys):
    scans, _, table = study
    csv = tmp_path / "participants.csv"
    table.assign(subject=[f"P{i}" for i in range(len(table))]).to_csv(csv, index=False)
    code, _, err = run(capsys, "train", "--images", scans, "--metadata", csv, "--output",
                       tmp_path / "out")
    assert_bad_input(code, err, "missing from the metadata table", "sub-00")


def test_metadata_column_of_mixed_types(study, tmp_path, capsys):
    scans, _, table = study
    csv = tmp_path / "participants.csv"
    mixed = table.astype({"age": object})
    mixed.loc[3, "age"] = "unknown"
    mixed.to_csv(csv, index=False)
    code, _, err = run(capsys, "train", "--images", scans, "--metadata", csv, "--output",
                       tmp_path / "out")
    assert_bad_input(code, err, "column 'age'", "mixes numbers and text", "'unknown'",
                     "sub-03")


def test_mixed_types_in_a_table_given_to_audit(trained, study, tmp_path, capsys):
    _, _, table = study
    csv = tmp_path / "more.csv"
    table.assign(site=["A", 2, "B", 3] * 4).to_csv(csv, index=False)
    code, _, err = run(capsys, "audit", "--embeddings", trained / "embed", "--metadata", csv,
                       "--output", tmp_path / "audit", *FAST_AUDIT)
    assert_bad_input(code, err, "column 'site'", "mixes numbers and text")


def test_missing_embeddings_and_encoder(tmp_path, capsys):
    code, _, err = run(capsys, "audit", "--embeddings", tmp_path / "none", "--output",
                       tmp_path / "out")
    assert_bad_input(code, err, "does not exist", "--embeddings")
    code, _, err = run(capsys, "audit", "--output", tmp_path / "out")
    assert_bad_input(code, err, "--embeddings DIR")


def test_labels_that_are_not_groups(study, tmp_path, capsys):
    scans, _, table = study
    pd.DataFrame({"id": table["subject"], "cluster": ["a"] * 16}).to_csv(
        tmp_path / "labels.csv", index=False)
    code, _, err = run(capsys, "explain", "--labels", tmp_path / "labels.csv", "--images",
                       scans, "--output", tmp_path / "out")
    assert_bad_input(code, err, "integer group labels")


def test_bad_option_value_from_argparse(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--encoder", "vae"])
    assert exit_info.value.code == EXIT_BAD_INPUT
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.slow
def test_full_demo_shows_planted_artefacts_and_flipped_labels(tmp_path):
    """The README's first command, end to end (minutes on a laptop CPU)."""
    from latentaudit.datasets import load_demo_cohort

    out = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "latentaudit", "demo", "--output",
                             str(out)], capture_output=True, text=True, timeout=3600,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"done in \d+ min \d\d s", result.stdout), result.stdout[-2000:]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert all(s["status"] == "ok" for s in report["sections"].values()), {
        k: s["note"] for k, s in report["sections"].items() if s["status"] != "ok"}
    top = report["sections"]["overview"]["data"]["top_findings"]
    assert [row["column"] for row in top[:3]] == ["site"] * 3
    subjects = pd.read_csv(out / "subjects.csv")
    truth = load_demo_cohort().truth.set_index("subject").loc[subjects["subject"]]
    artefacts = set()
    for cluster in report["sections"]["clusters"]["data"]:
        members = (subjects["cluster"] == int(cluster)).to_numpy()
        kinds = truth["artefact"].to_numpy()[members]
        values, counts = np.unique(kinds, return_counts=True)
        assert counts.max() / counts.sum() > 0.8
        artefacts.add(values[np.argmax(counts)])
    assert artefacts == {"fov_shift", "head_rest"}
    flipped = set(truth.index[truth["sex_flipped"].to_numpy()])
    flagged = set(subjects["subject"][pd.Index(subjects.index).isin(
        [row["index"] for row in report["sections"]["label_issues"]["data"]["sex"]["flagged"]])])
    assert len(flipped & flagged) / len(flipped) >= 0.6


def test_train_precision_and_compile_reach_fit():
    from latentaudit.cli import _encoders
    from latentaudit.options import OPTIONS

    seen = {}

    class Fake:
        def fit(self, dataset, **options):
            seen.update(options)

        def to(self, device):
            return self

    class Quiet:
        verbose = False

    config = OPTIONS.defaults()
    _encoders.train(Fake(), None, config, Quiet(), None)
    assert "compile" not in seen and "precision" not in seen  # the model's own defaults
    config["train"].update(compile=True, precision="bf16")
    _encoders.train(Fake(), None, config, Quiet(), None)
    assert seen["compile"] is True and seen["precision"] == "bf16"
