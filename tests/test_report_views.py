"""Tests of the report's interactive views, Python side (latentaudit.report._views): what
the page carries. The script that draws them is tested in a real browser in
tests/test_report_browser.py."""

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest

from latentaudit.audit import Delineation
from latentaudit.audit._delineation import ids_fingerprint, map_fingerprint
from latentaudit.errors import ConfigError, DataError, InputShapeError, InputTypeError
from latentaudit.report import AuditReport, CurveView, MapView, ReportSection, render_html
from latentaudit.report._views import views_assets


def _array(b64: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype=dtype)


def _embedded(page: str) -> list[dict]:
    blocks = re.findall(r'<script type="application/json" class="la-data">(.*?)</script>',
                        page, re.S)
    return [json.loads(block) for block in blocks]


@pytest.fixture
def table():
    return pd.DataFrame({
        "subject": [f"s{i}" for i in range(6)],
        "site": ["A", "B", None, "A", "C", "B"],
        "age": [31.5, 40.0, np.nan, 52.25, 60.0, 70.0],
        "scanner": ["x1", "x2", "x3", "x4", "x5", "x6"],  # a distinct text per row
        "visits": [1, 2, 1, 3, 2, 1],  # few integers: categories
    })


def test_map_payload_encodes_every_column(table):
    xy = np.arange(12, dtype=np.float64).reshape(6, 2) / 7
    view = MapView(xy, table["subject"], table)
    payload = view.payload()
    assert payload["kind"] == "map" and payload["n"] == 6
    np.testing.assert_array_equal(_array(payload["x"], "<f4"), xy[:, 0].astype(np.float32))
    np.testing.assert_array_equal(_array(payload["y"], "<f4"), xy[:, 1].astype(np.float32))
    assert payload["ids"] == list(table["subject"])
    columns = {c["name"]: c for c in payload["columns"]}
    assert list(columns) == ["site", "age", "scanner", "visits"]  # the id column is the id
    site = columns["site"]
    assert site["kind"] == "category" and site["levels"] == ["A", "B", "C"]
    assert _array(site["codes"], "<u2").tolist() == [0, 1, 65535, 0, 2, 1]
    assert len(site["colours"]) == 3 and site["colour"]
    age = columns["age"]
    assert age["kind"] == "number" and (age["min"], age["max"]) == (31.5, 70.0)
    np.testing.assert_array_equal(_array(age["values"], "<f4"),
                                  table["age"].to_numpy(dtype=np.float32))
    assert columns["scanner"]["kind"] == "text" and not columns["scanner"]["colour"]
    assert columns["visits"]["kind"] == "category"
    assert payload["colour_by"] == "site"
    assert len(payload["lut"]) == 256 * 6
    assert payload["identity"]["map"]["fingerprint"] == map_fingerprint(xy)
    assert payload["identity"]["embeddings"]["ids_fingerprint"] == ids_fingerprint(
        table["subject"])
    assert "thumbs" not in payload and "synthetic" not in payload


def test_many_categories_are_lumped():
    values = [f"c{i % 30:02d}" for i in range(300)]
    view = MapView(np.zeros((300, 2)), range(300), pd.DataFrame({"scanner": values}))
    column = view.payload()["columns"][0]
    assert len(column["levels"]) == 20 and column["levels"][-1] == "other"
    codes = _array(column["codes"], "<u2")
    assert set(codes.tolist()) == set(range(20))


