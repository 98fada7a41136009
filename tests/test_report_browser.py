"""The report's interactive map in a real browser: headless Chromium driven by Selenium
(Debian's chromium-driver). On the demo report: hover a subject and see its scan and id,
pin it, zoom, colour and ring; draw around the site-C island with the polygon tool and
around site B with the lasso, export the delineation, and let ``latentaudit explain`` and
``latentaudit audit`` use it; the page with JavaScript disabled; and no request to any
network address. On a 100,000-point map: how fast it draws and answers a hover."""

from __future__ import annotations

import base64
import io
import json
import shutil
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.spatial import ConvexHull
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from latentaudit.audit import Delineation, delineate, points_in_polygon
from latentaudit.cli import EXIT_BAD_INPUT, EXIT_OK, main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Chromium and its WebDriver (Debian packages 'chromium' and "
           "'chromium-driver'; scripts/setup.sh installs them)")

# the 100,000-point map must draw and answer a hover within these times (on CI's 2 cores,
# unloaded; medians of several; measured 0.4 s, 15 ms, 8 ms and 20 ms on this machine)
FIRST_DRAW_S = 8.0     # from navigation start to the points on screen
REDRAW_MS = 150.0      # one redraw of every point (zoom, pan, colour)
HOVER_MS = 50.0        # from the pointer event to the card of the nearest subject
THUMBNAIL_S = 2.0      # from the pointer event to its scan (a sprite sheet decoded)
# On a machine shared with other jobs the browser gets a fraction of a core: the budgets are
# multiplied by how much slower than REFERENCE_MS a fixed piece of JavaScript runs in the
# same browser, measured before and after the map's timings (never by less than 1).
REFERENCE_MS = 60.0    # _WORKLOAD's median on the 2-core development machine (68 ms
                       # with its other jobs niced, 43 ms the fastest run seen)
_WORKLOAD = """
var times = [], s = 0;
for (var r = 0; r < 4; r++) {  // the first run warms the JIT up and is not counted
  var t0 = performance.now(), a = new Float32Array(1000000);
  for (var i = 0; i < a.length; i++) a[i] = Math.sin(i * 0.001);
  for (var k = 0; k < 40; k++) for (var j = 0; j < a.length; j++) s += a[j] * k;
  if (r > 0) times.push(performance.now() - t0);
}
return {times: times, sum: s};
"""

NETWORK_SCHEMES = ("http:", "https:", "ws:", "wss:", "ftp:")


# --------------------------------------------------------------------------------------
# the browser
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    downloads = tmp_path_factory.mktemp("downloads")
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", "--window-size=1400,1000",
                     f"--user-data-dir={tmp_path_factory.mktemp('profile')}"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    yield driver
    driver.quit()


def _open(driver, path):
    driver.get(path.resolve().as_uri())
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "var v = window.latentauditViews; return v && v.length && v[0].stats && "
        "v[0].stats.draws > 0"))
    stage = driver.find_element(By.CSS_SELECTOR, ".la-stage")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", stage)
    return stage


def _view(driver) -> dict:
    return driver.execute_script(
        "var v = window.latentauditViews[0], r = v.stage.getBoundingClientRect();"
        "return {scale: v.scale, tx: v.tx, ty: v.ty, width: r.width, height: r.height,"
        "        error: v.error || null, stats: v.stats};")


def _screen(view: dict, xy) -> np.ndarray:
    xy = np.asarray(xy, dtype=np.float64)
    return np.c_[xy[:, 0] * view["scale"] + view["tx"], view["ty"] - xy[:, 1] * view["scale"]]


def _offset(view: dict, point) -> tuple[int, int]:
    # WebDriver moves relative to the element's centre
    return round(point[0] - view["width"] / 2), round(point[1] - view["height"] / 2)


def _isolated(screen: np.ndarray, view: dict, clearance: float = 4.0) -> int:
    """The point farthest from its nearest neighbour on screen (at least ``clearance``
    pixels: the pointer lands within a pixel of it, so the card must name it)."""
    inside = np.flatnonzero(((screen > 40) & (screen < [view["width"] - 300,
                                                        view["height"] - 40])).all(1))
    gaps = np.hypot(*(screen[inside, None] - screen[None]).transpose(2, 0, 1))
    gaps[np.arange(len(inside)), inside] = np.inf
    nearest = gaps.min(axis=1)
    assert nearest.max() >= clearance, "no isolated point on the map"
    return int(inside[np.argmax(nearest)])


