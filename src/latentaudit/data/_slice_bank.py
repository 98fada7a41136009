"""A bank of real MRI and CT slices, cut from the volumes that Debian and PyPI packages carry.

No public multi-subject cohort of medical images can be installed here, but a few real
volumes come with packages: Colin27 (``ch2``, ``ch2bet``) and the INIA19 macaque template
in Debian's ``mricron-data``; nilearn's MNI152 2009a template;
nibabel's example T1 (``anatomical.nii``) and EPI (``example4d.nii.gz``) scans; the head CT
of Debian's ``invesalius-examples``.  :func:`load_slice_bank` cuts 2-D slices from them at
random positions along all three axes, each under its own random geometric and contrast
augmentation, so that a benchmark has real anatomy, real contrasts and real acquisition
properties (CT, EPI, skull-stripped, low resolution) instead of one simulated head.  There
are only a handful of real subjects: the metadata names every slice's volume, person and
position, so that an audit can be told what they explain and a benchmark can keep training
and audited slices apart (:func:`slice_bank_split`).
"""

from __future__ import annotations

import functools
import plistlib
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, MissingDependencyError
from ._array import ArrayDataset
from ._demo_render import _MNI_RELATIVE, _MRICRON_DIR

__all__ = ["SLICE_BANK_VOLUMES", "load_slice_bank", "slice_bank_split"]

_INVESALIUS_CT = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")
_AXES = ("sagittal", "coronal", "axial")


@dataclass(frozen=True)
class _Volume:
    name: str
    person: str
    modality: str
    package: str
    locate: str  # "mricron:<file>", "nilearn:<relative>", "nibabel:<file>", "invesalius"


#: The volumes of the bank: name, the person (or population) it shows, modality, package.
SLICE_BANK_VOLUMES = (
    _Volume("colin27_t1", "colin27", "T1 head", "mricron-data", "mricron:ch2.nii.gz"),
    _Volume("colin27_brain", "colin27", "T1 brain", "mricron-data", "mricron:ch2bet.nii.gz"),
    _Volume("inia19", "inia19 macaque average", "T1 brain", "mricron-data",
            "mricron:inia19-t1-brain.nii.gz"),
    _Volume("mni152", "mni152 average", "T1 brain", "nilearn", f"nilearn:{_MNI_RELATIVE}"),
    _Volume("nibabel_t1", "nibabel subject", "T1 head", "nibabel", "nibabel:anatomical.nii"),
    _Volume("nibabel_epi", "nibabel epi subject", "EPI head", "nibabel",
            "nibabel:example4d.nii.gz"),
    _Volume("invesalius_ct", "invesalius patient", "CT head", "invesalius-examples",
            "invesalius"),
)