def test_layers_highlights_synthetic_and_images(table):
    xy = np.random.default_rng(0).normal(size=(6, 2))
    images = np.random.default_rng(1).normal(size=(6, 1, 16, 16)).astype(np.float32)
    view = MapView(
        xy, table["subject"], table, layers={"cluster": [0, 0, 1, 1, -1, 1]},
        highlights={"issues": pd.DataFrame({"index": [4, 1], "note": ["given B", None]}),
                    "mask": np.array([True, False, False, False, False, True]),
                    "rows": [2]},
        synthetic=pd.DataFrame({"parent_a": [0, 3], "parent_b": [1, 5],
                                "weight": [0.5, 0.25]}),
        images=images, colour_by="age", thumbnail_size=16)
    payload = view.payload()
    assert payload["colour_by"] == "age"
    cluster = payload["columns"][-1]
    assert cluster["name"] == "cluster" and cluster["group"] == "audit"
    issues, mask, rows = payload["highlights"]
    assert _array(issues["rows"], "<u4").tolist() == [4, 1]
    assert issues["notes"] == ["given B", None]
    assert _array(mask["rows"], "<u4").tolist() == [0, 5] and mask["notes"] == []
    assert _array(rows["rows"], "<u4").tolist() == [2]
    assert issues["colour"] != mask["colour"]
    synthetic = payload["synthetic"]
    assert synthetic["n"] == 2
    assert _array(synthetic["b"], "<u4").tolist() == [1, 5]
    np.testing.assert_allclose(_array(synthetic["weight"], "<f4"), [0.5, 0.25])
    assert payload["thumbs"]["size"] == 16 and len(payload["thumbs"]["sheets"]) == 1
    assert view.payload() is payload  # made once


def test_from_audit_turns_findings_and_issues_into_layers(table):
    labels = np.array([0, 0, 1, 1, -1, 1])
    findings = pd.DataFrame({
        "kind": ["cluster", "probe", "cluster", "cluster"], "cluster": [1, np.nan, 0, 1],
        "column": ["site", "site", "age", "site"], "q_value": [0.001, 0.01, 0.2, 0.04],
        "description": ["cluster 1: site = B", "probe of site", "cluster 0: age",
                        "cluster 1: again"]})
    issues = {"site": pd.DataFrame({"index": [1, 3, 0], "given": ["B", "A", "A"],
                                    "suggested": ["A", "B", "A"], "score": [0.9, 0.8, 0.1],
                                    "flagged": [True, True, False]})}
    outliers = pd.DataFrame({"index": [5], "score": [4.25]})
    view = MapView.from_audit(np.zeros((6, 2)), table["subject"], table, labels=labels,
                              findings=findings, label_issues=issues, outliers=outliers,
                              z=np.ones((6, 3), dtype=np.float32), method="tsne",
                              top_findings=1, source={"report": "r"})
    payload = view.payload()
    names = [c["name"] for c in payload["columns"]]
    assert names[-2:] == ["cluster", "finding 1: cluster 1: site = B"]
    cluster = payload["columns"][-2]
    assert cluster["levels"] == ["0", "1", "none"]
    finding = payload["columns"][-1]
    codes = _array(finding["codes"], "<u2")
    # site inside cluster 1 (rows 2, 3, 5: None, A, B), missing elsewhere
    assert [finding["levels"][c] if c != 65535 else None for c in codes] == [
        None, None, None, "A", None, "B"]
    issue, outlier = payload["highlights"]
    assert issue["name"] == "label issues: site"
    assert _array(issue["rows"], "<u4").tolist() == [1, 3]
    assert issue["notes"][0] == "site given B, suggested A (score 0.90)"
    assert outlier["notes"] == ["outlier score 4.25"]
    identity = payload["identity"]
    assert identity["map"]["method"] == "tsne"
    assert identity["embeddings"]["fingerprint"] is not None
    assert payload["source"] == {"report": "r"}


