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
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from hpc_rnn import atomic, checkpoint, config, shards
from hpc_rnn.cli import Parser, UserError, run_main
from hpc_rnn.data import WindowPlan
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
from hpc_rnn.evaluate import next_word_metrics, validation_plan
from hpc_rnn.metrics import MetricsLog, plot_curves
from hpc_rnn.model import RecurrentLM
from hpc_rnn.runlock import RunLock
from hpc_rnn.vocab import load_vocab

EXIT_STOPPED = 75  # EX_TEMPFAIL: checkpointed on a signal, run again to continue
EXIT_PEER_LOST = 69  # EX_UNAVAILABLE: another rank died; nothing new was saved
# The per-rank batch that --batch-size 0 picks. A CPU step costs in proportion to the batch, so a
# small one buys more updates a second: on the dev corpus batch 32 reached a held-out loss of
# 4.9 in 19 s of training, batch 128 was at 5.4 after 70 s. A GPU step costs about the same at
# both (H100: 10.7k against 39k windows/s), so a GPU takes the bigger. docs/benchmarks.md.
AUTO_BATCH = {"cpu": 32, "cuda": 128}


@dataclass
class Position:
    """Where training stands: resuming at a Position replays nothing and skips nothing."""

    step: int = 0  # optimizer steps done
    epoch: int = 0
    window: int = 0  # windows of `epoch` already trained on (across all ranks)
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
        """Once the stop checkpoint is written: a repeated signal must not kill the exit with a
        signal's status (Python restores default handlers while it shuts down)."""
        for sig in self.signals:
            if sig != signal.SIGINT:
                signal.signal(sig, signal.SIG_IGN)

    def _handle(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self.raised is not None:
            raise KeyboardInterrupt
        self.raised = signal.Signals(signum).name

    @property
    def requeues(self) -> bool:
        """Only the job script's early warning (--signal USR1/USR2 before the time limit)
        requeues; TERM (scancel, or pre-emption, which Slurm requeues itself) and Ctrl-C stop."""
        return self.raised in ("SIGUSR1", "SIGUSR2")


class Diverged(UserError):
    """The loss or the parameters stopped being finite numbers."""


class Clock:
    """Training time: steps count, validation and checkpoint writing do not."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds  # booked training time of the whole run
        self.span = 0.0  # booked since the last log line
        self.tick = time.perf_counter()
        self.last_save = time.monotonic()

    def pause(self) -> None:
        now = time.perf_counter()
        self.seconds += now - self.tick
        self.span += now - self.tick
        self.tick = now

    def resume(self) -> None:
        self.tick = time.perf_counter()

    def take_span(self) -> float:
        span, self.span = self.span, 0.0
        return span

    def saved(self) -> None:
        self.last_save = time.monotonic()
        self.resume()


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


def train(cfg: config.TrainConfig) -> int:
    """Train until the epochs (or max_steps) are done, or a stop signal; returns the exit code."""
    stop = StopFlag(cfg.stop_signals)
    lock = RunLock(cfg.run)
    world: World | None = None
    try:
        world = init_world(cfg.device, cfg.dist_timeout_s)
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


def checkpoint_due(cfg: config.TrainConfig, step: int, by_time: bool) -> str | None:
    """What this step boundary writes: "val" (validation, then a checkpoint), "save", or None."""
    if cfg.val_every_steps and step % cfg.val_every_steps == 0:
        return "val"
    if by_time or step % cfg.ckpt_every_steps == 0:
        return "save"
    return None


def _train(cfg: config.TrainConfig, world: World, stop: StopFlag, lock: RunLock) -> int:
    run = Path(cfg.run)
    vocab = load_vocab(cfg.data)
    manifest = shards.read_manifest(cfg.data)
    # Before anything slow, so that a second start on the same run fails within seconds.
    raise_together(world, lambda: lock.acquire() if world.is_main else None)
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
    pos = resumed or Position()
    if resumed is None:
        torch.manual_seed(cfg.seed + 1 + world.rank)  # dropout masks differ between ranks
    net = DistributedDataParallel(model) if world.size > 1 else model
    if world.device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    horizon = plan.steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        horizon = min(horizon, cfg.max_steps)
    log = None
    if world.is_main:
        run.mkdir(parents=True, exist_ok=True)
        atomic.write_json(run / "config.json", config.to_dict(cfg))
        print(f"config: {config.describe(cfg)}", flush=True)
        print(
            f"data: {manifest['splits']['train']['n_tokens']} training tokens, "
            f"{plan.n_windows} windows of {vocab.window}, vocabulary {vocab.n_words}; "
            f"model: {model.count_parameters()} parameters; world {world.size} on {world.device}; "
            f"{plan.steps_per_epoch} steps an epoch; "
            + (f"resuming at step {pos.step} (epoch {pos.epoch})" if resumed else "starting fresh"),
            flush=True,
        )
        if val_plan is None:
            print(
                f"warning: {cfg.data} has no held-out windows (its validation split is empty): "
                "training runs without a validation loss and keeps no best checkpoint; "
                "preprocess more recipes or a larger --val-fraction to have one",
                file=sys.stderr,
                flush=True,
            )
        log = MetricsLog(run, resume_step=pos.step)

    clock = Clock(pos.seconds)
    watch = FiniteWatch(world.device)
    last_saved = pos.step

    def save(val_loss: float | None = None) -> None:
        nonlocal last_saved
        clock.pause()
        pos.seconds = clock.seconds
        watch.check(model, world, pos.step, last_saved)  # a diverged model is never saved
        if world.is_main:
            state = checkpoint_state(cfg, model, optimizer, pos, vocab.hash)
            checkpoint.save(run, pos.step, state, val_loss=val_loss, keep_last=cfg.keep_last)
        barrier(world)  # nobody exits or requeues before the checkpoint is on disk
        last_saved = pos.step
        clock.saved()

    def validate(kind: str) -> None:
        """Held-out metrics, logged and plotted, then a checkpoint that may become the best."""
        clock.pause()
        if val_plan is None:
            return save()
        metrics = next_word_metrics(model, val_plan, world)
        if log is not None:
            record = {"kind": kind, "step": pos.step, "epoch": pos.epoch}
            log.write({**record, "train_s": clock.seconds, **metrics})
            print(
                f"{'epoch ' + str(pos.epoch) if kind == 'epoch' else 'validation at'} step {pos.step}: "
                f"val loss {metrics['val_loss']:.4f} acc {metrics['val_acc']:.4f} ppl {metrics['val_ppl']:.2f}",
                flush=True,
            )
            plot_curves(run)
        return save(val_loss=metrics["val_loss"] if math.isfinite(metrics["val_loss"]) else None)

    sums = torch.zeros(3, device=world.device)  # loss, correct, windows since the last log
    while pos.epoch < cfg.epochs and not (cfg.max_steps and pos.step >= cfg.max_steps):
        bar = tqdm(
            total=plan.n_windows,
            initial=pos.window,
            desc=f"epoch {pos.epoch}",
            unit=" win",
            disable=not world.is_main or not sys.stderr.isatty(),
            leave=False,
        )
        net.train()
        for after, batch in plan.batches(pos.epoch, pos.window):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(cfg, pos.step, horizon)
            stats = train_step(cfg, net, model, optimizer, batch, world)
            watch.see(stats[0], pos.step + 1)
            sums += stats
            bar.update(after - pos.window)
            pos.step, pos.window = pos.step + 1, after

            at_log = pos.step % cfg.log_every == 0
            if at_log:
                total = all_sum(sums, world).tolist()
                clock.pause()
                if not math.isfinite(total[0]):
                    watch.check(model, world, pos.step, last_saved)
                record = {
                    "kind": "train",
                    "step": pos.step,
                    "epoch": pos.epoch,
                    "loss": total[0] / max(total[2], 1),
                    "acc": total[1] / max(total[2], 1),
                    "lr": optimizer.param_groups[0]["lr"],
                    "windows_per_s": total[2] / max(clock.take_span(), 1e-9),
                    "train_s": clock.seconds,
                }
                if log is not None:
                    log.write(record)
                    bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['acc']:.3f}")
                sums.zero_()
                clock.resume()
            # Ranks agree on the flags at steps every rank reaches (each step when alone).
            if world.size == 1 or at_log:
                by_time = time.monotonic() - clock.last_save >= cfg.ckpt_every_minutes * 60
                stopping, by_time = any_rank([stop.raised is not None, by_time], world)
            else:
                stopping = by_time = False
            if stopping:
                save()
                bar.close()
                return stopped(cfg, world, stop, pos, log)
            due = checkpoint_due(cfg, pos.step, by_time)
            if due == "val":
                validate("val")
            elif due == "save":
                save()
            if cfg.max_steps and pos.step >= cfg.max_steps:
                break
        bar.close()
        if pos.window >= plan.n_windows:
            pos.epoch, pos.window = pos.epoch + 1, 0
        validate("epoch")
    if log is not None:
        log.close()
        print(
            f"done: {pos.step} steps, {pos.epoch} epochs; checkpoints in {run / checkpoint.CHECKPOINTS}",
            flush=True,
        )
    return 0


def train_step(
    cfg: config.TrainConfig,
    net: torch.nn.Module,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Any,
    world: World,
) -> torch.Tensor:
    """One optimizer step on this rank's batch (`net` is `model`, DDP-wrapped when distributed);
    returns (loss sum, correct sum, windows) for the logs, left on the device: no sync here."""
    with autocast(world.device):
        logits, _ = net(batch.inputs.to(world.device), last_only=cfg.objective == "last")
    loss, stats = objective_loss(logits.float(), batch, world.size, world.device)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
    optimizer.step()
    return stats


def objective_loss(
    logits: torch.Tensor, batch: Any, world_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss to back-propagate, and (loss sum, correct sum, windows) for the logs.

    Each window's loss is its mean cross-entropy; the step's loss is the mean over the
    `n_global` windows of all ranks. DDP averages gradients over ranks, so each rank scales
    its sum by world_size / n_global: 2 ranks with batch b then take the same step as 1 with 2b.
    """
    targets = batch.targets.to(device)
    weight = batch.weight.to(device)
    ce = F.cross_entropy(logits.flatten(0, -2), targets.flatten(), reduction="none")
    correct = (logits.argmax(-1) == targets).float()
    if targets.dim() == 2:  # objective "all": one prediction per position
        ce = ce.view_as(targets).mean(1)
        correct = correct.mean(1)
    loss = (ce * weight).sum() * (world_size / batch.n_global)
    stats = torch.stack([(ce.detach() * weight).sum(), (correct * weight).sum(), weight.sum()])
    return loss, stats


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
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
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
# objective and seed decide which windows an epoch visits in which order.
FIXED_ON_RESUME = ("optimizer", "objective", "seed")


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
    warn = lambda m: print(f"warning: {m}", file=sys.stderr, flush=True)  # noqa: E731
    if cfg.resume == "never":
        if checkpoint.complete(run):
            raise UserError(
                f"{run} already holds checkpoints: resume with --resume auto, or choose a new --run"
            )
        return None
    found = checkpoint.load_latest(run, "cpu", warn=warn)
    if found is not None and cfg.resume != "auto" and world.is_main:
        print(
            f"note: {run} has checkpoints of its own; continuing from {found[0].name}, "
            f"not from --resume {cfg.resume} (which only seeds a run without any)",
            flush=True,
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
    for name in FIXED_ON_RESUME:
        if saved.get(name) != getattr(cfg, name):
            raise UserError(
                f"checkpoint {path} was trained with {config.flag(name)} {saved.get(name)}, not "
                f"{getattr(cfg, name)}: it cannot change when resuming; drop the flag, or use a new --run"
            )
    model.load_state_dict(state["model"])
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
        print(f"note: resuming with changed settings: {', '.join(changed)}", flush=True)
    checkpoint.set_rng_state(state["rng"])
    if world.rank > 0:
        torch.manual_seed(cfg.seed + 1 + world.rank + state["step"])
    return Position(**state["position"])


def stopped(
    cfg: config.TrainConfig, world: World, stop: StopFlag, pos: Position, log: MetricsLog | None
) -> int:
    """After the stop checkpoint: requeue under Slurm (rank 0), then every rank exits."""
    stop.ignore_further()
    if log is not None:
        log.close()
        print(
            f"stopped by {stop.raised or 'a peer'} at step {pos.step}: checkpoint written"
            + ("" if stop.requeues else "; run the same command again to continue"),
            flush=True,
        )
        job = slurm_job_id() if cfg.requeue and stop.requeues else None
        if job and slurm_restart_count() >= cfg.max_requeues:
            print(
                f"not requeueing job {job}: restarted {slurm_restart_count()} times already "
                f"(--max-requeues {cfg.max_requeues}); resubmit it to continue",
                flush=True,
            )
        elif job:
            try:
                done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
                failed = done.stderr.strip() if done.returncode else ""
            except OSError as exc:  # no scontrol here (a container without Slurm's tools)
                failed = str(exc)
            print(
                f"warning: scontrol requeue {job} failed ({failed}); resubmit the job to continue"
                if failed
                else f"requeued Slurm job {job}",
                flush=True,
            )
    barrier(world)
    return EXIT_STOPPED


def parse_config(argv: list[str] | None = None) -> config.TrainConfig:
    parser = Parser(prog="python -m hpc_rnn.train", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="a directory written by hpc_rnn.preprocess")
    # --run-dir too: torchrun's own parser takes "--run" for an abbreviation of its --run-path.
    parser.add_argument(
        "--run",
        "--run-dir",
        dest="run",
        required=True,
        help="directory for checkpoints, metrics, plots",
    )
    parser.add_argument("--preset", choices=sorted(config.PRESETS), help="a named starting point")
    config.add_arguments(parser, config.TrainConfig, skip=("data", "run", "model"))
    config.add_arguments(parser, config.ModelConfig)
    args = parser.parse_args(argv)
    if args.preset:
        # A preset's values become the parser's defaults, so any flag given wins, abbreviated or not.
        preset = dict(config.PRESETS[args.preset])
        preset.update(config.to_dict(preset.pop("model", config.ModelConfig())))
        parser.set_defaults(**preset)
        args = parser.parse_args(argv)
    model = config.from_args(config.ModelConfig, args)
    return config.from_args(config.TrainConfig, args, model=model)


def main(argv: list[str] | None = None) -> int:
    return run_main(lambda: train(parse_config(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
