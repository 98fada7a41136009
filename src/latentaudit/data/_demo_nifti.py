"""The 3-D demo cohort written as a study of NIfTI files (:meth:`DemoCohort.to_nifti`)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..utils import atomic_write
from ._demo_render import _FOV_MM


def write_study(images: np.ndarray, metadata: pd.DataFrame, folder, rows=None, *,
                overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``images`` ``(N, 1, x, z, y)`` as RAS volumes ``folder/scans/<subject>.nii.gz``
    and their ``metadata`` as ``folder/participants.csv``; return both paths.  Files
    already there are refused (nothing written) unless ``overwrite``."""
    import nibabel as nib

    rows = np.arange(len(images)) if rows is None else np.asarray(rows, dtype=int)
    folder = Path(folder)
    scans = folder / "scans"
    table = folder / "participants.csv"
    subjects = metadata["subject"].to_numpy()
    targets = [table, *(scans / f"{subjects[row]}.nii.gz" for row in rows)]
    existing = [str(path) for path in targets if path.exists()]
    if existing and not overwrite:
        raise ConfigError(f"to_nifti would replace {len(existing)} existing file(s), e.g. "
                          f"{existing[0]!r}; write into a new folder or pass overwrite=True")
    scans.mkdir(parents=True, exist_ok=True)
    side = images.shape[-1]
    affine = np.diag([_FOV_MM / side] * 3 + [1.0])
    for row, target in zip(rows, targets[1:], strict=True):
        # the items are slice_to_image(RAS volume, 0), i.e. (x, z down, y down): undo it
        volume = np.swapaxes(images[row, 0][:, ::-1, ::-1], 1, 2)
        image = nib.Nifti1Image(np.ascontiguousarray(volume, dtype=np.float32), affine)
        with atomic_write(target, "wb") as handle:  # .nii.gz: the NIfTI bytes, gzipped
            handle.write(gzip.compress(image.to_bytes(), compresslevel=6))
    with atomic_write(table, newline="") as handle:
        metadata.iloc[rows].to_csv(handle, index=False)
    return scans, table
