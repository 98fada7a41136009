"""Project the demo cohort to 2-D and colour the map by site, sex and age.

Run from the repository root with ``python scripts/plot_demo_projection.py``; it writes
``docs/images/demo_projection.png``.

Without ``--embeddings`` the map is made from the raw pixels (PCA to 50 dimensions, then
t-SNE), which needs no trained encoder; with ``--embeddings FOLDER`` it projects
embeddings saved by ``latentaudit.embed(..., out=FOLDER)`` or ``Embeddings.save``, e.g.
those of a trained Diffusion Autoencoder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import latentaudit as la
from latentaudit.embed import Embeddings
from latentaudit.projection import Projector
from latentaudit.report import plot_projection


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embeddings", default=None,
                        help="folder of saved embeddings (default: use the raw pixels)")
    parser.add_argument("--out", default="docs/images/demo_projection.png")
    parser.add_argument("--thumbnails", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    cohort = la.datasets.load_demo_cohort()
    if args.embeddings:
        emb = Embeddings.load(args.embeddings)
        features, metadata = np.asarray(emb.z), emb.metadata
        source = f"embeddings from {emb.provenance.get('encoder', 'an encoder')}"
    else:
        features = cohort.images.reshape(len(cohort.images), -1)
        metadata = cohort.metadata
        source = "raw pixels (no encoder)"
    projector = Projector(method="tsne", random_state=args.seed, n_jobs=-1)
    xy = projector.fit_transform(features)
    title = (f"Demo cohort ({len(xy):,} subjects): t-SNE of the {source}, "
             f"PCA to {projector.pca_.n_components_} dims first")
    plot_projection(xy, metadata, columns=["site", "sex", "age"], images=cohort,
                    thumbnails=args.thumbnails if not args.embeddings else None,
                    title=title, path=Path(args.out), random_state=args.seed)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
