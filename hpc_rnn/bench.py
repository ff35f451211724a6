"""Command: how much faster the project is than the lecture's way, figure by figure, as ratios.

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
import dataclasses
import itertools
import multiprocessing
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hpc_rnn import atomic, demo_corpus, metrics, shards
from hpc_rnn.cli import UserError, run_main
from hpc_rnn.config import PRESETS, ModelConfig, TrainConfig
from hpc_rnn.data import WindowPlan
from hpc_rnn.distributed import World, pick_device
from hpc_rnn.generate import generate
from hpc_rnn.heap import keep_freed_memory
from hpc_rnn.model import RecurrentLM
from hpc_rnn.train import AUTO_BATCH, EXIT_STOPPED, make_optimizer, parse_config, train_step
from hpc_rnn.vocab import load_vocab

ROOT = Path(__file__).resolve().parents[1]
DEV_CORPUS = ROOT.parent / "shared" / "corpora" / "dev" / "mm13000_a-f_mastercook.txt"
FIGURES = (
    "train_throughput",
    "input_pipeline",
    "generation",
    "data_format",
    "preprocess",
    "data_parallel",
    "time_to_quality",
)
LOADED = 1.2  # a load average above this when measuring: other work shares the cores


@dataclass(frozen=True)
class Sizes:
    """How much work each figure does: full, --quick, and the seconds-long sizes of the tests."""

    repeats: int  # timed repeats per side, after one untimed warm-up
    train_steps: int  # project training steps per repeat
    reference_steps: int  # reference training steps per repeat (each is ~10x slower)
    budget_s: float  # time_to_quality: training seconds T of the seed preset
    seed_val_every: int  # steps between validations of the seed run
    default_val_every: int  # ... of the default run: how finely "reached L" is timed
    val_windows: int  # held-out windows per validation, the same for both runs
    gen_words: int  # generation: words per recipe, project side (32 recipes at once)
    reference_words: int  # ... baseline side (one recipe)
    pipeline_batches: int  # input_pipeline: WindowPlan.batch calls per repeat
    dp_steps: int  # data_parallel: steps per run; the first log interval is warm-up
    dp_log_every: int
    corpus_mb: tuple[float, float]  # preprocess memory: the small and the big demo corpus
    format_windows: int  # data_format: explicit windows written and read (0: all)
    fallback_mb: float  # size of the demo corpus that stands in for a missing dev corpus


FULL = Sizes(
    repeats=7,
    train_steps=20,
    reference_steps=3,
    budget_s=600.0,
    seed_val_every=250,
    default_val_every=5,
    val_windows=2000,
    gen_words=600,
    reference_words=300,
    pipeline_batches=2000,
    dp_steps=60,
    dp_log_every=10,
    corpus_mb=(100.0, 1000.0),
    format_windows=0,
    fallback_mb=8.5,
)
QUICK = dataclasses.replace(
    FULL,
    repeats=3,
    train_steps=5,
    reference_steps=1,
    budget_s=40.0,
    seed_val_every=50,
    gen_words=200,
    reference_words=100,
    pipeline_batches=300,
    dp_steps=12,
    dp_log_every=4,
    corpus_mb=(10.0, 50.0),
    format_windows=200_000,
)
TINY = dataclasses.replace(
    QUICK,
    repeats=2,
    train_steps=2,
    budget_s=2.0,
    seed_val_every=5,
    default_val_every=2,
    val_windows=200,
    gen_words=20,
    reference_words=10,
    pipeline_batches=20,
    dp_steps=4,
    dp_log_every=2,
    corpus_mb=(0.3, 1.0),
    format_windows=2000,
    fallback_mb=0.3,
)


@dataclass(frozen=True)
class Stats:
    median: float
    min: float
    max: float
    samples: list[float]

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        return cls(statistics.median(samples), min(samples), max(samples), list(samples))

    def scaled(self, factor: float) -> Stats:
        return Stats.of([s * factor for s in self.samples])


@dataclass
class Figure:
    name: str
    what: str  # one line: what is set against what
    unit: str  # of project and baseline
    project: Stats
    baseline: Stats
    ratio_of: str  # "project/baseline" (rates, sizes) or "baseline/project" (times)
    target: float | None  # None: reported, no target
    goal: str = "at_least"  # or "at_most": which side of the target the ratio should be on
    bound: str = ""  # "<" when the project side is only a bound, so the ratio is one too
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        p, b = self.project.median, self.baseline.median
        return p / b if self.ratio_of == "project/baseline" else b / p

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.ratio >= self.target if self.goal == "at_least" else self.ratio <= self.target

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ratio": self.ratio, "met": self.met}


@dataclass
class Context:
    data: Path  # the dev corpus, preprocessed
    corpus: Path
    device: str  # "cpu" or "cuda", as the commands take it
    sizes: Sizes
    work: Path  # scratch, removed at the end
    out: Path
    figures: dict[str, Figure] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    data_format: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Measuring


def measure(
    block: Callable[[], float], *, repeats: int, device: torch.device, warmup: int = 1
) -> Stats:
    """Units per second of `repeats` timed calls of `block` (which returns the units it did),
    after `warmup` untimed calls that pay for first-call allocation and kernel selection."""
    for _ in range(warmup):
        block()
    rates = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        units = block()
        _sync(device)
        rates.append(units / (time.perf_counter() - start))
    return Stats.of(rates)


def _sync(device: torch.device) -> None:
    # CUDA kernels run asynchronously: without this the clock stops before the work does.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def isolated(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """fn(*args) in a fresh interpreter, with that process's peak RSS as `peak_rss_mb`: each side
    gets a heap of its own, and a high-water mark not raised by the other side's work."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_with_peak_rss, fn, *args).result()


