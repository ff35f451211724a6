"""Token text to a recipe file in the layout of the archive the model learned.

`archive_of` says which archive a vocabulary learned, from its words: MasterCook's export
layout when it holds the export line's words, else Meal-Master's when it holds its header
line's words and the `Title:` field's, else none. `render` writes a recipe in that archive's
layout (MasterCook's by default).

The model writes lower-case tokens with the columns gone. MasterCook's layout: the export line,
the title centred and in title case, the `Recipe By`, `Serving Size` and `Categories` lines with
their labels padded, the Amount / Measure / Ingredient table in its aligned columns (amount in
8, measure in 12), `---SECTION---` rows indented under the ingredients, directions as sentences
(capital after a full stop, hyphens and ranges closed up, quotes against their words), the
`Yield:` line and the spaced-dash end line. Meal-Master's (`render_meal_master`): the header
line, the `Title:`, `Categories:` and `Yield:` fields with their labels right-aligned, a blank
line, the rows in their columns (amount in 1-7, the unit code in 9-10, the ingredient from 12),
`MMMMM-----SAUCE-----` section lines, a blank line, the directions as sentences, indented two
columns, and the end line `MMMMM`.

Either layout changes case and whitespace, never words: `text.tokenize(render(words)) == words`
for any tokens the tokenizer can give (checked by the tests on random token streams). Whitespace
is only put where a space was, or dropped beside a punctuation mark, which is a token of its own
whatever touches it; two dashes are never joined (they would read as one "--"), and a letter is
upper-cased only when lower-casing gives it back ("ß" stays as it is). `<unk>` is no text the
tokenizer gives: it is written as is and reads back as "<", "unk", ">".

Lines are recognised by their words and their order, so text that does not follow the layout
(a model early in training) is still written line for line, as sentences. A line that
`text.RECIPE_START` would read as a Meal-Master recipe's start is one whose words make a header
(`is_meal_master_header`), and is written as one; generation stops before such a line.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterator
from dataclasses import dataclass

from hpc_rnn import text
from hpc_rnn.demo_corpus import END_LINE, EXPORT_LINE, SECTION_INDENT, TABLE_HEADER, TABLE_RULE
from hpc_rnn.quality import parse_row

EXPORT_WORDS = tuple(text.tokenize(EXPORT_LINE))
HEADER_WORDS = tuple(text.tokenize(TABLE_HEADER))
RULE_WORDS = tuple(text.tokenize(TABLE_RULE))
_END_WORDS = tuple(text.tokenize(END_LINE))
TITLE_WIDTH = 74  # the archive centres titles in 74 columns
_LABELS = {"recipe by": "Recipe By     :", "categories": "Categories    :"}
_CATEGORY_COLUMN = 33
_CATEGORY_INDENT = " " * 16  # a third category goes on a line of its own, under the first
# Title case leaves these lower case inside a title, as the archive's titles do.
_SMALL_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "as",
        "at",
        "but",
        "by",
        "for",
        "from",
        "in",
        "into",
        "of",
        "on",
        "or",
        "the",
        "to",
        "with",
    ]
)


# ---------------------------------------------------------------------------------------------
# Which archive


MASTERCOOK = "MasterCook"
MEAL_MASTER = "Meal-Master"


@dataclass(frozen=True)
class Archive:
    """The archive layout a vocabulary was trained on: its name, first line and end line."""

    name: str  # MASTERCOOK or MEAL_MASTER
    header: str  # the line its recipes start with
    end: str  # the line that closes a recipe

    @property
    def header_words(self) -> tuple[str, ...]:
        return tuple(text.tokenize(self.header))

    @property
    def seed_words(self) -> list[str]:
        """The words every recipe of the archive starts with, up to its title's first word."""
        title = ["title", ":"] if self.name == MEAL_MASTER else []
        return [*self.header_words, text.NEWLINE, text.NEWLINE, *title]

    def ends_at(self, line: list[str]) -> bool:
        """True for the words of a line that closes a recipe of this archive: MasterCook's
        spaced dashes, or (Meal-Master) its `MMMMM` or `-----` line too."""
        return text.is_recipe_end(line) or (self.name == MEAL_MASTER and is_meal_master_end(line))

    def header_at(self, line: list[str]) -> int | None:
        """Where in a line, read so far, the header that starts this archive's next recipe
        began, else None: MasterCook's export line wherever it ends the line, a Meal-Master
        header (whichever version it names) from the line's start."""
        if self.name == MEAL_MASTER:
            return 0 if is_meal_master_header(line) else None
        start = len(line) - len(EXPORT_WORDS)
        return start if start >= 0 and tuple(line[start:]) == EXPORT_WORDS else None