def _island(xy: np.ndarray, members: np.ndarray, margin: float = 0.15) -> np.ndarray:
    """A polygon around some points: their convex hull, widened by ``margin``."""
    points = xy[members]
    hull = points[ConvexHull(points).vertices]
    centre = hull.mean(axis=0)
    return centre + (1 + margin) * (hull - centre)


def _spaced(corners: np.ndarray, gap: float = 15.0) -> np.ndarray:
    """Corners at least ``gap`` pixels apart (two quick clicks closer are a double-click,
    which closes a polygon)."""
    kept = [corners[0]]
    for corner in corners[1:]:
        if np.hypot(*(corner - kept[-1])) >= gap and np.hypot(*(corner - kept[0])) >= gap:
            kept.append(corner)
    return np.array(kept)


def _requests(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _severe(driver) -> list:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _canvas(driver, element) -> np.ndarray:
    """The pixels of a canvas, (height, width, RGBA)."""
    uri = driver.execute_script("return arguments[0].toDataURL('image/png')", element)
    picture = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    return np.asarray(picture.convert("RGBA"), dtype=np.float64)


# --------------------------------------------------------------------------------------
# the demo report (the demo cohort, pixel PCA, a t-SNE map, 300 subjects)
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    code = main(["demo", "--encoder", "pca", "--n-subjects", "300", "--projection", "tsne",
                 "--no-explain", "--set", "audit.n_permutations=19", "--output", str(out),
                 "-q"])
    assert code == EXIT_OK
    return out


def _subjects(folder) -> pd.DataFrame:
    """A report's subjects table, its first column (the ids) named "id"."""
    table = pd.read_csv(folder / "subjects.csv", dtype=str)
    table = table.rename(columns={table.columns[0]: "id"})
    for column in ("map_x", "map_y"):
        if column in table:
            table[column] = table[column].astype(float)
    for column in ("cluster", "group"):
        if column in table:
            table[column] = table[column].astype(int)
    return table


def _write_nifti(folder, ids):
    """The demo images of these subjects as NIfTI files (what 'explain' reads)."""
    import nibabel as nib

    from latentaudit.datasets import load_demo_cohort

    cohort = load_demo_cohort()
    row = {str(s): k for k, s in enumerate(cohort.metadata["subject"])}
    folder.mkdir(parents=True)
    for subject in ids:
        # NiftiDataset shows a sagittal plane anti-transposed: store it so that it reads back
        plane = np.rot90(cohort.images[row[subject], 0].T, 2)
        volume = np.repeat(plane[None], 3, axis=0).astype(np.float32)
        nib.save(nib.Nifti1Image(volume, np.eye(4)), folder / f"{subject}.nii.gz")
    return folder, cohort, row


def test_the_demo_report_in_a_browser(browser, demo, tmp_path):
    subjects = _subjects(demo)
    xy = subjects[["map_x", "map_y"]].to_numpy()
    ids = subjects["id"].to_numpy()
    browser.get_log("performance")  # start the request log with this test
    stage = _open(browser, demo / "report.html")
    view = _view(browser)
    assert view["error"] is None and view["stats"]["n"] == len(subjects)
    screen = _screen(view, xy)
    actions = ActionChains(browser)

    # -- hover: the card shows the subject's id, metadata and scan ------------------------
    k = _isolated(screen, view)
    actions.move_to_element_with_offset(stage, *_offset(view, screen[k])).perform()
    tip = browser.find_element(By.CSS_SELECTOR, ".la-tip")
    WebDriverWait(browser, 5).until(lambda d: tip.get_attribute("data-id") == ids[k])
    assert tip.is_displayed() and "finding" not in tip.text  # findings: colours only
    assert ids[k] in tip.text and f"site {subjects['site'][k]}" in tip.text
    thumb = WebDriverWait(browser, 5).until(lambda d: d.find_element(
        By.CSS_SELECTOR, f'.la-tip canvas[data-row="{k}"]'))
    shown = _canvas(browser, thumb)[..., 0]  # grey, 96 x 96, drawn from the 64 x 64 sprite
    from latentaudit.datasets import load_demo_cohort
    from latentaudit.report._figures import grey_levels

    cohort = load_demo_cohort()
    row_of = {str(s): r for r, s in enumerate(cohort.metadata["subject"])}
    expected = grey_levels(cohort.images[[row_of[ids[k]]], 0])[0]
    centres = ((np.arange(64) + 0.5) * shown.shape[0] / 64).astype(int)
    sampled = shown[np.ix_(centres, centres)]
    other = grey_levels(cohort.images[[row_of[ids[(k + 1) % len(ids)]]], 0])[0]
    error, baseline = np.abs(sampled - expected).mean(), np.abs(sampled - other).mean()
    assert error < 8 and baseline > 3 * error, (error, baseline)  # its scan, not another's

    # -- click pins the subject; the wheel zooms about the pointer; colour; rings ---------
    actions.click().perform()
    card = browser.find_element(By.CSS_SELECTOR, ".la-pinned")
    WebDriverWait(browser, 5).until(lambda d: card.get_attribute("data-id") == ids[k])
    assert card.is_displayed()
    before = _view(browser)
    origin = ScrollOrigin.from_element(stage, *_offset(view, screen[k]))
    actions.scroll_from_origin(origin, 0, -400).perform()
    WebDriverWait(browser, 5).until(lambda d: _view(d)["scale"] > 1.5 * before["scale"])
    zoomed = _view(browser)
    still = _screen(zoomed, xy[[k]])[0]  # the point under the pointer stays there
    assert np.hypot(*(still - screen[k])) < 2.0
    browser.find_element(By.CSS_SELECTOR, ".la-reset").click()
    WebDriverWait(browser, 5).until(lambda d: abs(_view(d)["scale"] - view["scale"]) < 1e-9)
    # a drag pans the map by the drag's length, zooms nothing and pins no one else
    before = _view(browser)
    actions.move_to_element(stage).click_and_hold().move_by_offset(60, 40).release().perform()
    WebDriverWait(browser, 5).until(lambda d: _view(d)["tx"] != before["tx"])
    panned = _view(browser)
    assert abs(panned["tx"] - before["tx"] - 60) < 1.5, (panned, before)
    assert abs(panned["ty"] - before["ty"] - 40) < 1.5, (panned, before)
    assert panned["scale"] == before["scale"] and card.get_attribute("data-id") == ids[k]
    browser.find_element(By.CSS_SELECTOR, ".la-reset").click()
    WebDriverWait(browser, 5).until(lambda d: abs(_view(d)["tx"] - view["tx"]) < 1e-9)
    Select(browser.find_element(By.CSS_SELECTOR, ".la-colour")).select_by_value("cluster")
    assert browser.find_element(By.CSS_SELECTOR, ".la-legend h4").text == "cluster"
    overlay = browser.find_element(By.CSS_SELECTOR, ".la-overlay")
    inked = (_canvas(browser, overlay)[..., 3] > 0).sum()
    rings = browser.find_elements(By.CSS_SELECTOR, ".la-toggles input")
    assert len(rings) == 2  # label issues (sex) and outliers
    for box in rings:
        box.click()
    WebDriverWait(browser, 5).until(
        lambda d: (_canvas(d, overlay)[..., 3] > 0).sum() > inked + 50)

    # -- draw: a polygon around the site-C island, a lasso around site B ------------------
    site = subjects["site"].to_numpy()
    islands = {}
    for name in ("C", "B"):
        # the island: the audit's clusters that are mostly this site (a site's few strays
        # among the other sites are not part of it)
        share = subjects.groupby("cluster")["site"].agg(lambda s, n=name: np.mean(s == n))
        members = subjects["cluster"].isin(share[share > 0.9].index).to_numpy()
        islands[name] = _island(xy, members)
    # zoom out a little, so that the islands' surroundings are on screen too
    actions.scroll_from_origin(ScrollOrigin.from_element(stage, 0, 0), 0, 300).perform()
    WebDriverWait(browser, 5).until(lambda d: _view(d)["scale"] < 0.8 * view["scale"])
    seen = _view(browser)
    browser.find_element(By.CSS_SELECTOR, "button[data-mode=polygon]").click()
    corners = _spaced(_screen(seen, islands["C"]))
    for corner in [*corners, corners[0]]:  # a click on the first corner closes it
        actions.move_to_element_with_offset(stage, *_offset(seen, corner)).click()
    actions.perform()
    browser.find_element(By.CSS_SELECTOR, "button[data-mode=lasso]").click()
    ring = _spaced(_screen(seen, islands["B"]))
    actions.move_to_element_with_offset(stage, *_offset(seen, ring[0])).click_and_hold()
    for corner in [*ring[1:], ring[0]]:
        actions.move_to_element_with_offset(stage, *_offset(seen, corner))
    actions.release().perform()
    groups = browser.find_elements(By.CSS_SELECTOR, ".la-group-list li[data-label]")
    assert [g.get_attribute("data-label") for g in groups] == ["1", "2"]

    # -- export: the file the browser saved is a delineation of this map ------------------
    browser.find_element(By.CSS_SELECTOR, ".la-export").click()
    saved = browser.downloads / "delineation.json"
    WebDriverWait(browser, 10).until(lambda d: saved.is_file() and saved.stat().st_size)
    path = tmp_path / "delineation.json"
    shutil.copy(saved, path)
    drawn = Delineation.read(path)
    assert drawn.outside == 0 and sorted(drawn.polygons) == [1, 2]
    labels = delineate(xy, path, ids=ids)  # the map and subjects it was drawn on
    for label, name in ((1, "C"), (2, "B")):
        inside = np.zeros(len(xy), dtype=bool)
        for polygon in drawn.polygons[label]:
            inside |= points_in_polygon(xy, polygon)
        assert set(ids[labels == label]) == set(drawn.selected[label]) == set(ids[inside])
        # and the island is the site's: nearly all its subjects, nearly nothing else
        assert np.mean(site[inside] == name) > 0.95 and np.mean(inside[site == name]) > 0.85
    assert f"group 1: {np.sum(labels == 1)} subjects" in groups[0].text

    # -- explain trains its classifier on exactly the groups drawn ------------------------
    nifti, _, _ = _write_nifti(tmp_path / "nifti", ids)
    tiny = ["--classifier-steps", "3", "--set", "explain.widths=[4, 8, 8, 8]", "--set",
            "explain.batch_size=16", "--set", "explain.images=2", "-q"]
    code = main(["explain", "--delineation", str(path), "--images", str(nifti), "--size",
                 "64", "--output", str(tmp_path / "explain"), *tiny])
    assert code == EXIT_OK
    explained = _subjects(tmp_path / "explain")
    group_of = dict(zip(ids, labels, strict=True))
    assert explained["group"].tolist() == [group_of[i] for i in explained["id"]]
    for label in (1, 2):
        assert set(explained["id"][explained["group"] == label]) == set(drawn.selected[label])
    assert set(explained["classifier"]) == {"train", "held out"}  # every subject, none else
    report = json.loads((tmp_path / "explain" / "report.json").read_text())
    assert report["sections"]["gradcam"]["status"] == "ok"
    assert report["sections"]["gradcam"]["data"]["classes"] == [0, 1, 2]

    # -- audit tests the drawn groups, and refuses other embeddings -----------------------
    code = main(["audit", "--delineation", str(path), "--embeddings",
                 str(demo / "embeddings"), "--projection", "pca", "--no-explain", "--set",
                 "audit.n_permutations=19", "--output", str(tmp_path / "audit"), "-q"])
    assert code == EXIT_OK
    audited = _subjects(tmp_path / "audit")
    assert audited["cluster"].tolist() == [group_of[i] for i in audited["id"]]
    findings = json.loads((tmp_path / "audit" / "report.json").read_text())
    top = findings["sections"]["findings"]["tables"]["All findings"][0]
    assert top["column"] == "site" and top["cluster"] in (1, 2)
    from latentaudit.embed import Embeddings

    other = Embeddings.load(demo / "embeddings")
    Embeddings(np.asarray(other.z) * 1.001, ids=other.ids, metadata=other.metadata).save(
        tmp_path / "other")
    code = main(["audit", "--delineation", str(path), "--embeddings", str(tmp_path / "other"),
                 "--output", str(tmp_path / "refused"), "-q"])
    assert code == EXIT_BAD_INPUT

    # -- without JavaScript: the page opens, the static figures remain --------------------
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        browser.get((demo / "report.html").resolve().as_uri())
        assert browser.execute_script("return window.latentauditViews === undefined")
        note = browser.find_element(By.CSS_SELECTOR, "#map noscript, #map .note")
        assert "needs JavaScript" in (note.text or note.get_attribute("textContent"))
        figures = browser.find_elements(By.CSS_SELECTOR, "#projection figure img")
        assert figures and all(browser.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", f)
            for f in figures)
    finally:
        browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})

    # -- nothing asked of any network address, no script error ----------------------------
    urls = _requests(browser)
    assert urls and all(u.startswith(("file:", "data:", "blob:")) for u in urls), [
        u[:80] for u in urls if not u.startswith(("file:", "data:", "blob:"))]
    assert not [u for u in urls if u.startswith(NETWORK_SCHEMES)]
    assert _severe(browser) == []


