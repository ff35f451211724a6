"""The lecture's named failure, controlled: a word late in each recipe that only the recipe's own
ingredient list, more than 50 words back, can tell. A model trained on 50-word windows cannot
do better than chance there; one trained on whole recipes (--objective recipe) must copy it.

The corpus is made here, not by the demo generator: each recipe lists GARNISHES of K garnishes
in its table, then FILLER words that never name one, then serves with them in the same order.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from hpc_rnn import checkpoint, config, generate, layout, shards, text
from hpc_rnn.model import RecurrentLM
from hpc_rnn.preprocess import preprocess
from hpc_rnn.train import StopFlag, parse_config, train
from hpc_rnn.vocab import load_vocab

K = 4  # garnishes to choose from: chance is 1/K on the first slot
SLOTS = 2  # garnishes listed (and named again) per recipe
FILLER = 52  # words between the list and the slots: more than the 50-word window
RECIPES = 6000  # few epochs: fewer validations between the steps
HEADER = "* Exported from MasterCook *"
COPY_STEPS = 600  # updates of the --copy model
# Updates of the whole-recipe model. The skill appears suddenly, at a point that depends on the
# seed and on rounding (../shared/notes/long-range-copy.md): measured with this test's settings,
# seed 0 has both slots right at 3,500, seed 1 at 3,000, and seed 2 has neither at 4,000.
STEPS = 4000
WORDS = [
    "stir",
    "the",
    "pot",
    "gently",
    "then",
    "simmer",
    "a",
    "while",
    "and",
    "taste",
    "it",
    "once",
    "more",
]
FILLER_TEXT = " ".join(WORDS[i % len(WORDS)] for i in range(FILLER))


def garnish_corpus(path: Path, seed: int = 0) -> None:
    rng = random.Random(seed)
    garnishes = [f"garnish{i}" for i in range(K)]
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(RECIPES):
            chosen = " ".join(rng.sample(garnishes, SLOTS))
            # Only what the copy needs: the export line that starts a recipe, the list, the
            # filler and the slots (fewer words between them, fewer steps to learn it).
            f.write(f"{HEADER}\nGarnish : {chosen}\n{FILLER_TEXT} .\n")
            f.write(f"Serve with {chosen} .\n")


@pytest.fixture(scope="module")
def garnish_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("garnish")
    garnish_corpus(root / "corpus.txt")
    out = root / "data"
    preprocess(config.PreprocessConfig(corpus=str(root / "corpus.txt"), out=str(out)))
    return out


def slot_accuracy(data: Path, run: Path, window: int | None = None) -> list[float]:
    """Teacher-forced argmax accuracy on each garnish slot of the held-out recipes, the model
    reading the whole recipe so far, or (`window`) the last `window` words as it was trained."""
    vocab = load_vocab(data)
    state = checkpoint.load_given(run)[1]
    model = RecurrentLM(vocab.n_words, config.ModelConfig(**state["config"]["model"]))
    model.load_state_dict(state["model"])
    model.eval()
    stream, starts = shards.load_split(data, "val")
    recipes = np.split(stream.astype(np.int64), starts[1:])
    with_ = vocab.index["with"]
    hits = np.zeros(SLOTS)
    for tokens in recipes:
        at = int(np.flatnonzero(tokens == with_)[-1])  # "serve with G1 G2 ."
        for slot in range(SLOTS):
            seen = tokens[: at + slot + 1][-window:] if window else tokens[: at + slot + 1]
            with torch.no_grad():
                logits, _ = model(torch.from_numpy(seen[None]), last_only=True)
            hits[slot] += int(logits[0].reshape(-1).argmax()) == int(tokens[at + 1 + slot])
    return list(hits / len(recipes))


def train_for(data: Path, run: Path, steps: int, *flags: str) -> None:
    common = ["--hidden", "32", "--batch-size", "16", "--lr", "0.015", "--schedule", "constant"]
    common += ["--warmup-steps", "0", "--max-steps", str(steps), "--epochs", "1000"]
    common += ["--log-every", "100", "--val-windows", "64", "--ckpt-every-steps", str(steps)]
    cfg = parse_config(["--data", str(data), "--run", str(run), *common, *flags])
    assert train(cfg, StopFlag("")) == 0


def test_whole_recipes_copy_the_list_and_windows_cannot(garnish_data: Path, tmp_path: Path):
    train_for(garnish_data, tmp_path / "recipe", STEPS, "--objective", "recipe")
    assert min(slot_accuracy(garnish_data, tmp_path / "recipe")) >= 0.9

    # Fewer steps suffice: no window holds the list, so no amount of training can find it there.
    train_for(garnish_data, tmp_path / "window", STEPS // 8, "--objective", "all")
    first = slot_accuracy(garnish_data, tmp_path / "window", window=50)[0]
    # The list is out of every window's sight: at chance, with room for a held-out sample of ~100.
    assert first <= 1 / K + 0.15


def test_the_copy_bias_serves_the_listed_garnishes_after_few_updates(
    garnish_data: Path, tmp_path: Path
):
    # --copy points at the words read so far instead of holding them in the state: after a
    # quarter of the plain model's updates, the recipes it writes serve what their own list
    # holds. Which of the two comes first still needs the state (measured: chance, 0.5, on the
    # first slot at 600 updates), so this asks for the listed pair, in either order.
    run = tmp_path / "copy"
    train_for(garnish_data, run, COPY_STEPS, "--objective", "recipe", "--copy")
    vocab = load_vocab(garnish_data)
    state = checkpoint.load_given(run)[1]
    model = RecurrentLM(vocab.n_words, config.ModelConfig(**state["config"]["model"]))
    model.load_state_dict(state["model"])
    rng = random.Random(1)
    lists = [rng.sample([f"garnish{i}" for i in range(K)], SLOTS) for _ in range(20)]
    # Each recipe is given up to its slots, the list more than 50 words back, and written on
    # greedily: the words read travel with the state of each row through generation. (The
    # filler is given too: writing it needs the state to count its four rounds, another skill.)
    prompts = [
        text.tokenize(f"{HEADER}\nGarnish : {' '.join(c)}\n{FILLER_TEXT} .\nServe with")
        for c in lists
    ]
    sampling = config.Sampling(temperature=0.0, max_words=SLOTS + 8)
    written = generate.complete(model, vocab, prompts, sampling, layout.archive_of(vocab.index))
    served = [w.words[w.seed_words :][:SLOTS] for w in written]
    right = sum(set(s) == set(c) for s, c in zip(served, lists, strict=True))
    assert right >= 0.9 * len(lists), served
