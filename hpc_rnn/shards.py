"""The HDF5 data format: one token stream per split, cut into shards, plus a manifest.

Windows are not stored: window i of a split is `stream[i : i + window]` and its target is
`stream[i + window]`, where `stream` is the split's tokens in corpus order. Each shard stores
its part of the stream in `/tokens` and, in `/context`, the up-to-`window` tokens that precede
it, so a shard alone yields all windows whose target it holds, and shards written by different
MPI ranks join into exactly the stream one process would write.

Shard file `{split}-{rank:03d}-{part:05d}.h5`:
    /tokens   uint16 (uint32 if n_words > 65535), 1-D, chunked (65536,), no compression
    /context  same dtype, 0..window tokens
    /recipe_starts  int64 offsets into /tokens where a recipe begins (schema 2; a recipe may
              continue into the next shard)
    attrs     schema_version, split, window, vocab_hash, n_tokens, n_windows
`manifest.json` lists every shard in stream order with its counts and sha256.
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import h5py
import numpy as np

from hpc_rnn import atomic
from hpc_rnn.cli import UserError

SCHEMA_VERSION = 2
# Version 1 had no /recipe_starts; its data still trains everything but whole-recipe objectives.
READABLE_SCHEMAS = (1, 2)
MANIFEST_FILE = "manifest.json"
SPLITS = ("train", "val")
CHUNK_TOKENS = 1 << 16
# The only names a manifest may list: a shard of this directory, never a path out of it.
SHARD_NAME = re.compile(r"(?:train|val)-\d{3,}-\d{5,}\.h5")


class DataFormatError(UserError):
    """The data directory is not a complete, consistent set of shards; the message says why."""


def token_dtype(n_words: int) -> np.dtype:
    return np.dtype(np.uint16) if n_words <= 1 << 16 else np.dtype(np.uint32)


@dataclass(frozen=True)
class ShardInfo:
    file: str
    split: str
    n_tokens: int
    n_windows: int
    sha256: str


def windows_in(n_context: int, n_tokens: int, window: int) -> int:
    """How many (window, target) pairs a shard holds: one per token that has `window` before it."""
    return max(0, n_context + n_tokens - window) if n_context < window else n_tokens


class SplitWriter:
    """Writes one rank's part of one split's token stream into shards of `shard_tokens`.

    The first shard's context (the tokens of earlier ranks) is only known once every rank has
    finished, so it is filled in by `finish()`; later shards get theirs as they are written.
    """

    def __init__(
        self,
        directory: Path,
        split: str,
        rank: int,
        *,
        window: int,
        n_words: int,
        vocab_hash: str,
        shard_tokens: int,
    ) -> None:
        self.directory = Path(directory)
        self.split = split
        self.rank = rank
        self.window = window
        self.dtype = token_dtype(n_words)
        self.vocab_hash = vocab_hash
        self.shard_tokens = max(shard_tokens, window)
        self._buf: list[np.ndarray] = []
        self._buffered = 0
        self._written = 0  # tokens of this rank's stream already in shard files
        self._starts: list[int] = []  # where recipes begin in this rank's stream, not yet written
        self._files: list[Path] = []
        self._tail = np.zeros(0, self.dtype)  # last `window` tokens written by this rank

    @property
    def tail(self) -> np.ndarray:
        """The last `window` tokens of this rank's stream (fewer if it is shorter)."""
        pending = np.concatenate([self._tail, *self._buf]) if self._buf else self._tail
        return pending[-self.window :].copy()

    def add(self, ids: list[int] | np.ndarray, *, recipe_start: bool = False) -> None:
        """Append token ids; `recipe_start` marks the first ids of a recipe."""
        if recipe_start:
            self._starts.append(self._written + self._buffered)
        ids = np.asarray(ids, dtype=self.dtype)
        if not len(ids):
            return
        self._buf.append(ids)
        self._buffered += len(ids)
        while self._buffered >= self.shard_tokens:
            stream = np.concatenate(self._buf)
            self._write(stream[: self.shard_tokens])
            rest = stream[self.shard_tokens :]
            self._buf = [rest] if len(rest) else []
            self._buffered = len(rest)

    def _write(self, tokens: np.ndarray) -> None:
        path = self.directory / f"{self.split}-{self.rank:03d}-{len(self._files):05d}.h5"
        # The first shard's context comes from earlier ranks; see finish().
        context = self._tail if self._files else np.zeros(0, self.dtype)
        end = self._written + len(tokens)
        here = [p - self._written for p in self._starts if p < end]
        self._starts = [p for p in self._starts if p >= end]
        self._store(path, tokens, context, np.asarray(here, np.int64))
        self._written = end
        self._files.append(path)
        self._tail = np.concatenate([self._tail, tokens])[-self.window :]

    def _store(
        self, path: Path, tokens: np.ndarray, context: np.ndarray, starts: np.ndarray
    ) -> None:
        # HDF5 builds the file in memory (one shard) and Python writes it: a full disk or a
        # file size limit is then one OSError with its errno, instead of HDF5 failing inside
        # its own close and again at exit with the half-written file still open.
        image = io.BytesIO()
        with h5py.File(image, "w") as f:
            f.create_dataset(
                "tokens",
                data=tokens,
                chunks=(min(len(tokens), CHUNK_TOKENS),) if len(tokens) else None,
            )
            f.create_dataset("context", data=context.astype(self.dtype), maxshape=(self.window,))
            f.create_dataset("recipe_starts", data=starts)
            f.attrs.update(
                schema_version=SCHEMA_VERSION,
                split=self.split,
                window=self.window,
                vocab_hash=self.vocab_hash,
                n_tokens=len(tokens),
                n_windows=windows_in(len(context), len(tokens), self.window),
            )
        with open(path, "wb") as out:
            out.write(image.getbuffer())

    def finish(self, context: np.ndarray) -> list[ShardInfo]:
        """Flush the last shard, set the first shard's context, and return the shard list."""
        if self._buffered:
            self._write(np.concatenate(self._buf))
            self._buf, self._buffered = [], 0
        if self._files:
            with h5py.File(self._files[0], "r") as f:
                tokens, starts = f["tokens"][...], f["recipe_starts"][...]
            self._store(self._files[0], tokens, context, starts)
        return [describe(p) for p in self._files]


