"""Tests of latentaudit.interpolate: SMOTE / Borderline-SMOTE in latent space, provenance,
subgroups, synthetic metadata, decoding and off-manifold rejection."""

from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
from imblearn.over_sampling import SMOTE, BorderlineSMOTE
from imblearn.utils.estimator_checks import estimator_checks_generator
from sklearn.datasets import make_classification
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.estimator_checks import (
    parametrize_with_checks as sklearn_parametrize_with_checks,
)

import latentaudit as la
from latentaudit import errors
from latentaudit.interpolate import GenerationResult, Interpolator
from latentaudit.nn import slerp

torch.set_num_threads(1)

METHODS = ["smote", "borderline1", "borderline2"]


def _three_classes(seed=0):
    """60 / 25 / 10 rows of three overlapping classes in 5-D."""
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(0.0, 1.0, (60, 5)), rng.normal(0.7, 1.0, (25, 5)),
                        rng.normal(-0.7, 1.0, (10, 5))])
    y = np.array([0] * 60 + [1] * 25 + [2] * 10)
    return X, y


def _knn_same_group(X, members, k):
    """Brute-force k nearest other members of each member (dict: row -> set of rows)."""
    d = np.linalg.norm(X[members][:, None] - X[members][None], axis=2)
    np.fill_diagonal(d, np.inf)
    order = np.argsort(d, axis=1)[:, :k]
    return {int(m): set(members[order[i]].tolist()) for i, m in enumerate(members)}


# -- the contract: rows on the segments between their recorded parents -----------------
@pytest.mark.parametrize("method", METHODS)
def test_synthetic_rows_lie_on_segments_between_recorded_parents(method):
    X, y = _three_classes()
    res = Interpolator(method, k_neighbors=4, random_state=0)
    X_res, y_res = res.fit_resample(X, y)
    n = len(X)
    np.testing.assert_array_equal(X_res[:n], X)
    np.testing.assert_array_equal(y_res[:n], y)
    prov = res.provenance_
    assert list(prov.columns) == ["parent_a", "subject_a", "parent_b", "subject_b", "weight",
                                  "group"]
    assert prov.index.tolist() == list(range(n, len(X_res)))
    a, b, w = (prov[c].to_numpy() for c in ("parent_a", "parent_b", "weight"))
    # exactly the formula of DESIGN.md
    np.testing.assert_array_equal(X_res[n:], X[a] + w[:, None] * (X[b] - X[a]))
    np.testing.assert_array_equal(res.z_synthetic_, X_res[n:])
    assert ((w >= 0) & (w < 1)).all()
    assert (y[a] == prov["group"].to_numpy()).all()
    assert (y_res[n:] == prov["group"].to_numpy()).all()
    if method != "borderline2":
        assert (y[b] == y[a]).all()
    else:
        # parent_b may come from another class, then the row stays nearer parent_a
        other = y[b] != y[a]
        assert other.any()
        assert (w[other] < 0.5).all()
    if method == "smote":
        for cls in (1, 2):
            members = np.flatnonzero(y == cls)
            neighbours = _knn_same_group(X, members, 4)
            rows = prov["group"].to_numpy() == cls
            pairs = zip(a[rows], b[rows], strict=True)
            assert all(int(pb) in neighbours[int(pa)] for pa, pb in pairs)
    else:
        for cls, danger in res.in_danger_indices_.items():
            rows = prov["group"].to_numpy() == cls
            assert set(a[rows]) <= set(danger.tolist())


def test_float32_rows_are_reproduced_exactly_by_the_recorded_weight():
    X, y = _three_classes()
    X = X.astype(np.float32)
    res = Interpolator(random_state=3)
    X_res, _ = res.fit_resample(X, y)
    assert X_res.dtype == np.float32
    prov = res.provenance_
    a, b = prov["parent_a"].to_numpy(), prov["parent_b"].to_numpy()
    w = prov["weight"].to_numpy().astype(np.float32)
    np.testing.assert_array_equal(X_res[len(X):], X[a] + w[:, None] * (X[b] - X[a]))


