"""Figure `generation`: words/s of generate() with carried state and 32 recipes at once, against
the lecture's loop of a full window per word, one recipe at a time."""

from __future__ import annotations

from typing import Any

import torch

from hpc_rnn.bench.harness import Context, Figure, isolated, measure
from hpc_rnn.config import ModelConfig, Sampling
from hpc_rnn.distributed import pick_device
from hpc_rnn.generate import generate
from hpc_rnn.model import RecurrentLM
from hpc_rnn.vocab import load_vocab


def generation_rate(
    data: str, device: str, context: str, batch: int, max_words: int, repeats: int
) -> dict[str, Any]:
    """Words/s of generate() as the generate command counts them (seed words included), with a
    randomly initialised model of the data's vocabulary: it ends no recipe early, so every
    recipe is `max_words` long and both sides do the same work per word."""
    vocab = load_vocab(data)
    dev = pick_device(device)
    torch.manual_seed(0)
    model = RecurrentLM(vocab.n_words, ModelConfig()).to(dev)

    def recipes() -> float:
        sampling = Sampling(context=context, max_words=max_words, batch=batch)
        done = generate(model, vocab, sampling, n=batch)
        return sum(len(r) for r in done)

    return {"stats": measure(recipes, repeats=repeats, device=dev)}


def run(ctx: Context) -> list[Figure]:
    s = ctx.sizes
    project = isolated(
        generation_rate, str(ctx.data), ctx.device, "carry", 32, s.gen_words, s.repeats
    )
    baseline = isolated(
        generation_rate, str(ctx.data), ctx.device, "window", 1, s.reference_words, s.repeats
    )
    return [
        Figure(
            "generation",
            "generate() with carried state, 32 recipes at once vs the lecture's loop: a full "
            "50-word window per word, one recipe at a time (same model, dev vocabulary)",
            "words/s",
            project["stats"],
            baseline["stats"],
            "project/baseline",
            50.0,
            peak_rss_mb={"project": project["peak_rss_mb"], "baseline": baseline["peak_rss_mb"]},
            notes=["the baseline runs RecurrentLM's row gather, not a dense one-hot: cheaper"],
        )
    ]
