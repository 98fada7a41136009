"""Tests of latentaudit.training: the shared training loop."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from latentaudit.data import ArrayDataset
from latentaudit.errors import CheckpointError, ConfigError, InputTypeError, TrainingError
from latentaudit.training import CHECKPOINT_NAME, load_checkpoint, train


class NoisyNet(nn.Module):
    """A small conv net whose loss draws from every global generator (torch, NumPy,
    Python) and uses dropout, so an inexact resume shows up in the weights."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(4, 1)

    def loss(self, batch):
        x = batch["image"]
        noise = torch.randn_like(x) * 0.1
        h = self.drop(torch.relu(self.conv(x + noise))).mean(dim=(2, 3))
        target = x.mean(dim=(1, 2, 3))[:, None]
        # The global NumPy generator on purpose: the loop must save and restore it.
        jitter = float(np.random.normal()) * 1e-3 + random.random() * 1e-3  # noqa: NPY002
        loss = ((self.head(h) - target) ** 2).mean() + jitter
        return loss, {"jitter": jitter}


class PlainNet(nn.Module):
    """Deterministic loss (no randomness), for comparisons of gradients."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(16, 1)

    def loss(self, batch):
        x = batch["image"].flatten(1)
        return ((self.lin(x) - x.mean(1, keepdim=True)) ** 2).mean()


def _dataset(n=20, size=4, seed=0):
    images = np.random.default_rng(seed).uniform(-1, 1, (n, 1, size, size)).astype("float32")
    return ArrayDataset(images)


def _net(seed, cls=NoisyNet):
    torch.manual_seed(seed)
    return cls()


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


RUN = dict(max_steps=10, batch_size=4, lr=1e-2, lr_schedule="cosine", warmup_steps=3,
           ema_decay=0.8, validation=0.2, val_every=3, grad_accum_steps=2, log_every=1,
           checkpoint_every=2, verbose=False)


class _Interrupt(Exception):
    pass


def _stop_at(step_to_stop):
    def callback(step, logs):
        if step == step_to_stop:
            raise _Interrupt
    return callback


def test_loss_goes_down():
    x = torch.linspace(-1, 1, 64)[:, None]

    class Line(nn.Module):
        def __init__(self):
            super().__init__()
            self.line = nn.Linear(1, 1)

        def loss(self, batch):
            xb, yb = batch
            return torch.mean((self.line(xb) - yb) ** 2)

    torch.manual_seed(0)
    model = Line()
    history = train(model, TensorDataset(x, 3 * x - 1), max_steps=300, batch_size=16, lr=0.05,
                    verbose=False)
    assert history["loss"].iloc[-1] < 1e-3 < history["loss"].iloc[0]
    assert model.line.weight.item() == pytest.approx(3.0, abs=0.05)
    assert history.attrs["stop_reason"] == "max_steps"


def test_resume_after_interruption_is_exact(tmp_path):
    data = _dataset()
    reference = _net(0)
    full = train(reference, data, checkpoint_dir=tmp_path / "full", **RUN)

    interrupted = _net(0)
    with pytest.raises(_Interrupt):
        train(interrupted, data, checkpoint_dir=tmp_path / "cut", callbacks=[_stop_at(4)],
              **RUN)
    assert load_checkpoint(tmp_path / "cut")["step"] == 4
    # A model with other initial weights: everything must come from the checkpoint.
    resumed = _net(123)
    rest = train(resumed, data, checkpoint_dir=tmp_path / "cut", resume=True, **RUN)

    assert _same_weights(reference, resumed)
    cols = [c for c in full.columns if c != "images_per_s"]
    assert full[cols].equals(rest[cols])
    assert list(rest["step"]) == list(range(1, 11))
    # The raw (non-EMA) weights of both checkpoints agree too.
    a = load_checkpoint(tmp_path / "full")["model"]
    b = load_checkpoint(tmp_path / "cut")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_continues_to_more_steps(tmp_path):
    data = _dataset()
    options = dict(batch_size=4, lr=1e-2, ema_decay=0.9, verbose=False, checkpoint_every=3)
    reference = _net(0)
    train(reference, data, max_steps=9, **options)
    split = _net(0)
    train(split, data, max_steps=5, checkpoint_dir=tmp_path, **options)
    resumed = _net(7)
    train(resumed, data, max_steps=9, checkpoint_dir=tmp_path, resume=True, **options)
    assert _same_weights(reference, resumed)
    assert not _same_weights(reference, split)


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    data = _dataset()
    a, b = _net(0), _net(0)
    train(a, data, max_steps=3, batch_size=4, verbose=False)
    train(b, data, max_steps=3, batch_size=4, verbose=False, checkpoint_dir=tmp_path,
          resume=True)
    assert _same_weights(a, b)
    assert (tmp_path / CHECKPOINT_NAME).is_file()


def test_resume_rejects_changed_data_order(tmp_path):
    data = _dataset()
    train(_net(0), data, max_steps=2, batch_size=4, checkpoint_dir=tmp_path, verbose=False)
    with pytest.raises(ConfigError, match="batch_size=4"):
        train(_net(0), data, max_steps=4, batch_size=5, checkpoint_dir=tmp_path, resume=True,
              verbose=False)
    with pytest.raises(ConfigError, match="random_state"):
        train(_net(0), data, max_steps=4, batch_size=4, checkpoint_dir=tmp_path, resume=True,
              random_state=1, verbose=False)


def test_same_seed_same_result_and_caller_rng_untouched():
    data = _dataset()
    a, b = _net(0), _net(0)
    torch.manual_seed(42)
    np.random.seed(42)  # noqa: NPY002
    np_state = np.random.get_state
    before = (torch.get_rng_state(), np_state()[1].copy(), random.getstate())
    train(a, data, max_steps=4, batch_size=4, verbose=False, random_state=3)
    train(b, data, max_steps=4, batch_size=4, verbose=False, random_state=3)
    assert _same_weights(a, b)
    assert torch.equal(before[0], torch.get_rng_state())
    assert np.array_equal(before[1], np_state()[1])
    assert before[2] == random.getstate()
    c = _net(0)
    train(c, data, max_steps=4, batch_size=4, verbose=False, random_state=4)
    assert not _same_weights(a, c)


class ExplodingNet(PlainNet):
    """Its loss becomes NaN from the 7th call on."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def loss(self, batch):
        self.calls += 1
        loss = super().loss(batch)
        return loss * math.nan if self.calls >= 7 else loss


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    model = _net(0, ExplodingNet)
    with pytest.raises(TrainingError) as info:
        train(model, _dataset(), max_steps=20, batch_size=4, checkpoint_every=2,
              checkpoint_dir=tmp_path, verbose=False)
    message = str(info.value)
    assert "nan" in message and "step 7" in message
    assert "step 6" in message and str(tmp_path) in message
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["step"] == 6
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    # The model holds the weights of step 6, which the checkpoint saved.
    assert all(torch.equal(v, ckpt["model"][k]) for k, v in model.state_dict().items())
    assert not list(tmp_path.glob("*.tmp*"))


