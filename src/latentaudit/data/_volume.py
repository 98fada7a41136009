"""What every volume dataset shares: volumes to items, written once.

A subclass only says how to find its inputs and how to read one into an array and an
affine (:class:`~latentaudit.data.NiftiDataset`, :class:`~latentaudit.data.DicomDataset`);
reorientation, intensity scaling, slicing, regions of interest, resampling, pad/crop,
caching, the metadata join and the handling of bad input live here.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, InputShapeError, InputTypeError
from ..utils import check_option, check_spatial_dims
from ._base import ImageDataset, _few, align_metadata, read_table
from ._roi import ROI, _check_same_space, _label_extent
from ._transforms import (
    _as_generator,
    _check_intensity,
    _check_size,
    _extract_box,
    _fit_spacing,
    _per_axis,
    _ras_header,
    _reorient_to_ras,
    _resample_grid,
    _scale_inplace,
    _shape_to_3d,
    _squeeze_to_3d,
    _stack_shape,
    _stack_spacing,
    _voxel_sizes,
    center_slices,
    pad_or_crop,
    slice_to_image,
)

logger = logging.getLogger(__name__)

_SKIPPED_COLUMNS = ["path", "id", "reason"]


class _VolumeDataset(ImageDataset):
    """Base class of the datasets that read one 3-D volume per subject.

    Subclasses implement ``_discover(paths)`` (a list of ``(source, default_id, name)``),
    ``_read_header(source)`` (``(shape, affine)`` without reading voxels) and
    ``_read_volume(source)`` (a float32 array the caller may modify, and its affine, RAS
    world coordinates).  Both readers raise :class:`DataError` naming the file.
    """

    def __init__(self, paths, metadata=None, *, id_column="subject", ids=None, spatial_dims=3,
                 slice_axis=0, n_slices=1, size=None, spacing=None, crop="center",
                 intensity=(0.5, 99.5), canonical=True, roi=None, on_error="raise",
                 cache_size=8, random_state=None, verbose=False) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.id_column = str(id_column)
        self.slice_axis = check_option("slice_axis", slice_axis, (0, 1, 2))
        if n_slices is not None and (isinstance(n_slices, bool) or not isinstance(
                n_slices, (int, np.integer)) or n_slices < 1):
            raise ConfigError(f"n_slices must be a positive integer or None, got {n_slices!r}")
        if self.spatial_dims == 3 and n_slices != 1:
            raise ConfigError(f"n_slices applies to spatial_dims=2 only; got n_slices="
                              f"{n_slices!r} with spatial_dims=3")
        self.n_slices = None if n_slices is None else int(n_slices)
        self.size = _check_size(size, self.spatial_dims)
        self.spacing = None if spacing is None else tuple(
            float(s) for s in _per_axis(spacing, self.spatial_dims, "spacing"))
        self.crop = check_option("crop", crop, ("center", "random"))
        self.intensity = _check_intensity(intensity)
        self.canonical = bool(canonical)
        if roi is not None and not isinstance(roi, ROI):
            raise InputTypeError(f"roi must be a latentaudit.data.ROI or None, got "
                                 f"{type(roi).__name__}")
        if roi is not None and self.size is None:
            raise ConfigError("roi= needs size= (regions differ in size from subject to subject)")
        if roi is not None and self.n_slices is None:
            raise ConfigError("roi= with spatial_dims=2 needs an integer n_slices, got None")
        if roi is not None:
            roi.margin_voxels(np.ones(3), self.spatial_dims)  # checks the margin's length
        self.roi = roi
        self.on_error = check_option("on_error", on_error, ("raise", "skip"))
        if isinstance(cache_size, bool) or not isinstance(cache_size, (int, np.integer)) or (
                cache_size < 0):
            raise ConfigError(f"cache_size must be a non-negative integer, got {cache_size!r}")
        self.cache_size = int(cache_size)
        self.random_state = random_state
        self.verbose = verbose
        # one seed drawn now; item i of epoch e crops with the generator (seed, e, i), so
        # crops do not depend on worker processes or on the order items are read
        self._seed = int(_as_generator(random_state).integers(0, 2**31 - 1))
        self._epoch = 0
        self._cache: OrderedDict = OrderedDict()
        self._build(paths, metadata, ids)

    # -- subclass hooks --------------------------------------------------------------------
    def _discover(self, paths) -> list[tuple[object, str, str]]:  # pragma: no cover
        raise NotImplementedError

    def _read_header(self, source) -> tuple[tuple[int, ...], np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def _read_volume(self, source) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    # -- building --------------------------------------------------------------------------
    def _build(self, paths, metadata, ids) -> None:
        entries = self._discover(paths)
        names = [name for _, _, name in entries]
        if ids is None:
            subject_ids = [default for _, default, _ in entries]
        else:
            if isinstance(ids, str):
                raise InputTypeError("ids must be a sequence of ids, got a single string")
            subject_ids = [str(i) for i in ids]
            if len(subject_ids) != len(entries):
                raise DataError(f"got {len(subject_ids)} ids for {len(entries)} inputs; give "
                                f"one id per input")
        repeated = pd.Index(subject_ids)[pd.Index(subject_ids).duplicated()].unique()
        if len(repeated):
            raise DataError(f"several inputs share the id(s) {_few(repeated)}; ids must be "
                            f"unique (pass ids= to set them)")
        skipped: list[tuple] = []
        table = None if metadata is None else read_table(metadata, self.id_column)
        usable = list(range(len(entries)))
        if table is not None:
            if self.id_column not in table.columns:
                raise DataError(
                    f"the metadata table has no id column {self.id_column!r}; its columns are "
                    f"{list(map(str, table.columns))}; pass id_column= to name the right one")
            table_ids = table[self.id_column].astype(str)
            repeated = table_ids[table_ids.duplicated()].unique()
            if len(repeated):
                raise DataError(f"the metadata table has repeated ids in {self.id_column!r}: "
                                f"{_few(repeated)}; each subject must appear once")
            known = set(table_ids)
            missing = [k for k in usable if subject_ids[k] not in known]
            file_ids = set(subject_ids)
            orphans = [i for i in pd.unique(table_ids) if i not in file_ids]
            if self.on_error == "raise" and missing:
                raise DataError(
                    f"{len(missing)} input(s) have ids missing from the metadata table (column "
                    f"{self.id_column!r}): "
                    f"{_few(f'{subject_ids[k]} ({names[k]})' for k in missing)}; add them to "
                    f"the table or pass on_error='skip'")
            if self.on_error == "raise" and orphans:
                raise DataError(
                    f"{len(orphans)} id(s) of the metadata table have no input file: "
                    f"{_few(orphans)}; drop those rows or pass on_error='skip' to list them "
                    f"in .skipped")
            skipped += [(names[k], subject_ids[k], "id not in the metadata table")
                        for k in missing]
            skipped += [(None, i, "metadata row has no input file") for i in orphans]
            usable = [k for k in usable if subject_ids[k] in known]

        kept, geometry, prepared = [], [], {}
        iterator = usable
        if self.verbose:
            from tqdm.auto import tqdm

            iterator = tqdm(usable, desc="checking volumes", unit="volume")
        for k in iterator:
            source, _, name = entries[k]
            try:
                geom = self._check_header(source, subject_ids[k], name)
                if self.on_error == "skip":
                    # load once now so that a bad file cannot fail later, mid-training
                    value = self._prepare(source, subject_ids[k], name)
            except DataError as err:
                if self.on_error == "raise":
                    raise
                skipped.append((name, subject_ids[k], str(err)))
                continue
            if self.on_error == "skip" and self.cache_size:
                prepared[len(kept)] = value
                if len(prepared) > self.cache_size:
                    prepared.pop(min(prepared))
            kept.append(k)
            geometry.append(geom)

        self.skipped = pd.DataFrame(skipped, columns=_SKIPPED_COLUMNS)
        if len(self.skipped):
            logger.warning("%s: skipped %d input(s), see .skipped; first: %s: %s",
                           type(self).__name__, len(self.skipped), self.skipped["path"].iloc[0]
                           or self.skipped["id"].iloc[0], self.skipped["reason"].iloc[0])
        if not kept:
            if len(self.skipped):
                raise DataError(
                    f"no usable input: all were skipped; first reason: "
                    f"{self.skipped['reason'].iloc[0]}")
            raise DataError("no usable input")  # pragma: no cover - _discover ensures some

        self._sources = [entries[k][0] for k in kept]
        self._subject_ids = np.array([subject_ids[k] for k in kept], dtype=object)
        self._subject_names = np.array([names[k] for k in kept], dtype=object)
        self._stack_shapes = [g[0] for g in geometry]
        if self.spatial_dims == 3:
            counts = np.ones(len(kept), dtype=int)
        elif self.n_slices is not None:
            counts = np.full(len(kept), self.n_slices, dtype=int)
        else:
            counts = np.array([shape[0] for shape in self._stack_shapes], dtype=int)
        self._item_subject = np.repeat(np.arange(len(kept)), counts)
        self._slice_index = np.concatenate([np.arange(c) for c in counts]).astype(np.int64)
        self._ids = self._subject_ids[self._item_subject]
        if table is None:
            self._metadata = pd.DataFrame({self.id_column: self._ids})
        else:
            self._metadata, _ = align_metadata(self._ids, table, self.id_column,
                                               source=type(self).__name__)
        self._image_shape = self._common_shape(geometry)
        for position, value in prepared.items():
            self._cache[position] = value

    def _check_header(self, source, subject_id: str, name: str):
        """Validate one input from its header; return its slice-stack shape and spacing."""
        shape, affine = self._read_header(source)
        flat = len(shape) == 2  # a 2-D file (a one-slice series of a 3-D format is not)
        shape = _shape_to_3d(shape, name)
        affine = np.asarray(affine, dtype=float)
        spacing = _voxel_sizes(affine)
        if not (np.isfinite(affine).all() and (spacing > 0).all()):
            raise DataError(f"{name!r} has an unusable affine (voxel sizes "
                            f"{spacing.tolist()}); voxel sizes must be positive and finite")
        if self.canonical:
            try:
                shape, affine = _ras_header(shape, affine)
            except Exception as err:  # DataError, or numpy's LinAlgError for odd affines
                raise DataError(f"{name!r} cannot be reoriented to RAS: {err}") from None
        stack_shape = _stack_shape(shape, self.slice_axis)
        stack_spacing = _stack_spacing(_voxel_sizes(affine), self.slice_axis)
        if self.spatial_dims == 3 and flat:
            raise DataError(f"{name!r} is a single 2-D image (shape {shape}), not a volume; "
                            f"spatial_dims=3 needs 3-D volumes: remove it, or embed 2-D "
                            f"images with spatial_dims=2")
        if self.spatial_dims == 2 and min(stack_shape[1:]) == 1:
            raise DataError(
                f"slices of {name!r} along slice_axis={self.slice_axis} would be "
                f"{stack_shape[1]} x {stack_shape[2]} pixels (shape {shape}): it is a single "
                f"2-D image, not a volume; remove it from the folder, or, if every file is a "
                f"2-D image, read them with slice_axis={int(np.argmin(shape))}")
        if self.spatial_dims == 2 and self.n_slices is not None and (
                self.n_slices > stack_shape[0]):
            raise DataError(
                f"{name!r} has {stack_shape[0]} slices along slice_axis={self.slice_axis} "
                f"(shape {shape}{' after reorientation to RAS' if self.canonical else ''}), "
                f"fewer than n_slices={self.n_slices}")
        if self.roi is not None:
            seg_path = self.roi.segmentation_path(subject_id)
            seg_shape, seg_affine = self.roi.segmentation_header(subject_id)
            if self.canonical:
                seg_shape, seg_affine = _ras_header(seg_shape, seg_affine)
            _check_same_space(shape, affine, seg_shape, seg_affine, seg_path, subject_id)
        return stack_shape, stack_spacing

    def _common_shape(self, geometry) -> tuple[int, ...]:
        if self.size is not None:
            return (1,) + self.size
        shapes = {}
        for (stack_shape, stack_spacing), name in zip(geometry, self._subject_names, strict=True):
            shape = self._output_shape(np.asarray(stack_shape), stack_spacing)
            shapes.setdefault(shape, name)
        if len(shapes) > 1:
            (a, name_a), (b, name_b) = list(shapes.items())[:2]
            raise DataError(
                f"items differ in shape ({name_a!r} gives {a}, {name_b!r} gives {b}); pass "
                f"size= to pad/crop them to one shape")
        return (1,) + next(iter(shapes))

    def _output_shape(self, stack_shape, stack_spacing) -> tuple[int, ...]:
        """Item shape before pad/crop, without reading the volume (size=None only)."""
        axes = slice(3 - self.spatial_dims, 3)
        shape = np.asarray(stack_shape)[axes]
        if self.spacing is not None:
            shape = np.maximum(1, np.round(shape * np.asarray(stack_spacing)[axes]
                                           / np.asarray(self.spacing)))
        return tuple(int(s) for s in shape)

    # -- loading ---------------------------------------------------------------------------
    def _prepare(self, source, subject_id: str, name: str) -> tuple[np.ndarray, float]:
        """Read, reorient, scale, slice/crop and resample one subject (before pad/crop)."""
        try:
            data, affine = self._read_volume(source)
        except DataError:
            raise
        except Exception as err:  # readers raise many kinds for corrupt files
            raise DataError(f"cannot read {name!r}: {type(err).__name__}: {err}") from err
        data = _squeeze_to_3d(data, name)
        if data.dtype != np.float32 or not data.flags.writeable:
            data = data.astype(np.float32)
        low, high = float(data.min()), float(data.max())
        if not (np.isfinite(low) and np.isfinite(high)):
            n_bad = int(np.count_nonzero(~np.isfinite(data)))
            raise DataError(f"{name!r} contains {n_bad} NaN or infinite voxel value(s); "
                            f"replace them or pass on_error='skip'")
        # scale while the array is still in the reader's memory order (fast), then reorient
        if self.intensity is not None:
            _scale_inplace(data, *self.intensity)
            pad_value = -1.0
        else:
            pad_value = low
        stack = self._arrange_volume(data, affine, subject_id, pad_value, order=1)
        if self.spatial_dims == 2 and stack.shape[0] == 0:  # pragma: no cover - header checked
            raise DataError(f"{name!r} has no slices along slice_axis={self.slice_axis}")
        if stack.base is not None and stack.nbytes < stack.base.nbytes // 2:
            stack = stack.copy()  # don't let a few cached slices hold the whole volume
        return stack, pad_value

    def _arrange_volume(self, data, affine, subject_id: str, pad_value, order: int):
        """Reorient, slice, crop to the region of interest and resample a volume given in
        its file's voxel space: the images' path, and :meth:`arrange`'s for masks."""
        if self.canonical:
            data, affine = _reorient_to_ras(data, affine)
        stack = slice_to_image(data, self.slice_axis)
        spacing = _stack_spacing(_voxel_sizes(affine), self.slice_axis)
        if self.roi is not None:
            stack = self._crop_roi(stack, data.shape, affine, spacing, subject_id, pad_value)
        elif self.spatial_dims == 2 and self.n_slices is not None:
            chosen = center_slices(stack.shape[0], self.n_slices)
            stack = stack[chosen[0]:chosen[-1] + 1]
        return self._resample(stack, spacing, order)

    def _crop_roi(self, stack, ras_shape, affine, spacing, subject_id, pad_value):
        seg_path = self.roi.segmentation_path(subject_id)
        seg, seg_affine = self.roi.read_segmentation(subject_id)
        if self.canonical:
            seg, seg_affine = _reorient_to_ras(seg, seg_affine)
        _check_same_space(ras_shape, affine, seg.shape, seg_affine, seg_path, subject_id)
        labels = self.roi.labels
        mask = slice_to_image(np.isin(seg, labels), self.slice_axis)
        first, last = _label_extent(mask, subject_id, labels, seg_path)
        margin = self.roi.margin_voxels(spacing, self.spatial_dims)
        starts, stops = first - margin, last + 1 + margin
        if self.spatial_dims == 2:
            centre = (first[0] + last[0]) // 2
            start = int(np.clip(centre - (self.n_slices - 1) // 2, 0,
                                stack.shape[0] - self.n_slices))
            starts[0], stops[0] = start, start + self.n_slices
        return _extract_box(stack, starts, stops, pad_value)

    def _resample(self, stack: np.ndarray, spacing: np.ndarray, order: int = 1) -> np.ndarray:
        axes = slice(3 - self.spatial_dims, 3)
        current = np.asarray(spacing, dtype=float)[axes]
        shape = np.asarray(stack.shape, dtype=float)[axes]
        if self.spacing is not None:
            target = np.asarray(self.spacing, dtype=float)
        elif self.size is not None:
            target = np.full(self.spatial_dims, _fit_spacing(shape, current, self.size))
        else:
            return stack
        out_shape = np.maximum(1, np.round(shape * current / target)).astype(int)
        scale = target / current
        if self.spatial_dims == 2:
            out_shape = np.concatenate([[stack.shape[0]], out_shape])
            scale = np.concatenate([[1.0], scale])
        if tuple(out_shape) == stack.shape and np.allclose(scale, 1.0, atol=1e-6):
            return stack
        return _resample_grid(stack, out_shape, scale, order=order, anti_aliasing=True)

    def _prepared(self, subject: int) -> tuple[np.ndarray, float]:
        cache = self._cache
        if subject in cache:
            cache.move_to_end(subject)
            return cache[subject]
        value = self._prepare(self._sources[subject], self._subject_ids[subject],
                              self._subject_names[subject])
        if self.cache_size:
            cache[subject] = value
            while len(cache) > self.cache_size:
                cache.popitem(last=False)
        return value

    # -- the ImageDataset contract ---------------------------------------------------------
    def __len__(self) -> int:
        return len(self._item_subject)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one item's image: ``(1, H, W)`` or ``(1, D, H, W)``."""
        return self._image_shape

    @property
    def paths(self) -> np.ndarray:
        """The input (file or series) of every item, as given or found."""
        return self._subject_names[self._item_subject]

    def load_image(self, index: int) -> np.ndarray:
        """Return item ``index`` as a new float32 array of shape :attr:`image_shape`."""
        stack, pad_value = self._prepared(int(self._item_subject[index]))
        return self._item(stack, index, pad_value)

    def arrange(self, array, index: int) -> np.ndarray:
        """Arrange an array drawn on an item's stored volume as the item's image.

        A segmentation, an artefact mask or any map given in the voxel space of the file
        behind item ``index`` (the array as its reader returns it: for NIfTI, nibabel's
        ``get_fdata()`` order) goes through what the image went through: reorientation,
        slicing, the region of interest, resampling, padding or cropping.  The result lies
        over ``dataset[index]["image"]`` voxel for voxel, so masks drawn on the files can
        be compared with maps of the items (e.g. by
        :func:`latentaudit.explain.pointing_game`).

        Parameters
        ----------
        array : array-like
            Shaped like the file's voxels (3-D).  Boolean and integer arrays are resampled
            by nearest neighbour and keep their values; others linearly.
        index : int
            The item (a slice of it in 2-D).

        Returns
        -------
        numpy.ndarray
            Shaped like :attr:`image_shape`: bool for a boolean array, int64 for integers,
            else float32.

        Raises
        ------
        ValueError
            (as :class:`latentaudit.errors.InputShapeError`) if ``array`` is not shaped
            like the file's voxels.

        Examples
        --------
        >>> import nibabel as nib
        >>> import numpy as np
        >>> import latentaudit as la
        >>> from pathlib import Path
        >>> Path("scans").mkdir()
        >>> volume = np.random.default_rng(0).normal(size=(8, 8, 8)).astype("float32")
        >>> mask = np.zeros((8, 8, 8), bool)
        >>> mask[:, :, 0] = True  # the lowest axial plane of the stored volume
        >>> nib.save(nib.Nifti1Image(volume, np.eye(4)), "scans/sub-01.nii.gz")
        >>> ds = la.NiftiDataset("scans", spatial_dims=3)
        >>> arranged = ds.arrange(mask, 0)
        >>> arranged.shape, arranged.dtype
        ((1, 8, 8, 8), dtype('bool'))
        >>> bool(arranged[0, :, -1].all())  # inferior is the last row of the items
        True
        """
        subject = int(self._item_subject[index])
        source = self._sources[subject]
        shape, affine = self._read_header(source)
        shape = _shape_to_3d(shape, self._subject_names[subject])
        values = np.asarray(array)
        if values.shape != tuple(shape):
            raise InputShapeError(
                f"array must be shaped like the voxels of {self._subject_names[subject]!r}, "
                f"{tuple(shape)}, got {values.shape}")
        kind = values.dtype.kind
        discrete = kind in "biu"
        stack = self._arrange_volume(values.astype(np.float32), np.asarray(affine, float),
                                     self._subject_ids[subject], 0.0,
                                     order=0 if discrete else 1)
        item = self._item(stack, index, 0.0)
        if kind == "b":
            return item > 0.5
        if discrete:
            return np.rint(item).astype(np.int64)
        return item

    def _item(self, stack: np.ndarray, index: int, pad_value) -> np.ndarray:
        """Item ``index`` (its slice in 2-D, padded or cropped to ``size``) of a subject's
        arranged volume, as a new float32 array with a channel axis."""
        image = stack[self._slice_index[index]] if self.spatial_dims == 2 else stack
        if self.size is not None:
            rng = None
            if self.crop == "random":
                rng = np.random.default_rng([self._seed, self._epoch, int(index)])
            image = pad_or_crop(image, self.size, mode=self.crop, rng=rng,
                                pad_value=pad_value)
        image = image[np.newaxis]
        if np.may_share_memory(image, stack):
            image = np.array(image, dtype=np.float32, order="C")  # never hand out the cache
        return image

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose random crops the items use (``crop="random"`` only).

        Random crops are a function of ``(random_state, epoch, index)``, so a dataset gives
        the same items in the main process and in any DataLoader worker.  Call this at the
        start of every epoch (before iterating the DataLoader) for fresh crops.

        Parameters
        ----------
        epoch : int
            The epoch number.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ConfigError(f"epoch must be a non-negative integer, got {epoch!r}")
        self._epoch = int(epoch)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()  # workers fill their own; don't ship volumes around
        return state
