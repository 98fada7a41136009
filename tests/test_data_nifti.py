"""Tests of NiftiDataset on real MRI volumes (Debian mricron-data, nilearn, nibabel)."""

import gzip
import logging
import os
import pickle
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

import latentaudit as la
from latentaudit.data import center_slices, scale_intensity, slice_to_image
from latentaudit.errors import ConfigError, DataError, InputShapeError

TEMPLATES = "/usr/share/mricron/templates"
ANATOMICAL = os.path.join(os.path.dirname(nib.__file__), "tests", "data", "anatomical.nii")

pytestmark = pytest.mark.skipif(
    not os.path.exists(os.path.join(TEMPLATES, "ch2.nii.gz")),
    reason="the Debian package mricron-data (Colin27 templates) is not installed")


def _mni_path():
    import nilearn

    return os.path.join(os.path.dirname(nilearn.__file__), "datasets", "data",
                        "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")


def _downsample(src, dst, factor=4):
    """Keep every factor-th voxel of a real volume (fast tests, real anatomy)."""
    img = nib.load(src)
    data = np.asanyarray(img.dataobj)[::factor, ::factor, ::factor]
    affine = img.affine.copy()
    affine[:3, :3] *= factor
    nib.save(nib.Nifti1Image(data, affine), dst)
    return dst


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """A folder of three real heads at 4 mm: ch2, ch2bet (46x55x46) and mni (50x59x48)."""
    folder = tmp_path_factory.mktemp("vols")
    _downsample(os.path.join(TEMPLATES, "ch2.nii.gz"), folder / "ch2.nii.gz")
    _downsample(os.path.join(TEMPLATES, "ch2bet.nii.gz"), folder / "ch2bet.nii.gz")
    _downsample(_mni_path(), folder / "mni.nii.gz")
    return folder


@pytest.fixture()
def pair(cohort):
    """ch2 and ch2bet: two volumes of one shape."""
    return [str(cohort / "ch2.nii.gz"), str(cohort / "ch2bet.nii.gz")]


def _expected_stack(path, slice_axis=0, percentiles=(0.5, 99.5)):
    """The documented pipeline, written out with nibabel and the public transforms."""
    img = nib.as_closest_canonical(nib.load(path))
    data = img.get_fdata(dtype=np.float32)
    if percentiles is not None:
        data = scale_intensity(data, *percentiles)
    return slice_to_image(data, slice_axis)


def _all_images(ds):
    return np.stack([ds[i]["image"].numpy() for i in range(len(ds))])


# -- the 3-D and 2-D paths ----------------------------------------------------------------
def test_public_names():
    assert la.NiftiDataset is la.data.NiftiDataset
    assert issubclass(la.NiftiDataset, la.data.ImageDataset)


def test_3d_items_follow_the_documented_pipeline(pair):
    ds = la.NiftiDataset(pair)
    assert len(ds) == 2 and ds.spatial_dims == 3
    assert ds.image_shape == (1, 46, 46, 55)  # (L->R, S->I, A->P) at 4 mm
    item = ds[1]
    assert item["index"] == 1
    assert item["image"].dtype == torch.float32 and tuple(item["image"].shape) == ds.image_shape
    np.testing.assert_allclose(item["image"][0].numpy(), _expected_stack(pair[1]), atol=1e-6)
    assert list(ds.ids) == ["ch2", "ch2bet"]
    assert list(ds.slice_index) == [0, 0]
    assert list(ds.metadata["subject"]) == ["ch2", "ch2bet"]


def test_folder_input_finds_nifti_files_sorted(cohort):
    (cohort / "notes.txt").write_text("not an image")
    ds = la.NiftiDataset(cohort, size=(16, 16, 16))
    assert list(ds.ids) == ["ch2", "ch2bet", "mni"]
    assert list(ds.paths) == [str(cohort / f"{n}.nii.gz") for n in ("ch2", "ch2bet", "mni")]
    assert ds.image_shape == (1, 16, 16, 16)
    assert "n_subjects=3" in repr(ds)


