"""Tests of ImageFolderDataset with PNG and JPEG files written here (the CheXpert layout)."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import latentaudit as la
from latentaudit.errors import ConfigError, DataError


def _gradient(height, width):
    return np.add.outer(np.arange(height) * 3, np.arange(width) * 5).astype(np.uint8)


@pytest.fixture()
def chexpert(tmp_path):
    """CheXpert-like: <root>/small/train.csv with Path relative to root, two patients."""
    root = tmp_path
    (root / "small" / "train" / "patient1").mkdir(parents=True)
    (root / "small" / "train" / "patient2").mkdir(parents=True)
    rows = []
    for patient, view, pixels in [("patient1", "frontal", _gradient(16, 16)),
                                  ("patient1", "lateral", 255 - _gradient(16, 16)),
                                  ("patient2", "frontal", np.full((16, 16), 128, np.uint8))]:
        path = f"small/train/{patient}/view_{view}.png"
        Image.fromarray(pixels).save(root / path)
        rows.append({"Path": path, "patient": patient, "Sex": "F", "Cardiomegaly": 1.0})
    table = pd.DataFrame(rows)
    table.to_csv(root / "small" / "train.csv", index=False)
    return root, table


def test_public_name():
    assert la.ImageFolderDataset is la.data.ImageFolderDataset


def test_reads_grayscale_png_scaled_by_the_dtype_range(chexpert):
    root, table = chexpert
    ds = la.ImageFolderDataset(table, root)
    assert len(ds) == 3 and ds.image_shape == (1, 16, 16)
    np.testing.assert_allclose(ds[0]["image"][0].numpy(), _gradient(16, 16) / 127.5 - 1,
                               atol=1e-6)
    assert ds[2]["image"].unique().tolist() == pytest.approx([128 / 127.5 - 1], abs=1e-6)
    assert list(ds.ids) == table["Path"].tolist() and ds.id_column == "Path"
    assert list(ds.paths) == [str(root / p) for p in table["Path"]]


def test_patients_metadata_and_default_root(chexpert):
    root, _ = chexpert
    table = pd.read_csv(root / "small" / "train.csv")
    table["Path"] = table["Path"].str.replace("small/", "", regex=False)
    table.to_csv(root / "small" / "relative.csv", index=False)
    ds = la.ImageFolderDataset(root / "small" / "relative.csv", id_column="patient")
    assert list(ds.ids) == ["patient1", "patient1", "patient2"]
    assert list(ds.slice_index) == [0, 1, 0]
    meta = ds.metadata
    assert meta.columns[0] == "patient" and list(meta["Cardiomegaly"]) == [1.0, 1.0, 1.0]
    assert list(ds.subjects) == ["patient1", "patient2"]


def test_resizing_keeps_the_aspect_ratio_and_pads(tmp_path):
    Image.fromarray(np.full((20, 40), 255, np.uint8)).save(tmp_path / "wide.png")
    ds = la.ImageFolderDataset(pd.DataFrame({"Path": ["wide.png"]}), tmp_path, size=16)
    image = ds[0]["image"][0].numpy()
    assert image.shape == (16, 16)
    assert (image[4:12] == 1).all()  # 20x40 -> 8x16, centred
    assert (image[:4] == -1).all() and (image[12:] == -1).all()


def test_rgb_16_bit_and_jpeg_files(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb).save(tmp_path / "red.png")
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(tmp_path / "deep.png")
    Image.fromarray(_gradient(8, 8)).save(tmp_path / "photo.jpg", quality=95)
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    table = pd.DataFrame({"Path": ["red.png", "deep.png", "photo.jpg"]})
    colour = la.ImageFolderDataset(table, tmp_path, channels=3)
    assert colour.image_shape == (3, 8, 8)
    red = colour[0]["image"].numpy()
    assert (red[0] == 1).all() and (red[1:] == -1).all()
    assert (colour[1]["image"] == 1).all()  # 65535 maps to 1, repeated on 3 channels
    gray = la.ImageFolderDataset(table, tmp_path, channels=1)
    luminance = round(255 * 299 / 1000) / 127.5 - 1  # Pillow's ITU-R 601 luma of pure red
    np.testing.assert_allclose(gray[0]["image"].numpy(), luminance, atol=1e-6)
    np.testing.assert_allclose(gray[2]["image"][0].numpy(), _gradient(8, 8) / 127.5 - 1,
                               atol=0.05)


def test_percentile_and_raw_intensity(chexpert):
    root, table = chexpert
    scaled = la.ImageFolderDataset(table, root, intensity=(0, 100))[0]["image"]
    assert scaled.min() == -1 and scaled.max() == 1
    raw = la.ImageFolderDataset(table, root, intensity=None)[0]["image"][0].numpy()
    np.testing.assert_array_equal(raw, _gradient(16, 16))
    with pytest.raises(ConfigError, match="did you mean 'dtype'"):
        la.ImageFolderDataset(table, root, intensity="dtypes")
    with pytest.raises(ConfigError, match="channels"):
        la.ImageFolderDataset(table, root, channels=2)


def test_missing_table_or_columns(chexpert, tmp_path):
    root, table = chexpert
    with pytest.raises(DataError, match="does not exist"):
        la.ImageFolderDataset(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="did you mean 'Path'"):
        la.ImageFolderDataset(table, root, path_column="path")
    with pytest.raises(DataError, match="id_column 'subject' is not a column"):
        la.ImageFolderDataset(table, root, id_column="subject")
    with pytest.raises(DataError, match="root folder"):
        la.ImageFolderDataset(table, tmp_path / "elsewhere")


def test_missing_and_unreadable_files(chexpert):
    root, table = chexpert
    (root / "small" / "bad.png").write_text("not a picture")
    extra = pd.DataFrame({"Path": ["small/gone.png", "small/bad.png", None],
                          "patient": ["p3", "p4", "p5"]})
    table = pd.concat([table, extra], ignore_index=True)
    with pytest.raises(DataError, match=r"gone\.png' does not exist"):
        la.ImageFolderDataset(table, root)
    with pytest.raises(DataError, match=r"cannot read image file .*bad\.png"):
        la.ImageFolderDataset(table.drop(index=3), root)
    ds = la.ImageFolderDataset(table, root, id_column="patient", on_error="skip")
    assert len(ds) == 3
    assert ds.skipped["id"].tolist() == ["p3", "p4", "p5"]
    assert "no path" in ds.skipped["reason"].iloc[2]


def test_truncated_file_fails_at_load_time(chexpert):
    root, table = chexpert
    noise = np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)
    Image.fromarray(noise).save(root / "small" / "full.png")
    data = (root / "small" / "full.png").read_bytes()
    (root / "small" / "cut.png").write_bytes(data[: len(data) // 2])  # header kept
    table = pd.concat([table, pd.DataFrame({"Path": ["small/cut.png"]})], ignore_index=True)
    ds = la.ImageFolderDataset(table, root)
    with pytest.raises(DataError, match=r"cannot decode image file .*cut\.png"):
        ds[3]
    skipping = la.ImageFolderDataset(table, root, on_error="skip")
    assert len(skipping) == 3 and skipping.skipped["path"].tolist() == ["small/cut.png"]


def test_sizes_must_match_without_size(chexpert):
    root, table = chexpert
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(root / "small" / "odd.png")
    table = pd.concat([table, pd.DataFrame({"Path": ["small/odd.png"]})], ignore_index=True)
    with pytest.raises(DataError, match=r"images differ in size .*pass size="):
        la.ImageFolderDataset(table, root)
    assert la.ImageFolderDataset(table, root, size=(12, 12)).image_shape == (1, 12, 12)


def test_all_rows_skipped(tmp_path):
    with pytest.raises(DataError, match="all 1 rows were skipped"):
        la.ImageFolderDataset(pd.DataFrame({"Path": ["x.png"]}), tmp_path, on_error="skip")
