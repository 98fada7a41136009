"""Tests of StyleGAN2's layers and networks (latentaudit.encoders.stylegan2.layers and
.networks), in 2-D and 3-D."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from latentaudit.encoders.stylegan2.layers import (
    EqualizedLinear,
    ModulatedConv,
    blur,
    equalize,
    upsample,
)
from latentaudit.encoders.stylegan2.networks import (
    Discriminator,
    Generator,
    Inverter,
    MappingNetwork,
    ResidualTrunk,
    SynthesisNetwork,
    level_shapes,
    minibatch_stddev,
)
from latentaudit.errors import ConfigError, InputShapeError
from latentaudit.nn import conv

_CONV = {2: F.conv2d, 3: F.conv3d}
_CONV_T = {2: F.conv_transpose2d, 3: F.conv_transpose3d}


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("up", [False, True])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_equals_per_sample_conv_with_modulated_weights(spatial_dims, up,
                                                                       demodulate):
    torch.manual_seed(0)
    layer = ModulatedConv(spatial_dims, 4, 6, 3, w_dim=5, demodulate=demodulate, up=up)
    with torch.no_grad():  # non-trivial styles
        layer.affine.parametrizations.weight.original.normal_()
    x = torch.randn(3, 4, *([6] * spatial_dims))
    w = torch.randn(3, 5)
    out = layer(x, w)
    # explicit: each sample convolved with its own weights s_i * w_oik (then demodulated)
    weight = layer.conv.weight.detach()
    if up:
        weight = weight.transpose(0, 1)  # (out, in, k...)
    styles = layer.affine(w).detach()
    expected = []
    for i in range(3):
        modulated = weight * styles[i].reshape(1, -1, *([1] * spatial_dims))
        if demodulate:
            norm = modulated.square().sum(dim=tuple(range(1, modulated.ndim))).add(1e-8).rsqrt()
            modulated = modulated * norm.reshape(-1, 1, *([1] * spatial_dims))
        if up:
            y = _CONV_T[spatial_dims](x[i:i + 1], modulated.transpose(0, 1), stride=2)
            y = blur(y, (1, 1), gain=2.0 ** spatial_dims)
        else:
            y = _CONV[spatial_dims](x[i:i + 1], modulated, padding=1)
        expected.append(y)
    expected = torch.cat(expected)
    assert out.shape == expected.shape
    assert torch.allclose(out, expected, atol=1e-5)
    # and the documented explicit weights are the same ones
    explicit = layer.modulated_weight(w).detach()
    assert explicit.shape == (3, 6, 4, *([3] * spatial_dims))
    if not up:
        again = torch.cat([_CONV[spatial_dims](x[i:i + 1], explicit[i], padding=1)
                           for i in range(3)])
        assert torch.allclose(out, again, atol=1e-5)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_demodulation_keeps_unit_output_variance_for_unit_inputs(spatial_dims):
    torch.manual_seed(1)
    side = 40 if spatial_dims == 2 else 14
    layer = ModulatedConv(spatial_dims, 32, 16, 3, w_dim=8)
    with torch.no_grad():  # strongly varying styles: demodulation must undo them
        layer.affine.parametrizations.weight.original.normal_(0, 3.0)
    x = torch.randn(4, 32, *([side] * spatial_dims))
    with torch.no_grad():
        out = layer(x, torch.randn(4, 8))
        plain = ModulatedConv(spatial_dims, 32, 16, 3, w_dim=8, demodulate=False)
        plain.load_state_dict(layer.state_dict())
        raw = plain(x, torch.randn(4, 8))
    interior = (slice(None), slice(None)) + (slice(1, -1),) * spatial_dims
    variance = out[interior].var(dim=tuple(range(2, out.ndim)))  # per sample and channel
    # every (sample, channel) near 1, up to the sampling error of ~1,000 correlated values
    assert variance.mean().item() == pytest.approx(1.0, abs=0.03)
    assert (variance - 1).abs().max().item() < 0.25
    raw_variance = raw[interior].var(dim=tuple(range(2, raw.ndim)))
    assert (raw_variance - 1).abs().mean().item() > 1.0  # without demodulation: not kept


def test_equalized_learning_rate_scales_weights_at_run_time():
    torch.manual_seed(0)
    layer = EqualizedLinear(64, 8, lr_multiplier=0.01, bias_init=0.5)
    stored = layer.parametrizations.weight.original
    assert stored.std().item() == pytest.approx(100.0, rel=0.2)  # N(0, 1) / lr_multiplier
    assert torch.allclose(layer.weight, stored * 0.01 / 8.0)
    assert torch.allclose(layer.bias, torch.full((8,), 0.5))
    # the gradient reaching the stored weight is scaled by the same gain
    x = torch.randn(5, 64)
    layer(x).sum().backward()
    expected = torch.ones(5, 8).t() @ x * (0.01 / 8.0)
    assert torch.allclose(stored.grad, expected, atol=1e-6)
    transposed = equalize(torch.nn.ConvTranspose2d(6, 3, 3))
    assert transposed.parametrizations.weight[0].gain == pytest.approx(1 / math.sqrt(6 * 9))
    assert equalize(conv(3, 2, 5, 3)).parametrizations.weight[0].gain == pytest.approx(
        1 / math.sqrt(2 * 27))


def test_blur_and_upsample_are_the_binomial_filter():
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8
    kernel = (taps[:, None] * taps[None]).expand(3, 1, 4, 4)
    expected = F.conv2d(F.pad(x, [2, 2, 2, 2]), kernel, groups=3)
    assert torch.allclose(blur(x, (2, 2)), expected, atol=1e-6)
    # upsampling = zero insertion then the filter with gain 4 (away from the border)
    zeros = torch.zeros(2, 3, 16, 16)
    zeros[:, :, ::2, ::2] = x
    fir = F.conv2d(F.pad(zeros, [2, 1, 2, 1]), kernel * 4, groups=3)
    assert torch.allclose(upsample(x)[..., 1:-1, 1:-1], fir[..., 1:-1, 1:-1], atol=1e-5)
    volume = torch.randn(1, 2, 4, 4, 4)
    assert upsample(volume).shape == (1, 2, 8, 8, 8)
    assert blur(volume, (1, 2)).shape == (1, 2, 4, 4, 4)


def test_level_shapes():
    assert level_shapes((64, 64)) == [(4, 4), (8, 8), (16, 16), (32, 32), (64, 64)]
    assert level_shapes((8, 16, 32)) == [(4, 8, 16), (8, 16, 32)]
    assert level_shapes((16, 24)) == [(4, 6), (8, 12), (16, 24)]
    for bad in [(3, 3), (48, 48), (16, 18), (2, 2)]:
        with pytest.raises(ConfigError, match="power of two"):
            level_shapes(bad)


def test_mapping_network_w_avg_and_lr_multiplier():
    torch.manual_seed(0)
    mapping = MappingNetwork(8, 8, num_layers=3, lr_multiplier=0.01, w_avg_beta=0.5)
    z = torch.randn(16, 8)
    w = mapping(z, update_w_avg=True)
    assert torch.allclose(mapping.w_avg, 0.5 * w.detach().mean(0), atol=1e-6)
    # z is normalised: scaling it changes nothing
    assert torch.allclose(mapping(3 * z), w, atol=1e-5)
    assert len(mapping.layers) == 3
    assert mapping.layers[0].parametrizations.weight[0].gain == pytest.approx(0.01 / math.sqrt(8))


def _tiny_generator(spatial_dims=2, size=16, seed=0):
    torch.manual_seed(seed)
    return Generator(spatial_dims, 2, (size,) * spatial_dims, z_dim=8, w_dim=8,
                     channels=(8, 8, 4) if size == 16 else (8, 4), mapping_layers=2)


def test_generator_style_mixing_and_truncation():
    g = _tiny_generator()
    z1, z2 = torch.randn(3, 8), torch.randn(3, 8)
    ws = g.ws(z1, mix_z=z2, mix_cutoff=torch.tensor([2, 4, 6]))
    w1, w2 = g.mapping(z1), g.mapping(z2)
    for i, cutoff in enumerate([2, 4, 6]):
        assert torch.allclose(ws[i, :cutoff], w1[i].expand(cutoff, -1))
        assert torch.allclose(ws[i, cutoff:], w2[i].expand(6 - cutoff, -1))
    g.mapping.w_avg.copy_(torch.randn(8))
    assert torch.allclose(g.ws(z1, truncation=0.0), g.mapping.w_avg.expand(3, 6, 8))
    assert torch.allclose(g.ws(z1, truncation=0.5), 0.5 * (g.ws(z1) + g.mapping.w_avg))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_generator_noise_and_skip_outputs(spatial_dims):
    size = 16 if spatial_dims == 2 else 8
    g = _tiny_generator(spatial_dims, size)
    gen = torch.Generator().manual_seed(3)
    noise = g.make_noise(2, generator=gen)
    assert [tuple(n.shape[2:]) for n in noise] == g.synthesis.noise_shapes
    same = g.make_noise(2, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(noise, same, strict=True))
    ws = g.ws(torch.randn(2, 8))
    image = g.synthesis(ws, noise)
    assert image.shape == (2, 2, *([size] * spatial_dims))  # two image channels
    with torch.no_grad():  # with noise strength, the noise changes the image
        for layer in g.synthesis.layers:
            layer.noise_strength.fill_(0.5)
    a = g.synthesis(ws, noise)
    b = g.synthesis(ws, g.make_noise(2, generator=gen))
    c = g.synthesis(ws, g.make_noise(2, zero=True))
    assert not torch.allclose(a, b) and not torch.allclose(a, c)
    assert torch.equal(c, g.synthesis(ws, [None] * len(noise)))
    with pytest.raises(InputShapeError, match="ws of shape"):
        g.synthesis(ws[:, :2], noise)
    with pytest.raises(InputShapeError, match="noise"):
        g.synthesis(ws, noise[:1])


def test_synthesis_on_non_square_images():
    net = SynthesisNetwork(2, 1, (16, 32), w_dim=4, channels=(4, 4, 4))
    assert net.noise_shapes[0] == (4, 8)
    assert net(torch.randn(2, net.num_ws, 4), [None] * 5).shape == (2, 1, 16, 32)


def test_minibatch_stddev_groups():
    x = torch.zeros(4, 2, 3, 3)
    x[0], x[2] = 1.0, 3.0  # group of sample 0 is {0, 2}: std 1; of sample 1 {1, 3}: std 0
    y = minibatch_stddev(x, group_size=2)
    assert y.shape == (4, 3, 3, 3)
    assert torch.allclose(y[[0, 2], 2], torch.ones(2, 3, 3), atol=1e-3)
    assert torch.allclose(y[[1, 3], 2], torch.zeros(2, 3, 3), atol=1e-3)
    assert minibatch_stddev(torch.randn(3, 2, 4, 4), group_size=4).shape == (3, 3, 4, 4)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_discriminator_and_inverter(spatial_dims):
    torch.manual_seed(0)
    size = (16,) * spatial_dims
    x = torch.randn(4, 1, *size)
    trunk = ResidualTrunk(spatial_dims, 1, size, (8, 8, 4))
    features = trunk(x)
    assert [f.shape[1] for f in features] == [4, 8, 8]
    assert features[-1].shape[2:] == (4,) * spatial_dims
    disc = Discriminator(spatial_dims, 1, size, (8, 8, 4), mbstd_group_size=2)
    logits, feats = disc(x, return_features=True)
    assert logits.shape == (4,) and len(feats) == 3
    inverter = Inverter(spatial_dims, 1, size, (8, 8, 4), w_dim=6, num_ws=5)
    w_avg = torch.randn(6)
    ws = inverter(x, w_avg)
    assert ws.shape == (4, 5, 6)
    # W+ residuals start at zero: every layer gets the same w
    assert torch.allclose(ws, ws[:, :1].expand(-1, 5, -1))
    single = Inverter(spatial_dims, 1, size, (8, 8, 4), w_dim=6, num_ws=5, w_plus=False)
    assert single.to_residual is None and single(x, w_avg).shape == (4, 5, 6)
