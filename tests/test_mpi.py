"""Preprocessing under real MPI processes gives the data of one process; a lone task of a
multi-task launch is an error."""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import clean_env, mpiexec, run_in_repo

from hpc_rnn import config, preprocess, shards
from hpc_rnn.mpi import SingleProcess
from hpc_rnn.shards import read_manifest
from hpc_rnn.vocab import load_vocab

# Small shards, so that each rank writes several and contexts cross both shard and rank borders.
SHARD_TOKENS, VAL_FRACTION = 2000, 0.1
OPTIONS = ("--shard-tokens", str(SHARD_TOKENS), "--val-fraction", str(VAL_FRACTION))


def _shard_windows(directory: Path, split: str) -> list[tuple[np.ndarray, int]]:
    """Per shard, in stream order: the tokens its windows are cut from, and how many windows.

    A reader takes from each shard alone the windows whose target it holds: the last `n`
    windows of `context + tokens`, i.e. the pairs cut from its last `n + window` tokens.
    """
    doc = read_manifest(directory)
    window = int(doc["window"])
    found = []
    for info in doc["shards"]:
        if info["split"] != split:
            continue
        with h5py.File(directory / info["file"], "r") as f:
            seq = np.concatenate([f["context"][...], f["tokens"][...]]).astype(np.int64)
            n = int(f.attrs["n_windows"])
        assert n <= len(seq) - window or n == 0
        found.append((seq[len(seq) - n - window :] if n else seq[:0], n))
    return found


def _pairs(directory: Path, split: str, window: int) -> np.ndarray:
    """Every (window, target) pair of the split, as rows of window + 1 tokens."""
    rows = [np.zeros((0, window + 1), np.int64)]
    for seq, n in _shard_windows(directory, split):
        if n:
            rows.append(np.lib.stride_tricks.sliding_window_view(seq, window + 1))
    return np.concatenate(rows)


def _check_windows_cover_the_stream(directory: Path, split: str, stream: np.ndarray) -> None:
    """The shards' windows are the stream's windows, each once: one per token after the first
    `window`, cut from the right tokens."""
    window = int(read_manifest(directory)["window"])
    stream = stream.astype(np.int64)
    end = len(stream)
    for seq, n in reversed(_shard_windows(directory, split)):
        if n:
            assert np.array_equal(seq, stream[end - n - window : end])
        end -= n
    assert end == window


def _multiset(pairs: np.ndarray) -> np.ndarray:
    return pairs[np.lexsort(pairs.T[::-1])]


@pytest.fixture(scope="module")
def one_process(demo_corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    """The output of this one process (no MPI) for a window size, made once per window."""
    made: dict[int, Path] = {}

    def get(window: int) -> Path:
        if window not in made:
            out = tmp_path_factory.mktemp(f"single{window}") / "data"
            cfg = config.PreprocessConfig(
                corpus=str(demo_corpus),
                out=str(out),
                window=window,
                shard_tokens=SHARD_TOKENS,
                val_fraction=VAL_FRACTION,
            )
            preprocess.preprocess(cfg, comm=SingleProcess())
            made[window] = out
        return made[window]

    return get


def _split_tokens_by_rank(directory: Path, split: str, ranks: int) -> list[int]:
    counts = [0] * ranks
    for info in read_manifest(directory)["shards"]:
        if info["split"] == split:
            counts[int(info["file"].split("-")[1])] += info["n_tokens"]
    return counts


@pytest.mark.mpi
@pytest.mark.parametrize(
    ("ranks", "window"),
    [
        (2, 50),  # the lecture's window
        # a window longer than one rank's part of the val split: the context of the last rank's
        # first val shard then comes from two earlier ranks
        (3, 1500),
    ],
)
def test_mpi_ranks_write_the_data_of_one_process(
    demo_corpus: Path, one_process, tmp_path: Path, ranks: int, window: int
):
    out = tmp_path / "data"
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, "-m", "hpc_rnn.preprocess"]
    proc = run_in_repo(
        [*cmd, demo_corpus, "--out", out, "--window", str(window), *OPTIONS], timeout=180
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"on {ranks} ranks" in proc.stdout
    doc = read_manifest(out)
    assert doc["ranks"] == ranks
    # every rank wrote shards of its own part of the corpus
    writers = {info["file"].split("-")[1] for info in doc["shards"]}
    assert writers == {f"{r:03d}" for r in range(ranks)}
    if window > 50:
        assert 0 < min(_split_tokens_by_rank(out, "val", ranks)[1:-1]) < window

    single_dir = one_process(window)
    assert (out / "vocab.json").read_bytes() == (single_dir / "vocab.json").read_bytes()
    assert load_vocab(out).hash == load_vocab(single_dir).hash
    single = read_manifest(single_dir)
    assert doc["recipes"] == single["recipes"] == 200
    assert doc["splits"] == single["splits"]
    for split in shards.SPLITS:
        stream, starts = shards.load_split(single_dir, split)
        mpi_stream, mpi_starts = shards.load_split(out, split)
        assert np.array_equal(mpi_stream, stream) and np.array_equal(mpi_starts, starts)
        assert doc["splits"][split]["n_windows"] == len(stream) - window > 0
        _check_windows_cover_the_stream(out, split, stream)
        if window <= 100:  # (rows of window + 1 tokens: only for small windows)
            mine, theirs = _pairs(out, split, window), _pairs(single_dir, split, window)
            assert len(mine) == len(stream) - window
            assert np.array_equal(_multiset(mine), _multiset(theirs))


def test_lone_task_of_a_multi_task_launch_is_an_error(demo_corpus: Path, tmp_path: Path):
    # srun started 2 tasks, but this one was not wired into MPI: it must not do the work alone
    proc = run_in_repo(
        [sys.executable, "-m", "hpc_rnn.preprocess", demo_corpus, "--out", tmp_path / "out"],
        timeout=120,
        env=clean_env(SLURM_STEP_NUM_TASKS="2"),
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert "MPI world of 1" in lines[0]
    assert not (tmp_path / "out").exists()
    assert proc.stdout == ""
