"""Tests of region-of-interest views (latentaudit.data.ROI) on Colin27 and its AAL atlas."""

import os
import shutil

import nibabel as nib
import numpy as np
import pytest

import latentaudit as la
from latentaudit.data import ROI, slice_to_image
from latentaudit.errors import ConfigError, DataError, InputTypeError

TEMPLATES = "/usr/share/mricron/templates"
HIPPOCAMPUS_L, HIPPOCAMPUS_R, THALAMUS_L = 37, 38, 77  # AAL labels

pytestmark = pytest.mark.skipif(
    not os.path.exists(os.path.join(TEMPLATES, "aal.nii.gz")),
    reason="the Debian package mricron-data (Colin27 and AAL) is not installed")


def _downsample(src, dst, factor=4):
    img = nib.load(src)
    data = np.asanyarray(img.dataobj)[::factor, ::factor, ::factor]
    affine = img.affine.copy()
    affine[:3, :3] *= factor
    nib.save(nib.Nifti1Image(data, affine), dst)


@pytest.fixture(scope="module")
def brains(tmp_path_factory):
    """Images ch2 and ch2bet (4 mm) with the AAL atlas, in the same space, as segmentations."""
    root = tmp_path_factory.mktemp("roi")
    (root / "img").mkdir()
    (root / "seg").mkdir()
    for name in ("ch2", "ch2bet"):
        _downsample(os.path.join(TEMPLATES, f"{name}.nii.gz"), root / "img" / f"{name}.nii.gz")
        _downsample(os.path.join(TEMPLATES, "aal.nii.gz"),
                    root / "seg" / f"{name}_seg-aal_msk.nii.gz")
    return root


def _stacks(brains, name="ch2", slice_axis=0):
    image = nib.load(brains / "img" / f"{name}.nii.gz").get_fdata(dtype=np.float32)
    seg = np.asanyarray(nib.load(brains / "seg" / f"{name}_seg-aal_msk.nii.gz").dataobj)
    return slice_to_image(image, slice_axis), slice_to_image(seg, slice_axis)


def _box(mask):
    where = np.argwhere(mask)
    return where.min(axis=0), where.max(axis=0)


def _roi(brains, label=HIPPOCAMPUS_L, **kwargs):
    return ROI(brains / "seg", label=label, pattern="{id}_seg-aal_msk.nii.gz", **kwargs)


def test_the_atlas_label_lies_where_anatomy_says(brains):
    _, seg = _stacks(brains)
    first_l, last_l = _box(seg == HIPPOCAMPUS_L)
    first_r, last_r = _box(seg == HIPPOCAMPUS_R)
    assert last_l[0] < 23 < first_r[0]  # left hippocampus in the left half (RAS x grows right)


def test_3d_roi_is_the_label_box_plus_margin(brains):
    image, seg = _stacks(brains)
    first, last = _box(seg == HIPPOCAMPUS_L)
    size = tuple(int(s) for s in last - first + 1 + 4)
    ds = la.NiftiDataset([str(brains / "img" / "ch2.nii.gz")], spacing=4.0, size=size,
                         intensity=None, roi=_roi(brains, margin=2, margin_unit="voxel"))
    expected = image[first[0] - 2:last[0] + 3, first[1] - 2:last[1] + 3,
                     first[2] - 2:last[2] + 3]
    np.testing.assert_array_equal(ds[0]["image"][0].numpy(), expected)
    in_mm = la.NiftiDataset([str(brains / "img" / "ch2.nii.gz")], spacing=4.0, size=size,
                            intensity=None, roi=_roi(brains, margin=8.0))  # 8 mm = 2 voxels
    np.testing.assert_array_equal(in_mm[0]["image"].numpy(), ds[0]["image"].numpy())


