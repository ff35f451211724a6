"""Command: how much faster the project is than the lecture's way (and than the network a PyTorch
user would write), figure by figure, as ratios.

    python -m hpc_rnn.bench [--quick] [--out DIR] [--only NAMES] [--device auto|cpu|cuda]

Each figure sets the project against a baseline measured in the same run: the median of several
timed repeats after a warm-up, with min and max, and the peak RSS of a fresh process that did
only that side. Writes DIR/bench.json (figures, data-format sizes, machine), DIR/bench.md (the
table) and DIR/bench.png (ratios against targets), and prints the table. Nothing here passes or
fails: a target not met is a finding. Where the fair choice was unclear, the baseline got the
cheaper one. The dev corpus is HPC_RNN_DEV_CORPUS, else ../shared/corpora/dev/ beside the
checkout, else a generated demo corpus (and the notes say so).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from hpc_rnn import atomic
from hpc_rnn.bench import (
    data_format,
    data_parallel,
    generation,
    input_pipeline,
    peer_throughput,
    peer_time_to_quality,
    preprocess,
    time_to_quality,
    train_throughput,
)
from hpc_rnn.bench.harness import (
    FULL,
    LOADED,
    QUICK,
    TINY,
    Context,
    Figure,
    Sizes,
    dev_corpus,
    machine,
    preprocessed,
)
from hpc_rnn.bench.report import markdown, plot, ratio_text
from hpc_rnn.cli import Parser, UserError, command_parser, run_main, say
from hpc_rnn.distributed import pick_device

# In the order they run: input_pipeline reuses train_throughput's rate, time_to_quality its step
# rate for the seed run's validation interval.
RUNNERS: dict[str, Callable[[Context], list[Figure]]] = {
    "train_throughput": train_throughput.run,
    "peer_throughput": peer_throughput.run,
    "input_pipeline": input_pipeline.run,
    "generation": generation.run,
    "data_format": data_format.run,
    "preprocess": preprocess.run,
    "data_parallel": data_parallel.run,
    "time_to_quality": time_to_quality.run,
    "peer_time_to_quality": peer_time_to_quality.run,
}
FIGURES = tuple(RUNNERS)


def run_bench(out: Path, names: list[str], device: str, sizes: Sizes, mode: str) -> str:
    """Run the figures `names`, write bench.json, bench.md and bench.png; returns the table."""
    started = time.perf_counter()
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    corpus, note = dev_corpus(cache, sizes)
    before = machine(device)
    with tempfile.TemporaryDirectory(prefix="work-", dir=out) as work:
        ctx = Context(preprocessed(corpus, cache), corpus, device, sizes, Path(work), out)
        if note:
            ctx.notes.append(note)
        if before["load_average"][0] > LOADED:
            ctx.notes.append(
                f"load average {before['load_average'][0]:.2f} at the start: other work shared the cores"
            )
        for name in names:
            say(f"bench: {name} ...")
            began = time.perf_counter()
            for figure in RUNNERS[name](ctx):
                ctx.figures[figure.name] = figure
                say(f"bench: {figure.name}: {ratio_text(figure)}")
            say(f"bench: {name} took {time.perf_counter() - began:.0f} s")
    report = {
        "mode": mode,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": time.perf_counter() - started,
        "corpus": str(corpus),
        "machine": before,
        "load_average_end": os.getloadavg(),
        "figures": [f.to_dict() for f in ctx.figures.values()],
        "data_format": ctx.data_format,
        "notes": ctx.notes,
    }
    atomic.write_json(out / "bench.json", report)
    table = markdown(report, list(ctx.figures.values()))
    atomic.write_text(out / "bench.md", table)
    plot(out / "bench.png", list(ctx.figures.values()), report)
    return table


def build_parser() -> Parser:
    parser = command_parser("hpc_rnn.bench", __doc__)
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes, fewer repeats (minutes)"
    )
    parser.add_argument(
        "--out",
        default="runs/bench",
        help="directory for bench.json/.md/.png (default: runs/bench)",
    )
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated figures to run (default all): {','.join(FIGURES)}",
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="where the figures run; auto: a GPU if there is one (default: auto)",
    )
    # The tests' sizes: seconds per figure, figures meaningless.
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        args = build_parser().parse_args(argv)
        names = [n.strip() for n in args.only.split(",") if n.strip()] or list(FIGURES)
        unknown = sorted(set(names) - set(FIGURES))
        if unknown:
            raise UserError(
                f"--only: unknown figure {', '.join(unknown)}; choose from {','.join(FIGURES)}"
            )
        device = pick_device(args.device).type
        # Killed, the bench unwinds: its training subprocess is stopped, its scratch removed.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
        sizes, mode = (
            (TINY, "tiny") if args.tiny else (QUICK, "quick") if args.quick else (FULL, "full")
        )
        print(run_bench(Path(args.out), [n for n in FIGURES if n in names], device, sizes, mode))
        return 0

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
