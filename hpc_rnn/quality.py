"""How recipe-like a text is: layout structure, and whether directions use listed ingredients.

Both scores read the MasterCook export layout in either of its two forms: the real corpus
(original case, space-aligned columns) and generated text (lower case, columns lost, made by
`text.detokenize`). Everything is lower-cased and whitespace runs are collapsed first, so one
parser serves both.

Structure
    Five flags: a title, the table header (`amount measure ingredient -- preparation method`),
    at least one ingredient row that starts with an amount followed by a measure word, directions
    (non-empty text after the ingredient block, before `yield:`), and a `yield:` line.
    `Structure.score` is the fraction of the five that hold.

Ingredient consistency (the lecture's named failure: "the instructions reference ingredients
which are not in the ingredients list"), defined operationally:
    1. INGREDIENT WORDS are a global lexicon built from a reference corpus (`IngredientLexicon`):
       the content words of ingredient names (the ingredient column without amount, measure and
       `-- preparation`), less numbers, STOP_WORDS, MEASURE_WORDS, DESCRIPTOR_WORDS (cut, size,
       state, colour) and GENERIC_WORDS (vegetables, meat),
       and less every word whose recipe-level share in ingredient names is below
       `MIN_INGREDIENT_SHARE`: share = ing / (ing + dirs), where ing counts the recipes that
       have the word in an ingredient name and dirs the recipes that have it in the directions.
       Words also need `MIN_RECIPES` recipes with them in an ingredient name (drops typos).
    2. For one recipe, D = the distinct ingredient words in its directions, I = every word of its
       own ingredient names. Words are compared by a simple singular form (eggs/egg,
       tomatoes/tomato, berries/berry). consistency = |D ∩ I| / |D|; None when D is empty.
    A direction that names an ingredient missing from the list lowers the score; words that
    directions use for tools, actions and times (bowl, stir, minutes) are not in the lexicon
    and cannot lower it.

Why the share is 0.40 (recipe counts in names/directions on dev/mm13000_a-f_mastercook.txt,
5,964 recipes). Ingredients are listed in about as many recipes as mention them in directions,
share about 0.5: salt 0.568, garlic 0.564, sugar 0.554, onion 0.550, chicken 0.538, flour 0.535,
egg 0.535. Kitchen words are almost never in a name: add 0.004, stir 0.004, heat 0.003,
mixture 0.005, bowl 0.007, oven 0.010, minutes 0.016, pan 0.032 (also dough 0.056, batter
0.019: made in the recipe, not bought). Among words in 40 or more ingredient lists nothing lies
between 0.386 and 0.406, and 0.40 sits in that gap:
    kept, 0.40-0.45, all foods: pudding 0.406, bread 0.407, noodle 0.409, tortilla 0.411,
        syrup 0.414, water 0.416, date 0.423, chip 0.431, sauce 0.436, lettuce 0.443,
        rice 0.446, coffee 0.448;
    dropped, 0.30-0.40, mostly dishes, tools and verbs: baking 0.386 ("baking sheet"),
        yolk 0.380, roast 0.373, nut 0.372, chunk, shell, soup, whipped, brown 0.332 ("brown
        the meat"), meal, pastry, whip, pie, salad, cake, springform, fish 0.301.
    The price is three foods (yolk, nut, fish) that directions then cannot be blamed for.
A higher bar (0.45) would lose water, sauce, bread, rice, lettuce, noodles; a lower one (0.30)
would count "baking", "brown", "cake", "pie" and "soup" in directions as missing ingredients.
Colour, size, cut and state words ("green", "large", "dry", "powdered"), abbreviations and
class words ("vegetables", "meat", "herbs") are dropped by the lists below, not by the share.
The lexicon has 1,084 words. On the real corpus the mean consistency is 0.80 (the ceiling);
with each recipe's directions paired with the next recipe's list it is 0.29. Real recipes stay
below 1.0 mostly because they use water (920 recipes), sauce, cream ("cream the butter"),
bread, juice, salt and pepper in directions without listing them.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from hpc_rnn import atomic
from hpc_rnn.text import iter_recipes, normalize, sniff_encoding, tokenize

# See the module docstring for how these were chosen on the real corpus.
MIN_INGREDIENT_SHARE = 0.40
MIN_RECIPES = 2


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# ---------------------------------------------------------------------------------------------
# Layout

# Spelled-out measures the corpus uses (Meal-Master unit codes as the conversion wrote them,
# singular and plural), plus common ones a model or another export may write.
MEASURE_WORDS = _word_set(
    """
    cup cups teaspoon teaspoons tablespoon tablespoons pound pounds ounce ounces
    pint pints quart quarts gallon gallons package packages can cans jar jars bottle bottles
    pinch pinches dash dashes drop drops clove cloves slice slices bunch bunches
    carton cartons stick sticks envelope envelopes box boxes head heads sprig sprigs
    small medium large each
    gram grams kilogram kilograms milligram milligrams liter liters litre litres
    milliliter milliliters millilitre millilitres centiliter centiliters centilitre centilitres
    deciliter deciliters decilitre decilitres
    tsp tbsp tbs lb lbs oz pt qt gal pkg kg ml cl dl
    """
)
_MEASURE_RE = "|".join(sorted((re.escape(m) for m in MEASURE_WORDS), key=len, reverse=True))
_FRACTION_CHARS = "½¼¾⅓⅔⅛⅜⅝⅞"
# Mixed numbers before fractions before integers: the first alternative that fits wins.
_AMOUNT_RE = rf"\d+ \d+/\d+|\d+/\d+|\d+ ?[{_FRACTION_CHARS}]|[{_FRACTION_CHARS}]|\d+(?:\.\d+)?"
_ROW = re.compile(
    rf"(?P<amount>{_AMOUNT_RE})(?= |$)"
    rf"(?: (?P<measure>(?:fluid )?(?:{_MEASURE_RE}))(?= |$))?"
    rf" ?(?P<rest>.*)"
)

_EXPORT = re.compile(r"^\* ?exported from mastercook ?\*$")
_HEADER = re.compile(r"^amount measure ingredient -- preparation method$")
_RULE = re.compile(r"^-{4,}(?: -{4,})+$")
_LABEL = re.compile(r"^(?:recipe by|serving size|categories) ?:")
_YIELD = re.compile(r"^yield ?:")
_END = re.compile(r"^(?:- ){4,}-$")
_SECTION = re.compile(r"^-{2,}")  # `---SAUCE---` rows inside the ingredient block


@dataclass
class ParsedRecipe:
    title: str  # "" when there is none
    rows: list[str]  # ingredient rows as written (lower case, whitespace collapsed)
    names: list[str]  # per row: the ingredient column without amount, measure, `-- preparation`
    directions: str  # "" when there are none
    yield_line: str  # "" when there is none
    has_header: bool
    has_measured_row: bool  # a row starts with an amount followed by a measure word


@dataclass
class Structure:
    has_title: bool
    has_header: bool
    has_ingredient_row: bool
    has_directions: bool
    has_yield: bool

    FLAGS: ClassVar[tuple[str, ...]] = (
        "has_title",
        "has_header",
        "has_ingredient_row",
        "has_directions",
        "has_yield",
    )

    @property
    def score(self) -> float:
        return sum(bool(getattr(self, f)) for f in self.FLAGS) / len(self.FLAGS)


def _clean_lines(text: str) -> list[str]:
    # Lower case and collapsed whitespace make the aligned and the detokenized layout alike.
    return [" ".join(line.split()) for line in normalize(text).lower().split("\n")]


@dataclass(frozen=True)
class Row:
    """One ingredient row cut into the table's columns; parts it lacks are ""."""

    amount: str  # "2", "1 1/2", "1/2", "½"
    measure: str  # one of MEASURE_WORDS, optionally after "fluid"
    ingredient: str  # the rest of the row, `-- preparation` included, as written


