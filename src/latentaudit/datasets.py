"""Datasets that come with latentaudit or with the system.

- :func:`load_demo_cohort`: a simulated multi-site head MRI study (about 2,000 subjects,
  four sites) built from real T1 volumes, with two planted site artefacts and flipped sex
  labels, and the ground truth of both.  It ships inside the package.
- :func:`load_fashion_mnist`: the 70,000 real 28x28 images of Fashion-MNIST, read from
  Debian's ``dataset-fashion-mnist`` or a folder of the original IDX files.
- :func:`load_slice_bank`: real MRI and CT slices (Colin27 T1 and brain, MNI152, INIA19,
  nibabel's example T1 and EPI, InVesalius' head CT) at random positions and
  augmentations; :func:`slice_bank_split` keeps training and audited slices apart.
- :func:`make_demo_cohort`: rebuild the demo cohort from the template volumes.
- :func:`demo_split`: the fixed training / held-out split of the demo cohort that the
  shipped demo weights were trained on; every figure about them is measured on the
  held-out part.

Examples
--------
>>> import latentaudit as la
>>> cohort = la.datasets.load_demo_cohort()
>>> cohort.images.shape
(2000, 1, 64, 64)
"""

import numpy as np
import pandas as pd

from .data._demo import DemoCohort, load_demo_cohort, make_demo_cohort
from .data._fashion import FASHION_MNIST_CLASSES, load_fashion_mnist
from .data._slice_bank import SLICE_BANK_VOLUMES, load_slice_bank, slice_bank_split
from .errors import ConfigError, InputTypeError

__all__ = [
    "FASHION_MNIST_CLASSES",
    "DemoCohort",
    "DEMO_SPLIT_NAME",
    "demo_split",
    "load_demo_cohort",
    "load_fashion_mnist",
    "load_slice_bank",
    "make_demo_cohort",
    "SLICE_BANK_VOLUMES",
    "slice_bank_split",
]

#: Name of the split the shipped demo weights record in their folder (``split.json``).
DEMO_SPLIT_NAME = "demo-holdout-20pct-seed0"


def demo_split(metadata: pd.DataFrame | None = None, *, held_out: float = 0.2,
               random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The fixed training / held-out split of the demo cohort.

    Subjects are drawn at random within each site x given-sex stratum, so both parts have
    the cohort's sites and sexes in the same proportions.  With the defaults this is the
    split the shipped demo weights were trained on (their folder records it in
    ``split.json``); figures about those weights are measured on the held-out rows.

    Parameters
    ----------
    metadata : pandas.DataFrame, optional
        The cohort's metadata (``site`` and ``sex`` columns); default the bundled demo
        cohort's.
    held_out : float, default 0.2
        Fraction of each stratum held out, in (0, 1).
    random_state : int, default 0
        Seed of the draw.

    Returns
    -------
    train, held_out : numpy.ndarray
        Sorted row positions (int64) of the two parts; together they are every row once.

    Raises
    ------
    ConfigError
        If ``held_out`` is not in (0, 1).
    InputTypeError
        If ``metadata`` lacks the ``site`` or ``sex`` column.

    Examples
    --------
    >>> import latentaudit as la
    >>> train, test = la.datasets.demo_split()
    >>> len(train), len(test)
    (1600, 400)
    >>> cohort = la.datasets.load_demo_cohort()
    >>> cohort.metadata["site"].iloc[test].value_counts().sort_index().tolist()
    [100, 100, 100, 100]
    """
    if isinstance(held_out, bool) or not isinstance(held_out, (int, float)) or not (
            0.0 < float(held_out) < 1.0):
        raise ConfigError(f"held_out must be a fraction in (0, 1), got {held_out!r}")
    if metadata is None:
        metadata = load_demo_cohort().metadata
    missing = [c for c in ("site", "sex") if c not in getattr(metadata, "columns", ())]
    if missing:
        raise InputTypeError(f"demo_split needs a metadata DataFrame with 'site' and 'sex' "
                             f"columns; missing {missing}")
    rng = np.random.default_rng(random_state)
    strata = metadata["site"].astype(str) + "|" + metadata["sex"].astype(str)
    test = []
    for key in sorted(strata.unique()):
        rows = np.flatnonzero((strata == key).to_numpy())
        n_test = int(round(len(rows) * float(held_out)))
        test.extend(rng.choice(rows, size=n_test, replace=False).tolist())
    test = np.sort(np.asarray(test, dtype=np.int64))
    train = np.setdiff1d(np.arange(len(metadata), dtype=np.int64), test)
    return train, test
