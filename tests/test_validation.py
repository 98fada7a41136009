"""Degenerate inputs are findings, not results (latentaudit._validation): constant, NaN and
too-small embeddings stop every analysis with a message that says what is wrong."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import latentaudit as la
from latentaudit._validation import check_embedding
from latentaudit.errors import DataError, LatentAuditError

META = pd.DataFrame({"sex": list("FM") * 20, "site": list("AABB") * 10})


def test_a_healthy_embedding_passes_quietly():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = check_embedding(np.random.default_rng(0).normal(size=(40, 8)))
    assert (found.n_rows, found.n_dims, found.n_distinct, found.rank) == (40, 8, 40, 8)


@pytest.mark.parametrize("z, message", [
    (np.ones((40, 8)), "constant: all 40 rows are identical"),
    (np.full((40, 8), 3.5e6), "uninformative"),
    (np.full((40, 8), np.nan), "all NaN or inf"),
    (np.r_[np.ones((39, 8)), np.full((1, 8), np.inf)], "NaN or inf values in 1 of 40 rows"),
    (np.ones((1, 8)), "n_samples = 1"),
])
def test_uninformative_embeddings_are_refused(z, message):
    with pytest.raises(DataError, match=message):
        check_embedding(z, min_rows=5)


def test_weak_embeddings_are_named_in_warnings():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(40, 8))
    z[:, 3] = 1.0
    z[7] = z[2]
    with pytest.warns(UserWarning) as caught:
        found = check_embedding(z)
    text = " ".join(str(w.message) for w in caught)
    assert "1 of the 8 dimensions" in text and "1 of the 40 rows" in text
    assert found.n_constant_dims == 1 and found.n_distinct == 39
    line = np.outer(rng.normal(size=40), rng.normal(size=8))
    with pytest.warns(UserWarning, match="one direction only"):
        assert check_embedding(line).rank == 1


@pytest.mark.parametrize("fit", [
    lambda z: la.ClusterAuditor(random_state=0).fit(z, META),
    lambda z: la.ClusterAuditor(random_state=0).fit(la.Embeddings(z, metadata=META)),
    lambda z: la.Projector(method="tsne", random_state=0).fit_transform(z),
    lambda z: la.Projector(method="pca").fit(z),
])
@pytest.mark.parametrize("z", [np.ones((40, 8)), np.full((40, 8), np.nan)])
def test_estimators_refuse_degenerate_embeddings(fit, z):
    with pytest.raises(LatentAuditError, match="constant|NaN") as caught:
        fit(z)
    assert "imputer" not in str(caught.value)  # not scikit-learn's advice


def test_one_subject_is_a_clear_error():
    with pytest.raises(DataError, match="ClusterAuditor needs at least 5 samples.*n_samples = 1"):
        la.ClusterAuditor().fit(np.zeros((1, 8)), META.iloc[:1])


def test_too_few_rows_per_group_is_warned():
    rng = np.random.default_rng(0)
    meta = pd.DataFrame({"site": ["A"] * 38 + ["B"] * 2, "sex": list("FM") * 20})
    with pytest.warns(UserWarning, match="too few rows per group: site: 'B' has 2"):
        la.ClusterAuditor(random_state=0).fit(rng.normal(size=(40, 4)), meta)
