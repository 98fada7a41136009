"""Tests of the array transforms of latentaudit.data."""

import os

import nibabel as nib
import numpy as np
import pytest

import latentaudit as la
from latentaudit.data import (
    center_slices,
    pad_or_crop,
    resample,
    resize,
    scale_intensity,
    slice_to_image,
    to_canonical,
)
from latentaudit.errors import ConfigError, DataError, InputShapeError, InputTypeError

ANATOMICAL = os.path.join(os.path.dirname(nib.__file__), "tests", "data", "anatomical.nii")


def test_transforms_are_exported_from_the_data_package():
    assert la.data.scale_intensity is scale_intensity
    for name in ("to_canonical", "resample", "resize", "pad_or_crop", "center_slices",
                 "slice_to_image", "ROI"):
        assert name in la.data.__all__


# -- orientation --------------------------------------------------------------------------
def test_to_canonical_reorients_a_real_las_file():
    img = nib.load(ANATOMICAL)
    assert nib.aff2axcodes(img.affine) == ("L", "A", "S")
    canonical = to_canonical(img)
    assert nib.aff2axcodes(canonical.affine) == ("R", "A", "S")
    data = np.asanyarray(img.dataobj)
    # LAS -> RAS flips the first axis only; voxel (i, j, k) keeps its world position
    np.testing.assert_array_equal(np.asanyarray(canonical.dataobj), data[::-1])
    world_before = img.affine @ [0, 3, 4, 1]
    world_after = canonical.affine @ [data.shape[0] - 1, 3, 4, 1]
    np.testing.assert_allclose(world_before, world_after)


def test_to_canonical_rejects_arrays():
    with pytest.raises(InputTypeError, match="nibabel image"):
        to_canonical(np.zeros((2, 2, 2)))


def _marked_volume(shape=(4, 5, 6)):
    """A volume whose voxel value encodes its RAS index: 100*x + 10*y + z."""
    x, y, z = np.indices(shape)
    return (100 * x + 10 * y + z).astype(np.float32)


def test_slice_to_image_sagittal_has_superior_at_top_and_face_left():
    vol = _marked_volume()
    stack = slice_to_image(vol, slice_axis=0)
    assert stack.shape == (4, 6, 5)  # (L->R slices, S->I rows, A->P columns)
    top_left = stack[2, 0, 0]
    assert top_left == 100 * 2 + 10 * 4 + 5  # x=2, most anterior y=4, most superior z=5
    assert stack[2, -1, -1] == 200  # bottom right: inferior, posterior
    # the rows run down from superior to inferior
    assert (np.diff(stack[2, :, 0] % 10) < 0).all()


def test_slice_to_image_coronal_and_axial_follow_radiological_view():
    vol = _marked_volume()
    coronal = slice_to_image(vol, slice_axis=1)
    assert coronal.shape == (5, 6, 4)
    assert coronal[1, 0, 0] == 100 * 3 + 10 * 1 + 5  # superior row, patient's right first
    axial = slice_to_image(vol, slice_axis=2)
    assert axial.shape == (6, 5, 4)
    assert axial[2, 0, 0] == 100 * 3 + 10 * 4 + 2  # anterior row, patient's right first
    np.testing.assert_array_equal(slice_to_image(vol, 2, index=2), axial[2])


def test_slice_to_image_returns_views_and_checks_input():
    vol = _marked_volume()
    assert np.shares_memory(slice_to_image(vol, 1), vol)
    with pytest.raises(InputShapeError, match="3-D volume"):
        slice_to_image(np.zeros((3, 3)))
    with pytest.raises(ConfigError, match="slice_axis"):
        slice_to_image(vol, slice_axis=3)


# -- resampling ---------------------------------------------------------------------------
def test_resample_changes_shape_by_the_spacing_ratio_and_keeps_the_centre():
    image = np.zeros((21, 21), dtype=np.float32)
    image[8:13, 8:13] = 1.0  # a square around the centre
    out = resample(image, 1.0, (2.0, 0.5))
    assert out.shape == (10, 42)
    assert out.dtype == np.float32
    rows, cols = np.indices(out.shape)
    centre = ((rows * out).sum() / out.sum(), (cols * out).sum() / out.sum())
    np.testing.assert_allclose(centre, ((10 - 1) / 2, (42 - 1) / 2), atol=0.3)


def test_resample_keeps_linear_ramps_and_returns_input_when_nothing_changes():
    ramp = np.tile(np.arange(8, dtype=np.float32), (3, 1))
    same = resample(ramp, 1.0, 1.0)
    assert same is ramp
    up = resample(ramp, 1.0, (1.0, 0.5), anti_aliasing=False)
    # output column c sits at input position (c + 0.5) / 2 - 0.5 (shared centre)
    expected = np.clip((np.arange(16) + 0.5) / 2 - 0.5, 0, 7)
    np.testing.assert_allclose(up[1], expected, atol=1e-5)


