"""The demo cohort: a simulated multi-site head MRI study with planted findings.

Every subject is a real T1-weighted head volume (Colin27 ``ch2`` from Debian's
``mricron-data``, its brain blended with nilearn's MNI152 2009a template) under a random
smooth deformation, a head size and shape that follow sex and height, age effects, a
contrast change and Rician noise (see :mod:`._demo_render`).  Two of the four sites carry
an acquisition artefact like the ones Graf et al. (2024) found in NAKO, both from
:mod:`latentaudit.artefacts`: site B's field of view is shifted so that part of the head
leaves the image, site C uses a head-rest that shows in the image.  A few sex labels are
flipped.  What was planted is recorded in ``.truth`` and ``.artefact_masks``.

- 2-D: the centre sagittal slice.  The noise-free 128x128 slices ship inside the package
  (``_files/demo_cohort.npz``, JPEG quality 95 inside a NumPy archive, no pickles).
- 3-D: the whole head, 400 subjects at 32^3 by default (16^3 to 64^3), rendered from the
  same templates and draws on first use and cached in the user's cache folder (not
  shipped).

:func:`load_demo_cohort` adds Rician noise from a fixed seed at the requested size, so every
load gives the same arrays.  :func:`make_demo_cohort` writes a cohort file from the template
volumes (``python scripts/make_demo_cohort.py``).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, InputShapeError
from ..utils import cache_dir, check_option
from ._array import ArrayDataset
from ._demo_render import (
    SITE_ARTEFACTS,
    SITE_B_ARTEFACT,
    VOLUME_GRID,
    draw_population,
    draw_volume_deformations,
    load_templates,
    render_slice,
    render_volume,
    template_paths,
)

__all__ = ["DEMO_FILE", "SITE_ARTEFACTS", "SITE_B_ARTEFACT", "DemoCohort", "load_demo_cohort",
           "make_demo_cohort"]

logger = logging.getLogger(__name__)

#: Where the packaged (2-D) demo cohort lives.
DEMO_FILE = Path(__file__).resolve().parent / "_files" / "demo_cohort.npz"
METADATA_COLUMNS = ("subject", "site", "sex", "age", "height", "weight")
TRUTH_COLUMNS = ("subject", "artefact", "sex_flipped", "true_sex")

_FORMAT_VERSION = 1
_STORED_SIZE = 128
_RENDER_SIZE = 256  # rendered at twice the stored size, then averaged, against aliasing
_JPEG_QUALITY = 95
#: Sides of the 3-D cohort's volumes, its default number of subjects, and the version of
#: its cache files (raise it when the rendering changes).
VOLUME_SIZES = (16, 32, 48, 64)
VOLUME_SUBJECTS = 400
_VOLUME_FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------
class DemoCohort(ArrayDataset):
    """The demo cohort: head MRI slices or volumes, their metadata and what was planted.

    Usually built by :func:`load_demo_cohort`.

    Parameters
    ----------
    images : numpy.ndarray
        float32 ``(N, 1, H, W)`` or ``(N, 1, D, H, W)`` in [-1, 1].
    metadata : pandas.DataFrame
        One row per image with the columns ``subject``, ``site``, ``sex`` (the given,
        partly wrong label), ``age`` (years), ``height`` (cm) and ``weight`` (kg).
    truth : pandas.DataFrame
        One row per image with ``subject``, ``artefact`` ("none", "fov_shift" or
        "head_rest"), ``sex_flipped`` and ``true_sex``.
    artefact_masks : numpy.ndarray
        bool, shaped like ``images``: the pixels a planted artefact changed.

    Attributes
    ----------
    images : numpy.ndarray
        The float32 images.
    truth : pandas.DataFrame
        What was planted.  The library never reads it; it is there to check findings.
    artefact_masks : numpy.ndarray
        Where it was planted.

    Examples
    --------
    >>> import latentaudit as la
    >>> cohort = la.datasets.load_demo_cohort()
    >>> cohort.images.shape[1:]
    (1, 64, 64)
    >>> sorted(cohort.metadata["site"].unique())
    ['A', 'B', 'C', 'D']
    """

    def __init__(self, images, metadata: pd.DataFrame, truth: pd.DataFrame,
                 artefact_masks) -> None:
        super().__init__(images, metadata)
        n = len(self.images)
        truth = pd.DataFrame(truth).reset_index(drop=True)
        if len(truth) != n:
            raise DataError(f"truth has {len(truth)} rows but there are {n} images")
        artefact_masks = np.asarray(artefact_masks, dtype=bool)
        if artefact_masks.shape != self.images.shape:
            raise InputShapeError(
                f"artefact_masks must be shaped like the images {self.images.shape}, got "
                f"{artefact_masks.shape}")
        self.truth = truth
        self.artefact_masks = artefact_masks

    def __repr__(self) -> str:
        meta = self._metadata
        volumes = self.images.ndim == 5
        what = ("whole-head T1 volumes (x, z, y): left to right, then the sagittal plane"
                if volumes else "centre sagittal T1 slices")
        lines = [
            f"{type(self).__name__}: simulated multi-site head MRI cohort "
            f"({what}, superior up, anterior left)",
            f"  images: {self.images.shape} {self.images.dtype}, values in "
            f"[{self.images.min():.2f}, {self.images.max():.2f}]",
            f"  subjects: {len(self.subjects)}, one {'volume' if volumes else 'slice'} each",
            f"  metadata columns: {', '.join(map(str, meta.columns))}",
        ]
        if {"site", "sex"} <= set(meta.columns):
            counts = pd.crosstab(meta["site"], meta["sex"])
            for site, row in counts.iterrows():
                by_sex = ", ".join(f"{sex} {int(k)}" for sex, k in row.items())
                lines.append(f"    site {site}: {int(row.sum())} subjects ({by_sex})")
        for column, unit in (("age", "years"), ("height", "cm"), ("weight", "kg")):
            if column in meta.columns:
                values = meta[column]
                lines.append(f"    {column}: {values.min():.1f}-{values.max():.1f} {unit} "
                             f"(mean {values.mean():.1f})")
        lines.append("  ground truth (for checking findings, never read by the library): "
                     ".truth, .artefact_masks")
        return "\n".join(lines)

    __str__ = __repr__

    def to_nifti(self, folder, rows=None, *, overwrite: bool = False) -> tuple[Path, Path]:
        """Write the 3-D cohort as a study: one NIfTI volume per subject and a table.

        The volumes are stored in RAS orientation (voxels of 240 mm / side), so that
        :class:`~latentaudit.NiftiDataset` with ``spatial_dims=3`` and the same ``size``
        reads every subject back voxel for voxel in the arrangement of :attr:`images`:
        :attr:`artefact_masks` then lie over its items (its intensities are scaled again,
        per volume).

        Parameters
        ----------
        folder : str or os.PathLike
            Created if missing; receives ``scans/<subject>.nii.gz`` and
            ``participants.csv`` (:attr:`metadata` of the rows written).
        rows : array-like of int, optional
            Row positions to write; default every subject.
        overwrite : bool, default False
            Replace files of the same names already in ``folder``; by default their
            presence stops the call before anything is written.

        Returns
        -------
        scans, participants : pathlib.Path
            The folder of volumes and the table, as ``latentaudit --images`` and
            ``--metadata`` take them.

        Raises
        ------
        ValueError
            (as :class:`latentaudit.errors.ConfigError`) for a 2-D cohort, or when a
            file to write exists already and ``overwrite`` is False.

        Examples
        --------
        >>> import numpy as np
        >>> import pandas as pd
        >>> import latentaudit as la
        >>> images = np.random.default_rng(0).uniform(-1, 1, (2, 1, 8, 8, 8)).astype("float32")
        >>> meta = pd.DataFrame({"subject": ["s1", "s2"], "site": ["A", "B"]})
        >>> truth = pd.DataFrame({"subject": ["s1", "s2"], "artefact": ["none", "none"]})
        >>> cohort = la.datasets.DemoCohort(images, meta, truth, images > 0.9)
        >>> scans, table = cohort.to_nifti("study")
        >>> ds = la.NiftiDataset(scans, metadata=table, spatial_dims=3, intensity=None)
        >>> bool(np.array_equal(ds[1]["image"].numpy(), images[1]))  # voxel for voxel
        True
        """
        from ._demo_nifti import write_study

        if self.images.ndim != 5:
            raise ConfigError("to_nifti writes volumes: load the cohort with spatial_dims=3")
        return write_study(self.images, self._metadata, folder, rows, overwrite=overwrite)


def load_demo_cohort(size: int | None = None, *, spatial_dims: int = 2,
                     path=None) -> DemoCohort:
    """Load the demo cohort: simulated subjects from four sites, 2-D slices or 3-D heads.

    Each image is a real T1 head volume under a random deformation, with a head size and
    shape that follow the subject's sex and height, age effects, a contrast change and
    Rician noise: its centre sagittal slice (2-D, about 2,000 subjects, shipped with the
    package) or the whole head (3-D, 400 subjects, made on first use and cached).  Site
    B's field of view is shifted superiorly (part of the head leaves the image), site C's
    subjects lie on a visible head-rest, sites A and D are clean; about 3% of the sex
    labels are flipped.  The sites' demographics are alike, so what sets B and C apart is
    the artefact.

    Parameters
    ----------
    size : int, optional
        Side of the images: 64 (default) or 128 in 2-D; 32 (default), 16, 48 or 64 in
        3-D.  The noise-free 64x64 images are 2x2 means of the 128x128 ones; the noise is
        drawn at each size (at 64x64 with half the standard deviation, as for pixels of
        four times the area), and the masks are 2x2 "any"s.
    spatial_dims : {2, 3}, default 2
        Slices or volumes.  Volumes are ``(x, z, y)``: left to right, then the sagittal
        plane as in the slices (superior at the top row, anterior at the left column), so
        ``images[:, :, size // 2]`` are their centre sagittal slices.  The first call per
        size renders the 3-D cohort (about 0.1 s per subject at 32^3 on one core, 1 s at
        64^3) into the user's cache folder (:func:`latentaudit.utils.cache_dir`); later
        calls read it in a second or two.
    path : str or os.PathLike, optional
        A cohort file written by :func:`make_demo_cohort`; default the packaged 2-D one,
        or the cached 3-D one.

    Returns
    -------
    DemoCohort
        An :class:`~latentaudit.data.ArrayDataset` with ``images`` float32
        ``(N, 1, size, size)`` or ``(N, 1, size, size, size)`` in [-1, 1]; ``metadata``
        (``subject``, ``site``, ``sex``, ``age``, ``height``, ``weight``); ``truth``
        (``subject``, ``artefact``, ``sex_flipped``, ``true_sex``) and ``artefact_masks``
        (bool, shaped like the images: the region a shifted field of view moved in or out,
        the head-rest's pixels).

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError`) for another ``size`` or
        ``spatial_dims``; (as :class:`latentaudit.errors.DataError`) for a missing or
        unreadable file.
    ImportError
        (as :class:`latentaudit.errors.MissingDependencyError`) when the 3-D cohort has to
        be made and the template volumes are missing.

    Examples
    --------
    >>> import latentaudit as la
    >>> cohort = la.datasets.load_demo_cohort()
    >>> cohort.images.shape
    (2000, 1, 64, 64)
    >>> list(cohort.metadata.columns)
    ['subject', 'site', 'sex', 'age', 'height', 'weight']
    >>> cohort.truth.groupby("artefact").size().to_dict()
    {'fov_shift': 500, 'head_rest': 500, 'none': 1000}
    """
    spatial_dims = check_option("spatial_dims", spatial_dims, (2, 3))
    if spatial_dims == 3:
        size = check_option("size", 32 if size is None else size, VOLUME_SIZES)
        path = _cached_volumes(size) if path is None else Path(path)
    else:
        size = check_option("size", 64 if size is None else size, (64, 128))
        path = Path(DEMO_FILE if path is None else path)
    if not path.is_file():
        hint = ("the package was installed without its data file; reinstall latentaudit"
                if path == DEMO_FILE else "write one with latentaudit.datasets.make_demo_cohort")
        raise DataError(f"demo cohort file {str(path)!r} does not exist; {hint}")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    stored = _read_cohort_file(*key)
    if stored["spatial_dims"] != spatial_dims:
        raise DataError(f"demo cohort file {str(path)!r} holds a {stored['spatial_dims']}-D "
                        f"cohort; pass spatial_dims={stored['spatial_dims']}")
    if spatial_dims == 3:
        if stored["side"] != size:
            raise DataError(f"demo cohort file {str(path)!r} holds {stored['side']}^3 "
                            f"volumes, not {size}^3; pass size={stored['side']}")
        clean, masks = stored["images"], stored["masks"]
        sigma = stored["noise_sigma"] * np.float32(size / 64)
    else:
        clean, masks = _at_size(*key, size)
        # Rician noise drawn at the requested size; at 64x64 (pixels four times the area)
        # its level is halved, as it would be for a scan acquired at that resolution.
        sigma = stored["noise_sigma"] * np.float32(size / _STORED_SIZE)
    images = _add_rician_noise(clean, sigma, (stored["noise_seed"], size))
    return DemoCohort(images[:, None], stored["metadata"].copy(), stored["truth"].copy(),
                      masks[:, None].copy())


@functools.lru_cache(maxsize=2)
def _read_cohort_file(path: str, mtime_ns: int, file_size: int) -> dict:
    """Decode a cohort file once per process (keyed on its modification time and size)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as err:  # zipfile, OSError, ValueError: all mean the same to a user
        raise DataError(f"cannot read demo cohort file {path!r}: {err}") from err
    version = int(arrays.get("format_version", -1))
    if version != _FORMAT_VERSION:
        raise DataError(f"demo cohort file {path!r} has format version {version}; this "
                        f"latentaudit reads version {_FORMAT_VERSION}")
    side = int(arrays["image_size"])
    spatial_dims = int(arrays.get("spatial_dims", 2))
    if spatial_dims == 3:
        # 8-bit volumes (a JPEG per slice would gain little at 32^3)
        images = arrays["volumes"].astype(np.float32)
        images *= np.float32(1 / 255)
    else:
        images = _decode_jpegs(arrays["jpeg"], arrays["jpeg_offsets"], side)
    masks = np.unpackbits(arrays["mask_bits"], axis=1, count=side**spatial_dims)
    masks = masks.reshape(images.shape).view(bool)
    metadata = pd.DataFrame({column: arrays[column] for column in METADATA_COLUMNS})
    truth = pd.DataFrame({column: arrays[column] for column in TRUTH_COLUMNS})
    for table in (metadata, truth):
        for column in table.columns:
            if table[column].dtype.kind == "U":
                table[column] = table[column].astype(object)
    for array in (images, masks):
        array.flags.writeable = False
    return {"images": images, "masks": masks, "metadata": metadata, "truth": truth,
            "noise_sigma": arrays["noise_sigma"].astype(np.float32),
            "noise_seed": int(arrays["noise_seed"]), "spatial_dims": spatial_dims,
            "side": side}


@functools.lru_cache(maxsize=4)
def _at_size(path: str, mtime_ns: int, file_size: int, size: int):
    """Noise-free images in [0, 1] and masks at ``size``: 2x2 means and 2x2 "any"."""
    stored = _read_cohort_file(path, mtime_ns, file_size)
    images, masks = stored["images"], stored["masks"]
    if size == _STORED_SIZE // 2:
        total = images[:, ::2, ::2].astype(np.uint16)  # integer sums: exact and quick
        total += images[:, 1::2, ::2]
        total += images[:, ::2, 1::2]
        total += images[:, 1::2, 1::2]
        images = total.astype(np.float32)
        images *= np.float32(1 / (4 * 255))
        masks = masks[:, ::2, ::2] | masks[:, 1::2, ::2] | masks[:, ::2, 1::2] \
            | masks[:, 1::2, 1::2]
    else:
        images = images.astype(np.float32)
        images *= np.float32(1 / 255)
    for array in (images, masks):
        array.flags.writeable = False
    return images, masks


def _decode_jpegs(blob: np.ndarray, offsets: np.ndarray, side: int) -> np.ndarray:
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    n = len(offsets) - 1
    images = np.empty((n, side, side), dtype=np.uint8)

    def decode(indices: np.ndarray) -> None:
        for i in indices:
            with Image.open(io.BytesIO(blob[offsets[i]:offsets[i + 1]].tobytes())) as image:
                if image.size != (side, side) or image.mode != "L":
                    raise DataError(f"image {i} of the demo cohort file is {image.mode} "
                                    f"{image.size}, expected L {(side, side)}")
                images[i] = np.asarray(image)

    # Pillow releases the GIL while decoding, so threads help on a multi-core machine.
    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(decode, np.array_split(np.arange(n), 4 * workers)))
    return images


def _add_rician_noise(clean: np.ndarray, sigma: np.ndarray, seed,
                      chunk: int = 256) -> np.ndarray:
    """Magnitude of complex Gaussian noise added to ``clean`` ([0, 1]); float32 in [-1, 1]."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
    out = np.empty(clean.shape, dtype=np.float32)
    for start in range(0, len(clean), chunk):
        stop = min(start + chunk, len(clean))
        s = sigma[start:stop].reshape(-1, *([1] * (clean.ndim - 1)))
        real = rng.standard_normal(clean[start:stop].shape, dtype=np.float32)
        real *= s
        real += clean[start:stop]
        imag = rng.standard_normal(real.shape, dtype=np.float32)
        imag *= s
        real *= real
        imag *= imag
        real += imag
        np.sqrt(real, out=real)
        real *= 2
        real -= 1
        np.clip(real, -1, 1, out=out[start:stop])
    return out


# --------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------
def make_demo_cohort(path, *, n_subjects: int | None = None, seed: int = 0,
                     flip_fraction: float = 0.03, spatial_dims: int = 2,
                     size: int | None = None, mricron_dir=None, mni_template=None,
                     verbose: bool = True) -> Path:
    """Build a demo cohort file from real T1 volumes.

    Needs the Debian package ``mricron-data`` (Colin27 ``ch2.nii.gz`` and ``ch2bet.nii.gz``)
    and nilearn (its MNI152 2009a T1 template), i.e. ``sudo apt-get install mricron-data``
    and ``pip install 'latentaudit[demo-build]'``.  The same arguments give the same file.
    The 2-D and 3-D cohorts of one seed and number of subjects share their subjects, sites,
    flipped labels and every draw but the 3-D deformation.

    Parameters
    ----------
    path : str or os.PathLike
        Where to write the ``.npz`` file (written atomically).
    n_subjects : int, optional
        Number of subjects, spread evenly over the four sites, half of each site female;
        default 2000 in 2-D, 400 in 3-D.
    seed : int, default 0
        Seed of every random choice: demographics, anatomy, artefacts, noise.
    flip_fraction : float, default 0.03
        Fraction of subjects whose given sex label is flipped.
    spatial_dims : {2, 3}, default 2
        Centre sagittal slices (stored at 128x128) or whole heads.
    size : {16, 32, 48, 64}, optional
        Side of the volumes (3-D only; default 32).
    mricron_dir : str or os.PathLike, optional
        Folder holding ``ch2.nii.gz`` and ``ch2bet.nii.gz``; default
        ``/usr/share/mricron/templates``.
    mni_template : str or os.PathLike, optional
        The MNI152 2009a T1 template; default the copy inside nilearn.
    verbose : bool, default True
        Show a progress bar.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ImportError
        (as :class:`latentaudit.errors.MissingDependencyError`) when the template volumes
        or nilearn are missing, naming what to install.
    ValueError
        (as :class:`latentaudit.errors.ConfigError`) for a bad ``n_subjects``, ``seed``,
        ``flip_fraction``, ``spatial_dims`` or ``size``.

    Examples
    --------
    >>> import latentaudit as la
    >>> path = la.datasets.make_demo_cohort("tiny.npz", n_subjects=4, spatial_dims=3,
    ...                                     size=16, verbose=False)  # doctest: +SKIP
    >>> la.datasets.load_demo_cohort(16, spatial_dims=3, path=path).images.shape
    ... # doctest: +SKIP
    (4, 1, 16, 16, 16)
    """
    spatial_dims = check_option("spatial_dims", spatial_dims, (2, 3))
    if n_subjects is None:
        n_subjects = VOLUME_SUBJECTS if spatial_dims == 3 else 2000
    if isinstance(n_subjects, bool) or not isinstance(n_subjects, (int, np.integer)) \
            or n_subjects < 4:
        raise ConfigError(f"n_subjects must be an integer of at least 4, got {n_subjects!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if not 0 <= flip_fraction < 0.5:
        raise ConfigError(f"flip_fraction must be in [0, 0.5), got {flip_fraction!r}")
    if spatial_dims == 3:
        size = check_option("size", 32 if size is None else size, VOLUME_SIZES)
    elif size not in (None, _STORED_SIZE):
        raise ConfigError(f"a 2-D cohort file is stored at {_STORED_SIZE}x{_STORED_SIZE} "
                          f"(load it at 64 or 128); size must be None, got {size!r}")
    start = time.perf_counter()
    paths = template_paths(mricron_dir, mni_template)
    population = draw_population(int(n_subjects), int(seed), float(flip_fraction))
    if spatial_dims == 3:
        templates = load_templates(*paths, VOLUME_GRID)
        deformations = draw_volume_deformations(int(n_subjects), int(seed))
        arrays = _render_volumes(templates, population, deformations, size, verbose=verbose)
    else:
        arrays = _render_slices(load_templates(*paths), population, verbose=verbose)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        _write_npz(temporary, arrays, stored=("jpeg",))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    logger.info("wrote %s (%d subjects, %.1f MB) in %.0f s", path, n_subjects,
                path.stat().st_size / 1e6, time.perf_counter() - start)
    return path


def _render_slices(templates: dict, population: dict, *, verbose: bool) -> dict:
    """The 2-D cohort's arrays: JPEG-coded noise-free slices and packed masks."""
    from PIL import Image
    from tqdm.auto import tqdm

    params, truth = population["params"], population["truth"]
    n = len(truth["subject"])
    side = _STORED_SIZE
    blobs, mask_bits = [], np.zeros((n, side * side // 8), dtype=np.uint8)
    for i in tqdm(range(n), desc="demo cohort", disable=not verbose):
        p = {key: value[i] for key, value in params.items()}
        image, mask = render_slice(templates, p, truth["artefact"][i], _RENDER_SIZE)
        image = image.reshape(side, 2, side, 2).mean(axis=(1, 3))
        mask = mask.reshape(side, 2, side, 2).any(axis=(1, 3))
        pixels = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=_JPEG_QUALITY,
                                     optimize=True)
        blobs.append(np.frombuffer(buffer.getvalue(), dtype=np.uint8))
        mask_bits[i] = np.packbits(mask.ravel())
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
    arrays = {"format_version": np.int64(_FORMAT_VERSION), "image_size": np.int64(side),
              "jpeg": np.concatenate(blobs), "jpeg_offsets": offsets, "mask_bits": mask_bits,
              "noise_sigma": params["noise_sigma"].astype(np.float32),
              "noise_seed": np.int64(population["noise_seed"])}
    arrays.update(population["metadata"])
    arrays.update(population["truth"])
    return arrays


def _render_volumes(templates: dict, population: dict, deformations: np.ndarray, size: int,
                    *, verbose: bool) -> dict:
    """The 3-D cohort's arrays: 8-bit noise-free volumes (rendered at twice the size, then
    2x2x2 means) and packed masks (2x2x2 "any")."""
    from tqdm.auto import tqdm

    params, truth = population["params"], population["truth"]
    n = len(truth["subject"])
    volumes = np.zeros((n, size, size, size), dtype=np.uint8)
    mask_bits = np.zeros((n, -(-size**3 // 8)), dtype=np.uint8)
    for i in tqdm(range(n), desc="3-D demo cohort", disable=not verbose):
        p = {key: value[i] for key, value in params.items()}
        volume, mask = render_volume(templates, p, deformations[i], truth["artefact"][i],
                                     2 * size)
        volume = volume.reshape(size, 2, size, 2, size, 2).mean(axis=(1, 3, 5))
        mask = mask.reshape(size, 2, size, 2, size, 2).any(axis=(1, 3, 5))
        volumes[i] = np.clip(np.round(volume * 255), 0, 255).astype(np.uint8)
        mask_bits[i] = np.packbits(mask.ravel())
    arrays = {"format_version": np.int64(_FORMAT_VERSION), "spatial_dims": np.int64(3),
              "image_size": np.int64(size), "volumes": volumes, "mask_bits": mask_bits,
              "noise_sigma": params["noise_sigma"].astype(np.float32),
              "noise_seed": np.int64(population["noise_seed"])}
    arrays.update(population["metadata"])
    arrays.update(population["truth"])
    return arrays


def _cached_volumes(size: int) -> Path:
    """The cached default 3-D cohort at ``size``, made first if missing (one process makes
    it while others wait on a lock file)."""
    folder = cache_dir("demo")
    path = folder / (f"demo_cohort_3d_v{_VOLUME_FORMAT_VERSION}_{size}_"
                     f"{VOLUME_SUBJECTS}_seed0.npz")
    if path.is_file():
        return path
    with _file_lock(folder / f"{path.name}.lock"):
        if not path.is_file():
            logger.info("making the 3-D demo cohort (%d subjects at %d^3) in %s; later "
                        "loads read it", VOLUME_SUBJECTS, size, path)
            make_demo_cohort(path, spatial_dims=3, size=size, verbose=False)
    return path


@contextlib.contextmanager
def _file_lock(path: Path):
    """An exclusive lock on ``path`` while the block runs (POSIX; elsewhere no lock)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_npz(path: Path, arrays: dict, stored: tuple[str, ...] = ()) -> None:
    """Like :func:`numpy.savez_compressed`, but the members named in ``stored`` are kept
    uncompressed (JPEG data does not shrink, and inflating it would slow every load)."""
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for name, value in arrays.items():
            method = zipfile.ZIP_STORED if name in stored else zipfile.ZIP_DEFLATED
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
