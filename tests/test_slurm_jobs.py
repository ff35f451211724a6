"""The job templates and hpc_rnn.submit on a real Slurm (scripts/slurm_up.sh): submitted as a
user would, waited for, and checked by what they leave on disk. Skipped without a cluster.

The CI node has 2 CPUs and 4 fake GPUs, so the templates are submitted with smaller
allocations (as a user overrides them); the training falls back to the CPU.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from conftest import ROOT, check_cmd, clean_env, run_cmd, sacct_state, train_command, wait_until

from hpc_rnn import checkpoint

pytestmark = pytest.mark.slurm

TINY = "--hidden 32 --log-every 1 --val-windows 100 --warmup-steps 2"
SUBMIT = [sys.executable, "-m", "hpc_rnn.submit"]
ONE_TASK = ["--ntasks-per-node=1", "--gpus-per-node=1", "--cpus-per-task=1", "--time=10"]
SMALL_ALLOC = ["--ntasks-per-node=2", "--gpus-per-node=2", "--cpus-per-task=1", "--time=10"]


def job_env(**extra: str) -> dict[str, str]:
    """What a user's shell exports to sbatch: the venv's python and the checkout on the path."""
    return clean_env(SLURM_CONF=os.environ["SLURM_CONF"], HPC_RNN_PYTHON=sys.executable, **extra)


def run_in(
    cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def sbatch(
    script: str, *args: str, cwd: Path, env: dict[str, str], script_args: tuple[str, ...] = ()
) -> str:
    """`sbatch --parsable ARGS jobs/SCRIPT SCRIPT_ARGS`; the job id."""
    cmd = ["sbatch", "--parsable", *args, str(ROOT / "jobs" / script), *script_args]
    proc = run_in(cmd, cwd, env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split(";")[0]


def wait_done(job: str, timeout: float = 240) -> str:
    return wait_until(
        lambda: (
            (s := sacct_state(job))
            in {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"}
            and s
        ),
        timeout,
        f"job {job} to finish",
    )


def train_steps(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    return [
        r["step"] for r in map(json.loads, path.read_text().splitlines()) if r["kind"] == "train"
    ]


def test_preprocess_train_generate_chained_with_sbatch(
    slurm_cluster: str, demo_corpus: Path, tmp_path: Path
) -> None:
    data, run, out = tmp_path / "data", tmp_path / "run", tmp_path / "recipes"
    env = job_env(
        CORPUS=str(demo_corpus),
        DATA=str(data),
        RUN=str(run),
        OUT=str(out),
        N="3",
        TRAIN_ARGS=f"{TINY} --epochs 2",
    )
    pre = sbatch("preprocess.sh", "--ntasks=2", "--time=5", cwd=tmp_path, env=env)
    trn = sbatch(
        "train_lstm.sh", *SMALL_ALLOC, f"--dependency=afterok:{pre}", cwd=tmp_path, env=env
    )
    gen = sbatch(
        "generate.sh",
        "--gpus-per-node=1",
        "--cpus-per-task=1",
        "--time=5",
        f"--dependency=afterok:{trn}",
        cwd=tmp_path,
        env=env,
    )
    assert wait_done(gen) == "COMPLETED", (tmp_path / f"hpc_rnn_generate-{gen}.out").read_text()
    assert sacct_state(pre) == sacct_state(trn) == "COMPLETED"

    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["ranks"] == 2  # srun --mpi=pmi2 made one MPI world of 2
    log = (tmp_path / f"hpc_rnn_train-{trn}.out").read_text()
    assert "world 2 on cpu" in log and "training exited with 0" in log
    state = checkpoint.load(checkpoint.resolve(run))
    assert state["position"]["epoch"] == 2
    assert (run / "curves.png").exists()
    recipes = sorted(out.glob("recipe-*.txt"))
    assert len(recipes) == 3 and all(r.read_text().strip() for r in recipes)


def test_submit_through_submitit(slurm_cluster: str, demo_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    submit_cmd = [
        *SUBMIT,
        "--gpus",
        "2",
        "--cpus-per-task",
        "1",
        "--time",
        "00:10:00",
        "--data",
        str(demo_data),
        "--run",
        str(run),
        *TINY.split(),
        "--max-steps",
        "6",
    ]
    # The check (sbatch --test-only) is on: a job that fits goes through it.
    proc = run_in([*submit_cmd, "--wait"], ROOT, job_env(), timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "train: job" in proc.stdout and f"'run': '{run}'" in proc.stdout
    assert checkpoint.load(checkpoint.resolve(run))["step"] == 6
    logs = "".join(p.read_text() for p in (run / "submitit").glob("*_0_log.out"))
    assert "world 2 on cpu" in logs

    # --dry-run prints the very script submitit handed to sbatch, on a login node as on a laptop.
    job = re.search(r"train: job (\d+),", proc.stdout).group(1)
    submitted = (run / "submitit" / f"{job}_submission.sh").read_text()
    laptop = clean_env(PATH=str(Path(sys.executable).parent))
    for env in (job_env(), laptop):
        dry = run_in([*submit_cmd, "--dry-run"], ROOT, env)
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout == submitted


def submit_refused(tmp_path: Path, *args: str) -> str:
    """Run hpc_rnn.submit (check on) for a job Slurm cannot start; return its one error line,
    having checked that the job never reached the queue."""
    name = f"hpc_rnn_refused_{tmp_path.name}"
    proc = run_in(
        [*SUBMIT, "--job-name", name, *args, "--data", "data", "--run", "run"], tmp_path, job_env()
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Slurm would never start"), lines
    assert check_cmd("squeue", "-h", "--name", name) == ""
    assert check_cmd("sacct", "-n", "-X", "--name", name) == ""
    assert not (tmp_path / "run").exists()
    return lines[0]


def test_check_refuses_more_cpus_than_the_node_has(slurm_cluster: str, tmp_path: Path) -> None:
    line = submit_refused(tmp_path, "--gpus", "2", "--cpus-per-task", "64")
    assert "Requested node configuration is not available" in line  # Slurm's own words
    assert "128 CPUs per node" in line and "lower --cpus-per-task or --gpus" in line


def test_check_refuses_a_time_over_the_partition_limit(slurm_cluster: str, tmp_path: Path) -> None:
    line = submit_refused(tmp_path, "--cpus-per-task", "1", "--time", "2-00:00:00")
    assert "MaxTime 1-00:00:00" in line and "PartitionTimeLimit" in line
    assert "lower --time" in line


def test_no_check_submits_and_wait_reports_the_pending_reason(
    slurm_cluster: str, tmp_path: Path
) -> None:
    # Without the check the job that can never start is queued; --wait says why it waits.
    proc = subprocess.Popen(
        [
            *SUBMIT,
            "--no-check",
            "--wait",
            "--report-every",
            "1",
            "--cpus-per-task",
            "64",
            "--data",
            "data",
            "--run",
            "run",
        ],
        cwd=tmp_path,
        env=job_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    job = ""
    try:
        first = lines.get(timeout=60)
        job = re.match(r"train: job (\d+), logs ", first).group(1)
        pending = re.compile(
            rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d train: job {job}"
            r" PENDING \((\w+)\)\n"
        )
        # Right after submission the reason may read None, until the scheduler has looked.
        reason = wait_until(
            lambda: (
                (m := pending.fullmatch(lines.get(timeout=60)))
                and m.group(1) != "None"
                and m.group(1)
            ),
            60,
            "a state line with a pending reason",
        )
        assert reason == "PartitionConfig"
    finally:
        if job:
            run_cmd("scancel", job)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2  # a cancelled job is reported, in one line
    errors = err.splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"error: train: job {job} failed"), err


def test_a_signalled_job_checkpoints_requeues_and_resumes_exactly(
    slurm_cluster: str, demo_data: Path, tmp_path: Path
) -> None:
    steps = 60
    args = f"{TINY} --max-steps {steps} --epochs 100 --ckpt-every-steps 1000"
    run = tmp_path / "run"
    env = job_env(DATA=str(demo_data), RUN=str(run), TRAIN_ARGS=args)
    job = sbatch("train_lstm.sh", *ONE_TASK, cwd=tmp_path, env=env)
    wait_until(lambda: len(train_steps(run)) >= 5, 120, "training to take 5 steps")
    # What Slurm sends at --signal=USR2@300 before the time limit, to every task of the step.
    check_cmd("scancel", "--signal=USR2", job)
    wait_until(
        lambda: check_cmd("scontrol", "show", "job", job).find("Restarts=1") >= 0, 60, "the requeue"
    )
    assert wait_done(job) == "COMPLETED"

    log = (tmp_path / f"hpc_rnn_train-{job}.out").read_text()
    assert "stopped by SIGUSR2" in log and f"requeued Slurm job {job}" in log
    assert "start 1 on" in log and "resuming at step" in log
    assert train_steps(run) == list(range(1, steps + 1))  # the counter continued; no step twice

    straight = tmp_path / "straight"
    done = run_in(
        train_command(demo_data, straight, *args.split()),
        ROOT,
        clean_env(),
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    a = checkpoint.load(checkpoint.resolve(run))["model"]
    b = checkpoint.load(checkpoint.resolve(straight))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_template_passes_arguments_after_the_script_name(
    slurm_cluster: str, demo_data: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    env = job_env(DATA=str(demo_data), RUN=str(run), TRAIN_ARGS="--log-every 1 --max-steps 50")
    # After the script name: the training's flags, over TRAIN_ARGS.
    after = ("--hidden", "16", "--max-steps", "3")
    job = sbatch("train_lstm.sh", *ONE_TASK, cwd=tmp_path, env=env, script_args=after)
    assert wait_done(job) == "COMPLETED", (tmp_path / f"hpc_rnn_train-{job}.out").read_text()
    assert train_steps(run) == [1, 2, 3]
    assert json.loads((run / "config.json").read_text())["model"]["hidden"] == 16


def test_train_args_are_not_globbed(slurm_cluster: str, demo_data: Path, tmp_path: Path) -> None:
    # Unquoted, "1*" would expand to the file "11" here and train silently with seed 11.
    (tmp_path / "11").touch()
    env = job_env(DATA=str(demo_data), RUN=str(tmp_path / "run"), TRAIN_ARGS="--seed 1*")
    job = sbatch("train_lstm.sh", *ONE_TASK, cwd=tmp_path, env=env)
    assert wait_done(job) == "FAILED"
    assert "invalid int value: '1*'" in (tmp_path / f"hpc_rnn_train-{job}.out").read_text()