def test_2d_slices_keep_subject_ids_and_slice_positions(pair):
    ds = la.NiftiDataset(pair, spatial_dims=2, n_slices=4)
    assert len(ds) == 8 and ds.image_shape == (1, 46, 55)
    assert list(ds.ids) == ["ch2"] * 4 + ["ch2bet"] * 4
    assert list(ds.slice_index) == [0, 1, 2, 3] * 2
    assert list(ds.subjects) == ["ch2", "ch2bet"]
    assert len(ds.metadata) == 8
    expected = _expected_stack(pair[1])  # one scaling for the whole volume
    for k, position in enumerate(center_slices(46, 4)):
        np.testing.assert_allclose(ds[4 + k]["image"][0].numpy(), expected[position], atol=1e-6)


@pytest.mark.parametrize("slice_axis", [1, 2])
def test_2d_slices_along_other_axes(pair, slice_axis):
    ds = la.NiftiDataset(pair[:1], spatial_dims=2, slice_axis=slice_axis, n_slices=1)
    expected = _expected_stack(pair[0], slice_axis)
    middle = center_slices(expected.shape[0], 1)[0]
    np.testing.assert_allclose(ds[0]["image"][0].numpy(), expected[middle], atol=1e-6)


def test_n_slices_none_takes_every_slice(pair):
    ds = la.NiftiDataset(pair[:1], spatial_dims=2, slice_axis=2, n_slices=None)
    assert len(ds) == 46
    assert list(ds.slice_index) == list(range(46))


def test_canonical_reorientation_gives_the_same_items(tmp_path, pair):
    img = nib.load(pair[0])
    # the same head stored as PIL (posterior, inferior, left): other voxel order, same world
    transform = nib.orientations.ornt_transform(nib.io_orientation(img.affine),
                                                nib.orientations.axcodes2ornt("PIL"))
    flipped = img.as_reoriented(transform)
    assert nib.aff2axcodes(flipped.affine) == ("P", "I", "L")
    nib.save(flipped, tmp_path / "ch2.nii.gz")
    kwargs = dict(spatial_dims=2, n_slices=3, size=(40, 40))
    original = _all_images(la.NiftiDataset(pair[:1], **kwargs))
    reoriented = _all_images(la.NiftiDataset([str(tmp_path / "ch2.nii.gz")], **kwargs))
    np.testing.assert_allclose(reoriented, original, atol=1e-6)
    raw = _all_images(la.NiftiDataset([str(tmp_path / "ch2.nii.gz")], canonical=False,
                                      **kwargs))
    assert not np.allclose(raw, original)


def test_real_las_file_is_flipped_to_ras():
    ds = la.NiftiDataset([ANATOMICAL], spatial_dims=2, n_slices=1)
    data = np.asanyarray(nib.load(ANATOMICAL).dataobj).astype(np.float32)[::-1]  # LAS->RAS
    expected = slice_to_image(scale_intensity(data), 0)[16]
    np.testing.assert_allclose(ds[0]["image"][0].numpy(), expected, atol=1e-6)
    assert ds.image_shape == (1, 25, 41)


def test_arrange_lays_masks_drawn_on_the_file_over_the_items(tmp_path, pair):
    """A mask drawn on the stored voxels goes through what the image went through
    (reorientation of a PIL file, slicing, padding and cropping, random crops), in 3-D and
    in 2-D; integer labels keep their values; a resampled mask still covers its region."""
    img = nib.load(pair[0])
    transform = nib.orientations.ornt_transform(nib.io_orientation(img.affine),
                                                nib.orientations.axcodes2ornt("PIL"))
    flipped = img.as_reoriented(transform)
    path = str(tmp_path / "ch2.nii.gz")
    nib.save(flipped, path)
    stored = flipped.get_fdata(dtype=np.float32)
    bright = stored > 50
    for kwargs in (dict(size=(40, 50, 60)),
                   dict(spatial_dims=2, n_slices=3, size=(24, 24), crop="random",
                        random_state=0)):
        ds = la.NiftiDataset([path], spacing=4.0, intensity=None, **kwargs)
        for i in range(len(ds)):
            image = ds[i]["image"].numpy()
            arranged = ds.arrange(bright, i)
            assert arranged.dtype == bool and arranged.shape == image.shape
            np.testing.assert_array_equal(arranged, image > 50)
            labels = ds.arrange(bright.astype(np.int16) * 3, i)
            assert labels.dtype == np.int64
            np.testing.assert_array_equal(labels, 3 * (image > 50))
    coarse = la.NiftiDataset([path], spacing=8.0, intensity=None)
    image, arranged = coarse[0]["image"].numpy(), coarse.arrange(bright, 0)
    assert arranged.shape == image.shape and np.mean(arranged == (image > 50)) > 0.9
    with pytest.raises(InputShapeError, match="shaped like the voxels"):
        coarse.arrange(np.zeros((4, 4, 4), bool), 0)


