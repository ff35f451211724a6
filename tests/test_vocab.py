"""The vocabulary: min_count, <unk>, save/load, content hash, deterministic order."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from hpc_rnn.text import tokenize
from hpc_rnn.vocab import UNK, VOCAB_FILE, Vocab, VocabError, build_vocab, load_vocab

COUNTS = Counter({"salt": 9, "flour": 7, "sugar": 5, "\n": 12, "saffron": 4, "yuzu": 1})


def test_words_seen_fewer_than_min_count_times_are_removed():
    vocab = build_vocab(COUNTS, window=3, min_count=5, unk=False)
    assert set(vocab.words) == {"\n", "salt", "flour", "sugar"}
    assert UNK not in vocab.words
    ids = vocab.encode(["salt", "saffron", "and", "yuzu", "sugar"])
    assert vocab.decode(ids) == ["salt", "sugar"]


def test_min_count_one_keeps_every_word():
    vocab = build_vocab(COUNTS, window=3, min_count=1, unk=False)
    assert set(vocab.words) == set(COUNTS)


def test_unk_maps_rare_words_to_unk():
    vocab = build_vocab(COUNTS, window=3, min_count=5, unk=True)
    assert vocab.words[0] == UNK
    assert set(vocab.words[1:]) == {"\n", "salt", "flour", "sugar"}
    # the rare words' occurrences are counted under <unk>
    assert vocab.counts[0] == 4 + 1
    ids = vocab.encode(["salt", "saffron", "yuzu", "sugar", "never-seen"])
    assert vocab.decode(ids) == ["salt", UNK, UNK, "sugar", UNK]


def test_most_frequent_first_and_counts_match():
    vocab = build_vocab(COUNTS, window=3, min_count=1, unk=False)
    assert list(vocab.counts) == sorted(vocab.counts, reverse=True)
    assert all(COUNTS[w] == c for w, c in zip(vocab.words, vocab.counts, strict=True))
    assert vocab.encode(vocab.words) == list(range(vocab.n_words))


def test_order_is_deterministic_whatever_the_counting_order():
    text = "a b c d e f g a b c a b a x y z y z"
    tokens = tokenize(text)
    reference = build_vocab(Counter(tokens), window=2, min_count=1, unk=True)
    rng = random.Random(0)
    for _ in range(20):
        shuffled = tokens[:]
        rng.shuffle(shuffled)
        # a Counter built in another insertion order, and one summed from parts (as MPI ranks do)
        parts = Counter(shuffled[:7]) + Counter(shuffled[7:])
        for counts in (Counter(shuffled), parts):
            vocab = build_vocab(counts, window=2, min_count=1, unk=True)
            assert vocab.words == reference.words
            assert vocab.hash == reference.hash
    # ties are broken by the word itself: c, d... all seen once come in sorted order
    once = [w for w, c in zip(reference.words, reference.counts, strict=True) if c == 1]
    assert once == sorted(once)


def test_save_and_load_round_trip(tmp_path: Path):
    vocab = build_vocab(COUNTS, window=50, min_count=2, unk=True)
    path = vocab.save(tmp_path)
    assert path == tmp_path / VOCAB_FILE
    loaded = load_vocab(tmp_path)
    assert loaded == vocab
    assert loaded.hash == vocab.hash
    assert (loaded.window, loaded.min_count, loaded.unk) == (50, 2, True)
    assert loaded.encode(["salt", "yuzu"]) == vocab.encode(["salt", "yuzu"])
    # the lecture's metadata names are in the file
    meta = json.loads(path.read_text(encoding="utf-8"))
    assert meta["sentence_len"] == 50
    assert meta["n_words"] == vocab.n_words
    assert meta["decoding"] == list(vocab.words)
    assert meta["encoding"] == {w: i for i, w in enumerate(vocab.words)}
    assert meta["hash"] == vocab.hash


def test_load_refuses_an_edited_file(tmp_path: Path):
    build_vocab(COUNTS, window=5, min_count=1, unk=False).save(tmp_path)
    path = tmp_path / VOCAB_FILE
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["decoding"][0], meta["decoding"][1] = meta["decoding"][1], meta["decoding"][0]
    path.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(VocabError, match=r"content hash.*preprocess the corpus again"):
        load_vocab(tmp_path)


def test_hash_is_stable():
    a = build_vocab(COUNTS, window=5, min_count=5, unk=False)
    b = Vocab(a.words, tuple(c + 1 for c in a.counts), window=50, min_count=1, unk=False)
    # a function of the word list alone, not of counts or options
    assert a.hash == b.hash
    assert len(a.hash) == 64 and int(a.hash, 16) >= 0
    # and not of the process: Python salts str hashes per process, the vocabulary hash must not be
    code = (
        "from collections import Counter; from hpc_rnn.vocab import build_vocab; "
        f"print(build_vocab(Counter({dict(COUNTS)!r}), window=5, min_count=5, unk=False).hash)"
    )
    for seed in ("1", "2"):
        proc = subprocess.run(
            [sys.executable, "-c", code],
            cwd=Path(__file__).resolve().parents[1],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert proc.stdout.strip() == a.hash


def test_hash_changes_with_the_words():
    base = Vocab(("salt", "flour", "sugar"), (3, 2, 1), window=5, min_count=1, unk=False)
    others = [
        ("salt", "flour", "sugars"),  # a word changed
        ("salt", "flour"),  # a word removed
        ("salt", "flour", "sugar", "oil"),  # a word added
        ("flour", "salt", "sugar"),  # same words, other indices
        ("saltflour", "sugar"),  # boundaries between words count
        ("salt", "floursugar"),
    ]
    hashes = {base.hash} | {Vocab(w, (1,) * len(w), 5, 1, False).hash for w in others}
    assert len(hashes) == len(others) + 1
