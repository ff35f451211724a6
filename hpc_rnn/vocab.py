"""The vocabulary: words kept by count, their indices, and a content hash that ties data,
checkpoints and generated text to one vocabulary."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hpc_rnn import atomic
from hpc_rnn.cli import UserError

UNK = "<unk>"
VOCAB_FILE = "vocab.json"


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

    def encode(self, tokens: list[str]) -> list[int]:
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
    """Load `vocab.json` from a preprocessed data directory, checking its hash."""
    path = Path(directory) / VOCAB_FILE
    if not path.is_file():
        raise UserError(
            f"{directory} holds no {VOCAB_FILE}: give a directory written by "
            f"`python -m hpc_rnn.preprocess CORPUS --out {directory}`"
        )
    with open(path, encoding="utf-8") as f:
        meta = json.load(f)
    vocab = Vocab(
        tuple(meta["decoding"]),
        tuple(meta["counts"]),
        window=int(meta["sentence_len"]),
        min_count=int(meta["min_count"]),
        unk=bool(meta["unk"]),
    )
    if vocab.hash != meta["hash"]:
        raise ValueError(f"{path}: content hash does not match its words (file edited or corrupt)")
    return vocab