def test_roi_crop_contains_the_label(brains):
    # the segmentation itself as the image: the crop must be centred on the label
    seg_as_image = [str(brains / "seg" / "ch2_seg-aal_msk.nii.gz")]
    roi = ROI({"ch2_seg-aal_msk": seg_as_image[0]}, label=THALAMUS_L, margin=4)
    ds = la.NiftiDataset(seg_as_image, size=(16, 16, 16), intensity=None, roi=roi)
    crop = ds[0]["image"][0].numpy()
    assert crop[8, 8, 8] == THALAMUS_L
    whole = np.asanyarray(nib.load(seg_as_image[0]).dataobj)
    assert (np.round(crop) == THALAMUS_L).mean() > 20 * (whole == THALAMUS_L).mean()


def test_2d_roi_slices_go_through_the_label_centre(brains):
    image, seg = _stacks(brains)
    first, last = _box(seg == HIPPOCAMPUS_L)
    centre = (first[0] + last[0]) // 2
    rows, cols = last[1] - first[1] + 1, last[2] - first[2] + 1
    ds = la.NiftiDataset([str(brains / "img" / "ch2.nii.gz")], spatial_dims=2, n_slices=3,
                         spacing=4.0, size=(rows, cols), intensity=None,
                         roi=_roi(brains, margin=0))
    assert list(ds.slice_index) == [0, 1, 2] and list(ds.ids) == ["ch2"] * 3
    for k in range(3):
        expected = image[centre - 1 + k, first[1]:last[1] + 1, first[2]:last[2] + 1]
        np.testing.assert_array_equal(ds[k]["image"][0].numpy(), expected)


def test_several_labels_use_the_union_box_and_margins_past_the_edge_are_padded(brains):
    _, seg = _stacks(brains)
    first, last = _box(np.isin(seg, [HIPPOCAMPUS_L, HIPPOCAMPUS_R]))
    ds = la.NiftiDataset([str(brains / "img" / "ch2.nii.gz")], spacing=4.0,
                         size=tuple(int(s) for s in last - first + 1),
                         roi=_roi(brains, label=[HIPPOCAMPUS_L, HIPPOCAMPUS_R]))
    image = ds[0]["image"][0].numpy()
    assert image.shape[0] > 20  # spans both hemispheres
    wide = la.NiftiDataset([str(brains / "img" / "ch2.nii.gz")], size=(32, 32, 32),
                           roi=_roi(brains, margin=40, margin_unit="voxel"))
    assert wide[0]["image"].min() == -1.0
    assert (wide[0]["image"][0].numpy()[:, :, :2] == -1).all()  # outside the head


def test_roi_follows_reorientation(brains, tmp_path):
    img = nib.load(brains / "img" / "ch2.nii.gz")
    seg = nib.load(brains / "seg" / "ch2_seg-aal_msk.nii.gz")
    transform = nib.orientations.ornt_transform(nib.io_orientation(img.affine),
                                                nib.orientations.axcodes2ornt("LPI"))
    (tmp_path / "seg").mkdir()
    nib.save(img.as_reoriented(transform), tmp_path / "ch2.nii.gz")
    nib.save(seg.as_reoriented(transform), tmp_path / "seg" / "ch2_seg-aal_msk.nii.gz")
    kwargs = dict(spatial_dims=2, n_slices=2, size=(24, 24))
    ref = la.NiftiDataset([str(brains / "img" / "ch2.nii.gz")], roi=_roi(brains), **kwargs)
    moved = la.NiftiDataset([str(tmp_path / "ch2.nii.gz")], **kwargs, roi=ROI(
        tmp_path / "seg", label=HIPPOCAMPUS_L, pattern="{id}_seg-aal_msk.nii.gz"))
    for k in range(2):
        np.testing.assert_allclose(moved[k]["image"].numpy(), ref[k]["image"].numpy(),
                                   atol=1e-6)


