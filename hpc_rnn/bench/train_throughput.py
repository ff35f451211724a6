"""Figure `train_throughput`: windows/s of the seed preset's training step as train.py takes it,
against the lecture's way of training the same network."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hpc_rnn import shards
from hpc_rnn.bench.harness import Context, Figure, Sizes, Stats, isolated, measure
from hpc_rnn.config import TrainConfig
from hpc_rnn.data import Batch, WindowPlan
from hpc_rnn.distributed import World, pick_device
from hpc_rnn.model import RecurrentLM
from hpc_rnn.train import make_optimizer, parse_config, train_step, with_device_batch
from hpc_rnn.vocab import load_vocab


def setup(data: str, device: str, preset: str = "seed") -> tuple[TrainConfig, Any, torch.device]:
    """The training settings of a preset (the lecture's network and optimiser by default; ""
    for the default configuration), with the batch that --batch-size 0 picks on `device`."""
    argv = ["--data", data, "--run", "unused", *(["--preset", preset] if preset else [])]
    dev = pick_device(device)
    return with_device_batch(parse_config(argv), dev), load_vocab(data), dev


def window_plan(data: str, cfg: TrainConfig, window: int) -> WindowPlan:
    return WindowPlan(
        shards.load_stream(data, "train"),
        window=window,
        objective=cfg.objective,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
    )


def step_rate(
    plan: WindowPlan, step: Callable[[Batch], object], dev: torch.device, steps: int, repeats: int
) -> Stats:
    """Windows/s of `step` over the plan's batches, epoch after epoch, `steps` a repeat."""
    batches = itertools.chain.from_iterable(plan.batches(e) for e in itertools.count())

    def block() -> float:
        done = 0
        for _ in range(steps):
            _, batch = next(batches)
            step(batch)
            done += len(batch.inputs)
        return done

    return measure(block, repeats=repeats, device=dev)


def project_training(data: str, device: str, sizes: Sizes, preset: str = "seed") -> dict[str, Any]:
    """Windows/s of the training step as train.py takes it: WindowPlan batch, RecurrentLM,
    objective_loss, the preset's optimiser (and clipping, where it clips)."""
    cfg, vocab, dev = setup(data, device, preset)
    plan = window_plan(data, cfg, vocab.window)
    torch.manual_seed(cfg.seed)
    model = RecurrentLM(vocab.n_words, cfg.model).to(dev)
    optimizer = make_optimizer(cfg, model)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    world = World(0, 1, 0, dev)
    stats = step_rate(
        plan,
        lambda batch: train_step(cfg, model, model, optimizer, [batch], world),
        dev,
        sizes.train_steps,
        sizes.repeats,
    )
    return {"stats": stats, "parameters": model.count_parameters(), "batch": cfg.batch_size}


def reference_training(data: str, device: str, sizes: Sizes) -> dict[str, Any]:
    """Windows/s of the lecture's way: every window written out as X [N, 50] and y [N], and per
    step a dense float one-hot batch [128, 50, V] built in NumPy, into nn.LSTM(V, 256) + Linear."""
    cfg, vocab, dev = setup(data, device)
    stream = shards.load_stream(data, "train")
    window, n_words, b = vocab.window, vocab.n_words, cfg.batch_size
    # The stream's uint16 rather than the int64 of np.array(list): the cheaper choice.
    x_all = np.lib.stride_tricks.sliding_window_view(stream[:-1], window).copy()
    y_all = stream[window:]
    torch.manual_seed(cfg.seed)
    lstm = nn.LSTM(n_words, cfg.model.hidden, batch_first=True).to(dev)
    dense = nn.Linear(cfg.model.hidden, n_words).to(dev)
    optimizer = make_optimizer(cfg, nn.ModuleList([lstm, dense]))
    order = np.random.default_rng(cfg.seed).permutation(len(x_all))
    starts = itertools.cycle(range(0, len(order) - b + 1, b))
    rows, cols = np.arange(b)[:, None], np.arange(window)[None, :]

    def steps() -> float:
        for _ in range(sizes.reference_steps):
            idx = order[(s := next(starts)) : s + b]
            onehot = np.zeros((b, window, n_words), np.float32)
            onehot[rows, cols, x_all[idx]] = 1.0
            inputs = torch.from_numpy(onehot).to(dev)
            targets = torch.from_numpy(y_all[idx].astype(np.int64)).to(dev)
            out, _ = lstm(inputs)
            loss = F.cross_entropy(dense(out[:, -1]), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return sizes.reference_steps * b

    return {"stats": measure(steps, repeats=sizes.repeats, device=dev)}


def run(ctx: Context) -> list[Figure]:
    project = isolated(project_training, str(ctx.data), ctx.device, ctx.sizes)
    baseline = isolated(reference_training, str(ctx.data), ctx.device, ctx.sizes)
    return [
        Figure(
            "train_throughput",
            "the seed preset's training step (RecurrentLM, WindowPlan, objective_loss, SGD) vs "
            "dense NumPy one-hot batches into nn.LSTM(V, 256) + Linear, batch 128, objective last",
            "windows/s",
            project["stats"],
            baseline["stats"],
            "project/baseline",
            10.0,
            peak_rss_mb={"project": project["peak_rss_mb"], "baseline": baseline["peak_rss_mb"]},
        )
    ]