# -- counts for every form of sampling_strategy -------------------------------------------
@pytest.mark.parametrize("strategy, expected", [
    ("auto", {0: 60, 1: 60, 2: 60}),
    ("not majority", {0: 60, 1: 60, 2: 60}),
    ("minority", {0: 60, 1: 25, 2: 60}),
    ("not minority", {0: 60, 1: 60, 2: 10}),
    ("all", {0: 60, 1: 60, 2: 60}),
    (40, {0: 60, 1: 40, 2: 40}),
    (20, {0: 60, 1: 25, 2: 20}),
    ({2: 33}, {0: 60, 1: 25, 2: 33}),
    ({1: 25, 2: 11}, {0: 60, 1: 25, 2: 11}),
    (lambda labels: {2: int((labels == 0).sum()) // 2}, {0: 60, 1: 25, 2: 30}),
])
def test_counts_match_sampling_strategy(strategy, expected):
    X, y = _three_classes()
    res = Interpolator(sampling_strategy=strategy, random_state=0)
    X_res, y_res = res.fit_resample(X, y)
    assert dict(Counter(y_res.tolist())) == expected
    assert len(X_res) == sum(expected.values())
    assert len(res.provenance_) == len(X_res) - len(X)
    assert res.group_counts_ == {0: 60, 1: 25, 2: 10}


@pytest.mark.parametrize("ratio, expected_minority", [(0.5, 30), (1.0, 60), (0.8, 48)])
def test_float_ratio_counts(ratio, expected_minority):
    X, y = _three_classes()
    keep = y != 1
    res = Interpolator(sampling_strategy=ratio, random_state=0)
    _, y_res = res.fit_resample(X[keep], y[keep])
    assert Counter(y_res.tolist()) == {0: 60, 2: expected_minority}


@pytest.mark.parametrize("strategy, match", [
    ("nto majority", "did you mean 'not majority'"),
    (0.1, "increase the ratio"),  # 0.1 * 60 = 6 < 10 rows already there
    ({2: 5}, "only adds rows"),
    ({7: 50}, "not a class or group"),
    ({2: 20.5}, "must be an int"),
    (0, "must be >= 1"),
    (1.5, r"in \(0, 1\]"),
    (lambda labels: [1, 2], "must return a dict"),
    (object(), "sampling_strategy must be"),
])
def test_bad_sampling_strategies_are_explained(strategy, match):
    X, y = _three_classes()
    keep = y != 1
    with pytest.raises(errors.LatentAuditError, match=match):
        Interpolator(sampling_strategy=strategy).fit_resample(X[keep], y[keep])


def test_float_needs_two_classes():
    X, y = _three_classes()
    with pytest.raises(errors.ConfigError, match="exactly 2 classes"):
        Interpolator(sampling_strategy=0.5).fit_resample(X, y)


# -- reproducibility -----------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_same_seed_gives_the_same_rows(method):
    X, y = _three_classes()
    first = Interpolator(method, random_state=7).fit_resample(X, y)[0]
    second = Interpolator(method, random_state=7).fit_resample(X, y)[0]
    other = Interpolator(method, random_state=8).fit_resample(X, y)[0]
    np.testing.assert_array_equal(first, second)
    assert first.shape == other.shape
    assert not np.array_equal(first, other)


# -- imbalanced-learn's and scikit-learn's checks --------------------------------------------
_ESTIMATORS = [Interpolator(method, random_state=0) for method in METHODS]


_IMBLEARN_CHECKS = [pair for estimator in _ESTIMATORS
                    for pair in estimator_checks_generator(estimator)]


@pytest.mark.parametrize(
    "estimator, check", _IMBLEARN_CHECKS,
    ids=[f"{e.method}-{c.func.__name__}" for e, c in _IMBLEARN_CHECKS])
def test_imbalanced_learn_checks(estimator, check):
    # Every check imbalanced-learn yields for a dense sampler that takes DataFrames runs;
    # the sparse-matrix and string/NaN-input checks are not yielded (tags: embeddings are
    # dense floats without missing values).
    check(estimator)


@sklearn_parametrize_with_checks(_ESTIMATORS)
def test_scikit_learn_checks(estimator, check):
    # check_array_api_input skips itself unless SCIPY_ARRAY_API=1 (NumPy only here).
    check(estimator)


# -- against imbalanced-learn's own SMOTE ----------------------------------------------------
def _on_some_segment(X, y, points, cls, k):
    """Whether every point lies on a segment from a member of ``cls`` to one of its k
    nearest members of ``cls``."""
    members = np.flatnonzero(y == cls)
    neighbours = _knn_same_group(X, members, k)
    starts, ends = [], []
    for i, others in neighbours.items():
        for j in others:
            starts.append(X[i])
            ends.append(X[j])
    starts, ends = np.array(starts), np.array(ends)
    direction = ends - starts
    found = []
    for p in points:
        t = ((p - starts) * direction).sum(1) / (direction * direction).sum(1)
        gap = np.linalg.norm(starts + t[:, None] * direction - p, axis=1)
        found.append(((gap < 1e-9) & (t >= -1e-12) & (t <= 1 + 1e-12)).any())
    return np.array(found)


def test_agrees_with_imbalanced_learn_smote():
    X, y = make_classification(n_samples=300, n_features=6, n_informative=4, n_classes=3,
                               weights=[0.75, 0.18, 0.07], random_state=1)
    ours_X, ours_y = Interpolator(k_neighbors=5, random_state=0).fit_resample(X, y)
    ref_X, ref_y = SMOTE(k_neighbors=5, random_state=0).fit_resample(X, y)
    assert Counter(ours_y.tolist()) == Counter(ref_y.tolist())
    n = len(X)
    for cls in (1, 2):
        for X_res, y_res in ((ours_X, ours_y), (ref_X, ref_y)):
            rows = np.flatnonzero(y_res[n:] == cls) + n
            assert _on_some_segment(X, y, X_res[rows], cls, 5).all()
    # and a point that is not on such a segment is told apart
    assert not _on_some_segment(X, y, X[y == 0][:1] + 10.0, 1, 5).any()


def test_borderline_danger_sets_agree_with_imbalanced_learn():
    X, y = make_classification(n_samples=400, n_features=4, n_informative=3, n_redundant=0,
                               weights=[0.85, 0.15], class_sep=0.6, random_state=3)
    for kind, method in (("borderline-1", "borderline1"), ("borderline-2", "borderline2")):
        ours = Interpolator(method, random_state=0)
        ref = BorderlineSMOTE(kind=kind, random_state=0)
        _, ours_y = ours.fit_resample(X, y)
        _, ref_y = ref.fit_resample(X, y)
        assert Counter(ours_y.tolist()) == Counter(ref_y.tolist())
        np.testing.assert_array_equal(np.sort(ours.in_danger_indices_[1]),
                                      np.sort(ref.in_danger_indices[1]))


def test_borderline_without_danger_warns_and_adds_nothing():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 0.1, (30, 2)), rng.normal(50, 0.1, (8, 2))])
    y = np.array([0] * 30 + [1] * 8)
    res = Interpolator("borderline1", m_neighbors=5, random_state=0)
    with pytest.warns(UserWarning, match="no member of group 1 is in danger"):
        X_res, _ = res.fit_resample(X, y)
    assert len(X_res) == len(X)
    assert res.provenance_.empty


