"""
Delineate a cluster by hand and explain it with Grad-CAM
========================================================

In the paper the clusters that should not exist are delineated by hand on a t-SNE map.
latentaudit turns such polygons into labels (:func:`latentaudit.audit.delineate`; the
report's interactive map exports them as a file), trains a classifier on the delineation
(:class:`latentaudit.Explainer`) and shows with Grad-CAM *where* in the images the
difference lives.

Here the island of site C (the head-rest) is delineated, and the maps are checked against
the planted head-rest masks with the pointing game.
"""

# %%
# A map of the embeddings
# -----------------------
import matplotlib.pyplot as plt
import numpy as np
from scipy.spatial import ConvexHull

import latentaudit as la
from latentaudit.audit import delineate
from latentaudit.explain import overlay, pointing_game

cohort = la.datasets.load_demo_cohort()
rows = np.sort(np.random.default_rng(0).choice(len(cohort), size=800, replace=False))
dataset = la.ArrayDataset(cohort.images[rows],
                          metadata=cohort.metadata.iloc[rows].reset_index(drop=True))
emb = la.embed(la.DAEEncoder.from_pretrained("demo"), dataset, batch_size=128)
xy = la.Projector(method="tsne", random_state=0).fit_transform(emb.z)

# %%
# Draw a polygon around an island
# -------------------------------
# Drawn by hand in the report's map, a polygon is a list of (x, y) vertices.  To keep this
# page reproducible, the "hand" here is the convex hull of the map points of the
# auditor's cluster that holds most of the head-rest subjects, widened by 10%.
auditor = la.ClusterAuditor(random_state=0, nuisance=["site"], expected=["sex"],
                            within="sex").fit(emb)
site = emb.metadata["site"].to_numpy()
island = max(set(auditor.labels_) - {-1},
             key=lambda c: np.sum((auditor.labels_ == c) & (site == "C")))
points = xy[auditor.labels_ == island]
hull = points[ConvexHull(points).vertices]
polygon = hull.mean(axis=0) + 1.1 * (hull - hull.mean(axis=0))

labels = delineate(xy, {1: polygon}, outside=0)
print(f"{labels.sum()} subjects inside the polygon; their sites:",
      dict(zip(*np.unique(site[labels == 1], return_counts=True), strict=True)))

fig, ax = plt.subplots(figsize=(5, 4.5))
for name in "ABCD":
    ax.scatter(*xy[site == name].T, s=6, label=f"site {name}")
ax.fill(*polygon.T, facecolor="none", edgecolor="k", linewidth=1.5, label="delineation")
ax.legend(markerscale=2, fontsize=8)
ax.set_title("t-SNE of the DAE embeddings")
ax.set_axis_off()
plt.show()

# %%
# Train a classifier on the delineation
# -------------------------------------
# A small ResNet learns "inside vs outside the polygon" from the images (the
# ``Embeddings`` keep a handle to them); a held-out part of the images measures how well
# the delineation can be told from the images at all.
exp = la.Explainer(widths=(8, 16, 32, 64), max_steps=80, batch_size=32, random_state=0)
exp.fit(emb, labels)
print(f"held-out accuracy {exp.accuracy_:.3f}, balanced {exp.balanced_accuracy_:.3f}")

# %%
# Grad-CAM: where the classifier looks
# ------------------------------------
# Maps of held-out images inside the polygon, for the class "inside".  The pointing game
# asks whether each map's maximum falls on the planted head-rest (within 2 pixels).
held_out = exp.test_indices_[labels[exp.test_indices_] == 1]
maps = exp.explain(dataset.images[held_out], target=1)
masks = cohort.artefact_masks[rows][held_out]
hits = pointing_game(maps, masks, tolerance=2)
print(f"pointing game on {len(hits)} held-out images: {hits.mean():.2f}")

fig, axes = plt.subplots(2, 5, figsize=(10, 4.4))
for k, ax in enumerate(axes[0]):
    ax.imshow(dataset.images[held_out[k], 0], cmap="gray", vmin=-1, vmax=1)
    ax.contour(masks[k, 0], levels=[0.5], colors="cyan", linewidths=0.8)
    axes[1, k].imshow(overlay(dataset.images[held_out[k]], maps[k]))
for ax in axes.ravel():
    ax.set_axis_off()
axes[0, 0].set_title("image, planted mask", loc="left", fontsize=9)
axes[1, 0].set_title("Grad-CAM", loc="left", fontsize=9)
fig.tight_layout()
plt.show()
