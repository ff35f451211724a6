"""Figure `data_parallel`: windows/s of 2 torchrun ranks against twice one process, the scaling
efficiency (report only)."""

from __future__ import annotations

import dataclasses
import statistics

import torch

from hpc_rnn.bench.harness import Context, Figure, Stats, train_until
from hpc_rnn.train import AUTO_BATCH


def run(ctx: Context) -> list[Figure]:
    if ctx.device == "cuda" and torch.cuda.device_count() < 2:
        ctx.notes.append("data_parallel: skipped, it needs 2 GPUs with --device cuda")
        return []
    s = ctx.sizes
    args = [
        "--val-windows",
        "256",
        "--log-every",
        str(s.dp_log_every),
        "--max-steps",
        str(s.dp_steps),
        "--ckpt-every-steps",
        str(10 * s.dp_steps),
    ]
    rates = {}
    for ranks in (1, 2):
        launch = ["-m", "hpc_rnn.train"]
        if ranks > 1:
            launch = [
                "-m",
                "torch.distributed.run",
                "--standalone",
                f"--nproc-per-node={ranks}",
                *launch,
            ]
        records = train_until(
            ctx, f"dp-{ranks}", [*launch, *args], lambda recs: False, 600 + 60 * s.dp_steps
        )
        # The first log interval holds the first steps' allocations: warm-up.
        rates[ranks] = [r["windows_per_s"] for r in records if "windows_per_s" in r][1:]
        if not rates[ranks]:
            raise RuntimeError(f"data_parallel: the {ranks}-rank run logged no rate after warm-up")
    one = Stats.of(rates[1])
    batch = AUTO_BATCH[ctx.device]
    return [
        Figure(
            "data_parallel",
            "windows/s of 2 ranks (torchrun, gloo on CPU) vs 2 x 1 process at the same per-rank "
            "batch, default configuration: the ratio is the scaling efficiency",
            "windows/s",
            Stats.of(rates[2]),
            one.scaled(2.0),
            "project/baseline",
            None,
            notes=["report only: 2 cores are no cluster; torchrun gives each rank 1 thread"],
            extra={
                "one_rank_windows_per_s": dataclasses.asdict(one),
                "steps_per_s": {
                    "1": one.median / batch,
                    "2": statistics.median(rates[2]) / (2 * batch),
                },
            },
        )
    ]