# -- subgroups --------------------------------------------------------------------------------
def _cohort(n=200, seed=0):
    rng = np.random.default_rng(seed)
    meta = pd.DataFrame({
        "subject": [f"sub-{i:03d}" for i in range(n)],
        "site": rng.choice(list("ABCD"), n),
        "sex": rng.choice(["F", "M"], n),
        "age": rng.uniform(20, 80, n).round(1),
        "visits": rng.integers(1, 5, n),
        "scanner_ok": rng.random(n) > 0.2,
    })
    z = rng.normal(size=(n, 6)) + (meta["sex"] == "F").to_numpy()[:, None]
    return z, meta


def test_named_subgroup_is_oversampled_to_n_and_keeps_its_definition():
    z, meta = _cohort()
    condition = "sex == 'F' and age > 60 and site == 'C'"
    in_group = meta.eval(condition).to_numpy()
    res = Interpolator(groups={"old women at C": condition},
                       sampling_strategy={"old women at C": 40}, k_neighbors=3,
                       random_state=0)
    z_res, meta_res = res.fit_resample(z, meta)
    n_new = 40 - in_group.sum()
    assert len(z_res) == len(z) + n_new
    assert list(meta_res.columns) == list(meta.columns)
    new = meta_res.iloc[len(z):]
    # convex combinations of members keep a conjunction of equalities and ranges true
    assert new.eval(condition).all()
    assert set(res.provenance_["group"]) == {"old women at C"}
    assert in_group[res.provenance_["parent_a"]].all()
    assert in_group[res.provenance_["parent_b"]].all()
    assert res.group_counts_ == {"old women at C": int(in_group.sum()),
                                 None: int((~in_group).sum())}
    # an int target does the same for the only named group; None is never over-sampled
    res_int = Interpolator(groups={"old women at C": condition}, sampling_strategy=40,
                           k_neighbors=3, random_state=0)
    assert res_int.fit_resample(z, meta)[0].shape == z_res.shape
    np.testing.assert_array_equal(res_int.z_synthetic_, res.z_synthetic_)


