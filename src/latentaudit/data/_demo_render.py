"""How the demo cohort is drawn: template volumes, a population, and every subject rendered.

Every subject is a real T1-weighted head (Colin27 ``ch2`` from Debian's ``mricron-data``, its
brain blended with nilearn's MNI152 2009a template) under a random smooth deformation, a
head size and shape that follow sex and height, age effects, a contrast change and a coil
sensitivity that falls off towards the neck.  The 2-D cohort is the centre sagittal slice
(:func:`render_slice`), the 3-D cohort the whole head (:func:`render_volume`), from the same
templates, the same population draws and the same site artefacts, which are
:mod:`latentaudit.artefacts`' own: site B's field of view is
``FieldOfViewShift(strength=0.78125)`` (50 of 256 pixels, as Graf et al. found 50 voxels in
NAKO; the renderer moves the field of view itself, so what comes into view is anatomy),
site C lies on a :class:`~latentaudit.artefacts.HeadRest` with each subject's draws.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..artefacts import FieldOfViewShift, HeadRest, moved_region
from ..errors import MissingDependencyError

#: The artefact planted at each site ("none" for a clean site).
SITE_ARTEFACTS = {"A": "none", "B": "fov_shift", "C": "head_rest", "D": "none"}
SITES = tuple(SITE_ARTEFACTS)

_FULL_SCALE = 210.0  # template intensity shown as white
_BRAIN_MEAN = 0.38  # typical brain tissue and CSF levels after scaling by _FULL_SCALE
_CSF_LEVEL = 0.22

# Geometry, in MNI millimetres (x right, y anterior, z superior).  An image shows the
# sagittal plane with superior at the top row and anterior at the left column; a volume
# adds the left-right axis in front: (x, z down, y backwards).
_FOV_MM = 240.0
_FOV_LEFT_Y = 80.0  # anterior edge of the image: the nose tip falls just outside
_FOV_TOP_Z = 112.0
_HEAD_CENTRE = np.array([0.0, -15.0, 15.0])  # centre of scaling and rotation
_VENTRICLE_CENTRE = np.array([0.0, -12.0, 18.0])  # centre of age-related enlargement
_BRAIN_CENTRE = np.array([0.0, -18.0, 15.0])  # centre and (y, z) semi-axes of the brain,
_BRAIN_RADII = (88.0, 72.0)  # for age-related shrinkage
_BRAIN_HALF_WIDTH = 65.0  # its left-right semi-axis (3-D)
#: Site B: the field of view moves superiorly by 50 of 256 pixels, i.e. 0.78125 of
#: FieldOfViewShift's largest shift (a quarter of the field of view).
SITE_B_ARTEFACT = FieldOfViewShift(strength=0.78125, axis=-2, direction=-1,
                                   value_range=(0.0, 1.0))
# The template grids: a 1 mm slab around the midline for the slices, the whole head at
# 2 mm for the volumes.
_SLAB_HALF_WIDTH = 12  # mm either side of the midline kept from the volumes
_SLAB_Y = (-175.0, 120.0)
_SLAB_Z = (-160.0, 160.0)
SLAB_GRID = (_SLAB_HALF_WIDTH, 1.0)
VOLUME_GRID = (100, 2.0)

_MRICRON_DIR = Path("/usr/share/mricron/templates")
_MNI_RELATIVE = Path("datasets") / "data" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
_DEFORMATION_MM = np.array([1.2, 2.0, 2.0])  # spread of the control points along x, y, z


# --------------------------------------------------------------------------------------
# Templates and population
# --------------------------------------------------------------------------------------
def template_paths(mricron_dir=None, mni_template=None) -> tuple[Path, Path, Path]:
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


def _resample(path: Path, *, clamp_bottom: bool, half_width: int, step: float) -> np.ndarray:
    """Resample a volume onto a template grid (MNI space, ``step`` mm): ``half_width`` mm
    either side of the midline, the slab's extent front to back and top to bottom.

    With ``clamp_bottom`` the lowest axial plane of the volume is repeated below it, so the
    neck continues to the bottom of the image instead of ending in a straight cut.  A grid
    coarser than the volume's 1 mm samples it after a matching Gaussian blur.
    """
    import nibabel as nib
    from scipy import ndimage

    image = nib.load(str(path))
    data = np.asarray(image.dataobj, dtype=np.float32)
    if step > 1:
        data = ndimage.gaussian_filter(data, 0.4 * step)
    x = np.arange(-half_width, half_width + step / 2, step, dtype=np.float64)
    y = np.arange(_SLAB_Y[0], _SLAB_Y[1] + step / 2, step)
    z = np.arange(_SLAB_Z[0], _SLAB_Z[1] + step / 2, step)
    world = np.stack(np.meshgrid(x, y, z, indexing="ij")).reshape(3, -1)
    voxel = np.linalg.inv(image.affine) @ np.vstack([world, np.ones(world.shape[1])])
    voxel = voxel[:3]
    if clamp_bottom:
        # the axis of the volume that runs inferior-superior
        axis = int(np.argmax(np.abs(image.affine[2, :3])))
        voxel[axis] = np.clip(voxel[axis], 0, data.shape[axis] - 1)
    values = ndimage.map_coordinates(data, voxel, order=1, mode="constant", cval=0.0)
    return values.reshape(len(x), len(y), len(z)).astype(np.float32)


@functools.lru_cache(maxsize=2)
def load_templates(ch2_path: Path, ch2bet_path: Path, mni_path: Path,
                   grid: tuple[int, float] = SLAB_GRID) -> dict:
    """The volumes every subject is drawn from, on one grid (read-only, cached).

    ``grid`` is ``(half_width_mm, step_mm)``: :data:`SLAB_GRID` for the slices,
    :data:`VOLUME_GRID` for the volumes.
    """
    from scipy import ndimage

    half_width, step = grid
    ch2 = _resample(ch2_path, clamp_bottom=True, half_width=half_width, step=step)
    ch2_brain = _resample(ch2bet_path, clamp_bottom=False, half_width=half_width,
                          step=step) > 0
    mni = _resample(mni_path, clamp_bottom=False, half_width=half_width, step=step)
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
    brain = ndimage.gaussian_filter(both.astype(np.float32), 1.5 / step)
    templates = {"ch2": ch2, "brain_delta": brain * (mni_matched - ch2), "brain": brain,
                 "head": ndimage.gaussian_filter(head.astype(np.float32), 0.7 / step)}
    for volume in templates.values():
        volume.flags.writeable = False
    templates["grid"] = grid
    return templates


def draw_population(n: int, seed: int, flip_fraction: float) -> dict:
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
        "deformation": rng.normal(0, 1, (n, 3, 5, 5)) * _DEFORMATION_MM[:, None, None],
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


def draw_volume_deformations(n: int, seed: int) -> np.ndarray:
    """Control points of each subject's smooth 3-D deformation, (n, 3, 5, 5, 5), in mm.

    Drawn from their own stream, so the 3-D cohort shares every other draw (demographics,
    sites, flipped labels, head size, contrast, head-rest) with the 2-D one of the same
    seed and number of subjects.
    """
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 3])))
    return rng.normal(0, 1, (n, 3, 5, 5, 5)) * _DEFORMATION_MM[:, None, None, None]


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------
def _output_plane(size: int, shift_mm: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """World (y, z) of every pixel of a ``size`` x ``size`` sagittal image; the field of
    view moved up by ``shift_mm``."""
    step = _FOV_MM / size
    centres = (np.arange(size) + 0.5) * step
    y = _FOV_LEFT_Y - centres
    z = _FOV_TOP_Z + shift_mm - centres
    zz, yy = np.meshgrid(z, y, indexing="ij")
    return yy, zz


def _deformation_field(coarse: np.ndarray, size: int, shift_mm: float) -> np.ndarray:
    """A subject's deformation, (3, *grid), from its control points: a cubic spline zoom of
    a grid half as wide again as the view, cropped to the view.  The deformation is fixed
    to the head, not to the field of view: a shifted field of view shows the same anatomy,
    moved."""
    from scipy import ndimage

    pad = size // 4
    zoom = (size + 2 * pad) / coarse.shape[-1]
    top = pad - int(round(shift_mm / (_FOV_MM / size)))
    if coarse.ndim == 3:
        field = np.stack([ndimage.zoom(c, zoom, order=3) for c in coarse])
        return field[:, top: top + size, pad: pad + size]
    # 3-D: the spline zoom is a tensor product, one 1-D zoom of each unit vector per axis
    basis = np.stack([ndimage.zoom(unit, zoom, order=3)
                      for unit in np.eye(coarse.shape[-1])], axis=1)
    return np.einsum("nijk,ai,bj,ck->nabc", coarse, basis[pad: pad + size],
                     basis[top: top + size], basis[pad: pad + size], optimize=True)


def _age(p: dict, x, y, z):
    """Ageing of the sample points: the brain shrinks inside the skull (points inside it
    move outwards, most near its surface, none beyond the skull, so the CSF gap widens) and
    the ventricles enlarge (points are pulled towards their centre).  ``x`` is None for a
    slice (the sagittal plane only)."""
    dy, dz = y - _BRAIN_CENTRE[1], z - _BRAIN_CENTRE[2]
    squared = (dy / _BRAIN_RADII[0]) ** 2 + (dz / _BRAIN_RADII[1]) ** 2
    if x is not None:
        squared = squared + (x / _BRAIN_HALF_WIDTH) ** 2
    push = p["shrinkage"] * np.exp(-np.sqrt(squared) ** 6)
    y, z = y + push * dy, z + push * dz
    if x is not None:
        x = x + push * x
    dy, dz = y - _VENTRICLE_CENTRE[1], z - _VENTRICLE_CENTRE[2]
    squared = dy**2 + dz**2
    if x is not None:
        squared = squared + x**2
    pull = p["atrophy"] * np.exp(-squared / (2 * 18.0**2))
    y, z = y - pull * dy, z - pull * dz
    if x is not None:
        x = x - pull * x
    return x, y, z


def _slice_coordinates(p: dict, size: int, shift_mm: float = 0.0) -> np.ndarray:
    """Where each pixel of the sagittal image samples the slab templates (voxel indices)."""
    yy, zz = _output_plane(size, shift_mm)
    qy, qz = yy - _HEAD_CENTRE[1], zz - _HEAD_CENTRE[2]
    angle = np.deg2rad(p["pitch"])
    cos, sin = np.cos(angle), np.sin(angle)
    y = _HEAD_CENTRE[1] + (cos * qy - sin * qz) / p["scale_y"]
    z = _HEAD_CENTRE[2] + (sin * qy + cos * qz) / p["scale_z"]
    x = np.full_like(y, p["x_offset"])
    field = _deformation_field(p["deformation"], size, shift_mm)
    x, y, z = x + field[0], y + field[1], z + field[2]
    _, y, z = _age(p, None, y, z)
    return np.stack([x + _SLAB_HALF_WIDTH, y - _SLAB_Y[0], z - _SLAB_Z[0]])


def _volume_coordinates(p: dict, deformation: np.ndarray, size: int,
                        grid: tuple[int, float],
                        shift_mm: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Where each voxel of the volume samples the templates, and its world z."""
    step = _FOV_MM / size
    centres = (np.arange(size) + 0.5) * step
    xx, zz, yy = np.meshgrid(centres - _FOV_MM / 2, _FOV_TOP_Z + shift_mm - centres,
                             _FOV_LEFT_Y - centres, indexing="ij")
    qy, qz = yy - _HEAD_CENTRE[1], zz - _HEAD_CENTRE[2]
    angle = np.deg2rad(p["pitch"])
    cos, sin = np.cos(angle), np.sin(angle)
    y = _HEAD_CENTRE[1] + (cos * qy - sin * qz) / p["scale_y"]
    z = _HEAD_CENTRE[2] + (sin * qy + cos * qz) / p["scale_z"]
    # the head's width follows its size (the geometric mean of length and height)
    x = (xx - p["x_offset"]) / np.sqrt(p["scale_y"] * p["scale_z"])
    field = _deformation_field(deformation, size, shift_mm)
    x, y, z = _age(p, x + field[0], y + field[1], z + field[2])
    half_width, template_step = grid
    return np.stack([(x + half_width) / template_step, (y - _SLAB_Y[0]) / template_step,
                     (z - _SLAB_Z[0]) / template_step]), zz


