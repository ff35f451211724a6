"""Coverage of the given ingredients and extra ingredients (hpc_rnn.given, quality's two scores),
with a lexicon derived from a small hand-built corpus, and the report of a tiny model."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from conftest import run_in_repo

from hpc_rnn import checkpoint, config, generate, given, quality, shards
from hpc_rnn.config import ModelConfig, Sampling, TrainConfig
from hpc_rnn.demo_corpus import generate_recipes
from hpc_rnn.model import RecurrentLM
from hpc_rnn.vocab import load_vocab


def _recipe(rows: list[str], directions: str) -> str:
    table = "\n".join(rows)
    return f"x\n\namount measure ingredient -- preparation method\n{table}\n\n{directions}\n\nyield: 1\n"


# Five hand-built recipes: flour, salt, sugar, egg and lemon are listed more often than only
# named in directions; bowl and oven are named in directions and listed nowhere.
HAND = [
    _recipe(["1 cup flour", "1 teaspoon salt -- fine"], "mix flour and salt in a bowl. bake."),
    _recipe(["2 cups flour", "1 pinch salt", "1 lemon"], "stir the flour into a bowl. add lemon."),
    _recipe(["1 cup sugar", "2 large eggs, beaten"], "beat the eggs in a bowl, add sugar. oven."),
    _recipe(["1 cup sugar", "1 egg", "2 lemons -- juiced"], "whisk egg with sugar and lemon."),
    _recipe(["1 bowl frosting"], "spread in a bowl. heat the oven."),
]


def test_lexicon_from_the_ingredient_column_of_a_hand_built_corpus() -> None:
    lexicon = quality.IngredientLexicon.from_recipes(HAND)
    # Words of two or more ingredient lists, listed in at least 40 % of the recipes naming them.
    assert lexicon.keys == {"flour", "salt", "sugar", "egg", "lemon"}
    assert "frosting" not in lexicon  # in one list only
    assert "bowl" not in lexicon and "oven" not in lexicon  # kitchen words of the directions


def test_coverage_and_extra_ingredients() -> None:
    lexicon = quality.IngredientLexicon.from_recipes(HAND)
    names = ["flour", "salt", "eggs", "cooking spray"]  # the spray holds no food word
    assert quality.given_coverage(names, "mix the flour and the egg.", lexicon) == 2 / 3
    assert quality.extra_ingredients(names, "mix the flour and the egg.", lexicon) == 0
    # Sugar and lemons are food words the list lacks; "bowl" is not a food word.
    both = "mix the flour, sugar and lemons in a bowl. add sugar."
    assert quality.extra_ingredients(names, both, lexicon) == 2
    assert quality.given_coverage(["cooking spray"], both, lexicon) is None


@pytest.fixture()
def tiny_run(demo_data: Path, tmp_path: Path) -> Path:
    """A run of an untrained 16-unit model on the demo data, laid out as training leaves it."""
    vocab = load_vocab(demo_data)
    cfg = ModelConfig(hidden=16)
    run = tmp_path / "run"
    state = {
        "model": RecurrentLM(vocab.n_words, cfg).state_dict(),
        "config": config.to_dict(TrainConfig(data=str(demo_data), run=str(run), model=cfg)),
        "vocab_hash": vocab.hash,
        "step": 1,
    }
    checkpoint.save(run, 1, state)
    return run


def _score(run: Path, held: str, sampling: Sampling, **options) -> dict:
    """given.score as `evaluate --given` calls it, with the run's own corpus as reference."""
    trained = generate.load_model(str(run), "", torch.device("cpu"))
    reference = shards.training_corpus(trained.data, "")
    lexicon = quality.lexicon_from_corpus(reference)
    return given.score(trained, held, sampling, reference=reference, lexicon=lexicon, **options)


def test_the_report_of_a_model_with_ceiling_and_floor(tiny_run: Path, tmp_path: Path) -> None:
    held = tmp_path / "held.txt"
    held.write_text("".join(generate_recipes(6, 11)))
    report = _score(tiny_run, str(held), Sampling(max_words=40))
    assert report["recipes"] == 6
    # The demo corpus's directions name only listed ingredients (its generator's rule).
    assert report["real"]["extra"] == 0
    assert report["real"]["coverage"] > report["other_recipe"]["coverage"]
    assert report["other_recipe"]["extra"] > 0
    for setting, temperature in (("greedy", 0.0), ("sampled", Sampling().temperature)):
        row = report[setting]
        assert row["temperature"] == temperature
        assert 0 <= row["unfinished"] <= 6
        assert math.isnan(row["coverage"]) or 0 <= row["coverage"] <= 1
        assert row["extra"] >= 0


def test_sticking_to_the_list_brings_in_no_extra_ingredient(tiny_run: Path, tmp_path: Path) -> None:
    # The untrained model names food words at random, most of them not in the list; with
    # --stick-to-list none that the list lacks, greedy or sampled.
    held = tmp_path / "held.txt"
    held.write_text("".join(generate_recipes(6, 11)))
    sampling = Sampling(max_words=80)
    free = _score(tiny_run, str(held), sampling)
    stuck = _score(tiny_run, str(held), sampling, stick_to_list=True)
    assert free["sampled"]["extra"] > 0 and not free["sampled"]["stick_to_list"]
    for setting in ("greedy", "sampled"):
        assert stuck[setting]["extra"] == 0 and stuck[setting]["stick_to_list"], stuck[setting]


def test_the_runs_own_validation_recipes(tiny_run: Path) -> None:
    report = _score(tiny_run, given.VAL, Sampling(max_words=20), limit=3)
    assert report["held"] == "val" and report["recipes"] == 3
    assert report["unknown_words"] >= 0 and report["lexicon_words"] > 20


def test_evaluate_given_reports_ceiling_floor_and_the_model(tiny_run: Path) -> None:
    proc = run_in_repo(
        [
            sys.executable,
            "-m",
            "hpc_rnn.evaluate",
            "--checkpoint",
            tiny_run,
            "--given",
            "val",
            "--given-limit",
            "3",
            "--windows",
            "50",
            "--temperature",
            "0.9",
        ],
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = {line.split(":", 1)[0]: line for line in proc.stdout.splitlines() if ": {" in line}
    for kind in ("given_real", "given_other_recipe", "given_greedy", "given_sampled"):
        assert '"coverage"' in lines[kind] and '"extra"' in lines[kind]
    assert json.loads(lines["given_sampled"].split(": ", 1)[1])["temperature"] == 0.9
    # The recipes' own directions name more of their list than another recipe's do.
    real = json.loads(lines["given_real"].split(": ", 1)[1])
    floor = json.loads(lines["given_other_recipe"].split(": ", 1)[1])
    assert real["coverage"] > floor["coverage"] and real["extra"] < floor["extra"]


def test_evaluate_refuses_a_bad_temperature_before_reading_anything(tmp_path: Path) -> None:
    proc = run_in_repo(
        [sys.executable, "-m", "hpc_rnn.evaluate", "--checkpoint", tmp_path, "--temperature", "-1"],
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --temperature must be 0 (argmax) or positive, got -1.0"
    ]