def parse_row(row: str) -> Row:
    """The columns of one ingredient row, read from its words (whitespace runs count as one).

    The amount is taken only when a space or the row's end follows it, and the measure only as
    a whole word, so "12 cupcakes" has no measure and "2-3 eggs" no amount.
    """
    row = " ".join(row.split())
    m = _ROW.match(row)
    if not m:
        return Row("", "", row)
    return Row(m.group("amount"), m.group("measure") or "", m.group("rest"))


def _split_row(row: str) -> tuple[bool, str]:
    """(amount followed by a measure word?, ingredient name) for one ingredient row."""
    r = parse_row(row)
    return bool(r.measure), r.ingredient.split("--", 1)[0].strip(" ,;:.")


def _first(lines: list[str], pattern: re.Pattern[str], start: int = 0) -> int | None:
    for i in range(start, len(lines)):
        if pattern.match(lines[i]):
            return i
    return None


def parse_recipe(text: str) -> ParsedRecipe:
    """Split one recipe into its parts; missing parts come back empty, never raise."""
    lines = _clean_lines(text)
    n = len(lines)
    header = _first(lines, _HEADER)
    rule = _first(lines, _RULE, 0 if header is None else header + 1)
    labels = [i for i, line in enumerate(lines) if _LABEL.match(line)]

    # The ingredient block runs from after the rule (or the header) to the next blank line.
    # Without either, a generated text may still list rows: the block then starts at the first
    # line with an amount and a measure word.
    if rule is not None:
        block_start: int | None = rule + 1
    elif header is not None:
        block_start = header + 1
    else:
        block_start = next(
            (i for i, line in enumerate(lines) if (m := _ROW.match(line)) and m.group("measure")),
            None,
        )
    if block_start is not None:
        block_end = next((i for i in range(block_start, n) if not lines[i]), n)
        body_start = block_end
    else:
        block_end = None
        # No block at all: directions start after the metadata paragraph (labels and categories).
        after = labels[-1] + 1 if labels else 0
        body_start = next((i for i in range(after, n) if not lines[i]), n) if labels else n

    # The title is the first line before any structural line, other than the export line.
    structural = [i for i in (header, rule, block_start, *labels[:1]) if i is not None]
    title = ""
    for i in range(min(structural, default=0)):
        if lines[i] and not _EXPORT.match(lines[i]):
            title = lines[i]
            break

    rows, names, measured = [], [], False
    if block_start is not None:
        for line in lines[block_start:block_end]:
            if not line or _SECTION.match(line):
                continue
            has_measure, name = _split_row(line)
            measured = measured or has_measure
            rows.append(line)
            names.append(name)

    # Yield is the last `yield:` line after the block: about 100 real recipes also have one
    # inside their directions. Directions stop at it, or at the end line.
    yield_idx = None
    for i in range(n - 1, body_start - 1, -1):
        if _YIELD.match(lines[i]):
            yield_idx = i
            break
    end = _first(lines, _END, body_start)
    stop = yield_idx if yield_idx is not None else (end if end is not None else n)
    directions = "\n".join(line for line in lines[body_start:stop] if line).strip()
    return ParsedRecipe(
        title=title,
        rows=rows,
        names=names,
        directions=directions,
        yield_line=lines[yield_idx] if yield_idx is not None else "",
        has_header=header is not None,
        has_measured_row=measured,
    )


