"""Tests of ClusterAuditor on embeddings with planted ground truth."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

import latentaudit as la
from latentaudit.audit import ClusterAuditor, delineate
from latentaudit.audit._association import FINDING_COLUMNS
from latentaudit.errors import (
    ConfigError,
    DataError,
    InputShapeError,
    InputTypeError,
    NotFittedError,
)


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny problems only lose time to thread start-up on a shared machine
    with threadpool_limits(1):
        yield


def _cohort(n=600, shift=6.0, n_blobs=3, dim=16, seed=0):
    """Blobs (the 'anatomy') in which every site-B row is moved by one vector."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_blobs, dim)) * 6
    blob = rng.integers(0, n_blobs, n)
    site = rng.choice(list("ABCD"), n)
    z = centres[blob] + rng.normal(size=(n, dim))
    direction = rng.normal(size=dim)
    z[site == "B"] += shift * direction / np.linalg.norm(direction)
    meta = pd.DataFrame({
        "subject": [f"sub-{i:04d}" for i in range(n)],
        "site": site,
        "sex": rng.choice(["F", "M"], n),
        "age": rng.normal(50, 10, n).round(1),
    })
    return z, meta, blob


def _dominated(aud, column, level, values):
    """Rows in clusters where ``level`` is the majority of ``column``."""
    rows = np.zeros(len(values), dtype=bool)
    for cluster in np.unique(aud.labels_[aud.labels_ >= 0]):
        members = aud.labels_ == cluster
        if np.mean(values[members] == level) > 0.5:
            rows |= members
    return rows


def test_shifted_site_forms_its_own_cluster():
    z, meta, _ = _cohort(n_blobs=1, shift=8.0)
    aud = ClusterAuditor(random_state=0, nuisance=["site"], expected=["sex"]).fit(z, meta)
    top = aud.findings_.iloc[0]
    assert top["column"] == "site"
    assert top["q_value"] < 1e-3
    is_b = (meta["site"] == "B").to_numpy()
    assert adjusted_rand_score(is_b, aud.labels_) > 0.8
    assert "site = B for 100% vs" in aud.findings_.query("kind == 'cluster'")[
        "description"].str.cat(sep="|")
    assert list(aud.findings_.columns) == FINDING_COLUMNS
    assert "subject" not in aud.column_types_  # an identifier is not tested
    assert aud.column_types_ == {"site": "categorical", "sex": "categorical",
                                 "age": "continuous"}


def test_site_shift_inside_blobs_ranks_first():
    z, meta, blob = _cohort(shift=10.0)
    aud = ClusterAuditor(random_state=0, nuisance=["site"], expected=["sex"]).fit(z, meta)
    findings = aud.findings_
    assert findings.loc[0, "column"] == "site"
    assert findings.loc[0, "q_value"] < 1e-3
    is_b = (meta["site"] == "B").to_numpy()
    assert adjusted_rand_score(is_b, _dominated(aud, "site", "B", meta["site"].to_numpy())) > 0.8
    # the clusters also follow the blobs: 3 blobs x (B or not)
    assert adjusted_rand_score(blob * 2 + is_b, aud.labels_) > 0.8
    probe = findings[findings["kind"] == "probe"]
    # every column that is not expected is probed; only site is carried
    assert sorted(probe["column"]) == ["age", "site"]
    assert probe["column"].iloc[0] == "site"
    assert probe["q_value"].iloc[0] < 1e-3
    assert probe["test"].iloc[0] == "probe_logistic"
    # nothing about the unrelated columns survives the correction
    other = findings[findings["column"].isin(["sex", "age"])]
    assert (other["q_value"] > 0.05).all()
    assert findings["cluster"].dtype == "Int64"
    sentence = findings.loc[findings["cluster"].notna() & (findings["column"] == "site"),
                            "description"].iloc[0]
    assert sentence.startswith("cluster ") and "subjects): site = B for" in sentence


