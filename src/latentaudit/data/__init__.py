"""The data layer: datasets of NIfTI volumes, DICOM series, image files and arrays;
slicing, resampling, pad/crop and intensity scaling; metadata aligned by id; one image per
row (:class:`RowImages`)."""

from ._array import ArrayDataset
from ._base import ImageDataset
from ._dicom import DicomDataset
from ._folder import ImageFolderDataset
from ._nifti import NiftiDataset
from ._roi import ROI
from ._rows import RowImages, item_image
from ._statistics import image_statistics
from ._transforms import (
    center_slices,
    pad_or_crop,
    resample,
    resize,
    scale_intensity,
    slice_to_image,
    to_canonical,
)

__all__ = [
    "ROI",
    "ArrayDataset",
    "DicomDataset",
    "ImageDataset",
    "ImageFolderDataset",
    "NiftiDataset",
    "RowImages",
    "center_slices",
    "image_statistics",
    "item_image",
    "pad_or_crop",
    "resample",
    "resize",
    "scale_intensity",
    "slice_to_image",
    "to_canonical",
]
