"""Figure `time_to_quality`: training seconds of the default configuration to the held-out loss
that the seed preset reaches within a budget, against the seed preset's own."""

from __future__ import annotations

from typing import Any

from hpc_rnn.bench.harness import Context, Figure, Stats, train_to_loss, train_until, trained_s
from hpc_rnn.config import PRESETS


def run(ctx: Context) -> list[Figure]:
    s, budget = ctx.sizes, ctx.sizes.budget_s
    train = ["-m", "hpc_rnn.train", "--val-windows", str(s.val_windows)]
    # Wall-clock guard: validation and checkpoints are not training time, but take some.
    limit = 3 * budget + 180
    seed = train_until(
        ctx,
        "seed",
        [*train, "--preset", "seed", "--val-every-steps", str(_seed_val_every(ctx))],
        lambda recs: trained_s(recs) >= budget and bool(_validations(recs)),
        limit,
    )
    # L: the best loss validated within T (or at the first validation, should that come later).
    checked = _validations(seed)
    if not checked:
        raise RuntimeError("the seed run stopped before its first validation")
    best = min([r for r in checked if r["train_s"] <= budget] or checked[:1], key=_loss)
    target = best["val_loss"]
    default, hit = train_to_loss(
        ctx,
        "default",
        [*train, "--val-every-steps", str(s.default_val_every)],
        "val_loss",
        target,
        limit,
    )
    last = hit or default[-1]
    return [
        Figure(
            "time_to_quality",
            f"training seconds to the held-out loss L = {target:.3f}: the default configuration "
            f"vs the seed preset, which reached L at step {best['step']} of a {budget:g} s budget",
            "s",
            Stats.of([last["train_s"]]),
            # The seed's own time to L, not T: the smaller (conservative) of the two.
            Stats.of([best["train_s"]]),
            "baseline/project",
            30.0,
            bound="" if hit else "<",
            notes=[
                "one run each; training seconds exclude validation and checkpoints",
                f"the default run validated every {s.default_val_every} steps: its time is an "
                "upper bound"
                if hit
                else f"the default run did not reach L in {budget:g} s: its time is a lower "
                "bound, the ratio an upper one",
            ],
            extra={
                "L": target,
                "budget_s": budget,
                "seed_steps": max(r["step"] for r in seed),
                "default_steps": last["step"],
                "val_windows": s.val_windows,
            },
        )
    ]


def _validations(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if "val_loss" in r]


def _loss(record: dict[str, Any]) -> float:
    return record["val_loss"]


def _seed_val_every(ctx: Context) -> int:
    """Steps between the seed run's validations: about 20 in its budget when train_throughput
    measured its step rate (a GPU takes far more steps than a CPU in the same budget; the
    rates are in docs/benchmarks.md), else the sizes' fixed count."""
    trained = ctx.figures.get("train_throughput")
    if trained is None:
        return ctx.sizes.seed_val_every
    steps = trained.project.median / PRESETS["seed"]["batch_size"] * ctx.sizes.budget_s
    return max(1, round(steps / 20))