# -- resampling, size, crop ---------------------------------------------------------------
def test_spacing_resamples_from_the_header_zooms(pair):
    ds = la.NiftiDataset(pair, spacing=8.0)
    assert ds.image_shape == (1, 23, 23, 28)
    assert tuple(ds[0]["image"].shape) == (1, 23, 23, 28)
    same = la.NiftiDataset(pair[:1], spacing=(4.0, 4.0, 4.0))
    np.testing.assert_allclose(same[0]["image"][0].numpy(), _expected_stack(pair[0]), atol=1e-6)


def test_2d_spacing_resamples_in_plane_only(pair):
    ds = la.NiftiDataset(pair[:1], spatial_dims=2, n_slices=2, spacing=(2.0, 8.0))
    assert ds.image_shape == (1, 92, 28)
    ds_anat = la.NiftiDataset([ANATOMICAL], spatial_dims=2, n_slices=33, spacing=1.0)
    assert ds_anat.image_shape == (1, 50, 82)  # 2 mm voxels, all 33 slices kept


def test_size_alone_fits_the_field_of_view_keeping_its_aspect_ratio(pair):
    # a sagittal slice covers 184 mm (S-I) x 220 mm (A-P); fit into 32 x 64
    ds = la.NiftiDataset(pair[:1], spatial_dims=2, n_slices=1, size=(32, 64))
    image = ds[0]["image"][0].numpy()
    assert image.shape == (32, 64)
    columns = np.flatnonzero((image > -1).any(axis=0))
    width = 220 * 32 / 184  # about 38 columns
    assert (image[:, :12] == -1).all() and (image[:, 52:] == -1).all()
    assert width - 3 <= columns[-1] - columns[0] + 1 <= width + 1


def test_spacing_and_size_pad_and_crop_around_the_centre(pair):
    ds = la.NiftiDataset(pair[:1], spacing=4.0, size=(40, 50, 60))
    full = _expected_stack(pair[0])  # (46, 46, 55)
    image = ds[0]["image"][0].numpy()
    # depth 46 -> 40 crops 3 on each side; 46 -> 50 rows and 55 -> 60 columns pad with -1
    np.testing.assert_allclose(image[:, 2:48, 2:57], full[3:43], atol=1e-6)
    assert (image[:, :2] == -1).all() and (image[:, 48:] == -1).all()
    assert (image[:, :, :2] == -1).all() and (image[:, :, 57:] == -1).all()


def test_random_crop_is_reproducible_with_random_state(pair):
    kwargs = dict(spatial_dims=2, n_slices=3, spacing=4.0, size=(24, 24), crop="random")
    a = la.NiftiDataset(pair, random_state=0, **kwargs)
    b = la.NiftiDataset(pair, random_state=0, **kwargs)
    c = la.NiftiDataset(pair, random_state=1, **kwargs)
    images_a = _all_images(a)
    np.testing.assert_array_equal(images_a, _all_images(b))
    np.testing.assert_array_equal(images_a, _all_images(a))  # reading again: same crops
    assert not np.array_equal(images_a, _all_images(c))
    a.set_epoch(1)
    assert not np.array_equal(images_a, _all_images(a))
    a.set_epoch(0)
    np.testing.assert_array_equal(images_a, _all_images(a))
    with pytest.raises(ConfigError, match="epoch"):
        a.set_epoch(-1)


