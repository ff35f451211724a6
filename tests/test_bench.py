"""The bench: its arithmetic and its table on hand-made timings (numbers worked out by hand
here, not by the bench's own formulas), then the command and scripts/gpu_check.sh end to end
at the bench's tiny sizes on the demo corpus. Nothing here asserts a speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import clean_env, run_in_repo

from hpc_rnn.bench import harness
from hpc_rnn.bench.harness import TINY, Figure, Stats
from hpc_rnn.bench.report import markdown
from hpc_rnn.vocab import load_vocab

# ---------------------------------------------------------------------------------------------
# harness: statistics, ratios, targets, timing


def test_stats_are_the_median_and_range_of_the_samples() -> None:
    stats = Stats.of([5.0, 1.0, 3.0, 2.0])
    assert (stats.median, stats.min, stats.max) == (2.5, 1.0, 5.0)
    assert stats.samples == [5.0, 1.0, 3.0, 2.0]
    assert Stats.of([4.0, 1.0, 2.0]).scaled(0.5).samples == [2.0, 0.5, 1.0]


def _figure(project: list[float], baseline: list[float], **kw) -> Figure:
    kw = {"ratio_of": "project/baseline", "target": 10.0, **kw}
    return Figure("f", "what", "unit", Stats.of(project), Stats.of(baseline), **kw)


def test_a_rate_ratio_is_project_over_baseline_and_meets_its_target_at_equality() -> None:
    rates = _figure([30.0, 10.0, 20.0], [2.0, 1.5, 4.0])  # medians 20 and 2
    assert rates.ratio == 10.0 and rates.met is True
    assert _figure([30.0, 10.0, 19.0], [2.0, 1.5, 4.0]).met is False  # 19 / 2


def test_a_time_ratio_is_baseline_over_project() -> None:
    times = _figure([12.8], [565.0], ratio_of="baseline/project", target=30.0)
    assert times.ratio == pytest.approx(44.140625) and times.met is True


def test_an_at_most_target_and_a_report_only_figure() -> None:
    memory = _figure([300.0], [250.0], target=1.2, goal="at_most")
    assert memory.ratio == pytest.approx(1.2) and memory.met is True
    assert _figure([301.0], [250.0], target=1.2, goal="at_most").met is False
    report = _figure([1.0], [2.0], target=None)
    assert report.met is None and report.to_dict()["met"] is None


def test_measure_times_each_repeat_after_an_untimed_warm_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [0.0]
    monkeypatch.setattr(harness, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    # (seconds, units) per call; the first is the warm-up, slow as first calls are.
    calls = iter([(9.0, 100.0), (2.0, 100.0), (4.0, 50.0), (1.0, 100.0)])

    def block() -> float:
        seconds, units = next(calls)
        clock[0] += seconds
        return units

    stats = harness.measure(block, repeats=3, device=torch.device("cpu"))
    assert stats.samples == [50.0, 12.5, 100.0]
    assert stats.median == 50.0


def test_alternate_reverses_the_order_every_other_round() -> None:
    called = []

    def side(name: str):
        def measure_once() -> dict:
            called.append(name)
            return {"n": len(called)}

        return measure_once

    results = harness.alternate({"project": side("project"), "baseline": side("peer")}, 3)
    assert called == ["project", "peer", "peer", "project", "project", "peer"]
    assert results == {
        "project": [{"n": 1}, {"n": 4}, {"n": 5}],
        "baseline": [{"n": 2}, {"n": 3}, {"n": 6}],
    }


def test_pooled_joins_the_samples_of_the_rounds_and_keeps_the_highest_peak_rss() -> None:
    rounds = [
        {"stats": Stats.of([10.0, 30.0]), "peak_rss_mb": 500.0},
        {"stats": Stats.of([20.0, 40.0, 50.0]), "peak_rss_mb": 620.0},
    ]
    stats, rss = harness.pooled(rounds)
    assert stats.samples == [10.0, 30.0, 20.0, 40.0, 50.0]
    assert (stats.median, stats.min, stats.max, rss) == (30.0, 10.0, 50.0, 620.0)


def test_the_peers_loss_is_the_projects_objective_on_a_full_batch() -> None:
    # The peer's plain mean over every position is the mean over windows of each window's
    # mean, which objective "all" takes, when every window is whole.
    from hpc_rnn.data import Batch
    from hpc_rnn.train import objective_loss

    torch.manual_seed(0)
    logits, targets = torch.randn(4, 5, 7), torch.randint(0, 7, (4, 5))
    batch = Batch(torch.zeros(4, 5, dtype=torch.long), targets, torch.ones(4), 4)
    project, _ = objective_loss(logits, batch, 1, torch.device("cpu"))
    peer = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
    assert torch.allclose(project, peer)


# ---------------------------------------------------------------------------------------------
# report: the table


def test_the_table_rows_as_the_readme_prints_them() -> None:
    figures = [
        Figure(
            "train_throughput",
            "a step",
            "windows/s",
            Stats.of([1008.0, 1255.0, 1283.0]),
            Stats.of([90.3, 99.9, 102.0]),
            "project/baseline",
            10.0,
            peak_rss_mb={"project": 582.0, "baseline": 1298.0},
        ),
        Figure(
            "time_to_quality",
            "seconds to L",
            "s",
            Stats.of([40.0]),
            Stats.of([565.0]),
            "baseline/project",
            30.0,
            bound="<",  # the default run never reached L: its time is a lower bound
            notes=["one run each"],
        ),
        Figure(
            "preprocess",
            "2 vs 1",
            "MB/s",
            Stats.of([12.2]),
            Stats.of([6.55]),
            "project/baseline",
            None,
        ),
    ]
    machine = {
        "device_name": "AMD EPYC",
        "cores": 2,
        "torch": "2.13.0",
        "torch_threads": 2,
        "device": "cpu",
        "load_average": (0.5, 0.4, 0.3),
    }
    report = {
        "mode": "full",
        "date": "2026-11-26T00:50:00+00:00",
        "seconds": 992.4,
        "machine": machine,
        "load_average_end": (2.0, 1.0, 0.5),
        "data_format": {},
        "notes": ["a note"],
    }
    lines = markdown(report, figures).splitlines()
    assert lines[0] == "# Benchmarks (full, 2026-11-26T00:50:00+00:00)"
    assert lines[2] == (
        "AMD EPYC, 2 cores, torch 2.13.0 (2 threads), device cpu; load average 0.50 at the "
        "start, 2.00 at the end; 992 s in all."
    )
    assert lines[6:9] == [
        "| `train_throughput` | 1,255 windows/s (1,008–1,283) | 99.9 windows/s (90.3–102) | "
        "12.6× | ≥ 10× | yes | 582 MB / 1298 MB |",
        "| `time_to_quality` | >40.0 s | 565 s | <14.1× | ≥ 30× | no | – |",
        "| `preprocess` | 12.2 MB/s | 6.55 MB/s | 1.86× | report | – | – |",
    ]
    assert "- `time_to_quality`: seconds to L; one run each." in lines
    assert lines[-2:] == ["Notes:", "- a note"]


# ---------------------------------------------------------------------------------------------
# The command, end to end


def _env(corpus: Path, **extra: str) -> dict[str, str]:
    # One thread: the figures are meaningless at these sizes, and tests may share the cores.
    return clean_env(HPC_RNN_DEV_CORPUS=str(corpus), OMP_NUM_THREADS="1", **extra)


def bench(corpus: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_in_repo(
        [sys.executable, "-m", "hpc_rnn.bench", "--quick", "--tiny", "--out", out, *args],
        timeout=240,
        env=_env(corpus),
    )


def check_report(out: Path, samples: dict[str, tuple[int, int]]) -> dict:
    """bench.json holds exactly the figures of `samples`, each side with that many timed
    samples (the warm-up not among them), and bench.md and bench.png are written."""
    report = json.loads((out / "bench.json").read_text())
    found = {
        f["name"]: (len(f["project"]["samples"]), len(f["baseline"]["samples"]))
        for f in report["figures"]
    }
    assert found == samples
    m = report["machine"]
    assert m["cpu"] and m["cores"] >= 1 and m["torch"] == torch.__version__ and m["device_name"]
    table = (out / "bench.md").read_text()
    for name in samples:
        assert f"| `{name}` |" in table
    assert (out / "bench.png").read_bytes().startswith(b"\x89PNG")
    return report


REPEATS = TINY.repeats


def test_cheap_figures_and_data_format(demo_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    done = bench(demo_corpus, out, "--only", "input_pipeline,data_format,preprocess")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = check_report(
        out,
        {
            "input_pipeline": (REPEATS, REPEATS),
            # one warm-up round of both rank counts, then the repeats
            "preprocess": (REPEATS, REPEATS),
            "preprocess_memory": (1, 1),
        },
    )
    # input_pipeline measured the training rate itself, train_throughput not being run.
    pipeline = next(f for f in report["figures"] if f["name"] == "input_pipeline")
    assert any("measured here" in n for n in pipeline["notes"])
    fmt = report["data_format"]
    window = 50
    assert fmt["explicit_windows_bytes"] == fmt["train_windows"] * (window + 1) * 2
    assert report["corpus"] == str(demo_corpus)
    # The table written is the table printed, and the scratch directory is gone.
    assert (out / "bench.md").read_text() in done.stdout
    assert [p.name for p in out.iterdir() if p.name.startswith("work-")] == []


def test_peer_throughput_sets_the_default_step_against_the_users_network(
    demo_corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bench"
    done = bench(demo_corpus, out, "--only", "peer_throughput")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rounds = TINY.peer_rounds
    (figure,) = check_report(out, {"peer_throughput": (rounds * REPEATS, rounds * REPEATS)})[
        "figures"
    ]
    assert figure["target"] == 1.0 and figure["goal"] == "at_least"
    assert set(figure["peak_rss_mb"]) == {"project", "baseline"}
    # The default configuration's batch on a CPU (--batch-size 0), one ratio a round.
    assert figure["extra"]["batch"] == 32
    assert len(figure["extra"]["round_ratios"]) == rounds
    # Worked out by hand for hidden 256 and vocabulary V: the project's first layer keeps a
    # [V, 1024] input table, the peer a [V, 256] embedding and nn.LSTM's [1024, 256] input
    # weight and second bias; both a [1024, 256] recurrent weight and a [V, 256] decoder.
    (data,) = (out / "cache").glob("data-*")
    n = load_vocab(data).n_words
    assert figure["extra"]["parameters"] == {
        "project": 1024 * n + 1024 + 1024 * 256 + 1024 + 256 * n + n,
        "peer": 256 * n + 2 * 1024 * 256 + 2 * 1024 + 256 * n + n,
    }


def test_time_to_quality_stops_both_runs(demo_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    done = bench(demo_corpus, out, "--only", "time_to_quality")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (figure,) = check_report(out, {"time_to_quality": (1, 1)})["figures"]
    seed = [json.loads(line) for line in (out / "runs" / "seed.metrics.jsonl").open()]
    default = [json.loads(line) for line in (out / "runs" / "default.metrics.jsonl").open()]
    # L is the seed run's best validated loss, and the default run stopped at it or at T.
    losses = [r["val_loss"] for r in seed if "val_loss" in r]
    assert figure["extra"]["L"] in losses
    assert_stopped_at_l_or_t(figure, default, "val_loss")


def assert_stopped_at_l_or_t(figure: dict, records: list[dict], key: str) -> None:
    """The project's run stopped at its first validation at or under L, or ran out of T."""
    reached = [r for r in records if r.get(key, float("inf")) <= figure["extra"]["L"]]
    if figure["bound"]:
        assert not reached and figure["project"]["median"] >= figure["extra"]["budget_s"]
    else:
        assert figure["project"]["median"] == reached[0]["train_s"]