def test_group_columns_and_tuple_keys():
    z, meta = _cohort()
    res = Interpolator(groups=["site", "sex"], sampling_strategy={("C", "F"): 50},
                       random_state=0)
    z_res, meta_res = res.fit_resample(z, meta)
    counts = meta_res.groupby(["site", "sex"]).size()
    assert counts[("C", "F")] == 50
    before = meta.groupby(["site", "sex"]).size()
    others = [k for k in before.index if k != ("C", "F")]
    assert (counts[others] == before[others]).all()
    assert res.group_columns_ == ["site", "sex"]
    assert set(res.group_counts_) == set(before.index)
    # "auto" balances every (site, sex) cell up to the largest
    auto = Interpolator(groups=["site", "sex"], random_state=0)
    _, meta_auto = auto.fit_resample(z, meta)
    assert (meta_auto.groupby(["site", "sex"]).size() == before.max()).all()


def test_cluster_labels_as_groups():
    z, _ = _cohort()
    labels = pd.Series(np.where(z[:, 0] > 1.2, 3, 0), name="cluster")
    res = Interpolator(random_state=0)
    z_res, labels_res = res.fit_resample(z, labels)
    assert isinstance(labels_res, pd.Series) and labels_res.name == "cluster"
    assert labels_res.value_counts()[3] == labels_res.value_counts()[0]


@pytest.mark.parametrize("groups, match", [
    (["sites"], "did you mean 'site'"),
    ({"g": "age >"}, "cannot be evaluated"),
    ({"g": "age > 500"}, "matches no row"),
    ({"a": "age > 30", "b": "age > 50"}, "overlap"),
    ({"g": lambda frame: frame["age"]}, "one boolean per row"),
    (3, "groups must be"),
])
def test_bad_groups_are_explained(groups, match):
    z, meta = _cohort()
    with pytest.raises(errors.LatentAuditError, match=match):
        Interpolator(groups=groups).fit_resample(z, meta)


def test_groups_need_a_dataframe_and_groups_need_two_rows():
    z, meta = _cohort()
    with pytest.raises(errors.InputTypeError, match="y must be a DataFrame"):
        Interpolator(groups=["sex"]).fit_resample(z, meta["sex"].to_numpy())
    with pytest.raises(errors.DataError, match="groups=\\[...\\]"):
        Interpolator().fit_resample(z, meta[["sex", "age"]])  # age makes 1-row groups


def test_bad_targets_are_explained():
    X, y = _three_classes()
    with pytest.raises(errors.DataError, match="Unknown label type"):
        Interpolator().fit_resample(X, np.linspace(0, 1, len(X)))
    with pytest.raises(errors.DataError, match="1 class"):
        Interpolator().fit_resample(X, np.zeros(len(X)))
    with pytest.raises(errors.DataError, match="one label per row"):
        Interpolator().fit_resample(X, y[:-1])
    with pytest.raises(errors.DataError, match="missing labels"):
        Interpolator().fit_resample(X, pd.Series(y, dtype=float).where(y != 2))
    with pytest.raises(errors.DataError, match="NaN"):
        Interpolator().fit_resample(np.where(X > 2, np.nan, X), y)
    with pytest.raises(errors.ConfigError, match="did you mean 'smote'"):
        Interpolator("smoth").fit_resample(X, y)
    with pytest.raises(errors.InputTypeError, match="k_neighbors"):
        Interpolator(k_neighbors="five").fit_resample(X, y)
    with pytest.raises(errors.DataError, match="at least 2"):
        Interpolator(sampling_strategy={2: 20}).fit_resample(X[:61], y[:60].tolist() + [2])


def test_k_neighbors_accepts_a_neighbours_estimator():
    X, y = _three_classes()
    by_int = Interpolator(k_neighbors=3, random_state=0).fit_resample(X, y)[0]
    by_object = Interpolator(k_neighbors=NearestNeighbors(n_neighbors=4),
                             random_state=0).fit_resample(X, y)[0]
    np.testing.assert_array_equal(by_int, by_object)


