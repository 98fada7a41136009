"""One image per row: lazy, random access to the images behind a table of rows.

Every part of latentaudit that reads images by position (extraction, the Explainer's
classifier and maps, mean and difference images, counterfactuals, decoding synthetic rows,
the report) goes through :class:`RowImages`, whatever the images came as: an array or a
memory-map ``(N, C, *spatial)``, a tensor, a latentaudit dataset or any map-style dataset.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .._identity import middle_rows
from ..errors import DataError, InputShapeError, InputTypeError

__all__ = ["RowImages", "item_image"]


def item_image(item):
    """The image of a dataset item or of a batch, as it is (tensor or array).

    Parameters
    ----------
    item : torch.Tensor, numpy.ndarray, dict or tuple
        A tensor or array, a ``{"image": ...}`` dict (latentaudit's datasets) or a tuple
        whose first element is the image (``TensorDataset``, ``(image, label)`` pairs).

    Returns
    -------
    torch.Tensor or numpy.ndarray

    Raises
    ------
    TypeError
        (as :class:`~latentaudit.errors.InputTypeError`) for a dict without ``"image"`` or
        anything else.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.data import item_image
    >>> item_image({"image": np.zeros((1, 4, 4)), "index": 3}).shape
    (1, 4, 4)
    """
    if isinstance(item, (torch.Tensor, np.ndarray)):
        return item
    if isinstance(item, Mapping):
        if "image" not in item:
            raise InputTypeError(f"items or batches given as dicts must hold the image under "
                                 f"'image'; got keys {sorted(map(str, item))}")
        return item["image"]
    if isinstance(item, (list, tuple)) and item and not np.isscalar(item[0]):
        return item[0]
    raise InputTypeError(
        f"expected an image (a tensor or an array), a dict with an 'image' key, or a tuple "
        f"whose first element is the image; got {type(item).__name__}")


def _as_float_array(image) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if not np.issubdtype(image.dtype, np.number) or np.iscomplexobj(image):
        raise InputTypeError(f"images must hold real numbers, got dtype {image.dtype}")
    return np.ascontiguousarray(image, dtype=np.float32)


class RowImages(Dataset):
    """Lazy, random access to one image per row.

    Row ``i`` is image ``rows[i]`` of ``images``.  Arrays (and memory-maps) are indexed
    directly; datasets are read item by item, only when an image is asked for.  As a
    map-style dataset, its items are ``{"image": Tensor, "index": i}`` (plus ``"label"``
    when ``labels`` are given), so a :class:`torch.utils.data.DataLoader` can batch it.

    Parameters
    ----------
    images : array-like, torch.Tensor, Dataset or RowImages
        ``(N, C, H, W)`` or ``(N, C, D, H, W)`` images, or a dataset whose items are
        images, ``{"image": ...}`` dicts or tuples starting with the image.
    rows : array-like of int, optional
        The position in ``images`` of every row; default one row per image.
    ids : sequence of str, optional
        The id of every row (used as captions); default the ids of ``images`` (a dataset's
        ``ids``) or the positions.
    labels : array-like, optional
        One label per row, added to the items as ``"label"`` (a tensor).
    spatial_dims : {2, 3}, optional
        Check that the images have this many spatial dimensions.
    name : str, default "images"
        What the images are called in messages.

    Attributes
    ----------
    image_shape : tuple of int
        Shape of one image, ``(C, *spatial)``.
    spatial_dims : int or None
        2 or 3 (None for inputs that are not images, e.g. feature vectors).
    ids : numpy.ndarray of str
        The id of every row.
    rows : numpy.ndarray of int64
        The position in the source of every row.

    Raises
    ------
    ValueError
        (as :class:`~latentaudit.errors.InputShapeError` or ``DataError``) for images of
        the wrong shape, an empty dataset, or ``rows``, ``ids`` and ``labels`` of different
        lengths.
    TypeError
        (as :class:`~latentaudit.errors.InputTypeError`) for anything that is not images.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit.data import RowImages
    >>> images = np.arange(5 * 4, dtype="float32").reshape(5, 1, 2, 2)
    >>> rows = RowImages(images, rows=[4, 0], ids=["e", "a"])
    >>> len(rows), rows.get([0]).ravel().tolist()
    (2, [16.0, 17.0, 18.0, 19.0])
    >>> rows[1]["image"].shape
    torch.Size([1, 2, 2])
    """

    def __init__(self, images, rows=None, *, ids=None, labels=None,
                 spatial_dims: int | None = None, name: str = "images") -> None:
        self.name = name
        self._array: np.ndarray | None = None
        self._dataset = None
        if isinstance(images, RowImages):
            base_rows = images.rows
            self._array, self._dataset = images._array, images._dataset
            self.image_shape = images.image_shape
            size = len(images)
        else:
            base_rows = None
            if isinstance(images, torch.Tensor):
                images = images.detach().cpu().numpy()
            if isinstance(images, np.ndarray):
                if images.ndim < 2:
                    raise InputShapeError(f"{name} must be (N, C, H, W) or (N, C, D, H, W), "
                                          f"got shape {images.shape}")
                if not np.issubdtype(images.dtype, np.number) or np.iscomplexobj(images):
                    raise InputTypeError(f"{name} must hold real numbers, got dtype "
                                         f"{images.dtype}")
                self._array = images  # a memory-map stays on disk: rows are read when asked
                self.image_shape = tuple(int(s) for s in images.shape[1:])
            elif hasattr(images, "__getitem__") and hasattr(images, "__len__") and not \
                    isinstance(images, (str, bytes, Mapping)):
                self._dataset = images
                if len(images) == 0:
                    raise DataError(f"{name} is an empty dataset")
                shape = getattr(images, "image_shape", None)
                if shape is None:
                    shape = _as_float_array(item_image(images[0])).shape
                self.image_shape = tuple(int(s) for s in shape)
            else:
                raise InputTypeError(
                    f"{name} must be an array or tensor (N, C, H, W) / (N, C, D, H, W) or a "
                    f"dataset of such images, got {type(images).__name__}")
            size = len(self._array) if self._array is not None else len(self._dataset)
        # inputs that are not images (e.g. feature vectors for embed) have no spatial_dims
        self.spatial_dims = len(self.image_shape) - 1 if len(self.image_shape) in (3, 4) \
            else None
        if spatial_dims is not None and self.spatial_dims != spatial_dims:
            expected = "(C, H, W)" if spatial_dims == 2 else "(C, D, H, W)"
            raise InputShapeError(
                f"{name}: expected images {expected} for spatial_dims={spatial_dims}, got "
                f"images of shape {self.image_shape}")
        positions = np.arange(size) if rows is None else np.asarray(rows, dtype=np.int64)
        if positions.ndim != 1:
            raise InputShapeError(f"rows must be one position per row, got shape "
                                  f"{positions.shape}")
        if positions.size and (positions.min() < 0 or positions.max() >= size):
            raise DataError(f"rows must be positions in 0..{size - 1} of {name}, got values "
                            f"from {int(positions.min())} to {int(positions.max())}")
        self.rows = positions if base_rows is None else base_rows[positions]
        if ids is None:
            source_ids = getattr(images, "ids", None)  # a RowImages or a dataset with ids
            if source_ids is not None and len(source_ids) == size:
                ids = np.asarray(source_ids, dtype=object)[positions]
            else:
                ids = positions
        self.ids = np.asarray([str(i) for i in ids], dtype=object)
        if self.ids.shape != (len(self.rows),):
            raise DataError(f"got {len(self.ids)} ids for {len(self.rows)} rows of {name}")
        self.labels = None
        if labels is not None:
            self.labels = np.asarray(labels)
            if self.labels.shape[:1] != (len(self.rows),):
                raise DataError(f"got {len(self.labels)} labels for {len(self.rows)} rows of "
                                f"{name}")

    @property
    def source(self):
        """The array or dataset the images are read from."""
        return self._array if self._array is not None else self._dataset

    # -- the dataset protocol -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        i = int(i)
        item = {"image": torch.from_numpy(self.get([i])[0]), "index": i}
        if self.labels is not None:
            item["label"] = torch.as_tensor(self.labels[i])
        return item

    def __repr__(self) -> str:
        source = "array" if self._array is not None else type(self._dataset).__name__
        return (f"RowImages(n_rows={len(self)}, image_shape={self.image_shape}, "
                f"source={source})")

    # -- reading ----------------------------------------------------------------------------
    def get(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The images of some rows as one float32 array ``(n, C, *spatial)``.

        Parameters
        ----------
        rows : sequence of int
            Row positions.

        Returns
        -------
        numpy.ndarray
        """
        positions = self.rows[np.asarray(rows, dtype=np.int64)]
        if self._array is not None:
            return np.ascontiguousarray(self._array[positions], dtype=np.float32)
        out = np.empty((len(positions), *self.image_shape), dtype=np.float32)
        for k, position in enumerate(positions):
            image = _as_float_array(item_image(self._dataset[int(position)]))
            if image.shape != self.image_shape:
                raise InputShapeError(f"{self.name}: item {int(position)} has shape "
                                      f"{image.shape}, the others {self.image_shape}; all "
                                      f"must match")
            out[k] = image
        return out

    def batches(self, rows, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(rows, images)`` in chunks of ``batch_size`` rows.

        Parameters
        ----------
        rows : sequence of int
            Row positions, in the order wanted.
        batch_size : int
            Rows per chunk.

        Yields
        ------
        tuple of numpy.ndarray
            The chunk's row positions and their images.
        """
        rows = np.asarray(rows, dtype=np.int64)
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            yield chunk, self.get(chunk)

    def subset(self, rows, *, labels=None) -> RowImages:
        """The rows at some positions, as a new :class:`RowImages` (no image is read).

        Parameters
        ----------
        rows : sequence of int
            Row positions.
        labels : array-like, optional
            One label per selected row.

        Returns
        -------
        RowImages
        """
        return RowImages(self, rows, labels=labels, name=self.name)

    def names(self, rows) -> list[str]:
        """The ids of some rows, e.g. as captions."""
        return [str(self.ids[int(r)]) for r in rows]

    # -- matching images to rows by id --------------------------------------------------------
    @classmethod
    def match(cls, images, ids, *, name: str = "images") -> RowImages:
        """One image per id: the images whose ids are ``ids``.

        ``images`` may hold one image per id in the same order (an array, or a dataset
        without ids), or be a dataset with ``ids`` (and ``slice_index``) whose items are
        matched by id; a subject with several items (the slices of a volume) is shown by
        its middle one.

        Parameters
        ----------
        images : array-like, torch.Tensor, Dataset or RowImages
            The images.
        ids : sequence of str
            The id of every row wanted.
        name : str, default "images"
            What the images are called in messages.

        Returns
        -------
        RowImages

        Raises
        ------
        ValueError
            (as :class:`~latentaudit.errors.DataError`) when the images cannot be matched:
            another number of images and no ids, or ids without an image.

        Examples
        --------
        >>> import numpy as np
        >>> import latentaudit as la
        >>> ds = la.ArrayDataset(np.arange(6, dtype="float32").reshape(6, 1, 1, 1),
        ...                      ids=["a", "a", "a", "b", "b", "b"])
        >>> RowImages.match(ds, ["b", "a"]).rows.tolist()
        [4, 1]
        """
        ids = np.asarray([str(i) for i in ids], dtype=object)
        source_ids = getattr(images, "ids", None)
        if isinstance(images, (np.ndarray, torch.Tensor)) or source_ids is None:
            if len(images) != len(ids):
                raise DataError(f"got {len(images)} {name} for {len(ids)} rows; give one image "
                                f"per row, or a dataset with subject ids to match them by")
            return cls(images, ids=ids, name=name)
        source_ids = np.asarray([str(i) for i in source_ids], dtype=object)
        if len(source_ids) == len(ids) and np.array_equal(source_ids, ids):
            return cls(images, ids=ids, name=name)
        middle = middle_rows(source_ids, getattr(images, "slice_index", None))
        missing = [i for i in ids if i not in middle.index]
        if missing:
            raise DataError(f"{len(missing)} id(s) have no image in {name}, e.g. "
                            f"{', '.join(repr(str(m)) for m in missing[:3])}; give the images "
                            f"the embeddings were made from")
        return cls(images, rows=middle.loc[list(ids)].to_numpy(dtype=np.int64), ids=ids,
                   name=name)
