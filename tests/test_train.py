"""Training: the loop driven in this process, where a stop lands at exactly the step a test
chooses, and as a user runs it, with real processes, signals and kills, for what only a process
shows (signal delivery, exit codes, a kill -9)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import (
    ROOT,
    SMALL_TRAINING,
    STAMP,
    TRAINED_BATCH,
    clean_env,
    run_in_repo,
    train_command,
    unavailable,
    wait_until,
)

from hpc_rnn import checkpoint, config, metrics, shards
from hpc_rnn.data import RecipePlan, WindowPlan
from hpc_rnn.distributed import World
from hpc_rnn.model import RecurrentLM
from hpc_rnn.train import (
    AUTO_BATCH,
    EXIT_STOPPED,
    STARTS_FILE,
    StopFlag,
    main,
    make_optimizer,
    parse_config,
    train,
    train_step,
    with_device_batch,
)
from hpc_rnn.vocab import load_vocab

SMALL = SMALL_TRAINING
# Where an epoch must end within a few steps: the demo data's windows in batches this large.
EPOCH_BATCH = "64"


class StopAt(StopFlag):
    """A stop flag raised at the boundary after step `k`, as a signal during that step raises it."""

    def __init__(self, k: int, name: str = "SIGTERM") -> None:
        super().__init__("")  # no handlers: nothing but this test raises it
        self.k, self.name = k, name

    def requested(self, step: int) -> bool:
        if step >= self.k:
            self.raised = self.name
        return super().requested(step)


def train_here(data: Path, run: Path, *flags: str, stop: StopFlag | None = None) -> int:
    """The training of `python -m hpc_rnn.train --data DATA --run RUN SMALL FLAGS`, in this
    process (no signal handlers unless `stop` has them)."""
    cfg = parse_config(["--data", str(data), "--run", str(run), *SMALL, *flags])
    return train(cfg, stop or StopFlag(""))


def train_cmd(data: Path, run: Path, *extra: str) -> list[str]:
    return train_command(data, run, *SMALL, *extra)


def start_train(data: Path, run: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        train_cmd(data, run, *extra),
        cwd=ROOT,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def steps_per_epoch(data: Path, batch: str) -> int:
    """Steps of an objective-"all" epoch of `data`, by the plan training uses."""
    stream = shards.load_stream(data, "train")
    window = load_vocab(data).window
    return WindowPlan(stream, window=window, objective="all", batch_size=int(batch)).steps_per_epoch


def final_params(run: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load_given(run)[1]["model"]


def assert_same_params(a: Path, b: Path) -> None:
    pa, pb = final_params(a), final_params(b)
    assert pa.keys() == pb.keys()
    for name in pa:
        assert torch.equal(pa[name], pb[name]), f"{name} differs after resume"


def records(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def steps_logged(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(x)["step"] for x in path.read_text().splitlines() if '"train"' in x]


def steps_on_disk(run: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in checkpoint.marked_checkpoints(run))


# ---------------------------------------------------------------------------------------------
# The loop in this process


def test_a_few_steps_in_process_log_each_step_and_checkpoint(
    demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert train_here(demo_data, run, "--max-steps", "7", "--ckpt-every-steps", "3") == 0
    out = capsys.readouterr().out
    assert "starting fresh" in out and "done: 7 steps" in out
    assert steps_logged(run) == list(range(1, 8))
    assert steps_on_disk(run) == [3, 6, 7]
    state = checkpoint.load_given(run)[1]
    assert (state["step"], state["position"]["epoch"], state["position"]["windows_done"]) == (
        7,
        0,
        7 * 16,
    )
    train_records = [r for r in records(run) if r["kind"] == "train"]
    n_words = len(json.loads((demo_data / "vocab.json").read_text())["decoding"])
    assert all(0 < r["loss"] < math.log(n_words) + 1 for r in train_records)
    # A time is booked for every step, and it only grows.
    times = [r["train_s"] for r in train_records]
    assert times == sorted(times) and times[0] > 0


@pytest.fixture(scope="module")
def uninterrupted(demo_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """One uninterrupted run per setting, shared by every stop step."""
    runs: dict[tuple[str, ...], Path] = {}

    def get(*flags: str) -> Path:
        if flags not in runs:
            runs[flags] = tmp_path_factory.mktemp("straight") / "run"
            assert train_here(demo_data, runs[flags], *flags) == 0
        return runs[flags]

    return get


# Objective "all" in batches of 64 (12 steps an epoch, the last one short) over 14 steps, stopped
# at every kind of boundary: the first step, a periodic checkpoint's (4, 8, 12), a plain one,
# the epoch's last, the step before the end. "last" (stride 1) and whole recipes once each.
# With --bptt a step is several updates, the state carried between them.
@pytest.mark.parametrize(
    ("objective", "batch", "steps", "stop_at"),
    [("all", EPOCH_BATCH, 14, k) for k in (1, 4, 7, 12, 13)]
    + [("last", "16", 12, 5), ("recipe", "8", 10, 5), ("recipe --bptt 16", "8", 10, 5)],
)
def test_stopped_at_any_step_and_resumed_is_bitwise_the_uninterrupted_run(
    demo_data: Path,
    tmp_path: Path,
    uninterrupted,
    capsys: pytest.CaptureFixture[str],
    objective: str,
    batch: str,
    steps: int,
    stop_at: int,
) -> None:
    common = ("--objective", *objective.split(), "--batch-size", batch, "--max-steps", str(steps))
    common += ("--epochs", "100", "--ckpt-every-steps", "4")
    if objective == "all":
        assert steps_per_epoch(demo_data, batch) == 12  # the premise of the stop steps
    straight = uninterrupted(*common)
    run = tmp_path / "run"
    capsys.readouterr()
    assert train_here(demo_data, run, *common, stop=StopAt(stop_at)) == EXIT_STOPPED
    assert f"stopped by SIGTERM at step {stop_at}" in capsys.readouterr().out
    assert max(steps_on_disk(run)) == stop_at

    assert train_here(demo_data, run, *common) == 0
    assert f"resuming at step {stop_at}" in capsys.readouterr().out
    assert_same_params(straight, run)
    assert steps_logged(run) == list(range(1, steps + 1))  # each step once over both runs


def test_bptt_pieces_carry_the_state_so_they_score_as_the_whole_recipes(demo_data: Path) -> None:
    # An update a piece, but the state (and with --copy the words read) runs on between pieces:
    # with a step too small to move the weights, the pieces' losses are the whole recipes'.
    argv = ["--data", str(demo_data), "--run", "r", "--objective", "recipe", "--copy"]
    argv += ["--optimizer", "sgd", "--lr", "1e-30", "--clip", "0", "--hidden", "16"]
    cfg = parse_config(argv)
    stream, starts = shards.load_split(demo_data, "train")
    torch.manual_seed(0)
    model = RecurrentLM(load_vocab(demo_data).n_words, cfg.model)
    optimizer = make_optimizer(cfg, model)
    world = World(0, 1, 0, torch.device("cpu"))
    scores = {}
    for bptt in (0, 16):
        plan = RecipePlan(stream, starts, max_len=1024, batch_size=4, shuffle=False, bptt=bptt)
        updates = plan.updates(0, 0)
        assert (len(updates) > 1) == (bptt > 0)  # the premise: several pieces
        scores[bptt] = train_step(cfg, model, model, optimizer, updates, world)
    torch.testing.assert_close(scores[16], scores[0], rtol=1e-5, atol=1e-4)


def test_a_checkpoint_that_calls_windows_done_window_resumes_exactly(
    demo_data: Path, tmp_path: Path, uninterrupted
) -> None:
    # Checkpoints written before Position.windows_done had its name store it as "window".
    common = ("--objective", "all", "--batch-size", EPOCH_BATCH, "--max-steps", "14")
    common += ("--epochs", "100", "--ckpt-every-steps", "4")
    straight = uninterrupted(*common)
    stopped = tmp_path / "stopped"
    assert train_here(demo_data, stopped, *common, stop=StopAt(7)) == EXIT_STOPPED
    state = checkpoint.load(checkpoint.step_dir(stopped, 7))
    state["position"]["window"] = state["position"].pop("windows_done")
    assert state["position"]["window"] > 0  # the premise: a stop inside the epoch
    old = tmp_path / "old"
    checkpoint.save(old, 7, state)

    assert train_here(demo_data, old, *common) == 0
    assert_same_params(straight, old)


# ---------------------------------------------------------------------------------------------
# Real processes: a signal, a kill -9


def test_a_real_signal_checkpoints_exits_75_and_the_run_resumes_exactly(
    demo_data: Path, tmp_path: Path
) -> None:
    # A run that cannot end by itself: the signal lands however slow the machine is.
    forever = ("--max-steps", "100000", "--schedule", "constant", "--ckpt-every-steps", "100000")
    stopped = tmp_path / "stopped"
    proc = start_train(demo_data, stopped, *forever)
    try:
        wait_until(
            lambda: len(steps_logged(stopped)) >= 2 or proc.poll() is not None, 300, "step 2"
        )
        proc.send_signal(signal.SIGUSR1)
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == EXIT_STOPPED, err
    assert "stopped by SIGUSR1" in out and "Traceback" not in err
    stop_step = max(steps_on_disk(stopped))
    assert stop_step >= 2

    # A constant learning rate, so that a shorter --max-steps plans the same schedule.
    until = ("--max-steps", str(stop_step + 3), "--schedule", "constant")
    resumed = run_in_repo(train_cmd(demo_data, stopped, *until), timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming at step {stop_step}" in resumed.stdout
    straight = tmp_path / "straight"
    assert train_here(demo_data, straight, *until) == 0
    assert_same_params(straight, stopped)
    assert steps_logged(stopped) == list(range(1, stop_step + 4))


@pytest.mark.parametrize("after", ["periodic", "epoch-end"])
def test_kill_9_after_a_checkpoint_then_resume_is_exact(
    demo_data: Path, tmp_path: Path, after: str
) -> None:
    every = "4" if after == "periodic" else "100000"
    first = 4 if after == "periodic" else steps_per_epoch(demo_data, EPOCH_BATCH)
    # A constant learning rate, so that the shorter --max-steps below plans the same schedule.
    flags = ("--batch-size", EPOCH_BATCH, "--schedule", "constant", "--ckpt-every-steps", every)
    run = tmp_path / "run"
    proc = start_train(demo_data, run, *flags, "--max-steps", "100000")
    try:
        # Killed once a step past the first checkpoint is logged: what came after the newest
        # checkpoint is lost (most often a step or more, logged already), and done again.
        wait_until(
            lambda: (
                proc.poll() is not None
                or (steps_on_disk(run) and steps_logged(run) and steps_logged(run)[-1] > first)
            ),
            300,
            f"a step after the checkpoint of step {first}",
            interval=0.05,
        )
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL, err[-3000:]
    newest = max(steps_on_disk(run))
    assert newest >= first and steps_logged(run)[-1] >= newest

    until = (*flags, "--max-steps", str(newest + 3))
    assert train_here(demo_data, run, *until) == 0
    straight = tmp_path / "straight"
    assert train_here(demo_data, straight, *until) == 0
    assert_same_params(straight, run)
    assert steps_logged(run) == list(range(1, newest + 4))


# ---------------------------------------------------------------------------------------------
# Which checkpoint: the newest that loads, the best by validation, refusals


def test_resume_skips_a_corrupt_checkpoint(
    demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert train_here(demo_data, run, "--max-steps", "6", "--ckpt-every-steps", "3") == 0
    newest = checkpoint.marked_checkpoints(run)[0]
    with open(newest / checkpoint.STATE_FILE, "r+b") as f:
        f.seek(100)
        f.write(b"garbage")
    capsys.readouterr()
    assert train_here(demo_data, run, "--max-steps", "8", "--ckpt-every-steps", "3") == 0
    out, err = capsys.readouterr()
    assert re.search(f"^{STAMP}warning: skipping checkpoint .*corrupt", err, re.M), err
    assert "resuming at step 3" in out


def test_best_is_the_lowest_validation_loss_not_the_newest(demo_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    flags = ("--val-every-steps", "3", "--keep-last", "1", "--schedule", "constant")
    assert train_here(demo_data, run, *flags, "--max-steps", "6", "--lr", "0.01") == 0
    # Resumed with a learning rate far too high: the held-out loss climbs.
    assert train_here(demo_data, run, *flags, "--max-steps", "12", "--lr", "0.5") == 0
    val = {r["step"]: r["val_loss"] for r in records(run) if r["kind"] == "val"}
    assert sorted(val) == [3, 6, 9, 12]
    lowest = min(val, key=val.get)
    assert lowest != 12, f"the premise: a run whose newest is not its best ({val})"
    best = checkpoint.read_best(run)
    assert best["step"] == lowest and best["val_loss"] == pytest.approx(val[lowest])
    # --keep-last 1 keeps the newest and, besides it, the best, which loads.
    assert steps_on_disk(run) == [lowest, 12]
    assert checkpoint.load(checkpoint.step_dir(run, lowest))["step"] == lowest


def test_refuses_checkpoint_of_another_model_or_vocabulary(
    demo_data: Path, tmp_path: Path, run_preprocess, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert train_here(demo_data, run, "--max-steps", "2") == 0
    before = {p.name for p in checkpoint.marked_checkpoints(run)}
    argv = ["--data", str(demo_data), "--run", str(run), *SMALL, "--max-steps", "4"]
    capsys.readouterr()

    assert main([*argv, "--hidden", "48"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint") and "Traceback" not in err

    # The same corpus with another min count: a consistent data directory, another vocabulary.
    other_vocab = tmp_path / "other_vocab"
    corpus = json.loads((demo_data / "manifest.json").read_text())["corpus"]
    assert run_preprocess(corpus, "--out", other_vocab, "--min-count", "3").returncode == 0
    assert main(["--data", str(other_vocab), *argv[2:]]) == 2
    assert "another vocabulary" in capsys.readouterr().err
    assert {p.name for p in checkpoint.marked_checkpoints(run)} == before


def test_resume_never_refuses_a_run_with_checkpoints_and_starts_a_new_one(
    demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert train_here(demo_data, run, "--resume", "never", "--max-steps", "2") == 0
    assert "starting fresh" in capsys.readouterr().out
    before = steps_on_disk(run)
    argv = ["--data", str(demo_data), "--run", str(run), *SMALL, "--max-steps", "4"]
    assert main([*argv, "--resume", "never"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "already holds checkpoints" in err
    assert steps_on_disk(run) == before == [2]


@pytest.mark.parametrize(("restarts", "requeued"), [(2, True), (3, False)])
def test_a_stop_under_slurm_requeues_until_max_requeues(
    demo_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restarts: int,
    requeued: bool,
) -> None:
    # scontrol is Slurm's, not the code under test: a stand-in that records what it was asked.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol-calls"
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_RESTART_COUNT", str(restarts))

    run = tmp_path / "run"
    stop = StopAt(3, "SIGUSR2")  # the job script's early warning
    assert train_here(demo_data, run, "--max-requeues", "3", stop=stop) == EXIT_STOPPED
    out = capsys.readouterr().out
    assert max(steps_on_disk(run)) == 3
    if requeued:
        assert "requeued Slurm job 4242" in out
        assert calls.read_text() == "requeue 4242\n"
    else:
        assert "not requeueing job 4242: restarted 3 times already (--max-requeues 3)" in out
        assert not calls.exists()


# ---------------------------------------------------------------------------------------------
# What a run leaves, and what it learns


def test_writes_metrics_plot_and_config(trained_run: Path, demo_data: Path) -> None:
    epochs = [r for r in records(trained_run) if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    per_epoch = steps_per_epoch(demo_data, TRAINED_BATCH)
    assert [r["step"] for r in epochs] == [per_epoch, 2 * per_epoch]
    assert (trained_run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((trained_run / "config.json").read_text())
    assert saved["model"]["hidden"] == 32 and saved["lr"] == 0.01
    state = checkpoint.load_given(trained_run)[1]
    assert state["config"] == saved and state["position"]["epoch"] == 2


def test_training_lowers_the_validation_loss(trained_run: Path, demo_data: Path) -> None:
    val = [r["val_loss"] for r in records(trained_run) if r["kind"] == "epoch"]
    n_words = len(json.loads((demo_data / "vocab.json").read_text())["decoding"])
    # Guessing uniformly scores log(n_words); a model that learned something is well below.
    assert len(val) == 2 and val[1] < val[0] < math.log(n_words) - 1.0


def board_scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Each TensorBoard tag of the run's event files, as TensorBoard reads them (purges done)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(run / metrics.TENSORBOARD_DIR))
    board.Reload()
    return {t: [(e.step, e.value) for e in board.Scalars(t)] for t in board.Tags()["scalars"]}


def test_tensorboard_shows_each_step_once_with_the_values_of_metrics_jsonl(
    demo_data: Path, tmp_path: Path
) -> None:
    if importlib.util.find_spec("tensorboard") is None:
        unavailable("no tensorboard (pip install -e .[tensorboard])")
    run = tmp_path / "run"
    flags = ("--tensorboard", "--val-every-steps", "3")
    flags += ("--schedule", "constant", "--ckpt-every-steps", "100")
    assert train_here(demo_data, run, *flags, stop=StopAt(4)) == EXIT_STOPPED
    # Steps 7 to 9 logged, then killed before the checkpoint of step 9: they are done again.
    assert train_here(demo_data, run, *flags, "--max-steps", "9") == 0
    shutil.rmtree(checkpoint.step_dir(run, 9))
    assert train_here(demo_data, run, *flags, "--max-steps", "12") == 0

    board = board_scalars(run)
    for key, tag in metrics.BOARD_TAGS.items():
        # Validation at step 9 and 12 twice (--val-every-steps and the end): the same values.
        logged = {r["step"]: r[key] for r in records(run) if key in r}
        if not logged:
            continue
        steps = [step for step, _ in board[tag]]
        assert steps == sorted(logged), (tag, steps)
        assert dict(board[tag]) == pytest.approx(logged, rel=1e-6), tag
    assert [step for step, _ in board["train/loss"]] == list(range(1, 13))
    assert [step for step, _ in board["val/loss"]] == [3, 6, 9, 12]


def test_tensorboard_asked_for_and_missing_is_one_error_line(
    demo_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    run = tmp_path / "run"
    argv = ["--data", str(demo_data), "--run", str(run), *SMALL, "--tensorboard"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --tensorboard") and err.count("\n") == 1, err
    assert "pip install -e .[tensorboard]" in err
    assert not run.exists() or not any(run.iterdir())


# ---------------------------------------------------------------------------------------------
# Settings


def test_a_preset_sets_defaults_and_any_flag_given_wins() -> None:
    preset = dict(config.PRESETS["seed"])
    model = config.to_dict(preset.pop("model"))
    cfg = parse_config(["--data", "d", "--run", "r", "--preset", "seed"])
    assert {k: getattr(cfg, k) for k in preset} == preset
    assert config.to_dict(cfg.model) == model
    # Each flag given overrides its preset value, and only that one.
    other_epochs, other_cell = preset["epochs"] + 1, "gru" if model["cell"] == "lstm" else "lstm"
    argv = ["--preset", "seed", "--epochs", str(other_epochs), "--cell", other_cell]
    changed = parse_config(["--data", "d", "--run", "r", *argv])
    assert changed.epochs == other_epochs and changed.model.cell == other_cell
    assert {k: getattr(changed, k) for k in preset if k != "epochs"} == {
        k: v for k, v in preset.items() if k != "epochs"
    }


def test_batch_size_zero_takes_the_devices_batch_and_an_explicit_one_stays(
    demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    auto = parse_config(["--data", "d", "--run", "r"])
    assert auto.batch_size == 0
    assert with_device_batch(auto, torch.device("cuda")).batch_size == AUTO_BATCH["cuda"]
    given = parse_config(["--data", "d", "--run", "r", "--batch-size", "7"])
    assert with_device_batch(given, torch.device("cuda")).batch_size == 7
    # A real CPU run with batch 0 trains on AUTO_BATCH["cpu"] windows a step.
    run = tmp_path / "run"
    assert train_here(demo_data, run, "--batch-size", "0", "--max-steps", "2") == 0
    state = checkpoint.load_given(run)[1]
    assert state["position"]["windows_done"] == 2 * AUTO_BATCH["cpu"]
    assert json.loads((run / "config.json").read_text())["batch_size"] == AUTO_BATCH["cpu"]


def test_bad_options_give_one_line(
    demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--run", str(tmp_path / "run")]
    for argv, start in (
        (["--data", str(tmp_path / "nope"), *base], "error:"),
        (["--data", str(demo_data), *base, "--optimizer", "adam2"], "error:"),
        (["--data", str(demo_data), *base, "--batch-size", "-4"], "error: --batch-size"),
        (["--data", str(demo_data), *base, "--bptt", "16"], "error: --bptt cuts whole recipes"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(start) and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_each_start_keeps_its_settings_and_config_json_is_the_latest(
    demo_data: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    assert train_here(demo_data, run, "--max-steps", "3", "--lr", "0.004") == 0
    assert train_here(demo_data, run, "--max-steps", "5", "--lr", "0.002") == 0
    starts = [json.loads(line) for line in (run / STARTS_FILE).read_text().splitlines()]
    assert [(s["step"], s["config"]["lr"]) for s in starts] == [(0, 0.004), (3, 0.002)]
    assert json.loads((run / "config.json").read_text()) == starts[-1]["config"]


def test_every_line_a_run_prints_starts_with_the_time(
    demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ("--max-steps", "4", "--val-every-steps", "2", "--progress-every-s", "0")
    assert train_here(demo_data, tmp_path / "run", *flags, "--log-every", "2") == 0
    assert train_here(demo_data, tmp_path / "run", *flags, "--lr", "0.001") == 0  # a note
    lines = capsys.readouterr().out.splitlines()
    # The settings' JSON goes on below its stamped "config: {" line, indented, to its "}".
    unstamped = [ln for ln in lines if not re.match(STAMP, ln) and not ln.startswith((" ", "}"))]
    assert unstamped == [], unstamped
    for start in ("config: {", "data: ", "validation at step 2", "done: 4 steps", "note: resuming"):
        assert any(re.match(STAMP + re.escape(start), ln) for ln in lines), start


def test_without_a_terminal_a_timestamped_progress_line_gives_the_eta(
    demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = rf"^{STAMP}step (\d+) epoch 0: loss [\d.]+ acc [\d.]+, \d+ windows/s, ETA epoch \d+:\d\d:\d\d, run \d+:\d\d:\d\d$"
    flags = ("--log-every", "2", "--max-steps", "6")
    assert train_here(demo_data, tmp_path / "every", *flags, "--progress-every-s", "0") == 0
    steps = [int(m.group(1)) for m in re.finditer(line, capsys.readouterr().out, re.M)]
    assert steps == [2, 4, 6]
    # At most one a minute by default: a fast run's log is not flooded.
    assert train_here(demo_data, tmp_path / "default", *flags) == 0
    assert [int(m.group(1)) for m in re.finditer(line, capsys.readouterr().out, re.M)] == [2]


def test_resume_refuses_other_recipe_pieces_and_keeps_the_checkpoints(
    demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Cutting recipes into other pieces changes which sequences an epoch holds: the saved
    # position would point into another order.
    run = tmp_path / "run"
    recipe = ["--objective", "recipe", "--max-steps", "2"]
    assert train_here(demo_data, run, *recipe, "--recipe-words", "64") == 0
    before = steps_on_disk(run)
    capsys.readouterr()
    argv = ["--data", str(demo_data), "--run", str(run), *SMALL, *recipe]
    assert main([*argv, "--recipe-words", "128"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--recipe-words 64, not 128" in err, err
    assert len(err.strip().splitlines()) == 1
    assert steps_on_disk(run) == before
