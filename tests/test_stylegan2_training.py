"""Tests of StyleGAN2's training: losses, R1 and path length, the differentiable
augmentation and its adaptive probability, the GAN and inversion steps, and training
through the shared loop with an exact resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from latentaudit.encoders.stylegan2 import StyleGAN2Encoder
from latentaudit.encoders.stylegan2 import steps as steps_module
from latentaudit.encoders.stylegan2.augment import augment
from latentaudit.encoders.stylegan2.losses import (
    discriminator_loss,
    generator_loss,
    path_length_penalty,
    r1_penalty,
)
from latentaudit.encoders.stylegan2.steps import gan_step, optimizer_settings
from latentaudit.errors import ConfigError, TrainingError
from latentaudit.training import StepContext, TrainingConfig


def _tiny(seed=0, **options):
    torch.manual_seed(seed)
    return StyleGAN2Encoder(preset="tiny", **options)


class _Context(StepContext):
    """The training loop's step context for single steps outside the loop, recording
    which networks held gradients at every optimiser step."""

    def __init__(self, model, lr=0.002, seed=0, stage="gan"):
        config = TrainingConfig(max_steps=1000, lr=lr, betas=(0.0, 0.99), grad_clip=None)
        model._stage = stage
        try:
            optimizers = model.configure_optimizers(config)
        finally:
            model._stage = "gan"
        super().__init__(config, torch.device("cpu"), torch.Generator().manual_seed(seed),
                         optimizers, None, "fp32", False,
                         lambda what, value: TrainingError(f"{what} became {value}"))
        self.model = model
        self.calls = []

    def step(self, name):
        with_grad = {n.split(".")[0] for n, p in self.model.named_parameters()
                     if p.grad is not None}
        self.calls.append((name, with_grad))
        return super().step(name)


def test_logistic_losses():
    assert float(generator_loss(torch.zeros(4))) == pytest.approx(0.6931, abs=1e-4)
    assert float(discriminator_loss(torch.zeros(4), torch.zeros(4))) == pytest.approx(
        1.3863, abs=1e-4)
    # the non-saturating generator loss keeps a gradient where D is sure the fake is fake
    logits = torch.tensor([-20.0], requires_grad=True)
    generator_loss(logits).backward()
    assert float(logits.grad) == pytest.approx(-1.0, abs=1e-6)


def test_r1_penalty_of_a_known_discriminator():
    weight = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    penalty, logits = r1_penalty(lambda x: (x.flatten(1) ** 2 @ weight.flatten()),
                                 torch.ones(3, 1, 2, 2), gamma=4.0)
    # d/dx sum(w x^2) = 2 w x = 2 w at x = 1: |.|^2 = 4 * 14.25 = 57, times gamma / 2
    assert float(penalty.detach()) == pytest.approx(2.0 * 57.0)
    assert logits.shape == (3,) and not logits.requires_grad


def test_r1_touches_real_images_only():
    enc = _tiny(r1_interval=1, augment_p=0.0, ada_target=None)
    real = torch.rand(4, 1, 16, 16) * 2 - 1
    seen = []
    original = steps_module.r1_penalty

    def spy(discriminator, images, gamma):
        seen.append(images)
        return original(discriminator, images, gamma)

    steps_module.r1_penalty = spy
    try:
        ctx = _Context(enc)
        gan_step(enc, real, 0, ctx)
    finally:
        steps_module.r1_penalty = original
    assert len(seen) == 1 and torch.equal(seen[0], real)
    names = [name for name, _ in ctx.calls]
    assert names == ["discriminator", "discriminator", "generator"]
    # at the R1 step only the discriminator holds gradients: nothing reached the generator
    assert ctx.calls[1][1] == {"discriminator"}
    assert ctx.calls[0][1] == {"discriminator"} and ctx.calls[2][1] == {"generator"}


def test_lazy_regularisation_intervals_and_optimizer_settings():
    enc = _tiny(r1_interval=4, path_length_weight=2.0, path_length_interval=2)
    ctx = _Context(enc)
    for step in range(4):
        logs = gan_step(enc, torch.rand(4, 1, 16, 16), step, ctx)
        assert ("r1" in logs) == (step % 4 == 0)
        assert ("path_length" in logs) == (step % 2 == 0)
    assert float(enc.path_length_mean) > 0
    settings = optimizer_settings(0.002, (0.0, 0.99), 16)
    assert settings["lr"] == pytest.approx(0.002 * 16 / 17)
    assert settings["betas"][1] == pytest.approx(0.99 ** (16 / 17))
    adams = ctx.optimizers
    assert adams["discriminator"].param_groups[0]["lr"] == pytest.approx(0.002 * 4 / 5)
    assert adams["generator"].param_groups[0]["lr"] == pytest.approx(0.002 * 2 / 3)


def test_path_length_penalty_of_a_linear_generator():
    ws = torch.randn(3, 2, 4, requires_grad=True)
    images = 2.0 * ws.reshape(3, 1, 8, 1)
    mean = torch.tensor(0.0)
    penalty = path_length_penalty(images, ws, mean, generator=torch.Generator().manual_seed(0),
                                  decay=0.5)
    # J^T y = 2 y for this generator; y is the first draw of the generator, / sqrt(8)
    y = torch.randn(3, 1, 8, 1, generator=torch.Generator().manual_seed(0)) / 8 ** 0.5
    lengths = (2 * y).reshape(3, 2, 4).square().sum(2).mean(1).sqrt()
    assert float(mean) == pytest.approx(0.5 * float(lengths.mean()), rel=1e-5)
    assert float(penalty) == pytest.approx(float((lengths - mean).square().mean()), rel=1e-5)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_augment(spatial_dims):
    x = torch.rand(6, 2, *([8] * spatial_dims), requires_grad=True)
    assert augment(x, 0.0) is x
    gen = torch.Generator().manual_seed(0)
    y = augment(x, 1.0, generator=gen)
    assert y.shape == x.shape and not torch.allclose(y, x)
    again = augment(x, 1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y, again)
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="did you mean 'cutout'"):
        augment(x, 0.5, ("cutot",))


def test_translation_moves_whole_pixels_and_cutout_zeroes_a_box():
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 8, 8] = 1.0
    moved = augment(x, 1.0, ("translation",), generator=torch.Generator().manual_seed(1))
    assert torch.allclose(moved.sum(dim=(1, 2, 3)), torch.ones(64))  # one pixel, moved
    rows, cols = torch.nonzero(moved[:, 0], as_tuple=True)[1:]
    assert (rows - 8).abs().max() <= 2 and (cols - 8).abs().max() <= 2
    assert ((rows != 8) | (cols != 8)).any()
    ones = torch.ones(32, 1, 16, 16)
    cut = augment(ones, 1.0, ("cutout",), generator=torch.Generator().manual_seed(2))
    zeros = (cut == 0).sum(dim=(1, 2, 3))
    assert zeros.max() <= 64 and zeros.min() >= 16  # an 8x8 box, partly outside at edges


def test_augmentation_probability_adapts_to_the_discriminator():
    enc = _tiny(ada_target=0.6, ada_interval=1, ada_kimg=0.01)  # fast adaptation
    ctx = _Context(enc)
    steps_module._update_ada(enc, torch.full((8,), 5.0), 0, ctx)  # D sure reals are real
    assert float(enc.augment_p) == pytest.approx(0.8)
    steps_module._update_ada(enc, torch.full((8,), -5.0), 1, ctx)
    steps_module._update_ada(enc, torch.full((8,), -5.0), 2, ctx)
    assert float(enc.augment_p) == pytest.approx(0.0)
    fixed = _tiny(ada_target=None, augment_p=0.3)
    steps_module._update_ada(fixed, torch.full((8,), 5.0), 0, ctx)
    assert float(fixed.augment_p) == pytest.approx(0.3)


def test_gan_step_uses_only_the_context_generator():
    initial = _tiny(r1_interval=2, augment_p=0.5, ada_target=None).state_dict()
    initial = {k: v.clone() for k, v in initial.items()}

    def run(global_seed):
        enc = _tiny(r1_interval=2, augment_p=0.5, ada_target=None)
        enc.load_state_dict(initial)
        ctx = _Context(enc, seed=5)
        torch.manual_seed(global_seed)
        before = torch.get_rng_state()
        for step in range(3):
            gan_step(enc, torch.linspace(-1, 1, 4 * 256).reshape(4, 1, 16, 16), step, ctx)
        assert torch.equal(torch.get_rng_state(), before)  # the global generator untouched
        return enc.state_dict()

    a, b = run(0), run(99)
    assert all(torch.equal(a[k], b[k]) for k in a)


# -- training through the shared loop ----------------------------------------------------

FIT = dict(max_steps=6, inversion_steps=2, batch_size=4, checkpoint_every=2, log_every=1,
           random_state=0, verbose=False)


def _images(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, 1, 16, 16)).astype("float32")


def _fit(checkpoint_dir=None, resume=False, seed=0, **options):
    enc = _tiny(seed, r1_interval=2)
    return enc.fit(_images(), checkpoint_dir=checkpoint_dir, resume=resume,
                   **{**FIT, **options})


def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_fit_trains_the_gan_then_the_inverter(tmp_path):
    before = _tiny(0, r1_interval=2)
    enc = _fit(tmp_path)
    history = enc.history_
    assert list(history["stage"]) == ["gan"] * 4 + ["inversion"] * 2
    assert {"loss_g", "loss_d", "r1", "mse", "feature", "delta"} <= set(history)
    # Every row has a loss: the game's value (loss_d + loss_g), then the inverter's.
    assert np.isfinite(history["loss"]).all()
    gan = history[history["stage"] == "gan"]
    assert np.allclose(gan["loss"], gan["loss_d"] + gan["loss_g"])
    assert history.attrs["stop_reason"] == "max_steps"
    assert (tmp_path / "gan" / "checkpoint.pt").is_file()
    assert (tmp_path / "inversion" / "checkpoint.pt").is_file()
    changed = {name for name in ("generator", "discriminator", "inverter")
               if not _same(getattr(before, name), getattr(enc, name))}
    assert changed == {"generator", "discriminator", "inverter"}
    assert all(p.requires_grad for p in enc.parameters())
    assert float(enc.generator.mapping.w_avg.abs().sum()) > 0
    # the generator keeps the EMA of its weights: the GAN checkpoint's EMA, not its raw ones
    from latentaudit.training import load_checkpoint

    ckpt = load_checkpoint(tmp_path / "gan")
    assert ckpt["ema_module"] == "generator"
    params = dict(enc.generator.named_parameters())
    assert all(torch.equal(ckpt["ema"][n], params[n].detach()) for n in ckpt["ema"])
    with pytest.raises(ConfigError, match="inversion_steps"):
        _tiny().fit(_images(), max_steps=2, inversion_steps=3)


def test_fit_stops_at_the_time_limit_before_the_inverter():
    enc = _fit(time_limit=1e-3)
    assert enc.history_.attrs["stop_reason"] == "time_limit"
    assert set(enc.history_["stage"]) == {"gan"}


def _run_fit_in_a_fresh_process(*args):
    """Run this file's ``__main__`` (a fit) in a new interpreter: every run of the
    comparison below starts from the same process state, whatever other tests did to this
    one (thread pools, caches, global flags)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, __file__, *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)


