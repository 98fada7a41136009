"""Figures of projected embeddings: small multiples coloured by metadata columns."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, InputShapeError, InputTypeError
from ..utils import check_option, check_random_state

__all__ = ["MISSING_COLOR", "OKABE_ITO", "plot_projection"]

logger = logging.getLogger(__name__)

#: Okabe & Ito's palette, distinguishable with the common colour-vision deficiencies;
#: ordered so that the first colours contrast most on white (yellow comes late).
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442",
             "#000000")
#: Colour of points whose value is missing (not in any palette used here).
MISSING_COLOR = "#BBBBBB"
_OTHER_COLOR = "#555555"
_SAVE_FORMATS = (".png", ".svg", ".pdf")
# a numeric column with at most this many distinct integer values reads as categories
_MAX_INTEGER_CATEGORIES = 10


def plot_projection(xy, metadata=None, columns=None, *, images=None, thumbnails=None,
                    path: str | os.PathLike | None = None, kinds: dict | None = None,
                    ncols: int = 3, panel_size: float = 4.0, point_size: float | None = None,
                    alpha: float = 0.8, max_categories: int = 20, cmap: str = "viridis",
                    thumbnail_size: float = 40.0, title: str | None = None,
                    random_state=None, dpi: int = 150):
    """Draw a 2-D map of embeddings once per metadata column (small multiples).

    Categorical columns get a legend (with counts) and the colour-blind-safe Okabe-Ito
    palette (``tab20`` beyond 8 categories; beyond ``max_categories`` the rarest are
    lumped into "other"); continuous columns get a colour bar and a perceptually
    uniform colour map.  Points whose value is missing are drawn in grey beneath the
    others and counted in the legend.  Points are drawn in a random order so that no
    group hides another.  The figure is a plain :class:`matplotlib.figure.Figure`
    (no pyplot state), safe with any backend, including Agg on servers.

    Parameters
    ----------
    xy : array-like of shape (n_points, 2)
        The map, e.g. from :meth:`latentaudit.Projector.fit_transform`.  Rows with NaN
        are left out.
    metadata : pandas.DataFrame, dict or None, optional
        One row per point, in the order of ``xy``.
    columns : str or sequence of str, optional
        The columns to colour by, one panel each.  Default: every column of
        ``metadata`` except id-like ones (text with a distinct value per row); a single
        uncoloured panel without metadata.
    images : array-like or dataset, optional
        The images of the points, ``(n_points, C, H, W)``, ``(n_points, H, W)`` or
        ``(n_points, C, D, H, W)`` (the middle slice is shown), or a latentaudit
        dataset; only the images shown as thumbnails are read.
    thumbnails : int or sequence of int, optional
        Show thumbnails of ``images`` on the first panel: an int picks that many points
        spread over the map (the points nearest k-means centres), a sequence gives row
        positions.
    path : str or os.PathLike, optional
        Also save the figure here; the format follows the extension (``.png``,
        ``.svg`` or ``.pdf``).
    kinds : dict, optional
        Override the inferred kind of columns: ``{"site": "categorical", "age":
        "continuous"}``.  By default text, categorical and boolean columns, and numeric
        columns with at most 10 distinct integer values, are categorical.
    ncols : int, default 3
        Panels per row.
    panel_size : float, default 4.0
        Height of a panel in inches.
    point_size : float, optional
        Marker area in points^2; default shrinks with the number of points.
    alpha : float, default 0.8
        Marker opacity.
    max_categories : int, default 20
        Most categories shown separately in one panel.
    cmap : str, default "viridis"
        Colour map of continuous columns.
    thumbnail_size : float, default 40.0
        Size of a thumbnail's longer side in points.
    title : str, optional
        Title of the figure.
    random_state : int, RandomState or None, default None
        Seed of the drawing order and of the choice of thumbnails.
    dpi : int, default 150
        Resolution of a saved PNG.

    Returns
    -------
    matplotlib.figure.Figure
        The figure; collections carry ``gid`` ``"points"`` and ``"missing"``.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.InputShapeError`, ``DataError`` or
        ``ConfigError``) for an ``xy`` that is not ``(n, 2)``, metadata of another
        length, an unknown column (with a suggestion), or an unsupported file
        extension.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from latentaudit import plot_projection
    >>> xy = np.random.default_rng(0).normal(size=(100, 2))
    >>> meta = pd.DataFrame({"site": ["A", "B"] * 50, "age": np.linspace(20, 80, 100)})
    >>> fig = plot_projection(xy, meta, columns=["site", "age"])
    >>> len(fig.axes)  # two panels and the age colour bar
    3
    """
    from matplotlib.figure import Figure

    xy = _check_xy(xy)
    n = len(xy)
    metadata = _check_metadata(metadata, n)
    columns = _check_columns(columns, metadata)
    kinds = dict(kinds or {})
    for column, kind in kinds.items():
        check_option(f"kinds[{column!r}]", kind, ["categorical", "continuous"])
    ncols = max(1, min(int(ncols), max(1, len(columns))))
    nrows = int(np.ceil(max(1, len(columns)) / ncols))
    if point_size is None:
        point_size = float(np.clip(8000.0 / max(n, 1), 0.5, 30.0))
    seed = int(check_random_state(random_state).randint(2**31 - 1))
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    order = order[np.isfinite(xy[order]).all(axis=1)]
    rasterized = n > 5000

    fig = Figure(figsize=(ncols * panel_size * 1.35, nrows * panel_size), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[max(1, len(columns)):]:
        ax.remove()
    style = {"s": point_size, "alpha": alpha, "linewidths": 0, "rasterized": rasterized}
    if not columns:
        ax = axes[0]
        ax.scatter(xy[order, 0], xy[order, 1], color=OKABE_ITO[0], gid="points", **style)
        _style_axes(ax, None)
    for ax, column in zip(axes[:len(columns)], columns, strict=True):
        values = metadata[column]
        kind = kinds.get(column) or _infer_kind(values)
        if kind == "categorical":
            _draw_categorical(ax, xy, values, order, style, max_categories)
        else:
            _draw_continuous(fig, ax, xy, values, order, style, cmap)
        _style_axes(ax, str(column))
    if thumbnails is not None:
        if images is None:
            raise ConfigError("thumbnails= needs images= (the images of the points)")
        _draw_thumbnails(axes[0], xy, images, thumbnails, thumbnail_size, seed)
    if title:
        fig.suptitle(title)
    if path is not None:
        _save(fig, path, dpi)
    return fig


# --------------------------------------------------------------------------------------
# panels
# --------------------------------------------------------------------------------------
def _draw_categorical(ax, xy, values: pd.Series, order, style, max_categories: int) -> None:
    from matplotlib.lines import Line2D

    missing = values.isna().to_numpy()
    present = values[~missing]
    categories = _category_order(values)
    counts = present.value_counts()
    if len(categories) > max_categories:
        keep = set(counts.index[:max(1, max_categories - 1)])
        categories = [c for c in categories if c in keep]
        lumped = True
    else:
        lumped = False
    palette = OKABE_ITO if len(categories) <= len(OKABE_ITO) else _tab20()
    if palette is not OKABE_ITO:
        logger.info("%d categories exceed the 8 colour-blind-safe colours; using tab20",
                    len(categories))
    colour_of = {c: palette[i % len(palette)] for i, c in enumerate(categories)}
    colours = np.array([colour_of.get(v, _OTHER_COLOR) for v in values.to_numpy()],
                       dtype=object)
    handles = []
    if missing.any():
        _draw_missing(ax, xy, missing, order, style)
    drawn = order[~missing[order]]
    ax.scatter(xy[drawn, 0], xy[drawn, 1], c=list(colours[drawn]), gid="points", **style)
    marker = {"marker": "o", "linestyle": "", "markersize": 6}
    for category in categories:
        handles.append(Line2D([], [], color=colour_of[category], markeredgewidth=0,
                              label=f"{category} ({int(counts.get(category, 0))})", **marker))
    if lumped:
        n_other = int(len(present) - counts[list(categories)].sum())
        n_kinds = len(counts) - len(categories)
        handles.append(Line2D([], [], color=_OTHER_COLOR, markeredgewidth=0,
                              label=f"other: {n_kinds} categories ({n_other})", **marker))
    if missing.any():
        handles.append(Line2D([], [], color=MISSING_COLOR, markeredgewidth=0,
                              label=f"missing ({int(missing.sum())})", **marker))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              fontsize="small", handletextpad=0.3, borderaxespad=0.0)


def _draw_continuous(fig, ax, xy, values: pd.Series, order, style, cmap: str) -> None:
    from matplotlib.lines import Line2D

    numeric, is_date = _as_numbers(values)
    missing = ~np.isfinite(numeric)
    if missing.any():
        _draw_missing(ax, xy, missing, order, style)
    drawn = order[~missing[order]]
    if len(drawn) == 0:
        raise DataError(f"column {values.name!r} has no finite value to colour by")
    scatter = ax.scatter(xy[drawn, 0], xy[drawn, 1], c=numeric[drawn], cmap=cmap,
                         gid="points", **style)
    colorbar = fig.colorbar(scatter, ax=ax, shrink=0.85, pad=0.02)
    colorbar.set_label(str(values.name))
    if is_date:
        import matplotlib.dates as mdates

        locator = mdates.AutoDateLocator()
        colorbar.ax.yaxis.set_major_locator(locator)
        colorbar.ax.yaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    if missing.any():
        ax.legend(handles=[Line2D([], [], marker="o", linestyle="", markersize=6,
                                  markeredgewidth=0, color=MISSING_COLOR,
                                  label=f"missing ({int(missing.sum())})")],
                  loc="upper left", bbox_to_anchor=(0.0, 0.0), frameon=False,
                  fontsize="small", borderaxespad=0.2)


def _draw_missing(ax, xy, missing, order, style) -> None:
    rows = order[missing[order]]
    ax.scatter(xy[rows, 0], xy[rows, 1], color=MISSING_COLOR, gid="missing", zorder=0.9,
               **style)


def _style_axes(ax, title: str | None) -> None:
    # the axes of a t-SNE or UMAP map carry no units: only neighbourhoods mean something
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if title is not None:
        ax.set_title(title)


# --------------------------------------------------------------------------------------
# thumbnails
# --------------------------------------------------------------------------------------
def _draw_thumbnails(ax, xy, images, thumbnails, size: float, random_state: int) -> None:
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    finite = np.flatnonzero(np.isfinite(xy).all(axis=1))
    rows = _thumbnail_rows(xy, finite, thumbnails, random_state)
    n_images = len(images)
    if n_images != len(xy):
        raise DataError(f"images has {n_images} entries but xy has {len(xy)} points; give "
                        f"one image per point")
    centre = np.nanmedian(xy[finite], axis=0)
    # room for the thumbnails that stick out of the point cloud: widen the data limits
    # themselves, since an equal aspect with adjustable="datalim" may undo plain margins
    low, high = xy[finite].min(axis=0), xy[finite].max(axis=0)
    pad = 0.4 * (high - low).max()
    ax.update_datalim([low - pad, high + pad])
    ax.autoscale_view()
    for row in rows:
        picture = _displayable(_read_image(images, int(row)))
        zoom = size / max(picture.shape)
        box = OffsetImage(picture, zoom=zoom, cmap="gray", interpolation="nearest")
        direction = xy[row] - centre
        norm = float(np.hypot(*direction))
        offset = (direction / norm if norm > 0 else np.array([0.0, 1.0])) * size * 1.0
        annotation = AnnotationBbox(
            box, xy[row], xybox=tuple(offset), boxcoords="offset points", pad=0.15,
            arrowprops={"arrowstyle": "-", "color": "0.3", "linewidth": 0.6},
            bboxprops={"edgecolor": "0.3", "linewidth": 0.5})
        annotation.set_gid(f"thumbnail-{int(row)}")
        ax.add_artist(annotation)


def _thumbnail_rows(xy, finite, thumbnails, random_state) -> np.ndarray:
    if isinstance(thumbnails, (int, np.integer)) and not isinstance(thumbnails, bool):
        k = int(thumbnails)
        if k < 1:
            raise ConfigError(f"thumbnails must be a positive number of points or a list of "
                              f"rows, got {thumbnails!r}")
        k = min(k, len(finite))
        from sklearn.cluster import KMeans

        points = xy[finite]
        centres = KMeans(n_clusters=k, n_init=1, random_state=random_state).fit(
            points).cluster_centers_
        nearest = np.argmin(((points[:, None, :] - centres[None]) ** 2).sum(-1), axis=0)
        return finite[np.unique(nearest)]
    rows = np.asarray(thumbnails)
    if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
        raise InputTypeError(f"thumbnails must be an int or a sequence of row positions, got "
                             f"{thumbnails!r}")
    bad = rows[(rows < 0) | (rows >= len(xy))]
    if len(bad):
        raise ConfigError(f"thumbnail rows must be in [0, {len(xy)}), got {bad.tolist()[:5]}")
    return rows


def _read_image(images, row: int) -> np.ndarray:
    item = images[row]
    if isinstance(item, dict):
        item = item["image"]
    if hasattr(item, "detach"):
        item = item.detach().cpu().numpy()
    return np.asarray(item, dtype=np.float32)


def _displayable(image: np.ndarray) -> np.ndarray:
    """A 2-D (grey) or (H, W, 3) array in [0, 1] from a channel-first image."""
    if image.ndim == 4:  # (C, D, H, W): middle slice
        image = image[:, image.shape[1] // 2]
    if image.ndim == 3:
        image = np.moveaxis(image, 0, -1) if image.shape[0] == 3 else image[0]
    if image.ndim not in (2, 3):
        raise InputShapeError(f"thumbnail images must be (H, W), (C, H, W) or (C, D, H, W), "
                              f"got an image of shape {image.shape}")
    finite = image[np.isfinite(image)]
    low, high = (np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0))
    return np.clip((image - low) / max(high - low, 1e-12), 0, 1)


# --------------------------------------------------------------------------------------
# checks and small helpers
# --------------------------------------------------------------------------------------
def _check_xy(xy) -> np.ndarray:
    if hasattr(xy, "detach"):
        xy = xy.detach().cpu().numpy()
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise InputShapeError(f"xy must have shape (n_points, 2), got {xy.shape}; project the "
                              f"embeddings to 2-D first (latentaudit.Projector)")
    return xy


def _check_metadata(metadata, n: int) -> pd.DataFrame:
    if metadata is None:
        return pd.DataFrame(index=range(n))
    if isinstance(metadata, pd.Series):
        metadata = metadata.to_frame()
    elif isinstance(metadata, dict):
        metadata = pd.DataFrame(metadata)
    if not isinstance(metadata, pd.DataFrame):
        raise InputTypeError(f"metadata must be a pandas DataFrame, Series or dict, got "
                             f"{type(metadata).__name__}")
    if len(metadata) != n:
        raise DataError(f"metadata has {len(metadata)} rows but xy has {n} points; give one "
                        f"row per point, in the same order")
    return metadata.reset_index(drop=True)


def _check_columns(columns, metadata: pd.DataFrame) -> list:
    if columns is None:
        return [c for c in metadata.columns if not _looks_like_id(metadata[c])]
    if isinstance(columns, str) or not isinstance(columns, Sequence):
        columns = [columns]
    for column in columns:
        check_option("column", column, list(metadata.columns))
    return list(columns)


def _looks_like_id(values: pd.Series) -> bool:
    textual = not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
                   or isinstance(values.dtype, pd.CategoricalDtype)
                   or pd.api.types.is_datetime64_any_dtype(values))
    return textual and len(values) > 1 and values.nunique(dropna=True) == len(values)


def _infer_kind(values: pd.Series) -> str:
    if (pd.api.types.is_bool_dtype(values) or isinstance(values.dtype, pd.CategoricalDtype)
            or not (pd.api.types.is_numeric_dtype(values)
                    or pd.api.types.is_datetime64_any_dtype(values))):
        return "categorical"
    if pd.api.types.is_datetime64_any_dtype(values):
        return "continuous"
    present = values.dropna().to_numpy(dtype=np.float64)
    present = present[np.isfinite(present)]
    if present.size and np.all(present == np.round(present)) and len(
            np.unique(present)) <= _MAX_INTEGER_CATEGORIES:
        return "categorical"
    return "continuous"


def _category_order(values: pd.Series) -> list:
    if isinstance(values.dtype, pd.CategoricalDtype):
        used = set(values.dropna().unique())
        return [c for c in values.cat.categories if c in used]
    unique = list(pd.unique(values.dropna()))
    try:
        return sorted(unique)
    except TypeError:
        return sorted(unique, key=str)


def _as_numbers(values: pd.Series) -> tuple[np.ndarray, bool]:
    if pd.api.types.is_datetime64_any_dtype(values):
        import matplotlib.dates as mdates

        numbers = np.full(len(values), np.nan)
        present = values.notna().to_numpy()
        numbers[present] = mdates.date2num(values[present].dt.tz_localize(None)
                                           if values.dt.tz is not None else values[present])
        return numbers, True
    try:
        return pd.to_numeric(values, errors="raise").to_numpy(dtype=np.float64,
                                                               na_value=np.nan), False
    except (TypeError, ValueError) as err:
        raise DataError(f"column {values.name!r} is not numeric and cannot be drawn as "
                        f"continuous; pass kinds={{{values.name!r}: 'categorical'}}") from err


def _tab20() -> tuple:
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    return tuple(to_hex(c) for c in colormaps["tab20"].colors)


def _save(fig, path, dpi: int) -> None:
    path = Path(path)
    suffix = path.suffix.lower()
    check_option("the extension of path", suffix, list(_SAVE_FORMATS))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    logger.info("saved the projection figure to %s", path)