# --------------------------------------------------------------------------------------
# 100,000 points
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def large_report(tmp_path_factory):
    from latentaudit.report import AuditReport, MapView, ReportSection

    n = 100_000
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 40, size=(20, 2))
    group = rng.integers(0, 20, n)
    xy = (centres[group] + rng.normal(0, 4, size=(n, 2))).astype(np.float32)
    table = pd.DataFrame({"subject": [f"s{i:06d}" for i in range(n)],
                          "site": np.array(list("ABCDEF"))[group % 6],
                          "age": rng.uniform(20, 80, n).round(1)})
    # small scans (a blob whose place encodes the group); 16-pixel thumbnails keep the
    # fixture quick: benchmarks/bench_map.py measures the default size
    yy, xx = np.mgrid[:16, :16]
    images = np.exp(-((yy[None] - 2 - group[:, None, None] % 12) ** 2
                      + (xx[None] - 2 - group[:, None, None] // 2) ** 2) / 8.0)
    view = MapView(xy, table["subject"], table, images=images[:, None].astype(np.float32),
                   layers={"cluster": group},
                   highlights={"outliers": np.arange(0, n, 500)}, thumbnail_size=16)
    report = AuditReport("100,000 subjects", [ReportSection("map", "Map", views=[view])])
    path = report.save(tmp_path_factory.mktemp("large"))
    return path, xy, table["subject"].to_numpy()


def _workload_ms(driver) -> list[float]:
    """Three timings (ms) of a fixed piece of JavaScript in this browser."""
    return driver.execute_script(_WORKLOAD)["times"]


def test_a_100000_point_map_draws_and_answers_a_hover_in_time(browser, large_report):
    path, xy, ids = large_report
    browser.get("about:blank")
    workload = _workload_ms(browser)
    started = time.perf_counter()
    stage = _open(browser, path)
    opened = time.perf_counter() - started
    view = _view(browser)
    stats = view["stats"]
    assert view["error"] is None and stats["n"] == len(xy)
    first_draw = stats["first_draw_at"] / 1000  # seconds after navigation start
    # redraws of every point: zoom in and out about the centre
    origin = ScrollOrigin.from_element(stage, 0, 0)
    for delta in (-300, -300, 300, 300):
        ActionChains(browser).scroll_from_origin(origin, 0, delta).perform()
    WebDriverWait(browser, 10).until(lambda d: _view(d)["stats"]["draws"] >= 5)
    redraws = _view(browser)["stats"]["draw_ms"][1:]
    browser.find_element(By.CSS_SELECTOR, ".la-reset").click()
    WebDriverWait(browser, 5).until(lambda d: abs(_view(d)["scale"] - view["scale"]) < 1e-9)
    # hovers over points of the 100,000: the card names the subject under the pointer
    screen = _screen(view, xy)
    rng = np.random.default_rng(0)
    tip = browser.find_element(By.CSS_SELECTOR, ".la-tip")
    for target in rng.uniform([60, 60], [view["width"] - 60, view["height"] - 60], (5, 2)):
        k = int(np.argmin(np.hypot(*(screen - target).T)))
        under = set(ids[np.hypot(*(screen - screen[k]).T) <= 1.5])  # within rounding
        ActionChains(browser).move_to_element_with_offset(
            stage, *_offset(view, screen[k])).perform()
        WebDriverWait(browser, 5).until(lambda d, u=under: tip.get_attribute("data-id") in u)
    WebDriverWait(browser, 10).until(lambda d: len(_view(d)["stats"]["thumb_ms"]) > 0)
    stats = _view(browser)["stats"]
    hover_ms = float(np.median(stats["hover_ms"][-5:]))
    thumb_s = float(np.median(stats["thumb_ms"])) / 1000
    redraw_ms = float(np.median(redraws))
    size_mb = path.stat().st_size / 1e6
    workload += _workload_ms(browser)
    slowdown = max(1.0, float(np.median(workload)) / REFERENCE_MS)
    timings = (f"100,000 points: page opened in {opened:.2f} s, points drawn "
               f"{first_draw:.2f} s after navigation start (script set-up "
               f"{stats['init_ms']:.0f} ms), redraw {redraw_ms:.1f} ms (max {max(redraws):.1f}),"
               f" hover {hover_ms:.1f} ms (max {max(stats['hover_ms']):.1f}), scan "
               f"{thumb_s * 1000:.0f} ms, report {size_mb:.1f} MB; reference workload "
               f"{np.median(workload):.0f} ms (budgets x {slowdown:.1f})")
    print("\n" + timings)
    assert first_draw < FIRST_DRAW_S * slowdown, timings
    assert redraw_ms < REDRAW_MS * slowdown, timings
    assert hover_ms < HOVER_MS * slowdown, timings
    assert thumb_s < THUMBNAIL_S * slowdown, timings
    assert _severe(browser) == []
