"""Tests of the Explainer: classifier, CAM maps, faithfulness, mean/difference images and
counterfactuals."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage, stats
from sklearn.base import clone

import latentaudit as la
from latentaudit.errors import (
    ConfigError,
    DataError,
    InputShapeError,
    InputTypeError,
    LatentAuditError,
    NotFittedError,
)
from latentaudit.explain import (
    CAM_METHODS,
    Explainer,
    cam_methods,
    counterfactual,
    difference_map,
    latent_direction,
    mean_images,
    overlay,
    pointing_game,
)
from latentaudit.nn import ResNet

TINY = {"widths": (4, 8, 8, 16), "batch_size": 16, "lr": 3e-3}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # Tiny models gain nothing from threads, and on a busy machine OpenMP threads waiting
    # on each other make every small operation hundreds of times slower.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def planted_squares(n=96, size=32, spatial_dims=2, seed=0, side=None):
    """Noise images; odd items carry a bright square at a random place (and its mask)."""
    rng = np.random.default_rng(seed)
    shape = (n, 1) + (size,) * spatial_dims
    images = rng.normal(0.0, 0.3, shape).astype(np.float32)
    masks = np.zeros(shape, dtype=bool)
    labels = np.arange(n) % 2
    side = max(2, size // 5) if side is None else side
    for i in np.flatnonzero(labels == 1):
        corner = rng.integers(1, size - side - 1, spatial_dims)
        region = (i, 0) + tuple(slice(c, c + side) for c in corner)
        images[region] += 2.0
        masks[region] = True
    return images, labels, masks


@pytest.fixture(scope="module")
def squares():
    return planted_squares()


@pytest.fixture(scope="module")
def fitted(squares):
    images, labels, _ = squares
    return Explainer(max_steps=60, random_state=0, **TINY).fit(images, labels)


# -- the classifier ----------------------------------------------------------------------
def test_fit_learns_the_delineation_and_reports_held_out_accuracy(fitted, squares):
    images, labels, _ = squares
    assert fitted.classes_.tolist() == [0, 1]
    assert fitted.n_classes_ == 2
    assert fitted.accuracy_ >= 0.9
    assert fitted.balanced_accuracy_ >= 0.9
    assert fitted.confusion_matrix_.sum() == len(fitted.test_indices_)
    # stratified split, no overlap, every item used once
    split = np.concatenate([fitted.train_indices_, fitted.test_indices_])
    assert sorted(split.tolist()) == list(range(len(images)))
    assert np.bincount(labels[fitted.test_indices_]).tolist() == [10, 10]
    assert list(fitted.held_out_.columns) == ["index", "subject", "label", "predicted",
                                              "probability"]
    assert len(fitted.history_) > 0 and "accuracy" in fitted.history_.columns
    assert isinstance(fitted.model_, ResNet)
    assert not fitted.model_.training
    predicted = fitted.predict(images[fitted.test_indices_])
    assert np.mean(predicted == labels[fitted.test_indices_]) == pytest.approx(fitted.accuracy_)
    proba = fitted.predict_proba(images[:5])
    assert proba.shape == (5, 2) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)


def test_fit_is_reproducible_and_leaves_global_rng_alone(squares):
    images, labels, _ = squares
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a = Explainer(max_steps=5, random_state=1, **TINY).fit(images, labels)
    assert torch.rand(1) == expected
    b = Explainer(max_steps=5, random_state=1, **TINY).fit(images, labels)
    assert np.array_equal(a.test_indices_, b.test_indices_)
    assert np.allclose(a.predict_proba(images[:8]), b.predict_proba(images[:8]))


def test_noise_labels_are_dropped_and_one_vs_rest(squares):
    images, labels, _ = squares
    labels = labels.copy() + 1  # clusters 1 and 2
    labels[:6] = -1
    labels[6:30] = 3
    exp = Explainer(max_steps=3, random_state=0, one_vs_rest=3, **TINY).fit(images, labels)
    used = np.concatenate([exp.train_indices_, exp.test_indices_])
    assert set(used.tolist()) == set(range(6, len(images)))
    assert exp.classes_.tolist() == ["rest", 3]
    multi = Explainer(max_steps=3, random_state=0, **TINY).fit(images, labels)
    assert multi.classes_.tolist() == [1, 2, 3]
    assert multi.predict_proba(images[:2]).shape == (2, 3)


def test_fit_accepts_a_dataset(squares):
    images, labels, _ = squares
    ds = la.ArrayDataset(images)
    exp = Explainer(max_steps=3, random_state=0, test_size=0, **TINY).fit(ds, labels)
    assert np.isnan(exp.accuracy_)
    assert exp.explain(ds).shape == (len(images), 32, 32)


@pytest.mark.parametrize("kwargs, labels, error, message", [
    ({"arch": "resnt10"}, None, ConfigError, "did you mean 'resnet10'"),
    ({"cam": "gradcm"}, None, ConfigError, "did you mean 'gradcam'"),
    ({"test_size": 1.5}, None, ConfigError, "test_size"),
    ({}, np.zeros(96, int), DataError, "at least two classes"),
    ({}, np.r_[np.zeros(95, int), 1], DataError, "fewer than two items"),
    ({}, np.zeros(10, int), DataError, "one per image"),
    ({"one_vs_rest": 7}, None, DataError, "one_vs_rest=7"),
])
def test_fit_rejects_bad_input(squares, kwargs, labels, error, message):
    images, default, _ = squares
    exp = Explainer(max_steps=1, **{**TINY, **kwargs})
    with pytest.raises(error, match=message):
        exp.fit(images, default if labels is None else labels)


def test_fit_rejects_wrong_dimensions(squares):
    images, labels, _ = squares
    with pytest.raises(InputShapeError, match="spatial_dims=3"):
        Explainer(spatial_dims=3, max_steps=1, **TINY).fit(images, labels)
    with pytest.raises(InputTypeError):
        Explainer(max_steps=1, **TINY).fit("images", labels)


def test_not_fitted_errors(squares):
    images, labels, _ = squares
    exp = Explainer()
    for call in (lambda: exp.explain(images), lambda: exp.predict(images),
                 lambda: exp.mean_maps(images), lambda: exp.faithfulness(images),
                 lambda: exp.mean_images()):
        with pytest.raises(NotFittedError, match="not fitted"):
            call()
    assert issubclass(NotFittedError, LatentAuditError)


def test_scikit_learn_shape():
    exp = Explainer(cam="hirescam", max_steps=7, random_state=3)
    params = exp.get_params()
    assert params["cam"] == "hirescam" and params["max_steps"] == 7
    copy = clone(exp)
    assert copy.get_params() == params
    assert "hirescam" in repr(exp)
    assert not hasattr(exp, "model_")
    assert params["padding_mode"] == "zeros" and params["stem"] == "auto"


# -- maps --------------------------------------------------------------------------------
def test_gradcam_points_at_the_planted_square(fitted, squares):
    images, labels, masks = squares
    test = fitted.test_indices_[labels[fitted.test_indices_] == 1]
    maps = fitted.explain(images[test], target=1)
    assert maps.shape == (len(test), 32, 32)
    assert maps.dtype == np.float32
    assert maps.min() >= 0 and maps.max() <= 1 + 1e-6
    hits = pointing_game(maps, masks[test], tolerance=2)
    assert hits.mean() >= 0.8
    # the same maps for a clean image of class 0 do not point at an absent square
    assert fitted.target_layer_ == "stages.0"
    assert fitted.cam_shape_ == (8, 8)


def test_explain_targets(fitted, squares):
    images, labels, _ = squares
    x = images[:6]
    predicted = fitted.explain(x)
    by_prediction = fitted.explain(x, target=fitted.predict(x))
    assert np.allclose(predicted, by_prediction)
    per_image = fitted.explain(x, target=[0, 1, 0, 1, 0, 1])
    assert per_image.shape == (6, 32, 32)
    with pytest.raises(ConfigError, match="not among the classes"):
        fitted.explain(x, target=5)
    with pytest.raises(DataError, match="one per image"):
        fitted.explain(x, target=[0, 1])
    with pytest.raises(InputShapeError, match="channel"):
        fitted.explain(np.zeros((2, 3, 32, 32), np.float32))


@pytest.mark.parametrize("method", cam_methods(2))
def test_every_method_runs_in_2d(fitted, squares, method):
    images, _, _ = squares
    maps = fitted.explain(images[:3], target=1, cam=method)
    assert maps.shape == (3, 32, 32)
    assert np.isfinite(maps).all()
    # hooks are released: the target layer has no forward hooks left
    assert not fitted._target_modules[0]._forward_hooks
    assert all(not m._forward_hooks for m in fitted.model_.modules())


def test_method_names_and_aliases(fitted, squares):
    images, _, _ = squares
    assert "gradcam" in CAM_METHODS and "gradcam++" in CAM_METHODS
    a = fitted.explain(images[:2], target=1, cam="GradCAMPlusPlus")
    b = fitted.explain(images[:2], target=1, cam="gradcam++")
    assert np.allclose(a, b)
    with pytest.raises(ConfigError, match="did you mean"):
        fitted.explain(images[:2], cam="hirecam")


def test_randomcam_is_seeded_and_leaves_numpy_state(fitted, squares):
    images, _, _ = squares
    state = np.random.get_state()[1].copy()  # noqa: NPY002 - RandomCAM's global state
    a = fitted.explain(images[:2], target=1, cam="randomcam")
    b = fitted.explain(images[:2], target=1, cam="randomcam")
    assert np.allclose(a, b)
    assert np.array_equal(np.random.get_state()[1], state)  # noqa: NPY002


def test_errors_inside_grad_cam_are_raised_and_hooks_released(fitted, squares):
    from latentaudit.explain._cam import compute_cam

    images, _, _ = squares
    x = torch.from_numpy(images[:2])
    # grad-cam's context manager swallows IndexError; ours re-raises it.
    with pytest.raises(IndexError):
        compute_cam(fitted.model_, [fitted._target_modules[0]], x, [5, 5], "gradcam")
    assert not fitted._target_modules[0]._forward_hooks


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_nan_maps_raise_instead_of_passing_as_zeros(fitted, squares, fitted_3d, spatial_dims):
    from latentaudit.explain._cam import compute_cam

    exp, images = (fitted, squares[0]) if spatial_dims == 2 else fitted_3d
    x = torch.from_numpy(images[:3].copy())
    x[1].view(-1)[0] = float("nan")  # one broken image makes a NaN map
    with pytest.raises(DataError, match=r"NaN or inf in 1 of 3 maps \(first: image 1\)"):
        compute_cam(exp.model_, [exp._target_modules[0]], x, [1, 1, 1], "gradcam")
    assert not exp._target_modules[0]._forward_hooks
    # the same images without the NaN give finite maps
    x[1].view(-1)[0] = 0.0
    assert np.isfinite(compute_cam(exp.model_, [exp._target_modules[0]], x, [1, 1, 1],
                                   "gradcam")).all()


def test_mean_maps_per_class(fitted, squares):
    images, labels, masks = squares
    maps = fitted.mean_maps(images, labels)
    assert maps.shape == (2, 32, 32)
    # the class-1 average map is highest where squares were planted most often
    frequency = masks[labels == 1, 0].mean(axis=0)
    assert np.corrcoef(maps[1].ravel(), frequency.ravel())[0, 1] > 0.3
    only_ones = fitted.mean_maps(images[labels == 1], np.ones((labels == 1).sum(), int))
    assert np.isnan(only_ones[0]).all() and np.isfinite(only_ones[1]).all()
    with_noise = fitted.mean_maps(images[:4], [-1, -1, 1, 1])
    assert np.isnan(with_noise[0]).all()


def test_faithfulness_removing_what_maps_point_at_hurts_most(fitted, squares):
    images, labels, _ = squares
    ones = images[fitted.test_indices_[labels[fitted.test_indices_] == 1]]
    table = fitted.faithfulness(ones, target=1, fractions=(0.05, 0.1, 0.2), baseline="mean")
    assert list(table.columns) == ["fraction", "confidence", "drop", "drop_random",
                                   "road_morf", "road_lerf"]
    assert table["fraction"].tolist() == [0.05, 0.1, 0.2]
    assert (table["drop"] > table["drop_random"] + 0.05).all()
    assert table["drop"].iloc[-1] > 0.2
    assert table["road_morf"].iloc[-1] > table["road_lerf"].iloc[-1]
    again = fitted.faithfulness(ones, target=1, fractions=(0.05, 0.1, 0.2), baseline="mean")
    pd.testing.assert_frame_equal(table, again)  # random pixels and ROAD noise are seeded
    no_road = fitted.faithfulness(ones[:2], target=1, fractions=0.1, road=False,
                                  baseline="blur")
    assert "road_morf" not in no_road.columns and len(no_road) == 1
    with pytest.raises(ConfigError, match="fractions"):
        fitted.faithfulness(ones[:2], fractions=(0.0,))
    with pytest.raises(ConfigError, match="baseline"):
        fitted.faithfulness(ones[:2], baseline="zero")


# -- 3-D ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted_3d():
    volumes, labels, masks = planted_squares(n=32, size=8, spatial_dims=3)
    exp = Explainer(spatial_dims=3, max_steps=10, random_state=0, **TINY)
    return exp.fit(volumes, labels), volumes


def test_3d_classifier_learns_and_grad_cam_points_into_the_planted_cube():
    """3-D end to end: the classifier tells volumes with a planted bright cube from
    volumes without (held-out accuracy >= 0.9) and Grad-CAM's maximum falls inside the cube
    (within 2 voxels) in at least 80% of the held-out cube volumes."""
    volumes, labels, masks = planted_squares(n=96, size=16, spatial_dims=3, side=5)
    exp = Explainer(spatial_dims=3, max_steps=120, random_state=0, **TINY).fit(volumes, labels)
    assert exp.accuracy_ >= 0.9
    held_out = exp.test_indices_[labels[exp.test_indices_] == 1]
    maps = exp.explain(volumes[held_out], target=1)
    assert maps.shape == (len(held_out), 16, 16, 16) and np.isfinite(maps).all()
    rates = [pointing_game(maps, masks[held_out], tolerance=t).mean() for t in range(4)]
    assert rates[2] >= 0.8, rates  # within 2 voxels, as in 2-D


def test_3d_grad_cam_points_into_the_3d_demo_cohorts_shifted_field_of_view(demo_volumes):
    """On whole heads of the 3-D demo cohort (16^3), a classifier of site B (shifted field
    of view) against the clean sites A and D is accurate on held-out volumes and Grad-CAM's
    maximum falls inside the planted region (the voxels the shift moved in or out, about a
    fifth of the volume) within one voxel for at least 80% of them.  The stem is "auto"
    (here "small", so the maps are 8^3, not 4^3)."""
    site = demo_volumes.metadata["site"].to_numpy()
    rng = np.random.default_rng(0)
    rows = np.sort(np.concatenate([
        np.flatnonzero(site == "B")[:80],
        rng.choice(np.flatnonzero((site == "A") | (site == "D")), 80, replace=False)]))
    images, labels = demo_volumes.images[rows], (site[rows] == "B").astype(int)
    exp = Explainer(spatial_dims=3, max_steps=120, random_state=0, **TINY).fit(images, labels)
    assert exp.stem_ == "small" and exp.cam_shape_ == (8, 8, 8)
    assert exp.accuracy_ >= 0.9
    held_out = exp.test_indices_[labels[exp.test_indices_] == 1]
    maps = exp.explain(images[held_out], target=1)
    masks = demo_volumes.artefact_masks[rows][held_out]
    rates = [pointing_game(maps, masks, tolerance=t).mean() for t in range(3)]
    assert rates[1] >= 0.8, rates


def demo_site(demo_volumes, site_name, n=80):
    """``n`` volumes of one site of the 3-D demo cohort and ``n`` of the clean sites A and D:
    images, labels (1 = the site) and the planted masks."""
    site = demo_volumes.metadata["site"].to_numpy()
    rng = np.random.default_rng(0)
    rows = np.sort(np.concatenate([
        np.flatnonzero(site == site_name)[:n],
        rng.choice(np.flatnonzero((site == "A") | (site == "D")), n, replace=False)]))
    return (demo_volumes.images[rows], (site[rows] == site_name).astype(int),
            demo_volumes.artefact_masks[rows])


def held_out_pointing(exp, images, labels, masks, tolerances=(0, 1, 2), **options):
    """The held-out site volumes of ``exp`` (fitted on :func:`demo_site`'s rows) and the
    pointing game of their maps (``explain(..., target=1, **options)``) at each tolerance."""
    held_out = exp.test_indices_[labels[exp.test_indices_] == 1]
    maps = exp.explain(images[held_out], target=1, **options)
    return held_out, [pointing_game(maps, masks[held_out], tolerance=t).mean()
                      for t in tolerances]


@pytest.mark.parametrize("seed", [0, 4])
def test_3d_layercam_at_the_first_stage_points_into_the_3d_demo_cohorts_head_rest(
        demo_volumes, seed):
    """Site C's head-rest is a shell about one voxel thick at 16^3 (5-7% of the volume).
    The classifier relies on it (with the planted voxels set to background no held-out
    volume stays site C), but Grad-CAM at the "auto" layer misses it at most seeds (its
    channel-averaged weights mix class-agnostic channels); LayerCAM at the full-resolution
    stage, the setting the Explainer's Notes give for thin artefacts, points into it within
    one voxel for at least 80% of the held-out volumes."""
    images, labels, masks = demo_site(demo_volumes, "C")
    exp = Explainer(spatial_dims=3, cam="layercam", target_layer=0, max_steps=120,
                    random_state=seed, **TINY).fit(images, labels)
    assert exp.target_layer_ == "stages.0" and exp.cam_shape_ == (16, 16, 16)
    assert exp.accuracy_ >= 0.9
    held_out, rates = held_out_pointing(exp, images, labels, masks)
    without = images[held_out].copy()
    without[:, 0][masks[held_out][:, 0]] = images[labels == 0].min()
    assert (exp.predict(without) == 1).mean() <= 0.1
    assert rates[1] >= 0.8, rates


@pytest.mark.slow
def test_3d_maps_point_into_both_planted_artefacts_at_seeds_0_to_4(demo_volumes):
    """Seeds 0-4 at 16^3 (about two minutes): Grad-CAM at the "auto" layer into site B's
    moved region, LayerCAM at stage 0 into site C's head-rest, both within one voxel for at
    least 80% of the held-out volumes, from one fitted classifier per site and seed (the
    other map through ``explain(cam=..., target_layer=...)``)."""
    rates = {}
    for site_name, (cam, layer) in (("B", ("gradcam", "auto")), ("C", ("layercam", 0))):
        images, labels, masks = demo_site(demo_volumes, site_name)
        for seed in range(5):
            exp = Explainer(spatial_dims=3, max_steps=120, random_state=seed,
                            **TINY).fit(images, labels)
            assert exp.accuracy_ >= 0.9, (site_name, seed, exp.accuracy_)
            _, (rates[site_name, seed],) = held_out_pointing(
                exp, images, labels, masks, (1,), cam=cam, target_layer=layer)
    assert min(rates.values()) >= 0.8, rates


def test_members_are_seeded_classifiers_whose_logits_and_maps_are_averaged():
    volumes, labels, _ = planted_squares(n=32, size=8, spatial_dims=3)
    options = dict(spatial_dims=3, max_steps=10, random_state=0, **TINY)
    exp = Explainer(n_members=3, **options).fit(volumes, labels)
    single = Explainer(**options).fit(volumes, labels)
    assert len(exp.members_) == 3 and single.members_ == [single.model_]
    assert exp.history_["member"].tolist() == sorted(exp.history_["member"].tolist())
    x = torch.from_numpy(volumes[:4])
    with torch.no_grad():
        # member 0 is the single classifier of the same seed; the others differ
        torch.testing.assert_close(exp.members_[0](x), single.model_(x))
        assert not torch.allclose(exp.members_[1](x), exp.members_[0](x))
        logits = torch.stack([member(x) for member in exp.members_]).mean(dim=0)
    np.testing.assert_allclose(exp.predict_proba(volumes[:4]),
                               torch.softmax(logits, dim=1).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(exp.test_indices_, single.test_indices_)
    # the maps: the mean of each member's own map (each scaled to [0, 1]), rescaled
    maps = exp.explain(volumes[:4], target=1, cam="hirescam")
    own = []
    for member in exp.members_:
        single.model_, single._target_modules = member, [member.stages[0]]
        own.append(single.explain(volumes[:4], target=1, cam="hirescam"))
    mean = np.mean(own, axis=0)
    low = mean.min(axis=(1, 2, 3), keepdims=True)
    high = mean.max(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(maps, (mean - low) / (high - low), atol=1e-4)
    with pytest.raises(ConfigError, match="n_members"):
        Explainer(n_members=0, **options).fit(volumes, labels)


def test_explain_takes_another_target_layer_without_refitting(fitted_3d):
    exp, volumes = fitted_3d
    assert exp.target_layer_ == "stages.0"
    default = exp.explain(volumes[:3], target=1)
    coarse = exp.explain(volumes[:3], target=1, cam="layercam", target_layer=1)
    assert coarse.shape == default.shape and np.isfinite(coarse).all()
    np.testing.assert_array_equal(
        coarse, exp.explain(volumes[:3], target=1, cam="layercam", target_layer="stages.1"))
    np.testing.assert_array_equal(
        coarse, exp.explain(volumes[:3], target=1, cam="layercam",
                            target_layer=exp.model_.stages[1]))
    assert not np.array_equal(
        coarse, exp.explain(volumes[:3], target=1, cam="layercam"))
    assert exp.target_layer_ == "stages.0"  # the fitted default is left alone
    np.testing.assert_array_equal(default, exp.explain(volumes[:3], target=1))
    means = exp.mean_maps(volumes[:4], [0, 1, 0, 1], target_layer=1)
    assert means.shape == (2, 8, 8, 8)
    with pytest.raises(ConfigError, match="stage index"):
        exp.explain(volumes[:1], target_layer=7)
    with pytest.raises(ConfigError, match="not part of"):
        exp.explain(volumes[:1], target_layer=torch.nn.Conv3d(1, 1, 3))


def test_several_target_layers_average_their_maps(fitted_3d):
    """``target_layer=(0, 1)``: the maps of both stages (16^3 and 8^3 here), each scaled to
    [0, 1] and brought to the volume's shape, averaged and scaled again; at fit time too."""
    exp, volumes = fitted_3d
    both = exp.explain(volumes[:3], target=1, cam="layercam", target_layer=(0, 1))
    first = exp.explain(volumes[:3], target=1, cam="layercam", target_layer=0)
    second = exp.explain(volumes[:3], target=1, cam="layercam", target_layer=1)
    mean = (first + second) / 2
    low = mean.reshape(3, -1).min(axis=1)[:, None, None, None]
    high = mean.reshape(3, -1).max(axis=1)[:, None, None, None]
    assert both.shape == (3, 8, 8, 8)
    np.testing.assert_allclose(both, (mean - low) / (high - low + 1e-7), atol=1e-4)
    np.testing.assert_array_equal(
        both, exp.explain(volumes[:3], target=1, cam="layercam",
                          target_layer=["stages.0", exp.model_.stages[1]]))
    np.testing.assert_array_equal(  # a list of one layer is that layer
        first, exp.explain(volumes[:3], target=1, cam="layercam", target_layer=[0]))
    with pytest.raises(ConfigError, match="empty"):
        exp.explain(volumes[:1], target_layer=[])
    with pytest.raises(ConfigError, match="more than once"):
        exp.explain(volumes[:1], target_layer=(0, "stages.0"))
    volumes_, labels, _ = planted_squares(n=32, size=8, spatial_dims=3)
    fitted = Explainer(spatial_dims=3, cam="layercam", target_layer=(0, 1), max_steps=2,
                       n_members=2, random_state=0, **TINY).fit(volumes_, labels)
    assert fitted.target_layer_ == ("stages.0", "stages.1")
    assert fitted.cam_shape_ == ((8, 8, 8), (4, 4, 4))
    assert len(fitted._target_modules) == 4  # two layers of two members
    assert fitted.explain(volumes_[:2], target=1).shape == (2, 8, 8, 8)


# The 3-D setting of the Explainer's Notes: a wider classifier than TINY, LayerCAM at
# stage 2 (bench_explain_3d.py --widths 32,64,128,256); the Notes fit three of them
# (n_members=3, the slow test below), the fast test one.
WIDE_3D = {"widths": (32, 64, 128, 256), "batch_size": 16, "lr": 3e-3, "cam": "layercam",
           "target_layer": 2}


def test_3d_layercam_at_stage_2_of_a_wider_classifier_finds_the_head_rest(demo_volumes):
    """The 3-D setting of the Notes (ResNet10 of widths (32, 64, 128, 256), LayerCAM at
    stage 2) points into site C's head-rest (a shell about one voxel thick) within one
    voxel for at least 80% of the held-out volumes; seed 1, about a minute on two cores.
    The same classifier's LayerCAM over stages 0+1 is checked to have the right shape."""
    images, labels, masks = demo_site(demo_volumes, "C")
    exp = Explainer(spatial_dims=3, max_steps=120, random_state=1, **WIDE_3D)
    exp.fit(images, labels)
    assert exp.target_layer_ == "stages.2" and exp.cam_shape_ == (4, 4, 4)
    assert exp.accuracy_ >= 0.9
    held_out, rates = held_out_pointing(exp, images, labels, masks)
    assert rates[1] >= 0.8, rates
    both = exp.explain(images[held_out[:2]], target=1, target_layer=(0, 1))
    assert both.shape == (2, 16, 16, 16) and np.isfinite(both).all()


@pytest.mark.slow
@pytest.mark.parametrize("site_name", ["B", "C"])
def test_3d_setting_with_three_members_points_into_the_planted_artefact_at_seeds_0_to_9(
        demo_volumes, site_name):
    """Seeds 0-9 at 16^3, one planted site each (about an hour on one core; 3,380 s for
    site C on a 2-core AMD EPYC beside other jobs): the 3-D
    setting of the Notes, three classifiers a fit (``n_members=3``), points into site B's
    moved region and into site C's head-rest within one voxel for at least 80% of the
    held-out volumes at every seed.  (One classifier a fit missed that at site C, seed 8
    on a 2-core AMD EPYC: 0.75; the Notes give both.)"""
    images, labels, masks = demo_site(demo_volumes, site_name)
    rates = {}
    for seed in range(10):
        exp = Explainer(spatial_dims=3, max_steps=120, random_state=seed, n_members=3,
                        **WIDE_3D).fit(images, labels)
        assert exp.accuracy_ >= 0.9, (site_name, seed, exp.accuracy_)
        _, (rates[seed],) = held_out_pointing(exp, images, labels, masks, (1,))
    assert min(rates.values()) >= 0.8, rates


# The 32^3 setting of the Explainer's Notes: the same wider classifier, its convolutions
# padded by replicating the border, LayerCAM at stage 0 (8^3 maps under the standard stem;
# bench_explain_3d.py --size 32 --widths 32,64,128,256 --padding replicate).
WIDE_32 = {"widths": (32, 64, 128, 256), "batch_size": 16, "lr": 3e-3, "cam": "layercam",
           "target_layer": 0, "padding_mode": "replicate"}


def test_3d_layercam_with_replicate_padding_finds_the_head_rest_at_32(demo_volumes_32):
    """At 32^3 the wider classifier with zero padding misses site C's head-rest at some
    seeds (at seed 3 LayerCAM at stage 0 peaks on a face of the volume, in air); with
    ``padding_mode="replicate"`` its LayerCAM at stage 0 points into the head-rest within
    one voxel for at least 80% of the held-out volumes.  Seed 3, 120 steps instead of the
    benchmark's 300 (about 30 s on one thread)."""
    images, labels, masks = demo_site(demo_volumes_32, "C", n=100)
    exp = Explainer(spatial_dims=3, max_steps=120, test_size=0.3, random_state=3,
                    **WIDE_32).fit(images, labels)
    assert exp.stem_ == "standard" and exp.model_.padding_mode == "replicate"
    assert exp.target_layer_ == "stages.0" and exp.cam_shape_ == (8, 8, 8)
    assert exp.accuracy_ >= 0.9
    _, rates = held_out_pointing(exp, images, labels, masks)
    assert rates[1] >= 0.8, rates


@pytest.mark.slow
def test_3d_32_setting_points_into_the_head_rest_at_seeds_0_to_4(demo_volumes_32):
    """Seeds 0-4 at 32^3, site C, the benchmark's training (100 + 100 volumes, 300 steps,
    30% held out; about ten minutes on two cores): the 32^3 setting of the Notes points
    into the head-rest within one voxel for at least 80% of the held-out volumes at every
    seed, and the classifiers rely on the head-rest (with its voxels set to background
    at most 10% of the held-out site volumes stay site C)."""
    images, labels, masks = demo_site(demo_volumes_32, "C", n=100)
    rates = {}
    for seed in range(5):
        exp = Explainer(spatial_dims=3, max_steps=300, test_size=0.3, random_state=seed,
                        **WIDE_32).fit(images, labels)
        assert exp.accuracy_ >= 0.9, (seed, exp.accuracy_)
        held_out, (rates[seed],) = held_out_pointing(exp, images, labels, masks, (1,))
        without = images[held_out].copy()
        without[:, 0][masks[held_out][:, 0]] = images[labels == 0].min()
        assert (exp.predict(without) == 1).mean() <= 0.1, seed
    assert min(rates.values()) >= 0.8, rates


@pytest.mark.slow
def test_3d_32_setting_with_three_members_points_into_the_head_rest_at_seed_7(
        demo_volumes_32):
    """Seed 7 at 32^3, site C, the benchmark's training: the one seed of 0-9 where a single
    classifier of the 32^3 setting misses the head-rest (0.70 within one voxel).  With
    ``n_members=3`` (three classifiers on the same split, their maps averaged) the maps
    point into it within one voxel for at least 80% of the held-out volumes (0.93 in the
    benchmark; about four minutes on two shared cores: three fits)."""
    images, labels, masks = demo_site(demo_volumes_32, "C", n=100)
    exp = Explainer(spatial_dims=3, max_steps=300, test_size=0.3, random_state=7,
                    n_members=3, **WIDE_32).fit(images, labels)
    assert len(exp.members_) == 3 and exp.accuracy_ >= 0.9
    held_out, (rate,) = held_out_pointing(exp, images, labels, masks, (1,))
    without = images[held_out].copy()
    without[:, 0][masks[held_out][:, 0]] = images[labels == 0].min()
    assert (exp.predict(without) == 1).mean() <= 0.1
    assert rate >= 0.8, rate


@pytest.mark.parametrize("method", cam_methods(3))
def test_3d_maps_have_the_input_shape(fitted_3d, method):
    exp, volumes = fitted_3d
    maps = exp.explain(volumes[:2], target=1, cam=method)
    assert maps.shape == (2, 8, 8, 8)
    assert np.isfinite(maps).all()


@pytest.mark.parametrize("method", sorted(set(CAM_METHODS) - set(cam_methods(3))))
def test_3d_unsupported_methods_say_so(fitted_3d, method):
    exp, volumes = fitted_3d
    with pytest.raises(ConfigError, match="does not work on 3-D inputs"):
        exp.explain(volumes[:2], cam=method)
    with pytest.raises(ConfigError, match="3-D"):
        Explainer(spatial_dims=3, cam=method).fit(volumes, np.arange(32) % 2)


def test_3d_faithfulness_without_road(fitted_3d):
    exp, volumes = fitted_3d
    table = exp.faithfulness(volumes[:4], target=1, fractions=(0.1,))
    assert "road_morf" not in table.columns
    with pytest.raises(ConfigError, match="ROAD works on 2-D"):
        exp.faithfulness(volumes[:4], road=True)
    with pytest.raises(ConfigError, match="aug_smooth"):
        exp.explain(volumes[:2], aug_smooth=True)


# -- plotting helpers --------------------------------------------------------------------
def test_overlay():
    image = np.linspace(-1, 1, 64, dtype=np.float32).reshape(1, 8, 8)
    cam = np.zeros((8, 8), np.float32)
    rgb = overlay(image, cam, alpha=0.0)
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.float32
    assert np.allclose(rgb[..., 0], rgb[..., 1]) and rgb.min() == 0 and rgb.max() == 1
    hot = overlay(image[0], np.ones((8, 8)), alpha=1.0)
    assert np.allclose(hot, hot[0, 0])  # the map alone, one colour
    assert overlay(np.repeat(image, 3, 0), cam).shape == (8, 8, 3)
    with pytest.raises(InputShapeError, match="shaped like the image"):
        overlay(image, np.zeros((4, 4)))
    with pytest.raises(InputShapeError, match="slice volumes"):
        overlay(np.zeros((1, 4, 4, 4)), np.zeros((4, 4)))


def test_pointing_game():
    maps = np.zeros((3, 6, 6))
    maps[0, 1, 1] = maps[1, 5, 5] = maps[2, 3, 3] = 1
    masks = np.zeros((3, 1, 6, 6), bool)
    masks[:, 0, :3, :3] = True
    assert pointing_game(maps, masks).tolist() == [True, False, False]
    # (3, 3) is two steps from the mask's corner (2, 2)
    assert pointing_game(maps, masks, tolerance=1).tolist() == [True, False, False]
    assert pointing_game(maps, masks, tolerance=2).tolist() == [True, False, True]
    assert pointing_game(maps, masks[:, 0]).tolist() == [True, False, False]
    with pytest.raises(InputShapeError):
        pointing_game(maps, masks[:2])


# -- mean and difference images ----------------------------------------------------------
def test_mean_images():
    images = np.arange(10, dtype=np.float32).reshape(5, 1, 1, 2)
    classes, means = mean_images(images, np.array(["b", "a", "b", "a", "b"]))
    assert classes.tolist() == ["a", "b"]
    assert means[:, 0, 0].tolist() == [[4.0, 5.0], [4.0, 5.0]]
    classes, means = mean_images(la.ArrayDataset(images), [0, 0, 1, -1, 1], batch_size=2)
    assert classes.tolist() == [0, 1]
    assert means[0].ravel().tolist() == [1.0, 2.0] and means[1].ravel().tolist() == [6.0, 7.0]
    with pytest.raises(DataError, match="noise"):
        mean_images(images, [-1] * 5)


@pytest.fixture(scope="module")
def two_groups():
    rng = np.random.default_rng(1)
    images = rng.normal(size=(60, 1, 12, 12)).astype(np.float32)
    labels = np.repeat(["x", "y", "z"], 20)
    images[labels == "x", :, 2:5, 6:10] += 2.5
    truth = np.zeros((1, 12, 12), bool)
    truth[:, 2:5, 6:10] = True
    return images, labels, truth


@pytest.mark.parametrize("test", ["welch", "permutation"])
def test_difference_map_finds_the_planted_region(two_groups, test):
    images, labels, truth = two_groups
    diff = difference_map(images, labels, "x", "y", test=test, n_permutations=400,
                          random_state=0)
    assert diff.significant.shape == (1, 12, 12)
    assert diff.n_source == diff.n_target == 20
    assert diff.significant[truth].mean() >= 0.9
    assert diff.significant[~truth].mean() <= 0.03
    assert np.allclose(diff.difference, diff.mean_source - diff.mean_target)
    assert "significant" in repr(diff)


def test_difference_map_welch_matches_scipy_and_streams_datasets(two_groups):
    images, labels, _ = two_groups
    diff = difference_map(la.ArrayDataset(images), labels, "x", test="welch", batch_size=7)
    ref = stats.ttest_ind(images[labels == "x"], images[labels != "x"], equal_var=False,
                          axis=0)
    assert diff.target == "rest" and diff.n_target == 40
    assert np.allclose(diff.statistic, ref.statistic, atol=1e-4)
    assert np.allclose(diff.p_value, ref.pvalue, atol=1e-6)


def test_difference_map_no_false_positives_between_alike_groups(two_groups):
    images, labels, _ = two_groups
    assert not difference_map(images, labels, "y", "z").significant.any()
    big = difference_map(images, labels, "x", "y", min_difference=10.0)
    assert not big.significant.any()


def test_difference_map_errors(two_groups):
    images, labels, _ = two_groups
    with pytest.raises(DataError, match="source label 'w'"):
        difference_map(images, labels, "w")
    with pytest.raises(ConfigError, match="must differ"):
        difference_map(images, labels, "x", "x")
    with pytest.raises(ConfigError, match="did you mean"):
        difference_map(images, labels, "x", test="welsh")
    with pytest.raises(DataError, match="at least two"):
        difference_map(images[:21], labels[:21], "x", "y")


def test_explainer_difference_map_defaults_to_the_fitted_data(fitted, squares):
    images, labels, masks = squares
    diff = fitted.difference_map(1, 0)
    assert diff.n_source == diff.n_target == 48
    classes, means = fitted.mean_images()
    assert classes.tolist() == [0, 1]
    assert np.allclose(means[1], images[labels == 1].mean(axis=0), atol=1e-5)


# -- counterfactuals ---------------------------------------------------------------------
class HalvesEncoder:
    """A tiny generative encoder: z = (mean of the top half, mean of the bottom half);
    decode paints the two halves with them."""

    latent_dim, spatial_dims = 2, 2

    def encode(self, x):
        x = torch.as_tensor(x)
        h = x.shape[-2] // 2
        return torch.stack([x[..., :h, :].mean((1, 2, 3)), x[..., h:, :].mean((1, 2, 3))], 1)

    def invert(self, x, **options):
        return None

    def decode(self, z, codes=None, *, generator=None, **options):
        assert codes is None
        z = torch.as_tensor(z)
        top = z[:, 0, None, None, None].expand(-1, 1, 4, 8)
        bottom = z[:, 1, None, None, None].expand(-1, 1, 4, 8)
        return torch.cat([top, bottom], dim=2)


class StochasticHalvesEncoder(HalvesEncoder):
    """Like a Diffusion Autoencoder: decode needs the image's own x_T."""

    def __init__(self):
        self.calls = []

    def invert(self, x, steps=None):
        self.calls.append(("invert", steps))
        return torch.as_tensor(x) * 0 + 0.25

    def decode(self, z_sem, codes=None, steps=None, *, generator=None):
        self.calls.append(("decode", steps))
        assert codes is not None
        return super().decode(z_sem) + codes


def halves(n=10):
    images = np.zeros((2 * n, 1, 8, 8), np.float32)
    images[:n, :, :4] = 1.0  # cluster "up": bright top
    images[n:, :, 4:] = 1.0  # cluster "down": bright bottom
    return images, np.repeat(["up", "down"], n)


def row_centre(images):
    w = images[:, 0] + 1e-6
    return (w * np.arange(w.shape[1])[None, :, None]).sum((1, 2)) / w.sum((1, 2))


def test_latent_direction():
    z = np.array([[0, 0], [0, 2], [4, 0], [4, 2], [9, 9]], np.float32)
    labels = np.array([0, 0, 1, 1, -1])
    assert latent_direction(z, labels, 0, 1).tolist() == [4.0, 0.0]
    probe = latent_direction(z, labels, 0, 1, kind="probe", random_state=0)
    assert probe[0] == pytest.approx(4.0, rel=1e-3) and abs(probe[1]) < 1e-3
    with pytest.raises(DataError, match="target label 5"):
        latent_direction(z, labels, 0, 5)


def test_counterfactual_moves_toward_the_target():
    images, labels = halves()
    enc = HalvesEncoder()
    z = enc.encode(images).numpy()
    cf = counterfactual(enc, images[:10], "up", "down", embeddings=z, labels=labels, n_points=4)
    assert cf.images.shape == (10, 4, 1, 8, 8)
    assert cf.latents.shape == (10, 4, 2)
    assert cf.alphas.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert np.allclose(cf.images[:, -1], images[10:])  # fully moved: the other cluster
    centres = np.stack([row_centre(cf.images[:, s]) for s in range(4)], 1)
    assert (np.diff(centres, axis=1) > 0).all()  # step by step toward the bottom
    assert np.allclose(cf.difference, cf.images[:, -1] - cf.images[:, 0])
    assert cf.direction.tolist() == [-1.0, 1.0]
    half = counterfactual(enc, images[:2], direction=np.array([0, 1], np.float32), n_points=2,
                          scale=0.5)
    assert half.kind == "given" and np.allclose(half.difference[:, 0, 4:], 0.5)


def test_counterfactual_keeps_a_diffusion_autoencoders_noise():
    images, labels = halves()
    enc = StochasticHalvesEncoder()
    z = enc.encode(images).numpy()
    cf = counterfactual(enc, images[:3], "up", "down", embeddings=z, labels=labels, n_points=3,
                        steps=7)
    assert enc.calls[0] == ("invert", 7)
    assert enc.calls.count(("decode", 7)) == 3
    assert np.allclose(cf.images[:, 0], images[:3] + 0.25)


def test_counterfactual_errors():
    images, labels = halves()

    class EncodeOnly:
        latent_dim, spatial_dims = 2, 2

        def encode(self, x):
            return torch.zeros(len(x), 2)

    with pytest.raises(InputTypeError, match="GenerativeEncoder protocol"):
        counterfactual(EncodeOnly(), images, "up", "down", embeddings=np.zeros((20, 2)),
                       labels=labels)
    enc = HalvesEncoder()
    with pytest.raises(ConfigError, match="n_points"):
        counterfactual(enc, images, direction=np.ones(2), n_points=1)
    with pytest.raises(ConfigError, match="needs embeddings"):
        counterfactual(enc, images, "up", "down")
    with pytest.raises(InputShapeError, match="latent_dim"):
        counterfactual(enc, images, direction=np.ones(3))


def test_explainer_counterfactual_encodes_the_fitted_images():
    images, labels = halves(16)
    exp = Explainer(max_steps=2, random_state=0, test_size=0.25, **TINY).fit(images, labels)
    cf = exp.counterfactual(HalvesEncoder(), images[:2], "up", "down", n_points=3)
    assert cf.direction.tolist() == [-1.0, 1.0]
    assert cf.images.shape == (2, 3, 1, 8, 8)
    probe = exp.counterfactual(HalvesEncoder(), images[:2], "up", "down", n_points=2,
                               direction="probe")
    assert probe.kind == "probe" and probe.direction[1] > 0 > probe.direction[0]
    with pytest.raises(DataError, match="source label 'left'"):
        exp.counterfactual(HalvesEncoder(), images[:2], "left", "down")


def test_explainer_on_embeddings_uses_their_images_ids_and_latents():
    images, labels = halves(16)

    class Counting(HalvesEncoder):
        encoded = 0

        def encode(self, x):
            Counting.encoded += len(x)
            return super().encode(x)

    enc = Counting()
    z = HalvesEncoder().encode(images).numpy()
    ids = [f"s{i:02d}" for i in range(len(images))]
    emb = la.Embeddings(z, ids=ids, id_column="patient", images=images)
    exp = Explainer(max_steps=2, random_state=0, test_size=0.25, **TINY).fit(emb, labels)
    assert exp.held_out_.columns[:2].tolist() == ["index", "patient"]
    held = exp.held_out_
    assert (held["patient"] == np.asarray(ids, dtype=object)[held["index"]]).all()
    assert exp.embeddings_ is emb and exp.labels_.tolist() == labels.tolist()
    assert exp.explain(emb).shape == (len(images), 8, 8)  # the Embeddings' images
    cf = exp.counterfactual(enc, images[:2], "up", "down", n_points=3)
    # the move comes from the embeddings fit was given: only the 2 moved images are encoded
    assert Counting.encoded == 2 and cf.direction.tolist() == [-1.0, 1.0]
    with pytest.raises(DataError, match="attach_images"):
        Explainer(**TINY).fit(la.Embeddings(z), labels)


def test_counterfactual_with_a_beta_vae_runs_end_to_end():
    from latentaudit.encoders import BetaVAEEncoder

    images, labels = halves()
    images = np.pad(images, ((0, 0), (0, 0), (4, 4), (4, 4)))
    enc = BetaVAEEncoder(image_size=16, channels=(4, 8), latent_dim=4)
    z = enc.encode(images).numpy()
    cf = counterfactual(enc, images[:3], "up", "down", embeddings=z, labels=labels, n_points=3)
    assert cf.images.shape == (3, 3, 1, 16, 16)
    assert np.allclose(cf.latents[:, 2] - cf.latents[:, 0], cf.direction, atol=1e-5)


# -- the demo cohort: a planted head-rest at site C --------------------------------------
@pytest.fixture(scope="module")
def cohort():
    # The demo cohort ships inside the package: a file that does not load is a failure.
    return la.datasets.load_demo_cohort()


def _head_rest_check(cohort, positions, max_steps, widths):
    site = cohort.metadata["site"].to_numpy()[positions]
    images = cohort.images[positions]
    labels = (site == "C").astype(int)
    exp = Explainer(widths=widths, max_steps=max_steps, batch_size=32, random_state=0)
    exp.fit(images, labels)
    held_out = exp.test_indices_[labels[exp.test_indices_] == 1]
    maps = exp.explain(images[held_out], target=1)
    hits = pointing_game(maps, cohort.artefact_masks[positions][held_out], tolerance=2)
    return exp, hits


def test_head_rest_is_found_on_a_subset(cohort):
    rng = np.random.default_rng(0)
    site = cohort.metadata["site"].to_numpy()
    positions = np.sort(np.concatenate([
        rng.choice(np.flatnonzero(site == "C"), 60, replace=False),
        rng.choice(np.flatnonzero(site != "C"), 180, replace=False)]))
    exp, hits = _head_rest_check(cohort, positions, max_steps=80, widths=(8, 16, 32, 64))
    assert exp.accuracy_ >= 0.95
    assert hits.mean() >= 0.8


@pytest.mark.slow
def test_head_rest_is_found_on_the_whole_cohort(cohort):
    exp, hits = _head_rest_check(cohort, np.arange(len(cohort)), max_steps=150,
                                 widths=(16, 32, 64, 128))
    assert exp.accuracy_ >= 0.95 and exp.balanced_accuracy_ >= 0.95
    assert hits.mean() >= 0.8


def _overlap(cohort, source):
    site = cohort.metadata["site"].to_numpy()
    group = np.where(np.isin(site, ["A", "D"]), "clean", site)
    diff = difference_map(cohort.images, group, source, "clean")
    significant = diff.significant[0]
    planted = cohort.artefact_masks[site == source, 0]
    region = planted.mean(axis=0) >= 0.1
    inside = (significant & ndimage.binary_dilation(region, iterations=2)).sum()
    return significant, region, inside / max(significant.sum(), 1)


def test_difference_map_shows_the_head_rest(cohort):
    significant, region, inside = _overlap(cohort, "C")
    assert inside >= 0.8  # what differs is (next to) the head-rest
    assert significant[region].mean() >= 0.8  # and most of the head-rest differs


def test_difference_map_shows_the_shifted_field_of_view(cohort):
    significant, region, _ = _overlap(cohort, "B")
    assert significant[region].mean() >= 0.8



def _row_centre(images):
    weights = (images[:, 0] + 1) / 2
    rows = np.arange(weights.shape[1])[None, :, None]
    return (weights * rows).sum(axis=(1, 2)) / weights.sum(axis=(1, 2))


@pytest.mark.slow
def test_counterfactual_from_the_shifted_site_moves_the_head_back(cohort):
    from latentaudit.encoders import BetaVAEEncoder

    # 32x32 (2x2 means) keeps the beta-VAE's training short.
    images = cohort.images.reshape(-1, 1, 32, 2, 32, 2).mean(axis=(3, 5))
    site = cohort.metadata["site"].to_numpy()
    group = np.where(np.isin(site, ["A", "D"]), "clean", site)
    torch.manual_seed(0)
    encoder = BetaVAEEncoder(image_size=32, channels=(8, 16, 32), latent_dim=16, beta=1.0)
    encoder.fit(images, max_steps=300, batch_size=32, verbose=False, random_state=0)
    z = encoder.encode(images).numpy()
    shifted = np.flatnonzero(site == "B")[:24]
    cf = counterfactual(encoder, images[shifted], "B", "clean", embeddings=z, labels=group,
                        n_points=3)
    before, after = _row_centre(cf.images[:, 0]), _row_centre(cf.images[:, -1])
    clean = _row_centre(images[group == "clean"]).mean()
    assert before.mean() > clean + 2  # site B's heads sit lower in the image
    assert np.mean(after < before) >= 0.9  # the move lifts them
    assert abs(after.mean() - clean) < 0.5 * abs(before.mean() - clean)


def test_our_score_cam_matches_grad_cams_in_2d(fitted, squares):
    # Score-CAM is re-implemented for 3-D support; in 2-D it must agree with grad-cam's.
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    images, _, _ = squares
    x = torch.from_numpy(images[:3])
    ours = fitted.explain(images[:3], target=1, cam="scorecam")
    with pytorch_grad_cam.ScoreCAM(fitted.model_, [fitted._target_modules[0]]) as cam:
        theirs = cam(x, targets=[ClassifierOutputTarget(1)] * 3)
    assert np.allclose(ours, theirs, atol=1e-4)
