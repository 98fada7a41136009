"""The bundled demo cohort: a simulated multi-site head MRI study with planted findings.

Every subject is a real T1-weighted head volume (Colin27 ``ch2`` from Debian's
``mricron-data``, its brain blended with nilearn's MNI152 2009a template) under a random
smooth deformation, a head size and shape that follow sex and height, age effects, a
contrast change and Rician noise.  Its centre sagittal slice is the image.  Two of the four
sites carry an acquisition artefact like the ones Graf et al. (2024) found in NAKO: site B's
field of view is shifted so that part of the head leaves the image, site C uses a head-rest
that shows in the image.  A few sex labels are flipped.  What was planted is recorded in
``.truth`` and ``.artefact_masks``.

The noise-free 128x128 slices ship inside the package (``_files/demo_cohort.npz``, JPEG
quality 95 inside a NumPy archive, no pickles); :func:`load_demo_cohort` adds Rician noise
from a fixed seed at the requested size, so every load gives the same arrays.
:func:`make_demo_cohort` rebuilds the file from the template volumes
(``python scripts/make_demo_cohort.py``).
"""

from __future__ import annotations

import functools
import io
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..artefacts import FieldOfViewShift, HeadRest, moved_region
from ..errors import DataError, InputShapeError, MissingDependencyError
from ..utils import check_option
from ._array import ArrayDataset

__all__ = ["DEMO_FILE", "SITE_ARTEFACTS", "DemoCohort", "load_demo_cohort", "make_demo_cohort"]

logger = logging.getLogger(__name__)

#: Where the packaged demo cohort lives.
DEMO_FILE = Path(__file__).resolve().parent / "_files" / "demo_cohort.npz"
#: The artefact planted at each site ("none" for a clean site).
SITE_ARTEFACTS = {"A": "none", "B": "fov_shift", "C": "head_rest", "D": "none"}
SITES = tuple(SITE_ARTEFACTS)
METADATA_COLUMNS = ("subject", "site", "sex", "age", "height", "weight")
TRUTH_COLUMNS = ("subject", "artefact", "sex_flipped", "true_sex")

_FORMAT_VERSION = 1
_STORED_SIZE = 128
_RENDER_SIZE = 256  # rendered at twice the stored size, then averaged, against aliasing
_JPEG_QUALITY = 95
_FULL_SCALE = 210.0  # template intensity shown as white
_BRAIN_MEAN = 0.38  # typical brain tissue and CSF levels after scaling by _FULL_SCALE
_CSF_LEVEL = 0.22

# Geometry, in MNI millimetres (x right, y anterior, z superior).  The image shows the
# sagittal plane with superior at the top row and anterior at the left column.
_FOV_MM = 240.0
_FOV_LEFT_Y = 80.0  # anterior edge of the image: the nose tip falls just outside
_FOV_TOP_Z = 112.0
_HEAD_CENTRE = np.array([0.0, -15.0, 15.0])  # centre of scaling and rotation
_VENTRICLE_CENTRE = np.array([0.0, -12.0, 18.0])  # centre of age-related enlargement
_BRAIN_CENTRE = np.array([0.0, -18.0, 15.0])  # centre and (y, z) semi-axes of the brain,
_BRAIN_RADII = (88.0, 72.0)  # for age-related shrinkage
# Site B: the field of view moves superiorly by 50 of 256 pixels (Graf et al.: 50 voxels),
# i.e. 0.78125 of FieldOfViewShift's largest shift (a quarter of the field of view).
SITE_B_ARTEFACT = FieldOfViewShift(strength=0.78125, axis=-2, direction=-1,
                                   value_range=(0.0, 1.0))
_SLAB_HALF_WIDTH = 12  # mm either side of the midline kept from the volumes
_SLAB_Y = (-175.0, 120.0)
_SLAB_Z = (-160.0, 160.0)

_MRICRON_DIR = Path("/usr/share/mricron/templates")
_MNI_RELATIVE = Path("datasets") / "data" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


