"""The lecture's word rules, the detokenizer, and reading recipe archives."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import DEMO_RECIPES, DEMO_SEED

from hpc_rnn import text
from hpc_rnn.text import CorpusError, detokenize, tokenize

NL = text.NEWLINE

# ---------------------------------------------------------------------------------------------
# Tokenizer: one test per rule


def test_punctuation_is_spaced_from_words():
    assert tokenize("word!") == ["word", "!"]
    assert tokenize("salt, pepper; oil.") == ["salt", ",", "pepper", ";", "oil", "."]
    assert tokenize('(about 1/2" thick)') == ["(", "about", "1", "/", "2", '"', "thick", ")"]
    assert tokenize("don't") == ["don", "'", "t"]


def test_newlines_are_tokens_separated_from_words():
    assert tokenize("Stir well.\nServe hot") == ["stir", "well", ".", NL, "serve", "hot"]
    assert tokenize("end\nstart") == ["end", NL, "start"]
    # every newline is kept, blank lines included
    assert tokenize("a\n\n\nb") == ["a", NL, NL, NL, "b"]
    assert tokenize("a  \n  b") == ["a", NL, "b"]


def test_runs_of_dashes_are_one_word():
    assert tokenize("Carrots -- shredded") == ["carrots", "--", "shredded"]
    assert tokenize("Carrots--shredded") == ["carrots", "--", "shredded"]
    assert tokenize("a---b") == ["a", "---", "b"]
    assert tokenize("--------  ------------") == ["--------", "------------"]


def test_single_dashes_are_spaced():
    assert tokenize("Bake 50-60 minutes") == ["bake", "50", "-", "60", "minutes"]
    assert tokenize("Tex-Mex") == ["tex", "-", "mex"]
    assert tokenize("- - - -") == ["-", "-", "-", "-"]


def test_lower_case():
    assert tokenize("Baking SODA, Vanilla") == ["baking", "soda", ",", "vanilla"]
    assert all(t == t.lower() for t in tokenize("CRÈME Brûlée TACO"))


def test_split_on_spaces():
    assert tokenize("one two three") == ["one", "two", "three"]
    assert tokenize("1 cup flour") == ["1", "cup", "flour"]


def test_whitespace_never_becomes_a_token():
    tokens = tokenize("a\tb\x0cc   d \t \x0c e\n\t\n   ")
    assert tokens == ["a", "b", "c", "d", "e", NL, NL]
    assert tokenize("\t\x0c   ") == []
    for tok in tokenize("Amount\tMeasure\x0c\x0cIngredient   --   Method\n \n"):
        assert tok == NL or not tok.isspace()
        assert tok == NL or not re.search(r"\s", tok)


def test_crlf_and_cr_give_the_same_tokens_as_lf():
    lf = "Carrot Cake\n\n1 cup Oil\nBake at 350f.\n"
    assert tokenize(lf.replace("\n", "\r\n")) == tokenize(lf)
    assert tokenize(lf.replace("\n", "\r")) == tokenize(lf)


def test_dos_control_characters_are_not_words():
    # Ctrl-T (Meal-Master's paragraph mark), Ctrl-Z (end of file), NUL padding
    assert tokenize("Mix well.\x14\nServe.\x1a") == ["mix", "well", ".", NL, "serve", "."]
    assert tokenize("salt \x00\x00 pepper\x04") == ["salt", "pepper"]


# ---------------------------------------------------------------------------------------------
# Detokenizer


def _lines(tokens: list[str]) -> list[list[str]]:
    lines: list[list[str]] = [[]]
    for t in tokens:
        if t == NL:
            lines.append([])
        else:
            lines[-1].append(t)
    return lines


def _check_detokenize(recipe: str) -> None:
    tokens = tokenize(recipe)
    out = detokenize(tokens)
    assert tokenize(out) == tokens
    assert " ," not in out and " ." not in out
    # newlines restored in place: line k of the text holds exactly the words of line k
    assert out.count("\n") == tokens.count(NL)
    assert [tokenize(line) for line in out.split("\n")] == _lines(tokens)


def test_detokenize_round_trip_on_every_demo_recipe(demo_corpus: Path):
    recipes = list(text.iter_recipes(demo_corpus, "utf-8"))
    assert len(recipes) > 0
    for recipe in recipes:
        _check_detokenize(recipe)


def test_detokenize_round_trip_on_the_real_corpus(real_corpus: Path):
    for recipe in text.iter_recipes(real_corpus, "utf-8"):
        _check_detokenize(recipe)


def test_detokenize_is_readable():
    tokens = tokenize("Add salt, pepper and oil.\nBake 50-60 minutes (until done).\n")
    out = detokenize(tokens)
    assert out == "Add salt, pepper and oil.\nBake 50 - 60 minutes (until done).\n".lower()
    assert detokenize(tokenize("Don't stir; 1/2 cup at 0:00!")) == "don't stir; 1/2 cup at 0:00!"


# ---------------------------------------------------------------------------------------------
# Reading archives


RECIPE = (
    "* Exported from MasterCook *\n\n"
    "                               {title}\n\n"
    "Recipe By     :\n"
    "Serving Size  : 4    Preparation Time :0:00\n"
    "Categories    : Main Dish\n\n"
    "  Amount  Measure       Ingredient -- Preparation Method\n"
    "--------  ------------  --------------------------------\n"
    "   1      cup           Flour -- sifted\n"
    "     1/2  teaspoon      Salt\n\n"
    "Mix the flour and salt. Bake at 350{deg}F for 50-60 minutes.\n\n"
    "                   - - - - - - - - - - - - - - - - - -\n\n"
)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_recipes_are_split_at_each_export_line(tmp_path: Path):
    body = "".join(RECIPE.format(title=f"Dish {i}", deg="") for i in range(3))
    recipes = list(text.iter_recipes(_write(tmp_path / "c.txt", body.encode()), "utf-8"))
    assert len(recipes) == 3
    for i, recipe in enumerate(recipes):
        assert recipe.startswith("* Exported from MasterCook *")
        assert recipe.count("Exported from MasterCook") == 1
        assert f"Dish {i}" in recipe
    assert "".join(recipes) == body


# Header lines as real archives write them: spacing, versions after the program's name, and
# Meal-Master's two forms with their "(tm) v8.0x" suffixes.
HEADERS = [
    "* Exported from MasterCook *",
    "*  Exported from  MasterCook  *",
    "*\tExported from MasterCook\t*",
    "                * Exported from MasterCook *",
    "* Exported from MasterCook Mac *",
    "* Exported from MasterCook II *",
    "* Exported from MasterCook Buster (tm)",
    "* Exported from MasterCook 4 for Windows *",
    "* Exported from Master Cook *",
    "* EXPORTED FROM MASTERCOOK *",
    "----- Recipe via Meal-Master (tm) v8.02",
    "---------- Recipe via Meal-Master (tm) v8.02",
    "-----Recipe via Meal-Master (tm) v7.07",
    "MMMMM----- Recipe via Meal-Master (tm) v8.05",
    "MMMMM----- Recipe via Meal-Master (tm) v8.01",
    "MMMMM----- Recipe via Meal-Master (tm) v8.0x",
    "----- Now You're Cooking! v5.65 [Meal-Master Export Format]",
]
# Lines inside a recipe that mention the programs but start nothing.
NOT_HEADERS = [
    "+++++---------- Recipe via Meal-Master (tm) v7.04 (*P)",  # quoted behind other marks
    "Recipe via Meal-Master by my father, who typed these in.",
    "Exported from MasterCook by hand.",
    "  Exported from MasterCook, then cleaned up.",
    "-----",  # Meal-Master's end line
    "MMMMM",  # and its MMMMM form
    "-----SAUCE-----",  # a Meal-Master section line
    "                   - - - - - - - - - - - - - - - - - -",  # MasterCook's end line
]


@pytest.mark.parametrize("header", HEADERS)
def test_every_header_variant_starts_a_recipe(tmp_path: Path, header: str):
    body = "".join(
        f"{header}\r\n\r\n      Title: Dish {i}\r\n\r\n"
        + "".join(f"{line}\r\n" for line in NOT_HEADERS)
        for i in range(3)
    )
    path = _write(tmp_path / "c.txt", b"Archive preamble\n\n" + body.encode())
    recipes = list(text.iter_recipes(path))
    assert [f"Dish {i}" in r for i, r in enumerate(recipes)] == [True, True, True]
    assert all(r.startswith(header) for r in recipes)
    assert "".join(recipes) == text.normalize(body)


def test_demo_corpus_reads_back_as_its_recipes(demo_corpus: Path):
    from hpc_rnn.demo_corpus import generate_recipes

    expected = list(generate_recipes(DEMO_RECIPES, DEMO_SEED))
    assert list(text.iter_recipes(demo_corpus, "utf-8")) == expected


def test_preamble_before_the_first_recipe_is_ignored(tmp_path: Path):
    preamble = "Archive of recipes, zyzzyva zyzzyva.\nDownloaded from a BBS.\n\n"
    body = RECIPE.format(title="Soup", deg="")
    recipes = list(
        text.iter_recipes(_write(tmp_path / "c.txt", (preamble + body).encode()), "utf-8")
    )
    assert recipes == [body]


def test_utf8_is_read_as_utf8(tmp_path: Path):
    body = RECIPE.format(title="Crème brûlée", deg="°")
    path = _write(tmp_path / "u.txt", body.encode("utf-8"))
    enc = text.sniff_encoding(path)
    assert enc.name == "utf-8" and enc.note == ""
    assert "crème" in tokenize(next(text.iter_recipes(path, enc.name)))


def test_cp1252_recipe_is_read_as_cp1252(tmp_path: Path):
    # 0xB0 is '°', 0x92 is the curly apostrophe (not latin-1), 0xE8 is 'è'
    body = RECIPE.format(title="Cr\xe8me don\u2019t", deg="\xb0").encode("cp1252")
    assert b"\xb0" in body and b"\x92" in body
    path = _write(tmp_path / "w.txt", body)
    enc = text.sniff_encoding(path)
    assert enc.name == text.AUTO and "cp1252" in enc.note
    assert text.decode_recipe(body)[1] == "cp1252"
    tokens = tokenize(next(text.iter_recipes(path, enc.name)))
    assert "350°f" in tokens and "don\u2019t" in tokens and "crème" in tokens


def test_one_stray_byte_spoils_no_other_recipe(tmp_path: Path):
    good = RECIPE.format(title="Crème brûlée", deg="°").encode("utf-8")
    stray = RECIPE.format(title="Caf\xe9", deg="").encode("cp1252")  # one cp1252 byte
    path = _write(tmp_path / "mixed.txt", good * 3 + stray + good * 3)
    recipes = list(text.iter_recipes(path, text.sniff_encoding(path).name))
    assert len(recipes) == 7
    assert [("crème" in tokenize(r), "café" in tokenize(r)) for r in recipes] == (
        [(True, False)] * 3 + [(False, True)] + [(True, False)] * 3
    )
    assert not any("Ã" in r for r in recipes)


def test_latin1_when_not_cp1252(tmp_path: Path):
    # 0x81 is undefined in cp1252, so only latin-1 reads this recipe
    raw = RECIPE.format(title="X", deg="").encode() + b"\x81\xb0\n"
    path = _write(tmp_path / "l.txt", raw)
    assert text.sniff_encoding(path).name == text.AUTO
    assert text.decode_recipe(raw) == (text.normalize(raw.decode("latin-1")), "latin-1")
    assert len(list(text.iter_recipes(path))) == 1


def test_non_utf8_byte_at_the_very_end_of_the_file(tmp_path: Path):
    # 0xC3 starts a two-byte UTF-8 sequence; as the last byte it is cp1252 'Ã'
    path = _write(tmp_path / "end.txt", RECIPE.format(title="X", deg="").encode() + b"Caf\xc3")
    enc = text.sniff_encoding(path)
    assert enc.name == text.AUTO
    assert next(text.iter_recipes(path, enc.name)).endswith("CafÃ")


def test_utf8_failing_only_in_a_later_chunk(tmp_path: Path):
    # The first 4 MiB are valid UTF-8 holding bytes cp1252 cannot read ('Á' is C3 81); past
    # them, plain ASCII and one stray cp1252 byte in the last recipe.
    accented = RECIPE.format(title="Á", deg="").encode()
    plain = RECIPE.format(title="A", deg="").encode()
    n_accented = (1 << 22) // len(accented) - 1
    n_plain = 200
    data = accented * n_accented + plain * n_plain + b"\xb0\n"
    assert len(accented) * n_accented < 1 << 22 < len(data) - len(plain)
    path = _write(tmp_path / "mixed.txt", data)
    enc = text.sniff_encoding(path)
    assert enc.name == text.AUTO
    recipes = list(text.iter_recipes(path, enc.name))
    assert len(recipes) == n_accented + n_plain
    assert all(" Á" in r for r in recipes[:n_accented])  # still UTF-8, not "Ã\x81"
    assert recipes[-1].endswith("°\n")


def test_binary_file_is_refused(tmp_path: Path):
    import random

    rng = random.Random(0)
    data = bytes(rng.randrange(256) for _ in range(20000)) + b"\x00\x00"
    with pytest.raises(CorpusError, match="binary"):
        text.sniff_encoding(_write(tmp_path / "b.bin", data))


def test_tabs_form_feeds_and_crlf_in_a_file(tmp_path: Path):
    body = RECIPE.format(title="Soup", deg="")
    lf = _write(tmp_path / "lf.txt", body.encode())
    odd = body.replace("      ", "\t").replace("\n\n", "\n\x0c\n").replace("\n", "\r\n")
    crlf = _write(tmp_path / "crlf.txt", odd.encode())
    (a,) = text.iter_recipes(lf, "utf-8")
    (b,) = text.iter_recipes(crlf, "utf-8")
    assert "\r" not in b
    assert tokenize(a) == tokenize(b)


def test_classic_mac_line_ends_give_the_same_recipes(tmp_path: Path):
    body = "".join(RECIPE.format(title=f"Dish {i}", deg="") for i in range(3))
    lf = list(text.iter_recipes(_write(tmp_path / "lf.txt", body.encode())))
    cr = list(text.iter_recipes(_write(tmp_path / "cr.txt", body.replace("\n", "\r").encode())))
    assert len(lf) == 3 and cr == lf


def test_a_giant_recipe_comes_in_pieces_that_tokenize_as_the_whole(tmp_path: Path):
    # 3 MiB in one recipe, one line of it 1.5 MiB long; UTF-8 'é' all over, CR LF line ends
    line = "purée de crème, 1/2 cup\t" * 60_000
    giant = RECIPE.format(title="Giant", deg="").replace("\n\n", f"\r\n{line}\r\n", 1)
    giant += "Stir well -- slowly.\r\n" * 70_000
    body = RECIPE.format(title="Before", deg="") + giant + RECIPE.format(title="After", deg="")
    path = _write(tmp_path / "giant.txt", body.encode())
    pieces = list(text.iter_recipe_pieces(path))
    assert [first for first, _ in pieces].count(True) == 3
    assert all(len(raw) <= text.MAX_PIECE_BYTES for _, raw in pieces)
    assert len(pieces) >= 2 + 3  # the recipes before and after, the giant in three or more
    tokens = [t for _, raw in pieces for t in tokenize(text.decode_recipe(raw)[0])]
    assert tokens == [t for r in text.iter_recipes(path) for t in tokenize(r)]
    assert tokens == tokenize(body)
    assert {text.decode_recipe(raw)[1] for _, raw in pieces} == {"utf-8"}


def test_recipe_boundaries_cover_the_file_once(demo_corpus: Path):
    # Byte ranges that start at recipe boundaries, as MPI ranks take them, partition the recipes.
    size = demo_corpus.stat().st_size
    whole = list(text.iter_recipes(demo_corpus, "utf-8"))
    for parts in (2, 3, 7):
        starts = [
            text.recipe_boundary_at_or_after(demo_corpus, size * r // parts) for r in range(parts)
        ]
        ends = [*starts[1:], size]
        joined = [
            r
            for s, e in zip(starts, ends, strict=True)
            for r in text.iter_recipes(demo_corpus, "utf-8", s, e)
        ]
        assert joined == whole


def test_detokenize_joins_times_but_not_labels() -> None:
    tokens = text.tokenize("Serving Size  : 12   Preparation Time :0:00\nYield: 12 servings\n")
    assert (
        text.detokenize(tokens) == "serving size: 12 preparation time: 0:00\nyield: 12 servings\n"
    )
