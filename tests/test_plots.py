"""Tests of latentaudit.report.plot_projection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.offsetbox import AnnotationBbox

import latentaudit as la
from latentaudit.errors import ConfigError, DataError, InputShapeError
from latentaudit.report import plot_projection
from latentaudit.report._plots import MISSING_COLOR, OKABE_ITO

N = 60


@pytest.fixture()
def xy():
    return np.random.default_rng(0).normal(size=(N, 2))


@pytest.fixture()
def table():
    rng = np.random.default_rng(1)
    site = np.array(["B", "A", "C"] * (N // 3), dtype=object)
    site[:5] = None
    age = rng.uniform(20, 80, N)
    age[-4:] = np.nan
    return pd.DataFrame({"subject": [f"s{i:02d}" for i in range(N)], "site": site,
                         "sex": rng.integers(0, 2, N), "age": age})


def _panel(fig, title):
    return next(ax for ax in fig.axes if ax.get_title() == title)


def _legend_texts(ax):
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def _collection(ax, gid):
    return next(c for c in ax.collections if c.get_gid() == gid)


def test_categorical_panel_has_legend_palette_and_grey_missing(xy, table):
    fig = plot_projection(xy, table, columns=["site"])
    ax = _panel(fig, "site")
    assert _legend_texts(ax) == ["A (18)", "B (18)", "C (19)", "missing (5)"]
    points = _collection(ax, "points")
    colours = {to_hex(c) for c in points.get_facecolors()}
    assert colours == {c.lower() for c in OKABE_ITO[:3]}
    missing = _collection(ax, "missing")
    assert len(missing.get_offsets()) == 5
    assert {to_hex(c) for c in missing.get_facecolors()} == {MISSING_COLOR.lower()}
    assert len(points.get_offsets()) == N - 5


def test_continuous_panel_has_colour_bar_and_grey_missing(xy, table):
    fig = plot_projection(xy, table, columns=["age"])
    ax = _panel(fig, "age")
    points = _collection(ax, "points")
    assert points.colorbar is not None
    assert points.colorbar.ax.get_ylabel() == "age"
    assert len(fig.axes) == 2  # the panel and its colour bar
    np.testing.assert_allclose(sorted(points.get_array()),
                               np.sort(table["age"].dropna().to_numpy()))
    assert len(_collection(ax, "missing").get_offsets()) == 4
    assert _legend_texts(ax) == ["missing (4)"]


def test_small_integer_columns_are_categorical_and_kinds_override(xy, table):
    fig = plot_projection(xy, table, columns=["sex", "age"], kinds={"age": "categorical"})
    assert _legend_texts(_panel(fig, "sex"))[:2] == [
        f"0 ({(table.sex == 0).sum()})", f"1 ({(table.sex == 1).sum()})"]
    assert _collection(_panel(fig, "sex"), "points").colorbar is None
    fig = plot_projection(xy, table, columns=["sex"], kinds={"sex": "continuous"})
    assert _collection(_panel(fig, "sex"), "points").colorbar is not None
    with pytest.raises(ConfigError, match="did you mean 'continuous'"):
        plot_projection(xy, table, columns=["sex"], kinds={"sex": "continous"})


def test_default_columns_skip_ids(xy, table):
    fig = plot_projection(xy, table)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["site", "sex", "age"]
    fig = plot_projection(xy)
    assert len(fig.axes) == 1 and len(_collection(fig.axes[0], "points").get_offsets()) == N


def test_many_categories_are_lumped(xy):
    labels = pd.Series([f"c{i % 30:02d}" for i in range(N)])
    fig = plot_projection(xy, {"cluster": labels}, max_categories=5)
    texts = _legend_texts(_panel(fig, "cluster"))
    assert len(texts) == 5
    assert texts[-1].startswith("other: 26 categories")


def test_thumbnails(xy):
    images = np.random.default_rng(0).normal(size=(N, 1, 8, 8)).astype(np.float32)
    fig = plot_projection(xy, images=images, thumbnails=4)
    boxes = [a for a in fig.axes[0].artists if isinstance(a, AnnotationBbox)]
    assert len(boxes) == 4
    fig = plot_projection(xy, images=la.ArrayDataset(images), thumbnails=[3, 7])
    gids = sorted(a.get_gid() for a in fig.axes[0].artists if isinstance(a, AnnotationBbox))
    assert gids == ["thumbnail-3", "thumbnail-7"]
    volumes = np.zeros((N, 1, 4, 8, 8), dtype=np.float32)
    fig = plot_projection(xy, images=volumes, thumbnails=[0])
    with pytest.raises(ConfigError, match="needs images"):
        plot_projection(xy, thumbnails=3)


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_saves_by_extension(tmp_path, xy, table, suffix, magic):
    path = tmp_path / "sub" / f"map{suffix}"
    plot_projection(xy, table, columns=["site", "age"], path=path)
    assert path.read_bytes().startswith(magic)


def test_does_not_touch_pyplot(xy, table):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plot_projection(xy, table, columns=["site"])
    assert plt.get_fignums() == before


def test_bad_inputs(tmp_path, xy, table):
    with pytest.raises(InputShapeError, match=r"\(n_points, 2\)"):
        plot_projection(np.zeros((N, 3)), table)
    with pytest.raises(DataError, match="one row per point"):
        plot_projection(xy, table.iloc[:10])
    with pytest.raises(ConfigError, match="did you mean 'site'"):
        plot_projection(xy, table, columns=["sites"])
    with pytest.raises(ConfigError, match="extension"):
        plot_projection(xy, table, columns=["site"], path=tmp_path / "map.bmp")
    with pytest.raises(DataError, match="not numeric"):
        plot_projection(xy, table, columns=["site"], kinds={"site": "continuous"})
