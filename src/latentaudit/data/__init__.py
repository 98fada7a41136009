"""The data layer: datasets of NIfTI volumes, DICOM series, image files and arrays;
slicing, resampling, pad/crop and intensity scaling; metadata aligned by id."""

from ._array import ArrayDataset
from ._base import ImageDataset

__all__ = ["ArrayDataset", "ImageDataset"]
