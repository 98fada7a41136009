"""The bundled demo cohort and the Fashion-MNIST loader (latentaudit.datasets)."""

import gzip
import importlib.resources
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

import latentaudit as la
from latentaudit.errors import ConfigError, DataError, MissingDependencyError

SITE_ARTEFACTS = {"A": "none", "B": "fov_shift", "C": "head_rest", "D": "none"}
PACKAGED_FILE = importlib.resources.files("latentaudit") / "data" / "_files" / "demo_cohort.npz"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
MRICRON_CH2 = Path("/usr/share/mricron/templates/ch2.nii.gz")
needs_fashion = pytest.mark.skipif(not (FASHION_DIR / "t10k-labels-idx1-ubyte.gz").is_file(),
                                   reason="Debian package dataset-fashion-mnist not installed")
needs_templates = pytest.mark.skipif(not MRICRON_CH2.is_file(),
                                     reason="Debian package mricron-data not installed")


@pytest.fixture(scope="module")
def cohort():
    return la.datasets.load_demo_cohort()


@pytest.fixture(scope="module")
def cohort128():
    return la.datasets.load_demo_cohort(size=128)


# -- demo cohort: shapes and tables -------------------------------------------------------
def test_demo_images_shape_dtype_range(cohort):
    n = len(cohort)
    assert 1900 <= n <= 2100
    assert cohort.images.shape == (n, 1, 64, 64)
    assert cohort.images.dtype == np.float32
    assert cohort.images.min() >= -1 and cohort.images.max() <= 1
    assert cohort.images.std() > 0.2  # real content, not a constant
    assert isinstance(cohort, la.ArrayDataset)
    item = cohort[3]
    assert tuple(item["image"].shape) == (1, 64, 64) and item["index"] == 3


def test_demo_metadata_columns_and_values(cohort):
    meta = cohort.metadata
    assert list(meta.columns) == ["subject", "site", "sex", "age", "height", "weight"]
    assert meta["subject"].is_unique and all(isinstance(s, str) for s in meta["subject"])
    assert list(cohort.ids) == list(meta["subject"])
    assert set(meta["site"]) == set("ABCD")
    assert set(meta["sex"]) == {"F", "M"}
    assert meta["age"].between(20, 80).all()
    assert meta["height"].between(135, 215).all()
    assert meta["weight"].between(35, 160).all()


def test_demo_anthropometrics_are_plausible(cohort):
    meta, truth = cohort.metadata, cohort.truth
    male = truth["true_sex"] == "M"
    assert meta["height"][male].mean() - meta["height"][~male].mean() > 8
    assert np.corrcoef(meta["height"], meta["weight"])[0, 1] > 0.3


def test_demo_sites_have_alike_demographics(cohort):
    meta, truth = cohort.metadata, cohort.truth
    n = len(meta)
    for site in "ABCD":
        members = meta["site"] == site
        assert abs(members.sum() - n / 4) < 0.05 * n
        assert 0.45 <= (truth["true_sex"][members] == "F").mean() <= 0.55
        assert abs(meta["age"][members].mean() - meta["age"].mean()) < 3
        assert abs(meta["height"][members].mean() - meta["height"].mean()) < 3


def test_demo_truth_is_consistent(cohort):
    meta, truth = cohort.metadata, cohort.truth
    assert list(truth.columns[:4]) == ["subject", "artefact", "sex_flipped", "true_sex"]
    assert (truth["subject"] == meta["subject"]).all()
    assert (truth["artefact"] == meta["site"].map(SITE_ARTEFACTS)).all()
    assert (truth["sex_flipped"] == (truth["true_sex"] != meta["sex"])).all()
    assert truth["sex_flipped"].dtype == bool
    assert 0.02 <= truth["sex_flipped"].mean() <= 0.04
    # flipped labels are spread over the sites, not one site's problem
    assert truth.groupby(meta["site"])["sex_flipped"].sum().min() >= 3