def test_nan_loss_without_checkpoint_dir_says_so():
    with pytest.raises(TrainingError, match="checkpoint_dir=None"):
        train(_net(0, ExplodingNet), _dataset(), max_steps=20, batch_size=4, verbose=False)


def test_checkpoint_is_plain_data(tmp_path):
    train(_net(0), _dataset(), max_steps=2, batch_size=4, ema_decay=0.9,
          checkpoint_dir=tmp_path, verbose=False)
    path = tmp_path / CHECKPOINT_NAME
    ckpt = torch.load(path, weights_only=True)  # would fail on pickled code
    assert ckpt["step"] == 2 and ckpt["ema"] is not None
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_NAME]


def test_corrupt_checkpoint_is_named(tmp_path):
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=CHECKPOINT_NAME):
        train(_net(0), _dataset(), max_steps=2, batch_size=4, checkpoint_dir=tmp_path,
              resume=True, verbose=False)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_ema_weights_are_loaded_at_the_end(tmp_path):
    model = _net(0, PlainNet)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, _dataset(), max_steps=1, batch_size=4, lr=0.1, ema_decay=0.75,
          checkpoint_dir=tmp_path, verbose=False)
    raw = load_checkpoint(tmp_path)["model"]
    for k, v in model.state_dict().items():
        expected = 0.75 * start[k] + 0.25 * raw[k]
        assert torch.allclose(v, expected, atol=1e-6)
        assert not torch.equal(v, raw[k])