def load_slice_bank(n_slices: int = 2000, *, size: int = 64, volumes=None,
                    augment: bool = True, random_state=0) -> ArrayDataset:
    """Real MRI and CT slices at random positions, axes and augmentations.

    Every slice is cut from one of :data:`SLICE_BANK_VOLUMES` that is installed (at least
    two are needed), the slices spread evenly over volume x axis (sagittal, coronal,
    axial); its plane lies at a random ``position`` in the central 60% of the object's
    extent along that axis.  With ``augment`` each slice gets its own in-plane rotation
    (within 15 degrees), scale (0.85-1.15), shift (within 8% of the field of view), smooth
    elastic displacement (4x4 control points, 2.5% of the field of view), left-right flip
    and gamma (log-normal, sd 0.25): variation of pose and contrast, not of noise, blur or
    bias fields, which :mod:`latentaudit.artefacts` plants.  Intensities are scaled per
    volume (0.5th and 99.5th percentile to -1 and 1); the square field of view holds the
    object's extent in the plane plus 10%, the volume averaged over blocks of about one
    pixel before sampling (anti-aliasing).

    Only a few real persons are behind the slices (Colin27's two volumes are one
    person; two volumes are population averages): slices of one volume share its
    anatomy, so an audit should be told ``volume``, ``axis`` and ``position`` (they
    explain most of the variation), and a benchmark should train on other slices than
    it audits (:func:`slice_bank_split`).

    Parameters
    ----------
    n_slices : int, default 2000
        Number of slices.
    size : int, default 64
        Side of the square images.
    volumes : sequence of str, optional
        Names of the volumes to use (default: every installed one).
    augment : bool, default True
        Random pose, elastic displacement and gamma per slice (else axis-aligned slices).
    random_state : int or numpy.random.Generator, default 0
        Seed of the positions and augmentations.

    Returns
    -------
    ArrayDataset
        ``images`` float32 ``(n_slices, 1, size, size)`` in [-1, 1]; ``metadata`` with
        ``subject`` (one id per slice), ``volume``, ``person``, ``modality``, ``axis``,
        ``position`` (0 to 1 along the axis), ``gamma`` and ``angle`` (degrees).

    Raises
    ------
    ValueError
        (as :class:`~latentaudit.errors.ConfigError`) for a bad count, size or volume
        name.
    ImportError
        (as :class:`~latentaudit.errors.MissingDependencyError`) when fewer than two of
        the volumes are installed, naming the packages to install.

    Examples
    --------
    >>> import latentaudit as la
    >>> bank = la.datasets.load_slice_bank(12, size=32, volumes=["colin27_t1", "nibabel_t1"])
    >>> bank.images.shape, float(bank.images.min()) >= -1, float(bank.images.max()) <= 1
    ((12, 1, 32, 32), True, True)
    >>> bank.metadata.groupby("volume")["axis"].value_counts().unstack().to_numpy().tolist()
    [[2, 2, 2], [2, 2, 2]]
    """
    if isinstance(n_slices, bool) or not isinstance(n_slices, (int, np.integer)) \
            or n_slices < 1:
        raise ConfigError(f"n_slices must be a positive integer, got {n_slices!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise ConfigError(f"size must be an integer >= 8, got {size!r}")
    chosen = _installed(volumes)
    rng = np.random.default_rng(random_state)
    cells = [(volume, axis) for volume in chosen for axis in range(3)]
    order = np.concatenate([rng.permutation(len(cells))
                            for _ in range(-(-n_slices // len(cells)))])[:n_slices]
    images = np.empty((n_slices, 1, size, size), dtype=np.float32)
    rows = []
    for index, cell in enumerate(order):
        volume, axis = cells[cell]
        data, spacing, extent = _prepared(volume.name, int(size))
        draw = _Pose.draw(rng, size, augment)
        position = float(rng.uniform(0.2, 0.8))
        image = _cut(data, spacing, extent, axis, position, draw, int(size))
        images[index, 0] = np.clip(image, 0.0, 1.0) ** draw.gamma * 2.0 - 1.0
        rows.append({"subject": f"{volume.name}-{index:05d}", "volume": volume.name,
                     "person": volume.person, "modality": volume.modality,
                     "axis": _AXES[axis], "position": position,
                     "gamma": draw.gamma, "angle": float(np.degrees(draw.angle))})
    return ArrayDataset(images, pd.DataFrame(rows))


def slice_bank_split(metadata: pd.DataFrame, *, bands: int = 10) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """Training and held-out rows of a slice bank: alternate bands of slice position.

    The central 60% of every volume along every axis is cut into ``bands`` bands; slices
    in even bands are for training, slices in odd ones are held out.  Both parts hold
    every volume and axis (the few real persons cannot be split), but no held-out slice
    lies in a band that a training slice came from: neighbours differ by at least the
    band's width except at the bands' borders.

    Parameters
    ----------
    metadata : pandas.DataFrame
        The ``metadata`` of :func:`load_slice_bank` (its ``position`` column).
    bands : int, default 10
        Number of bands (at least 2).

    Returns
    -------
    train, held_out : numpy.ndarray of int64
        Row positions, sorted.

    Examples
    --------
    >>> import pandas as pd
    >>> from latentaudit.datasets import slice_bank_split
    >>> train, held_out = slice_bank_split(pd.DataFrame({"position": [0.2, 0.27, 0.45, 0.79]}))
    >>> train.tolist(), held_out.tolist()
    ([0, 2], [1, 3])
    """
    if isinstance(bands, bool) or not isinstance(bands, (int, np.integer)) or bands < 2:
        raise ConfigError(f"bands must be an integer >= 2, got {bands!r}")
    position = metadata["position"].to_numpy(dtype=np.float64)
    band = np.clip(((position - 0.2) / 0.6 * bands).astype(np.int64), 0, bands - 1)
    return np.flatnonzero(band % 2 == 0), np.flatnonzero(band % 2 == 1)


# -- the volumes -------------------------------------------------------------------------------
def _path(volume: _Volume) -> Path | None:
    kind, _, name = volume.locate.partition(":")
    if kind == "mricron":
        return _MRICRON_DIR / name
    if kind == "invesalius":
        return _INVESALIUS_CT
    try:
        module = __import__(kind)
    except ImportError:
        return None
    folder = Path(module.__file__).parent
    return folder / name if kind == "nilearn" else folder / "tests" / "data" / name


def _installed(names) -> list[_Volume]:
    known = {volume.name: volume for volume in SLICE_BANK_VOLUMES}
    if names is None:
        wanted = list(known.values())
    else:
        names = [names] if isinstance(names, str) else list(names)
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ConfigError(f"volumes must be names of SLICE_BANK_VOLUMES ({', '.join(known)})"
                              f", got {unknown}")
        wanted = [known[name] for name in dict.fromkeys(names)]
    present = [v for v in wanted if (path := _path(v)) is not None and path.is_file()]
    if len(present) < min(2, len(wanted)):
        missing = sorted({v.package for v in wanted if v not in present})
        raise MissingDependencyError(
            f"the slice bank needs at least two of its volumes; {len(present)} of "
            f"{len(wanted)} are installed; install {', '.join(missing)} (Debian: "
            f"sudo apt-get install mricron-data invesalius-examples; PyPI: nibabel, nilearn)")
    return present


def _read(volume: _Volume) -> tuple[np.ndarray, np.ndarray]:
    """The volume as float32 (x, y, z) in RAS+ orientation, and its voxel size in mm."""
    path = _path(volume)
    if volume.locate == "invesalius":
        with tarfile.open(path, "r:gz") as archive:
            members = {Path(m.name).name: m for m in archive.getmembers()}
            header = plistlib.loads(archive.extractfile(members["main.plist"]).read())
            raw = archive.extractfile(members[header["matrix"]["filename"]]).read()
        shape = tuple(header["matrix"]["shape"])  # (z, y, x)
        data = np.frombuffer(raw, dtype=header["matrix"]["dtype"]).reshape(shape)
        # InVesalius keeps its first row and column as a border of zeros
        data = np.ascontiguousarray(data[:, 1:, 1:].transpose(2, 1, 0), dtype=np.float32)
        return data, np.asarray(header["spacing"], dtype=np.float64)
    import nibabel as nib

    image = nib.as_closest_canonical(nib.load(str(path)))
    data = np.asarray(image.dataobj, dtype=np.float32)
    if data.ndim == 4:
        data = data[..., 0]  # the first volume of a time series
    return data, np.asarray(image.header.get_zooms()[:3], dtype=np.float64)


@functools.lru_cache(maxsize=16)
def _prepared(name: str, size: int):
    """A volume scaled to [0, 1] and averaged over blocks of about one output pixel (the
    anti-aliasing filter of the sampling at ``size`` pixels), with its voxel size and the
    bounding box of the object (voxels, per axis)."""
    volume = next(v for v in SLICE_BANK_VOLUMES if v.name == name)
    data, spacing = _read(volume)
    low, high = np.percentile(data[::2, ::2, ::2], [0.5, 99.5])
    data = np.clip((data - low) / max(high - low, 1e-6), 0.0, 1.0).astype(np.float32)
    pixel = (np.diff(_bounding_box(data), axis=0)[0] * spacing).max() * 1.1 / size
    factor = np.maximum((pixel / spacing).astype(np.int64), 1)
    shape = np.asarray(data.shape) // factor
    data = data[:shape[0] * factor[0], :shape[1] * factor[1], :shape[2] * factor[2]]
    data = data.reshape(shape[0], factor[0], shape[1], factor[1], shape[2], factor[2])
    data = np.ascontiguousarray(data.mean(axis=(1, 3, 5)), dtype=np.float32)
    extent = _bounding_box(data)
    data.setflags(write=False)
    return data, spacing * factor, extent


def _bounding_box(data: np.ndarray) -> np.ndarray:
    """First and last voxel (rows) along each axis (columns) where the object is."""
    inside = data > 0.1
    box = []
    for axis in range(3):
        hit = np.flatnonzero(inside.any(axis=tuple(a for a in range(3) if a != axis)))
        box.append((hit[0], hit[-1]))
    return np.asarray(box, dtype=np.float64).T


@dataclass(frozen=True)
class _Pose:
    angle: float
    scale: float
    shift: tuple[float, float]
    flip: bool
    gamma: float
    elastic: np.ndarray | None

    @classmethod
    def draw(cls, rng: np.random.Generator, size: int, augment: bool) -> _Pose:
        if not augment:
            return cls(0.0, 1.0, (0.0, 0.0), False, 1.0, None)
        from scipy import ndimage

        control = rng.normal(0.0, 0.025, size=(2, 4, 4))
        elastic = np.stack([ndimage.zoom(c, size / 4, order=3) for c in control])
        return cls(float(rng.uniform(-1, 1) * np.radians(15)), float(rng.uniform(0.85, 1.15)),
                   tuple(rng.uniform(-0.08, 0.08, size=2)), bool(rng.integers(2)),
                   float(np.exp(rng.normal(0.0, 0.25))), elastic[:, :size, :size])


def _cut(data, spacing, extent, axis: int, position: float, pose: _Pose,
         size: int) -> np.ndarray:
    """The plane at ``position`` along ``axis``, sampled on a square grid under ``pose``;
    rows go from superior (or anterior, for axial planes) to inferior, in [0, 1]."""
    from scipy import ndimage

    plane = [a for a in range(3) if a != axis]
    rows_axis, cols_axis = plane[1], plane[0]  # (y, z), (x, z), (x, y): rows along the last
    centre = extent.mean(0)
    field = max((extent[1, a] - extent[0, a]) * spacing[a] for a in plane) * 1.1
    grid = (np.arange(size) + 0.5) / size - 0.5  # field units, -0.5 .. 0.5
    v, u = np.meshgrid(-grid, grid, indexing="ij")  # v up (rows), u right (columns)
    if pose.flip:
        u = -u
    if pose.elastic is not None:
        v, u = v + pose.elastic[0], u + pose.elastic[1]
    cos, sin = np.cos(pose.angle), np.sin(pose.angle)
    u, v = (cos * u - sin * v) * pose.scale + pose.shift[0], \
        (sin * u + cos * v) * pose.scale + pose.shift[1]
    coords = np.empty((3, size, size))
    coords[axis] = extent[0, axis] + position * (extent[1, axis] - extent[0, axis])
    coords[cols_axis] = centre[cols_axis] + u * field / spacing[cols_axis]
    coords[rows_axis] = centre[rows_axis] + v * field / spacing[rows_axis]
    return ndimage.map_coordinates(data, coords, order=1, mode="constant", cval=0.0)