def test_demo_masks_mark_exactly_the_artefact_images(cohort):
    masks = cohort.artefact_masks
    assert masks.dtype == bool and masks.shape == cohort.images.shape
    has_mask = masks.reshape(len(masks), -1).any(axis=1)
    planted = (cohort.truth["artefact"] != "none").to_numpy()
    np.testing.assert_array_equal(has_mask, planted)
    # a mask covers a region, not a pixel or the whole image
    area = masks.reshape(len(masks), -1).mean(axis=1)[planted]
    assert area.min() > 0.01 and area.max() < 0.5


def test_demo_repr_shows_shape_and_metadata(cohort):
    text = repr(cohort)
    assert "(2000, 1, 64, 64)" in text.replace(str(len(cohort)), "2000")
    assert "site A" in text and "site D" in text
    assert "age" in text and "height" in text
    assert str(cohort) == text


def test_demo_size_128(cohort, cohort128):
    n = len(cohort)
    assert cohort128.images.shape == (n, 1, 128, 128)
    assert cohort128.artefact_masks.shape == (n, 1, 128, 128)
    assert cohort128.images.min() >= -1 and cohort128.images.max() <= 1
    # 64x64 masks are the 2x2 "any" of the 128x128 ones
    m = cohort128.artefact_masks[:, 0]
    pooled = m[:, ::2, ::2] | m[:, 1::2, ::2] | m[:, ::2, 1::2] | m[:, 1::2, 1::2]
    np.testing.assert_array_equal(pooled, cohort.artefact_masks[:, 0])
    # the same anatomy at both sizes (noise differs)
    x = cohort128.images[:50, 0]
    small = (x[:, ::2, ::2] + x[:, 1::2, ::2] + x[:, ::2, 1::2] + x[:, 1::2, 1::2]) / 4
    r = np.corrcoef(small.ravel(), cohort.images[:50].ravel())[0, 1]
    assert r > 0.95
    assert cohort128.metadata.equals(cohort.metadata)


def test_demo_loading_is_deterministic_and_fast(cohort, tmp_path):
    # a copy under a new name is decoded from scratch: a cold load
    copy = tmp_path / "demo.npz"
    shutil.copyfile(PACKAGED_FILE, copy)
    start, start_cpu = time.perf_counter(), time.process_time()
    again = la.datasets.load_demo_cohort(path=copy)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    # CPU time (all threads) is the budget; wall time only catches gross slowness, since
    # the test machine may be shared (a load of 20 on 2 cores made a 1 s load take 9 s)
    assert cpu < 2.0, f"loading the demo cohort took {cpu:.2f} s of CPU time"
    assert elapsed < 30.0, f"loading the demo cohort took {elapsed:.2f} s"
    np.testing.assert_array_equal(again.images, cohort.images)
    np.testing.assert_array_equal(again.artefact_masks, cohort.artefact_masks)
    assert again.metadata.equals(cohort.metadata) and again.truth.equals(cohort.truth)
    # a user writing into one cohort does not change the next one
    again.images[:] = 0
    again.artefact_masks[:] = True
    third = la.datasets.load_demo_cohort(path=copy)
    np.testing.assert_array_equal(third.images, cohort.images)
    np.testing.assert_array_equal(third.artefact_masks, cohort.artefact_masks)


def test_the_library_never_reads_the_planted_truth():
    """docs/data.rst: the truth (``.truth``, ``.artefact_masks``) is for tests and
    benchmarks, which the library never reads: outside the module that builds the demo
    cohort, no source file of the package mentions either."""
    import re

    package = Path(la.__file__).parent
    pattern = re.compile(r"\.truth\b|artefact_masks")
    readers = sorted(str(path.relative_to(package)) for path in package.rglob("*.py")
                     if pattern.search(path.read_text(encoding="utf-8")))
    assert readers == ["data/_demo.py"], readers


def test_demo_file_is_small():
    assert PACKAGED_FILE.is_file()
    assert Path(PACKAGED_FILE).stat().st_size < 15e6


