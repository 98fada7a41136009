"""Tests of the audit report (latentaudit.report, latentaudit.pipeline), including a real
browser: headless Chromium opens the HTML report and checks that it rendered."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from latentaudit.encoders import PixelPCAEncoder
from latentaudit.errors import ConfigError, DataError
from latentaudit.pipeline import (
    check_audit_options,
    check_metadata,
    merge_options,
    run_audit,
    run_explain,
)
from latentaudit.report import AuditReport, ReportFigure, ReportSection, ReportTable, render_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# the smallest classifier and explanation that still run every step
TINY_EXPLAIN = {"classifier_steps": 4, "batch_size": 16, "widths": [4, 8, 8, 8], "images": 3,
                "counterfactual_images": 2, "counterfactual_points": 3, "clusters": 2}


def _cohort(n: int = 120, size: int = 32, seed: int = 0):
    """Images of a round 'head' from three sites: half from the clean site A, a quarter
    from site B, whose field of view is shifted up, a quarter from site C, with a bright
    bar (a head-rest) along the bottom; sex sets the head's size."""
    rng = np.random.default_rng(seed)
    site = np.array(["A", "A", "B", "C"])[np.arange(n) % 4]
    sex = rng.choice(["F", "M"], size=n)
    age = rng.uniform(20, 80, size=n).round(1)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    images = np.empty((n, 1, size, size), dtype=np.float32)
    for i in range(n):
        radius = size * (0.30 if sex[i] == "F" else 0.36)
        cy = size / 2 - (size * 0.18 if site[i] == "B" else 0.0)
        head = ((yy - cy) ** 2 + (xx - size / 2) ** 2) < radius ** 2
        image = np.where(head, 0.6, -0.8) + rng.normal(0, 0.15, (size, size))
        if site[i] == "C":
            image[-4:-1, 4:-4] = 1.0
        images[i, 0] = image
    metadata = pd.DataFrame({"subject": [f"s{i:03d}" for i in range(n)], "site": site,
                             "sex": sex, "age": age})
    return np.clip(images, -1, 1), metadata


@pytest.fixture(scope="module")
def cohort():
    return _cohort()


@pytest.fixture(scope="module")
def embeddings(cohort):
    from latentaudit.embed import Embeddings

    images, metadata = cohort
    encoder = PixelPCAEncoder(8).fit(images)
    z = encoder.encode(images).numpy()
    recorded = metadata.copy()
    flip = [5, 17, 42, 99]  # a few wrong sex labels, for the label-issue table
    recorded.loc[flip, "sex"] = np.where(recorded.loc[flip, "sex"] == "F", "M", "F")
    return Embeddings(z, ids=metadata["subject"], metadata=recorded), encoder


# (99 permutations: with 49 the smallest Monte-Carlo p-value, 0.02, missed q <= 0.05 here
# once each candidate subgroup was two findings; the audit's default is 199)
AUDIT_OPTIONS = {"projection": {"method": "pca"},
                 "audit": {"expected": ["sex", "age"], "nuisance": ["site"], "within": "sex",
                           "n_permutations": 99},
                 "explain": TINY_EXPLAIN}


@pytest.fixture(scope="module")
def full_report(embeddings, cohort):
    emb, encoder = embeddings
    images, _ = cohort
    return run_audit(emb, images=images, encoder=encoder, options=AUDIT_OPTIONS,
                     random_state=0)


# -- the container ---------------------------------------------------------------------
def test_section_status_is_checked_and_marking_drops_content():
    with pytest.raises(ConfigError, match="did you mean 'failed'"):
        ReportSection("x", "X", status="faild")
    section = ReportSection("x", "X", figures=[ReportFigure("f", b"png")], items=["a"])
    section.mark("unavailable", "no images")
    assert section.status == "unavailable" and not section.ok
    assert section.figures == [] and section.items == [] and section.note == "no images"


def test_json_is_strict_and_keeps_every_row():
    table = pd.DataFrame({"a": [1.0, np.nan, np.inf], "b": ["x", None, "z"],
                          "c": pd.array([1, None, 3], dtype="Int64")})
    report = AuditReport("t", [ReportSection("s", "S", tables=[ReportTable("T", table,
                                                                           max_rows=1)],
                                             data={"v": np.float32(0.5), "n": np.int64(3),
                                                   "arr": np.arange(3)})])
    document = json.loads(report.to_json())  # allow_nan=False inside: would raise on NaN
    rows = document["sections"]["s"]["tables"]["T"]
    assert rows == [{"a": 1.0, "b": "x", "c": 1}, {"a": None, "b": None, "c": None},
                    {"a": None, "b": "z", "c": 3}]
    assert document["sections"]["s"]["data"] == {"v": 0.5, "n": 3, "arr": [0, 1, 2]}
    assert document["format"] == "latentaudit.report"


