"""SMOTE and Borderline-SMOTE between embeddings of real subjects, with provenance."""

from __future__ import annotations

import copy
import logging
import numbers
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.neighbors import NearestNeighbors

from ..errors import ConfigError, DataError, InputTypeError, NotFittedError
from ..utils import check_option, check_random_state
from ._base import BaseResampler, _Target

__all__ = ["Interpolator"]

logger = logging.getLogger(__name__)

_METHODS = ("smote", "borderline1", "borderline2")
_GEOMETRIES = ("linear", "normalized")


def _to_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _self_mask(indices: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Where each query point sits in its own neighbour list.

    A point is usually its own first neighbour, but not always when there are duplicates;
    rows that do not contain the query lose their farthest neighbour instead, so every row
    keeps the same number of neighbours.
    """
    is_self = indices == query[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    return is_self & (np.cumsum(is_self, axis=1) == 1)


def _without_self(indices: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Each query point's neighbours, itself left out."""
    keep = ~_self_mask(indices, query)
    return indices[keep].reshape(len(indices), indices.shape[1] - 1)


class Interpolator(BaseResampler):
    """SMOTE-style over-sampling between embeddings of real subjects.

    Each synthetic row lies on the segment between a real row ``parent_a`` of the group
    being over-sampled and one of its nearest neighbours ``parent_b``:
    ``z = z[parent_a] + weight * (z[parent_b] - z[parent_a])``, with ``weight`` drawn
    uniformly from [0, 1).  :attr:`provenance_` records both parents and the weight of
    every synthetic row, so every generated embedding (and the image decoded from it with
    :meth:`generate`) can be traced back to real subjects.

    The groups can be classes (``y`` a vector of labels, e.g. ``metadata["sex"]``), cluster
    labels, or subgroups defined by metadata columns or conditions (``y`` a DataFrame and
    ``groups``, e.g. women over 60 at site C).

    Parameters
    ----------
    method : {"smote", "borderline1", "borderline2"}, default "smote"
        ``"smote"`` (Chawla et al. 2002) interpolates from every member of the group.
        ``"borderline1"`` and ``"borderline2"`` (Han et al. 2005) interpolate only from
        members "in danger": those of whose ``m_neighbors`` nearest rows (of any group) at
        least half, but not all, belong to other groups.  Borderline-1 takes ``parent_b``
        among the group's own nearest neighbours; Borderline-2 among the nearest rows of
        any group, with ``weight`` drawn from [0, 0.5) when ``parent_b`` belongs to another
        group, so the synthetic row stays nearer its own group.
    sampling_strategy : str, float, int, dict or callable, default "auto"
        How many rows each group should have afterwards: ``"auto"`` (every group but the
        largest grows to the size of the largest), ``"minority"``, ``"not minority"``,
        ``"not majority"``, ``"all"``; a float ratio minority/majority (two groups); an
        int ``N`` (every group with fewer than ``N`` rows grows to ``N``); a dict
        ``{group: N}`` (only the named groups grow, each to ``N``); or a callable that
        takes the group label of every row and returns such a dict.  To over-sample one
        subgroup to ``N`` rows, name it in ``groups`` and pass ``{name: N}`` (or just
        ``N`` when it is the only named group).
    k_neighbors : int or object, default 5
        Number of nearest neighbours within the group to choose ``parent_b`` from, or a
        neighbours estimator with ``fit`` and ``kneighbors`` (e.g.
        :class:`sklearn.neighbors.NearestNeighbors` with ``n_neighbors = k + 1``, the
        ``+ 1`` being the point itself), which is cloned before use.  Groups smaller than
        ``k + 1`` use all their other members.
    m_neighbors : int or object, default 10
        Neighbourhood size (or estimator) that decides which members are in danger, for
        the borderline methods.
    groups : None, str, list of str or dict, default None
        How to form groups when ``y`` is a DataFrame of metadata: ``None`` (every column
        of ``y``), a column name or list of names (each combination of values is a group,
        labelled by the value or the tuple of values), or ``{name: condition}`` with a
        ``DataFrame.eval`` expression, a callable ``frame -> bool mask`` or a boolean
        array per group (groups must not overlap; other rows form the group ``None``,
        never over-sampled).
    geometry : {"linear", "normalized"}, default "linear"
        The space in which neighbours (and, in :meth:`generate`, distances) are measured.
        ``"linear"`` uses the embedding as given (right for ``z_sem``, StyleGAN ``w`` and
        VAE means).  ``"normalized"`` standardises every dimension with ``latent_stats``
        first (the Diffusion Autoencoder's normalised latent space).  Interpolation is
        linear in both cases; a per-dimension affine map commutes with it, so the
        provenance formula holds exactly in the original space either way.
    latent_stats : None, tuple, dict or object, default None
        Mean and standard deviation per dimension for ``geometry="normalized"``: a tuple
        ``(mean, std)``, a dict with keys ``"mean"`` and ``"std"``, or an object with
        attributes ``latent_mean`` and ``latent_std`` (e.g. a Diffusion Autoencoder that
        stores its latent statistics; note that :func:`sklearn.base.clone` deep-copies
        such an object, so pass ``(enc.latent_mean, enc.latent_std)`` for a large model).
        ``None`` estimates them from ``X``.  Ignored for ``geometry="linear"``.
    random_state : None, int or numpy.random.RandomState, default None
        Seed of every random choice (parents and weights); an int makes
        :meth:`fit_resample` reproducible.

    Attributes
    ----------
    sampling_strategy_ : dict
        ``{group: number of synthetic rows made}`` (before the borderline methods find
        that a group has no member in danger).
    provenance_ : pandas.DataFrame
        One row per synthetic row, in output order, indexed by the synthetic row's
        position in the resampled output (index name ``"row"``), with columns
        ``parent_a`` and ``parent_b`` (row positions in the input), their ids
        (``<id column>_a`` and ``<id column>_b``, e.g. ``subject_a``; the positions when
        ``X`` has no ids), ``weight`` and ``group`` (the group over-sampled).
    z_synthetic_ : numpy.ndarray of shape (n_synthetic, n_features)
        The synthetic rows (the tail of the resampled ``X``), ready for
        :meth:`generate` or an encoder's ``decode``.
    group_counts_ : dict
        ``{group: number of real rows}``.
    group_columns_ : list of str
        Columns of ``y`` that define the groups (for a Series ``y``, its name).
    in_danger_indices_ : dict
        For the borderline methods, ``{group: row positions of the members in danger}``.
    latent_mean_, latent_std_ : numpy.ndarray of shape (n_features,)
        The statistics used for ``geometry="normalized"`` (``None`` for linear).
    n_features_in_ : int
        Number of columns of ``X``.
    feature_names_in_ : numpy.ndarray
        Column names of ``X`` when it was a DataFrame with string column names.

    See Also
    --------
    imblearn.over_sampling.SMOTE : The same algorithm, without provenance or decoding.

    Notes
    -----
    References: N. V. Chawla, K. W. Bowyer, L. O. Hall, W. P. Kegelmeyer, "SMOTE:
    synthetic minority over-sampling technique", JAIR 16, 2002; H. Han, W.-Y. Wang,
    B.-H. Mao, "Borderline-SMOTE: a new over-sampling method in imbalanced data sets
    learning", ICIC 2005.

    Examples
    --------
    Balance two classes and trace a synthetic row back to its parents:

    >>> import numpy as np
    >>> import latentaudit as la
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(30, 4))
    >>> y = np.array(["M"] * 24 + ["F"] * 6)
    >>> res = la.Interpolator(k_neighbors=3, random_state=0)
    >>> z_res, y_res = res.fit_resample(z, y)
    >>> z_res.shape, (y_res == "F").sum()
    ((48, 4), np.int64(24))
    >>> a, b, w = res.provenance_.loc[30, ["parent_a", "parent_b", "weight"]]
    >>> bool(np.allclose(z_res[30], z[int(a)] + w * (z[int(b)] - z[int(a)])))
    True

    Over-sample one subgroup of the metadata to 20 rows:

    >>> import pandas as pd
    >>> meta = pd.DataFrame({"sex": y, "age": rng.uniform(20, 80, 30)})
    >>> res = la.Interpolator(groups={"old women": "sex == 'F' and age > 40"},
    ...                       sampling_strategy=20, k_neighbors=2, random_state=0)
    >>> z_res, meta_res = res.fit_resample(z, meta)  # meta_res: metadata of every row
    """

    def __init__(self, method="smote", *, sampling_strategy="auto", k_neighbors=5,
                 m_neighbors=10, groups=None, geometry="linear", latent_stats=None,
                 random_state=None) -> None:
        super().__init__(sampling_strategy=sampling_strategy, groups=groups)
        self.method = method
        self.k_neighbors = k_neighbors
        self.m_neighbors = m_neighbors
        self.geometry = geometry
        self.latent_stats = latent_stats
        self.random_state = random_state

    # -- parameters ------------------------------------------------------------------
    def _check_params(self) -> None:
        super()._check_params()
        check_option("method", self.method, _METHODS)
        check_option("geometry", self.geometry, _GEOMETRIES)
        for name in ("k_neighbors", "m_neighbors"):
            value = getattr(self, name)
            if isinstance(value, (bool, np.bool_)):
                raise InputTypeError(f"{name} must be an int or a neighbours estimator, "
                                     f"got {value!r}")
            if isinstance(value, numbers.Integral):
                if value < 1:
                    raise ConfigError(f"{name} must be >= 1, got {value}")
            elif not (hasattr(value, "kneighbors") and hasattr(value, "fit")):
                raise InputTypeError(
                    f"{name} must be an int or an estimator with fit and kneighbors (e.g. "
                    f"sklearn.neighbors.NearestNeighbors), got {type(value).__name__}")

    def _neighbours(self, name: str, n_fit: int):
        """A fresh neighbours estimator that returns each point and its ``k`` nearest
        others, with ``k`` capped by the ``n_fit - 1`` points available."""
        value = getattr(self, name)
        if isinstance(value, numbers.Integral):
            k = min(int(value), n_fit - 1)
            if k < int(value):
                logger.warning("%s=%d but only %d other rows are available; using %d",
                               name, int(value), n_fit - 1, k)
            return NearestNeighbors(n_neighbors=k + 1)
        try:
            return clone(value)
        except TypeError:  # not a scikit-learn estimator: copy it instead
            return copy.deepcopy(value)

    def _resolve_latent_stats(self, X: np.ndarray):
        if self.geometry == "linear":
            return None, None
        stats = self.latent_stats
        if stats is None:
            mean, std = X.mean(axis=0, dtype=np.float64), X.std(axis=0, dtype=np.float64)
            # A constant dimension adds nothing to a distance; scaling it by 1 keeps it so.
            std = np.where(std > 0, std, 1.0)
            return mean, std
        if hasattr(stats, "latent_mean") and hasattr(stats, "latent_std"):
            mean, std = stats.latent_mean, stats.latent_std
        elif isinstance(stats, Mapping) and {"mean", "std"} <= set(stats):
            mean, std = stats["mean"], stats["std"]
        elif isinstance(stats, (tuple, list)) and len(stats) == 2:
            mean, std = stats
        else:
            raise InputTypeError(
                "latent_stats must be None, (mean, std), {'mean': ..., 'std': ...} or an "
                f"object with latent_mean and latent_std, got {type(stats).__name__}")
        mean = np.broadcast_to(_to_numpy(mean).ravel(), (X.shape[1],)).copy() \
            if _to_numpy(mean).size in (1, X.shape[1]) else None
        std = np.broadcast_to(_to_numpy(std).ravel(), (X.shape[1],)).copy() \
            if _to_numpy(std).size in (1, X.shape[1]) else None
        if mean is None or std is None:
            raise DataError(
                f"latent_stats must have one mean and one std per embedding dimension "
                f"({X.shape[1]})")
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise DataError("latent_stats must be finite, with every std > 0")
        return mean, std

    def _to_geometry(self, Z: np.ndarray) -> np.ndarray:
        """Coordinates in which neighbours and distances are measured."""
        if self.latent_mean_ is None:
            return Z
        return (np.asarray(Z, dtype=np.float64) - self.latent_mean_) / self.latent_std_

    # -- resampling ------------------------------------------------------------------
    def _fit_resample(self, X: np.ndarray, target: _Target):
        rng = check_random_state(self.random_state)
        self.latent_mean_, self.latent_std_ = self._resolve_latent_stats(X)
        space = self._to_geometry(X)
        codes = target.codes
        index_of = {key: c for c, key in enumerate(target.keys)}
        self.in_danger_indices_ = {}
        parent_a, parent_b, weight, new_codes = [], [], [], []
        m_neighbours = None
        for key, n_new in self.sampling_strategy_.items():
            if n_new == 0:
                continue
            code = index_of[key]
            members = np.flatnonzero(codes == code)
            if len(members) < 2:
                raise DataError(
                    f"group {key!r} has {len(members)} row; interpolation needs at least 2. "
                    "If y holds metadata columns that are not groups (e.g. age), name the "
                    "group columns with groups=[...]")
            if self.method == "smote":
                sources = members
                nn = self._neighbours("k_neighbors", len(members)).fit(space[members])
                neighbours = members[_without_self(
                    nn.kneighbors(space[members], return_distance=False),
                    np.arange(len(members)))]
            else:
                if m_neighbours is None:
                    m_neighbours = self._neighbours("m_neighbors", len(X)).fit(space)
                around = _without_self(
                    m_neighbours.kneighbors(space[members], return_distance=False), members)
                n_other = (codes[around] != code).sum(axis=1)
                m = around.shape[1]
                danger = (n_other >= m / 2) & (n_other < m)
                sources = members[danger]
                self.in_danger_indices_[key] = sources
                if len(sources) == 0:
                    warnings.warn(
                        f"{self.method}: no member of group {key!r} is in danger (near the "
                        f"border with other groups); no synthetic rows are made for it. Use "
                        f"method='smote' to over-sample it anyway", UserWarning, stacklevel=4)
                    continue
                if self.method == "borderline1":
                    nn = self._neighbours("k_neighbors", len(members)).fit(space[members])
                    position = np.searchsorted(members, sources)
                    neighbours = members[_without_self(
                        nn.kneighbors(space[sources], return_distance=False), position)]
                else:
                    nn = self._neighbours("k_neighbors", len(X)).fit(space)
                    neighbours = _without_self(
                        nn.kneighbors(space[sources], return_distance=False), sources)
            k = neighbours.shape[1]
            picks = rng.randint(len(sources) * k, size=n_new)
            rows, cols = np.divmod(picks, k)
            steps = rng.uniform(size=n_new)
            a, b = sources[rows], neighbours[rows, cols]
            if self.method == "borderline2":
                steps = np.where(codes[b] != code, 0.5 * steps, steps)
            parent_a.append(a)
            parent_b.append(b)
            weight.append(steps)
            new_codes.append(np.full(n_new, code, dtype=np.int64))

        def _join(parts, dtype):
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

        a, b = _join(parent_a, np.int64), _join(parent_b, np.int64)
        w, codes_new = _join(weight, np.float64), _join(new_codes, np.int64)
        # Cast the weight to X's dtype first so that the recorded weight reproduces the
        # row exactly with the provenance formula.
        w_x = w.astype(X.dtype)
        X_new = X[a] + w_x[:, None] * (X[b] - X[a])
        n = len(X)
        keys = np.empty(len(target.keys), dtype=object)
        keys[:] = target.keys
        self.provenance_ = pd.DataFrame(
            {"parent_a": a, f"{self.id_column_}_a": self.ids_[a], "parent_b": b,
             f"{self.id_column_}_b": self.ids_[b], "weight": w_x.astype(np.float64),
             "group": keys[codes_new]},
            index=pd.RangeIndex(n, n + len(a), name="row"))
        self.z_synthetic_ = X_new
        # Kept for generate(): the real rows and their groups (a reference, not a copy).
        self._fit_X = X
        self._fit_codes = codes
        self._fit_keys = list(target.keys)
        return X_new, codes_new

    # -- metadata --------------------------------------------------------------------
    def _check_resampled(self) -> None:
        if not hasattr(self, "provenance_"):
            raise NotFittedError(
                f"this {type(self).__name__} has not made synthetic rows yet; call "
                "fit_resample(X, y) first")

    def _resample_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self._synthesize(frame, continuous=None, categorical="nearest")

    def synthetic_metadata(self, metadata, *, continuous=None, categorical="nearest"):
        """Metadata of every row of the last :meth:`fit_resample`, with a ``synthetic`` flag.

        The real rows come first, then one row per synthetic sample.  For a synthetic row,
        the group's columns (:attr:`group_columns_`) take the group's values; continuous
        columns are interpolated with the row's weight,
        ``value[parent_a] + weight * (value[parent_b] - value[parent_a])``; other columns
        are copied from a parent.

        Parameters
        ----------
        metadata : pandas.DataFrame
            One row per row of the ``X`` given to :meth:`fit_resample`, in the same order
            (e.g. ``emb.metadata``).
        continuous : list of str, optional
            The columns to interpolate.  Default: every numeric column that is not
            boolean (integer columns are rounded back to integers).
        categorical : {"nearest", "parent_a"}, default "nearest"
            Where the other columns come from: the parent nearer the synthetic point
            (``parent_a`` when ``weight <= 0.5``, else ``parent_b``), or always
            ``parent_a`` (the member of the group being over-sampled).

        Returns
        -------
        pandas.DataFrame
            ``n_samples + n_synthetic`` rows aligned with the resampled ``X`` (a fresh
            ``RangeIndex``; the synthetic rows' index matches :attr:`provenance_`), with
            the columns of ``metadata`` and a boolean ``synthetic`` column.

        Raises
        ------
        NotFittedError
            Before :meth:`fit_resample`.
        ValueError
            (as :class:`~latentaudit.errors.DataError`) when ``metadata`` does not have one
            row per input row, or already has a ``synthetic`` column.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> import latentaudit as la
        >>> z = np.arange(16, dtype=float).reshape(8, 2)
        >>> meta = pd.DataFrame({"sex": list("MMMMMMFF"), "age": np.arange(8) * 10.0})
        >>> res = la.Interpolator(k_neighbors=1, random_state=0)
        >>> z_res, sex_res = res.fit_resample(z, meta["sex"])
        >>> out = res.synthetic_metadata(meta)
        >>> out["synthetic"].sum(), out.loc[8:, "sex"].unique().tolist()
        (np.int64(4), ['F'])
        """
        self._check_resampled()
        if not isinstance(metadata, pd.DataFrame):
            raise InputTypeError(
                f"metadata must be a pandas DataFrame, got {type(metadata).__name__}")
        if "synthetic" in metadata.columns:
            raise DataError(
                "metadata already has a 'synthetic' column; pass the metadata of the real "
                "rows only (the one given to fit_resample)")
        out = self._synthesize(metadata, continuous=continuous, categorical=categorical)
        out["synthetic"] = np.arange(len(out)) >= len(metadata)
        return out

    def _synthesize(self, frame: pd.DataFrame, *, continuous, categorical) -> pd.DataFrame:
        self._check_resampled()
        check_option("categorical", categorical, ("nearest", "parent_a"))
        n_real = len(self._fit_X)
        if len(frame) != n_real:
            raise DataError(
                f"metadata has {len(frame)} rows but fit_resample was given {n_real}; pass "
                "the metadata of the same rows, in the same order")
        prov = self.provenance_
        a = prov["parent_a"].to_numpy()
        b = prov["parent_b"].to_numpy()
        w = prov["weight"].to_numpy()
        if continuous is None:
            continuous = [c for c in frame.columns
                          if pd.api.types.is_numeric_dtype(frame[c])
                          and not pd.api.types.is_bool_dtype(frame[c])]
        else:
            for column in continuous:
                if column not in frame.columns:
                    raise ConfigError(
                        f"continuous names column {column!r}, which metadata does not have")
        group_columns = [c for c in self.group_columns_ if c in frame.columns]
        source = a if categorical == "parent_a" else np.where(w <= 0.5, a, b)
        real = frame.reset_index(drop=True)
        synthetic = real.iloc[source].reset_index(drop=True)
        for column in continuous:
            if column in group_columns:
                continue
            values = real[column].to_numpy(dtype=np.float64, na_value=np.nan)
            mixed = values[a] + w * (values[b] - values[a])
            if pd.api.types.is_integer_dtype(real[column]) and not np.isnan(mixed).any():
                synthetic[column] = pd.array(np.rint(mixed), dtype=real[column].dtype)
            else:
                synthetic[column] = mixed
        for column in group_columns:
            # parent_a is always a member of the group (Borderline-2 may take parent_b
            # from another group), so its values are the group's.
            synthetic[column] = real[column].iloc[a].to_numpy()
            synthetic[column] = synthetic[column].astype(real[column].dtype)
        out = pd.concat([real, synthetic], ignore_index=True)
        return out

    # -- decoding --------------------------------------------------------------------
    def generate(self, encoder, X_parent_images=None, *, reject=None, max_distance=None,
                 radius_factor=1.0, steps=None, clip=(-1.0, 1.0), batch_size=32,
                 device=None, generator=None, verbose=False):
        """Decode the synthetic rows into images, optionally rejecting off-manifold ones.

        Every synthetic row of the last :meth:`fit_resample` is decoded through the
        generative protocol (:class:`~latentaudit.encoders.GenerativeEncoder`).  When
        ``X_parent_images`` is given, each parent's codes come from ``encoder.invert``
        (a Diffusion Autoencoder's stochastic code ``x_T``, a GAN's noise; None for a
        β-VAE) and the synthetic row is decoded from the spherical interpolation
        (:func:`~latentaudit.encoders.interpolate_codes`) of its parents' codes with the
        row's weight; without parent images, what the embedding leaves open is drawn
        from ``generator``.

        With ``reject``, each decoded image is encoded again and dropped when its
        embedding lands off the manifold:

        - ``"distance"``: farther than ``max_distance`` from the intended point;
        - ``"radius"``: farther from its k-th nearest real member of the group
          (``k = k_neighbors``) than ``radius_factor`` times the group's kNN radius;
        - ``"both"``: either.

        The group's kNN radius is the largest distance from a real member to its k-th
        nearest other member, so no real member would itself be rejected.  Distances are
        measured in the ``geometry`` of the Interpolator.

        Parameters
        ----------
        encoder : GenerativeEncoder
            A generative encoder (``encode``, ``invert`` and ``decode``, the latter
            returning images ``(N, C, *spatial)``).  Moved to ``device`` when given, and
            put in eval mode while generating (its previous mode is restored).
        X_parent_images : array-like, torch.Tensor or Dataset, optional
            The images of the rows given to :meth:`fit_resample`, one per row, in the same
            order (an array ``(n_samples, C, *spatial)`` or a latentaudit dataset); by
            default the images of the :class:`~latentaudit.Embeddings` ``fit_resample``
            was given.  Only the parents are read, and inverted with ``encoder.invert``.
        reject : {None, "distance", "radius", "both"}, default None
            Which re-encoding test to apply (see above); ``None`` keeps every image.
        max_distance : float, optional
            Threshold of ``"distance"``.  Default: the group's kNN radius.
        radius_factor : float, default 1.0
            Multiplier of the group's kNN radius for ``"radius"``.
        steps : int, optional
            Passed as ``steps`` to ``invert`` and ``decode`` (the steps of an iterative
            decoder; default the encoder's own; one-pass decoders ignore it).
        clip : tuple of float or None, default (-1.0, 1.0)
            Range the decoded images are clipped to (latentaudit's images live in
            [-1, 1]); ``None`` keeps the decoder's output as it is.
        batch_size : int, default 32
            Rows decoded (and parents inverted) per batch.
        device : str or torch.device, optional
            Where to run the encoder.  Default: where its parameters are (CPU for an
            object without parameters).
        generator : torch.Generator, optional
            Passed to ``decode``, which draws what the codes leave open from it (a
            Diffusion Autoencoder's random ``x_T`` without parent images).  Default: one
            on ``device`` seeded from ``random_state``.
        verbose : bool, default False
            Show progress bars.

        Returns
        -------
        GenerationResult
            ``images`` (every synthetic row, in provenance order), the ``kept`` mask,
            ``n_rejected``, the ``distances`` and ``knn_distances`` of the re-encoded
            images (NaN where not measured), and ``provenance`` with those columns added.

        Raises
        ------
        NotFittedError
            Before :meth:`fit_resample`.
        TypeError
            (as :class:`~latentaudit.errors.InputTypeError`) when ``encoder`` does not
            meet the generative protocol.
        ValueError
            (as :class:`~latentaudit.errors.DataError` or ``ConfigError``) for parent
            images that do not match the input rows, or options that are not allowed.

        Examples
        --------
        >>> import numpy as np, torch
        >>> import latentaudit as la
        >>> class Linear(torch.nn.Module):  # a tiny generative encoder: 2-D latent, 4x4
        ...     latent_dim, spatial_dims = 2, 2
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.w = torch.nn.Parameter(torch.randn(2, 16) / 8)
        ...     def encode(self, x):
        ...         return x.reshape(len(x), -1) @ torch.linalg.pinv(self.w)
        ...     def invert(self, x, **options):
        ...         return None  # the embedding is all decode needs
        ...     def decode(self, z, codes=None, *, generator=None, **options):
        ...         return (z @ self.w).reshape(-1, 1, 4, 4)
        >>> z = np.random.default_rng(0).normal(size=(12, 2))
        >>> res = la.Interpolator(k_neighbors=2, random_state=0)
        >>> _ = res.fit_resample(z, [0] * 8 + [1] * 4)
        >>> out = res.generate(Linear(), reject="distance")
        >>> out.images.shape, int(out.n_rejected)
        ((4, 1, 4, 4), 0)
        """
        from ._generate import generate

        self._check_resampled()
        if X_parent_images is None and self.embeddings_ is not None:
            X_parent_images = self.embeddings_.row_images  # None when they carry no images
        index_of = {key: code for code, key in enumerate(self._fit_keys)}
        return generate(self, encoder, X_parent_images, n_real=len(self._fit_X),
                        to_geometry=self._to_geometry,
                        group_radius=lambda group: self._group_radius(index_of[group]),
                        reject=reject,
                        max_distance=max_distance, radius_factor=radius_factor, steps=steps,
                        clip=clip, batch_size=batch_size, device=device, generator=generator,
                        verbose=verbose)

    def _group_radius(self, code: int):
        """The group's neighbours estimator (fitted on its real members, in the geometry
        space), its kNN radius and its ``k``."""
        members = np.flatnonzero(self._fit_codes == code)
        space = self._to_geometry(self._fit_X[members])
        nn = self._neighbours("k_neighbors", len(members)).fit(space)
        distances, indices = nn.kneighbors(space)
        keep = ~_self_mask(indices, np.arange(len(members)))
        k = indices.shape[1] - 1
        # The k-th nearest other member is the farthest of the k kept neighbours.
        kth = distances[keep].reshape(len(members), k).max(axis=1)
        return nn, float(kth.max()), k