def test_subject_without_the_label(brains, tmp_path):
    seg = nib.load(brains / "seg" / "ch2bet_seg-aal_msk.nii.gz")
    data = np.asanyarray(seg.dataobj).copy()
    data[data == HIPPOCAMPUS_L] = 0
    nib.save(nib.Nifti1Image(data, seg.affine), tmp_path / "ch2bet.nii.gz")
    nib.save(seg, tmp_path / "ch2.nii.gz")
    paths = [str(brains / "img" / "ch2.nii.gz"), str(brains / "img" / "ch2bet.nii.gz")]
    roi = ROI(tmp_path, label=HIPPOCAMPUS_L, pattern="{id}.nii.gz")
    ds = la.NiftiDataset(paths, size=8, roi=roi)
    assert ds[0]["image"].shape == (1, 8, 8, 8)
    with pytest.raises(DataError, match=r"subject 'ch2bet' .* does not contain label 37"):
        ds[1]
    skipping = la.NiftiDataset(paths, size=8, roi=roi, on_error="skip")
    assert list(skipping.ids) == ["ch2"]
    assert "does not contain label 37" in skipping.skipped["reason"].iloc[0]


def test_missing_or_mismatched_segmentation(brains, tmp_path):
    paths = [str(brains / "img" / "ch2.nii.gz"), str(brains / "img" / "ch2bet.nii.gz")]
    only_one = ROI({"ch2": brains / "seg" / "ch2_seg-aal_msk.nii.gz"}, label=HIPPOCAMPUS_L)
    with pytest.raises(DataError, match="no segmentation given for subject 'ch2bet'"):
        la.NiftiDataset(paths, size=8, roi=only_one)
    ds = la.NiftiDataset(paths, size=8, roi=only_one, on_error="skip")
    assert list(ds.ids) == ["ch2"] and ds.skipped["id"].tolist() == ["ch2bet"]
    with pytest.raises(DataError, match="no file matches"):
        la.NiftiDataset(paths, size=8, roi=ROI(brains / "seg", label=1))
    shutil.copy(os.path.join(TEMPLATES, "aal.nii.gz"), tmp_path / "ch2.nii.gz")  # 1 mm grid
    with pytest.raises(DataError, match=r"has shape \(181, 217, 181\) but the image has"):
        la.NiftiDataset(paths[:1], size=8, roi=ROI(tmp_path, label=1, pattern="{id}.nii.gz"))
    seg = nib.load(brains / "seg" / "ch2bet_seg-aal_msk.nii.gz")
    shifted = seg.affine.copy()
    shifted[0, 3] += 4.0
    nib.save(nib.Nifti1Image(np.asanyarray(seg.dataobj), shifted), tmp_path / "ch2bet.nii.gz")
    with pytest.raises(DataError, match="has another affine than its image"):
        la.NiftiDataset(paths[1:], size=8, roi=ROI(tmp_path, label=1, pattern="{id}.nii.gz"))


def test_roi_parameters_are_checked(brains):
    with pytest.raises(DataError, match="does not exist"):
        ROI(brains / "nowhere", label=1)
    with pytest.raises(InputTypeError, match="folder or a mapping"):
        ROI(3, label=1)
    with pytest.raises(ConfigError, match="label must be an int"):
        ROI(brains / "seg", label="vertebra")
    with pytest.raises(ConfigError, match="label must be an int"):
        ROI(brains / "seg", label=[])
    with pytest.raises(ConfigError, match="did you mean 'voxel'"):
        ROI(brains / "seg", label=1, margin_unit="voxels")
    with pytest.raises(ConfigError, match="non-negative"):
        ROI(brains / "seg", label=1, margin=-2)
    with pytest.raises(ConfigError, match="contain"):
        ROI(brains / "seg", label=1, pattern="*.nii.gz")
    roi = _roi(brains, margin=(1, 2))
    assert "label=37" in repr(roi) and roi.labels == (37,)
    path = str(brains / "img" / "ch2.nii.gz")
    with pytest.raises(ConfigError, match="needs size"):
        la.NiftiDataset([path], roi=roi)
    with pytest.raises(InputTypeError, match="roi must be"):
        la.NiftiDataset([path], size=8, roi={"label": 1})
    with pytest.raises(ConfigError, match="one number or 3 numbers"):
        la.NiftiDataset([path], size=8, roi=roi)
    two_d = la.NiftiDataset([path], spatial_dims=2, size=8, roi=roi)
    assert two_d[0]["image"].shape == (1, 8, 8)
