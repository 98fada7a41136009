"""ClusterAuditor: find what should not be there in an embedding, and say how sure we are.

The paper looks at a t-SNE map coloured by site and sees "clusters that should not
exist".  :class:`ClusterAuditor` does the same systematically on any (N, d) embedding and a
metadata table: it clusters the embedding, tests every cluster against every column,
probes every column it did not expect, looks for subgroups no column names, corrects for
multiple testing and ranks what it found, with a sentence a person can read.  The same
k-nearest-neighbour graph then serves label issues, outliers, near-duplicates and
look-ups.  NumPy, SciPy, pandas and scikit-learn only.
"""

from __future__ import annotations

import logging
import numbers
import time
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClusterMixin
from tqdm.auto import tqdm

from .._identity import DEFAULT_ID_COLUMN, rows_of
from .._metadata import check_metadata
from .._validation import validate_embedding
from ..errors import ConfigError, DataError, InputShapeError, InputTypeError, NotFittedError
from ..utils import check_option, check_random_state
from ._association import _MIN_GROUP, _AssociationTests
from ._candidates import _CandidateSubgroups, with_q_values
from ._clustering import _CLUSTERERS, _NOISE, _Clustering
from ._diagnostics import _Diagnostics
from ._persistence import _Persistence
from ._space import _AnalysisSpace

__all__ = ["ClusterAuditor"]

MIN_ROWS = 5  # fewer rows cannot be clustered and tested

logger = logging.getLogger(__name__)