def test_demo_bad_arguments_and_files(tmp_path):
    with pytest.raises(ConfigError, match="size"):
        la.datasets.load_demo_cohort(size=32)
    with pytest.raises(DataError, match="does not exist"):
        la.datasets.load_demo_cohort(path=tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a numpy archive")
    with pytest.raises(DataError, match="cannot read"):
        la.datasets.load_demo_cohort(path=bad)
    old = tmp_path / "old.npz"
    np.savez(old, format_version=np.int64(0))
    with pytest.raises(DataError, match="format version"):
        la.datasets.load_demo_cohort(path=old)


# -- demo cohort: the planted effects are real --------------------------------------------
def _site_mean(cohort, site):
    return cohort.images[(cohort.metadata["site"] == site).to_numpy(), 0].mean(axis=0)


def test_demo_fov_shift_moves_the_head(cohort):
    a, b, d = (_site_mean(cohort, s) for s in "ABD")
    # the vertex (rows 5-14, columns 16-47 of 64) is in view at site A, above it at site B
    assert (a[5:15, 16:48] - b[5:15, 16:48]).mean() > 0.4
    # the clean sites look alike
    assert np.abs(a - d).mean() < 0.03
    assert np.abs(a - b).mean() > 4 * np.abs(a - d).mean()


def test_demo_head_rest_is_visible_inside_its_mask(cohort):
    site = cohort.metadata["site"].to_numpy()
    clean = np.concatenate([cohort.images[site == "A", 0], cohort.images[site == "D", 0]])
    clean_mean = clean.mean(axis=0)
    inside, background = [], []
    for index in np.flatnonzero(site == "C")[:200]:
        mask = cohort.artefact_masks[index, 0]
        inside.append(cohort.images[index, 0][mask].mean())
        background.append(clean_mean[mask].mean())
    # air (about -0.9) at the clean sites, a bright object at site C
    assert np.mean(inside) - np.mean(background) > 0.6
    assert np.min(np.array(inside) - np.array(background)) > 0.3


@pytest.fixture(scope="module")
def pixel_pca(cohort):
    """The raw 64x64 pixels reduced to 50 principal components."""
    from sklearn.decomposition import PCA

    return PCA(50, random_state=0).fit_transform(cohort.images.reshape(len(cohort), -1))


def test_demo_true_sex_is_predictable_from_pixels(cohort, pixel_pca):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    z = pixel_pca
    true_male = (cohort.truth["true_sex"] == "M").to_numpy()
    scores = cross_val_score(LogisticRegression(max_iter=2000), z, true_male,
                             cv=StratifiedKFold(5, shuffle=True, random_state=0))
    assert scores.mean() >= 0.95
    # the given labels are noisier: the probe cannot beat the flipped share
    given_male = (cohort.metadata["sex"] == "M").to_numpy()
    given = cross_val_score(LogisticRegression(max_iter=2000), z, given_male,
                            cv=StratifiedKFold(5, shuffle=True, random_state=0))
    assert given.mean() < 1 - 0.5 * cohort.truth["sex_flipped"].mean()


def test_demo_flipped_sex_labels_stand_out_among_neighbours(cohort, pixel_pca):
    from sklearn.neighbors import NearestNeighbors

    z = pixel_pca
    given = cohort.metadata["sex"].to_numpy()
    flipped = cohort.truth["sex_flipped"].to_numpy()
    _, neighbours = NearestNeighbors(n_neighbors=11).fit(z).kneighbors(z)
    disagreement = (given[neighbours[:, 1:]] != given[:, None]).mean(axis=1)
    top = np.argsort(-disagreement, kind="stable")[:flipped.sum()]
    assert flipped[top].mean() >= 0.8


# -- demo cohort: the generator ----------------------------------------------------------
@needs_templates
def test_make_demo_cohort_is_deterministic(tmp_path):
    pytest.importorskip("nilearn")
    first = la.datasets.make_demo_cohort(tmp_path / "a.npz", n_subjects=8, seed=3,
                                         flip_fraction=0.25, verbose=False)
    second = la.datasets.make_demo_cohort(tmp_path / "b.npz", n_subjects=8, seed=3,
                                          flip_fraction=0.25, verbose=False)
    with np.load(first) as a, np.load(second) as b:
        assert set(a.files) == set(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    small = la.datasets.load_demo_cohort(size=128, path=first)
    assert small.images.shape == (8, 1, 128, 128)
    assert small.truth["sex_flipped"].sum() == 2
    assert sorted(small.metadata["site"]) == list("AABBCCDD")
    has_mask = small.artefact_masks.reshape(8, -1).any(axis=1)
    np.testing.assert_array_equal(has_mask, (small.truth["artefact"] != "none").to_numpy())


@needs_templates
def test_demo_site_artefacts_are_the_artefact_librarys():
    """Sites B and C are rendered with la.artefacts, and that reproduces the shipped file."""
    pytest.importorskip("nilearn")
    import io

    from PIL import Image

    from latentaudit.data import _demo, _demo_render

    assert _demo_render.SITE_B_ARTEFACT == la.artefacts.FieldOfViewShift(
        strength=0.78125, value_range=(0.0, 1.0))
    assert _demo_render.SITE_B_ARTEFACT.shift_pixels(256) == 50.0
    templates = _demo_render.load_templates(*_demo_render.template_paths())
    population = _demo_render.draw_population(2000, 0, 0.03)
    kinds = population["truth"]["artefact"]
    with np.load(PACKAGED_FILE) as shipped:
        blobs, offsets, bits = shipped["jpeg"], shipped["jpeg_offsets"], shipped["mask_bits"]
    side = _demo._STORED_SIZE
    # the first subjects of sites B and C, and row 1253 (site B), whose head reaches
    # above the unshifted field of view (what comes into view is anatomy, not air)
    for i in (int(np.flatnonzero(kinds == "fov_shift")[0]),
              int(np.flatnonzero(kinds == "head_rest")[0]), 1253):
        params = {key: value[i] for key, value in population["params"].items()}
        image, mask = _demo_render.render_slice(templates, params, kinds[i], 2 * side)
        image = image.reshape(side, 2, side, 2).mean(axis=(1, 3))
        mask = mask.reshape(side, 2, side, 2).any(axis=(1, 3))
        buffer = io.BytesIO()
        pixels = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=_demo._JPEG_QUALITY,
                                     optimize=True)
        assert buffer.getvalue() == blobs[offsets[i]:offsets[i + 1]].tobytes(), i
        np.testing.assert_array_equal(np.packbits(mask.ravel()), bits[i], err_msg=str(i))


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    """A small 3-D demo cohort: 8 subjects at 16^3, a quarter of their labels flipped."""
    pytest.importorskip("nilearn")
    if not MRICRON_CH2.is_file():
        pytest.skip("Debian package mricron-data not installed")
    path = la.datasets.make_demo_cohort(tmp_path_factory.mktemp("demo3d") / "vol.npz",
                                        n_subjects=8, spatial_dims=3, size=16,
                                        flip_fraction=0.25, verbose=False)
    return path, la.datasets.load_demo_cohort(16, spatial_dims=3, path=path)


def test_3d_demo_cohort_has_the_2d_contract(volumes):
    path, cohort = volumes
    assert cohort.images.shape == (8, 1, 16, 16, 16) and cohort.images.dtype == np.float32
    assert cohort.images.min() >= -1 and cohort.images.max() <= 1
    assert cohort.artefact_masks.shape == cohort.images.shape
    assert cohort.artefact_masks.dtype == bool
    assert list(cohort.metadata.columns) == ["subject", "site", "sex", "age", "height",
                                             "weight"]
    assert sorted(cohort.metadata["site"]) == list("AABBCCDD")
    assert cohort.truth["sex_flipped"].sum() == 2
    planted = cohort.artefact_masks.reshape(8, -1).any(axis=1)
    np.testing.assert_array_equal(planted, (cohort.truth["artefact"] != "none").to_numpy())
    # the same subjects, sites, labels and draws as the 2-D cohort of that seed and size
    from latentaudit.data._demo_render import draw_population

    population = draw_population(8, 0, 0.25)
    np.testing.assert_array_equal(cohort.metadata["sex"], population["metadata"]["sex"])
    np.testing.assert_array_equal(cohort.truth["artefact"], population["truth"]["artefact"])
    assert cohort.spatial_dims == 3


def test_3d_demo_cohort_plants_the_site_artefacts_in_3d(volumes):
    _, cohort = volumes
    heads = cohort.images[:, 0] > -0.5                       # (x, z, y): rows are z
    artefact = cohort.truth["artefact"].to_numpy()
    # site B: the field of view moved up by 19.5%, so the head sits lower
    top = [np.flatnonzero(h.any(axis=(0, 2)))[0] for h in heads]
    assert min(t for t, a in zip(top, artefact, strict=True) if a == "fov_shift") > \
        max(t for t, a in zip(top, artefact, strict=True) if a != "fov_shift")
    # site C: a cushion behind the head (far columns), on many left-right planes
    for i in np.flatnonzero(artefact == "head_rest"):
        mask = cohort.artefact_masks[i, 0]
        assert mask.any(axis=(1, 2)).sum() >= 6
        assert np.nonzero(mask)[2].mean() > 8
    # its centre sagittal plane shows what the 2-D cohort shows
    assert heads[:, 8].mean() > 0.3


def test_3d_demo_cohort_is_deterministic_and_checks_its_file(volumes, tmp_path):
    path, cohort = volumes
    again = la.datasets.make_demo_cohort(tmp_path / "again.npz", n_subjects=8, spatial_dims=3,
                                         size=16, flip_fraction=0.25, verbose=False)
    other = la.datasets.load_demo_cohort(16, spatial_dims=3, path=again)
    np.testing.assert_array_equal(other.images, cohort.images)
    np.testing.assert_array_equal(other.artefact_masks, cohort.artefact_masks)
    with pytest.raises(DataError, match="spatial_dims=3"):
        la.datasets.load_demo_cohort(path=path)
    with pytest.raises(DataError, match="size=16"):
        la.datasets.load_demo_cohort(32, spatial_dims=3, path=path)
    with pytest.raises(ConfigError, match="size"):
        la.datasets.load_demo_cohort(20, spatial_dims=3, path=path)
    with pytest.raises(ConfigError, match="spatial_dims"):
        la.datasets.load_demo_cohort(spatial_dims=4)
    with pytest.raises(ConfigError, match="size"):
        la.datasets.make_demo_cohort(tmp_path / "x.npz", size=64)


def test_3d_demo_cohort_written_as_nifti_reads_back_voxel_for_voxel(volumes, tmp_path):
    """``to_nifti`` writes RAS volumes that NiftiDataset reads back in the cohort's
    arrangement, so the artefact masks lie over its items; a 2-D cohort is refused."""
    _, cohort = volumes
    scans, table = cohort.to_nifti(tmp_path / "study", rows=[1, 2, 5])
    ds = la.NiftiDataset(scans, metadata=table, spatial_dims=3, size=(16, 16, 16),
                         intensity=None)
    assert list(ds.ids) == cohort.metadata["subject"].iloc[[1, 2, 5]].tolist()
    assert ds.metadata["site"].tolist() == cohort.metadata["site"].iloc[[1, 2, 5]].tolist()
    for k, row in enumerate([1, 2, 5]):
        np.testing.assert_allclose(ds[k]["image"].numpy(), cohort.images[row], atol=1e-6)
    with pytest.raises(ConfigError, match="spatial_dims=3"):
        la.datasets.load_demo_cohort().to_nifti(tmp_path / "flat")


def test_to_nifti_never_replaces_a_file_unasked(volumes, tmp_path):
    """A folder that already holds one of the files to write is refused before anything
    is written; overwrite=True replaces them, leaving no temporary file behind."""
    _, cohort = volumes
    folder = tmp_path / "study"
    (folder / "scans").mkdir(parents=True)
    subject = cohort.metadata["subject"].iloc[2]
    mine = folder / "scans" / f"{subject}.nii.gz"
    mine.write_bytes(b"the user's own scan")
    with pytest.raises(ConfigError, match="existing file"):
        cohort.to_nifti(folder, rows=[1, 2])
    assert mine.read_bytes() == b"the user's own scan"
    assert not (folder / "participants.csv").exists()
    assert sorted(p.name for p in (folder / "scans").iterdir()) == [mine.name]
    scans, _ = cohort.to_nifti(folder, rows=[1, 2], overwrite=True)
    ds = la.NiftiDataset(scans, spatial_dims=3, size=(16, 16, 16), intensity=None)
    assert len(ds) == 2 and sorted(p.name for p in folder.rglob(".*")) == []


@needs_templates
def test_3d_demo_cohort_is_made_once_then_read_from_the_cache(tmp_path, monkeypatch):
    pytest.importorskip("nilearn")
    from latentaudit.data import _demo

    monkeypatch.setenv("LATENTAUDIT_CACHE", str(tmp_path))
    monkeypatch.setattr(_demo, "VOLUME_SUBJECTS", 8)     # the default 400 takes a minute
    first = la.datasets.load_demo_cohort(16, spatial_dims=3)
    files = sorted((tmp_path / "demo").glob("*.npz"))
    assert [f.name for f in files] == ["demo_cohort_3d_v1_16_8_seed0.npz"]
    start = time.process_time()
    second = la.datasets.load_demo_cohort(16, spatial_dims=3)
    assert time.process_time() - start < 2.0
    np.testing.assert_array_equal(first.images, second.images)
    assert not list((tmp_path / "demo").glob("*.partial"))


@pytest.mark.slow
@needs_templates
def test_3d_demo_cohort_default():
    start = time.perf_counter()
    cohort = la.datasets.load_demo_cohort(spatial_dims=3)
    made = time.perf_counter() - start
    assert cohort.images.shape == (400, 1, 32, 32, 32)
    assert cohort.truth.groupby("artefact").size().to_dict() == {
        "fov_shift": 100, "head_rest": 100, "none": 200}
    start = time.process_time()
    la.datasets.load_demo_cohort(spatial_dims=3)
    assert time.process_time() - start < 5.0, made


def test_make_demo_cohort_names_what_to_install(tmp_path):
    with pytest.raises(MissingDependencyError, match="mricron-data"):
        la.datasets.make_demo_cohort(tmp_path / "x.npz", n_subjects=8,
                                     mricron_dir=tmp_path, verbose=False)
    with pytest.raises(ConfigError, match="n_subjects"):
        la.datasets.make_demo_cohort(tmp_path / "x.npz", n_subjects=2)
    with pytest.raises(ConfigError, match="flip_fraction"):
        la.datasets.make_demo_cohort(tmp_path / "x.npz", flip_fraction=0.7)


@pytest.mark.slow
@needs_templates
def test_make_demo_cohort_rebuilds_the_packaged_file(tmp_path):
    pytest.importorskip("nilearn")
    rebuilt = la.datasets.make_demo_cohort(tmp_path / "demo.npz", verbose=False)
    shipped = la.datasets.load_demo_cohort(size=128)
    again = la.datasets.load_demo_cohort(size=128, path=rebuilt)
    assert again.metadata.equals(shipped.metadata) and again.truth.equals(shipped.truth)
    # library versions may move a few interpolated pixels by a grey level
    assert np.abs(again.images - shipped.images).mean() < 2 / 255
    assert (again.artefact_masks != shipped.artefact_masks).mean() < 1e-3


# -- Fashion-MNIST -----------------------------------------------------------------------
@needs_fashion
def test_fashion_mnist_test_split():
    test = la.datasets.load_fashion_mnist("test")
    assert test.images.shape == (10000, 1, 28, 28)
    assert test.images.dtype == np.float32
    assert test.images.min() == -1 and test.images.max() == 1
    meta = test.metadata
    assert list(meta.columns[:3]) == ["subject", "label", "label_name"]
    assert meta["subject"].is_unique and meta["subject"].iloc[0] == "test-00000"
    assert (meta["label"].value_counts() == 1000).all()
    assert meta["label"].iloc[0] == 9 and meta["label_name"].iloc[0] == "Ankle boot"
    names = dict(zip(meta["label"], meta["label_name"], strict=True))
    assert names == dict(enumerate(la.datasets.FASHION_MNIST_CLASSES))


@needs_fashion
def test_fashion_mnist_all_and_resize():
    both = la.datasets.load_fashion_mnist("all")
    assert len(both) == 70000
    assert (both.metadata["split"].iloc[[0, -1]] == ["train", "test"]).all()
    assert both.metadata["subject"].is_unique
    resized = la.datasets.load_fashion_mnist("test", size=32)
    assert resized.images.shape == (10000, 1, 32, 32)
    assert -1 <= resized.images.min() and resized.images.max() <= 1


def _write_idx(path, magic, shape, data, compress=True):
    header = magic.to_bytes(4, "big") + b"".join(int(s).to_bytes(4, "big") for s in shape)
    raw = header + bytes(data)
    if compress:
        with gzip.open(path, "wb") as handle:
            handle.write(raw)
    else:
        Path(path).write_bytes(raw)


def _write_fashion(folder, n=3, labels=None, compress=True, image_magic=0x803,
                   image_bytes=None):
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    pixels = np.zeros((n, 28, 28), dtype=np.uint8)
    pixels[:, 0, 0] = 255
    pixels[1] = 128
    data = pixels.tobytes() if image_bytes is None else image_bytes
    labels = list(range(n)) if labels is None else labels
    for prefix in ("train", "t10k"):
        _write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", image_magic, (n, 28, 28),
                   data, compress)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", 0x801, (len(labels),),
                   labels, compress)


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_reads_a_small_folder(tmp_path, compress):
    _write_fashion(tmp_path, compress=compress)
    data = la.datasets.load_fashion_mnist("train", path=tmp_path)
    assert data.images.shape == (3, 1, 28, 28)
    assert data.images[0, 0, 0, 0] == 1 and data.images[0, 0, 1, 1] == -1
    assert data.images[1, 0, 5, 5] == pytest.approx(128 / 255 * 2 - 1, abs=1e-6)
    assert list(data.metadata["label_name"]) == ["T-shirt/top", "Trouser", "Pullover"]
    assert len(la.datasets.load_fashion_mnist("all", path=tmp_path)) == 6