def _with_peak_rss(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    keep_freed_memory()  # as the commands run, for both sides alike
    result = fn(*args)
    result["peak_rss_mb"] = _rss_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return result


def _rss_mb(maxrss: int) -> float:
    # getrusage counts kilobytes on Linux and bytes on macOS.
    return maxrss * (1 if sys.platform == "darwin" else 1024) / 1e6


def run_measured(cmd: list[str], log: Path) -> tuple[int, float, float]:
    """Run a command to its end: (exit code, wall seconds, its peak RSS in MB).

    os.wait4 gives this one child's rusage; RUSAGE_CHILDREN would be the maximum over every
    child waited for so far, so a small run after a big one would report the big one's peak."""
    with open(log, "w", encoding="utf-8") as f:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_child_env(), stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait
    return proc.returncode, wall, _rss_mb(usage.ru_maxrss)


def _child_env() -> dict[str, str]:
    # The commands import this checkout, installed or not.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _tail(path: Path, chars: int = 2000) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-chars:]


# ---------------------------------------------------------------------------------------------
# Figure 1: training throughput, and 4: the input pipeline (both run in fresh processes)


def _seed_setup(data: str, device: str) -> tuple[TrainConfig, Any, torch.device]:
    """The lecture's network and optimiser as the project's `seed` preset defines them."""
    cfg = parse_config(["--data", data, "--run", "unused", "--preset", "seed"])
    return cfg, load_vocab(data), pick_device(device)


def _seed_plan(data: str, cfg: TrainConfig, window: int) -> WindowPlan:
    return WindowPlan(
        shards.load_stream(data, "train"),
        window=window,
        objective=cfg.objective,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
    )


def project_training(data: str, device: str, sizes: Sizes) -> dict[str, Any]:
    """Windows/s of the training step as train.py takes it: WindowPlan batch, RecurrentLM,
    objective_loss, the seed preset's optimiser."""
    cfg, vocab, dev = _seed_setup(data, device)
    plan = _seed_plan(data, cfg, vocab.window)
    torch.manual_seed(cfg.seed)
    model = RecurrentLM(vocab.n_words, cfg.model).to(dev)
    optimizer = make_optimizer(cfg, model)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    world = World(0, 1, 0, dev)
    batches = itertools.chain.from_iterable(plan.batches(e) for e in itertools.count())

    def steps() -> float:
        done = 0
        for _ in range(sizes.train_steps):
            _, batch = next(batches)
            train_step(cfg, model, model, optimizer, batch, world)
            done += len(batch.inputs)
        return done

    return {"stats": measure(steps, repeats=sizes.repeats, device=dev)}


def reference_training(data: str, device: str, sizes: Sizes) -> dict[str, Any]:
    """Windows/s of the lecture's way: every window written out as X [N, 50] and y [N], and per
    step a dense float one-hot batch [128, 50, V] built in NumPy, into nn.LSTM(V, 256) + Linear."""
    cfg, vocab, dev = _seed_setup(data, device)
    stream = shards.load_stream(data, "train")
    window, n_words, b = vocab.window, vocab.n_words, cfg.batch_size
    # The stream's uint16 rather than the int64 of np.array(list): the cheaper choice.
    x_all = np.lib.stride_tricks.sliding_window_view(stream[:-1], window).copy()
    y_all = stream[window:]
    torch.manual_seed(cfg.seed)
    lstm = nn.LSTM(n_words, cfg.model.hidden, batch_first=True).to(dev)
    dense = nn.Linear(cfg.model.hidden, n_words).to(dev)
    optimizer = make_optimizer(cfg, nn.ModuleList([lstm, dense]))
    order = np.random.default_rng(cfg.seed).permutation(len(x_all))
    starts = itertools.cycle(range(0, len(order) - b + 1, b))
    rows, cols = np.arange(b)[:, None], np.arange(window)[None, :]

    def steps() -> float:
        for _ in range(sizes.reference_steps):
            idx = order[(s := next(starts)) : s + b]
            onehot = np.zeros((b, window, n_words), np.float32)
            onehot[rows, cols, x_all[idx]] = 1.0
            inputs = torch.from_numpy(onehot).to(dev)
            targets = torch.from_numpy(y_all[idx].astype(np.int64)).to(dev)
            out, _ = lstm(inputs)
            loss = F.cross_entropy(dense(out[:, -1]), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return sizes.reference_steps * b

    return {"stats": measure(steps, repeats=sizes.repeats, device=dev)}


def bench_train_throughput(ctx: Context) -> list[Figure]:
    project = isolated(project_training, str(ctx.data), ctx.device, ctx.sizes)
    baseline = isolated(reference_training, str(ctx.data), ctx.device, ctx.sizes)
    return [
        Figure(
            "train_throughput",
            "the seed preset's training step (RecurrentLM, WindowPlan, objective_loss, SGD) vs "
            "dense NumPy one-hot batches into nn.LSTM(V, 256) + Linear, batch 128, objective last",
            "windows/s",
            project["stats"],
            baseline["stats"],
            "project/baseline",
            10.0,
            peak_rss_mb={"project": project["peak_rss_mb"], "baseline": baseline["peak_rss_mb"]},
        )
    ]


def pipeline_rate(data: str, sizes: Sizes) -> dict[str, Any]:
    """Windows/s that WindowPlan.batch cuts for the seed preset, position after position."""
    cfg, vocab, dev = _seed_setup(data, "cpu")
    plan = _seed_plan(data, cfg, vocab.window)
    positions = itertools.cycle(range(0, plan.n_windows, plan.global_batch))

    def batches() -> float:
        return sum(
            len(plan.batch(0, next(positions)).inputs) for _ in range(sizes.pipeline_batches)
        )

    return {"stats": measure(batches, repeats=sizes.repeats, device=dev)}


def bench_input_pipeline(ctx: Context) -> list[Figure]:
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


# ---------------------------------------------------------------------------------------------
# Figure 3: generation


def generation_rate(
    data: str, device: str, context: str, batch: int, max_words: int, repeats: int
) -> dict[str, Any]:
    """Words/s of generate() as the generate command counts them (seed words included), with a
    randomly initialised model of the data's vocabulary: it ends no recipe early, so every
    recipe is `max_words` long and both sides do the same work per word."""
    vocab = load_vocab(data)
    dev = pick_device(device)
    torch.manual_seed(0)
    model = RecurrentLM(vocab.n_words, ModelConfig()).to(dev)

    def recipes() -> float:
        done = generate(
            model, vocab, n=batch, context=context, max_words=max_words, batch=batch, device=dev
        )
        return sum(len(r) for r in done)

    return {"stats": measure(recipes, repeats=repeats, device=dev)}


def bench_generation(ctx: Context) -> list[Figure]:
    s = ctx.sizes
    project = isolated(
        generation_rate, str(ctx.data), ctx.device, "carry", 32, s.gen_words, s.repeats
    )
    baseline = isolated(
        generation_rate, str(ctx.data), ctx.device, "window", 1, s.reference_words, s.repeats
    )
    return [
        Figure(
            "generation",
            "generate() with carried state, 32 recipes at once vs the lecture's loop: a full "
            "50-word window per word, one recipe at a time (same model, dev vocabulary)",
            "words/s",
            project["stats"],
            baseline["stats"],
            "project/baseline",
            50.0,
            peak_rss_mb={"project": project["peak_rss_mb"], "baseline": baseline["peak_rss_mb"]},
            notes=["the baseline runs RecurrentLM's row gather, not a dense one-hot: cheaper"],
        )
    ]


# ---------------------------------------------------------------------------------------------
# The data format: token stream vs explicit windows


def format_rates(data: str, work: str, n_windows: int, repeats: int) -> dict[str, Any]:
    """Read speed of load_stream (checksums included) vs an HDF5 file of explicit uint16
    windows and targets, written once here, contiguous and uncompressed (the cheaper read)."""
    stream = shards.load_stream(data, "train")
    window = load_vocab(data).window
    every = np.lib.stride_tricks.sliding_window_view(stream[:-1], window)
    n = min(n_windows or len(every), len(every))
    path = Path(work) / "explicit-windows.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("windows", data=every[:n])
        f.create_dataset("targets", data=stream[window : window + n])
    manifest = shards.read_manifest(data)
    stream_bytes = sum(
        (Path(data) / s["file"]).stat().st_size for s in manifest["shards"] if s["split"] == "train"
    )
    stream_windows = manifest["splits"]["train"]["n_windows"]
    cpu = torch.device("cpu")

    def read_stream() -> float:
        shards.load_stream(data, "train")
        return stream_windows

    def read_explicit() -> float:
        with h5py.File(path, "r") as f:
            windows, _ = f["windows"][...], f["targets"][...]
        return len(windows)

    stream_rate = measure(read_stream, repeats=repeats, device=cpu)
    explicit_rate = measure(read_explicit, repeats=repeats, device=cpu)
    explicit_bytes = path.stat().st_size
    path.unlink()
    return {
        "stream": stream_rate,
        "explicit": explicit_rate,
        "stream_bytes": stream_bytes,
        "stream_windows": stream_windows,
        "explicit_bytes": explicit_bytes,
        "explicit_windows": n,
        "explicit_bytes_all": stream_windows * (window + 1) * stream.dtype.itemsize,
    }


def bench_data_format(ctx: Context) -> list[Figure]:
    found = isolated(
        format_rates, str(ctx.data), str(ctx.work), ctx.sizes.format_windows, ctx.sizes.repeats
    )
    stream, explicit = found["stream"], found["explicit"]
    mb_s = {
        "stream": stream.scaled(found["stream_bytes"] / found["stream_windows"] / 1e6).median,
        "explicit": explicit.scaled(
            found["explicit_bytes"] / found["explicit_windows"] / 1e6
        ).median,
    }
    ctx.data_format = {
        "train_shard_bytes": found["stream_bytes"],
        "explicit_windows_bytes": found["explicit_bytes_all"],
        "size_ratio": found["explicit_bytes_all"] / found["stream_bytes"],
        "train_windows": found["stream_windows"],
        "explicit_windows_read": found["explicit_windows"],
        "read_mb_per_s": mb_s,
        "read_windows_per_s": {
            "stream": dataclasses.asdict(stream),
            "explicit": dataclasses.asdict(explicit),
        },
    }
    return []


# ---------------------------------------------------------------------------------------------
# Figure 5: preprocessing


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
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {rc}):\n{_tail(log)}")
    # The line rounds to 0.1 s: a tiny corpus can read 0.0, which half the step bounds.
    return {"seconds": max(float(found.group(1)), 0.05), "wall_s": wall, "peak_rss_mb": peak}


def bench_preprocess(ctx: Context) -> list[Figure]:
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


# ---------------------------------------------------------------------------------------------
# Training commands run to a condition: figures 2 and 6


def train_until(
    ctx: Context, name: str, args: list[str], stop: Callable[[list[dict]], bool], limit_s: float
) -> list[dict[str, Any]]:
    """Run `python -m hpc_rnn.train` (or a launcher of it, `args` starting with "-m ...") until it
    ends or `stop(records)` holds, then SIGTERM it: it checkpoints and exits EXIT_STOPPED.
    Returns its metrics records; its metrics file is kept as DIR/runs/<name>.metrics.jsonl."""
    run = ctx.work / name
    log = ctx.work / f"{name}.log"
    cmd = [
        sys.executable,
        *args,
        "--data",
        str(ctx.data),
        "--run-dir",
        str(run),
        "--device",
        ctx.device,
        # A bench inside a Slurm job must not requeue that job when it stops a run.
        "--no-requeue",
        "--resume",
        "never",
    ]
    deadline = time.monotonic() + limit_s
    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_child_env(), stdout=f, stderr=subprocess.STDOUT)
        try:
            while proc.poll() is None:
                time.sleep(0.25)
                if stop(_records(run)) or time.monotonic() > deadline:
                    proc.send_signal(signal.SIGTERM)
                    break
            rc = proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
    if rc not in (0, EXIT_STOPPED):
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {rc}):\n{_tail(log)}")
    records = _records(run)
    kept = ctx.out / "runs"
    kept.mkdir(parents=True, exist_ok=True)
    if records:
        shutil.copyfile(run / metrics.METRICS_FILE, kept / f"{name}.metrics.jsonl")
    shutil.rmtree(run, ignore_errors=True)  # checkpoints: tens of MB each
    return records


