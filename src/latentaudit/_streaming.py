"""Statistics of large embeddings computed a block of rows at a time.

A million 512-dim float32 embeddings take 2 GB; scikit-learn's ``PCA`` copies and centres
its input (two more copies) before it computes anything.  Here the mean and the covariance
are accumulated block by block in float64 and the rows are projected block by block, so
that a memory-mapped input (``numpy.load(path, mmap_mode="r")``) is read, never copied:
the memory used besides the input is one block and the results.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError

__all__ = ["BLOCK_ROWS", "StreamingPCA", "project_rows", "row_blocks"]

# rows per block: 16,384 x 512 float64 is 64 MB
BLOCK_ROWS = 16_384


def row_blocks(n_rows: int, block_rows: int = BLOCK_ROWS):
    """Yield ``slice`` objects that cover ``range(n_rows)`` in blocks of ``block_rows``.

    Parameters
    ----------
    n_rows : int
        Number of rows.
    block_rows : int, default 16384
        Rows per block (the last block may be shorter).

    Yields
    ------
    slice

    Examples
    --------
    >>> [(s.start, s.stop) for s in row_blocks(5, 2)]
    [(0, 2), (2, 4), (4, 5)]
    """
    block_rows = max(1, int(block_rows))
    for start in range(0, int(n_rows), block_rows):
        yield slice(start, min(start + block_rows, int(n_rows)))


class StreamingPCA:
    """Principal component analysis from block-wise sums (exact, not incremental).

    The mean and the covariance matrix are summed over blocks of rows in float64; the
    components are the covariance's leading eigenvectors, signed like scikit-learn's
    (the largest entry of each component positive).  The result is the exact PCA of the
    whole input, as scikit-learn's ``PCA`` computes it with its covariance solver, while
    only one block of rows is held in memory at a time.

    Parameters
    ----------
    n_components : int
        Number of components kept.
    block_rows : int, default 16384
        Rows read at a time.

    Attributes
    ----------
    mean_ : numpy.ndarray of shape (n_features,)
        The column means (float64).
    components_ : numpy.ndarray of shape (n_components, n_features)
        The principal axes, by decreasing variance (float64).
    explained_variance_ : numpy.ndarray of shape (n_components,)
        Variance along each axis (denominator ``n_samples - 1``).
    explained_variance_ratio_ : numpy.ndarray of shape (n_components,)
        Fraction of the total variance along each axis.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> x = np.random.default_rng(0).normal(size=(300, 6)) * [5, 4, 3, 2, 1, 1]
    >>> ours = StreamingPCA(2, block_rows=64).fit(x)
    >>> theirs = PCA(2).fit(x)
    >>> bool(np.allclose(np.abs(ours.components_), np.abs(theirs.components_)))
    True
    >>> bool(np.allclose(ours.explained_variance_ratio_, theirs.explained_variance_ratio_))
    True
    """

    def __init__(self, n_components: int, *, block_rows: int = BLOCK_ROWS) -> None:
        self.n_components = n_components
        self.block_rows = block_rows

    def fit(self, x) -> StreamingPCA:
        """Compute the components of the rows of ``x``.

        Parameters
        ----------
        x : array-like of shape (n_samples, n_features)
            The data; a memory-map is read block by block.

        Returns
        -------
        StreamingPCA
            ``self``.

        Raises
        ------
        ValueError
            (as :class:`~latentaudit.errors.ConfigError`) when ``n_components`` is not
            between 1 and ``min(n_samples, n_features)``.
        """
        n, d = x.shape
        k = self.n_components
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not (
                1 <= k <= min(n, d)):
            raise ConfigError(f"n_components must be an integer between 1 and "
                              f"min(n_samples, n_features) = {min(n, d)}, got {k!r}")
        total = np.zeros(d)
        for rows in row_blocks(n, self.block_rows):
            total += np.asarray(x[rows], dtype=np.float64).sum(axis=0)
        mean = total / n
        found = self._from_gram(x, mean) if n < d and k <= n - 2 else None
        if found is None:
            scatter = np.zeros((d, d))
            for rows in row_blocks(n, self.block_rows):
                block = np.asarray(x[rows], dtype=np.float64) - mean
                scatter += block.T @ block
            eigenvalues, eigenvectors = np.linalg.eigh(scatter / max(n - 1, 1))
            order = np.argsort(eigenvalues)[::-1][:k]
            components = eigenvectors[:, order].T
        else:
            eigenvalues, components, order = found
        # scikit-learn's sign convention: the largest entry of each component is positive
        largest = np.argmax(np.abs(components), axis=1)
        components *= np.sign(components[np.arange(k), largest])[:, None]
        variances = np.clip(eigenvalues[order], 0.0, None)
        self.mean_ = mean
        self.components_ = components
        self.explained_variance_ = variances
        self.explained_variance_ratio_ = variances / max(np.clip(eigenvalues, 0, None).sum(),
                                                         np.finfo(float).tiny)
        return self

    def _from_gram(self, x, mean: np.ndarray):
        """With fewer rows than features: the components from the rows' Gram matrix
        (``n x n``, the same non-zero eigenvalues as the ``d x d`` scatter; a component is
        ``X' u / sqrt(lambda)``), in O(n^2 d) instead of the scatter's O(d^3) eigensolver.
        The centred rows take no more memory than the scatter would.  None when a wanted
        eigenvalue is numerically zero."""
        n, k = x.shape[0], self.n_components
        centred = np.empty((n, x.shape[1]))
        for rows in row_blocks(n, self.block_rows):
            centred[rows] = np.asarray(x[rows], dtype=np.float64) - mean
        values, vectors = np.linalg.eigh(centred @ centred.T)
        order = np.argsort(values)[::-1][:k]
        top = values[order]
        if not top[-1] > max(top[0], np.finfo(float).tiny) * 1e-10:
            return None
        components = (centred.T @ vectors[:, order] / np.sqrt(top)).T
        return values / max(n - 1, 1), components, order

    def transform(self, x, dtype=np.float32) -> np.ndarray:
        """Coordinates of the rows of ``x`` on the components, block by block.

        Parameters
        ----------
        x : array-like of shape (n_samples, n_features)
            The data.
        dtype : numpy dtype, default float32
            Dtype of the result.

        Returns
        -------
        numpy.ndarray of shape (n_samples, n_components)
        """
        return project_rows(x, self.mean_, self.components_, dtype=dtype,
                            block_rows=self.block_rows)


def project_rows(x, mean, components, *, dtype=np.float32,
                 block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """``(x - mean) @ components.T``, a block of rows at a time.

    Parameters
    ----------
    x : array-like of shape (n_samples, n_features)
        The data (a memory-map is read block by block).
    mean : numpy.ndarray of shape (n_features,)
        Subtracted from every row.
    components : numpy.ndarray of shape (n_components, n_features)
        The axes.
    dtype : numpy dtype, default float32
        Dtype of the computation and of the result.
    block_rows : int, default 16384
        Rows per block.

    Returns
    -------
    numpy.ndarray of shape (n_samples, n_components)

    Examples
    --------
    >>> import numpy as np
    >>> project_rows(np.eye(3), np.zeros(3), np.eye(3)[:2], block_rows=2)
    array([[1., 0.],
           [0., 1.],
           [0., 0.]], dtype=float32)
    """
    mean = np.asarray(mean).astype(dtype)
    components = np.asarray(components).astype(dtype)
    out = np.empty((x.shape[0], components.shape[0]), dtype=dtype)
    for rows in row_blocks(x.shape[0], block_rows):
        out[rows] = (np.asarray(x[rows], dtype=dtype) - mean) @ components.T
    return out
