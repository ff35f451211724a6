"""Faults of training, each with real processes, signals and files: what a user sees, what is kept.

The catalogue of issue 10: corrupt checkpoints and pruning, --resume PATH on reruns, two
trainings on one run, divergence, changed settings on resume, unsafe torch, Ctrl-C, a full disk,
kill -9 while writing, a malicious checkpoint, a busy rendezvous port, no scontrol, an empty
validation split, and flags that are out of range.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import ROOT, clean_env, run_in_repo, start_ranks, train_command

from hpc_rnn import atomic, checkpoint, config, runlock, train
from hpc_rnn.train import EXIT_STOPPED

TINY = [
    "--hidden",
    "16",
    "--batch-size",
    "16",
    "--log-every",
    "1",
    "--val-windows",
    "64",
    "--warmup-steps",
    "2",
]


def run_train(data: Path, run: Path, *extra: str, env=None, timeout: float = 240):
    return run_in_repo(train_command(data, run, *TINY, *extra), timeout=timeout, env=env)


def start_train(data: Path, run: Path, *extra: str, env=None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        train_command(data, run, *TINY, *extra),
        cwd=ROOT,
        env=env or clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def steps_logged(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(x)["step"] for x in path.read_text().splitlines() if '"train"' in x]


def wait_for_step(proc: subprocess.Popen[str], run: Path, step: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not steps_logged(run) or steps_logged(run)[-1] < step:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"no step {step} within {timeout} s"
        time.sleep(0.05)


def steps_on_disk(run: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in checkpoint.marked_checkpoints(run))


def loadable_steps(run: Path) -> list[int]:
    return [s for s in steps_on_disk(run) if checkpoint.verify(checkpoint.step_dir(run, s)) is None]


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return errors[0]


# ---------------------------------------------------------------------------------------------
# Pruning, resume sources


def test_corrupt_newer_checkpoints_never_cost_the_good_ones(demo_data: Path, tmp_path: Path):
    run = tmp_path / "run"
    assert run_train(demo_data, run, "--max-steps", "6", "--ckpt-every-steps", "2").returncode == 0
    good = checkpoint.step_dir(run, 6)
    for fake in (100, 101, 102):  # newer than anything, marked complete, but corrupt
        shutil.copytree(good, checkpoint.step_dir(run, fake))
        os.truncate(checkpoint.step_dir(run, fake) / checkpoint.STATE_FILE, 100)

    again = run_train(demo_data, run, "--max-steps", "10", "--ckpt-every-steps", "2")
    assert again.returncode == 0, again.stderr
    assert "resuming at step 6" in again.stdout and "skipping checkpoint" in again.stderr
    # The new checkpoints are kept, and the corrupt ones are left as evidence, not loaded.
    assert loadable_steps(run) == [6, 8, 10]
    assert steps_on_disk(run) == [6, 8, 10, 100, 101, 102]
    third = run_train(demo_data, run, "--max-steps", "12", "--ckpt-every-steps", "2")
    assert "resuming at step 10" in third.stdout, third.stdout
    assert steps_logged(run) == list(range(1, 13))


def test_prune_keeps_the_checkpoint_just_written_and_the_newest_that_load(tmp_path: Path):
    run = tmp_path / "run"
    state = {"model": {"w": torch.zeros(3)}}
    for step in (1, 2, 3, 4):
        checkpoint.save(run, step, state, keep_last=2)
    assert steps_on_disk(run) == [3, 4]
    os.truncate(checkpoint.step_dir(run, 4) / checkpoint.STATE_FILE, 10)
    checkpoint.save(run, 2, state, keep_last=1)  # a resumed run writes below a corrupt newest
    assert loadable_steps(run) == [2, 3]
    assert checkpoint.step_dir(run, 2).is_dir() and checkpoint.step_dir(run, 4).is_dir()
    # A stale temporary of a writer that is gone goes; ours and foreign files stay.
    stale = run / checkpoint.CHECKPOINTS / ".step-000000009.tmp-999999999"
    stale.mkdir()
    foreign = run / checkpoint.CHECKPOINTS / "notes.txt"
    foreign.write_text("mine")
    checkpoint.prune(run, keep_last=1)
    assert not stale.exists() and foreign.read_text() == "mine"


def test_resume_path_seeds_a_run_only_once(demo_data: Path, tmp_path: Path):
    seed_run = tmp_path / "seed"
    assert run_train(demo_data, seed_run, "--max-steps", "4").returncode == 0
    seed = str(checkpoint.step_dir(seed_run, 4))
    run = tmp_path / "run"
    first = run_train(
        demo_data, run, "--resume", seed, "--max-steps", "8", "--ckpt-every-steps", "2"
    )
    assert first.returncode == 0 and "resuming at step 4" in first.stdout, first.stderr
    # A requeue or a rerun with the same command continues from the run's own newest.
    again = run_train(
        demo_data, run, "--resume", seed, "--max-steps", "10", "--ckpt-every-steps", "2"
    )
    assert again.returncode == 0, again.stderr
    assert "resuming at step 8" in again.stdout and "has checkpoints of its own" in again.stdout
    assert loadable_steps(run) == [6, 8, 10]


# ---------------------------------------------------------------------------------------------
# Two trainings on one run


def test_a_second_training_on_a_run_is_refused_and_a_dead_holders_lock_is_broken(
    demo_data: Path, tmp_path: Path
):
    run = tmp_path / "run"
    first = start_train(demo_data, run, "--max-steps", "100000", "--ckpt-every-steps", "5")
    try:
        wait_for_step(first, run, 6)  # past its step-5 checkpoint, which the third start resumes
        started = time.monotonic()
        second = run_train(demo_data, run, "--max-steps", "3")
        line = one_error_line(second)
        assert f"PID {first.pid}" in line and socket.gethostname() in line
        # Start-up (imports, data) on a loaded machine, not a wait for the lock to be released.
        assert time.monotonic() - started < 120
    finally:
        first.kill()  # kill -9: the lock stays behind, its holder gone
        first.communicate()
    assert (run / runlock.LOCK_FILE).is_file()
    third = run_train(demo_data, run, "--max-steps", "7", "--ckpt-every-steps", "5")
    assert third.returncode == 0, third.stderr
    assert "stale lock" in third.stdout and "resuming at step" in third.stdout
    assert not (run / runlock.LOCK_FILE).exists()


def test_a_requeued_slurm_job_takes_over_its_own_lock_but_not_anothers(tmp_path: Path):
    holder = {"host": "node-elsewhere", "pid": 4242, "slurm_job": "77", "slurm_restart": "0"}
    me = {**runlock.holder_info(), "slurm_job": "77", "slurm_restart": "1"}
    assert runlock.is_stale(holder, me)
    assert not runlock.is_stale(holder, {**me, "slurm_job": "78"})
    # The same start of the same job on another host cannot be proven gone.
    assert not runlock.is_stale(holder, {**me, "slurm_restart": "0"})


# ---------------------------------------------------------------------------------------------
# Divergence, settings on resume


def test_a_diverged_run_stops_and_keeps_its_last_good_checkpoint(demo_data: Path, tmp_path: Path):
    run = tmp_path / "run"
    assert run_train(demo_data, run, "--max-steps", "4", "--ckpt-every-steps", "2").returncode == 0
    before = {s: checkpoint.load(checkpoint.step_dir(run, s))["model"] for s in (2, 4)}
    blown = run_train(
        demo_data, run, "--max-steps", "40", "--ckpt-every-steps", "2", "--lr", "1e38"
    )
    line = one_error_line(blown)
    assert "diverged" in line and "nothing after step 4 was saved" in line
    assert loadable_steps(run) == [2, 4]
    for step, params in before.items():
        again = checkpoint.load(checkpoint.step_dir(run, step))["model"]
        assert all(torch.equal(params[k], again[k]) for k in params)


def test_settings_changed_on_resume_apply_or_are_refused(demo_data: Path, tmp_path: Path):
    run = tmp_path / "run"
    assert run_train(demo_data, run, "--max-steps", "3").returncode == 0
    for flag, value in (("--optimizer", "sgd"), ("--objective", "last"), ("--seed", "5")):
        refused = run_train(demo_data, run, "--max-steps", "6", flag, value)
        assert flag in one_error_line(refused)
    assert steps_on_disk(run) == [3]
    changed = run_train(demo_data, run, "--max-steps", "6", "--weight-decay", "0.5")
    assert changed.returncode == 0, changed.stderr
    assert "--weight-decay 0.0 -> 0.5" in changed.stdout
    state = checkpoint.load_given(run)[1]
    assert state["optimizer"]["param_groups"][0]["weight_decay"] == 0.5
    assert state["config"]["weight_decay"] == 0.5


# ---------------------------------------------------------------------------------------------
# Loading


def test_an_old_torch_is_refused_without_advice_to_load_unsafely(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    run = tmp_path / "run"
    checkpoint.save(run, 1, {"w": torch.ones(2)})
    assert checkpoint.safe_loading_holds("2.6.0") and checkpoint.safe_loading_holds("2.13.0+cpu")
    assert not checkpoint.safe_loading_holds("2.5.1") and not checkpoint.safe_loading_holds("1.13")
    monkeypatch.setattr(torch, "__version__", "2.5.1")
    with pytest.raises(checkpoint.CheckpointError, match=r"torch>=2.6") as err:
        checkpoint.load(checkpoint.step_dir(run, 1))
    assert "weights_only=False" not in str(err.value)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_malicious_checkpoint_is_refused_without_running_it(tmp_path: Path):
    run = tmp_path / "run"
    target = checkpoint.step_dir(run, 1)
    target.mkdir(parents=True)
    (target / checkpoint.STATE_FILE).write_bytes(pickle.dumps({"x": _Exploit()}))
    digest = atomic.file_sha256(target / checkpoint.STATE_FILE)
    (target / checkpoint.MARKER).write_text(json.dumps({"step": 1, "sha256": digest}))
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.load(target)
    assert "weights_only=False" not in str(err.value)
    assert not (tmp_path / "pwned").exists() and not (ROOT / "pwned").exists()


def test_generate_falls_back_to_a_checkpoint_that_loads_and_takes_state_pt(
    demo_data: Path, tmp_path: Path
):
    run = tmp_path / "run"
    assert run_train(demo_data, run, "--max-steps", "4", "--ckpt-every-steps", "2").returncode == 0
    os.truncate(checkpoint.step_dir(run, 4) / checkpoint.STATE_FILE, 50)
    gen = [sys.executable, "-m", "hpc_rnn.generate", "--n", "1", "--max-words", "20"]
    fell_back = run_in_repo([*gen, "--checkpoint", run, "--out", tmp_path / "a"], timeout=120)
    assert fell_back.returncode == 0, fell_back.stderr
    assert (
        "skipping checkpoint" in fell_back.stderr
        and "step-000000002" in (tmp_path / "a" / "manifest.jsonl").read_text()
    )
    state_pt = checkpoint.step_dir(run, 2) / checkpoint.STATE_FILE
    direct = run_in_repo([*gen, "--checkpoint", state_pt, "--out", tmp_path / "b"], timeout=120)
    assert direct.returncode == 0, direct.stderr


# ---------------------------------------------------------------------------------------------
# Signals and the environment


def test_ctrl_c_checkpoints_and_a_second_ctrl_c_exits_at_once():
    flag = train.StopFlag("INT")
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert flag.raised == "SIGINT" and not flag.requeues
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def test_ctrl_c_in_a_real_run_leaves_a_checkpoint_to_resume(demo_data: Path, tmp_path: Path):
    run = tmp_path / "run"
    proc = start_train(demo_data, run, "--max-steps", "100000", "--ckpt-every-steps", "100000")
    wait_for_step(proc, run, 3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_STOPPED, err
    assert "stopped by SIGINT" in out and "run the same command again" in out
    assert loadable_steps(run)


def test_a_stop_without_scontrol_warns_and_keeps_the_checkpoint(demo_data: Path, tmp_path: Path):
    run = tmp_path / "run"
    bare = tmp_path / "bin"  # a PATH with python and nothing of Slurm's
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    env = clean_env(SLURM_JOB_ID="4242", PATH=str(bare))
    proc = start_train(demo_data, run, "--max-steps", "100000", env=env)
    wait_for_step(proc, run, 2)
    proc.send_signal(signal.SIGUSR2)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_STOPPED, err
    assert "scontrol requeue 4242 failed" in out and "Traceback" not in err
    assert loadable_steps(run)


def torchrun_rank(rank: int, port: int) -> dict[str, str]:
    """What torchrun sets for rank `rank` of 2 that meet at 127.0.0.1:`port`."""
    return {
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }


def srun_rank(rank: int, port: int) -> dict[str, str]:
    """What srun sets for task `rank` of a 2-task step, with the port asked for on purpose."""
    return {
        "SLURM_JOB_ID": "4243",
        "SLURM_STEP_ID": "0",
        "SLURM_PROCID": str(rank),
        "SLURM_LOCALID": str(rank),
        "SLURM_STEP_NUM_TASKS": "2",
        "SLURM_STEP_NODELIST": "127.0.0.1",
        "HPC_RNN_MASTER_PORT": str(port),
    }


@pytest.mark.parametrize(
    ("launcher", "variable"), [(torchrun_rank, "MASTER_PORT"), (srun_rank, "HPC_RNN_MASTER_PORT")]
)
def test_a_busy_rendezvous_port_is_one_error_line_on_every_rank(
    demo_data: Path,
    tmp_path: Path,
    launcher: Callable[[int, int], dict[str, str]],
    variable: str,
):
    run = tmp_path / "run"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))  # a foreign listener: rank 1 connects to it, no one answers
        busy.listen()
        port = busy.getsockname()[1]
        ranks = [
            start_train(demo_data, run, "--max-steps", "2", env=clean_env(**launcher(r, port)))
            for r in range(2)
        ]
        try:
            done = [ranks[0].communicate(timeout=120)]
            # Within seconds of rank 0, not after --dist-timeout-s (600 s): rank 0's note ends it.
            done.append(ranks[1].communicate(timeout=20))
        finally:
            for proc in ranks:
                proc.kill()
    for rank, (proc, (out, err)) in enumerate(zip(ranks, done, strict=True)):
        line = one_error_line(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
        assert line.startswith(
            f"error: rank {rank} could not join the process group at 127.0.0.1:{port}"
        )
        assert "EADDRINUSE" in line and f"set {variable} to a free one" in line
    assert "rank 0 could not listen there" in done[1][1]
    assert not (run / checkpoint.CHECKPOINTS).exists()


def test_full_disk_while_checkpointing_keeps_the_last_checkpoint(demo_data: Path, tmp_path: Path):
    mount = tmp_path / "small"
    mount.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2500k", "tmpfs", str(mount)], capture_output=True
        ).returncode
    ):
        pytest.skip("needs root and tmpfs mounts to fill a real disk")
    try:
        run = mount / "run"
        # One checkpoint of this model fits, a second one beside it does not.
        proc = run_train(
            demo_data, run, "--hidden", "48", "--max-steps", "6", "--ckpt-every-steps", "3"
        )
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
        assert "No space left" in proc.stderr or "disk" in proc.stderr
        assert loadable_steps(run) == [3]
        assert not list((run / checkpoint.CHECKPOINTS).glob(".step-*"))
    finally:
        subprocess.run(["umount", str(mount)], check=False)


# ---------------------------------------------------------------------------------------------
# Flags out of range: one line, exit 2, nothing written


@pytest.mark.parametrize(
    "flags",
    [
        ["--log-every", "0"],
        ["--ckpt-every-steps", "0"],
        ["--lr", "nan"],
        ["--lr", "-1"],
        ["--clip", "inf"],
        ["--keep-last", "0"],
        ["--objective", "middle"],
        ["--stop-signals", "USR9"],
    ],
)
def test_out_of_range_training_flags(
    flags: list[str], demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    run = tmp_path / "run"
    assert train.main(["--data", str(demo_data), "--run", str(run), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not run.exists()


def test_temperature_nan_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from hpc_rnn import generate

    out = tmp_path / "out"
    assert generate.main(["--checkpoint", "x", "--out", str(out), "--temperature", "nan"]) == 2
    assert "--temperature" in capsys.readouterr().err and not out.exists()


def test_abbreviated_flags_win_over_a_preset():
    cfg = train.parse_config(["--data", "d", "--run", "r", "--preset", "seed", "--epoch", "5"])
    assert cfg.epochs == 5 and cfg.optimizer == "sgd"
    cfg = train.parse_config(["--data", "d", "--run", "r", "--pre", "seed", "--batch", "7"])
    assert cfg.batch_size == 7 and cfg.objective == "last"
    assert config.TrainConfig(batch_size=7).batch_size == 7


# ---------------------------------------------------------------------------------------------
# Kills and signals at awkward moments


def test_kill_9_while_writing_checkpoints_leaves_only_whole_ones(demo_data: Path, tmp_path: Path):
    run = tmp_path / "run"
    # A wide model checkpointed every step: most of the run is spent writing checkpoints.
    big = ("--hidden", "256", "--max-steps", "100000", "--ckpt-every-steps", "1")
    for kill_after in (3, 6, 9):
        proc = start_train(demo_data, run, *big)
        wait_for_step(proc, run, kill_after)
        time.sleep(0.13 * kill_after % 0.3)  # land at different points of the write
        proc.kill()
        proc.communicate()
        for step in steps_on_disk(run):  # whatever has a marker is whole
            assert checkpoint.verify(checkpoint.step_dir(run, step)) is None
    newest = max(loadable_steps(run))
    done = run_train(demo_data, run, "--hidden", "256", "--max-steps", str(newest + 2))
    assert done.returncode == 0, done.stderr
    assert f"resuming at step {newest}" in done.stdout
    assert not list((run / checkpoint.CHECKPOINTS).glob(".step-*"))  # the killed writers' temps
    assert steps_logged(run) == sorted(set(steps_logged(run)))


def test_signals_during_writes_repeated_and_before_the_first_step(demo_data: Path, tmp_path: Path):
    run = tmp_path / "run"
    proc = start_train(demo_data, run, "--max-steps", "100000")
    for line in proc.stdout:  # printed after the handlers are installed, before step 1
        if "starting fresh" in line:
            break
    for _ in range(3):  # a signal before the first step, then two more on top of it
        proc.send_signal(signal.SIGUSR1)
        time.sleep(0.05)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_STOPPED, err
    assert out.count("stopped by SIGUSR1") == 1 and "Traceback" not in err
    first_stop = max(loadable_steps(run))

    # Checkpoint written at every step, so the next signal lands while one is being written.
    proc = start_train(demo_data, run, "--max-steps", "100000", "--ckpt-every-steps", "1")
    wait_for_step(proc, run, first_stop + 3)
    proc.send_signal(signal.SIGUSR1)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_STOPPED, err
    stop_step = int(out.split("stopped by SIGUSR1 at step ")[1].split(":")[0])
    assert max(loadable_steps(run)) == stop_step
    done = run_train(demo_data, run, "--max-steps", str(stop_step + 2))
    assert f"resuming at step {stop_step}" in done.stdout, done.stderr
    assert steps_logged(run) == list(range(1, stop_step + 3))


def test_a_requeue_past_the_cap_is_not_made(demo_data: Path, tmp_path: Path):
    run = tmp_path / "run"
    env = clean_env(SLURM_JOB_ID="4243", SLURM_RESTART_COUNT="3")
    proc = start_train(demo_data, run, "--max-steps", "100000", "--max-requeues", "3", env=env)
    wait_for_step(proc, run, 2)
    proc.send_signal(signal.SIGUSR2)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_STOPPED, err
    assert "not requeueing job 4243: restarted 3 times already" in out
    assert loadable_steps(run)


def test_a_stopped_rank_ends_the_other_within_the_timeout(demo_data: Path, tmp_path: Path):
    run = tmp_path / "run"
    cmd = train_command(demo_data, run, *TINY, "--max-steps", "100000", "--dist-timeout-s", "20")
    ranks = start_ranks(cmd, 2)
    try:
        wait_for_step(ranks[0], run, 3)
        ranks[1].send_signal(signal.SIGSTOP)  # alive but silent: no connection is closed
        stopped_at = time.monotonic()
        _, err = ranks[0].communicate(timeout=240)
        assert ranks[0].returncode == train.EXIT_PEER_LOST, err[-2000:]
        assert "lost contact with another rank" in err and "Traceback" not in err
        assert time.monotonic() - stopped_at < 200  # the 20 s timeout, with room for load
    finally:
        ranks[1].kill()
        ranks[1].communicate()
        ranks[0].kill()


def test_an_empty_validation_split_is_a_loud_warning_not_nan_lines(tmp_path: Path, run_preprocess):
    corpus = tmp_path / "one.txt"
    made = run_in_repo(
        [sys.executable, "-m", "hpc_rnn.demo_corpus", "--recipes", "3", "--out", corpus],
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    data = tmp_path / "data"
    assert run_preprocess(corpus, "--out", data, "--min-count", "1").returncode == 0
    run = tmp_path / "run"
    done = run_train(data, run, "--epochs", "1")
    assert done.returncode == 0, done.stderr
    assert "has no held-out windows" in done.stderr and "nan" not in done.stdout.lower()
    assert loadable_steps(run) and checkpoint.read_best(run) is None
