"""Where each item's embedding goes in the output array: one row per item, or one row per
subject (its slices concatenated in slice order, or averaged); in memory or streamed into
a memory-mapped ``.npy`` file."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd

from ._storage import allocate_rows
from .errors import DataError
from .utils import check_option

__all__: list[str] = []

logger = logging.getLogger(__name__)


class _IdentityPlan:
    def __init__(self, n_rows: int) -> None:
        self.n_rows = n_rows

    def allocate(self, latent_dim: int, out):
        return allocate_rows((self.n_rows, latent_dim), out)

    def write(self, target, rows: np.ndarray, z: np.ndarray) -> None:
        target[rows] = z

    def describe(self):
        return None


@dataclasses.dataclass
class _AggregationPlan:
    method: str
    subjects: np.ndarray  # unique ids, order of first appearance
    codes: np.ndarray  # subject row of every item
    rank: np.ndarray  # position of every item among its subject's slices
    counts: np.ndarray  # items per subject

    @classmethod
    def build(cls, ids, slice_index, method: str) -> _AggregationPlan:
        check_option("combine", method, ["concat", "mean"])
        ids = np.asarray(ids, dtype=object)
        slice_index = np.asarray(slice_index, dtype=np.int64)
        if len(ids) == 0:
            raise DataError("cannot aggregate an empty set of embeddings")
        codes, subjects = pd.factorize(pd.Series(ids, dtype=object), sort=False)
        codes = codes.astype(np.int64)
        counts = np.bincount(codes, minlength=len(subjects))
        order = np.lexsort((slice_index, codes))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.empty(len(ids), dtype=np.int64)
        rank[order] = np.arange(len(ids)) - starts[codes[order]]
        sorted_codes, sorted_slices = codes[order], slice_index[order]
        repeated = (sorted_codes[1:] == sorted_codes[:-1]) & (sorted_slices[1:] ==
                                                               sorted_slices[:-1])
        if method == "concat" and repeated.any():
            where = int(np.flatnonzero(repeated)[0])
            raise DataError(
                f"subject {subjects[sorted_codes[where]]!r} has slice index "
                f"{int(sorted_slices[where])} more than once; concatenation needs a distinct "
                f"slice index per slice")
        if method == "concat" and len(np.unique(counts)) > 1:
            values, first = np.unique(counts, return_index=True)
            examples = ", ".join(f"{subjects[i]!r} has {counts[i]}" for i in first[:4])
            raise DataError(
                f"combine='concat' needs the same number of slices for every "
                f"subject, got counts {values.tolist()} ({examples}); select a fixed number "
                f"of slices per subject (n_slices=) or use combine='mean'")
        return cls(method, np.asarray(subjects, dtype=object), codes, rank, counts)

    @property
    def n_slices(self) -> int:
        return int(self.counts.max())

    def allocate(self, latent_dim: int, out):
        self.latent_dim = latent_dim
        width = latent_dim * self.n_slices if self.method == "concat" else latent_dim
        return allocate_rows((len(self.subjects), width), out)

    def write(self, target, rows: np.ndarray, z: np.ndarray) -> None:
        subject_rows = self.codes[rows]
        if self.method == "concat":
            d = self.latent_dim
            columns = self.rank[rows][:, None] * d + np.arange(d)
            target[subject_rows[:, None], columns] = z
        else:
            np.add.at(target, subject_rows, z / self.counts[subject_rows][:, None])

    def describe(self) -> dict:
        return {"by": "subject", "method": self.method, "n_slices": self.n_slices}

    def subject_metadata(self, metadata: pd.DataFrame) -> pd.DataFrame:
        """First row of every subject, keeping the columns constant within subjects."""
        first = np.zeros(len(self.subjects), dtype=np.int64)
        seen = pd.Series(self.codes).drop_duplicates()
        first[seen.to_numpy()] = seen.index.to_numpy()
        table = metadata.reset_index(drop=True)
        if len(table.columns):
            varying = table.groupby(self.codes, sort=False).nunique(dropna=False).max() > 1
            dropped = [c for c in table.columns if varying.get(c, False)]
            if dropped:
                logger.info("aggregation drops metadata column(s) that vary within a "
                            "subject: %s", ", ".join(map(str, dropped)))
                table = table.drop(columns=dropped)
        return table.iloc[first].reset_index(drop=True)
