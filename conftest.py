"""Settings for every test pytest collects: the suite in ``tests/`` and the doctests of
``src/`` (``--doctest-modules``, set in ``pyproject.toml``)."""

import matplotlib
import pytest
import torch
from _pytest.doctest import DoctestItem

# The suite runs on two pytest-xdist workers on two cores: one intra-op thread per worker
# avoids oversubscription, which makes small ops many times slower.
torch.set_num_threads(1)
matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _doctests_run_in_a_temporary_folder(request, tmp_path, monkeypatch):
    """Examples that save files (``save_pretrained("my_model")``, ``emb.save("emb")``)
    write into a fresh folder of their own, never into the working tree."""
    if isinstance(request.node, DoctestItem):
        monkeypatch.chdir(tmp_path)
