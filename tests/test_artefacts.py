"""Tests of latentaudit.artefacts: every artefact in 2-D and 3-D, identity at strength 0,
an effect that grows with strength, its physical quantity, its mask, determinism."""

import numpy as np
import pytest

import latentaudit as la
from latentaudit.artefacts import (
    ARTEFACTS,
    Artefact,
    Bar,
    BiasField,
    Blur,
    BurnedInText,
    ContrastCurve,
    Downsampling,
    FieldOfViewShift,
    Gain,
    Ghosting,
    HeadRest,
    RicianNoise,
    Spikes,
    Tilt,
    WrapAround,
    cushion,
    estimate_support,
    get_artefact,
)
from latentaudit.errors import ConfigError, InputShapeError, InputTypeError

RANDOM = {"head_rest", "bar", "bias_field", "rician_noise", "spikes"}
EXPLICIT_MASK = {"fov_shift", "tilt", "head_rest", "bar", "burned_in_text"}


def phantom(spatial_dims, size=None, noise=0.02, seed=0):
    """An off-centre 'head' (ellipsoid with a darker core) in noisy air, in [-1, 1]."""
    size = size or (32 if spatial_dims == 2 else 16)
    grid = np.indices((size,) * spatial_dims, dtype=np.float64) / (size - 1)
    centre = [0.45, 0.4, 0.5][:spatial_dims]
    radii = [0.3, 0.25, 0.28][:spatial_dims]
    r = np.sqrt(sum(((g - c) / a) ** 2 for g, c, a in zip(grid, centre, radii, strict=True)))
    signal = np.where(r < 1, 0.8, 0.0) - np.where(r < 0.5, 0.3, 0.0)
    rng = np.random.default_rng(seed)
    signal = np.hypot(signal + noise * rng.standard_normal(signal.shape),
                      noise * rng.standard_normal(signal.shape))
    return (2 * np.clip(signal, 0, 1) - 1).astype(np.float32)[None]


def change(a, b):
    return float(np.abs(a.astype(np.float64) - b).mean())


ALL = sorted(ARTEFACTS)


def test_public_names_and_families():
    assert la.artefacts is __import__("latentaudit.artefacts").artefacts
    assert len(ARTEFACTS) >= 14
    families = {cls.family for cls in ARTEFACTS.values()}
    assert families == {"geometry", "objects", "intensity", "noise", "resolution",
                        "acquisition"}
    for name, cls in ARTEFACTS.items():
        assert cls.name == name and issubclass(cls, Artefact)
        assert "Physical quantity" in cls.__doc__, cls
        assert cls.__name__ in la.artefacts.__all__
    # the demo cohort's site artefacts are two of them
    from latentaudit.data._demo import SITE_ARTEFACTS

    assert set(SITE_ARTEFACTS.values()) - {"none"} <= set(ARTEFACTS)


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("name", ALL)
def test_strength_zero_is_the_identity_bit_for_bit(name, spatial_dims):
    image = phantom(spatial_dims)
    out, mask = ARTEFACTS[name](strength=0.0)(image, random_state=0)
    assert out.dtype == image.dtype and out.shape == image.shape
    assert np.array_equal(out, image) and out is not image
    assert mask.dtype == bool and mask.shape == image.shape and not mask.any()


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("name", ALL)
def test_effect_grows_with_strength_and_stays_in_range(name, spatial_dims):
    image = phantom(spatial_dims)
    changes = []
    for strength in (0.25, 0.5, 1.0):
        out, mask = ARTEFACTS[name](strength=strength)(image, random_state=1)
        assert out.dtype == np.float32 and out.shape == image.shape
        assert mask.dtype == bool and mask.shape == image.shape and mask.any()
        assert out.min() >= -1 and out.max() <= 1
        changes.append(change(out, image))
    assert 0 < changes[0] < changes[1] < changes[2], changes


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_result_and_seeds_matter_where_random(name, spatial_dims):
    image = phantom(spatial_dims)
    artefact = ARTEFACTS[name](strength=0.7)
    a, mask_a = artefact(image, random_state=3)
    b, mask_b = artefact(image, random_state=np.random.default_rng(3))
    assert np.array_equal(a, b) and np.array_equal(mask_a, mask_b)
    c, _ = artefact(image, random_state=4)
    assert np.array_equal(a, c) == (name not in RANDOM)


