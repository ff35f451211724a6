"""Command: recipe corpus -> vocabulary + HDF5 shards of the token stream, alone or under MPI.

    python -m hpc_rnn.preprocess CORPUS --out DIR
    mpiexec -n 4 python -m hpc_rnn.preprocess CORPUS --out DIR
    srun --mpi=pmi2 python -m hpc_rnn.preprocess CORPUS --out DIR

Each rank reads a byte range of the corpus that starts at a recipe boundary, in two streaming
passes (count words; encode and write). Word counts are summed across ranks before the
vocabulary is built; recipe numbers are global, so the validation split and every (window,
target) pair are the same for any number of ranks.

Memory, per rank: O(shard_tokens + MAX_PIECE_BYTES + distinct words), whatever the size of the
corpus, of its largest recipe or of its longest line. A recipe is read in pieces of at most
text.MAX_PIECE_BYTES (cut at whitespace) and tokenized and encoded a piece at a time; the writer
buffers at most 2 x shard_tokens token ids; the word counts hold one entry per distinct word (on
rank 0, once per rank while they are summed). tests/faults/test_preprocess_faults.py holds
preprocessing to a bound; docs/benchmarks.md has the measured figures.

Output: the new directory is assembled under a hidden sibling name and renamed into place. An
earlier output replaced with --overwrite is moved aside and then only the files its manifest
proves to be this command's (manifest.json, vocab.json and the shards it lists) are deleted;
a directory holding anything else is refused, never cleaned.
"""

from __future__ import annotations

import shutil
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from tqdm import tqdm

from hpc_rnn import atomic, config, shards, text
from hpc_rnn.cli import EXIT_USER_ERROR, Parser, UserError, command_parser, run_main, say
from hpc_rnn.mpi import RanksFailed, agree, mpi_world, stop_all_on_error
from hpc_rnn.vocab import VOCAB_FILE, Vocab, build_vocab

T = TypeVar("T")


class OutputError(UserError):
    """--out cannot be written or replaced safely; the message says why and what to do."""


class IOFailure(UserError):
    """The operating system refused a read or a write (full disk, permissions, I/O error)."""


@dataclass(frozen=True)
class Summary:
    recipes: int
    val_recipes: int
    words: int
    vocab_size: int
    windows: dict[str, int]
    shards: int
    megabytes: float
    seconds: float
    ranks: int
    decoded: dict[str, int]  # recipes read with each of text.DECODINGS

    def line(self) -> str:
        return (
            f"preprocessed {self.recipes} recipes, {self.words} words, vocabulary {self.vocab_size}, "
            f"windows train {self.windows['train']} val {self.windows['val']}, {self.shards} shards, "
            f"{self.megabytes:.1f} MB in {self.seconds:.1f} s ({self.megabytes / self.seconds:.1f} MB/s) "
            f"on {self.ranks} rank{'s' if self.ranks > 1 else ''}"
        )

    def warnings(self, cfg: config.PreprocessConfig) -> list[str]:
        found = []
        legacy = {name: n for name, n in self.decoded.items() if name != "utf-8" and n}
        if legacy:
            how = ", ".join(f"{name} ({n})" for name, n in legacy.items())
            found.append(
                f"{cfg.corpus}: {sum(legacy.values())} of {self.recipes} recipes are not valid "
                f"UTF-8 and were read as {how} instead (each recipe decided on its own): check "
                "their accented letters in vocab.json"
            )
        if self.windows["val"] == 0:
            found.append(
                f"the validation split is empty ({self.val_recipes} of {self.recipes} recipes "
                f"held out with --val-fraction {cfg.val_fraction}, {self.windows['val']} "
                "windows): training will report no validation loss and cannot keep a best "
                "checkpoint; give more recipes or a larger --val-fraction"
            )
        return found


def is_val_recipe(index: int, val_fraction: float) -> bool:
    """Whole recipes, evenly spread: recipe i is held out when floor(i*f) steps up at i+1."""
    return int((index + 1) * val_fraction) > int(index * val_fraction)


def check_inputs(cfg: config.PreprocessConfig) -> None:
    if cfg.window <= 0:
        raise UserError(f"--window must be a positive number of words, got {cfg.window}")
    if cfg.min_count < 1:
        raise UserError(f"--min-count must be at least 1, got {cfg.min_count}")
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise UserError(f"--val-fraction must be in [0, 1), got {cfg.val_fraction}")
    path = Path(cfg.corpus)
    if not path.exists():
        raise UserError(f"corpus {path} does not exist: give the path of a recipe text file")
    if not path.is_file():
        raise UserError(f"corpus {path} is not a file: give the path of a recipe text file")
    if path.stat().st_size == 0:
        raise UserError(f"corpus {path} is empty: give a file with recipes in it")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output {out} is a file, not a directory: choose another --out")
    if out.exists() and any(out.iterdir()):
        if not (out / shards.MANIFEST_FILE).exists():
            raise OutputError(
                f"output directory {out} is not empty and holds no earlier preprocessing output "
                f"({_listing(sorted(p.name for p in out.iterdir()))}): choose another --out"
            )
        if not cfg.overwrite:
            raise OutputError(
                f"output directory {out} already holds shards: choose another --out, or pass --overwrite"
            )
        _earlier_output(out)


