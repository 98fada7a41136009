"""Load the bundled demo cohort and print what it holds.

Run with ``python examples/demo_cohort.py``.  The cohort is a simulated multi-site study
whose anatomy comes from real T1 MRI volumes; two sites carry planted artefacts and a few
sex labels are flipped (see ``docs/data.rst``).
"""

import latentaudit as la

cohort = la.datasets.load_demo_cohort()
print(cohort)
print()
print(cohort.metadata.head(10).to_string(index=False))
print()
print("per site:")
print(cohort.metadata.groupby("site").agg(
    n=("subject", "size"), female=("sex", lambda s: (s == "F").mean()),
    age=("age", "mean"), height=("height", "mean")).round(2).to_string())
