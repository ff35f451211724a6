"""The window plan: every window once per epoch across ranks, resumable at any position."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hpc_rnn.data import WindowPlan, one_hot

# Every token distinct, so a window tells where in the stream it was cut.
STREAM = np.random.default_rng(0).permutation(2000).astype(np.uint16)


def plan(world: int = 1, rank: int = 0, **kw) -> WindowPlan:
    args = dict(window=50, objective="last", batch_size=16, seed=3) | kw
    return WindowPlan(STREAM, rank=rank, world=world, **args)


# Where each token stands in the stream: a batch row's first token says where it was cut.
POSITION = {int(token): i for i, token in enumerate(STREAM)}


def windows_of(batch, stride: int) -> list[int]:
    """The indices of the windows a batch holds, read from its inputs (placeholders left out)."""
    found = []
    for row, weight in zip(batch.inputs.tolist(), batch.weight.tolist(), strict=True):
        if weight == 0:
            continue
        start = POSITION[row[0]]
        assert row == STREAM[start : start + 50].tolist(), "a window is a slice of the stream"
        assert start % stride == 0, "windows start at multiples of the stride"
        found.append(start // stride)
    return found


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("objective", ["last", "all"])
def test_every_window_exactly_once_per_epoch_across_ranks(world: int, objective: str) -> None:
    for epoch in (0, 1):
        seen: list[int] = []
        steps = set()
        for rank in range(world):
            p = plan(world, rank, objective=objective)
            n = 0
            for _, batch in p.batches(epoch):
                n += 1
                seen += windows_of(batch, p.stride)
            steps.add(n)
        assert sorted(seen) == list(range(p.n_windows))
        assert len(steps) == 1  # every rank runs the same number of steps (DDP needs it)


def test_the_split_changes_with_the_epoch_and_the_seed() -> None:
    p = plan(2, 0)
    first = p.rank_windows(0, 0)[0].tolist()
    assert first != p.rank_windows(1, 0)[0].tolist()
    assert first != plan(2, 0, seed=4).rank_windows(0, 0)[0].tolist()
    assert first == plan(2, 0).rank_windows(0, 0)[0].tolist()


def test_two_ranks_see_the_windows_of_one_rank_with_twice_the_batch() -> None:
    one = plan(1, 0, batch_size=32)
    two = [plan(2, r, batch_size=16) for r in range(2)]
    for pos in range(0, one.n_windows, 32):
        together = torch.cat([p.batch(0, pos).inputs for p in two])
        alone = one.batch(0, pos).inputs
        assert sorted(map(tuple, together.tolist())) == sorted(map(tuple, alone.tolist()))


def test_resuming_at_a_position_continues_the_same_order() -> None:
    p = plan()
    full = [b.inputs for _, b in p.batches(2)]
    after, _ = next(iter(p.batches(2)))
    rest = [b.inputs for _, b in plan().batches(2, after)]
    assert all(torch.equal(a, b) for a, b in zip(full[1:], rest, strict=True))


def test_windows_and_targets_come_from_the_stream() -> None:
    last = plan().batch(0, 0)
    start = int(last.inputs[0, 0].item())
    i = int(np.flatnonzero(start == STREAM)[0])
    assert last.inputs[0].tolist() == STREAM[i : i + 50].tolist()
    assert last.targets[0].item() == STREAM[i + 50]
    every = plan(objective="all").batch(0, 0)
    assert torch.equal(every.targets[:, :-1], every.inputs[:, 1:])
    assert plan(objective="all").n_windows == (len(STREAM) - 50 - 1) // 50 + 1


def test_an_empty_rank_gets_a_zero_weight_placeholder() -> None:
    # 3 ranks, a last step with fewer windows than ranks.
    stream = STREAM[: 50 + 16 * 3 + 1]
    ranks = [
        WindowPlan(stream, window=50, objective="last", batch_size=16, rank=r, world=3)
        for r in range(3)
    ]
    last = [p.batch(0, 48) for p in ranks]
    assert [b.weight.sum().item() for b in last] == [1.0, 0.0, 0.0]
    assert all(b.n_global == 1 for b in last)


def test_one_hot_view() -> None:
    x = plan().batch(0, 0).inputs
    dense = one_hot(x, 2000)
    assert dense.shape == (16, 50, 2000) and torch.equal(dense.argmax(-1), x)
