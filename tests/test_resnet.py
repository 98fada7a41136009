"""Tests of the ResNet classifiers (latentaudit.nn)."""

import pytest
import torch
from torch import nn

from latentaudit.errors import ConfigError
from latentaudit.nn import RESNET_LAYERS, BasicBlock, ResNet, resnet10, resnet18, resnet34

WIDTHS = (4, 8, 8, 16)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # Tiny models gain nothing from threads, and on a busy machine OpenMP threads waiting
    # on each other make every small operation hundreds of times slower.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("spatial_dims, shape", [(2, (3, 2, 16, 16)), (3, (2, 2, 8, 8, 8))])
@pytest.mark.parametrize("factory", [resnet10, resnet18, resnet34])
def test_logits_shape_2d_and_3d(spatial_dims, shape, factory):
    net = factory(spatial_dims, in_channels=2, num_classes=5, widths=WIDTHS)
    out = net(torch.randn(shape))
    assert out.shape == (shape[0], 5)
    assert torch.isfinite(out).all()


def test_named_depths_and_block_counts():
    assert resnet10(widths=WIDTHS).layers == (1, 1, 1, 1)
    assert resnet18(widths=WIDTHS).layers == (2, 2, 2, 2)
    assert resnet34(widths=WIDTHS).layers == (3, 4, 6, 3)
    for name, layers in RESNET_LAYERS.items():
        net = ResNet(layers=layers, widths=WIDTHS)
        blocks = [m for m in net.modules() if isinstance(m, BasicBlock)]
        assert len(blocks) == sum(layers), name


def test_stage_resolutions_standard_strided_and_small_stem():
    sizes = {}
    for stem in ("standard", "strided", "small"):
        net = ResNet(widths=WIDTHS, stem=stem).eval()
        found = []
        hooks = [s.register_forward_hook(lambda m, i, o, found=found: found.append(o.shape[-1]))
                 for s in net.stages]
        with torch.no_grad():
            net(torch.zeros(1, 1, 64, 64))
        for h in hooks:
            h.remove()
        sizes[stem] = found
    assert sizes["standard"] == [16, 8, 4, 2]
    assert sizes["strided"] == [32, 16, 8, 4]
    assert sizes["small"] == [64, 32, 16, 8]
    strided = ResNet(widths=WIDTHS, stem="strided")
    assert not any(isinstance(m, nn.MaxPool2d) for m in strided.stem)


def test_replicate_padding_makes_the_border_of_a_constant_image_no_edge():
    """With zero padding, a constant image that is not zero (the background of images
    scaled to [-1, 1]) gives the first convolution a different response at the border
    than inside; with replicate padding every convolution sees a constant image as
    constant, so the features are the same everywhere, border included."""
    image = -torch.ones(1, 1, 16, 16, 16)
    for mode, flat in (("zeros", False), ("replicate", True), ("reflect", True)):
        net = ResNet(spatial_dims=3, widths=WIDTHS, stem="small", padding_mode=mode).eval()
        assert all(m.padding_mode == mode for m in net.modules()
                   if isinstance(m, nn.Conv3d) and max(m.kernel_size) > 1)
        with torch.no_grad():
            out = net.stages[0](net.stem(image))
        spread = (out.amax(dim=(2, 3, 4)) - out.amin(dim=(2, 3, 4))).max().item()
        assert (spread < 1e-5) == flat, (mode, spread)
    assert "padding_mode='replicate'" in repr(ResNet(widths=WIDTHS, padding_mode="replicate"))


def test_odd_sizes_keep_the_shortcut_aligned():
    net = ResNet(widths=WIDTHS, stem="small").eval()
    with torch.no_grad():
        assert net(torch.zeros(2, 1, 13, 11)).shape == (2, 2)


def test_zero_init_makes_blocks_identity_like():
    net = ResNet(widths=WIDTHS, zero_init_residual=True)
    blocks = [m for m in net.modules() if isinstance(m, BasicBlock)]
    assert all(torch.count_nonzero(b.norm2.weight) == 0 for b in blocks)
    # An identity-shortcut block whose last scale is zero returns relu(x) = x for x >= 0.
    block = blocks[0]
    x = torch.rand(2, WIDTHS[0], 8, 8)
    assert torch.allclose(block(x), x)
    assert torch.count_nonzero(ResNet(widths=WIDTHS, zero_init_residual=False)
                               .stages[0][0].norm2.weight) > 0


@pytest.mark.parametrize("norm", ["batch", "layer", "group"])
def test_training_steps_reduce_the_loss(norm):
    torch.manual_seed(0)
    net = ResNet(num_classes=2, widths=WIDTHS, norm=norm, stem="small")
    x = torch.randn(16, 1, 16, 16)
    y = torch.arange(16) % 2
    x[y == 1, :, :4, :4] += 3.0
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_channels_last_backward_does_not_crash():
    # PyTorch's CPU backward crashed on strided 1x1 convolutions in channels-last format;
    # the ResNet's shortcut avoids them.
    net = ResNet(widths=(8, 16, 32, 64), stem="small").to(memory_format=torch.channels_last)
    x = torch.randn(4, 1, 64, 64).contiguous(memory_format=torch.channels_last)
    net(x).sum().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_features_are_pooled():
    net = ResNet(widths=WIDTHS).eval()
    with torch.no_grad():
        assert net.features(torch.zeros(3, 1, 32, 32)).shape == (3, WIDTHS[-1])


@pytest.mark.parametrize("kwargs, message", [
    ({"spatial_dims": 4}, "spatial_dims"),
    ({"layers": (1, 1), "widths": WIDTHS}, "one entry per stage"),
    ({"widths": (4, 0, 8, 8)}, "positive integers"),
    ({"num_classes": 0}, "num_classes"),
    ({"stem": "smal"}, "did you mean 'small'"),
    ({"norm": "btch"}, "did you mean 'batch'"),
    ({"padding_mode": "replicat"}, "did you mean 'replicate'"),
])
def test_invalid_options(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ResNet(**kwargs)
