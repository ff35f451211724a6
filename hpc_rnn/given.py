"""Scores of directions written for a given title and ingredient list, as Kiddon, Zettlemoyer and
Choi (EMNLP 2016, the neural checklist model) score them.

    score(trained, held, ...) -> dict      # evaluate --given HELD.txt (or "val")

Each held-out recipe's title and list become a prompt (`hpc_rnn.prompt`; a MasterCook recipe's
own words up to its directions), the model writes the rest, and per recipe:

- coverage: the share of the listed ingredients that the directions name
  (`quality.given_coverage`);
- extra: the food words the directions name that the list lacks (`quality.extra_ingredients`).

Both are means over the recipes, for two settings of the model: `greedy` (temperature 0, the
likeliest word every step) and `sampled` (the `Sampling` given, seeded). Beside them the same
figures for the recipes' real directions (`real`, the ceiling) and for each recipe's list paired
with the next recipe's directions (`other_recipe`, the floor).

Food words are the ingredient lexicon of the training corpus (`quality.IngredientLexicon`): the
words of its ingredient column, without amounts, measures and `-- preparation`, less stop,
descriptor and class words, kept when at least 40 % of the recipes that use the word have it in
their list rather than only in the directions, and when two recipes or more list it.

Words of a held-out prompt that the vocabulary lacks are read as the training text was: mapped
to `<unk>` where the vocabulary has it, else left out as preprocessing left them out. The
report counts them (`unknown_words`), so none goes unmentioned.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hpc_rnn import generate, layout, preprocess, prompt, quality, shards
from hpc_rnn.cli import UserError
from hpc_rnn.config import Sampling
from hpc_rnn.vocab import UNK, Vocab

VAL = "val"  # `held` that names the run's own validation recipes


def score(
    trained: generate.Trained,
    held: str,
    sampling: Sampling,
    *,
    reference: str,
    lexicon: quality.IngredientLexicon,
    limit: int = 0,
    stick_to_list: bool = False,
) -> dict[str, Any]:
    """The coverage and extra-ingredient figures of a trained model on the recipes of `held`.

    `held` is a MasterCook or Meal-Master file, or "val": the validation recipes of the run's
    own corpus, `reference` (`shards.training_corpus`). `lexicon` gives the food words.
    `limit` keeps the first that many recipes (0: all). `stick_to_list` writes with
    constrained decoding (`hpc_rnn.stick`).
    """
    model, vocab = trained.model, trained.vocab
    if held == VAL:
        fraction = shards.read_manifest(trained.data)["config"]["val_fraction"]
        recipes = (
            r
            for i, r in enumerate(quality.iter_corpus(reference))
            if preprocess.is_val_recipe(i, fraction)
        )
        given = prompt.givens(recipes)
    else:
        given = prompt.recipes_of(held)
    given = [g for g in given if g.names and g.directions]
    if limit:
        given = given[:limit]
    if not given:
        raise UserError(f"{held} holds no recipe with an ingredient list and directions")
    archive = prompt.archive_for(vocab)
    prompts, unknown = _readable([g.words_in(archive) for g in given], vocab)
    report: dict[str, Any] = {
        "checkpoint": str(trained.step_dir),
        "held": held if held == VAL else str(held),
        "reference": reference,
        "recipes": len(given),
        "lexicon_words": len(lexicon),
        "unknown_words": unknown,
        "real": _means([(g.names, g.directions) for g in given], lexicon),
        "other_recipe": _means(
            [(g.names, o.directions) for g, o in zip(given, given[1:] + given[:1], strict=True)],
            lexicon,
        ),
    }
    if len(given) == 1:
        report["other_recipe"] = None  # one recipe has no other recipe
    for name, setting in (("greedy", replace(sampling, temperature=0.0)), ("sampled", sampling)):
        stick_to = lexicon if stick_to_list else None
        written = generate.complete(model, vocab, prompts, setting, archive, stick_to)
        directions = [
            quality.parse_recipe(layout.render(w.words, archive)).directions for w in written
        ]
        report[name] = {
            **_means([(g.names, d) for g, d in zip(given, directions, strict=True)], lexicon),
            "temperature": setting.temperature,
            "context": setting.context,
            "unfinished": sum(not w.finished for w in written),
            "stick_to_list": stick_to_list,
        }
    return report


def _readable(prompts: list[list[str]], vocab: Vocab) -> tuple[list[list[str]], int]:
    """The prompts in the vocabulary's words, and how many words it lacked."""
    unknown = sum(w not in vocab.index for words in prompts for w in words)
    if vocab.unk:
        return [[w if w in vocab.index else UNK for w in words] for words in prompts], unknown
    return [[w for w in words if w in vocab.index] for words in prompts], unknown


def _means(pairs: list[tuple[list[str], str]], lexicon: quality.IngredientLexicon) -> dict:
    covered = [quality.given_coverage(n, d, lexicon) for n, d in pairs]
    defined = [c for c in covered if c is not None]
    extra = [quality.extra_ingredients(n, d, lexicon) for n, d in pairs]
    return {
        "coverage": sum(defined) / len(defined) if defined else float("nan"),
        "coverage_defined": len(defined),
        "extra": sum(extra) / len(extra) if extra else float("nan"),
    }
