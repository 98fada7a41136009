"""Benchmark: maps averaged over independently seeded classifiers (3-D demo cohort, 16^3).

For each split seed ``s`` (stratified 80/20 split of 80 site volumes + 80 from A/D), five
classifiers (ResNet10, widths (4, 8, 8, 16), 120 steps, seeds ``100 s + k``) are trained on
the same training volumes; the pointing game within one voxel on the held-out site volumes
is printed for each classifier alone and for the mean of the first 3 and of all 5 maps
(each scaled to [0, 1]: what ``Explainer(n_members=...)`` computes).  Site B uses
Grad-CAM at the "auto" layer, site C LayerCAM at stage 0.

Run from the repository root (about 15 minutes per site on one core)::

    .venv/bin/python benchmarks/bench_explain_3d_members.py B 0,1,2,3,4,5,6,7,8,9
    .venv/bin/python benchmarks/bench_explain_3d_members.py C 0,1,2,3,4,5,6,7,8,9
"""
import sys

import numpy as np
import torch
from sklearn.model_selection import train_test_split

import latentaudit as la
from latentaudit.explain import Explainer, pointing_game

torch.set_num_threads(1)
site_name = sys.argv[1]
splits = [int(s) for s in sys.argv[2].split(",")]
cam, layer = ("gradcam", "auto") if site_name == "B" else ("layercam", 0)
cohort = la.datasets.load_demo_cohort(16, spatial_dims=3)
site = cohort.metadata["site"].to_numpy()
rng = np.random.default_rng(0)
rows = np.sort(np.concatenate([
    np.flatnonzero(site == site_name)[:80],
    rng.choice(np.flatnonzero((site == "A") | (site == "D")), 80, replace=False)]))
images, labels = cohort.images[rows], (site[rows] == site_name).astype(int)
masks = cohort.artefact_masks[rows][:, 0]
for s in splits:
    tr, te = train_test_split(np.arange(len(labels)), test_size=0.2, stratify=labels,
                              random_state=s)
    held = te[labels[te] == 1]
    maps, single = [], []
    for k in range(5):
        exp = Explainer(spatial_dims=3, max_steps=120, test_size=0, random_state=100 * s + k,
                        widths=(4, 8, 8, 16), batch_size=16, lr=3e-3).fit(images[tr], labels[tr])
        m = exp.explain(images[held], target=1, cam=cam, target_layer=layer)
        maps.append(m)
        single.append(round(float(pointing_game(m, masks[held], tolerance=1).mean()), 2))
    e3 = pointing_game(np.mean(maps[:3], 0), masks[held], tolerance=1).mean()
    e5 = pointing_game(np.mean(maps, 0), masks[held], tolerance=1).mean()
    print(f"{site_name} split {s} {cam}@{layer}: single@1 {single} ens3 {e3:.2f} "
          f"ens5 {e5:.2f}", flush=True)