def test_findings_of_expected_columns_rank_last():
    """Expected columns' findings come after every other finding, however strong: here sex
    splits the embedding in two (the strongest structure) and site B is a smaller shift.
    A nuisance role does not move a finding up: without roles the strongest comes first."""
    z, meta, blob = _cohort(n=400, n_blobs=2, shift=4.0)
    meta["sex"] = np.where(blob == 0, "F", "M")
    ranked = ClusterAuditor(random_state=0, nuisance=["site"], expected=["sex"],
                            n_subgroups=0).fit(z, meta).findings_
    is_expected = ranked["column"].eq("sex").to_numpy()
    assert is_expected.any() and not is_expected.all()
    assert not np.any(is_expected[:-1] & ~is_expected[1:])  # no other finding after sex
    assert ranked["column"].iloc[0] == "site"
    plain = ClusterAuditor(random_state=0, n_subgroups=0).fit(z, meta).findings_
    assert plain["column"].iloc[0] == "sex"


def test_site_effect_hidden_inside_clusters_is_found_by_the_probe():
    # a smaller shift: the clusters follow the blobs only, but a probe still sees site B
    z, meta, blob = _cohort(shift=5.0)
    aud = ClusterAuditor(random_state=0, nuisance=["site"]).fit(z, meta)
    assert adjusted_rand_score(blob, aud.labels_) > 0.9
    top = aud.findings_.iloc[0]
    assert top["kind"] == "probe" and top["column"] == "site"
    assert top["q_value"] < 1e-3
    assert top["description"].startswith("site is predicted from the embedding (held-out AUC")


def _null_rates(n_datasets, n=150, seed=0, probe=True):
    rng = np.random.default_rng(seed)
    any_finding, p_values = [], []
    for i in range(n_datasets):
        centres = rng.normal(size=(3, 8)) * 5
        z = centres[rng.integers(0, 3, n)] + rng.normal(size=(n, 8))
        meta = pd.DataFrame({"site": rng.choice(list("ABC"), n), "sex": rng.choice(["F", "M"], n),
                             "age": rng.normal(50, 10, n)})
        # the blobs are groups no column names: candidate subgroups would rightly find
        # them (tests/test_audit_candidates.py checks their calibration)
        aud = ClusterAuditor(random_state=i, nuisance=["site", "age"] if probe else None,
                             n_permutations=49, n_subgroups=0).fit(z, meta)
        any_finding.append(bool((aud.findings_["q_value"] <= 0.05).any()))
        p_values.append(aud.findings_["p_value"].to_numpy())
    return np.mean(any_finding), np.concatenate(p_values)


def test_false_finding_rate_without_planted_effect():
    # structure in the embedding (blobs) but metadata independent of it: under this
    # complete null the false discovery rate equals the chance of any finding
    rate, p_values = _null_rates(30)
    assert rate <= 0.05
    # the p-values behind it are valid: not significantly more small ones than chance
    # allows (three standard errors; a p-value off by a factor of two would fail)
    m = p_values.size
    assert m > 400
    for level in (0.05, 0.2):
        assert np.mean(p_values <= level) <= level + 3 * np.sqrt(level * (1 - level) / m)


@pytest.mark.slow
def test_false_finding_rate_many_repeats():
    rate, p_values = _null_rates(300, seed=1)
    assert rate <= 0.05
    m = p_values.size
    for level in (0.01, 0.05, 0.2):
        assert np.mean(p_values <= level) <= level + 3 * np.sqrt(level * (1 - level) / m)


def test_label_issues_recover_flipped_categorical_labels():
    rng = np.random.default_rng(1)
    n = 400
    sex = rng.choice(["F", "M"], n)
    z = rng.normal(size=(n, 10))
    z[:, 0] += np.where(sex == "M", 2.5, -2.5)
    flipped = rng.choice(n, 20, replace=False)
    given = sex.copy()
    given[flipped] = np.where(sex[flipped] == "M", "F", "M")
    aud = ClusterAuditor(random_state=0).fit(z, pd.DataFrame({"sex": given}))
    issues = aud.label_issues("sex")
    assert list(issues.columns[:5]) == ["index", "subject", "given", "suggested", "score"]
    assert len(issues) == n and issues["score"].is_monotonic_decreasing
    top = issues.head(20)
    assert np.isin(top["index"], flipped).mean() >= 0.8
    hit = top[np.isin(top["index"], flipped)]
    np.testing.assert_array_equal(hit["suggested"], sex[hit["index"]])
    np.testing.assert_array_equal(issues["given"], given[issues["index"]])
    assert issues["flagged"].sum() >= 15
    for method in ("knn", "probe"):
        single = aud.label_issues("sex", evidence=method).head(20)
        assert np.isin(single["index"], flipped).mean() >= 0.7


