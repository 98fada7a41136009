"""Tests of the encoder registry: one mapping from family name to class."""

from __future__ import annotations

import pytest

import latentaudit as la
from latentaudit.encoders import (
    BetaVAEEncoder,
    ModelEncoder,
    build_encoder,
    encoder_class,
    encoder_names,
)
from latentaudit.errors import ConfigError


def test_the_registry_builds_every_family_by_name():
    assert set(encoder_names(aliases=False)) >= {"beta_vae", "dae"}
    assert "betavae" in encoder_names()  # the command line's name
    for name in encoder_names(aliases=False):
        cls = encoder_class(name)
        assert cls.model_type == name and issubclass(cls, ModelEncoder)
        assert getattr(la, cls.__name__) is cls  # public under its class name
        assert cls.presets and cls.default_preset in cls.presets
        enc = build_encoder(name, (1, 16, 16), preset="tiny", latent_dim=4)
        assert isinstance(enc, cls) and enc.latent_dim == 4
        assert enc.config.image_size == 16 and enc.spatial_dims == 2
    assert isinstance(build_encoder("betavae", (2, 8, 8, 8), preset="tiny"), BetaVAEEncoder)
    with pytest.raises(ConfigError, match="did you mean 'betavae'"):
        encoder_class("betavea")
    with pytest.raises(ConfigError, match="did you mean 'latent_dim'"):
        build_encoder("dae", (1, 16, 16), preset="tiny", latent_dims=4)
    with pytest.raises(ConfigError, match="preset"):
        build_encoder("dae", (1, 16, 16), preset="huge")
    with pytest.raises(ConfigError, match="image_shape"):
        build_encoder("dae", (16, 16))
    assert build_encoder("beta_vae", image_size=16, channels=(4, 8)).latent_dim == 512


def test_every_family_takes_a_preset_by_keyword():
    enc = BetaVAEEncoder(preset="tiny", spatial_dims=3, image_size=16, latent_dim=5)
    assert enc.config.channels == (4, 8) and enc.latent_dim == 5 and enc.spatial_dims == 3
    dae = la.DAEEncoder(preset="tiny", latent_dim=8)
    assert dae.config.base_channels == 8 and dae.latent_dim == 8
    with pytest.raises(ConfigError, match="by name"):
        BetaVAEEncoder(2, preset="tiny")
    with pytest.raises(ConfigError, match="preset"):
        BetaVAEEncoder(preset="paper512")


def test_a_seed_builds_the_same_weights_and_leaves_the_global_state():
    import torch

    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = build_encoder("betavae", (1, 16, 16), preset="tiny", random_state=7)
    assert torch.equal(before, torch.get_rng_state())
    b = build_encoder("betavae", (1, 16, 16), preset="tiny", random_state=7)
    c = build_encoder("betavae", (1, 16, 16), preset="tiny", random_state=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    with pytest.raises(ConfigError, match="random_state"):
        build_encoder("betavae", (1, 16, 16), preset="tiny", random_state=1.5)
