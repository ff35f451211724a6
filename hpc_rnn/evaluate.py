"""Command: the held-out next-word loss, accuracy and perplexity of a checkpoint (the lecture's
task: the word after a full window, computed by `hpc_rnn.loss` as in training's validation), and
the structure and ingredient-consistency scores of generated recipes next to those of the real
corpus.

    python -m hpc_rnn.evaluate --checkpoint RUN [--corpus OTHER.txt] [--recipes DIR] [--generate 50]
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from hpc_rnn import atomic, checkpoint, config, generate, given, quality, shards, text
from hpc_rnn.cli import Parser, UserError, command_parser, run_main
from hpc_rnn.config import EvaluateConfig
from hpc_rnn.data import WindowPlan
from hpc_rnn.distributed import World, pick_device
from hpc_rnn.loss import heldout_plan, next_word_metrics, validation_plan
from hpc_rnn.vocab import Vocab


def corpus_plan(
    corpus: str, vocab: Vocab, batch_size: int, max_windows: int, world: World
) -> WindowPlan:
    """Every recipe of another corpus, encoded with the model's vocabulary, as held-out windows."""
    encoding = text.sniff_encoding(corpus).name
    ids = [
        i
        for recipe in text.iter_recipes(corpus, encoding)
        for i in vocab.encode(text.tokenize(recipe))
    ]
    plan = heldout_plan(
        np.asarray(ids, dtype=np.int64), vocab.window, batch_size, max_windows, world
    )
    if plan is None:
        raise UserError(f"{corpus} holds fewer than {vocab.window + 1} words of this vocabulary")
    return plan


def evaluate(cfg: EvaluateConfig) -> dict[str, Any]:
    """Held-out next-word metrics of a checkpoint, and the recipe scores of generated text."""
    device = pick_device(cfg.device)
    model, vocab, step_dir = generate.load_model(cfg.checkpoint, cfg.data, device)
    data = cfg.data or checkpoint.load(step_dir, "cpu")["config"]["data"]
    world = World(0, 1, 0, device)
    report: dict[str, Any] = {"checkpoint": str(step_dir)}
    if cfg.corpus:
        plan = corpus_plan(cfg.corpus, vocab, cfg.batch_size, cfg.windows, world)
        report["heldout"] = {"source": cfg.corpus, **next_word_metrics(model, plan, world)}
    else:
        plan = validation_plan(data, vocab.window, cfg.batch_size, cfg.windows, world, cfg.split)
        report["heldout"] = {
            "source": f"{data} ({cfg.split})",
            **next_word_metrics(model, plan, world),
        }

    reference = cfg.reference or shards.read_manifest(data).get("corpus", "")
    if cfg.recipes or cfg.generate:
        if not reference or not Path(reference).is_file():
            raise UserError(
                "the ingredient lexicon needs the training corpus: pass --reference CORPUS"
            )
        lexicon = quality.lexicon_from_corpus(reference)
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
            words = generate.generate(
                model, vocab, n=cfg.generate, context=context, seed=cfg.seed, device=device
            )
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
            cfg.checkpoint,
            cfg.given,
            data=cfg.data,
            reference=cfg.reference,
            limit=cfg.given_limit,
            seed=cfg.seed,
            device=cfg.device,
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
