"""The archive's layout for generated tokens (hpc_rnn.layout): what a cook sees, and that it
changes case and spacing, never words."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from hpc_rnn import layout, prompt, quality, text
from hpc_rnn.demo_corpus import generate_recipes

NL = text.NEWLINE


def _round_trips(words: list[str]) -> bool:
    ends = [] if words and words[-1] == NL else [NL]
    return text.tokenize(layout.render(words)) == words + ends


def test_a_demo_recipe_is_written_as_the_archive_wrote_it() -> None:
    recipe = next(r for r in generate_recipes(20, 7) if "Sausage" not in r)
    got = layout.render(text.tokenize(recipe))
    lines, want = got.split(NL), recipe.split(NL)
    # The export line, the centred title, the labels, the table and the end line, column for
    # column; of 200 demo recipes 154 come back byte for byte (the others differ in the case
    # of a name, "Dutch", or where two categories split).
    assert lines[:3] == want[:3]
    assert [line for line in lines if line.startswith(("Recipe By", "Serving Size"))] == [
        line for line in want if line.startswith(("Recipe By", "Serving Size"))
    ]
    header = want.index(layout.TABLE_HEADER)
    block_end = want.index("", header)
    assert lines[header:block_end] == want[header:block_end]
    assert layout.END_LINE in lines and any(line.startswith("Yield: ") for line in lines)


def test_demo_corpus_recipes_come_back_mostly_byte_for_byte() -> None:
    recipes = list(generate_recipes(200, 7))
    same = sum(layout.render(text.tokenize(r)).rstrip(NL) == r.rstrip(NL) for r in recipes)
    assert same >= 150  # measured 154


def test_directions_are_sentences_spaced_as_people_write() -> None:
    words = text.tokenize(
        'mix the flour and salt . bake at 350 for 50 - 60 minutes in a 10 " well - greased '
        'pan ( or a " bundt " pan ) ! cool 1 . 5 hours ; serve .'
    )
    got = layout.render(["yield", ":", "2", NL, *words])
    assert got.split(NL)[1] == (
        'Mix the flour and salt. Bake at 350 for 50-60 minutes in a 10" well-greased pan '
        '(or a "bundt" pan)! Cool 1.5 hours; serve.'
    )


def test_title_case_and_rows() -> None:
    assert layout.title_case("lemon chicken with rice and tex-mex dip") == (
        "Lemon Chicken with Rice and Tex-Mex Dip"
    )
    assert layout.title_case("the cook's best") == "The Cook's Best"
    tokens = text.tokenize(
        f"{layout.TABLE_HEADER}\n{layout.TABLE_RULE}\n1 1/2 cups flour , whole wheat -- sifted\n"
        "2 lemons\n1/4 teaspoon salt\n--- for the top ---\nsalt -- to taste\n"
    )
    assert layout.render(tokens).split(NL)[2:7] == [
        "   1 1/2  cups          Flour, whole wheat -- sifted",
        "   2                    Lemons",
        "     1/4  teaspoon      Salt",
        "                        ---FOR THE TOP---",
        "                        Salt -- to taste",
    ]


def test_random_token_streams_round_trip() -> None:
    # The words the tokenizer can give, the awkward ones over-represented: dashes next to dashes,
    # quotes, slashes, apostrophes, colons between digits, letters whose upper case is longer.
    corpus_words = sorted(set(text.tokenize("".join(generate_recipes(50, 3)))))
    awkward = ["-", "--", "---", '"', "'", "/", ":", ".", ",", "(", ")", "$", "ß", "ﬁ", "i", "0"]
    rng = random.Random(0)
    for _ in range(300):
        n = rng.randrange(1, 80)
        words = [rng.choice(awkward if rng.random() < 0.3 else corpus_words) for _ in range(n)]
        assert _round_trips(words), words


def test_every_real_corpus_recipe_round_trips(real_corpus: Path) -> None:
    for recipe in quality.iter_corpus(real_corpus):
        assert _round_trips(text.tokenize(recipe)), recipe[:200]


def test_text_that_is_not_a_recipe_is_still_written_line_for_line() -> None:
    words = text.tokenize("cups cups\n\n\n- - - -\nyield\n: : 3")  # no export line, no table
    assert _round_trips(words)
    assert layout.render(words).count(NL) == words.count(NL) + 1


@pytest.mark.parametrize("cut", [5, 40, 90])
def test_a_recipe_cut_off_ends_with_one_newline(cut: int) -> None:
    words = text.tokenize(next(iter(generate_recipes(1, 0))))[:cut]
    assert words[-1] != NL
    got = layout.render(words)
    assert got.endswith(NL) and not got.endswith(NL + NL)


# ---------------------------------------------------------------------------------------------
# Meal-Master

MM_HEADER = "MMMMM----- Recipe via Meal-Master (tm) v8.05"


def meal_master(recipe: str) -> str:
    """A demo (MasterCook) recipe as a Meal-Master archive writes it: the header line, the
    Title, Categories and Yield fields, the rows in their columns with unit codes, the
    directions indented, the end line MMMMM and a blank line."""
    (given,) = prompt.givens([recipe])
    assert given.recipe is not None
    lines = recipe.split(NL)
    yield_at = next(i for i, x in enumerate(lines) if x.startswith("Yield: "))
    after_rows = lines.index("", lines.index(layout.TABLE_RULE))
    return NL.join(
        [
            MM_HEADER,
            "",
            layout.meal_master_field("Title", lines[2].strip()),
            layout.meal_master_field("Categories", given.recipe.categories),
            layout.meal_master_field("Yield", lines[yield_at].partition(":")[2].strip()),
            "",
            *(prompt.meal_master_row(row) for row in given.recipe.rows),
            "",
            *("  " + x for x in lines[after_rows + 1 : yield_at] if x.strip()),
            "",
            "MMMMM",
            "",
            "",
        ]
    )


def _mm_vocab(corpus: str) -> set[str]:
    return set(text.tokenize(corpus))


def test_the_archive_is_told_by_the_vocabularys_words() -> None:
    mastercook = "".join(generate_recipes(5, 7))
    converted = "".join(map(meal_master, generate_recipes(5, 7)))
    assert layout.archive_of(_mm_vocab(mastercook)) == layout.MASTERCOOK_ARCHIVE
    archive = layout.archive_of(_mm_vocab(converted))
    assert archive == layout.Archive(layout.MEAL_MASTER, MM_HEADER, "MMMMM")
    assert layout.archive_of(_mm_vocab(mastercook + converted)) == layout.MASTERCOOK_ARCHIVE
    # The other form of the header, another version: the header of the vocabulary's words.
    other = converted.replace(MM_HEADER, "----- Recipe via Meal-Master (tm) v8.02")
    other = other.replace("\nMMMMM-", "\n-").replace("\nMMMMM\n", "\n-----\n")
    assert "mmmmm" not in _mm_vocab(other) and "05" not in _mm_vocab(other)
    assert layout.archive_of(_mm_vocab(other)) == layout.Archive(
        layout.MEAL_MASTER, "----- Recipe via Meal-Master (tm)", "-----"
    )
    assert layout.archive_of(_mm_vocab("lemon chicken\n2 lemons\n")) is None


def test_a_meal_master_recipe_is_written_as_the_archive_writes_it() -> None:
    recipes = [meal_master(r) for r in generate_recipes(200, 7)]
    archive = layout.archive_of(_mm_vocab("".join(recipes)))
    got = [layout.render(text.tokenize(r), archive) for r in recipes]
    # Of 200 converted demo recipes 196 come back byte for byte; the others differ in the case
    # of a name in their directions ("Dutch oven").
    assert sum(g.rstrip(NL) == r.rstrip(NL) for g, r in zip(got, recipes, strict=True)) >= 190
    lines = got[2].split(NL)
    assert lines[:5] == [
        MM_HEADER,
        "",
        "      Title: Cheesy Beef Casserole",
        " Categories: Casseroles, Beef, Potluck",
        "      Yield: 4 servings",
    ]
    assert lines[6:8] == ["      1 lb Ground beef", "      1 c  Tomato sauce"]
    assert "MMMMM-----TOPPING-----" in lines and "    1/2 c  Bread crumbs" in lines
    assert lines[-4:] == ["", "MMMMM", "", ""]


def _mm_round_trips(words: list[str]) -> bool:
    ends = [] if words and words[-1] == NL else [NL]
    return text.tokenize(layout.render_meal_master(words)) == words + ends


def test_random_token_streams_round_trip_in_the_meal_master_layout() -> None:
    corpus_words = sorted(set(text.tokenize("".join(generate_recipes(50, 3)))))
    awkward = [
        *["-", "--", "---", "-----", "--------", '"', "'", "/", ":", ".", ",", "(", ")", "ß"],
        *["ﬁ", "0", "1", "mmmmm", "mm", "title", "categories", "yield", "servings", "recipe"],
        *["via", "meal", "master", "mealmaster", "c", "ts", "tb", "x", NL, NL],
    ]
    rng = random.Random(0)
    for _ in range(600):
        n = rng.randrange(1, 80)
        words = [rng.choice(awkward if rng.random() < 0.4 else corpus_words) for _ in range(n)]
        assert _mm_round_trips(words), words
        # A line reads as a recipe start exactly when its words make a Meal-Master header, so
        # generation, which stops before such a line, leaves one recipe per file.
        lines = layout.render_meal_master(words).split(NL)
        starts = [bool(text.RECIPE_START.match(x.encode())) for x in lines]
        assert starts == [layout.is_meal_master_header(text.tokenize(x)) for x in lines], lines


def test_every_converted_demo_recipe_round_trips_in_the_meal_master_layout() -> None:
    for recipe in generate_recipes(200, 7):
        assert _mm_round_trips(text.tokenize(meal_master(recipe)))


def test_written_meal_master_recipes_read_back_as_a_corpus(tmp_path: Path) -> None:
    recipes = [meal_master(r) for r in generate_recipes(40, 7)]
    archive = layout.archive_of(_mm_vocab("".join(recipes)))
    folder = tmp_path / "written"
    folder.mkdir()
    for i, recipe in enumerate(recipes):
        words = text.tokenize(recipe)
        words = words[: len(words) - 3 * (i % 3)]  # some cut off before their end line
        (folder / f"recipe-{i:04d}.txt").write_text(layout.render(words, archive))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(p.read_text() for p in sorted(folder.iterdir())))
    back = list(text.iter_recipes(corpus))
    assert len(back) == len(recipes)
    titles = [prompt.recipes_of(folder / f"recipe-{i:04d}.txt")[0].title for i in range(3)]
    assert titles == [r.split(NL)[2].strip().lower() for r in generate_recipes(3, 7)]