class ClusterAuditor(_AnalysisSpace, _Clustering, _AssociationTests, _CandidateSubgroups,
                     _Diagnostics, _Persistence, ClusterMixin, BaseEstimator):
    """Cluster an embedding and test the clusters against the metadata.

    ``fit`` reduces the embedding by PCA, clusters it (HDBSCAN by default), tests every
    cluster against every metadata column, probes every column that is not expected,
    searches what the columns do not explain for candidate subgroups no column names,
    controls the false discovery rate over everything tested and ranks the findings.  It also builds
    the k-nearest-neighbour graph that :meth:`label_issues`, :meth:`outliers` and
    :meth:`duplicates` read.

    Parameters
    ----------
    clusterer : {"hdbscan", "kmeans", "gmm"}, default "hdbscan"
        Clustering: scikit-learn's HDBSCAN (clusters of any shape, points in no cluster
        labelled -1), k-means, or a Gaussian mixture.  Ignored when ``fit`` gets
        ``labels``.
    n_clusters : int, optional
        Clusters of k-means and Gaussian mixtures; by default chosen from 2 to
        ``max_clusters`` by the silhouette (k-means) or from 1 to ``max_clusters`` by BIC
        (mixtures), on at most 5,000 rows.
    min_cluster_size : int, optional
        HDBSCAN's smallest cluster; default ``max(10, 1%)`` of the rows clustered.
    max_clusters : int, default 10
        Upper end of the automatic choice of ``n_clusters``.
    analysis_components : int or None, default 50
        Principal components of the analysis space (clusters, probes, label issues);
        ``None`` or at least the embedding's width: no reduction.
    cluster_components : int or None, default 10
        Leading principal components that the clustering sees (density-based
        clustering works poorly in many dimensions); ``None``: all of the analysis space.
    cluster_max_samples : int, default 10000
        Larger inputs are clustered on a random subsample of this size (HDBSCAN's cost
        grows with the square of the rows) and every other row takes the majority label
        of its 5 nearest clustered rows.
    columns : list of str, optional
        Metadata columns to test (default: all, except identifiers, constants and
        categorical columns with more than 50 levels).
    expected : list of str, optional
        Columns whose association with the clusters is expected structure (e.g.
        ``"sex"``); they are tested but ranked after everything else, and the probes of
        the other columns ask what the embedding carries *beyond* them.
    nuisance : list of str, optional
        Columns whose association is the unexpected finding (e.g. ``"site"``); with
        ``probe_columns="nuisance"`` only they are probed.
    within : str, optional
        A categorical column (typically an expected one) to cluster within: each of its
        groups is clustered on its own and each cluster is tested against the rest of
        its group, so site effects hidden inside, e.g., the sexes come out.
    max_categories : int, default 10
        Numeric columns with at most this many distinct values are categorical.
    n_neighbors : int, default 15
        Neighbours per row in the kNN graph.
    knn_method : {"auto", "exact", "nndescent"}, default "auto"
        Exact brute force up to 20,000 rows, pynndescent's NN-descent above.  An
        NN-descent graph whose recall, estimated on 200 sampled rows, is below 0.95 is
        built again with longer lists, and exactly if that does not help
        (:attr:`knn_recall_` reports the estimate).
    knn_space : {"auto", "embedding", "reduced"}, default "auto"
        Where neighbours are searched: the embedding as given or the PCA-reduced
        analysis space (faster; neighbours then follow the leading components).
        ``"auto"``: the embedding up to 100,000 rows, the analysis space above, where the
        graph in a 512-d embedding would take most of the time of a fit (at 100,000
        rows the two graphs found the same mislabelled rows, see ``docs/scaling.md``);
        :attr:`knn_space_` says which was used.
    n_permutations : int, default 199
        Permutations of the AMI test and draws of the Monte Carlo χ² test.
    probe_columns : {"unexpected", "nuisance", "none"}, default "unexpected"
        Which columns ``fit`` probes: every tested column that is not ``expected``, only
        the ``nuisance`` columns, or none.  A column a probe predicts above chance is a
        finding of kind ``"probe"`` even when no cluster follows it.  The probe is a
        linear model on the analysis space (with ``expected`` columns, on its residual
        after what they explain), trained on the first folds of five and tested on rows
        it never saw, the permutation within strata of the expected columns (see
        :func:`~latentaudit.audit.heldout_probe_test`): its p-value is valid however
        many rows and dimensions there are.
    probe_max_samples : int, default 20000
        Rows (a random subsample, stratified by level) that each probe of ``fit`` uses,
        which bounds its cost on large cohorts, and the most training rows of each
        fold's probe in :meth:`label_issues`.
    n_subgroups : int, default 5
        Candidate subgroups that ``fit`` looks for (0: none; none either without a
        metadata column to test).  What every tested column
        explains (levels, pairwise cells, smooth trends) is removed from the analysis
        space; the residual of a random half of the rows is searched for groups of 5% to
        50% of the rows that sit apart along one direction (projection pursuit: FastICA
        and the bimodality coefficient; k-means cells; each refined by a linear
        discriminant), and each candidate is tested on the other half, which the search
        never saw: is there a second mode where the search found the group, or do more
        rows lie far out along its direction than a tail would hold?  (Three held-out
        tests, two of them valid for any unimodal population; see :attr:`subgroups_` and
        :func:`latentaudit.audit._subgroups.find_subgroups`.)  Each gives two findings:
        of kind ``"subgroup"`` (a second mode) and of kind ``"far_tail"`` (more rows far
        out than a tail holds, which a group of varying severity gives and so does an
        encoder that places some ordinary images far out; the members' images tell the
        two apart).
    subgroup_max_samples : int or None, default 6000
        Rows (a random subsample) that the subgroup search and test use; every row still
        gets a score and a membership.
    image_statistics : bool, default False
        Also search cheap statistics of the images (intensity quantiles, edge energy,
        noise level, intensity tilt; :func:`latentaudit.data.image_statistics`) for
        candidate subgroups, in the same way and inside the same false discovery rate:
        a generative embedding can miss low-level artefacts (a gain, extra noise, a
        ghost, a slight blur) that change the pixels but not the anatomy it encodes.
        Needs the images: ``fit`` an :class:`~latentaudit.Embeddings` that carries them.
    alpha : float, default 0.05
        False discovery rate at which a finding counts as significant (it ranks before
        the ones that are not).
    id_column : str, default "subject"
        The metadata column that holds the subject ids, when ``fit`` gets an array and a
        table; an :class:`~latentaudit.Embeddings` brings its own.  Without such a
        column the rows are named by their position.  Result tables carry the ids
        beside the row positions.
    n_jobs : int, optional
        Threads of the neighbour searches (NN-descent and scikit-learn's brute force).
        Probes run their folds one after the other: with small per-fold work, worker
        processes cost more than they save, and BLAS already uses the cores.
    verbose : bool, default False
        Show a progress bar.
    random_state : int, numpy.random.RandomState or None, default None
        Seed of every random choice (PCA, subsamples, clustering, permutations, folds,
        NN-descent).

    Attributes
    ----------
    labels_ : numpy.ndarray of int64, shape (n_samples,)
        One cluster label per row, largest cluster 0, ``-1`` for rows in no cluster.
    n_clusters_ : int
        Number of clusters (``-1`` not counted).
    findings_ : pandas.DataFrame
        Everything tested, most important first: columns ``kind`` ("cluster",
        "probe", "subgroup" or "far_tail"), ``cluster`` (``<NA>`` for tests of the whole clustering,
        probes and subgroups), ``column`` (None for subgroups), ``test`` ("chi2",
        "fisher", "chi2_mc", "kruskal", "ami", "probe_logistic", "probe_ridge",
        "held_out_mode", "held_out_far_tail"), ``statistic`` (χ², H, AMI; a probe's held-out AUC or
        Spearman's ρ; a subgroup's separation in SDs), ``effect_size`` (Cramér's V, ε²,
        AMI; a probe's Somers' D = 2 AUC - 1 or held-out R²; a subgroup's correlation
        ratio), ``p_value``, ``q_value`` (Benjamini–Hochberg over
        all rows), ``n`` (the cluster's size, or the rows tested) and ``description``.
        Ranking: findings of expected columns last; within each part, significant ones
        (``q_value <= alpha``) first, those about columns before candidate subgroups,
        then by effect size on a correlation scale (V, √ε², AMI, D, √R², η).
    column_types_ : dict
        ``{column: "categorical" or "continuous"}`` of the columns tested.
    subgroups_ : pandas.DataFrame
        One row per candidate subgroup, in the order found: ``subgroup`` (1, 2, ...),
        ``space`` (where it was found: "embedding" or "image statistics"), ``evidence``
        (its findings at q <= ``alpha``: "second mode", "far tail", "second mode and far
        tail" or "none"), ``n``, ``fraction``, ``p_mode`` and ``q_mode`` (its finding of
        kind "subgroup": held-out test of a second mode), ``p_far`` and ``q_far`` (kind
        "far_tail": held-out test of too many rows far out), ``separation``,
        ``effect_size``, ``n_test`` (held-out rows tested), ``gap_rows`` and
        ``group_rows`` (held-out rows in the gap and group windows), ``tail_rows`` and
        ``rise_rows`` (held-out rows beyond the gap's start, and how many of them sit above
        a falling density), ``far_rows`` (held-out rows more than 6 robust SD out).
        Members: :meth:`subgroup_members`, :meth:`subgroup_labels`.
    subgroup_scores_ : numpy.ndarray of shape (n_subgroups, n_samples)
        Each row's score along each candidate's direction (members: positive).
    image_statistics_ : pandas.DataFrame or None
        The images' statistics searched with ``image_statistics=True`` (else None).
    column_roles_ : dict
        ``{column: "expected", "nuisance" or "other"}``.
    explained_variance_ratio_ : numpy.ndarray or None
        Variance explained by each principal component of the analysis space.
    knn_indices_, knn_distances_ : numpy.ndarray of shape (n_samples, n_neighbors)
        The kNN graph (self excluded).
    knn_method_ : str
        ``"exact"`` or ``"nndescent"``.
    knn_space_ : str
        ``"embedding"`` or ``"reduced"``: where the graph and :meth:`nearest` search.
    knn_recall_ : float
        Recall of the graph against exact search on 200 sampled rows (1.0 if exact).
    n_samples_, n_features_in_ : int
        Shape of the embedding.
    ids_ : numpy.ndarray of str
        The subject id of every row.
    id_column_ : str
        The name of the ids' column in the result tables.
    metadata_ : pandas.DataFrame
        The metadata as fitted (one row per row; empty without metadata).
    embedding_ : numpy.ndarray or None
        The embedding as fitted (float32; None for an auditor saved without it).
    reduced_ : numpy.ndarray of shape (n_samples, n_analysis)
        The analysis space: the embedding on its leading principal components (the
        embedding itself when it is not reduced).
    pca_mean_, pca_components_ : numpy.ndarray or None
        The analysis space's PCA (None when the embedding is not reduced).
    within_ : str or None
        The column clustered within.
    cluster_method_ : str
        How :attr:`labels_` came about: the ``clusterer`` or ``"given"``.
    timings_ : dict
        Seconds ``fit`` spent in each stage (``pca``, ``clusters``, ``knn_graph``,
        ``tests``, ``probes``, ``subgroups``).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from latentaudit.audit import ClusterAuditor
    >>> rng = np.random.default_rng(0)
    >>> site = np.repeat(["A", "B"], 100)
    >>> z = rng.normal(size=(200, 8)) + 6.0 * (site == "B")[:, None]
    >>> aud = ClusterAuditor(random_state=0).fit(z, pd.DataFrame({"site": site}))
    >>> aud.findings_.loc[0, "column"]
    'site'
    """

    def __init__(
        self,
        *,
        clusterer: str = "hdbscan",
        n_clusters: int | None = None,
        min_cluster_size: int | None = None,
        max_clusters: int = 10,
        analysis_components: int | None = 50,
        cluster_components: int | None = 10,
        cluster_max_samples: int = 10_000,
        columns: Sequence[str] | None = None,
        expected: Sequence[str] | None = None,
        nuisance: Sequence[str] | None = None,
        within: str | None = None,
        max_categories: int = 10,
        n_neighbors: int = 15,
        knn_method: str = "auto",
        knn_space: str = "auto",
        n_permutations: int = 199,
        probe_columns: str = "unexpected",
        probe_max_samples: int = 20_000,
        n_subgroups: int = 5,
        subgroup_max_samples: int | None = 6000,
        image_statistics: bool = False,
        alpha: float = 0.05,
        id_column: str = DEFAULT_ID_COLUMN,
        n_jobs: int | None = None,
        verbose: bool = False,
        random_state=None,
    ):
        self.clusterer = clusterer
        self.n_clusters = n_clusters
        self.min_cluster_size = min_cluster_size
        self.max_clusters = max_clusters
        self.analysis_components = analysis_components
        self.cluster_components = cluster_components
        self.cluster_max_samples = cluster_max_samples
        self.columns = columns
        self.expected = expected
        self.nuisance = nuisance
        self.within = within
        self.max_categories = max_categories
        self.n_neighbors = n_neighbors
        self.knn_method = knn_method
        self.knn_space = knn_space
        self.n_permutations = n_permutations
        self.probe_columns = probe_columns
        self.probe_max_samples = probe_max_samples
        self.n_subgroups = n_subgroups
        self.subgroup_max_samples = subgroup_max_samples
        self.image_statistics = image_statistics
        self.alpha = alpha
        self.id_column = id_column
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.random_state = random_state

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> None:
        check_option("clusterer", self.clusterer, _CLUSTERERS)
        check_option("knn_method", self.knn_method, ["auto", "exact", "nndescent"])
        check_option("knn_space", self.knn_space, ["auto", "embedding", "reduced"])
        check_option("probe_columns", self.probe_columns, ["unexpected", "nuisance", "none"])
        for name, low, allow_none in [
            ("n_clusters", 1, True),
            ("min_cluster_size", 2, True),
            ("max_clusters", 2, False),
            ("analysis_components", 1, True),
            ("cluster_components", 1, True),
            ("cluster_max_samples", 100, False),
            ("max_categories", 1, False),
            ("n_neighbors", 1, False),
            ("n_permutations", 1, False),
            ("probe_max_samples", 10, False),
            ("n_subgroups", 0, False),
            ("subgroup_max_samples", 100, True),
        ]:
            value = getattr(self, name)
            if value is None and allow_none:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                none = " or None" if allow_none else ""
                raise ConfigError(f"{name} must be an integer >= {low}{none}, got {value!r}")
        if not isinstance(self.image_statistics, (bool, np.bool_)):
            raise ConfigError(f"image_statistics must be True or False, got "
                              f"{self.image_statistics!r}")
        if not (isinstance(self.alpha, numbers.Real) and 0 < self.alpha < 1):
            raise ConfigError(f"alpha must be a number in (0, 1), got {self.alpha!r}")
        if not isinstance(self.id_column, str) or not self.id_column:
            raise ConfigError(f"id_column must be a non-empty str, got {self.id_column!r}")

    @staticmethod
    def _check_z(z, name: str = "z") -> np.ndarray:
        if hasattr(z, "detach"):  # a torch tensor, without importing torch
            z = z.detach().cpu().numpy()
        try:
            array = np.asarray(z)
        except (TypeError, ValueError) as err:
            raise InputTypeError(f"{name} must be an array of shape (n_samples, n_features), "
                                 f"got {type(z).__name__}") from err
        if array.ndim != 2:
            raise InputShapeError(
                f"{name} must have shape (n_samples, n_features), got {array.shape}")
        if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
            raise InputTypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
        array = np.ascontiguousarray(array, dtype=np.float32)
        if not np.isfinite(array).all():
            bad = int((~np.isfinite(array).all(axis=1)).sum())
            raise DataError(f"{name} has {bad} rows with NaN or infinite values")
        return array

    @staticmethod
    def _check_metadata(metadata, n: int) -> pd.DataFrame:
        if metadata is None:
            return pd.DataFrame(index=pd.RangeIndex(n))
        if isinstance(metadata, pd.Series):
            metadata = metadata.to_frame()
        if isinstance(metadata, (np.ndarray, list)) and np.ndim(metadata) in (1, 2):
            # scikit-learn's fit(X, y): y becomes a column "y" (columns "y0", "y1", ...)
            values = np.asarray(metadata)
            metadata = (pd.DataFrame({"y": values}) if values.ndim == 1 else
                        pd.DataFrame(values, columns=[f"y{j}" for j in range(values.shape[1])]))
        if not isinstance(metadata, pd.DataFrame):
            raise InputTypeError(
                f"metadata must be a pandas DataFrame, got {type(metadata).__name__}")
        if len(metadata) != n:
            raise DataError(
                f"metadata must have one row per embedding row ({n}), got {len(metadata)}")
        metadata = metadata.reset_index(drop=True)
        metadata.columns = [str(c) for c in metadata.columns]
        return metadata

    def _check_names(self, names, metadata: pd.DataFrame, what: str) -> list[str]:
        if names is None:
            return []
        if isinstance(names, str):
            names = [names]
        names = list(names)
        for name in names:
            check_option(f"{what} column", name, list(metadata.columns))
        return names


    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, labels=None):
        """Cluster the embedding, test the clusters against the metadata, rank findings.

        Parameters
        ----------
        X : Embeddings or array-like of shape (n_samples, n_features)
            The embedding: an :class:`~latentaudit.Embeddings` (its metadata and ids are
            used) or an array (a torch tensor is converted).
        y : pandas.DataFrame, optional
            The metadata: one row per embedding row, in the same order (the index is
            ignored); by default an Embeddings' own.  It is scikit-learn's ``y``, what
            the embedding is compared with.  Without any, only the clusters and the kNN
            graph are computed, and a warning says so.  An array is a table too: a 1-D
            one becomes the column ``"y"``, a 2-D one the columns ``"y0"``, ``"y1"``...
        labels : array-like of int, shape (n_samples,), optional
            Cluster labels to test instead of clustering, e.g. from :func:`delineate`
            (``-1``: in no cluster).

        Returns
        -------
        ClusterAuditor
            ``self``.

        Raises
        ------
        ValueError
            (as :class:`~latentaudit.errors.ConfigError`) for bad parameters or unknown
            column names, (as :class:`~latentaudit.errors.DataError`) for non-finite
            embeddings or a metadata table of the wrong length, (as
            :class:`~latentaudit.errors.InputShapeError`) for wrongly shaped input.
        TypeError
            (as :class:`~latentaudit.errors.InputTypeError`) for inputs of the wrong
            type.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> site = np.repeat(["A", "B"], 100)
        >>> z = rng.normal(size=(200, 8)) + 6.0 * (site == "B")[:, None]
        >>> aud = ClusterAuditor(random_state=0).fit(z, pd.DataFrame({"site": site}))
        >>> aud.n_clusters_, aud.findings_.loc[0, "description"]
        (2, 'cluster 0 (100 subjects): site = A for 100% vs 50% overall')
        """
        self._check_params()
        rows = rows_of(X, y, id_column=self.id_column)
        row_images = self._row_images(rows.embeddings) if self.image_statistics else None
        z = rows.z.detach().cpu().numpy() if hasattr(rows.z, "detach") else rows.z  # torch
        if not hasattr(z, "toarray") and np.ndim(z) != 2:  # sparse input: scikit-learn's words
            raise InputShapeError(f"X (the embedding) must have shape (n_samples, "
                                  f"n_features), got {np.shape(z)}")
        # scikit-learn's checks (types, sparse, complex, n_features_in_), then ours: NaN and
        # constant (uninformative) embeddings stop here, before anything is computed
        z = validate_embedding(self, z, ensure_min_samples=MIN_ROWS, name="the embedding (X)")
        z = np.ascontiguousarray(z, dtype=np.float32)
        n, d = z.shape
        if rows.metadata is None:
            warnings.warn("ClusterAuditor.fit got an embedding without metadata: the clusters "
                          "and the kNN graph are computed, but there is nothing to test them "
                          "against, so findings_ is empty; pass fit(X, metadata) or an "
                          "Embeddings with metadata", UserWarning, stacklevel=2)
        metadata = check_metadata(self._check_metadata(rows.metadata, n),
                                  id_column=rows.id_column)
        self.ids_, self.id_column_ = rows.ids, rows.id_column
        columns = self._check_names(self.columns, metadata, "columns")
        # the ids name the rows; they are not a property to test
        columns = columns or [c for c in metadata.columns if c != rows.id_column]
        expected = self._check_names(self.expected, metadata, "expected")
        nuisance = self._check_names(self.nuisance, metadata, "nuisance")
        within = self._check_names(self.within, metadata, "within")
        if len(within) > 1:
            raise ConfigError(f"within must name one column, got {self.within!r}")
        rng = check_random_state(self.random_state)
        seeds = [int(s) for s in rng.randint(2**31 - 1, size=8)]
        steps = tqdm(total=6, desc="audit", disable=not self.verbose)
        self.timings_ = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            self.timings_[stage] = now - clock
            clock = now
            steps.update()

        self.n_samples_ = n
        self.embedding_ = z
        self.metadata_ = metadata
        cluster_space = self._fit_projection(z, seeds[0])
        lap("pca")

        self.column_types_ = self._infer_types(metadata, [c for c in columns if c not in within])
        for column in [c for c in (*expected, *nuisance) if c not in within]:
            if column not in self.column_types_:
                kind = self._column_kind(metadata[column])
                if kind is not None:
                    self.column_types_[column] = kind
        self.column_roles_ = {
            c: "expected" if c in expected else "nuisance" if c in nuisance else "other"
            for c in self.column_types_
        }
        self.within_ = within[0] if within else None
        if rows.metadata is not None and not self.column_types_:
            warnings.warn(f"none of the metadata columns ({', '.join(map(str, columns))}) can be "
                          f"tested (identifiers, constants, or neither numbers nor categories), "
                          f"so findings_ is empty", UserWarning, stacklevel=2)
        small = self._small_groups(metadata)
        if small:
            warnings.warn(f"too few rows per group: {small}; a group needs {_MIN_GROUP} rows "
                          f"to be tested (and twice that to be clustered within), so these "
                          f"say little", UserWarning, stacklevel=2)

        if labels is not None:
            self.labels_ = self._check_labels(labels, n)
            self.cluster_method_ = "given"
        else:
            self.labels_ = self._cluster(cluster_space, metadata, seeds[1])
            self.cluster_method_ = self.clusterer
        self.n_clusters_ = int(np.unique(self.labels_[self.labels_ != _NOISE]).size)
        lap("clusters")

        self._fit_graph(seeds[2])
        lap("knn_graph")

        rows = self._cluster_tests(metadata, seeds[3])
        lap("tests")
        if self.probe_columns != "none":
            probed = nuisance if self.probe_columns == "nuisance" else [
                c for c in self.column_types_ if c not in expected]
            rows += self._probe_findings(metadata, probed, expected, seeds[4])
        lap("probes")
        self.image_statistics_ = None
        if row_images is not None:
            from ..data._statistics import image_statistics  # reads images: torch-free

            self.image_statistics_ = image_statistics(row_images)
        rows += self._subgroup_findings(metadata, seeds[5])
        lap("subgroups")
        steps.close()
        self.findings_ = self._rank(rows)
        self.subgroups_ = with_q_values(self.subgroups_, self.findings_, self.alpha)
        logger.info("audit of %d x %d: %d clusters, %d findings with q <= %g",
                    n, d, self.n_clusters_, int((self.findings_["q_value"] <= self.alpha).sum()),
                    self.alpha)
        return self


    @staticmethod
    def _row_images(embeddings):
        images = getattr(embeddings, "row_images", None)
        if images is None:
            raise DataError("image_statistics=True needs the images: fit an Embeddings that "
                            "carries them (la.embed keeps them; else "
                            "Embeddings.attach_images(dataset)), got "
                            + ("an array" if embeddings is None else
                               "Embeddings without images"))
        return images

    def fit_predict(self, X, y=None, labels=None) -> np.ndarray:
        """Fit (see :meth:`fit`) and return the cluster label of every row.

        Parameters
        ----------
        X : Embeddings or array-like of shape (n_samples, n_features)
            The embedding.
        y : pandas.DataFrame, optional
            The metadata, one row per embedding row (see :meth:`fit`).
        labels : array-like of int, optional
            Cluster labels to test instead of clustering.

        Returns
        -------
        numpy.ndarray of int64, shape (n_samples,)
            :attr:`labels_`.

        Examples
        --------
        >>> import numpy as np
        >>> z = np.r_[np.zeros((10, 2)), np.ones((10, 2)) * 5]
        >>> z += np.random.default_rng(0).normal(scale=0.1, size=z.shape)
        >>> labels = ClusterAuditor(clusterer="kmeans", n_clusters=2,
        ...                         random_state=0).fit_predict(z)
        >>> np.bincount(labels).tolist()
        [10, 10]
        """
        return self.fit(X, y, labels).labels_

    @staticmethod
    def _check_labels(labels, n: int) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise InputShapeError(f"labels must have shape ({n},), got {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            if np.issubdtype(labels.dtype, np.floating) and np.all(labels == np.round(labels)):
                labels = labels.astype(np.int64)
            else:
                raise InputTypeError(f"labels must be integers, got dtype {labels.dtype}")
        if np.any(labels < _NOISE):
            raise DataError("labels must be >= -1 (-1 marks rows in no cluster)")
        return labels.astype(np.int64)


    # ------------------------------------------------------------------ public methods
    def _check_fitted(self) -> None:
        if not hasattr(self, "labels_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(z, metadata) first")

    def _check_column(self, column: str) -> str:
        self._check_fitted()
        if not isinstance(column, str):
            raise InputTypeError(f"column must be a str, got {type(column).__name__}")
        check_option("column", column, list(self.metadata_.columns))
        return column
