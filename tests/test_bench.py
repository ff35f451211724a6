"""The bench command and scripts/gpu_check.sh end to end, at the bench's tiny sizes on the demo
corpus: which files and figures come out, and that the ratios are what the JSON's own numbers
give. Nothing here asserts a speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import clean_env, run_in_repo


def _env(corpus: Path, **extra: str) -> dict[str, str]:
    # One thread: the figures are meaningless at these sizes, and tests may share the cores.
    return clean_env(HPC_RNN_DEV_CORPUS=str(corpus), OMP_NUM_THREADS="1", **extra)


def bench(corpus: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_in_repo(
        [sys.executable, "-m", "hpc_rnn.bench", "--quick", "--tiny", "--out", out, *args],
        timeout=240,
        env=_env(corpus),
    )


def check_report(out: Path, names: set[str]) -> dict:
    """bench.json holds exactly `names`, each ratio is its medians' quotient, and bench.md and
    bench.png are written."""
    report = json.loads((out / "bench.json").read_text())
    assert {f["name"] for f in report["figures"]} == names
    for f in report["figures"]:
        p, b = f["project"]["median"], f["baseline"]["median"]
        expected = {"project/baseline": p / b, "baseline/project": b / p}[f["ratio_of"]]
        assert f["ratio"] == pytest.approx(expected), f["name"]
        for side in (f["project"], f["baseline"]):
            assert side["min"] <= side["median"] <= side["max"]
            assert sorted(side["samples"])[0] == side["min"]
        if f["target"] is None:
            assert f["met"] is None
        else:
            above = f["ratio"] >= f["target"]
            assert f["met"] == (above if f["goal"] == "at_least" else f["ratio"] <= f["target"])
    m = report["machine"]
    assert m["cpu"] and m["cores"] >= 1 and m["torch"] == torch.__version__ and m["device_name"]
    table = (out / "bench.md").read_text()
    for name in names:
        assert f"| `{name}` |" in table
    assert (out / "bench.png").read_bytes().startswith(b"\x89PNG")
    return report


def test_cheap_figures_and_data_format(demo_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    done = bench(demo_corpus, out, "--only", "input_pipeline,data_format,preprocess")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = check_report(out, {"input_pipeline", "preprocess", "preprocess_memory"})
    # input_pipeline measured the training rate itself, train_throughput not being run.
    pipeline = next(f for f in report["figures"] if f["name"] == "input_pipeline")
    assert any("measured here" in n for n in pipeline["notes"])
    fmt = report["data_format"]
    window = 50
    assert fmt["explicit_windows_bytes"] == fmt["train_windows"] * (window + 1) * 2
    assert fmt["size_ratio"] == pytest.approx(
        fmt["explicit_windows_bytes"] / fmt["train_shard_bytes"]
    )
    assert report["corpus"] == str(demo_corpus)
    # The table is printed, and the scratch directory is gone.
    assert "| `preprocess_memory` |" in done.stdout
    assert [p.name for p in out.iterdir() if p.name.startswith("work-")] == []


def test_time_to_quality_stops_both_runs(demo_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    done = bench(demo_corpus, out, "--only", "time_to_quality")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (figure,) = check_report(out, {"time_to_quality"})["figures"]
    seed = [json.loads(line) for line in (out / "runs" / "seed.metrics.jsonl").open()]
    default = [json.loads(line) for line in (out / "runs" / "default.metrics.jsonl").open()]
    # L is the seed run's best validated loss, and the default run stopped at it or at T.
    losses = [r["val_loss"] for r in seed if "val_loss" in r]
    assert figure["extra"]["L"] in losses
    reached = [r for r in default if r.get("val_loss", float("inf")) <= figure["extra"]["L"]]
    if figure["bound"]:
        assert not reached and figure["project"]["median"] >= figure["extra"]["budget_s"]
    else:
        assert figure["project"]["median"] == reached[0]["train_s"]


def test_unknown_figure_is_one_line_error(demo_corpus: Path, tmp_path: Path) -> None:
    done = bench(demo_corpus, tmp_path / "bench", "--only", "train_throughput,speed")
    assert done.returncode == 2
    assert done.stderr.startswith("error: --only: unknown figure speed")


def test_gpu_check_script_runs_without_a_gpu(demo_corpus: Path, tmp_path: Path) -> None:
    env = _env(
        demo_corpus, OUT=str(tmp_path), HPC_RNN_GPU_CHECK_QUICK="1", HPC_RNN_PYTHON=sys.executable
    )
    done = run_in_repo(["bash", "scripts/gpu_check.sh"], timeout=240, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = (tmp_path / "gpu_check.txt").read_text()
    assert "gpu_check: passed" in text
    if not torch.cuda.is_available():
        assert "no CUDA device visible" in text
        assert "SKIPPED" in text  # pytest's -rs lines: the GPU tests and why they skipped
    check_report(tmp_path, {"train_throughput", "generation"})
