"""Tests of the command line on several processes: ``--nproc N`` launches torchrun (2 CPU
processes, gloo) and gives what one process gives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import latentaudit as la
from latentaudit.cli import EXIT_OK, main
from latentaudit.cli._command import commands
from latentaudit.cli._distributed import join
from latentaudit.errors import ConfigError

SRC = Path(__file__).resolve().parents[1] / "src"
TINY = ["--encoder", "betavae", "--size", "16", "--train-steps", "4", "--batch-size", "8",
        "--set", "encoder.channels=[4, 8]", "--set", "encoder.latent_dim=4",
        "--set", "train.lr=0.001", "--seed", "3", "-q"]


def _cli_in_two_processes(*argv):
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "latentaudit", *map(str, argv)], env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from test_cli import _write_study

    return _write_study(tmp_path_factory.mktemp("study") / "scans", n=15)


@pytest.mark.slow  # four CLI runs, two of them torchrun launches of 2 processes
def test_nproc_trains_and_embeds_as_one_process(study, tmp_path):
    scans, csv, _ = study
    data = ["--images", scans, "--metadata", csv]
    done = _cli_in_two_processes("train", *data, *TINY, "--nproc", "2",
                                 "--output", tmp_path / "two")
    assert done.returncode == 0, done.stderr[-3000:]
    assert main([str(a) for a in ("train", *data, *TINY, "--output", tmp_path / "one")]) \
        == EXIT_OK
    a = load_file(str(tmp_path / "one" / "encoder" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "encoder" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) < 1e-6
    # the other process wrote nothing of its own
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir())

    embed = ["embed", *data, "--size", "16", "--n-slices", "3", "--encoder",
             tmp_path / "one" / "encoder", "-q"]
    done = _cli_in_two_processes(*embed, "--nproc", "2", "--output", tmp_path / "emb2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert main([str(a) for a in (*embed, "--output", tmp_path / "emb1")]) == EXIT_OK
    one = la.Embeddings.load(tmp_path / "emb1" / "embeddings")
    two = la.Embeddings.load(tmp_path / "emb2" / "embeddings")
    assert list(one.ids) == list(two.ids) and len(one.ids) == 15
    # (one process here may use other thread counts than the two launched ones)
    np.testing.assert_allclose(np.asarray(one.z), np.asarray(two.z), rtol=0, atol=1e-6)


def test_only_train_and_embed_run_under_torchrun():
    config = {"device": "cpu"}
    with pytest.raises(ConfigError, match="one process"):
        join(commands()["audit"], config)
    assert commands()["train"].distributed and commands()["embed"].distributed