def _sample(volume: np.ndarray, coordinates: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return ndimage.map_coordinates(volume, coordinates, order=1, mode="nearest")


def _tissue(templates: dict, p: dict, coordinates: np.ndarray, zz: np.ndarray):
    """The noise-free image in [0, 1] at the sample points, and the head's support."""
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
    image = image * np.exp(-np.clip(-50.0 - zz, 0, None) ** 2 / (2 * 25.0**2))
    return image, head


def _shift_mm(artefact: str, size: int) -> float:
    """How far up site B's field of view moves, in mm (0 elsewhere)."""
    if artefact != "fov_shift":
        return 0.0
    return SITE_B_ARTEFACT.shift_pixels(size) * (_FOV_MM / size)


def _plant(image: np.ndarray, head: np.ndarray, unshifted_head: np.ndarray | None, p: dict,
           artefact: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The site's artefact, from latentaudit.artefacts.  Site B's field of view was moved
    by :data:`SITE_B_ARTEFACT`'s shift when the subject was rendered (so what comes into
    view is the subject's own anatomy, not the background an image-space shift would fill
    in); its mask is the artefact's: the head's region that moved in or out of view.
    Site C's subject lies on a :class:`HeadRest` with the subject's draws."""
    mask = np.zeros(image.shape, dtype=bool)
    if artefact == "fov_shift":
        mask = moved_region(unshifted_head, head)
    elif artefact == "head_rest":
        step = _FOV_MM / size
        rest = HeadRest(strength=1.0, intensity=p["rest_intensity"],
                        thickness=p["rest_thickness"], gap=p["rest_gap"],
                        arc=(p["rest_from"], p["rest_to"]), taper=6.0, jitter=False,
                        spacing=step, centre=_head_centre_pixel(size), value_range=(0.0, 1.0))
        image, mask = rest(image[None], support=head)
        image, mask = image[0], mask[0]
    return np.clip(image, 0, 1).astype(np.float32), mask


def _head_centre_pixel(size: int) -> tuple[float, float]:
    """(row, column) of the head's centre of scaling in the (unshifted) image."""
    step = _FOV_MM / size
    return ((_FOV_TOP_Z - _HEAD_CENTRE[2]) / step - 0.5,
            (_FOV_LEFT_Y - _HEAD_CENTRE[1]) / step - 0.5)


def render_slice(templates: dict, p: dict, artefact: str,
                 size: int) -> tuple[np.ndarray, np.ndarray]:
    """One subject's noise-free centre sagittal slice in [0, 1], and its artefact mask."""
    shift_mm = _shift_mm(artefact, size)
    _, zz = _output_plane(size, shift_mm)
    image, head = _tissue(templates, p, _slice_coordinates(p, size, shift_mm), zz)
    unshifted = None
    if shift_mm:
        unshifted = _sample(templates["head"], _slice_coordinates(p, size)) > 0.5
    return _plant(image, head, unshifted, p, artefact, size)


def render_volume(templates: dict, p: dict, deformation: np.ndarray, artefact: str,
                  size: int) -> tuple[np.ndarray, np.ndarray]:
    """One subject's noise-free head volume ``(x, z, y)`` in [0, 1], and its mask."""
    grid = templates["grid"]
    shift_mm = _shift_mm(artefact, size)
    coordinates, zz = _volume_coordinates(p, deformation, size, grid, shift_mm)
    image, head = _tissue(templates, p, coordinates, zz)
    unshifted = None
    if shift_mm:
        before, _ = _volume_coordinates(p, deformation, size, grid)
        unshifted = _sample(templates["head"], before) > 0.5
    return _plant(image, head, unshifted, p, artefact, size)
