"""Training as a user runs it: real processes, real signals, real checkpoints on disk."""

from __future__ import annotations

import json
import math
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, clean_env, run_in_repo, train_command

from hpc_rnn import checkpoint
from hpc_rnn.train import AUTO_BATCH, EXIT_STOPPED, parse_config, with_device_batch

# A small model so that the tests take seconds; dropout makes the RNG part of the state.
SMALL = [
    "--hidden",
    "32",
    "--layers",
    "2",
    "--dropout",
    "0.1",
    "--batch-size",
    "16",
    "--log-every",
    "1",
    "--val-windows",
    "200",
    "--warmup-steps",
    "3",
]


def train_cmd(data: Path, run: Path, *extra: str) -> list[str]:
    return train_command(data, run, *SMALL, *extra)


def run_train(
    data: Path, run: Path, *extra: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return run_in_repo(train_cmd(data, run, *extra), timeout=timeout)


def final_params(run: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(checkpoint.resolve(run))["model"]


def steps_logged(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(x)["step"] for x in path.read_text().splitlines() if '"train"' in x]


@pytest.mark.parametrize("objective", ["all", "last"])
def test_resume_after_signal_is_bitwise_exact(
    demo_data: Path, tmp_path: Path, objective: str
) -> None:
    steps = "40" if objective == "all" else "30"
    common = ("--objective", objective, "--max-steps", steps, "--epochs", "100")
    straight = tmp_path / "straight"
    done = run_train(demo_data, straight, *common)
    assert done.returncode == 0, done.stderr

    # The same run, stopped by a real signal at a step the test does not choose, then resumed.
    stopped = tmp_path / "stopped"
    proc = subprocess.Popen(
        train_cmd(demo_data, stopped, *common),
        cwd=ROOT,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not steps_logged(stopped) or steps_logged(stopped)[-1] < 5:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR1)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_STOPPED, err
    assert "stopped by SIGUSR1" in out
    stop_step = checkpoint.load(checkpoint.resolve(stopped))["step"]
    assert 5 <= stop_step < int(steps)

    resumed = run_train(demo_data, stopped, *common)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming at step {stop_step}" in resumed.stdout

    a, b = final_params(straight), final_params(stopped)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs after resume"
    # Every step is logged exactly once across the two runs.
    assert steps_logged(stopped) == list(range(1, int(steps) + 1))


def test_resume_skips_a_corrupt_checkpoint(demo_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = run_train(demo_data, run, "--max-steps", "6", "--ckpt-every-steps", "3")
    assert first.returncode == 0, first.stderr
    newest = checkpoint.complete(run)[0]
    with open(newest / checkpoint.STATE_FILE, "r+b") as f:
        f.seek(100)
        f.write(b"garbage")
    again = run_train(demo_data, run, "--max-steps", "8", "--ckpt-every-steps", "3")
    assert again.returncode == 0, again.stderr
    assert "skipping checkpoint" in again.stderr and "corrupt" in again.stderr
    assert "resuming at step 3" in again.stdout


def test_refuses_checkpoint_of_another_model_or_vocabulary(
    demo_data: Path, tmp_path: Path, run_preprocess
) -> None:
    run = tmp_path / "run"
    assert run_train(demo_data, run, "--max-steps", "2").returncode == 0
    before = {p.name for p in checkpoint.complete(run)}

    other_shape = run_train(demo_data, run, "--max-steps", "4", "--hidden", "48")
    assert other_shape.returncode == 2
    assert (
        other_shape.stderr.startswith("error: checkpoint") and "Traceback" not in other_shape.stderr
    )

    # The same corpus with another min count: a consistent data directory, another vocabulary.
    other_vocab = tmp_path / "other_vocab"
    corpus = json.loads((demo_data / "manifest.json").read_text())["corpus"]
    assert run_preprocess(corpus, "--out", other_vocab, "--min-count", "3").returncode == 0
    wrong = run_in_repo(train_cmd(other_vocab, run, "--max-steps", "4"), timeout=120)
    assert wrong.returncode == 2 and "another vocabulary" in wrong.stderr
    assert {p.name for p in checkpoint.complete(run)} == before


def test_writes_metrics_plot_and_config(demo_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = run_train(demo_data, run, "--epochs", "1")
    assert done.returncode == 0, done.stderr
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert len(epochs) == 1 and epochs[0]["epoch"] == 1
    assert 1.0 < epochs[0]["val_ppl"] < 10_000 and 0.0 <= epochs[0]["val_acc"] <= 1.0
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((run / "config.json").read_text())
    assert saved["model"]["hidden"] == 32 and saved["objective"] == "all"
    state = checkpoint.load(checkpoint.resolve(run))
    assert state["config"] == saved and state["position"]["epoch"] == 1
    assert checkpoint.read_best(run)["step"] == state["step"]


def test_training_lowers_the_validation_loss(demo_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = run_train(demo_data, run, "--epochs", "2", "--lr", "0.01")
    assert done.returncode == 0, done.stderr
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r["val_loss"] for r in records if r["kind"] == "epoch"]
    n_words = len(json.loads((demo_data / "vocab.json").read_text())["decoding"])
    # Guessing uniformly scores log(n_words); a model that learned something is well below.
    assert len(val) == 2 and val[1] < val[0] < math.log(n_words) - 1.0


def test_seed_preset_is_the_lecture_and_flags_override_it() -> None:
    cfg = parse_config(["--data", "d", "--run", "r", "--preset", "seed"])
    assert (cfg.objective, cfg.optimizer, cfg.batch_size, cfg.epochs) == ("last", "sgd", 128, 200)
    assert (cfg.model.cell, cfg.model.hidden, cfg.model.layers) == ("lstm", 256, 1)
    cfg = parse_config(
        ["--data", "d", "--run", "r", "--preset", "seed", "--epochs", "3", "--cell", "gru"]
    )
    assert cfg.epochs == 3 and cfg.model.cell == "gru" and cfg.optimizer == "sgd"


def test_batch_size_zero_picks_by_device_and_an_explicit_one_stays() -> None:
    auto = parse_config(["--data", "d", "--run", "r"])
    assert auto.batch_size == 0
    assert with_device_batch(auto, torch.device("cpu")).batch_size == AUTO_BATCH["cpu"] == 32
    assert with_device_batch(auto, torch.device("cuda")).batch_size == AUTO_BATCH["cuda"] == 128
    given = parse_config(["--data", "d", "--run", "r", "--batch-size", "7"])
    assert with_device_batch(given, torch.device("cuda")).batch_size == 7


def test_bad_options_give_one_line(demo_data: Path, tmp_path: Path) -> None:
    missing = run_train(tmp_path / "nope", tmp_path / "run")
    assert (
        missing.returncode == 2
        and missing.stderr.count("\n") == 1
        and "Traceback" not in missing.stderr
    )
    bad_opt = run_train(demo_data, tmp_path / "run", "--optimizer", "adam2")
    assert bad_opt.returncode == 2 and bad_opt.stderr.startswith("error:")
    bad_batch = run_train(demo_data, tmp_path / "run", "--batch-size", "-4")
    assert bad_batch.returncode == 2 and bad_batch.stderr.startswith("error: --batch-size")
