"""Figure `input_pipeline`: windows/s that WindowPlan.batch cuts against windows/s the training
step takes."""

from __future__ import annotations

import itertools
from typing import Any

from hpc_rnn.bench.harness import Context, Figure, Sizes, isolated, measure
from hpc_rnn.bench.train_throughput import project_training, setup, window_plan


def pipeline_rate(data: str, sizes: Sizes) -> dict[str, Any]:
    """Windows/s that WindowPlan.batch cuts for the seed preset, position after position."""
    cfg, vocab, dev = setup(data, "cpu")
    plan = window_plan(data, cfg, vocab.window)
    positions = itertools.cycle(range(0, plan.n_windows, plan.global_batch))

    def batches() -> float:
        return sum(
            len(plan.batch(0, next(positions)).inputs) for _ in range(sizes.pipeline_batches)
        )

    return {"stats": measure(batches, repeats=sizes.repeats, device=dev)}


def run(ctx: Context) -> list[Figure]:
    pipeline = isolated(pipeline_rate, str(ctx.data), ctx.sizes)
    trained = ctx.figures.get("train_throughput")
    notes = []
    if trained is None:
        consumer = isolated(project_training, str(ctx.data), ctx.device, ctx.sizes)
        step_stats, step_rss = consumer["stats"], consumer["peak_rss_mb"]
        notes.append("training rate measured here (train_throughput was not run)")
    else:
        step_stats, step_rss = trained.project, trained.peak_rss_mb["project"]
        notes.append("training rate: train_throughput's project side")
    return [
        Figure(
            "input_pipeline",
            "windows/s WindowPlan.batch delivers vs windows/s the seed preset's training step takes",
            "windows/s",
            pipeline["stats"],
            step_stats,
            "project/baseline",
            20.0,
            peak_rss_mb={"project": pipeline["peak_rss_mb"], "baseline": step_rss},
            notes=notes,
        )
    ]
