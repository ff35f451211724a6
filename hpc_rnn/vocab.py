"""The vocabulary: words kept by count, their indices, and a content hash that ties data,
checkpoints and generated text to one vocabulary."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hpc_rnn import atomic, shards
from hpc_rnn.cli import UserError

UNK = "<unk>"
VOCAB_FILE = "vocab.json"


class VocabError(UserError):
    """vocab.json is missing, unreadable, edited, or not the one its data was written with."""


@dataclass(frozen=True)
class Vocab:
    """Index i is the word `words[i]`; with `unk`, index 0 is `<unk>` and stands for rare words."""

    words: tuple[str, ...]
    counts: tuple[int, ...]
    window: int
    min_count: int
    unk: bool
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {w: i for i, w in enumerate(self.words)})

    @property
    def n_words(self) -> int:
        return len(self.words)

    @property
    def hash(self) -> str:
        """sha256 of the word list in index order: equal hashes mean interchangeable indices."""
        return hashlib.sha256("\x1f".join(self.words).encode("utf-8")).hexdigest()

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Indices of `tokens`; rare words are dropped, or mapped to `<unk>` with `unk`."""
        idx = self.index
        if self.unk:
            return [idx.get(t, 0) for t in tokens]
        return [idx[t] for t in tokens if t in idx]

    def decode(self, indices: list[int]) -> list[str]:
        return [self.words[i] for i in indices]

    def save(self, directory: str | os.PathLike) -> Path:
        path = Path(directory) / VOCAB_FILE
        atomic.write_json(
            path,
            {
                # The lecture's metadata names, kept so its readers recognise the file.
                "sentence_len": self.window,
                "n_words": self.n_words,
                "decoding": list(self.words),
                "encoding": {w: i for i, w in enumerate(self.words)},
                "counts": list(self.counts),
                "min_count": self.min_count,
                "unk": self.unk,
                "hash": self.hash,
            },
        )
        return path


def build_vocab(counts: Counter[str], *, window: int, min_count: int, unk: bool) -> Vocab:
    """Keep words seen at least `min_count` times, most frequent first (ties by word)."""
    kept = sorted(
        ((w, c) for w, c in counts.items() if c >= min_count), key=lambda x: (-x[1], x[0])
    )
    words = [w for w, _ in kept]
    freq = [c for _, c in kept]
    if unk:
        rare = sum(c for w, c in counts.items() if c < min_count)
        words.insert(0, UNK)
        freq.insert(0, rare)
    return Vocab(tuple(words), tuple(freq), window=window, min_count=min_count, unk=unk)


def load_vocab(directory: str | os.PathLike) -> Vocab:
    """Load `vocab.json` from a preprocessed data directory, checking its hash and, where the
    directory holds a manifest, that it is the vocabulary the shards were written with."""
    path = Path(directory) / VOCAB_FILE
    again = f"preprocess the corpus again (`python -m hpc_rnn.preprocess CORPUS --out {directory}`)"
    if not path.is_file():
        raise VocabError(
            f"{directory} holds no {VOCAB_FILE}: give a directory written by "
            f"`python -m hpc_rnn.preprocess CORPUS --out {directory}`"
        )
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
        vocab = Vocab(
            tuple(str(w) for w in meta["decoding"]),
            tuple(int(c) for c in meta["counts"]),
            window=int(meta["sentence_len"]),
            min_count=int(meta["min_count"]),
            unk=bool(meta["unk"]),
        )
        stated = str(meta["hash"])
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError too
        raise VocabError(f"{path} is truncated or corrupt ({_why(exc)}): {again}") from None
    if vocab.hash != stated:
        raise VocabError(f"{path}: its words do not match its content hash (edited?): {again}")
    if (Path(directory) / shards.MANIFEST_FILE).exists():
        manifest = shards.read_manifest(directory)
        if (vocab.hash, vocab.window) != (manifest["vocab_hash"], manifest["window"]):
            raise VocabError(
                f"{path} is not the vocabulary the shards in {directory} were written with "
                f"({vocab.n_words} words, hash {vocab.hash[:12]}, window {vocab.window}; the "
                f"manifest says {manifest['n_words']} words, hash {manifest['vocab_hash'][:12]}, "
                f"window {manifest['window']}); was it copied from another preprocess run? {again}"
            )
    return vocab


def _why(exc: Exception) -> str:
    return f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
