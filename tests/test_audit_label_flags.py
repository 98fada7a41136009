"""Tests of the label-flagging rule (confident learning with pair gating)."""

import numpy as np
import pytest

from latentaudit.audit import confident_flags
from latentaudit.audit._label_flags import pair_separation
from latentaudit.errors import ConfigError, InputShapeError


def _probabilities(truth, n_levels, sharp, rng):
    logits = rng.normal(size=(truth.size, n_levels))
    logits[np.arange(truth.size), truth] += sharp
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def test_flips_between_separable_levels_are_flagged_and_counted():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 900)
    given = truth.copy()
    flipped = rng.choice(900, 30, replace=False)
    given[flipped] = (truth[flipped] + 1) % 3
    flagged, counts = confident_flags(_probabilities(truth, 3, 5.0, rng), given)
    hits = np.isin(np.flatnonzero(flagged), flipped)
    assert hits.mean() >= 0.9 and flagged.sum() >= 27
    assert counts.sum() == pytest.approx(30, abs=6)
    assert np.all(np.diag(counts) == 0)


def test_levels_the_embedding_cannot_tell_apart_are_not_flagged():
    # levels 0 and 1 look the same (two sites with one protocol), level 2 is distinct
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, 1200)
    look = np.where(truth == 2, 1, 0)
    p_look = _probabilities(look, 2, 6.0, rng)
    proba = np.c_[p_look[:, :1] / 2, p_look[:, :1] / 2, p_look[:, 1:]]
    given = truth.copy()
    flipped = rng.choice(1200, 60, replace=False)
    given[flipped] = (truth[flipped] + rng.integers(1, 3, 60)) % 3
    separation = pair_separation(proba, given)
    assert separation[0, 1] < 0.6 and separation[0, 2] > 0.9
    flagged, counts = confident_flags(proba, given)
    identifiable = flipped[(truth[flipped] == 2) | (given[flipped] == 2)]
    assert counts[0, 1] == 0 and counts[1, 0] == 0
    assert np.isin(np.flatnonzero(flagged), identifiable).mean() >= 0.9
    assert flagged.sum() <= 1.2 * identifiable.size
    # without the gate, confident learning flags about half of levels 0 and 1
    ungated, _ = confident_flags(proba, given, min_separation=0.0)
    assert ungated.sum() > 4 * identifiable.size


def test_errors():
    with pytest.raises(InputShapeError, match="proba"):
        confident_flags(np.ones((3, 2)), np.zeros(4, int))
    with pytest.raises(ConfigError, match="min_separation"):
        confident_flags(np.ones((3, 2)) / 2, np.zeros(3, int), min_separation=2)