def test_stylegan2_killed_in_a_subprocess_resumes_bit_identical(tmp_path):
    done = _run_fit_in_a_fresh_process(tmp_path / "reference", "full")
    assert done.returncode == 0, done.stderr[-2000:]
    done = _run_fit_in_a_fresh_process(tmp_path / "killed", "kill", 3)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    from latentaudit.training import load_checkpoint

    assert load_checkpoint(tmp_path / "killed" / "gan")["step"] == 2  # the last one written
    done = _run_fit_in_a_fresh_process(tmp_path / "killed", "resume")  # other initial weights
    assert done.returncode == 0, done.stderr[-2000:]
    reference = torch.load(tmp_path / "reference" / "state.pt", weights_only=True)
    resumed = torch.load(tmp_path / "killed" / "state.pt", weights_only=True)
    assert reference["state"].keys() == resumed["state"].keys()
    assert all(torch.equal(reference["state"][k], resumed["state"][k])
               for k in reference["state"])
    assert resumed["stages"] == ["gan"] * 4 + ["inversion"] * 2


if __name__ == "__main__":  # python this_file CHECKPOINT_DIR {full | kill STEP | resume}
    def _kill(step, logs):
        if step == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)

    torch.set_num_threads(1)
    folder, mode = Path(sys.argv[1]), sys.argv[2]
    if mode == "kill":
        _fit(folder, callbacks=[_kill])
    else:
        fitted = _fit(folder, resume=mode == "resume", seed=99 if mode == "resume" else 0)
        torch.save({"state": fitted.state_dict(), "stages": list(fitted.history_["stage"])},
                   folder / "state.pt")
