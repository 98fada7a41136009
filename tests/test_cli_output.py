"""Tests of the output folders of the command line: owned, manifest-listed, atomic."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from latentaudit.cli import EXIT_BAD_INPUT, EXIT_OK, main
from latentaudit.cli._output import (
    MANIFEST,
    check_output,
    close_output,
    open_output,
    read_manifest,
)
from latentaudit.cli._run import Run
from latentaudit.errors import ConfigError, DataError
from latentaudit.utils import TEMPORARY_SUFFIX, atomic_path, remove_stale_temporaries

FAST_AUDIT = ["--projection", "pca", "--clusterer", "kmeans", "--no-explain", "-q",
              "--set", "audit.n_permutations=9"]


def make_run(folder, command="audit", outputs=("report.html", "embeddings/"),
             overwrite=False):
    return Run(command, {"output": str(folder)}, verbose=False, argv=[command],
               outputs=outputs, overwrite=overwrite)


@pytest.fixture(scope="module")
def embeddings(tmp_path_factory):
    from latentaudit import Embeddings

    rng = np.random.default_rng(0)
    site = np.repeat(["A", "B"], 20)
    z = rng.normal(size=(40, 6)).astype(np.float32) + 3.0 * (site == "B")[:, None]
    metadata = pd.DataFrame({"subject": [f"s{i:02d}" for i in range(40)], "site": site,
                             "age": rng.uniform(20, 80, 40).round(1)})
    folder = tmp_path_factory.mktemp("emb") / "embeddings"
    Embeddings(z, ids=metadata["subject"], metadata=metadata).save(folder)
    return folder


def audit(capsys, embeddings, out, *extra):
    code = main(["audit", "--embeddings", str(embeddings), "--output", str(out),
                 *FAST_AUDIT, *map(str, extra)])
    return code, capsys.readouterr().err


# --------------------------------------------------------------------------------------
# the rules, through the commands
# --------------------------------------------------------------------------------------
def test_a_users_file_is_never_replaced(embeddings, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("USER")
    code, err = audit(capsys, embeddings, out)
    assert code == EXIT_BAD_INPUT and "not made by latentaudit" in err, err
    code, err = audit(capsys, embeddings, out, "--overwrite")
    assert code == EXIT_BAD_INPUT and "report.html" in err and "never replaces" in err
    assert (out / "report.html").read_text() == "USER"
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]


def test_a_foreign_folder_needs_overwrite_and_keeps_its_files(embeddings, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, err = audit(capsys, embeddings, out)
    assert code == EXIT_BAD_INPUT and "not empty" in err and "--overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    code, err = audit(capsys, embeddings, out, "--overwrite")
    assert code == EXIT_OK, err
    assert (out / "notes.txt").read_text() == "mine"
    manifest = read_manifest(out)
    assert set(manifest["files"]) == {"config.toml", "report.html", "report.json",
                                      "subjects.csv"}
    assert manifest["runs"][-1]["status"] == "complete" and "pending" not in manifest


def test_a_rerun_into_its_own_folder_replaces_only_its_files(embeddings, tmp_path, capsys):
    out = tmp_path / "out"
    assert audit(capsys, embeddings, out)[0] == EXIT_OK
    (out / "notes.txt").write_text("mine")
    before = (out / "report.json").stat().st_mtime_ns
    code, err = audit(capsys, embeddings, out)
    assert code == EXIT_OK, err
    assert (out / "report.json").stat().st_mtime_ns != before
    assert (out / "notes.txt").read_text() == "mine"
    manifest = read_manifest(out)
    assert [r["command"] for r in manifest["runs"]] == ["audit", "audit"]
    assert "notes.txt" not in manifest["files"]


def test_another_commands_folder_is_refused_without_overwrite(tmp_path):
    out = tmp_path / "out"
    first = make_run(out, "train", outputs=("encoder/",))
    open_output(first)
    (out / "encoder").mkdir()
    (out / "encoder" / "model.bin").write_text("w")
    close_output(first, "complete")
    second = make_run(out, "embed", outputs=("embeddings/",))
    with pytest.raises(DataError, match=r"holds a 'latentaudit train' run .* would "
                                        r"replace its config.toml"):
        check_output(second)
    check_output(make_run(out, "embed", outputs=("embeddings/",), overwrite=True))
    check_output(make_run(out, "train", outputs=("encoder/",)))  # its own: no flag needed


def test_output_must_be_given_and_be_a_folder(tmp_path):
    with pytest.raises(ConfigError, match="needs an output folder"):
        check_output(make_run(""))
    (tmp_path / "afile").write_text("")
    with pytest.raises(DataError, match="is a file, not a folder"):
        check_output(make_run(tmp_path / "afile"))


def test_a_corrupt_manifest_is_a_clear_error(tmp_path):
    (tmp_path / MANIFEST).write_text('{"format": "latentaudit-output-fol')
    with pytest.raises(DataError, match="manifest .* cannot be read"):
        check_output(make_run(tmp_path))
    (tmp_path / MANIFEST).write_text('{"a": 1}')
    with pytest.raises(DataError, match="is not a latentaudit output manifest"):
        check_output(make_run(tmp_path))


def test_a_killed_runs_files_are_listed_by_the_next_run(tmp_path):
    out = tmp_path / "out"
    run = make_run(out)
    open_output(run)  # ... and the process dies before close_output
    (out / "embeddings").mkdir()
    (out / "embeddings" / "z.npy").write_bytes(b"z")
    manifest = read_manifest(out)
    assert manifest["pending"]["command"] == "audit"
    assert "embeddings/z.npy" not in manifest["files"]
    again = make_run(out)
    open_output(again)
    manifest = read_manifest(out)
    assert manifest["files"]["embeddings/z.npy"] == "audit"
    assert [r["status"] for r in manifest["runs"]] == ["interrupted", "running"]


def test_a_dead_writers_temporary_files_are_removed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    dead = int(child.stdout)
    with atomic_path(out / "x") as tmp:
        stale = tmp.with_name(tmp.name.replace(f"-{os.getpid()}-", f"-{dead}-"))
        live = tmp
        for path in (stale, live):
            path.write_text("partial")
        users = out / f"mine{TEMPORARY_SUFFIX}"
        users.write_text("not ours")
        assert remove_stale_temporaries(out) == [stale]
        assert live.exists() and users.exists() and not stale.exists()
        live.write_text("done")
    assert (out / "x").read_text() == "done"
    assert sorted(p.name for p in out.iterdir()) == ["mine" + TEMPORARY_SUFFIX, "x"]


def test_an_error_inside_an_atomic_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "a.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_the_manifest_is_json_listing_what_was_made(embeddings, tmp_path, capsys):
    out = tmp_path / "out"
    assert audit(capsys, embeddings, out)[0] == EXIT_OK
    document = json.loads((out / MANIFEST).read_text())
    assert document["format"] == "latentaudit-output-folder"
    assert document["runs"][0]["command_line"].startswith("latentaudit audit")