@pytest.mark.parametrize("name", sorted(set(ALL) - EXPLICIT_MASK))
def test_pixelwise_artefacts_mask_exactly_the_changed_pixels(name):
    image = phantom(2)
    out, mask = ARTEFACTS[name](strength=0.6)(image, random_state=0)
    assert np.array_equal(mask, out != image)


@pytest.mark.parametrize("name", ALL)
def test_batches_get_their_own_draws_and_the_same_shape(name):
    images = np.stack([phantom(2, seed=s) for s in range(3)])  # (3, 1, 32, 32)
    artefact = ARTEFACTS[name](strength=0.8)
    out, mask = artefact(images, random_state=0, spatial_dims=2)
    assert out.shape == mask.shape == images.shape
    one, one_mask = artefact(images[0], random_state=0)
    # the first image of a batch gets the draws a single call would
    assert np.array_equal(out[0], one) and np.array_equal(mask[0], one_mask)
    if name not in RANDOM:
        for i in range(3):
            assert np.array_equal(out[i], artefact(images[i])[0])


def test_volumes_batches_and_layouts():
    volume = phantom(3)                                   # (1, 16, 16, 16): one volume
    out, _ = Blur(strength=1.0)(volume)
    assert out.shape == volume.shape
    batch = np.stack([volume, volume])                    # (2, 1, 16, 16, 16)
    out, mask = Blur(strength=1.0)(batch)
    assert out.shape == mask.shape == batch.shape and np.array_equal(out[0], out[1])
    # a 4-D array is one volume unless spatial_dims says it is a batch of 2-D images
    images = np.stack([phantom(2), phantom(2, seed=1)])   # (2, 1, 32, 32)
    as_batch, _ = Tilt(strength=1.0)(images, spatial_dims=2)
    assert np.array_equal(as_batch[1], Tilt(strength=1.0)(images[1])[0])
    with pytest.raises(InputShapeError, match="spatial_dims=2"):
        Blur()(np.zeros((4, 4)))
    with pytest.raises(InputShapeError, match="3 axes"):
        Blur()(np.zeros((2, 1, 1, 4, 4)), spatial_dims=2)
    with pytest.raises(ConfigError, match="spatial_dims must be 2 or 3"):
        Blur()(volume, spatial_dims=4)
    with pytest.raises(InputTypeError, match="numeric"):
        Blur()(np.array([[["a"]]]))
    # integer images come back as float32 with their values
    out, _ = Gain(strength=0.0)(np.zeros((1, 4, 4), dtype=np.int16))
    assert out.dtype == np.float32
    # several channels: geometry moves them together, noise draws each its own
    two = np.concatenate([phantom(2), phantom(2)])
    moved, mask = FieldOfViewShift(strength=0.5)(two)
    assert np.array_equal(moved[0], moved[1]) and np.array_equal(mask[0], mask[1])
    noisy, _ = RicianNoise(strength=0.5)(two, random_state=0)
    assert not np.array_equal(noisy[0], noisy[1])


def test_parameters_are_checked_with_clear_messages():
    with pytest.raises(ConfigError, match=r"strength must be a number in \[0, 1\], got 1.5"):
        Blur(strength=1.5)
    with pytest.raises(ValueError):
        Blur(strength=-0.1)
    with pytest.raises(ConfigError, match="strength"):
        Blur(strength=True)
    with pytest.raises(ConfigError, match="value_range"):
        Gain(value_range=(1, 0))
    with pytest.raises(ConfigError, match="max_ghost"):
        Ghosting(max_ghost=0.9, period=4)
    with pytest.raises(ConfigError, match="period"):
        Ghosting(period=1)
    with pytest.raises(ConfigError, match="arc"):
        HeadRest(arc=(30, -30))
    with pytest.raises(ConfigError, match="text"):
        BurnedInText(text="")
    with pytest.raises(ConfigError, match="max_gain_db must not be 0"):
        Gain(max_gain_db=0)
    with pytest.raises(ConfigError, match="axis must be a spatial axis"):
        WrapAround(axis=2)(phantom(2))
    with pytest.raises(InputShapeError, match="support"):
        Tilt()(phantom(2), support=np.ones((3, 3), dtype=bool))
    with pytest.raises(ConfigError, match="random_state"):
        RicianNoise()(phantom(2), random_state="seed")
    with pytest.raises(ConfigError, match="did you mean 'bias_field'"):
        get_artefact("bias_feld")
    with pytest.raises(ConfigError, match="max_angle"):
        get_artefact("tilt", max_angle=-1)
    with pytest.raises(ConfigError, match="unexpected keyword"):
        get_artefact("tilt", angle=3)


