"""Settings shared by the test suite (those of every collected test, doctests included,
are in the repository's top-level ``conftest.py``)."""

from pathlib import Path

import pytest

import latentaudit as la


def _demo_volumes(size):
    if not Path("/usr/share/mricron/templates/ch2.nii.gz").is_file():
        pytest.skip("the 3-D demo cohort is made from Debian's mricron-data templates")
    pytest.importorskip("nilearn")
    return la.datasets.load_demo_cohort(size, spatial_dims=3)


@pytest.fixture(scope="session")
def demo_volumes():
    """The 3-D demo cohort at 16^3 (400 heads; made on first use into the user's cache,
    about a minute of CPU, then read in a second)."""
    return _demo_volumes(16)


@pytest.fixture(scope="session")
def demo_volumes_32():
    """The 3-D demo cohort at 32^3 (made on first use into the user's cache, about 80 s
    of CPU, then read in a second)."""
    return _demo_volumes(32)