def test_label_issues_continuous_and_missing_values():
    rng = np.random.default_rng(2)
    n = 300
    z = rng.normal(size=(n, 6))
    age = 50 + 10 * z[:, 0] + rng.normal(size=n)
    wrong = rng.choice(n, 8, replace=False)
    age[wrong] += 45
    age_with_gaps = age.copy()
    missing = np.setdiff1d(np.arange(n), wrong)[:5]
    age_with_gaps[missing] = np.nan
    aud = ClusterAuditor(random_state=0).fit(z, pd.DataFrame({"age": age_with_gaps}))
    issues = aud.label_issues("age")
    assert len(issues) == n - 5
    assert not np.isin(issues["index"], missing).any()
    assert set(issues.head(8)["index"]) == set(wrong)
    assert issues.head(8)["flagged"].all()
    assert issues["flagged"].sum() <= 12
    top = issues.iloc[0]
    assert abs(top["given"] - top["suggested"]) > 25


def test_outliers_duplicates_and_nearest():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(300, 5))
    z[10] += 25.0  # far from everything
    z[20] = z[21] + 1e-4  # a near-duplicate pair
    meta = pd.DataFrame({"subject": np.arange(300)})
    aud = ClusterAuditor(random_state=0).fit(z, meta)
    outliers = aud.outliers(top=3)
    assert outliers.loc[0, "index"] == 10 and outliers.loc[0, "score"] > 3
    assert len(outliers) == 3
    pairs = aud.duplicates()
    assert pairs[["index_a", "index_b"]].values.tolist() == [[20, 21]]
    found = aud.nearest(z[[5, 10]], k=3)
    assert len(found) == 6
    first = found[found["rank"] == 0]
    assert first["index"].tolist() == [5, 10]
    np.testing.assert_allclose(first["distance"], 0.0, atol=1e-3)
    assert (found["subject"] == found["index"].astype(str)).all()  # ids come along
    np.testing.assert_array_equal(aud.nearest(z[7], k=1)["index"], [7])


def test_nearest_in_reduced_space():
    z, meta, _ = _cohort(n=200, dim=60)
    aud = ClusterAuditor(random_state=0, analysis_components=8, knn_space="reduced").fit(z, meta)
    found = aud.nearest(z[:4], k=2)
    assert found[found["rank"] == 0]["index"].tolist() == [0, 1, 2, 3]
    with pytest.raises(InputShapeError, match="query_z must have 60 features"):
        aud.nearest(z[:2, :10])


def test_knn_space_auto_searches_the_analysis_space_above_a_size(tmp_path, monkeypatch):
    from latentaudit.audit import _diagnostics

    z, meta, _ = _cohort(n=200, dim=60)
    small = ClusterAuditor(random_state=0, analysis_components=8).fit(z, meta)
    assert small.knn_space == "auto" and small.knn_space_ == "embedding"
    monkeypatch.setattr(_diagnostics, "KNN_EMBEDDING_MAX_SAMPLES", 150)
    large = ClusterAuditor(random_state=0, analysis_components=8).fit(z, meta)
    reduced = ClusterAuditor(random_state=0, analysis_components=8,
                             knn_space="reduced").fit(z, meta)
    assert large.knn_space_ == "reduced"
    np.testing.assert_array_equal(large.knn_indices_, reduced.knn_indices_)
    loaded = ClusterAuditor.load(large.save(tmp_path / "aud", include_embedding=False))
    assert loaded.knn_space_ == "reduced"
    assert loaded.nearest(z[:3], k=1)["index"].tolist() == [0, 1, 2]


