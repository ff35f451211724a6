"""Data-parallel training with real processes and gloo: the same math as one process, resume
across world sizes, and a dead rank that ends the job instead of hanging it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, clean_env, run_in_repo, train_command

from hpc_rnn import checkpoint
from hpc_rnn.distributed import first_host, process_layout
from hpc_rnn.train import EXIT_PEER_LOST

COMMON = [
    "--hidden",
    "32",
    "--log-every",
    "2",
    "--val-windows",
    "100",
    "--warmup-steps",
    "0",
    "--schedule",
    "constant",
    "--epochs",
    "100",
]


def train(data: Path, run: Path, ranks: int, batch: int, steps: int) -> None:
    cmd = train_command(data, run, *COMMON, "--batch-size", str(batch), "--max-steps", str(steps))
    if ranks > 1:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={ranks}",
            *cmd[1:],
        ]
    done = run_in_repo(cmd, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert f"world {ranks} on cpu" in done.stdout


def params(run: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(checkpoint.resolve(run))["model"]


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_two_ranks_with_batch_b_equal_one_rank_with_batch_2b(
    demo_data: Path, tmp_path: Path
) -> None:
    train(demo_data, tmp_path / "one", 1, 16, 10)
    train(demo_data, tmp_path / "two", 2, 8, 10)
    one, two = params(tmp_path / "one"), params(tmp_path / "two")
    assert max_diff(one, two) < 1e-5
    # ...and 10 steps did move the weights far more than that.
    train(demo_data, tmp_path / "short", 1, 16, 2)
    assert max_diff(one, params(tmp_path / "short")) > 1e-3


@pytest.mark.parametrize(("before", "after"), [(2, 1), (1, 2)])
def test_a_checkpoint_resumes_with_another_world_size(
    demo_data: Path, tmp_path: Path, before: int, after: int
) -> None:
    global_batch = 16
    straight, switched = tmp_path / "straight", tmp_path / "switched"
    train(demo_data, straight, 1, global_batch, 8)
    train(demo_data, switched, before, global_batch // before, 4)
    train(demo_data, switched, after, global_batch // after, 8)
    assert checkpoint.load(checkpoint.resolve(switched))["step"] == 8
    assert max_diff(params(straight), params(switched)) < 1e-5


def test_a_dead_rank_ends_the_others_with_a_clear_error(demo_data: Path, tmp_path: Path) -> None:
    env = clean_env(
        WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(29400 + os.getpid() % 500)
    )
    cmd = train_command(
        demo_data,
        tmp_path / "run",
        *COMMON,
        "--batch-size",
        "8",
        "--max-steps",
        "100000",
        "--dist-timeout-s",
        "30",
    )
    ranks = [
        subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    deadline = time.monotonic() + 120
    metrics = tmp_path / "run" / "metrics.jsonl"
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        assert time.monotonic() < deadline and ranks[0].poll() is None
        time.sleep(0.1)
    ranks[1].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    _, err = ranks[0].communicate(timeout=90)
    ranks[1].communicate()
    assert ranks[0].returncode == EXIT_PEER_LOST, err[-3000:]
    assert time.monotonic() - killed < 60
    assert "error: rank 0 lost contact with another rank" in err and "Traceback" not in err


def test_layout_from_slurm_and_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in list(os.environ):
        if k.startswith(("SLURM_", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_")):
            monkeypatch.delenv(k)
    assert process_layout() == (0, 1, 0, "127.0.0.1", 0)
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "8")
    monkeypatch.setenv("SLURM_PROCID", "5")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_STEP_NODELIST", "gpu[07-08]")
    monkeypatch.setenv("SLURM_JOB_ID", "123456")
    assert process_layout() == (5, 8, 1, "gpu07", 20000 + 123456 % 20000)
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("MASTER_ADDR", "n1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    assert process_layout()[:2] == (2, 4)


@pytest.mark.parametrize(
    ("nodelist", "first"),
    [("node1", "node1"), ("gpu[03-04,07],cpu1", "gpu03"), ("a1,b[2-3]", "a1"), ("x[9]", "x9")],
)
def test_first_host_of_a_slurm_node_list(nodelist: str, first: str) -> None:
    assert first_host(nodelist) == first
