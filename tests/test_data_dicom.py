"""Tests of DicomDataset with pydicom's bundled test files."""

import sys

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import latentaudit as la
from latentaudit.errors import DataError, MissingDependencyError

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402

N_SLICES, STEP = 6, 2.0


def _mr(k, step=STEP, position=True, instance=None):
    """MR_small.dcm moved k steps up (superior); its pixels raised by 10 * k."""
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    pixels = ds.pixel_array.astype(np.int16) + 10 * k
    ds.PixelData = pixels.tobytes()
    if position:
        ipp = [float(v) for v in ds.ImagePositionPatient]
        ipp[2] += k * step
        ds.ImagePositionPatient = ipp
    else:
        del ds.ImagePositionPatient
    ds.InstanceNumber = k + 1 if instance is None else instance
    return ds


def _write_series(folder, n=N_SLICES, slope=None, intercept=None, **kwargs):
    """A series whose file names are out of slice order."""
    folder.mkdir(parents=True)
    for k in range(n):
        ds = _mr(k, **kwargs)
        if slope is not None:
            ds.RescaleSlope = slope
            ds.RescaleIntercept = intercept
        ds.save_as(folder / f"img{(n - k) * 7 % 11:03d}.dcm")
    return folder


def _pixels():
    return pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array.astype(np.float32)


@pytest.fixture()
def series_root(tmp_path):
    _write_series(tmp_path / "dicom" / "s1")
    _write_series(tmp_path / "dicom" / "s2", slope=2, intercept=-5)
    return tmp_path / "dicom"


def test_public_name():
    assert la.DicomDataset is la.data.DicomDataset


def test_series_are_sorted_by_position_and_rescaled(series_root):
    ds = la.DicomDataset(series_root, slice_axis=2, intensity=None)
    assert list(ds.ids) == ["s1", "s2"]
    assert ds.image_shape == (1, N_SLICES, 64, 64)
    first, second = ds[0]["image"][0].numpy(), ds[1]["image"][0].numpy()
    pixels = _pixels()
    for k in range(N_SLICES):  # inferior to superior; rows anterior-first, patient right left
        np.testing.assert_array_equal(first[k], pixels + 10 * k)
        np.testing.assert_array_equal(second[k], 2 * (pixels + 10 * k) - 5)


def test_dicom_and_nifti_of_one_volume_give_the_same_items(series_root, tmp_path):
    header = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    x0, y0, z0 = (float(v) for v in header.ImagePositionPatient)
    spacing = float(header.PixelSpacing[0])
    # axial LPS slices; RAS flips x and y
    affine = np.array([[-spacing, 0, 0, -x0], [0, -spacing, 0, -y0], [0, 0, STEP, z0],
                       [0, 0, 0, 1]])
    volume = np.stack([_pixels() + 10 * k for k in range(N_SLICES)])  # (slices, rows, cols)
    nib.save(nib.Nifti1Image(volume.transpose(2, 1, 0), affine), tmp_path / "s1.nii.gz")
    kwargs = dict(spatial_dims=2, n_slices=3, size=(32, 32))
    dicom = la.DicomDataset([series_root / "s1"], **kwargs)
    nifti = la.NiftiDataset([str(tmp_path / "s1.nii.gz")], **kwargs)
    for k in range(3):
        np.testing.assert_allclose(dicom[k]["image"].numpy(), nifti[k]["image"].numpy(),
                                   atol=1e-5)


def test_2d_slices_spacing_and_metadata(series_root):
    table = pd.DataFrame({"subject": ["s2", "s1"], "scanner": ["B", "A"]})
    ds = la.DicomDataset(series_root, table, spatial_dims=2, slice_axis=2, n_slices=4,
                         intensity=None)
    assert len(ds) == 8
    assert list(ds.slice_index) == [0, 1, 2, 3] * 2
    assert list(ds.metadata["scanner"]) == ["A"] * 4 + ["B"] * 4
    np.testing.assert_array_equal(ds[0]["image"][0].numpy(), _pixels() + 10)  # slices 1..4
    resampled = la.DicomDataset(series_root, slice_axis=2, spacing=(STEP, 0.625, 0.625))
    assert resampled.image_shape == (1, N_SLICES, 32, 32)
    sagittal = la.DicomDataset(series_root)
    assert sagittal.image_shape == (1, 64, N_SLICES, 64)
    assert sagittal[0]["image"].min() == -1.0 and sagittal[0]["image"].max() == 1.0