def test_within_groups_finds_site_hidden_inside_sex():
    rng = np.random.default_rng(4)
    n = 600
    sex = rng.choice(["F", "M"], n)
    site = rng.choice(list("ABC"), n)
    z = rng.normal(size=(n, 12))
    z[:, 0] += np.where(sex == "M", 12.0, 0.0)  # the expected structure dominates
    z[:, 1] += np.where(site == "C", 7.0, 0.0)  # the site effect hides inside each sex
    meta = pd.DataFrame({"sex": sex, "site": site})
    aud = ClusterAuditor(random_state=0, expected=["sex"], nuisance=["site"],
                         within="sex").fit(z, meta)
    assert "sex" not in aud.column_types_
    # every cluster lies within one sex
    for cluster in range(aud.n_clusters_):
        assert np.unique(sex[aud.members(cluster)]).size == 1
    top = aud.findings_.iloc[0]
    assert top["column"] == "site" and top["q_value"] < 1e-3
    texts = aud.findings_["description"].str.cat(sep="|")
    assert "sex = F" in texts and "sex = M" in texts
    is_c = site == "C"
    assert adjusted_rand_score(is_c, _dominated(aud, "site", "C", site)) > 0.8


@pytest.mark.parametrize("method", ["kmeans", "gmm"])
def test_kmeans_and_mixture_choose_the_number_of_clusters(method):
    z, meta, blob = _cohort(n=300, shift=0.0, n_blobs=3)
    aud = ClusterAuditor(clusterer=method, random_state=0).fit(z, meta)
    assert aud.n_clusters_ == 3
    assert adjusted_rand_score(blob, aud.labels_) > 0.95
    fixed = ClusterAuditor(clusterer=method, n_clusters=4, random_state=0).fit(z)
    assert fixed.n_clusters_ == 4


def test_subsampled_clustering_propagates_labels():
    z, meta, blob = _cohort(n=900, shift=0.0, n_blobs=3)
    aud = ClusterAuditor(random_state=0, cluster_max_samples=150).fit(z, meta)
    assert aud.n_clusters_ == 3
    assert adjusted_rand_score(blob, aud.labels_) > 0.95
    sizes = np.bincount(aud.labels_[aud.labels_ >= 0])
    assert np.all(np.diff(sizes) <= 0)  # cluster 0 is the largest


def test_given_labels_from_a_delineation():
    z, meta, _ = _cohort(n=300, n_blobs=1, shift=8.0)
    xy = z[:, :2]
    is_b = (meta["site"] == "B").to_numpy()
    # a polygon around the B rows' bounding box in the first two coordinates
    lo, hi = xy[is_b].min(axis=0) - 0.01, xy[is_b].max(axis=0) + 0.01
    box = [[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]]
    labels = delineate(xy, [box])
    aud = ClusterAuditor(random_state=0).fit(z, meta, labels=labels)
    np.testing.assert_array_equal(aud.labels_, labels)
    site = aud.findings_[aud.findings_["column"] == "site"].iloc[0]
    assert site["p_value"] < 1e-3
    assert aud.summary()["cluster"].tolist() == [0, -1]


def test_summary_members_and_reproducibility():
    z, meta, _ = _cohort(n=300)
    aud = ClusterAuditor(random_state=3).fit(z, meta)
    summary = aud.summary()
    assert summary["n"].sum() == 300
    assert summary["fraction"].sum() == pytest.approx(1.0)
    assert summary.loc[0, "n"] == aud.members(summary.loc[0, "cluster"]).size
    assert set(summary.columns) >= {"cluster", "n", "top_column", "top_q_value", "description"}
    again = ClusterAuditor(random_state=3).fit(z, meta)
    pd.testing.assert_frame_equal(aud.findings_, again.findings_)
    np.testing.assert_array_equal(aud.labels_, again.labels_)