def describe(path: Path) -> ShardInfo:
    with h5py.File(path, "r") as f:
        split = str(f.attrs["split"])
        n_tokens = int(f.attrs["n_tokens"])
        n_windows = int(f.attrs["n_windows"])
    return ShardInfo(path.name, split, n_tokens, n_windows, atomic.file_sha256(path))


def write_manifest(directory: Path, shards: list[ShardInfo], **meta: object) -> None:
    doc = {
        "schema_version": SCHEMA_VERSION,
        **meta,
        "splits": {
            s: {
                "n_tokens": sum(x.n_tokens for x in shards if x.split == s),
                "n_windows": sum(x.n_windows for x in shards if x.split == s),
            }
            for s in SPLITS
        },
        "shards": [asdict(x) for x in shards],
    }
    atomic.write_json(directory / MANIFEST_FILE, doc)


def training_corpus(directory: str | os.PathLike, reference: str = "") -> str:
    """`reference`, else the corpus file preprocessing read into data `directory`: the text the
    ingredient lexicon is derived from. An error when it is not a file (moved, or not named)."""
    path = reference
    if not path and (Path(directory) / MANIFEST_FILE).is_file():
        path = read_manifest(directory).get("corpus", "")
    if not path or not Path(path).is_file():
        raise UserError(
            f"the ingredient lexicon needs the training corpus ({path or 'not named'}): "
            "pass --reference CORPUS"
        )
    return path


