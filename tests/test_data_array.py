"""Tests of ArrayDataset and the ImageDataset contract (metadata alignment, bad input)."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

import latentaudit as la
from latentaudit.data import ArrayDataset, ImageDataset
from latentaudit.errors import DataError, InputShapeError


def _images(n=4, shape=(1, 8, 8)):
    return np.arange(n * int(np.prod(shape)), dtype=np.float64).reshape((n,) + shape)


def test_items_are_float32_tensors_with_their_index():
    ds = ArrayDataset(_images())
    assert isinstance(ds, ImageDataset) and la.ArrayDataset is ArrayDataset
    item = ds[2]
    assert item["index"] == 2
    assert item["image"].dtype == torch.float32 and item["image"].shape == (1, 8, 8)
    np.testing.assert_array_equal(item["image"].numpy(), _images()[2])
    assert ds.image_shape == (1, 8, 8) and ds.in_channels == 1 and ds.spatial_dims == 2
    assert ds[-1]["index"] == 3 and ds[np.int64(1)]["index"] == 1


def test_volumes_and_tensors_are_accepted():
    ds = ArrayDataset(torch.zeros(3, 2, 4, 4, 4))
    assert ds.spatial_dims == 3 and ds.image_shape == (2, 4, 4, 4) and ds.in_channels == 2


def test_default_ids_and_slice_index():
    ds = ArrayDataset(_images())
    assert list(ds.ids) == ["0", "1", "2", "3"]
    assert list(ds.slice_index) == [0, 0, 0, 0]
    assert list(ds.metadata.columns) == ["subject"]


def test_metadata_in_image_order_provides_ids_and_counts_slices():
    table = pd.DataFrame({"subject": ["a", "a", "b", "a"], "age": [1, 1, 2, 1]})
    ds = ArrayDataset(_images(), table)
    assert list(ds.ids) == ["a", "a", "b", "a"]
    assert list(ds.slice_index) == [0, 1, 0, 2]
    assert list(ds.subjects) == ["a", "b"]
    no_ids = ArrayDataset(_images(), pd.DataFrame({"age": [1, 2, 3, 4]}))
    assert list(no_ids.metadata.columns) == ["subject", "age"]
    assert list(no_ids.ids) == ["0", "1", "2", "3"]


def test_ids_join_the_table_in_image_order(tmp_path):
    table = pd.DataFrame({"subject": ["b", "a"], "site": ["B", "A"]})
    table.to_csv(tmp_path / "meta.csv", index=False)
    ds = ArrayDataset(_images(3), str(tmp_path / "meta.csv"), ids=["a", "b", "a"])
    assert list(ds.metadata["site"]) == ["A", "B", "A"]
    assert list(ds.slice_index) == [0, 0, 1]


def test_metadata_is_a_copy_and_repr_describes_the_dataset():
    ds = ArrayDataset(_images(), pd.DataFrame({"subject": list("abcd"), "sex": list("FMFM")}))
    meta = ds.metadata
    meta["sex"] = "X"
    assert list(ds.metadata["sex"]) == list("FMFM")
    assert "n_items=4" in repr(ds) and "sex" in repr(ds)


def test_dataloader_batches_images_and_indices():
    loader = DataLoader(ArrayDataset(_images()), batch_size=3)
    batch = next(iter(loader))
    assert batch["image"].shape == (3, 1, 8, 8)
    assert batch["index"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(metadata=pd.DataFrame({"subject": ["a", "b"]})), DataError, "2 rows but there are 4"),
    (dict(ids=["a", "b"]), DataError, "got 2 ids for 4 images"),
    (dict(ids=list("abcd"), metadata=pd.DataFrame({"subject": ["a", "b"]})), DataError,
     r"missing from the metadata table .*'c', 'd'"),
    (dict(ids=list("abcd"), metadata=pd.DataFrame({"subject": list("abca")})), DataError,
     "repeated ids"),
    (dict(ids=list("abcd"), metadata=pd.DataFrame({"name": list("abcd")})), DataError,
     "no id column 'subject'"),
    (dict(metadata="missing.csv"), DataError, "does not exist"),
    (dict(metadata=[1, 2, 3, 4]), DataError, "must be a pandas DataFrame"),
    (dict(slice_index=[0, 1]), DataError, "slice_index must have one entry per image"),
])
def test_bad_metadata(kwargs, error, match):
    with pytest.raises(error, match=match):
        ArrayDataset(_images(), **kwargs)


def test_bad_images():
    with pytest.raises(InputShapeError, match=r"\(N, C, H, W\) or \(N, C, D, H, W\)"):
        ArrayDataset(np.zeros((4, 8, 8)))
    with pytest.raises(DataError, match="real numbers"):
        ArrayDataset(np.zeros((2, 1, 4, 4), dtype=complex))
    images = _images()
    images[2, 0, 3, 3] = np.nan
    with pytest.raises(DataError, match="NaN or infinite values in 1 image.*index 2"):
        ArrayDataset(images)
    assert len(ArrayDataset(images, check_finite=False)) == 4


def test_bad_indices():
    ds = ArrayDataset(_images())
    with pytest.raises(IndexError, match="out of range"):
        ds[4]
    with pytest.raises(TypeError, match="must be an int"):
        ds["0"]


def test_csv_ids_keep_leading_zeros(tmp_path):
    path = tmp_path / "meta.csv"
    path.write_text("subject,age\n001,30\n002,40\n")
    ds = la.ArrayDataset(np.zeros((2, 1, 4, 4), dtype="float32"), metadata=str(path))
    assert list(ds.ids) == ["001", "002"]
    joined = la.ArrayDataset(np.zeros((2, 1, 4, 4), dtype="float32"), metadata=str(path),
                             ids=["002", "001"])
    assert list(joined.metadata["age"]) == [40, 30]