def test_peer_time_to_quality_stops_the_project_at_the_peers_best_loss(
    demo_corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bench"
    done = bench(demo_corpus, out, "--only", "peer_time_to_quality")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (figure,) = check_report(out, {"peer_time_to_quality": (1, 1)})["figures"]
    peer = figure["extra"]["peer_losses"]
    # L is the peer's best held-out loss, validated on its way through the budget.
    assert figure["extra"]["L"] == min(loss for _, loss in peer)
    assert [s for s, _ in peer] == sorted(s for s, _ in peer)
    assert figure["baseline"]["median"] in [s for s, _ in peer]
    records = [json.loads(line) for line in (out / "runs" / "recipe.metrics.jsonl").open()]
    assert_stopped_at_l_or_t(figure, records, "val_recipe_loss")


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
    if torch.cuda.is_available():
        assert "gpu_check: passed" in text
    else:
        # A smoke run of the script, never reported as a GPU check that passed.
        assert "gpu_check: passed" not in text and "NOT a GPU check" in text
        assert "no CUDA device visible" in text
        assert "SKIPPED" in text  # pytest's -rs lines: the GPU tests and why they skipped
    pooled = TINY.peer_rounds * REPEATS
    report = check_report(
        tmp_path,
        {
            "train_throughput": (REPEATS, REPEATS),
            "peer_throughput": (pooled, pooled),
            "generation": (REPEATS, REPEATS),
        },
    )
    # Each side ran in a process of its own, which reports its own peak RSS.
    for figure in report["figures"]:
        assert set(figure["peak_rss_mb"]) == {"project", "baseline"}
        assert all(mb > 0 for mb in figure["peak_rss_mb"].values())
