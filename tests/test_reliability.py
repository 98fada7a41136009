"""The cases of issue 16 ("never delete what it did not make, same seed same model, typed
options"), each a test.  What the command line and the API must do with them:

- output folders are owned: a user's file is never deleted or replaced; another run's
  folder is refused without ``--overwrite``; the user's metadata columns are never lost;
- ``--seed`` gives bit-identical weights on the CPU;
- a bad value or file ends in one clear line (a LatentAuditError) naming it and the fix.

Each test records itself with ``count("case", ...)`` for ``docs/reliability.md``; the
kill tests record their kill points.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from _reliability import count

import latentaudit as la
from latentaudit.cli import EXIT_BAD_INPUT, EXIT_OK, main
from latentaudit.errors import CheckpointError, ConfigError, DataError

FAST_AUDIT = ["--projection", "pca", "--clusterer", "kmeans", "--no-explain", "-q",
              "--set", "audit.n_permutations=9"]
TINY_VAE = ["--encoder", "betavae", "--set", "encoder.channels=[4, 8]", "--latent-dim", "4",
            "--steps", "3", "--batch-size", "8", "-q"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def refused(code, err, *fragments):
    assert code == EXIT_BAD_INPUT, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("latentaudit: error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in last, last


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """12 NIfTI volumes (12^3) with a metadata table; a beta-VAE trained on them; their
    embeddings."""
    import nibabel as nib

    root = tmp_path_factory.mktemp("study")
    rng = np.random.default_rng(0)
    (root / "scans").mkdir()
    rows = []
    for i in range(12):
        volume = rng.normal(0, 1, (12, 12, 12)).astype(np.float32)
        volume[3:9, 3:9, 3:9] += 4 + 2 * (i % 2)
        nib.save(nib.Nifti1Image(volume, np.eye(4)), str(root / "scans" / f"s{i:02d}.nii.gz"))
        rows.append({"subject": f"s{i:02d}", "sex": "FM"[i % 2], "site": "AB"[i // 6],
                     "age": 20.0 + i})
    pd.DataFrame(rows).to_csv(root / "participants.csv", index=False)
    data = ["--images", root / "scans", "--metadata", root / "participants.csv", "--size",
            "12"]
    assert main([str(a) for a in ["train", *data, *TINY_VAE, "--output",
                                  root / "train"]]) == EXIT_OK
    assert main([str(a) for a in ["embed", *data, "--encoder", root / "train" / "encoder",
                                  "--output", root / "embed", "-q"]]) == EXIT_OK
    return root, data


# --------------------------------------------------------------------------------------
# 1. data loss
# --------------------------------------------------------------------------------------
def test_embed_keeps_a_users_file_in_its_embeddings_folder(study, capsys):
    count("case", "embed keeps a user's file")
    root, data = study
    notes = root / "embed" / "embeddings" / "my_notes.txt"
    notes.write_text("do not delete")
    encoder = root / "train" / "encoder"
    for extra in ([], ["--overwrite"]):
        code, _, err = run(capsys, "embed", *data, "--encoder", encoder, "--output",
                           root / "embed", "-q", *extra)
        assert code == EXIT_OK, err
        assert notes.read_text() == "do not delete"
    assert la.Embeddings.load(root / "embed" / "embeddings").shape == (12, 4)


def test_embed_into_a_train_folder_is_refused(study, capsys):
    count("case", "embed into a train folder")
    root, data = study
    config = (root / "train" / "config.toml").read_bytes()
    code, _, err = run(capsys, "embed", *data, "--encoder", root / "train" / "encoder",
                       "--output", root / "train", "-q")
    refused(code, err, "holds a 'latentaudit train' run", "config.toml", "--overwrite")
    assert (root / "train" / "config.toml").read_bytes() == config


def test_explain_into_an_audit_folder_is_refused(study, tmp_path, capsys):
    count("case", "explain into an audit folder")
    root, data = study
    out = tmp_path / "audit"
    code, _, err = run(capsys, "audit", "--embeddings", root / "embed", "--output", out,
                       *FAST_AUDIT)
    assert code == EXIT_OK, err
    report = (out / "report.html").read_bytes()
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"subject": [f"s{i:02d}" for i in range(12)],
                  "cluster": np.arange(12) % 2}).to_csv(labels, index=False)
    code, _, err = run(capsys, "explain", "--labels", labels, *data[:2], "--size", "12",
                       "--output", out, "--set", "explain.enabled=false", "-q")
    refused(code, err, "holds a 'latentaudit audit' run", "report.html")
    assert (out / "report.html").read_bytes() == report


def test_a_metadata_column_named_id_survives_into_the_subjects_table(study, tmp_path,
                                                                     capsys):
    count("case", "metadata column 'id'")
    root, _ = study
    table = pd.read_csv(root / "participants.csv", dtype={"subject": str})
    table["id"] = 100 + np.arange(12) % 4
    table.to_csv(tmp_path / "meta.csv", index=False)
    code, _, err = run(capsys, "audit", "--embeddings", root / "embed", "--metadata",
                       tmp_path / "meta.csv", "--output", tmp_path / "out", *FAST_AUDIT)
    assert code == EXIT_OK, err
    subjects = pd.read_csv(tmp_path / "out" / "subjects.csv", dtype={"subject": str})
    kept = subjects.set_index("subject")["id"]
    assert kept.to_dict() == table.set_index("subject")["id"].to_dict()


@pytest.mark.parametrize("column", ["cluster", "map_x", "map_y", "classifier"])
def test_a_metadata_column_named_like_the_audits_is_refused(column, study, tmp_path,
                                                             capsys):
    count("case", f"metadata column {column!r}")
    root, _ = study
    table = pd.read_csv(root / "participants.csv", dtype={"subject": str})
    table[column] = 100 + np.arange(12) % 4
    table.to_csv(tmp_path / "meta.csv", index=False)
    code, _, err = run(capsys, "audit", "--embeddings", root / "embed", "--metadata",
                       tmp_path / "meta.csv", "--output", tmp_path / "out", *FAST_AUDIT)
    refused(code, err, f"column named {column!r}", "rename that column")
    assert not (tmp_path / "out").exists()
    # the API refuses it alike
    embeddings = la.Embeddings.load(root / "embed" / "embeddings")
    from latentaudit.pipeline import run_audit

    with pytest.raises(DataError, match=f"column named {column!r}"):
        run_audit((embeddings.z, table), options={"projection": {"method": "pca"}})


# --------------------------------------------------------------------------------------
# 2. no confident report on no information
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("fill, fragment", [(1.0, "constant"), (np.nan, "NaN")])
def test_an_audit_of_uninformative_embeddings_is_refused(fill, fragment, tmp_path, capsys):
    count("case", f"audit of 20x8 embeddings all {fill}")
    metadata = pd.DataFrame({"sex": ["M", "F"] * 10, "site": ["A"] * 10 + ["B"] * 10})
    la.Embeddings(np.full((20, 8), fill, np.float32), ids=[f"s{i:02d}" for i in range(20)],
                  metadata=metadata).save(tmp_path / "emb")
    code, out, err = run(capsys, "audit", "--embeddings", tmp_path / "emb", "--output",
                         tmp_path / "out", "--no-explain", "-q")
    refused(code, err, fragment)
    assert "imputer" not in err.lower() and "flagged" not in out
    assert not (tmp_path / "out" / "report.html").exists()


def test_a_tsne_projection_of_constant_data_is_refused():
    count("case", "Projector t-SNE on constant data")
    with pytest.raises(DataError, match="constant"):
        la.Projector(method="tsne").fit_transform(np.ones((30, 8)))


# --------------------------------------------------------------------------------------
# 3. one seed, one result
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["betavae", "dae"])
def test_two_trainings_with_one_seed_are_bit_identical(model, study, tmp_path, capsys):
    count("case", f"train --seed 0 twice ({model})")
    from safetensors.torch import load_file

    root, data = study
    kind = (TINY_VAE if model == "betavae" else
            ["--encoder", "dae", "--preset", "tiny", "--steps", "2", "--batch-size", "4",
             "-q"])
    weights = []
    for name in ("a", "b"):
        code, _, err = run(capsys, "train", *data, *kind, "--seed", "0", "--size", "16",
                           "--output", tmp_path / name)
        assert code == EXIT_OK, err
        weights.append(load_file(str(tmp_path / name / "encoder" / "model.safetensors")))
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert weights[0][key].numpy().tobytes() == weights[1][key].numpy().tobytes(), key


def test_seeding_the_model_leaves_the_callers_random_state_alone(study, tmp_path, capsys):
    count("case", "the seed does not touch the global RNG")
    import torch

    root, data = study
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    code, _, err = run(capsys, "train", *data, *TINY_VAE, "--seed", "7", "--output",
                       tmp_path / "t")
    assert code == EXIT_OK, err
    assert torch.equal(torch.rand(3), expected)


def test_a_resume_asked_to_stop_before_the_checkpoint_is_refused(study, tmp_path, capsys):
    count("case", "train --resume --steps below the checkpoint's step")
    root, data = study
    code, _, err = run(capsys, "train", *data, *TINY_VAE, "--output", tmp_path / "t")
    assert code == EXIT_OK, err
    code, _, err = run(capsys, "train", *data, *TINY_VAE, "--steps", "2", "--resume",
                       "--output", tmp_path / "t")
    refused(code, err, "at step 3", "cannot stop before the checkpoint's step")


# --------------------------------------------------------------------------------------
# 4. typed options and clear errors
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("toml, fragment", [
    ('[train]\nsteps = "2"', "train.steps must be an integer"),
    ("[train]\nsteps = 2.9", "train.steps must be an integer"),
    ("[train]\nbatch_size = 8.5", "train.batch_size must be an integer"),
    ("[encoder]\nlatent_dim = true", "encoder.latent_dim must be an integer"),
    ('[data]\nsize = "sixteen"', "data.size must be an integer, got the text 'sixteen'"),
    ("output = 5", "output must be a file or folder path"),
])
def test_a_toml_value_of_the_wrong_type_is_refused(toml, fragment, study, tmp_path, capsys):
    count("case", f"TOML {toml.splitlines()[-1]}")
    root, data = study
    config = tmp_path / "c.toml"
    config.write_text(toml + "\n")
    code, _, err = run(capsys, "train", "--config", config, *data, "--output",
                       tmp_path / "out")
    refused(code, err, fragment)
    assert not (tmp_path / "out").exists()


def test_a_truncated_embeddings_manifest_is_a_clear_error(study, tmp_path, capsys):
    count("case", "truncated embeddings.json")
    import shutil

    root, _ = study
    shutil.copytree(root / "embed" / "embeddings", tmp_path / "emb")
    manifest = tmp_path / "emb" / "embeddings.json"
    manifest.write_bytes(manifest.read_bytes()[:20])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        la.Embeddings.load(tmp_path / "emb")
    code, _, err = run(capsys, "audit", "--embeddings", tmp_path / "emb", "--output",
                       tmp_path / "out", *FAST_AUDIT)
    refused(code, err, "embeddings.json", "is not valid JSON")


def test_a_2d_nifti_among_volumes_is_refused(study, tmp_path, capsys):
    count("case", "2-D NIfTI among volumes")
    import shutil

    import nibabel as nib

    root, data = study
    shutil.copytree(root / "scans", tmp_path / "scans")
    nib.save(nib.Nifti1Image(np.ones((12, 12), np.float32), np.eye(4)),
             str(tmp_path / "scans" / "s99.nii.gz"))
    for dims in ("2", "3"):
        code, _, err = run(capsys, "embed", "--images", tmp_path / "scans", "--spatial-dims",
                           dims, "--size", "12", "--encoder", root / "train" / "encoder",
                           "--output", tmp_path / f"out{dims}")
        refused(code, err, "s99.nii.gz", "single 2-D image")


def test_a_one_subject_audit_is_a_clear_error(capsys, tmp_path):
    count("case", "one-subject audit")
    la.Embeddings(np.ones((1, 4), np.float32), ids=["s0"],
                  metadata=pd.DataFrame({"sex": ["F"]})).save(tmp_path / "emb")
    code, _, err = run(capsys, "audit", "--embeddings", tmp_path / "emb", "--output",
                       tmp_path / "out", *FAST_AUDIT)
    refused(code, err, "needs at least 5 samples (rows, one per subject), got n_samples = 1")
    # the boundary of "fewer than five subjects": four are refused, five audited
    rng = np.random.default_rng(0)
    for n in (4, 5):
        la.Embeddings(rng.normal(size=(n, 4)).astype(np.float32),
                      ids=[f"s{i}" for i in range(n)],
                      metadata=pd.DataFrame({"sex": list("FMFMF")[:n]})).save(tmp_path / f"e{n}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # too few rows per group
            code, _, err = run(capsys, "audit", "--embeddings", tmp_path / f"e{n}",
                               "--output", tmp_path / f"out{n}", *FAST_AUDIT)
        if n == 4:
            refused(code, err, "needs at least 5 samples (rows, one per subject), "
                               "got n_samples = 4")
        else:
            assert code == EXIT_OK, err


def test_a_csv_that_is_not_utf8_names_the_byte_and_the_fix(study, tmp_path, capsys):
    count("case", "non-UTF-8 CSV")
    root, data = study
    table = (root / "participants.csv").read_text().replace("A,", "Gen\u00e8ve,")
    (tmp_path / "latin.csv").write_bytes(table.encode("latin-1"))
    offset = table.encode("latin-1").index(b"\xe8")
    code, _, err = run(capsys, "train", "--images", root / "scans", "--metadata",
                       tmp_path / "latin.csv", "--output", tmp_path / "out")
    refused(code, err, f"byte 0xe8 at byte {offset} (line 2,", "save the table as UTF-8")


def test_the_api_refuses_a_mixed_type_column_as_the_cli_does():
    count("case", "mixed-type column through the API")
    rng = np.random.default_rng(0)
    metadata = pd.DataFrame({"age": [50, 61.5, "n/a", 40] * 5})
    with pytest.raises(DataError, match="column 'age' .* mixes numbers and text"):
        la.ClusterAuditor(clusterer="kmeans").fit(rng.normal(size=(20, 3)), metadata)


def test_an_option_of_the_api_is_typed_like_the_cli():
    count("case", "typed options through the API")
    from latentaudit.pipeline import run_audit

    z = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ConfigError, match="audit.n_permutations must be an integer"):
        run_audit((z, pd.DataFrame({"site": ["A", "B"] * 10})),
                  options={"audit": {"n_permutations": 19.5}})


# --------------------------------------------------------------------------------------
# kill tests: a process killed inside a write leaves the previous file and a temporary
# file the next run removes
# --------------------------------------------------------------------------------------
_CHILD = textwrap.dedent("""
    import os, sys, time, torch
    import latentaudit as la
    from latentaudit import utils

    folder, marker = sys.argv[1], sys.argv[2]
    original = torch.save
    calls = {"n": 0}

    def slow_save(obj, handle, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] < 2:  # the first checkpoint is written whole
            return original(obj, handle, *args, **kwargs)
        import io
        buffer = io.BytesIO()
        original(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        handle.write(data[: len(data) // 2])
        handle.flush()
        open(marker, "w").close()  # the test kills us now, half-way through the write
        time.sleep(600)

    torch.save = slow_save
    images = torch.linspace(-1, 1, 8 * 16 * 16).reshape(8, 1, 16, 16)
    torch.manual_seed(0)
    encoder = la.BetaVAEEncoder(image_size=16, channels=(4, 8), latent_dim=4)
    encoder.fit(la.ArrayDataset(images.numpy()), max_steps=4, batch_size=4,
                checkpoint_dir=folder, checkpoint_every=1, random_state=0, verbose=False)
""")


def test_a_kill_inside_a_checkpoint_write_keeps_the_previous_checkpoint(tmp_path):
    from latentaudit.training import CHECKPOINT_NAME, load_checkpoint

    count("kill_point", "inside the checkpoint's torch.save (half the bytes written)")
    count("case", "kill inside a checkpoint write")
    folder, marker = tmp_path / "run", tmp_path / "marker"
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, str(script), str(folder), str(marker)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the child never reached its second write"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    leftovers = [p for p in folder.iterdir() if p.name != CHECKPOINT_NAME]
    assert len(leftovers) == 1, leftovers  # the half-written temporary file
    assert load_checkpoint(folder)["step"] == 1  # the previous checkpoint survived, whole
    # the next run removes the dead writer's temporary file and resumes from step 1
    import torch

    images = torch.linspace(-1, 1, 8 * 16 * 16).reshape(8, 1, 16, 16)
    torch.manual_seed(0)
    encoder = la.BetaVAEEncoder(image_size=16, channels=(4, 8), latent_dim=4)
    encoder.fit(la.ArrayDataset(images.numpy()), max_steps=4, batch_size=4,
                checkpoint_dir=folder, checkpoint_every=1, resume=True, random_state=0,
                verbose=False)
    assert [p.name for p in folder.iterdir()] == [CHECKPOINT_NAME]
    assert load_checkpoint(folder)["step"] == 4



_PAUSE = textwrap.dedent("""
    import contextlib, os, sys, time
    from latentaudit import utils

    target, marker, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    original = utils.atomic_path

    @contextlib.contextmanager
    def paused(path):
        with original(path) as tmp:
            yield tmp
            if os.path.basename(os.fspath(path)) == target:
                open(marker, "w").close()  # written, not yet renamed: the test kills us
                time.sleep(600)

    utils.atomic_path = paused  # before the modules that import it are imported
    from latentaudit.cli import main

    sys.exit(main(argv))
""")


def _kill_at(tmp_path, target, argv):
    """Run the command line in a child killed when ``target`` is written but not renamed."""
    marker = tmp_path / f"marker-{target}"
    script = tmp_path / "pause.py"
    script.write_text(_PAUSE)
    child = subprocess.Popen([sys.executable, str(script), target, str(marker),
                              *map(str, argv)], env={**os.environ, "OMP_NUM_THREADS": "1"},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert child.poll() is None, (child.stdout.read() + child.stderr.read()
                                          ).decode()[-2000:]
            assert time.monotonic() < deadline, f"the child never wrote {target}"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()


def _temporaries(folder):
    from latentaudit.utils import TEMPORARY_SUFFIX

    return sorted(p for p in folder.rglob(f"*{TEMPORARY_SUFFIX}"))


_KILL_POINTS = [
    pytest.param("audit", "report.html", id="audit-report.html"),
    pytest.param("audit", "latentaudit-manifest.json", id="audit-manifest",
                 marks=pytest.mark.slow),
    pytest.param("audit", "subjects.csv", id="audit-subjects.csv", marks=pytest.mark.slow),
    pytest.param("audit", "config.toml", id="audit-config.toml", marks=pytest.mark.slow),
    pytest.param("embed", "z.npy", id="embed-z.npy", marks=pytest.mark.slow),
    pytest.param("embed", "embeddings.json", id="embed-embeddings.json",
                 marks=pytest.mark.slow),
    pytest.param("train", "checkpoint.pt", id="train-checkpoint.pt", marks=pytest.mark.slow),
    pytest.param("train", "model.safetensors", id="train-model.safetensors",
                 marks=pytest.mark.slow),
]


@pytest.mark.parametrize("command, target", _KILL_POINTS)
def test_a_command_killed_before_a_rename_leaves_the_previous_file(command, target, study,
                                                                    tmp_path, capsys):
    count("kill_point", f"{command}: {target} written, not yet renamed")
    root, data = study
    out = tmp_path / "out"
    argv = {"audit": ["audit", "--embeddings", root / "embed", "--output", out, *FAST_AUDIT],
            "embed": ["embed", *data, "--encoder", root / "train" / "encoder", "--output",
                      out, "-q"],
            "train": ["train", *data, *TINY_VAE, "--output", out]}[command]
    code, _, err = run(capsys, *argv)  # the previous run, complete
    assert code == EXIT_OK, err
    before = {p: p.read_bytes() for p in out.rglob(target)}
    assert before, f"{target} is not written by {command}"
    # train continues the run: its first new checkpoint is written at step 4
    again = ["--resume", "--steps", "6"] if command == "train" else []
    _kill_at(tmp_path, target, [*argv, *again])
    # the file is the previous one, or absent and known incomplete; never half of one
    for path, content in before.items():
        assert not path.exists() or path.read_bytes() == content, path
    assert len(_temporaries(out)) == 1, _temporaries(out)
    # the next run removes the dead writer's temporary file and completes
    code, _, err = run(capsys, *argv, *again)
    assert code == EXIT_OK, err
    assert _temporaries(out) == []
    from latentaudit.cli._output import read_manifest

    manifest = read_manifest(out)
    # (a run killed at its first manifest write never recorded itself)
    killed = [] if target == "latentaudit-manifest.json" else ["interrupted"]
    assert [r["status"] for r in manifest["runs"]] == ["complete", *killed, "complete"]
    assert all(p.relative_to(out).as_posix() in manifest["files"] for p in before
               if p.name != "latentaudit-manifest.json")
