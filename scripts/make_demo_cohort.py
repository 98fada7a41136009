"""Rebuild the demo cohort file that ships inside latentaudit.

Usage::

    python scripts/make_demo_cohort.py                 # the packaged file, seed 0
    python scripts/make_demo_cohort.py --n-subjects 200 --output /tmp/small.npz
    python scripts/make_demo_cohort.py --montage       # also redraw docs/images/demo_montage.png
    python scripts/make_demo_cohort.py --spatial-dims 3 --size 32 --output /tmp/vol.npz

Options:

``--output PATH``        where to write (default in 2-D: the shipped
                         src/latentaudit/data/_files/demo_cohort.npz; required in 3-D)
``--n-subjects N``       number of subjects, spread evenly over sites A-D (default 2000 in
                         2-D, 400 in 3-D)
``--spatial-dims D``     2: centre sagittal slices (default); 3: whole heads
``--size S``             side of the volumes in 3-D: 16, 32 (default), 48 or 64
``--seed S``             seed of every random choice (default 0); same seed, same file
``--flip-fraction F``    share of subjects with a flipped sex label (default 0.03)
``--mricron-dir DIR``    folder with ch2.nii.gz and ch2bet.nii.gz (default
                         /usr/share/mricron/templates)
``--mni-template PATH``  MNI152 2009a T1 template (default: the copy inside nilearn)
``--montage``            redraw docs/images/demo_montage.png from the new file
``--quiet``              no progress bar

Needs the Debian package ``mricron-data`` (``sudo apt-get install mricron-data``) for the
Colin27 head, and nilearn (``pip install 'latentaudit[demo-build]'``) for the MNI152
template.  The 2-D cohort takes a few minutes on one core; the 3-D one about 0.2 s of CPU
per subject at 32^3 (1.6 s at 64^3).  ``latentaudit.datasets.load_demo_cohort(spatial_dims=3)``
makes and caches the default 3-D cohort by itself.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "src" / "latentaudit" / "data" / "_files" / "demo_cohort.npz"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--n-subjects", type=int, default=None)
    parser.add_argument("--spatial-dims", type=int, default=2, choices=(2, 3))
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--flip-fraction", type=float, default=0.03)
    parser.add_argument("--mricron-dir", type=Path, default=None)
    parser.add_argument("--mni-template", type=Path, default=None)
    parser.add_argument("--montage", action="store_true",
                        help="redraw docs/images/demo_montage.png from the new file")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.output is None:
        if args.spatial_dims == 3:
            parser.error("the 3-D cohort is not shipped: pass --output PATH")
        args.output = DEFAULT_OUTPUT
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from latentaudit.datasets import load_demo_cohort, make_demo_cohort
    from latentaudit.errors import LatentAuditError

    start = time.perf_counter()
    try:
        path = make_demo_cohort(args.output, n_subjects=args.n_subjects, seed=args.seed,
                                flip_fraction=args.flip_fraction,
                                spatial_dims=args.spatial_dims, size=args.size,
                                mricron_dir=args.mricron_dir,
                                mni_template=args.mni_template, verbose=not args.quiet)
    except LatentAuditError as err:
        print(f"make_demo_cohort: {err}", file=sys.stderr)
        return 1
    print(f"generation took {time.perf_counter() - start:.0f} s")
    start = time.perf_counter()
    cohort = load_demo_cohort(path=path) if args.spatial_dims == 2 else \
        load_demo_cohort(args.size or 32, spatial_dims=3, path=path)
    print(f"loads in {time.perf_counter() - start:.2f} s:")
    print(cohort)
    if args.montage and args.spatial_dims == 2:
        sys.path.insert(0, str(ROOT / "scripts"))
        from plot_demo_montage import plot_demo_montage

        print(f"drew {plot_demo_montage(path=path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
