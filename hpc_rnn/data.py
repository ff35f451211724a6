"""Training examples out of the token stream: windows, a deterministic epoch order that can
start at any step, and a split of every global batch across ranks.

Window i starts at stream position `i * stride`; its input is `window` tokens and its targets
are the next token (objective "last") or the next token at every position ("all"). Epoch e
visits the windows in the order of a permutation seeded by (seed, e). A step that starts at
position p of the epoch takes the permutation's slice [p, p + G) with G = batch_size x world;
rank r takes every world-th window of it, starting at r. A run resumes at a position, not a
step number, so a checkpoint from one world size resumes with another on the same order. So every window is used exactly once per epoch
across all ranks, the order does not depend on where a run was resumed (unlike
DistributedSampler, pytorch#36650), and 2 ranks with batch b see the same windows as 1 rank
with batch 2b.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Batch:
    inputs: torch.Tensor  # [b, window] token indices
    targets: torch.Tensor  # [b, window] ("all") or [b] ("last")
    weight: torch.Tensor  # [b] 1.0 for real windows, 0.0 for the placeholder of an empty rank
    n_global: int  # windows in this step across all ranks: the loss is a mean over these


class WindowPlan:
    """Which windows each rank trains on, step by step, epoch by epoch."""

    def __init__(
        self,
        stream: np.ndarray,
        *,
        window: int,
        objective: str,
        batch_size: int,
        rank: int = 0,
        world: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        stride: int | None = None,
    ) -> None:
        if objective not in ("all", "last"):
            raise ValueError(f"objective must be 'all' or 'last', got {objective!r}")
        self.stream = torch.from_numpy(stream.astype(np.int64))
        self.window = window
        self.objective = objective
        self.stride = stride or (window if objective == "all" else 1)
        self.batch_size = batch_size
        self.rank = rank
        self.world = world
        self.seed = seed
        self.shuffle = shuffle
        # A window needs `window` inputs and one more token for its last target.
        usable = len(stream) - window
        self.n_windows = 0 if usable <= 0 else (usable - 1) // self.stride + 1
        self._offsets = torch.arange(window + 1)
        self._order_epoch = -1
        self._order = torch.zeros(0, dtype=torch.int64)

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.n_windows // self.global_batch)

    def order(self, epoch: int) -> torch.Tensor:
        """The epoch's window order, the same on every rank and after any resume."""
        if epoch != self._order_epoch:
            if self.shuffle:
                rng = np.random.default_rng([self.seed, epoch])
                self._order = torch.from_numpy(rng.permutation(self.n_windows))
            else:
                self._order = torch.arange(self.n_windows)
            self._order_epoch = epoch
        return self._order

    def rank_windows(self, epoch: int, position: int) -> tuple[torch.Tensor, int]:
        """This rank's window indices for the step at `position`, and the step's global count."""
        g = self.order(epoch)[position : position + self.global_batch]
        return g[self.rank :: self.world], len(g)

    def batch(self, epoch: int, position: int) -> Batch:
        mine, n_global = self.rank_windows(epoch, position)
        weight = torch.ones(len(mine))
        if len(mine) == 0:
            # The epoch's last step can leave a rank without windows; it still runs the step
            # (DDP needs every rank in every all-reduce) on window 0 with weight 0.
            mine, weight = torch.zeros(1, dtype=torch.int64), torch.zeros(1)
        rows = self.stream[(mine * self.stride)[:, None] + self._offsets]
        inputs = rows[:, : self.window]
        targets = rows[:, 1:] if self.objective == "all" else rows[:, self.window]
        return Batch(inputs, targets, weight, n_global)

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[int, Batch]]:
        """(position after the step, batch) for one epoch from window position `start` on."""
        for position in range(start, self.n_windows, self.global_batch):
            yield min(position + self.global_batch, self.n_windows), self.batch(epoch, position)


def one_hot(inputs: torch.Tensor, n_words: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The lecture's dense one-hot view of index windows ([b, T] -> [b, T, n_words]).

    For readers and reference code only: the model gathers rows instead, which is the same math
    at a fraction of the memory and compute.
    """
    return torch.nn.functional.one_hot(inputs, n_words).to(dtype)
