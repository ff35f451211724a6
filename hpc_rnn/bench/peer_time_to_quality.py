"""Figure `peer_time_to_quality`: training seconds to a held-out loss with the whole recipe in
view, the project's whole-recipe training against the same network trained the way
pytorch/examples' word_language_model trains it.

The peer: `peer_throughput.WordLM` (nn.Embedding -> nn.LSTM -> nn.Linear at the project's
sizes) trained with word_language_model's defaults: the training stream cut into 20 contiguous
columns, 35 words a step, the state carried (detached) from step to step through the recipes,
plain SGD at learning rate 20 with gradient norms clipped at 0.25, the rate divided by 4 after an
epoch whose held-out loss did not improve. Its held-out loss reads the validation stream in 10
columns with the state carried, as word_language_model evaluates: every word is given at least
everything before it in its recipe, and the recipes before it too, which favours the peer.

The project: `python -m hpc_rnn.train --objective recipe --bptt 64` (the state from each
recipe's first word, whole recipes batched, an update every 64 words with the state carried,
AdamW at a constant rate), the same network; its held-out loss is
every word of each validation recipe given everything before it in that recipe
(`val_recipe_loss`). L is the best loss the peer validates within T training seconds; the figure
is the project's training seconds to L against the peer's own.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hpc_rnn import shards
from hpc_rnn.bench.harness import Context, Figure, Stats, isolated, sync, train_to_loss
from hpc_rnn.bench.peer_throughput import DEFAULT, WordLM
from hpc_rnn.bench.train_throughput import setup
from hpc_rnn.distributed import autocast

# word_language_model's defaults (pytorch/examples, main.py).
COLUMNS, EVAL_COLUMNS, BPTT, LR, CLIP, ANNEAL = 20, 10, 35, 20.0, 0.25, 4.0
BPTT_PROJECT = 64  # the project's --bptt: words of whole recipes an update
CHECKS = 15  # the peer's held-out losses within T, evenly spaced in training seconds
RECIPE_KEY = "val_recipe_loss"


def columns(stream: np.ndarray, n: int, device: torch.device) -> torch.Tensor:
    """word_language_model's batchify: the stream as `n` contiguous columns, [n, length]."""
    length = len(stream) // n
    return torch.from_numpy(stream[: n * length].astype(np.int64)).view(n, length).to(device)


@torch.no_grad()
def held_out_loss(model: WordLM, held: torch.Tensor) -> float:
    """Mean next-word loss over the held-out columns, the state carried along each."""
    was_training = model.training
    model.eval()
    total, count, state = torch.zeros((), device=held.device), 0, None
    for pos in range(0, held.shape[1] - 1, BPTT):
        chunk = held[:, pos : pos + BPTT + 1]
        with autocast(held.device):
            logits, state = model(chunk[:, :-1], state)
        targets = chunk[:, 1:]
        total += F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="sum")
        count += targets.numel()
    model.train(was_training)
    return total.item() / count


def peer_until(data: str, device: str, budget_s: float) -> dict[str, Any]:
    """Train the peer for `budget_s` training seconds; its held-out loss CHECKS times on the way
    (validation is not training time)."""
    cfg, vocab, dev = setup(data, device, DEFAULT)
    torch.manual_seed(cfg.seed)
    model = WordLM(vocab.n_words, cfg.model).to(dev)
    train = columns(shards.load_stream(data, "train"), COLUMNS, dev)
    held = columns(shards.load_stream(data, "val"), EVAL_COLUMNS, dev)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    records: list[dict[str, Any]] = []
    trained, step, pos, state = 0.0, 0, 0, None
    epoch_best = math.inf
    while trained < budget_s:
        if pos + 1 >= train.shape[1]:  # an epoch ends: word_language_model anneals here
            loss = held_out_loss(model, held)
            if loss >= epoch_best:
                for group in optimizer.param_groups:
                    group["lr"] /= ANNEAL
            epoch_best, pos, state = min(epoch_best, loss), 0, None
        chunk = train[:, pos : pos + BPTT + 1]
        pos += BPTT
        started = time.perf_counter()
        if state is not None:
            state = tuple(s.detach() for s in state)
        with autocast(dev):
            logits, state = model(chunk[:, :-1], state)
        loss = F.cross_entropy(logits.float().flatten(0, 1), chunk[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        sync(dev)
        trained += time.perf_counter() - started
        step += 1
        if trained >= budget_s * (len(records) + 1) / CHECKS:
            records.append(
                {"step": step, "train_s": trained, "val_loss": held_out_loss(model, held)}
            )
    return {"records": records}


def run(ctx: Context) -> list[Figure]:
    s, budget = ctx.sizes, ctx.sizes.budget_s
    peer = isolated(peer_until, str(ctx.data), ctx.device, budget)["records"]
    best = min(peer, key=lambda r: r["val_loss"])
    target = best["val_loss"]
    # Batches of 8 recipes on a CPU give four times the updates of the default 32 there, and an
    # update every BPTT_PROJECT words (the state carried) five times as many again.
    batch = [] if ctx.device == "cuda" else ["--batch-size", "8"]
    args = ["-m", "hpc_rnn.train", "--objective", "recipe", "--schedule", "constant", *batch]
    args += ["--bptt", str(BPTT_PROJECT)]
    args += ["--val-windows", str(s.val_windows), "--val-every-steps", str(s.recipe_val_every)]
    # Wall-clock guard: validation and checkpoints are not training time, but take some.
    records, hit = train_to_loss(ctx, "recipe", args, RECIPE_KEY, target, 3 * budget + 180)
    last = hit or records[-1]
    return [
        Figure(
            "peer_time_to_quality",
            f"training seconds to the held-out loss L = {target:.3f} with the whole recipe in "
            "view: --objective recipe vs nn.Embedding -> nn.LSTM -> nn.Linear trained as "
            f"word_language_model trains it, which reached L at step {best['step']} of a "
            f"{budget:g} s budget",
            "s",
            Stats.of([last["train_s"]]),
            Stats.of([best["train_s"]]),
            "baseline/project",
            1.0,
            bound="" if hit else "<",
            notes=[
                "one run each; training seconds exclude validation and checkpoints",
                "the peer's loss carries its state through the held-out stream, the project's "
                "starts each recipe from a zero state",
                f"the project validated every {s.recipe_val_every} steps: its time is an upper "
                "bound"
                if hit
                else f"the project did not reach L in {budget:g} s: its time is a lower bound",
            ],
            extra={
                "L": target,
                "budget_s": budget,
                "peer_losses": [(r["train_s"], r["val_loss"]) for r in peer],
                "project_steps": last["step"],
            },
        )
    ]
