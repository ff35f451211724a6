"""hpc_rnn.submit where there is no Slurm: dry runs, the errors that replace tracebacks, --time,
--help, and a --local run. Each command runs as a user runs it, with a PATH that has no sbatch
or srun (not a mock); the cluster side is in tests/test_slurm_jobs.py.

The dry-run texts are compared with tests/golden/submit_*.txt, where the test's directory reads
$TMP and the interpreter $PYTHON. After a deliberate change of the text (or of submitit's), look
at the new text and copy it there.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, clean_env

from hpc_rnn.cli import UserError
from hpc_rnn.submit import minutes

GOLDEN = ROOT / "tests" / "golden"


def no_slurm_env() -> dict[str, str]:
    """A login shell of a laptop: the venv's python on PATH, no sbatch, no srun."""
    return clean_env(PATH=str(Path(sys.executable).parent))


def submit(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hpc_rnn.submit", *args],
        cwd=cwd,
        env=env or no_slurm_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def normalized(text: str, tmp: Path) -> str:
    return text.replace(shlex.quote(sys.executable), "$PYTHON").replace(str(tmp), "$TMP")


DRY_RUNS = {
    "1x1": ["--nodes", "1", "--gpus", "1"],
    "2x4": ["--nodes", "2", "--gpus", "4", "--time", "1-12:00", "--partition", "gpu"],
    "pipeline": ["--pipeline", "--corpus", "recipes.txt", "--gpus", "2", "--account", "proj"],
    "local_pipeline": ["--local", "--pipeline", "--corpus", "recipes.txt", "--epochs", "3"],
    "sweep": ["--sweep", "lr=0.001,0.003", "hidden=256,512", "--gpus", "1", "--epochs", "3"],
}


@pytest.mark.parametrize("case", sorted(DRY_RUNS))
def test_dry_run_prints_the_golden_text_and_writes_nothing(case: str, tmp_path: Path) -> None:
    proc = submit(*DRY_RUNS[case], "--data", "data", "--run", "run", "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    expected = (GOLDEN / f"submit_{case}.txt").read_text()
    assert normalized(proc.stdout, tmp_path) == expected
    assert list(tmp_path.iterdir()) == []  # no RUN/submitit, nothing


def test_time_reaches_the_script_in_minutes(tmp_path: Path) -> None:
    proc = submit("--time", "1-12:00", "--data", "d", "--run", "r", "--dry-run", cwd=tmp_path)
    assert "#SBATCH --time=2160\n" in proc.stdout  # 36 h, not 24 h 12 min


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("90", 90),  # M
        ("1:30", 2),  # M:S, seconds round up
        ("0:59", 1),
        ("2:00:00", 120),  # H:M:S
        ("1:2:3", 63),
        ("1-12", 36 * 60),  # D-H
        ("1-12:00", 36 * 60),  # D-H:M
        ("1-12:30:01", 36 * 60 + 31),  # D-H:M:S
        ("12:00:00", 720),
    ],
)
def test_slurm_time_forms(spec: str, expected: int) -> None:
    assert minutes(spec) == expected


@pytest.mark.parametrize(
    "spec", ["1:2:3:4", "", "1-", "-1", "1-2:3:4:5", "abc", "1.5", "1h", " 10", "0", "0-0:0:0"]
)
def test_bad_times_are_refused(spec: str) -> None:
    with pytest.raises(UserError, match="--time"):
        minutes(spec)


def test_a_bad_time_is_one_line(tmp_path: Path) -> None:
    proc = submit("--time", "1:2:3:4", "--data", "d", "--run", "r", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "error: --time '1:2:3:4' is not a Slurm time: use M, M:S, H:M:S, D-H, D-H:M or D-H:M:S"
    ]


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize("extra", [[], ["--pipeline", "--corpus", "c.txt"], ["--nodes", "2"]])
def test_without_slurm_a_submission_says_what_to_do(extra: list[str], tmp_path: Path) -> None:
    line = one_error_line(submit(*extra, "--gpus", "4", "--data", "d", "--run", "r", cwd=tmp_path))
    assert "sbatch and srun not found on PATH" in line
    assert "login node" in line and "--local" in line
    assert list(tmp_path.iterdir()) == []


def test_local_refuses_more_than_one_node(tmp_path: Path) -> None:
    line = one_error_line(
        submit("--local", "--nodes", "2", "--data", "d", "--run", "r", cwd=tmp_path)
    )
    assert "--nodes 2" in line
    assert list(tmp_path.iterdir()) == []


