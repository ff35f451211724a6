"""Held-out next-word loss, accuracy and perplexity (the lecture's task: the word after a full
window), used by training each epoch and by the `evaluate` command."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from hpc_rnn import shards
from hpc_rnn.data import WindowPlan
from hpc_rnn.distributed import World, all_sum


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
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=world.device.type == "cuda")
    for _, batch in plan.batches(0):
        targets = batch.targets.to(world.device)
        weight = batch.weight.to(world.device)
        with autocast:
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
