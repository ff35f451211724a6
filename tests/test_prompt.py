"""Prompts of recipes asked for (hpc_rnn.prompt): laid out as the archive lays out a recipe,
unknown words named, recipes of MasterCook and Meal-Master files read."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from hpc_rnn import layout, prompt, text
from hpc_rnn.cli import UserError
from hpc_rnn.demo_corpus import generate_recipes
from hpc_rnn.vocab import UNK, build_vocab

NL = text.NEWLINE


@pytest.mark.parametrize(
    ("line", "row"),
    [
        (
            "1 pound chicken breasts -- skinned",
            "   1      pound         Chicken breasts -- skinned",
        ),
        ("2 lemons", "   2                    Lemons"),
        (
            "   2      cups          Flour, whole wheat",
            "   2      cups          Flour, whole wheat",
        ),
        ("2 Tbsp butter", "   2      tablespoons   Butter"),
        ("1 T sugar", "   1      tablespoon    Sugar"),
        ("1 t salt", "   1      teaspoon      Salt"),
        ("1/2 c milk", "     1/2  cup           Milk"),
        ("1 1/2 cup rice", "   1 1/2  cups          Rice"),
        ("salt -- to taste", "                        Salt -- to taste"),
    ],
)
def test_ingredient_lines_become_the_archives_rows(line: str, row: str) -> None:
    assert prompt.ingredient_row(line) == row


@pytest.mark.parametrize(
    ("line", "why"),
    [("2", "only numbers"), ("1 1/2", "only numbers"), (" 3 / 4 ", "only numbers"),
     ("2 cups", "but no ingredient"), (" ", "is empty")],
)  # fmt: skip
def test_an_ingredient_line_without_an_ingredient_is_refused(line: str, why: str) -> None:
    with pytest.raises(UserError, match=why):
        prompt.ingredient_row(line)


def test_the_prompt_is_a_corpus_recipe_up_to_its_directions() -> None:
    # A demo recipe's own title, servings, categories and rows give back its own words, up to
    # the blank line after the table: what the model read before every recipe's directions.
    def plain(recipe: str) -> bool:  # no section rows, categories on one line
        lines = recipe.split(NL)
        return "\n                        ---" not in recipe and lines[7] == ""

    recipe = next(r for r in generate_recipes(30, 7) if plain(r))
    lines = recipe.split(NL)
    header = lines.index(layout.TABLE_HEADER)
    rows = lines[header + 2 : lines.index("", header)]
    servings = int(next(x for x in lines if x.startswith("Serving Size")).split()[3])
    categories = next(x for x in lines if x.startswith("Categories")).split(":", 1)[1].strip()
    asked = prompt.Recipe(lines[2].strip(), tuple(rows), servings, categories)
    words = prompt.prompt_words(asked)
    head = NL.join(lines[: header + 2 + len(rows)]) + NL + NL
    assert words == text.tokenize(head)
    assert words[-2:] == [NL, NL]


def test_empty_title_and_list_are_refused() -> None:
    with pytest.raises(UserError, match="title is empty"):
        prompt.prompt_words(prompt.Recipe("  ", ("   2                    Lemons",)))
    with pytest.raises(UserError, match="list of 'Lemon Chicken' is empty"):
        prompt.prompt_words(prompt.Recipe("Lemon Chicken", ()))


def test_unknown_words_are_named_or_mapped_never_dropped() -> None:
    words = text.tokenize("lemon chicken with yuzu and sumac")
    plain = build_vocab(
        Counter(text.tokenize("lemon chicken with and")), window=50, min_count=1, unk=False
    )
    with_unk = build_vocab(
        Counter(text.tokenize("lemon chicken with and")), window=50, min_count=1, unk=True
    )
    with pytest.raises(UserError, match=r"2 word\(s\) of the title are not .*'sumac', 'yuzu'"):
        prompt.known_words(words, plain, "error", "the title")
    with pytest.raises(UserError, match="no <unk>"):
        prompt.known_words(words, plain, "unk", "the title")
    with pytest.raises(UserError, match="--unknown unk"):
        prompt.known_words(words, with_unk, "error", "the title")
    assert prompt.known_words(words, with_unk, "unk", "the title") == [
        "lemon", "chicken", "with", UNK, "and", UNK
    ]  # fmt: skip


def test_recipes_of_a_mastercook_file(tmp_path: Path) -> None:
    recipes = list(generate_recipes(3, 7))
    path = tmp_path / "three.txt"
    path.write_text("".join(recipes))
    given = prompt.recipes_of(path)
    assert len(given) == 3
    for g, recipe in zip(given, recipes, strict=True):
        lines = recipe.split(NL)
        assert g.title == lines[2].strip().lower()
        assert text.tokenize(recipe)[: len(g.words)] == g.words
        assert g.words[-2:] == [NL, NL] and g.directions
        table = lines.index(layout.TABLE_RULE) + 1
        rows = lines[table : lines.index("", table)]
        assert len(g.names) == len([r for r in rows if not r.strip().startswith("---")]) > 1


MEAL_MASTER = """\
MMMMM----- Recipe via Meal-Master (tm) v8.05

      Title: Lemon Chicken
 Categories: Poultry, Main dish
      Yield: 4 servings

      1 lb chicken breasts -- skinned
      2    lemons
      1 T  olive oil
    1/2 t  salt
