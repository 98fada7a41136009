"""Tests of the β-VAE encoder."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest
import torch

from latentaudit.data import ArrayDataset
from latentaudit.encoders import BetaVAEConfig, BetaVAEEncoder
from latentaudit.errors import ConfigError, InputShapeError


def _vae(spatial_dims=2, seed=0, **kwargs):
    torch.manual_seed(seed)
    size = 16 if spatial_dims == 2 else 8
    options = dict(spatial_dims=spatial_dims, image_size=size, channels=(4, 8), latent_dim=6)
    options.update(kwargs)
    return BetaVAEEncoder(**options)


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def _images(n, shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, *shape)).astype("float32")


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_forward_backward_shapes(spatial_dims):
    vae = _vae(spatial_dims, in_channels=2)
    side = 16 if spatial_dims == 2 else 8
    x = torch.from_numpy(_images(3, (2,) + (side,) * spatial_dims))
    reconstruction, mean, log_variance = vae(x)
    assert reconstruction.shape == x.shape
    sampled = vae(x, generator=_g())[0]  # a posterior sample, not the mean
    assert sampled.shape == x.shape and not torch.equal(sampled, reconstruction)
    assert mean.shape == log_variance.shape == (3, 6)
    loss, logs = vae.loss({"image": x, "index": torch.arange(3)}, generator=_g())
    assert loss.ndim == 0 and {"recon_mse", "kl"} <= set(logs)
    loss.backward()
    for name, parameter in vae.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    assert vae.encode(x).shape == (3, 6)
    decoded = vae.decode(torch.randn(4, 6))
    assert decoded.shape == (4, 2) + (side,) * spatial_dims
    assert decoded.min() >= -1 and decoded.max() <= 1


def test_non_square_images():
    vae = _vae(image_size=(16, 8))
    x = torch.zeros(2, 1, 16, 8)
    assert vae(x)[0].shape == x.shape
    with pytest.raises(InputShapeError, match="16x8, got 8x16"):
        vae.encode(torch.zeros(2, 1, 8, 16))


def test_encode_returns_the_posterior_mean():
    vae = _vae()
    vae.train()
    x = torch.from_numpy(_images(4, (1, 16, 16)))
    z = vae.encode(x)
    assert torch.equal(z, vae.encode(x))
    assert torch.allclose(z, vae.posterior(x)[0].detach(), atol=1e-6)
    assert vae.training  # mode restored


def test_loss_matches_its_formula():
    vae = _vae(beta=3.0)
    x = torch.from_numpy(_images(4, (1, 16, 16)))
    before = torch.get_rng_state()
    loss, logs = vae.loss(x, generator=_g(5))
    assert torch.equal(before, torch.get_rng_state())  # the global generator is not used
    mean, log_variance = vae.posterior(x)
    z = mean + torch.exp(0.5 * log_variance) * torch.randn(mean.shape, generator=_g(5))
    squared = ((vae.decode_latent(z) - x) ** 2).flatten(1).sum(1).mean()
    kl = 0.5 * (mean ** 2 + log_variance.exp() - 1 - log_variance).sum(1).mean()
    assert loss.item() == pytest.approx(((squared + 3.0 * kl) / 256).item(), rel=1e-5)
    assert logs["kl"].item() == pytest.approx(kl.item(), rel=1e-5)
    assert logs["recon_mse"].item() == pytest.approx(squared.item() / 256, rel=1e-5)


def test_hessian_penalty_enters_the_loss_with_warmup():
    vae = _vae(hessian_weight=2.0, hessian_warmup_steps=4)
    x = torch.from_numpy(_images(4, (1, 16, 16)))
    vae.set_training_step(0)
    _, logs = vae.loss(x, generator=_g())
    assert logs["hessian_weight"] == pytest.approx(0.5)
    assert logs["hessian_penalty"].item() > 0
    vae.set_training_step(10)
    assert vae.loss(x, generator=_g())[1]["hessian_weight"] == pytest.approx(2.0)
    vae.eval()  # a regulariser of training only
    assert "hessian_penalty" not in vae.loss(x, generator=_g())[1]
    plain = _vae()
    assert "hessian_penalty" not in plain.loss(x, generator=_g())[1]


def test_penalty_step_counts_itself_in_a_user_loop():
    vae = _vae(hessian_weight=1.0, hessian_warmup_steps=10)
    x = torch.from_numpy(_images(2, (1, 16, 16)))
    weights = [vae.loss(x, generator=_g())[1]["hessian_weight"] for _ in range(3)]
    assert weights == pytest.approx([0.1, 0.2, 0.3])


def test_training_reduces_reconstruction_error():
    # Smooth blobs are learnable in a few dozen steps; noise would not be.
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:16, :16]
    centres = rng.uniform(4, 12, (48, 2))
    images = np.exp(-((yy - centres[:, :1, None]) ** 2 + (xx - centres[:, 1:, None]) ** 2)
                    / 8.0)[:, None].astype("float32") * 2 - 1
    vae = _vae(beta=0.1, latent_dim=8)
    before = torch.mean((vae.reconstruct(images) - torch.from_numpy(images)) ** 2).item()
    vae.fit(ArrayDataset(images), max_steps=60, batch_size=16, lr=3e-3, warmup_steps=5,
            verbose=False)
    after = torch.mean((vae.reconstruct(images) - torch.from_numpy(images)) ** 2).item()
    assert after < 0.5 * before
    assert len(vae.history_) > 0 and vae.history_["step"].iloc[-1] == 60


def test_fit_rejects_images_that_do_not_fit():
    with pytest.raises(InputShapeError, match="expects 1 channel"):
        _vae().fit(_images(4, (3, 16, 16)), max_steps=1, verbose=False)
    with pytest.raises(InputShapeError, match="16x16, got 32x32"):
        _vae().fit(ArrayDataset(_images(4, (1, 32, 32))), max_steps=1, verbose=False)
    with pytest.raises(InputShapeError, match="spatial_dims=3"):
        _vae(3).fit(_images(4, (1, 8, 8)), max_steps=1, verbose=False)


def test_decode_checks_latents():
    vae = _vae()
    with pytest.raises(InputShapeError, match=r"\(N, 6\).*z\[None\]"):
        vae.decode(torch.zeros(6))
    with pytest.raises(InputShapeError, match=r"\(N, 6\)"):
        vae.decode(np.zeros((2, 5), dtype="float32"))
    assert vae.decode(np.zeros((2, 6), dtype="float32")).shape == (2, 1, 16, 16)


@pytest.mark.parametrize("norm", ["group", "instance", "layer", "none"])
def test_no_conv_bias_that_the_normalisation_removes(norm):
    from latentaudit.nn import norm_removes_bias

    vae = _vae(channels=(4, 64), norm=norm)
    modules = list(vae.modules())
    for i, module in enumerate(modules[:-1]):
        if isinstance(module, torch.nn.Conv2d):
            following = next((m for m in modules[i + 1:]
                              if not isinstance(m, (torch.nn.Sequential, torch.nn.Conv2d))),
                             None)
            assert (module.bias is None) == norm_removes_bias(following)
    if norm == "group":  # 4 channels: one per group; 64 channels: 32 groups of 2
        assert vae.encoder[0][0].bias is None and vae.encoder[2][0].bias is not None


def test_weights_with_the_removed_biases_still_load():
    vae = _vae()
    state = vae.state_dict()
    old = dict(state, **{"encoder.0.0.bias": torch.ones(4)})  # as saved before
    fresh = _vae(seed=1)
    fresh.load_state_dict(old, strict=True)
    x = torch.from_numpy(_images(2, (1, 16, 16)))
    assert torch.equal(fresh.encode(x), vae.encode(x))


def test_sample_is_reproducible():
    vae = _vae()
    a = vae.sample(3, generator=torch.Generator().manual_seed(0))
    b = vae.sample(3, generator=torch.Generator().manual_seed(0))
    assert a.shape == (3, 1, 16, 16) and torch.equal(a, b)


@pytest.mark.parametrize("kwargs, message", [
    (dict(image_size=18), "divisible by 2\\*\\*len\\(channels\\) = 4"),
    (dict(image_size=(16, 16, 16)), "image_size must be an int or 2 sizes"),
    (dict(norm="batch"), "norm must be one of"),
    (dict(channels=()), "channels"),
    (dict(latent_dim=0), "latent_dim"),
    (dict(beta=-1.0), "beta"),
    (dict(hessian_k=1), "hessian_k"),
    (dict(hessian_reduction="sum"), "hessian_reduction"),
    (dict(spatial_dims=4), "spatial_dims must be 2 or 3"),
])
def test_invalid_configs(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        _vae(**kwargs)


def test_signature_defaults_match_the_config():
    signature = inspect.signature(BetaVAEEncoder.__init__).parameters
    for field in dataclasses.fields(BetaVAEConfig):
        assert signature[field.name].default == field.default, field.name
    assert set(signature) - {"self"} == {f.name for f in dataclasses.fields(BetaVAEConfig)}


def test_default_model_matches_the_paper_latent_size():
    vae = BetaVAEEncoder()
    assert vae.latent_dim == 512 and vae.spatial_dims == 2 and vae.in_channels == 1
    assert vae.encode(torch.zeros(1, 1, 64, 64)).shape == (1, 512)


def test_the_default_model_has_the_documented_size():
    """docs/benchmarks.md ("β-VAE on the demo cohort"): the default configuration has
    2.37 M parameters at 64x64, channels 16-32-64-128-256, latent 512, β = 4."""
    vae = BetaVAEEncoder()
    assert vae.config.channels == (16, 32, 64, 128, 256) and vae.config.beta == 4.0
    assert vae.latent_dim == 512 and vae.config.image_size == 64
    assert sum(p.numel() for p in vae.parameters()) == 2_365_857
