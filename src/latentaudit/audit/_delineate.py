"""Manual delineation: polygons drawn on a 2-D map become cluster labels.

The paper delineates the clusters that should not be there by hand on a t-SNE map;
:func:`delineate` turns such polygons into one label per point, to hand to
:class:`~latentaudit.audit.ClusterAuditor` (``fit(z, metadata, labels=...)``) or to the
Explainer.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import InputShapeError, InputTypeError

__all__ = ["delineate", "points_in_polygon"]


def _as_polygon(polygon, name: str) -> np.ndarray:
    try:
        vertices = np.asarray(polygon, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputTypeError(
            f"{name} must be an array-like of (x, y) vertices, got {type(polygon).__name__}"
        ) from err
    if vertices.ndim != 2 or vertices.shape[1] != 2 or vertices.shape[0] < 3:
        raise InputShapeError(
            f"{name} must have shape (n_vertices >= 3, 2), got {vertices.shape}"
        )
    if not np.all(np.isfinite(vertices)):
        raise InputShapeError(f"{name} has non-finite vertices")
    if np.allclose(vertices[0], vertices[-1]):
        vertices = vertices[:-1]  # a closed ring repeats its first vertex
    return vertices


def points_in_polygon(xy, polygon) -> np.ndarray:
    """Which points lie inside a polygon (its boundary counts as inside).

    Uses the even-odd rule, so a self-intersecting polygon's doubly covered parts count
    as outside, as in most drawing tools.

    Parameters
    ----------
    xy : array-like of shape (n_points, 2)
        The points.
    polygon : array-like of shape (n_vertices, 2)
        The vertices in order (closing the ring is optional).

    Returns
    -------
    numpy.ndarray of bool, shape (n_points,)

    Raises
    ------
    ValueError
        (as :class:`~latentaudit.errors.InputShapeError`) for wrongly shaped input.

    Examples
    --------
    >>> points_in_polygon([[0.5, 0.5], [2, 2], [1, 0.5]], [[0, 0], [1, 0], [1, 1], [0, 1]])
    array([ True, False,  True])
    """
    points = _as_points(xy)
    vertices = _as_polygon(polygon, "polygon")
    px, py = points[:, 0], points[:, 1]
    inside = np.zeros(points.shape[0], dtype=bool)
    on_edge = np.zeros(points.shape[0], dtype=bool)
    scale = max(float(np.ptp(vertices, axis=0).max()), 1e-300)
    tol = 1e-12 * scale
    x1, y1 = vertices[:, 0], vertices[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    for a, b, c, d in zip(x1, y1, x2, y2, strict=True):
        # a horizontal ray to the right crosses this edge
        straddles = (b > py) != (d > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = a + (py - b) * (c - a) / (d - b)
        inside ^= straddles & (px < x_cross)
        cross = (c - a) * (py - b) - (d - b) * (px - a)
        length = np.hypot(c - a, d - b)
        within = (
            (px >= min(a, c) - tol)
            & (px <= max(a, c) + tol)
            & (py >= min(b, d) - tol)
            & (py <= max(b, d) + tol)
        )
        on_edge |= within & (np.abs(cross) <= tol * max(length, 1e-300))
    return inside | on_edge


def _as_points(xy) -> np.ndarray:
    try:
        points = np.asarray(xy, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputTypeError(
            f"xy must be an array-like of shape (n_points, 2), got {type(xy).__name__}"
        ) from err
    if points.ndim != 2 or points.shape[1] != 2:
        raise InputShapeError(f"xy must have shape (n_points, 2), got {points.shape}")
    return points


def delineate(xy, polygons, *, outside: int = -1) -> np.ndarray:
    """Label the points of a 2-D map by the polygon that contains them.

    Parameters
    ----------
    xy : array-like of shape (n_points, 2)
        The map, e.g. ``Projector().fit_transform(z)``.
    polygons : sequence of array-like, or mapping of int to array-like
        Each polygon's vertices, shape (n_vertices, 2).  A sequence labels points inside
        its ``i``-th polygon ``i``; a mapping labels them with the key.  Where polygons
        overlap, the first one (in order) wins.
    outside : int, default -1
        The label of points in no polygon.

    Returns
    -------
    numpy.ndarray of int64, shape (n_points,)

    Raises
    ------
    TypeError
        (as :class:`~latentaudit.errors.InputTypeError`) when ``polygons`` is neither a
        sequence nor a mapping, or a key is not an integer.
    ValueError
        (as :class:`~latentaudit.errors.InputShapeError`) for wrongly shaped input, or a
        label equal to ``outside``.

    Examples
    --------
    >>> square = [[0, 0], [1, 0], [1, 1], [0, 1]]
    >>> delineate([[0.5, 0.5], [3, 3]], [square])
    array([ 0, -1])
    """
    points = _as_points(xy)
    if isinstance(polygons, Mapping):
        items = list(polygons.items())
    elif isinstance(polygons, (list, tuple)) or (
        isinstance(polygons, np.ndarray) and polygons.ndim == 3
    ):
        items = list(enumerate(polygons))
    else:
        raise InputTypeError(
            "polygons must be a sequence of (n_vertices, 2) arrays or a mapping of int "
            f"labels to them, got {type(polygons).__name__}"
        )
    labels = np.full(points.shape[0], int(outside), dtype=np.int64)
    unassigned = np.ones(points.shape[0], dtype=bool)
    for label, polygon in items:
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise InputTypeError(f"polygon labels must be integers, got {label!r}")
        if int(label) == int(outside):
            raise InputShapeError(
                f"polygon label {label} equals the label of points outside ({outside})"
            )
        _as_polygon(polygon, f"polygon {label!r}")
        hit = unassigned.copy()
        hit[unassigned] = points_in_polygon(points[unassigned], polygon)
        labels[hit] = int(label)
        unassigned &= ~hit
    return labels
