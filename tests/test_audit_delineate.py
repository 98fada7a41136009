"""Tests of manual delineation: polygons drawn on a map become labels; delineation files
drawn on a report's map are checked against the map and embeddings they were drawn on."""

import json

import numpy as np
import pytest
from matplotlib.path import Path

from latentaudit import LatentAuditError
from latentaudit.audit import Delineation, delineate, points_in_polygon
from latentaudit.audit._delineation import (
    DELINEATION_FORMAT,
    embeddings_fingerprint,
    ids_fingerprint,
    map_fingerprint,
)
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


# -- delineations drawn on a report's map --------------------------------------------------
def _map(n: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 10, size=(n, 2)).astype(np.float32)
    ids = [f"s{i:03d}" for i in range(n)]
    z = rng.normal(size=(n, 4)).astype(np.float32)
    return xy, ids, z


def test_fingerprints():
    xy, ids, z = _map()
    assert map_fingerprint(xy) == map_fingerprint(xy.astype(np.float64))
    moved = xy.copy()
    moved[7, 1] = np.nextafter(moved[7, 1], np.float32(20))  # one coordinate, one ulp
    assert map_fingerprint(moved) != map_fingerprint(xy)
    assert map_fingerprint(xy[::-1]) != map_fingerprint(xy)  # the map is ordered
    assert ids_fingerprint(ids[::-1]) == ids_fingerprint(ids)  # the subjects are a set
    assert ids_fingerprint(ids[:-1]) != ids_fingerprint(ids)
    assert embeddings_fingerprint(z, chunk_rows=7) == embeddings_fingerprint(z)
    assert embeddings_fingerprint(z[:, :3]) != embeddings_fingerprint(z)
    assert len(map_fingerprint(xy)) == len(ids_fingerprint(ids)) == 16


def test_delineation_round_trip_and_labels(tmp_path):
    xy, ids, z = _map()
    drawn = Delineation.draw(xy, ids, {1: SQUARE, 2: [TRIANGLE, [[8, 8], [10, 8], [10, 10]]]},
                             outside=0, z=z, provenance={"report": "demo"})
    expected = delineate(xy, {1: SQUARE, 2: [TRIANGLE, [[8, 8], [10, 8], [10, 10]]]},
                         outside=0)
    assert {k: len(v) for k, v in drawn.selected.items()} == {
        1: int(np.sum(expected == 1)), 2: int(np.sum(expected == 2))}
    path = drawn.write(tmp_path / "delineation.json")
    record = json.loads(path.read_text())
    assert record["format"] == DELINEATION_FORMAT
    assert record["map"]["fingerprint"] == map_fingerprint(xy)
    assert record["embeddings"]["fingerprint"] == embeddings_fingerprint(z)
    assert [len(g["polygons"]) for g in record["groups"]] == [1, 2]
    read = Delineation.read(path)
    assert read.selected == drawn.selected and read.outside == 0
    assert read.provenance["report"] == "demo"
    # from the map (polygons) and from the ids (selection): the same labels
    np.testing.assert_array_equal(delineate(xy, path, ids=ids), expected)
    np.testing.assert_array_equal(delineate(xy, str(path)), expected)
    order = np.random.default_rng(1).permutation(len(ids))
    np.testing.assert_array_equal(read.labels(np.asarray(ids)[order], z=None), expected[order])
    np.testing.assert_array_equal(read.labels(ids, z=z), expected)
    # the rest left out instead of being group 0
    np.testing.assert_array_equal(delineate(xy, read, outside=-1),
                                  np.where(expected == 0, -1, expected))


def test_a_delineation_is_refused_on_another_map_or_other_embeddings(tmp_path):
    xy, ids, z = _map()
    path = Delineation.draw(xy, ids, {1: SQUARE}, z=z).write(tmp_path / "d.json")
    other_xy, other_ids, other_z = _map(seed=1)
    with pytest.raises(DataError, match="drawn on another map"):
        delineate(other_xy, path)
    with pytest.raises(DataError, match="drawn on another map"):
        delineate(xy[::-1], path)  # the same points in another order are another map
    read = Delineation.read(path)
    renamed = [f"x{i}" if i in read.selected[1] else i for i in ids]
    with pytest.raises(DataError, match="drawn on other subjects.*not among them"):
        read.labels(renamed)
    with pytest.raises(DataError, match="other subjects"):
        delineate(xy, read, ids=[f"t{i}" for i in other_ids])
    with pytest.raises(DataError, match="other embeddings"):
        read.labels(ids, z=other_z)
    assert isinstance(DataError("x"), LatentAuditError)


def test_an_edited_selection_is_refused(tmp_path):
    xy, ids, _ = _map()
    record = Delineation.draw(xy, ids, {1: SQUARE}).to_dict()
    inside = record["groups"][0]["ids"]
    record["groups"][0]["ids"] = inside[:-1]  # one subject dropped by hand
    edited = Delineation.from_dict(record)
    with pytest.raises(DataError, match="select 1 subject"):
        delineate(xy, edited, ids=ids)
    with pytest.raises(DataError, match="select 1 subject"):
        delineate(xy, edited)


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(format="something"), "not a latentaudit delineation"),
    (lambda r: r.update(version=99), "version 99"),
    (lambda r: r["map"].pop("fingerprint"), "incomplete or malformed"),
    (lambda r: r["map"].update(fingerprint=""), "does not record the fingerprints"),
    (lambda r: r["groups"].append(dict(r["groups"][0])), "lists a group label twice"),
    (lambda r: r["groups"][0].update(polygons=[[[0, 0], [1, 1]]]), "n_vertices >= 3"),
    (lambda r: r.update(outside=1), "equals the label of points outside"),
])
def test_malformed_delineation_files(tmp_path, change, message):
    xy, ids, _ = _map()
    record = Delineation.draw(xy, ids, {1: SQUARE}).to_dict()
    change(record)
    path = tmp_path / "d.json"
    path.write_text(json.dumps(record))
    with pytest.raises(DataError, match=message):
        Delineation.read(path)


def test_unreadable_delineation_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        Delineation.read(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        Delineation.read(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(DataError, match="not a latentaudit delineation"):
        Delineation.read(tmp_path / "list.json")
