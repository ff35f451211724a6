"""Recipe quality scores: layout structure and ingredient consistency (hpc_rnn.quality).

Handwritten recipes in both layouts (the corpus's aligned original case, and the lower-case
detokenized form generated text has), then the real corpus: the ceiling the project compares
generated recipes against, and a shuffled pairing that shows the consistency measure can fail.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from hpc_rnn import quality
from hpc_rnn.demo_corpus import END_LINE, EXPORT_LINE, TABLE_HEADER, TABLE_RULE
from hpc_rnn.quality import IngredientLexicon, Structure, parse_recipe, structure
from hpc_rnn.text import detokenize, tokenize

# The corpus layout (original case, centred title, space-aligned columns) around an invented
# recipe, with the format lines from the project's own demo-corpus writer.
ALIGNED = f"""\
{EXPORT_LINE}

                               Harvest Loaf

Recipe By     : test kitchen
Serving Size  : 10   Preparation Time :1:10
Categories    : Test Kitchen

{TABLE_HEADER}
{TABLE_RULE}
   3 1/2  tablespoons   Oil
   2 1/4  cups          Flour, unbleached
     7/8  cup           Milk
     7/8  teaspoon      Salt
   3                    Eggs -- whisked
   2      cups          Carrots -- grated
                        ---FOR THE TOP---
   5      ounces        Goat cheese

Whisk oil, milk and eggs in a jug. Fold in flour and salt, then carrots by hand.
Scrape into a loaf tin and bake 65 minutes. Crumble the goat cheese over the top.

Yield: 1 loaf

{END_LINE}


"""

# What generation gives: lower case, columns lost, no export line and no end line.
DETOKENIZED = """\
harvest loaf

recipe by: test kitchen
serving size: 10 preparation time: 1:10
categories: test kitchen

amount measure ingredient -- preparation method
-------- ------------ --------------------------------
3 1/2 tablespoons oil
2 1/4 cups flour, unbleached
7/8 cup milk
7/8 teaspoon salt
3 eggs -- whisked
2 cups carrots -- grated
--- for the top ---
5 ounces goat cheese

whisk oil, milk and eggs in a jug. fold in flour and salt, then carrots by hand.
scrape into a loaf tin and bake 65 minutes. crumble the goat cheese over the top.