def test_artefacts_are_frozen_values_with_a_strength_ladder():
    bias = BiasField(strength=1.0, order=3)
    assert bias.with_strength(0.2) == BiasField(strength=0.2, order=3)
    assert bias.get_params()["order"] == 3
    with pytest.raises(AttributeError):
        bias.strength = 0.5
    assert get_artefact("bias_field", order=3) == bias


def test_value_range_none_uses_each_images_own_range():
    image = np.array([[[100.0, 300.0, 500.0]]])
    out, _ = Gain(strength=1.0, max_gain_db=-6.0206, value_range=None)(image)
    np.testing.assert_allclose(out, [[[100.0, 200.0, 300.0]]], rtol=1e-4)


# -- the physical quantity each artefact states -------------------------------------------
def test_fov_shift_moves_the_content_by_the_stated_fraction_and_masks_what_moved():
    image = phantom(2, size=32)
    out, mask = FieldOfViewShift(strength=0.5, max_shift=0.25)(image)   # 4 of 32 rows
    np.testing.assert_array_equal(out[0, 4:], image[0, :-4])
    np.testing.assert_array_equal(out[0, :4], -1.0)                    # air came in
    support = estimate_support((image + 1) / 2)
    after = np.zeros_like(support)
    after[4:] = support[:-4]
    np.testing.assert_array_equal(mask[0], support ^ after)
    up, _ = FieldOfViewShift(strength=0.5, direction=1)(image)        # the other way
    np.testing.assert_array_equal(up[0, :-4], image[0, 4:])
    assert FieldOfViewShift(strength=0.78125).shift_pixels(256) == 50.0
    # 3-D along the first spatial axis
    volume = phantom(3)
    out, _ = FieldOfViewShift(strength=0.5, axis=0)(volume)           # 2 of 16 slices
    np.testing.assert_array_equal(out[0, 2:], volume[0, :-2])


def test_tilt_turns_by_the_stated_angle():
    bar = -np.ones((1, 33, 33), dtype=np.float32)
    bar[0, 15:18, 16:30] = 1.0                                        # points right
    out, mask = Tilt(strength=0.5, max_angle=90.0)(bar)               # 45 degrees
    rows, cols = np.nonzero(out[0] > 0)
    far = np.argmax(np.hypot(rows - 16, cols - 16))
    angle = np.degrees(np.arctan2(16 - rows[far], cols[far] - 16))
    assert abs(angle - 45) < 5                                        # counter-clockwise
    out, _ = Tilt(strength=0.5, max_angle=90.0, direction=-1)(bar)
    rows, cols = np.nonzero(out[0] > 0)
    assert (rows[cols > 20] > 16).all()                               # clockwise
    assert mask[0, 16, 28] and not mask[0, 0, 0]


def test_head_rest_lies_behind_the_head_outside_it_and_fades_with_strength():
    image = phantom(2, size=64)
    support = estimate_support((image + 1) / 2)
    out, mask = HeadRest(strength=1.0, jitter=False)(image, support=support)
    assert mask.any() and not (mask[0] & support).any()
    rows, cols = np.nonzero(mask[0])
    head_cols = np.nonzero(support)[1]
    assert cols.min() > head_cols.mean()                     # behind: the far column side
    assert out[0][mask[0]].mean() > -0.3                     # bright against the air (-1)
    faint, faint_mask = HeadRest(strength=0.2, jitter=False)(image, support=support)
    np.testing.assert_array_equal(faint_mask, mask)          # same place, fainter
    assert change(faint, image) < 0.3 * change(out, image)
    # 3-D: the cushion follows the head's surface along the third axis
    volume = phantom(3, size=24)
    out3, mask3 = HeadRest(strength=1.0, jitter=False)(volume)
    assert mask3[0].any(axis=(1, 2)).sum() > 5


