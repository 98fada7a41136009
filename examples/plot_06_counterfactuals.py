"""
Counterfactuals: decode the move between clusters
=================================================

A generative encoder can show *what* separates two clusters: move a subject's embedding
from its cluster toward another and decode every step.  With a Diffusion Autoencoder each
image keeps its own stochastic code ``x_T`` (from ``encoder.invert``), so the subject stays
recognisable and only what the embedding carries changes.

Here site B's images (shifted field of view) are moved toward the clean sites A and D:
the head should move back up in the image.
"""

# %%
# Embeddings and groups
# ---------------------
import matplotlib.pyplot as plt
import numpy as np

import latentaudit as la
from latentaudit.explain import counterfactual

cohort = la.datasets.load_demo_cohort()
encoder = la.DAEEncoder.from_pretrained("demo")
site = cohort.metadata["site"].to_numpy()
rows = np.flatnonzero(np.isin(site, ["A", "B", "D"]))
group = np.where(site[rows] == "B", "B", "clean")
z = la.embed(encoder, la.ArrayDataset(cohort.images[rows]), batch_size=128).z

# %%
# Move four site-B subjects toward the clean sites
# ------------------------------------------------
# The direction is the difference of the two groups' mean embeddings (``"centroid"``; a
# linear probe's normal is ``"probe"``).  ``steps`` is the number of DDIM steps of the
# inversion and the decoding (fewer is faster and a little less faithful).
moved = rows[group == "B"][:4]
cf = counterfactual(encoder, cohort.images[moved], source="B", target="clean",
                    embeddings=z, labels=group, n_points=5, steps=10, random_state=0)
print(cf.images.shape, "alphas", cf.alphas)


# %%
# Where is the head?  The vertical centre of mass of the image's brightness (row 0 is the
# top): site B's heads sit lower than the clean sites' heads, and the counterfactuals move
# them up.
def centre_row(images):
    weight = (np.asarray(images)[:, 0] + 1.0) / 2.0
    grid = np.arange(weight.shape[1])[None, :, None]
    return (weight * grid).sum(axis=(1, 2)) / weight.sum(axis=(1, 2))


clean_rows = rows[group == "clean"]
print(f"clean sites, mean centre row: {centre_row(cohort.images[clean_rows]).mean():.1f}")
for alpha, step in zip(cf.alphas, np.moveaxis(cf.images, 1, 0), strict=True):
    print(f"alpha {alpha:.2f}: mean centre row {centre_row(step).mean():.1f}")

# %%
# Every row is one subject: the input, then the decoded steps from alpha = 0 (its own
# reconstruction) to alpha = 1 (moved by the full gap between the groups' means), then
# the difference between the last and the first step.
n, n_points = cf.images.shape[:2]
fig, axes = plt.subplots(n, n_points + 2, figsize=(1.6 * (n_points + 2), 1.7 * n))
for i in range(n):
    axes[i, 0].imshow(cohort.images[moved[i], 0], cmap="gray", vmin=-1, vmax=1)
    for k in range(n_points):
        axes[i, k + 1].imshow(cf.images[i, k, 0], cmap="gray", vmin=-1, vmax=1)
    axes[i, -1].imshow(cf.difference[i, 0], cmap="coolwarm", vmin=-1, vmax=1)
axes[0, 0].set_title("input", fontsize=9)
for k, alpha in enumerate(cf.alphas):
    axes[0, k + 1].set_title(f"α = {alpha:.2f}", fontsize=9)
axes[0, -1].set_title("last − first", fontsize=9)
for ax in axes.ravel():
    ax.set_axis_off()
fig.tight_layout()
plt.show()
