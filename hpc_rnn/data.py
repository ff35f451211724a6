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

import itertools
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


class _EpochPlan:
    """What both plans share: `n_windows` items an epoch (windows, or recipe pieces), taken
    `global_batch` at a time; `batch(epoch, position)` is the step at a position."""

    n_windows: int
    batch_size: int
    world: int

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.n_windows // self.global_batch)

    def batch(self, epoch: int, position: int) -> Batch:
        raise NotImplementedError

    def updates(self, epoch: int, position: int) -> list[Batch]:
        """The optimizer updates of the step at a position, in order: one, its whole batch,
        unless the plan cuts its sequences into pieces (RecipePlan's `bptt`)."""
        return [self.batch(epoch, position)]

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[int, Batch]]:
        """(position after the step, batch) for one epoch from position `start` on."""
        for position, after in self._positions(start):
            yield after, self.batch(epoch, position)

    def steps(self, epoch: int, start: int = 0) -> Iterator[tuple[int, list[Batch]]]:
        """(position after the step, its updates) for one epoch from position `start` on."""
        for position, after in self._positions(start):
            yield after, self.updates(epoch, position)

    def _positions(self, start: int) -> Iterator[tuple[int, int]]:
        """(position of the step, position after it) for the steps of an epoch from `start`."""
        for position in range(start, self.n_windows, self.global_batch):
            yield position, min(position + self.global_batch, self.n_windows)


class WindowPlan(_EpochPlan):
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


def one_hot(inputs: torch.Tensor, n_words: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The lecture's dense one-hot view of index windows ([b, T] -> [b, T, n_words]).

    For readers and reference code only: the model gathers rows instead, which is the same math
    at a fraction of the memory and compute.
    """
    return torch.nn.functional.one_hot(inputs, n_words).to(dtype)


class RecipePlan(_EpochPlan):
    """Whole recipes as training sequences: the recurrent state starts at zero at each recipe
    and runs to its end, so the directions are trained with the ingredient list in view.

    Item i is recipe i of the split (one longer than `max_len` tokens is cut into pieces of
    `max_len`, each its own item). Epoch e visits the items in a permutation seeded by
    (seed, e); within each run of POOL items of that order, items are sorted by length, so a
    batch pads little. Both depend on neither the batch size nor the world size: a step at
    position p takes items [p, p + G) of that order, rank r every world-th of them, and the
    loss is the mean over the step's target tokens on all ranks. So, as with WindowPlan, every
    token is a target exactly once an epoch, 2 ranks with batch b take the step of 1 with 2b,
    and a run resumes at a position with any world size.

    With `bptt` > 0 a step is several updates: its sequences cut into pieces of `bptt` words,
    an update a piece, the recurrent state carried (detached) from one piece to the next, as
    truncated back-propagation through time does. Each update's loss is the mean over that
    piece's target tokens on all ranks, and every rank pads to the step's longest item, so the
    ranks take the same number of updates. A step still begins every sequence from a zero
    state, so a checkpoint between steps holds no carried state, and resume stays exact.
    """

    POOL = 256  # items sorted by length together: less padding, yet a fresh mix every epoch

    def __init__(
        self,
        stream: np.ndarray,
        starts: np.ndarray,
        *,
        max_len: int,
        batch_size: int,
        rank: int = 0,
        world: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        bptt: int = 0,
    ) -> None:
        self.stream = torch.from_numpy(stream.astype(np.int64))
        self.bptt = bptt
        bounds = np.append(starts, len(stream)).astype(np.int64)
        # An item of n tokens has n - 1 targets; pieces of a long recipe overlap by one token
        # so that each token is a target once.
        begin, length = [], []
        for s, e in itertools.pairwise(bounds):
            for b in range(int(s), int(e) - 1, max_len):
                begin.append(b)
                length.append(min(max_len, int(e) - b - 1) + 1)
        self.begin = np.asarray(begin, np.int64)
        self.length = np.asarray(length, np.int64)
        self.n_windows = len(self.begin)  # items; the name the training loop counts in
        self.batch_size = batch_size
        self.rank = rank
        self.world = world
        self.seed = seed
        self.shuffle = shuffle
        self._order_epoch = -1
        self._order = np.zeros(0, np.int64)

    def order(self, epoch: int) -> np.ndarray:
        """The epoch's item order, the same on every rank and after any resume."""
        if epoch != self._order_epoch:
            order = np.arange(self.n_windows)
            if self.shuffle:
                order = np.random.default_rng([self.seed, epoch]).permutation(self.n_windows)
            pools = [order[i : i + self.POOL] for i in range(0, len(order), self.POOL)]
            # Stable sort, longest first: the same order whatever numpy's sort kind does.
            self._order = np.concatenate(
                [np.zeros(0, np.int64)]
                + [p[np.argsort(-self.length[p], kind="stable")] for p in pools]
            )
            self._order_epoch = epoch
        return self._order

    def batch(self, epoch: int, position: int) -> Batch:
        return self._batch(self.order(epoch)[position : position + self.global_batch], False)

    def updates(self, epoch: int, position: int) -> list[Batch]:
        if not self.bptt:
            return super().updates(epoch, position)
        step = self.order(epoch)[position : position + self.global_batch]
        whole = self._batch(step, True)
        targets = self.length[step] - 1
        return [
            Batch(
                whole.inputs[:, at : at + self.bptt],
                whole.targets[:, at : at + self.bptt],
                whole.weight[:, at : at + self.bptt],
                int(np.clip(targets - at, 0, self.bptt).sum()),
            )
            for at in range(0, int(targets.max()), self.bptt)
        ]

    def _batch(self, step: np.ndarray, step_width: bool) -> Batch:
        """This rank's items of a step, padded to their longest, or with `step_width` to the
        longest of the whole step's."""
        n_global = int((self.length[step] - 1).sum())
        mine = step[self.rank :: self.world]
        if len(mine) == 0:  # the epoch's last step can leave a rank without items (see WindowPlan)
            mine, live = step[:1], 0.0
        else:
            live = 1.0
        width = int(self.length[step if step_width else mine].max())
        rows = torch.zeros(len(mine), width, dtype=torch.int64)
        mask = torch.zeros(len(mine), width - 1)
        for row, item in enumerate(mine):
            n = int(self.length[item])
            rows[row, :n] = self.stream[self.begin[item] : self.begin[item] + n]
            mask[row, : n - 1] = live
        return Batch(rows[:, :-1], rows[:, 1:], mask, n_global)