def _records(run: Path) -> list[dict[str, Any]]:
    path = run / metrics.METRICS_FILE
    return metrics.read(path) if path.exists() else []


def _trained_s(records: list[dict[str, Any]]) -> float:
    return max((r.get("train_s", 0.0) for r in records), default=0.0)


def _validations(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if "val_loss" in r]


def bench_time_to_quality(ctx: Context) -> list[Figure]:
    s, budget = ctx.sizes, ctx.sizes.budget_s
    train = ["-m", "hpc_rnn.train", "--val-windows", str(s.val_windows)]
    # Wall-clock guard: validation and checkpoints are not training time, but take some.
    limit = 3 * budget + 180
    seed = train_until(
        ctx,
        "seed",
        [*train, "--preset", "seed", "--val-every-steps", str(_seed_val_every(ctx))],
        lambda recs: _trained_s(recs) >= budget and bool(_validations(recs)),
        limit,
    )
    # L: the best loss validated within T (or at the first validation, should that come later).
    checked = _validations(seed)
    if not checked:
        raise RuntimeError("the seed run stopped before its first validation")
    best = min([r for r in checked if r["train_s"] <= budget] or checked[:1], key=_loss)
    target = best["val_loss"]
    default = train_until(
        ctx,
        "default",
        [*train, "--val-every-steps", str(s.default_val_every)],
        lambda recs: (
            _trained_s(recs) >= budget or any(_loss(r) <= target for r in _validations(recs))
        ),
        limit,
    )
    hit = next((r for r in _validations(default) if _loss(r) <= target), None)
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