def test_cushion_reproduces_the_demo_head_rest_geometry():
    head = np.zeros((40, 40), dtype=bool)
    head[10:30, 8:28] = True
    alpha, depth = cushion(head, centre=(19.5, 17.5), arc=(-45.0, 38.0), gap=1.0,
                           thickness=5.0, spacing=1.0)
    assert alpha[20, 28] == 0.0 and alpha[20, 31] == 1.0 and alpha[20, 35] == 0.0
    assert alpha[20, 3] == 0.0                               # nothing in front
    assert depth[20, 31] == pytest.approx(0.6)               # 4 pixels out: (4 - 1) / 5


def test_bar_and_text_are_where_they_are_said_to_be():
    air = -np.ones((1, 40, 40), dtype=np.float32)
    out, mask = Bar(strength=1.0, position=0.5, thickness=0.1, jitter=0.0)(air)
    np.testing.assert_array_equal(np.flatnonzero(mask[0, :, 7]), [18, 19, 20, 21])
    assert out[0, 19, 7] == pytest.approx(0.6)               # 0.8 of full scale
    out, mask = BurnedInText(text="LR", height=0.2, corner=(0.5, 0.5))(air)
    rows, cols = np.nonzero(mask[0])
    assert rows.min() == 20 and rows.max() == 27 and cols.min() == 20
    assert (out[0][mask[0]] == 1.0).all() and (out[0][~mask[0]] == -1.0).all()
    faint, _ = BurnedInText(text="LR", height=0.2, corner=(0.5, 0.5), strength=0.5)(air)
    assert (faint[0][mask[0]] == 0.0).all()                  # halfway to white
    # 3-D: burned into every slice
    vol, mask3 = BurnedInText(text="R")(-np.ones((1, 6, 32, 32), dtype=np.float32))
    assert all(np.array_equal(mask3[0, 0], mask3[0, k]) for k in range(6))


def test_gain_contrast_and_bias_field_follow_their_formulas():
    ramp = np.linspace(0, 1, 11)[None, None]
    out, _ = Gain(strength=0.5, max_gain_db=-12.0, value_range=(0, 1))(ramp)
    np.testing.assert_allclose(out, ramp * 10 ** (-6 / 20))
    out, _ = ContrastCurve(strength=0.5, max_gamma=4.0, value_range=(0, 1))(ramp)
    np.testing.assert_allclose(out, ramp ** 2)
    flat = np.full((1, 24, 24), 0.5)
    for strength in (0.3, 1.0):
        out, _ = BiasField(strength=strength, value_range=(0, 1))(flat, random_state=2)
        ratio = out / flat
        bound = 1.4 ** strength
        assert 1 / bound - 1e-12 <= ratio.min() and ratio.max() <= bound + 1e-12
        # normalised to reach the bound somewhere
        assert max(ratio.max(), 1 / ratio.min()) == pytest.approx(bound)
        # smooth: the log field is a polynomial of degree 2 (second differences constant)
        log = np.log(ratio[0])
        assert np.ptp(np.diff(log, 2, axis=0)) < 1e-9
    volume = np.full((1, 8, 8, 8), 0.5)
    out, _ = BiasField(value_range=(0, 1))(volume, random_state=0)
    assert np.ptp(out) > 0.1


def test_rician_noise_has_the_stated_snr():
    image = np.zeros((1, 128, 128))
    image[0, 16:112, 16:112] = 0.5
    for strength in (0.5, 1.0):
        out, _ = RicianNoise(strength=strength, snr_db=20.0, value_range=(0, 1))(
            image, random_state=0)
        sigma = strength * 0.5 * 10 ** (-20 / 20)
        assert out[0, 20:108, 20:108].std() == pytest.approx(sigma, rel=0.05)
        # background: Rayleigh, mean sigma * sqrt(pi / 2)
        assert out[0, :12].mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.05)


