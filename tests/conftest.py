"""Shared fixtures: the demo corpus, the real corpus, and running commands as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

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
        pytest.skip(f"real corpus {REAL_CORPUS} is not on this machine")
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
        proc = run_cmd("sinfo", "-h", "-o", "%t", timeout=15)
    except subprocess.TimeoutExpired:
        pytest.skip("sinfo did not answer within 15 s")
    if proc.returncode != 0:
        pytest.skip(f"sinfo failed: {proc.stderr.strip()}")
    if not any(state.rstrip("*") in {"idle", "mix", "alloc"} for state in proc.stdout.split()):
        pytest.skip(f"no usable node (sinfo states: {proc.stdout.split()})")
    return conf
