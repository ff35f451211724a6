"""Data-parallel training with real processes and gloo: the same math as one process, resume
across world sizes, a stop signal that every rank obeys at the same step, and a dead rank that
ends the job instead of hanging it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import clean_env, finish, run_in_repo, start_ranks, train_command, wait_until

from hpc_rnn import checkpoint
from hpc_rnn.cli import UserError
from hpc_rnn.distributed import (
    Meeting,
    failure_note,
    first_host,
    process_layout,
    process_started,
    publish,
    read_failure,
    rendezvous_file,
    shared_store,
    tasks_fit_gpus,
    watched,
)
from hpc_rnn.train import EXIT_PEER_LOST, EXIT_STOPPED, StopFlag, parse_config
from hpc_rnn.train import train as train_loop

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


def train(data: Path, run: Path, ranks: int, batch: int, steps: int, *extra: str) -> None:
    """Train `steps` steps with `ranks` ranks of `batch` windows: one rank in this process, more
    under torchrun, as a user starts them."""
    flags = [*COMMON, "--batch-size", str(batch), "--max-steps", str(steps), *extra]
    if ranks == 1:
        cfg = parse_config(["--data", str(data), "--run", str(run), *flags])
        assert train_loop(cfg, StopFlag("")) == 0
        return
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={ranks}",
        *train_command(data, run, *flags)[1:],
    ]
    done = run_in_repo(cmd, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert f"world {ranks} on cpu" in done.stdout


def params(run: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load_given(run)[1]["model"]


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def one_rank(demo_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """Parameters of 1-rank runs with a global batch of 16, by steps, each trained once."""
    runs: dict[int, dict[str, torch.Tensor]] = {}

    def get(steps: int) -> dict[str, torch.Tensor]:
        if steps not in runs:
            run = tmp_path_factory.mktemp("one_rank") / "run"
            train(demo_data, run, 1, 16, steps)
            runs[steps] = params(run)
        return runs[steps]

    return get


def test_two_ranks_with_batch_b_equal_one_rank_with_batch_2b(
    demo_data: Path, tmp_path: Path, one_rank
) -> None:
    train(demo_data, tmp_path / "two", 2, 8, 10)
    assert max_diff(one_rank(10), params(tmp_path / "two")) < 1e-5
    # ...and 10 steps did move the weights far more than that.
    assert max_diff(one_rank(10), one_rank(2)) > 1e-3


@pytest.mark.parametrize("bptt", ["0", "16"])
def test_two_ranks_on_whole_recipes_take_the_step_of_one_with_twice_the_batch(
    demo_data: Path, tmp_path: Path, bptt: str
) -> None:
    # Each rank pads its recipes to its own longest (with --bptt, to the step's longest, so that
    # both take as many updates); each update's loss is the mean over all ranks' tokens.
    flags = ("--objective", "recipe", "--bptt", bptt)
    train(demo_data, tmp_path / "one", 1, 8, 6, *flags)
    train(demo_data, tmp_path / "two", 2, 4, 6, *flags)
    assert max_diff(params(tmp_path / "one"), params(tmp_path / "two")) < 1e-5


@pytest.mark.parametrize(("before", "after"), [(2, 1), (1, 2)])
def test_a_checkpoint_resumes_with_another_world_size(
    demo_data: Path, tmp_path: Path, one_rank, before: int, after: int
) -> None:
    global_batch = 16
    switched = tmp_path / "switched"
    train(demo_data, switched, before, global_batch // before, 4)
    train(demo_data, switched, after, global_batch // after, 8)
    assert checkpoint.load_given(switched)[1]["step"] == 8
    assert max_diff(one_rank(8), params(switched)) < 1e-5


def start_training(data: Path, run: Path, n: int, *flags: str) -> list[subprocess.Popen[str]]:
    return start_ranks(train_command(data, run, *COMMON, *flags), n)


@contextlib.contextmanager
def killed_on_failure(ranks: list[subprocess.Popen[str]]) -> Iterator[None]:
    """Kill the ranks if the block fails, so that a failed test leaves no training behind."""
    try:
        yield
    except BaseException:
        for p in ranks:
            p.kill()
            p.communicate()
        raise


def logged_steps(run: Path) -> int:
    metrics = run / "metrics.jsonl"
    return metrics.read_text().count('"train"') if metrics.exists() else 0


def test_a_stop_signal_to_one_rank_stops_every_rank_at_one_step_and_resumes_exactly(
    demo_data: Path, tmp_path: Path
) -> None:
    # Constant learning rate: a later, shorter --max-steps plans the same schedule.
    forever = ("--batch-size", "8", "--max-steps", "100000", "--ckpt-every-steps", "100000")
    run = tmp_path / "run"
    ranks = start_training(demo_data, run, 2, *forever)
    with killed_on_failure(ranks):
        wait_until(lambda: logged_steps(run) >= 2 or ranks[0].poll() is not None, 300, "2 logs")
        # Only rank 1 hears it: rank 0 learns of it when the ranks compare flags at a log step.
        ranks[1].send_signal(signal.SIGUSR2)
    (rc0, out0, err0), (rc1, _, err1) = finish(ranks)
    assert (rc0, rc1) == (EXIT_STOPPED, EXIT_STOPPED), err0[-2000:] + err1[-2000:]
    stop_step = checkpoint.load_given(run)[1]["step"]  # rank 0's stop checkpoint
    assert stop_step % 2 == 0, "ranks compare flags at log steps (--log-every 2)"
    assert f"stopped by a peer at step {stop_step}" in out0  # rank 0 itself got no signal

    # Resumed by two ranks, it ends where an uninterrupted two-rank run ends, bit for bit.
    until = ("--batch-size", "8", "--max-steps", str(stop_step + 4))
    resumed = finish(start_training(demo_data, run, 2, *until))
    assert [r[0] for r in resumed] == [0, 0], resumed[0][2][-2000:] + resumed[1][2][-2000:]
    assert f"resuming at step {stop_step}" in resumed[0][1]
    straight = finish(start_training(demo_data, tmp_path / "straight", 2, *until))
    assert [r[0] for r in straight] == [0, 0], straight[0][2][-2000:]
    a, b = params(run), params(tmp_path / "straight")
    assert all(torch.equal(a[k], b[k]) for k in a), "a resumed two-rank run differs"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    logged = [json.loads(x)["step"] for x in lines if '"train"' in x]
    assert logged == list(range(2, stop_step + 5, 2)), "each log step once over both runs"


def test_a_dead_rank_ends_the_others_with_a_clear_error(demo_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    flags = ("--batch-size", "8", "--max-steps", "100000", "--dist-timeout-s", "30")
    ranks = start_training(demo_data, run, 2, *flags)
    with killed_on_failure(ranks):
        wait_until(lambda: logged_steps(run) >= 2 or ranks[0].poll() is not None, 300, "2 logs")
        ranks[1].send_signal(signal.SIGKILL)
    # Rank 0 gives up within --dist-timeout-s (30 s) of the kill: far less than this bound.
    (rc, _, err), _ = finish(ranks, timeout=300)
    assert rc == EXIT_PEER_LOST, err[-3000:]
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
    rank, size, local, host, port = process_layout()
    assert (rank, size, local, host) == (5, 8, 1, "gpu07")
    # The port comes from the job and step: the next step of the job meets on another one.
    monkeypatch.setenv("SLURM_STEP_ID", "1")
    assert port != process_layout()[4] and 1024 < port < 32768
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


def test_gpus_in_the_allocation_but_no_cuda_is_one_error_not_a_cpu_run(
    demo_data: Path, tmp_path: Path
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine's torch sees CUDA: the mismatch cannot happen here")
    # What srun sets on a node of a --gpus-per-node=2 job; this machine's torch has no CUDA.
    env = clean_env(SLURM_JOB_ID="77", SLURM_GPUS_ON_NODE="2", SLURM_JOB_GPUS="0,1")
    run = tmp_path / "run"
    done = run_in_repo(
        train_command(demo_data, run, *COMMON, "--max-steps", "2"), timeout=120, env=env
    )
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "2 GPU(s)" in errors[0] and "--device cpu" in errors[0]
    assert not (run / "checkpoints").exists()
    # The way out it names works in the same allocation.
    cpu = run_in_repo(
        train_command(demo_data, run, *COMMON, "--max-steps", "2", "--device", "cpu"),
        timeout=120,
        env=env,
    )
    assert cpu.returncode == 0, cpu.stderr[-2000:]


@pytest.mark.parametrize(
    ("spec", "node", "gpus", "refused"),
    [
        ("4(x2)", 0, 4, False),  # --nodes=2 --ntasks-per-node=4 --gpus-per-node=4
        ("4(x2)", 1, 4, False),
        ("4(x2)", 1, 2, True),  # --ntasks-per-node=4 --gpus-per-node=2
        ("2,3", 0, 2, False),  # an uneven step: 2 tasks on node 0, 3 on node 1
        ("2,3", 1, 2, True),
        ("8", 0, 8, False),
        ("8", 0, 4, True),
        ("4(x2),3", 2, 4, False),
        ("", 0, 0, False),  # not a Slurm step: nothing to compare
    ],
)
def test_more_tasks_on_a_node_than_gpus_is_refused(
    spec: str, node: int, gpus: int, refused: bool
) -> None:
    problem = tasks_fit_gpus(spec, node, gpus)
    assert (problem is not None) == refused
    if refused:
        assert f"but {gpus} GPU(s) visible" in problem and "--ntasks-per-node" in problem


def test_more_tasks_on_a_node_than_its_gpus_is_one_error(demo_data: Path, tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA: without it, the error of GPUs without CUDA comes first (above)")
    tasks = torch.cuda.device_count() + 1
    # What srun sets on the second node of a 2-node step with one task more than its GPUs.
    env = clean_env(SLURM_JOB_ID="78", SLURM_STEP_TASKS_PER_NODE=f"{tasks}(x2)", SLURM_NODEID="1")
    cmd = train_command(
        demo_data, tmp_path / "run", *COMMON, "--max-steps", "2", "--device", "cuda"
    )
    done = run_in_repo(cmd, timeout=120, env=env)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{tasks} tasks on this node but {tasks - 1} GPU(s)" in errors[0]


def test_only_a_failure_note_of_this_launch_counts(tmp_path: Path) -> None:
    note = failure_note(tmp_path, 29500)
    assert read_failure(note, process_started()) is None  # none written
    publish(note, f"{time.time():.3f} EADDRINUSE")
    assert read_failure(note, process_started()) == "EADDRINUSE"
    # Written an hour before this process started: a past launch's on the same port.
    publish(note, f"{process_started() - 3600:.3f} EADDRINUSE")
    assert read_failure(note, process_started()) is None
    publish(note, "garbled")
    assert read_failure(note, process_started()) is None


MEETING = Meeting(1, 2, "n1", 29500, 1.0, "MASTER_PORT")


@contextlib.contextmanager
def stuck() -> Iterator[threading.Event]:
    """A connection that waits until released, as one to another program's listener does."""
    release = threading.Event()
    try:
        yield release
    finally:
        release.set()


