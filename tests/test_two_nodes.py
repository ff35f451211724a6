"""Training across the two nodes of the CI Slurm (scripts/slurm_up.sh: n1 and n2, 4 fake GPUs
each): 8 gloo ranks on the CPU, as `sbatch --nodes=2 jobs/train_lstm.sh` and
`python -m hpc_rnn.submit --nodes 2 --gpus 4` start them. Each job is checked by what a user
would look at: the log, sacct, the metrics and the final weights, which must equal those of one
process with 8 times the per-rank batch. Skipped without a cluster.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from conftest import (
    ROOT,
    check_cmd,
    clean_env,
    run_cmd,
    run_in_repo,
    train_command,
    wait_until,
)
from test_slurm_jobs import SUBMIT, job_env, run_in, sbatch, train_steps, wait_done

from hpc_rnn import checkpoint
from hpc_rnn.cli import UserError
from hpc_rnn.distributed import master_address

pytestmark = pytest.mark.slurm

STEPS = 40
PER_RANK_BATCH = 2
# Fake GPUs: --device cpu, or the job would refuse to train without CUDA.
ARGS = (
    "--device cpu --hidden 16 --log-every 1 --val-windows 50 --warmup-steps 0"
    f" --schedule constant --epochs 100 --max-steps {STEPS}"
)
TWO_NODES = ["--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--cpus-per-task=1"]


@pytest.fixture(scope="module")
def one_process(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The weights of 1 process with 8x the per-rank batch, after STEPS steps."""
    run = tmp_path_factory.mktemp("one_process") / "run"
    cmd = train_command(demo_data, run, *ARGS.split(), "--batch-size", str(8 * PER_RANK_BATCH))
    done = run_in_repo(cmd, timeout=240, env=clean_env(OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr
    return checkpoint.load_given(run)[1]["model"]


def max_diff(a: dict, b: dict) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


def assert_same_as_one_process(run: Path, reference: dict) -> None:
    state = checkpoint.load_given(run)[1]
    assert state["step"] == STEPS
    assert max_diff(state["model"], reference) < 1e-5


def assert_eight_ranks_on_two_nodes(log: str) -> None:
    """Every rank said where it runs: ranks 0-3 on n1, 4-7 on n2, local ranks 0-3 on each."""
    found = re.findall(r"^rank (\d)/8 local (\d) on (n\d): cpu, \d+ cores, 1 threads$", log, re.M)
    seen = {(int(r), int(local), node) for r, local, node in found}
    expected = {(r, r % 4, "n1" if r < 4 else "n2") for r in range(8)}
    assert expected <= seen, found


def train_job(run: Path, tmp_path: Path, demo_data: Path, *extra: str) -> str:
    env = job_env(DATA=str(demo_data), RUN=str(run))
    script_args = (*ARGS.split(), "--batch-size", str(PER_RANK_BATCH), *extra)
    return sbatch(
        "train_lstm.sh", *TWO_NODES, "--time=10", cwd=tmp_path, env=env, script_args=script_args
    )


def job_log(tmp_path: Path, job: str) -> str:
    return (tmp_path / f"hpc_rnn_train-{job}.out").read_text()


def test_two_node_job_signalled_before_its_time_limit_requeues_and_matches_one_process(
    demo_data: Path, one_process: dict, tmp_path: Path, slurm_cluster: str
) -> None:
    run = tmp_path / "run"
    job = train_job(run, tmp_path, demo_data)
    wait_until(lambda: len(train_steps(run)) >= 3, 180, "8 ranks to take 3 steps")
    # What --signal=USR2@300 delivers before the time limit, to every task on both nodes.
    check_cmd("scancel", "--signal=USR2", job)
    wait_until(lambda: "Restarts=1" in check_cmd("scontrol", "show", "job", job), 90, "requeue")
    assert wait_done(job, 240) == "COMPLETED", job_log(tmp_path, job)

    log = job_log(tmp_path, job)
    assert "stopped by SIGUSR2" in log and f"requeued Slurm job {job}" in log
    assert "start 1 on n[1-2]" in log and "resuming at step" in log
    assert log.count("world 8 on cpu") == 2  # both attempts
    assert_eight_ranks_on_two_nodes(log)
    assert train_steps(run) == list(range(1, STEPS + 1))  # each step once, none skipped
    assert_same_as_one_process(run, one_process)


def training_pids(job: str, node: str) -> list[int]:
    """The training processes of `job` on `node` (both nodes are this machine)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if (
            b"hpc_rnn.train" in cmdline
            and f"SLURM_JOB_ID={job}".encode() in env
            and f"SLURMD_NODENAME={node}".encode() in env
        ):
            pids.append(int(proc.name))
    return pids


def test_killing_one_node_ends_the_job_at_once_and_a_resubmission_resumes_exactly(
    demo_data: Path, one_process: dict, tmp_path: Path, slurm_cluster: str
) -> None:
    run = tmp_path / "run"
    timeout_s = 60
    job = train_job(
        run, tmp_path, demo_data, "--ckpt-every-steps", "2", "--dist-timeout-s", str(timeout_s)
    )
    wait_until(lambda: len(train_steps(run)) >= 5, 180, "8 ranks to take 5 steps")
    victims = training_pids(job, "n2")
    assert len(victims) == 4, victims
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    assert wait_done(job, timeout_s) == "FAILED"
    assert time.monotonic() - killed < timeout_s
    assert training_pids(job, "n1") == []  # no rank left waiting for the dead ones
    log = job_log(tmp_path, job)
    assert log.count("training exited with") == 1
    assert "failed: resubmit to resume from the last checkpoint" in log
    assert "Traceback" not in log

    again = train_job(run, tmp_path, demo_data)
    assert wait_done(again, 240) == "COMPLETED", job_log(tmp_path, again)
    assert "resuming at step" in job_log(tmp_path, again)
    assert train_steps(run) == list(range(1, STEPS + 1))
    assert_same_as_one_process(run, one_process)


def test_submit_two_nodes_four_gpus_takes_data_and_run_from_the_environment(
    demo_data: Path, one_process: dict, tmp_path: Path, slurm_cluster: str
) -> None:
    run = tmp_path / "run"
    # The design card's command, DATA and RUN from the environment as for the sbatch templates.
    cmd = [*SUBMIT, "--nodes", "2", "--gpus", "4", "--cpus-per-task", "1", "--time", "10"]
    flags = [*ARGS.split(), "--batch-size", str(PER_RANK_BATCH), "--wait"]
    env = job_env(DATA=str(demo_data), RUN=str(run), MASTER_PORT="29500")
    proc = run_in([*cmd, *flags], ROOT, env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job = re.search(r"train: job (\d+),", proc.stdout).group(1)
    assert f"'run': '{run}', 'exit': 0, 'step': {STEPS}" in proc.stdout
    assert check_cmd("sacct", "-n", "-X", "-P", "-j", job, "-o", "JobName,NodeList") == (
        "train-run|n[1-2]"
    )
    logs = "".join(p.read_text() for p in sorted((run / "submitit").glob(f"{job}_*_log.out")))
    assert_eight_ranks_on_two_nodes(logs)
    assert_same_as_one_process(run, one_process)


WORLD_PY = """\
import sys
import time

import torch.distributed as dist

from hpc_rnn.cli import run_main
from hpc_rnn.distributed import init_world


def body():
    started = time.monotonic()
    world = init_world("cpu", float(sys.argv[1]), rendezvous_dir=None if sys.argv[2] == "-" else sys.argv[2])
    dist.barrier()
    print("joined", world.rank, "in", round(time.monotonic() - started), "s", flush=True)


raise SystemExit(run_main(body))
"""


def world_job(
    tmp_path: Path,
    name: str,
    *sbatch_args: str,
    rendezvous: str = "",
    wrap: str = "",
    wait: bool = True,
) -> tuple[str, Path]:
    """An sbatch job whose srun step joins one process group with init_world and leaves."""
    (tmp_path / "world.py").write_text(WORLD_PY)
    # 30: init_world's timeout in seconds.
    command = f"{sys.executable} {tmp_path / 'world.py'} 30 {rendezvous or '-'}"
    script = tmp_path / f"{name}.sh"
    script.write_text(f"#!/bin/bash\nsrun {wrap.format(command=command) if wrap else command}\n")
    out = tmp_path / f"{name}.out"
    # Its exit code is the job's: the callers check what the ranks printed, and sacct.
    job = (
        run_cmd(
            "sbatch",
            "--parsable",
            *(["--wait"] if wait else []),
            "--time=2",
            f"--output={out}",
            f"--export=ALL,PYTHONPATH={ROOT}",
            *sbatch_args,
            str(script),
            timeout=600,
        )
        .stdout.split(";")[0]
        .strip()
    )
    return job, out


def joined(out: Path) -> list[str]:
    """The ranks that joined, each checked to have taken less than a minute."""
    found = re.findall(r"^joined (\d) in (\d+) s$", out.read_text(), re.M)
    assert all(int(seconds) < 60 for _, seconds in found), found
    return sorted(rank for rank, _ in found)


def test_unresolvable_master_falls_back_to_the_node_address(
    tmp_path: Path, slurm_cluster: str
) -> None:
    """n1 and n2 hidden from the resolver: init_world asks Slurm for n1's NodeAddr."""
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    # unshare gives each task its own mount namespace, where /etc/hosts lacks n1 and n2.
    wrap = f"unshare -m bash -c 'mount --bind {hosts} /etc/hosts && exec {{command}}'"
    _, out = world_job(tmp_path, "hidden", "--nodes=2", "--ntasks-per-node=1", wrap=wrap)
    assert joined(out) == ["0", "1"], out.read_text()  # c10d alone retries for minutes


def test_jobs_sharing_nodes_and_a_master_port_from_the_shell_do_not_collide(
    tmp_path: Path, slurm_cluster: str
) -> None:
    # Both started from a shell that exported MASTER_PORT: a Slurm step does not use it.
    os.environ["MASTER_PORT"] = "29511"
    try:
        jobs = [
            world_job(
                tmp_path,
                f"job{i}",
                "--nodes=2",
                "--ntasks-per-node=2",
                rendezvous=rendezvous,
                wait=False,
            )
            for i, rendezvous in enumerate(["", str(tmp_path / "shared")])
        ]
    finally:
        del os.environ["MASTER_PORT"]
    for job, out in jobs:
        assert wait_done(job, 120) == "COMPLETED", out.read_text()
        assert joined(out) == ["0", "1", "2", "3"]
    assert list((tmp_path / "shared").iterdir()) == []  # the rendezvous file is gone


def test_a_busy_port_is_one_clear_error_on_every_rank_of_the_step(
    demo_data: Path, tmp_path: Path, slurm_cluster: str
) -> None:
    with socket.socket() as busy:  # another program's server on the port, on n1's address
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = job_env(DATA=str(demo_data), RUN=str(tmp_path / "run"), HPC_RNN_MASTER_PORT=str(port))
        script_args = (*ARGS.split(), "--batch-size", "2", "--dist-timeout-s", "600")
        nodes = ["--nodes=2", "--ntasks-per-node=2", "--cpus-per-task=1", "--time=10"]
        job = sbatch("train_lstm.sh", *nodes, cwd=tmp_path, env=env, script_args=script_args)
        # Far less than --dist-timeout-s: rank 0's note in the run directory ends every rank.
        assert wait_done(job, 180) == "FAILED"
    log = job_log(tmp_path, job)
    errors = sorted(line for line in log.splitlines() if line.startswith("error:"))
    assert len(errors) == 4, log
    assert errors[0].startswith(f"error: rank 0 could not join the process group at n1:{port} (")
    assert "EADDRINUSE" in errors[0]
    for rank, line in enumerate(errors[1:], 1):
        assert line.startswith(
            f"error: rank {rank} could not join the process group at n1:{port}: rank 0 could "
            "not listen there ("
        )
    assert all("set HPC_RNN_MASTER_PORT to a free one" in line for line in errors)
    assert "TIME LIMIT" not in log and "Traceback" not in log


def test_a_master_that_nothing_resolves_is_one_error_within_seconds(slurm_cluster: str) -> None:
    started = time.monotonic()
    with pytest.raises(UserError, match=r"'nonode7' .* does not resolve: add it to DNS"):
        master_address("nonode7")
    assert time.monotonic() - started < 10
