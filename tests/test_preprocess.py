"""The preprocess command: reading, the validation split, bad input, and safe output."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import STAMP, snapshot

from hpc_rnn import config, preprocess, shards, text
from hpc_rnn.mpi import SingleProcess
from hpc_rnn.shards import load_stream
from hpc_rnn.vocab import UNK, load_vocab

Run = Callable[..., subprocess.CompletedProcess[str]]

SHORT_RECIPE = "* Exported from MasterCook *\n\n  Toast\n\nToast the bread.\n"


def _run(corpus: Path, out: Path, **options: object) -> Path:
    """Preprocess in this process (quicker than the command when the command is not the point)."""
    cfg = config.PreprocessConfig(corpus=str(corpus), out=str(out), **options)
    summary = preprocess.preprocess(cfg, comm=SingleProcess())
    assert summary is not None
    return out


def _same_data(a: Path, b: Path) -> None:
    va, vb = load_vocab(a), load_vocab(b)
    assert va.words == vb.words and va.hash == vb.hash
    for split in shards.SPLITS:
        assert np.array_equal(load_stream(a, split), load_stream(b, split))


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_command_writes_vocab_shards_and_manifest(demo_data: Path):
    assert _names(demo_data) == [
        "manifest.json",
        "train-000-00000.h5",
        "val-000-00000.h5",
        "vocab.json",
    ]
    doc = json.loads((demo_data / "manifest.json").read_text(encoding="utf-8"))
    assert doc["recipes"] == 200
    assert doc["encoding"] == "utf-8"


# ---------------------------------------------------------------------------------------------
# Reading


def test_cp1252_corpus_is_read_with_a_warning(
    demo_corpus: Path, tmp_path: Path, run_preprocess: Run
):
    line = b"Bake at 350\xb0F; don\x92t stir.\n"  # cp1252 degree sign and curly apostrophe
    header = b"* Exported from MasterCook *\n"
    corpus = tmp_path / "cp1252.txt"
    corpus.write_bytes(demo_corpus.read_bytes().replace(header, header + line))
    proc = run_preprocess(corpus, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    # Stamped, as every line of the command's work is; the summary too.
    warnings = [ln for ln in proc.stderr.splitlines() if re.match(STAMP + "warning: ", ln)]
    assert len(warnings) == 1, proc.stderr
    assert re.fullmatch(STAMP + r"preprocessed 200 recipes, .* on 1 rank\n", proc.stdout)
    assert "200 of 200 recipes" in warnings[0] and "cp1252 (200)" in warnings[0]
    assert "Traceback" not in proc.stderr
    words = load_vocab(tmp_path / "out").words
    assert "350°f" in words and "don\u2019t" in words
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["encoding"] == "cp1252"


def test_crlf_tabs_and_form_feeds_give_the_same_data(demo_corpus: Path, tmp_path: Path):
    lf = demo_corpus.read_text(encoding="utf-8")
    dos = lf.replace("\n\n", "\n\x0c\n").replace("    ", "\t").replace("\n", "\r\n")
    assert dos != lf
    (tmp_path / "dos.txt").write_bytes(dos.encode("utf-8"))
    a = _run(demo_corpus, tmp_path / "lf", shard_tokens=5000)
    b = _run(tmp_path / "dos.txt", tmp_path / "dos", shard_tokens=5000)
    _same_data(a, b)


def test_preamble_before_the_first_recipe_is_ignored(demo_corpus: Path, tmp_path: Path):
    preamble = "Recipe archive, zyzzyva edition.\n" * 10 + "\n"
    corpus = tmp_path / "preamble.txt"
    corpus.write_text(preamble + demo_corpus.read_text(encoding="utf-8"), encoding="utf-8")
    out = _run(corpus, tmp_path / "out")
    assert "zyzzyva" not in load_vocab(out).words
    assert json.loads((out / "manifest.json").read_text())["recipes"] == 200
    _same_data(out, _run(demo_corpus, tmp_path / "plain"))


# ---------------------------------------------------------------------------------------------
# The validation split


@pytest.mark.parametrize("val_fraction", [0.05, 0.2])
def test_validation_split_is_whole_recipes(demo_corpus: Path, tmp_path: Path, val_fraction: float):
    out = _run(demo_corpus, tmp_path / "out", val_fraction=val_fraction, shard_tokens=3000)
    vocab = load_vocab(out)
    recipes = [vocab.encode(text.tokenize(r)) for r in text.iter_recipes(demo_corpus, "utf-8")]
    held = [i for i in range(len(recipes)) if preprocess.is_val_recipe(i, val_fraction)]
    # the val stream is exactly the held-out recipes' tokens, the train stream exactly the rest,
    # so no window mixes the two
    val = load_stream(out, "val").tolist()
    train = load_stream(out, "train").tolist()
    assert val == [t for i in held for t in recipes[i]]
    assert train == [t for i, r in enumerate(recipes) if i not in held for t in r]
    # the share held out is the option's, spread over the corpus rather than its end
    assert abs(len(held) - val_fraction * len(recipes)) <= 1
    assert 0.5 * val_fraction < len(val) / (len(val) + len(train)) < 2 * val_fraction
    assert held[0] < len(recipes) / 4 and held[-1] > 3 * len(recipes) / 4


# ---------------------------------------------------------------------------------------------
# Vocabulary options end to end


def test_min_count_and_unk(demo_corpus: Path, tmp_path: Path):
    extra = "* Exported from MasterCook *\n\nSaffron Yuzu Rice\n\nAdd saffron, yuzu and saffron.\n"
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(demo_corpus.read_text(encoding="utf-8") + extra, encoding="utf-8")
    tokens = [t for r in text.iter_recipes(corpus, "utf-8") for t in text.tokenize(r)]
    counts: dict[str, int] = {}
    for t in tokens:
        counts[t] = counts.get(t, 0) + 1
    rare = {w for w, c in counts.items() if c < 4}
    assert {"yuzu", "saffron"} <= rare

    dropped = _run(corpus, tmp_path / "drop", min_count=4, val_fraction=0.0)
    vocab = load_vocab(dropped)
    assert set(vocab.words) == set(counts) - rare
    stream = load_stream(dropped, "train")
    assert vocab.decode(stream.tolist()) == [t for t in tokens if t not in rare]

    unk = _run(corpus, tmp_path / "unk", min_count=4, unk=True, val_fraction=0.0)
    vocab = load_vocab(unk)
    assert vocab.words[0] == UNK and set(vocab.words[1:]) == set(counts) - rare
    stream = load_stream(unk, "train")
    assert vocab.decode(stream.tolist()) == [UNK if t in rare else t for t in tokens]


# ---------------------------------------------------------------------------------------------
# Bad input: exit code 2, one `error:` line, nothing written or removed


@pytest.fixture
def good_out(demo_data: Path, tmp_path: Path) -> Path:
    """An earlier good output, which a failed run must leave byte for byte as it was."""
    return Path(shutil.copytree(demo_data, tmp_path / "good"))


def _refused(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0]
    return lines[0]


def _bad_input(
    run_preprocess: Run, corpus: Path, good_out: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    before = snapshot(good_out)
    siblings = _names(good_out.parent)
    proc = run_preprocess(corpus, "--out", good_out, "--overwrite", *args)
    assert snapshot(good_out) == before
    assert _names(good_out.parent) == siblings  # no staging directory left behind
    return proc


def test_missing_corpus(tmp_path: Path, good_out: Path, run_preprocess: Run):
    proc = _bad_input(run_preprocess, tmp_path / "no-such-file.txt", good_out)
    _refused(proc, "no-such-file.txt", "does not exist")


def test_empty_corpus(tmp_path: Path, good_out: Path, run_preprocess: Run):
    corpus = tmp_path / "empty.txt"
    corpus.write_bytes(b"")
    _refused(_bad_input(run_preprocess, corpus, good_out), "empty")


def test_binary_corpus(tmp_path: Path, good_out: Path, run_preprocess: Run):
    corpus = tmp_path / "random.bin"
    corpus.write_bytes(b"* Exported from MasterCook *\n" + os.urandom(50000) + b"\x00\x00\x00")
    _refused(_bad_input(run_preprocess, corpus, good_out), "binary")


def test_text_without_recipes(tmp_path: Path, good_out: Path, run_preprocess: Run):
    corpus = tmp_path / "letter.txt"
    corpus.write_text("Dear Ann, here is how I make soup: boil water, add salt.\n" * 100)
    _refused(_bad_input(run_preprocess, corpus, good_out), "no recipes")


def test_corpus_shorter_than_one_window(tmp_path: Path, good_out: Path, run_preprocess: Run):
    corpus = tmp_path / "short.txt"
    corpus.write_text(SHORT_RECIPE * 3)
    _refused(_bad_input(run_preprocess, corpus, good_out, "--min-count", "1"), "too short")


@pytest.mark.parametrize("window", ["0", "-1"])
def test_window_must_be_positive(
    demo_corpus: Path, good_out: Path, run_preprocess: Run, window: str
):
    _refused(_bad_input(run_preprocess, demo_corpus, good_out, "--window", window), "--window")


def test_output_with_shards_needs_overwrite(
    demo_corpus: Path, tmp_path: Path, good_out: Path, run_preprocess: Run
):
    before = snapshot(good_out)
    # an earlier output made with another window: refused without --overwrite, untouched
    proc = run_preprocess(demo_corpus, "--out", good_out, "--window", "20")
    _refused(proc, "--overwrite")
    assert snapshot(good_out) == before
    # with --overwrite the new output replaces it, and nothing else is left beside it
    proc = run_preprocess(demo_corpus, "--out", good_out, "--window", "20", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert load_vocab(good_out).window == 20
    assert json.loads((good_out / "manifest.json").read_text())["window"] == 20
    assert _names(tmp_path) == ["good"]


def test_output_directory_of_other_files_is_refused(
    demo_corpus: Path, tmp_path: Path, run_preprocess: Run
):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.tex").write_text("precious")
    (out / "figures").mkdir()
    (out / "figures" / "plot.png").write_bytes(b"\x89PNG")
    before = snapshot(out)
    for extra in ([], ["--overwrite"]):  # --overwrite replaces earlier output, not other files
        _refused(run_preprocess(demo_corpus, "--out", out, *extra), str(out))
        assert snapshot(out) == before
    assert _names(tmp_path) == ["thesis"]


def test_output_that_is_a_file_is_refused(demo_corpus: Path, tmp_path: Path, run_preprocess: Run):
    out = tmp_path / "data"
    out.write_text("not a directory")
    _refused(run_preprocess(demo_corpus, "--out", out, "--overwrite"), "not a directory")
    assert out.read_text() == "not a directory"


def test_empty_output_directory_is_used(demo_corpus: Path, tmp_path: Path):
    out = tmp_path / "data"
    out.mkdir()
    _run(demo_corpus, out)
    assert "manifest.json" in _names(out)


def test_write_failing_half_way_keeps_the_earlier_output(
    demo_corpus: Path, good_out: Path, monkeypatch: pytest.MonkeyPatch
):
    before = snapshot(good_out)
    siblings = _names(good_out.parent)
    write = shards.SplitWriter._write
    calls: list[int] = []

    def fail_after_first(self: shards.SplitWriter, tokens: np.ndarray) -> None:
        if calls:
            raise OSError("disk full")
        calls.append(len(tokens))
        write(self, tokens)

    monkeypatch.setattr(shards.SplitWriter, "_write", fail_after_first)
    cfg = config.PreprocessConfig(
        corpus=str(demo_corpus), out=str(good_out), overwrite=True, shard_tokens=1000
    )
    with pytest.raises(preprocess.IOFailure, match=r"disk full.*earlier output is unchanged"):
        preprocess.preprocess(cfg, comm=SingleProcess())
    assert calls == [1000]  # one shard was written before the failure
    assert snapshot(good_out) == before
    assert _names(good_out.parent) == siblings


# ---------------------------------------------------------------------------------------------
# The real corpus


def test_real_corpus(real_corpus: Path, tmp_path: Path):
    cfg = config.PreprocessConfig(corpus=str(real_corpus), out=str(tmp_path / "real"))
    summary = preprocess.preprocess(cfg, comm=SingleProcess())
    assert summary is not None
    assert summary.recipes == 5964
    # the independent count: one MasterCook export line per recipe
    with open(real_corpus, "rb") as f:
        assert sum(line.startswith(b"* Exported from MasterCook *") for line in f) == 5964
    doc = json.loads((tmp_path / "real" / "manifest.json").read_text())
    assert doc["recipes"] == 5964
    assert 4000 <= load_vocab(tmp_path / "real").n_words <= 6000
    assert summary.vocab_size == load_vocab(tmp_path / "real").n_words
