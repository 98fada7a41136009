"""Tests of la.datasets.load_slice_bank and slice_bank_split: real MRI and CT slices."""

import numpy as np
import pandas as pd
import pytest

import latentaudit as la
from latentaudit.data import _slice_bank
from latentaudit.errors import ConfigError, MissingDependencyError

TWO = ["colin27_t1", "invesalius_ct"]


@pytest.fixture(scope="module")
def bank():
    available = [v.name for v in la.datasets.SLICE_BANK_VOLUMES
                 if (path := _slice_bank._path(v)) is not None and path.is_file()]
    if len(available) < 3:
        pytest.skip(f"only {available} of the slice bank's volumes are installed")
    return la.datasets.load_slice_bank(6 * 3 * len(available), size=32, random_state=1)


def test_slices_are_balanced_scaled_and_not_empty(bank):
    images, metadata = bank.images, bank.metadata
    assert images.dtype == np.float32 and images.shape[1:] == (1, 32, 32)
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert list(metadata.columns) == ["subject", "volume", "person", "modality", "axis",
                                      "position", "gamma", "angle"]
    assert metadata["subject"].is_unique and list(bank.ids) == list(metadata["subject"])
    cells = metadata.groupby(["volume", "axis"]).size()
    assert (cells == 6).all() and set(metadata["axis"]) == {"sagittal", "coronal", "axial"}
    assert metadata["position"].between(0.2, 0.8).all()
    assert metadata["angle"].abs().max() <= 15.0 and metadata["gamma"].gt(0).all()
    # every slice shows a good part of its object, and the volumes are unlike each other
    assert ((images > -0.8).mean(axis=(1, 2, 3)) > 0.05).all()
    means = pd.DataFrame(images.reshape(len(images), -1)).groupby(
        metadata["volume"].to_numpy()).mean()
    assert np.corrcoef(means.to_numpy()).min() < 0.9


def test_the_volume_is_recognisable_on_other_slices(bank):
    """Slices of one volume share real anatomy and contrast: a linear probe on pixels
    names the volume of slices it never saw far above chance."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    x = bank.images.reshape(len(bank.images), -1)
    y = bank.metadata["volume"].to_numpy()
    accuracy = cross_val_score(LogisticRegression(C=0.1, max_iter=2000), x, y, cv=3).mean()
    assert accuracy > 2.5 / len(set(y))   # chance is 1 / (number of volumes)


def test_same_seed_same_slices_and_augmentation_off():
    first = la.datasets.load_slice_bank(6, size=16, volumes=TWO, random_state=3)
    again = la.datasets.load_slice_bank(6, size=16, volumes=TWO, random_state=3)
    np.testing.assert_array_equal(first.images, again.images)
    pd.testing.assert_frame_equal(first.metadata, again.metadata)
    other = la.datasets.load_slice_bank(6, size=16, volumes=TWO, random_state=4)
    assert not np.array_equal(first.images, other.images)
    plain = la.datasets.load_slice_bank(6, size=16, volumes=TWO, augment=False)
    assert (plain.metadata["gamma"] == 1.0).all() and (plain.metadata["angle"] == 0.0).all()
    assert set(plain.metadata["modality"]) == {"T1 head", "CT head"}


def test_split_keeps_training_and_held_out_slices_in_alternate_bands(bank):
    train, held_out = la.datasets.slice_bank_split(bank.metadata)
    assert len(train) + len(held_out) == len(bank.metadata)
    assert not set(train) & set(held_out)
    band = ((bank.metadata["position"] - 0.2) / 0.06).astype(int).clip(0, 9)
    assert (band.iloc[train] % 2 == 0).all() and (band.iloc[held_out] % 2 == 1).all()
    with pytest.raises(ConfigError, match="bands must be an integer >= 2"):
        la.datasets.slice_bank_split(bank.metadata, bands=1)


def test_bad_arguments_and_missing_volumes(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="volumes must be names of SLICE_BANK_VOLUMES"):
        la.datasets.load_slice_bank(4, volumes=["colin"])
    with pytest.raises(ConfigError, match="n_slices must be a positive integer"):
        la.datasets.load_slice_bank(0)
    with pytest.raises(ConfigError, match="size must be an integer >= 8"):
        la.datasets.load_slice_bank(4, size=4)
    monkeypatch.setattr(_slice_bank, "_MRICRON_DIR", tmp_path)
    with pytest.raises(MissingDependencyError, match="install mricron-data"):
        la.datasets.load_slice_bank(4, volumes=["colin27_t1", "colin27_brain"])
