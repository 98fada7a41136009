"""Tests of manual delineation: polygons drawn on a map become labels."""

import numpy as np
import pytest
from matplotlib.path import Path

from latentaudit.audit import delineate, points_in_polygon
from latentaudit.errors import DataError, InputShapeError, InputTypeError

SQUARE = [[0, 0], [4, 0], [4, 4], [0, 4]]
TRIANGLE = [[3, 3], [8, 3], [3, 8]]  # overlaps the square's corner [3, 4] x [3, 4]
L_SHAPE = [[0, 0], [2, 0], [2, 1], [1, 1], [1, 2], [0, 2]]  # concave


def test_hand_computed_case():
    xy = np.array([
        [1, 1],      # square only
        [3.5, 3.5],  # square and triangle: the first polygon wins
        [5, 4],      # triangle only
        [7, 7],      # outside both (x + y = 14 > 11)
        [4, 2],      # on the square's right edge: inside
        [-1, 2],     # left of the square
        [5.5, 5.5],  # on the triangle's hypotenuse (x + y = 11): inside
    ])
    labels = delineate(xy, [SQUARE, TRIANGLE])
    np.testing.assert_array_equal(labels, [0, 0, 1, -1, 0, -1, 1])
    # with the polygons swapped the overlap goes to the triangle
    np.testing.assert_array_equal(delineate(xy, [TRIANGLE, SQUARE])[:3], [1, 0, 0])


def test_mapping_labels_and_outside_value():
    xy = [[1, 1], [6, 4], [9, 9]]
    labels = delineate(xy, {7: SQUARE, 3: TRIANGLE}, outside=0)
    np.testing.assert_array_equal(labels, [7, 3, 0])
    assert labels.dtype == np.int64


def test_concave_polygon_and_closed_ring():
    xy = [[0.5, 0.5], [1.5, 0.5], [1.5, 1.5], [0.5, 1.5]]
    expected = [True, True, False, True]
    np.testing.assert_array_equal(points_in_polygon(xy, L_SHAPE), expected)
    closed = L_SHAPE + [L_SHAPE[0]]
    np.testing.assert_array_equal(points_in_polygon(xy, closed), expected)


def test_interior_points_agree_with_matplotlib():
    rng = np.random.default_rng(0)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 12))
    radii = rng.uniform(1, 3, 12)
    polygon = np.c_[radii * np.cos(angles), radii * np.sin(angles)]  # star-shaped
    xy = rng.uniform(-3, 3, size=(2000, 2))
    ours = points_in_polygon(xy, polygon)
    reference = Path(polygon).contains_points(xy)
    assert 200 < ours.sum() < 1800
    np.testing.assert_array_equal(ours, reference)


def test_errors():
    with pytest.raises(InputShapeError, match=r"xy must have shape \(n_points, 2\)"):
        delineate(np.zeros((3, 3)), [SQUARE])
    with pytest.raises(InputShapeError, match="n_vertices >= 3"):
        delineate(np.zeros((3, 2)), [[[0, 0], [1, 1]]])
    with pytest.raises(InputTypeError, match="polygons must be a sequence"):
        delineate(np.zeros((3, 2)), 7)
    with pytest.raises(DataError, match="delineation file 'square' does not exist"):
        delineate(np.zeros((3, 2)), "square")
    with pytest.raises(InputShapeError, match="equals the label of points outside"):
        delineate(np.zeros((3, 2)), {-1: SQUARE})
    with pytest.raises(InputTypeError, match="labels must be integers"):
        delineate(np.zeros((3, 2)), {"a": SQUARE})
