"""The job templates and hpc_rnn.submit on a real Slurm (scripts/slurm_up.sh): submitted as a
user would, waited for, and checked by what they leave on disk. Skipped without a cluster.

The CI nodes (n1, n2) advertise 4 CPUs and 4 fake GPUs each, so the templates are submitted
with smaller allocations (as a user overrides them) and --device cpu: in an allocation with
GPUs, --device auto refuses to train without CUDA. Two-node jobs: tests/test_two_nodes.py.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import (
    ROOT,
    STAMP,
    check_cmd,
    clean_env,
    run_cmd,
    sacct_state,
    train_command,
    wait_until,
)

from hpc_rnn import checkpoint, runlock

pytestmark = pytest.mark.slurm

TINY = "--device cpu --hidden 32 --log-every 1 --val-windows 100 --warmup-steps 2"
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
        GENERATE_ARGS="--device cpu",
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
    assert "world 2 on cpu" in log and "training exited with 0: done" in log
    state = checkpoint.load_given(run)[1]
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
    assert checkpoint.load_given(run)[1]["step"] == 6
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
        pending = re.compile(rf"{STAMP}train: job {job} PENDING \((\w+)\)\n")
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
    # Far more steps than the signal needs to land in (it is sent after step 5), however loaded
    # the machine: a signal that came after the end would test nothing.
    steps = 400
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
        # The job's threads (the script sets OMP_NUM_THREADS from --cpus-per-task=1): CPU
        # kernels may split a sum by thread, and bitwise equality is of equal work.
        clean_env(OMP_NUM_THREADS="1"),
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    a = checkpoint.load_given(run)[1]["model"]
    b = checkpoint.load_given(straight)[1]["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_template_passes_arguments_after_the_script_name(
    slurm_cluster: str, demo_data: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    env = job_env(
        DATA=str(demo_data), RUN=str(run), TRAIN_ARGS="--device cpu --log-every 1 --max-steps 50"
    )
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


def test_scancel_checkpoints_and_stops_without_requeueing(
    slurm_cluster: str, demo_data: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    env = job_env(DATA=str(demo_data), RUN=str(run), TRAIN_ARGS=f"{TINY} --max-steps 100000")
    job = sbatch("train_lstm.sh", *SMALL_ALLOC, cwd=tmp_path, env=env)
    wait_until(lambda: len(train_steps(run)) >= 3, 120, "training to take 3 steps")
    check_cmd("scancel", job)  # TERM to every rank, KILL KillWait (5 s) later
    assert wait_done(job) == "CANCELLED"
    # Slurm says CANCELLED at once; the ranks then have KillWait (5 s) to write their stop
    # checkpoint. Rank 0 releases the run's lock last, on its way out.
    wait_until(lambda: not (run / runlock.LOCK_FILE).exists(), 60, "rank 0 to stop and exit")
    assert "Restarts=0" in check_cmd("scontrol", "show", "job", job)
    # The ranks' own "stopped by SIGTERM" line may never reach the log: srun, which relays it,
    # is signalled too and stops relaying. What they leave on disk says it: the checkpoint of
    # the very step they stopped at, and no requeue.
    log = (tmp_path / f"hpc_rnn_train-{job}.out").read_text()
    assert "requeued" not in log
    steps = train_steps(run)
    assert len(steps) >= 3 and checkpoint.load_given(run)[1]["step"] == steps[-1]


def test_submit_wait_sees_a_requeued_job_through_to_its_result(
    slurm_cluster: str, demo_data: Path, tmp_path: Path
) -> None:
    import submitit  # a hard dependency: its absence is a failure, not a skip

    run, steps = tmp_path / "run", 60
    cmd = [*SUBMIT, "--gpus", "2", "--cpus-per-task", "1", "--time", "10", "--wait"]
    args = [*TINY.split(), "--max-steps", str(steps), "--epochs", "100"]
    proc = subprocess.Popen(
        [*cmd, "--report-every", "5", *args],
        cwd=tmp_path,
        env=job_env(DATA=str(demo_data), RUN=str(run)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True)
    reader.start()
    job = ""
    try:
        first = lines.get(timeout=120)
        job = re.match(r"train: job (\d+), logs ", first).group(1)
        wait_until(lambda: len(train_steps(run)) >= 3, 120, "training to take 3 steps")
        check_cmd("scancel", "--signal=USR2", job)
        wait_until(lambda: "Restarts=1" in check_cmd("scontrol", "show", "job", job), 60, "requeue")
        # From the requeue to the end, submitit must not count the job as done (a result file
        # written by the stopped attempt would make it so).
        handle = submitit.SlurmJob(folder=run / "submitit", job_id=job, tasks=(0, 1))
        checks = 0
        while proc.poll() is None:
            done = handle.done(force_check=True)
            if handle.paths.result_pickle.exists():
                break  # the requeued attempt has finished
            assert not done, f"job {job} counted as done while requeued ({handle.state})"
            checks += 1
            time.sleep(1)
        assert checks >= 5  # the requeued job pends ~10 s, then trains again
        proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            run_cmd("scancel", job)
            proc.kill()
    reader.join(timeout=10)
    out = first + "".join(lines.queue)
    assert proc.returncode == 0, out + proc.stderr.read()
    assert f"train: {{'run': '{run}', 'exit': 0, 'step': {steps}" in out
    assert train_steps(run) == list(range(1, steps + 1))
    logs = "".join(p.read_text() for p in (run / "submitit").glob(f"{job}_0_log.out"))
    assert "stopped by SIGUSR2" in logs and "resuming at step" in logs


def test_sweep_is_one_job_array_and_ends_in_a_table(
    slurm_cluster: str, demo_data: Path, tmp_path: Path
) -> None:
    run = tmp_path / "sweep"
    cmd = [*SUBMIT, "--sweep", "lr=0.001,0.003", "hidden=16,24", "--cpus-per-task", "1"]
    args = ["--time", "10", "--wait", *TINY.split(), "--max-steps", "3", "--val-windows", "50"]
    proc = run_in(
        [*cmd, *args, "--data", str(demo_data), "--run", str(run)], ROOT, job_env(), timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = re.findall(r"^(lr=\S+ hidden=\d+): job (\d+)_(\d), logs ", proc.stdout, re.M)
    assert len({array for _, array, _ in jobs}) == 1 and len(jobs) == 4  # one array of 4
    array = jobs[0][1]
    assert (
        check_cmd("sacct", "-n", "-X", "-P", "-j", array, "-o", "JobName").split()
        == ["sweep-sweep"] * 4
    )
    table = proc.stdout[proc.stdout.index("point ") :].splitlines()
    assert re.split(r"\s{2,}", table[0]) == ["point", "job", "steps", "val_loss", "run"]
    for line, (lr, hidden) in zip(
        table[1:], [(a, b) for a in ("0.001", "0.003") for b in ("16", "24")], strict=True
    ):
        point, job, steps, loss, point_run = re.split(r"\s{2,}", line)
        assert point == f"lr={lr} hidden={hidden}" and job.startswith(f"{array}_")
        assert steps == "3" and float(loss) > 0
        assert point_run == str(run / f"lr={lr}_hidden={hidden}")
        saved = json.loads((Path(point_run) / "config.json").read_text())
        assert saved["lr"] == float(lr) and saved["model"]["hidden"] == int(hidden)
