"""Figures `preprocess` (2 MPI ranks against 1) and `preprocess_memory` (peak RSS of a big
corpus against a small one), from real preprocess commands."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from hpc_rnn import demo_corpus
from hpc_rnn.bench.harness import Context, Figure, Stats, run_measured, tail


def _mpiexec() -> str | None:
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def preprocess_run(corpus: Path, out: Path, ranks: int, launcher: str | None) -> dict[str, float]:
    """One preprocess command into a fresh `out` (removed after): its own seconds (from its
    summary line: start-up and imports excluded), wall seconds and peak RSS."""
    cmd = [sys.executable, "-m", "hpc_rnn.preprocess", str(corpus), "--out", str(out)]
    if launcher:
        cmd = [launcher, "-n", str(ranks), *cmd]
    log = out.parent / f"{out.name}.log"
    rc, wall, peak = run_measured(cmd, log)
    shutil.rmtree(out, ignore_errors=True)
    found = re.search(r" in ([0-9.]+) s \(", log.read_text(encoding="utf-8"))
    if rc != 0 or found is None:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {rc}):\n{tail(log)}")
    # The line rounds to 0.1 s: a tiny corpus can read 0.0, which half the step bounds.
    return {"seconds": max(float(found.group(1)), 0.05), "wall_s": wall, "peak_rss_mb": peak}


def run(ctx: Context) -> list[Figure]:
    launcher = _mpiexec()
    mb = ctx.corpus.stat().st_size / 1e6
    figures = []
    if launcher is None:
        ctx.notes.append(
            "preprocess: no mpiexec (pip install mpich): the 1 vs 2 ranks figure is skipped"
        )
    else:
        speed: dict[int, list[dict[str, float]]] = {1: [], 2: []}
        # Interleaved, so a change in the machine's load hits both sides alike.
        for repeat in range(ctx.sizes.repeats + 1):
            for ranks in (1, 2):
                run = preprocess_run(ctx.corpus, ctx.work / f"pre-{ranks}", ranks, launcher)
                if repeat:  # the first round warms the page cache and the imports
                    speed[ranks].append(run)
        figures.append(
            Figure(
                "preprocess",
                f"preprocess of the dev corpus ({mb:.1f} MB): 2 MPI ranks vs 1 (in-command time)",
                "MB/s",
                Stats.of([mb / r["seconds"] for r in speed[2]]),
                Stats.of([mb / r["seconds"] for r in speed[1]]),
                "project/baseline",
                None,
                peak_rss_mb={
                    "project": max(r["peak_rss_mb"] for r in speed[2]),
                    "baseline": max(r["peak_rss_mb"] for r in speed[1]),
                },
                notes=["the seconds are the command's own (summary line), .1 s resolution"],
                extra={
                    "wall_mb_per_s": {
                        str(k): Stats.of([mb / r["wall_s"] for r in v]).median
                        for k, v in speed.items()
                    }
                },
            )
        )
    peaks = {}
    for size in ctx.sizes.corpus_mb:
        corpus = ctx.work / f"demo-{size:g}MB.txt"
        demo_corpus.write_corpus(corpus, megabytes=size, seed=0)
        peaks[size] = preprocess_run(corpus, ctx.work / f"pre-{size:g}MB", 1, None)
        corpus.unlink()
    small, big = ctx.sizes.corpus_mb
    figures.append(
        Figure(
            "preprocess_memory",
            f"peak RSS of a 1-rank preprocess of {big:g} MB vs {small:g} MB of demo corpus",
            "MB",
            Stats.of([peaks[big]["peak_rss_mb"]]),
            Stats.of([peaks[small]["peak_rss_mb"]]),
            "project/baseline",
            1.2,
            goal="at_most",
            notes=["one run each"],
            extra={f"{k:g}MB_s": v["seconds"] for k, v in peaks.items()},
        )
    )
    return figures
