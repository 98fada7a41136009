"""2-D image files (PNG, JPEG, ...) listed in a table, read with Pillow."""

from __future__ import annotations

import difflib
import logging
import os

import numpy as np
import pandas as pd

from ..errors import DataError
from ..utils import check_option
from ._base import ImageDataset, read_table
from ._transforms import _check_intensity, _check_size, _scale_inplace, pad_or_crop

__all__ = ["ImageFolderDataset"]

logger = logging.getLogger(__name__)

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


class ImageFolderDataset(ImageDataset):
    """A dataset of 2-D image files listed in a table (the CheXpert layout).

    The table has a column of file paths (relative to ``root``) and any other columns
    (labels, sex, age, view, ...), which become :attr:`metadata`.  Several images may
    belong to one patient: name the patient column with ``id_column`` and
    :attr:`slice_index` numbers a patient's images in table order.

    Every image is read with Pillow, converted to ``channels`` channels, scaled to
    [-1, 1], shrunk or enlarged to fit ``size`` keeping its aspect ratio (bilinear, with
    Pillow's anti-aliasing) and padded with -1 to exactly ``size``.  Items are float32
    ``(channels, H, W)``.

    Parameters
    ----------
    csv_or_table : str, os.PathLike or pandas.DataFrame
        The table, or a CSV/TSV file.
    root : str or os.PathLike, optional
        Folder the paths are relative to.  Default: the CSV file's folder, or the current
        directory for a DataFrame.  (For CheXpert, whose paths start with
        ``CheXpert-v1.0-small/``, pass the folder that holds that folder.)
    path_column : str, default "Path"
        Column holding the image paths (absolute paths are used as they are).
    id_column : str, optional
        Column holding the patient (subject) id.  Default: each image is its own subject,
        with its path as id (then :attr:`id_column` is ``path_column``).  To derive ids
        from paths, add a column first, e.g.
        ``table["patient"] = table["Path"].str.extract(r"(patient\\d+)")``.
    size : int or (int, int), optional
        Output ``(H, W)``.  Default: keep the files' size (which must then be the same
        for all images).
    channels : {1, 3}, default 1
        1 converts colour to grayscale (luminance); 3 gives RGB (grayscale repeated).
    intensity : "dtype", (float, float) or None, default "dtype"
        ``"dtype"`` maps the file's full range to [-1, 1] (0..255 for 8-bit images,
        0..65535 for 16-bit ones), keeping the windowing the images were saved with;
        a ``(lower, upper)`` pair scales each image between those percentiles (clipping);
        ``None`` keeps raw values (padding then uses the image's minimum).
    on_error : {"raise", "skip"}, default "raise"
        ``"raise"``: files are checked now (present, recognised by Pillow, same size when
        ``size`` is None) and a file that fails to decode raises a
        :class:`~latentaudit.errors.DataError` naming it when loaded.  ``"skip"``: every
        image is decoded once now; bad rows are left out, listed in :attr:`skipped` and
        logged as one warning.
    verbose : bool, default False
        Show a progress bar while checking the files.

    Attributes
    ----------
    ids, slice_index, metadata : as in :class:`~latentaudit.data.ImageDataset`
        One entry (row) per kept image, in table order.
    paths : numpy.ndarray
        Full path of every item.
    skipped : pandas.DataFrame
        Columns ``path``, ``id``, ``reason``.
    image_shape : tuple of int
        ``(channels, H, W)``.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.DataError` / ``ConfigError``) for a missing table,
        path or id column, missing or unreadable files, images of different sizes without
        ``size``, and bad parameters.

    Examples
    --------
    >>> import latentaudit as la
    >>> ds = la.ImageFolderDataset("CheXpert-v1.0-small/train.csv", root=".",
    ...                            size=256)  # doctest: +SKIP
    >>> ds[0]["image"].shape  # doctest: +SKIP
    torch.Size([1, 256, 256])
    """

    spatial_dims = 2

    def __init__(self, csv_or_table, root=None, *, path_column: str = "Path",
                 id_column: str | None = None, size=None, channels: int = 1,
                 intensity="dtype", on_error: str = "raise", verbose: bool = False) -> None:
        super().__init__()
        self.path_column = path_column
        self.size = _check_size(size, 2)
        self.channels = check_option("channels", channels, (1, 3))
        self.intensity = _check_intensity(intensity, ("dtype",))
        self.on_error = check_option("on_error", on_error, ("raise", "skip"))
        self.verbose = verbose
        table = read_table(csv_or_table, id_column).reset_index(drop=True)
        if root is None:
            root = (os.path.dirname(os.path.abspath(os.fspath(csv_or_table)))
                    if not isinstance(csv_or_table, pd.DataFrame) else os.getcwd())
        elif not os.path.isdir(root):
            raise DataError(f"root folder {os.fspath(root)!r} does not exist")
        self.root = os.fspath(root)
        for name, column in (("path_column", path_column), ("id_column", id_column)):
            if column is not None and column not in table.columns:
                columns = list(map(str, table.columns))
                close = difflib.get_close_matches(str(column), columns, n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise DataError(f"{name} {column!r} is not a column of the table; its columns "
                                f"are {columns}{hint}")
        self.id_column = path_column if id_column is None else id_column
        if not len(table):
            raise DataError("the table has no rows")
        self._build(table)

    def _build(self, table: pd.DataFrame) -> None:
        skipped, kept, shapes = [], [], {}
        rows = range(len(table))
        if self.verbose:
            from tqdm.auto import tqdm

            rows = tqdm(rows, desc="checking images", unit="image")
        full_paths, ids = [], []
        for row in rows:
            value = table[self.path_column].iloc[row]
            subject = table[self.id_column].iloc[row]
            try:
                if pd.isna(value) or str(value).strip() == "":
                    raise DataError(f"row {row} has no path in column {self.path_column!r}")
                if pd.isna(subject):
                    raise DataError(f"row {row} has no id in column {self.id_column!r}")
                path = os.path.join(self.root, str(value))
                shape = self._check_file(path)
                if self.on_error == "skip":
                    self._read(path)
            except DataError as err:
                if self.on_error == "raise":
                    raise
                skipped.append((None if pd.isna(value) else str(value), None
                                if pd.isna(subject) else str(subject), str(err)))
                continue
            kept.append(row)
            full_paths.append(path)
            ids.append(str(subject))
            shapes.setdefault(shape, path)
        self.skipped = pd.DataFrame(skipped, columns=["path", "id", "reason"])
        if len(self.skipped):
            logger.warning("ImageFolderDataset: skipped %d image(s), see .skipped; first: %s",
                           len(self.skipped), self.skipped["reason"].iloc[0])
        if not kept:
            raise DataError(f"no usable image: all {len(table)} rows were skipped; first "
                            f"reason: {self.skipped['reason'].iloc[0]}")
        if self.size is None and len(shapes) > 1:
            (a, path_a), (b, path_b) = list(shapes.items())[:2]
            raise DataError(f"images differ in size ({path_a!r} is {a[0]}x{a[1]}, {path_b!r} "
                            f"is {b[0]}x{b[1]}); pass size= to resize them to one size")
        self._paths = np.array(full_paths, dtype=object)
        self._ids = np.array(ids, dtype=object)
        self._slice_index = pd.Series(ids).groupby(ids).cumcount().to_numpy(dtype=np.int64)
        metadata = table.iloc[kept].reset_index(drop=True)
        metadata[self.id_column] = self._ids
        self._metadata = metadata[[self.id_column]
                                  + [c for c in metadata.columns if c != self.id_column]]
        self._image_shape = (self.channels,) + (self.size or next(iter(shapes)))

    @staticmethod
    def _check_file(path: str) -> tuple[int, int]:
        """Open the file's header; return its (H, W)."""
        from PIL import Image

        if not os.path.isfile(path):
            raise DataError(f"image file {path!r} does not exist")
        try:
            with Image.open(path) as img:
                width, height = img.size
        except Exception as err:  # UnidentifiedImageError, OSError, DecompressionBombError
            raise DataError(f"cannot read image file {path!r}: {err}") from err
        return height, width

    def _read(self, path: str) -> np.ndarray:
        """Decode, convert, scale and fit one image; (channels, H, W) float32."""
        from PIL import Image

        try:
            with Image.open(path) as img:
                img.load()
                mode = img.mode
                if mode in _SIXTEEN_BIT:
                    array, full = np.asarray(img).astype(np.float32), 65535.0
                elif mode in ("I", "F"):
                    array, full = np.asarray(img).astype(np.float32), None
                else:
                    target = "L" if self.channels == 1 else "RGB"
                    array, full = np.asarray(img.convert(target), dtype=np.float32), 255.0
        except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError ...
            raise DataError(f"cannot decode image file {path!r}: {type(err).__name__}: "
                            f"{err}") from err
        if array.ndim == 2:
            array = np.repeat(array[np.newaxis], self.channels, axis=0)
        else:
            array = np.ascontiguousarray(array.transpose(2, 0, 1))
        low, high = float(array.min()), float(array.max())
        if not (np.isfinite(low) and np.isfinite(high)):
            raise DataError(f"image file {path!r} contains NaN or infinite values")
        if self.intensity == "dtype":
            if full is None:
                raise DataError(
                    f"image file {path!r} has Pillow mode {mode!r}, which has no fixed value "
                    f"range; pass intensity=(0.5, 99.5) to scale it by percentiles")
            array *= 2.0 / full
            array -= 1.0
            pad_value = -1.0
        elif self.intensity is not None:
            _scale_inplace(array, *self.intensity)
            pad_value = -1.0
        else:
            pad_value = low
        if self.size is not None:
            array = self._fit(array, pad_value)
        return array

    def _fit(self, array: np.ndarray, pad_value: float) -> np.ndarray:
        from PIL import Image

        height, width = array.shape[1:]
        factor = min(self.size[0] / height, self.size[1] / width)
        new_h = min(self.size[0], max(1, round(height * factor)))
        new_w = min(self.size[1], max(1, round(width * factor)))
        if (new_h, new_w) != (height, width):
            array = np.stack([
                np.asarray(Image.fromarray(np.ascontiguousarray(channel)).resize(
                    (new_w, new_h), resample=Image.Resampling.BILINEAR))
                for channel in array])
        return pad_or_crop(array, self.size, mode="center", pad_value=pad_value)

    def __len__(self) -> int:
        return len(self._paths)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one item's image: ``(channels, H, W)``."""
        return self._image_shape

    @property
    def paths(self) -> np.ndarray:
        """Full path of every item."""
        return self._paths

    def load_image(self, index: int) -> np.ndarray:
        """Read item ``index`` as a float32 array of shape :attr:`image_shape`."""
        image = self._read(self._paths[index])
        if image.shape != self._image_shape:  # only with size=None
            raise DataError(f"image file {self._paths[index]!r} is {image.shape[1]}x"
                            f"{image.shape[2]}, expected {self._image_shape[1]}x"
                            f"{self._image_shape[2]} like the other images; pass size=")
        return image

