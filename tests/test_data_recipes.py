"""RecipePlan: whole recipes as training sequences, split across ranks, resumable anywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hpc_rnn import shards
from hpc_rnn.data import RecipePlan


@pytest.fixture(scope="module")
def split(demo_data: Path) -> tuple[np.ndarray, np.ndarray]:
    stream, starts = shards.load_split(demo_data, "train")
    return stream, starts


def test_every_recipe_token_is_a_target_once_an_epoch_whatever_the_ranks(split):
    stream, starts = split
    expected = sum(int(e - s - 1) for s, e in zip(starts, [*starts[1:], len(stream)], strict=True))
    for world in (1, 3):
        counted, tokens = 0, []
        for rank in range(world):
            plan = RecipePlan(stream, starts, max_len=64, batch_size=4, rank=rank, world=world)
            for _, batch in plan.batches(0):
                counted += int(batch.weight.sum())
                tokens += batch.targets[batch.weight > 0].tolist()
        assert counted == expected
        # The targets are the recipe tokens after each recipe's first one, as a multiset.
        whole = np.concatenate(
            [stream[s + 1 : e] for s, e in zip(starts, [*starts[1:], len(stream)], strict=True)]
        )
        assert np.array_equal(np.sort(np.asarray(tokens)), np.sort(whole.astype(np.int64)))


def test_inputs_are_the_recipe_and_targets_the_next_words(split):
    stream, starts = split
    plan = RecipePlan(stream, starts, max_len=10_000, batch_size=2, shuffle=False)
    _, batch = next(plan.batches(0))
    for row in range(2):
        n = int(batch.weight[row].sum())
        assert batch.targets[row, : n - 1].tolist() == batch.inputs[row, 1:n].tolist()
        # A whole recipe: it starts where a recipe starts and its inputs are that recipe.
        begin = int(plan.begin[plan.order(0)[row]])
        assert begin in set(starts.tolist())
        assert batch.inputs[row, :n].tolist() == stream[begin : begin + n].tolist()


def test_two_ranks_with_batch_b_see_what_one_rank_with_2b_sees(split):
    stream, starts = split
    one = RecipePlan(stream, starts, max_len=64, batch_size=8, seed=3)
    two = [
        RecipePlan(stream, starts, max_len=64, batch_size=4, rank=r, world=2, seed=3)
        for r in (0, 1)
    ]
    for (a_pos, a), (b_pos, b), (c_pos, c) in zip(
        one.batches(1), two[0].batches(1), two[1].batches(1), strict=True
    ):
        assert a_pos == b_pos == c_pos and a.n_global == b.n_global == c.n_global
        rows = {tuple(r[m > 0].tolist()) for r, m in zip(a.targets, a.weight, strict=True)}
        halves = {
            tuple(r[m > 0].tolist())
            for batch in (b, c)
            for r, m in zip(batch.targets, batch.weight, strict=True)
            if m.sum() > 0
        }
        assert rows == halves


def test_resuming_at_a_position_with_another_world_size_finishes_the_epoch_exactly(split):
    stream, starts = split
    whole = RecipePlan(stream, starts, max_len=64, batch_size=6, seed=1)
    stop = 6 * 5  # five steps in
    before = [b for _, (_, b) in zip(range(5), whole.batches(2), strict=False)]
    after = [
        b
        for r in (0, 1)
        for _, b in RecipePlan(
            stream, starts, max_len=64, batch_size=3, rank=r, world=2, seed=1
        ).batches(2, stop)
    ]
    got = sorted(
        tuple(t[m > 0].tolist())
        for b in before + after
        for t, m in zip(b.targets, b.weight, strict=True)
        if m.sum() > 0
    )
    full = sorted(
        tuple(t[m > 0].tolist())
        for _, b in whole.batches(2)
        for t, m in zip(b.targets, b.weight, strict=True)
    )
    assert got == full


def test_long_recipes_are_cut_into_pieces_that_keep_every_target(split):
    stream, starts = split
    plan = RecipePlan(stream, starts, max_len=16, batch_size=64, shuffle=False)
    assert int(plan.length.max()) == 17 and plan.n_windows > len(starts)
    assert int((plan.length - 1).sum()) == sum(
        int(e - s - 1) for s, e in zip(starts, [*starts[1:], len(stream)], strict=True)
    )
    batch = next(iter(plan.batches(0)))[1]
    assert batch.inputs.shape[1] == 16 and torch.all(batch.weight.sum(1) > 0)


def test_bptt_cuts_each_step_into_updates_that_keep_every_target_on_every_rank(split):
    stream, starts = split
    whole = RecipePlan(stream, starts, max_len=64, batch_size=6, seed=2)
    ranks = [
        RecipePlan(stream, starts, max_len=64, batch_size=3, rank=r, world=2, seed=2, bptt=16)
        for r in (0, 1)
    ]
    for position in range(0, whole.n_windows, whole.global_batch):
        step = whole.batch(0, position)
        updates = [plan.updates(0, position) for plan in ranks]
        # Every rank takes as many updates, enough for the step's longest item.
        assert len(updates[0]) == len(updates[1]) == -(-step.inputs.shape[1] // 16)
        for number, (a, b) in enumerate(zip(*updates, strict=True)):
            assert a.inputs.shape[1] <= 16 and a.n_global == b.n_global
            # The update's mean is over its targets on both ranks.
            assert a.n_global == int(a.weight.sum() + b.weight.sum()) > 0, number
        # Pieces side by side are the rank's items, in order: the state runs on from one to the
        # next; and the two ranks' items are the step's.
        rows = set()
        for pieces in updates:
            targets = torch.cat([u.targets for u in pieces], 1)
            weight = torch.cat([u.weight for u in pieces], 1)
            inputs = torch.cat([u.inputs for u in pieces], 1)
            valid = weight[:, :-1] > 0
            assert torch.equal(inputs[:, 1:][valid], targets[:, :-1][valid])
            rows |= {
                tuple(t[m > 0].tolist()) for t, m in zip(targets, weight, strict=True) if m.any()
            }
        assert rows == {
            tuple(t[m > 0].tolist()) for t, m in zip(step.targets, step.weight, strict=True)
        }