def structure(text: str) -> Structure:
    return structure_of(parse_recipe(text))


def structure_of(p: ParsedRecipe) -> Structure:
    return Structure(
        has_title=bool(p.title),
        has_header=p.has_header,
        has_ingredient_row=p.has_measured_row,
        has_directions=bool(p.directions),
        has_yield=bool(p.yield_line),
    )


# ---------------------------------------------------------------------------------------------
# Ingredient words

STOP_WORDS = _word_set(
    """
    a about above after again all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers him his how i if in into is it its itself just me more
    most my no nor not now of off on once only or other our out over own same she should so some
    such than that the their them then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your
    per plus approximately divided taste desired needed recipe see following note use used
    using like etc
    """
)

# Words of the ingredient column that say how an ingredient is cut, sized, treated, coloured or
# packed, not what it is, and the corpus's abbreviations. Directions use many of them for other
# things ("until golden", "egg whites", "dry well"), so they would count as ingredients otherwise.
DESCRIPTOR_WORDS = _word_set(
    """
    chopped diced minced sliced grated shredded peeled seeded crushed ground cubed halved
    quartered mashed pitted cored trimmed rinsed drained undrained beaten softened melted sifted
    unsifted packed toasted roasted cooked uncooked thawed frozen fresh freshly dried dry finely
    coarsely coarse thinly roughly lightly well firmly cut into pieces piece inch inches thick
    thin large small medium big jumbo whole hot cold warm warmed room temperature temp lukewarm
    boiling boiled scalded ripe chilled strips cubes slivered julienned shelled hulled stemmed
    skinned deveined boned boneless skinless crumbled separated washed cleaned soaked broken
    flaked pressed squeezed cracked snipped blanched stewed smoked pickled candied canned bottled
    compressed unwrapped removed rolled unbaked baked prepared instant granulated unbleached
    unsalted salted unsweetened sweetened unflavored flavored seasoned plain regular mild strong
    natural lean raw active semi quick hard soft heaping level generous purpose nonfat lowfat
    low fat free reduced lite light heavy extra fine sharp mixed chunky style preferably
    nutritional optional opt pref approx skim split sweet tart grain powdered evaporated
    condensed stalk stalks flake flakes
    white red green black yellow dark golden purple
    italian french chinese mexican english hungarian louisiana oriental american
    med lg sm ea cn pk pkg env teasp tsp tbsp tbs tb ts lb lbs oz ozs qt pt gal kg ml cl dl
    """
)

