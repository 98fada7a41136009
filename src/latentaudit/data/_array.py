"""Images that are already in memory."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError
from ._base import ImageDataset, align_metadata, as_image_array

__all__ = ["ArrayDataset"]


class ArrayDataset(ImageDataset):
    """A dataset of images held in a NumPy array (or a memory-map).

    Parameters
    ----------
    images : array-like
        ``(N, C, H, W)`` or ``(N, C, D, H, W)``; converted to float32.  Values are used as
        given (scale them to [-1, 1] yourself, e.g. with
        :func:`latentaudit.data.scale_intensity`).
    metadata : pandas.DataFrame, str or None, optional
        One row per image, in image order, or (with ``ids``) a table joined on
        ``id_column``.  A path to a CSV file is read.
    ids : sequence of str, optional
        Subject id of every image.  Default: taken from ``metadata[id_column]`` when the
        table has that column and one row per image, else ``"0", "1", ...``.
    id_column : str, default "subject"
        Name of the id column.
    slice_index : sequence of int, optional
        Position of every image among its subject's slices (for per-subject
        aggregation of slice embeddings).  Default: counted in order of appearance.
    check_finite : bool, default True
        Reject NaN or infinite values.

    Attributes
    ----------
    images : numpy.ndarray
        The float32 images.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.DataError` or ``InputShapeError``) for a wrong
        shape, non-finite values, or ids that do not match the metadata.

    Examples
    --------
    >>> import numpy as np
    >>> import latentaudit as la
    >>> ds = la.ArrayDataset(np.zeros((4, 1, 16, 16), dtype="float32"))
    >>> ds[0]["image"].shape
    torch.Size([1, 16, 16])
    """

    def __init__(self, images, metadata=None, *, ids=None, id_column: str = "subject",
                 slice_index=None, check_finite: bool = True) -> None:
        super().__init__()
        self.images = as_image_array(images)
        self.spatial_dims = self.images.ndim - 2
        self.id_column = id_column
        n = len(self.images)
        if check_finite and not np.isfinite(self.images).all():
            bad = np.flatnonzero(~np.isfinite(self.images.reshape(n, -1)).all(axis=1))
            raise DataError(
                f"images contain NaN or infinite values in {len(bad)} image(s), first at "
                f"index {int(bad[0])}; replace or drop them before building the dataset")
        table = None if metadata is None else metadata
        if ids is None:
            if table is not None:
                from ._base import read_table

                table = read_table(table, id_column)
                if len(table) != n:
                    raise DataError(
                        f"metadata has {len(table)} rows but there are {n} images; give one "
                        f"row per image, or pass ids= to join the table on {id_column!r}")
                table = table.reset_index(drop=True)
                if id_column in table.columns:
                    ids = table[id_column].astype(str).to_numpy(dtype=object)
                else:
                    ids = np.array([str(i) for i in range(n)], dtype=object)
                    table.insert(0, id_column, ids)
                self._metadata = table
            else:
                ids = np.array([str(i) for i in range(n)], dtype=object)
                self._metadata = pd.DataFrame({id_column: ids})
        else:
            ids = np.asarray([str(i) for i in ids], dtype=object)
            if len(ids) != n:
                raise DataError(f"got {len(ids)} ids for {n} images; give one id per image")
            if table is None:
                self._metadata = pd.DataFrame({id_column: ids})
            else:
                self._metadata, _ = align_metadata(ids, table, id_column, source="images")
        self._ids = np.asarray(ids, dtype=object)
        if slice_index is None:
            slice_index = pd.Series(self._ids).groupby(self._ids).cumcount().to_numpy()
        slice_index = np.asarray(slice_index, dtype=np.int64)
        if slice_index.shape != (n,):
            raise DataError(f"slice_index must have one entry per image ({n}), "
                            f"got shape {slice_index.shape}")
        self._slice_index = slice_index

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one image, channels first."""
        return tuple(self.images.shape[1:])

    def load_image(self, index: int) -> np.ndarray:
        """Return image ``index`` as float32, channels first."""
        return self.images[index]
