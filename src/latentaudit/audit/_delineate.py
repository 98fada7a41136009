"""Manual delineation: polygons drawn on a 2-D map become cluster labels.

The paper delineates the clusters that should not be there by hand on a t-SNE map;
:func:`delineate` turns such polygons into one label per point, to hand to
:class:`~latentaudit.audit.ClusterAuditor` (``fit(z, metadata, labels=...)``) or to the
Explainer.

Polygons drawn on the report's interactive map are exported as a small JSON file, read as
a :class:`~latentaudit.audit.Delineation`, which :func:`delineate` accepts too.
"""

from __future__ import annotations

import os
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


def _as_polygons(value, name: str) -> list[np.ndarray]:
    """One polygon ``(n_vertices, 2)`` or several (a group drawn as more than one shape)."""
    if isinstance(value, (str, bytes)):
        raise InputTypeError(f"{name} must be an array-like of (x, y) vertices, got a string")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = None  # ragged: several polygons with different numbers of vertices
    if array is not None and array.ndim == 2:
        return [_as_polygon(array, name)]
    if array is not None and array.ndim != 3:
        raise InputShapeError(f"{name} must have shape (n_vertices >= 3, 2) or be a list of "
                              f"such polygons, got an array of shape {array.shape}")
    try:
        parts = list(value)
    except TypeError as err:
        raise InputTypeError(f"{name} must be an array-like of (x, y) vertices, got "
                             f"{type(value).__name__}") from err
    if not parts:
        raise InputShapeError(f"{name} holds no polygon")
    return [_as_polygon(part, f"{name}[{k}]") for k, part in enumerate(parts)]


def _label_by_groups(points: np.ndarray, groups, outside: int) -> np.ndarray:
    """Labels from ``(label, polygons)`` pairs in order: the first group containing a point
    wins; a point is in a group when it is in any of its polygons."""
    labels = np.full(points.shape[0], int(outside), dtype=np.int64)
    unassigned = np.ones(points.shape[0], dtype=bool)
    for label, polygons in groups:
        hit = np.zeros(points.shape[0], dtype=bool)
        for polygon in polygons:
            free = unassigned & ~hit
            hit[free] = points_in_polygon(points[free], polygon)
        labels[hit] = int(label)
        unassigned &= ~hit
    return labels


def _check_label(label, outside: int) -> int:
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
        raise InputTypeError(f"polygon labels must be integers, got {label!r}")
    if int(label) == int(outside):
        raise InputShapeError(
            f"polygon label {label} equals the label of points outside ({outside})"
        )
    return int(label)


def delineate(xy, polygons, *, ids=None, outside: int | None = None) -> np.ndarray:
    """Label the points of a 2-D map by the polygon that contains them.

    Parameters
    ----------
    xy : array-like of shape (n_points, 2)
        The map, e.g. ``Projector().fit_transform(z)`` or the ``map_x``/``map_y`` columns
        of a report's ``subjects.csv``.
    polygons : sequence, mapping, Delineation, str or os.PathLike
        Each group's polygon, shape (n_vertices, 2), or a list of polygons when a group
        was drawn as several shapes.  A sequence labels points inside its ``i``-th entry
        ``i``; a mapping labels them with the key.  Where groups overlap, the first one
        (in order) wins.  A :class:`Delineation`, or the path of a delineation file
        exported from a report's map, is first checked against ``xy`` (and ``ids``): it is
        refused unless it was drawn on this map.
    ids : sequence of str, optional
        The subject id of every point.  With a delineation, the subjects must be those of
        the map it was drawn on, and the labels must select exactly the ids recorded in
        the file.
    outside : int, optional
        The label of points in no polygon: the delineation's own (``-1`` unless the rest
        was made a group when drawing), else ``-1``.

    Returns
    -------
    numpy.ndarray of int64, shape (n_points,)

    Raises
    ------
    TypeError
        (as :class:`~latentaudit.errors.InputTypeError`) when ``polygons`` is neither a
        sequence, a mapping nor a delineation, or a key is not an integer.
    ValueError
        (as :class:`~latentaudit.errors.InputShapeError`) for wrongly shaped input, or a
        label equal to ``outside``; (as :class:`~latentaudit.errors.DataError`) for a
        delineation drawn on another map or other subjects, or an unreadable file.

    Examples
    --------
    >>> square = [[0, 0], [1, 0], [1, 1], [0, 1]]
    >>> delineate([[0.5, 0.5], [3, 3]], [square])
    array([ 0, -1])

    A delineation remembers the map it was drawn on:

    >>> xy = [[0.5, 0.5], [3.0, 3.0]]
    >>> from latentaudit.audit import Delineation
    >>> drawn = Delineation.draw(xy, ["a", "b"], {1: square}, outside=0)
    >>> delineate(xy, drawn, ids=["a", "b"])
    array([1, 0])
    >>> delineate([[0.5, 0.5], [3.0, 2.0]], drawn)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    latentaudit.errors.DataError: this delineation was drawn on another map: ...
    """
    from ._delineation import Delineation  # the file format builds on this module

    points = _as_points(xy)
    if isinstance(polygons, (str, os.PathLike)):
        polygons = Delineation.read(polygons)
    if isinstance(polygons, Delineation):
        drawn = polygons
        drawn.check(xy=points, ids=ids)
        outside = drawn.outside if outside is None else outside
        labels = _label_by_groups(points, drawn.polygons.items(), int(outside))
        drawn.check_selection(labels, ids, outside=int(outside))
        return labels
    outside = -1 if outside is None else outside
    if isinstance(polygons, Mapping):
        items = list(polygons.items())
    elif isinstance(polygons, (list, tuple)) or (
        isinstance(polygons, np.ndarray) and polygons.ndim == 3
    ):
        items = list(enumerate(polygons))
    else:
        raise InputTypeError(
            "polygons must be a sequence of (n_vertices, 2) arrays, a mapping of int "
            "labels to them, a Delineation or the path of a delineation file, got "
            f"{type(polygons).__name__}"
        )
    groups = [(_check_label(label, outside), _as_polygons(polygon, f"polygon {label!r}"))
              for label, polygon in items]
    return _label_by_groups(points, groups, int(outside))