def test_resample_order_zero_keeps_labels_and_anti_aliasing_smooths():
    labels = np.repeat(np.arange(6), 4).reshape(4, 6).astype(np.int16)
    out = resample(labels, 1.0, 0.5, order=0)
    assert out.dtype == np.int16
    assert set(np.unique(out)) <= set(np.unique(labels))
    # a stripe pattern finer than the new grid must average out, not alias
    stripes = np.tile(np.sin(2 * np.pi * np.arange(64) / 2.7), (8, 1)).astype(np.float32)
    smooth = resample(stripes, 1.0, (1.0, 4.0))
    aliased = resample(stripes, 1.0, (1.0, 4.0), anti_aliasing=False)
    assert smooth.std() < 0.1 < aliased.std()


def test_resample_rejects_bad_spacing_and_order():
    with pytest.raises(ConfigError, match="spacing_out must be positive"):
        resample(np.zeros((4, 4)), 1.0, (1.0, 0.0))
    with pytest.raises(ConfigError, match="spacing_in must be a number or 2 numbers"):
        resample(np.zeros((4, 4)), (1.0, 1.0, 1.0), 1.0)
    with pytest.raises(ConfigError, match="order"):
        resample(np.zeros((4, 4)), 1.0, 1.0, order=7)


def test_resize_gives_the_requested_shape_and_keeps_corners():
    vol = np.arange(8 * 8 * 8, dtype=np.float32).reshape(8, 8, 8)
    out = resize(vol, (4, 16, 8), anti_aliasing=False)
    assert out.shape == (4, 16, 8)
    assert vol.min() <= out.min() and out.max() <= vol.max()
    with pytest.raises(ConfigError, match="3 positive integers"):
        resize(vol, (4, 4))


# -- pad / crop ---------------------------------------------------------------------------
def test_pad_or_crop_center_crops_and_pads_symmetrically():
    image = np.arange(6 * 3, dtype=np.float32).reshape(1, 6, 3)
    out = pad_or_crop(image, (4, 5), pad_value=-1.0)
    assert out.shape == (1, 4, 5)
    np.testing.assert_array_equal(out[0, :, 1:4], image[0, 1:5])
    assert (out[0, :, 0] == -1).all() and (out[0, :, 4] == -1).all()


def test_pad_or_crop_returns_a_view_when_only_cropping():
    vol = np.zeros((8, 8, 8), dtype=np.float32)
    out = pad_or_crop(vol, (4, 4, 4))
    assert np.shares_memory(out, vol)
    assert out.shape == (4, 4, 4)


def test_pad_or_crop_random_is_reproducible_with_a_seed():
    vol = np.arange(20 * 20, dtype=np.float32).reshape(20, 20)
    a = pad_or_crop(vol, (5, 5), mode="random", rng=0)
    b = pad_or_crop(vol, (5, 5), mode="random", rng=np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)
    corners = {pad_or_crop(vol, (5, 5), mode="random", rng=seed)[0, 0] for seed in range(10)}
    assert len(corners) > 3
    padded = pad_or_crop(np.ones((2, 2)), (6, 6), mode="random", rng=1, pad_value=0)
    assert padded.sum() == 4


def test_pad_or_crop_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="did you mean 'center'"):
        pad_or_crop(np.zeros((4, 4)), (2, 2), mode="centre")
    with pytest.raises(ConfigError, match="size must be"):
        pad_or_crop(np.zeros((4, 4)), (2, 2, 2))
    with pytest.raises(InputTypeError, match="rng"):
        pad_or_crop(np.zeros((4, 4)), (2, 2), mode="random", rng="seed")


# -- intensity ----------------------------------------------------------------------------
def test_scale_intensity_maps_percentiles_to_minus_one_and_one():
    data = np.asanyarray(nib.load(ANATOMICAL).dataobj)
    out = scale_intensity(data)
    assert out.dtype == np.float32 and out.shape == data.shape
    assert out.min() == -1.0 and out.max() == 1.0
    lo, hi = np.percentile(data, [0.5, 99.5])
    inside = (data > lo) & (data < hi)
    np.testing.assert_allclose(out[inside], 2 * (data[inside] - lo) / (hi - lo) - 1, atol=1e-5)
    assert (out[data >= hi] == 1).all()


def test_scale_intensity_handles_constant_images_and_keeps_the_input():
    blank = np.zeros((4, 4), dtype=np.float32)
    np.testing.assert_array_equal(scale_intensity(blank), -np.ones((4, 4)))
    spike = blank.copy()
    spike[0, 0] = 5.0
    out = scale_intensity(spike)
    assert out[0, 0] == 1.0 and (out.ravel()[1:] == -1).all()
    assert spike[0, 0] == 5.0  # the input is not modified


def test_scale_intensity_rejects_bad_values():
    with pytest.raises(DataError, match="NaN"):
        scale_intensity(np.array([0.0, np.nan]))
    with pytest.raises(ConfigError, match="0 <= lower < upper <= 100"):
        scale_intensity(np.arange(4.0), 50, 10)


# -- slices -------------------------------------------------------------------------------
def test_center_slices():
    np.testing.assert_array_equal(center_slices(10, 4), [3, 4, 5, 6])
    np.testing.assert_array_equal(center_slices(5, 5), np.arange(5))
    np.testing.assert_array_equal(center_slices(12, 1), [5])
    with pytest.raises(ConfigError, match="larger than the 3 slices"):
        center_slices(3, 4)
    with pytest.raises(ConfigError, match="positive integer"):
        center_slices(3, 0)