# -- geometry ---------------------------------------------------------------------------------
def test_normalized_geometry_finds_neighbours_in_the_standardised_space():
    rng = np.random.default_rng(0)
    # dimension 0 has a huge scale: raw distances ignore dimension 1
    X = np.column_stack([rng.normal(0, 1000, 80), rng.normal(0, 1, 80)])
    y = np.array([0] * 50 + [1] * 30)
    mean, std = X.mean(axis=0), X.std(axis=0)
    members = np.flatnonzero(y == 1)
    raw_nn = _knn_same_group(X, members, 2)
    std_nn = _knn_same_group((X - mean) / std, members, 2)
    assert raw_nn != std_nn

    class WithStats:  # like a Diffusion Autoencoder that stores its latent statistics
        latent_mean = torch.tensor(mean)
        latent_std = torch.tensor(std)

    for stats in (None, (mean, std), {"mean": mean, "std": std}, WithStats()):
        res = Interpolator(k_neighbors=2, geometry="normalized", latent_stats=stats,
                           random_state=0)
        X_res, _ = res.fit_resample(X, y)
        prov = res.provenance_
        pairs = zip(prov["parent_a"], prov["parent_b"], strict=True)
        assert all(int(b) in std_nn[int(a)] for a, b in pairs)
        # interpolation stays linear in the original space
        a, b, w = prov["parent_a"], prov["parent_b"], prov["weight"].to_numpy()[:, None]
        np.testing.assert_allclose(X_res[len(X):], X[a] + w * (X[b] - X[a]))
        np.testing.assert_allclose(res.latent_std_, std)
    linear = Interpolator(k_neighbors=2, random_state=0)
    linear.fit_resample(X, y)
    pairs = zip(linear.provenance_["parent_a"], linear.provenance_["parent_b"], strict=True)
    assert all(int(b) in raw_nn[int(a)] for a, b in pairs)
    assert linear.latent_mean_ is None
    with pytest.raises(errors.DataError, match="std > 0"):
        Interpolator(geometry="normalized", latent_stats=(mean, -std)).fit_resample(X, y)


# -- metadata of the synthetic rows -----------------------------------------------------------
def test_synthetic_metadata_interpolates_continuous_and_copies_categorical_columns():
    z, meta = _cohort()
    res = Interpolator(random_state=0)
    z_res, sex_res = res.fit_resample(z, meta["sex"])
    out = res.synthetic_metadata(meta)
    n = len(meta)
    assert len(out) == len(z_res)
    assert list(out.columns) == [*meta.columns, "synthetic"]
    assert not out["synthetic"].iloc[:n].any() and out["synthetic"].iloc[n:].all()
    pd.testing.assert_frame_equal(out.iloc[:n, :-1], meta)
    prov = res.provenance_
    a, b, w = (prov[c].to_numpy() for c in ("parent_a", "parent_b", "weight"))
    new = out.iloc[n:]
    assert (new["sex"] == sex_res.iloc[n:]).all()  # the group column is set
    age = meta["age"].to_numpy()
    np.testing.assert_allclose(new["age"], age[a] + w * (age[b] - age[a]))
    visits = meta["visits"].to_numpy()
    assert new["visits"].dtype == meta["visits"].dtype  # integers stay integers
    np.testing.assert_array_equal(new["visits"], np.rint(visits[a] + w * (visits[b] - visits[a])))
    nearer = np.where(w <= 0.5, a, b)
    np.testing.assert_array_equal(new["site"], meta["site"].to_numpy()[nearer])
    np.testing.assert_array_equal(new["subject"], meta["subject"].to_numpy()[nearer])
    assert new["scanner_ok"].dtype == bool
    from_a = res.synthetic_metadata(meta, categorical="parent_a", continuous=["age"])
    np.testing.assert_array_equal(from_a.iloc[n:]["site"], meta["site"].to_numpy()[a])
    np.testing.assert_array_equal(from_a.iloc[n:]["visits"], visits[a])  # not interpolated
    assert out.index.equals(pd.RangeIndex(len(z_res)))
    assert out.index[n:].equals(prov.index)


def test_synthetic_metadata_errors():
    z, meta = _cohort()
    res = Interpolator(random_state=0)
    with pytest.raises(errors.NotFittedError, match="fit_resample"):
        res.synthetic_metadata(meta)
    res.fit(z, meta["sex"])
    with pytest.raises(errors.NotFittedError):
        res.synthetic_metadata(meta)  # fit only validates; no synthetic rows yet
    res.fit_resample(z, meta["sex"])
    with pytest.raises(errors.DataError, match="rows"):
        res.synthetic_metadata(meta.iloc[:10])
    with pytest.raises(errors.DataError, match="synthetic"):
        res.synthetic_metadata(res.synthetic_metadata(meta).iloc[: len(meta)])
    with pytest.raises(errors.ConfigError, match="categorical"):
        res.synthetic_metadata(meta, categorical="nearer")