def _loss(record: dict[str, Any]) -> float:
    return record["val_loss"]


def _seed_val_every(ctx: Context) -> int:
    """Steps between the seed run's validations: about 20 in its budget when train_throughput
    measured its step rate (a GPU takes 100x the steps of a CPU), else the sizes' fixed count."""
    trained = ctx.figures.get("train_throughput")
    if trained is None:
        return ctx.sizes.seed_val_every
    steps = trained.project.median / PRESETS["seed"]["batch_size"] * ctx.sizes.budget_s
    return max(1, round(steps / 20))


def bench_data_parallel(ctx: Context) -> list[Figure]:
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


# ---------------------------------------------------------------------------------------------
# Set-up: the dev corpus, preprocessed once


def dev_corpus(cache: Path, sizes: Sizes) -> tuple[Path, str]:
    """The dev corpus, or a demo corpus written into `cache` when it is missing (and a note)."""
    path = Path(os.environ.get("HPC_RNN_DEV_CORPUS", DEV_CORPUS))
    if path.is_file():
        return path, ""
    stand_in = cache / f"demo-{sizes.fallback_mb:g}MB.txt"
    if not stand_in.is_file():
        demo_corpus.write_corpus(stand_in, megabytes=sizes.fallback_mb, seed=0)
    return (
        stand_in,
        f"dev corpus {path} not found: a {sizes.fallback_mb:g} MB demo corpus stands in",
    )


