"""The archive's layout for generated tokens (hpc_rnn.layout): what a cook sees, and that it
changes case and spacing, never words."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from hpc_rnn import layout, quality, text
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