yield: 1 loaf
"""

LAYOUTS = {"aligned": ALIGNED, "detokenized": DETOKENIZED}

# A handwritten lexicon for the small tests (the real one is built from the corpus below).
LEXICON = IngredientLexicon.from_words(
    ["oil", "flour", "milk", "salt", "egg", "carrot", "cheese", "chicken", "tomato", "berry"]
)


def _drop_lines(text: str, keep) -> str:
    # `keep` sees the line lower-cased with whitespace runs collapsed, as in either layout.
    return "\n".join(line for line in text.split("\n") if keep(" ".join(line.lower().split())))


def _is_row(line: str) -> bool:
    return line[:1].isdigit()


def _no_directions(text: str) -> str:
    return _drop_lines(text, lambda s: not s.startswith(("whisk oil", "scrape into")))


# Each part of the layout, and how to remove it from either layout.
REMOVERS = {
    "has_title": lambda t: _drop_lines(t, lambda s: s != "harvest loaf"),
    "has_header": lambda t: _drop_lines(t, lambda s: not s.startswith("amount measure")),
    "has_ingredient_row": lambda t: _drop_lines(t, lambda s: not _is_row(s)),
    "has_directions": _no_directions,
    "has_yield": lambda t: _drop_lines(t, lambda s: not s.startswith("yield:")),
}


# ---------------------------------------------------------------------------------------------
# Structure


@pytest.mark.parametrize("layout", LAYOUTS)
def test_complete_recipe_scores_full_structure(layout: str):
    s = structure(LAYOUTS[layout])
    assert s == Structure(True, True, True, True, True)
    assert s.score == 1.0


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("part", Structure.FLAGS)
def test_removing_a_part_drops_exactly_its_flag(layout: str, part: str):
    text = REMOVERS[part](LAYOUTS[layout])
    assert text != LAYOUTS[layout]
    s = structure(text)
    assert {f for f in Structure.FLAGS if not getattr(s, f)} == {part}
    assert s.score == pytest.approx(0.8)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_parse_reads_both_layouts_alike(layout: str):
    p = parse_recipe(LAYOUTS[layout])
    assert p.title == "harvest loaf"
    # The section row (---FOR THE TOP---) is not an ingredient; the `-- preparation` part is cut.
    assert p.names == [
        "oil",
        "flour, unbleached",
        "milk",
        "salt",
        "eggs",
        "carrots",
        "goat cheese",
    ]
    assert len(p.rows) == 7
    assert p.directions.startswith("whisk oil")
    assert p.directions.endswith("crumble the goat cheese over the top.")
    assert p.yield_line == "yield: 1 loaf"


def test_detokenized_corpus_text_parses_like_the_original():
    # What the model is trained on, turned back into text, must score like the original.
    again = detokenize(tokenize(ALIGNED))
    assert parse_recipe(again).names == parse_recipe(ALIGNED).names
    assert structure(again) == structure(ALIGNED)


@pytest.mark.parametrize(
    ("row", "measured", "name"),
    [
        ("1 cup oil", True, "oil"),
        ("1 1/2 cups flour, whole wheat", True, "flour, whole wheat"),
        ("½ teaspoon salt", True, "salt"),
        ("1 ½ teaspoons salt", True, "salt"),
        ("3/4 cup onion -- chopped", True, "onion"),
        ("250 grams butter -- softened", True, "butter"),
        ("2 fluid ounces rum", True, "rum"),
        ("3 each avocadoes, medium size", True, "avocadoes, medium size"),
        ("4 eggs", False, "eggs"),
        ("salt and pepper to taste", False, "salt and pepper to taste"),
        ("12 cupcakes", False, "cupcakes"),  # "cup" is a measure only as a whole word
    ],
)
def test_ingredient_rows(row: str, measured: bool, name: str):
    text = f"t\n\namount measure ingredient -- preparation method\n{row}\n\nmix.\n\nyield: 1\n"
    p = parse_recipe(text)
    assert p.names == [name]
    assert structure(text).has_ingredient_row is measured


def test_rows_without_header_or_rule_are_still_found():
    text = "soup\n\n1 cup water\n2 teaspoons salt\n\nboil the water with the salt.\n\nyield: 2\n"
    p = parse_recipe(text)
    assert p.names == ["water", "salt"]
    assert p.title == "soup"
    s = structure(text)
    assert (s.has_title, s.has_header, s.has_ingredient_row, s.has_directions) == (
        True,
        False,
        True,
        True,
    )


def test_garbage_scores_zero_and_does_not_raise():
    for text in ["", "\n\n", "the the the\nand and", "- - - - - -"]:
        assert structure(text).score == 0.0
        assert quality.consistency(text, LEXICON) is None


def test_yield_inside_directions_does_not_end_them():
    text = ALIGNED.replace("Scrape into", "Yield: makes one loaf.\nScrape into")
    p = parse_recipe(text)
    assert "scrape into a loaf tin" in p.directions
    assert p.yield_line == "yield: 1 loaf"


# ---------------------------------------------------------------------------------------------
# Ingredient consistency


@pytest.mark.parametrize("layout", LAYOUTS)
def test_directions_that_use_only_listed_ingredients_are_consistent(layout: str):
    assert quality.consistency(LAYOUTS[layout], LEXICON) == 1.0


@pytest.mark.parametrize("layout", LAYOUTS)
def test_an_unlisted_ingredient_lowers_consistency(layout: str):
    text = LAYOUTS[layout].replace("by hand.", "by hand. Add the chicken.")
    # Directions name oil, milk, egg, flour, salt, carrot, cheese, chicken: 7 of 8 are listed.
    assert quality.consistency(text, LEXICON) == pytest.approx(7 / 8)
    # Carrots out of the directions, unlisted tomatoes in: 6 of 8.
    text = text.replace("then carrots", "then tomatoes")
    assert quality.consistency(text, LEXICON) == pytest.approx(6 / 8)


def test_plural_and_singular_match():
    text = (
        "salad\n\namount measure ingredient -- preparation method\n"
        "2 cups tomatoes -- diced\n1 cup berries\n3 large eggs\n\n"
        "beat the egg, add each tomato and a berry.\n\nyield: 2\n"
    )
    assert quality.consistency(text, LEXICON) == 1.0
    flipped = text.replace("tomatoes", "tomato").replace("berries", "berry").replace("eggs", "egg")
    flipped = flipped.replace("the egg", "the eggs").replace("a berry", "the berries")
    assert quality.consistency(flipped, LEXICON) == 1.0


@pytest.mark.parametrize(
    ("plural", "singular"),
    [
        ("eggs", "egg"),
        ("tomatoes", "tomato"),
        ("berries", "berry"),
        ("cookies", "cookie"),
        ("peaches", "peach"),
        ("chilies", "chili"),
        ("leaves", "leaf"),
        ("glasses", "glass"),
    ],
)
def test_singular_key(plural: str, singular: str):
    assert quality.singular(plural) == quality.singular(singular)
    key = quality.singular(plural)
    assert quality.singular(key) == key  # idempotent: a saved key loads as itself
    assert quality.singular("asparagus") == "asparagus"
    assert quality.singular("swiss") == "swiss"


def test_no_ingredient_words_in_directions_gives_none():
    text = DETOKENIZED.replace(
        DETOKENIZED[DETOKENIZED.index("whisk oil") : DETOKENIZED.index("\n\nyield")],
        "mix everything in a bowl and bake 50 minutes.",
    )
    assert quality.consistency(text, LEXICON) is None


def test_lexicon_keeps_ingredients_and_drops_kitchen_words():
    def recipe(rows: list[str], directions: str) -> str:
        table = "\n".join(rows)
        return f"x\n\namount measure ingredient -- preparation method\n{table}\n\n{directions}\n\nyield: 1\n"

    texts = [
        recipe(["1 cup flour", "1 teaspoon salt -- fine"], "mix flour and salt in a bowl. bake."),
        recipe(["2 cups flour", "1 pinch salt"], "stir the flour into a bowl. bake 9 minutes."),
        recipe(["1 cup sugar", "2 large eggs, beaten"], "beat the eggs in a bowl, add sugar."),
        recipe(["1 cup sugar", "1 egg"], "whisk egg with sugar in a bowl."),
        recipe(["1 bowl frosting"], "spread in a bowl."),  # "bowl" in 1 name, 5 directions
    ]
    lex = IngredientLexicon.from_recipes(texts)
    assert lex.keys == {"flour", "salt", "sugar", "egg"}
    assert "eggs" in lex and "Salt" in lex and "bowl" not in lex
    # Measure, size and preparation words never count: "large", "beaten", "fine", "cup".
    assert lex.stats["flour"] == (2, 2)


def test_lexicon_save_and_load(tmp_path: Path):
    path = tmp_path / "lexicon.json"
    LEXICON.save(path)
    words = json.loads(path.read_text())
    assert words == sorted(words) and "tomato" in words
    loaded = IngredientLexicon.load(path)
    assert loaded == LEXICON
    assert quality.consistency(ALIGNED, loaded) == 1.0
    path.write_text('{"not": "a list"}')
    with pytest.raises(ValueError, match="JSON list"):
        IngredientLexicon.load(path)


def test_score_recipes_means():
    broken = REMOVERS["has_yield"](DETOKENIZED).replace("by hand.", "by hand. add chicken.")
    out = quality.score_recipes([ALIGNED, DETOKENIZED, broken, "nothing here"], LEXICON)
    assert out["count"] == 4
    assert out["has_yield"] == 0.5
    assert out["has_title"] == 0.75
    assert out["structure"] == pytest.approx((1 + 1 + 0.8 + 0) / 4)
    assert out["consistency_defined"] == 3
    assert out["consistency"] == pytest.approx((1 + 1 + 7 / 8) / 3)
    empty = quality.score_recipes([], LEXICON)
    assert empty["count"] == 0 and math.isnan(empty["consistency"])


# ---------------------------------------------------------------------------------------------
# The real corpus: the ceiling, and proof that the measure can fail


@pytest.fixture(scope="module")
def real(real_corpus: Path):
    recipes = list(quality.iter_corpus(real_corpus))
    lexicon = quality.lexicon_from_corpus(real_corpus)
    return recipes, lexicon


def test_real_lexicon_threshold(real):
    _, lex = real
    for word in ["salt", "flour", "chicken", "garlic", "sugar", "eggs", "tomatoes", "water"]:
        assert word in lex, word
    for word in ["bowl", "minutes", "heat", "add", "stir", "pan", "oven", "mixture", "dough"]:
        assert word not in lex, word
    assert 800 < len(lex) < 1500  # measured 1,084


def test_real_corpus_is_the_ceiling(real, tmp_path: Path):
    recipes, lex = real
    first = quality.score_recipes(recipes[:500], lex)
    assert first["structure"] >= 0.95  # measured 0.9988
    everything = quality.score_recipes(recipes, lex)
    print(f"\nreal corpus, {everything['count']} recipes: {everything}")
    assert everything["count"] == 5964
    assert everything["structure"] >= 0.99  # measured 0.998 (60 recipes list no measure)
    assert everything["consistency"] >= 0.75  # measured 0.803 over 5,765 recipes
    # Scoring generated text uses the saved lexicon: it must give the same numbers.
    lex.save(tmp_path / "lexicon.json")
    loaded = IngredientLexicon.load(tmp_path / "lexicon.json")
    assert loaded.keys == lex.keys
    assert quality.score_recipes(recipes[:500], loaded) == first


def test_shuffled_pairing_scores_clearly_lower(real):
    recipes, lex = real
    parsed = [parse_recipe(r) for r in recipes]
    true, shuffled = [], []
    for i, p in enumerate(parsed):
        other = parsed[(i + 1) % len(parsed)]
        if (c := quality.ingredient_consistency(p, lex)) is not None:
            true.append(c)
        swapped = dataclasses.replace(p, rows=other.rows, names=other.names)
        if (c := quality.ingredient_consistency(swapped, lex)) is not None:
            shuffled.append(c)
    true_mean, shuffled_mean = sum(true) / len(true), sum(shuffled) / len(shuffled)
    print(f"\nconsistency: true pairing {true_mean:.3f}, shuffled {shuffled_mean:.3f}")
    assert shuffled_mean <= 0.40  # measured 0.291
    assert true_mean - shuffled_mean >= 0.35  # measured 0.512