def test_local_refuses_more_gpus_than_the_machine_has(tmp_path: Path) -> None:
    import torch

    more = torch.cuda.device_count() + 1
    line = one_error_line(
        submit(
            "--local", "--gpus", str(more), "--data", "d", "--run", "r", "--dry-run", cwd=tmp_path
        )
    )
    assert f"--gpus {more}" in line and f"has {more - 1} GPU(s)" in line
    assert list(tmp_path.iterdir()) == []


def test_help_describes_every_flag_with_its_default(tmp_path: Path) -> None:
    proc = submit("--help", cwd=tmp_path)
    assert proc.returncode == 0
    text = re.sub(r"\s+", " ", proc.stdout)
    for flag in ("--dry-run", "--local", "--no-check", "--wait", "--report-every", "--time"):
        assert flag in text
    assert "needs no Slurm, asks it nothing and writes nothing" in text
    assert "sbatch --test-only" in text and "pending reason" in text
    assert "M, M:S, H:M:S, D-H, D-H:M or D-H:M:S (default: 12:00:00)" in text
    # Every flag's help, default and choices: tests/test_cli.py, for every command.


def test_local_run_trains_and_prints_the_result(demo_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = submit(
        "--local",
        "--wait",
        "--data",
        str(demo_data),
        "--run",
        str(run),
        *["--hidden", "16", "--max-steps", "2", "--val-windows", "50", "--warmup-steps", "1"],
        cwd=tmp_path,
        env={**no_slurm_env(), "OMP_NUM_THREADS": "1"},
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"train: {{'run': '{run}', 'exit': 0, 'step': 2, 'val_loss': " in proc.stdout
    assert (run / "checkpoints").is_dir()
    assert os.listdir(run / "submitit")


def test_data_and_run_come_from_the_environment_as_for_the_templates(tmp_path: Path) -> None:
    env = {**no_slurm_env(), "DATA": "/scratch/data", "RUN": "/scratch/run7"}
    proc = submit("--nodes", "2", "--gpus", "4", "--dry-run", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "#SBATCH --job-name=train-run7\n" in proc.stdout  # named after its run
    assert "#SBATCH --output=/scratch/run7/submitit/%j_0_log.out\n" in proc.stdout
    # A flag wins over the environment.
    flagged = submit("--run", "run", "--dry-run", cwd=tmp_path, env=env)
    assert "#SBATCH --job-name=train-run\n" in flagged.stdout


def test_without_data_or_run_the_error_names_submit(tmp_path: Path) -> None:
    line = one_error_line(submit("--nodes", "2", "--gpus", "4", "--run", "r", cwd=tmp_path))
    assert line == (
        "error: python -m hpc_rnn.submit needs --data DATA, as flags or from the environment"
        " (as the sbatch templates take them)"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        (["lr"], "--sweep 'lr': write KEY=V1,V2"),
        (["lr=0.1,"], "--sweep 'lr=0.1,': write KEY=V1,V2"),
        (["data=/x,/y"], "values without / or spaces"),
        (["lr=0.1", "lr=0.2"], "--sweep: lr is given twice"),
        (["hiden=16,32"], "--sweep point hiden=16: unrecognized arguments: --hiden 16"),
        (["lr=fast"], "--sweep point lr=fast: argument --lr: invalid float value: 'fast'"),
    ],
)
def test_a_bad_sweep_is_one_line(spec: list[str], says: str, tmp_path: Path) -> None:
    line = one_error_line(
        submit("--sweep", *spec, "--data", "d", "--run", "r", "--dry-run", cwd=tmp_path)
    )
    assert says in line
    assert list(tmp_path.iterdir()) == []


def test_the_pipelines_generate_job_takes_the_ask_for_a_recipe_flags(tmp_path: Path) -> None:
    asked = "--title 'Lemon Chicken' --ingredients list.txt"
    common = ("--pipeline", "--corpus", "c.txt", "--data", "d", "--run", "r", "--dry-run")
    proc = submit(*common, "--local", "--generate-args", asked, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if "hpc_rnn.generate" in x)
    assert line.endswith("--overwrite --title 'Lemon Chicken' --ingredients list.txt")
    alone = submit("--data", "d", "--run", "r", "--generate-args", asked, cwd=tmp_path)
    assert "--pipeline" in one_error_line(alone)
    assert list(tmp_path.iterdir()) == []
