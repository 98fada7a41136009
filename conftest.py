"""Settings for every test pytest collects: the suite in ``tests/`` and the doctests of
``src/`` (``--doctest-modules``, set in ``pyproject.toml``)."""

import os
import time

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


#: CPU seconds one docstring's Examples section may take.  Nearly every example takes well
#: under one second of CPU; the t-SNE examples of ``Projector`` take 1.5-5 s (openTSNE's
#: threads count in the process's CPU time, more so on a loaded machine).  The bound stops
#: an example from growing into a test; the summary printed after every run shows the
#: slowest.  CPU time of the process, not wall time, so a busy machine does not fail a fast
#: example.  $LATENTAUDIT_DOCTEST_SECONDS overrides it (0: no check).
DOCTEST_CPU_SECONDS = float(os.environ.get("LATENTAUDIT_DOCTEST_SECONDS", "8"))


@pytest.fixture(scope="session")
def _process_warmed_up():
    """Pay a process's one-time costs before its first doctest is timed: the lazy imports
    of the back-ends (openTSNE, pynndescent and numba, grad-cam and OpenCV, scikit-learn's
    estimators), PyTorch's first optimizer step (about a second on its own) and the first
    t-SNE map (numba's compiled kernels loaded; a few seconds)."""
    import numpy as np
    import openTSNE  # noqa: F401
    import pynndescent  # noqa: F401
    import pytorch_grad_cam  # noqa: F401
    import sklearn.linear_model
    import sklearn.svm  # noqa: F401

    import latentaudit.training  # noqa: F401

    weight = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.AdamW([weight])
    (weight ** 2).sum().backward()
    optimizer.step()
    from latentaudit import Projector

    Projector(method="tsne", max_iter=1, random_state=0).fit_transform(
        np.random.default_rng(0).normal(size=(40, 4)))


@pytest.fixture(autouse=True)
def _doctests_are_timed_after_the_warm_up(request):
    if isinstance(request.node, DoctestItem):
        request.getfixturevalue("_process_warmed_up")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Time every doctest (CPU seconds) and fail one slower than DOCTEST_CPU_SECONDS."""
    if not isinstance(item, DoctestItem):
        return (yield)
    start = time.process_time()
    result = yield
    spent = time.process_time() - start
    item.user_properties.append(("doctest_cpu_seconds", spent))
    if DOCTEST_CPU_SECONDS and spent > DOCTEST_CPU_SECONDS:
        pytest.fail(f"the Examples of {item.name} took {spent:.2f} s of CPU time; an example "
                    f"must take at most {DOCTEST_CPU_SECONDS:g} s (make it smaller)",
                    pytrace=False)
    return result


def pytest_terminal_summary(terminalreporter):
    """Show the slowest doctests, so their time is seen at every run."""
    timed = []
    for reports in terminalreporter.stats.values():
        for report in reports:
            for key, value in getattr(report, "user_properties", ()):
                if key == "doctest_cpu_seconds" and getattr(report, "when", "") == "call":
                    timed.append((value, report.nodeid))
    if timed:
        timed.sort(reverse=True)
        terminalreporter.write_sep("-", f"{len(timed)} doctests: CPU seconds, slowest first "
                                        f"(bound {DOCTEST_CPU_SECONDS:g} s)")
        for seconds, nodeid in timed[:8]:
            terminalreporter.write_line(f"{seconds:6.2f} s  {nodeid}")