MASTERCOOK_ARCHIVE = Archive(MASTERCOOK, EXPORT_LINE, END_LINE)
# Meal-Master's header in its two forms ("MMMMM----- Recipe via ..." and "----- Recipe via ..."):
# the words every version writes, and the fields its prompts and seeds start with.
_MM_CORE = tuple(text.tokenize("----- Recipe via Meal-Master"))
MEAL_MASTER_WORDS = (*_MM_CORE, "title", ":")
_MM_VERSION = " (tm) v8.05"  # the version of most Meal-Master archives


def archive_of(vocabulary: Container[str]) -> Archive | None:
    """The archive whose layout `vocabulary` (its words) learned: MasterCook when it holds the
    words of the export line; else Meal-Master when it holds the words of Meal-Master's header
    line and `Title:` field; else None.

    A Meal-Master header is the one of the vocabulary's words: "MMMMM" before the dashes, and
    " (tm) v8.05" or " (tm)" after the name, each only where the vocabulary holds its words; the
    end line is "MMMMM" where it holds that word, else "-----".
    """
    if all(w in vocabulary for w in (*EXPORT_WORDS, text.NEWLINE)):
        return MASTERCOOK_ARCHIVE
    if not all(w in vocabulary for w in (*MEAL_MASTER_WORDS, text.NEWLINE)):
        return None
    mmmmm = "mmmmm" in vocabulary
    header = ("MMMMM" if mmmmm else "") + "----- Recipe via Meal-Master"
    for version in (_MM_VERSION, " (tm)"):
        if all(w in vocabulary for w in text.tokenize(version)):
            header += version
            break
    return Archive(MEAL_MASTER, header, "MMMMM" if mmmmm else "-----")


def render(words: list[str], archive: Archive | None = None) -> str:
    """The recipe file for a generated recipe's tokens, in `archive`'s layout (MasterCook's
    when None; see the module docstring).

    The text ends with a newline: one is added when the tokens do not end with one (a recipe
    cut off by --max-words), so that files can be concatenated into a corpus.
    """
    if archive is not None and archive.name == MEAL_MASTER:
        return render_meal_master(words)
    out = list(_render_lines(split_lines(words)))
    rendered = text.NEWLINE.join(out)
    return rendered if rendered.endswith(text.NEWLINE) else rendered + text.NEWLINE


def title_case(line: str) -> str:
    """'lemon chicken with rice' -> 'Lemon Chicken with Rice' (first word always capitalised)."""
    first = True

    def cap(m: re.Match[str]) -> str:
        nonlocal first
        word = m.group(0)
        keep = not first and word in _SMALL_WORDS
        first = False
        return word if keep else _upper_first(word)

    return _WORD.sub(cap, line)


def sentences(words: list[str]) -> str:
    """One line of directions: words spaced as people write, each sentence with a capital."""
    line = _space(words)
    return _SENTENCE_START.sub(lambda m: m.group(1) + _upper_first(m.group(2)), line)


# ---------------------------------------------------------------------------------------------
# Lines


def split_lines(words: list[str]) -> list[list[str]]:
    """The words of each line; a recipe ending in a newline ends with an empty line."""
    lines: list[list[str]] = [[]]
    for w in words:
        if w == text.NEWLINE:
            lines.append([])
        else:
            lines[-1].append(w)
    return lines


