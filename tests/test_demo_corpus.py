"""The demo corpus generator: same seed same bytes, the real corpus's layout, directions that
name only the recipe's own ingredients, sizes, and the command as a user runs it."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import clean_env, run_in_repo

from hpc_rnn import demo_corpus as dc

# amount: whole part right-aligned in 4, a space, fraction left-justified in 3 (all blank for
# "to taste"); two spaces; measure left-justified in 12; two spaces; the ingredient.
ROW = re.compile(
    r"^(?P<whole> {4}| {3}\d| {2}\d\d) (?P<frac>1/4|1/3|1/2|2/3|3/4| {3})"
    r"  (?P<measure>[a-z]+ *| {12})  (?P<ingredient>[A-Z]\S.*)$"
)
SECTION_ROW = re.compile(r"^ {24}---[A-Z]+---$")
SENTENCE_END = re.compile(r"(?<=\.) (?=[A-Z])")
SINGULAR_MEASURES = set(dc.MEASURES)
PLURAL_MEASURES = set(dc.MEASURES.values())


def run_cli(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_in_repo(
        [sys.executable, "-m", "hpc_rnn.demo_corpus", *args], timeout=60, env=clean_env(**env)
    )


def split(text: str) -> list[str]:
    parts = text.split(dc.EXPORT_LINE + "\n")
    assert parts[0] == ""
    return [dc.EXPORT_LINE + "\n" + p for p in parts[1:]]


class Parsed:
    """One recipe block cut into the parts the layout promises."""

    def __init__(self, block: str) -> None:
        assert block.endswith(f"\n\n{dc.END_LINE}\n\n\n")
        lines = block.split("\n")
        self.lines = lines
        self.title_line = lines[2]
        rule = lines.index(dc.TABLE_RULE)
        end = lines.index("", rule)
        self.rows = lines[rule + 1 : end]
        ylines = [i for i, line in enumerate(lines) if line.startswith("Yield: ")]
        assert len(ylines) == 1
        self.yield_line = lines[ylines[0]]
        self.paragraphs = [p for p in lines[end + 1 : ylines[0]] if p]
        self.directions = " ".join(self.paragraphs)
        self.ingredients = [r for r in self.rows if not SECTION_ROW.match(r)]
        self.names = {dc.ingredient_name(r[24:]) for r in self.ingredients}


@pytest.fixture(scope="module")
def corpus() -> str:
    return "".join(dc.generate_recipes(300, 7))


@pytest.fixture(scope="module")
def recipes(corpus: str) -> list[Parsed]:
    return [Parsed(b) for b in split(corpus)]


# ---------------------------------------------------------------------------------------------
# Determinism


def test_same_seed_gives_the_same_bytes_in_any_process(tmp_path: Path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    dc.write_corpus(a, recipes=40, seed=3)
    dc.write_corpus(b, recipes=40, seed=3)
    assert a.read_bytes() == b.read_bytes()
    # Other processes, with other string-hash seeds, write the same bytes.
    for hashseed in ("1", "2"):
        proc = run_cli("--recipes", "40", "--seed", "3", "--out", "-", PYTHONHASHSEED=hashseed)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.encode("ascii") == a.read_bytes()


# sha256 of the output as it was when the tables moved out of the code into demo_corpus.json:
# the generator and its data may be reshaped, the bytes they write may not.
PINNED = {
    (600, 0): "d27b166d7f066124de3c52068e19e87bcdbd4da72560a092528258f8a2a13d9e",
    (600, 1): "658ba10224a633e91fe986e1fa0d771fe81a7df9de6af29a03fce0aa4d617ab4",
    (123, 99): "dbde487e3156abc43745dac215fd1a458dbe3574586a5bf7e6669ba6f2c91609",
    (300, -1): "56a72dc5fd8034a2cb65ac8070d245f6b3a3137b08892f3a93b8f8930f50f868",
    (1, 3): "1a7d609522949a7e29f4f9ed6afc1a30b20f04068a926b82a7a15edef9a86411",
}


@pytest.mark.parametrize(("recipes", "seed"), sorted(PINNED))
def test_output_is_byte_identical_to_the_pinned_hash(recipes: int, seed: int):
    text = "".join(dc.generate_recipes(recipes, seed))
    assert hashlib.sha256(text.encode("ascii")).hexdigest() == PINNED[recipes, seed]


def test_the_command_writes_the_pinned_bytes(tmp_path: Path):
    # The README's demo corpus, through the command as scripts/demo.sh runs it.
    out = tmp_path / "corpus.txt"
    proc = run_cli("--recipes", "600", "--seed", "0", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == PINNED[600, 0]


def test_different_seeds_give_different_recipes():
    one = list(dc.generate_recipes(20, 1))
    two = list(dc.generate_recipes(20, 2))
    assert one != two
    assert len(set(one) & set(two)) < 3
    assert list(dc.generate_recipes(5, -1)) != list(dc.generate_recipes(5, 1))


def test_fewer_recipes_are_a_prefix_of_more():
    assert list(dc.generate_recipes(10, 5)) == list(dc.generate_recipes(25, 5))[:10]
    assert list(dc.generate_recipes(0, 5)) == []


# ---------------------------------------------------------------------------------------------
# Layout


def test_n_recipes_have_n_export_lines_and_n_yields(corpus: str):
    lines = corpus.split("\n")
    assert lines.count(dc.EXPORT_LINE) == 300
    assert sum(line.startswith("Yield: ") for line in lines) == 300
    assert corpus.isascii()


def test_every_recipe_has_the_mastercook_frame(recipes: list[Parsed]):
    for r in recipes:
        lines = r.lines
        assert lines[0] == dc.EXPORT_LINE and lines[1] == ""
        title = r.title_line.strip()
        # the real corpus's centring: "Carrot Cake" (11 letters) after 31 spaces
        assert title and r.title_line == " " * ((74 - len(title)) // 2) + title
        assert lines[3:5] == ["", "Recipe By     :"]
        serving = re.fullmatch(r"Serving Size  : (\d+) +Preparation Time :0:00", lines[5])
        assert serving and lines[5] == f"Serving Size  : {serving[1]:<4} Preparation Time :0:00"
        assert lines[6].startswith("Categories    : ")
        assert dc.TABLE_HEADER in lines and dc.TABLE_RULE in lines
        assert lines.index(dc.TABLE_RULE) == lines.index(dc.TABLE_HEADER) + 1
        assert re.fullmatch(
            r"Yield: (\d+ servings|\d+ cookies|1 loaf|2 loaves|.* cups?|1 quart)", r.yield_line
        )
        assert lines[lines.index(r.yield_line) + 1 :] == ["", dc.END_LINE, "", "", ""]
    assert dc.END_LINE == "                   - - - - - - - - - - - - - - - - - -"


def test_categories_are_two_to_a_line_in_a_33_column_first_column(recipes: list[Parsed]):
    seen = Counter()
    for r in recipes:
        cat_lines = [r.lines[6][16:]]
        i = 7
        while r.lines[i]:
            assert r.lines[i].startswith(" " * 16) and r.lines[i][16] != " "
            cat_lines.append(r.lines[i][16:])
            i += 1
        for line in cat_lines:
            first, second = line[:33], line[33:]
            assert first.strip() and (not second or first.endswith(" ")), line
            seen[first.strip()] += 1
    assert {"Cakes", "Cookies", "Breads", "Pies", "Soups", "Stews", "Salads"} <= set(seen)
    assert {"Main Dish", "Casseroles", "Sauces", "Vegetables"} <= set(seen)


def test_ingredient_rows_fill_the_fixed_columns(recipes: list[Parsed]):
    sections = 0
    for r in recipes:
        assert 4 <= len(r.ingredients) <= 12
        for row in r.rows:
            if SECTION_ROW.match(row):
                sections += 1
                assert row not in (r.rows[0], r.rows[-1])  # between ingredient rows
                continue
            m = ROW.match(row)
            assert m, row
            measure = m["measure"].strip()
            assert measure in SINGULAR_MEASURES | PLURAL_MEASURES | {""}, row
            whole = int(m["whole"]) if m["whole"].strip() else 0
            frac = m["frac"].strip()
            if measure and measure not in ("large", "medium", "small"):
                above_one = whole > 1 or (whole == 1 and bool(frac))
                assert (measure in PLURAL_MEASURES) == above_one, row
            if not m["whole"].strip() and not frac:
                assert not measure and row.endswith(" -- to taste"), row
    assert 0.03 < sections / len(recipes) < 0.25


# ---------------------------------------------------------------------------------------------
# Directions


def _without(text: str, names: set[str]) -> tuple[str, int]:
    """`text` with every listed name cut out (longest first), and how many were cut."""
    count = 0
    for name in sorted(names, key=len, reverse=True):
        text, n = re.subn(rf"\b{re.escape(name)}\b", "#", text)
        count += n
    return text, count


def test_directions_name_their_own_ingredients_and_no_others(recipes: list[Parsed]):
    pool = set(dc.INGREDIENT_NAMES)
    assert len(pool) > 150
    any_name = re.compile(
        r"\b(?:" + "|".join(map(re.escape, sorted(pool, key=len, reverse=True))) + r")\b"
    )
    for r in recipes:
        assert r.names <= pool
        rest, own = _without(r.directions.lower(), r.names)
        assert own >= 1, r.directions
        assert not any_name.findall(rest), r.directions


def test_directions_words_never_come_from_ingredient_names(recipes: list[Parsed]):
    # What a word-level ingredient score sees: apart from the names filled in from the list,
    # no word of the directions is a word of any ingredient column ("brown", "dry", "cream").
    name_words = {
        w
        for r in recipes
        for row in r.ingredients
        for w in re.findall(r"[a-z]+", row[24:].split(" -- ")[0].lower())
    }
    for r in recipes:
        rest, _ = _without(r.directions.lower(), r.names)
        assert not set(re.findall(r"[a-z]+", rest)) & name_words, r.directions


def test_directions_are_one_to_three_paragraphs_of_two_to_six_sentences(recipes: list[Parsed]):
    for r in recipes:
        assert 1 <= len(r.paragraphs) <= 3
        for p in r.paragraphs:
            assert p.endswith(".")
            assert 2 <= len(SENTENCE_END.split(p)) <= 6, p


def test_ingredient_name_is_the_head_in_lower_case():
    assert dc.ingredient_name("Flour, whole wheat") == "flour"
    assert dc.ingredient_name("Carrots -- shredded") == "carrots"
    assert dc.ingredient_name("Brown sugar -- packed") == "brown sugar"


def test_most_words_are_seen_five_times_in_300_recipes(corpus: str):
    words = Counter(re.findall(r"[a-z]+", corpus.lower()))
    assert 400 < len(words) < 1000
    assert sum(c >= 5 for c in words.values()) / len(words) > 0.75


# ---------------------------------------------------------------------------------------------
# Sizes and files


def test_megabytes_stops_at_the_first_recipe_past_the_size(tmp_path: Path):
    out = tmp_path / "half.txt"
    stats = dc.write_corpus(out, megabytes=0.5, seed=1)
    size = out.stat().st_size
    assert stats.bytes == size and 500_000 <= size < 600_000
    assert out.read_text().count(dc.EXPORT_LINE) == stats.recipes
    last = list(dc.generate_recipes(stats.recipes, 1))[-1]
    assert size - len(last) < 500_000  # one recipe fewer would not have reached the size


def test_write_corpus_rejects_bad_numbers_and_leaves_no_file(tmp_path: Path):
    out = tmp_path / "x.txt"
    for kwargs in (
        {"recipes": 0},
        {"recipes": -2},
        {"megabytes": 0.0},
        {},
        {"recipes": 1, "megabytes": 1.0},
    ):
        with pytest.raises(ValueError):
            dc.write_corpus(out, **kwargs)
    with pytest.raises(OSError):
        dc.write_corpus(tmp_path, recipes=3)  # a directory is in the way
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_command_writes_the_file_and_exits_0(tmp_path: Path):
    out = tmp_path / "demo.txt"
    proc = run_cli("--recipes", "25", "--seed", "9", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == "".join(dc.generate_recipes(25, 9)).encode("ascii")
    assert proc.stdout == ""
    assert proc.stderr.startswith("wrote 25 recipes")
    assert [p.name for p in tmp_path.iterdir()] == ["demo.txt"]  # no temporary file left


@pytest.mark.parametrize(
    "args",
    [
        ["--recipes", "0"],
        ["--recipes", "-3"],
        ["--recipes", "many"],
        ["--megabytes", "0"],
        ["--megabytes", "nan"],
        [],
        ["--recipes", "3", "--megabytes", "1"],
        ["--recipes", "3", "--out", "{tmp}/no/such/dir/x.txt"],
        ["--recipes", "3", "--out", "{tmp}"],
    ],
)
def test_bad_arguments_end_in_one_error_line_and_exit_2(
    tmp_path: Path, args: list[str], capsys: pytest.CaptureFixture[str]
):
    assert dc.main([a.format(tmp=tmp_path) for a in args]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert out == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args", [["--recipes", "0"], ["--recipes", "3", "--out", "{tmp}/no/x.txt"]]
)
def test_the_command_shows_no_traceback(tmp_path: Path, args: list[str]):
    proc = run_cli(*(a.format(tmp=tmp_path) for a in args))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert list(tmp_path.iterdir()) == []
