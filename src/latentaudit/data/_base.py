"""The dataset contract every image source of latentaudit follows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from .._identity import DEFAULT_ID_COLUMN
from ..errors import DataError, InputShapeError
from ..utils import check_spatial_dims

__all__ = ["ImageDataset", "align_metadata", "as_image_array", "read_table"]


class ImageDataset(Dataset):
    """Base class of latentaudit's datasets.

    An item is a dict ``{"image": Tensor, "index": int}`` where the image is float32,
    channel-first, ``(C, H, W)`` or ``(C, D, H, W)``, and ``index`` is the item's
    position (so batches can be traced back to rows of :attr:`metadata`).

    Subclasses set ``spatial_dims`` and implement :meth:`__len__`, :meth:`load_image`,
    :attr:`image_shape`, and fill ``_ids``, ``_slice_index`` and ``_metadata``.

    Attributes
    ----------
    spatial_dims : int
        2 or 3.
    id_column : str
        Name of the id column in :attr:`metadata`.
    skipped : pandas.DataFrame
        Files left out with ``on_error="skip"``: columns ``path`` and ``reason``.
    """

    spatial_dims: int = 2
    id_column: str = DEFAULT_ID_COLUMN

    def __init__(self) -> None:
        self._ids: np.ndarray = np.array([], dtype=object)
        self._slice_index: np.ndarray = np.array([], dtype=np.int64)
        self._metadata: pd.DataFrame = pd.DataFrame()
        self.skipped: pd.DataFrame = pd.DataFrame({"path": [], "reason": []})

    # -- the contract ----------------------------------------------------------------
    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def load_image(self, index: int) -> np.ndarray:  # pragma: no cover - abstract
        """Return item ``index`` as a float32 array of shape :attr:`image_shape`."""
        raise NotImplementedError

    @property
    def image_shape(self) -> tuple[int, ...]:  # pragma: no cover - abstract
        """Shape of one item's image, channels first: ``(C, H, W)`` or ``(C, D, H, W)``."""
        raise NotImplementedError

    # -- shared behaviour -------------------------------------------------------------
    @property
    def in_channels(self) -> int:
        """Number of image channels."""
        return int(self.image_shape[0])

    @property
    def ids(self) -> np.ndarray:
        """Subject id of every item (several items share one id when volumes are sliced)."""
        return self._ids

    @property
    def slice_index(self) -> np.ndarray:
        """Position of every item among its subject's slices (0 for unsliced data)."""
        return self._slice_index

    @property
    def metadata(self) -> pd.DataFrame:
        """Metadata table with one row per item, in item order (a copy)."""
        return self._metadata.copy()

    @property
    def subjects(self) -> np.ndarray:
        """Unique subject ids in order of first appearance."""
        return pd.unique(pd.Series(self._ids, dtype=object)).astype(object)

    def __getitem__(self, index: int) -> dict:
        n = len(self)
        if isinstance(index, (np.integer,)):
            index = int(index)
        if not isinstance(index, int):
            raise TypeError(f"dataset index must be an int, got {type(index).__name__}")
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} is out of range for a dataset of {n} items")
        image = self.load_image(index)
        return {"image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
                "index": index}

    def __repr__(self) -> str:
        n_subjects = len(self.subjects)
        columns = ", ".join(map(str, self._metadata.columns)) or "none"
        return (f"{type(self).__name__}(n_items={len(self)}, n_subjects={n_subjects}, "
                f"image_shape={tuple(self.image_shape)}, spatial_dims={self.spatial_dims}, "
                f"metadata columns: {columns})")


