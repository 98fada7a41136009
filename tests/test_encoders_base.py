"""Tests of what every encoder shares: the protocol, TorchEncoder, input handling, and
save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import latentaudit as la
from latentaudit.data import ArrayDataset
from latentaudit.encoders import (
    FAMILIES,
    BetaVAEEncoder,
    Encoder,
    GenerativeEncoder,
    ModelEncoder,
    TorchEncoder,
    _registry,
    build_encoder,
    concat_codes,
    encoder_class,
    encoder_names,
    interpolate_codes,
    load_pretrained,
    register_encoder,
    select_codes,
)
from latentaudit.errors import CheckpointError, ConfigError, InputShapeError, InputTypeError


def _vae(seed=0, **kwargs):
    torch.manual_seed(seed)
    options = dict(image_size=16, channels=(4, 8), latent_dim=6)
    options.update(kwargs)
    return BetaVAEEncoder(**options)


def _images(n=5, shape=(1, 16, 16), seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, *shape)).astype("float32")


# -- the protocol ------------------------------------------------------------------------

def test_protocol_conformance():
    vae = _vae()
    assert isinstance(vae, Encoder) and isinstance(vae, GenerativeEncoder)
    wrapped = TorchEncoder(nn.Conv2d(1, 3, 3), input_shape=(1, 8, 8))
    assert isinstance(wrapped, Encoder)
    assert not isinstance(wrapped, GenerativeEncoder)

    class Duck:
        latent_dim, spatial_dims = 2, 2

        def encode(self, x):
            return torch.zeros(len(x), 2)

    class NoEncode:
        latent_dim, spatial_dims = 2, 2

    assert isinstance(Duck(), Encoder)
    assert not isinstance(NoEncode(), Encoder)
    assert not isinstance(nn.Linear(2, 2), Encoder)


# -- TorchEncoder ------------------------------------------------------------------------

def test_torch_encoder_pooling_modes():
    torch.manual_seed(0)
    net = nn.Conv2d(1, 3, 3)  # (N, 3, 6, 6) for 8x8 inputs
    x = torch.from_numpy(_images(4, (1, 8, 8)))
    maps = net(x).detach()
    expected = {
        "auto": maps.mean(dim=(2, 3)),
        "avg": maps.mean(dim=(2, 3)),
        "max": maps.amax(dim=(2, 3)),
        "flatten": maps.flatten(1),
    }
    for pooling, want in expected.items():
        enc = TorchEncoder(net, input_shape=(1, 8, 8), pooling=pooling)
        assert enc.latent_dim == want.shape[1]
        assert torch.allclose(enc.encode(x), want, atol=1e-6), pooling
    custom = TorchEncoder(net, input_shape=(1, 8, 8), pooling=lambda out: out[:, :, 0, 0])
    assert torch.allclose(custom.encode(x), maps[:, :, 0, 0])
    assert custom.latent_dim == 3


def test_torch_encoder_vector_output_and_preprocess():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    enc = TorchEncoder(net, latent_dim=5, pooling="none",
                       preprocess=lambda x: x.repeat(1, 3, 1, 1))  # grey -> "RGB"
    x = torch.from_numpy(_images(2, (1, 4, 4)))
    assert torch.allclose(enc.encode(x), net(x.repeat(1, 3, 1, 1)).detach())
    assert enc.in_channels is None  # no input_shape: any channel count goes through


def test_torch_encoder_3d_and_inputs():
    torch.manual_seed(0)
    net = nn.Conv3d(2, 4, 3, padding=1)
    enc = TorchEncoder(net, spatial_dims=3, input_shape=(2, 8, 8, 8))
    volumes = _images(3, (2, 8, 8, 8))
    direct = enc.encode(torch.from_numpy(volumes))
    assert direct.shape == (3, 4)
    assert torch.allclose(enc.encode(volumes), direct)
    assert torch.allclose(enc.encode(ArrayDataset(volumes), batch_size=2), direct)
    with pytest.raises(InputShapeError, match="4 channel|2 channel"):
        enc.encode(torch.zeros(1, 4, 8, 8, 8))


def test_torch_encoder_configuration_errors():
    net = nn.Conv2d(1, 3, 3)
    with pytest.raises(ConfigError, match="latent_dim= or input_shape="):
        TorchEncoder(net)
    with pytest.raises(ConfigError, match="7 was given|latent_dim=7"):
        TorchEncoder(net, input_shape=(1, 8, 8), latent_dim=7)
    with pytest.raises(ConfigError, match="dry run"):
        TorchEncoder(net, input_shape=(2, 8, 8))  # the conv wants 1 channel
    with pytest.raises(ConfigError, match="did you mean 'flatten'"):
        TorchEncoder(net, input_shape=(1, 8, 8), pooling="flaten")
    with pytest.raises(InputTypeError, match="nn.Module"):
        TorchEncoder(lambda x: x, latent_dim=3)

    class Pair(nn.Module):
        def forward(self, x):
            return x.flatten(1), x

    with pytest.raises(InputTypeError, match="pooling=<callable>"):
        TorchEncoder(Pair(), input_shape=(1, 2, 2))


def test_torch_encoder_restores_training_mode_and_keeps_gradients_off():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Dropout(0.5))
    enc = TorchEncoder(net, input_shape=(1, 6, 6))
    enc.train()
    x = torch.ones(8, 1, 6, 6)
    a, b = enc.encode(x), enc.encode(x)
    assert torch.equal(a, b)  # dropout off while encoding
    assert enc.training and not a.requires_grad


# -- input handling of encode ------------------------------------------------------------

def test_encode_accepts_tensors_arrays_datasets_and_loaders():
    vae = _vae()
    images = _images(7)
    reference = vae.encode(torch.from_numpy(images))
    assert reference.shape == (7, 6) and reference.dtype == torch.float32
    assert torch.allclose(vae.encode(images), reference, atol=1e-6)
    assert torch.allclose(vae.encode(ArrayDataset(images), batch_size=3), reference, atol=1e-6)
    loader = DataLoader(ArrayDataset(images), batch_size=4)
    assert torch.allclose(vae.encode(loader), reference, atol=1e-6)
    tensors = DataLoader(TensorDataset(torch.from_numpy(images)), batch_size=2)
    assert torch.allclose(vae.encode(tensors), reference, atol=1e-6)
    assert vae.encode(torch.from_numpy(images).double()).dtype == torch.float32
    assert vae.encode(torch.zeros(0, 1, 16, 16)).shape == (0, 6)


@pytest.mark.parametrize("shape, message", [
    ((1, 16, 16), "single image"),
    ((2, 3, 16, 16), "expects 1 channel"),
    ((2, 1, 12, 12), "16x16, got 12x12"),
    ((2, 1, 16, 16, 16), r"\(N, C, H, W\)"),
])
def test_encode_rejects_wrong_shapes(shape, message):
    with pytest.raises(InputShapeError, match=message):
        _vae().encode(torch.zeros(shape))


def test_encode_rejects_wrong_types():
    with pytest.raises(InputTypeError, match="DataLoader"):
        _vae().encode("images.npy")
    with pytest.raises(InputTypeError, match="'image'"):
        _vae().encode(DataLoader([{"img": torch.zeros(1, 16, 16)}], batch_size=1))
    with pytest.raises(InputTypeError, match="real-valued"):
        _vae().encode(np.zeros((1, 1, 16, 16), dtype=complex))
    with pytest.raises(ConfigError, match="batch_size"):
        _vae().encode(torch.zeros(1, 1, 16, 16), batch_size=0)


# -- save and load -----------------------------------------------------------------------

def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    vae = _vae(beta=2.0, hessian_weight=0.5)
    vae.fit(_images(16), max_steps=2, batch_size=8, verbose=False)
    path = vae.save_pretrained(tmp_path / "vae")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = BetaVAEEncoder.from_pretrained(path)
    assert not loaded.training
    assert loaded.config == vae.config
    assert loaded.config_hash == vae.config_hash
    x = torch.from_numpy(_images(4, seed=1))
    assert torch.equal(loaded.encode(x), vae.encode(x))
    z = torch.randn(3, 6)
    assert torch.equal(loaded.decode(z), vae.decode(z))
    generic = load_pretrained(path)
    assert type(generic) is BetaVAEEncoder
    assert type(ModelEncoder.from_pretrained(path)) is BetaVAEEncoder
    document = json.loads((path / "config.json").read_text())
    assert document["model_type"] == "beta_vae" and "latentaudit_version" in document
    assert document["config"]["channels"] == [4, 8]


def test_weights_are_safetensors_not_pickle(tmp_path):
    from safetensors.torch import load_file

    vae = _vae()
    vae.save_pretrained(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    assert set(state) == set(vae.state_dict())
    # as readable as any new file (safetensors alone makes it owner-only)
    mode = (tmp_path / "config.json").stat().st_mode & 0o777
    assert (tmp_path / "model.safetensors").stat().st_mode & 0o777 == mode


def test_config_hash_is_stable_and_sensitive():
    a, b = _vae(seed=0), _vae(seed=1)
    assert a.config_hash == b.config_hash  # weights do not enter the hash
    assert len(a.config_hash) == 64 and int(a.config_hash, 16) >= 0
    assert _vae(beta=1.0).config_hash != a.config_hash
    # Written down once: changing how configs are serialised must be deliberate.
    assert BetaVAEEncoder(image_size=16, channels=(4, 8), latent_dim=6).config_hash == (
        a.config_hash)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        BetaVAEEncoder.from_pretrained(tmp_path / "nowhere")
    _vae().save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors"):
        BetaVAEEncoder.from_pretrained(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json"):
        BetaVAEEncoder.from_pretrained(tmp_path)


def test_corrupt_files_are_named(tmp_path):
    _vae().save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        BetaVAEEncoder.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json.*not valid JSON"):
        BetaVAEEncoder.from_pretrained(tmp_path)


def test_config_problems_are_named(tmp_path):
    _vae().save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    document = json.loads(path.read_text())

    document["config"]["latent_dims"] = document["config"].pop("latent_dim")
    path.write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match="did you mean 'latent_dim'"):
        BetaVAEEncoder.from_pretrained(tmp_path)

    document["config"]["latent_dim"] = 9  # weights were saved for 6
    del document["config"]["latent_dims"]
    path.write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match="do not fit"):
        BetaVAEEncoder.from_pretrained(tmp_path)

    document["model_type"] = "no_such_model"
    path.write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match="no_such_model"):
        load_pretrained(tmp_path)


def test_from_pretrained_checks_the_model_type(tmp_path):
    class OtherEncoder(BetaVAEEncoder):
        model_type = "other_test_encoder"

    torch.manual_seed(0)
    OtherEncoder(image_size=16, channels=(4, 8), latent_dim=6).save_pretrained(tmp_path)
    # its own class loads it without any registration ...
    assert type(OtherEncoder.from_pretrained(tmp_path)) is OtherEncoder
    # ... load_pretrained needs the family registered
    with pytest.raises(CheckpointError, match="register_encoder"):
        load_pretrained(tmp_path)
    try:
        register_encoder("other_test_encoder", OtherEncoder, aliases=("other",))
        assert type(load_pretrained(tmp_path)) is OtherEncoder
        assert encoder_class("other") is OtherEncoder
        _vae().save_pretrained(tmp_path / "vae")
        with pytest.raises(CheckpointError, match="not a OtherEncoder"):
            OtherEncoder.from_pretrained(tmp_path / "vae")
        with pytest.raises(ConfigError, match="taken"):
            register_encoder("third", OtherEncoder, aliases=("betavae",))
    finally:
        FAMILIES.pop("other_test_encoder", None)
        _registry._CLASSES.pop("other_test_encoder", None)


def test_every_family_meets_the_generative_protocol():
    for name in encoder_names(aliases=False):
        enc = build_encoder(name, (1, 16, 16), preset="tiny", latent_dim=4).eval()
        assert isinstance(enc, la.encoders.GenerativeEncoder)
        x = torch.rand(2, 1, 16, 16) * 2 - 1
        z = enc.encode(x)
        codes = enc.invert(x, steps=2)
        assert enc.decode(z, codes, steps=2).shape == x.shape
        before = torch.get_rng_state()
        first = enc.decode(z, steps=2)  # codes=None, generator=None: never the global RNG
        assert torch.equal(torch.get_rng_state(), before)
        again = enc.decode(z, steps=2, generator=torch.Generator().manual_seed(3))
        assert torch.equal(again, enc.decode(z, steps=2,
                                             generator=torch.Generator().manual_seed(3)))
        assert first.shape == x.shape


def test_codes_helpers():
    codes = {"noise": (torch.arange(4.0)[:, None], torch.ones(4, 2)), "w": torch.zeros(4, 3)}
    part = select_codes(codes, [2, 0])
    assert part["noise"][0].ravel().tolist() == [2.0, 0.0] and part["w"].shape == (2, 3)
    joined = concat_codes([select_codes(codes, [0, 1]), select_codes(codes, [2, 3])])
    assert torch.equal(joined["noise"][0], codes["noise"][0])
    mixed = interpolate_codes(part, part, 0.5)
    torch.testing.assert_close(mixed["w"], part["w"])
    assert select_codes(None, [0]) is None and interpolate_codes(None, None, 0.3) is None
    with pytest.raises(la.errors.InputTypeError):
        concat_codes([torch.zeros(1), None])
    with pytest.raises(la.errors.InputTypeError):
        select_codes("x_T", [0])


def test_from_pretrained_takes_a_device(tmp_path):
    _vae().save_pretrained(tmp_path)
    loaded = BetaVAEEncoder.from_pretrained(tmp_path, device="cpu")
    assert loaded.device.type == "cpu"


def test_from_config_accepts_a_dict():
    vae = _vae()
    again = BetaVAEEncoder.from_config(vae.config_dict())
    assert again.config == vae.config
    with pytest.raises(ConfigError, match="unknown"):
        BetaVAEEncoder.from_config({"latent": 3})