def preprocessed(corpus: Path, cache: Path) -> Path:
    """The corpus preprocessed with the default settings, kept in `cache` by its content hash."""
    data = cache / f"data-{shards.file_sha256(corpus)[:12]}"
    if not (data / shards.MANIFEST_FILE).is_file():
        cmd = [
            sys.executable,
            "-m",
            "hpc_rnn.preprocess",
            str(corpus),
            "--out",
            str(data),
            "--overwrite",
        ]
        rc, _, _ = run_measured(cmd, cache / "preprocess.log")
        if rc != 0:
            raise RuntimeError(f"preprocessing {corpus} failed:\n{_tail(cache / 'preprocess.log')}")
    return data


def machine(device: str) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "device": device,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else cpu,
        "load_average": os.getloadavg(),
    }


RUNNERS: dict[str, Callable[[Context], list[Figure]]] = {
    "train_throughput": bench_train_throughput,
    "input_pipeline": bench_input_pipeline,
    "generation": bench_generation,
    "data_format": bench_data_format,
    "preprocess": bench_preprocess,
    "data_parallel": bench_data_parallel,
    "time_to_quality": bench_time_to_quality,
}


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
            print(f"bench: {name} ...", flush=True)
            began = time.perf_counter()
            for figure in RUNNERS[name](ctx):
                ctx.figures[figure.name] = figure
                print(f"bench: {figure.name}: {_ratio_text(figure)}", flush=True)
            print(f"bench: {name} took {time.perf_counter() - began:.0f} s", flush=True)
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


