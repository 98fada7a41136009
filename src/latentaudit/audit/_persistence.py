"""Saving a fitted auditor to a folder and reading it back, without pickles."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import CheckpointError
from ..utils import atomic_write
from ._association import FINDING_COLUMNS
from ._candidates import SUBGROUP_COLUMNS, empty_subgroups, with_q_values
from ._clustering import _NOISE

if TYPE_CHECKING:  # pragma: no cover
    from ._auditor import ClusterAuditor

__all__: list[str] = []

logger = logging.getLogger(__name__)

_SAVE_FORMAT = "latentaudit.ClusterAuditor"
_SAVE_VERSION = 1


class _Persistence:
    """:class:`~latentaudit.audit.ClusterAuditor`'s ``save`` and ``load``."""

    def save(self, path, *, include_embedding: bool = True) -> Path:
        """Write the fitted auditor to a folder, without pickles.

        ``auditor.json`` holds the parameters and small fitted state, ``arrays.npz``
        the arrays (labels, kNN graph, PCA, analysis space and, unless excluded, the
        embedding), ``findings.json`` and ``metadata.json`` the tables (column-wise JSON
        that keeps the dtypes and round-trips floats exactly).

        Parameters
        ----------
        path : str or os.PathLike
            The folder (created if needed; files in it are overwritten).
        include_embedding : bool, default True
            Store the embedding itself (needed for ``probe(space="embedding")`` and for
            look-ups in the embedding, ``knn_space_ == "embedding"``).

        Returns
        -------
        pathlib.Path
            The folder.

        Raises
        ------
        NotFittedError
            Before ``fit``.

        Examples
        --------
        >>> from latentaudit.audit import ClusterAuditor
        >>> import tempfile
        >>> import numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> site = np.repeat(["A", "B"], 100)
        >>> z = rng.normal(size=(200, 8)) + 6.0 * (site == "B")[:, None]
        >>> aud = ClusterAuditor(random_state=0).fit(z, pd.DataFrame({"site": site}))
        >>> folder = aud.save(tempfile.mkdtemp())
        >>> sorted(p.name for p in folder.iterdir())
        ['arrays.npz', 'auditor.json', 'findings.json', 'metadata.json', 'subgroups.json']
        """
        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        params = self.get_params()
        if isinstance(params["random_state"], np.integer):
            params["random_state"] = int(params["random_state"])
        if not isinstance(params["random_state"], (int, type(None))):
            logger.warning("random_state %r is not saved (only ints and None are)",
                           params["random_state"])
            params["random_state"] = None
        for key in ("columns", "expected", "nuisance"):
            if params[key] is not None and not isinstance(params[key], str):
                params[key] = list(params[key])
        state = {
            "format": _SAVE_FORMAT,
            "version": _SAVE_VERSION,
            "params": params,
            "column_types": self.column_types_,
            "column_roles": self.column_roles_,
            "within": self.within_,
            "cluster_method": self.cluster_method_,
            "id_column": self.id_column_,
            "knn_method": self.knn_method_,
            "knn_space": self.knn_space_,
            "knn_recall": self.knn_recall_,
            "n_samples": self.n_samples_,
            "n_features_in": self.n_features_in_,
            "timings": self.timings_,
        }
        arrays = {
            "labels": self.labels_,
            "knn_indices": self.knn_indices_,
            "knn_distances": self.knn_distances_,
            "ids": np.asarray(self.ids_, dtype=str),  # fixed-width text: no pickle needed
            "subgroup_scores": self.subgroup_scores_,
        }
        statistics = getattr(self, "image_statistics_", None)
        if statistics is not None:
            arrays["image_statistics"] = statistics.to_numpy(dtype=np.float64)
            state["image_statistics_columns"] = [str(c) for c in statistics.columns]
        if self.pca_components_ is not None:
            arrays.update(pca_mean=self.pca_mean_, pca_components=self.pca_components_,
                          explained_variance_ratio=self.explained_variance_ratio_,
                          reduced=self.reduced_)
        if include_embedding and self.embedding_ is not None:
            arrays["z"] = self.embedding_
        with atomic_write(folder / "auditor.json") as handle:
            handle.write(json.dumps(state, indent=2, default=_json_default))
        with atomic_write(folder / "arrays.npz", "wb") as handle:
            np.savez(handle, **arrays)
        _write_table(self.findings_, folder / "findings.json")
        _write_table(self.metadata_, folder / "metadata.json")
        _write_table(self.subgroups_, folder / "subgroups.json")
        return folder

    @classmethod
    def load(cls, path) -> ClusterAuditor:
        """Read an auditor written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike
            The folder.

        Returns
        -------
        ClusterAuditor
            Fitted: findings, labels, summaries, label issues, outliers, duplicates and
            look-ups work as before saving.

        Raises
        ------
        OSError
            (as :class:`~latentaudit.errors.CheckpointError`) when files are missing or
            not an auditor's.

        Examples
        --------
        >>> from latentaudit.audit import ClusterAuditor
        >>> import tempfile
        >>> import numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> site = np.repeat(["A", "B"], 100)
        >>> z = rng.normal(size=(200, 8)) + 6.0 * (site == "B")[:, None]
        >>> aud = ClusterAuditor(random_state=0).fit(z, pd.DataFrame({"site": site}))
        >>> again = ClusterAuditor.load(aud.save(tempfile.mkdtemp()))
        >>> again.findings_.equals(aud.findings_)
        True
        """
        folder = Path(path)
        try:
            state = json.loads((folder / "auditor.json").read_text())
            with np.load(folder / "arrays.npz", allow_pickle=False) as stored:
                arrays = {key: stored[key] for key in stored.files}
            findings = _read_table(folder / "findings.json")
            metadata = _read_table(folder / "metadata.json")
            subgroups = (_read_table(folder / "subgroups.json")
                         if (folder / "subgroups.json").exists() else empty_subgroups())
        except (OSError, ValueError, KeyError) as err:
            raise CheckpointError(f"cannot read a saved ClusterAuditor from {str(folder)!r}: "
                                  f"{err}") from err
        if state.get("format") != _SAVE_FORMAT:
            raise CheckpointError(f"{str(folder / 'auditor.json')!r} is not a saved "
                                  "ClusterAuditor")
        auditor = cls(**state["params"])
        auditor.column_types_ = state["column_types"]
        auditor.column_roles_ = state["column_roles"]
        auditor.within_ = state["within"]
        auditor.cluster_method_ = state["cluster_method"]
        auditor.id_column_ = state["id_column"]
        auditor.knn_method_ = state["knn_method"]
        auditor.knn_space_ = state.get("knn_space", state["params"].get("knn_space"))
        auditor.knn_recall_ = state["knn_recall"]
        auditor.n_samples_ = state["n_samples"]
        auditor.n_features_in_ = state["n_features_in"]
        auditor.timings_ = state.get("timings", {})
        auditor.labels_ = arrays["labels"].astype(np.int64)
        auditor.n_clusters_ = int(np.unique(auditor.labels_[auditor.labels_ != _NOISE]).size)
        auditor.knn_indices_ = arrays["knn_indices"]
        auditor.knn_distances_ = arrays["knn_distances"]
        auditor.ids_ = arrays["ids"].astype(object)
        auditor.subgroup_scores_ = arrays.get(
            "subgroup_scores", np.zeros((0, auditor.labels_.size), dtype=np.float64))
        if "space" not in subgroups:  # saved before image statistics were searched
            subgroups.insert(1, "space", "embedding")
        # saved before the falling-density test or the far-tail test
        for column in ("tail_rows", "rise_rows", "far_rows"):
            if column not in subgroups:
                subgroups[column] = np.zeros(len(subgroups), dtype=np.int64)
        if "p_mode" not in subgroups:  # saved when a candidate had one finding
            subgroups = subgroups.rename(columns={"p_value": "p_mode"}).assign(p_far=np.nan)
            subgroups = with_q_values(subgroups, findings, state["params"]["alpha"])
            subgroups["evidence"] = "not recorded"
        auditor.subgroups_ = subgroups[SUBGROUP_COLUMNS]
        auditor.embedding_ = arrays.get("z")
        auditor.image_statistics_ = (
            pd.DataFrame(arrays["image_statistics"], columns=state["image_statistics_columns"])
            if "image_statistics" in arrays else None)
        if "pca_components" in arrays:
            auditor.pca_mean_ = arrays["pca_mean"]
            auditor.pca_components_ = arrays["pca_components"]
            auditor.explained_variance_ratio_ = arrays["explained_variance_ratio"]
            auditor.reduced_ = arrays["reduced"]
        else:
            if auditor.embedding_ is None:
                raise CheckpointError(f"{str(folder)!r} holds neither the embedding nor a "
                                      "reduced space")
            auditor.pca_mean_ = auditor.pca_components_ = None
            auditor.explained_variance_ratio_ = None
            auditor.reduced_ = auditor.embedding_
        findings["cluster"] = findings["cluster"].astype("Int64")
        auditor.findings_ = findings[FINDING_COLUMNS]
        metadata.index = pd.RangeIndex(len(metadata))
        auditor.metadata_ = metadata
        return auditor


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _column_to_json(values: pd.Series) -> dict:
    dtype = values.dtype
    missing = values.isna().to_numpy()
    if isinstance(dtype, pd.CategoricalDtype):
        return {"dtype": "category", "categories": _column_to_json(
            pd.Series(dtype.categories))["values"], "ordered": bool(dtype.ordered),
            "values": [int(c) for c in values.cat.codes]}
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return {"dtype": str(dtype), "values": [None if m else pd.Timestamp(t).isoformat()
                                                 for t, m in zip(values, missing, strict=True)]}
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        raw = values.astype(object).tolist()
        items = [None if m else (v.item() if isinstance(v, np.generic) else v)
                 for v, m in zip(raw, missing, strict=True)]
        return {"dtype": str(dtype), "values": items}
    raw = values.astype(object).tolist()
    kind = "object" if pd.api.types.is_object_dtype(dtype) else str(dtype)  # keeps "str"
    return {"dtype": kind, "values": [None if m else v if isinstance(v, str) else str(v)
                                      for v, m in zip(raw, missing, strict=True)]}