# -- decoding ---------------------------------------------------------------------------------
class LinearGenerator(torch.nn.Module):
    """A tiny deterministic generative encoder: 2-D latent <-> 1x4x4 image.

    ``decode`` clips ``z @ W`` to [-1, 1] and ``encode`` applies the pseudo-inverse, so
    the round trip is exact inside the box and drifts for latents whose images would leave
    it: the "manifold" is the set of latents with ``|z @ W| <= 1``.
    """

    latent_dim, spatial_dims = 2, 2

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.weight = torch.nn.Parameter(torch.randn(2, 16, generator=g, dtype=torch.float64))

    def encode(self, x):
        x = torch.as_tensor(x, dtype=torch.float64)
        return x.reshape(len(x), -1) @ torch.linalg.pinv(self.weight)

    def invert(self, x, **options):
        return None

    def decode(self, z, codes=None, *, generator=None, **options):
        z = torch.as_tensor(z, dtype=torch.float64)
        return (z @ self.weight).clamp(-1, 1).reshape(-1, 1, 4, 4)


def test_generate_decodes_every_synthetic_row_in_shape_and_range():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 0.2, (40, 2))
    y = np.array([0] * 30 + [1] * 10)
    res = Interpolator(k_neighbors=3, random_state=0)
    res.fit_resample(z, y)
    encoder = LinearGenerator().train()
    out = res.generate(encoder, batch_size=7)
    assert isinstance(out, GenerationResult)
    assert out.images.shape == (20, 1, 4, 4) and out.images.dtype == np.float32
    assert out.images.min() >= -1 and out.images.max() <= 1
    expected = (torch.as_tensor(res.z_synthetic_) @ encoder.weight.detach()).clamp(-1, 1)
    np.testing.assert_allclose(out.images.reshape(20, 16), expected.numpy(), atol=1e-6)
    assert out.kept.all() and out.n_rejected == 0 and np.isnan(out.distances).all()
    assert encoder.training  # its mode is restored


def test_rejection_drops_points_placed_off_the_manifold():
    encoder = LinearGenerator()
    W = encoder.weight.detach().numpy()
    rng = np.random.default_rng(1)
    inside = rng.normal(0, 0.05, (12, 2))
    # a few members far out along a direction where z @ W leaves [-1, 1]: segments towards
    # them leave the decodable region part of the way
    direction = W[:, np.argmax(np.abs(W).sum(axis=0))]
    far = np.outer([3.0, 3.2, 3.4], direction / np.abs(direction @ W).max())
    z = np.concatenate([rng.normal(2, 0.3, (40, 2)), inside, far])
    y = np.array([0] * 40 + [1] * 15)
    res = Interpolator(k_neighbors=14, random_state=0)
    res.fit_resample(z, y)
    out = res.generate(encoder, reject="distance", max_distance=1e-6)
    on_manifold = (np.abs(res.z_synthetic_ @ W) <= 1).all(axis=1)
    assert on_manifold.any() and (~on_manifold).any()
    np.testing.assert_array_equal(out.kept, on_manifold)
    assert out.n_rejected == int((~on_manifold).sum())
    assert out.images_kept.shape == (int(on_manifold.sum()), 1, 4, 4)
    assert (out.provenance["kept"] == out.kept).all()
    assert (out.distances[on_manifold] < 1e-7).all()


class CircleGenerator(torch.nn.Module):
    """Latents near the unit circle <-> images holding (cos θ, sin θ) in two pixels.

    ``decode`` keeps only the direction of ``z``, except in a faulty band of angles
    (0.1 < θ < 0.2) where it draws the opposite side of the circle: images decoded from
    there re-encode far from where they were meant to be.
    """

    latent_dim, spatial_dims = 2, 2

    def encode(self, x):
        return torch.as_tensor(x, dtype=torch.float64)[:, 0, 0, :2]

    def invert(self, x, **options):
        return None

    def decode(self, z, codes=None, *, generator=None, **options):
        z = torch.as_tensor(z, dtype=torch.float64)
        theta = torch.atan2(z[:, 1], z[:, 0])
        theta = torch.where((theta > 0.1) & (theta < 0.2), theta + torch.pi, theta)
        images = torch.zeros(len(z), 1, 4, 4, dtype=torch.float64)
        images[:, 0, 0, 0], images[:, 0, 0, 1] = torch.cos(theta), torch.sin(theta)
        return images