def as_image_array(images, spatial_dims: int | None = None, name: str = "images") -> np.ndarray:
    """Validate an in-memory image array and return it as float32, channel-first.

    Parameters
    ----------
    images : array-like
        ``(N, C, H, W)`` or ``(N, C, D, H, W)``.
    spatial_dims : int, optional
        Expected number of spatial dimensions; inferred from ``images.ndim`` if None.
    name : str
        Used in messages.

    Returns
    -------
    numpy.ndarray
        float32 array (a view where possible).
    """
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    images = np.asarray(images)
    if spatial_dims is None:
        if images.ndim not in (4, 5):
            raise InputShapeError(
                f"{name} must be (N, C, H, W) or (N, C, D, H, W), got shape {images.shape}")
        spatial_dims = images.ndim - 2
    check_spatial_dims(spatial_dims)
    if images.ndim != spatial_dims + 2:
        expected = "(N, C, H, W)" if spatial_dims == 2 else "(N, C, D, H, W)"
        raise InputShapeError(
            f"{name} must be {expected} for spatial_dims={spatial_dims}, "
            f"got shape {images.shape}")
    real = np.issubdtype(images.dtype, np.number) and not np.issubdtype(
        images.dtype, np.complexfloating)
    if not real:
        raise DataError(f"{name} must hold real numbers, got dtype {images.dtype}")
    images = images.astype(np.float32, copy=False)
    return images


def align_metadata(ids: Sequence, metadata, id_column: str, *, source: str = "images",
                   on_missing: str = "raise") -> tuple[pd.DataFrame, np.ndarray]:
    """Join a metadata table onto item ids.

    Parameters
    ----------
    ids : sequence of str
        Subject id of every item.
    metadata : pandas.DataFrame, str, os.PathLike or None
        The table, or the path of a CSV file.  ``None`` gives a table of ids only.
    id_column : str
        Column holding the ids.
    source : str
        What the ids came from, for messages.
    on_missing : {"raise", "skip"}
        What to do with items whose id is not in the table.

    Returns
    -------
    table : pandas.DataFrame
        One row per kept item, ``id_column`` first.
    keep : numpy.ndarray of bool
        Which items were kept.
    """
    ids = np.asarray([str(i) for i in ids], dtype=object)
    if metadata is None:
        return pd.DataFrame({id_column: ids}), np.ones(len(ids), dtype=bool)
    table = read_table(metadata, id_column)
    if id_column not in table.columns:
        raise DataError(
            f"the metadata table has no id column {id_column!r}; its columns are "
            f"{list(map(str, table.columns))}; pass id_column= to name the right one")
    table = table.copy()
    table[id_column] = table[id_column].astype(str)
    duplicated = table[id_column][table[id_column].duplicated()].unique()
    if len(duplicated):
        raise DataError(
            f"the metadata table has repeated ids in {id_column!r}: "
            f"{_few(duplicated)}; each subject must appear once")
    known = set(table[id_column])
    keep = np.array([i in known for i in ids], dtype=bool)
    if not keep.all() and on_missing == "raise":
        missing = pd.unique(ids[~keep])
        raise DataError(
            f"{len(missing)} id(s) of the {source} are missing from the metadata table "
            f"(column {id_column!r}): {_few(missing)}; add them to the table or pass "
            f"on_error='skip'")
    rows = table.set_index(id_column).loc[ids[keep]].reset_index()
    rows = rows[[id_column] + [c for c in rows.columns if c != id_column]]
    return rows.reset_index(drop=True), keep


def read_table(metadata, id_column: str | None = None) -> pd.DataFrame:
    """Read a metadata table from a DataFrame or a CSV/TSV path, naming the file on error.

    Parameters
    ----------
    metadata : pandas.DataFrame, str or os.PathLike
        The table, or the path of a CSV (``.csv``) or TSV (``.tsv``) file.
    id_column : str, optional
        Read this column as text, so ids such as ``"001"`` keep their leading zeros.

    Returns
    -------
    pandas.DataFrame
    """
    if isinstance(metadata, pd.DataFrame):
        return metadata
    import os

    if isinstance(metadata, (str, os.PathLike)):
        path = os.fspath(metadata)
        if not os.path.exists(path):
            raise DataError(f"metadata file {path!r} does not exist")
        sep = "\t" if path.endswith((".tsv", ".tsv.gz")) else ","
        try:
            dtype = {id_column: str} if id_column else None
            return pd.read_csv(path, sep=sep, dtype=dtype)
        except Exception as err:  # pandas raises many kinds
            raise DataError(f"cannot read metadata file {path!r}: {err}") from err
    raise DataError(
        f"metadata must be a pandas DataFrame or the path of a CSV file, got "
        f"{type(metadata).__name__}")


def _few(values, n: int = 5) -> str:
    values = [str(v) for v in values]
    more = f" and {len(values) - n} more" if len(values) > n else ""
    return ", ".join(repr(v) for v in values[:n]) + more