# Class words: directions say "the vegetables" or "the meat" for whatever the list names
# specifically (carrots, beef), so they are not a reference to a missing ingredient.
GENERIC_WORDS = _word_set(
    """
    vegetable vegetables fruit fruits meat meats herb herbs spice spices seasoning seasonings
    liquid liquids ingredient ingredients
    """
)

_DROP = STOP_WORDS | DESCRIPTOR_WORDS | GENERIC_WORDS | MEASURE_WORDS


_IRREGULAR = {"leaves": "leaf", "loaves": "loaf", "halves": "half", "knives": "knife"}


def singular(word: str) -> str:
    """A simple comparison key, so that eggs/egg, tomatoes/tomato, berries/berry compare equal.

    Rules, no dictionary: a few irregular plurals; -ies -> i; -oes, -ches, -shes, -xes, -zes,
    -sses drop "es"; otherwise a final s goes unless the word ends in ss or us; then a final
    -ie or consonant+y becomes i (berry, berries -> berri; cookie, cookies -> cooki; chilies,
    chili -> chili). Words of three letters or fewer stay. The key is idempotent.
    """
    if len(word) <= 3:
        return word
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "i"
    elif word.endswith(("oes", "ches", "shes", "xes", "zes", "sses")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us")):
        word = word[:-1]
    if word.endswith("ie") and len(word) > 3:
        word = word[:-1]
    elif word.endswith("y") and len(word) > 3 and word[-2] not in "aeiou":
        word = word[:-1] + "i"
    return word


def _alpha_tokens(text: str) -> list[str]:
    # Words by the lecture's tokenizer: numbers, punctuation and one-letter tokens are not words.
    return [t for t in tokenize(text) if t.isalpha() and len(t) > 1]


def _keys(text: str) -> set[str]:
    return {singular(t) for t in _alpha_tokens(text)}


_DROP_KEYS = frozenset(singular(w) for w in _DROP)


@dataclass(frozen=True)
class IngredientLexicon:
    """The INGREDIENT WORDS of the module docstring, held as comparison keys (`singular`)."""

    keys: frozenset[str]
    # Readable spelling of each key (its most common form in ingredient names): what is saved.
    spellings: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    # (recipes with the key in an ingredient name, recipes with it in directions); the
    # reference corpus's counts, kept to explain the choice. Empty after `load`.
    stats: dict[str, tuple[int, int]] = field(default_factory=dict, compare=False, repr=False)

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and singular(word.lower()) in self.keys

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def words(self) -> list[str]:
        return sorted(self.spellings.get(k, k) for k in self.keys)

    @classmethod
    def from_recipes(
        cls,
        texts: Iterable[str],
        *,
        min_share: float = MIN_INGREDIENT_SHARE,
        min_recipes: int = MIN_RECIPES,
    ) -> IngredientLexicon:
        in_names: Counter[str] = Counter()
        in_dirs: Counter[str] = Counter()
        forms: Counter[tuple[str, str]] = Counter()
        for text in texts:
            p = parse_recipe(text)
            keys = set()
            for name in p.names:
                for tok in _alpha_tokens(name):
                    key = singular(tok)
                    if key not in _DROP_KEYS:
                        keys.add(key)
                        forms[key, tok] += 1
            in_names.update(keys)  # recipe counts: a word repeated in one recipe counts once
            in_dirs.update(_keys(p.directions))
        stats = {k: (n, in_dirs[k]) for k, n in in_names.items()}
        keep = frozenset(
            k for k, (n, d) in stats.items() if n >= min_recipes and n / (n + d) >= min_share
        )
        spellings: dict[str, str] = {}
        for (key, tok), _ in forms.most_common():
            if key in keep:
                spellings.setdefault(key, tok)
        return cls(keep, spellings, stats)

    def save(self, path: str | os.PathLike) -> None:
        """A JSON list of words, so that scoring generated text needs no corpus."""
        atomic.write_json(path, self.words)

    @classmethod
    def load(cls, path: str | os.PathLike) -> IngredientLexicon:
        with open(path, encoding="utf-8") as f:
            words = json.load(f)
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ValueError(f"{path}: an ingredient lexicon is a JSON list of words")
        return cls.from_words(words)

    @classmethod
    def from_words(cls, words: Iterable[str]) -> IngredientLexicon:
        """A lexicon of exactly these words (any case, singular or plural)."""
        spellings = {singular(w.lower()): w.lower() for w in words}
        return cls(frozenset(spellings), spellings)


def iter_corpus(path: str | os.PathLike) -> Iterator[str]:
    """The recipes of a corpus file, one at a time (memory is one recipe)."""
    return iter_recipes(path, sniff_encoding(path).name)


def lexicon_from_corpus(
    path: str | os.PathLike,
    *,
    min_share: float = MIN_INGREDIENT_SHARE,
    min_recipes: int = MIN_RECIPES,
) -> IngredientLexicon:
    return IngredientLexicon.from_recipes(
        iter_corpus(path), min_share=min_share, min_recipes=min_recipes
    )


# ---------------------------------------------------------------------------------------------
# Scores


def ingredient_consistency(p: ParsedRecipe, lexicon: IngredientLexicon) -> float | None:
    """Share of the ingredient words in the directions that the recipe's own list names.

    None when the directions name no ingredient word (nothing to be consistent about).
    """
    used = _keys(p.directions) & lexicon.keys
    if not used:
        return None
    return len(used & listed_keys(p.names)) / len(used)


def listed_keys(names: list[str]) -> set[str]:
    """The comparison keys (`singular`) of every word of the ingredient names of a list."""
    return set().union(*(_keys(name) for name in names))


def given_coverage(names: list[str], directions: str, lexicon: IngredientLexicon) -> float | None:
    """Share of the listed ingredients that the directions name (Kiddon et al. 2016).

    An ingredient is named when the directions hold any food word of its name ("chicken" for
    "chicken breasts"). Ingredients whose names hold no food word cannot be looked for and are
    left out; None when none is left.
    """
    used = _keys(directions) & lexicon.keys
    wanted = [k for k in (_keys(name) & lexicon.keys for name in names) if k]
    if not wanted:
        return None
    return sum(bool(k & used) for k in wanted) / len(wanted)


def extra_ingredients(names: list[str], directions: str, lexicon: IngredientLexicon) -> int:
    """How many distinct food words the directions name that no listed ingredient's name has."""
    return len((_keys(directions) & lexicon.keys) - listed_keys(names))


def consistency(text: str, lexicon: IngredientLexicon) -> float | None:
    return ingredient_consistency(parse_recipe(text), lexicon)


def score_recipes(texts: Iterable[str], lexicon: IngredientLexicon) -> dict[str, float | int]:
    """Mean of each structure flag, mean structure score, mean consistency where defined.

    Keys: the five flag names, "structure", "consistency" (NaN when no recipe defines it),
    "consistency_defined" (how many recipes it is the mean over) and "count".
    """
    count = 0
    flags = dict.fromkeys(Structure.FLAGS, 0)
    cons: list[float] = []
    for text in texts:
        p = parse_recipe(text)
        s = structure_of(p)
        count += 1
        for f in Structure.FLAGS:
            flags[f] += getattr(s, f)
        c = ingredient_consistency(p, lexicon)
        if c is not None:
            cons.append(c)
    out: dict[str, float | int] = {f: flags[f] / count if count else 0.0 for f in flags}
    # The score is the mean of the five flags, so its mean is the mean of their means.
    out["structure"] = sum(out[f] for f in Structure.FLAGS) / len(Structure.FLAGS)
    out["consistency"] = sum(cons) / len(cons) if cons else float("nan")
    out["consistency_defined"] = len(cons)
    out["count"] = count
    return out
