"""Candidate subgroups as findings of :class:`~latentaudit.audit.ClusterAuditor`.

``fit`` removes from the analysis space what every tested metadata column explains (their
levels, pairwise cells and smooth trends; :func:`~._known.known_design`), searches the
residual for groups that sit apart (:func:`~._subgroups.find_subgroups`) and appends two
findings per candidate, tested on rows the search never saw, to the rows that the false
discovery rate is controlled over: of kind ``"subgroup"``, do the held-out rows show a
second mode where the search found the group, and of kind ``"far_tail"``, do more of them
lie far out along its direction than a tail holds (true of a group whose severity
varies, and of an encoder that places some ordinary images far out: the images tell).
With ``image_statistics=True`` the images' own statistics
(:func:`latentaudit.data.image_statistics`, each scaled by its interquartile range) are
searched the same way, as a second space.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ._known import known_design
from ._subgroups import find_subgroups

__all__ = ["SUBGROUP_COLUMNS", "empty_subgroups", "with_q_values"]

#: Columns of ``ClusterAuditor.subgroups_``.
SUBGROUP_COLUMNS = ["subgroup", "space", "evidence", "n", "fraction", "p_mode", "q_mode",
                    "p_far", "q_far", "separation", "effect_size", "n_test", "gap_rows",
                    "group_rows", "tail_rows", "rise_rows", "far_rows"]

_FLOATS = ("fraction", "p_mode", "q_mode", "p_far", "q_far", "separation", "effect_size")


def empty_subgroups() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object if c in ("space", "evidence") else np.float64
                                      if c in _FLOATS else np.int64)
                         for c in SUBGROUP_COLUMNS})


def with_q_values(subgroups: pd.DataFrame, findings: pd.DataFrame,
                  alpha: float) -> pd.DataFrame:
    """``subgroups`` with each candidate's q-values and evidence, read from the findings.

    Each candidate has two findings, kind "subgroup" (a second mode) and "far_tail";
    ``evidence`` names those with q <= ``alpha`` ("second mode", "far tail", both joined
    by " and ", or "none").  Benjamini-Hochberg q-values are a monotone function of the
    p-value within one set of tests, so a finding's q-value is that of any finding with
    its p-value.
    """
    out = subgroups.copy()
    q_of = dict(zip(findings["p_value"].astype(float), findings["q_value"].astype(float),
                    strict=True))
    for p_column, q_column in (("p_mode", "q_mode"), ("p_far", "q_far")):
        out[q_column] = [q_of.get(float(p), np.nan) for p in out[p_column]]
    out["evidence"] = [
        " and ".join(name for name, q in (("second mode", q_mode), ("far tail", q_far))
                     if q <= alpha) or "none"
        for q_mode, q_far in zip(out["q_mode"], out["q_far"], strict=True)]
    return out


def _scaled_statistics(statistics: pd.DataFrame) -> np.ndarray:
    """Statistics on one scale (median 0, interquartile range 1); constant ones dropped."""
    values = statistics.to_numpy(dtype=np.float64)
    low, middle, high = np.percentile(values, [25, 50, 75], axis=0)
    spread = high - low
    spread = np.where(spread > 0, spread, values.std(axis=0))
    keep = spread > 0
    return (values[:, keep] - middle[keep]) / spread[keep]


class _CandidateSubgroups:
    """Mixin of ClusterAuditor: groups no column names, searched for and tested in ``fit``."""

    def _known_structure(self, metadata: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
        """Design of every tested column (and the one clustered within)."""
        kinds = dict(self.column_types_)
        if self.within_ is not None and self.within_ not in kinds:
            kind = self._column_kind(metadata[self.within_])
            if kind is not None:
                kinds[self.within_] = kind
        n = len(metadata)
        design = known_design(metadata, kinds)
        if design.shape[1] > n // 5:
            # too many cells for the rows: levels and trends only
            design = known_design(metadata, kinds, interactions=False)
        if design.shape[1] > n // 5:
            return np.ones((n, 1)), []
        return design, list(kinds)

    def _subgroup_findings(self, metadata: pd.DataFrame, seed: int) -> list[dict]:
        """Search the residual of the known columns; two findings per candidate."""
        n = self.reduced_.shape[0]
        self.subgroups_ = empty_subgroups()
        self.subgroup_scores_ = np.zeros((0, n), dtype=np.float64)
        if not self.n_subgroups or not self.column_types_:
            return []  # without metadata to test there are no findings at all
        design, known = self._known_structure(metadata)
        spaces = [("embedding", self.reduced_)]
        statistics = getattr(self, "image_statistics_", None)
        if statistics is not None:
            scaled = _scaled_statistics(statistics)
            if scaled.shape[1]:
                spaces.append(("image statistics", scaled))
        found, where = [], []
        for space, values in spaces:
            more = find_subgroups(values, design, n_subgroups=self.n_subgroups,
                                  max_samples=self.subgroup_max_samples, random_state=seed)
            found += more
            where += [space] * len(more)
        beyond = f" beyond what {', '.join(known)} explain" if known else ""
        rows, table = [], []
        for k, (candidate, space) in enumerate(zip(found, where, strict=True), start=1):
            size = candidate.size
            gap, group = candidate.window_counts
            tail, rise = candidate.rise_counts
            far, tested = candidate.far_counts
            where_found = f"along one direction of the {space}{beyond}"
            texts = {
                "subgroup": (
                    f"candidate subgroup {k}: {size} subjects ({size / n:.0%}) sit apart from "
                    f"the rest {where_found} (a second mode on held-out rows: {group} near "
                    f"the group's centre against {gap} in the gap before it, {rise} of {tail} "
                    f"beyond the gap above a falling density; {candidate.separation:.1f} SD "
                    f"apart)"),
                "far_tail": (
                    f"candidate subgroup {k} (far tail): {far} of {tested} held-out subjects "
                    f"lie far out {where_found}, more than a tail holds ({size} subjects, "
                    f"{size / n:.0%}, on that side): a group whose severity varies, or an "
                    f"embedding that places some ordinary images far out; the members' "
                    f"images tell which"),
            }
            for kind, test, p in (("subgroup", "held_out_mode", candidate.p_mode),
                                  ("far_tail", "held_out_far_tail", candidate.p_far)):
                rows.append({
                    "kind": kind,
                    "cluster": None,
                    "column": None,
                    "test": test,
                    "statistic": float(candidate.separation),
                    "effect_size": float(candidate.effect_size),
                    "p_value": float(p),
                    "n": int(size),
                    "description": texts[kind],
                })
            table.append({"subgroup": k, "space": space, "evidence": "",
                          "n": int(size), "fraction": size / n,
                          "p_mode": float(candidate.p_mode), "q_mode": np.nan,
                          "p_far": float(candidate.p_far), "q_far": np.nan,
                          "separation": float(candidate.separation),
                          "effect_size": float(candidate.effect_size),
                          "n_test": int(candidate.n_test), "gap_rows": int(gap),
                          "group_rows": int(group), "tail_rows": int(tail),
                          "rise_rows": int(rise), "far_rows": int(far)})
        if found:
            self.subgroups_ = pd.DataFrame(table, columns=SUBGROUP_COLUMNS)
            self.subgroup_scores_ = np.vstack([c.score for c in found])
        return rows

    def subgroup_members(self, subgroup: int) -> pd.DataFrame:
        """The rows of one candidate subgroup, most typical first.

        Parameters
        ----------
        subgroup : int
            Its number (``subgroups_["subgroup"]``, 1 for the first).

        Returns
        -------
        pandas.DataFrame
            ``index`` (row position), the id column, and ``score`` (the row's distance
            into the group along its direction; members have a positive score), one row
            per member, highest score first.  ``ClusterAuditor.subgroup_labels`` gives
            the same membership as one boolean per row, e.g. for an
            :class:`~latentaudit.Explainer`.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        ValueError
            (as :class:`~latentaudit.errors.ConfigError`) for a subgroup that was not
            found.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from latentaudit.audit import ClusterAuditor
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=(600, 6)); z[:60, 3] += 9.0
        >>> meta = pd.DataFrame({"age": rng.normal(50, 10, 600)})
        >>> aud = ClusterAuditor(random_state=0).fit(z, meta)
        >>> members = aud.subgroup_members(1)
        >>> len(members), int(members["index"].max())
        (60, 59)
        """
        scores = self._subgroup_scores(subgroup)
        rows = np.flatnonzero(scores > 0)
        rows = rows[np.argsort(-scores[rows], kind="stable")]
        return pd.DataFrame({"index": rows, self.id_column_: np.asarray(self.ids_)[rows],
                             "score": scores[rows]})

    def subgroup_labels(self, subgroup: int) -> np.ndarray:
        """One boolean per row: is it in the candidate subgroup?

        Parameters
        ----------
        subgroup : int
            Its number (``subgroups_["subgroup"]``, 1 for the first).

        Returns
        -------
        numpy.ndarray of bool, shape (n_samples,)
            Labels to hand to :meth:`latentaudit.Explainer.fit` (what sets the group
            apart in the images) or to :meth:`probe`-style analyses.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        ValueError
            (as :class:`~latentaudit.errors.ConfigError`) for a subgroup that was not
            found.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from latentaudit.audit import ClusterAuditor
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=(600, 6)); z[:60, 3] += 9.0
        >>> meta = pd.DataFrame({"g": rng.integers(0, 2, 600)})
        >>> aud = ClusterAuditor(random_state=0).fit(z, meta)
        >>> int(aud.subgroup_labels(1).sum())
        60
        """
        return self._subgroup_scores(subgroup) > 0

    def _subgroup_scores(self, subgroup) -> np.ndarray:
        self._check_fitted()
        count = self.subgroup_scores_.shape[0]
        if isinstance(subgroup, bool) or not isinstance(subgroup, (int, np.integer)) or not (
                1 <= subgroup <= count):
            raise ConfigError(f"subgroup must be one of 1..{count} (the candidates found), "
                              f"got {subgroup!r}")
        return self.subgroup_scores_[int(subgroup) - 1]