def _earlier_output(out: Path) -> list[str]:
    """The names in `out` that its manifest proves to be this command's, when it holds nothing
    else; otherwise an OutputError, since --overwrite must delete only files it wrote."""
    if not any(out.iterdir()):
        return []
    try:
        doc = shards.read_manifest(out)
    except shards.DataFormatError as exc:
        raise OutputError(
            f"cannot tell this command's files in {out} from others, since its manifest is "
            f"unreadable ({exc}): delete the directory yourself, or choose another --out"
        ) from None
    ours = {shards.MANIFEST_FILE, VOCAB_FILE, *(s["file"] for s in doc["shards"])}
    entries = sorted(p.name for p in out.iterdir())
    foreign = [name for name in entries if name not in ours or (out / name).is_dir()]
    if foreign:
        raise OutputError(
            f"output directory {out} holds files this command did not write "
            f"({_listing(foreign)}), which --overwrite would not delete: move them out of {out}, "
            "or choose another --out"
        )
    return entries


def _listing(names: list[str], most: int = 5) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _step(comm: Any, doing: str, fn: Callable[[], T]) -> T:
    """`agree` on `fn`, an OSError of it (full disk, permissions, I/O) told as what to do."""

    def run() -> T:
        try:
            return fn()
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            why = " ".join(f"{exc.strerror or exc}{where}".split())  # HDF5's text has newlines
            raise IOFailure(
                f"{doing} failed: {why}: free space or fix the path, then run again; "
                "earlier output is unchanged"
            ) from exc

    return agree(comm, run)


