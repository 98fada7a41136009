"""The resampling verb, written once.

:class:`BaseResampler` follows imbalanced-learn's contract without depending on it:
``fit_resample(X, y)`` validates ``X`` and ``y``, turns ``y`` into class or group labels,
resolves ``sampling_strategy`` into the number of rows to add per group, calls the
subclass's ``_fit_resample`` and hands the result back in the containers it was given
(list, array, DataFrame, Series, one-hot array).
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, OneToOneFeatureMixin
from sklearn.utils.multiclass import type_of_target

from .._identity import rows_of
from ..errors import ConfigError, DataError, InputTypeError

__all__ = ["BaseResampler"]

_STRATEGY_NAMES = ("auto", "minority", "not minority", "not majority", "all")


def _validate_data(estimator, X, reset: bool) -> np.ndarray:
    """scikit-learn's ``validate_data`` (public from 1.6 on), with our error classes."""
    kwargs = {"reset": reset, "dtype": [np.float64, np.float32], "accept_sparse": False}
    try:
        try:
            from sklearn.utils.validation import validate_data
        except ImportError:  # pragma: no cover - scikit-learn < 1.6
            return estimator._validate_data(X, **kwargs)
        return validate_data(estimator, X, **kwargs)
    except TypeError as err:
        raise InputTypeError(str(err)) from err
    except ValueError as err:
        raise DataError(str(err)) from err


@dataclass
class _Target:
    """``y`` as the resampler sees it: one integer code per row, and the group behind each
    code.

    ``kind`` is ``"labels"`` (a 1-D vector of class or group labels), ``"onehot"`` (a
    one-vs-all indicator matrix) or ``"frame"`` (a DataFrame of metadata).
    """

    kind: str
    codes: np.ndarray
    keys: list
    eligible: np.ndarray
    original: Any
    values: np.ndarray | None = None
    container: str = "array"

    @property
    def counts(self) -> np.ndarray:
        return np.bincount(self.codes, minlength=len(self.keys))

    def labels(self) -> np.ndarray:
        """One group label per row (object array), as ``sampling_strategy`` callables see
        them."""
        keys = np.empty(len(self.keys), dtype=object)
        keys[:] = self.keys
        return keys[self.codes]