def test_the_default_optimizer_is_fused_adamw_on_the_cpu(monkeypatch):
    """docs/benchmarks.md: the training loop's default optimizer is AdamW with
    ``fused=True`` (one kernel for all parameters) on CPUs and GPUs; weight decay spares
    the vectors (biases)."""
    made = []
    adamw = torch.optim.AdamW

    def recording(groups, **options):
        made.append((groups, options))
        return adamw(groups, **options)

    monkeypatch.setattr(torch.optim, "AdamW", recording)
    model = _net(0, PlainNet)
    train(model, _dataset(), max_steps=1, batch_size=4, verbose=False)
    (groups, options), = made
    assert options["fused"] is True
    assert [[tuple(p.shape) for p in g["params"]] for g in groups] == [[(1, 16)], [(1,)]]
    assert groups[1]["weight_decay"] == 0.0


def test_gradient_accumulation_matches_large_batch():
    data = _dataset(n=16)
    a, b = _net(0, PlainNet), _net(0, PlainNet)
    train(a, data, max_steps=3, batch_size=8, lr=1e-2, verbose=False)
    train(b, data, max_steps=3, batch_size=4, grad_accum_steps=2, lr=1e-2, verbose=False)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.allclose(va, vb, atol=1e-6), k


def test_learning_rate_schedule():
    history = train(_net(0, PlainNet), _dataset(), max_steps=10, batch_size=4, lr=1.0,
                    warmup_steps=4, lr_schedule="cosine", min_lr_ratio=0.1, log_every=1,
                    verbose=False)
    lr = history["lr"].to_numpy()
    assert np.allclose(lr[:4], [0.25, 0.5, 0.75, 1.0])
    # Cosine from 1 to 0.1 over steps 4..9 of 10.
    progress = (np.arange(4, 10) - 4) / 6
    assert np.allclose(lr[4:], 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * progress)))
    const = train(_net(0, PlainNet), _dataset(), max_steps=5, batch_size=4, lr=0.5,
                  log_every=1, verbose=False)
    assert np.allclose(const["lr"], 0.5)


def test_history_validation_and_logs(tmp_path):
    history = train(_net(0), _dataset(), max_steps=6, batch_size=4, validation=0.25,
                    val_every=3, log_every=2, verbose=False)
    assert list(history["step"]) == [2, 3, 4, 6]
    assert history["val_loss"].notna().tolist() == [False, True, False, True]
    assert {"loss", "lr", "grad_norm", "images_per_s", "jitter"} <= set(history.columns)
    assert (history["images_per_s"] > 0).all()

    separate = train(_net(0), _dataset(), max_steps=4, batch_size=4,
                     validation=_dataset(n=6, seed=1), val_every=2, verbose=False)
    assert separate["val_loss"].notna().sum() == 2


def test_validation_loss_is_reproducible_and_uses_eval_mode():
    seen = []

    class Probe(PlainNet):
        def loss(self, batch):
            if not torch.is_grad_enabled():
                seen.append(self.training)
            return super().loss(batch)

    a = train(_net(0, Probe), _dataset(), max_steps=2, batch_size=4, validation=0.25,
              verbose=False)
    b = train(_net(0, Probe), _dataset(), max_steps=2, batch_size=4, validation=0.25,
              verbose=False)
    assert a["val_loss"].iloc[-1] == b["val_loss"].iloc[-1]
    assert seen and not any(seen)


def test_time_limit_stops_cleanly(tmp_path):
    history = train(_net(0), _dataset(), max_steps=10_000, batch_size=4, time_limit=0.2,
                    checkpoint_dir=tmp_path, verbose=False)
    assert history.attrs["stop_reason"] == "time_limit"
    assert load_checkpoint(tmp_path)["step"] == history["step"].iloc[-1] < 10_000


def test_set_training_step_is_called():
    steps = []

    class Stepper(PlainNet):
        def set_training_step(self, step):
            steps.append(step)

    train(_net(0, Stepper), _dataset(), max_steps=4, batch_size=4, verbose=False)
    assert steps == [0, 1, 2, 3]


def test_channels_last_gives_the_same_result():
    # Adam turns rounding differences of near-zero gradients into full-size steps, so the
    # losses are compared rather than the weights; the net has no dropout, whose mask
    # would follow the memory layout.
    class ConvNet(NoisyNet):
        def loss(self, batch):
            h = torch.relu(self.conv(batch["image"])).mean(dim=(2, 3))
            return ((self.head(h) - 0.5) ** 2).mean()

    a, b = _net(0, ConvNet), _net(0, ConvNet)
    ha = train(a, _dataset(), max_steps=3, batch_size=4, channels_last=True, log_every=1,
               verbose=False)
    hb = train(b, _dataset(), max_steps=3, batch_size=4, channels_last=False, log_every=1,
               verbose=False)
    assert np.allclose(ha["loss"], hb["loss"], rtol=1e-4)
    assert a.conv.weight.is_contiguous()  # back to the default layout after training


