"""Figure `peer_throughput`: windows/s of the default configuration's training step as train.py
takes it, against the network a PyTorch user writes for the same task (pytorch/examples'
word_language_model): nn.Embedding -> nn.LSTM -> nn.Linear, cuDNN on a GPU.

Both sides train on the same windows of the same WindowPlan batches, with the same objective
(the next word at every position), batch, optimiser, clipping, threads and, on a GPU, the same
bf16 autocast. The project's network has no separate embedding: its first layer gathers rows of
its input weight (a one-hot times that weight), so the peer does one more matmul a step; that is
what a user writes. Each side runs in fresh processes, `Sizes.peer_rounds` of them, in
alternating order: the ratio is near 1, where the machine's drift would otherwise decide it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hpc_rnn.bench.harness import Context, Figure, Sizes, alternate, isolated, pooled
from hpc_rnn.bench.train_throughput import project_training, setup, step_rate, window_plan
from hpc_rnn.config import ModelConfig
from hpc_rnn.data import Batch
from hpc_rnn.distributed import autocast
from hpc_rnn.train import make_optimizer

DEFAULT = ""  # setup()'s preset for the default configuration


class WordLM(nn.Module):
    """word_language_model's RNNModel at the project's sizes: an embedding as wide as the
    hidden state, the recurrent layers batch first, a linear decoder; dropout where the
    project's model has it (between layers and before the output; none by default)."""

    def __init__(self, n_words: int, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.copy:
            raise ValueError("peer_throughput has no peer for the copy variant")
        self.encoder = nn.Embedding(n_words, cfg.hidden)
        self.rnn = getattr(nn, cfg.cell.upper())(
            cfg.hidden,
            cfg.hidden,
            num_layers=cfg.layers,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,
            batch_first=True,
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.decoder = nn.Linear(cfg.hidden, n_words)

    def forward(self, tokens: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Logits [B, T, n_words] and the state after the last token."""
        out, state = self.rnn(self.encoder(tokens), state)
        return self.decoder(self.drop(out)), state


def peer_training(data: str, device: str, sizes: Sizes) -> dict[str, Any]:
    """Windows/s of the peer's training step on the default configuration's batches: the mean
    cross-entropy over every position, the default optimiser and clipping. It skips the
    accuracy the project's step counts for its logs: the cheaper choice."""
    cfg, vocab, dev = setup(data, device, DEFAULT)
    plan = window_plan(data, cfg, vocab.window)
    torch.manual_seed(cfg.seed)
    model = WordLM(vocab.n_words, cfg.model).to(dev)
    optimizer = make_optimizer(cfg, model)  # torch.optim.AdamW(lr=cfg.lr, ...), as a user's
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True

    def step(batch: Batch) -> None:
        with autocast(dev):
            logits, _ = model(batch.inputs.to(dev))
        loss = F.cross_entropy(logits.float().flatten(0, 1), batch.targets.to(dev).flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        optimizer.step()

    stats = step_rate(plan, step, dev, sizes.train_steps, sizes.repeats)
    parameters = sum(p.numel() for p in model.parameters())
    return {"stats": stats, "parameters": parameters, "batch": cfg.batch_size}


def run(ctx: Context) -> list[Figure]:
    data, device, sizes = str(ctx.data), ctx.device, ctx.sizes
    rounds = alternate(
        {
            "project": lambda: isolated(project_training, data, device, sizes, DEFAULT),
            "baseline": lambda: isolated(peer_training, data, device, sizes),
        },
        sizes.peer_rounds,
    )
    project, project_rss = pooled(rounds["project"])
    peer, peer_rss = pooled(rounds["baseline"])
    by_round = [
        p["stats"].median / b["stats"].median
        for p, b in zip(rounds["project"], rounds["baseline"], strict=True)
    ]
    first, peer_first = rounds["project"][0], rounds["baseline"][0]
    notes = [
        f"{sizes.peer_rounds} fresh process(es) a side, alternating; ratio of the medians by "
        f"round: {', '.join(f'{r:.3f}' for r in by_round)}",
        f"parameters: project {first['parameters']:,}, peer {peer_first['parameters']:,}",
    ]
    if device == "cuda":
        notes.append("both sides under bf16 autocast with cudnn.benchmark, the peer's LSTM cuDNN")
    return [
        Figure(
            "peer_throughput",
            f"the default configuration's training step (RecurrentLM, WindowPlan, objective "
            f"all, AdamW, clip; batch {first['batch']}) vs a PyTorch user's nn.Embedding -> "
            f"nn.LSTM -> nn.Linear (pytorch/examples word_language_model) on the same batches "
            f"with the same objective, optimiser and clipping",
            "windows/s",
            project,
            peer,
            "project/baseline",
            1.0,
            peak_rss_mb={"project": project_rss, "baseline": peer_rss},
            notes=notes,
            extra={
                "batch": first["batch"],
                "round_ratios": by_round,
                "parameters": {"project": first["parameters"], "peer": peer_first["parameters"]},
            },
        )
    ]