def test_map_errors(table):
    xy = np.zeros((6, 2))
    with pytest.raises(DataError, match="got 5 ids for 6 map points"):
        MapView(xy, table["subject"][:5])
    with pytest.raises(DataError, match="non-finite"):
        MapView(np.full((6, 2), np.nan), table["subject"])
    with pytest.raises(DataError, match="metadata has 3 rows"):
        MapView(xy, table["subject"], table.head(3))
    with pytest.raises(DataError, match="layer 'cluster' has 2 values"):
        MapView(xy, table["subject"], layers={"cluster": [1, 2]})
    with pytest.raises(ConfigError, match="did you mean 'site'"):
        MapView(xy, table["subject"], table, colour_by="sitee").payload()
    with pytest.raises(DataError, match="outside"):
        MapView(xy, table["subject"], highlights={"x": [7]}).payload()
    with pytest.raises(DataError, match="'index' column"):
        MapView(xy, table["subject"], highlights={"x": pd.DataFrame({"row": [1]})}).payload()
    with pytest.raises(InputShapeError, match="mask of shape"):
        MapView(xy, table["subject"], highlights={"x": np.ones(3, dtype=bool)}).payload()
    with pytest.raises(InputTypeError, match="integer row positions"):
        MapView(xy, table["subject"], highlights={"x": [0.5]}).payload()
    with pytest.raises(DataError, match="provenance columns"):
        MapView(xy, table["subject"], synthetic=pd.DataFrame({"parent_a": [0]})).payload()
    with pytest.raises(DataError, match="parents must be rows"):
        MapView(xy, table["subject"], synthetic=pd.DataFrame(
            {"parent_a": [0], "parent_b": [9], "weight": [0.5]})).payload()


def test_curve_view_payload_and_errors():
    view = CurveView([{"name": "known", "x": [0, 0.5, 1], "y": [0.1, np.nan, 0.9],
                       "lower": [0, 0.2, 0.8], "upper": [0.2, 0.7, 1.0],
                       "notes": ["a", "b", "c"]},
                      {"x": [0, 1], "y": [0, 1]}],
                     "strength", "detected", markers={"limit": 0.4}, y_range=(0, 1))
    payload = view.payload()
    known, second = payload["series"]
    assert known["y"] == [0.1, None, 0.9] and known["notes"] == ["a", "b", "c"]
    assert second["name"] == "series 2" and second["colour"] != known["colour"]
    assert payload["markers"] == {"limit": 0.4} and payload["y_range"] == [0, 1]
    json.dumps(payload, allow_nan=False)
    with pytest.raises(InputTypeError, match="'x' and 'y'"):
        CurveView([{"x": [1]}]).payload()
    with pytest.raises(InputShapeError, match="one length"):
        CurveView([{"x": [1, 2], "y": [1]}]).payload()


def test_page_embeds_the_script_once_and_nothing_from_the_network(table):
    hostile = table.copy()
    hostile.loc[0, "scanner"] = "</script><script>alert(1)</script>"
    views = [MapView(np.zeros((6, 2)), hostile["subject"], hostile),
             CurveView([{"x": [0, 1], "y": [0, 1]}])]
    report = AuditReport("views", [ReportSection("map", "Map", views=views[:1]),
                                   ReportSection("curves", "Curves", views=views[1:])])
    page = render_html(report)
    assert page.count("<script>") == 1  # the script, once, for both views
    assert page.count('class="la-data"') == 2
    assert page.count("</script>") == 3  # the script and the two data blocks
    assert "<noscript>" in page
    # the data survive the escaping that keeps them inside their element
    first = _embedded(page)[0]
    scanner = next(c for c in first["columns"] if c["name"] == "scanner")
    assert scanner["text"][0] == "</script><script>alert(1)</script>"
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", views_assets())
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?:https?:)?//""", page)
    document = report.to_dict()
    assert document["sections"]["map"]["views"] == ["Interactive map"]
    # a report without views has no script at all
    assert "<script" not in render_html(AuditReport("plain", [ReportSection("a", "A")]))


def test_delineation_from_a_payload_matches_the_python_rule(table):
    # what the script exports is a Delineation; its identity comes from the payload
    xy = np.random.default_rng(3).uniform(0, 10, size=(6, 2))
    payload = MapView(xy, table["subject"], table).payload()
    square = [[0, 0], [6, 0], [6, 6], [0, 6]]
    record = {"format": "latentaudit.delineation", "version": 1, **payload["identity"],
              "outside": 0, "groups": [{"label": 1, "polygons": [square], "ids": None}],
              "source": payload["source"]}
    drawn = Delineation.from_dict(record)
    assert drawn.map_fingerprint == payload["identity"]["map"]["fingerprint"]
    assert drawn.check(xy=xy, ids=table["subject"]) is drawn
