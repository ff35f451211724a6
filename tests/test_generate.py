"""Generation: sampling, the two context modes against the lecture's loop, stopping, and the CLI."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import DEMO_RECIPES, DEMO_SEED, SMALL_TRAINING, run_in_repo, snapshot
from test_layout import MM_HEADER, meal_master
from torch import nn

from hpc_rnn import checkpoint, config, layout, prompt, quality, text
from hpc_rnn import generate as gen
from hpc_rnn.config import ModelConfig, Sampling, TrainConfig
from hpc_rnn.demo_corpus import END_LINE, EXPORT_LINE, TABLE_HEADER, TABLE_RULE, generate_recipes
from hpc_rnn.model import RecurrentLM
from hpc_rnn.vocab import Vocab, build_vocab

DEMO = f"""{EXPORT_LINE}

                          Chocolate Cake

Recipe By     : grandma
Serving Size  : 8    Preparation Time :0:00
Categories    : Desserts Cakes

{TABLE_HEADER}
{TABLE_RULE}
   2      cups          flour
   1 1/2  cups          sugar
   3                    eggs -- beaten
   1/2    cup           cocoa

Mix the flour, sugar and cocoa. Add the eggs and beat well. Bake at 350 for 30 minutes.

Yield: 1 cake

{END_LINE}
"""


def _vocab(extra: str = "", unk: bool = False) -> Vocab:
    return build_vocab(Counter(text.tokenize(DEMO + extra)), window=50, min_count=1, unk=unk)


def _model(vocab: Vocab, seed: int = 0) -> RecurrentLM:
    torch.manual_seed(seed)
    model = RecurrentLM(vocab.n_words, ModelConfig(hidden=24))
    with torch.no_grad():
        # Default random weights settle into one word repeated under greedy decoding; larger
        # weights keep the state moving, so greedy text varies and the comparisons below bite.
        model.input_weight.mul_(8)
        model.hidden_weight.mul_(3)
        model.output.weight.mul_(20)
        model.output.bias.zero_()
        # A long memory (forget gates open), so words that leave the window change the text.
        model.input_bias[model.cfg.hidden : 2 * model.cfg.hidden] += 2
    return model.eval()


def _generate(
    model: RecurrentLM, vocab: Vocab, n: int = 5, prompt: str = "", **settings
) -> list[list[str]]:
    sampling = Sampling(**{"max_words": 40, "batch": 3, **settings})
    return gen.generate(model, vocab, sampling, n=n, prompt=prompt)


def test_same_seed_same_text_different_seed_different() -> None:
    vocab = _vocab()
    model = _model(vocab)
    for context in gen.CONTEXTS:
        first = _generate(model, vocab, context=context, seed=1)
        assert _generate(model, vocab, context=context, seed=1) == first
        assert _generate(model, vocab, context=context, seed=2) != first
    assert len(first) == 5


def test_greedy_window_equals_the_lecture_loop() -> None:
    vocab = _vocab()
    model = _model(vocab)
    prompt = "chocolate cake"
    # 70 words after a 9-word seed: past the 50-word window, so the window's cut is exercised.
    (got,) = _generate(
        model, vocab, n=1, context="window", temperature=0, prompt=prompt, max_words=70
    )

    seed = text.tokenize("* Exported from MasterCook *\n\n" + prompt)
    ids = [vocab.index[w] for w in seed]
    with torch.no_grad():
        for _ in range(70):
            logits, _ = model(torch.tensor([ids[-vocab.window :]]))
            ids.append(int(logits[0, -1].argmax()))
    want = vocab.decode(ids)
    assert got == want[: len(got)]
    assert len(got) == len(want), "this model's greedy text runs to max_words"


def test_carry_and_window_agree_for_greedy_within_the_window() -> None:
    vocab = _vocab()
    model = _model(vocab)
    # Seed (8 words) + 40 words stay within the 50-word window: both modes see the same context.
    carry = _generate(model, vocab, context="carry", temperature=0, max_words=40)
    window = _generate(model, vocab, context="window", temperature=0, max_words=40)
    assert carry == window
    assert len({tuple(r) for r in carry}) > 1, "random titles give different recipes"


def test_top_k_one_and_tiny_top_p_are_greedy() -> None:
    logits = torch.randn(6, 40, generator=torch.Generator().manual_seed(0))
    greedy = logits.argmax(dim=-1)
    for top_k, top_p in ((1, 1.0), (0, 1e-6), (5, 1e-6)):
        picks = gen.sample_next(
            logits, temperature=1.0, top_k=top_k, top_p=top_p, generator=torch.Generator()
        )
        assert torch.equal(picks, greedy)
    top3 = logits.topk(3, dim=-1).indices
    picks = gen.sample_next(
        logits, temperature=5.0, top_k=3, top_p=1.0, generator=torch.Generator().manual_seed(1)
    )
    assert all(p in row for p, row in zip(picks.tolist(), top3.tolist(), strict=True))


def test_sampling_follows_the_softmax_and_never_picks_a_masked_word() -> None:
    probs = torch.tensor([0.5, 0.3, 0.2, 0.0])
    logits = probs.log().expand(20000, -1)  # log(0) = -inf: a word top-k or top-p removed
    picks = gen.sample_next(
        logits, temperature=1.0, top_k=0, top_p=1.0, generator=torch.Generator().manual_seed(0)
    )
    freq = torch.bincount(picks, minlength=4) / len(picks)
    torch.testing.assert_close(freq, probs, atol=0.015, rtol=0)
    assert freq[3] == 0


def test_stops_at_max_words() -> None:
    vocab = _vocab()
    recipes = _generate(_model(vocab), vocab, temperature=1.0, max_words=13)
    seed = len(text.tokenize("* Exported from MasterCook *\n\n")) + 1
    assert all(len(r) <= seed + 13 for r in recipes)
    assert any(len(r) == seed + 13 for r in recipes)


class _Scripted(nn.Module):
    """Writes `scripts[row]` after the seed whatever it reads; the batch row and the position
    travel in the state, so they follow a row when finished recipes leave the batch."""

    def __init__(self, vocab: Vocab, scripts: list[str]) -> None:
        super().__init__()
        self.n_words = vocab.n_words
        self.scripts = [[vocab.index[w] for w in text.tokenize(s)] for s in scripts]
        self.output = nn.Linear(1, 1)

    def forward(self, tokens: torch.Tensor, state=None, *, last_only: bool = False):
        assert last_only
        if state is None:  # the seed: next comes the script's first word
            state = torch.stack([torch.arange(len(tokens)), torch.zeros(len(tokens), dtype=int)])
        else:
            state = state + torch.tensor([[0], [tokens.shape[1]]])
        logits = torch.zeros(len(tokens), self.n_words)
        for b, (row, pos) in enumerate(state.t().tolist()):
            script = self.scripts[row]
            logits[b, script[min(pos, len(script) - 1)]] = 1.0
        return logits, state

    def select_rows(self, state: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return state[:, rows]

    def join_rows(self, states: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(states, 1)


def test_each_recipe_stops_on_its_own() -> None:
    vocab = _vocab()
    scripts = [
        "flour\n- - - - - - -\nsugar sugar",  # the closing line ends it, the line is kept
        "eggs * exported from mastercook * cake",  # the next header ends it, the header goes
        "flour sugar eggs cocoa",  # runs to max_words while the others have stopped
        "- - - -\n- - - - -\n",  # four dashes are no closing line; five are
    ]
    model = _Scripted(vocab, scripts)
    sampling = Sampling(temperature=0, max_words=12, batch=4)
    recipes = gen.generate(model, vocab, sampling, n=4, prompt="cake")
    seed = text.tokenize("* Exported from MasterCook *\n\ncake")
    assert [r[: len(seed)] for r in recipes] == [seed] * 4
    after = [r[len(seed) :] for r in recipes]
    assert after[0] == text.tokenize("flour\n- - - - - - -\n")
    assert after[1] == ["eggs"]
    assert after[2] == text.tokenize("flour sugar eggs cocoa") + ["cocoa"] * 8
    assert after[3] == text.tokenize("- - - -\n- - - - -\n")


class _ByPosition(nn.Module):
    """Writes `script` after a seed of `n_seed` words, in either context mode: the position
    comes from the state (carry) or from the length of the window it reads (window, while the
    window has not started to slide)."""

    def __init__(self, vocab: Vocab, script: str, n_seed: int) -> None:
        super().__init__()
        self.n_words, self.n_seed = vocab.n_words, n_seed
        self.script = [vocab.index[w] for w in text.tokenize(script)]
        self.output = nn.Linear(1, 1)

    def forward(self, tokens: torch.Tensor, state=None, *, last_only: bool = False):
        assert last_only and tokens.shape[1] < 50, "a window that slid would lose the position"
        position = state if state is not None else torch.zeros(1, len(tokens), dtype=int)
        position = position + tokens.shape[1]
        logits = torch.zeros(len(tokens), self.n_words)
        for b, pos in enumerate(position[0].tolist()):
            logits[b, self.script[min(pos - self.n_seed, len(self.script) - 1)]] = 1.0
        return logits, position


@pytest.mark.parametrize("context", gen.CONTEXTS)
def test_a_recipe_stops_early_in_either_context_mode(context: str) -> None:
    vocab = _vocab()
    seed = text.tokenize("* Exported from MasterCook *\n\ncake")
    for script, kept in (
        ("flour sugar\n- - - - -\ncocoa eggs", "flour sugar\n- - - - -\n"),
        ("eggs * exported from mastercook * cake", "eggs"),
    ):
        model = _ByPosition(vocab, script, len(seed))
        sampling = Sampling(context=context, temperature=0, max_words=30, batch=2)
        recipes = gen.generate(model, vocab, sampling, n=3, prompt="cake")
        assert recipes == [seed + text.tokenize(kept)] * 3, "stopped at the end, not at 30 words"


def test_a_vocabulary_without_the_mastercook_header_starts_from_the_prompt() -> None:
    body = DEMO.split("\n", 1)[1]  # another corpus format: no "Exported from MasterCook" line
    vocab = build_vocab(Counter(text.tokenize(body)), window=50, min_count=1, unk=False)
    assert "mastercook" not in vocab.index
    model = _model(vocab)
    for context in gen.CONTEXTS:
        recipes = _generate(model, vocab, context=context, prompt="chocolate cake", max_words=20)
        assert all(r[:2] == ["chocolate", "cake"] and 2 < len(r) <= 22 for r in recipes)
        # Without a prompt the lecture's seed: a window of random words, then the model's.
        unprompted = _generate(model, vocab, context=context, max_words=20)
        assert all(vocab.window < len(r) <= vocab.window + 20 for r in unprompted)
        assert len({tuple(r[: vocab.window]) for r in unprompted}) == len(unprompted)
    assert gen.recipe_text(recipes[0]).startswith("chocolate cake")


def test_recipe_text_drops_header_and_closing_line() -> None:
    body = gen.recipe_text(text.tokenize(DEMO))
    assert body.startswith("chocolate cake\n")
    assert body.endswith("\nyield: 1 cake\n")
    assert "exported" not in body and "- - -" not in body
    assert "1 1/2 cups sugar" in body


def test_prompt_without_known_words_is_refused() -> None:
    vocab = _vocab()
    with pytest.raises(gen.UserError, match="prompt"):
        _generate(_model(vocab), vocab, prompt="zzz qqq")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"context": "sliding"}, "--context must be one of carry, window"),
        ({"temperature": float("nan")}, "--temperature must be 0 (argmax) or positive"),
        ({"top_k": -1}, "--top-k must be 0 (off) or a positive number"),
        ({"top_p": 0.0}, "--top-p must be in (0, 1]"),
        ({"max_words": 0}, "--max-words must be at least 1"),
        ({"max_words": 1_000_000_000}, "--max-words must be at most 10000"),
        ({"batch": 0}, "--batch must be at least 1"),
    ],
)
def test_sampling_settings_are_checked_when_made(setting: dict, message: str) -> None:
    with pytest.raises(gen.UserError, match=re.escape(message)):
        Sampling(**setting)


@pytest.mark.parametrize(
    ("flags", "message"), [(["--n", "0"], "--n must be"), (["--top-p", "2"], "--top-p must be")]
)
def test_a_bad_flag_is_refused_before_the_checkpoint_is_read(
    tmp_path: Path, capsys, flags: list[str], message: str
) -> None:
    assert _ask(tmp_path / "no_run", tmp_path / "out", *flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {message}"), err


# ---------------------------------------------------------------------------------------------
# The command, on a checkpoint laid out as hpc_rnn.checkpoint writes them


def _run_dir(tmp_path: Path, unk: bool = False) -> tuple[Path, Path]:
    """A run directory with one complete checkpoint and a newer one that a killed job left
    without its marker; returns the run and the complete step directory."""
    vocab = _vocab(unk=unk)
    data = tmp_path / "data"
    data.mkdir()
    vocab.save(data)
    model_cfg = ModelConfig(hidden=24)
    model = RecurrentLM(vocab.n_words, model_cfg)
    run = tmp_path / "run"
    state = {
        "model": model.state_dict(),
        "config": config.to_dict(TrainConfig(data=str(data), run=str(run), model=model_cfg)),
        "vocab_hash": vocab.hash,
        "step": 10,
    }
    complete = checkpoint.save(run, 10, state)
    killed = checkpoint.step_dir(run, 20)
    killed.mkdir()
    torch.save({**state, "step": 20}, killed / checkpoint.STATE_FILE)
    return run, complete


def test_command_writes_recipes_and_manifest(tmp_path: Path, capsys) -> None:
    run, step_dir = _run_dir(tmp_path)
    out = tmp_path / "samples"
    argv = ["--checkpoint", str(run), "--out", str(out), "--n", "5", "--batch", "2"]
    assert gen.main([*argv, "--max-words", "30", "--device", "cpu"]) == 0

    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1 and summary[0].startswith("generated 5 recipes")
    files = sorted(p.name for p in out.glob("recipe-*.txt"))
    assert files == [f"recipe-000{i}.txt" for i in range(1, 6)]
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["file"] for r in rows] == files
    sha = hashlib.sha256((step_dir / "state.pt").read_bytes()).hexdigest()
    for row in rows:
        assert row["checkpoint"] == str(step_dir), "the newest complete checkpoint"
        assert row["checkpoint_sha256"] == sha
        assert row["settings"]["context"] == "carry" and row["settings"]["seed"] == 0
        assert row["words"] > 0 and row["words_per_s"] > 0
    assert not list(out.glob(".*")), "no temporary files left"


def test_command_refuses_to_overwrite_recipes(tmp_path: Path) -> None:
    run, _ = _run_dir(tmp_path)
    out = tmp_path / "samples"
    argv = ["--checkpoint", str(run), "--out", str(out), "--max-words", "20", "--device", "cpu"]
    assert gen.main([*argv, "--n", "3"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    assert gen.main([*argv, "--n", "2", "--seed", "5"]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    assert gen.main([*argv, "--n", "2", "--seed", "5", "--overwrite"]) == 0
    assert sorted(p.name for p in out.glob("recipe-*.txt")) == [
        "recipe-0001.txt",
        "recipe-0002.txt",
    ]
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 2


def test_command_refuses_a_vocabulary_of_another_run(tmp_path: Path) -> None:
    run, _ = _run_dir(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _vocab(extra="paprika").save(other)
    proc = run_in_repo(
        [
            sys.executable,
            "-m",
            "hpc_rnn.generate",
            "--checkpoint",
            run,
            "--out",
            tmp_path / "samples",
            "--vocab",
            other,
            "--device",
            "cpu",
        ],
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: vocabulary"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "samples").exists()


def test_command_refuses_an_incomplete_checkpoint(tmp_path: Path, capsys) -> None:
    run, _ = _run_dir(tmp_path)
    argv = ["--checkpoint", str(checkpoint.step_dir(run, 20)), "--out", str(tmp_path / "s")]
    assert gen.main([*argv, "--device", "cpu"]) == 2
    assert "incomplete" in capsys.readouterr().err


def test_a_checkpoint_of_another_model_version_is_one_error_line(tmp_path: Path, capsys) -> None:
    # A --copy checkpoint of the version with one copy bias, read by this one with two.
    _, step_dir = _run_dir(tmp_path)
    state = torch.load(step_dir / checkpoint.STATE_FILE, weights_only=True)
    state["config"]["model"]["copy"] = True
    state["model"]["copy_scale.weight"] = torch.zeros(1, state["config"]["model"]["hidden"])
    state["model"]["copy_scale.bias"] = torch.zeros(1)
    old = checkpoint.save(tmp_path / "old", 10, state)
    out = tmp_path / "s"
    assert gen.main(["--checkpoint", str(old), "--out", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "do not fit" in err[0], err
    assert "copy_scale" in err[0] and not out.exists()


# ---------------------------------------------------------------------------------------------
# Asking for a recipe: a title and an ingredient list, written in the archive's layout

ASK = ["--title", "Chocolate Cake", "--servings", "8", "--categories", "Desserts"]
FLOUR, EGGS = ["--ingredient", "2 cups flour"], ["--ingredient", "3 eggs -- beaten"]


def _ask(run: Path, out: Path, *args: str) -> int:
    return gen.main(["--checkpoint", str(run), "--out", str(out), "--device", "cpu", *args])


def test_ask_for_a_recipe_by_title_and_list(tmp_path: Path, capsys) -> None:
    run, _ = _run_dir(tmp_path)
    out = tmp_path / "asked"
    ingredients = tmp_path / "more.txt"
    ingredients.write_text("\n1/2 cup cocoa\n   1 1/2  cups          Sugar\n")
    args = [*ASK, *FLOUR, *EGGS, "--ingredients", str(ingredients), "--n", "2"]
    assert _ask(run, out, *args, "--max-words", "70") == 0
    assert "generated 2 recipes" in capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    want = "\n".join(
        [
            EXPORT_LINE,
            "",
            " " * 30 + "Chocolate Cake",
            "",
            "Recipe By     :",
            "Serving Size  : 8    Preparation Time :0:00",
            "Categories    : Desserts",
            "",
            TABLE_HEADER,
            TABLE_RULE,
            "   2      cups          Flour",
            "   3                    Eggs -- beaten",
            "     1/2  cup           Cocoa",
            "   1 1/2  cups          Sugar",
            "",
            "",
        ]
    )
    for row in rows:
        assert row["title"] == "Chocolate Cake" and row["prompt_words"] == len(text.tokenize(want))
        assert row["finished"] is (row["words"] - row["prompt_words"] < 70)
        assert (out / row["file"]).read_text().startswith(want)


def test_generated_recipes_read_back_as_a_corpus_with_the_models_words(
    tmp_path: Path, run_preprocess
) -> None:
    run, _ = _run_dir(tmp_path)
    out = tmp_path / "recipes"
    assert _ask(run, out, "--n", "6", "--max-words", "60") == 0
    files = sorted(out.glob("recipe-*.txt"))
    model, vocab, *_ = gen.load_model(str(run), "", torch.device("cpu"))
    words = gen.generate(model, vocab, Sampling(max_words=60), n=6)
    for path, expected in zip(files, words, strict=True):
        assert path.read_text().startswith(EXPORT_LINE + "\n")
        cut_off = [] if expected[-1] == text.NEWLINE else [text.NEWLINE]
        assert text.tokenize(path.read_text()) == expected + cut_off
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(p.read_text() for p in files))
    proc = run_preprocess(corpus, "--out", tmp_path / "read_back", "--min-count", "1")
    assert proc.returncode == 0, proc.stderr
    assert "preprocessed 6 recipes" in proc.stdout


def test_layout_tokens_writes_the_token_text(tmp_path: Path) -> None:
    run, _ = _run_dir(tmp_path)
    assert _ask(run, tmp_path / "t", "--n", "2", "--max-words", "30", "--layout", "tokens") == 0
    model, vocab, *_ = gen.load_model(str(run), "", torch.device("cpu"))
    words = gen.generate(model, vocab, Sampling(max_words=30), n=2)
    assert (tmp_path / "t" / "recipe-0001.txt").read_text() == gen.recipe_text(words[0])


def test_complete_keeps_each_recipes_title_and_list(tmp_path: Path) -> None:
    run, _ = _run_dir(tmp_path)
    held = tmp_path / "held.txt"
    held.write_text(DEMO + DEMO.replace("Chocolate Cake", "Cocoa Cake"))
    out = tmp_path / "completed"
    assert _ask(run, out, "--complete", str(held), "--max-words", "80") == 0
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["title"] for r in rows] == ["chocolate cake", "cocoa cake"]
    for row, title in zip(rows, ("Chocolate Cake", "Cocoa Cake"), strict=True):
        body = (out / row["file"]).read_text()
        assert body.split("\n")[2].strip() == title
        head = DEMO[: DEMO.index("Mix the flour")].replace("Chocolate Cake", title)
        assert text.tokenize(body)[: row["prompt_words"]] == text.tokenize(head)


def test_stick_to_list_writes_no_food_word_the_list_lacks(tmp_path: Path, capsys) -> None:
    # A model that favours "butter" and "milk", which the cake's list lacks: sampled as it is,
    # its directions name them; with the list to stick to, never, and the rest is unchanged.
    vocab = _vocab(extra="Melt the butter in the milk.")
    model = _model(vocab)
    with torch.no_grad():
        model.output.bias[[vocab.index["butter"], vocab.index["milk"]]] = 8.0
    head = text.tokenize(DEMO[: DEMO.index("Mix the flour")])
    lexicon = quality.IngredientLexicon.from_words(["flour", "sugar", "eggs", "butter", "milk"])
    sampling = Sampling(max_words=40, seed=3)
    for stick_to in (None, lexicon):
        written = gen.complete(model, vocab, [head] * 6, sampling, None, stick_to)
        named = {w for r in written for w in r.words[len(head) :]} & {"butter", "milk"}
        assert named == (set() if stick_to else {"butter", "milk"})
        assert all(r.words[: len(head)] == head for r in written)
    run, _ = _run_dir(tmp_path)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(DEMO)
    out = tmp_path / "stuck"
    args = [*ASK, *FLOUR, *EGGS, "--stick-to-list", "--reference", str(corpus)]
    assert _ask(run, out, *args, "--max-words", "80") == 0
    row = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
    assert row["settings"]["stick_to_list"] is True
    capsys.readouterr()
    assert _ask(run, tmp_path / "none", *ASK, *FLOUR, "--stick-to-list") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs the training corpus (not named)" in err[0], err
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--title", "", *FLOUR], "the title is empty"),
        (["--title", "Chocolate Cake", "--servings", "8"], "ingredient list of 'Chocolate Cake' is empty"),
        ([*ASK, "--ingredient", "2 1/2"], "names no ingredient, only numbers"),
        ([*ASK, *FLOUR, "--max-words", "20"], "are 47 words, more than --max-words 20"),
        ([*ASK, "--ingredient", "2 cups yuzu"], "not in the model's vocabulary: 'yuzu'"),
        ([*ASK, "--ingredient", "2 cups yuzu", "--unknown", "unk"], "has no <unk>"),
        (["--complete", "NOTES"], "holds no recipes"),
        (["--complete", "NOTES", *FLOUR], "--complete takes the titles"),
    ],
)  # fmt: skip
def test_bad_requests_are_one_error_line_and_touch_nothing(
    tmp_path: Path, capsys, args: list[str], message: str
) -> None:
    run, _ = _run_dir(tmp_path)
    out = tmp_path / "samples"
    assert _ask(run, out, "--n", "2", "--max-words", "20") == 0
    before = snapshot(out)
    notes = tmp_path / "notes.txt"
    notes.write_text("Grandma's notes: 2 cups flour, 3 eggs.\n")
    args = [str(notes) if a == "NOTES" else a for a in args]
    capsys.readouterr()
    assert _ask(run, out, *args, "--overwrite") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert snapshot(out) == before


def test_unknown_words_map_to_unk_when_the_vocabulary_has_it(tmp_path: Path) -> None:
    run, _ = _run_dir(tmp_path, unk=True)
    out = tmp_path / "asked"
    args = [*ASK, *FLOUR, "--ingredient", "2 cups yuzu", "--max-words", "60", "--n", "1"]
    assert _ask(run, out, *args, "--unknown", "unk") == 0
    assert "   2      cups          <unk>" in (out / "recipe-0001.txt").read_text()


def test_a_recipe_cut_off_at_max_words_is_marked_unfinished() -> None:
    vocab = _vocab()
    scripts = ["flour\n- - - - - - -\nsugar", "flour sugar eggs cocoa"]
    prompts = [text.tokenize("* Exported from MasterCook *\n\ncake\n")] * 2
    sampling = Sampling(temperature=0, max_words=12)
    archive = layout.archive_of(vocab.index)
    written = gen.complete(_Scripted(vocab, scripts), vocab, prompts, sampling, archive)
    assert [w.finished for w in written] == [True, False]
    assert [len(w.words) - w.seed_words for w in written] == [10, 12]


# ---------------------------------------------------------------------------------------------
# A model of a Meal-Master archive: seeds, prompts, ends and files in Meal-Master's layout

DEMO_MM = meal_master(DEMO)
MM_SEED = text.tokenize(MM_HEADER + "\n\n      Title: ")
MM_ARCHIVE = layout.Archive(layout.MEAL_MASTER, MM_HEADER, "MMMMM")


def _mm_vocab() -> Vocab:
    return build_vocab(Counter(text.tokenize(DEMO_MM)), window=50, min_count=1, unk=False)


def test_a_meal_master_vocabulary_starts_recipes_with_its_header_and_title_field() -> None:
    vocab = _mm_vocab()
    assert layout.archive_of(vocab.index).name == layout.MEAL_MASTER
    model = _model(vocab)
    for context in gen.CONTEXTS:
        prompted = _generate(model, vocab, context=context, prompt="chocolate cake")
        assert all(r[: len(MM_SEED) + 2] == [*MM_SEED, "chocolate", "cake"] for r in prompted)
        unprompted = _generate(model, vocab, context=context)
        assert all(r[: len(MM_SEED)] == MM_SEED and r[len(MM_SEED)].isalpha() for r in unprompted)
    body = gen.recipe_text(text.tokenize(DEMO_MM))
    assert body.startswith("title: chocolate cake\n") and body.endswith("30 minutes.\n")


def test_a_meal_master_recipe_stops_at_its_end_line_or_before_the_next_header() -> None:
    vocab = _mm_vocab()
    scripts = [
        "flour\nmmmmm\nsugar sugar",  # the end line ends it and is kept
        "eggs\nmmmmm ----- recipe via meal - master\ncake",  # the next header ends it, and goes
        "mmmmm ----- cocoa -----\nflour\n- - - - -\n",  # a section line is no end line
    ]
    sampling = Sampling(temperature=0, max_words=20, batch=3)
    recipes = gen.generate(_Scripted(vocab, scripts), vocab, sampling, n=3, prompt="cake")
    seed = [*MM_SEED, "cake"]
    after = [r[len(seed) :] for r in recipes]
    assert after[0] == text.tokenize("flour\nmmmmm\n")
    assert after[1] == text.tokenize("eggs\n")
    assert after[2] == text.tokenize("mmmmm ----- cocoa -----\nflour\n- - - - -\n")


def test_a_model_of_a_meal_master_archive_writes_meal_master_recipes(
    tmp_path: Path, run_preprocess
) -> None:
    from hpc_rnn.train import StopFlag, parse_config, train

    # The demo corpus as a Meal-Master archive writes it, preprocessed and trained on briefly.
    corpus = tmp_path / "meal_master.txt"
    corpus.write_text("".join(map(meal_master, generate_recipes(DEMO_RECIPES, DEMO_SEED))))
    data, run = tmp_path / "data", tmp_path / "run"
    proc = run_preprocess(corpus, "--out", data)
    assert proc.returncode == 0 and f"preprocessed {DEMO_RECIPES} recipes" in proc.stdout
    flags = [*SMALL_TRAINING, "--batch-size", "32", "--max-steps", "8", "--lr", "0.01"]
    assert train(parse_config(["--data", str(data), "--run", str(run), *flags]), StopFlag("")) == 0

    asked, free = tmp_path / "asked", tmp_path / "free"
    request = ["--title", "Beef Casserole", "--categories", "Beef", "--servings", "4",
               "--ingredient", "1 pound ground beef", "--ingredient", "2 cups celery -- chopped",
               "--ingredient", "1/2 cup sour cream", "--n", "3"]  # fmt: skip
    assert _ask(run, asked, *request, "--max-words", "200") == 0
    assert _ask(run, free, "--n", "4", "--max-words", "200") == 0
    head = "\n".join(
        [
            MM_HEADER,
            "",
            "      Title: Beef Casserole",
            " Categories: Beef",
            "      Yield: 4 servings",
            "",
            "      1 lb Ground beef",
            "      2 c  Celery -- chopped",
            "    1/2 c  Sour cream",
            "",
            "",
        ]
    )
    files = sorted(asked.glob("recipe-*.txt")) + sorted(free.glob("recipe-*.txt"))
    assert len(files) == 7
    for path in files:
        body = path.read_text()
        assert body.startswith(MM_HEADER + "\n"), body
        assert body.startswith(head) or path.parent == free
        assert layout.render(text.tokenize(body), MM_ARCHIVE) == body
    # Read back as a corpus: one recipe per file, the asked ones with their title and list.
    written = tmp_path / "written.txt"
    written.write_text("".join(p.read_text() for p in files))
    assert len(list(text.iter_recipes(written))) == len(files)
    written.write_text("".join(p.read_text() for p in files[:3]))
    for g in prompt.recipes_of(written):
        assert g.title == "beef casserole" and g.names == ["ground beef", "celery", "sour cream"]
    # --complete: a Meal-Master recipe's own words up to its directions, a MasterCook one's
    # title and list laid out as Meal-Master's.
    recipe = next(generate_recipes(1, DEMO_SEED))
    converted = meal_master(recipe)
    rows = converted.index("\n\n", converted.index("Yield:")) + 2
    own = converted[: converted.index("\n\n", rows) + 2]  # up to the directions
    held = tmp_path / "held.txt"
    held.write_text(converted + recipe)
    assert _ask(run, tmp_path / "completed", "--complete", str(held), "--max-words", "100") == 0
    for name in ("recipe-0001.txt", "recipe-0002.txt"):
        assert (tmp_path / "completed" / name).read_text().startswith(own)