def test_save_and_load_round_trip(tmp_path):
    z, meta, _ = _cohort(n=300)
    meta["smoker"] = np.where(np.arange(300) % 3 == 0, True, False)
    aud = ClusterAuditor(random_state=0, analysis_components=8, nuisance=["site"]).fit(z, meta)
    folder = aud.save(tmp_path / "audit")
    assert not list(folder.glob("*.pkl"))
    loaded = ClusterAuditor.load(folder)
    pd.testing.assert_frame_equal(loaded.findings_, aud.findings_)
    np.testing.assert_array_equal(loaded.labels_, aud.labels_)
    assert loaded.get_params() == aud.get_params()
    pd.testing.assert_frame_equal(loaded.label_issues("sex"), aud.label_issues("sex"))
    pd.testing.assert_frame_equal(loaded.nearest(z[:3], k=4), aud.nearest(z[:3], k=4))
    pd.testing.assert_frame_equal(loaded.summary(), aud.summary())
    pd.testing.assert_frame_equal(loaded.outliers(), aud.outliers())
    lean = ClusterAuditor.load(aud.save(tmp_path / "lean", include_embedding=False))
    pd.testing.assert_frame_equal(lean.probe("site", n_permutations=0),
                                  aud.probe("site", n_permutations=0))
    with pytest.raises(la.errors.CheckpointError, match="cannot read a saved ClusterAuditor"):
        ClusterAuditor.load(tmp_path / "missing")


def test_fit_without_metadata_and_sklearn_conventions():
    z, _, _ = _cohort(n=120)
    aud = ClusterAuditor(random_state=0)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        aud.summary()
    with pytest.raises(NotFittedError):
        aud.label_issues("site")
    assert aud.fit(z) is aud
    assert aud.findings_.empty and list(aud.findings_.columns) == FINDING_COLUMNS
    assert aud.labels_.shape == (120,)
    assert clone(aud).get_params() == aud.get_params()
    assert aud.knn_method_ == "exact" and aud.knn_recall_ == 1.0
    assert aud.knn_indices_.shape == (120, 15)


def test_input_errors():
    z, meta, _ = _cohort(n=60)
    with pytest.raises(ConfigError, match="did you mean 'kmeans'"):
        ClusterAuditor(clusterer="kmean").fit(z, meta)
    with pytest.raises(ConfigError, match="did you mean 'site'"):
        ClusterAuditor(nuisance=["sight"]).fit(z, meta)
    with pytest.raises(DataError, match="one row per embedding row"):
        ClusterAuditor().fit(z, meta.iloc[:10])
    bad = z.copy()
    bad[3, 2] = np.nan
    with pytest.raises(DataError, match="NaN or inf values in 1 of 60 rows"):
        ClusterAuditor().fit(bad, meta)
    with pytest.raises(InputShapeError, match=r"shape \(n_samples, n_features\)"):
        ClusterAuditor().fit(z[0], meta)
    with pytest.raises(InputTypeError, match="metadata must be a pandas DataFrame"):
        ClusterAuditor().fit(z, {"site": meta["site"]})
    with pytest.raises(InputShapeError, match="labels must have shape"):
        ClusterAuditor().fit(z, meta, labels=[0, 1])
    with pytest.raises(ConfigError, match="alpha must be a number in"):
        ClusterAuditor(alpha=2).fit(z, meta)
    aud = ClusterAuditor(random_state=0).fit(z, meta)
    with pytest.raises(ConfigError, match="column must be one of"):
        aud.label_issues("nope")
    with pytest.raises(ConfigError, match="did you mean 'svm'"):
        aud.probe("site", model="svn")


# -- the demo cohort: a simulated multi-site study with planted artefacts ------------------

def _demo():
    # The demo cohort ships inside the package: a file that does not load is a failure.
    return la.datasets.load_demo_cohort()


@pytest.fixture(scope="module")
def demo_pixels():
    """The demo cohort's raw-pixel PCA embedding (64 components), metadata and truth."""
    cohort = _demo()
    images = np.asarray(cohort.images, dtype=np.float32)
    with threadpool_limits(1):  # the autouse limit does not reach module-scoped fixtures
        z = PCA(64, random_state=0).fit_transform(images.reshape(len(images), -1))
    return z, cohort.metadata, cohort.truth


