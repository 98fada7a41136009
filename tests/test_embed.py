"""Tests of latentaudit.embed: embed() and the Embeddings container."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import latentaudit as la
from latentaudit.embed import Embeddings, embed
from latentaudit.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    InputShapeError,
    InputTypeError,
)

torch.set_num_threads(1)


class TinyEncoder(torch.nn.Module):
    """A small conv encoder meeting the Encoder protocol, for 2-D or 3-D inputs."""

    config_hash = "tiny-0001"

    def __init__(self, spatial_dims: int = 2, latent_dim: int = 6, size: int = 16) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.spatial_dims = spatial_dims
        self.latent_dim = latent_dim
        conv = torch.nn.Conv2d if spatial_dims == 2 else torch.nn.Conv3d
        self.features = torch.nn.Sequential(
            conv(1, 4, 3, stride=2, padding=1), torch.nn.ReLU(),
            conv(4, 8, 3, stride=2, padding=1), torch.nn.ReLU(), torch.nn.Flatten())
        self.head = torch.nn.Linear(8 * (size // 4) ** spatial_dims, latent_dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _images(n: int, spatial_dims: int = 2, size: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, size=(n, 1) + (size,) * spatial_dims).astype(np.float32)


def _reference(encoder, images: np.ndarray, batch_size: int) -> np.ndarray:
    encoder.eval()
    with torch.inference_mode():
        parts = [encoder.encode(torch.from_numpy(images[i:i + batch_size]))
                 for i in range(0, len(images), batch_size)]
    return torch.cat(parts).numpy()


def _sliced_dataset(n_subjects: int = 4, n_slices: int = 3, seed: int = 0):
    """Subjects whose slices are interleaved and whose slice indices are shuffled."""
    rng = np.random.default_rng(seed)
    ids = np.repeat([f"s{i}" for i in range(n_subjects)], n_slices)
    slices = np.concatenate([rng.permutation(n_slices) + 10 for _ in range(n_subjects)])
    order = rng.permutation(len(ids))
    ids, slices = ids[order], slices[order]
    table = pd.DataFrame({
        "subject": [f"s{i}" for i in range(n_subjects)],
        "site": pd.Categorical(["A", "B"] * (n_subjects // 2)),
        "age": [30.5, np.nan, 50.0, 61.0][:n_subjects],
    })
    images = _images(len(ids), seed=seed)
    ds = la.ArrayDataset(images, table, ids=ids, slice_index=slices)
    return ds, images


# -- embed() equals encode() -----------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 3, 7, 64])
def test_embed_matches_encode_batch_by_batch(batch_size):
    enc = TinyEncoder()
    images = _images(10)
    ds = la.ArrayDataset(images)
    exact = embed(enc, ds, batch_size=batch_size, channels_last=False, verbose=False)
    np.testing.assert_array_equal(exact.z, _reference(enc, images, batch_size))
    fast = embed(enc, ds, batch_size=batch_size, verbose=False)  # channels-last on CPU
    assert fast.provenance["channels_last"] is True
    np.testing.assert_allclose(fast.z, _reference(enc, images, 10), rtol=1e-5, atol=1e-6)
    assert exact.z.dtype == np.float32 and exact.z.shape == (10, 6)
    assert list(exact.ids) == [str(i) for i in range(10)]


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_embed_restores_the_encoder(spatial_dims):
    size = 16 if spatial_dims == 2 else 8
    enc = TinyEncoder(spatial_dims, size=size).train()
    images = _images(5, spatial_dims, size)
    emb = embed(enc, images, batch_size=2, verbose=False)
    assert enc.training  # embed runs in eval mode, then restores the module's mode
    np.testing.assert_allclose(emb.z, _reference(enc, images, 5), rtol=1e-5, atol=1e-6)
    for param in enc.parameters():
        assert param.is_contiguous()


def test_embed_sets_eval_mode_during_the_call():
    class ModeRecorder(TinyEncoder):
        def encode(self, x):
            self.seen_training = self.training
            return super().encode(x)

    enc = ModeRecorder().train()
    embed(enc, _images(2), verbose=False)
    assert enc.seen_training is False and enc.training is True


def test_embed_accepts_tensors_and_generic_datasets():
    enc = TinyEncoder()
    images = _images(6)
    expected = _reference(enc, images, 6)
    from_tensor = embed(enc, torch.from_numpy(images), batch_size=4, verbose=False)
    from_tuples = embed(enc, [(torch.from_numpy(im), 0) for im in images], batch_size=4,
                        verbose=False)
    for emb in (from_tensor, from_tuples):
        np.testing.assert_allclose(emb.z, expected, rtol=1e-5, atol=1e-6)


def test_embed_with_dataloader_workers():
    enc = TinyEncoder()
    images = _images(9)
    emb = embed(enc, la.ArrayDataset(images), batch_size=4, num_workers=1, verbose=False)
    np.testing.assert_allclose(emb.z, _reference(enc, images, 9), rtol=1e-5, atol=1e-6)


def test_embed_carries_metadata_and_provenance():
    ds, _ = _sliced_dataset()
    emb = embed(TinyEncoder(), ds, batch_size=5, verbose=False)
    pd.testing.assert_frame_equal(emb.metadata, ds.metadata)
    np.testing.assert_array_equal(emb.slice_index, ds.slice_index)
    prov = emb.provenance
    assert prov["encoder"] == "TinyEncoder"
    assert prov["encoder_config_hash"] == "tiny-0001"
    assert prov["latentaudit_version"] == la.__version__
    assert prov["n_items"] == len(ds) and prov["device"] == "cpu"
    assert prov["timings"]["total_s"] >= prov["timings"]["encode_s"] > 0
    assert "torch_initial_seed" in prov["seeds"]
    json.dumps(prov)  # provenance must be JSON-serialisable


# -- subject aggregation ---------------------------------------------------------------
def test_aggregate_concat_orders_slices_by_slice_index():
    ds, images = _sliced_dataset()
    enc = TinyEncoder()
    per_item = _reference(enc, images, len(images))
    emb = embed(enc, ds, batch_size=5, aggregate="subject", verbose=False)
    assert emb.shape == (4, 3 * 6)
    assert list(emb.ids) == list(pd.unique(ds.ids))
    for row, subject in enumerate(emb.ids):
        mine = np.flatnonzero(ds.ids == subject)
        mine = mine[np.argsort(ds.slice_index[mine])]
        np.testing.assert_allclose(emb.z[row], per_item[mine].ravel(), rtol=1e-5, atol=1e-6)
    assert emb.metadata["subject"].tolist() == list(emb.ids)
    ages = {"s0": 30.5, "s1": np.nan, "s2": 50.0, "s3": 61.0}
    np.testing.assert_array_equal(emb.metadata["age"], [ages[s] for s in emb.ids])
    assert emb.provenance["aggregate"] == {"by": "subject", "method": "concat", "n_slices": 3}


def test_aggregate_mean_and_dropped_varying_columns():
    ds, images = _sliced_dataset()
    enc = TinyEncoder()
    per_item = _reference(enc, images, len(images))
    emb = embed(enc, ds, aggregate="subject", combine="mean", verbose=False)
    for row, subject in enumerate(emb.ids):
        expected = per_item[ds.ids == subject].mean(axis=0)
        np.testing.assert_allclose(emb.z[row], expected, rtol=1e-5, atol=1e-6)
    # a per-slice column cannot describe a subject and is dropped
    item_level = Embeddings(per_item, ids=ds.ids, slice_index=ds.slice_index,
                            metadata=ds.metadata.assign(slice=ds.slice_index))
    aggregated = item_level.aggregate("mean")
    assert "slice" not in aggregated.metadata.columns
    assert "site" in aggregated.metadata.columns
    np.testing.assert_allclose(aggregated.z, emb.z, rtol=1e-6, atol=1e-6)


def test_aggregate_concat_needs_equal_slice_counts():
    images = _images(5)
    ds = la.ArrayDataset(images, ids=["a", "a", "a", "b", "b"])
    with pytest.raises(DataError, match="same number of slices"):
        embed(TinyEncoder(), ds, aggregate="subject", verbose=False)
    emb = embed(TinyEncoder(), ds, aggregate="subject", combine="mean",
                verbose=False)
    assert emb.shape == (2, 6)


def test_aggregate_concat_rejects_repeated_slice_index():
    ds = la.ArrayDataset(_images(4), ids=["a", "a", "b", "b"], slice_index=[0, 0, 0, 1])
    with pytest.raises(DataError, match="more than once"):
        embed(TinyEncoder(), ds, aggregate="subject", verbose=False)


# -- storage ---------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    ds, _ = _sliced_dataset()
    emb = embed(TinyEncoder(), ds, verbose=False)
    emb.metadata["flag"] = [True, False] * 6
    emb.metadata["when"] = pd.Timestamp("2024-05-01")
    folder = emb.save(tmp_path / "emb")
    for mmap in (False, True):
        back = Embeddings.load(folder, mmap=mmap)
        assert isinstance(back.z, np.memmap) is mmap
        np.testing.assert_array_equal(np.asarray(back.z), emb.z)
        np.testing.assert_array_equal(back.ids, emb.ids)
        np.testing.assert_array_equal(back.slice_index, emb.slice_index)
        pd.testing.assert_frame_equal(back.metadata, emb.metadata)
        assert back.provenance == json.loads(json.dumps(emb.provenance))
    # no pickles anywhere: every array loads with allow_pickle=False
    np.load(folder / "z.npy", allow_pickle=False)
    np.load(folder / "slice_index.npy", allow_pickle=False)


def test_save_refuses_to_overwrite(tmp_path):
    emb = Embeddings(np.ones((3, 2), dtype=np.float32))
    emb.save(tmp_path / "e")
    with pytest.raises(CheckpointError, match="overwrite=True"):
        emb.save(tmp_path / "e")
    Embeddings(np.zeros((2, 2), dtype=np.float32)).save(tmp_path / "e", overwrite=True)
    assert Embeddings.load(tmp_path / "e").shape == (2, 2)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="does not hold saved embeddings"):
        emb.save(tmp_path / "other", overwrite=True)


def test_save_with_overwrite_replaces_its_files_and_leaves_others_alone(tmp_path):
    """docs/reliability.md: saving over earlier embeddings replaces their files one by one
    and leaves any other file in the folder alone, through the API as on the command line."""
    Embeddings(np.ones((3, 2), dtype=np.float32), ids=["a", "b", "c"]).save(tmp_path / "e")
    (tmp_path / "e" / "notes.txt").write_text("keep me")
    (tmp_path / "e" / "figures").mkdir()
    (tmp_path / "e" / "figures" / "map.png").write_bytes(b"png")
    Embeddings(np.zeros((2, 4), dtype=np.float32), ids=["x", "y"]).save(tmp_path / "e",
                                                                     overwrite=True)
    again = Embeddings.load(tmp_path / "e")
    assert again.shape == (2, 4) and list(again.ids) == ["x", "y"]
    assert (tmp_path / "e" / "notes.txt").read_text() == "keep me"
    assert (tmp_path / "e" / "figures" / "map.png").read_bytes() == b"png"


def test_load_incomplete_folder(tmp_path):
    emb = Embeddings(np.ones((3, 2), dtype=np.float32))
    folder = emb.save(tmp_path / "e")
    (folder / "embeddings.json").unlink()
    with pytest.raises(CheckpointError, match="no embeddings.json"):
        Embeddings.load(folder)
    with pytest.raises(CheckpointError, match="does not exist"):
        Embeddings.load(tmp_path / "missing")


def test_embed_streams_into_a_memmap(tmp_path):
    ds, _ = _sliced_dataset()
    enc = TinyEncoder()
    in_memory = embed(enc, ds, batch_size=5, aggregate="subject", verbose=False)
    streamed = embed(enc, ds, batch_size=5, aggregate="subject", verbose=False,
                     out=tmp_path / "z")
    assert isinstance(streamed.z, np.memmap) and not streamed.z.flags.writeable
    np.testing.assert_array_equal(np.asarray(streamed.z), in_memory.z)
    back = Embeddings.load(tmp_path / "z", mmap=True)
    np.testing.assert_array_equal(np.asarray(back.z), in_memory.z)
    pd.testing.assert_frame_equal(back.metadata, in_memory.metadata)
    assert not list(tmp_path.glob("z/*.partial"))
    with pytest.raises(CheckpointError, match="not empty"):
        embed(enc, ds, verbose=False, out=tmp_path / "z")


def test_interrupted_embed_leaves_no_partial_file(tmp_path):
    class FailsLate(TinyEncoder):
        calls = 0

        def encode(self, x):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("out of memory")
            return super().encode(x)

    with pytest.raises(RuntimeError, match="out of memory"):
        embed(FailsLate(), _images(6), batch_size=3, verbose=False, out=tmp_path / "e")
    assert list((tmp_path / "e").iterdir()) == []
    emb = embed(TinyEncoder(), _images(6), verbose=False, out=tmp_path / "e")  # reusable
    assert emb.shape == (6, 6)


def test_combine_streams_and_arrays_convert(tmp_path):
    ds, images = _sliced_dataset()
    emb = embed(TinyEncoder(), ds, verbose=False)
    in_memory = emb.aggregate("concat")
    streamed = emb.aggregate("concat", out=tmp_path / "agg")
    assert isinstance(streamed.z, np.memmap)
    np.testing.assert_array_equal(np.asarray(streamed.z), in_memory.z)
    assert Embeddings.load(tmp_path / "agg").shape == (4, 18)
    np.testing.assert_array_equal(np.asarray(emb), emb.z)


def test_memmapped_embeddings_save_in_place(tmp_path):
    emb = embed(TinyEncoder(), _images(4), verbose=False, out=tmp_path / "e")
    emb.provenance["note"] = "added later"
    emb.save(tmp_path / "e")  # same folder: only the side files are rewritten
    assert Embeddings.load(tmp_path / "e").provenance["note"] == "added later"


def test_shards_and_load_many(tmp_path):
    ds, _ = _sliced_dataset(n_subjects=4)
    enc = TinyEncoder()
    whole = embed(enc, ds, aggregate="subject", verbose=False)
    for k in range(3):
        embed(enc, ds, aggregate="subject", verbose=False, shard=(k, 3),
              out=tmp_path / f"shard-{k}")
    # shard order comes from the provenance, not from the order of the paths
    paths = [tmp_path / f"shard-{k}" for k in (2, 0, 1)]
    joined = Embeddings.load_many(paths)
    np.testing.assert_array_equal(joined.z, whole.z)
    np.testing.assert_array_equal(joined.ids, whole.ids)
    pd.testing.assert_frame_equal(joined.metadata, whole.metadata)
    assert len(joined.provenance["parts"]) == 3
    globbed = Embeddings.load_many(str(tmp_path / "shard-*"), out=tmp_path / "joined")
    assert isinstance(globbed.z, np.memmap)
    np.testing.assert_array_equal(np.asarray(globbed.z), whole.z)
    with pytest.raises(DataError, match="missing \\[1\\]"):
        Embeddings.load_many([tmp_path / "shard-0", tmp_path / "shard-2"])


def test_concatenate_rejects_repeated_rows():
    a = Embeddings(np.zeros((2, 3), dtype=np.float32), ids=["a", "b"])
    with pytest.raises(DataError, match="more than one part"):
        Embeddings.concatenate([a, a])
    b = Embeddings(np.zeros((1, 4), dtype=np.float32), ids=["c"])
    with pytest.raises(DataError, match="different latent dimensions"):
        Embeddings.concatenate([a, b])


# -- errors and options ----------------------------------------------------------------
def test_embed_rejects_non_encoders_and_bad_outputs():
    with pytest.raises(InputTypeError, match="Encoder protocol"):
        embed(torch.nn.Linear(3, 2), _images(2), verbose=False)

    class WrongWidth(TinyEncoder):
        def encode(self, x):
            return super().encode(x)[:, :3]

    with pytest.raises(InputShapeError, match=r"expected \(2, 6\)"):
        embed(WrongWidth(), _images(2), verbose=False)
    with pytest.raises(ConfigError, match="did you mean 'subject'"):
        embed(TinyEncoder(), _images(2), aggregate="subjects", verbose=False)
    with pytest.raises(ConfigError, match="batch_size"):
        embed(TinyEncoder(), _images(2), batch_size=0, verbose=False)


def test_dtype_options_on_cpu():
    enc = TinyEncoder()
    images = _images(4)
    with pytest.raises(ConfigError, match="needs a GPU"):
        embed(enc, images, dtype="float16", verbose=False)
    with pytest.warns(UserWarning, match="bfloat16 belongs on GPUs"):
        emb = embed(enc, images, dtype=torch.bfloat16, verbose=False)
    assert emb.z.dtype == np.float32 and emb.provenance["dtype"] == "bfloat16"
    np.testing.assert_allclose(emb.z, _reference(enc, images, 4), atol=0.1)


def test_embed_warns_about_non_finite_embeddings():
    class Broken(TinyEncoder):
        def encode(self, x):
            z = super().encode(x)
            z[0] = float("nan")
            return z

    with pytest.warns(UserWarning, match="NaN or infinite"):
        embed(Broken(), _images(3), verbose=False)


def test_embeddings_validation():
    with pytest.raises(InputShapeError, match="2-D"):
        Embeddings(np.zeros(3, dtype=np.float32))
    with pytest.raises(DataError, match="one id per row"):
        Embeddings(np.zeros((3, 2), dtype=np.float32), ids=["a"])
    with pytest.raises(DataError, match="metadata has 1 rows"):
        Embeddings(np.zeros((3, 2), dtype=np.float32), metadata=pd.DataFrame({"a": [1]}))
    emb = Embeddings(torch.ones(2, 3))
    assert emb.z.dtype == np.float32 and "n_rows=2" in repr(emb)


def test_progress_bar_respects_verbose(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        embed(TinyEncoder(), _images(3), verbose=False)
    assert "embed" not in capsys.readouterr().err
    embed(TinyEncoder(), _images(3), verbose=True)
    assert "embed" in capsys.readouterr().err


# -- rows carry identity ----------------------------------------------------------------
def test_embeddings_keep_the_id_column_and_lead_to_the_images(tmp_path):
    images = _images(9)
    ids = np.repeat(["p1", "p2", "p3"], 3)
    table = pd.DataFrame({"patient": ["p1", "p2", "p3"], "site": ["A", "B", "A"]})
    ds = la.ArrayDataset(images, table, ids=ids, id_column="patient",
                         slice_index=[2, 0, 1] * 3)
    rows = embed(TinyEncoder(), ds, verbose=False)
    assert rows.id_column == "patient" and "subject" not in rows.metadata
    np.testing.assert_array_equal(rows.images(["p2"]), images[[5]])  # slice 1 of p2
    subjects = embed(TinyEncoder(), ds, aggregate="subject", verbose=False)
    assert subjects.id_column == "patient" and subjects.metadata.columns[0] == "patient"
    assert subjects.index_of("p3") == 2
    np.testing.assert_array_equal(subjects.image("p3"), images[8])  # the middle slice
    np.testing.assert_array_equal(subjects.images(["p1", "p3"]), images[[2, 8]])
    with pytest.raises(DataError, match="did you mean 'p2'"):
        subjects.image("p22")
    # the same through Embeddings.aggregate
    again = rows.aggregate("concat")
    np.testing.assert_array_equal(again.z, subjects.z)
    np.testing.assert_array_equal(again.image("p3"), images[8])
    # saved embeddings keep the id column, not the images; attaching them again works
    loaded = Embeddings.load(subjects.save(tmp_path / "e"))
    assert loaded.id_column == "patient" and loaded.row_images is None
    with pytest.raises(DataError, match="attach_images"):
        loaded.image("p1")
    np.testing.assert_array_equal(loaded.attach_images(ds).image("p3"), images[8])
    np.testing.assert_array_equal(
        Embeddings.load(tmp_path / "e", images=ds).image("p1"), images[2])


def test_embeddings_ids_come_from_the_metadata_and_must_agree_with_it():
    z = np.zeros((3, 2), dtype=np.float32)
    table = pd.DataFrame({"subject": ["x", "y", "z"], "age": [1, 2, 3]})
    assert Embeddings(z, metadata=table).ids.tolist() == ["x", "y", "z"]
    with pytest.raises(DataError, match="disagrees with the ids"):
        Embeddings(z, ids=["x", "z", "y"], metadata=table)
    assert Embeddings(z, id_column="key").metadata.columns.tolist() == ["key"]
    with pytest.raises(ConfigError):
        Embeddings(z, id_column="")
    with pytest.raises(DataError, match="ids are in different columns"):
        Embeddings.concatenate([Embeddings(z, ids="abc"), Embeddings(z, ids="def",
                                                                     id_column="key")])


# -- under torchrun: one shard per process, merged -------------------------------------
class CountingEncoder(TinyEncoder):
    """Counts the images it encodes (to see which shards a run redid)."""

    calls = 0

    def encode(self, x):
        CountingEncoder.calls += len(x)
        return super().encode(x)


def _torchrun_script(out):
    """What each of 2 processes runs (see __main__)."""
    import os
    from pathlib import Path

    from latentaudit.training import rank

    out = Path(out)
    ds, _ = _sliced_dataset(n_subjects=4)
    whole = embed(TinyEncoder(), ds, batch_size=4, aggregate="subject", verbose=False)
    items = embed(TinyEncoder(), ds, batch_size=4, verbose=False)  # rows in dataset order
    redo = embed(CountingEncoder(), ds, batch_size=4, aggregate="subject", verbose=False,
                 shard_dir=out / "shards")
    if rank() == 0:
        for name, emb in (("whole", whole), ("items", items), ("redo", redo)):
            emb.save(out / name)
    (out / f"calls{os.environ['RANK']}").write_text(str(CountingEncoder.calls))


def test_two_processes_embed_as_one_and_redo_only_a_killed_shard(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from latentaudit._shards import shard_folder

    ds, _ = _sliced_dataset(n_subjects=4)
    # an earlier launch finished shard 0 and was killed while writing shard 1
    embed(TinyEncoder(), ds, batch_size=4, aggregate="subject", verbose=False, shard=(0, 2),
          out=shard_folder(tmp_path / "shards", 0, 2))
    killed = shard_folder(tmp_path / "shards", 1, 2)
    killed.mkdir(parents=True)
    (killed / "z.npy.partial").write_bytes(b"\x93NUMPY half-written")
    here = Path(__file__).resolve()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(here.parents[1] / "src"), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", str(here), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    one = embed(TinyEncoder(), ds, batch_size=4, aggregate="subject", verbose=False)
    for name in ("whole", "redo"):
        two = Embeddings.load(tmp_path / name)
        np.testing.assert_array_equal(two.z, one.z)  # bit for bit
        np.testing.assert_array_equal(two.ids, one.ids)
        pd.testing.assert_frame_equal(two.metadata, one.metadata)
    items = Embeddings.load(tmp_path / "items")
    single = embed(TinyEncoder(), ds, batch_size=4, verbose=False)
    np.testing.assert_array_equal(items.z, single.z)
    np.testing.assert_array_equal(items.ids, ds.ids)  # the dataset's order
    # the finished shard was reused, the killed one redone, and the shards removed after
    assert (tmp_path / "calls0").read_text() == "0"
    assert int((tmp_path / "calls1").read_text()) > 0
    assert not (tmp_path / "shards").exists()
    assert Embeddings.load(tmp_path / "whole").provenance["processes"] == 2


if __name__ == "__main__":  # one process of the torchrun launch above
    import sys

    _torchrun_script(sys.argv[1])
