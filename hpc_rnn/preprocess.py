"""Command: recipe corpus -> vocabulary + HDF5 shards of the token stream, alone or under MPI.

    python -m hpc_rnn.preprocess CORPUS --out DIR
    mpiexec -n 4 python -m hpc_rnn.preprocess CORPUS --out DIR
    srun --mpi=pmi2 python -m hpc_rnn.preprocess CORPUS --out DIR

Each rank reads a byte range of the corpus that starts at a recipe boundary, in two streaming
passes (count words; encode and write), so memory is one shard plus the word counts whatever
the corpus size. Word counts are summed across ranks before the vocabulary is built; recipe
numbers are global, so the validation split and every (window, target) pair are the same for
any number of ranks.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hpc_rnn import atomic, config, shards, text
from hpc_rnn.cli import UserError, run_main
from hpc_rnn.mpi import agree, mpi_world
from hpc_rnn.vocab import Vocab, build_vocab

_ENCODINGS = ("utf-8", "cp1252", "latin-1")  # from strictest to most permissive


@dataclass(frozen=True)
class Summary:
    recipes: int
    words: int
    vocab_size: int
    windows: dict[str, int]
    shards: int
    megabytes: float
    seconds: float
    ranks: int
    encoding_note: str

    def line(self) -> str:
        return (
            f"preprocessed {self.recipes} recipes, {self.words} words, vocabulary {self.vocab_size}, "
            f"windows train {self.windows['train']} val {self.windows['val']}, {self.shards} shards, "
            f"{self.megabytes:.1f} MB in {self.seconds:.1f} s ({self.megabytes / self.seconds:.1f} MB/s) "
            f"on {self.ranks} rank{'s' if self.ranks > 1 else ''}"
        )


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
        raise UserError(f"output {out} is a file, not a directory: choose another --out")
    if out.exists() and any(out.iterdir()):
        # --overwrite replaces an earlier output of this command, never a directory of other files.
        if not (out / shards.MANIFEST_FILE).exists():
            raise UserError(
                f"output directory {out} is not empty and holds no earlier preprocessing output: "
                "choose another --out"
            )
        if not cfg.overwrite:
            raise UserError(
                f"output directory {out} already holds shards: choose another --out, or pass --overwrite"
            )


def preprocess(cfg: config.PreprocessConfig, comm: Any = None) -> Summary | None:
    """Run preprocessing on this rank of `comm` (one process when None).

    Every rank takes part; rank 0 returns the summary, the others None.
    """
    comm = comm if comm is not None else mpi_world()
    rank, size = comm.rank, comm.size
    started = time.perf_counter()
    agree(comm, lambda: check_inputs(cfg))
    corpus = Path(cfg.corpus)
    nbytes = corpus.stat().st_size

    # Each rank's byte range starts at the first recipe at or after its share of the file.
    start = text.recipe_boundary_at_or_after(corpus, nbytes * rank // size)
    starts = comm.allgather(start)
    end = starts[rank + 1] if rank + 1 < size else nbytes
    end = max(start, end)
    found = agree(comm, lambda: text.sniff_encoding(corpus, start, end))
    encoding = max(comm.allgather(found.name), key=_ENCODINGS.index)
    note = next((e.note for e in comm.allgather(found) if e.name == encoding), "")

    # Pass 1: word counts and recipe counts, summed across ranks.
    counts: Counter[str] = Counter()
    n_recipes = 0
    for recipe in _progress(
        text.iter_recipes(corpus, encoding, start, end), rank, end - start, "count"
    ):
        counts.update(text.tokenize(recipe))
        n_recipes += 1
    per_rank = comm.allgather(n_recipes)
    first_recipe = sum(per_rank[:rank])
    gathered = comm.gather(counts, root=0)
    vocab: Vocab | None = None
    if rank == 0:
        total: Counter[str] = Counter()
        for c in gathered:
            total.update(c)
        vocab = build_vocab(total, window=cfg.window, min_count=cfg.min_count, unk=cfg.unk)
    vocab = comm.bcast(vocab, root=0)
    n_total = sum(per_rank)
    kept_words = sum(vocab.counts)
    agree(comm, lambda: _check_content(corpus, n_total, kept_words, cfg))

    # Pass 2: encode and write, into a staging directory that replaces --out only when complete.
    out = Path(cfg.out).absolute()
    staging = out.with_name(f".{out.name}.staging-{comm.bcast(uuid.uuid4().hex[:12], root=0)}")
    try:
        if rank == 0:
            staging.mkdir(parents=True)
        comm.barrier()
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
        recipes = text.iter_recipes(corpus, encoding, start, end)
        for i, recipe in enumerate(_progress(recipes, rank, end - start, "write")):
            split = "val" if is_val_recipe(first_recipe + i, cfg.val_fraction) else "train"
            writers[split].add(vocab.encode(text.tokenize(recipe)))
        written: list[shards.ShardInfo] = []
        for writer in writers.values():
            tails = comm.allgather(writer.tail)
            context = _join_tail(tails[:rank], writer.tail.dtype, cfg.window)
            written += writer.finish(context)
        all_written = comm.gather(written, root=0)
        if rank == 0:
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
                encoding=encoding,
                recipes=n_total,
                ranks=size,
                config=config.to_dict(cfg),
            )
            for p in staging.iterdir():
                atomic.fsync_file(p)
            # An empty directory made beforehand (mkdir) holds nothing to keep.
            empty = out.is_dir() and not any(out.iterdir())
            atomic.publish_dir(staging, out, overwrite=cfg.overwrite or empty)
        comm.barrier()
    finally:
        if rank == 0:
            shutil.rmtree(staging, ignore_errors=True)

    if rank != 0:
        return None
    return Summary(
        recipes=n_total,
        words=sum(c.total() for c in gathered),
        vocab_size=vocab.n_words,
        windows={s: sum(x.n_windows for x in ordered if x.split == s) for s in shards.SPLITS},
        shards=len(ordered),
        megabytes=nbytes / 1e6,
        seconds=time.perf_counter() - started,
        ranks=size,
        encoding_note=note,
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
    import numpy as np

    joined = np.concatenate([np.zeros(0, dtype), *tails])
    return joined[-window:] if window else joined[:0]


def _progress(items: Any, rank: int, total_bytes: int, what: str) -> Any:
    # Rank 0's bar stands for all ranks; a bar is only drawn on a terminal.
    del total_bytes
    return tqdm(items, desc=what, unit=" recipes", disable=rank != 0 or not sys.stderr.isatty())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hpc_rnn.preprocess", description=__doc__.split("\n")[0]
    )
    parser.add_argument("corpus", help="recipe text (MasterCook or Meal-Master layout)")
    parser.add_argument(
        "--out", required=True, help="directory for vocab.json, shards and manifest"
    )
    config.add_arguments(parser, config.PreprocessConfig, skip=("corpus", "out"))
    args = parser.parse_args(argv)

    def body() -> int:
        cfg = config.from_args(config.PreprocessConfig, args)
        summary = preprocess(cfg)
        if summary is not None:
            if summary.encoding_note:
                print(f"note: {cfg.corpus}: {summary.encoding_note}", file=sys.stderr)
            print(summary.line(), flush=True)
        return 0

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
