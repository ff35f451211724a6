"""The evaluate command: held-out metrics checked against numbers computed without it (a model
whose every guess is known, and training's own last validation), and recipe scores."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SMALL_TRAINING, run_in_repo

from hpc_rnn import checkpoint, config, evaluate, generate, shards, text
from hpc_rnn.config import ModelConfig, TrainConfig
from hpc_rnn.model import RecurrentLM
from hpc_rnn.vocab import load_vocab

VAL_WINDOWS = SMALL_TRAINING[SMALL_TRAINING.index("--val-windows") + 1]


@pytest.fixture
def trained(trained_run: Path) -> Path:
    return trained_run


def evaluate_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    return run_in_repo([sys.executable, "-m", "hpc_rnn.evaluate", *args], timeout=300)


def test_heldout_metrics_of_a_model_whose_guesses_are_known(
    demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Output weights and bias zero: every word has probability 1/n, and the guess (the first
    # of equal scores) is word 0. Loss, perplexity and accuracy follow from the data alone.
    vocab = load_vocab(demo_data)
    model_cfg = ModelConfig(hidden=16)
    model = RecurrentLM(vocab.n_words, model_cfg)
    with torch.no_grad():
        model.output.weight.zero_()
        model.output.bias.zero_()
    run = tmp_path / "run"
    cfg = TrainConfig(data=str(demo_data), run=str(run), model=model_cfg)
    state = {
        "model": model.state_dict(),
        "config": config.to_dict(cfg),
        "vocab_hash": vocab.hash,
        "step": 1,
    }
    checkpoint.save(run, 1, state)
    out = tmp_path / "report.json"
    argv = ["--checkpoint", str(run), "--windows", "0", "--device", "cpu", "--out", str(out)]
    assert evaluate.main(argv) == 0
    held = json.loads(out.read_text())["heldout"]

    targets = np.asarray(shards.load_stream(demo_data, "val"))[vocab.window :]
    assert held["val_windows"] == len(targets)
    assert held["val_loss"] == pytest.approx(math.log(vocab.n_words), rel=1e-5)
    assert held["val_ppl"] == pytest.approx(vocab.n_words, rel=1e-4)
    assert held["val_acc"] == pytest.approx(float(np.mean(targets == 0)), abs=1e-9)
    # Whole-recipe context: every token but each recipe's first is a target.
    stream, starts = shards.load_split(demo_data, "val")
    ends = np.append(starts[1:], len(stream))
    assert held["recipe_windows"] == len(stream) - len(starts)
    assert held["recipe_ppl"] == pytest.approx(vocab.n_words, rel=1e-4)
    firsts = np.concatenate([stream[s + 1 : e] for s, e in zip(starts, ends, strict=True)])
    assert held["recipe_acc"] == pytest.approx(float(np.mean(firsts == 0)), abs=1e-9)


def test_heldout_metrics_match_trainings_last_validation(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    done = evaluate_cmd("--checkpoint", str(trained), "--windows", VAL_WINDOWS, "--out", str(out))
    assert done.returncode == 0, done.stderr
    held = json.loads(out.read_text())["heldout"]
    lines = (trained / "metrics.jsonl").read_text().splitlines()
    last = [r for r in map(json.loads, lines) if r["kind"] == "epoch"][-1]
    assert held["val_windows"] == last["val_windows"]
    for key in ("val_loss", "val_acc"):
        # Another batch size sums in another order: equal to float precision, not bit for bit.
        assert held[key] == pytest.approx(last[key], rel=1e-5, abs=1e-6), key


def test_scores_generated_recipes_against_the_corpus(
    trained: Path, demo_corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scores.json"
    # Carry mode only: window mode costs 50 model steps a word (tests/test_generate.py tests it).
    argv = ["--checkpoint", str(trained), "--generate", "4", "--contexts", "carry"]
    assert evaluate.main([*argv, "--windows", "100", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["generated_carry"]["count"] == 4 and "generated_window" not in report
    assert 0 < report["generated_carry"]["structure"] <= 1
    # The demo corpus names only listed ingredients in its directions: the ceiling is 1.
    assert report["reference"]["consistency"] == 1.0
    assert report["reference"]["source"] == str(demo_corpus)


def test_another_corpus_and_recipe_files(
    trained: Path, demo_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipes = tmp_path / "recipes"
    assert generate.main(["--checkpoint", str(trained), "--n", "3", "--out", str(recipes)]) == 0
    argv = ["--checkpoint", str(trained), "--corpus", str(demo_corpus), "--recipes", str(recipes)]
    capsys.readouterr()
    assert evaluate.main([*argv, "--windows", "300"]) == 0
    out = capsys.readouterr().out
    assert f'"source": "{demo_corpus}"' in out and '"count": 3' in out


def test_another_corpus_reports_the_share_of_words_the_vocabulary_lacks(
    trained: Path, demo_corpus: Path, tmp_path: Path
) -> None:
    # The demo corpus with two recipes' titles replaced by words no vocabulary holds: the share
    # is those words over all words, and the whole-recipe figures cover every recipe.
    recipes = list(text.iter_recipes(demo_corpus))[:6]
    strange = ["zqxwv", "vwxqz", "qqzzx"]
    for i, word in enumerate(strange):
        title = next(line for line in recipes[i].splitlines()[1:] if line.strip())
        recipes[i] = recipes[i].replace(title, f"   {word}   ", 1)
    other = tmp_path / "other.txt"
    other.write_text("".join(recipes))
    out = tmp_path / "report.json"
    argv = ["--checkpoint", str(trained), "--corpus", str(other), "--out", str(out)]
    assert evaluate.main(argv) == 0
    held = json.loads(out.read_text())["heldout"]
    vocab = load_vocab(json.loads((trained / "config.json").read_text())["data"])
    tokens = [t for r in recipes for t in text.tokenize(r)]
    unknown = [t for t in tokens if t not in vocab.index]
    assert set(strange) <= set(unknown)
    assert held["unknown_share"] == pytest.approx(len(unknown) / len(tokens))
    known = len(tokens) - len(unknown)
    assert held["recipe_windows"] == known - len(recipes)
    assert math.isfinite(held["recipe_ppl"]) and math.isfinite(held["val_ppl"])


def test_bad_input_is_one_line(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (
        ["--checkpoint", str(tmp_path)],
        ["--checkpoint", str(trained), "--recipes", str(empty)],
        [],
    ):
        assert evaluate.main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and err.count("\n") == 1, err