def preprocess(cfg: config.PreprocessConfig, comm: Any = None) -> Summary | None:
    """Run preprocessing on this rank of `comm` (one process when None).

    Every rank takes part; rank 0 returns the summary, the others None. A failure on any rank
    raises on every rank (see mpi.agree), after which no staging directory is left.
    """
    comm = comm if comm is not None else mpi_world()
    rank, size = comm.rank, comm.size
    started = time.perf_counter()
    agree(comm, lambda: check_inputs(cfg))
    corpus = Path(cfg.corpus)
    nbytes = corpus.stat().st_size

    # Each rank's byte range starts at the first recipe at or after its share of the file.
    start = _step(
        comm,
        f"reading {corpus}",
        lambda: text.recipe_boundary_at_or_after(corpus, nbytes * rank // size),
    )
    starts = comm.allgather(start)
    end = starts[rank + 1] if rank + 1 < size else nbytes
    end = max(start, end)
    _step(comm, f"reading {corpus}", lambda: text.sniff_encoding(corpus, start, end))

    # Pass 1: word counts and recipe counts, summed across ranks.
    def count() -> tuple[Counter[str], int, Counter[str]]:
        counts: Counter[str] = Counter()
        recipes = 0
        decoded: Counter[str] = Counter()
        for first, raw in _progress(text.iter_recipe_pieces(corpus, start, end), rank, "count"):
            piece, codec = text.decode_recipe(raw)
            if first:
                recipes += 1
                decoded[codec] += 1
            counts.update(text.tokenize(piece))
        return counts, recipes, decoded

    counts, n_recipes, decoded = _step(comm, f"reading {corpus}", count)
    per_rank = comm.allgather(n_recipes)
    first_recipe = sum(per_rank[:rank])
    gathered = comm.gather(counts, root=0)
    decoded_all = comm.gather(decoded, root=0)
    del counts

    def vocabulary() -> Vocab | None:
        if rank != 0:
            return None
        total: Counter[str] = Counter()
        for c in gathered:
            total.update(c)
        return build_vocab(total, window=cfg.window, min_count=cfg.min_count, unk=cfg.unk)

    vocab = comm.bcast(agree(comm, vocabulary), root=0)
    n_total = sum(per_rank)
    kept_words = sum(vocab.counts)
    agree(comm, lambda: _check_content(corpus, n_total, kept_words, cfg))

    # Pass 2: encode and write, into a staging directory that replaces --out only when complete.
    out = Path(cfg.out).absolute()
    token = comm.bcast(uuid.uuid4().hex[:12], root=0)
    staging = out.with_name(f".{out.name}.staging-{token}")
    writing = f"writing {out}"
    try:
        _step(comm, writing, lambda: staging.mkdir(parents=True) if rank == 0 else None)
        writers = {
            split: shards.SplitWriter(
                staging,
                split,
                rank,
                window=cfg.window,
                n_words=vocab.n_words,
                vocab_hash=vocab.hash,
                shard_tokens=cfg.shard_tokens,
            )
            for split in shards.SPLITS
        }

        def write() -> None:
            index = first_recipe - 1
            pieces = text.iter_recipe_pieces(corpus, start, end)
            for first, raw in _progress(pieces, rank, "write"):
                index += first
                writer = writers["val" if is_val_recipe(index, cfg.val_fraction) else "train"]
                # A piece is at most MAX_PIECE_BYTES, so its token list is bounded too; lists are
                # much faster than token-at-a-time generators.
                ids = vocab.encode(text.tokenize(text.decode_recipe(raw)[0]))
                writer.add(ids, recipe_start=bool(first))

        _step(comm, writing, write)
        written: list[shards.ShardInfo] = []
        for writer in writers.values():
            tails = comm.allgather(writer.tail)
            context = _join_tail(tails[:rank], writer.tail.dtype, cfg.window)
            written += _step(comm, writing, lambda w=writer, c=context: w.finish(c))
        all_written = comm.gather(written, root=0)
        recipe_codecs: dict[str, int] = {}
        if rank == 0:
            merged: Counter[str] = sum(decoded_all, Counter())
            recipe_codecs = {name: merged[name] for name in text.DECODINGS}

        def publish() -> list[shards.ShardInfo]:
            if rank != 0:
                return []
            ordered = sorted((s for part in all_written for s in part), key=lambda s: s.file)
            vocab.save(staging)
            shards.write_manifest(
                staging,
                ordered,
                window=cfg.window,
                n_words=vocab.n_words,
                vocab_hash=vocab.hash,
                corpus=str(corpus),
                corpus_bytes=nbytes,
                encoding=max(
                    (c for c in recipe_codecs if recipe_codecs[c]), key=text.DECODINGS.index
                ),
                recipe_encodings=recipe_codecs,
                recipes=n_total,
                ranks=size,
                config=config.to_dict(cfg),
            )
            for p in staging.iterdir():
                atomic.fsync_file(p)
            _publish(staging, out, cfg.overwrite)
            return ordered

        ordered = _step(comm, writing, publish)
    finally:
        if rank == 0:
            shutil.rmtree(staging, ignore_errors=True)

    if rank != 0:
        return None
    return Summary(
        recipes=n_total,
        val_recipes=sum(is_val_recipe(i, cfg.val_fraction) for i in range(n_total)),
        words=sum(c.total() for c in gathered),
        vocab_size=vocab.n_words,
        windows={s: sum(x.n_windows for x in ordered if x.split == s) for s in shards.SPLITS},
        shards=len(ordered),
        megabytes=nbytes / 1e6,
        seconds=time.perf_counter() - started,
        ranks=size,
        decoded=recipe_codecs,
    )


def _publish(staging: Path, out: Path, overwrite: bool) -> None:
    """Put the finished `staging` at `out`; of an earlier output there, only its own files go."""
    # Checked again: `out` may have changed since check_inputs, hours ago on a big corpus.
    ours = _earlier_output(out) if out.is_dir() else []
    if ours and not overwrite:
        raise OutputError(f"{out} was filled while this command ran: run again with --overwrite")
    kept = atomic.publish_dir(staging, out, replace=ours if out.is_dir() else None)
    if kept is not None:
        say(
            f"warning: files that appeared in {out} while this command ran are kept in {kept}",
            file=sys.stderr,
        )


def _check_content(
    corpus: Path, n_recipes: int, kept_words: int, cfg: config.PreprocessConfig
) -> None:
    if n_recipes == 0:
        raise UserError(
            f"no recipes found in {corpus}: expected MasterCook exports ('* Exported from "
            "MasterCook *') or Meal-Master recipes ('----- Recipe via Meal-Master')"
        )
    if kept_words <= cfg.window:
        raise UserError(
            f"{corpus} is too short: {kept_words} words after removing words seen fewer than "
            f"{cfg.min_count} times, but one window needs {cfg.window + 1}: give a longer corpus, "
            "or lower --window or --min-count"
        )


def _join_tail(tails: list, dtype: Any, window: int) -> Any:
    joined = np.concatenate([np.zeros(0, dtype), *tails])
    return joined[-window:] if window else joined[:0]


def _progress(items: Any, rank: int, what: str) -> Any:
    # Rank 0's bar stands for all ranks; a bar is only drawn on a terminal.
    return tqdm(items, desc=what, unit=" recipes", disable=rank != 0 or not sys.stderr.isatty())


def build_parser() -> Parser:
    parser = command_parser("hpc_rnn.preprocess", __doc__)
    parser.add_argument("corpus", help="recipe text (MasterCook or Meal-Master layout)")
    parser.add_argument(
        "--out", required=True, help="directory for vocab.json, shards and manifest"
    )
    config.add_arguments(parser, config.PreprocessConfig, skip=("corpus", "out"))
    return parser


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        args = build_parser().parse_args(argv)
        cfg = config.from_args(config.PreprocessConfig, args)
        comm = mpi_world()
        try:
            with stop_all_on_error(comm):
                summary = preprocess(cfg, comm)
        except RanksFailed:
            if comm.rank != 0:  # rank 0 says it, once for all ranks
                return EXIT_USER_ERROR
            raise
        if summary is not None:
            for warning in summary.warnings(cfg):
                say(f"warning: {warning}", file=sys.stderr)
            say(summary.line())
        return 0

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
