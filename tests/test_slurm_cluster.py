"""Checks that the CI Slurm (scripts/slurm_up.sh) does what the job templates and
hpc_rnn.submit rely on: multi-task batch jobs, requeue, and submitit with sacct.

Needs a running cluster and SLURM_CONF exported:

    scripts/slurm_up.sh && . scripts/slurm_env.sh && pytest -m slurm tests/test_slurm_cluster.py

Skipped (not failed) when there is no cluster. The whole file takes ~30 s (the requeue test alone ~15 s).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm


def _run(*cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _check(*cmd: str, timeout: float = 30) -> str:
    proc = _run(*cmd, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} -> rc {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    )
    return proc.stdout.strip()


def _wait_until(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _sacct_state(job_id: str) -> str:
    out = _run("sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State").stdout.split()
    return out[0] if out else ""


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """The SLURM_CONF of a cluster that answers; skips the test otherwise."""
    conf = os.environ.get("SLURM_CONF")
    if not conf:
        pytest.skip(
            "SLURM_CONF is not set (run scripts/slurm_up.sh and source scripts/slurm_env.sh)"
        )
    if not Path(conf).is_file():
        pytest.skip(f"SLURM_CONF={conf} does not exist (run scripts/slurm_up.sh)")
    for tool in ("sinfo", "sbatch", "scontrol", "sacct"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not on PATH")
    try:
        proc = _run("sinfo", "-h", "-o", "%t", timeout=15)
    except subprocess.TimeoutExpired:
        pytest.skip("sinfo did not answer within 15 s")
    if proc.returncode != 0:
        pytest.skip(f"sinfo failed: {proc.stderr.strip()}")
    if not any(state.rstrip("*") in {"idle", "mix", "alloc"} for state in proc.stdout.split()):
        pytest.skip(f"no usable node (sinfo states: {proc.stdout.split()})")
    return conf


def test_batch_job_with_two_tasks(slurm_cluster, tmp_path):
    out = tmp_path / "hostname.out"
    script = tmp_path / "two_tasks.sh"
    script.write_text("#!/bin/bash\nsrun hostname\n")
    # --wait returns when the job ends, with the job's exit code.
    _check(
        "sbatch",
        "--wait",
        "--parsable",
        "--ntasks=2",
        "--time=2",
        f"--output={out}",
        str(script),
        timeout=60,
    )
    lines = out.read_text().splitlines()
    assert len(lines) == 2, lines


def test_requeue_runs_the_job_again(slurm_cluster, tmp_path):
    counts = tmp_path / "restart_counts.txt"
    script = tmp_path / "requeue.sh"
    script.write_text(
        "#!/bin/bash\n"
        f'echo "${{SLURM_RESTART_COUNT:-0}}" >> "{counts}"\n'
        'if [ "${SLURM_RESTART_COUNT:-0}" -ge 1 ]; then exit 0; fi\n'
        "sleep 120 & wait $!\n"
    )
    job_id = _check(
        "sbatch", "--parsable", "--time=5", f"--output={tmp_path / 'requeue.out'}", str(script)
    ).split(";")[0]
    try:
        _wait_until(
            lambda: counts.exists() and counts.read_text().split() == ["0"], 30, "the first run"
        )
        _check("scontrol", "requeue", job_id)
        # With cred_expire=10 the requeued job starts again after ~11-15 s (120 s default: ~150 s).
        _wait_until(lambda: counts.read_text().split() == ["0", "1"], 60, "the requeued run")
        state = _wait_until(
            lambda: (s := _sacct_state(job_id)) in {"COMPLETED", "FAILED", "CANCELLED"} and s,
            20,
            "the job's end",
        )
        assert state == "COMPLETED"
    finally:
        _run("scancel", job_id)


def _executor(folder: Path):
    submitit = pytest.importorskip("submitit")
    executor = submitit.AutoExecutor(folder=folder)
    assert executor.cluster == "slurm", executor.cluster
    executor.update_parameters(timeout_min=5, cpus_per_task=1)
    return executor


def _wait_done(job, timeout: float, what: str) -> None:
    _wait_until(lambda: job.done(force_check=True), timeout, what, interval=1.0)


def test_submitit_returns_the_result(slurm_cluster, tmp_path):
    # Defined locally so cloudpickle ships it by value: this test module is not
    # importable inside the job (a module-level function is pickled by reference).
    def add(a: int, b: int) -> int:
        return a + b

    executor = _executor(tmp_path)
    job = executor.submit(add, 2, 3)
    _wait_done(job, 60, f"submitit job {job.job_id}")
    assert job.result() == 5
    # The result file can appear before slurmdbd has recorded the job's end.
    _wait_until(lambda: _sacct_state(job.job_id) == "COMPLETED", 30, "sacct to report COMPLETED")


def test_submitit_cancel_reaches_cancelled(slurm_cluster, tmp_path):
    def sleep(seconds: float) -> None:
        time.sleep(seconds)

    executor = _executor(tmp_path)
    job = executor.submit(sleep, 300)
    _wait_until(
        lambda: _run("squeue", "-h", "-j", job.job_id, "-o", "%T").stdout.strip() == "RUNNING",
        30,
        f"submitit job {job.job_id} to run",
    )
    job.cancel()
    # Without accounting (sacct) submitit would see UNKNOWN forever and never count the job done.
    _wait_done(job, 30, f"cancelled job {job.job_id} to count as done")
    assert job.state.upper().startswith("CANCELLED"), job.state
    assert _sacct_state(job.job_id) == "CANCELLED"