def test_demo_cohort_shifted_site_is_found_from_raw_pixels(demo_pixels):
    pixels, meta, truth = demo_pixels
    aud = ClusterAuditor(random_state=0, nuisance=["site"], expected=["sex"]).fit(pixels, meta)
    top = aud.findings_.iloc[0]
    assert top["column"] == "site" and top["q_value"] < 1e-3
    shifted = (truth["artefact"] == "fov_shift").to_numpy()
    shifted_site = meta.loc[shifted, "site"].mode()[0]
    found = _dominated(aud, "site", shifted_site, meta["site"].to_numpy())
    assert adjusted_rand_score(shifted, found) > 0.8


def test_demo_cohort_flipped_sex_labels_are_recovered(demo_pixels):
    pixels, meta, truth = demo_pixels
    aud = ClusterAuditor(random_state=0, expected=["sex"]).fit(pixels, meta)
    issues = aud.label_issues("sex")
    flipped = np.flatnonzero(truth["sex_flipped"].to_numpy())
    k = flipped.size
    assert k > 0
    precision = np.isin(issues["index"].head(k), flipped).mean()
    assert precision >= 0.8


# -- rows carry identity ------------------------------------------------------------------
def test_fit_on_embeddings_equals_fit_on_the_array_and_tables_carry_ids(tmp_path):
    z, meta, _ = _cohort(n=240, n_blobs=1, shift=8.0)
    meta = meta.rename(columns={"subject": "patient"})
    emb = la.Embeddings(z, metadata=meta, id_column="patient")
    a = ClusterAuditor(random_state=0, nuisance=["site"], expected=["sex"]).fit(emb)
    b = ClusterAuditor(random_state=0, nuisance=["site"], expected=["sex"],
                       id_column="patient").fit(emb.z, emb.metadata)
    pd.testing.assert_frame_equal(a.findings_, b.findings_)
    assert "patient" not in a.column_types_  # the ids name rows; they are not tested
    assert a.id_column_ == "patient" and a.ids_[3] == meta["patient"][3]
    issues = a.label_issues("sex")
    assert issues.columns[:3].tolist() == ["index", "patient", "given"]
    assert (issues["patient"] == meta["patient"].to_numpy()[issues["index"]]).all()
    assert a.outliers(top=2).columns.tolist() == ["index", "patient", "score", "distance"]
    found = a.nearest(z[7], k=2)
    assert found.loc[0, "patient"] == meta["patient"][7]
    assert found.columns.tolist().count("patient") == 1
    twin = z.copy()
    twin[9] = twin[4]
    pairs = ClusterAuditor(random_state=0).fit(la.Embeddings(twin, metadata=meta,
                                                             id_column="patient")).duplicates()
    assert pairs.columns.tolist() == ["index_a", "patient_a", "index_b", "patient_b",
                                      "distance"]
    assert pairs.loc[0, ["patient_a", "patient_b"]].tolist() == [meta["patient"][4],
                                                                 meta["patient"][9]]
    again = ClusterAuditor.load(a.save(tmp_path / "aud"))
    pd.testing.assert_frame_equal(again.label_issues("sex"), issues)


def test_nothing_to_test_is_said_not_silent():
    z, meta, _ = _cohort(n=120)
    with pytest.warns(UserWarning, match="without metadata"):
        aud = ClusterAuditor(random_state=0).fit(z)
    assert aud.findings_.empty and aud.ids_[:2].tolist() == ["0", "1"]
    with pytest.warns(UserWarning, match="none of the metadata columns"):
        ClusterAuditor(random_state=0).fit(la.Embeddings(z))  # only ids


@parametrize_with_checks([ClusterAuditor(random_state=0)])
def test_scikit_learn_checks(estimator, check):
    # fit(X, y): X the embedding, y the metadata (an array becomes a column "y")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "nothing to test" on bare arrays
        check(estimator)