# ---------------------------------------------------------------------------------------------
# Writing


def _num(x: float) -> str:
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.3g}"


def _side(stats: Stats, unit: str, bound: str = "") -> str:
    middle = f"{bound}{_num(stats.median)} {unit}"
    if stats.min == stats.max:
        return middle
    return f"{middle} ({_num(stats.min)}–{_num(stats.max)})"


def _ratio_text(f: Figure) -> str:
    return f"{f.bound}{_num(f.ratio)}×"


def _target_text(f: Figure) -> str:
    if f.target is None:
        return "report"
    return f"{'≥' if f.goal == 'at_least' else '≤'} {f.target:g}×"


def _met_text(f: Figure) -> str:
    return {None: "–", True: "yes", False: "no"}[f.met]


def markdown(report: dict[str, Any], figures: list[Figure]) -> str:
    m = report["machine"]
    bound = {"<": ">"}  # a ratio below a bound means the project's time is above one
    lines = [
        f"# Benchmarks ({report['mode']}, {report['date']})",
        "",
        f"{m['device_name']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
        f"device {m['device']}; load average {m['load_average'][0]:.2f} at the start, "
        f"{report['load_average_end'][0]:.2f} at the end; {report['seconds']:.0f} s in all.",
        "",
        "| figure | project | baseline | ratio | target | met? | peak RSS project / baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        rss = " / ".join(
            f"{f.peak_rss_mb[k]:.0f} MB" for k in ("project", "baseline") if k in f.peak_rss_mb
        )
        lines.append(
            f"| `{f.name}` | {_side(f.project, f.unit, bound.get(f.bound, ''))} | "
            f"{_side(f.baseline, f.unit)} | {_ratio_text(f)} | {_target_text(f)} | {_met_text(f)} | "
            f"{rss or '–'} |"
        )
    lines += ["", "Project and baseline: median of the repeats (min–max)."]
    for f in figures:
        lines.append(f"- `{f.name}`: {f.what}" + "".join(f"; {n}" for n in f.notes) + ".")
    fmt = report["data_format"]
    if fmt:
        lines += [
            "",
            "## Data format: token stream vs explicit windows",
            "",
            "| | token stream (shards) | explicit uint16 windows + targets |",
            "|---|---|---|",
            f"| bytes, train split | {fmt['train_shard_bytes']:,} | {fmt['explicit_windows_bytes']:,} "
            f"({fmt['size_ratio']:.0f}×, computed) |",
            f"| read MB/s | {_num(fmt['read_mb_per_s']['stream'])} | {_num(fmt['read_mb_per_s']['explicit'])} |",
            f"| read windows/s | {_num(fmt['read_windows_per_s']['stream']['median'])} | "
            f"{_num(fmt['read_windows_per_s']['explicit']['median'])} "
            f"({fmt['explicit_windows_read']:,} windows) |",
        ]
    if report["notes"]:
        lines += ["", "Notes:", *(f"- {n}" for n in report["notes"])]
    return "\n".join(lines) + "\n"


