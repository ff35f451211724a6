"""What every figure of the bench stands on: the sizes of a run, a figure and its statistics,
timing in the process or in a fresh one with its peak RSS, commands run to their end or until a
condition, and the dev corpus, preprocessed once."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hpc_rnn import atomic, demo_corpus, metrics, shards
from hpc_rnn.heap import keep_freed_memory
from hpc_rnn.train import EXIT_STOPPED

ROOT = Path(__file__).resolve().parents[2]  # the checkout: commands run from here
DEV_CORPUS = ROOT.parent / "shared" / "corpora" / "dev" / "mm13000_a-f_mastercook.txt"
LOADED = 1.2  # a load average above this when measuring: other work shares the cores


@dataclass(frozen=True)
class Sizes:
    """How much work each figure does: full, --quick, and the seconds-long sizes of the tests."""

    repeats: int  # timed repeats per side, after one untimed warm-up
    train_steps: int  # project training steps per repeat
    reference_steps: int  # reference training steps per repeat (fewer: each is slower)
    peer_rounds: int  # peer_throughput: fresh processes a side, in alternating order
    budget_s: float  # time_to_quality: training seconds T of the seed preset
    seed_val_every: int  # steps between validations of the seed run
    default_val_every: int  # ... of the default run: how finely "reached L" is timed
    recipe_val_every: int  # peer_time_to_quality: steps between the project's validations
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
    peer_rounds=2,
    budget_s=600.0,
    seed_val_every=250,
    default_val_every=5,
    recipe_val_every=100,
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
    peer_rounds=1,
    budget_s=40.0,
    seed_val_every=50,
    recipe_val_every=20,
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
    recipe_val_every=2,
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


def measure(
    block: Callable[[], float], *, repeats: int, device: torch.device, warmup: int = 1
) -> Stats:
    """Units per second of `repeats` timed calls of `block` (which returns the units it did),
    after `warmup` untimed calls that pay for first-call allocation and kernel selection."""
    for _ in range(warmup):
        block()
    rates = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        units = block()
        sync(device)
        rates.append(units / (time.perf_counter() - start))
    return Stats.of(rates)


def sync(device: torch.device) -> None:
    # CUDA kernels run asynchronously: without this the clock stops before the work does.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def isolated(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """fn(*args) in a fresh interpreter, with that process's peak RSS as `peak_rss_mb`: each side
    gets a heap of its own, and a high-water mark not raised by the other side's work."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_with_peak_rss, fn, *args).result()


def alternate(
    sides: dict[str, Callable[[], dict[str, Any]]], rounds: int
) -> dict[str, list[dict[str, Any]]]:
    """Each side's results, every side called once a round, in reverse order every other round
    (A B, B A, A B, ...): a machine whose speed drifts during the run slows both sides alike."""
    names = list(sides)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            results[name].append(sides[name]())
    return results


def pooled(results: list[dict[str, Any]]) -> tuple[Stats, float]:
    """The samples of several `isolated` measurements of one side as one Stats, and the highest
    of their peak RSS."""
    samples = [x for result in results for x in result["stats"].samples]
    return Stats.of(samples), max(result["peak_rss_mb"] for result in results)


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


def tail(path: Path, chars: int = 2000) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-chars:]


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
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {rc}):\n{tail(log)}")
    records = _records(run)
    kept = ctx.out / "runs"
    kept.mkdir(parents=True, exist_ok=True)
    if records:
        shutil.copyfile(run / metrics.METRICS_FILE, kept / f"{name}.metrics.jsonl")
    shutil.rmtree(run, ignore_errors=True)  # checkpoints: tens of MB each
    return records


def train_to_loss(
    ctx: Context, name: str, args: list[str], key: str, target: float, limit_s: float
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """`train_until` the run's validated `key` is at most `target` or its training seconds
    reach the sizes' budget: its records, and its first validation at or under `target`
    (None when it ran out of budget first)."""

    def reached(records: list[dict[str, Any]]) -> dict[str, Any] | None:
        return next((r for r in records if key in r and r[key] <= target), None)

    budget = ctx.sizes.budget_s
    records = train_until(
        ctx,
        name,
        args,
        lambda recs: trained_s(recs) >= budget or reached(recs) is not None,
        limit_s,
    )
    return records, reached(records)


def trained_s(records: list[dict[str, Any]]) -> float:
    """The training seconds a run's metrics records have reached."""
    return max((r.get("train_s", 0.0) for r in records), default=0.0)


def _records(run: Path) -> list[dict[str, Any]]:
    path = run / metrics.METRICS_FILE
    return metrics.read(path) if path.exists() else []


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
    data = cache / f"data-{atomic.file_sha256(corpus)[:12]}"
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
            raise RuntimeError(f"preprocessing {corpus} failed:\n{tail(cache / 'preprocess.log')}")
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
