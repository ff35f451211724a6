"""The prompt of a requested recipe: a title and an ingredient list laid out as the archive does.

A model learns what follows what in its training recipes, so it is asked in exactly that form,
in the layout of the archive it learned (`archive_for`, from its vocabulary). MasterCook's: the
export line, the title, the `Recipe By`, `Serving Size` and `Categories` lines, the table
header and rule, one row per ingredient, and the blank line after the table, after which the
archive's recipes go on with their directions. Meal-Master's: the header line, the `Title:`,
`Categories:` and `Yield:` fields, a blank line, one row per ingredient in its columns with the
measure as a unit code ("2 cups flour" -> "      2 c  Flour"), and the blank line after the
rows. Tokens come from `text.tokenize`, the rule the training text was read with; the text a
user sees is `layout.render` of the same tokens.

Ingredients come as the archive writes its rows ("   1      pound         Chicken breasts --
skinned") or as free text ("1 pound chicken breasts -- skinned", "2 tbsp butter"): whitespace
runs count as one, and abbreviated measures are written out as the archive does ("tbsp" ->
"tablespoons"). `--complete` reads MasterCook and Meal-Master files (`recipes_of`).
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from hpc_rnn import layout, quality, text
from hpc_rnn.cli import UserError
from hpc_rnn.vocab import UNK, Vocab

UNKNOWN_MODES = ("error", "unk")

# Abbreviations of free text and Meal-Master's unit codes, as the MasterCook archive spells them
# (singular, plural). Meal-Master's codes are case-sensitive: "t" is a teaspoon, "T" a tablespoon.
_SPELLED = {
    "tsp": ("teaspoon", "teaspoons"),
    "t": ("teaspoon", "teaspoons"),
    "ts": ("teaspoon", "teaspoons"),
    "tbsp": ("tablespoon", "tablespoons"),
    "tbs": ("tablespoon", "tablespoons"),
    "tb": ("tablespoon", "tablespoons"),
    "T": ("tablespoon", "tablespoons"),
    "c": ("cup", "cups"),
    "lb": ("pound", "pounds"),
    "lbs": ("pound", "pounds"),
    "oz": ("ounce", "ounces"),
    "pt": ("pint", "pints"),
    "qt": ("quart", "quarts"),
    "gal": ("gallon", "gallons"),
    "ga": ("gallon", "gallons"),
    "pkg": ("package", "packages"),
    "pk": ("package", "packages"),
    "cn": ("can", "cans"),
    "ea": ("each", "each"),
    "sm": ("small", "small"),
    "md": ("medium", "medium"),
    "lg": ("large", "large"),
    "pn": ("pinch", "pinches"),
    "ds": ("dash", "dashes"),
    "dr": ("drop", "drops"),
    "cl": ("clove", "cloves"),
    "sl": ("slice", "slices"),
    "bn": ("bunch", "bunches"),
    "g": ("gram", "grams"),
    "kg": ("kilogram", "kilograms"),
    "ml": ("milliliter", "milliliters"),
    "l": ("liter", "liters"),
}


@dataclass(frozen=True)
class Recipe:
    """A recipe asked for: its title and rows, and the header values the prompt carries."""

    title: str
    rows: tuple[str, ...]
    servings: int = 4
    categories: str = ""


def ingredient_row(line: str, *, unit: str = "") -> str:
    """One ingredient as the archive's table row; UserError for a line with no ingredient.

    `unit` is a Meal-Master row's unit code, read from its column ("t" a teaspoon, "T" a
    tablespoon, "x" none); free text has its measure, if any, after the amount.
    """
    words = line.split()
    if not words:
        raise UserError("an ingredient is empty: give it as '2 cups flour' or '2 lemons'")
    if not any(c.isalpha() for c in line + unit):
        raise UserError(
            f"ingredient {line.strip()!r} names no ingredient, only numbers: write it as "
            "'2 cups flour' or '2 lemons'"
        )
    row = quality.parse_row(" ".join(words).lower())
    amount, measure, rest = row.amount, row.measure, row.ingredient
    if unit and unit != "x":
        measure = unit
    elif not measure and rest:
        # An abbreviation that is not one of quality's measure words ("2 T sugar", "1 c milk"),
        # read in its own case.
        code = words[len(amount.split())] if len(words) > len(amount.split()) else ""
        code = code if code in ("T", "t") else code.lower()
        if code in _SPELLED:
            measure, rest = code, rest.partition(" ")[2]
    if measure:
        measure = _spelled(measure, amount)
    if not any(c.isalpha() for c in rest):
        raise UserError(
            f"ingredient {line.strip()!r} has an amount and a measure but no ingredient: "
            "write it as '2 cups flour'"
        )
    return layout.row_text(" ".join(p for p in (amount, measure, rest) if p))


def _spelled(measure: str, amount: str) -> str:
    """The archive's spelling of a measure: written out, plural for amounts above one."""
    singular, plural = _SPELLED.get(measure) or _SPELLED.get(measure.lower()) or _forms(measure)
    return plural if _above_one(amount) else singular


