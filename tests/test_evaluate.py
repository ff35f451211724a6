"""The evaluate command on a trained demo model: held-out metrics and recipe scores."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_in_repo, train_command


@pytest.fixture(scope="module")
def trained(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("eval") / "run"
    small = ("--hidden", "48", "--epochs", "2", "--lr", "0.01", "--batch-size", "32")
    done = run_in_repo(train_command(demo_data, run, *small, "--val-windows", "300"), timeout=300)
    assert done.returncode == 0, done.stderr
    return run


def evaluate(*args: str) -> subprocess.CompletedProcess[str]:
    return run_in_repo([sys.executable, "-m", "hpc_rnn.evaluate", *args], timeout=300)


def test_reports_heldout_metrics_and_scores_against_the_corpus(
    trained: Path, demo_corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    done = evaluate(
        "--checkpoint", str(trained), "--generate", "4", "--windows", "500", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    held = report["heldout"]
    assert held["val_windows"] > 0 and held["val_ppl"] == pytest.approx(
        math.exp(held["val_loss"]), rel=1e-6
    )
    for mode in ("generated_carry", "generated_window"):
        assert report[mode]["count"] == 4 and 0.0 <= report[mode]["structure"] <= 1.0
    # The demo corpus names only listed ingredients in its directions: the ceiling is 1.
    assert report["reference"]["consistency"] == 1.0 and report["reference"]["source"] == str(
        demo_corpus
    )


def test_another_corpus_and_recipe_files(trained: Path, demo_corpus: Path, tmp_path: Path) -> None:
    recipes = tmp_path / "recipes"
    gen = run_in_repo(
        [
            sys.executable,
            "-m",
            "hpc_rnn.generate",
            "--checkpoint",
            trained,
            "--n",
            "3",
            "--out",
            recipes,
        ],
        timeout=120,
    )
    assert gen.returncode == 0, gen.stderr
    done = evaluate(
        "--checkpoint",
        str(trained),
        "--corpus",
        str(demo_corpus),
        "--recipes",
        str(recipes),
        "--windows",
        "300",
    )
    assert done.returncode == 0, done.stderr
    assert f'"source": "{demo_corpus}"' in done.stdout and '"count": 3' in done.stdout


def test_bad_input_is_one_line(trained: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (
        ["--checkpoint", str(tmp_path)],
        ["--checkpoint", str(trained), "--recipes", str(empty)],
        [],
    ):
        done = evaluate(*args)
        assert done.returncode == 2 and done.stderr.startswith("error:"), done.stderr
        assert "Traceback" not in done.stderr
