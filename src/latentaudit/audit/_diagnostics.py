"""Row diagnostics read from the auditor's k-nearest-neighbour graph: label issues,
outliers, near-duplicates and look-ups."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, InputShapeError
from ..utils import check_option, check_random_state
from ._label_flags import confident_flags
from ._neighbors import build_knn_graph, exact_neighbors
from ._probes import PROBE_MODELS, out_of_fold

__all__: list[str] = []

# knn_space="auto": the graph is searched in the embedding up to this many rows, in the
# analysis space above
KNN_EMBEDDING_MAX_SAMPLES = 100_000


class _Diagnostics:
    """:class:`~latentaudit.audit.ClusterAuditor`'s kNN graph and what is read from it."""

    def _fit_graph(self, seed: int) -> None:
        space = self.knn_space
        if space == "auto":
            space = "reduced" if self.n_samples_ > KNN_EMBEDDING_MAX_SAMPLES else "embedding"
        self.knn_space_ = space
        data = self.embedding_ if space == "embedding" else self.reduced_
        k = min(self.n_neighbors, self.n_samples_ - 1)
        graph = build_knn_graph(data, k, method=self.knn_method, random_state=seed,
                                n_jobs=self.n_jobs)
        self.knn_indices_ = graph.indices
        self.knn_distances_ = graph.distances
        self.knn_method_ = graph.method
        self.knn_recall_ = float(graph.recall)

    def label_issues(
        self, column: str, *, evidence: str = "both", model: str = "linear", cv=5
    ) -> pd.DataFrame:
        """Rows whose label the embedding finds unlikely (neighbours and a probe, averaged).

        Each row gets a predicted distribution of its label from the labels of its
        kNN-graph neighbours (with one pseudo-neighbour drawn from the class
        frequencies) and from an out-of-fold probe on the analysis space; the two are
        averaged.  A categorical row's score is ``1 - p(given label)``.  Which rows are
        flagged follows confident learning (Northcutt et al., 2021): the number of rows
        given one label that belong to another is estimated from the rows confidently
        predicted as the other (the calibrated confident joint), and that many rows
        with the largest margin are flagged, never one whose given label is the most
        likely; pairs of labels the embedding does not tell apart (AUC below 0.75, e.g.
        two sites with the same protocol) are never flagged as each other's errors (see
        :func:`~latentaudit.audit.confident_flags`).  A continuous row's score is its
        robust z-score: the distance between the given value and the predicted one (mean
        of the neighbours' values and the ridge prediction) over 1.4826 median absolute
        deviations; flagged above 3.5.

        Parameters
        ----------
        column : str
            The metadata column.
        evidence : {"both", "knn", "probe"}, default "both"
            Which evidence to use.
        model : {"linear", "svm"}, default "linear"
            The probe (see :meth:`probe`).
        cv : int or scikit-learn splitter, default 5
            Folds of the probe.

        Returns
        -------
        pandas.DataFrame
            One row per row with a label, most suspicious first: ``index`` (row
            position), the id column (:attr:`id_column_`, e.g. ``subject``), ``given``,
            ``suggested``, ``score`` and ``flagged``.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        ValueError
            (as :class:`~latentaudit.errors.ConfigError`) for an unknown column or
            option; (as :class:`~latentaudit.errors.DataError`) for a constant column.

        Examples
        --------
        >>> from latentaudit.audit import ClusterAuditor
        >>> import numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> site = np.repeat(["A", "B"], 100)
        >>> z = rng.normal(size=(200, 8)) + 6.0 * (site == "B")[:, None]
        >>> aud = ClusterAuditor(random_state=0).fit(z, pd.DataFrame({"site": site}))
        >>> given = site.copy()
        >>> given[7] = "B"  # a row of site A labelled B
        >>> aud = ClusterAuditor(random_state=0).fit(z, pd.DataFrame({"site": given}))
        >>> top = aud.label_issues("site").iloc[0]
        >>> int(top["index"]), top["given"], top["suggested"]
        (7, 'B', 'A')
        """
        self._check_column(column)
        check_option("evidence", evidence, ["both", "knn", "probe"])
        check_option("model", model, PROBE_MODELS)
        kind, valid, target, levels = self._column_target(self.metadata_, column)
        index = np.flatnonzero(valid)
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        neighbours = self.knn_indices_[index]
        position = np.full(self.n_samples_, -1, dtype=np.int64)
        position[index] = np.arange(index.size)
        neighbours = np.where(neighbours >= 0, position[np.maximum(neighbours, 0)], -1)
        given_values = self.metadata_.loc[valid, column].to_numpy()
        if kind == "categorical":
            frame = self._categorical_issues(index, target, levels, neighbours, evidence,
                                             model, cv, seed)
        else:
            frame = self._continuous_issues(index, target, neighbours, evidence, model, cv, seed)
        frame.insert(1, "given", given_values)
        frame.insert(1, self.id_column_, self.ids_[frame["index"].to_numpy()])
        order = np.lexsort((frame["index"].to_numpy(), -frame["score"].to_numpy()))
        return frame.iloc[order].reset_index(drop=True)

    def _categorical_issues(self, index, codes, levels, neighbours, evidence, model, cv, seed):
        n, n_levels = codes.size, len(levels)
        prior = np.bincount(codes, minlength=n_levels) / n
        estimates = []
        if evidence in ("both", "knn"):
            counts = np.zeros((n, n_levels))
            rows = np.arange(n)
            for j in range(neighbours.shape[1]):
                present = neighbours[:, j] >= 0
                np.add.at(counts, (rows[present], codes[neighbours[present, j]]), 1.0)
            estimates.append((counts + prior) / (counts.sum(axis=1, keepdims=True) + 1.0))
        if evidence in ("both", "probe"):
            estimates.append(self._oof_probabilities(self.reduced_[index], codes, n_levels,
                                                     prior, model, cv, seed))
        proba = np.mean(estimates, axis=0)
        self_confidence = proba[np.arange(n), codes]
        suggested = proba.argmax(axis=1)
        flagged, _ = confident_flags(proba, codes)
        return pd.DataFrame({
            "index": index,
            "suggested": np.asarray(levels)[suggested],
            "score": 1.0 - self_confidence,
            "flagged": flagged,
        })

    def _oof_probabilities(self, x, codes, n_levels, prior, model, cv, seed):
        proba = np.tile(prior, (codes.size, 1))
        counts = np.bincount(codes, minlength=n_levels)
        usable = counts[codes] >= 2  # folds need two members per class
        present = np.flatnonzero(counts >= 2)
        if present.size < 2:
            return proba
        remap = np.full(n_levels, -1)
        remap[present] = np.arange(present.size)
        predicted = out_of_fold(x[usable], remap[codes[usable]], "categorical", model=model,
                                cv=cv, random_state=seed, method="predict_proba",
                                max_train_samples=self.probe_max_samples)
        proba[np.ix_(np.flatnonzero(usable), present)] = predicted
        proba[usable] /= proba[usable].sum(axis=1, keepdims=True)
        return proba

    def _continuous_issues(self, index, values, neighbours, evidence, model, cv, seed):
        estimates = []
        if evidence in ("both", "knn"):
            present = neighbours >= 0
            gathered = np.where(present, values[np.maximum(neighbours, 0)], 0.0)
            counts = present.sum(axis=1)
            mean = np.where(counts > 0, gathered.sum(axis=1) / np.maximum(counts, 1),
                            np.median(values))
            estimates.append(mean)
        if evidence in ("both", "probe"):
            estimates.append(out_of_fold(self.reduced_[index], values, "continuous",
                                         model=model, cv=cv, random_state=seed,
                                         max_train_samples=self.probe_max_samples))
        suggested = np.mean(estimates, axis=0)
        residual = values - suggested
        scale = 1.4826 * np.median(np.abs(residual - np.median(residual)))
        if not scale > 0:
            scale = residual.std() or 1.0
        score = np.abs(residual) / scale
        return pd.DataFrame({"index": index, "suggested": suggested, "score": score,
                             "flagged": score > 3.5})

    def outliers(self, top: int | None = None) -> pd.DataFrame:
        """Rows far from their neighbours, relative to how far their neighbours are.

        The score is a row's mean distance to its kNN-graph neighbours divided by the
        median of the same quantity over those neighbours (a simplified local outlier
        factor): about 1 inside any cluster, dense or sparse, and large for a row off
        on its own.

        Parameters
        ----------
        top : int, optional
            Return only the ``top`` highest scores.

        Returns
        -------
        pandas.DataFrame
            ``index`` (row position), the id column, ``score`` and ``distance`` (mean
            distance to the neighbours), highest score first.

        Raises
        ------
        NotFittedError
            Before ``fit``.

        Examples
        --------
        >>> from latentaudit.audit import ClusterAuditor
        >>> import numpy as np
        >>> z = np.random.default_rng(0).normal(size=(100, 4))
        >>> z[3] += 30.0
        >>> int(ClusterAuditor(random_state=0).fit(z).outliers(top=1).loc[0, "index"])
        3
        """
        self._check_fitted()
        distances = np.where(np.isfinite(self.knn_distances_), self.knn_distances_, np.nan)
        spread = np.nanmean(distances, axis=1)
        neighbours = self.knn_indices_
        around = np.where(neighbours >= 0, spread[np.maximum(neighbours, 0)], np.nan)
        reference = np.nanmedian(around, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(reference > 0, spread / reference,
                             np.where(spread > 0, np.inf, 1.0))
        frame = pd.DataFrame({"index": np.arange(self.n_samples_), self.id_column_: self.ids_,
                              "score": score, "distance": spread})
        order = np.lexsort((frame["index"].to_numpy(), -frame["score"].to_numpy()))
        frame = frame.iloc[order].reset_index(drop=True)
        return frame if top is None else frame.head(int(top))

    def duplicates(self, threshold: float | None = None) -> pd.DataFrame:
        """Pairs of rows closer than a threshold in the kNN graph (near-duplicates).

        Parameters
        ----------
        threshold : float, optional
            Largest distance of a pair; default a tenth of the median distance from a
            row to its nearest neighbour.

        Returns
        -------
        pandas.DataFrame
            ``index_a < index_b`` (row positions), their ids (``<id column>_a`` and
            ``<id column>_b``, e.g. ``subject_a``) and their ``distance``, closest first.

        Raises
        ------
        NotFittedError
            Before ``fit``.

        Examples
        --------
        >>> from latentaudit.audit import ClusterAuditor
        >>> import numpy as np
        >>> z = np.random.default_rng(0).normal(size=(100, 4))
        >>> z[9] = z[4]
        >>> ClusterAuditor(random_state=0).fit(z).duplicates()[["index_a", "index_b"]].values
        array([[4, 9]])
        """
        self._check_fitted()
        if threshold is None:
            threshold = 0.1 * float(np.median(self.knn_distances_[:, 0]))
        rows, cols = np.nonzero(self.knn_distances_ <= threshold)
        a = rows
        b = self.knn_indices_[rows, cols]
        distance = self.knn_distances_[rows, cols]
        pairs = pd.DataFrame({"index_a": np.minimum(a, b), "index_b": np.maximum(a, b),
                              "distance": distance.astype(np.float64)})
        pairs = pairs[pairs["index_b"] >= 0].drop_duplicates(["index_a", "index_b"])
        pairs = pairs.sort_values(["distance", "index_a", "index_b"]).reset_index(drop=True)
        pairs.insert(1, f"{self.id_column_}_a", self.ids_[pairs["index_a"].to_numpy()])
        pairs.insert(3, f"{self.id_column_}_b", self.ids_[pairs["index_b"].to_numpy()])
        return pairs

    def nearest(self, query_z, k: int = 10) -> pd.DataFrame:
        """The rows most similar to query embeddings (the paper's embedding look-up).

        The search is exact, in the space of the kNN graph (``knn_space_``).

        Parameters
        ----------
        query_z : array-like of shape (n_queries, n_features) or (n_features,)
            Query embeddings, from the same encoder as the fitted ones.
        k : int, default 10
            Rows returned per query.

        Returns
        -------
        pandas.DataFrame
            ``query``, ``rank`` (0: nearest), ``index`` (row position), the id column,
            ``distance``, then the other metadata columns of the rows found.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        ValueError
            (as :class:`~latentaudit.errors.InputShapeError`) when the queries do not
            have the embedding's width.

        Examples
        --------
        >>> from latentaudit.audit import ClusterAuditor
        >>> import numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> site = np.repeat(["A", "B"], 100)
        >>> z = rng.normal(size=(200, 8)) + 6.0 * (site == "B")[:, None]
        >>> aud = ClusterAuditor(random_state=0).fit(z, pd.DataFrame({"site": site}))
        >>> aud.nearest(z[5], k=2)[["rank", "index", "site"]].values.tolist()[0]
        [0, 5, 'A']
        """
        self._check_fitted()
        queries = np.asarray(query_z)
        if queries.ndim == 1:
            queries = queries[None, :]
        queries = self._check_z(queries, "query_z")
        if queries.shape[1] != self.n_features_in_:
            raise InputShapeError(f"query_z must have {self.n_features_in_} features, got "
                                  f"{queries.shape[1]}")
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        k = min(int(k), self.n_samples_)
        if self.knn_space_ == "reduced":
            data, queries = self.reduced_, self._project(queries)
        else:
            data = self.embedding_
            if data is None:
                raise DataError("this auditor was saved without its embedding, which "
                                "look-ups in the embedding (knn_space_='embedding') need")
        indices, distances = exact_neighbors(data, queries, k, n_jobs=self.n_jobs)
        frame = pd.DataFrame({
            "query": np.repeat(np.arange(queries.shape[0]), k),
            "rank": np.tile(np.arange(k), queries.shape[0]),
            "index": indices.ravel(),
            self.id_column_: self.ids_[indices.ravel()],
            "distance": distances.ravel().astype(np.float64),
        })
        others = [c for c in self.metadata_.columns if c not in frame.columns]
        found = self.metadata_[others].iloc[frame["index"].to_numpy()].reset_index(drop=True)
        return pd.concat([frame, found], axis=1)