def _forms(measure: str) -> tuple[str, str]:
    for singular, plural in _SPELLED.values():
        if measure in (singular, plural):
            return singular, plural
    return measure, measure  # "fluid ounces", "ml" as written


def _above_one(amount: str) -> bool:
    try:
        return sum(Fraction(part) for part in amount.split()) > 1
    except (ValueError, ZeroDivisionError):
        return False


def prompt_words(recipe: Recipe, archive: layout.Archive | None = None) -> list[str]:
    """The prompt's tokens: the recipe as `archive` (MasterCook when None) lays it out, up to
    its directions."""
    check_recipe(recipe)
    if archive is not None and archive.name == layout.MEAL_MASTER:
        return _meal_master_words(recipe, archive)
    lines = [
        layout.EXPORT_LINE,
        "",
        recipe.title.strip(),
        "",
        "Recipe By     :",
        f"Serving Size  : {recipe.servings:<4} Preparation Time :0:00",
        f"Categories    : {recipe.categories}".rstrip(),
        "",
        layout.TABLE_HEADER,
        layout.TABLE_RULE,
        *recipe.rows,
        "",
        "",  # the blank line after the table: what follows is the directions
    ]
    return text.tokenize(text.NEWLINE.join(lines))


def check_recipe(recipe: Recipe) -> None:
    """UserError for a recipe asked for without a title or without ingredients."""
    if not recipe.title.strip():
        raise UserError("the title is empty: give --title 'Lemon Chicken'")
    if not recipe.rows:
        raise UserError(
            f"the ingredient list of {recipe.title.strip()!r} is empty: give --ingredient "
            "'2 lemons' (once per ingredient) or --ingredients FILE"
        )


def _meal_master_words(recipe: Recipe, archive: layout.Archive) -> list[str]:
    sections = "MMMMM" if archive.end == "MMMMM" else ""  # before a section's dashes
    servings = "serving" if recipe.servings == 1 else "servings"
    lines = [
        archive.header,
        "",
        layout.meal_master_field("Title", recipe.title.strip()),
        layout.meal_master_field("Categories", recipe.categories),
        layout.meal_master_field("Yield", f"{recipe.servings} {servings}"),
        "",
        *(meal_master_row(row, sections) for row in recipe.rows),
        "",
        "",  # the blank line after the rows: what follows is the directions
    ]
    return text.tokenize(text.NEWLINE.join(lines))


# Meal-Master's unit codes of the measures (singular, as _SPELLED writes them). Measures without
# a code (clove, jar, stick, fluid ounce) stay in the ingredient column, as Meal-Master has them.
_CODES = {
    "teaspoon": "ts",
    "tablespoon": "tb",
    "cup": "c",
    "pound": "lb",
    "ounce": "oz",
    "pint": "pt",
    "quart": "qt",
    "gallon": "ga",
    "package": "pk",
    "can": "cn",
    "each": "ea",
    "small": "sm",
    "medium": "md",
    "large": "lg",
    "pinch": "pn",
    "dash": "ds",
    "drop": "dr",
    "slice": "sl",
    "bunch": "bn",
    "gram": "g",
    "kilogram": "kg",
    "milliliter": "ml",
    "liter": "l",
}
_SECTION_ROW = re.compile(r"^\s*-{3,}(.*?)-{3,}\s*$")


def meal_master_row(row: str, sections: str = "MMMMM") -> str:
    """A MasterCook table row ("   1 1/2  cups          Flour -- sifted", or free text) as
    Meal-Master's ("  1 1/2 c  Flour -- sifted"); a `---SAUCE---` row as `MMMMM-----SAUCE-----`
    (`sections` is what goes before the dashes)."""
    if m := _SECTION_ROW.match(row):
        return f"{sections}-----{m.group(1).strip().upper()}-----"
    parsed = quality.parse_row(row.lower())
    ingredient, code = parsed.ingredient, ""
    if parsed.measure:
        singular = (_SPELLED.get(parsed.measure) or _forms(parsed.measure))[0]
        code = _CODES.get(singular, "")
        if not code:
            ingredient = f"{parsed.measure} {ingredient}".strip()
    return layout.meal_master_row(parsed.amount, code, ingredient)