MMMMM--------------------------SAUCE--------------------------
      1 c  chicken broth

  Squeeze the lemons over the chicken. Brown it in the oil,
  add the broth and simmer 20 minutes.

MMMMM
"""


def test_recipes_of_a_meal_master_file(tmp_path: Path) -> None:
    path = tmp_path / "mm.txt"
    path.write_text(MEAL_MASTER)
    (g,) = prompt.recipes_of(path)
    assert g.title == "lemon chicken"
    shown = layout.render(g.words)
    assert "                              Lemon Chicken" in shown
    assert "Serving Size  : 4    Preparation Time :0:00" in shown
    assert "Categories    : Poultry, Main Dish" in shown
    assert shown.split(NL)[10:16] == [
        "   1      pound         Chicken breasts -- skinned",
        "   2                    Lemons",
        "   1      tablespoon    Olive oil",
        "     1/2  teaspoon      Salt",
        "                        ---SAUCE---",
        "   1      cup           Chicken broth",
    ]
    assert g.names == ["chicken breasts", "lemons", "olive oil", "salt", "chicken broth"]
    assert g.directions.startswith("squeeze the lemons") and g.directions.endswith("20 minutes.")


def test_a_file_without_recipes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("Grandma's notes\n\n2 cups flour\n")
    with pytest.raises(UserError, match="holds no recipes"):
        prompt.recipes_of(path)
    with pytest.raises(UserError, match="is not a file"):
        prompt.recipes_of(tmp_path / "missing.txt")


# ---------------------------------------------------------------------------------------------
# Prompts in Meal-Master's layout, for a model of a Meal-Master archive

MM_ARCHIVE = layout.Archive(
    layout.MEAL_MASTER, "MMMMM----- Recipe via Meal-Master (tm) v8.05", "MMMMM"
)


@pytest.mark.parametrize(
    ("line", "row"),
    [
        ("2 cups flour", "      2 c  Flour"),
        ("2 Tbsp butter", "      2 tb Butter"),
        ("1 T sugar", "      1 tb Sugar"),
        ("1/2 t salt", "    1/2 ts Salt"),
        ("1 1/2 cup rice", "  1 1/2 c  Rice"),
        ("1 pound chicken breasts -- skinned", "      1 lb Chicken breasts -- skinned"),
        ("2 lemons", "      2    Lemons"),
        ("3 cloves garlic", "      3    Cloves garlic"),  # no code: the measure stays a word
        ("8 ounces spaghetti", "      8 oz Spaghetti"),
        ("salt -- to taste", "           Salt -- to taste"),
        ("   1      cup           Chicken broth", "      1 c  Chicken broth"),
        ("                        ---FOR THE TOP---", "MMMMM-----FOR THE TOP-----"),
    ],
)
def test_rows_in_meal_masters_columns_with_unit_codes(line: str, row: str) -> None:
    got = prompt.meal_master_row(prompt.ingredient_row(line) if "---" not in line else line)
    assert got == row
    # The columns Meal-Master's reader takes them from: amount 1-7, code 9-10, ingredient 12-.
    if not row.startswith("MMMMM"):
        assert row[7] == " " and row[10] == " " and row[11] != " "


def test_a_meal_master_prompt_is_laid_out_as_the_archive_does() -> None:
    rows = tuple(map(prompt.ingredient_row, ("1 lb chicken breasts -- skinned", "2 lemons")))
    recipe = prompt.Recipe("Lemon Chicken", rows, 4, "Poultry, Main Dish")
    want = [
        "MMMMM----- Recipe via Meal-Master (tm) v8.05",
        "",
        "      Title: Lemon Chicken",
        " Categories: Poultry, Main Dish",
        "      Yield: 4 servings",
        "",
        "      1 lb Chicken breasts -- skinned",
        "      2    Lemons",
        "",
        "",
    ]
    words = prompt.prompt_words(recipe, MM_ARCHIVE)
    assert words == text.tokenize(NL.join(want))
    assert layout.render(words, MM_ARCHIVE) == NL.join(want[:-1]) + NL
    # What Meal-Master's reader makes of it is the recipe asked for.
    (given,) = prompt.givens([NL.join(want) + "Squeeze the lemons.\n\nMMMMM\n"])
    assert given.recipe == prompt.Recipe("Lemon Chicken", (
        "   1      pound         Chicken breasts -- skinned", "   2                    Lemons"
    ), 4, "Poultry, Main Dish")  # fmt: skip
    assert prompt.prompt_words(recipe) == given.words, "and its MasterCook prompt the same"


def test_a_files_recipes_are_asked_in_the_models_layout(tmp_path: Path) -> None:
    meal_master = tmp_path / "mm.txt"
    meal_master.write_text(MEAL_MASTER)
    (mm,) = prompt.recipes_of(meal_master)
    # A Meal-Master recipe is its own words up to its directions, after the archive's header.
    head = MEAL_MASTER[: MEAL_MASTER.index("  Squeeze")]
    assert mm.words_in(MM_ARCHIVE) == text.tokenize(head)
    other = layout.Archive(layout.MEAL_MASTER, "----- Recipe via Meal-Master (tm)", "-----")
    assert mm.words_in(other) == text.tokenize(other.header + head[head.index(NL) :])
    assert mm.words_in(layout.MASTERCOOK_ARCHIVE) == mm.words
    # A MasterCook recipe: its title, servings, categories and rows in Meal-Master's layout.
    mastercook = tmp_path / "mc.txt"
    recipe = next(r for r in generate_recipes(30, 7) if "Banana Loaf" in r)
    mastercook.write_text(recipe)
    (mc,) = prompt.recipes_of(mastercook)
    assert mc.words_in(layout.MASTERCOOK_ARCHIVE) == mc.words
    assert layout.render(mc.words_in(MM_ARCHIVE), MM_ARCHIVE).split(NL)[:8] == [
        MM_ARCHIVE.header,
        "",
        "      Title: Banana Loaf",
        " Categories: Breads, Fruits, Baking",
        "      Yield: 1 serving",
        "",
        "  2 1/2 c  Flour",
        "      1 ts Baking soda",
    ]


def test_the_archive_of_a_vocabulary_or_an_error_naming_both_layouts() -> None:
    def vocab(corpus: str):
        return build_vocab(Counter(text.tokenize(corpus)), window=50, min_count=1, unk=False)

    assert prompt.archive_for(vocab(MEAL_MASTER)) == MM_ARCHIVE
    assert prompt.archive_for(vocab("".join(generate_recipes(2, 7)))) == (layout.MASTERCOOK_ARCHIVE)
    with pytest.raises(UserError, match=r"neither MasterCook nor Meal-Master .*'exported'.*'via'"):
        prompt.archive_for(vocab("lemon chicken\n2 lemons\n"))
    # MasterCook's export line without its table: the error that names the table's words.
    with pytest.raises(UserError, match="not trained on MasterCook recipes"):
        prompt.archive_for(vocab(f"{layout.EXPORT_LINE}\n\nlemon chicken\n"))
