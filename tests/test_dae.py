"""Tests of the Diffusion Autoencoder (tiny presets, CPU)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import latentaudit as la
from latentaudit.encoders.dae import (
    PRESETS,
    DAEEncoder,
    GaussianDiffusion,
    beta_schedule,
    ddim_timesteps,
    preset,
)
from latentaudit.encoders.dae.model import DEMO_WEIGHTS
from latentaudit.errors import ConfigError, InputShapeError, NotFittedError

#: Floor of the 3-D demo test: it measured 25.2 dB (seed 0; other initial weights gave
#: 33.9 and 38.6 dB at this budget); predicting the training mean volume gives 22.3 dB
#: on the same 4 volumes
PSNR_FLOOR_3D_DEMO = 23.0


def _blobs(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    """Smooth discs of random centre and radius, in [-1, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    images = []
    for _ in range(n):
        cx, cy = rng.uniform(0.3, 0.7, 2)
        r = rng.uniform(0.15, 0.35)
        images.append(np.tanh(3 * (r**2 - (xx - cx) ** 2 - (yy - cy) ** 2) / r**2))
    return np.asarray(images, dtype=np.float32)[:, None]


@pytest.fixture(scope="module")
def fitted():
    """A tiny DAE trained briefly on discs, so that its noise estimates are not trivial
    (an untrained DAE predicts zero noise: its output convolution starts at zero)."""
    torch.manual_seed(0)
    images = _blobs(64)
    enc = DAEEncoder.from_preset("tiny")
    enc.fit(images, max_steps=40, batch_size=16, lr=2e-3, ema_decay=None, verbose=False)
    return enc, images


# -- construction and presets -------------------------------------------------------------


def test_paper_presets_have_the_issue_values():
    for name, size in (("paper64", 64), ("paper256", 256)):
        cfg = preset(name)
        assert cfg.image_size == size and cfg.in_channels == 1
        assert cfg.base_channels == 64 and cfg.channel_mult == (1, 1, 2, 2)
        assert cfg.encoder_channel_mult == (1, 1, 2, 4, 4)
        assert cfg.attention_resolutions == (16,) and cfg.num_res_blocks == 2
        assert cfg.latent_dim == 512 and cfg.timesteps == 1000 and cfg.sample_steps == 20
    assert DAEEncoder.default_training["lr"] == 1e-4
    assert DAEEncoder.default_training["ema_decay"] == 0.999
    assert {"tiny", "tiny3d", "cpu64", "volume64"} <= set(PRESETS)
    assert preset("tiny3d").spatial_dims == 3 and preset("volume64").spatial_dims == 3


def test_paper64_parameter_count_matches_the_reference():
    # phizaz/diffae's BeatGANsAutoencConfig at the same settings (1 channel, 64x64) has
    # 16,579,073 parameters, 5,001,344 of them in the semantic encoder.
    enc = DAEEncoder.from_preset("paper64", latent_ddim=False)
    n = sum(p.numel() for p in enc.parameters())
    assert n == 16_579_073
    assert sum(p.numel() for p in enc.semantic_encoder.parameters()) == 5_001_344


def test_documented_parameter_counts():
    """The sizes docs/benchmarks.md and docs/scaling.md quote: ``paper256`` 70.8 M
    parameters with the latent DDIM (counted on the meta device, as plan_cohort.py does),
    ``cpu64`` (the demo model) 4.81 M and v-prediction, 3,527,905 without the latent DDIM
    (the size the reference is built at), ``tiny3d`` at 16^3 152,793."""
    def count(encoder):
        return sum(p.numel() for p in encoder.parameters())

    with torch.device("meta"):
        assert count(DAEEncoder.from_preset("paper256")) == 70_752_001
    cpu64 = DAEEncoder.from_preset("cpu64")
    assert count(cpu64) == 4_809_441 and cpu64.config.prediction == "v"
    assert count(DAEEncoder.from_preset("cpu64", latent_ddim=False)) == 3_527_905
    assert count(DAEEncoder.from_preset("tiny3d", image_size=16)) == 152_793


def test_cpu64_is_small_enough_to_ship():
    enc = DAEEncoder.from_preset("cpu64")
    n_bytes = 4 * sum(p.numel() for p in enc.parameters())
    assert n_bytes < 20e6


def test_bad_options_are_rejected_with_suggestions():
    with pytest.raises(ConfigError, match="did you mean 'paper64'"):
        preset("paper46")
    with pytest.raises(ConfigError, match="divisible"):
        DAEEncoder.from_preset("tiny", image_size=17)
    with pytest.raises(ConfigError, match="cosine"):
        DAEEncoder.from_preset("tiny", beta_schedule="cosin")
    with pytest.raises(ConfigError):
        DAEEncoder.from_preset("tiny", sample_steps=0)
    with pytest.raises(ConfigError, match="spatial_dims"):
        DAEEncoder(spatial_dims=4)


# -- shapes ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, shape", [("tiny", (3, 1, 16, 16)), ("tiny3d", (2, 1, 8, 8, 8))])
def test_shapes_2d_and_3d(name, shape):
    torch.manual_seed(0)
    enc = DAEEncoder.from_preset(name)
    x = torch.rand(shape) * 2 - 1
    loss = enc.loss({"image": x, "index": torch.arange(len(x))},
                    generator=torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    # Both halves learn from the one loss.
    assert enc.semantic_encoder.proj.weight.grad is not None
    assert enc.unet.out_conv.weight.grad.abs().sum() > 0
    z = enc.encode(x)
    assert z.shape == (len(x), enc.latent_dim)
    x_T = enc.invert(x, z, steps=3)
    assert x_T.shape == x.shape
    torch.testing.assert_close(enc.invert(x, steps=3), x_T)  # z_sem computed when not given
    out = enc.decode(z, x_T, steps=3)
    assert out.shape == x.shape and out.abs().max() <= 1
    assert enc.decode(z, steps=3, generator=torch.Generator().manual_seed(0)).shape == x.shape


def test_wrong_inputs_raise():
    enc = DAEEncoder.from_preset("tiny")
    with pytest.raises(InputShapeError, match="channel"):
        enc.encode(torch.zeros(2, 3, 16, 16))
    with pytest.raises(InputShapeError, match="size"):
        enc.encode(torch.zeros(2, 1, 32, 32))
    with pytest.raises(InputShapeError):
        enc.decode(torch.zeros(2, 5))
    with pytest.raises(InputShapeError, match="x_T"):
        enc.decode(torch.zeros(2, 16), torch.zeros(3, 1, 16, 16))
    with pytest.raises(InputShapeError, match="one row per image"):
        enc.invert(torch.zeros(2, 1, 16, 16), torch.zeros(3, 16))


def test_decode_without_a_generator_leaves_the_global_random_state_alone():
    enc = DAEEncoder.from_preset("tiny")
    z = torch.zeros(2, enc.latent_dim)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    first = enc.decode(z, steps=2)
    assert torch.equal(torch.get_rng_state(), before)
    # None is a fresh default generator: the same images every time
    assert torch.equal(enc.decode(z, steps=2), first)
    same = enc.decode(z, steps=2, generator=torch.Generator())
    assert torch.equal(same, first)


# -- diffusion ------------------------------------------------------------------------


def test_beta_schedules():
    linear = beta_schedule("linear", 1000)
    assert linear[0] == pytest.approx(1e-4) and linear[-1] == pytest.approx(0.02)
    cosine = beta_schedule("cosine", 1000)
    assert cosine.shape == (1000,) and (cosine > 0).all() and cosine.max() <= 0.999
    alpha_bar = np.cumprod(1 - cosine)
    assert (np.diff(alpha_bar) < 0).all() and alpha_bar[-1] < 1e-3
    assert list(ddim_timesteps(1000, 20)[[0, -1]]) == [0, 999]
    assert len(np.unique(ddim_timesteps(1000, 20))) == 20


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_prediction_targets_invert(prediction):
    diffusion = GaussianDiffusion(1000, "cosine", prediction)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 1, 8, 8, generator=g)
    noise = torch.randn(4, 1, 8, 8, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    x_t = diffusion.q_sample(x0, t, noise)
    # A perfect prediction of the target gives back the clean image and the noise.
    x0_hat, eps_hat = diffusion.split_prediction(x_t, t, diffusion.target(x0, t, noise))
    assert torch.allclose(eps_hat, noise, atol=1e-3)
    # (With noise prediction the clean image is noise / sqrt(alpha_bar) at t = T - 1,
    # where alpha_bar ~ 0: compare away from the ends.)
    assert torch.allclose(x0_hat[1:3], x0[1:3], atol=1e-3)


def test_ddim_is_exact_for_a_perfect_denoiser_of_one_image():
    # For data that is a single image, the ideal noise predictor is known in closed form;
    # its clean-image estimate is constant along every path, so DDIM inversion followed by
    # decoding is exact (up to float error) at any number of steps.
    diffusion = GaussianDiffusion(1000, "linear")
    target = torch.linspace(-0.9, 0.9, 64).reshape(1, 1, 8, 8)

    def ideal(x_t, t):
        a = diffusion.alpha_bar[t].float().reshape(-1, 1, 1, 1)
        return (x_t - a.sqrt() * target) / (1 - a).sqrt()

    x_T, bound = diffusion.ddim_invert(ideal, target, steps=5, return_bound=True)
    assert float(bound.max()) < 1e-5
    back = diffusion.ddim_sample(ideal, x_T, steps=5)
    assert torch.allclose(back, target, atol=1e-5)


def test_dropout_keeps_the_expected_fraction_and_mean():
    from latentaudit.encoders.dae.unet import dropout

    torch.manual_seed(0)
    x = torch.ones(200_000)
    y = dropout(x, 0.1)
    assert float((y == 0).float().mean()) == pytest.approx(0.1, abs=0.005)
    assert float(y.mean()) == pytest.approx(1.0, abs=0.01)


# -- the done-when tests ----------------------------------------------------------------


def test_ddim_inversion_then_decoding_reproduces_the_input(fitted):
    """Inversion is exact only as the steps shrink.  One step up and back down moves the
    image by (1 - sigma_{k-1}/sigma_k) * (change of the model's clean-image estimate), so
    for a non-expansive denoiser the error norm is at most the bound B that
    ``ddim_invert(return_bound=True)`` sums along the path (first order), and it falls as
    1/steps (DDIM is the Euler method of the probability-flow ODE)."""
    enc, images = fitted
    x = torch.from_numpy(images[:8])
    z = enc.encode(x)
    model = enc._denoiser(z)
    errors = {}
    for steps in (20, 40):
        with torch.no_grad():
            x_T, bound = enc.diffusion.ddim_invert(model, x, steps, return_bound=True)
            back = enc.diffusion.ddim_sample(model, x_T, steps)
        errors[steps] = (back - x).reshape(len(x), -1).double().norm(dim=1)
        assert (errors[steps] <= bound).all(), (steps, errors[steps], bound)
    # First-order convergence: twice the steps, about half the error.
    assert float((errors[40] / errors[20]).max()) < 0.65
    # At the default 20 steps the round trip is close: RMS error below 5% of the range.
    rms = errors[20] / math.sqrt(x[0].numel())
    assert float(rms.max()) < 0.1
    # The public API gives the same round trip.
    rec = enc.reconstruct(x, steps=20)
    assert torch.allclose((rec - x).reshape(len(x), -1).double().norm(dim=1), errors[20],
                          atol=1e-3)


def test_decode_with_a_fixed_generator_is_deterministic(fitted):
    enc, images = fitted
    z = enc.encode(images[:4])
    a = enc.decode(z, steps=5, generator=torch.Generator().manual_seed(7))
    b = enc.decode(z, steps=5, generator=torch.Generator().manual_seed(7))
    c = enc.decode(z, steps=5, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_interpolate_endpoints_are_the_reconstructions(fitted):
    enc, images = fitted
    x_a, x_b = torch.from_numpy(images[:2]), torch.from_numpy(images[2:4])
    out = enc.interpolate(x_a, x_b, [0.0, 0.5, 1.0], steps=10)
    assert out.shape == (2, 3, 1, 16, 16)
    torch.testing.assert_close(out[:, 0], enc.reconstruct(x_a, steps=10), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, 2], enc.reconstruct(x_b, steps=10), atol=1e-5, rtol=0)
    assert (out[:, 1] - out[:, 0]).abs().mean() > 1e-3
    single = enc.interpolate(x_a[0], x_b[0], [0.0, 1.0], steps=10)
    assert single.shape == (2, 1, 16, 16)


def test_save_load_round_trip(fitted, tmp_path):
    enc, images = fitted
    enc.save_pretrained(tmp_path / "dae")
    loaded = DAEEncoder.from_pretrained(tmp_path / "dae")
    assert loaded.config == enc.config and loaded.config_hash == enc.config_hash
    x = torch.from_numpy(images[:4])
    torch.testing.assert_close(loaded.encode(x), enc.encode(x), atol=0, rtol=0)
    torch.testing.assert_close(loaded.latent_mean, enc.latent_mean, atol=0, rtol=0)
    assert int(loaded.latent_count) == len(images)
    z = enc.encode(x)
    torch.testing.assert_close(
        loaded.decode(z, steps=4, generator=torch.Generator().manual_seed(1)),
        enc.decode(z, steps=4, generator=torch.Generator().manual_seed(1)), atol=0, rtol=0)
    same = la.encoders.load_pretrained(tmp_path / "dae")
    assert isinstance(same, DAEEncoder)


# -- latent statistics, manipulation, latent DDIM -----------------------------------------


def test_fit_stores_latent_statistics(fitted):
    enc, images = fitted
    z = enc.encode(images).double()
    assert int(enc.latent_count) == len(images)
    torch.testing.assert_close(enc.latent_mean.double(), z.mean(0), atol=1e-5, rtol=0)
    torch.testing.assert_close(enc.latent_std.double(), z.std(0), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(enc.denormalize(enc.normalize(z.float())), z.float())


def test_manipulate(fitted):
    enc, images = fitted
    x = torch.from_numpy(images[:2])
    direction = np.zeros(enc.latent_dim)
    direction[0] = 2.0
    # A zero step decodes the image with its own codes: the reconstruction.
    torch.testing.assert_close(enc.manipulate(x, direction, 0.0, steps=5),
                               enc.reconstruct(x, steps=5), atol=1e-5, rtol=0)
    moved = enc.manipulate(x, direction, 0.5, steps=5)
    assert moved.shape == x.shape and (moved - enc.reconstruct(x, steps=5)).abs().max() > 1e-3
    with pytest.raises(InputShapeError):
        enc.manipulate(x, np.ones(3), 0.5)
    with pytest.raises(NotFittedError):
        DAEEncoder.from_preset("tiny").manipulate(x, direction, 0.5)


def test_latent_ddim(fitted):
    enc, images = fitted
    with pytest.raises(NotFittedError, match="fit_latent"):
        DAEEncoder.from_preset("tiny").sample(2)
    enc.fit_latent(images, max_steps=20, batch_size=32, verbose=False)
    g = torch.Generator().manual_seed(0)
    out = enc.sample(3, steps=4, latent_steps=5, generator=g)
    assert out.shape == (3, 1, 16, 16) and torch.isfinite(out).all()
    with pytest.raises(ConfigError, match="latent_ddim=False"):
        DAEEncoder.from_preset("tiny", latent_ddim=False).fit_latent(images, max_steps=1)


@pytest.mark.parametrize(("name", "shape", "layout"), [
    ("tiny", (4, 1, 16, 16), torch.contiguous_format),
    ("tiny3d", (4, 1, 8, 8, 8), torch.channels_last_3d)])
def test_training_layout_on_the_cpu_is_the_faster_one(name, shape, layout):
    # 2-D trains contiguous, 3-D channels-last (measured, docs/benchmarks.md)
    enc = DAEEncoder.from_preset(name)
    seen = []
    weight = enc.unet.down.stages[0].block.in_conv.weight
    enc.fit(torch.zeros(shape), max_steps=1, batch_size=4, ema_decay=None, verbose=False,
            callbacks=[lambda done, info: seen.append(
                weight.is_contiguous(memory_format=layout))])
    assert seen == [True]
    assert weight.is_contiguous()  # back to the default layout after training


def test_v_prediction_trains_and_inverts():
    torch.manual_seed(0)
    images = _blobs(16)
    enc = DAEEncoder.from_preset("tiny", prediction="v", beta_schedule="cosine")
    enc.fit(images, max_steps=5, batch_size=8, lr=1e-3, verbose=False)
    x = torch.from_numpy(images[:2])
    rec = enc.reconstruct(x, steps=20)
    assert rec.shape == x.shape and torch.isfinite(rec).all()



def test_demo_weights_record_their_training_split():
    # The shipped weights were trained on the training rows of demo_split only; the
    # held-out subjects are written beside them, so every figure can leave them out.
    split = json.loads((DEMO_WEIGHTS / "split.json").read_text())
    cohort = la.datasets.load_demo_cohort()
    train_rows, held_out = la.datasets.demo_split(cohort.metadata)
    subjects = cohort.metadata["subject"].astype(str).to_numpy()
    assert split["name"] == la.datasets.DEMO_SPLIT_NAME
    assert split["train_subjects"] == subjects[train_rows].tolist()
    assert split["held_out_subjects"] == subjects[held_out].tolist()
    enc = DAEEncoder.from_pretrained("demo")
    # its latent statistics come from the training rows alone
    assert int(enc.latent_count) == len(train_rows)


def test_demo_weights_load_and_separate_the_planted_sites():
    enc = DAEEncoder.from_pretrained("demo")
    assert enc.config == preset("cpu64")
    assert int(enc.latent_ddim_trained) == 1
    cohort = la.datasets.load_demo_cohort()
    _, held_out = la.datasets.demo_split(cohort.metadata)
    sites = cohort.metadata["site"].to_numpy()[held_out]
    keep = np.isin(sites, ["A", "B", "C"])
    z = enc.encode(cohort.images[held_out][keep], batch_size=100).numpy()
    assert z.shape[1] == 512 and np.isfinite(z).all()
    # Sites B (shifted field of view) and C (head-rest) differ from the clean site A in
    # z_sem of held-out subjects: a nearest-centroid rule on half of them sorts the other
    # half.
    labels = sites[keep]
    fit, held = np.arange(len(z)) % 2 == 0, np.arange(len(z)) % 2 == 1
    centroids = {s: z[fit & (labels == s)].mean(0) for s in ("A", "B", "C")}
    names = np.array(list(centroids))
    dist = np.stack([np.linalg.norm(z[held] - c, axis=1) for c in centroids.values()], 1)
    accuracy = float((names[dist.argmin(1)] == labels[held]).mean())
    assert accuracy > 0.8


def test_demo_weights_decode_a_head_from_z_sem_alone():
    # Decoding z_sem with a random x_T gives an image of the same head, not noise: it is
    # close to the input and encodes back to nearly the same normalised z_sem.
    enc = DAEEncoder.from_pretrained("demo")
    images = la.datasets.load_demo_cohort().images[:6]
    z = enc.encode(images)
    decoded = enc.decode(z, steps=10, generator=torch.Generator().manual_seed(0)).numpy()
    psnr = 10 * np.log10(4.0 / np.mean((decoded - images) ** 2))
    assert psnr > 18.0
    again = enc.encode(decoded)
    norm = (z - enc.latent_mean) / enc.latent_std
    norm_again = (again - enc.latent_mean) / enc.latent_std
    same = torch.nn.functional.cosine_similarity(norm, norm_again).mean()
    other = torch.nn.functional.cosine_similarity(norm, norm.roll(1, 0)).mean()
    assert same > 0.85 and same > other + 0.3


def test_demo_weights_sample_heads_from_the_latent_ddim():
    # New subjects: a z_sem from the latent DDIM, decoded with random x_T, looks like a
    # head (correlates with the cohort's mean image) and its code lies among real codes.
    enc = DAEEncoder.from_pretrained("demo")
    images = la.datasets.load_demo_cohort().images
    samples = enc.sample(4, steps=10, generator=torch.Generator().manual_seed(0)).numpy()
    mean_image = images.mean(0).ravel()
    corr = [np.corrcoef(s.ravel(), mean_image)[0, 1] for s in samples]
    assert min(corr) > 0.3  # real heads: 0.47-0.84; noise: about 0
    codes = enc.normalize(enc.encode(images[:500]))
    drawn = enc.latent_net.sample(100, 20, generator=torch.Generator().manual_seed(1))
    ratio = float(drawn.norm(dim=1).mean() / codes.norm(dim=1).mean())
    assert 0.8 < ratio < 1.25



# -- 3-D: train, save, load, reconstruct held-out volumes ----------------------------------


def _balls(n: int, size: int = 8, seed: int = 0) -> np.ndarray:
    """Smooth balls of random centre and radius in 3-D, in [-1, 1]."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.mgrid[0:size, 0:size, 0:size]) / (size - 1)
    volumes = []
    for _ in range(n):
        centre = rng.uniform(0.3, 0.7, 3)[:, None, None, None]
        r = rng.uniform(0.2, 0.35)
        volumes.append(np.tanh(3 * (r**2 - ((grid - centre) ** 2).sum(axis=0)) / r**2))
    return np.asarray(volumes, dtype=np.float32)[:, None]


def test_3d_dae_trains_saves_loads_and_reconstructs_held_out_volumes(tmp_path):
    """The 3-D path end to end at 8^3 (``tiny3d``): training lowers the loss, the saved
    model loads to the same numbers, and DDIM inversion + decoding reproduces volumes the
    model never saw at PSNR >= 25 dB (peak-to-peak range 2)."""
    torch.manual_seed(0)
    volumes = _balls(56)
    train, held_out = volumes[:48], volumes[48:]
    enc = DAEEncoder.from_preset("tiny3d")
    enc.fit(train, max_steps=40, batch_size=16, lr=2e-3, ema_decay=None, random_state=0)
    losses = enc.history_["loss"].to_numpy()  # logged every 10 steps
    assert losses[-1] < losses[0]
    enc.save_pretrained(tmp_path / "dae3d")
    loaded = la.encoders.load_pretrained(tmp_path / "dae3d")
    assert isinstance(loaded, DAEEncoder) and loaded.spatial_dims == 3
    x = torch.from_numpy(held_out)
    torch.testing.assert_close(loaded.encode(x), enc.encode(x), atol=0, rtol=0)
    rec = loaded.reconstruct(x, steps=20)
    assert rec.shape == x.shape
    mse = ((rec - x) ** 2).reshape(len(x), -1).mean(dim=1)
    psnr = 10 * torch.log10(4.0 / mse)
    assert float(psnr.min()) >= 25.0, psnr


def test_3d_dae_reconstructs_held_out_heads_of_the_3d_demo_cohort(demo_volumes, tmp_path):
    """``tiny3d`` at 16^3 on the 3-D demo cohort, a small budget (64 training volumes of
    ``demo_split``, 30 steps): saved, loaded, and the held-out heads reconstructed (DDIM
    inversion, then decoding) above a floor.  The full figure (320 training volumes) is
    printed by ``benchmarks/bench_dae_3d.py`` (docs/benchmarks.md)."""
    train, held_out = la.datasets.demo_split(demo_volumes.metadata)
    images = demo_volumes.images
    torch.manual_seed(0)  # the initial weights
    enc = DAEEncoder.from_preset("tiny3d", image_size=16)
    enc.fit(images[train[:64]], max_steps=30, batch_size=16, lr=2e-3, random_state=0)
    enc.save_pretrained(tmp_path / "dae3d")
    loaded = la.encoders.load_pretrained(tmp_path / "dae3d")
    x = torch.from_numpy(images[held_out[:4]])
    rec = loaded.reconstruct(x, steps=10)
    mse = ((rec - x) ** 2).reshape(len(x), -1).mean(dim=1)
    psnr = 10 * torch.log10(4.0 / mse)
    assert float(psnr.mean()) >= PSNR_FLOOR_3D_DEMO, psnr


def test_volume64_preset_builds_and_encodes_a_64_cubed_volume():
    """The documented 3-D preset for 64^3 volumes is built and encodes one volume."""
    torch.manual_seed(0)
    enc = DAEEncoder.from_preset("volume64")
    assert enc.spatial_dims == 3 and enc.latent_dim == 512
    with torch.no_grad():
        z = enc.encode(torch.zeros(1, 1, 64, 64, 64))
    assert z.shape == (1, 512) and torch.isfinite(z).all()