def plot(path: Path, figures: list[Figure], report: dict[str, Any]) -> None:
    """Bars of the ratios on a log scale, each with its target as a black tick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.6 * len(figures) + 1.5))
    names = [f.name for f in figures]
    colors = [{None: "0.6", True: "tab:green", False: "tab:red"}[f.met] for f in figures]
    # Bars grow from 1x, to the right for a gain and to the left for a loss.
    ax.barh(names, [f.ratio - 1 for f in figures], left=1, color=colors)
    ax.axvline(1, color="0.3", linewidth=0.8)
    for i, f in enumerate(figures):
        if f.target is not None:
            ax.plot([f.target, f.target], [i - 0.4, i + 0.4], color="black", linewidth=2)
        ax.text(f.ratio, i, f" {_ratio_text(f)}", va="center")
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("ratio (project vs baseline); black: target")
    ax.set_title(
        f"hpc_rnn bench ({report['mode']}, {report['machine']['device_name']})", fontsize=9
    )
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hpc_rnn.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes, fewer repeats (minutes)"
    )
    parser.add_argument("--out", default="runs/bench", help="directory for bench.json/.md/.png")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated figures to run (default all): {','.join(FIGURES)}",
    )
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    # The tests' sizes: seconds per figure, figures meaningless.
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    def body() -> int:
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
