"""Shared fixtures: the demo corpus, the real corpus, and running commands as a user would.

Under CI (the CI environment variable set) a part the suite needs and does not find (Slurm,
mpiexec, the shared corpus) fails the test that needs it; elsewhere that test skips, saying why.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The tests import the package from this checkout, installed or not.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# The project's shared data lies beside the checkout (../shared), in CI as on a developer's machine.
REAL_CORPUS = Path(
    os.environ.get(
        "HPC_RNN_DEV_CORPUS",
        ROOT.parent / "shared" / "corpora" / "dev" / "mm13000_a-f_mastercook.txt",
    )
)
DEMO_RECIPES = 200
DEMO_SEED = 7
# What a line of a command's long work starts with (cli.say): the local time to the second.
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d "

# Variables by which a launcher tells a process it is one of several; a test run inside a Slurm
# allocation or under mpiexec must not pass them on to the commands it starts.
_LAUNCHER_PREFIXES = ("PMI_", "PMIX_", "OMPI_", "MPI_LOCALNRANKS", "SLURM_", "HYDRA_")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LAUNCHER_PREFIXES)}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def train_command(data: str | os.PathLike, run: str | os.PathLike, *args: str) -> list[str]:
    """`python -m hpc_rnn.train --data DATA --run-dir RUN ARGS`, as a user types it
    (--run-dir, the spelling that also passes through torchrun)."""
    return [
        sys.executable,
        "-m",
        "hpc_rnn.train",
        "--data",
        str(data),
        "--run-dir",
        str(run),
        *args,
    ]


def on_ci() -> bool:
    return bool(os.environ.get("CI"))


def unavailable(reason: str) -> NoReturn:
    """A part this test needs is missing: a failure under CI, where it must be there (a skip
    would leave CI green with the test never run), a skip with the reason elsewhere."""
    if on_ci():
        pytest.fail(f"{reason} (CI is set: this part is required there)", pytrace=False)
    pytest.skip(reason)


def mpiexec() -> str:
    """The mpiexec beside this Python (the mpich wheel of the test extra), else on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if not found:
        unavailable("no mpiexec (pip install mpich, or bash scripts/setup.sh test)")
    return found


def free_port() -> int:
    """A TCP port the OS reports free now, for a rendezvous the test starts right away."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ranks(cmd: list[str], n: int) -> list[subprocess.Popen[str]]:
    """`n` processes of `cmd` that find each other by RANK, WORLD_SIZE, MASTER_ADDR and
    MASTER_PORT (a port the OS reports free), as torchrun or a job script starts them."""
    env = clean_env(WORLD_SIZE=str(n), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    return [
        subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(n)
    ]


def finish(ranks: list[subprocess.Popen[str]], timeout: float = 300) -> list[tuple[int, str, str]]:
    """Every rank's (exit code, stdout, stderr); ranks still running after `timeout` are killed."""
    try:
        outs = [p.communicate(timeout=timeout) for p in ranks]
    finally:
        for p in ranks:
            p.kill()
    return [(p.returncode, out, err) for p, (out, err) in zip(ranks, outs, strict=True)]


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated corpus of DEMO_RECIPES MasterCook recipes (UTF-8, LF)."""
    from hpc_rnn import demo_corpus

    path = tmp_path_factory.mktemp("demo") / "demo_recipes.txt"
    demo_corpus.write_corpus(path, recipes=DEMO_RECIPES, seed=DEMO_SEED)
    return path


@pytest.fixture(scope="session")
def real_corpus() -> Path:
    if not REAL_CORPUS.is_file():
        unavailable(f"real corpus {REAL_CORPUS} is not on this machine (set HPC_RNN_DEV_CORPUS)")
    return REAL_CORPUS


def run_in_repo(
    cmd: list[str | os.PathLike], *, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `cmd` from the repository root as a user would (launcher variables of the test's own
    environment removed, unless `env` is given), its output captured as text."""
    return subprocess.run(
        [str(c) for c in cmd],
        cwd=ROOT,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def run_preprocess() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `python -m hpc_rnn.preprocess ARGS` from the repository root, as a user would."""

    def run(
        *args: str | os.PathLike, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return run_in_repo(
            [sys.executable, "-m", "hpc_rnn.preprocess", *args], timeout=timeout, env=env
        )

    return run


@pytest.fixture(scope="session")
def demo_data(
    demo_corpus: Path,
    run_preprocess: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path_factory,
) -> Path:
    """The demo corpus preprocessed once with the default options, by the command."""
    out = tmp_path_factory.mktemp("demo_data") / "data"
    proc = run_preprocess(demo_corpus, "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out


# The small model most training tests use; dropout makes the RNG part of what a resume restores.
SMALL_TRAINING = [
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
TRAINED_BATCH = "32"


@pytest.fixture(scope="session")
def trained_run(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of 2 epochs of SMALL_TRAINING in batches of TRAINED_BATCH on the demo data, trained
    once in this process and shared; tests read it and write nothing into it."""
    from hpc_rnn.train import StopFlag, parse_config, train

    run = tmp_path_factory.mktemp("trained") / "run"
    flags = [*SMALL_TRAINING, "--batch-size", TRAINED_BATCH, "--epochs", "2", "--lr", "0.01"]
    assert (
        train(parse_config(["--data", str(demo_data), "--run", str(run), *flags]), StopFlag(""))
        == 0
    )
    return run


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` with its bytes, to check that a command left it alone."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------------------------------------
# The CI Slurm (scripts/slurm_up.sh): shared by the cluster checks and the job tests


def run_cmd(*cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def check_cmd(*cmd: str, timeout: float = 30) -> str:
    proc = run_cmd(*cmd, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} -> rc {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    )
    return proc.stdout.strip()


def wait_until(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def sacct_state(job_id: str) -> str:
    out = run_cmd("sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State").stdout.split()
    return out[0] if out else ""


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """The SLURM_CONF of a cluster that answers; otherwise `unavailable`."""
    conf = os.environ.get("SLURM_CONF")
    if not conf:
        unavailable(
            "SLURM_CONF is not set (run scripts/slurm_up.sh and source scripts/slurm_env.sh)"
        )
    if not Path(conf).is_file():
        unavailable(f"SLURM_CONF={conf} does not exist (run scripts/slurm_up.sh)")
    for tool in ("sinfo", "sbatch", "scontrol", "sacct"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is not on PATH")
    try:
        proc = run_cmd("sinfo", "-h", "-o", "%t", timeout=15)
    except subprocess.TimeoutExpired:
        unavailable("sinfo did not answer within 15 s")
    if proc.returncode != 0:
        unavailable(f"sinfo failed: {proc.stderr.strip()}")
    if not any(state.rstrip("*") in {"idle", "mix", "alloc"} for state in proc.stdout.split()):
        unavailable(f"no usable node (sinfo states: {proc.stdout.split()})")
    return conf
