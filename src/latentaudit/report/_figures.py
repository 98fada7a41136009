"""Figures of the audit report, rendered to PNG bytes: image grids, thumbnails, cluster mean
and difference images, Grad-CAM overlays and counterfactual strips.

Every figure is a plain :class:`matplotlib.figure.Figure` (no pyplot state), so the report
can be written on a server without a display.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from ..errors import InputShapeError

__all__ = [
    "counterfactual_strip",
    "difference_panel",
    "figure_to_png",
    "image_grid",
    "overlay_grid",
    "thumbnail_png",
]

_GREY = "gray"
_DIVERGING = "RdBu_r"


def figure_to_png(fig, dpi: int = 110) -> bytes:
    """Render a matplotlib figure to PNG bytes.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    dpi : int, default 110
        Resolution.

    Returns
    -------
    bytes
        The PNG file.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> figure_to_png(Figure(figsize=(1, 1)))[:4]
    b'\\x89PNG'
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


def display_slice(image) -> np.ndarray:
    """A 2-D view of one image: the first channel of ``(C, H, W)``, the middle slice of
    ``(C, D, H, W)``, or ``(H, W)`` as given."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 4:
        image = image[:, image.shape[1] // 2]
    if image.ndim == 3:
        image = image[0] if image.shape[0] != 3 else np.moveaxis(image, 0, -1).mean(axis=-1)
    if image.ndim != 2:
        raise InputShapeError(f"cannot show an image of shape {image.shape}; expected "
                              f"(H, W), (C, H, W) or (C, D, H, W)")
    return image


def grey_levels(planes, *, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """8-bit grey levels of a stack of 2-D planes ``(N, H, W)``, each scaled from ``vmin``
    (black) to ``vmax`` (white), by default its own range: how thumbnails show images."""
    planes = np.asarray(planes, dtype=np.float32)
    low = np.nanmin(planes, axis=(1, 2), keepdims=True) if vmin is None else np.float32(vmin)
    high = np.nanmax(planes, axis=(1, 2), keepdims=True) if vmax is None else np.float32(vmax)
    scaled = np.clip((planes - low) / np.maximum(high - low, 1e-8), 0.0, 1.0)
    return (np.nan_to_num(scaled) * 255).round().astype(np.uint8)


def thumbnail_png(image, *, size: int = 64, vmin: float | None = None,
                  vmax: float | None = None) -> bytes:
    """A small grey-scale PNG of one image, without axes, at its own pixel resolution
    (upsampled by an integer factor to at least ``size`` pixels).

    Parameters
    ----------
    image : array-like
        ``(H, W)``, ``(C, H, W)`` or ``(C, D, H, W)``.
    size : int, default 64
        Smallest side of the thumbnail in pixels.
    vmin, vmax : float, optional
        Intensity window; default the image's own range.

    Returns
    -------
    bytes
        The PNG file.
    """
    from PIL import Image

    pixels = grey_levels(display_slice(image)[None], vmin=vmin, vmax=vmax)[0]
    factor = max(1, int(np.ceil(size / max(1, min(pixels.shape)))))
    picture = Image.fromarray(pixels, mode="L")
    if factor > 1:
        picture = picture.resize((pixels.shape[1] * factor, pixels.shape[0] * factor),
                                 Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _grid(n_rows: int, n_cols: int, cell: float, *, extra_width: float = 0.0):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(n_cols * cell + extra_width, n_rows * cell + 0.35),
                 layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    return fig, axes


def image_grid(images, titles: Sequence[str] | None = None, *, ncols: int = 8,
               cell: float = 1.3, title: str | None = None, dpi: int = 110) -> bytes:
    """Images side by side on one grey scale, as a PNG.

    Parameters
    ----------
    images : array-like
        ``(N, C, *spatial)`` or ``(N, H, W)``.
    titles : sequence of str, optional
        One short caption per image.
    ncols : int, default 8
        Images per row.
    cell : float, default 1.3
        Size of one image in inches.
    title : str, optional
        Title of the figure.
    dpi : int, default 110
        Resolution.

    Returns
    -------
    bytes
        The PNG file.
    """
    planes = [display_slice(image) for image in images]
    if not planes:
        raise InputShapeError("image_grid needs at least one image")
    ncols = max(1, min(ncols, len(planes)))
    nrows = int(np.ceil(len(planes) / ncols))
    low = min(float(p.min()) for p in planes)
    high = max(float(p.max()) for p in planes)
    fig, axes = _grid(nrows, ncols, cell)
    for k, ax in enumerate(axes.ravel()):
        if k >= len(planes):
            ax.set_visible(False)
            continue
        ax.imshow(planes[k], cmap=_GREY, vmin=low, vmax=high, interpolation="nearest")
        if titles is not None:
            ax.set_title(str(titles[k]), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return figure_to_png(fig, dpi)


def difference_panel(mean_source, mean_target, difference, significant=None, *,
                     source_title: str = "cluster", target_title: str = "rest",
                     title: str | None = None, dpi: int = 110) -> bytes:
    """Two mean images, their difference, and the difference where it is significant, as a
    PNG.

    Parameters
    ----------
    mean_source, mean_target : array-like
        The groups' mean images, ``(C, *spatial)`` or ``(H, W)``.
    difference : array-like
        ``mean_source - mean_target`` (diverging colours, red where the source is
        brighter).
    significant : array-like of bool, optional
        Pixels whose difference is significant; a fourth panel shows the difference there
        only.
    source_title, target_title : str
        Captions of the two means.
    title : str, optional
        Title of the figure.
    dpi : int, default 110
        Resolution.

    Returns
    -------
    bytes
        The PNG file.
    """
    a, b = display_slice(mean_source), display_slice(mean_target)
    d = display_slice(difference)
    panels = 3 if significant is None else 4
    low, high = min(a.min(), b.min()), max(a.max(), b.max())
    fig, axes = _grid(1, panels, 2.0, extra_width=0.6)
    axes = axes[0]
    axes[0].imshow(a, cmap=_GREY, vmin=low, vmax=high, interpolation="nearest")
    axes[0].set_title(source_title, fontsize=8)
    axes[1].imshow(b, cmap=_GREY, vmin=low, vmax=high, interpolation="nearest")
    axes[1].set_title(target_title, fontsize=8)
    limit = float(np.max(np.abs(d))) or 1.0
    style = {"cmap": _DIVERGING, "vmin": -limit, "vmax": limit, "interpolation": "nearest"}
    shown = axes[2].imshow(d, **style)
    axes[2].set_title("difference", fontsize=8)
    if significant is not None:
        mask = display_slice(np.asarray(significant, dtype=np.float32)) > 0.5
        axes[3].imshow(np.where(mask, d, np.nan), **style)
        axes[3].set_facecolor("#f0f0f0")
        axes[3].set_title(f"significant ({mask.mean():.0%})", fontsize=8)
    fig.colorbar(shown, ax=axes[-1], shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=9)
    return figure_to_png(fig, dpi)


def overlay_grid(images, maps, titles: Sequence[str] | None = None, *, ncols: int = 6,
                 cell: float = 1.5, alpha: float = 0.45, title: str | None = None,
                 dpi: int = 110) -> bytes:
    """Class activation maps blended over their images, as a PNG.

    Parameters
    ----------
    images : array-like
        ``(N, C, *spatial)`` images.
    maps : array-like
        ``(N, *spatial)`` maps in [0, 1].
    titles : sequence of str, optional
        One caption per image.
    ncols : int, default 6
        Images per row.
    cell : float, default 1.5
        Size of one image in inches.
    alpha : float, default 0.45
        Weight of the map.
    title : str, optional
        Title of the figure.
    dpi : int, default 110
        Resolution.

    Returns
    -------
    bytes
        The PNG file.
    """
    from ..explain import overlay

    planes = [display_slice(image) for image in images]
    heat = [np.asarray(m, dtype=np.float32) for m in maps]
    heat = [m[m.shape[0] // 2] if m.ndim == 3 else m for m in heat]
    if len(planes) != len(heat):
        raise InputShapeError(f"got {len(planes)} images but {len(heat)} maps")
    ncols = max(1, min(ncols, len(planes)))
    nrows = int(np.ceil(len(planes) / ncols))
    fig, axes = _grid(nrows, ncols, cell)
    for k, ax in enumerate(axes.ravel()):
        if k >= len(planes):
            ax.set_visible(False)
            continue
        ax.imshow(overlay(planes[k], heat[k], alpha=alpha), interpolation="nearest")
        if titles is not None:
            ax.set_title(str(titles[k]), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return figure_to_png(fig, dpi)


def counterfactual_strip(sequences, alphas, difference=None, *, row_titles=None,
                         title: str | None = None, cell: float = 1.3, dpi: int = 110) -> bytes:
    """Decoded counterfactual sequences, one row per image, and what the move changed.

    Parameters
    ----------
    sequences : array-like
        ``(N, steps, C, *spatial)`` decoded images; step 0 is the unmoved embedding.
    alphas : array-like
        ``(steps,)`` how far along the direction each step went.
    difference : array-like, optional
        ``(N, C, *spatial)`` last step minus first, shown in a last column.
    row_titles : sequence of str, optional
        One label per row.
    title : str, optional
        Title of the figure.
    cell : float, default 1.3
        Size of one image in inches.
    dpi : int, default 110
        Resolution.

    Returns
    -------
    bytes
        The PNG file.
    """
    sequences = np.asarray(sequences, dtype=np.float32)
    if sequences.ndim < 4:
        raise InputShapeError(f"sequences must be (N, steps, C, *spatial), got shape "
                              f"{sequences.shape}")
    n, steps = sequences.shape[:2]
    extra = 0 if difference is None else 1
    fig, axes = _grid(n, steps + extra, cell)
    planes = [[display_slice(sequences[i, s]) for s in range(steps)] for i in range(n)]
    low = min(float(p.min()) for row in planes for p in row)
    high = max(float(p.max()) for row in planes for p in row)
    for i in range(n):
        for s in range(steps):
            ax = axes[i, s]
            ax.imshow(planes[i][s], cmap=_GREY, vmin=low, vmax=high, interpolation="nearest")
            if i == 0:
                ax.set_title(f"α = {float(alphas[s]):.2g}", fontsize=7)
        if row_titles is not None:
            axes[i, 0].set_ylabel(str(row_titles[i]), fontsize=7)
        if difference is not None:
            d = display_slice(np.asarray(difference[i], dtype=np.float32))
            limit = float(np.max(np.abs(d))) or 1.0
            axes[i, steps].imshow(d, cmap=_DIVERGING, vmin=-limit, vmax=limit,
                                  interpolation="nearest")
            if i == 0:
                axes[i, steps].set_title("change", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return figure_to_png(fig, dpi)
