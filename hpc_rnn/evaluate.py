"""Held-out next-word loss, accuracy and perplexity (the lecture's task: the word after a full
window), used by training each epoch; and the `evaluate` command, which adds the structure and
ingredient-consistency scores of generated recipes next to those of the real corpus.

    python -m hpc_rnn.evaluate --checkpoint RUN [--corpus OTHER.txt] [--recipes DIR] [--generate 50]
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hpc_rnn import atomic, checkpoint, config, generate, quality, shards, text
from hpc_rnn.cli import Parser, UserError, run_main
from hpc_rnn.config import EvaluateConfig
from hpc_rnn.data import WindowPlan
from hpc_rnn.distributed import World, all_sum, autocast, pick_device
from hpc_rnn.vocab import Vocab


def validation_plan(
    data: str, window: int, batch_size: int, max_windows: int, world: World, split: str = "val"
) -> WindowPlan | None:
    """Evenly spaced held-out windows, at most `max_windows` (0: all), split across ranks."""
    stream = shards.load_stream(data, split)
    n = len(stream) - window
    if n <= 0:
        return None
    stride = max(1, -(-n // max_windows)) if max_windows else 1
    return WindowPlan(
        stream,
        window=window,
        objective="last",
        batch_size=batch_size,
        rank=world.rank,
        world=world.size,
        shuffle=False,
        stride=stride,
    )


@torch.no_grad()
def next_word_metrics(
    model: torch.nn.Module, plan: WindowPlan | None, world: World
) -> dict[str, Any]:
    """val_loss (nats), val_acc, val_ppl and val_windows over `plan`, summed across ranks."""
    if plan is None:
        return {"val_loss": math.nan, "val_acc": math.nan, "val_ppl": math.nan, "val_windows": 0}
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, device=world.device)
    for _, batch in plan.batches(0):
        targets = batch.targets.to(world.device)
        weight = batch.weight.to(world.device)
        with autocast(world.device):
            logits, _ = model(batch.inputs.to(world.device), last_only=True)
        logits = logits.float()
        ce = F.cross_entropy(logits, targets, reduction="none")
        correct = (logits.argmax(-1) == targets).float()
        sums += torch.stack([(ce * weight).sum(), (correct * weight).sum(), weight.sum()])
    model.train(was_training)
    loss, correct, count = all_sum(sums, world).tolist()
    loss /= max(count, 1)
    return {
        "val_loss": loss,
        "val_acc": correct / max(count, 1),
        "val_ppl": math.exp(min(loss, 50.0)),
        "val_windows": int(count),
    }


# ---------------------------------------------------------------------------------------------
# Command: python -m hpc_rnn.evaluate


def corpus_plan(corpus: str, vocab: Vocab, batch_size: int, max_windows: int) -> WindowPlan | None:
    """Every recipe of another corpus, encoded with the model's vocabulary, as held-out windows."""
    encoding = text.sniff_encoding(corpus).name
    ids = [
        i
        for recipe in text.iter_recipes(corpus, encoding)
        for i in vocab.encode(text.tokenize(recipe))
    ]
    n = len(ids) - vocab.window
    if n <= 0:
        raise UserError(f"{corpus} holds fewer than {vocab.window + 1} words of this vocabulary")
    stride = max(1, -(-n // max_windows)) if max_windows else 1
    stream = np.asarray(ids, dtype=np.int64)
    return WindowPlan(
        stream,
        window=vocab.window,
        objective="last",
        batch_size=batch_size,
        stride=stride,
        shuffle=False,
    )


def evaluate(cfg: EvaluateConfig) -> dict[str, Any]:
    """Held-out next-word metrics of a checkpoint, and the recipe scores of generated text."""
    device = pick_device(cfg.device)
    model, vocab, step_dir = generate.load_model(cfg.checkpoint, cfg.data, device)
    data = cfg.data or checkpoint.load(step_dir, "cpu")["config"]["data"]
    world = World(0, 1, 0, device)
    report: dict[str, Any] = {"checkpoint": str(step_dir)}
    if cfg.corpus:
        plan = corpus_plan(cfg.corpus, vocab, cfg.batch_size, cfg.windows)
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
    return report


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m hpc_rnn.evaluate", description=__doc__.split("\n")[0])
    config.add_arguments(parser, EvaluateConfig)

    def body() -> int:
        args = parser.parse_args(argv)
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
