"""Command: train the recipe LSTM, with checkpoint-restart that loses nothing.

    python -m hpc_rnn.train --data DATA --run RUN [--preset seed] [--epochs N ...]

One process per GPU (or one on CPU); rank, world size and device come from
`distributed.init_world`, so the same command runs alone, under torchrun, and under srun.
Only rank 0 writes checkpoints, metrics and plots.

Stopping: on any of `--stop-signals` the handler only sets a flag; the ranks agree on it at a
step boundary, rank 0 writes a checkpoint, and every rank exits with EXIT_STOPPED (75). Under
Slurm rank 0 first requeues the job, which then resumes from that checkpoint (`--resume auto`).
"""

from __future__ import annotations

import dataclasses
import math
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from hpc_rnn import atomic, checkpoint, config, metrics, shards
from hpc_rnn.cache import detach
from hpc_rnn.cli import Parser, UserError, command_parser, run_main, say
from hpc_rnn.data import Batch, RecipePlan, WindowPlan
from hpc_rnn.distributed import (
    World,
    all_min,
    all_sum,
    any_rank,
    autocast,
    barrier,
    close_world,
    init_world,
    raise_together,
    slurm_job_id,
    slurm_restart_count,
)
from hpc_rnn.loss import next_word_metrics, recipe_plan, validation_plan, window_scores
from hpc_rnn.metrics import MetricsLog, plot_curves
from hpc_rnn.model import RecurrentLM
from hpc_rnn.runlock import RunLock
from hpc_rnn.vocab import load_vocab

EXIT_STOPPED = 75  # EX_TEMPFAIL: checkpointed on a signal, run again to continue
EXIT_PEER_LOST = 69  # EX_UNAVAILABLE: another rank died; nothing new was saved
STARTS_FILE = "starts.jsonl"  # one line per start of the run: when, where, at which step, settings
# The per-rank batch that --batch-size 0 picks. A CPU step costs in proportion to the batch, so a
# small one buys more updates a second; a GPU step costs about the same at both, so a GPU takes
# the bigger. The measurements are in docs/benchmarks.md.
AUTO_BATCH = {"cpu": 32, "cuda": 128}


@dataclass
class Position:
    """Where training stands: resuming at a Position replays nothing and skips nothing."""

    step: int = 0  # optimizer steps done
    epoch: int = 0
    windows_done: int = 0  # windows of `epoch` already trained on (across all ranks)
    seconds: float = 0.0  # wall time spent in training steps, validation and saving excluded


