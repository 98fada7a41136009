"""Datasets that come with latentaudit or with the system.

- :func:`load_demo_cohort`: a simulated multi-site head MRI study (about 2,000 subjects,
  four sites) built from real T1 volumes, with two planted site artefacts and flipped sex
  labels, and the ground truth of both.  It ships inside the package.
- :func:`load_fashion_mnist`: the 70,000 real 28x28 images of Fashion-MNIST, read from
  Debian's ``dataset-fashion-mnist`` or a folder of the original IDX files.
- :func:`make_demo_cohort`: rebuild the demo cohort from the template volumes.

Examples
--------
>>> import latentaudit as la
>>> cohort = la.datasets.load_demo_cohort()
>>> cohort.images.shape
(2000, 1, 64, 64)
"""

from .data._demo import DemoCohort, load_demo_cohort, make_demo_cohort
from .data._fashion import FASHION_MNIST_CLASSES, load_fashion_mnist

__all__ = [
    "FASHION_MNIST_CLASSES",
    "DemoCohort",
    "load_demo_cohort",
    "load_fashion_mnist",
    "make_demo_cohort",
]
