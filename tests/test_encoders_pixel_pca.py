"""Tests of PixelPCAEncoder: pixel PCA as a public, registered, saveable encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

import latentaudit as la
from latentaudit.encoders import GenerativeEncoder, build_encoder, load_pretrained
from latentaudit.errors import DataError, NotFittedError


def _images(n=40, spatial_dims=2, size=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 1) + (size,) * spatial_dims).astype(np.float32)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_encode_is_scikit_learns_pca_and_decode_its_inverse(spatial_dims, tmp_path):
    images = _images(spatial_dims=spatial_dims)
    enc = la.PixelPCAEncoder(latent_dim=6).fit(la.ArrayDataset(images))
    assert isinstance(enc, GenerativeEncoder) and enc.spatial_dims == spatial_dims
    assert enc.config.image_size == 8 and enc.latent_dim == 6
    reference = PCA(6, random_state=0).fit(images.reshape(40, -1))
    z = enc.encode(images)
    np.testing.assert_allclose(np.abs(z.numpy()),
                               np.abs(reference.transform(images.reshape(40, -1))), atol=1e-4)
    decoded = enc.decode(z, enc.invert(torch.from_numpy(images)))
    np.testing.assert_allclose(decoded.numpy().reshape(40, -1),
                               reference.inverse_transform(z.numpy()), atol=1e-4)
    again = load_pretrained(enc.save_pretrained(tmp_path / "pca"))
    assert type(again) is la.PixelPCAEncoder
    torch.testing.assert_close(again.encode(images), z)


def test_one_registry_line_makes_it_a_family():
    enc = build_encoder("pca", (1, 16, 16), latent_dim=4)
    assert type(enc) is la.PixelPCAEncoder and enc.config.image_size == 16
    assert not enc.encode(torch.ones(2, 1, 16, 16)).any()  # not fitted: zero components
    with pytest.raises(NotFittedError, match="fit"):
        la.PixelPCAEncoder(4).encode(torch.zeros(2, 1, 16, 16))
    emb = la.embed(enc.fit(_images(size=16)), _images(size=16))
    assert emb.shape == (40, 4) and emb.provenance["encoder_config_hash"] == enc.config_hash


def test_too_few_images_for_the_components_is_explained():
    with pytest.raises(DataError, match="latent_dim=50 principal components need at least 50"):
        la.PixelPCAEncoder(latent_dim=50).fit(_images(n=10))