@pytest.mark.parametrize("reject", ["radius", "distance", "both"])
def test_rejection_drops_images_that_decode_off_the_manifold(reject):
    angles = np.linspace(-0.6, 0.6, 13)
    members = np.column_stack([np.cos(angles), np.sin(angles)])
    rng = np.random.default_rng(0)
    others = rng.normal(0, 0.1, (40, 2)) + [-3.0, 0.0]
    z = np.concatenate([others, members])
    y = np.array([0] * 40 + [1] * 13)
    res = Interpolator(k_neighbors=3, random_state=0)
    res.fit_resample(z, y)
    out = res.generate(CircleGenerator(), reject=reject)
    theta = np.arctan2(res.z_synthetic_[:, 1], res.z_synthetic_[:, 0])
    faulty = (theta > 0.1) & (theta < 0.2)
    assert faulty.any() and (~faulty).any()
    np.testing.assert_array_equal(out.kept, ~faulty)
    # the values behind the decision, by brute force
    end_to_third = np.linalg.norm(members[3] - members[0])  # an end member's 3rd neighbour
    np.testing.assert_allclose(out.provenance["radius"], end_to_third)
    reencoded = np.column_stack([np.cos(theta + np.pi * faulty), np.sin(theta + np.pi * faulty)])
    # (decoding runs in float32, as encoders do)
    np.testing.assert_allclose(out.distances,
                               np.linalg.norm(reencoded - res.z_synthetic_, axis=1), atol=1e-6)
    if reject != "distance":
        kth = np.sort(np.linalg.norm(reencoded[:, None] - members[None], axis=2), axis=1)[:, 2]
        np.testing.assert_allclose(out.knn_distances, kth, atol=1e-6)
    else:
        assert np.isnan(out.knn_distances).all()


class StochasticGenerator(torch.nn.Module):
    """Like the Diffusion Autoencoder: ``invert(x, steps)`` gives codes, and
    ``decode(z, codes=None, steps=20, *, generator=None)`` draws them when not given."""

    latent_dim, spatial_dims = 2, 2

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(0.5))
        self.inverted = []
        self.steps_seen = []

    def encode(self, x):
        return torch.as_tensor(x).reshape(len(x), -1)[:, :2]

    def invert(self, x, steps=20):
        self.inverted.append(len(x))
        self.steps_seen.append(steps)
        return torch.as_tensor(x) * 2 + self.encode(x).sum(dim=1).reshape(-1, 1, 1, 1)

    def decode(self, z, codes=None, steps=20, *, generator=None):
        self.steps_seen.append(steps)
        if codes is None:
            codes = torch.randn(len(z), 1, 4, 4, generator=generator, device=z.device)
        return self.scale * codes


def test_generate_slerps_the_parents_stochastic_codes():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(20, 2))
    y = np.array([0] * 14 + [1] * 6)
    images = rng.uniform(-1, 1, (20, 1, 4, 4)).astype(np.float32)
    res = Interpolator(k_neighbors=3, random_state=0)
    res.fit_resample(z, y)
    encoder = StochasticGenerator()
    out = res.generate(encoder, images, steps=5, batch_size=3, clip=None)
    prov = res.provenance_
    a, b, w = prov["parent_a"].to_numpy(), prov["parent_b"].to_numpy(), prov["weight"]
    x = torch.as_tensor(images)
    x_T = x * 2 + x.reshape(len(x), -1)[:, :2].sum(1).reshape(-1, 1, 1, 1)
    expected = 0.5 * slerp(x_T[a.copy()], x_T[b.copy()], w.to_numpy())
    np.testing.assert_allclose(out.images, expected.numpy(), rtol=1e-5, atol=1e-6)
    parents = np.unique(np.concatenate([a, b]))
    assert sum(encoder.inverted) == len(parents)  # each parent inverted once
    assert set(encoder.steps_seen) == {5}
    # a dataset of {"image": ...} items works as well as an array
    dataset = la.ArrayDataset(images)
    again = res.generate(StochasticGenerator(), dataset, steps=5, clip=None)
    np.testing.assert_allclose(again.images, out.images, rtol=1e-6)
    with pytest.raises(errors.DataError, match="one image per row"):
        res.generate(StochasticGenerator(), images[:5])