def known_words(words: list[str], vocab: Vocab, unknown: str, what: str) -> list[str]:
    """`words` with those the vocabulary lacks mapped to `<unk>` (unknown="unk"), or a
    UserError that names them (unknown="error"). Never are they dropped."""
    if unknown not in UNKNOWN_MODES:
        raise UserError(f"--unknown must be one of {', '.join(UNKNOWN_MODES)}, got {unknown!r}")
    missing = sorted({w for w in words if w not in vocab.index})
    if not missing:
        return words
    shown = ", ".join(repr(w) for w in missing[:12]) + (" ..." if len(missing) > 12 else "")
    head = f"{len(missing)} word(s) of {what} are not in the model's vocabulary: {shown}"
    if unknown == "unk" and vocab.unk:
        return [w if w in vocab.index else UNK for w in words]
    if unknown == "unk":
        raise UserError(
            f"{head}; this vocabulary has no {UNK} (it was preprocessed without --unk), so "
            "they cannot be mapped: rephrase them"
        )
    alternative = "or pass --unknown unk to read them as <unk>" if vocab.unk else "rephrase them"
    raise UserError(f"{head}: {alternative}")


def archive_for(vocab: Vocab) -> layout.Archive:
    """The archive whose layout prompts are written in for a model of `vocab`
    (`layout.archive_of`); UserError when its vocabulary has neither layout's words."""
    archive = layout.archive_of(vocab.index)
    if archive == layout.MASTERCOOK_ARCHIVE:
        mastercook_vocabulary(vocab)  # and its table's words
    if archive is not None:
        return archive
    mastercook = set(layout.EXPORT_WORDS)
    meal_master = set(layout.MEAL_MASTER_WORDS)
    lacks = [
        f"{name} ({', '.join(repr(w) for w in sorted(words) if w not in vocab.index)})"
        for name, words in ((layout.MASTERCOOK, mastercook), (layout.MEAL_MASTER, meal_master))
    ]
    raise UserError(
        "this model was trained on neither MasterCook nor Meal-Master recipes: its vocabulary "
        f"lacks the words of both layouts, {lacks[0]} and {lacks[1]}; a title and ingredient "
        "list are asked in the layout of the archive the model learned, so use a model of a "
        "MasterCook or Meal-Master archive"
    )


def mastercook_vocabulary(vocab: Vocab) -> None:
    """UserError unless the model learned the MasterCook layout that prompts are written in."""
    layout_words = {*layout.EXPORT_WORDS, *layout.HEADER_WORDS, *layout.RULE_WORDS}
    missing = sorted(w for w in layout_words if w not in vocab.index)
    if missing:
        raise UserError(
            "this model was not trained on MasterCook recipes (its vocabulary lacks "
            f"{', '.join(map(repr, missing))}): a title and ingredient list are asked in that "
            "layout, so use a model of a MasterCook archive"
        )


# ---------------------------------------------------------------------------------------------
# Reading the recipes of a file


