"""Settings shared by the test suite (those of every collected test, doctests included,
are in the repository's top-level ``conftest.py``)."""

from pathlib import Path

import pytest

import latentaudit as la


@pytest.fixture(scope="session")
def demo_volumes():
    """The 3-D demo cohort at 16^3 (400 heads; made on first use into the user's cache,
    about a minute of CPU, then read in a second)."""
    if not Path("/usr/share/mricron/templates/ch2.nii.gz").is_file():
        pytest.skip("the 3-D demo cohort is made from Debian's mricron-data templates")
    pytest.importorskip("nilearn")
    return la.datasets.load_demo_cohort(16, spatial_dims=3)
