"""Command: held-out next-word scores of a checkpoint, two ways: every word given everything
before it in its recipe (`recipe_*`, the headline, as generation reads a recipe), and the
lecture's word after a full window (`val_*`, computed by `hpc_rnn.loss` as in training's
validation); then the structure and ingredient-consistency scores of generated recipes next to
those of the real corpus.

    python -m hpc_rnn.evaluate --checkpoint RUN [--corpus OTHER.txt] [--recipes DIR] [--generate 50]

`--corpus` reads another collection with the model's vocabulary and reports the share of its
words that the vocabulary lacks (`unknown_share`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from hpc_rnn import atomic, config, generate, given, quality, shards, text
from hpc_rnn.cli import Parser, UserError, command_parser, run_main
from hpc_rnn.config import EvaluateConfig, TrainConfig
from hpc_rnn.data import RecipePlan
from hpc_rnn.distributed import World, pick_device
from hpc_rnn.loss import heldout_plan, next_word_metrics
from hpc_rnn.model import RecurrentLM
from hpc_rnn.vocab import Vocab


@dataclass(frozen=True)
class CorpusStream:
    """Another corpus read with the model's vocabulary: its token stream, where each recipe
    begins in it, and how many of its words the vocabulary lacks."""

    stream: np.ndarray
    starts: np.ndarray
    words: int  # every word of the corpus, known or not
    unknown: int  # words the vocabulary lacks: <unk> where it has one, else left out

    @property
    def unknown_share(self) -> float:
        return self.unknown / max(self.words, 1)


def read_corpus(corpus: str, vocab: Vocab) -> CorpusStream:
    """Every recipe of `corpus` (MasterCook or Meal-Master), encoded as training encodes."""
    if not Path(corpus).is_file():
        raise UserError(f"--corpus {corpus} is not a file: give a recipe text file")
    encoding = text.sniff_encoding(corpus).name
    ids: list[int] = []
    starts: list[int] = []
    words = unknown = 0
    for recipe in text.iter_recipes(corpus, encoding):
        tokens = text.tokenize(recipe)
        words += len(tokens)
        unknown += sum(t not in vocab.index for t in tokens)
        starts.append(len(ids))
        ids += vocab.encode(tokens)
    if len(ids) <= vocab.window:
        raise UserError(f"{corpus} holds fewer than {vocab.window + 1} words of this vocabulary")
    return CorpusStream(np.asarray(ids, np.int64), np.asarray(starts, np.int64), words, unknown)


def heldout_scores(
    model: RecurrentLM,
    stream: np.ndarray,
    starts: np.ndarray | None,
    *,
    window: int,
    cfg: EvaluateConfig,
    recipe_words: int,
    world: World,
) -> dict[str, Any]:
    """Next-word metrics two ways: the lecture's word after a full window (`val_*`), and every
    word given everything before it in its recipe (`recipe_*`, the headline: generation carries
    the state through the whole recipe). Data of schema 1 records no recipe starts, so only
    the first."""
    windows = heldout_plan(stream, window, cfg.batch_size, cfg.windows, world)
    scores = next_word_metrics(model, windows, world)
    if starts is not None:
        recipes = RecipePlan(
            stream, starts, max_len=recipe_words, batch_size=cfg.batch_size, shuffle=False
        )
        scores |= next_word_metrics(model, recipes, world, prefix="recipe")
    return scores


def evaluate(cfg: EvaluateConfig) -> dict[str, Any]:
    """Held-out next-word metrics of a checkpoint, and the recipe scores of generated text."""
    device = pick_device(cfg.device)
    trained = generate.load_model(cfg.checkpoint, cfg.data, device)
    model, vocab, data = trained.model, trained.vocab, trained.data
    world = World(0, 1, 0, device)
    report: dict[str, Any] = {"checkpoint": str(trained.step_dir)}
    score = partial(
        heldout_scores,
        model,
        window=vocab.window,
        cfg=cfg,
        recipe_words=trained.config.get("recipe_words", TrainConfig.recipe_words),
        world=world,
    )
    if cfg.corpus:
        read = read_corpus(cfg.corpus, vocab)
        report["heldout"] = {
            "source": cfg.corpus,
            "unknown_share": read.unknown_share,
            "unknown_as": "<unk>" if vocab.unk else "left out (the vocabulary has no <unk>)",
            **score(read.stream, read.starts),
        }
    else:
        stream, starts = shards.load_split(data, cfg.split)
        report["heldout"] = {"source": f"{data} ({cfg.split})", **score(stream, starts)}

    if cfg.recipes or cfg.generate or cfg.given:
        reference = shards.training_corpus(data, cfg.reference)
        lexicon = quality.lexicon_from_corpus(reference)
    if cfg.recipes or cfg.generate:
        if cfg.recipes:
            files = sorted(Path(cfg.recipes).glob("recipe-*.txt"))
            if not files:
                raise UserError(f"no recipe-*.txt files in {cfg.recipes}")
            report["recipes"] = {
                "source": cfg.recipes,
                **quality.score_recipes((f.read_text() for f in files), lexicon),
            }
        for context in cfg.contexts.split(",") if cfg.generate else ():
            started = time.perf_counter()
            sampling = cfg.sampling(context)
            stick_to = lexicon if cfg.stick_to_list else None
            words = generate.generate(model, vocab, sampling, n=cfg.generate, stick_to=stick_to)
            seconds = time.perf_counter() - started
            texts = [generate.recipe_text(w) for w in words]
            report[f"generated_{context}"] = {
                **quality.score_recipes(texts, lexicon),
                "words_per_s": sum(map(len, words)) / seconds,
            }
        report["reference"] = {
            "source": reference,
            **quality.score_recipes(quality.iter_corpus(reference), lexicon),
        }
    if cfg.given:
        scores = given.score(
            trained,
            cfg.given,
            cfg.sampling(),
            reference=reference,
            lexicon=lexicon,
            limit=cfg.given_limit,
            stick_to_list=cfg.stick_to_list,
        )
        # One report line per kind of directions: real (ceiling), another recipe's (floor),
        # the model's greedy and sampled ones.
        for kind in [k for k, v in scores.items() if isinstance(v, dict)]:
            report[f"given_{kind}"] = scores.pop(kind)
        report["given"] = scores
    return report


def build_parser() -> Parser:
    parser = command_parser("hpc_rnn.evaluate", __doc__)
    config.add_arguments(parser, EvaluateConfig)
    return parser


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        args = build_parser().parse_args(argv)
        cfg = config.from_args(EvaluateConfig, args)
        if not cfg.checkpoint:
            raise UserError(
                "--checkpoint is required: a run directory or a checkpoint step directory"
            )
        report = evaluate(cfg)
        for name, part in report.items():
            if isinstance(part, dict):
                shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in part.items()}
                print(f"{name}: {json.dumps(shown)}")
        if cfg.out:
            atomic.write_json(cfg.out, report)
        return 0

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
