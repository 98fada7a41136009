"""Tests of the training loop's own-step path (several optimizers, e.g. a GAN), its
checkpoints and exact resume after a kill, and the TrainingConfig."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from latentaudit.errors import ConfigError, InputTypeError
from latentaudit.training import (
    StepContext,
    TrainingConfig,
    batch_randn,
    load_checkpoint,
    train,
)


class ToyGAN(nn.Module):
    """A two-optimizer GAN on 2-D points: non-saturating loss, lazy R1 every 2nd step
    (double backward), dropout in D (PyTorch's global generator) and noise from the run's
    generator; the loop keeps the EMA of G only."""

    ema_module = "G"

    def __init__(self):
        super().__init__()
        self.G = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
        self.D = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Dropout(0.25),
                               nn.Linear(16, 1))

    def configure_optimizers(self, config):
        return {"D": torch.optim.Adam(self.D.parameters(), lr=config.lr, betas=(0.0, 0.99)),
                "G": torch.optim.Adam(self.G.parameters(), lr=config.lr, betas=(0.0, 0.99))}

    def training_step(self, batch, step, ctx: StepContext):
        real = batch[0]
        noise = batch_randn((len(real), 4), generator=ctx.generator)
        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        with ctx.autocast():
            d_loss = (F.softplus(self.D(self.G(noise))) + F.softplus(-self.D(real))).mean()
        ctx.backward(d_loss)
        if step % 2 == 0:  # lazy R1 on real points
            real = real.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.D(real).sum(), real, create_graph=True)
            ctx.backward(grad.pow(2).sum(1).mean() * 2.0)
        ctx.step("D")
        if os.environ.get("LA_TEST_KILL_AT") == str(step):
            os.kill(os.getpid(), signal.SIGKILL)  # mid-step: D stepped, G not
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        noise = batch_randn((len(real), 4), generator=ctx.generator)
        with ctx.autocast():
            g_loss = F.softplus(-self.D(self.G(noise))).mean()
        ctx.backward(g_loss)
        ctx.step("G")
        return {"loss": g_loss.item(), "d_loss": d_loss.item()}


def _points(n=64, seed=0):
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi, n)
    return TensorDataset(torch.tensor(np.stack([np.cos(angle), np.sin(angle)], 1),
                                      dtype=torch.float32))


GAN_RUN = dict(max_steps=8, batch_size=8, lr=2e-3, ema_decay=0.9, checkpoint_every=1,
               log_every=1, verbose=False)


def _gan(seed):
    torch.manual_seed(seed)
    return ToyGAN()


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_optimizers_ema_of_the_generator_and_what_the_checkpoint_holds(tmp_path):
    model = _gan(0)
    d_before = _state(model.D)
    history = train(model, _points(), checkpoint_dir=tmp_path, use_ema_weights=False,
                    **GAN_RUN)
    assert list(history["step"]) == list(range(1, 9))
    assert {"loss", "d_loss", "lr/D", "lr/G", "grad_norm/D", "grad_norm/G"} <= set(history)
    assert not _equal(d_before, _state(model.D))  # D was trained by its own optimizer
    ckpt = load_checkpoint(tmp_path)
    assert set(ckpt["optimizers"]) == {"D", "G"} and ckpt["ema_module"] == "G"
    assert set(ckpt["ema"]) == {n for n, _ in model.G.named_parameters()}
    assert set(ckpt["generators"]) == {"loss"} and len(ckpt["rng"]) == 1
    # the EMA is of G's weights and differs from them
    raw = dict(model.G.named_parameters())
    assert any(not torch.equal(ckpt["ema"][n], raw[n].detach()) for n in raw)


def test_gan_killed_in_a_subprocess_resumes_bit_identical(tmp_path):
    reference = _gan(0)
    train(reference, _points(), **GAN_RUN)

    env = dict(os.environ, LA_TEST_KILL_AT="5", PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, __file__, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert load_checkpoint(tmp_path)["step"] == 5  # the last step that finished
    resumed = _gan(99)  # other initial weights: everything must come from the checkpoint
    train(resumed, _points(), checkpoint_dir=tmp_path, resume=True, **GAN_RUN)
    assert _equal(_state(reference), _state(resumed))


def test_gan_checkpoint_of_a_finished_run_cannot_be_resumed_to_fewer_steps(tmp_path):
    train(_gan(0), _points(), checkpoint_dir=tmp_path, **{**GAN_RUN, "max_steps": 4})
    with pytest.raises(ConfigError, match="past max_steps=2"):
        train(_gan(0), _points(), checkpoint_dir=tmp_path, resume=True,
              **{**GAN_RUN, "max_steps": 2})


def test_own_step_problems_are_named():
    class NoOptimizers(nn.Module):
        def training_step(self, batch, step, ctx):
            return {}

    with pytest.raises(InputTypeError, match="configure_optimizers"):
        train(NoOptimizers(), _points(), max_steps=1, verbose=False)
    with pytest.raises(ConfigError, match="grad_accum_steps"):
        train(_gan(0), _points(), max_steps=1, grad_accum_steps=2, verbose=False)
    with pytest.raises(ConfigError, match="validation"):
        train(_gan(0), _points(), max_steps=1, validation=0.25, verbose=False)

    class Bad(ToyGAN):
        def configure_optimizers(self, config):
            return {"G": "adam"}

    with pytest.raises(InputTypeError, match="Optimizer"):
        train(Bad(), _points(), max_steps=1, verbose=False)


def test_a_model_scheduler_is_stepped_and_saved(tmp_path):
    class Scheduled(ToyGAN):
        def configure_optimizers(self, config):
            optimizers = super().configure_optimizers(config)
            decay = torch.optim.lr_scheduler.StepLR(optimizers["G"], step_size=2, gamma=0.5)
            return {"D": optimizers["D"], "G": (optimizers["G"], decay)}

    torch.manual_seed(0)
    history = train(Scheduled(), _points(), checkpoint_dir=tmp_path,
                    **{**GAN_RUN, "max_steps": 4})
    # the loop's schedule (constant) for D, the model's own for G
    assert history["lr/D"].tolist() == pytest.approx([2e-3] * 4)
    assert history["lr/G"].tolist() == pytest.approx([2e-3, 2e-3, 1e-3, 1e-3])
    assert set(load_checkpoint(tmp_path)["schedulers"]) == {"G"}


# -- TrainingConfig --------------------------------------------------------------------
@pytest.mark.parametrize("field, value", [
    ("max_steps", 2.9), ("max_steps", "2"), ("max_steps", True), ("batch_size", 8.5),
    ("grad_accum_steps", 0), ("lr", -1.0), ("lr", float("nan")), ("lr", "1e-3"),
    ("ema_decay", 1.0), ("betas", (0.9,)), ("use_ema_weights", 1), ("random_state", -1),
    ("validation", True), ("checkpoint_every", 1.0), ("time_limit", 0),
    ("callbacks", print)])
def test_config_refuses_wrong_types_instead_of_coercing(field, value):
    options = {"max_steps": 3, field: value}
    with pytest.raises(ConfigError, match=field):
        TrainingConfig(**options)
    with pytest.raises(ConfigError, match=field):
        train(nn.Linear(1, 1), _points(), **options)


def test_config_builds_and_overrides():
    config = TrainingConfig(max_steps=5, lr=1e-3)
    assert config.replace(lr=np.float32(0.5)).lr == 0.5
    assert isinstance(TrainingConfig(max_steps=np.int64(4)).max_steps, int)
    assert config.plain()["betas"] == [0.9, 0.999]
    with pytest.raises(ConfigError, match="did you mean 'ema_decay'"):
        TrainingConfig.build(config, ema_decy=0.9)
    with pytest.raises(ConfigError, match="max_steps is needed"):
        TrainingConfig.build(lr=1.0)
    # train(model, data, config, **options): the options override the config
    history = train(_gan(0), _points(), TrainingConfig(max_steps=2, verbose=False),
                    batch_size=4, log_every=1)
    assert list(history["step"]) == [1, 2]


if __name__ == "__main__":  # the subprocess of the kill test
    train(_gan(0), _points(), checkpoint_dir=sys.argv[1], **GAN_RUN)