def test_html_is_self_contained_and_escaped():
    png = _tiny_png()
    report = AuditReport("<Title>", [ReportSection(
        "s", "Section", paragraphs=["a <b>bold</b> claim"], figures=[ReportFigure("f", png)],
        tables=[ReportTable("T", pd.DataFrame({"p_value": [1e-12], "name": ["<x>"]}),
                            images=[png])])])
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert not re.search(r"(src|href)\s*=\s*\"(https?:|//)", page)
    assert "a &lt;b&gt;bold&lt;/b&gt; claim" in page and "&lt;x&gt;" in page
    assert "&lt;Title&gt;" in page
    assert page.count("data:image/png;base64,") == 2
    assert "1.0e-12" in page


def _tiny_png() -> bytes:
    from latentaudit.report._figures import thumbnail_png

    return thumbnail_png(np.eye(8, dtype=np.float32))


# -- options and metadata checks ---------------------------------------------------------
def test_merge_options_rejects_unknown_keys_with_a_suggestion():
    with pytest.raises(ConfigError, match="did you mean 'nuisance'"):
        merge_options({"audit": {"nuisance": None}}, {"audit": {"nuisanse": ["site"]}})
    with pytest.raises(ConfigError, match="is a section"):
        merge_options({"audit": {"nuisance": None}}, {"audit": 3})


def test_audit_options_name_existing_columns():
    table = pd.DataFrame({"site": ["A", "B"], "sex": ["F", "M"]})
    with pytest.raises(ConfigError, match="did you mean 'site'"):
        check_audit_options({"audit": {"nuisance": ["sites"]}}, table)
    with pytest.raises(ConfigError, match="projection.method"):
        check_audit_options({"projection": {"method": "tnse"}}, table)
    assert check_audit_options({"audit": {"within": "sex"}}, table)["audit"]["within"] == "sex"


def test_mixed_type_column_is_named_with_examples():
    table = pd.DataFrame({"subject": ["a", "b", "c", "d"], "age": ["52", "61.5", "n/a", "40"]})
    with pytest.raises(DataError, match=r"column 'age' .* mixes numbers and text.*'n/a'"
                                        r".*subjects 'c'.*leave missing values empty"):
        check_metadata(table, id_column="subject")
    # all text, all numbers and the id column itself are fine
    check_metadata(pd.DataFrame({"site": ["A", "B"], "age": [1.0, np.nan],
                                 "subject": ["1", "x"]}), id_column="subject")


# -- the audit -----------------------------------------------------------------------------
def test_run_audit_finds_the_planted_sites_and_fills_every_section(full_report, cohort):
    report = full_report
    statuses = {s.key: s.status for s in report.sections}
    assert statuses == dict.fromkeys(
        ["overview", "findings", "projection", "map", "clusters", "subgroups", "probes",
         "label_issues", "gradcam", "counterfactuals", "provenance"], "ok"), [
        (s.key, s.note) for s in report.sections if not s.ok]
    document = report.to_dict()
    top = document["sections"]["overview"]["data"]["top_findings"]
    assert top and all(row["column"] == "site" for row in top[:3])
    # the clusters explained are the shifted and the head-rest sites, not the clean one
    explained = report.section("clusters").data
    _, metadata = cohort
    labels = report.subjects["cluster"].to_numpy()
    sites = {metadata["site"][labels == int(c)].mode().iloc[0] for c in explained}
    assert sites <= {"B", "C"} and sites
    assert len(report.section("gradcam").figures) == len(explained)
    assert len(report.section("counterfactuals").figures) >= 1
    assert report.section("probes").tables[0].frame["column"].tolist()[0] == "site"
    assert list(report.subjects.columns[:4]) == ["subject", "cluster", "map_x", "map_y"]
    prov = document["provenance"]
    assert prov["seed"] == 0 and "numpy" in prov["versions"]
    assert prov["timings_seconds"]["audit_total"] > 0