def _render_lines(lines: list[list[str]]) -> Iterator[str]:
    """Each token line as the archive writes it, in the archive's order of parts."""
    part = "top"  # top (export line, title, labels), rows, directions, end
    has_title = False
    previous: list[str] = []
    for words in lines:
        key = tuple(words)
        after_categories = previous[:2] == ["categories", ":"]
        previous = words
        if not words:
            if part == "rows":
                part = "directions"  # the ingredient table ends at its first blank line
            yield ""
        elif key == EXPORT_WORDS:
            part, has_title = "top", False
            yield EXPORT_LINE
        elif key == HEADER_WORDS:
            part = "rows"
            yield TABLE_HEADER
        elif key == RULE_WORDS:
            yield TABLE_RULE
        elif text.is_recipe_end(words):
            part = "end"
            yield END_LINE if key == _END_WORDS else " " * 19 + " ".join(words)
        elif part == "top" and (label := _label(words)) is not None:
            has_title = True  # whatever came before the labels, a title no longer comes after
            yield label
        elif part == "top" and not has_title:
            has_title = True
            title = title_case(_space(words))
            yield " " * max(0, (TITLE_WIDTH - len(title)) // 2) + title
        elif part == "top" and after_categories:
            yield _CATEGORY_INDENT + title_case(_space(words))
        elif part == "rows":
            yield _row(words)
        elif words[:2] == ["yield", ":"]:
            yield "Yield: " + _space(words[2:])
        else:
            yield sentences(words)


def _label(words: list[str]) -> str | None:
    """`Recipe By`, `Serving Size` and `Categories` lines with the archive's padded labels."""
    if words[:3] == ["recipe", "by", ":"]:
        return _join(_LABELS["recipe by"], title_case(_space(words[3:])))
    if words[:2] == ["categories", ":"]:
        return _join(_LABELS["categories"], _categories(words[2:]))
    if words[:3] == ["serving", "size", ":"]:
        rest = words[3:]
        # "Serving Size  : 12   Preparation Time :0:00", the number in 4 columns
        if len(rest) >= 4 and rest[0].isdigit() and rest[1:4] == ["preparation", "time", ":"]:
            time = _space(rest[4:])
            return f"Serving Size  : {rest[0]:<4} Preparation Time :{time}"
        return _join("Serving Size  :", _space(rest))
    return None


def _categories(words: list[str]) -> str:
    # The archive sets two categories to a line, the second at column 33 of the value. Where a
    # category ends is lost with the columns; two words are two categories in 71 % of the dev
    # corpus's first category lines (2,642 of 3,717), so they are set so.
    if len(words) == 2 and all(w.isalpha() for w in words):
        return title_case(words[0]).ljust(_CATEGORY_COLUMN) + title_case(words[1])
    return title_case(_space(words))


def _join(label: str, value: str) -> str:
    return f"{label} {value}" if value else label


def _row(words: list[str]) -> str:
    """An ingredient row in the table's columns, or a `---SECTION---` row under them."""
    middle = words[1:-1]
    if (
        _dashes(words[0])
        and _dashes(words[-1])
        and middle
        and not (_dashes(middle[0]) or _dashes(middle[-1]))
    ):
        # "---FOR THE TOP---": the dash runs close up against the words, never against a dash
        return SECTION_INDENT + words[0] + _upper(_space(middle)) + words[-1]
    return row_text(_space(words))


def row_text(line: str) -> str:
    """A row's text ("1 1/2 cups flour -- sifted") in the table's columns, the name capitalised."""
    row = parse_row(line)
    name, _, prep = row.ingredient.partition(" -- ")
    name = _upper_first(name)
    ingredient = f"{name} -- {prep}" if _ else name
    whole, _, frac = row.amount.rpartition(" ") if " " in row.amount else ("", "", row.amount)
    if "/" not in frac and not whole:  # "2" is a whole amount, "1/2" a fraction
        whole, frac = frac, ""
    amount = f"{whole:>4} {frac:<3}" if len(whole) <= 4 and len(frac) <= 3 else row.amount
    return f"{amount}  {row.measure:<12}  {ingredient}".rstrip()


# ---------------------------------------------------------------------------------------------
# Meal-Master

MM_LABEL_WIDTH = 11  # "      Title:", " Categories:": the label right-aligned, then ": "
_MM_FIELDS = {
    "title": "Title",
    "categories": "Categories",
    "yield": "Yield",
    "servings": "Servings",
}
# The unit codes of the code column; any other word after the amount is the ingredient's.
_CODE_LIST = (
    "x t ts tb c pt qt ga oz lb fl ml cl dl l mg cg dg g kg cb sm md lg cn pk pn dr ds ct sl bn ea"
)
MM_UNIT_CODES = frozenset(_CODE_LIST.split())


def render_meal_master(words: list[str]) -> str:
    """A generated recipe's tokens in Meal-Master's layout (see the module docstring); the
    same guarantees as `render`."""
    rendered = text.NEWLINE.join(_meal_master_lines(split_lines(words)))
    return rendered if rendered.endswith(text.NEWLINE) else rendered + text.NEWLINE


def is_meal_master_end(words: list[str]) -> bool:
    """True for the words of Meal-Master's end line: `MMMMM`, or `-----` (5 dashes or more)."""
    return len(words) == 1 and (words[0] == "mmmmm" or (len(words[0]) >= 5 and _dashes(words[0])))


def is_meal_master_header(words: list[str]) -> bool:
    """True for the words of a line that `text.RECIPE_START` reads as a Meal-Master header: a
    run of 5 dashes or more (after M's, "MMMMM-----"), then on the same line "Meal-Master"."""
    start = 1 if words and _M_RUN.fullmatch(words[0]) else 0
    if len(words) <= start or len(words[start]) < 5 or not _dashes(words[start]):
        return False
    rest = words[start + 1 :]
    return any(rest[i : i + len(name)] == name for name in _MM_NAMES for i in range(len(rest)))


_M_RUN = re.compile(r"m+")
_MM_NAMES = (["meal", "-", "master"], ["meal", "master"], ["mealmaster"])
# The last word of each header's name: a line can only have become a header at one of them.
HEADER_LAST_WORDS = frozenset({EXPORT_WORDS[-1], *(name[-1] for name in _MM_NAMES)})
# Meal-Master's layout, as a text read on its own (no vocabulary) names it.
MEAL_MASTER_ARCHIVE = Archive(
    MEAL_MASTER, "MMMMM----- Recipe via Meal-Master" + _MM_VERSION, "MMMMM"
)


def _meal_master_lines(lines: list[list[str]]) -> Iterator[str]:
    """Each token line as Meal-Master writes it, in the order `prompt._meal_master` reads."""
    part = "top"  # top (header, fields), rows, directions, end
    for words in lines:
        if not words:
            if part == "rows":
                part = "directions"  # the ingredient rows end at their first blank line
            yield ""
        elif is_meal_master_header(words):
            part = "top"
            yield _meal_master_header(words)
        elif is_meal_master_end(words):
            part = "end"
            yield "MMMMM" if words[0] == "mmmmm" else words[0]
        elif part == "top" and words[0] in _MM_FIELDS and words[1:2] == [":"]:
            yield _meal_master_field(words)
        elif part in ("top", "rows"):
            part = "rows"  # the first line that is no field starts the rows
            yield _meal_master_row(words)
        else:
            yield "  " + sentences(words)


def _meal_master_header(words: list[str]) -> str:
    # M's and dashes close up ("MMMMM-----"), the name written as the archive does.
    start = 1 if _M_RUN.fullmatch(words[0]) else 0
    rest = _space(words[start + 1 :]).replace("recipe via meal-master", "Recipe via Meal-Master")
    return words[0].upper() * start + words[start] + (" " + rest if rest else "")


def _meal_master_field(words: list[str]) -> str:
    value = _space(words[2:])
    if words[0] in ("title", "categories"):
        value = title_case(value)
    return meal_master_field(_MM_FIELDS[words[0]], value)


def meal_master_field(label: str, value: str) -> str:
    """'      Title: Lemon Chicken': the label right-aligned in 11 columns, then ': ' and value."""
    return _join(label.rjust(MM_LABEL_WIDTH) + ":", value)


def _meal_master_row(words: list[str]) -> str:
    """A row in Meal-Master's columns, or a `MMMMM-----SAUCE-----` section line."""
    start = 1 if words[:1] == ["mmmmm"] else 0
    middle = words[start + 1 : -1]
    if (
        len(words) > start + 2
        and _dashes(words[start])
        and _dashes(words[-1])
        and not (_dashes(middle[0]) or _dashes(middle[-1]))
    ):
        return "MMMMM" * start + words[start] + _upper(_space(middle)) + words[-1]
    line = _space(words)
    amount = parse_row(line).amount
    rest = line[len(amount) :].lstrip(" ")
    code, _, name = rest.partition(" ")
    if code not in MM_UNIT_CODES:
        code, name = "", rest
    return meal_master_row(amount, code, name)


def meal_master_row(amount: str, code: str, ingredient: str) -> str:
    """A row in Meal-Master's columns: the amount right-aligned in 1-7, the unit code in 9-10,
    the ingredient (its first letter capitalised) from 12; a longer amount or code is followed
    by one space."""
    ingredient = _upper_first(ingredient)
    if len(amount) <= 7 and len(code) <= 2:
        return f"{amount:>7} {code:<2} {ingredient}".rstrip()
    return " ".join(p for p in (amount, code, ingredient) if p)


# ---------------------------------------------------------------------------------------------
# Words


_WORD = re.compile(r"(?<![\w'])[a-z][\w']*")
# A sentence starts a line, or follows . ! ? and a space, perhaps behind an opening mark.
_SENTENCE_START = re.compile(r"(^|[.!?]\s+[\"(]?)([a-z])")
_HYPHEN = re.compile(r"(?<=\w) - (?=\w)")  # "well - greased" -> "well-greased", "5 - 6" -> "5-6"
_INCH = re.compile(r'(?<=\d) "')  # '10 " pan' -> '10" pan'
_DECIMAL = re.compile(r"(?<=\d)\. (?=\d)")  # "1. 5" -> "1.5"


def _dashes(word: str) -> bool:
    return word.startswith("-")


def _upper_first(word: str) -> str:
    return _upper(word[:1]) + word[1:]


def _upper(s: str) -> str:
    """Upper case, where lower-casing it gives the same text back (tokenize lower-cases)."""
    up = s.upper()
    return up if up.lower() == s else s


def _space(words: list[str]) -> str:
    """Words joined as people write them; text.tokenize gives the same words back."""
    line = _DECIMAL.sub(".", _INCH.sub('"', _HYPHEN.sub("-", text.detokenize(words))))
    return _close_quotes(line)


def _close_quotes(line: str) -> str:
    # The detokenizer spaces a '"' on both sides; in turn an opening one goes against the word
    # after it and a closing one against the word before.
    parts = line.split(' " ')
    if len(parts) < 2:
        return line
    out = parts[0]
    for i, part in enumerate(parts[1:]):
        out += (' "' if i % 2 == 0 else '" ') + part
    return out