def test_embeddings_bring_ids_metadata_and_parent_images():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(20, 2)).astype(np.float32)
    meta = pd.DataFrame({"patient": [f"p{i}" for i in range(20)],
                         "sex": ["M"] * 14 + ["F"] * 6})
    images = rng.uniform(-1, 1, (20, 1, 4, 4)).astype(np.float32)
    emb = la.Embeddings(z, metadata=meta, id_column="patient", images=images)
    res = Interpolator(k_neighbors=3, random_state=0)
    z_res, sex = res.fit_resample(emb, "sex")  # a column of the Embeddings' metadata
    plain = Interpolator(k_neighbors=3, random_state=0)
    z_plain, _ = plain.fit_resample(z, meta["sex"])
    np.testing.assert_array_equal(z_res, z_plain)
    assert sex.name == "sex" and (sex[20:] == "F").all()
    prov = res.provenance_
    assert prov.columns[:4].tolist() == ["parent_a", "patient_a", "parent_b", "patient_b"]
    assert (prov["patient_b"] == meta["patient"].to_numpy()[prov["parent_b"]]).all()
    assert plain.provenance_["subject_a"].tolist() == [str(a) for a in
                                                       plain.provenance_["parent_a"]]
    # generate reads the parents' images through the Embeddings
    out = res.generate(StochasticGenerator(), steps=5, clip=None)
    given = plain.generate(StochasticGenerator(), images, steps=5, clip=None)
    np.testing.assert_allclose(out.images, given.images, rtol=1e-6)
    grouped = Interpolator(groups="sex", k_neighbors=3, random_state=0)
    _, table = grouped.fit_resample(emb)  # the whole metadata table
    assert len(table) == 28 and table["sex"].eq("F").sum() == 14
    with pytest.raises(errors.ConfigError, match="did you mean 'sex'"):
        Interpolator().fit_resample(emb, "sexx")


def test_generate_without_parent_images_uses_a_seeded_generator():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(20, 2))
    y = np.array([0] * 14 + [1] * 6)
    res = Interpolator(k_neighbors=3, random_state=0)
    res.fit_resample(z, y)
    first = res.generate(StochasticGenerator()).images
    second = res.generate(StochasticGenerator()).images
    np.testing.assert_array_equal(first, second)
    third = res.generate(StochasticGenerator(),
                         generator=torch.Generator().manual_seed(123)).images
    assert not np.array_equal(first, third)


def test_generate_errors():
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(20, 2)), np.array([0] * 14 + [1] * 6)
    res = Interpolator(k_neighbors=3, random_state=0)
    with pytest.raises(errors.NotFittedError, match="fit_resample"):
        res.generate(LinearGenerator())
    res.fit_resample(z, y)

    class EncodeOnly:
        latent_dim, spatial_dims = 2, 2

        def encode(self, x):
            return x

    class DecodeOnly:
        latent_dim, spatial_dims = 2, 2

        def decode(self, z, codes=None, *, generator=None, **options):
            return torch.zeros(len(z), 1, 4, 4)

    with pytest.raises(errors.InputTypeError, match="GenerativeEncoder protocol"):
        res.generate(EncodeOnly())
    with pytest.raises(errors.InputTypeError, match="GenerativeEncoder protocol"):
        res.generate(DecodeOnly())
    with pytest.raises(errors.ConfigError, match="did you mean 'radius'"):
        res.generate(LinearGenerator(), reject="radious")
    with pytest.raises(errors.ConfigError, match="batch_size"):
        res.generate(LinearGenerator(), batch_size=0)
    with pytest.raises(errors.ConfigError, match="clip"):
        res.generate(LinearGenerator(), clip=(1, -1))


def test_generate_with_a_beta_vae():
    from latentaudit.encoders import BetaVAEEncoder

    torch.manual_seed(0)
    encoder = BetaVAEEncoder(image_size=16, channels=(4, 8), latent_dim=4)
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (24, 1, 16, 16)).astype(np.float32)
    z = encoder.encode(images).numpy()
    res = Interpolator(k_neighbors=3, random_state=0)
    res.fit_resample(z, [0] * 18 + [1] * 6)
    out = res.generate(encoder, device="cpu", reject="both", batch_size=5)
    assert out.images.shape == (12, 1, 16, 16)
    assert out.images.min() >= -1 and out.images.max() <= 1
    assert np.isfinite(out.distances).all() and np.isfinite(out.knn_distances).all()
    np.testing.assert_allclose(out.images, encoder.decode(res.z_synthetic_).numpy(),
                               atol=1e-6)