def test_spikes_add_one_plane_wave_of_the_stated_amplitude():
    image = np.zeros((1, 32, 32))
    image[0, 8:24, 8:24] = 0.5
    out, _ = Spikes(strength=0.5, max_amplitude=0.4, value_range=(0, 1))(image,
                                                                          random_state=7)
    background = out[0] * (image[0] == 0)
    np.testing.assert_allclose(out[0][image[0] == 0], 0.5 * 0.4 * 0.5)   # |wave| in air
    inside = out[0, 8:24, 8:24]
    spectrum = np.abs(np.fft.fft2(inside - inside.mean()))
    assert spectrum.max() > 0.5 * spectrum.sum() / 2 and background.max() > 0


def test_blur_has_the_stated_fwhm():
    impulse = np.zeros((1, 1, 41))
    impulse[0, 0, 20] = 1.0
    out, _ = Blur(strength=0.5, max_fwhm=12.0, value_range=(0, 1))(impulse)
    profile = out[0, 0]
    above = np.flatnonzero(profile >= profile.max() / 2)
    assert above[-1] - above[0] + 1 in (5, 6, 7)                        # FWHM 6 pixels
    out, _ = Blur(strength=1.0, axes=-1)(phantom(2))                     # one axis only
    assert out.shape == (1, 32, 32)


def test_downsampling_removes_detail_finer_than_the_factor():
    stripes = np.tile([0.0, 1.0], 16)[None, None] * np.ones((1, 32, 1))
    mild, _ = Downsampling(strength=0.0001, value_range=(0, 1))(stripes)
    strong, _ = Downsampling(strength=1.0, value_range=(0, 1))(stripes)
    assert np.std(mild) > 0.4 and np.std(strong) < 0.1
    # only along the given axis: the other keeps its detail
    out, _ = Downsampling(strength=1.0, axes=-2, value_range=(0, 1))(stripes)
    assert np.std(out) > 0.4


def test_ghosting_puts_a_ghost_of_the_stated_ratio_half_a_field_of_view_away():
    image = np.zeros((1, 32, 32))
    image[0, 2:10, 2:8] = 0.8
    for strength in (0.25, 1.0):
        ratio = strength * 0.4
        out, mask = Ghosting(strength=strength, max_ghost=0.4, value_range=(0, 1))(image)
        np.testing.assert_allclose(out[0, 18:26, 2:8], ratio * 0.8, rtol=1e-9)
        np.testing.assert_allclose(out[0, 2:10, 2:8], np.sqrt(1 - ratio**2) * 0.8)
        assert mask[0, 18:26, 2:8].all() and not mask[0, 12:16].any()
    out, _ = Ghosting(strength=1.0, max_ghost=0.2, period=4, axis=-1, value_range=(0, 1))(
        image)
    for k in (1, 2, 3):                                                # ghosts every N/4
        np.testing.assert_allclose(out[0, 2:10, 2 + 8 * k: 8 + 8 * k], 0.2 * 0.8, rtol=1e-9)


def test_wrap_around_folds_what_lies_outside_the_smaller_field_of_view():
    image = np.zeros((1, 20, 4))
    image[0, :3] = 0.2                                       # top of the object
    image[0, -2:] = 0.3                                      # bottom
    image[0, 8:12] = 0.5
    out, mask = WrapAround(strength=0.8, max_fraction=0.5, value_range=(0, 1))(image)
    kept, start = 12, 4                                      # 40% less: rows 4-15
    np.testing.assert_allclose(out[0, :start], 0.0)
    np.testing.assert_allclose(out[0, start + kept:], 0.0)
    np.testing.assert_allclose(out[0, 12:15], 0.2)           # rows 0-2 land 12 further
    np.testing.assert_allclose(out[0, 6:8], 0.3)             # rows 18-19 land 12 nearer
    np.testing.assert_allclose(out[0, 8:12], 0.5)
    assert np.array_equal(mask, out != image)