def test_label_issues_list_flipped_labels(cohort):
    images, metadata = cohort
    rng = np.random.default_rng(1)
    flipped = rng.choice(len(metadata), size=6, replace=False)
    wrong = metadata.copy()
    wrong.loc[flipped, "sex"] = np.where(wrong.loc[flipped, "sex"] == "F", "M", "F")
    encoder = PixelPCAEncoder(8).fit(images)
    z = encoder.encode(images).numpy()
    report = run_audit((z, wrong), random_state=0, options={**AUDIT_OPTIONS,
                                            "explain": {"enabled": False}})
    issues = report.section("label_issues")
    flagged = issues.data["sex"]["flagged"]["index"].to_numpy()
    assert len(set(flipped) & set(flagged)) >= 5
    assert issues.tables[0].images is None  # no images given: no thumbnails
    # the sentence says what label_issues(evidence="both") does: it averages the
    # neighbours' estimate and the probe's, it does not ask both to disagree
    assert issues.items[0].startswith(f"sex: {len(flagged)} of {len(metadata)} subjects")
    assert "average of two estimates" in issues.items[0] and "both" not in issues.items[0]


def test_sections_without_images_say_why(embeddings):
    emb, encoder = embeddings
    report = run_audit(emb, encoder=encoder, random_state=0,
                       options={**AUDIT_OPTIONS, "explain": TINY_EXPLAIN})
    for key in ("clusters", "gradcam", "counterfactuals"):
        section = report.section(key)
        assert section.status == "unavailable"
        assert "no images" in section.note
        assert section.figures == []
    assert report.section("findings").ok
    page = report.to_html()
    assert page.count("badge unavailable") == 3


def test_a_failing_step_is_reported_not_faked(embeddings, monkeypatch):
    from latentaudit.audit import ClusterAuditor

    def broken(self, *args, **kwargs):
        raise RuntimeError("probe exploded")

    monkeypatch.setattr(ClusterAuditor, "probe", broken)
    emb, _ = embeddings
    report = run_audit(emb, random_state=0,
                       options={**AUDIT_OPTIONS, "explain": {"enabled": False}})
    probes = report.section("probes")
    assert probes.status == "failed" and "probe exploded" in probes.note
    assert probes.tables == []
    assert report.section("findings").ok and report.section("label_issues").ok
    assert report.section("gradcam").status == "unavailable"
    assert "turned off" in report.section("gradcam").note


def test_a_wrong_option_stops_the_audit(embeddings):
    emb, _ = embeddings
    with pytest.raises(ConfigError, match="did you mean 'site'"):
        run_audit(emb, options={"audit": {"nuisance": ["sitte"]}})