def test_fashion_mnist_bad_files(tmp_path):
    with pytest.raises(DataError, match="dataset-fashion-mnist"):
        la.datasets.load_fashion_mnist(path=tmp_path / "nowhere")
    _write_fashion(tmp_path / "magic", image_magic=0x801)
    with pytest.raises(DataError, match="magic number"):
        la.datasets.load_fashion_mnist(path=tmp_path / "magic")
    _write_fashion(tmp_path / "short", image_bytes=bytes(100))
    with pytest.raises(DataError, match="truncated"):
        la.datasets.load_fashion_mnist(path=tmp_path / "short")
    _write_fashion(tmp_path / "count", labels=[0, 1])
    with pytest.raises(DataError, match="3 images but 2 labels"):
        la.datasets.load_fashion_mnist(path=tmp_path / "count")
    _write_fashion(tmp_path / "label", labels=[0, 1, 12])
    with pytest.raises(DataError, match="0-9"):
        la.datasets.load_fashion_mnist(path=tmp_path / "label")
    (tmp_path / "gz").mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (tmp_path / "gz" / name).write_bytes(b"not gzip")
    with pytest.raises(DataError, match="cannot read"):
        la.datasets.load_fashion_mnist(path=tmp_path / "gz")
    with pytest.raises(ConfigError, match="did you mean 'test'"):
        la.datasets.load_fashion_mnist("tset")


def test_demo_split_is_fixed_stratified_and_complete():
    cohort = la.datasets.load_demo_cohort()
    train, test = la.datasets.demo_split(cohort.metadata)
    again_train, again_test = la.datasets.demo_split()
    np.testing.assert_array_equal(test, again_test)
    np.testing.assert_array_equal(train, again_train)
    assert len(np.intersect1d(train, test)) == 0
    assert len(train) + len(test) == len(cohort)
    # every site x sex stratum is held out at the same rate
    strata = cohort.metadata.groupby(["site", "sex"]).size()
    held = cohort.metadata.iloc[test].groupby(["site", "sex"]).size()
    assert np.all(np.abs(held / strata - 0.2) < 0.02)
    other_train, other_test = la.datasets.demo_split(random_state=1)
    assert not np.array_equal(test, other_test)


@pytest.mark.parametrize("held_out", [0, 1, 1.5, -0.1, True, "0.2"])
def test_demo_split_rejects_bad_fraction(held_out):
    with pytest.raises(la.errors.ConfigError, match="held_out"):
        la.datasets.demo_split(held_out=held_out)