# --------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------
class DemoCohort(ArrayDataset):
    """The demo cohort: 2-D head MRI slices, their metadata and what was planted in them.

    Usually built by :func:`load_demo_cohort`.

    Parameters
    ----------
    images : numpy.ndarray
        float32 ``(N, 1, H, W)`` in [-1, 1].
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
        lines = [
            f"{type(self).__name__}: simulated multi-site head MRI cohort "
            f"(centre sagittal T1 slices, superior up, anterior left)",
            f"  images: {self.images.shape} {self.images.dtype}, values in "
            f"[{self.images.min():.2f}, {self.images.max():.2f}]",
            f"  subjects: {len(self.subjects)}, one slice each",
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


def load_demo_cohort(size: int = 64, *, path=None) -> DemoCohort:
    """Load the bundled demo cohort: about 2,000 simulated subjects from four sites.

    Each image is the centre sagittal slice of a real T1 head volume under a random
    deformation, with a head size and shape that follow the subject's sex and height, age
    effects, a contrast change and Rician noise.  Site B's field of view is shifted
    superiorly (part of the head leaves the image), site C's subjects lie on a visible
    head-rest, sites A and D are clean; about 3% of the sex labels are flipped.  The
    sites' demographics are alike, so what sets B and C apart is the artefact.

    Parameters
    ----------
    size : {64, 128}, default 64
        Image height and width.  The noise-free 64x64 images are 2x2 means of the 128x128
        ones; the noise is drawn at each size (at 64x64 with half the standard deviation,
        as for pixels of four times the area), and the masks are 2x2 "any"s.
    path : str or os.PathLike, optional
        A cohort file written by :func:`make_demo_cohort`; default the packaged one.

    Returns
    -------
    DemoCohort
        An :class:`~latentaudit.data.ArrayDataset` with ``images`` float32
        ``(N, 1, size, size)`` in [-1, 1]; ``metadata`` (``subject``, ``site``, ``sex``,
        ``age``, ``height``, ``weight``); ``truth`` (``subject``, ``artefact``,
        ``sex_flipped``, ``true_sex``) and ``artefact_masks`` (bool, shaped like the
        images: the region a shifted field of view moved in or out, the head-rest's
        pixels).

    Raises
    ------
    ValueError
        (as :class:`latentaudit.errors.ConfigError`) for another ``size``; (as
        :class:`latentaudit.errors.DataError`) for a missing or unreadable file.

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
    size = check_option("size", size, (64, 128))
    path = Path(DEMO_FILE if path is None else path)
    if not path.is_file():
        hint = ("the package was installed without its data file; reinstall latentaudit"
                if path == DEMO_FILE else "write one with latentaudit.datasets.make_demo_cohort")
        raise DataError(f"demo cohort file {str(path)!r} does not exist; {hint}")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    stored = _read_cohort_file(*key)
    clean, masks = _at_size(*key, size)
    # Rician noise drawn at the requested size; at 64x64 (pixels four times the area) its
    # level is halved, as it would be for a scan acquired at that resolution.
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
    images = _decode_jpegs(arrays["jpeg"], arrays["jpeg_offsets"], side)
    n = len(images)
    masks = np.unpackbits(arrays["mask_bits"], axis=1, count=side * side)
    masks = masks.reshape(n, side, side).view(bool)
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
            "noise_seed": int(arrays["noise_seed"])}


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
        s = sigma[start:stop, None, None]
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
def make_demo_cohort(path, *, n_subjects: int = 2000, seed: int = 0,
                     flip_fraction: float = 0.03, mricron_dir=None, mni_template=None,
                     verbose: bool = True) -> Path:
    """Build a demo cohort file from real T1 volumes.

    Needs the Debian package ``mricron-data`` (Colin27 ``ch2.nii.gz`` and ``ch2bet.nii.gz``)
    and nilearn (its MNI152 2009a T1 template), i.e. ``sudo apt-get install mricron-data``
    and ``pip install 'latentaudit[demo-build]'``.  The same arguments give the same file.

    Parameters
    ----------
    path : str or os.PathLike
        Where to write the ``.npz`` file (written atomically).
    n_subjects : int, default 2000
        Number of subjects, spread evenly over the four sites, half of each site female.
    seed : int, default 0
        Seed of every random choice: demographics, anatomy, artefacts, noise.
    flip_fraction : float, default 0.03
        Fraction of subjects whose given sex label is flipped.
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
        (as :class:`latentaudit.errors.ConfigError`) for a bad ``n_subjects``, ``seed`` or
        ``flip_fraction``.

    Examples
    --------
    >>> import latentaudit as la
    >>> la.datasets.make_demo_cohort("tiny.npz", n_subjects=8, verbose=False)  # doctest: +SKIP
    PosixPath('tiny.npz')
    """
    from ..errors import ConfigError

    if isinstance(n_subjects, bool) or not isinstance(n_subjects, (int, np.integer)) \
            or n_subjects < 4:
        raise ConfigError(f"n_subjects must be an integer of at least 4, got {n_subjects!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if not 0 <= flip_fraction < 0.5:
        raise ConfigError(f"flip_fraction must be in [0, 0.5), got {flip_fraction!r}")
    start = time.perf_counter()
    templates = _load_templates(*_template_paths(mricron_dir, mni_template))
    population = _draw_population(int(n_subjects), int(seed), float(flip_fraction))
    arrays = _render_cohort(templates, population, verbose=verbose)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    _write_npz(temporary, arrays, stored=("jpeg",))
    os.replace(temporary, path)
    logger.info("wrote %s (%d subjects, %.1f MB) in %.0f s", path, n_subjects,
                path.stat().st_size / 1e6, time.perf_counter() - start)
    return path


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


def _template_paths(mricron_dir=None, mni_template=None) -> tuple[Path, Path, Path]:
    folder = Path(_MRICRON_DIR if mricron_dir is None else mricron_dir)
    ch2, ch2bet = folder / "ch2.nii.gz", folder / "ch2bet.nii.gz"
    for file in (ch2, ch2bet):
        if not file.is_file():
            raise MissingDependencyError(
                f"building the demo cohort needs the Colin27 volume {str(file)!r}, which is "
                f"missing; install the Debian package mricron-data "
                f"(sudo apt-get install mricron-data) or pass mricron_dir=")
    if mni_template is None:
        try:
            import nilearn
        except ImportError as err:
            raise MissingDependencyError(
                "building the demo cohort needs nilearn's MNI152 template; install it with: "
                "pip install 'latentaudit[demo-build]' (or pass mni_template=)") from err
        mni = Path(nilearn.__file__).parent / _MNI_RELATIVE
    else:
        mni = Path(mni_template)
    if not mni.is_file():
        raise MissingDependencyError(
            f"building the demo cohort needs the MNI152 2009a T1 template {str(mni)!r}, "
            f"which is missing; reinstall nilearn (pip install 'latentaudit[demo-build]')")
    return ch2, ch2bet, mni


def _resample_to_slab(path: Path, *, clamp_bottom: bool) -> np.ndarray:
    """Resample a volume onto the slab grid (1 mm, MNI space) around the midline.

    With ``clamp_bottom`` the lowest axial plane of the volume is repeated below it, so the
    neck continues to the bottom of the image instead of ending in a straight cut.
    """
    import nibabel as nib
    from scipy import ndimage

    image = nib.load(str(path))
    data = np.asarray(image.dataobj, dtype=np.float32)
    x = np.arange(-_SLAB_HALF_WIDTH, _SLAB_HALF_WIDTH + 1, dtype=np.float64)
    y = np.arange(_SLAB_Y[0], _SLAB_Y[1] + 1)
    z = np.arange(_SLAB_Z[0], _SLAB_Z[1] + 1)
    world = np.stack(np.meshgrid(x, y, z, indexing="ij")).reshape(3, -1)
    voxel = np.linalg.inv(image.affine) @ np.vstack([world, np.ones(world.shape[1])])
    voxel = voxel[:3]
    if clamp_bottom:
        # the axis of the volume that runs inferior-superior
        axis = int(np.argmax(np.abs(image.affine[2, :3])))
        voxel[axis] = np.clip(voxel[axis], 0, data.shape[axis] - 1)
    values = ndimage.map_coordinates(data, voxel, order=1, mode="constant", cval=0.0)
    return values.reshape(len(x), len(y), len(z)).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _load_templates(ch2_path: Path, ch2bet_path: Path, mni_path: Path) -> dict:
    """The volumes every subject is drawn from, on one slab grid (read-only, cached)."""
    from scipy import ndimage

    ch2 = _resample_to_slab(ch2_path, clamp_bottom=True)
    ch2_brain = _resample_to_slab(ch2bet_path, clamp_bottom=False) > 0
    mni = _resample_to_slab(mni_path, clamp_bottom=False)
    # The head: everything brighter than air, holes filled in each sagittal plane.
    head = ndimage.binary_opening(ch2 > 18, iterations=1)
    head = np.stack([ndimage.binary_fill_holes(plane) for plane in head])
    labels, n_labels = ndimage.label(head)
    sizes = ndimage.sum(head, labels, range(1, n_labels + 1))
    head = labels == 1 + int(np.argmax(sizes))
    # The MNI template is skull-stripped: blend brains only where both have brain, and map
    # its intensities onto Colin27's so the blend changes anatomy, not brightness.
    both = ch2_brain & (mni > 0)
    quantiles = np.linspace(0, 100, 201)
    mni_matched = np.interp(mni, np.percentile(mni[both], quantiles),
                            np.percentile(ch2[both], quantiles)).astype(np.float32)
    brain = ndimage.gaussian_filter(both.astype(np.float32), 1.5)
    templates = {"ch2": ch2, "brain_delta": brain * (mni_matched - ch2), "brain": brain,
                 "head": ndimage.gaussian_filter(head.astype(np.float32), 0.7)}
    for volume in templates.values():
        volume.flags.writeable = False
    return templates


def _draw_population(n: int, seed: int, flip_fraction: float) -> dict:
    """Demographics, ground truth and every per-subject random parameter."""
    rng = np.random.Generator(np.random.PCG64(seed))
    site = np.array(SITES)[np.arange(n) % len(SITES)]
    rng.shuffle(site)
    male = np.zeros(n, dtype=bool)
    for s in SITES:  # half of every site is male, so sex is not a site effect
        members = np.flatnonzero(site == s)
        male[rng.permutation(members)[: len(members) // 2]] = True
    age = rng.uniform(20, 80, n)
    height = np.where(male, 178.5, 165.0) - 0.04 * (age - 50) \
        + rng.normal(0, 1, n) * np.where(male, 7.0, 6.5)
    bmi = np.clip(rng.normal(24.5 + 1.0 * male + 0.06 * (age - 50), 3.2), 17, 42)
    weight = bmi * (height / 100) ** 2
    n_flip = int(round(flip_fraction * n))
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, n_flip, replace=False)] = True
    true_sex = np.where(male, "M", "F")
    given_sex = np.where(flipped, np.where(male, "F", "M"), true_sex)

    # Head size follows sex and height; head shape follows sex (longer, relatively flatter
    # male heads), so that sex is recoverable from the image as the method expects.
    mean_height = np.where(male, 178.5, 165.0)
    size = np.where(male, 1.04, 0.96) * (1 + 0.0025 * (height - mean_height)) \
        * (1 + rng.normal(0, 0.012, n))
    shape = np.where(male, 1.03, 1 / 1.03) * (1 + rng.normal(0, 0.008, n))
    params = {
        "scale_y": size * shape,
        "scale_z": size / shape,
        "pitch": rng.normal(0, 2.0, n),  # degrees, head tilt in the coil
        "x_offset": rng.uniform(-2, 2, n),  # mm, the "centre" slice is never exactly central
        "blend": rng.beta(2, 2, n),  # share of Colin27 in the brain, the rest MNI152
        "atrophy": 0.3 * (age - 20) / 60,
        "shrinkage": 0.06 * (age - 20) / 60,
        "age_fraction": (age - 20) / 60,
        "gamma": np.exp(rng.normal(0, 0.08, n)),
        "noise_sigma": rng.uniform(0.015, 0.04, n),
        # control points of the smooth deformation: (x, y, z) components, 5 x 5 grid, mm
        "deformation": rng.normal(0, 1, (n, 3, 5, 5)) * np.array([1.2, 2.0, 2.0])[:, None, None],
        # head-rest: angular extent (degrees, 0 = posterior, positive = superior),
        # gap to the scalp and thickness (mm), brightness
        "rest_from": rng.normal(-45, 6, n),
        "rest_to": rng.normal(38, 6, n),
        "rest_gap": rng.uniform(0.5, 2.0, n),
        "rest_thickness": rng.uniform(14, 20, n),
        "rest_intensity": rng.uniform(0.55, 0.7, n),
    }
    subject = np.array([f"sub-{i:04d}" for i in range(1, n + 1)])
    metadata = {"subject": subject, "site": site, "sex": given_sex, "age": np.round(age, 1),
                "height": np.round(height, 1), "weight": np.round(weight, 1)}
    truth = {"subject": subject,
             "artefact": np.array([SITE_ARTEFACTS[s] for s in site]),
             "sex_flipped": flipped, "true_sex": true_sex}
    return {"metadata": metadata, "truth": truth, "params": params,
            "noise_seed": int(rng.integers(2**62))}


def _render_cohort(templates: dict, population: dict, *, verbose: bool) -> dict:
    from PIL import Image
    from tqdm.auto import tqdm

    params, truth = population["params"], population["truth"]
    n = len(truth["subject"])
    side = _STORED_SIZE
    blobs, mask_bits = [], np.zeros((n, side * side // 8), dtype=np.uint8)
    for i in tqdm(range(n), desc="demo cohort", disable=not verbose):
        p = {key: value[i] for key, value in params.items()}
        image, mask = _render_subject(templates, p, truth["artefact"][i])
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


def _output_plane(shift_mm: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """World (y, z) of every rendered pixel; the field of view moved up by ``shift_mm``."""
    step = _FOV_MM / _RENDER_SIZE
    centres = (np.arange(_RENDER_SIZE) + 0.5) * step
    y = _FOV_LEFT_Y - centres
    z = _FOV_TOP_Z + shift_mm - centres
    zz, yy = np.meshgrid(z, y, indexing="ij")
    return yy, zz


def _template_coordinates(p: dict, shift_mm: float = 0.0) -> np.ndarray:
    """Where each output pixel samples the template volumes (slab voxel indices)."""
    from scipy import ndimage

    yy, zz = _output_plane(shift_mm)
    qy, qz = yy - _HEAD_CENTRE[1], zz - _HEAD_CENTRE[2]
    angle = np.deg2rad(p["pitch"])
    cos, sin = np.cos(angle), np.sin(angle)
    y = _HEAD_CENTRE[1] + (cos * qy - sin * qz) / p["scale_y"]
    z = _HEAD_CENTRE[2] + (sin * qy + cos * qz) / p["scale_z"]
    x = np.full_like(y, p["x_offset"])
    # The deformation is fixed to the head, not to the field of view: a shifted field of
    # view shows the same anatomy, moved.
    coarse = p["deformation"]
    pad = _RENDER_SIZE // 4
    zoom = (_RENDER_SIZE + 2 * pad) / coarse.shape[-1]
    field = np.stack([ndimage.zoom(c, zoom, order=3) for c in coarse])
    top = pad - int(round(shift_mm / (_FOV_MM / _RENDER_SIZE)))
    field = field[:, top: top + _RENDER_SIZE, pad: pad + _RENDER_SIZE]
    x, y, z = x + field[0], y + field[1], z + field[2]
    # Ageing.  The brain shrinks inside the skull: sample points inside the brain move
    # outwards, most near its surface, none beyond the skull, so the CSF gap widens.
    dy, dz = y - _BRAIN_CENTRE[1], z - _BRAIN_CENTRE[2]
    radius = np.sqrt((dy / _BRAIN_RADII[0]) ** 2 + (dz / _BRAIN_RADII[1]) ** 2)
    push = p["shrinkage"] * np.exp(-radius**6)
    y, z = y + push * dy, z + push * dz
    # The ventricles enlarge: sample points are pulled towards their centre.
    dy, dz = y - _VENTRICLE_CENTRE[1], z - _VENTRICLE_CENTRE[2]
    pull = p["atrophy"] * np.exp(-(dy**2 + dz**2) / (2 * 18.0**2))
    y, z = y - pull * dy, z - pull * dz
    return np.stack([x + _SLAB_HALF_WIDTH, y - _SLAB_Y[0], z - _SLAB_Z[0]])


def _sample(volume: np.ndarray, coordinates: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return ndimage.map_coordinates(volume, coordinates, order=1, mode="nearest")


def _render_subject(templates: dict, p: dict, artefact: str) -> tuple[np.ndarray, np.ndarray]:
    """Render one noise-free slice in [0, 1] at the render size, and its artefact mask."""
    # Site B's field of view moves up by SITE_B_ARTEFACT's shift, in world coordinates, so
    # what comes into view is the subject's anatomy (an image-space shift can only fill in
    # background; the head of row 1253 reaches above the unshifted field of view).
    shift_mm = 0.0
    if artefact == "fov_shift":
        shift_mm = SITE_B_ARTEFACT.shift_pixels(_RENDER_SIZE) * (_FOV_MM / _RENDER_SIZE)
    coordinates = _template_coordinates(p, shift_mm)
    image = _sample(templates["ch2"], coordinates) \
        + (1 - p["blend"]) * _sample(templates["brain_delta"], coordinates)
    brain = _sample(templates["brain"], coordinates)
    head = _sample(templates["head"], coordinates) > 0.5
    # Colin27's grey matter sits near 110 and its scalp fat near 200: scale so the fat is
    # close to white, as in a T1 image windowed for viewing.
    image = np.clip(image / _FULL_SCALE, 0, None)
    # Ageing: grey-white contrast falls, the brain darkens, its CSF spaces darken more.
    age = brain * p["age_fraction"]
    image = image + age * 0.35 * (_BRAIN_MEAN - image) * (image > _CSF_LEVEL)
    image = image * (1 - age * 0.15)
    image = image * (1 - age * 0.3 * np.clip(_CSF_LEVEL - image, 0, None) / _CSF_LEVEL)
    image = image ** p["gamma"]
    # The receive coil's sensitivity falls off towards the neck (fixed to the head).
    _, zz = _output_plane(shift_mm)
    image = image * np.exp(-np.clip(-50.0 - zz, 0, None) ** 2 / (2 * 25.0**2))
    mask = np.zeros(image.shape, dtype=bool)
    # The site artefacts are latentaudit.artefacts' own: the shifted field of view's mask is
    # the head's region that moved in or out of view; the head-rest is the cushion moulded
    # to the head, with the subject's draws.
    if artefact == "fov_shift":
        unshifted = _sample(templates["head"], _template_coordinates(p)) > 0.5
        mask = moved_region(unshifted, head)
    elif artefact == "head_rest":
        step = _FOV_MM / _RENDER_SIZE
        rest = HeadRest(strength=1.0, intensity=p["rest_intensity"],
                        thickness=p["rest_thickness"], gap=p["rest_gap"],
                        arc=(p["rest_from"], p["rest_to"]), taper=6.0, jitter=False,
                        spacing=step, centre=_head_centre_pixel(), value_range=(0.0, 1.0))
        image, mask = rest(image[None], support=head)
        image, mask = image[0], mask[0]
    return np.clip(image, 0, 1).astype(np.float32), mask


def _head_centre_pixel() -> tuple[float, float]:
    """(row, column) of the head's centre of scaling in the rendered (unshifted) image."""
    step = _FOV_MM / _RENDER_SIZE
    return ((_FOV_TOP_Z - _HEAD_CENTRE[2]) / step - 0.5,
            (_FOV_LEFT_Y - _HEAD_CENTRE[1]) / step - 0.5)