def test_images_are_matched_to_rows_by_subject(cohort):
    from latentaudit.data import ArrayDataset
    from latentaudit.pipeline import _row_images

    images, metadata = cohort
    # three slices per subject, shuffled: the middle slice is shown
    ids = np.repeat(metadata["subject"].to_numpy()[:5], 3)
    slices = np.tile([2, 0, 1], 5)
    stack = np.stack([images[k // 3] + slices[k] for k in range(15)])
    dataset = ArrayDataset(stack, ids=ids, slice_index=slices)
    rows, note = _row_images(dataset, metadata["subject"].to_numpy()[:5][::-1])
    assert "middle" in note
    got = rows.get([0])[0]
    np.testing.assert_allclose(got, images[4] + 1)
    with pytest.raises(DataError, match="have no image"):
        _row_images(dataset, ["nobody"])


def test_run_explain_compares_groups_with_the_largest(cohort):
    images, metadata = cohort
    labels = np.where(metadata["site"] == "C", 1, 0)
    encoder = PixelPCAEncoder(8).fit(images)
    report = run_explain(images, labels, ids=metadata["subject"], encoder=encoder, random_state=0,
                         options={"explain": TINY_EXPLAIN})
    assert [s.key for s in report.sections] == ["clusters", "gradcam", "counterfactuals",
                                                "provenance"]
    assert all(s.ok for s in report.sections), [(s.key, s.note) for s in report.sections]
    assert report.provenance["delineation"]["reference"] == 0
    # the head-rest rows are brighter in group 1: the difference says so
    assert report.section("clusters").data["1"]["max_abs_difference"] > 0.5
    with pytest.raises(DataError, match="at least two groups"):
        run_explain(images, np.zeros(len(images), dtype=int))


# -- reports from fitted objects -------------------------------------------------------------
def test_a_notebook_session_becomes_the_report_without_refitting(monkeypatch, tmp_path):
    import latentaudit as la

    cohort = la.datasets.load_demo_cohort()
    rows = np.arange(0, len(cohort), 8)  # 250 subjects
    images = np.asarray(cohort.images)[rows]
    dataset = la.ArrayDataset(images, cohort.metadata.iloc[rows].reset_index(drop=True))
    encoder = la.PixelPCAEncoder(16).fit(dataset)
    emb = la.embed(encoder, dataset)
    projector = la.Projector(method="pca").fit(emb)
    auditor = la.ClusterAuditor(random_state=0, nuisance=["site"], expected=["sex"]).fit(emb)
    explainer = la.Explainer(widths=(4, 8, 8, 8), max_steps=4, batch_size=16,
                             random_state=0).fit(emb, auditor.labels_)
    interpolator = la.Interpolator(k_neighbors=3, random_state=0)
    interpolator.fit_resample(emb, "site")
    fits = []
    for cls, names in ((la.Projector, ("fit", "fit_transform")), (la.ClusterAuditor, ("fit",)),
                       (la.Explainer, ("fit",)), (la.Interpolator, ("fit", "fit_resample")),
                       (la.PixelPCAEncoder, ("fit",))):
        for name in names:
            def counted(self, *args, _name=f"{cls.__name__}.{name}", **kwargs):
                fits.append(_name)
                raise AssertionError(f"{_name} was called")
            monkeypatch.setattr(cls, name, counted)

    report = la.AuditReport.from_fitted(emb, auditor, projector=projector,
                                        explainer=explainer, interpolator=interpolator,
                                        encoder=encoder, options={"explain": TINY_EXPLAIN},
                                        random_state=0)
    assert fits == []  # nothing was fitted again
    statuses = {s.key: (s.status, s.note) for s in report.sections}
    assert [k for k in statuses] == ["overview", "findings", "projection", "map", "clusters",
                                     "subgroups", "probes", "label_issues", "gradcam",
                                     "counterfactuals", "oversampling", "provenance"]
    assert all(status == "ok" for status, _ in statuses.values()), statuses
    oversampling = report.section("oversampling")
    assert oversampling.data["n_synthetic"] == len(interpolator.provenance_)
    # the interactive map shows the synthetic subjects between their parents
    assert report.section("map").data["n_synthetic"] == len(interpolator.provenance_)
    assert oversampling.figures  # decoded synthetic subjects between their parents
    assert report.provenance["fitted"]["auditor"]["params"]["nuisance"] == ["site"]
    assert (tmp_path / "r").exists() is False and report.save(tmp_path / "r").exists()
    # the top label issue leads, by its subject id, to its image
    top = auditor.label_issues("sex").iloc[0]
    np.testing.assert_array_equal(emb.image(top["subject"]), images[int(top["index"])])
    assert report.subjects["subject"].tolist() == list(emb.ids)


def test_from_fitted_refuses_objects_of_other_rows(embeddings):
    import latentaudit as la

    emb, _ = embeddings
    auditor = la.ClusterAuditor(random_state=0).fit(emb)
    other = la.Embeddings(np.asarray(emb.z)[:50], metadata=emb.metadata.iloc[:50])
    with pytest.raises(DataError, match="fitted on 120 rows"):
        la.AuditReport.from_fitted(other, auditor)
    projector = la.Projector(method="pca").fit(other)
    report = la.AuditReport.from_fitted(emb, auditor, projector=projector)
    assert report.section("projection").status == "unavailable"
    assert "one point per row" in report.section("projection").note
    clash = emb.metadata.assign(cluster=1)
    with pytest.raises(DataError, match="column named 'cluster'"):
        la.AuditReport.from_fitted(la.Embeddings(emb.z, metadata=clash), auditor)


# -- the browser -----------------------------------------------------------------------------
_PROBE = """<script>
window.__errors = [];
window.addEventListener("error", function (e) { window.__errors.push(String(e.message)); });
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var out = document.createElement("pre");
  out.id = "__probe";
  out.textContent = JSON.stringify({
    errors: window.__errors,
    images: images.map(function (i) { return [i.complete, i.naturalWidth, i.naturalHeight]; }),
    tables: document.querySelectorAll("table").length,
    rows: document.querySelectorAll("tbody tr").length,
    sections: Array.prototype.map.call(document.querySelectorAll("section.card"),
                                       function (s) { return s.id; }),
    width: document.documentElement.scrollWidth
  });
  document.body.appendChild(out);
});
</script>"""


def _chromium(*args, user_data_dir) -> subprocess.CompletedProcess:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--hide-scrollbars",
               f"--user-data-dir={user_data_dir}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package "
                                             "'chromium'; scripts/setup.sh installs it)")
def test_report_renders_in_a_real_browser(full_report, tmp_path):
    html_path = full_report.save(tmp_path / "report")
    page = html_path.read_text(encoding="utf-8")
    n_images = page.count("<img ")
    assert n_images >= 10
    # a copy with a probe that records every image's size and any script error
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>" + _PROBE, 1), encoding="utf-8")
    result = _chromium("--virtual-time-budget=10000", "--dump-dom", probed.as_uri(),
                       user_data_dir=tmp_path / "profile-dom")
    match = re.search(r'<pre id="__probe">(.*?)</pre>', result.stdout, re.S)
    assert match, f"the probe did not run: {result.stderr[-2000:]}"
    state = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert state["errors"] == []
    assert len(state["images"]) == n_images
    broken = [k for k, (complete, width, height) in enumerate(state["images"])
              if not complete or width == 0 or height == 0]
    assert broken == [], f"images that did not render: {broken}"
    assert state["tables"] >= 4 and state["rows"] >= 10
    thumbnails = page.count('<td class="thumb"><img')
    assert thumbnails >= 1  # the label-issue table's images, checked with the others
    assert state["sections"][:3] == ["overview", "findings", "projection"]
    assert state["width"] <= 1300  # nothing overflows the page sideways

    shot = tmp_path / "report.png"
    result = _chromium("--window-size=1280,4000", f"--screenshot={shot}", html_path.as_uri(),
                       user_data_dir=tmp_path / "profile-shot")
    assert shot.is_file(), result.stderr[-2000:]
    from PIL import Image

    picture = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert picture.shape == (4000, 1280)
    # the page drew something: the dark header, white cards and grey images
    assert picture[:60].mean() < 100 and picture.std() > 30


def test_candidate_subgroups_are_shown_with_members_and_images():
    from latentaudit.audit import ClusterAuditor
    from latentaudit.embed import Embeddings

    rng = np.random.default_rng(0)
    n = 400
    group = np.zeros(n, bool)
    group[rng.choice(n, 40, replace=False)] = True
    z = rng.normal(size=(n, 6))
    z[group, 3] += 9.0  # a group no column names
    images = rng.normal(0.0, 0.1, size=(n, 1, 16, 16)).astype(np.float32)
    images[group, :, :4, :4] += 0.8  # its images carry a bright corner
    metadata = pd.DataFrame({"subject": [f"s{i:03d}" for i in range(n)],
                             "age": rng.normal(50, 10, n)})
    emb = Embeddings(z, ids=metadata["subject"], metadata=metadata, images=images)
    auditor = ClusterAuditor(random_state=0).fit(emb)
    report = AuditReport.from_fitted(emb, auditor, sections=["subgroups"],
                                     options={"explain": {"images": 3}})
    section = report.section("subgroups")
    assert section.ok, section.note
    table = section.tables[0].frame
    first = table.iloc[0]
    # (20 held-out members: the second mode's p, the smaller of two doubled, is about 1e-3)
    assert first["n"] == 40 and first["q_mode"] < 0.01
    assert first["evidence"] in ("second mode", "second mode and far tail")
    members = section.data["members"]["1"]
    assert set(members) == set(metadata["subject"][group])
    assert first["first members"].split(", ")[0] in members
    assert section.data["shown"][0] == 1
    # a few members, then the members' mean against the rest's and their difference
    titles = [figure.title for figure in section.figures]
    assert titles[:2] == ["Candidate subgroup 1: example subjects",
                          "Candidate subgroup 1 vs the other subjects"]
    shown = section.data["subgroup 1"]
    assert shown["n"] == 40 and shown["n_reference"] == n - 40
    assert shown["max_abs_difference"] > 0.5 and 0 < shown["fraction_significant"] < 0.2
    assert "subgroup_labels(k)" in " ".join(section.paragraphs)  # the Explainer hand-off
    assert "Candidate subgroups" in report.to_html()
