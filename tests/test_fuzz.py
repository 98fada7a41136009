"""Property-based tests (hypothesis): every bad input ends in a LatentAuditError.

Random arrays and tables with NaN/inf, empty or mismatched inputs, wrong dimensionality or
channels, duplicate ids, constant columns and embeddings, one sample per class, and
corrupt or truncated files go into the datasets, ``embed``, ``Projector``,
``ClusterAuditor``, ``Explainer``, ``Interpolator``, the saved-file readers and the
command line's option parsing.  Each call must either work or raise a
:class:`~latentaudit.errors.LatentAuditError` with a message, never a raw error from
numpy, scikit-learn or torch.  The default suite runs a few examples of each (seeded, so
every run tries the same ones); ``-m slow`` runs many more.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest
from _reliability import count
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import latentaudit as la
from latentaudit.errors import LatentAuditError
from latentaudit.options import OPTIONS

QUICK = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                 suppress_health_check=list(HealthCheck))
LONG = settings(max_examples=300, deadline=None, derandomize=False, database=None,
                suppress_health_check=list(HealthCheck))


def clear(call, *args, **kwargs):
    """Run ``call``: a result, or a LatentAuditError with a message (never anything else).

    The warnings it gave are kept in ``clear.warnings``.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return call(*args, **kwargs)
        except LatentAuditError as error:
            assert len(str(error)) > 10, repr(error)
            return error
        finally:
            clear.warnings = [str(w.message) for w in caught]


def both(**strategies):
    """The property twice: a quick seeded run in the default suite, a long one as slow."""
    def make(test):
        quick = QUICK(given(**strategies)(test))
        long = pytest.mark.slow(LONG(given(**strategies)(test)))
        return quick, long
    return make


# --------------------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------------------
special = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1e30, -1e-30])


