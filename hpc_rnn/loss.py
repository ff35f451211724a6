"""Next-word loss and accuracy: one computation for a training step and for held-out windows,
and the held-out window plans that training validates on and `evaluate` scores."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hpc_rnn import shards
from hpc_rnn.data import Batch, RecipePlan, WindowPlan
from hpc_rnn.distributed import World, all_sum, autocast


def first_argmax(logits: torch.Tensor, block: int = 64) -> torch.Tensor:
    """`logits.argmax(-1)`, ties to the first index as there, in a third of its time on a CPU.

    torch's argmax over the last dimension does not vectorise; amax does. So the largest of each
    block of `block` words is found by amax, the first block holding the maximum by a small
    argmax, and the position inside that block by another.
    """
    flat = logits.flatten(0, -2)
    n, v = flat.shape
    whole = v // block * block
    peaks = flat[:, :whole].view(n, -1, block).amax(-1)
    if whole < v:
        peaks = torch.cat([peaks, flat[:, whole:].amax(-1, keepdim=True)], 1)
    start = peaks.argmax(-1) * block
    # A short last block repeats its last word: a repeat never comes before its first position.
    inside = (start[:, None] + torch.arange(block, device=flat.device)).clamp_(max=v - 1)
    return (start + flat.gather(1, inside).argmax(-1)).view(logits.shape[:-1])


def window_scores(
    logits: torch.Tensor, batch: Batch, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each window's weighted mean cross-entropy (with its graph, to back-propagate), and the
    sums (loss, correct, windows) over the batch, detached, for logs and validation.

    A window of objective "all" predicts at every position and scores the mean over them; one
    of "last" predicts once. A whole recipe (objective "recipe") weighs every target token
    alike: its weight is a mask over positions, 0 past its end, and the sums count tokens. The
    placeholder of an empty rank has weight 0.
    """
    targets = batch.targets.to(device)
    weight = batch.weight.to(device)
    ce = F.cross_entropy(logits.flatten(0, -2), targets.flatten(), reduction="none")
    correct = (first_argmax(logits.detach()) == targets).float()
    if weight.dim() == 2:  # whole recipes: one weight per target token
        ce = ce.view_as(targets)
    elif targets.dim() == 2:  # objective "all"
        ce = ce.view_as(targets).mean(1)
        correct = correct.mean(1)
    sums = torch.stack([(ce.detach() * weight).sum(), (correct * weight).sum(), weight.sum()])
    return ce * weight, sums


def heldout_plan(
    stream: np.ndarray, window: int, batch_size: int, max_windows: int, world: World
) -> WindowPlan | None:
    """Evenly spaced windows of a held-out stream, at most `max_windows` (0: all), predicting the
    word after each full window (the lecture's task, whatever the training objective), split
    across ranks; None when the stream is shorter than a window."""
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


def validation_plan(
    data: str, window: int, batch_size: int, max_windows: int, world: World, split: str = "val"
) -> WindowPlan | None:
    """`heldout_plan` of a preprocessed split (by default the validation recipes)."""
    return heldout_plan(shards.load_stream(data, split), window, batch_size, max_windows, world)


def recipe_plan(
    data: str,
    split: str,
    batch_size: int,
    max_len: int,
    world: World,
    *,
    shuffle: bool,
    seed: int = 0,
    bptt: int = 0,
) -> RecipePlan | None:
    """The whole recipes of a preprocessed split as sequences; None for data of schema 1, which
    does not record where recipes begin."""
    stream, starts = shards.load_split(data, split)
    if starts is None:
        return None
    return RecipePlan(
        stream,
        starts,
        max_len=max_len,
        batch_size=batch_size,
        rank=world.rank,
        world=world.size,
        seed=seed,
        shuffle=shuffle,
        bptt=bptt,
    )


@torch.no_grad()
def next_word_metrics(
    model: torch.nn.Module, plan: WindowPlan | RecipePlan | None, world: World, prefix: str = "val"
) -> dict[str, Any]:
    """{prefix}_loss (nats), _acc, _ppl and _windows (or tokens of whole recipes) over `plan`,
    summed across ranks: the word after each window, or every word of each recipe given all
    the words before it in that recipe."""
    keys = [f"{prefix}_{k}" for k in ("loss", "acc", "ppl", "windows")]
    if plan is None or plan.n_windows == 0:
        return dict(zip(keys, (math.nan, math.nan, math.nan, 0), strict=True))
    last_only = isinstance(plan, WindowPlan) and plan.objective == "last"
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, device=world.device)
    for _, batch in plan.batches(0):
        with autocast(world.device):
            logits, _ = model(batch.inputs.to(world.device), last_only=last_only)
        sums += window_scores(logits.float(), batch, world.device)[1]
    model.train(was_training)
    loss, correct, count = all_sum(sums, world).tolist()
    loss /= max(count, 1)
    values = (loss, correct / max(count, 1), math.exp(min(loss, 50.0)), int(count))
    return dict(zip(keys, values, strict=True))
