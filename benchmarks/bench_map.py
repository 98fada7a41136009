"""Benchmark of the report's interactive map at 100,000 subjects: report size, build time,
and in headless Chromium how fast the map draws and answers a hover.

Usage::

    .venv/bin/python benchmarks/bench_map.py              # 100,000 subjects
    .venv/bin/python benchmarks/bench_map.py --n 20000    # quicker

The subjects are the demo cohort's 2,000 real-anatomy 64x64 slices, each used 50 times (a
thumbnail is compressed on its own, so repeats cost as much as new images), on a synthetic
map of 20 Gaussian islands, with the demo metadata, a cluster colouring and 1% of the points
ringed.  The map gets the default thumbnail size for its number of subjects (32 pixels at
100,000).  Build time is measured with ``time.process_time`` (CPU seconds of this process)
as well as wall time, because the machine is shared.  In the browser (Chromium through
Selenium, one 1400x1000 window, software rendering): the time from navigation start to the
points on screen, the time one redraw of every point takes (8 zooms), the time from a
pointer event to the hover card (10 hovers), and to the subject's thumbnail.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def build(n: int, folder: Path) -> dict:
    from latentaudit.datasets import load_demo_cohort
    from latentaudit.report import AuditReport, MapView, ReportSection

    cohort = load_demo_cohort()
    rng = np.random.default_rng(0)
    rows = np.arange(n) % len(cohort.images)
    table = cohort.metadata.iloc[rows].reset_index(drop=True)
    table["subject"] = [f"s{i:06d}" for i in range(n)]
    centres = rng.normal(0, 40, size=(20, 2))
    group = rng.integers(0, 20, n)
    xy = (centres[group] + rng.normal(0, 4, size=(n, 2))).astype(np.float32)
    cpu, wall = time.process_time(), time.perf_counter()
    view = MapView(xy, table["subject"], table, images=cohort.images[rows],
                   layers={"cluster": group}, highlights={"outliers": np.arange(0, n, 100)})
    payload = view.payload()
    path = AuditReport(f"{n:,} subjects", [ReportSection("map", "Map", views=[view])]).save(
        folder)
    sheets = sum(len(uri) for uri in payload["thumbs"]["sheets"])
    return {"n": n, "report_mb": path.stat().st_size / 1e6, "sprites_mb": sheets / 1e6,
            "thumbnail_px": payload["thumbs"]["size"],
            "build_cpu_s": time.process_time() - cpu, "build_wall_s": time.perf_counter() - wall,
            "path": path, "xy": xy}


def browse(path: Path, xy: np.ndarray) -> dict:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = Options()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    profile = tempfile.mkdtemp()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", "--window-size=1400,1000",
                     f"--user-data-dir={profile}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    stats = "return window.latentauditViews[0].stats"
    try:
        started = time.perf_counter()
        driver.get(path.resolve().as_uri())
        WebDriverWait(driver, 60).until(lambda d: d.execute_script(
            "var v = window.latentauditViews; return v && v.length && v[0].stats.draws"))
        opened = time.perf_counter() - started
        stage = driver.find_element(By.CSS_SELECTOR, ".la-stage")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", stage)
        first = driver.execute_script(stats)
        origin = ScrollOrigin.from_element(stage, 0, 0)
        for delta in (-200, -200, -200, -200, 200, 200, 200, 200):
            ActionChains(driver).scroll_from_origin(origin, 0, delta).perform()
        WebDriverWait(driver, 10).until(lambda d: d.execute_script(stats)["draws"] >= 9)
        driver.find_element(By.CSS_SELECTOR, ".la-reset").click()
        view = driver.execute_script(
            "var v = window.latentauditViews[0], r = v.stage.getBoundingClientRect();"
            "return [v.scale, v.tx, v.ty, r.width, r.height]")
        scale, tx, ty, width, height = view
        screen = np.c_[xy[:, 0] * scale + tx, ty - xy[:, 1] * scale]
        rng = np.random.default_rng(1)
        visible = np.flatnonzero(((screen > 20) & (screen < [width - 20, height - 20])).all(1))
        for k in rng.choice(visible, 10, replace=False):
            ActionChains(driver).move_to_element_with_offset(
                stage, round(screen[k, 0] - width / 2), round(screen[k, 1] - height / 2)
            ).perform()
            time.sleep(0.3)
        WebDriverWait(driver, 10).until(lambda d: len(d.execute_script(stats)["thumb_ms"]))
        last = driver.execute_script(stats)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    redraws = last["draw_ms"][1:]
    return {"page_open_s": opened, "first_draw_s": first["first_draw_at"] / 1000,
            "script_setup_ms": first["init_ms"], "first_draw_ms": first["draw_ms"][0],
            "redraw_ms_median": float(np.median(redraws)), "redraw_ms_max": max(redraws),
            "hover_ms_median": float(np.median(last["hover_ms"])),
            "hover_ms_max": max(last["hover_ms"]),
            "thumbnail_ms_median": float(np.median(last["thumb_ms"])),
            "thumbnail_ms_max": max(last["thumb_ms"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="subjects (default 100,000)")
    parser.add_argument("--keep", metavar="DIR", help="write the report here and keep it")
    args = parser.parse_args()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp())
    try:
        built = build(args.n, folder)
        result = {k: v for k, v in built.items() if k not in ("path", "xy")}
        if shutil.which("chromedriver"):
            result.update(browse(built["path"], built["xy"]))
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                          for k, v in result.items()}, indent=1))
        print(pd.Series(result).to_string())
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
