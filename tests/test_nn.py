"""Tests of latentaudit.nn: every factory serves 2-D and 3-D."""

import numpy as np
import pytest
import torch
from torch import nn

import latentaudit as la
from latentaudit.nn import (
    Attention,
    Downsample,
    Upsample,
    conv,
    conv_transpose,
    group_count,
    group_norm,
    norm,
    norm_removes_bias,
    pool,
    slerp,
    timestep_embedding,
)


def _x(spatial_dims, channels=4, side=8, n=2):
    generator = torch.Generator().manual_seed(0)
    return torch.randn(n, channels, *([side] * spatial_dims), generator=generator)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_conv_keeps_size_and_strides(spatial_dims):
    x = _x(spatial_dims)
    assert conv(spatial_dims, 4, 6)(x).shape == (2, 6, *([8] * spatial_dims))
    assert conv(spatial_dims, 4, 6, stride=2)(x).shape == (2, 6, *([4] * spatial_dims))
    assert conv(spatial_dims, 4, 6, kernel_size=1)(x).shape == (2, 6, *([8] * spatial_dims))
    expected = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
    assert isinstance(conv(spatial_dims, 4, 6), expected)
    replicate = conv(spatial_dims, 4, 6, padding_mode="replicate")
    assert replicate.padding_mode == "replicate"
    assert replicate(x).shape == (2, 6, *([8] * spatial_dims))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_conv_transpose_doubles(spatial_dims):
    y = conv_transpose(spatial_dims, 4, 3)(_x(spatial_dims))
    assert y.shape == (2, 3, *([16] * spatial_dims))


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("kind", ["group", "batch", "instance", "layer", "none"])
def test_norm_kinds(spatial_dims, kind):
    layer = norm(kind, spatial_dims, 12)
    x = _x(spatial_dims, channels=12) * 5 + 3
    y = layer(x)
    assert y.shape == x.shape
    if kind in ("group", "layer", "instance"):
        # normalised: mean close to 0 per sample
        assert y.mean().abs() < 0.1


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_norm_removes_bias_exactly_when_it_normalises_each_channel(spatial_dims):
    x = _x(spatial_dims, channels=12)
    shift = torch.arange(12.0).view(1, 12, *([1] * spatial_dims))
    for kind, channels, removes in [("group", 12, True), ("group", 64, False),
                                    ("instance", 12, True), ("batch", 12, True),
                                    ("layer", 12, False), ("none", 12, False)]:
        layer = norm(kind, spatial_dims, channels)
        assert norm_removes_bias(layer) is removes, (kind, channels)
        if channels == 12:
            same = torch.allclose(layer(x + shift), layer(x), atol=1e-5)
            assert same is removes, kind
    assert not norm_removes_bias(nn.Identity())


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_group_norm_keeps_the_layout_and_matches_pytorch(spatial_dims, dtype):
    layout = torch.channels_last if spatial_dims == 2 else torch.channels_last_3d
    x = _x(spatial_dims, channels=8).to(dtype).contiguous(memory_format=layout)
    weight, bias = torch.rand(8), torch.rand(8)
    a = x.clone().requires_grad_(True)
    b = x.clone().requires_grad_(True)
    ours = group_norm(a, 4, weight, bias)
    reference = torch.nn.functional.group_norm(b, 4, weight, bias)
    assert ours.is_contiguous(memory_format=layout) and ours.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(ours, reference, atol=tol, rtol=tol)
    gradient = torch.randn(ours.shape).to(dtype)
    ours.backward(gradient)
    reference.backward(gradient)
    torch.testing.assert_close(a.grad, b.grad, atol=tol, rtol=tol)
    assert isinstance(norm("group", spatial_dims, 8), nn.GroupNorm)


def test_group_count_divides():
    assert group_count(64) == 32
    assert group_count(12) == 12
    assert group_count(48, 32) == 24
    assert group_count(7, 32) == 7
    assert isinstance(norm("group", 2, 48), nn.GroupNorm) and norm("group", 2, 48).num_groups == 24


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_pool_kinds(spatial_dims):
    x = _x(spatial_dims)
    assert pool("max", spatial_dims)(x).shape == (2, 4, *([4] * spatial_dims))
    assert pool("avg", spatial_dims)(x).shape == (2, 4, *([4] * spatial_dims))
    assert pool("adaptive_avg", spatial_dims)(x).shape == (2, 4, *([1] * spatial_dims))
    g = pool("adaptive_avg", spatial_dims)(x).flatten(1)
    torch.testing.assert_close(g, x.flatten(2).mean(-1))


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("mode", ["conv", "avg"])
def test_downsample(spatial_dims, mode):
    y = Downsample(spatial_dims, 4, 6, mode=mode)(_x(spatial_dims))
    assert y.shape == (2, 6, *([4] * spatial_dims))


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("mode", ["nearest", "transpose", "nearest_noconv"])
def test_upsample(spatial_dims, mode):
    out = 4 if mode == "nearest_noconv" else 6
    y = Upsample(spatial_dims, 4, out, mode=mode)(_x(spatial_dims))
    assert y.shape == (2, out, *([16] * spatial_dims))