def _close_hint(value, choices) -> str:
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _as_key(value):
    """A group label as a plain, hashable Python value (NumPy scalars compare equal to
    their Python counterparts, but print worse)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return tuple(_as_key(v) for v in value)
    return value


def resolve_sampling_strategy(sampling_strategy, target: _Target) -> dict:
    """Turn ``sampling_strategy`` into ``{group label: number of rows to add}``.

    Parameters
    ----------
    sampling_strategy : str, float, int, dict or callable
        See :class:`BaseResampler`.
    target : _Target
        The parsed target.

    Returns
    -------
    dict
        The groups to over-sample, in the order of ``target.keys``, with the number of
        synthetic rows to make for each.

    Raises
    ------
    ValueError
        (as :class:`~latentaudit.errors.DataError`) when ``y`` has a single class, or
        (as :class:`~latentaudit.errors.ConfigError`) when the strategy cannot be met by
        adding rows.
    """
    keys, counts, eligible = target.keys, target.counts, target.eligible
    if len(keys) < 2:
        what = "group" if target.kind == "frame" else "class"
        raise DataError(
            f"y has 1 {what} ({keys[0]!r}); an over-sampler needs at least 2 classes or "
            "groups to balance")
    n_majority = int(counts.max())
    majority = int(np.argmax(counts))
    eligible_codes = [c for c in range(len(keys)) if eligible[c]]
    if not eligible_codes:  # pragma: no cover - every parsed target has an eligible group
        raise DataError("no group of y can be over-sampled")
    minority = min(eligible_codes, key=lambda c: counts[c])

    if callable(sampling_strategy) and not isinstance(sampling_strategy, (str, Mapping)):
        result = sampling_strategy(target.labels())
        if not isinstance(result, Mapping):
            raise InputTypeError(
                "a callable sampling_strategy must return a dict {group: number of rows "
                f"wanted}}, got {type(result).__name__}")
        sampling_strategy = dict(result)

    if isinstance(sampling_strategy, str):
        if sampling_strategy not in _STRATEGY_NAMES:
            allowed = ", ".join(repr(s) for s in _STRATEGY_NAMES)
            raise ConfigError(
                f"sampling_strategy must be one of {allowed}, a float, an int, a dict or a "
                f"callable, got {sampling_strategy!r}"
                f"{_close_hint(sampling_strategy, _STRATEGY_NAMES)}")
        if sampling_strategy in ("auto", "not majority"):
            chosen = [c for c in eligible_codes if c != majority]
        elif sampling_strategy == "minority":
            chosen = [minority]
        elif sampling_strategy == "not minority":
            chosen = [c for c in eligible_codes if c != minority]
        else:
            chosen = eligible_codes
        return {keys[c]: n_majority - int(counts[c]) for c in chosen}

    if isinstance(sampling_strategy, (numbers.Real, np.number)) and not isinstance(
            sampling_strategy, (bool, np.bool_)):
        if isinstance(sampling_strategy, numbers.Integral):
            n_wanted = int(sampling_strategy)
            if n_wanted < 1:
                raise ConfigError(
                    f"an int sampling_strategy is the number of rows wanted per group and "
                    f"must be >= 1, got {n_wanted}")
            return {keys[c]: max(0, n_wanted - int(counts[c])) for c in eligible_codes}
        ratio = float(sampling_strategy)
        if not 0.0 < ratio <= 1.0:
            raise ConfigError(
                f"a float sampling_strategy is the wanted ratio minority/majority and must "
                f"be in (0, 1], got {ratio}")
        if len(keys) != 2:
            raise ConfigError(
                f"a float sampling_strategy needs exactly 2 classes or groups, y has "
                f"{len(keys)}; use a string, an int or a dict instead")
        out = {}
        for c in eligible_codes:
            if c == majority:
                continue
            n_new = int(n_majority * ratio - counts[c])
            if n_new < 0:
                raise ConfigError(
                    f"sampling_strategy={ratio} asks for fewer rows of {keys[c]!r} than it "
                    f"has ({int(counts[c])} of {n_majority} in the majority); an "
                    "over-sampler only adds rows, so increase the ratio")
            out[keys[c]] = n_new
        return out

    if isinstance(sampling_strategy, Mapping):
        index = {}
        for c, key in enumerate(keys):
            index[key] = c
        out = {}
        for key, n_wanted in sampling_strategy.items():
            hashable = _as_key(key)
            if hashable not in index or not eligible[index[hashable]]:
                known = [k for k, e in zip(keys, eligible, strict=True) if e]
                raise ConfigError(
                    f"sampling_strategy names {key!r}, which is not a class or group of y; "
                    f"known: {known}{_close_hint(key, known)}")
            c = index[hashable]
            if isinstance(n_wanted, (bool, np.bool_)) or not isinstance(
                    n_wanted, (numbers.Integral, np.integer)):
                raise InputTypeError(
                    f"sampling_strategy[{key!r}] must be an int (the number of rows wanted), "
                    f"got {n_wanted!r}")
            if n_wanted < counts[c]:
                raise ConfigError(
                    f"sampling_strategy[{key!r}] = {n_wanted} is below the {int(counts[c])} "
                    f"rows {key!r} already has; an over-sampler only adds rows")
            out[c] = int(n_wanted) - int(counts[c])
        return {keys[c]: out[c] for c in sorted(out)}

    raise InputTypeError(
        "sampling_strategy must be a string, a float in (0, 1], an int, a dict or a callable, "
        f"got {type(sampling_strategy).__name__}")


class BaseResampler(OneToOneFeatureMixin, BaseEstimator):
    """Base class of over-samplers that add synthetic rows after the real ones.

    It writes imbalanced-learn's verb once: :meth:`fit_resample` validates ``X`` and ``y``,
    turns ``y`` into class or group labels, resolves ``sampling_strategy`` into
    :attr:`sampling_strategy_` and calls ``_fit_resample``, which subclasses write.  The
    output comes back in the containers the input came in.

    Parameters
    ----------
    sampling_strategy : str, float, int, dict or callable, default "auto"
        How many rows each class or group should have after resampling:

        - ``"auto"`` or ``"not majority"``: every group but the largest grows to the size
          of the largest; ``"minority"``: only the smallest; ``"not minority"``: all but
          the smallest; ``"all"``: every group (the largest gets no new rows).
        - a float in (0, 1] (two groups only): the wanted ratio minority / majority.
        - an int ``N``: every group with fewer than ``N`` rows grows to ``N``.
        - a dict ``{group: N}``: the named groups grow to ``N`` rows each, the others
          are left alone.
        - a callable: called with the group label of every row (an object array),
          returns such a dict.

        Rows outside every group named by a dict ``groups`` are never over-sampled.
    groups : None, str, list of str or dict, default None
        What the groups are when ``y`` is a DataFrame of metadata (otherwise ``y``'s
        values are the groups):

        - ``None``: every column of ``y`` together (one column: its values).
        - a column name or a list of names: each combination of their values is a group,
          labelled by the value (one column) or the tuple of values.
        - a dict ``{name: condition}``: named groups, each a ``DataFrame.eval``
          expression (``"sex == 'F' and age > 60 and site == 'C'"``), a callable taking
          the DataFrame and returning a boolean mask, or a boolean array.  The groups must
          not overlap; the other rows form the group ``None``, which is counted but
          never over-sampled.

    Attributes
    ----------
    sampling_strategy_ : dict
        ``{group: number of synthetic rows to make}`` for the groups that are over-sampled.
    group_counts_ : dict
        ``{group: number of real rows}`` for every group of ``y``.
    group_columns_ : list of str
        The columns of ``y`` (or ``y``'s name) that define the groups; empty when the
        groups are not columns.
    n_features_in_ : int
        Number of columns of ``X``.
    feature_names_in_ : numpy.ndarray
        Column names of ``X`` when it was a DataFrame with string column names.
    ids_ : numpy.ndarray of str
        The id of every input row (an Embeddings' ids, else the row positions).
    id_column_ : str
        The name of the ids' column.
    embeddings_ : Embeddings or None
        The :class:`~latentaudit.Embeddings` given as ``X``, if one was.
    """

    def __init__(self, sampling_strategy="auto", groups=None) -> None:
        self.sampling_strategy = sampling_strategy
        self.groups = groups

    # -- the verb --------------------------------------------------------------------
    def fit(self, X, y=None):
        """Check ``X`` and ``y`` and work out how many rows each group needs.

        :meth:`fit_resample` is what you usually want; ``fit`` exists for scikit-learn's
        estimator contract.

        Parameters
        ----------
        X : Embeddings, array-like or DataFrame of shape (n_samples, n_features)
            The embeddings.
        y : array-like, Series, DataFrame, str or list of str, optional
            Class or group labels, a one-vs-all indicator matrix, or a DataFrame of
            metadata (see ``groups``); with an :class:`~latentaudit.Embeddings`, also the
            name(s) of its metadata columns, or nothing to take its whole metadata table
            (with ``groups``).

        Returns
        -------
        self
            The fitted resampler.
        """
        self._check_params()
        X, y = self._unpack(X, y)
        X_array, _ = self._check_X(X)
        target = self._check_y(y, len(X_array))
        self._fit_target(target)
        return self

    def fit_resample(self, X, y=None):
        """Over-sample: return the real rows followed by the synthetic ones.

        Parameters
        ----------
        X : Embeddings, array-like or DataFrame of shape (n_samples, n_features)
            The embeddings; an :class:`~latentaudit.Embeddings` brings its ids (in
            :attr:`provenance_`), its metadata (see ``y``) and its images (for
            :meth:`generate`).
        y : array-like, Series, DataFrame, str or list of str, optional
            Class or group labels (1-D), a one-vs-all indicator matrix, or a DataFrame of
            metadata whose groups are set by ``groups``; with an Embeddings, also the
            name(s) of its metadata columns, or nothing to take its whole metadata table
            (with ``groups``).

        Returns
        -------
        X_resampled : array-like or DataFrame of shape (n_samples + n_new, n_features)
            ``X`` followed by the synthetic rows, in the container ``X`` came in (a NumPy
            array for an Embeddings).
        y_resampled : array-like, Series or DataFrame
            ``y`` followed by the synthetic rows' labels (or metadata rows, for a
            DataFrame ``y``), in the container ``y`` came in.

        Raises
        ------
        ValueError
            (as :class:`~latentaudit.errors.DataError`) for non-finite or wrongly shaped
            ``X``, a continuous or multi-label ``y``, a single class, or a group too small
            to interpolate in; (as :class:`~latentaudit.errors.ConfigError`) for a
            parameter that is not allowed.
        """
        self._check_params()
        X, y = self._unpack(X, y)
        X_array, x_info = self._check_X(X)
        target = self._check_y(y, len(X_array))
        self._fit_target(target)
        X_new, codes_new = self._fit_resample(X_array, target)
        X_resampled = np.concatenate([X_array, X_new.astype(X_array.dtype, copy=False)])
        y_resampled = self._resampled_target(target, codes_new)
        return self._restore_X(X_resampled, x_info), y_resampled

    def _fit_resample(self, X: np.ndarray, target: _Target):  # pragma: no cover - abstract
        """Make the synthetic rows.

        Returns ``(X_new, codes_new)``: the synthetic rows only and the group code of each.
        """
        raise NotImplementedError

    def _resample_frame(self, frame: pd.DataFrame) -> pd.DataFrame:  # pragma: no cover
        """Metadata rows for the synthetic rows of the last ``fit_resample``, real rows
        first (subclasses that accept a DataFrame ``y`` write this)."""
        raise NotImplementedError

    # -- checks ----------------------------------------------------------------------
    def _unpack(self, X, y):
        """The array and the target of an Embeddings (its metadata columns); the ids."""
        rows = rows_of(X)
        self.embeddings_ = rows.embeddings
        self.ids_, self.id_column_ = rows.ids, rows.id_column
        if rows.embeddings is None:
            return X, y
        table = rows.metadata
        if y is None and self.groups is not None:
            y = table
        elif isinstance(y, str) or (isinstance(y, list) and y and all(
                isinstance(c, str) for c in y)):
            names = [y] if isinstance(y, str) else y
            for name in names:
                if name not in table.columns:
                    raise ConfigError(
                        f"y names column {name!r}, which the Embeddings' metadata does not "
                        f"have; columns: {list(table.columns)}{_close_hint(name, table.columns)}")
            y = table[y]
        return np.asarray(rows.z), y

    def _check_params(self) -> None:
        groups = self.groups
        if groups is None or isinstance(groups, (str, Mapping)):
            return
        if isinstance(groups, (list, tuple)) and groups and all(
                isinstance(g, str) for g in groups):
            return
        raise InputTypeError(
            "groups must be None, a column name, a non-empty list of column names or a dict "
            f"{{name: condition}}, got {groups!r}")

    def _check_X(self, X):
        info: dict[str, Any] = {"kind": "array"}
        if isinstance(X, list):
            info["kind"] = "list"
        elif isinstance(X, pd.DataFrame):
            info = {"kind": "frame", "columns": X.columns, "dtypes": X.dtypes}
            if len(X.columns) and all(isinstance(d, pd.SparseDtype) for d in X.dtypes):
                # Embeddings are dense; a sparse frame is densified and given back sparse.
                X = X.sparse.to_dense()
        X_array = _validate_data(self, X, reset=True)
        return X_array, info

    def _check_y(self, y, n_samples: int) -> _Target:
        name = type(self).__name__
        if y is None:
            raise DataError(
                f"{name} requires y to be passed, but the target y is None; pass class or "
                "group labels, or a DataFrame of metadata with groups=")
        if isinstance(y, pd.DataFrame):
            return self._frame_target(y, n_samples)
        if self.groups is not None:
            raise InputTypeError(
                f"groups={self.groups!r} names groups in a DataFrame of metadata, so y must "
                f"be a DataFrame; got {type(y).__name__}")
        container = ("list" if isinstance(y, list)
                     else "series" if isinstance(y, pd.Series) else "array")
        values = y.to_numpy() if isinstance(y, pd.Series) else np.asarray(y)
        if values.ndim == 0 or len(values) != n_samples:
            raise DataError(
                f"X has {n_samples} rows but y has "
                f"{'no length' if values.ndim == 0 else len(values)}; give one label per row")
        kind = "labels"
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        missing = pd.isna(values)
        if missing.any():
            raise DataError(f"y has {int(missing.sum())} missing labels; drop or fill them first")
        y_type = type_of_target(values)
        if values.ndim == 2:
            if y_type == "multilabel-indicator" and np.all(values.sum(axis=1) == 1):
                kind = "onehot"
                labels = values.argmax(axis=1)
            else:
                raise DataError(
                    "Multilabel and multioutput targets are not supported: y must be one "
                    "label per row, a one-vs-all indicator matrix with a single 1 per row, or "
                    f"a DataFrame of metadata; got an array of shape {values.shape} "
                    f"({y_type})")
        elif y_type in ("binary", "multiclass"):
            labels = values
        else:
            raise DataError(
                f"Unknown label type: y is {y_type!r}; {name} balances classes or groups, so "
                "pass labels (e.g. a metadata column or cluster labels), or a DataFrame with "
                "groups= (bin a continuous column first, e.g. age > 60)")
        uniques, codes = np.unique(labels, return_inverse=True)
        keys = [_as_key(u) for u in uniques]
        return _Target(kind=kind, codes=codes.ravel().astype(np.int64), keys=keys,
                       eligible=np.ones(len(keys), dtype=bool), original=y, values=values,
                       container=container)

    def _frame_target(self, frame: pd.DataFrame, n_samples: int) -> _Target:
        if len(frame) != n_samples:
            raise DataError(
                f"X has {n_samples} rows but the metadata y has {len(frame)}; give one row "
                "per embedding, in the same order")
        groups = self.groups
        if isinstance(groups, Mapping):
            return self._named_groups(frame, groups)
        columns = (list(frame.columns) if groups is None
                   else [groups] if isinstance(groups, str) else list(groups))
        for column in columns:
            if column not in frame.columns:
                raise ConfigError(
                    f"groups names column {column!r}, which y does not have; columns: "
                    f"{list(frame.columns)}{_close_hint(column, frame.columns)}")
        if not columns:
            raise DataError("y is a DataFrame without columns; it needs at least one")
        missing = frame[columns].isna().any(axis=1)
        if missing.any():
            raise DataError(
                f"{int(missing.sum())} rows have missing values in the group columns "
                f"{columns}; fill or drop them first")
        grouped = frame[columns].groupby(columns, sort=True, observed=True)
        codes = grouped.ngroup().to_numpy().astype(np.int64)
        first = np.zeros(codes.max() + 1, dtype=np.int64)
        first[codes[::-1]] = np.arange(len(codes))[::-1]
        rows = frame[columns].to_numpy(dtype=object)[first]
        keys = [_as_key(r[0]) if len(columns) == 1 else _as_key(tuple(r)) for r in rows]
        return _Target(kind="frame", codes=codes, keys=keys,
                       eligible=np.ones(len(keys), dtype=bool), original=frame,
                       container="frame")

    def _named_groups(self, frame: pd.DataFrame, groups: Mapping) -> _Target:
        if not groups:
            raise ConfigError("groups is an empty dict; name at least one group")
        n = len(frame)
        masks = []
        for name, condition in groups.items():
            if name is None:
                raise ConfigError("a group cannot be named None (None holds the other rows)")
            if isinstance(condition, str):
                try:
                    mask = frame.eval(condition)
                except Exception as err:  # pandas raises many kinds for a bad expression
                    raise ConfigError(
                        f"groups[{name!r}] = {condition!r} cannot be evaluated on the "
                        f"metadata (columns {list(frame.columns)}): {err}") from err
            elif callable(condition):
                mask = condition(frame)
            else:
                mask = condition
            mask = np.asarray(mask)
            if mask.shape != (n,) or mask.dtype != bool:
                raise DataError(
                    f"groups[{name!r}] must give one boolean per row ({n}), got an array of "
                    f"shape {mask.shape} and dtype {mask.dtype}")
            if not mask.any():
                raise DataError(f"groups[{name!r}] matches no row of the metadata")
            masks.append(mask)
        stacked = np.stack(masks)
        overlap = stacked.sum(axis=0) > 1
        if overlap.any():
            raise DataError(
                f"the groups overlap on {int(overlap.sum())} rows (first at row "
                f"{int(np.flatnonzero(overlap)[0])}); make the conditions exclusive")
        names = [_as_key(k) for k in groups]
        inside = stacked.any(axis=0)
        codes = np.where(inside, stacked.argmax(axis=0), len(names)).astype(np.int64)
        eligible = np.ones(len(names), dtype=bool)
        if not inside.all():
            names.append(None)
            eligible = np.append(eligible, False)
        return _Target(kind="frame", codes=codes, keys=names, eligible=eligible,
                       original=frame, container="frame")

    def _fit_target(self, target: _Target) -> None:
        self.sampling_strategy_ = resolve_sampling_strategy(self.sampling_strategy, target)
        counts = target.counts
        self.group_counts_ = {k: int(c) for k, c in zip(target.keys, counts, strict=True)}
        y = target.original
        if target.kind == "frame":
            groups = self.groups
            self.group_columns_ = (
                [] if isinstance(groups, Mapping)
                else list(y.columns) if groups is None
                else [groups] if isinstance(groups, str) else list(groups))
        elif isinstance(y, pd.Series) and y.name is not None:
            self.group_columns_ = [y.name]
        else:
            self.group_columns_ = []

    # -- output ----------------------------------------------------------------------
    def _resampled_target(self, target: _Target, codes_new: np.ndarray):
        if target.kind == "frame":
            return self._resample_frame(target.original)
        keys = np.empty(len(target.keys), dtype=object)
        keys[:] = target.keys
        if target.kind == "onehot":
            values = target.values
            new = np.zeros((len(codes_new), values.shape[1]), dtype=values.dtype)
            new[np.arange(len(codes_new)), keys[codes_new].astype(np.int64)] = 1
            resampled = np.concatenate([values, new])
        else:
            values = target.values
            resampled = np.concatenate(
                [values, np.asarray(list(keys[codes_new]), dtype=values.dtype)
                 if len(codes_new) else values[:0]])
        y = target.original
        if target.container == "list":
            return resampled.tolist()
        if target.container == "series":
            return pd.Series(resampled, name=y.name).astype(y.dtype)
        if isinstance(y, np.ndarray) and y.ndim == 2 and y.shape[1] == 1:
            return resampled.reshape(-1, 1)
        return resampled

    @staticmethod
    def _restore_X(X_resampled: np.ndarray, info: dict):
        if info["kind"] == "list":
            return X_resampled.tolist()
        if info["kind"] == "frame":
            frame = pd.DataFrame(X_resampled, columns=info["columns"])
            return frame.astype(info["dtypes"])
        return X_resampled

    # -- scikit-learn / imbalanced-learn tags -------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        try:
            from imblearn.utils._tags import InputTags, SamplerTags, Tags
        except ImportError:
            # Only imbalanced-learn reads the sampler fields; without it, scikit-learn's
            # own tags are all anyone asks for.
            return tags
        sampler_tags = Tags(
            estimator_type="sampler", target_tags=tags.target_tags,
            sampler_tags=SamplerTags(sample_indices=False))
        sampler_tags.input_tags = InputTags(two_d_array=True, sparse=False, dataframe=True)
        return sampler_tags

