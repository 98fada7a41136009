"""Association tests of the clusters against the metadata, held-out probes, and the ranking
of everything tested into findings with false discovery rate control."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import DataError
from ..utils import check_option, check_random_state
from ._clustering import _NOISE
from ._heldout import heldout_probe_test
from ._known import known_design, known_strata, residualize
from ._probes import PROBE_MODELS, run_probe
from ._stats import (
    ami_permutation_test,
    benjamini_hochberg,
    chi2_test,
    contingency_table,
    kruskal_from_ranks,
    tie_correction,
)

__all__ = ["FINDING_COLUMNS", "PROBE_COLUMNS"]

logger = logging.getLogger(__name__)

FINDING_COLUMNS = [
    "kind",
    "cluster",
    "column",
    "test",
    "statistic",
    "effect_size",
    "p_value",
    "q_value",
    "n",
    "description",
]
PROBE_COLUMNS = [
    "column",
    "model",
    "metric",
    "score",
    "ci_low",
    "ci_high",
    "chance",
    "effect_size",
    "p_value",
    "p_method",
    "n",
    "n_permutations",
]
_MIN_GROUP = 3  # smallest cluster (and rest) a per-cluster test is run on
_MAX_LEVELS = 50  # categorical columns with more levels are identifiers, not tested
_AMI_BINS = 10  # quantile bins of a continuous column for the AMI test


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _cluster_name(cluster: int, group: str | None, n: int) -> str:
    where = f"{group}, " if group else ""
    if cluster == _NOISE:
        return f"unclustered points ({where}{n} subjects)"
    return f"cluster {cluster} ({where}{n} subjects)"



class _AssociationTests:
    """:class:`~latentaudit.audit.ClusterAuditor`'s tests of clusters against metadata
    columns, its probes and the ranking of findings."""

    # ------------------------------------------------------------------ column types
    def _small_groups(self, metadata: pd.DataFrame) -> str:
        """The groups too small to test: levels of the categorical columns tested, and the
        groups of ``within`` too small to cluster (empty when there are none)."""
        parts = []
        for column, kind in self.column_types_.items():
            if kind != "categorical":
                continue
            counts = metadata[column].value_counts()
            few = counts[counts < _MIN_GROUP]
            if len(few):
                shown = ", ".join(f"{level!r} has {int(k)}" for level, k in few.head(3).items())
                parts.append(f"{column}: {shown}" + (" ..." if len(few) > 3 else ""))
        if self.within_ is not None:
            counts = metadata[self.within_].value_counts()
            few = counts[counts < 2 * _MIN_GROUP]
            if len(few):
                parts.append(f"within {self.within_}: " + ", ".join(
                    f"{level!r} has {int(k)}" for level, k in few.head(3).items()))
        return "; ".join(parts)

    def _infer_types(self, metadata: pd.DataFrame, columns: list[str]) -> dict[str, str]:
        types: dict[str, str] = {}
        for column in columns:
            values = metadata[column]
            kind = self._column_kind(values)
            if kind is None:
                logger.info("column %r is not tested (constant, identifier or not numeric "
                            "or categorical)", column)
                continue
            types[column] = kind
        return types

    def _column_kind(self, values: pd.Series) -> str | None:
        present = values.dropna()
        n_unique = present.nunique()
        if n_unique < 2 or pd.api.types.is_datetime64_any_dtype(values):
            return None
        if pd.api.types.is_bool_dtype(values) or isinstance(values.dtype, pd.CategoricalDtype):
            return "categorical"
        if pd.api.types.is_numeric_dtype(values):
            return "categorical" if n_unique <= self.max_categories else "continuous"
        if n_unique > _MAX_LEVELS or n_unique == len(present):
            return None
        return "categorical"


    # ------------------------------------------------------------------ tests
    def _references(self, metadata: pd.DataFrame):
        """(name, row mask) of each population the clusters are compared within."""
        if self.within_ is None:
            yield None, np.ones(self.n_samples_, dtype=bool)
            return
        groups = metadata[self.within_]
        for value in pd.unique(groups.dropna()):
            yield f"{self.within_} = {value}", (groups == value).to_numpy()

    def _cluster_tests(self, metadata: pd.DataFrame, seed: int) -> list[dict]:
        rng = np.random.default_rng(seed)
        rows: list[dict] = []
        for group, mask in self._references(metadata):
            for column, kind in self.column_types_.items():
                values = metadata.loc[mask, column]
                valid = values.notna().to_numpy()
                labels = self.labels_[mask][valid]
                values = values[valid]
                clusters, groups = np.unique(labels, return_inverse=True)
                if clusters.size < 2 or values.size < 2 * _MIN_GROUP:
                    continue
                test = self._categorical_tests if kind == "categorical" else self._continuous_tests
                rows += test(column, values, clusters, groups, group, rng)
        return rows

    def _categorical_tests(self, column, values, clusters, groups, group, rng):
        codes, levels = pd.factorize(values, sort=True)
        if len(levels) < 2:
            return []
        n = codes.size
        table = contingency_table(groups, codes, clusters.size, len(levels))
        overall = table.sum(axis=0) / n
        where = f"of {group}" if group else "overall"
        rows = []
        if clusters.size >= 3:
            result = chi2_test(table, n_resamples=self.n_permutations, rng=rng)
            if result is not None:
                rows.append(self._row("cluster", None, column, result, n,
                                      f"{column} differs between the {clusters.size} clusters"
                                      f"{' within ' + group if group else ''} (Cramér's V = "
                                      f"{result.effect_size:.2f})"))
        for index, cluster in enumerate(clusters):
            inside = table[index]
            size = int(inside.sum())
            if size < _MIN_GROUP or n - size < _MIN_GROUP:
                continue
            result = chi2_test(np.vstack([inside, table.sum(axis=0) - inside]),
                               n_resamples=self.n_permutations, rng=rng)
            if result is None:
                continue
            share = inside / size
            # the level whose share departs most from its overall share; an absence
            # ("site = B for 0% vs 25% overall") is as telling as an excess
            top = int(np.argmax(np.abs(share - overall) + 1e-9 * (share > overall)))
            text = (f"{_cluster_name(int(cluster), group, size)}: {column} = {levels[top]} "
                    f"for {share[top]:.0%} vs {overall[top]:.0%} {where}")
            rows.append(self._row("cluster", int(cluster), column, result, size, text))
        rows += self._ami_row(column, groups, codes, group, rng)
        return rows

    def _continuous_tests(self, column, values, clusters, groups, group, rng):
        x = values.to_numpy(dtype=np.float64)
        n = x.size
        correction = tie_correction(x)
        if correction <= 0:
            return []
        ranks = stats.rankdata(x)
        rows = []
        if clusters.size >= 3:
            result = kruskal_from_ranks(ranks, groups, clusters.size, correction)
            if result is not None:
                rows.append(self._row("cluster", None, column, result, n,
                                      f"{column} differs between the {clusters.size} clusters"
                                      f"{' within ' + group if group else ''} (ε² = "
                                      f"{result.effect_size:.2f})"))
        for index, cluster in enumerate(clusters):
            inside = groups == index
            size = int(inside.sum())
            if size < _MIN_GROUP or n - size < _MIN_GROUP:
                continue
            result = kruskal_from_ranks(ranks, inside.astype(np.int64), 2, correction)
            if result is None:
                continue
            median_in, median_out = np.median(x[inside]), np.median(x[~inside])
            text = (f"{_cluster_name(int(cluster), group, size)}: {column} median "
                    f"{_fmt(median_in)} vs {_fmt(median_out)} elsewhere"
                    f"{' in ' + group if group else ''} ({median_in - median_out:+.3g})")
            rows.append(self._row("cluster", int(cluster), column, result, size, text))
        bins = pd.qcut(x, _AMI_BINS, labels=False, duplicates="drop")
        rows += self._ami_row(column, groups, np.asarray(bins, dtype=np.int64), group, rng)
        return rows

    def _ami_row(self, column, groups, codes, group, rng):
        result = ami_permutation_test(groups, codes, n_permutations=self.n_permutations, rng=rng)
        if result is None:
            return []
        where = f" within {group}" if group else ""
        text = (f"the clustering{where} and {column} share information (AMI = "
                f"{result.effect_size:.2f}, permutation p = {result.p_value:.2g})")
        return [self._row("cluster", None, column, result, int(codes.size), text)]

    @staticmethod
    def _row(kind, cluster, column, result, n, description) -> dict:
        return {
            "kind": kind,
            "cluster": cluster,
            "column": column,
            "test": result.test,
            "statistic": float(result.statistic),
            "effect_size": float(result.effect_size),
            "p_value": float(result.p_value),
            "n": int(n),
            "description": description,
        }

    # ------------------------------------------------------------------ probes
    def _column_target(self, metadata: pd.DataFrame, column: str):
        """(valid row mask, target, levels) of a column for probes and label issues."""
        kind = self.column_types_.get(column) or self._column_kind(metadata[column])
        if kind is None:
            raise DataError(f"column {column!r} is constant or an identifier; nothing to "
                            "predict")
        values = metadata[column]
        valid = values.notna().to_numpy()
        if kind == "categorical":
            codes, levels = pd.factorize(values[valid], sort=True)
            return kind, valid, codes.astype(np.int64), levels
        return kind, valid, values[valid].to_numpy(dtype=np.float64), None

    def _known_kinds(self, expected) -> dict[str, str]:
        """Kinds of the columns whose structure is expected (and the one clustered within)."""
        known = [c for c in expected if c in self.column_types_]
        if self.within_ is not None and self.within_ not in known:
            known.append(self.within_)
        return {c: self.column_types_.get(c) or self._column_kind(self.metadata_[c])
                for c in known if (self.column_types_.get(c)
                                   or self._column_kind(self.metadata_[c]))}

    def _probe_findings(self, metadata, columns, expected, seed) -> list[dict]:
        """Held-out probes of ``columns``, beyond what the expected columns explain."""
        rows = []
        rng = check_random_state(seed)
        known = self._known_kinds(expected)
        space = self.reduced_
        strata = None
        beyond = ""
        if known:
            space = residualize(space, known_design(metadata, known))
            strata = known_strata(metadata, known)
            beyond = f", beyond {', '.join(known)}"
        for column in columns:
            if column not in self.column_types_ or column == self.within_ or column in known:
                continue
            kind, valid, target, levels = self._column_target(metadata, column)
            index = np.flatnonzero(valid)
            try:
                result = heldout_probe_test(
                    space[index], target, kind,
                    strata=None if strata is None else strata[index],
                    max_samples=self.probe_max_samples, random_state=rng)
            except DataError as err:
                logger.info("column %r not probed: %s", column, err)
                continue
            if kind == "categorical":
                text = (f"{column} is predicted from the embedding{beyond} (held-out AUC "
                        f"{result['score']:.2f}, chance 0.50)")
            else:
                text = (f"{column} is predicted from the embedding{beyond} (held-out "
                        f"Spearman ρ = {result['score']:.2f}, R² = "
                        f"{result['effect_size']:.2f})")
            rows.append({
                "kind": "probe",
                "cluster": None,
                "column": column,
                "test": f"probe_{result['model']}",
                "statistic": result["score"],
                "effect_size": result["effect_size"],
                "p_value": result["p_value"],
                "n": result["n"],
                "description": text,
            })
        return rows

    def _rank(self, rows: list[dict]) -> pd.DataFrame:
        if not rows:
            frame = pd.DataFrame({c: pd.Series(dtype=object) for c in FINDING_COLUMNS})
            frame["cluster"] = frame["cluster"].astype("Int64")
            return frame
        frame = pd.DataFrame(rows)
        frame["q_value"] = benjamini_hochberg(frame["p_value"].to_numpy())
        square_root = frame["test"].isin(["kruskal"]) | frame["test"].eq("probe_ridge")
        strength = np.where(square_root, np.sqrt(frame["effect_size"].clip(lower=0)),
                            frame["effect_size"])
        expected = frame["column"].map(self.column_roles_).eq("expected")
        significant = frame["q_value"] <= self.alpha
        # candidate subgroups name no column: after the significant findings about columns
        subgroup = frame["kind"].isin(["subgroup", "far_tail"]).to_numpy()
        order = np.lexsort((frame["q_value"].to_numpy(), -strength, subgroup,
                            ~significant.to_numpy(), expected.to_numpy()))
        frame = frame.iloc[order].reset_index(drop=True)
        frame["cluster"] = pd.array(frame["cluster"].tolist(), dtype="Int64")
        return frame[FINDING_COLUMNS]

    def probe(
        self,
        columns=None,
        *,
        model: str = "linear",
        space: str = "reduced",
        cv=5,
        n_permutations: int = 100,
        permutation_max_samples: int | None = 2000,
        confidence: float = 0.95,
    ) -> pd.DataFrame:
        """Predict metadata columns from the embedding: the paper's Table 1 for any model.

        Parameters
        ----------
        columns : str or list of str, optional
            Columns to probe (default: every column tested in ``fit``).
        model : {"linear", "svm"}, default "linear"
            ``"linear"``: logistic regression (categorical) or ridge regression with
            built-in cross-validated regularisation (continuous), fast on large
            cohorts; ``"svm"``: RBF ``SVC``/``SVR`` as in the paper (cost grows with the
            square of the rows).  Inputs are standardised inside each fold.
        space : {"reduced", "embedding"}, default "reduced"
            Probe the PCA-reduced analysis space or the embedding as given.
        cv : int or scikit-learn splitter, default 5
            Folds (stratified for categorical columns, shuffled, seeded) or a splitter.
        n_permutations : int, default 100
            Permutations of the p-value's test (scikit-learn's
            ``permutation_test_score``); 0: an analytic test of each fold's held-out
            predictions against the exact permutation moments of that fold's labels,
            combined over the folds by Bonferroni (fast, slightly conservative).
        permutation_max_samples : int or None, default 2000
            Rows the permutation test uses (a random subsample; ``None``: all).
        confidence : float, default 0.95
            Coverage of the interval of the score (Wilson for accuracy, normal for the
            mean absolute error).

        Returns
        -------
        pandas.DataFrame
            One row per column: ``column``, ``model``, ``metric`` ("accuracy" or
            "mae"), ``score``, ``ci_low``, ``ci_high``, ``chance`` (majority-class
            accuracy, or the MAE of always predicting the median), ``effect_size``
            (Cohen's κ or out-of-fold R²), ``p_value``, ``p_method``, ``n``,
            ``n_permutations``.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        ValueError
            (as :class:`~latentaudit.errors.ConfigError`) for unknown columns or bad
            options.

        Examples
        --------
        >>> from latentaudit.audit import ClusterAuditor
        >>> import numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> site = np.repeat(["A", "B"], 100)
        >>> z = rng.normal(size=(200, 8)) + 6.0 * (site == "B")[:, None]
        >>> aud = ClusterAuditor(random_state=0).fit(z, pd.DataFrame({"site": site}))
        >>> table = aud.probe("site", n_permutations=0)
        >>> table.loc[0, "column"], table.loc[0, "metric"], float(table.loc[0, "score"])
        ('site', 'accuracy', 1.0)
        """
        self._check_fitted()
        check_option("model", model, PROBE_MODELS)
        check_option("space", space, ["reduced", "embedding"])
        if columns is None:
            columns = list(self.column_types_)
        elif isinstance(columns, str):
            columns = [columns]
        x = self.reduced_ if space == "reduced" else self.embedding_
        if x is None:
            raise DataError("this auditor was saved without its embedding; use "
                            "space='reduced'")
        rng = check_random_state(self.random_state)
        out = []
        for column in columns:
            self._check_column(column)
            kind, valid, target, _ = self._column_target(self.metadata_, column)
            result = run_probe(
                x[valid], target, kind, model=model, cv=cv, n_permutations=n_permutations,
                permutation_max_samples=permutation_max_samples, confidence=confidence,
                random_state=int(rng.randint(2**31 - 1)),
            )
            out.append({"column": column, **{k: result[k] for k in PROBE_COLUMNS[1:]}})
        return pd.DataFrame(out, columns=PROBE_COLUMNS)

