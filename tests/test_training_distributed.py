"""Tests of data-parallel training under torchrun: 2 CPU processes (gloo) equal 1 process
with the same global batch, and a run saved by 2 processes resumes in 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from latentaudit.data import ArrayDataset
from latentaudit.encoders import BetaVAEEncoder
from latentaudit.training import GlobalBatchSampler, batch_randn, load_checkpoint, train

HERE = Path(__file__).resolve()
VAE_RUN = dict(batch_size=8, grad_accum_steps=2, lr=3e-3, warmup_steps=2, ema_decay=0.9,
               log_every=1, checkpoint_every=3, random_state=5, verbose=False)
GAN_RUN = dict(batch_size=8, lr=2e-3, ema_decay=0.9, log_every=1, random_state=5,
               verbose=False)
TOLERANCE = 1e-5


def _images():
    rng = np.random.default_rng(0)
    return ArrayDataset(rng.uniform(-1, 1, (24, 1, 16, 16)).astype("float32"))


def _vae():
    # The default group norm: with 4 and 8 channels one channel per group, which removes a
    # conv bias; the model has none there (a bias whose gradient is rounding noise, which
    # Adam scales up to steps of the size of lr, made 2 processes differ from 1 by ~lr).
    torch.manual_seed(0)
    return BetaVAEEncoder(image_size=16, channels=(4, 8), latent_dim=4, beta=1.0,
                          hessian_weight=0.5, hessian_warmup_steps=0,
                          hessian_reduction="mean")  # a max over the batch is per process


def _gan():
    from test_training_steps import ToyGAN

    torch.manual_seed(0)
    model = ToyGAN()
    model.D[2].p = 0.0  # dropout draws per process from the global generator
    return model


def _points():
    from test_training_steps import _points

    return _points(32)


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def _distributed_runs(out: Path) -> None:
    """What each of the 2 processes runs (see __main__)."""
    vae = _vae()
    history = train(vae, _images(), max_steps=3, checkpoint_dir=out / "vae", **VAE_RUN)
    gan = _gan()
    train(gan, _points(), max_steps=4, **GAN_RUN)
    if int(os.environ["RANK"]) == 0:
        torch.save({"vae": vae.state_dict(), "gan": gan.state_dict(),
                    "loss": history["loss"].tolist()}, out / "two.pt")
    # every process drew the same numbers for the global batch, each kept its rows
    g = torch.Generator().manual_seed(1)
    torch.save(batch_randn((3, 2), generator=g), out / f"draw{os.environ['RANK']}.pt")


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(HERE.parents[1] / "src"), str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", str(HERE), str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_two_processes_train_a_beta_vae_as_one(two_processes):
    two = torch.load(two_processes / "two.pt", weights_only=True)
    one = _vae()
    history = train(one, _images(), max_steps=3, **VAE_RUN)
    assert _max_diff(two["vae"], one.state_dict()) < TOLERANCE
    np.testing.assert_allclose(two["loss"], history["loss"], rtol=1e-5)
    ckpt = load_checkpoint(two_processes / "vae")
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2


def test_two_processes_train_a_two_optimizer_model_as_one(two_processes):
    two = torch.load(two_processes / "two.pt", weights_only=True)
    one = _gan()
    train(one, _points(), max_steps=4, **GAN_RUN)
    assert _max_diff(two["gan"], one.state_dict()) < TOLERANCE


def test_a_run_of_two_processes_resumes_in_one(two_processes, tmp_path):
    import shutil

    shutil.copytree(two_processes / "vae", tmp_path / "vae")
    resumed = _vae()
    history = train(resumed, _images(), max_steps=6, checkpoint_dir=tmp_path / "vae",
                    resume=True, **VAE_RUN)
    uninterrupted = _vae()
    reference = train(uninterrupted, _images(), max_steps=6, **VAE_RUN)
    assert list(history["step"]) == list(range(1, 7))
    assert _max_diff(resumed.state_dict(), uninterrupted.state_dict()) < TOLERANCE
    np.testing.assert_allclose(history["loss"], reference["loss"], rtol=1e-5)


def test_batch_draws_are_the_slices_of_one_draw(two_processes):
    whole = torch.randn((6, 2), generator=torch.Generator().manual_seed(1))
    parts = [torch.load(two_processes / f"draw{r}.pt", weights_only=True) for r in (0, 1)]
    assert torch.equal(torch.cat(parts), whole)


def test_global_batches_do_not_depend_on_the_number_of_processes():
    one = iter(GlobalBatchSampler(20, 6, seed=3, start=2))
    parts = [iter(GlobalBatchSampler(20, 6, seed=3, start=2, rank=r, world_size=3))
             for r in range(3)]
    for _ in range(7):  # across epochs
        assert next(one) == sum((next(p) for p in parts), [])
    with pytest.raises(Exception, match="divisible"):
        GlobalBatchSampler(20, 7, seed=0, world_size=2)


if __name__ == "__main__":  # one process of the torchrun launch
    _distributed_runs(Path(sys.argv[1]))
