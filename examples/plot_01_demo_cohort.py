"""
The demo cohort
===============

latentaudit ships a simulated four-site head MRI cohort whose anatomy comes from real T1
volumes (see :doc:`/data`).  Two sites carry planted artefacts, and a few sex labels are
flipped, so every finding can be checked against what was planted:

- site B's field of view is shifted (the head sits lower in the image),
- site C scans with a head-rest (a bright bar under the head),
- sites A and D share one clean protocol,
- 3% of the sex labels are flipped.

The library itself never reads the truth table; only tests, benchmarks and these examples
do.
"""

# %%
# What the cohort holds
# ---------------------
import matplotlib.pyplot as plt
import numpy as np

import latentaudit as la

cohort = la.datasets.load_demo_cohort()
print(cohort)
print(cohort.metadata.head(5).to_string(index=False))

# %%
# Per site: size, share of women, mean age and height.
summary = cohort.metadata.groupby("site").agg(
    n=("subject", "size"), female=("sex", lambda s: (s == "F").mean()),
    age=("age", "mean"), height=("height", "mean")).round(2)
print(summary.to_string())

# %%
# What was planted (the truth table; never read by the library):
print(cohort.truth.groupby("artefact").size().to_string())
print(f"flipped sex labels: {int(cohort.truth['sex_flipped'].sum())}")

# %%
# One subject per site, with the mask of the pixels its artefact changed
# ----------------------------------------------------------------------
site = cohort.metadata["site"].to_numpy()
fig, axes = plt.subplots(2, 4, figsize=(8, 4.4))
for column, name in enumerate("ABCD"):
    row = int(np.flatnonzero(site == name)[0])
    axes[0, column].imshow(cohort.images[row, 0], cmap="gray", vmin=-1, vmax=1)
    axes[0, column].set_title(f"site {name}: {cohort.truth['artefact'][row]}")
    axes[1, column].imshow(cohort.artefact_masks[row, 0], cmap="magma", vmin=0, vmax=1)
for ax in axes.ravel():
    ax.set_axis_off()
axes[1, 0].set_title("planted mask", loc="left")
fig.tight_layout()
plt.show()