class StopFlag:
    """Set by a stop signal; read at step boundaries (a handler must not do the work itself).

    A second Ctrl-C (SIGINT) does not wait for the step: it interrupts at once.
    """

    def __init__(self, names: str) -> None:
        self.raised: str | None = None
        self.signals: list[signal.Signals] = []
        for name in filter(None, (n.strip().upper() for n in names.split(","))):
            sig = getattr(signal, name if name.startswith("SIG") else "SIG" + name, None)
            if not isinstance(sig, signal.Signals):
                raise UserError(f"--stop-signals: unknown signal {name!r} (e.g. USR1,USR2,TERM)")
            signal.signal(sig, self._handle)
            self.signals.append(sig)

    def ignore_further(self) -> None:
        """Once the stop checkpoint is written: a repeated signal must not end the exit with a
        signal's status instead of 75 (Python restores default handlers while it shuts down,
        but leaves ignored signals ignored)."""
        for sig in self.signals:
            if sig != signal.SIGINT:
                signal.signal(sig, signal.SIG_IGN)

    def _handle(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self.raised is not None:
            raise KeyboardInterrupt
        self.raised = signal.Signals(signum).name

    def requested(self, step: int) -> bool:
        """Whether to stop at the boundary after `step`. A signal decides, whatever the step; the
        step is there for a flag that is raised at a chosen one (tests/test_train.py)."""
        return self.raised is not None

    @property
    def requeues(self) -> bool:
        """Only the job script's early warning (--signal USR1/USR2 before the time limit)
        requeues; TERM (scancel, or pre-emption, which Slurm requeues itself) and Ctrl-C stop."""
        return self.raised in ("SIGUSR1", "SIGUSR2")


class Diverged(UserError):
    """The loss or the parameters stopped being finite numbers."""


class Clock:
    """Training time: steps count; logging, validation and checkpoint writing do not."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds  # booked training time of the whole run
        self.span = 0.0  # booked since the last log line
        self.tick: float | None = time.perf_counter()  # None while paused
        self.last_save = time.monotonic()

    def pause(self) -> None:
        """Book the time since the clock last ran; a paused clock books nothing more."""
        if self.tick is not None:
            elapsed = time.perf_counter() - self.tick
            self.seconds += elapsed
            self.span += elapsed
            self.tick = None

    def resume(self) -> None:
        self.tick = time.perf_counter()

    def take_span(self) -> float:
        span, self.span = self.span, 0.0
        return span

    def saved(self) -> None:
        self.last_save = time.monotonic()
        self.resume()

    def save_due(self, minutes: float) -> bool:
        return time.monotonic() - self.last_save >= minutes * 60


class FiniteWatch:
    """The first step whose loss was not finite, kept on the device: no sync per step."""

    NONE = 1 << 62

    def __init__(self, device: torch.device) -> None:
        self.first = torch.full((), self.NONE, dtype=torch.long, device=device)

    def see(self, loss_sum: torch.Tensor, step: int) -> None:
        bad = ~torch.isfinite(loss_sum)
        self.first = torch.where(bad & (self.first == self.NONE), step, self.first)

    def check(self, model: torch.nn.Module, world: World, step: int, last_saved: int) -> None:
        """Raise Diverged on every rank if any rank saw a non-finite loss or parameter."""
        params_ok = all(bool(torch.isfinite(p).all()) for p in model.parameters())
        first = int(all_min(self.first, world))
        bad_params = any_rank([not params_ok], world)[0]
        if first == self.NONE and not bad_params:
            return
        where = f"at step {first}" if first != self.NONE else f"by step {step}"
        raise Diverged(
            f"training diverged: the loss or the weights became NaN or infinite {where}, and "
            f"nothing after step {last_saved} was saved; lower --lr (or set --clip), then run "
            "again: it resumes from the last good checkpoint"
        )


@dataclass
class Setup:
    """What a run trains with, built before its first step."""

    plan: WindowPlan | RecipePlan  # this rank's training windows, or whole recipes
    val_plan: WindowPlan | None  # this rank's held-out windows; None without a validation split
    # With --objective recipe, the held-out recipes too, every word given its recipe so far.
    val_recipes: RecipePlan | None
    model: RecurrentLM
    net: torch.nn.Module  # `model`, DDP-wrapped when distributed
    optimizer: torch.optim.Optimizer
    pos: Position  # where it starts: a resumed position or the very beginning
    horizon: int  # the planned steps, for the learning-rate schedule
    vocab_hash: str


class Saver:
    """Checkpoints at step boundaries: rank 0 writes, every rank waits for it at a barrier, and
    a model that diverged is never saved."""

    def __init__(self, cfg: config.TrainConfig, world: World, s: Setup, clock: Clock) -> None:
        self.cfg, self.world, self.setup, self.clock = cfg, world, s, clock
        self.watch = FiniteWatch(world.device)
        self.last_saved = s.pos.step

    def check_finite(self, step: int) -> None:
        self.watch.check(self.setup.model, self.world, step, self.last_saved)

    def save(self, pos: Position, val_loss: float | None = None) -> None:
        self.clock.pause()
        pos.seconds = self.clock.seconds
        self.check_finite(pos.step)
        if self.world.is_main:
            s = self.setup
            state = checkpoint_state(self.cfg, s.model, s.optimizer, pos, s.vocab_hash)
            keep = self.cfg.keep_last
            checkpoint.save(self.cfg.run, pos.step, state, val_loss=val_loss, keep_last=keep)
        barrier(self.world)  # nobody exits or requeues before the checkpoint is on disk
        self.last_saved = pos.step
        self.clock.saved()


def _duration(seconds: float) -> str:
    """H:MM:SS, the way Slurm writes times."""
    s = int(max(seconds, 0))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Reporter:
    """What a run tells its user, from rank 0 only: metrics.jsonl, the curves, the progress bar
    and the log lines. On the other ranks it stays silent."""

    def __init__(
        self, run: Path, world: World, resume_step: int, progress_s: float, tensorboard: bool
    ) -> None:
        self.run = run
        self.log = MetricsLog(run, resume_step, tensorboard) if world.is_main else None
        self.bar = tqdm(disable=True)
        self.progress_s = progress_s
        self.last_progress = -math.inf

    def start_epoch(self, pos: Position, n_windows: int) -> None:
        self.bar = tqdm(
            total=n_windows,
            initial=pos.windows_done,
            desc=f"epoch {pos.epoch}",
            unit=" win",
            disable=self.log is None or not sys.stderr.isatty(),
            leave=False,
        )

    def train(self, record: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.write(record)
            self.bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['acc']:.3f}")

    def progress(self, record: dict[str, Any], *, epoch_left_s: float, run_left_s: float) -> None:
        """A timestamped line for logs without a terminal (a Slurm job's %x-%j.out), which
        show no progress bar: at a log step, once `progress_s` have passed since the last."""
        if self.log is None or not self.bar.disable:
            return
        now = time.monotonic()
        if now - self.last_progress < self.progress_s:
            return
        self.last_progress = now
        self.say(
            f"step {record['step']} epoch {record['epoch']}: "
            f"loss {record['loss']:.4f} acc {record['acc']:.4f}, "
            f"{record['windows_per_s']:.0f} windows/s, "
            f"ETA epoch {_duration(epoch_left_s)}, run {_duration(run_left_s)}"
        )

    def validation(self, record: dict[str, Any]) -> None:
        if self.log is None:
            return
        self.log.write(record)
        where = f"epoch {record['epoch']}" if record["kind"] == "epoch" else "validation at"
        whole = (
            f"; whole recipes: loss {record['val_recipe_loss']:.4f} "
            f"ppl {record['val_recipe_ppl']:.2f}"
            if "val_recipe_loss" in record
            else ""
        )
        self.say(
            f"{where} step {record['step']}: val loss {record['val_loss']:.4f} "
            f"acc {record['val_acc']:.4f} ppl {record['val_ppl']:.2f}{whole}"
        )
        plot_curves(self.run)

    def say(self, line: str) -> None:
        if self.log is not None:
            say(line)

    def close(self) -> None:
        self.bar.close()
        if self.log is not None:
            self.log.close()


def train(cfg: config.TrainConfig, stop: StopFlag | None = None) -> int:
    """Train until the epochs (or max_steps) are done, or a stop; returns the exit code.

    `stop` defaults to a flag raised by `cfg.stop_signals`.
    """
    stop = stop or StopFlag(cfg.stop_signals)
    lock = RunLock(cfg.run)
    world: World | None = None
    try:
        # Under srun, rank 0 publishes a free port in the run directory, which every node sees.
        world = init_world(cfg.device, cfg.dist_timeout_s, rendezvous_dir=cfg.run)
        return _train(with_device_batch(cfg, world.device), world, stop, lock)
    except RuntimeError as exc:  # gloo and NCCL report a lost peer as RuntimeError subclasses
        if world is None or world.size == 1 or not is_peer_failure(exc):
            raise
        first = str(exc).strip().splitlines()[0][:300]
        print(
            f"error: rank {world.rank} lost contact with another rank ({first}); the job stops "
            "here and resumes from its last checkpoint when started again",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_PEER_LOST
    finally:
        lock.release()
        close_world()


def with_device_batch(cfg: config.TrainConfig, device: torch.device) -> config.TrainConfig:
    """`cfg` with --batch-size 0 replaced by the device's AUTO_BATCH."""
    if cfg.batch_size:
        return cfg
    return dataclasses.replace(cfg, batch_size=AUTO_BATCH.get(device.type, AUTO_BATCH["cpu"]))


def is_peer_failure(exc: BaseException) -> bool:
    """A collective failed because another rank died or stopped answering."""
    if isinstance(exc, torch.distributed.DistError):
        return True
    text = str(exc).lower()
    signs = (
        "connection closed",
        "connection reset",
        "connection refused",
        "broken pipe",
        "timed out",
        "timeout",
    )
    return any(s in text for s in signs)


def _train(cfg: config.TrainConfig, world: World, stop: StopFlag, lock: RunLock) -> int:
    """The training loop, top to bottom."""
    s = start(cfg, world, lock)
    pos, clock = s.pos, Clock(s.pos.seconds)
    saver = Saver(cfg, world, s, clock)
    report = Reporter(Path(cfg.run), world, pos.step, cfg.progress_every_s, cfg.tensorboard)
    sums = torch.zeros(3, device=world.device)  # loss, correct, windows since the last log line
    while pos.epoch < cfg.epochs and not out_of_steps(cfg, pos):
        s.net.train()
        report.start_epoch(pos, s.plan.n_windows)
        for after, updates in s.plan.steps(pos.epoch, pos.windows_done):
            for group in s.optimizer.param_groups:
                group["lr"] = learning_rate(cfg, pos.step, s.horizon)
            stats = train_step(cfg, s.net, s.model, s.optimizer, updates, world)
            saver.watch.see(stats[0], pos.step + 1)
            sums += stats
            report.bar.update(after - pos.windows_done)
            pos.step, pos.windows_done = pos.step + 1, after

            at_log = pos.step % cfg.log_every == 0
            if at_log:
                log_train(sums, pos, s, clock, saver, report, world)
            stopping, by_time = agree(cfg, world, stop, clock, pos.step, at_log)
            if stopping:
                saver.save(pos)
                return stopped(cfg, world, stop, pos, report)
            due = checkpoint_due(cfg, pos.step, by_time)
            if due == "val":
                saver.save(pos, validate("val", pos, s, clock, report, world))
            elif due == "save":
                saver.save(pos)
            if out_of_steps(cfg, pos):
                break
        report.bar.close()
        if pos.windows_done >= s.plan.n_windows:
            pos.epoch, pos.windows_done = pos.epoch + 1, 0
        saver.save(pos, validate("epoch", pos, s, clock, report, world))
    report.say(
        f"done: {pos.step} steps, {pos.epoch} epochs; checkpoints in {Path(cfg.run) / checkpoint.CHECKPOINTS}"
    )
    report.close()
    return 0


def start(cfg: config.TrainConfig, world: World, lock: RunLock) -> Setup:
    """Data, model and optimizer, resumed from a checkpoint when the run has one; rank 0 writes
    config.json and prints what it is about to do."""
    run = Path(cfg.run)
    vocab = load_vocab(cfg.data)
    manifest = shards.read_manifest(cfg.data)
    # Before anything slow, so that a second start on the same run fails within seconds.
    raise_together(world, lambda: claim(cfg, lock) if world.is_main else None)
    plan: WindowPlan | RecipePlan | None
    val_recipes = None
    if cfg.objective == "recipe":
        plan = recipe_plan(
            cfg.data,
            "train",
            cfg.batch_size,
            cfg.recipe_words,
            world,
            shuffle=True,
            seed=cfg.seed,
            bptt=cfg.bptt,
        )
        if plan is None:
            raise UserError(
                f"{cfg.data} does not record where its recipes begin (data schema 1), which "
                f"--objective recipe needs: preprocess the corpus again"
            )
        val_recipes = recipe_plan(
            cfg.data, "val", cfg.batch_size, cfg.recipe_words, world, shuffle=False
        )
    else:
        plan = WindowPlan(
            shards.load_stream(cfg.data, "train"),
            window=vocab.window,
            objective=cfg.objective,
            batch_size=cfg.batch_size,
            rank=world.rank,
            world=world.size,
            seed=cfg.seed,
        )
    if plan.n_windows == 0:
        raise UserError(f"{cfg.data} has no training windows: preprocess a longer corpus")
    val_plan = validation_plan(cfg.data, vocab.window, cfg.batch_size, cfg.val_windows, world)

    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    model = RecurrentLM(vocab.n_words, cfg.model).to(world.device)
    optimizer = make_optimizer(cfg, model)
    resumed = resume(cfg, run, world, model, optimizer, vocab.hash)
    if resumed is None:
        torch.manual_seed(cfg.seed + 1 + world.rank)  # dropout masks differ between ranks
    pos = resumed or Position()
    net = DistributedDataParallel(model) if world.size > 1 else model
    if world.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    horizon = plan.steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        horizon = min(horizon, cfg.max_steps)

    if world.is_main:
        run.mkdir(parents=True, exist_ok=True)
        atomic.write_json(run / "config.json", config.to_dict(cfg))
        # config.json is this start's; starts.jsonl keeps every start's, the first one included.
        metrics.append(run / STARTS_FILE, {**start_record(pos.step), "config": config.to_dict(cfg)})
        say(f"config: {config.describe(cfg)}")
        say(
            f"data: {manifest['splits']['train']['n_tokens']} training tokens, "
            + (
                f"{plan.n_windows} recipes (pieces of at most {cfg.recipe_words} words)"
                if cfg.objective == "recipe"
                else f"{plan.n_windows} windows of {vocab.window}"
            )
            + f", vocabulary {vocab.n_words}; "
            f"model: {model.count_parameters()} parameters; world {world.size} on {world.device}; "
            f"{plan.steps_per_epoch} steps an epoch; "
            + (f"resuming at step {pos.step} (epoch {pos.epoch})" if resumed else "starting fresh")
        )
        if val_plan is None:
            say(
                f"warning: {cfg.data} has no held-out windows (its validation split is empty): "
                "training runs without a validation loss and keeps no best checkpoint; "
                "preprocess more recipes or a larger --val-fraction to have one",
                file=sys.stderr,
            )
    return Setup(plan, val_plan, val_recipes, model, net, optimizer, pos, horizon, vocab.hash)


def claim(cfg: config.TrainConfig, lock: RunLock) -> None:
    """Rank 0's checks before anything is written: TensorBoard there when asked for, the run
    not in use by another training (then taken)."""
    if cfg.tensorboard:
        metrics.summary_writer_class()
    lock.acquire()


def out_of_steps(cfg: config.TrainConfig, pos: Position) -> bool:
    return bool(cfg.max_steps) and pos.step >= cfg.max_steps


def log_train(
    sums: torch.Tensor,
    pos: Position,
    s: Setup,
    clock: Clock,
    saver: Saver,
    report: Reporter,
    world: World,
) -> None:
    """The metrics line of the steps since the last one, over all ranks; `sums` starts over."""
    loss, correct, windows = all_sum(sums, world).tolist()
    sums.zero_()
    clock.pause()
    if not math.isfinite(loss):
        saver.check_finite(pos.step)  # raises Diverged before a NaN reaches metrics.jsonl
    n = max(windows, 1)
    record = {
        "kind": "train",
        "step": pos.step,
        "epoch": pos.epoch,
        "loss": loss / n,
        "acc": correct / n,
        "lr": s.optimizer.param_groups[0]["lr"],
        "windows_per_s": windows / max(clock.take_span(), 1e-9),
        "train_s": clock.seconds,
    }
    report.train(record)
    # Seconds a step takes, over the whole run so far (training time only): the ETA's rate.
    step_s = clock.seconds / max(pos.step, 1)
    report.progress(
        record,
        epoch_left_s=step_s * (s.plan.n_windows - pos.windows_done) / s.plan.global_batch,
        run_left_s=step_s * max(s.horizon - pos.step, 0),
    )
    clock.resume()


def agree(
    cfg: config.TrainConfig, world: World, stop: StopFlag, clock: Clock, step: int, at_log: bool
) -> tuple[bool, bool]:
    """(stop now, checkpoint for the time), the same on every rank.

    Ranks compare their flags only at steps each of them knows to be a meeting point: every
    step when alone, log steps when distributed (one all-reduce per step would cost more).
    """
    if world.size > 1 and not at_log:
        return False, False
    stopping, by_time = any_rank(
        [stop.requested(step), clock.save_due(cfg.ckpt_every_minutes)], world
    )
    return stopping, by_time


def checkpoint_due(cfg: config.TrainConfig, step: int, by_time: bool) -> str | None:
    """What this step boundary writes: "val" (validation, then a checkpoint), "save", or None."""
    if cfg.val_every_steps and step % cfg.val_every_steps == 0:
        return "val"
    if by_time or step % cfg.ckpt_every_steps == 0:
        return "save"
    return None


def validate(
    kind: str, pos: Position, s: Setup, clock: Clock, report: Reporter, world: World
) -> float | None:
    """Held-out metrics at this boundary, logged and plotted; returns the loss that ranks the
    checkpoint for the best one (None without held-out windows, or when it is not finite)."""
    clock.pause()
    if s.val_plan is None:
        return None
    metrics = next_word_metrics(s.model, s.val_plan, world)
    if s.val_recipes is not None:
        metrics.update(next_word_metrics(s.model, s.val_recipes, world, prefix="val_recipe"))
    record = {"kind": kind, "step": pos.step, "epoch": pos.epoch, "train_s": clock.seconds}
    report.validation({**record, **metrics})
    return metrics["val_loss"] if math.isfinite(metrics["val_loss"]) else None


def train_step(
    cfg: config.TrainConfig,
    net: torch.nn.Module,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    updates: list[Batch],
    world: World,
) -> torch.Tensor:
    """One step on this rank's batch (`net` is `model`, DDP-wrapped when distributed): an
    optimizer update per piece of it, the state carried from one piece to the next without its
    gradient; returns (loss sum, correct sum, windows) for the logs, left on the device: no
    sync here."""
    state, total = None, torch.zeros(3, device=world.device)
    for batch in updates:
        with autocast(world.device):
            logits, state = net(
                batch.inputs.to(world.device), state, last_only=cfg.objective == "last"
            )
        loss, stats = objective_loss(logits.float(), batch, world.size, world.device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        optimizer.step()
        state = detach(state)
        total += stats
    return total


def objective_loss(
    logits: torch.Tensor, batch: Batch, world_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss to back-propagate, and (loss sum, correct sum, windows) for the logs.

    The step's loss is the mean of the windows' losses over the `n_global` windows of all
    ranks. DDP averages gradients over ranks, so each rank scales its sum by
    world_size / n_global: 2 ranks with batch b then take the same step as 1 with 2b.
    """
    losses, stats = window_scores(logits, batch, device)
    return losses.sum() * (world_size / batch.n_global), stats


def learning_rate(cfg: config.TrainConfig, step: int, horizon: int) -> float:
    """Linear warm-up, then constant or cosine decay to 5 % over the run's planned steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, horizon - cfg.warmup_steps))
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def make_optimizer(cfg: config.TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":
        # fused: one kernel over each parameter instead of a dozen passes; on a CPU this is a
        # sevenfold cheaper update of the [V, 4H] input table, a tenth of a default step.
        return torch.optim.AdamW(
            model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True
        )
    return torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )


def checkpoint_state(
    cfg: config.TrainConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    pos: Position,
    vocab_hash: str,
) -> dict[str, Any]:
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": checkpoint.rng_state(),
        "position": dataclasses.asdict(pos),
        "step": pos.step,
        "config": config.to_dict(cfg),
        "vocab_hash": vocab_hash,
    }


# Settings that cannot change under a saved position: the optimizer's state would not fit, and
# the others decide which windows an epoch visits in which order.
FIXED_ON_RESUME = ("optimizer", "objective", "seed", "recipe_words")


def resume(
    cfg: config.TrainConfig,
    run: Path,
    world: World,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    vocab_hash: str,
) -> Position | None:
    """Load the checkpoint to continue from into model and optimizer; None to start fresh.

    The run's own newest loadable checkpoint always wins: `--resume PATH` only seeds a run that
    has none yet, so a requeued or rerun job continues instead of starting over from PATH.
    """
    warn = lambda m: say(f"warning: {m}", file=sys.stderr)  # noqa: E731
    if cfg.resume == "never":
        if checkpoint.marked_checkpoints(run):
            raise UserError(
                f"{run} already holds checkpoints: resume with --resume auto, or choose a new --run"
            )
        return None
    found = checkpoint.load_latest(run, "cpu", warn=warn)
    if found is not None and cfg.resume != "auto" and world.is_main:
        say(
            f"note: {run} has checkpoints of its own; continuing from {found[0].name}, "
            f"not from --resume {cfg.resume} (which only seeds a run without any)"
        )
    if found is None and cfg.resume != "auto":
        found = checkpoint.load_given(cfg.resume, "cpu", warn=warn)
    if found is None:
        return None
    path, state = found
    saved = state["config"]
    if state["vocab_hash"] != vocab_hash:
        raise UserError(
            f"checkpoint {path} was trained on another vocabulary than {cfg.data}: "
            "use the data it was trained on, or a new --run"
        )
    if saved["model"] != config.to_dict(cfg.model):
        raise UserError(
            f"checkpoint {path} holds a model {saved['model']}, not the {config.to_dict(cfg.model)} "
            "asked for: drop the model flags, or use a new --run"
        )
    defaults = config.to_dict(config.TrainConfig())
    for name in FIXED_ON_RESUME:
        # A checkpoint older than a setting was trained with its default.
        if saved.get(name, defaults[name]) != getattr(cfg, name):
            raise UserError(
                f"checkpoint {path} was trained with {config.flag(name)} {saved.get(name)}, not "
                f"{getattr(cfg, name)}: it cannot change when resuming; drop the flag, or use a new --run"
            )
    checkpoint.load_weights(model, state, path)
    optimizer.load_state_dict(state["optimizer"])
    # The restored optimizer carries the saved hyperparameters; the ones asked for now apply.
    for group in optimizer.param_groups:
        group["weight_decay"] = cfg.weight_decay
        if "momentum" in group:
            group["momentum"] = cfg.momentum
    changed = [
        f"{config.flag(k)} {saved[k]} -> {v}"
        for k, v in config.to_dict(cfg).items()
        if k not in ("model", "data", "run", "resume") and k in saved and saved[k] != v
    ]
    if changed and world.is_main:
        say(f"note: resuming with changed settings: {', '.join(changed)}")
    checkpoint.set_rng_state(state["rng"])
    if world.rank > 0:
        torch.manual_seed(cfg.seed + 1 + world.rank + state["step"])
    return saved_position(state["position"])


def saved_position(saved: dict[str, Any]) -> Position:
    """The Position a checkpoint holds; those written before `windows_done` had its name
    call it "window", and must resume exactly all the same."""
    fields = dict(saved)
    if "window" in fields:
        fields["windows_done"] = fields.pop("window")
    return Position(**fields)


def stopped(
    cfg: config.TrainConfig, world: World, stop: StopFlag, pos: Position, report: Reporter
) -> int:
    """After the stop checkpoint: requeue under Slurm (rank 0), then every rank exits."""
    stop.ignore_further()
    report.close()
    if world.is_main:
        say(
            f"stopped by {stop.raised or 'a peer'} at step {pos.step}: checkpoint written"
            + ("" if stop.requeues else "; run the same command again to continue")
        )
        job = slurm_job_id() if cfg.requeue and stop.requeues else None
        if job and slurm_restart_count() >= cfg.max_requeues:
            say(
                f"not requeueing job {job}: restarted {slurm_restart_count()} times already "
                f"(--max-requeues {cfg.max_requeues}); resubmit it to continue"
            )
        elif job:
            try:
                done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
                failed = done.stderr.strip() if done.returncode else ""
            except OSError as exc:  # no scontrol here (a container without Slurm's tools)
                failed = str(exc)
            say(
                f"warning: scontrol requeue {job} failed ({failed}); resubmit the job to continue"
                if failed
                else f"requeued Slurm job {job}"
            )
    barrier(world)
    return EXIT_STOPPED


def start_record(step: int) -> dict[str, Any]:
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(),
        "slurm_job": slurm_job_id(),
        "step": step,
    }


def build_parser() -> Parser:
    parser = command_parser(
        "hpc_rnn.train",
        __doc__,
        {
            2: "a mistake in the input (one error line, nothing changed), or a diverged run",
            EXIT_PEER_LOST: "another rank died or stopped answering; nothing new was saved",
            EXIT_STOPPED: "stopped by a signal after writing a checkpoint: run again to continue",
        },
    )
    parser.add_argument("--data", help="a directory written by hpc_rnn.preprocess (required)")
    # --run-dir too: torchrun's own parser takes "--run" for an abbreviation of its --run-path.
    parser.add_argument(
        "--run",
        "--run-dir",
        dest="run",
        help="directory for checkpoints, metrics, plots (required)",
    )
    parser.add_argument(
        "--preset", choices=sorted(config.PRESETS), help="a named starting point (default: none)"
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="settings from a TOML or JSON file (an earlier run's config.json works); a preset "
        "applies first, the file next, and flags win over both (default: none)",
    )
    config.add_arguments(parser, config.TrainConfig, skip=("data", "run", "model"))
    config.add_arguments(parser, config.ModelConfig)
    return parser


def parse_config(argv: list[str] | None = None) -> config.TrainConfig:
    parser = build_parser()
    args = parser.parse_args(argv)
    # A preset's and a file's values become the parser's defaults, so that a flag given always
    # wins, abbreviated or not.
    defaults: dict[str, Any] = {}
    if args.preset:
        defaults.update(config.flatten(config.PRESETS[args.preset]))
    if args.config:
        defaults.update(config.read_settings(args.config))
    if defaults:
        parser.set_defaults(**defaults)
        args = parser.parse_args(argv)
    for name in ("data", "run"):
        if not getattr(args, name):
            raise UserError(f"--{name} is required (on the command line or in --config)")
    model = config.from_args(config.ModelConfig, args)
    return config.from_args(config.TrainConfig, args, model=model)


def main(argv: list[str] | None = None) -> int:
    return run_main(lambda: train(parse_config(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
