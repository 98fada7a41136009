"""The 3-D demo cohort written as a study of NIfTI files (:meth:`DemoCohort.to_nifti`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ._demo_render import _FOV_MM


def write_study(images: np.ndarray, metadata: pd.DataFrame, folder, rows=None
                ) -> tuple[Path, Path]:
    """Write ``images`` ``(N, 1, x, z, y)`` as RAS volumes ``folder/scans/<subject>.nii.gz``
    and their ``metadata`` as ``folder/participants.csv``; return both paths."""
    import nibabel as nib

    rows = np.arange(len(images)) if rows is None else np.asarray(rows, dtype=int)
    folder = Path(folder)
    scans = folder / "scans"
    scans.mkdir(parents=True, exist_ok=True)
    side = images.shape[-1]
    affine = np.diag([_FOV_MM / side] * 3 + [1.0])
    subjects = metadata["subject"].to_numpy()
    for row in rows:
        # the items are slice_to_image(RAS volume, 0), i.e. (x, z down, y down): undo it
        volume = np.swapaxes(images[row, 0][:, ::-1, ::-1], 1, 2)
        nib.save(nib.Nifti1Image(np.ascontiguousarray(volume, dtype=np.float32), affine),
                 scans / f"{subjects[row]}.nii.gz")
    table = folder / "participants.csv"
    metadata.iloc[rows].to_csv(table, index=False)
    return scans, table