def test_upsample_noconv_cannot_change_channels():
    with pytest.raises(la.errors.ConfigError, match="cannot change the number of channels"):
        Upsample(2, 4, 8, mode="nearest_noconv")


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_attention_starts_as_identity_and_mixes_positions(spatial_dims):
    x = _x(spatial_dims, channels=8, side=4)
    block = Attention(spatial_dims, 8, num_heads=2)
    torch.testing.assert_close(block(x), x)  # zero-initialised output projection
    nn.init.normal_(block.proj.weight)
    y = block(x)
    assert y.shape == x.shape
    # changing one position changes the output at another position (global mixing)
    x2 = x.clone()
    x2.view(2, 8, -1)[:, :, 0] += 3.0
    y2 = block(x2)
    assert not torch.allclose(y.view(2, 8, -1)[:, :, -1], y2.view(2, 8, -1)[:, :, -1])


def test_attention_matches_naive_softmax_attention():
    torch.manual_seed(0)
    block = Attention(2, 4, num_heads=1)
    nn.init.normal_(block.proj.weight)
    x = torch.randn(1, 4, 3, 3)
    h = block.norm(x).reshape(1, 4, -1)
    q, k, v = block.qkv(h).chunk(3, dim=1)
    w = torch.softmax(q.transpose(1, 2) @ k / 2.0, dim=-1)  # sqrt(head_dim=4) = 2
    expected = x + block.proj((w @ v.transpose(1, 2)).transpose(1, 2)).reshape(1, 4, 3, 3)
    torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)


def test_attention_head_channels():
    assert Attention(2, 16, head_channels=4).num_heads == 4
    with pytest.raises(ValueError, match="divide channels"):
        Attention(2, 10, num_heads=3)


@pytest.mark.parametrize("factory", [
    lambda: conv(4, 1, 1), lambda: norm("group", 1, 4), lambda: pool("max", 4),
    lambda: Downsample(5, 4), lambda: Attention(0, 4)])
def test_bad_spatial_dims_message(factory):
    with pytest.raises(ValueError, match=r"spatial_dims must be 2 or 3, got"):
        factory()


def test_unknown_option_suggests():
    with pytest.raises(ValueError, match="did you mean 'group'"):
        norm("gruop", 2, 8)
    with pytest.raises(ValueError, match="did you mean 'adaptive_avg'"):
        pool("adaptive-avg", 2)


def test_timestep_embedding():
    t = torch.tensor([0, 10, 999])
    e = timestep_embedding(t, 16)
    assert e.shape == (3, 16)
    torch.testing.assert_close(e[0, :8], torch.ones(8))  # cos(0)
    torch.testing.assert_close(e[0, 8:], torch.zeros(8))  # sin(0)
    assert timestep_embedding(t, 7).shape == (3, 7)
    assert not torch.allclose(e[1], e[2])


# -- slerp ------------------------------------------------------------------------------------
def test_slerp_endpoints_norm_and_parallel_fallback():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 3, 8, 8, generator=g), torch.randn(5, 3, 8, 8, generator=g)
    assert torch.equal(slerp(a, b, 0.0), a) and torch.equal(slerp(a, b, 1.0), b)
    unit_a = torch.tensor([[1.0, 0.0, 0.0]])
    unit_b = torch.tensor([[0.0, 1.0, 0.0]])
    mid = slerp(unit_a, unit_b, 0.5)
    torch.testing.assert_close(mid.norm(), torch.tensor(1.0))  # a line would give 0.707
    torch.testing.assert_close(slerp(unit_a, 3 * unit_a, 0.5), 2 * unit_a)
    # Between two Gaussian codes of equal norm, slerp keeps the norm; lerp shrinks it.
    b_scaled = b * (a.flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(slerp(a, b_scaled, 0.5).flatten(1).norm(dim=1),
                               a.flatten(1).norm(dim=1))
    weights = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    out = slerp(a.numpy(), b.numpy(), weights)
    assert isinstance(out, np.ndarray) and out.shape == a.shape
    with pytest.raises(la.errors.InputShapeError):
        slerp(a, b[:2], 0.5)
    from latentaudit.interpolate import slerp as same

    assert same is slerp  # one slerp