def read_ingredients(path: str | os.PathLike) -> tuple[str, ...]:
    """Rows from a file of ingredients, one a line; blank lines are skipped."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read --ingredients {path}: {exc}") from None
    return tuple(ingredient_row(line) for line in lines if line.strip())


@dataclass(frozen=True)
class Given:
    """A recipe of a file, as --complete and the scores use it."""

    words: list[str]  # the prompt in MasterCook's layout
    title: str
    names: list[str]  # the ingredient names of its list (quality.ParsedRecipe.names)
    directions: str  # its own directions, lower case
    recipe: Recipe | None = None  # its title, rows, servings and categories
    # A Meal-Master recipe's own words after its header line, up to its directions.
    meal_master: tuple[str, ...] = ()

    def words_in(self, archive: layout.Archive) -> list[str]:
        """The prompt in `archive`'s layout: the recipe's own words where the file is in that
        layout (a Meal-Master recipe with the archive's header line), else its title and rows
        laid out so."""
        if archive.name == layout.MASTERCOOK:
            return self.words
        if self.meal_master:
            return [*archive.header_words, *self.meal_master]
        return prompt_words(self.recipe or Recipe(self.title, ()), archive)


def recipes_of(path: str | os.PathLike) -> list[Given]:
    """Every recipe of a MasterCook or Meal-Master file, each with its prompt."""
    if not os.path.isfile(path):
        raise UserError(f"--complete {path} is not a file: give a MasterCook or Meal-Master file")
    given = givens(quality.iter_corpus(path))
    if not given:
        raise UserError(
            f"{path} holds no recipes: a recipe starts with '* Exported from MasterCook *' or a "
            "Meal-Master header ('MMMMM----- Recipe via Meal-Master')"
        )
    return given


def givens(recipes: Iterable[str]) -> list[Given]:
    """Each recipe text (MasterCook or Meal-Master) with its prompt, list and directions."""
    given = []
    for i, recipe in enumerate(recipes, start=1):
        parsed = quality.parse_recipe(recipe)
        if parsed.has_header:
            words = _mastercook_prompt(recipe)
            asked = _mastercook_recipe(recipe, parsed.title)
            given.append(Given(words, parsed.title, parsed.names, parsed.directions, asked))
            continue
        asked, directions, own = _meal_master(recipe, i)
        words = prompt_words(asked)
        names = quality.parse_recipe(layout.render(words)).names
        given.append(Given(words, asked.title.lower(), names, directions, asked, own))
    return given


_SERVINGS = re.compile(r"^\s*serving size\s*:\s*(\d+)", re.IGNORECASE)
_CATEGORIES = re.compile(r"^\s*categories\s*:(.*)$", re.IGNORECASE)


def _mastercook_recipe(recipe: str, title: str) -> Recipe:
    """The title, rows, servings and categories of a MasterCook recipe, for a prompt in another
    layout. Never raises: a row that is no ingredient is kept as written."""
    lines = [line.rstrip() for line in text.normalize(recipe).split(text.NEWLINE)]
    servings = next((int(m.group(1)) for x in lines if (m := _SERVINGS.match(x))), 1)
    at = next((i for i, x in enumerate(lines) if _CATEGORIES.match(x)), None)
    categories: list[str] = []
    if at is not None:
        # The first line after its label, then the lines under it up to the blank one; two
        # categories share a line, apart by a run of spaces.
        more = itertools.takewhile(str.strip, lines[at + 1 :])
        for line in [lines[at].partition(":")[2], *more]:
            categories += [c for c in re.split(r"\s{2,}", line.strip()) if c]
    rule = next(
        (i for i, x in enumerate(lines) if tuple(text.tokenize(x)) == layout.RULE_WORDS), -1
    )
    rows = tuple(itertools.takewhile(str.strip, lines[rule + 1 :])) if rule >= 0 else ()
    return Recipe(title, rows, servings, ", ".join(categories))


def _mastercook_prompt(recipe: str) -> list[str]:
    # The recipe's own words up to the blank line after its table: its title, header values and
    # rows exactly as the archive has them. parse_recipe found the table header.
    out: list[str] = []
    in_table = False
    for line in layout.split_lines(text.tokenize(recipe)):
        out += [*line, text.NEWLINE]
        if tuple(line) == layout.HEADER_WORDS:
            in_table = True
        elif in_table and not line:
            break
    return out + [text.NEWLINE] * (out[-2:] != [text.NEWLINE] * 2)


_MM_FIELD = re.compile(r"^\s*(title|categories|yield|servings)\s*:\s*(.*)$", re.IGNORECASE)
_MM_END = re.compile(r"^\s*(?:M{5}|-{5})\s*$")
_MM_SECTION = re.compile(r"^\s*(?:M{5})?-{3,}(.*?)-{3,}\s*$")


def _meal_master(recipe: str, number: int) -> tuple[Recipe, str, tuple[str, ...]]:
    """A Meal-Master recipe: its title, categories, servings and rows, its directions, and its
    own words after the header line up to the directions.

    The layout: the header line, the `Title:`, `Categories:` and `Yield:` (or `Servings:`)
    fields, a blank line, the ingredient rows (amount in columns 1-7, unit code in 9-10, the
    ingredient from 12), a blank line, the directions, and the `MMMMM` or `-----` end line.
    """
    lines = [line.rstrip() for line in recipe.split("\n")[1:]]
    fields: dict[str, str] = {}
    i = 0
    while i < len(lines) and (not lines[i].strip() or _MM_FIELD.match(lines[i])):
        if m := _MM_FIELD.match(lines[i]):
            fields[m.group(1).lower()] = m.group(2).strip()
        i += 1
    rows: list[str] = []
    while i < len(lines) and lines[i].strip() and not _MM_END.match(lines[i]):
        line = lines[i]
        if m := _MM_SECTION.match(line):
            rows.append(f"{layout.SECTION_INDENT}---{m.group(1).strip().upper()}---")
        elif (
            len(line) > 11
            and line[7] == " "
            and line[10] == " "
            and not line[:7].strip(" 0123456789/.")
        ):
            rows.append(ingredient_row(f"{line[:7]} {line[11:]}", unit=line[8:10].strip()))
        else:
            rows.append(ingredient_row(line))
        i += 1
    end = next((j for j in range(i, len(lines)) if _MM_END.match(lines[j])), len(lines))
    directions = "\n".join(" ".join(x.lower().split()) for x in lines[i:end] if x.strip())
    title = fields.get("title", "")
    if not title:
        raise UserError(f"Meal-Master recipe {number} has no 'Title:' line")
    served = re.match(r"\d+", fields.get("servings") or fields.get("yield") or "")
    categories = ", ".join(c.strip() for c in fields.get("categories", "").split(","))
    own = text.tokenize(text.NEWLINE + text.NEWLINE.join(lines[:i]) + text.NEWLINE * 2)
    asked = Recipe(title, tuple(rows), int(served.group()) if served else 1, categories)
    return asked, directions, tuple(own)
