"""Checks that the CI Slurm (scripts/slurm_up.sh) does what the job templates and
hpc_rnn.submit rely on: multi-task batch jobs, requeue, and submitit with sacct.

Needs a running cluster and SLURM_CONF exported:

    scripts/slurm_up.sh && . scripts/slurm_env.sh && pytest -m slurm tests/test_slurm_cluster.py

Skipped (not failed) when there is no cluster. The whole file takes ~30 s (the requeue test alone ~15 s).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import check_cmd, run_cmd, sacct_state, wait_until

pytestmark = pytest.mark.slurm


def test_batch_job_with_two_tasks(slurm_cluster, tmp_path):
    out = tmp_path / "hostname.out"
    script = tmp_path / "two_tasks.sh"
    script.write_text("#!/bin/bash\nsrun hostname\n")
    # --wait returns when the job ends, with the job's exit code.
    check_cmd(
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
    job_id = check_cmd(
        "sbatch", "--parsable", "--time=5", f"--output={tmp_path / 'requeue.out'}", str(script)
    ).split(";")[0]
    try:
        wait_until(
            lambda: counts.exists() and counts.read_text().split() == ["0"], 30, "the first run"
        )
        check_cmd("scontrol", "requeue", job_id)
        # With cred_expire=10 the requeued job starts again after ~11-15 s (120 s default: ~150 s).
        wait_until(lambda: counts.read_text().split() == ["0", "1"], 60, "the requeued run")
        state = wait_until(
            lambda: (s := sacct_state(job_id)) in {"COMPLETED", "FAILED", "CANCELLED"} and s,
            20,
            "the job's end",
        )
        assert state == "COMPLETED"
    finally:
        run_cmd("scancel", job_id)


def _executor(folder: Path):
    import submitit  # a hard dependency: its absence is a failure, not a skip

    executor = submitit.AutoExecutor(folder=folder)
    assert executor.cluster == "slurm", executor.cluster
    executor.update_parameters(timeout_min=5, cpus_per_task=1)
    return executor


def _wait_done(job, timeout: float, what: str) -> None:
    wait_until(lambda: job.done(force_check=True), timeout, what, interval=1.0)


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
    wait_until(lambda: sacct_state(job.job_id) == "COMPLETED", 30, "sacct to report COMPLETED")


def test_submitit_cancel_reaches_cancelled(slurm_cluster, tmp_path):
    def sleep(seconds: float) -> None:
        time.sleep(seconds)

    executor = _executor(tmp_path)
    job = executor.submit(sleep, 300)
    wait_until(
        lambda: run_cmd("squeue", "-h", "-j", job.job_id, "-o", "%T").stdout.strip() == "RUNNING",
        30,
        f"submitit job {job.job_id} to run",
    )
    job.cancel()
    # Without accounting (sacct) submitit would see UNKNOWN forever and never count the job done.
    _wait_done(job, 30, f"cancelled job {job.job_id} to count as done")
    assert job.state.upper().startswith("CANCELLED"), job.state
    assert sacct_state(job.job_id) == "CANCELLED"