@st.composite
def matrices(draw, max_rows=24, max_cols=6):
    """(n, d) float arrays, sometimes degenerate: empty, constant, NaN/inf, duplicated."""
    n = draw(st.integers(0, max_rows))
    d = draw(st.integers(0, max_cols))
    kind = draw(st.sampled_from(["normal", "constant", "special", "duplicated", "tiny"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    z = rng.normal(size=(n, d))
    if kind == "constant":
        z[:] = draw(st.floats(-5, 5))
    elif kind == "special" and z.size:
        mask = rng.random(z.shape) < 0.2
        z[mask] = draw(special)
    elif kind == "duplicated" and n:
        z[:] = z[0]
        z[: n // 2] += 1
    elif kind == "tiny":
        z *= 1e-30
    shape = draw(st.sampled_from(["2d", "2d", "2d", "1d", "3d"]))
    if shape == "1d":
        z = z.reshape(-1)
    elif shape == "3d":
        z = z.reshape(n, d, 1)
    return z.astype(draw(st.sampled_from([np.float32, np.float64])))


@st.composite
def columns(draw, n):
    """A metadata column of length about n: categories, numbers, constant, mixed."""
    length = n if draw(st.integers(0, 5)) else draw(st.integers(0, n + 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    kind = draw(st.sampled_from(["cat", "num", "constant", "unique", "one_per_class",
                                 "missing", "mixed"]))
    if kind == "cat":
        return list(rng.choice(["A", "B", "C"], size=length))
    if kind == "num":
        return list(rng.normal(50, 10, size=length))
    if kind == "constant":
        return ["A"] * length
    if kind in ("unique", "one_per_class"):
        return [f"g{i}" for i in range(length)]
    if kind == "missing":
        values = list(rng.normal(size=length))
        return [np.nan if i % 2 else v for i, v in enumerate(values)]
    return [1.5 if i % 3 else "n/a" for i in range(length)]


@st.composite
def tables(draw, n):
    names = draw(st.lists(st.sampled_from(["site", "sex", "age", "group", "id"]),
                          max_size=3, unique=True))
    return pd.DataFrame({name: pd.Series(draw(columns(n)), dtype=object)
                         for name in names}) if names else pd.DataFrame(index=range(n))


@st.composite
def labels(draw, n):
    kind = draw(st.sampled_from(["two", "one_per_class", "single", "noise", "text",
                                 "wrong_length"]))
    if kind == "two":
        return np.arange(n) % 2
    if kind == "one_per_class":
        return np.arange(n)
    if kind == "single":
        return np.zeros(n, dtype=int)
    if kind == "noise":
        return np.where(np.arange(n) % 3 == 0, -1, np.arange(n) % 2)
    if kind == "text":
        return np.array(["a", "b"] * (n // 2) + ["a"] * (n % 2), dtype=object)
    return np.arange(max(0, n + draw(st.sampled_from([-1, 1, 5])))) % 2


@st.composite
def images(draw, max_n=12):
    n = draw(st.integers(0, max_n))
    channels = draw(st.sampled_from([1, 1, 2, 3]))
    spatial = draw(st.sampled_from([(16, 16), (16, 16), (8, 12), (8, 8, 8), (4,), ()]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.uniform(-1, 1, size=(n, channels, *spatial)).astype(np.float32)
    if draw(st.booleans()) and x.size:
        x.reshape(-1)[draw(st.integers(0, x.size - 1))] = draw(special)
    if draw(st.integers(0, 4)) == 0 and x.size:
        x[:] = 0.5
    return x


# --------------------------------------------------------------------------------------
# the properties
# --------------------------------------------------------------------------------------
def _projector(z, method):
    count("fuzz_example", "projector")
    clear(la.Projector(method=method, random_state=0, max_iter=50).fit_transform, z)


@both(z=matrices(), method=st.sampled_from(["pca", "tsne"]))
def _projector_property(z, method):
    _projector(z, method)


test_projector, test_projector_long = _projector_property


@both(data=st.data())
def _auditor_property(data):
    count("fuzz_example", "cluster_auditor")
    z = data.draw(matrices(max_rows=30))
    metadata = data.draw(tables(len(z) if z.ndim else 0))
    method = data.draw(st.sampled_from(["kmeans", "hdbscan", "gmm"]))
    auditor = la.ClusterAuditor(clusterer=method, n_permutations=9, random_state=0)
    fitted = clear(auditor.fit, z, metadata)
    if isinstance(fitted, LatentAuditError):
        return
    for column in metadata.columns:
        if metadata[column].nunique() > 1:
            clear(fitted.label_issues, column)
    clear(fitted.probe, list(metadata.columns) or None)


test_cluster_auditor, test_cluster_auditor_long = _auditor_property


@both(data=st.data())
def _interpolator_property(data):
    count("fuzz_example", "interpolator")
    z = data.draw(matrices(max_rows=20))
    y = data.draw(labels(len(z) if z.ndim else 0))
    k = data.draw(st.sampled_from([1, 3, 5]))
    clear(la.Interpolator(k_neighbors=k, random_state=0).fit_resample, z, y)


test_interpolator, test_interpolator_long = _interpolator_property


@both(data=st.data())
def _explainer_property(data):
    count("fuzz_example", "explainer")
    x = data.draw(images())
    y = data.draw(labels(len(x)))
    explainer = la.Explainer(spatial_dims=max(2, min(3, x.ndim - 2)), widths=(4, 4, 4, 4),
                             max_steps=1, batch_size=4, random_state=0)
    fitted = clear(explainer.fit, x, y)
    if not isinstance(fitted, LatentAuditError):
        clear(fitted.explain, x[:2])


test_explainer, test_explainer_long = _explainer_property


@both(data=st.data())
def _dataset_property(data):
    count("fuzz_example", "array_dataset")
    x = data.draw(images())
    metadata = data.draw(tables(len(x)))
    ids = data.draw(st.sampled_from([None, "unique", "duplicated", "short"]))
    given_ids = {None: None, "unique": [f"s{i}" for i in range(len(x))],
                 "duplicated": ["s"] * len(x), "short": ["s0"]}[ids]
    dataset = clear(la.ArrayDataset, x, metadata if len(metadata.columns) else None,
                    ids=given_ids)
    if not isinstance(dataset, LatentAuditError) and len(dataset):
        clear(dataset.__getitem__, 0)


test_array_dataset, test_array_dataset_long = _dataset_property


@pytest.fixture(scope="module")
def tiny_encoder():
    import torch

    torch.manual_seed(0)
    return la.BetaVAEEncoder(spatial_dims=2, in_channels=1, image_size=16, channels=(4, 8),
                             latent_dim=4)


@both(x=images(max_n=6))
def _embed_property(tiny_encoder, x):
    count("fuzz_example", "embed")
    dataset = clear(la.ArrayDataset, x, check_finite=False)
    if isinstance(dataset, LatentAuditError):
        return
    result = clear(la.embed, tiny_encoder, dataset, batch_size=4, verbose=False)
    if not isinstance(result, LatentAuditError) and not np.isfinite(result.z).all():
        assert any("NaN" in w for w in clear.warnings), "NaN embeddings without a word"


test_embed, test_embed_long = _embed_property


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A folder of saved embeddings, a saved encoder and a NIfTI file, to corrupt."""
    import nibabel as nib

    root = tmp_path_factory.mktemp("saved")
    metadata = pd.DataFrame({"site": ["A", "B"] * 4})
    la.Embeddings(np.arange(16, dtype=np.float32).reshape(8, 2),
                  ids=[f"s{i}" for i in range(8)], metadata=metadata).save(root / "emb")
    la.BetaVAEEncoder(image_size=16, channels=(4, 8), latent_dim=4).save_pretrained(
        root / "enc")
    volume = np.random.default_rng(0).normal(size=(8, 8, 8)).astype(np.float32)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), str(root / "s0.nii.gz"))
    metadata.assign(subject=[f"s{i}" for i in range(8)]).to_csv(root / "table.csv",
                                                                 index=False)
    return root


def _corrupt(path, how, position, byte):
    raw = path.read_bytes()
    cut = int(position * len(raw))
    if how == "truncate":
        raw = raw[:cut]
    elif how == "flip" and raw:
        i = min(cut, len(raw) - 1)
        raw = raw[:i] + bytes([raw[i] ^ byte]) + raw[i + 1:]
    elif how == "empty":
        raw = b""
    else:
        raw = raw[:cut] + bytes([byte]) * 16 + raw[cut:]
    path.write_bytes(raw)


@both(target=st.sampled_from(["emb/embeddings.json", "emb/z.npy", "emb/ids.json",
                               "emb/metadata.json", "emb/slice_index.npy",
                               "emb/provenance.json", "enc/config.json",
                               "enc/model.safetensors", "s0.nii.gz", "table.csv"]),
       how=st.sampled_from(["truncate", "flip", "empty", "insert"]),
       position=st.floats(0, 1), byte=st.integers(1, 255))
def _files_property(saved, tmp_path_factory, target, how, position, byte):
    import shutil

    count("fuzz_example", "corrupt_files")
    root = tmp_path_factory.mktemp("corrupt")
    for name in ("emb", "enc"):
        shutil.copytree(saved / name, root / name)
    for name in ("s0.nii.gz", "table.csv"):
        shutil.copy(saved / name, root / name)
    _corrupt(root / target, how, position, byte)
    if target.startswith("emb/"):
        loaded = clear(la.Embeddings.load, root / "emb")
    elif target.startswith("enc/"):
        from latentaudit.encoders import load_pretrained

        loaded = clear(load_pretrained, root / "enc")
    elif target == "table.csv":
        from latentaudit.data._base import read_table

        loaded = clear(read_table, root / "table.csv", "subject")
    else:
        dataset = clear(la.NiftiDataset, [root / "s0.nii.gz"], spatial_dims=3,
                        size=(8, 8, 8))
        loaded = dataset if isinstance(dataset, LatentAuditError) else clear(
            dataset.__getitem__, 0)
    assert loaded is not None


test_corrupt_files, test_corrupt_files_long = _files_property


@both(key=st.sampled_from(sorted(o.key for o in OPTIONS)),
       value=st.one_of(st.integers(-3, 10**6), st.floats(allow_nan=True), st.booleans(),
                       st.text(max_size=8), st.none(), st.lists(st.integers(-2, 40),
                                                               max_size=3),
                       st.lists(st.text(max_size=4), max_size=2),
                       st.dictionaries(st.text(max_size=3), st.integers(), max_size=1)))
def _options_property(key, value):
    count("fuzz_example", "options")
    section, _, name = key.rpartition(".")
    layer = {section: {name: value}} if section else {name: value}
    merged = clear(OPTIONS.merge, layer)
    if isinstance(merged, LatentAuditError):
        assert key in str(merged)
        return
    kept = merged[section][name] if section else merged[name]
    kind = OPTIONS[key].kind
    if kept is not None:
        assert {"int": int, "float": float, "bool": bool, "str": str, "path": str,
                "str_list": list, "int_list": list}[kind] is type(kept)
        if kind == "int":
            assert not isinstance(value, (bool, float, str))


test_options, test_options_long = _options_property


@both(argv=st.lists(st.sampled_from(["--size", "--steps", "--batch-size", "--seed",
                                      "--latent-dim", "--n-slices", "--spatial-dims",
                                      "2", "2.5", "-1", "0", "x", "nan", "1e3", "true",
                                      "--set", "train.steps=3.5", "data.size=[1]",
                                      "encoder.beta=-1", "seed=true", "nope=1"]),
                     max_size=6))
def _command_line_property(argv):
    from latentaudit.cli import build_parser, load_config
    from latentaudit.cli._parser import overrides

    count("fuzz_example", "command_line")
    parser = build_parser()
    try:
        with warnings.catch_warnings(), open(os.devnull, "w") as sink:
            import contextlib

            with contextlib.redirect_stderr(sink):
                args = parser.parse_args(["train", "--images", "x", *argv])
    except SystemExit as exit_info:
        assert exit_info.code == 2
        return
    layers = clear(overrides, args)
    if not isinstance(layers, LatentAuditError):
        clear(load_config, None, overrides=layers[0], sources=layers[1])


test_command_line, test_command_line_long = _command_line_property


def test_json_documents_in_the_reliability_counts_are_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTAUDIT_RELIABILITY_COUNTS", str(tmp_path / "c.jsonl"))
    count("fuzz_example", "x", 3)
    assert json.loads((tmp_path / "c.jsonl").read_text()) == {
        "kind": "fuzz_example", "test": "x", "n": 3}
