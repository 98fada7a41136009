"""Tests of the candidate-subgroup search (audit/_subgroups.py) and its shape helpers:
the held-out tests are valid for unimodal populations of any shape (the far-tail test for
tails up to Student's t with 2 degrees of freedom), the search finds groups of 5-30% hidden
under strong known structure, groups of varying severity (comets) too, and nothing in null
data."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from latentaudit.audit._known import known_design
from latentaudit.audit._subgroups import find_subgroups, gap_test, rise_test, tail_test
from latentaudit.errors import ConfigError


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


def _f1(a, b):
    tp = np.sum(a & b)
    return 0.0 if tp == 0 else 2 * tp / (a.sum() + b.sum())


def _cohort(n, rng, group_fraction=0.0, shift=0.0, d=12):
    """Four sites (strong blobs), two sexes, age; a hidden group shifted along one
    direction inside them (no column names it)."""
    import pandas as pd

    site = rng.integers(0, 4, n)
    sex = rng.integers(0, 2, n)
    age = rng.uniform(20, 80, n)
    x = rng.standard_t(8, size=(n, d))
    x[:, :3] += 6.0 * np.eye(4, 3)[site] + 3.0 * np.eye(4, 3)[(site + 1) % 4]
    x[:, 3] += 4.0 * sex
    x[:, 4] += 0.08 * (age - 50)
    group = np.zeros(n, bool)
    if group_fraction:
        group[rng.choice(n, int(round(group_fraction * n)), replace=False)] = True
        direction = rng.normal(size=d)
        x[group] += shift * direction / np.linalg.norm(direction)
    meta = pd.DataFrame({"site": site.astype(str), "sex": np.array(["F", "M"])[sex],
                         "age": age})
    return x, meta, group


def _tail_test(search, members, test):
    return tail_test(search, test)


@pytest.mark.parametrize("test", [gap_test, rise_test, _tail_test])
@pytest.mark.parametrize("shape", ["normal", "skewed", "heavy", "light"])
def test_held_out_tests_are_valid_for_unimodal_populations(shape, test):
    rng = np.random.default_rng(0)
    draw = {"normal": lambda n: rng.normal(size=n),
            "skewed": lambda n: rng.gamma(2.0, size=n),
            "heavy": lambda n: rng.standard_t(2, size=n),
            "light": lambda n: rng.uniform(-1, 1, size=n)}[shape]
    p = []
    for _ in range(150):
        search = draw(400)
        members = search > np.quantile(search, 0.85)  # the search's "group": the upper tail
        p.append(test(search, members, draw(400))[0])
    p = np.array(p)
    assert np.mean(p <= 0.05) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / p.size)


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.3])
def test_a_hidden_group_inside_strong_known_structure_is_found(fraction):
    rng = np.random.default_rng(int(fraction * 100))
    x, meta, group = _cohort(1500, rng, fraction, shift=7.0)
    kinds = {"site": "categorical", "sex": "categorical", "age": "continuous"}
    found = find_subgroups(x, known_design(meta, kinds), random_state=0)
    best = max(found, key=lambda s: _f1(s.members, group))
    assert _f1(best.members, group) >= 0.8
    # (the p-value is the smallest of three held-out tests, tripled; a compact group's
    # evidence is a second mode: the smaller of the gap and density tests', doubled)
    assert best.p_value < (1e-3 if fraction >= 0.1 else 0.025)
    assert best.p_mode < (1e-3 if fraction >= 0.1 else 0.025)


def test_the_falling_density_test_sees_a_group_the_gap_windows_miss():
    # as on the demo DAE's embeddings: the held-out group sits further out and more spread
    # than the search half's out-of-fold scores said, so few of its rows fall in the group
    # window; beyond the gap the held-out density still rises again
    rng = np.random.default_rng(0)
    p_gap, p_rise = [], []
    for _ in range(20):
        search = np.r_[rng.normal(0, 1, 450), rng.normal(5, 1, 50)]
        test = np.r_[rng.normal(0, 1, 450), rng.normal(8, 2, 50)]
        p_gap.append(gap_test(search, search > 2.5, test)[0])
        p, (tail, rise) = rise_test(search, search > 2.5, test)
        p_rise.append(p)
        assert 0 < rise < tail
    assert np.median(p_gap) > 0.05 and np.median(p_rise) < 0.005


def _comet(n, rng, spread=20.0):
    """90% bulk, 10% spread evenly from the bulk's edge to ``spread`` SD beyond it."""
    return np.r_[rng.normal(0, 1, n - n // 10), rng.uniform(2.0, spread, n // 10)]


def test_the_far_tail_test_sees_a_comet_that_no_test_of_unimodality_can():
    # an artefact of random severity: its members spread evenly from the bulk's edge far
    # beyond it, a plateau with no second mode (the demo DAE's gain and contrast groups)
    rng = np.random.default_rng(0)
    p_gap, p_rise, p_tail = [], [], []
    for _ in range(20):
        search, test = _comet(1000, rng), _comet(1000, rng)
        members = search > 2.0
        p_gap.append(gap_test(search, members, test)[0])
        p_rise.append(rise_test(search, members, test)[0])
        p, (far, tested) = tail_test(search, test)
        p_tail.append(p)
        assert tested == 1000 and 50 < far < 100
    assert np.median(p_gap) > 0.05 and np.median(p_rise) > 0.05
    assert np.max(p_tail) < 1e-6
    # a tail of 2% of the rows beyond 6 SD is not enough
    bulk = rng.normal(0, 1, 4900)
    p, _ = tail_test(np.r_[bulk, rng.uniform(7, 9, 100)], np.r_[bulk, rng.uniform(7, 9, 100)])
    assert p > 0.05


def test_a_comet_inside_strong_known_structure_is_significant():
    rng = np.random.default_rng(1)
    x, meta, _ = _cohort(1000, rng)
    group = np.zeros(1000, bool)
    group[rng.choice(1000, 100, replace=False)] = True
    direction = rng.normal(size=x.shape[1])
    x[group] += rng.uniform(2.0, 20.0, group.sum())[:, None] * direction / np.linalg.norm(
        direction)
    kinds = {"site": "categorical", "sex": "categorical", "age": "continuous"}
    found = find_subgroups(x, known_design(meta, kinds), random_state=0)
    best = max(found, key=lambda s: _f1(s.members, group))
    assert _f1(best.members, group) >= 0.8
    assert best.p_value < 1e-4  # (before the far-tail test: 0.55)
    assert best.far_counts[1] == 500 and best.far_counts[0] >= 25
    assert best.p_far < 1e-4 / 3 and best.p_mode > 0.05  # no second mode, a far tail


def test_nothing_is_found_in_null_data():
    p = []
    for seed in range(12):
        rng = np.random.default_rng(100 + seed)
        x, meta, _ = _cohort(800, rng)
        kinds = {"site": "categorical", "sex": "categorical", "age": "continuous"}
        found = find_subgroups(x, known_design(meta, kinds), n_subgroups=3,
                               random_state=seed)
        p += [s.p_value for s in found]
    p = np.array(p)
    # every candidate's p-value is valid on its own (at most 3 per data set)
    assert np.mean(p <= 0.05) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / p.size)


def test_members_and_scores_cover_every_row_and_options_are_checked():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 5))
    x[:40, 1] += 8.0
    found = find_subgroups(x, max_samples=200, random_state=0)
    assert found and all(s.members.shape == (300,) and s.score.shape == (300,) for s in found)
    assert np.array_equal(found[0].members, found[0].score > 0)
    assert find_subgroups(x[:50], random_state=0) == []  # too few rows to split and test
    with pytest.raises(ConfigError, match="fractions"):
        find_subgroups(x, min_fraction=0.3, max_fraction=0.2)
