"""The HDF5 format documented in hpc_rnn/shards.py: schema, manifest, and load_stream's checks."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from hpc_rnn import config, preprocess, shards
from hpc_rnn.mpi import SingleProcess
from hpc_rnn.shards import DataFormatError, load_stream, read_manifest
from hpc_rnn.vocab import load_vocab

WINDOW = 50
SHARD_NAME = re.compile(r"(train|val)-\d{3}-\d{5}\.h5")


def _windows(directory: Path, split: str) -> np.ndarray:
    """Every (window, target) row a reader gets from the split's shards, each shard on its own."""
    doc = read_manifest(directory)
    rows = []
    for info in doc["shards"]:
        if info["split"] != split:
            continue
        with h5py.File(directory / info["file"], "r") as f:
            seq = np.concatenate([f["context"][...], f["tokens"][...]]).astype(np.int64)
            n_windows = int(f.attrs["n_windows"])
        start = len(seq) - n_windows - WINDOW  # the first window whose target is in this shard
        assert start >= 0
        got = np.lib.stride_tricks.sliding_window_view(seq, WINDOW + 1)[start:]
        assert len(got) == n_windows
        rows.append(got)
    return np.concatenate(rows) if rows else np.zeros((0, WINDOW + 1), np.int64)


@pytest.fixture(scope="module")
def multi_shard_data(demo_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo corpus in small shards, so that most shards take their context from another."""
    out = tmp_path_factory.mktemp("multi") / "data"
    cfg = config.PreprocessConfig(corpus=str(demo_corpus), out=str(out), shard_tokens=1000)
    preprocess.preprocess(cfg, comm=SingleProcess())
    return out


def test_shard_schema(demo_data: Path):
    vocab = load_vocab(demo_data)
    files = sorted(demo_data.glob("*.h5"))
    assert {p.name for p in files} == {"train-000-00000.h5", "val-000-00000.h5"}
    for path in files:
        with h5py.File(path, "r") as f:
            assert set(f.keys()) == {"tokens", "context", "recipe_starts"}
            tokens, context = f["tokens"], f["context"]
            assert tokens.dtype == np.uint16  # a small vocabulary
            assert context.dtype == np.uint16
            assert tokens.ndim == 1 and context.ndim == 1
            assert tokens.chunks == (min(len(tokens), shards.CHUNK_TOKENS),)
            assert tokens.compression is None
            assert set(f.attrs) == {
                "schema_version",
                "split",
                "window",
                "vocab_hash",
                "n_tokens",
                "n_windows",
            }
            assert f.attrs["schema_version"] == shards.SCHEMA_VERSION
            assert f.attrs["split"] == path.name.split("-")[0]
            assert f.attrs["window"] == WINDOW
            assert f.attrs["vocab_hash"] == vocab.hash
            assert f.attrs["n_tokens"] == len(tokens) > 0
            assert int(np.max(tokens[...])) < vocab.n_words


def test_recipe_starts_point_at_every_recipe_of_the_split(demo_data: Path, multi_shard_data: Path):
    vocab = load_vocab(demo_data)
    doc = read_manifest(demo_data)
    n_val = sum(preprocess.is_val_recipe(i, 0.05) for i in range(doc["recipes"]))
    for split, n_recipes in (("train", doc["recipes"] - n_val), ("val", n_val)):
        stream, starts = shards.load_split(demo_data, split)
        # Every recipe opens with MasterCook's export line, "* Exported from MasterCook *".
        assert len(starts) == n_recipes and starts[0] == 0
        assert set(vocab.decode(stream[starts].tolist())) == {"*"}
        assert {vocab.words[i] for i in stream[starts + 1]} == {"exported"}
        assert np.all(np.diff(starts) > 0) and starts[-1] < len(stream)
        # Small shards, where recipes cross shard boundaries, record the same starts.
        assert np.array_equal(shards.load_split(multi_shard_data, split)[1], starts)


def test_first_shard_has_tokens_minus_window_windows(demo_data: Path):
    for split in shards.SPLITS:
        with h5py.File(demo_data / f"{split}-000-00000.h5", "r") as f:
            assert len(f["context"]) == 0
            assert f.attrs["n_windows"] == f.attrs["n_tokens"] - WINDOW


def test_manifest_lists_every_shard_with_checksum_and_counts(demo_data: Path):
    doc = json.loads((demo_data / shards.MANIFEST_FILE).read_text(encoding="utf-8"))
    listed = [s["file"] for s in doc["shards"]]
    assert sorted(listed) == sorted(p.name for p in demo_data.glob("*.h5"))
    assert doc["window"] == WINDOW
    assert doc["vocab_hash"] == load_vocab(demo_data).hash
    assert doc["n_words"] == load_vocab(demo_data).n_words
    for s in doc["shards"]:
        path = demo_data / s["file"]
        assert s["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        with h5py.File(path, "r") as f:
            assert s["n_tokens"] == len(f["tokens"])
            assert s["n_windows"] == f.attrs["n_windows"]
            assert s["split"] == f.attrs["split"]
    for split in shards.SPLITS:
        mine = [s for s in doc["shards"] if s["split"] == split]
        assert doc["splits"][split]["n_tokens"] == sum(s["n_tokens"] for s in mine)
        assert doc["splits"][split]["n_windows"] == sum(s["n_windows"] for s in mine)
        assert doc["splits"][split]["n_tokens"] == len(load_stream(demo_data, split))


def test_small_shards_join_into_the_same_stream(demo_data: Path, multi_shard_data: Path):
    doc = read_manifest(multi_shard_data)
    assert len([s for s in doc["shards"] if s["split"] == "train"]) > 3
    for s in doc["shards"]:
        assert SHARD_NAME.fullmatch(s["file"])
    for split in shards.SPLITS:
        stream = load_stream(multi_shard_data, split)
        assert np.array_equal(stream, load_stream(demo_data, split))
        # each shard after the first carries the `window` tokens before it, so each has one
        # window per token, and the split as a whole has tokens - window windows
        pos = 0
        for s in (s for s in doc["shards"] if s["split"] == split):
            with h5py.File(multi_shard_data / s["file"], "r") as f:
                context = f["context"][...]
                assert np.array_equal(context, stream[max(0, pos - WINDOW) : pos])
                if pos:
                    assert f.attrs["n_windows"] == f.attrs["n_tokens"]
                pos += int(f.attrs["n_tokens"])
        assert pos == len(stream)
        assert doc["splits"][split]["n_windows"] == len(stream) - WINDOW
        # the windows read shard by shard are exactly the windows of the whole stream
        whole = np.lib.stride_tricks.sliding_window_view(stream.astype(np.int64), WINDOW + 1)
        assert np.array_equal(_windows(multi_shard_data, split), whole)


@pytest.fixture
def data_copy(multi_shard_data: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(multi_shard_data, tmp_path / "data"))


def test_load_stream_detects_a_corrupted_shard(data_copy: Path):
    victim = data_copy / "train-000-00001.h5"
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    victim.write_bytes(bytes(raw))
    with pytest.raises(DataFormatError, match=r"train-000-00001\.h5.*checksum"):
        load_stream(data_copy, "train")
    load_stream(data_copy, "val")  # the other split is still readable


def test_load_stream_detects_a_missing_shard(data_copy: Path):
    (data_copy / "train-000-00002.h5").unlink()
    with pytest.raises(DataFormatError, match=r"train-000-00002\.h5.*missing"):
        load_stream(data_copy, "train")


def test_load_stream_detects_shards_out_of_order(data_copy: Path):
    doc = json.loads((data_copy / shards.MANIFEST_FILE).read_text(encoding="utf-8"))
    train = [i for i, s in enumerate(doc["shards"]) if s["split"] == "train"]
    a, b = train[1], train[2]
    doc["shards"][a], doc["shards"][b] = doc["shards"][b], doc["shards"][a]
    (data_copy / shards.MANIFEST_FILE).write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(DataFormatError, match="does not continue"):
        load_stream(data_copy, "train")


def test_load_stream_without_a_manifest(tmp_path: Path):
    with pytest.raises(DataFormatError, match=r"manifest\.json"):
        load_stream(tmp_path, "train")


def test_token_dtype_follows_the_vocabulary_size(tmp_path: Path):
    assert shards.token_dtype(5000) == np.uint16
    assert shards.token_dtype(65536) == np.uint16  # indices 0..65535 still fit
    assert shards.token_dtype(65537) == np.uint32
    big = [0, 65535, 65536, 69999, 12]
    for n_words, dtype in ((65536, np.uint16), (70000, np.uint32)):
        ids = [i for i in big if i < n_words]
        w = shards.SplitWriter(
            tmp_path, "train", 0, window=2, n_words=n_words, vocab_hash="h", shard_tokens=100
        )
        w.add(ids)
        (info,) = w.finish(np.zeros(0, np.uint16))
        with h5py.File(tmp_path / info.file, "r") as f:
            assert f["tokens"].dtype == dtype
            assert f["tokens"][...].tolist() == ids
        (tmp_path / info.file).unlink()