def test_auto_channels_last_follows_the_models_preference():
    class ConvNet(NoisyNet):
        def loss(self, batch):
            h = self.conv(batch["image"])  # 4 channels: the layouts differ
            layouts.append(h.is_contiguous())
            h = torch.relu(h).mean(dim=(2, 3))
            return ((self.head(h) - 0.5) ** 2).mean()

    class ContiguousNet(ConvNet):
        channels_last_on_cpu = False

    for cls, contiguous in ((ConvNet, False), (ContiguousNet, True)):
        layouts = []
        train(_net(0, cls), _dataset(), max_steps=2, batch_size=4, verbose=False)
        assert layouts == [contiguous, contiguous], cls.__name__
    layouts = []  # an explicit choice wins over the model's preference
    train(_net(0, ContiguousNet), _dataset(), max_steps=1, batch_size=4, channels_last=True,
          verbose=False)
    assert layouts == [False]


def test_invalid_inputs_are_rejected():
    data = _dataset()
    with pytest.raises(InputTypeError, match="loss"):
        train(nn.Linear(2, 2), data, max_steps=1, verbose=False)
    with pytest.raises(InputTypeError, match="DataLoader"):
        train(_net(0), DataLoader(data), max_steps=1, verbose=False)
    with pytest.raises(ConfigError, match="did you mean 'cosine'"):
        train(_net(0), data, max_steps=1, lr_schedule="cosin", verbose=False)
    with pytest.raises(ConfigError, match="max_steps"):
        train(_net(0), data, max_steps=0, verbose=False)
    with pytest.raises(ConfigError, match="checkpoint_dir"):
        train(_net(0), data, max_steps=1, resume=True, verbose=False)
    with pytest.raises(ConfigError, match="validation"):
        train(_net(0), data, max_steps=1, validation=1.5, verbose=False)
    with pytest.raises(ConfigError, match="fp16"):
        train(_net(0), data, max_steps=1, precision="fp16", device="cpu", verbose=False)

    class Vector(PlainNet):
        def loss(self, batch):
            return super().loss(batch) * torch.ones(3)

    with pytest.raises(InputTypeError, match="scalar"):
        train(_net(0, Vector), data, max_steps=1, verbose=False)


def test_bf16_autocast_on_cpu_runs():
    seen = []

    class Probe(PlainNet):
        def loss(self, batch):
            out = self.lin(batch["image"].flatten(1))
            seen.append(out.dtype)
            return (out.float() ** 2).mean()

    history = train(_net(0, Probe), _dataset(), max_steps=2, batch_size=4, precision="bf16",
                    verbose=False)
    assert seen == [torch.bfloat16, torch.bfloat16]
    assert np.isfinite(history["loss"]).all()
    # precision="auto" is float32 on the CPU.
    train(_net(0, Probe), _dataset(), max_steps=1, batch_size=4, verbose=False)
    assert seen[2:] == [torch.float32]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_runs():
    model = _net(0)
    history = train(model, _dataset(), max_steps=3, batch_size=4, device="cuda",
                    verbose=False)
    assert next(model.parameters()).device.type == "cuda"
    assert np.isfinite(history["loss"]).all()


@pytest.mark.slow
def test_compile_matches_eager():
    a, b = _net(0, PlainNet), _net(0, PlainNet)
    train(a, _dataset(), max_steps=3, batch_size=4, verbose=False)
    train(b, _dataset(), max_steps=3, batch_size=4, compile=True, verbose=False)
    for va, vb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.allclose(va, vb, atol=1e-5)


def _dae_fits(compile_, **options):
    from latentaudit import DAEEncoder

    torch.manual_seed(0)
    enc = DAEEncoder.from_preset("tiny", latent_ddim=False)
    seen = []
    loss = enc.loss

    def spy(batch, *, generator):
        seen.append(("forward" in vars(enc.unet), "forward" in vars(enc.semantic_encoder)))
        return loss(batch, generator=generator)

    enc.loss = spy
    enc.fit(_dataset(n=8, size=16), max_steps=2, batch_size=4, lr=1e-3, compile=compile_,
            verbose=False, **options)
    return enc, seen