def test_a_rank_waiting_on_a_silent_port_ends_at_rank_0s_note_or_the_timeout() -> None:
    with stuck() as release:
        started = time.monotonic()
        with pytest.raises(
            UserError,
            match=r"^rank 1 could not join .* at n1:29500: rank 0 "
            r"could not listen there \(EADDRINUSE\): .* set MASTER_PORT",
        ):
            watched(release.wait, MEETING, lambda: "EADDRINUSE")
        assert time.monotonic() - started < 1
        with pytest.raises(UserError, match=r"no answer from rank 0 within 1 s"):
            watched(release.wait, MEETING, lambda: None)
    assert watched(lambda: "store", MEETING, lambda: None) == "store"
    with pytest.raises(ZeroDivisionError):  # the connection's own error, in this thread
        watched(lambda: 1 / 0, MEETING, lambda: None)


def test_rank_0_that_cannot_listen_waits_until_every_rank_has_read_why(tmp_path: Path) -> None:
    # Under srun --kill-on-bad-exit, rank 0's exit ends every task: a rank still starting up
    # when rank 0 fails must still read the reason and say it before rank 0 exits.
    ended: dict[int, tuple[float, BaseException]] = {}
    # The run directory's own files: rank 0 removes the ranks' read marks and nothing else.
    (tmp_path / "checkpoints" / "step-000000004").mkdir(parents=True)
    (tmp_path / "checkpoints" / "step-000000004" / "state.pt").write_bytes(b"weights")
    (tmp_path / "notes.txt").write_text("mine\n")

    def rank(number: int, delay: float, port: int) -> None:
        time.sleep(delay)
        meeting = Meeting(number, 3, "127.0.0.1", port, 30.0, "HPC_RNN_MASTER_PORT")
        try:
            shared_store(tmp_path, meeting)
        except Exception as exc:
            ended[number] = (time.monotonic(), exc)

    with socket.socket() as busy:  # another program's server on the port
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        threads = [
            threading.Thread(target=rank, args=(r, delay, port))
            for r, delay in ((0, 0.0), (1, 0.2), (2, 2.0))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert sorted(ended) == [0, 1, 2]
    assert ended[0][0] > ended[2][0]  # rank 0 ended after the late rank had read why
    for r in (1, 2):
        assert isinstance(ended[r][1], UserError)
        assert "rank 0 could not listen there" in str(ended[r][1]), ended[r][1]
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {rendezvous_file(tmp_path).name, "checkpoints", "notes.txt"}
    assert (tmp_path / "checkpoints" / "step-000000004" / "state.pt").read_bytes() == b"weights"
    assert (tmp_path / "notes.txt").read_text() == "mine\n"