def test_center_crop_is_the_middle_window(pair):
    full = la.NiftiDataset(pair[:1], spatial_dims=2, n_slices=1, spacing=4.0)
    cropped = la.NiftiDataset(pair[:1], spatial_dims=2, n_slices=1, spacing=4.0,
                              size=(20, 30), crop="center")
    np.testing.assert_array_equal(cropped[0]["image"][0].numpy(),
                                  full[0]["image"][0].numpy()[13:33, 12:42])


def test_intensity_range_and_raw_values(pair):
    images = _all_images(la.NiftiDataset(pair, spatial_dims=2, n_slices=5))
    assert images.min() == -1.0 and images.max() <= 1.0
    scaled = la.NiftiDataset(pair[:1])[0]["image"]
    assert scaled.min() == -1.0 and scaled.max() == 1.0
    raw = la.NiftiDataset(pair[:1], intensity=None)[0]["image"]
    data = np.asanyarray(nib.load(pair[0]).dataobj)
    assert raw.max().item() == data.max() and raw.min().item() == data.min()
    minmax = la.NiftiDataset(pair[:1], intensity=(0, 100))[0]["image"]
    np.testing.assert_allclose(minmax.numpy(), (raw.numpy() - data.min()) / (
        data.max() - data.min()) * 2 - 1, atol=1e-5)


# -- metadata -----------------------------------------------------------------------------
def test_metadata_is_joined_on_the_id_column(tmp_path, pair):
    table = pd.DataFrame({"site": ["B", "A"], "subject": ["ch2bet", "ch2"], "age": [50, 40]})
    table.to_csv(tmp_path / "participants.tsv", sep="\t", index=False)
    for metadata in (table, str(tmp_path / "participants.tsv")):
        ds = la.NiftiDataset(pair, metadata, spatial_dims=2, n_slices=2)
        meta = ds.metadata
        assert list(meta.columns) == ["subject", "site", "age"]
        assert list(meta["site"]) == ["A", "A", "B", "B"]
        assert list(meta["age"]) == [40, 40, 50, 50]


def test_ids_parameter_and_custom_id_column(pair):
    table = pd.DataFrame({"participant": ["p2", "p1"], "sex": ["F", "M"]})
    ds = la.NiftiDataset(pair, table, id_column="participant", ids=["p1", "p2"])
    assert list(ds.ids) == ["p1", "p2"]
    assert list(ds.metadata["sex"]) == ["M", "F"]
    with pytest.raises(DataError, match="got 1 ids for 2 inputs"):
        la.NiftiDataset(pair, ids=["p1"])
    with pytest.raises(DataError, match="no id column 'subject'"):
        la.NiftiDataset(pair, table)


def test_ids_missing_from_the_metadata(pair, caplog):
    table = pd.DataFrame({"subject": ["ch2"], "age": [40]})
    with pytest.raises(DataError, match=r"missing from the metadata table .*ch2bet"):
        la.NiftiDataset(pair, table)
    with caplog.at_level(logging.WARNING, logger="latentaudit"):
        ds = la.NiftiDataset(pair, table, on_error="skip")
    assert list(ds.ids) == ["ch2"]
    assert ds.skipped.to_dict("records") == [
        {"path": pair[1], "id": "ch2bet", "reason": "id not in the metadata table"}]
    assert "skipped 1 input" in caplog.text


def test_metadata_rows_without_a_file(pair):
    table = pd.DataFrame({"subject": ["ch2", "ch2bet", "ghost"], "age": [40, 50, 60]})
    with pytest.raises(DataError, match=r"have no input file: 'ghost'"):
        la.NiftiDataset(pair, table)
    ds = la.NiftiDataset(pair, table, on_error="skip")
    assert len(ds) == 2
    assert ds.skipped.to_dict("records") == [
        {"path": None, "id": "ghost", "reason": "metadata row has no input file"}]


