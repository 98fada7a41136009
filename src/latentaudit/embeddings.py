"""The :class:`Embeddings` container: an ``(N, d)`` array with the ids, metadata and
provenance of its rows; per-subject aggregation; storage on disk without pickles, as a
folder of ``.npy`` and JSON files, with large arrays written and read as memory-maps.

:func:`latentaudit.embed` (in :mod:`latentaudit.embed`) makes them from an encoder and a
dataset.
"""

from __future__ import annotations

import difflib
import os

import numpy as np
import pandas as pd

from ._aggregation import _AggregationPlan
from ._identity import DEFAULT_ID_COLUMN, middle_rows
from ._storage import _Storage, finish_streamed
from .errors import ConfigError, DataError, InputShapeError, InputTypeError

__all__ = ["Embeddings"]


class Embeddings(_Storage):
    """Embeddings of a dataset: an ``(N, d)`` array with ids, metadata and provenance.

    Usually made by :func:`embed` or :meth:`load`.  Everything after the embedding step
    (projection, clustering, probes) works on :attr:`z` and :attr:`metadata`, and the
    estimators take the object itself (``ClusterAuditor().fit(emb)``).  Rows carry
    identity: every row has a subject id (under :attr:`id_column` in the metadata) and,
    for embeddings made by :func:`embed` from a dataset, its image (:meth:`image`,
    :meth:`images`, read lazily from the dataset).

    Parameters
    ----------
    z : array-like of shape (n_rows, latent_dim)
        The embeddings; kept as given when already a float32 NumPy array (a memory-map
        stays a memory-map), converted to float32 otherwise.
    ids : sequence of str, optional
        Subject id of every row.  Default: the metadata's ``id_column`` when it has one,
        else ``"0", "1", ...``.
    metadata : pandas.DataFrame, optional
        One row per row of ``z``, in the same order.  Default: a table of the ids.
    slice_index : sequence of int, optional
        Position of every row among its subject's slices.  Default: all zeros.
    provenance : dict, optional
        How the embeddings were made (JSON-serialisable).
    id_column : str, default "subject"
        Name of the id column in the metadata (the dataset's ``id_column``).
    images : array-like, torch.Tensor or dataset, optional
        The images of the rows (see :meth:`attach_images`).

    Attributes
    ----------
    z : numpy.ndarray of shape (n_rows, latent_dim)
        float32 embeddings (possibly a read-only memory-map).
    ids : numpy.ndarray of str
        Subject id of every row.
    metadata : pandas.DataFrame
        Metadata, one row per row of ``z``.
    slice_index : numpy.ndarray of int64
        Position of every row among its subject's slices (0 once aggregated).
    provenance : dict
        Encoder class and config hash, library version, seeds, devices, timings.
    id_column : str
        Name of the id column in :attr:`metadata`.
    row_images : latentaudit.data.RowImages or None
        The image of every row (a subject's middle slice once aggregated), read lazily;
        None when the embeddings carry no images (e.g. after :meth:`load`).

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.InputShapeError` or ``DataError``) when ``z`` is
        not 2-D, the ids, metadata and slice indices do not have one entry per row, or the
        metadata's id column disagrees with ``ids``.

    Examples
    --------
    >>> import numpy as np
    >>> from latentaudit import Embeddings
    >>> emb = Embeddings(np.zeros((3, 4), dtype="float32"), ids=["a", "b", "c"],
    ...                  images=np.ones((3, 1, 8, 8), dtype="float32"))
    >>> emb.shape, emb.image("b").shape
    ((3, 4), (1, 8, 8))
    """

    def __init__(self, z, ids=None, metadata: pd.DataFrame | None = None, slice_index=None,
                 provenance: dict | None = None, *, id_column: str = DEFAULT_ID_COLUMN,
                 images=None) -> None:
        if not (isinstance(z, np.ndarray) and z.dtype == np.float32):
            z = _to_numpy(z).astype(np.float32, copy=False)
        if z.ndim != 2:
            raise InputShapeError(f"embeddings must be a 2-D array (n_rows, latent_dim), "
                                  f"got shape {z.shape}")
        n = len(z)
        if not isinstance(id_column, str) or not id_column:
            raise ConfigError(f"id_column must be a non-empty str, got {id_column!r}")
        if metadata is not None and not isinstance(metadata, pd.DataFrame):
            raise InputTypeError(
                f"metadata must be a pandas DataFrame, got {type(metadata).__name__}")
        if metadata is not None and len(metadata) != n:
            raise DataError(f"metadata has {len(metadata)} rows for {n} embeddings; give one "
                            f"row per embedding")
        in_table = metadata is not None and id_column in metadata.columns
        if ids is None:
            ids = metadata[id_column] if in_table else range(n)
        ids = np.asarray([str(i) for i in ids], dtype=object)
        if ids.shape != (n,):
            raise DataError(f"got {len(ids)} ids for {n} embeddings; give one id per row")
        if metadata is None:
            metadata = pd.DataFrame({id_column: ids})
        elif in_table:
            differ = np.flatnonzero(metadata[id_column].astype(str).to_numpy() != ids)
            if differ.size:
                row = int(differ[0])
                raise DataError(
                    f"the metadata's id column {id_column!r} disagrees with the ids at "
                    f"{differ.size} row(s), first at row {row} ({metadata[id_column].iloc[row]!r}"
                    f" vs {ids[row]!r}); give the metadata in the order of the embeddings")
        if slice_index is None:
            slice_index = np.zeros(n, dtype=np.int64)
        slice_index = np.asarray(slice_index, dtype=np.int64)
        if slice_index.shape != (n,):
            raise DataError(f"slice_index must have one entry per embedding ({n}), got shape "
                            f"{slice_index.shape}")
        self.z = z
        self.ids = ids
        self.metadata = metadata.reset_index(drop=True)
        self.slice_index = slice_index
        self.provenance = dict(provenance or {})
        self.id_column = id_column
        self.row_images = None
        if images is not None:
            self.attach_images(images)

    # -- basics ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.z)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_rows, latent_dim)``."""
        return tuple(self.z.shape)

    @property
    def latent_dim(self) -> int:
        """Number of columns of :attr:`z`."""
        return int(self.z.shape[1])

    @property
    def is_memmap(self) -> bool:
        """Whether :attr:`z` is a memory-map of a file rather than an array in memory."""
        return isinstance(self.z, np.memmap)

    def __array__(self, dtype=None, copy=None):
        # lets estimators take the object itself: Projector().fit_transform(emb)
        z = np.asarray(self.z)
        return z.astype(dtype, copy=False) if dtype is not None else z

    def __repr__(self) -> str:
        columns = ", ".join(map(str, self.metadata.columns)) or "none"
        where = ", memory-mapped" if self.is_memmap else ""
        images = ", with images" if self.row_images is not None else ""
        return (f"Embeddings(n_rows={len(self)}, latent_dim={self.latent_dim}, "
                f"n_subjects={len(pd.unique(self.ids))}{where}{images}, metadata columns: "
                f"{columns})")

    # -- identity: ids and images ------------------------------------------------------
    def attach_images(self, images) -> Embeddings:
        """Give every row its image (read lazily, never copied).

        Parameters
        ----------
        images : array-like, torch.Tensor, dataset or None
            One image per row in row order (an array ``(n_rows, C, *spatial)`` or a
            dataset without ids), or a dataset with ids (e.g. the one the embeddings were
            made from), matched to the rows by id; a subject with several items (slices)
            is shown by its middle one.  None detaches the images.

        Returns
        -------
        Embeddings
            ``self``.

        Raises
        ------
        ValueError
            (as :class:`latentaudit.errors.DataError`) when the images cannot be matched
            to the rows.

        Examples
        --------
        >>> import numpy as np
        >>> import latentaudit as la
        >>> emb = la.Embeddings(np.zeros((2, 3), dtype="float32"), ids=["a", "b"])
        >>> emb.attach_images(np.ones((2, 1, 4, 4), dtype="float32")).image("a").shape
        (1, 4, 4)
        """
        from .data._rows import RowImages  # torch: only when there are images

        self.row_images = None if images is None else RowImages.match(
            images, self.ids, name="images")
        return self

    def index_of(self, ids) -> int | np.ndarray:
        """Row positions of subject ids (a subject with several rows: its middle slice).

        Parameters
        ----------
        ids : str or sequence of str
            Subject ids.

        Returns
        -------
        int or numpy.ndarray of int64
            One position per id (an int for a single id).

        Raises
        ------
        KeyError
            (as :class:`latentaudit.errors.DataError`) for an id with no row.

        Examples
        --------
        >>> import numpy as np
        >>> import latentaudit as la
        >>> emb = la.Embeddings(np.zeros((3, 2), dtype="float32"), ids=["a", "b", "c"])
        >>> emb.index_of("c"), emb.index_of(["b", "a"]).tolist()
        (2, [1, 0])
        """
        single = isinstance(ids, (str, np.str_)) or np.isscalar(ids)
        wanted = [str(ids)] if single else [str(i) for i in ids]
        rows = self._rows_by_id()
        missing = [i for i in wanted if i not in rows.index]
        if missing:
            close = difflib.get_close_matches(missing[0], list(rows.index[:100_000]), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise DataError(f"no row has the {self.id_column} {missing[0]!r}"
                            f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}"
                            f"{hint}")
        positions = rows.loc[wanted].to_numpy(dtype=np.int64)
        return int(positions[0]) if single else positions

    def image(self, subject_id) -> np.ndarray:
        """The image of one subject.

        Parameters
        ----------
        subject_id : str
            The subject's id (see :attr:`ids`).

        Returns
        -------
        numpy.ndarray
            float32 ``(C, H, W)`` or ``(C, D, H, W)``.

        Raises
        ------
        ValueError
            (as :class:`latentaudit.errors.DataError`) for an unknown id, or embeddings
            that carry no images.

        Examples
        --------
        >>> import numpy as np
        >>> import latentaudit as la
        >>> ds = la.ArrayDataset(np.arange(3, dtype="float32").reshape(3, 1, 1, 1),
        ...                      ids=["a", "b", "c"])
        >>> emb = la.Embeddings(np.zeros((3, 2), dtype="float32"), ids=ds.ids, images=ds)
        >>> float(emb.image("b")[0, 0, 0])
        1.0
        """
        return self.images([subject_id])[0]

    def images(self, ids) -> np.ndarray:
        """The images of several subjects.

        Parameters
        ----------
        ids : sequence of str
            Subject ids.

        Returns
        -------
        numpy.ndarray
            float32 ``(len(ids), C, *spatial)``.

        Raises
        ------
        ValueError
            (as :class:`latentaudit.errors.DataError`) for an unknown id, or embeddings
            that carry no images.

        Examples
        --------
        >>> import numpy as np
        >>> import latentaudit as la
        >>> emb = la.Embeddings(np.zeros((3, 2), dtype="float32"), ids=["a", "b", "c"],
        ...                     images=np.zeros((3, 1, 4, 4), dtype="float32"))
        >>> emb.images(["c", "a"]).shape
        (2, 1, 4, 4)
        """
        if self.row_images is None:
            raise DataError("these embeddings carry no images (embed() keeps a handle to the "
                            "dataset; saved embeddings do not); attach them with "
                            "emb.attach_images(dataset)")
        return self.row_images.get(np.atleast_1d(self.index_of(list(ids))))

    def _rows_by_id(self) -> pd.Series:
        # cached for the arrays it was computed from (held here, so never reused)
        cached = getattr(self, "_row_lookup", None)
        if cached is None or cached[0] is not self.ids or cached[1] is not self.slice_index:
            cached = (self.ids, self.slice_index, middle_rows(self.ids, self.slice_index))
            self._row_lookup = cached
        return cached[2]

    # -- aggregation -------------------------------------------------------------------
    def aggregate(self, combine: str = "concat", out: str | os.PathLike | None = None
                  ) -> Embeddings:
        """Combine the rows of each subject into one row.

        Parameters
        ----------
        combine : {"concat", "mean"}, default "concat"
            ``"concat"`` concatenates a subject's slice embeddings ordered by
            :attr:`slice_index` (the paper's subject embedding; every subject must have
            the same number of slices), giving ``n_slices * latent_dim`` columns;
            ``"mean"`` averages them.
        out : str or os.PathLike, optional
            Write the result into this folder as a memory-map (see :meth:`save`).

        Returns
        -------
        Embeddings
            One row per subject, in order of first appearance; the metadata keeps the
            columns that are constant within every subject.

        Raises
        ------
        ValueError
            (as :class:`latentaudit.errors.DataError`) for ``"concat"`` when subjects
            have different numbers of slices or repeat a slice index.

        Examples
        --------
        >>> import numpy as np
        >>> from latentaudit import Embeddings
        >>> emb = Embeddings(np.arange(8, dtype="float32").reshape(4, 2),
        ...                  ids=["a", "a", "b", "b"], slice_index=[1, 0, 0, 1])
        >>> emb.aggregate("concat").z
        array([[2., 3., 0., 1.],
               [4., 5., 6., 7.]], dtype=float32)
        """
        plan = _AggregationPlan.build(self.ids, self.slice_index, combine)
        target = plan.allocate(self.latent_dim, out)
        step = 65536
        for start in range(0, len(self), step):
            stop = min(start + step, len(self))
            plan.write(target, np.arange(start, stop),
                       np.asarray(self.z[start:stop], dtype=np.float32))
        provenance = dict(self.provenance)
        provenance["aggregate"] = plan.describe()
        images = None
        if self.row_images is not None:
            # a subject is shown by the image of its middle slice
            images = self.row_images.subset(self.index_of(list(plan.subjects)))
        result = Embeddings(target, ids=plan.subjects,
                            metadata=plan.subject_metadata(self.metadata),
                            provenance=provenance, id_column=self.id_column, images=images)
        if out is not None:
            finish_streamed(result, out)
        return result



def _to_numpy(z) -> np.ndarray:
    try:
        import torch

        if isinstance(z, torch.Tensor):
            return z.detach().float().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return np.asarray(z)