def read_manifest(directory: str | os.PathLike) -> dict:
    """The manifest of a data directory, its schema and every field readers rely on checked."""
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        raise DataFormatError(
            f"{directory} has no {MANIFEST_FILE}: run `python -m hpc_rnn.preprocess CORPUS --out {directory}`"
        )
    again = f"preprocess the corpus again (`python -m hpc_rnn.preprocess CORPUS --out {directory}`)"
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise DataFormatError(f"{path} is truncated or corrupt ({exc}): {again}") from None
    if not isinstance(doc, dict):
        raise DataFormatError(f"{path} is not a manifest (no JSON object): {again}")
    if doc.get("schema_version") not in READABLE_SCHEMAS:
        raise DataFormatError(
            f"{path}: schema version {doc.get('schema_version')}, this code reads "
            f"{', '.join(map(str, READABLE_SCHEMAS))}: preprocess the corpus again"
        )
    problem = _manifest_problem(doc)
    if problem:
        raise DataFormatError(f"{path} is incomplete or corrupt ({problem}): {again}")
    return doc


def _manifest_problem(doc: dict) -> str:
    for key, kind in (("window", int), ("n_words", int), ("vocab_hash", str), ("shards", list)):
        if not isinstance(doc.get(key), kind):
            return f"no {kind.__name__} {key!r}"
    names = [f.name for f in fields(ShardInfo)]
    for entry in doc["shards"]:
        if not isinstance(entry, dict) or set(entry) != set(names):
            return f"a shard entry without the fields {', '.join(names)}"
        if not SHARD_NAME.fullmatch(str(entry["file"])) or entry["split"] not in SPLITS:
            return f"a shard entry naming {entry['file']!r} of split {entry['split']!r}"
    return ""


def load_stream(directory: str | os.PathLike, split: str, *, verify: bool = True) -> np.ndarray:
    """The split's whole token stream, joined from its shards (2 or 4 bytes per token in RAM)."""
    return load_split(directory, split, verify=verify)[0]


def load_split(
    directory: str | os.PathLike, split: str, *, verify: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """The split's token stream, and where each of its recipes begins in it (None for data of
    schema 1, which did not record that).

    Checks each shard's checksum (with `verify`) and that each shard's context is the tail of the
    stream before it, so a missing, reordered or corrupt shard is an error, not silent bad data.
    """
    directory = Path(directory)
    doc = read_manifest(directory)
    again = f"preprocess the corpus again (`python -m hpc_rnn.preprocess CORPUS --out {directory}`)"
    window = int(doc["window"])
    parts: list[np.ndarray] = []
    starts: list[np.ndarray] | None = [] if doc["schema_version"] >= 2 else None
    offset = 0
    stream_tail = np.zeros(0, np.int64)
    for info in (ShardInfo(**s) for s in doc["shards"]):
        if info.split != split:
            continue
        path = directory / info.file
        if not path.is_file():
            raise DataFormatError(f"shard {path} listed in the manifest is missing: {again}")
        if verify and atomic.file_sha256(path) != info.sha256:
            raise DataFormatError(
                f"shard {path} does not match its checksum (truncated or corrupt): {again}"
            )
        with h5py.File(path, "r") as f:
            if f.attrs["vocab_hash"] != doc["vocab_hash"]:
                raise DataFormatError(f"shard {path} was made with another vocabulary: {again}")
            tokens = f["tokens"][...]
            context = f["context"][...]
            if starts is not None:
                starts.append(f["recipe_starts"][...].astype(np.int64) + offset)
        if not np.array_equal(context.astype(np.int64), stream_tail[-window:]):
            raise DataFormatError(f"shard {path} does not continue the shard before it: {again}")
        parts.append(tokens)
        offset += len(tokens)
        stream_tail = np.concatenate([stream_tail, tokens.astype(np.int64)])[-window:]
    stream = np.concatenate(parts) if parts else np.zeros(0, token_dtype(int(doc["n_words"])))
    return stream, (
        np.concatenate([np.zeros(0, np.int64), *starts]) if starts is not None else None
    )
