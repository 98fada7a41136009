"""Tests of latentaudit.utils and the error hierarchy."""

# ruff: noqa: NPY002  (the global NumPy state is what seed_everything seeds)

import logging
import random

import numpy as np
import pytest
import torch

import latentaudit as la
from latentaudit import errors
from latentaudit.utils import check_option, check_random_state, check_spatial_dims, optional_import


def test_seed_everything_reproduces_all_generators():
    la.seed_everything(123)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    la.seed_everything(123)
    b = (random.random(), np.random.rand(), torch.rand(1).item())
    assert a == b
    la.seed_everything(124)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) != a


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "0", True])
def test_seed_everything_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed must be an integer"):
        la.seed_everything(seed)


def test_check_option_suggests_close_match():
    assert check_option("method", "pca", ["tsne", "pca"]) == "pca"
    with pytest.raises(errors.ConfigError, match=r"did you mean 'tsne'\?") as info:
        check_option("method", "tnse", ["tsne", "umap", "pca"])
    assert "method must be one of 'tsne', 'umap', 'pca', got 'tnse'" in str(info.value)
    with pytest.raises(ValueError) as info:
        check_option("k", 7, [1, 2])
    assert "did you mean" not in str(info.value)


def test_check_random_state():
    a = check_random_state(0).rand(3)
    b = check_random_state(0).rand(3)
    np.testing.assert_array_equal(a, b)
    rs = np.random.RandomState(1)
    assert check_random_state(rs) is rs


def test_check_spatial_dims():
    assert check_spatial_dims(2) == 2 and check_spatial_dims(3) == 3
    for bad in (1, 4, True, "2"):
        with pytest.raises(ValueError, match="spatial_dims must be 2 or 3"):
            check_spatial_dims(bad)


def test_optional_import_names_the_extra():
    assert optional_import("json").dumps([]) == "[]"
    with pytest.raises(ImportError, match=r"pip install 'latentaudit\[dicom\]'") as info:
        optional_import("no_such_module_xyz", "dicom", feature="DICOM reading")
    assert isinstance(info.value, errors.MissingDependencyError)
    assert "DICOM reading needs" in str(info.value)


def test_error_hierarchy():
    for name, builtin in [("DataError", ValueError), ("ConfigError", ValueError),
                          ("InputShapeError", ValueError), ("InputTypeError", TypeError),
                          ("NotFittedError", AttributeError), ("TrainingError", RuntimeError),
                          ("CheckpointError", OSError), ("MissingDependencyError", ImportError)]:
        cls = getattr(errors, name)
        assert issubclass(cls, la.LatentAuditError) and issubclass(cls, builtin), name
    assert issubclass(errors.NotFittedError, ValueError)


def test_library_logger_has_no_handlers_but_null():
    handlers = logging.getLogger("latentaudit").handlers
    assert all(isinstance(h, logging.NullHandler) for h in handlers)


def test_lazy_top_level():
    assert "ArrayDataset" in dir(la)
    assert la.ArrayDataset is la.data.ArrayDataset
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        la.nope  # noqa: B018


def test_embed_stays_the_function_after_the_submodule_is_imported():
    import importlib

    importlib.import_module("latentaudit.embed")
    assert callable(la.embed) and la.embed.__name__ == "embed"


def test_every_public_name_resolves():
    for name in la.__all__:
        assert getattr(la, name) is not None, name


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, RuntimeError])
def test_ctrl_c_inside_an_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path,
                                                                           interrupt):
    """docs/reliability.md: an error or Ctrl-C inside a write removes the temporary file and
    leaves the previous file as it was, for both writers of latentaudit.utils."""
    from latentaudit.utils import atomic_path, atomic_write

    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(interrupt), atomic_write(target) as handle:
        handle.write("half of the new")
        raise interrupt()
    with pytest.raises(interrupt), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise interrupt()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
