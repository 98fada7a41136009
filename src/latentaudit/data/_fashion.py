"""Fashion-MNIST, read from the original gzip IDX files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ..utils import check_option
from ._array import ArrayDataset

__all__ = ["FASHION_MNIST_CLASSES", "load_fashion_mnist"]

#: Where Debian's ``dataset-fashion-mnist`` puts the files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
#: The ten class names, in label order.
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
_PREFIX = {"train": "train", "test": "t10k"}
_EXPECTED_COUNT = {"train": 60000, "test": 10000}
_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


def load_fashion_mnist(split: str = "train", *, path=None, size: int | None = None
                       ) -> ArrayDataset:
    """Load Fashion-MNIST: real 28x28 grey images of clothes in ten classes.

    Parameters
    ----------
    split : {"train", "test", "all"}, default "train"
        The 60,000 training images, the 10,000 test images, or both (training first).
    path : str or os.PathLike, optional
        Folder holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte`` files, gzipped
        (``.gz``) or not.  Default: ``/usr/share/datasets/fashion-mnist`` (Debian package
        ``dataset-fashion-mnist``).
    size : int, optional
        Resize the images to ``size`` x ``size`` (bilinear, antialiased), e.g. 32 for
        networks that halve the resolution several times.  Default: keep 28x28.

    Returns
    -------
    ArrayDataset
        ``images`` float32 ``(N, 1, 28, 28)`` (or ``size``) in [-1, 1], and ``metadata`` with
        ``subject`` (``"train-00000"``, ...), ``label`` (int, 0-9), ``label_name`` and
        ``split``.

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.DataError`) when the files are missing, naming the
        package to install, or malformed (wrong magic number, sizes, truncated file);
        (as :class:`latentaudit.errors.ConfigError`) for a bad ``split`` or ``size``.

    Examples
    --------
    >>> import latentaudit as la
    >>> test = la.datasets.load_fashion_mnist("test")  # doctest: +SKIP
    >>> test.images.shape, test.metadata["label_name"].iloc[0]  # doctest: +SKIP
    ((10000, 1, 28, 28), 'Ankle boot')
    """
    split = check_option("split", split, ("train", "test", "all"))
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer))
                             or size < 1):
        raise ConfigError(f"size must be a positive integer or None, got {size!r}")
    folder = Path(DEBIAN_FASHION_MNIST if path is None else path)
    parts = ("train", "test") if split == "all" else (split,)
    images, labels, subjects, splits = [], [], [], []
    for part in parts:
        part_images = _read_idx(_find(folder, part, "images-idx3"), _IMAGES_MAGIC, 3)
        part_labels = _read_idx(_find(folder, part, "labels-idx1"), _LABELS_MAGIC, 1)
        if len(part_images) != len(part_labels):
            raise DataError(
                f"the {part} split of Fashion-MNIST in {str(folder)!r} has "
                f"{len(part_images)} images but {len(part_labels)} labels")
        if part_labels.size and part_labels.max() >= len(FASHION_MNIST_CLASSES):
            raise DataError(
                f"the {part} labels of Fashion-MNIST in {str(folder)!r} must be 0-9, found "
                f"{int(part_labels.max())}")
        images.append(part_images)
        labels.append(part_labels)
        subjects.append(np.array([f"{part}-{i:05d}" for i in range(len(part_labels))],
                                 dtype=object))
        splits.append(np.full(len(part_labels), part, dtype=object))
    pixels = images[0] if len(images) == 1 else np.concatenate(images)
    data = pixels.astype(np.float32)[:, None]
    data *= np.float32(2 / 255)
    data -= 1
    if size is not None and size != data.shape[-1]:
        data = _resize(data, int(size))
    label = np.concatenate(labels).astype(np.int64)
    metadata = pd.DataFrame({
        "subject": np.concatenate(subjects),
        "label": label,
        "label_name": np.asarray(FASHION_MNIST_CLASSES, dtype=object)[label],
        "split": np.concatenate(splits),
    })
    return ArrayDataset(data, metadata, check_finite=False)


def _find(folder: Path, part: str, kind: str) -> Path:
    name = f"{_PREFIX[part]}-{kind}-ubyte"
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    where = ("install the Debian package dataset-fashion-mnist "
             "(sudo apt-get install dataset-fashion-mnist)"
             if folder == DEBIAN_FASHION_MNIST else
             "pass path= a folder with the original Fashion-MNIST files, or install the Debian "
             "package dataset-fashion-mnist and leave path unset")
    raise DataError(f"Fashion-MNIST file {name}.gz (or {name}) not found in {str(folder)!r}; "
                    f"{where}")


def _read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes, checking its magic number and size."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read Fashion-MNIST file {str(path)!r}: {err}") from err
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"Fashion-MNIST file {str(path)!r} is {len(raw)} bytes, too short "
                        f"for an IDX header of {header} bytes")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(f"Fashion-MNIST file {str(path)!r} has IDX magic number "
                        f"0x{found:08x}, expected 0x{magic:08x} (unsigned bytes, {ndim} "
                        f"dimension{'s' if ndim > 1 else ''})")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if ndim == 3 and shape[1:] != (28, 28):
        raise DataError(f"Fashion-MNIST file {str(path)!r} holds images of {shape[1:]}, "
                        f"expected (28, 28)")
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(f"Fashion-MNIST file {str(path)!r} is {len(raw)} bytes, expected "
                        f"{expected} for an IDX array of shape {shape} (truncated or "
                        f"corrupt?)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    out = F.interpolate(torch.from_numpy(images), size=(size, size), mode="bilinear",
                        align_corners=False, antialias=size < images.shape[-1])
    return out.clamp_(-1, 1).numpy()