def test_compile_compiles_the_named_modules_for_the_run_only(monkeypatch):
    # compile=True compiles the DAE's two networks (its compile_modules), not its loss,
    # and they run eagerly again after fit.  The eager backend keeps this test cheap (the
    # slow test below runs inductor); it gives the eager result.
    compiled = []
    eager_compile = torch.compile

    def compile_(fn, **kw):
        compiled.append(fn)
        return eager_compile(fn, backend="eager")

    monkeypatch.setattr(torch, "compile", compile_)
    plain, seen_plain = _dae_fits(False)
    fast, seen_fast = _dae_fits(True)
    assert seen_plain == [(False, False)] * 2 and seen_fast == [(True, True)] * 2
    assert sorted(type(fn.__self__).__name__ for fn in compiled) == [
        "ConditionalUNet", "SemanticEncoder"]
    assert "forward" not in vars(fast.unet) and "forward" not in vars(fast.semantic_encoder)
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(fast.state_dict()[key], value, atol=1e-6, rtol=1e-5)


def test_compile_needs_something_to_compile_on_the_custom_path():
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(16, 1)

        def configure_optimizers(self, config):
            return {"main": torch.optim.SGD(self.parameters(), lr=0.1)}

        def training_step(self, batch, step, ctx):
            return {"loss": 0.0}

    with pytest.raises(ConfigError, match="compile_modules"):
        train(Custom(), _dataset(), max_steps=1, batch_size=4, compile=True)
    Custom.compile_modules = ("missing",)
    with pytest.raises(ConfigError, match="not one of its submodules"):
        train(Custom(), _dataset(), max_steps=1, batch_size=4, compile=True)


@pytest.mark.slow
def test_compiled_dae_step_matches_eager():
    # inductor (a C++ compiler on the CPU) against eager, the same two steps
    plain, _ = _dae_fits(False)
    fast, _ = _dae_fits(True)
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(fast.state_dict()[key], value, atol=1e-4, rtol=1e-3)


def test_the_dataset_learns_each_epoch_before_its_batches(tmp_path):
    class Augmented(ArrayDataset):
        """Its items depend on the epoch (as random crops do)."""

        calls: list = []

        def set_epoch(self, epoch):
            self.calls.append(epoch)
            self.epoch = epoch

        def __getitem__(self, index):
            item = super().__getitem__(index)
            return {**item, "image": item["image"] + 0.1 * self.epoch}

    images = np.random.default_rng(0).uniform(-1, 1, (10, 1, 4, 4)).astype("float32")
    data = Augmented(images)
    train(_net(0, PlainNet), data, max_steps=5, batch_size=4, verbose=False)
    assert data.calls == [0, 1, 2]  # 2 batches per epoch
    reference = _net(0, PlainNet)
    train(reference, data, max_steps=5, batch_size=4, verbose=False)
    cut = _net(0, PlainNet)
    train(cut, data, max_steps=3, batch_size=4, checkpoint_dir=tmp_path, verbose=False)
    data.calls.clear()
    train(cut, data, max_steps=5, batch_size=4, checkpoint_dir=tmp_path, resume=True,
          verbose=False)
    assert data.calls == [1, 2]  # step 3 is the second batch of epoch 1
    assert _same_weights(reference, cut)


@pytest.mark.parametrize("family", ["dae", "beta_vae"])
def test_dae_and_beta_vae_resume_exactly(family, tmp_path):
    # The families on the default single-loss path (random timesteps, noise, dropout and
    # reparametrisation draws) resume to the uninterrupted run's weights and history.
    from latentaudit.encoders import build_encoder

    data = _dataset(n=12, size=16)
    run = dict(max_steps=4, batch_size=4, lr=1e-3, ema_decay=0.9, checkpoint_every=1,
               log_every=1, random_state=0, verbose=False)

    def encoder(seed):
        torch.manual_seed(seed)
        return build_encoder(family, (1, 16, 16), preset="tiny", latent_dim=4)

    reference = encoder(0).fit(data, **run)
    with pytest.raises(_Interrupt):
        encoder(0).fit(data, checkpoint_dir=tmp_path, callbacks=[_stop_at(2)], **run)
    resumed = encoder(5).fit(data, checkpoint_dir=tmp_path, resume=True, **run)
    assert _same_weights(reference, resumed)
    cols = [c for c in reference.history_.columns if c != "images_per_s"]
    assert reference.history_[cols].equals(resumed.history_[cols])
