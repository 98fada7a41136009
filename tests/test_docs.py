"""Tests of the documentation itself: the README's Python example runs, and the executed
gallery (sphinx-gallery, ``examples/plot_*.py``) rendered every page with its figures,
checked in headless Chromium. The gallery pages exist once the docs are built
(``scripts/test.sh`` builds them before it runs the tests, as CI does)."""

from __future__ import annotations

import re
import runpy
import shutil
import types
from pathlib import Path

import pytest

import latentaudit as la

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "docs" / "_build" / "html"
EXAMPLES = sorted((ROOT / "examples").glob("plot_*.py"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _readme_python() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text("utf-8"), re.S)
    assert len(blocks) == 1, "the README has one Python example"
    return blocks[0]


def test_readme_python_example_runs(monkeypatch, capsys):
    """The README's example, as written, on 200 subjects of the demo cohort (the full
    cohort's findings are asserted by the headline test of ``tests/test_cli.py``)."""
    cohort = la.datasets.load_demo_cohort()
    rows = slice(0, 200)
    subset = types.SimpleNamespace(images=cohort.images[rows],
                                   metadata=cohort.metadata.iloc[rows].reset_index(drop=True))
    monkeypatch.setattr(la.datasets, "load_demo_cohort", lambda *a, **k: subset)
    namespace: dict = {}
    exec(compile(_readme_python(), "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    auditor = namespace["auditor"]
    assert len(auditor.findings_) > 0 and "flagged" in out  # both tables printed
    assert namespace["emb"].z.shape == (200, namespace["encoder"].latent_dim)


def test_every_example_is_a_gallery_script():
    """Every example is a sphinx-gallery script (a title in its docstring), so every one
    runs at each docs build; none is left outside the gallery."""
    assert len(EXAMPLES) >= 7
    for path in (ROOT / "examples").glob("*.py"):
        assert path.name.startswith("plot_"), f"{path.name} would not run in the gallery"
        head = path.read_text("utf-8").lstrip()
        assert head.startswith('"""') and "\n====" in head.split('"""')[1], path.name


def test_a_plain_docs_build_runs_the_gallery(monkeypatch):
    """``sphinx-build`` without any setting executes every example (docs/conf.py);
    ``LATENTAUDIT_GALLERY=0`` is the opt-out for editing text only."""
    monkeypatch.delenv("LATENTAUDIT_GALLERY", raising=False)
    conf = runpy.run_path(str(ROOT / "docs" / "conf.py"))
    assert conf["plot_gallery"] == "True"
    assert conf["sphinx_gallery_conf"]["run_stale_examples"] is True
    assert conf["sphinx_gallery_conf"]["abort_on_example_error"] is True
    monkeypatch.setenv("LATENTAUDIT_GALLERY", "0")
    assert runpy.run_path(str(ROOT / "docs" / "conf.py"))["plot_gallery"] == "False"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs Chromium and its WebDriver (scripts/setup.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-background-networking", "--no-first-run",
                     "--window-size=1200,900",
                     f"--user-data-dir={tmp_path_factory.mktemp('profile')}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.mark.parametrize("example", [p.stem for p in EXAMPLES])
def test_gallery_page_shows_its_figures_and_output(browser, example):
    """The rendered page of each example holds its code's output and at least one figure,
    and every figure loads (a decoded image, not a broken link)."""
    page = HTML / "auto_examples" / f"{example}.html"
    if not HTML.is_dir():
        pytest.skip("the docs are not built (scripts/test.sh builds them before the tests)")
    assert page.is_file(), f"the gallery did not render {example}"
    browser.get(page.as_uri())
    figures = browser.execute_script(
        "return Array.from(document.querySelectorAll('img.sphx-glr-single-img, "
        "img.sphx-glr-multi-img')).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert figures, (f"{example}: no figure on the page (the docs were built with "
                     f"LATENTAUDIT_GALLERY=0, which skips the examples)")
    assert all(done and w > 100 and h > 100 for done, w, h in figures), figures
    outputs = browser.execute_script(
        "return Array.from(document.querySelectorAll('.sphx-glr-script-out')).map("
        "e => e.innerText)")
    assert outputs, f"{example}: no printed output on the page"
    assert not any("Traceback" in text for text in outputs)