def test_single_file_series_and_folder_of_files(tmp_path, series_root):
    ct = la.DicomDataset([get_testdata_file("CT_small.dcm")], slice_axis=2, intensity=None)
    assert list(ct.ids) == ["CT_small"]
    raw = pydicom.dcmread(get_testdata_file("CT_small.dcm")).pixel_array
    np.testing.assert_array_equal(ct[0]["image"][0, 0].numpy(), raw - 1024.0)
    one = la.DicomDataset(series_root / "s1")  # a folder of files is one series
    assert list(one.ids) == ["s1"] and len(one) == 1


def test_instance_numbers_order_slices_without_positions(tmp_path):
    folder = tmp_path / "nopos"
    folder.mkdir()
    for k in range(4):
        _mr(k, position=False, instance=4 - k).save_as(folder / f"{k}.dcm")
    ds = la.DicomDataset([folder], slice_axis=2, intensity=None)
    image = ds[0]["image"][0].numpy()
    np.testing.assert_array_equal(image[0], _pixels() + 30)  # InstanceNumber 1 first


def test_bad_series(tmp_path, series_root):
    with pytest.raises(DataError, match="does not exist"):
        la.DicomDataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no DICOM series"):
        la.DicomDataset(tmp_path / "empty")

    (series_root / "s2" / "notes.txt").write_text("acquired on a Tuesday")
    with pytest.raises(DataError, match=r"cannot read DICOM file .*notes\.txt"):
        la.DicomDataset(series_root)
    ds = la.DicomDataset(series_root, on_error="skip")
    assert list(ds.ids) == ["s1"]
    assert ds.skipped["id"].tolist() == ["s2"] and "notes.txt" in ds.skipped["reason"][0]


@pytest.mark.parametrize("problem, match", [
    ("repeated", "several slices at one position"),
    ("uneven", "unevenly spaced slices"),
    ("mixed", "mixes image sizes"),
])
def test_inconsistent_series(tmp_path, problem, match):
    folder = tmp_path / "bad"
    folder.mkdir()
    for k in range(4):
        _mr(k).save_as(folder / f"{k}.dcm")
    if problem == "repeated":
        _mr(2).save_as(folder / "again.dcm")
    elif problem == "uneven":
        _mr(6).save_as(folder / "far.dcm")
    else:
        pydicom.dcmread(get_testdata_file("CT_small.dcm")).save_as(folder / "ct.dcm")
    with pytest.raises(DataError, match=match):
        la.DicomDataset([folder])


def test_truncated_pixel_data_fails_at_load_time(tmp_path, series_root):
    folder = tmp_path / "cut"
    folder.mkdir()
    for k in range(3):
        ds = _mr(k)
        if k == 1:
            ds.PixelData = ds.PixelData[:100]
        ds.save_as(folder / f"{k}.dcm")
    paths = [folder, series_root / "s1"]
    ds = la.DicomDataset(paths, spatial_dims=2, slice_axis=2, n_slices=3)
    with pytest.raises(DataError, match=r"cannot decode the pixel data of DICOM file .*1\.dcm"):
        ds[0]
    skipping = la.DicomDataset(paths, spatial_dims=2, slice_axis=2, n_slices=3,
                               on_error="skip")
    assert list(skipping.subjects) == ["s1"]


def test_missing_pydicom_names_the_extra(monkeypatch, series_root):
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(MissingDependencyError, match=r"latentaudit\[dicom\]"):
        la.DicomDataset(series_root)
