"""Tests of StyleGAN2Encoder (latentaudit.encoders.stylegan2): construction, the generative
protocol (encode / invert / decode), save and load, and inversion of a known generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentaudit.encoders import Encoder, GenerativeEncoder
from latentaudit.encoders.stylegan2 import PRESETS, StyleGAN2Config, StyleGAN2Encoder
from latentaudit.encoders.stylegan2.inversion import reconstruction_loss
from latentaudit.errors import ConfigError, InputShapeError, InputTypeError


def _tiny(seed=0, **options):
    torch.manual_seed(seed)
    return StyleGAN2Encoder(preset="tiny", **options)


def _images(n=4, shape=(1, 16, 16), seed=0):
    return torch.from_numpy(
        np.random.default_rng(seed).uniform(-1, 1, (n, *shape)).astype("float32"))


def test_named_presets_and_the_cpu64_parameter_count():
    """README: presets ``tiny``, ``cpu64``, ``paper64``, ``paper256`` and 3-D.
    docs/benchmarks.md: the ``cpu64`` generator plus discriminator have 2,979,343
    parameters, as NVlabs' networks at the same sizes (generator 2.68 M, discriminator
    0.30 M, inverter 1.21 M)."""
    sizes = {name: (StyleGAN2Config(**PRESETS[name]).image_size,
                    StyleGAN2Config(**PRESETS[name]).spatial_dims) for name in PRESETS}
    assert sizes == {"tiny": (16, 2), "tiny3d": (8, 3), "cpu64": (64, 2),
                     "paper64": (64, 2), "paper256": (256, 2)}
    for name in ("paper64", "paper256"):  # the paper's configuration F
        config = StyleGAN2Config(**PRESETS[name])
        assert (config.latent_dim, config.channel_base, config.channel_max) == (512, 32768, 512)
    enc = StyleGAN2Encoder.from_preset("cpu64")
    count = {name: sum(p.numel() for p in part.parameters())
             for name, part in enc.named_children()}
    assert count["generator"] + count["discriminator"] == 2_979_343
    assert (count["generator"], count["discriminator"], count["inverter"]) == (
        2_682_974, 296_369, 1_206_960)


def test_construction_presets_and_errors():
    enc = _tiny()
    assert isinstance(enc, Encoder) and isinstance(enc, GenerativeEncoder)
    assert (enc.latent_dim, enc.spatial_dims, enc.in_channels, enc.num_ws) == (8, 2, 1, 6)
    assert enc.config == StyleGAN2Config(**PRESETS["tiny"])
    assert StyleGAN2Encoder.from_preset("tiny", latent_dim=4).latent_dim == 4
    same = StyleGAN2Encoder.from_config(enc.config)
    assert same.config == enc.config
    custom = StyleGAN2Encoder(image_size=(16, 32), channel_base=32, channel_max=4,
                              latent_dim=4, mapping_layers=1)
    assert custom.decode(torch.zeros(1, 4)).shape == (1, 1, 16, 32)
    with pytest.raises(TypeError, match="latnt_dim"):
        StyleGAN2Encoder(latnt_dim=3)
    with pytest.raises(ConfigError, match="did you mean 'latent_dim'"):
        StyleGAN2Encoder(preset="tiny", latnt_dim=3)
    with pytest.raises(ConfigError, match="did you mean 'tiny'"):
        StyleGAN2Encoder(preset="tin")
    with pytest.raises(ConfigError, match="power of two"):
        StyleGAN2Encoder(preset="tiny", image_size=24)
    with pytest.raises(ConfigError, match="spatial_dims"):
        StyleGAN2Encoder(preset="tiny", spatial_dims=4)
    with pytest.raises(ConfigError, match="augment"):
        StyleGAN2Encoder(preset="tiny", augment=("rotation",))
    with pytest.raises(ConfigError, match="style_mixing_prob"):
        StyleGAN2Encoder(preset="tiny", style_mixing_prob=1.5)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_encode_invert_decode_reproduce_the_inverters_rendering(spatial_dims):
    enc = _tiny(spatial_dims=spatial_dims, image_size=8 if spatial_dims == 3 else 16)
    with torch.no_grad():  # make the W+ residuals non-zero
        for head in enc.inverter.to_residual:
            head.parametrizations.weight.original.normal_()
        for layer in enc.generator.synthesis.layers:
            layer.noise_strength.fill_(0.3)
    x = _images(3, (1,) + (8 if spatial_dims == 3 else 16,) * spatial_dims)
    w = enc.encode(x)
    assert w.shape == (3, 8) and w.dtype == torch.float32
    codes = enc.invert(x)
    assert codes["w_residual"].shape == (3, enc.num_ws, 8)
    assert torch.allclose(codes["w_residual"].mean(1), torch.zeros(3, 8), atol=1e-5)
    assert all(float(n.abs().max()) == 0 for n in codes["noise"])
    with torch.no_grad():
        ws = enc.w_plus(x)
        expected = enc.generator.synthesis(ws, [None] * len(codes["noise"])).clamp(-1, 1)
    assert torch.allclose(ws.mean(1), w, atol=1e-6)
    assert torch.allclose(enc.decode(w, codes), expected, atol=1e-5)
    # batches do not change results
    assert torch.allclose(enc.decode(w, codes, batch_size=1), expected, atol=1e-5)
    assert torch.allclose(enc.encode(x, batch_size=1), w, atol=1e-6)


def test_decode_without_codes_draws_noise_from_the_generator_only():
    enc = _tiny()
    with torch.no_grad():
        for layer in enc.generator.synthesis.layers:
            layer.noise_strength.fill_(0.5)
    w = torch.randn(2, 8)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = enc.decode(w, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is untouched
    b = enc.decode(w, generator=torch.Generator().manual_seed(1))
    c = enc.decode(w, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert torch.equal(enc.decode(w), enc.decode(w))  # None: a fresh default generator
    assert a.min() >= -1 and a.max() <= 1
    # truncation 0 renders the average w whatever w is
    mean_image = enc.decode(w, generator=torch.Generator().manual_seed(1), truncation=0.0)
    again = enc.decode(torch.randn(2, 8), generator=torch.Generator().manual_seed(1),
                       truncation=0.0)
    assert torch.allclose(mean_image, again)
    assert enc.decode(np.zeros((0, 8), np.float32)).shape == (0, 1, 16, 16)
    assert enc.sample(3, generator=torch.Generator().manual_seed(0)).shape == (3, 1, 16, 16)


def test_decode_and_invert_check_their_inputs():
    enc = _tiny()
    x = _images(2)
    codes = enc.invert(x)
    with pytest.raises(InputShapeError, match=r"\(N, 8\)"):
        enc.decode(torch.zeros(2, 5))
    with pytest.raises(InputShapeError, match="w_residual"):
        enc.decode(torch.zeros(3, 8), codes)
    with pytest.raises(InputTypeError, match="invert"):
        enc.decode(torch.zeros(2, 8), codes["noise"])
    bad = {"w_residual": codes["w_residual"], "noise": codes["noise"][:-1]}
    with pytest.raises(InputShapeError, match="noise"):
        enc.decode(torch.zeros(2, 8), bad)
    with pytest.raises(InputShapeError, match="16x16"):
        enc.invert(_images(2, (1, 8, 8)))
    with pytest.raises(ConfigError, match="steps"):
        enc.invert(x, steps=-1)


def test_invert_refinement_works_under_inference_mode_and_improves_the_fit():
    enc = _tiny(inversion_refine_lr=0.05)
    x = _images(3, seed=1)

    def loss(codes):
        w = enc.encode(x)
        ws = w[:, None] + codes["w_residual"]
        with torch.no_grad():
            return float(reconstruction_loss(enc, x, ws, codes["noise"])[0].mean())

    plain = enc.invert(x)
    with torch.inference_mode():
        refined = enc.invert(x, steps=20)
    assert loss(refined) < 0.9 * loss(plain)
    # the embedding is unchanged and the residuals stay centred on it
    assert torch.allclose(refined["w_residual"].mean(1), torch.zeros(3, 8), atol=1e-5)
    assert all(p.requires_grad for p in enc.parameters())
    assert all(p.grad is None for p in enc.parameters())


def test_refinement_after_decoding_under_inference_mode():
    # The report decodes under inference mode, then refines codes with autograd: cached
    # filter kernels made under inference mode must not reach autograd.
    from latentaudit.encoders.stylegan2.layers import _fir_kernel

    _fir_kernel.cache_clear()
    enc = _tiny()
    x = _images(2)
    with torch.inference_mode():
        enc.decode(enc.encode(x), enc.invert(x))
    codes = enc.invert(x, steps=1)
    assert codes["w_residual"].shape[0] == 2


def test_save_and_load_round_trip(tmp_path):
    enc = _tiny()
    with torch.no_grad():
        enc.generator.mapping.w_avg.normal_()
        enc.augment_p.fill_(0.25)
    x = _images(2)
    enc.save_pretrained(tmp_path / "model")
    again = StyleGAN2Encoder.from_pretrained(tmp_path / "model")
    assert again.config == enc.config and not again.training
    assert torch.equal(again.encode(x), enc.encode(x))
    codes = enc.invert(x)
    assert torch.equal(again.decode(enc.encode(x), codes), enc.decode(enc.encode(x), codes))
    assert float(again.augment_p) == 0.25
    from latentaudit.encoders import load_pretrained

    assert type(load_pretrained(tmp_path / "model")) is StyleGAN2Encoder


def test_the_inverter_recovers_a_known_w_far_better_than_a_random_guess():
    # A tiny generator with random weights renders images of known w (zero noise); the
    # inverter is trained on such images through the frozen generator, then inverts
    # images of w it has never seen.
    from latentaudit.encoders.stylegan2.steps import inversion_step

    enc = _tiny(seed=3, inversion_feature_weight=0.0, inversion_delta_weight=1.0)
    gen = enc.generator
    rng = torch.Generator().manual_seed(0)

    def render(n):
        with torch.no_grad():
            w = gen.mapping(torch.randn(n, 8, generator=rng))
            return w, gen.synthesis(w[:, None].expand(-1, enc.num_ws, -1),
                                    gen.make_noise(n, zero=True))

    with torch.no_grad():
        enc.generator.mapping.w_avg.copy_(render(512)[0].mean(0))
    from test_stylegan2_training import _Context

    ctx = _Context(enc, lr=1e-2, stage="inversion")
    enc._stage = "inversion"
    for step in range(200):
        inversion_step(enc, render(32)[1], step, ctx)
    enc._stage = "gan"
    w_true, images = render(64)
    w_hat = enc.encode(images)
    error = (w_hat - w_true).norm(dim=1).mean()
    guess = (w_true.roll(1, 0) - w_true).norm(dim=1).mean()  # another image's w
    average = (enc.generator.mapping.w_avg - w_true).norm(dim=1).mean()
    assert error < 0.4 * guess and error < 0.6 * average
