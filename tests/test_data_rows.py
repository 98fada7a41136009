"""Tests of latentaudit.data.RowImages: the one accessor of the image behind a row."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import latentaudit as la
from latentaudit.data import RowImages, item_image
from latentaudit.errors import DataError, InputShapeError, InputTypeError


def _images(n=6, spatial_dims=2, size=8):
    return np.arange(n * size**spatial_dims, dtype=np.float32).reshape(
        (n, 1) + (size,) * spatial_dims)


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("kind", ["array", "tensor", "dataset", "tuples", "memmap"])
def test_every_source_gives_the_same_rows(kind, spatial_dims, tmp_path):
    images = _images(spatial_dims=spatial_dims)
    source = {"array": lambda: images, "tensor": lambda: torch.from_numpy(images),
              "dataset": lambda: la.ArrayDataset(images),
              "tuples": lambda: [(torch.from_numpy(im), 0) for im in images]}
    if kind == "memmap":
        path = tmp_path / "x.npy"
        np.save(path, images)
        given = np.load(path, mmap_mode="r")
    else:
        given = source[kind]()
    rows = RowImages(given, rows=[5, 0, 3])
    assert len(rows) == 3 and rows.spatial_dims == spatial_dims
    np.testing.assert_array_equal(rows.get([0, 2]), images[[5, 3]])
    item = rows[1]
    assert item["index"] == 1 and item["image"].dtype == torch.float32
    np.testing.assert_array_equal(item["image"].numpy(), images[0])
    # a subset of a subset keeps pointing at the source
    np.testing.assert_array_equal(rows.subset([2]).get([0]), images[[3]])
    batches = list(rows.batches([2, 1, 0], 2))
    assert [b[0].tolist() for b in batches] == [[2, 1], [0]]


def test_a_dataset_is_read_lazily_and_labels_travel_with_the_items():
    reads = []

    class Counting(torch.utils.data.Dataset):
        image_shape = (1, 4, 4)

        def __len__(self):
            return 100

        def __getitem__(self, i):
            reads.append(i)
            return {"image": torch.full((1, 4, 4), float(i))}

    rows = RowImages(Counting(), rows=[7, 9], labels=[1, 0])
    assert reads == []  # the shape comes from the dataset, no item was read
    item = rows[0]
    assert reads == [7] and int(item["label"]) == 1
    batch = next(iter(torch.utils.data.DataLoader(rows, batch_size=2)))
    assert batch["label"].tolist() == [1, 0] and batch["image"][:, 0, 0, 0].tolist() == [7, 9]


def test_match_takes_the_middle_slice_of_each_subject():
    ids = ["a", "b", "a", "b", "a", "c"]
    slices = [2, 1, 0, 0, 1, 0]
    ds = la.ArrayDataset(_images(6), ids=ids, slice_index=slices)
    rows = RowImages.match(ds, ["c", "a", "b"])
    # a: slices 0, 1, 2 at positions 2, 4, 0 -> slice 1 (position 4); b: slices 0, 1 -> 0
    assert rows.rows.tolist() == [5, 4, 3]
    assert rows.ids.tolist() == ["c", "a", "b"] and rows.names([1]) == ["a"]
    with pytest.raises(DataError, match="have no image"):
        RowImages.match(ds, ["a", "zz"])
    with pytest.raises(DataError, match="give one image per row"):
        RowImages.match(_images(3), ["a", "b"])


def test_bad_inputs_are_explained():
    with pytest.raises(InputTypeError):
        RowImages("images")
    with pytest.raises(InputShapeError):
        RowImages(np.zeros(3))
    with pytest.raises(InputShapeError, match="spatial_dims=3"):
        RowImages(_images(2), spatial_dims=3)
    with pytest.raises(DataError, match="empty"):
        RowImages([])
    with pytest.raises(DataError, match="positions in 0..1"):
        RowImages(_images(2), rows=[2])
    with pytest.raises(InputTypeError, match="'image'"):
        item_image({"img": 0})
    bad = RowImages([np.zeros((1, 4, 4)), np.zeros((1, 5, 5))])
    with pytest.raises(InputShapeError, match="all must match"):
        bad.get([1])