# -- bad input ----------------------------------------------------------------------------
def test_missing_folder_and_folder_without_nifti(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        la.NiftiDataset(tmp_path / "nowhere")
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(DataError, match=r"holds no NIfTI file"):
        la.NiftiDataset(tmp_path, on_error="skip")
    with pytest.raises(DataError, match="empty list"):
        la.NiftiDataset([])


def test_missing_file_in_a_list(pair, tmp_path):
    paths = pair + [str(tmp_path / "gone.nii.gz")]
    with pytest.raises(DataError, match=r"gone\.nii\.gz' does not exist"):
        la.NiftiDataset(paths)
    ds = la.NiftiDataset(paths, on_error="skip")
    assert list(ds.ids) == ["ch2", "ch2bet"]
    assert ds.skipped["id"].tolist() == ["gone"]


def test_unreadable_file(pair, tmp_path):
    bad = tmp_path / "garbage.nii.gz"
    bad.write_bytes(b"this is not a NIfTI file at all" * 20)
    with pytest.raises(DataError, match=r"cannot read NIfTI file .*garbage\.nii\.gz"):
        la.NiftiDataset(pair + [str(bad)])
    ds = la.NiftiDataset(pair + [str(bad)], on_error="skip")
    assert ds.skipped["path"].tolist() == [str(bad)]


def test_truncated_file_fails_at_load_time_naming_it(pair, tmp_path):
    truncated = tmp_path / "cut.nii.gz"
    with gzip.open(pair[0]) as f:
        raw = f.read()
    with gzip.open(truncated, "wb") as f:
        f.write(raw[: len(raw) // 3])  # the header survives, most voxels are gone
    ds = la.NiftiDataset([str(truncated)] + pair)  # headers are fine
    with pytest.raises(DataError, match=r"cannot read the voxel data .*cut\.nii\.gz"):
        ds[0]
    assert ds[1]["image"].shape == (1, 46, 46, 55)
    skipping = la.NiftiDataset([str(truncated)] + pair, on_error="skip")
    assert list(skipping.ids) == ["ch2", "ch2bet"]
    assert "cut.nii.gz" in skipping.skipped["reason"].iloc[0]


def test_non_finite_values(pair, tmp_path):
    img = nib.load(pair[0])
    data = img.get_fdata(dtype=np.float32)
    data[10, 10, 10] = np.nan
    data[11, 10, 10] = np.inf
    nib.save(nib.Nifti1Image(data, img.affine), tmp_path / "nan.nii.gz")
    paths = [str(tmp_path / "nan.nii.gz"), pair[1]]
    ds = la.NiftiDataset(paths)
    with pytest.raises(DataError, match=r"nan\.nii\.gz' contains 2 NaN or infinite"):
        ds[0]
    skipping = la.NiftiDataset(paths, on_error="skip")
    assert list(skipping.ids) == ["ch2bet"]
    assert "NaN" in skipping.skipped["reason"].iloc[0]


def test_4d_files(pair, tmp_path):
    img = nib.load(pair[0])
    data = np.asanyarray(img.dataobj)
    nib.save(nib.Nifti1Image(data[..., None], img.affine), tmp_path / "single.nii.gz")
    nib.save(nib.Nifti1Image(np.stack([data, data], -1), img.affine), tmp_path / "multi.nii.gz")
    single = la.NiftiDataset([str(tmp_path / "single.nii.gz")])
    np.testing.assert_array_equal(single[0]["image"].numpy(),
                                  la.NiftiDataset(pair[:1])[0]["image"].numpy())
    with pytest.raises(DataError, match=r"multi\.nii\.gz' is 4-D with 2 volumes"):
        la.NiftiDataset([str(tmp_path / "multi.nii.gz")])
    ds = la.NiftiDataset([str(tmp_path / "multi.nii.gz")] + pair, on_error="skip")
    assert len(ds) == 2 and "4-D" in ds.skipped["reason"].iloc[0]


def test_too_few_slices(pair):
    with pytest.raises(DataError, match=r"anatomical\.nii' has 33 slices .*n_slices=40"):
        la.NiftiDataset([ANATOMICAL], spatial_dims=2, n_slices=40)
    ds = la.NiftiDataset([ANATOMICAL] + pair, spatial_dims=2, slice_axis=0, n_slices=40,
                         size=(32, 32), on_error="skip")
    assert list(ds.subjects) == ["ch2", "ch2bet"]
    assert ds.skipped["id"].tolist() == ["anatomical"]


def test_different_shapes_need_size(cohort):
    with pytest.raises(DataError, match=r"items differ in shape .*pass size="):
        la.NiftiDataset(cohort)


def test_repeated_ids_and_all_skipped(pair, tmp_path):
    shutil.copy(pair[0], tmp_path / "ch2.nii.gz")
    with pytest.raises(DataError, match="share the id"):
        la.NiftiDataset([pair[0], str(tmp_path / "ch2.nii.gz")])
    with pytest.raises(DataError, match="all were skipped"):
        la.NiftiDataset([str(tmp_path / "missing.nii")], on_error="skip")


@pytest.mark.parametrize("kwargs, match", [
    (dict(crop="centre"), "did you mean 'center'"),
    (dict(on_error="ignore"), "on_error must be one of"),
    (dict(spatial_dims=4), "spatial_dims must be 2 or 3"),
    (dict(n_slices=4), "n_slices applies to spatial_dims=2"),
    (dict(spatial_dims=2, n_slices=0), "n_slices must be a positive integer"),
    (dict(size=(8, 8)), "3 positive ints"),
    (dict(spacing=-1.0), "spacing must be positive"),
    (dict(intensity=(99, 1)), "0 <= lower < upper"),
    (dict(cache_size=-1), "cache_size"),
    (dict(slice_axis=5), "slice_axis"),
])
def test_bad_parameters(pair, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        la.NiftiDataset(pair, **kwargs)


# -- caching and workers ------------------------------------------------------------------
def test_consecutive_slices_read_the_file_once(pair):
    ds = la.NiftiDataset(pair, spatial_dims=2, n_slices=4)
    calls = []
    original = ds._read_volume
    ds._read_volume = lambda source: calls.append(source) or original(source)
    _all_images(ds)
    assert calls == pair
    image = ds[0]["image"]
    image += 5  # the item is a copy: the cache must not change
    assert ds[0]["image"].max() <= 1.0
    uncached = la.NiftiDataset(pair[:1], spatial_dims=2, n_slices=4, cache_size=0)
    calls.clear()
    original = uncached._read_volume
    uncached._read_volume = lambda source: calls.append(source) or original(source)
    _all_images(uncached)
    assert len(calls) == 4


def test_pickling_leaves_the_cache_behind(pair):
    ds = la.NiftiDataset(pair, spatial_dims=2, n_slices=2)
    expected = _all_images(ds)
    clone = pickle.loads(pickle.dumps(ds))
    assert len(pickle.dumps(ds)) < 100_000
    np.testing.assert_array_equal(_all_images(clone), expected)


def test_dataloader_with_two_workers_gives_the_same_items(pair):
    torch.set_num_threads(1)
    ds = la.NiftiDataset(pair, spatial_dims=2, n_slices=3, spacing=4.0, size=(32, 32),
                         crop="random", random_state=7)
    expected = _all_images(ds)
    loader = DataLoader(ds, batch_size=2, num_workers=2, shuffle=False)
    batches = list(loader)
    images = torch.cat([b["image"] for b in batches]).numpy()
    indices = torch.cat([b["index"] for b in batches]).tolist()
    assert indices == list(range(6))
    np.testing.assert_array_equal(images, expected)


def test_unusable_affine(pair, tmp_path):
    flat = tmp_path / "flat.nii"
    nib.save(nib.load(pair[0]), flat)
    header = nib.load(flat).header.copy()
    header["srow_z"] = [0, 0, 0, 0]  # the third voxel axis has no extent
    header["qform_code"] = 0
    with open(flat, "r+b") as f:
        f.write(header.binaryblock)
    with pytest.raises(DataError, match=r"flat\.nii' has an unusable affine"):
        la.NiftiDataset([str(flat)])
    ds = la.NiftiDataset([str(flat)] + pair, on_error="skip")
    assert ds.skipped["id"].tolist() == ["flat"]


def test_metadata_with_repeated_ids(pair):
    table = pd.DataFrame({"subject": ["ch2", "ch2", "ch2bet"]})
    with pytest.raises(DataError, match="repeated ids"):
        la.NiftiDataset(pair, table, on_error="skip")