def _column_from_json(column: dict) -> pd.Series:
    dtype = column["dtype"]
    if dtype == "category":
        categories = pd.Index(column["categories"])
        return pd.Series(pd.Categorical.from_codes(column["values"], categories=categories,
                                                   ordered=column["ordered"]))
    values = pd.Series(column["values"], dtype=object)
    if dtype.startswith("datetime64"):
        return pd.to_datetime(values, format="ISO8601").astype(dtype)
    if dtype == "object":
        return values
    if dtype in ("float64", "float32"):
        return values.astype("float64").astype(dtype)
    return values.astype(dtype)


def _write_table(frame: pd.DataFrame, path: os.PathLike) -> None:
    """A table as JSON: Python's float repr round-trips exactly, dtypes are kept."""
    table = {"columns": [str(c) for c in frame.columns], "n_rows": len(frame),
             "data": [_column_to_json(frame[c]) for c in frame.columns]}
    with atomic_write(path) as handle:
        handle.write(json.dumps(table, allow_nan=True))


def _read_table(path: os.PathLike) -> pd.DataFrame:
    table = json.loads(Path(path).read_text())
    columns = {name: _column_from_json(column)
               for name, column in zip(table["columns"], table["data"], strict=True)}
    return pd.DataFrame(columns, index=pd.RangeIndex(table["n_rows"]))


