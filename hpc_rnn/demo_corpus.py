"""Command: synthetic recipes in the MasterCook export layout, for demos, tests and benchmarks.

    python -m hpc_rnn.demo_corpus --recipes 300 --seed 7 --out demo.txt
    python -m hpc_rnn.demo_corpus --megabytes 1000 --out big.txt      # about 1 GB
    python -m hpc_rnn.demo_corpus --recipes 5 --out -                 # to stdout

The layout is the real corpus's: export line, centred title, `Recipe By`, `Serving Size`,
`Categories` two to a line, the ingredient table (amount in 8 columns, measure in 12), optional
`---SECTION---` rows, directions paragraphs (each one long line), `Yield:`, the spaced-dash end
line and two blank lines. Eleven dish types (cakes, cookies, breads, pies, soups, stews, salads,
main dishes, casseroles, sauces, vegetables) each draw from their own ingredient pool and
directions templates. Those tables are data, in `demo_corpus.json` beside this file; the comment
above `_TABLES` below says what each field means.

Directions name ingredients only through the recipe's own list: a template's `{slot}` is filled
with the lower-cased head of a listed ingredient ("Flour, whole wheat" -> "flour"), and the
templates' own words are kept apart from every word of every ingredient name (a test checks it),
so the corpus is a clean reference for the ingredient-consistency score.

Same seed, same bytes, in any Python process: only `random.Random(str).random()` drives the
choices (string seeding hashes with SHA-512, not with the per-process `hash`). The output for
`--recipes N` is a prefix of the output for any larger N.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import random
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from hpc_rnn.cli import Parser, UserError, command_parser, run_main

MEGABYTE = 1_000_000  # --megabytes counts decimal megabytes, like the rest of the project
_CHUNK = 1 << 20  # bytes buffered between writes

EXPORT_LINE = "* Exported from MasterCook *"
TABLE_HEADER = "  Amount  Measure       Ingredient -- Preparation Method"
TABLE_RULE = "--------  ------------  --------------------------------"
END_LINE = " " * 19 + " ".join(["-"] * 18)
SECTION_INDENT = " " * 24
_COUNT_MEASURES = ("", "large", "medium", "small")  # "2 medium Onions", not "2 medium Onion"


@dataclass(frozen=True)
class CorpusStats:
    recipes: int
    bytes: int


# ---------------------------------------------------------------------------------------------
# The tables, read from demo_corpus.json
#
# `measures`: singular -> plural. `amounts`: named lists of [amount, measure] choices; an amount
# is "2", "1/2" or "1 1/2", an empty measure counts items ("2 Eggs"), and ["", ""] is a "to
# taste" row. `preparations`: named lists of what may follow " -- " in a row.
#
# `ingredients`, in order: `key` (what dishes name it by), `name` (singular, as the row writes
# it), `amounts` (names of amount lists, joined), `tags` (the kinds directions ask for: "{fat}"),
# and optionally `plural` (default: the name), `mass` (the form after volume and weight
# measures; default: the plural), `qualifier` (after a comma: "Flour, whole wheat"), `prep` (a
# preparations list), `prep_chance` (default 0.5), `title` (the title word before a dish noun:
# "Carrot" Cake), `title_dish` (the title word as the dish itself: Glazed "Carrots"; default:
# the title), `category` (one the ingredient lends its recipe). Ingredients of one `mass` form
# exclude each other in a recipe (one flour, whichever).
#
# `pools`: named lists of ingredient keys; "$name" in a list of keys stands for the pool.
# `mention`: the sentence added when no direction named an ingredient. `chill_hours`,
# `short_minutes`: the values of {chill} and {short}.
#
# `dishes`: `category`, `titles` (str.format patterns of {f1}/{F1} and {f2}/{F2}, the featured
# ingredients' title and title_dish, {adj} and {noun}), `variants`, `steps`, and the per-recipe
# values `servings`, `yields` ("" = "N servings"), `temps`, `bake`, `cook`, `pans`; `sections`
# (FROSTING and such: `row`, the `word` directions call it by, the `pool` of its ingredients)
# drawn with `section_chance`; `closers` (a sentence for directions that came out shorter than
# two); `features_first` (featured ingredients head the list). A variant: `base` (groups of
# alternatives, one drawn each; "a+b" is a bundle of both), `features` (the first featured
# ingredient's pool), `second` (the second's; default: the features) drawn with
# `second_chance`, `extras` (fill the list up to the drawn row count), `nouns`, `adjectives`,
# `flags`, `categories`.
#
# A step is a paragraph (0-2), a chance, and choices: the first choice, from a random start,
# whose needs this recipe meets becomes the sentence. In a choice, "{fat}" is one listed
# ingredient tagged fat, "{dry*}" all of them, "{main*+sugar}" one list of both; "{f1}"/"{f2}"
# are the featured ingredients, "{main*}" all featured, "{oveg*}"/"{otopping*}" the vegetables
# and toppings that are not featured, "{sec*}" a section's ingredients; "[sec]" or "[@yeast]"
# only require a kind or a variant flag. Per-recipe values that are not ingredients never
# collide with ingredient names:
_VALUES = ("temp", "bake", "cook", "chill", "short", "pan", "section")
_SLOT = re.compile(r"\{([\w*+]+)\}")

_TABLES = json.loads(resources.files("hpc_rnn").joinpath("demo_corpus.json").read_text("utf-8"))
MEASURES: dict[str, str] = _TABLES["measures"]


class _Ing(NamedTuple):
    key: str
    ident: str  # one ingredient per recipe per ident ("flour" for both flours)
    opts: tuple[tuple[str, str, bool], ...]  # (row without preparation, direction name, prep ok)
    preps: tuple[str, ...]
    prep_p: float
    tags: tuple[str, ...]
    otags: tuple[str, ...]  # tags plus the "other" lists, used when not featured
    tadj: str  # `title`
    tnoun: str  # `title_dish`
    cat: str  # `category`


def _amount_cols(amount: str) -> tuple[str, bool]:
    """The 8 amount columns, and whether the amount is above 1 (plural measure)."""
    if not amount:
        return " " * 8, False
    parts = amount.split(" ")
    frac = parts[-1] if "/" in parts[-1] else ""
    whole = parts[0] if "/" not in parts[0] else ""
    n = int(whole) if whole else 0
    return f"{whole:>4} {frac:<3}", n > 1 or (n == 1 and bool(frac))


def _ingredient(t: dict) -> _Ing:
    form = t["name"]
    plural = t.get("plural", form)
    mass = t.get("mass", plural)
    qual = t.get("qualifier", "")
    suffix = f", {qual}" if qual else ""
    opts = []
    for amount, measure in (c for name in t["amounts"] for c in _TABLES["amounts"][name]):
        cols, many = _amount_cols(amount)
        shown = (plural if many else form) if measure in _COUNT_MEASURES else mass
        if not amount:  # "Salt -- to taste": no amount, no measure
            row = f"{cols}  {'':<12}  {form}{suffix} -- to taste"
            opts.append((row, form.lower(), False))
            continue
        word = MEASURES[measure] if many and measure else measure
        opts.append((f"{cols}  {word:<12}  {shown}{suffix}", shown.lower(), True))
    prep = t.get("prep")
    tags = tuple(t["tags"])
    # "Add the {main*+oveg*}": the other vegetables (not onions and such, cooked first) and
    # toppings leave out the featured ingredients that the sentence names already.
    others = ("oveg",) if "veg" in tags and "aromatic" not in tags else ()
    others += ("otopping",) if "topping" in tags else ()
    title = t.get("title", "")
    return _Ing(
        t["key"],
        mass.lower(),
        tuple(opts),
        tuple(f" -- {p}" for p in _TABLES["preparations"][prep]) if prep else (),
        t.get("prep_chance", 0.5),
        tags,
        tags + others,
        title,
        t.get("title_dish", title),
        t.get("category", ""),
    )


_INGREDIENTS = tuple(map(_ingredient, _TABLES["ingredients"]))
_BY_KEY = {i.key: i for i in _INGREDIENTS}

#: Every direction name an ingredient row can give (lower case, singular and plural forms).
INGREDIENT_NAMES: tuple[str, ...] = tuple(
    sorted({name for ing in _INGREDIENTS for _, name, _ in ing.opts})
)


def ingredient_name(column: str) -> str:
    """The name directions use for an ingredient column: its head, lower case.

    "Flour, whole wheat" -> "flour"; "Carrots -- shredded" -> "carrots".
    """
    return column.split(" -- ")[0].split(",")[0].strip().lower()


class _Template(NamedTuple):
    text: str  # str.format text with positional {} slots
    needs: frozenset[str]  # kinds that must be present (slots and [guards])
    names_ingredient: bool
    # One tuple per slot, of (kind, mode) parts: 0 one ingredient, 1 all of them, 2 a value.
    # "{a*+b}" is one list of all a's and one b: "the flour, salt and sugar", not "and ... and".
    slots: tuple[tuple[tuple[str, int], ...], ...]


def _template(src: str) -> _Template:
    guards: tuple[str, ...] = ()
    if src.startswith("["):
        head, _, src = src[1:].partition("]")
        guards = tuple(head.split(","))
    slots = tuple(
        tuple(
            (k.rstrip("*"), 2 if k in _VALUES else (1 if k.endswith("*") else 0))
            for k in slot.split("+")
        )
        for slot in _SLOT.findall(src)
    )
    needs = frozenset(guards + tuple(k for slot in slots for k, _ in slot))
    named = any(mode != 2 for slot in slots for _, mode in slot)
    return _Template(_SLOT.sub("{}", src), needs, named, slots)


class _Variant(NamedTuple):
    base: tuple[tuple[tuple[_Ing, ...], ...], ...]  # groups; one alternative (a bundle) each
    features: tuple[tuple[tuple[_Ing, ...], float], ...]  # (pool, chance); the first is sure
    extras: tuple[_Ing, ...]
    nouns: tuple[str, ...]
    adjs: tuple[str, ...]
    flags: tuple[str, ...]
    cats: tuple[str, ...]


class _Dish(NamedTuple):
    category: str
    variants: tuple[_Variant, ...]
    titles1: tuple[str, ...]  # title patterns for one featured ingredient
    titles2: tuple[str, ...]  # ... and for two
    servings: tuple[int, ...]
    yields: tuple[str, ...]
    temps: tuple[str, ...]
    bake: tuple[str, ...]
    cook: tuple[str, ...]
    pans: tuple[str, ...]
    sections: tuple[tuple[str, str, tuple[_Ing, ...]], ...]  # (ROW NAME, word in directions, pool)
    section_p: float
    # Per variant: (paragraph, chance, rotations of the choices), less the choices for other
    # variants' [@flag]s.
    steps: tuple[tuple[tuple[int, float, tuple[tuple[_Template, ...], ...]], ...], ...]
    closers: tuple[str, ...]
    features_first: bool


def _pool(keys: list[str]) -> tuple[_Ing, ...]:
    pools = _TABLES["pools"]
    return tuple(
        _BY_KEY[k] for key in keys for k in (pools[key[1:]] if key.startswith("$") else (key,))
    )


def _variant(t: dict) -> _Variant:
    return _Variant(
        tuple(tuple(_pool(alt.split("+")) for alt in group) for group in t["base"]),
        ((_pool(t["features"]), 1.0), (_pool(t.get("second", t["features"])), t["second_chance"])),
        _pool(t["extras"]),
        tuple(t["nouns"]),
        tuple(t["adjectives"]),
        tuple(t.get("flags", ())),
        tuple(t.get("categories", ())),
    )


def _variant_steps(
    steps: list[dict], flags: tuple[str, ...]
) -> tuple[tuple[int, float, tuple[tuple[_Template, ...], ...]], ...]:
    # Done once here, not per recipe: generation speed is mostly the number of templates tried.
    out = []
    for step in steps:
        kept = tuple(
            t
            for t in map(_template, step["choices"])
            if all(k in flags for k in t.needs if k.startswith("@"))
        )
        if kept:
            # every rotation, so that "first that fits from a random start" slices nothing
            rotations = tuple(kept[i:] + kept[:i] for i in range(len(kept)))
            out.append((step["paragraph"], step["chance"], rotations))
    return tuple(out)


def _dish(t: dict) -> _Dish:
    variants = tuple(map(_variant, t["variants"]))
    return _Dish(
        t["category"],
        variants,
        tuple(p for p in t["titles"] if "{f2}" not in p and "{F2}" not in p),
        tuple(t["titles"]),
        tuple(t["servings"]),
        tuple(t["yields"]),
        tuple(t["temps"]),
        tuple(t["bake"]),
        tuple(t["cook"]),
        tuple(t["pans"]),
        tuple((s["row"], s["word"], _pool(s["pool"])) for s in t["sections"]),
        t["section_chance"],
        tuple(_variant_steps(t["steps"], v.flags) for v in variants),
        tuple(t["closers"]),
        t["features_first"],
    )


_DISHES = tuple(map(_dish, _TABLES["dishes"]))
_SHORT = tuple(_TABLES["short_minutes"])
_CHILL = tuple(_TABLES["chill_hours"])
_MENTION = _template(_TABLES["mention"])
_CAT_BREAK = "\n" + " " * 16  # a third category goes on a line of its own, under the first


# ---------------------------------------------------------------------------------------------
# Generation


def _pick(pool: tuple[_Ing, ...], used: list[str], r: Callable[[], float]) -> _Ing | None:
    """A random member of `pool` whose ident is not in `used` yet."""
    n = len(pool)
    start = int(r() * n)
    for i in range(n):
        ing = pool[(start + i) % n]
        if ing.ident not in used:
            return ing
    return None


def _join(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def _fill(t: _Template, kinds: dict[str, list[str]], r: Callable[[], float]) -> str | None:
    """The sentence, or None when this recipe lacks what the template names."""
    if not t.needs <= kinds.keys():
        return None
    if not t.slots:
        return t.text
    vals = []
    seen: list[str] = []  # never the same ingredient twice in one sentence
    for slot in t.slots:
        got: list[str] = []
        for kind, mode in slot:
            names = kinds[kind]
            if mode == 2:
                got.append(names[0])
                continue
            if mode == 1:
                rest = [x for x in names if x not in seen]
            else:
                n = len(names)
                start = int(r() * n) if n > 1 else 0
                rest = [x for x in names[start:] + names[:start] if x not in seen][:1]
            got.extend(rest)
            seen.extend(rest)
        if not got:  # a part of a merged list may be used up already, not the whole list
            return None
        vals.append(_join(got))
    return t.text.format(*vals)


def _paragraphs(paras: list[list[str]], r: Callable[[], float]) -> list[list[str]]:
    """Regroup sentences into 1-3 paragraphs of 2-6 sentences each."""
    paras = [p for p in paras if p]
    if len(paras) > 1 and sum(map(len, paras)) <= 6 and r() < 0.35:
        paras = [[s for p in paras for s in p]]
    while len(paras) > 1:
        short = next((i for i, p in enumerate(paras) if len(p) < 2), None)
        if short is None:
            break
        into = short - 1 if short > 0 else 1
        lo, hi = min(short, into), max(short, into)
        paras[lo : hi + 1] = [paras[lo] + paras[hi]]
    out = []
    for p in paras:
        while len(p) > 6:
            cut = len(p) // 2 if len(p) <= 12 else 6
            out.append(p[:cut])
            p = p[cut:]
        out.append(p)
    if len(out) > 3:  # even thirds: at most 6 each while a recipe has at most 18 sentences
        flat = [s for p in out for s in p]
        k = len(flat)
        out = [flat[i * k // 3 : (i + 1) * k // 3] for i in range(3)]
    return out


def _recipes(seed: int) -> Iterator[str]:
    """The endless stream of recipe blocks for `seed`."""
    # A str seed goes through SHA-512: stable across processes and Python versions, and -1 and
    # 1 differ (an int seed would use its absolute value).
    r = random.Random(f"hpc_rnn.demo_corpus:{seed}").random
    dishes = _DISHES
    while True:
        d = dishes[int(r() * len(dishes))]
        vi = int(r() * len(d.variants))
        v = d.variants[vi]
        used: list[str] = []
        feats: list[_Ing] = []
        for pool, p in v.features:
            if feats and r() >= p:
                continue
            ing = _pick(pool, used, r)
            if ing is not None:
                feats.append(ing)
                used.append(ing.ident)
        base: list[_Ing] = []
        for group in v.base:
            for ing in group[int(r() * len(group))]:
                if ing.ident not in used:
                    base.append(ing)
                    used.append(ing.ident)
        section = None
        sec_items: list[_Ing] = []
        if d.sections and r() < d.section_p:
            section = d.sections[int(r() * len(d.sections))]
            for _ in range(2 + int(r() * 2)):
                ing = _pick(section[2], used, r)
                if ing is not None:
                    sec_items.append(ing)
                    used.append(ing.ident)
            if len(sec_items) < 2:
                section, sec_items = None, []
        n_rows = min(max(4 + int(r() * 9), len(base) + len(feats)), 12 - len(sec_items))
        extras: list[_Ing] = []
        for _ in range(n_rows - len(base) - len(feats)):
            ing = _pick(v.extras, used, r)
            if ing is not None:
                extras.append(ing)
                used.append(ing.ident)
        order = feats[:1] + base + feats[1:] if d.features_first else base + feats
        order += extras

        # Rows, and the names the directions may use, by kind.
        rows: list[str] = []
        kinds: dict[str, list[str]] = {}
        main: list[str] = []
        for ing in order:
            row, name, prep_ok = ing.opts[int(r() * len(ing.opts))]
            if prep_ok and ing.preps and r() < ing.prep_p:
                row += ing.preps[int(r() * len(ing.preps))]
            rows.append(row)
            if ing in feats:
                main.append(name)
                tags = ing.tags
            else:
                tags = ing.otags
            for tag in tags:
                got = kinds.get(tag)
                if got is None:
                    kinds[tag] = [name]
                else:
                    got.append(name)
        kinds["main"] = main
        kinds["f1"] = main[:1]
        if len(main) > 1:
            kinds["f2"] = main[1:2]
        n_main = len(order)
        if section is not None:
            sec = []
            for ing in sec_items:
                row, name, prep_ok = ing.opts[int(r() * len(ing.opts))]
                if prep_ok and ing.preps and r() < ing.prep_p:
                    row += ing.preps[int(r() * len(ing.preps))]
                rows.append(row)
                sec.append(name)
            kinds["sec"] = sec
            if section[1]:
                kinds["section"] = [section[1]]
            # the row sits before the section's own ingredients
            rows.insert(n_main, f"{SECTION_INDENT}---{section[0]}---")
        for flag in v.flags:
            kinds[flag] = [""]
        kinds["temp"] = [d.temps[int(r() * len(d.temps))]]
        kinds["bake"] = [d.bake[int(r() * len(d.bake))]]
        kinds["cook"] = [d.cook[int(r() * len(d.cook))]]
        pan = d.pans[int(r() * len(d.pans))]
        if pan:
            kinds["pan"] = [pan]
        kinds["chill"] = [_CHILL[int(r() * len(_CHILL))]]
        kinds["short"] = [_SHORT[int(r() * len(_SHORT))]]

        # Directions
        paras: list[list[str]] = [[], [], []]
        named = False
        have = kinds.keys()
        for para, p, rotations in d.steps[vi]:
            if p < 1 and r() >= p:
                continue
            n = len(rotations)
            for t in rotations[int(r() * n)] if n > 1 else rotations[0]:
                if t.needs <= have:
                    s = _fill(t, kinds, r) if t.slots else t.text
                    if s is not None:
                        paras[para].append(s)
                        named = named or t.names_ingredient
                        break
        if not named:  # every recipe's directions name at least one of its ingredients
            paras[1].insert(0, _fill(_MENTION, kinds, r) or "")
        if sum(map(len, paras)) < 2:
            paras[2].append(d.closers[int(r() * len(d.closers))])
        blocks = _paragraphs(paras, r)
        sep = "\n\n" if r() < 0.65 else "\n"  # the real corpus has both
        directions = sep.join(" ".join(p) for p in blocks)

        # Title, categories, servings, yield
        f1 = feats[0]
        f2 = feats[1] if len(feats) > 1 and feats[1].tadj != f1.tadj else None
        pats = d.titles2 if f2 else d.titles1
        title = pats[int(r() * len(pats))].format(
            f1=f1.tadj,
            F1=f1.tnoun,
            f2=f2.tadj if f2 else "",
            F2=f2.tnoun if f2 else "",
            adj=v.adjs[int(r() * len(v.adjs))],
            noun=v.nouns[int(r() * len(v.nouns))],
        )
        cats = [d.category]
        if f1.cat and r() < 0.6:
            cats.append(f1.cat)
        if v.cats and r() < 0.6:
            cats.append(v.cats[int(r() * len(v.cats))])
        cats = list(dict.fromkeys(cats))
        cat_lines = [
            cats[i].ljust(33) + cats[i + 1] if i + 1 < len(cats) else cats[i]
            for i in range(0, len(cats), 2)
        ]
        serving = d.servings[int(r() * len(d.servings))]
        y = d.yields[int(r() * len(d.yields))]
        if not y:
            y = f"{serving} servings"
        else:
            serving = 1  # the real corpus's rule: N only from "Yield: N servings"

        yield (
            f"{EXPORT_LINE}\n\n{' ' * ((74 - len(title)) // 2)}{title}\n\n"
            f"Recipe By     :\nServing Size  : {serving:<4} Preparation Time :0:00\n"
            f"Categories    : {_CAT_BREAK.join(cat_lines)}\n\n"
            f"{TABLE_HEADER}\n{TABLE_RULE}\n" + "\n".join(rows) + "\n\n"
            f"{directions}\n\nYield: {y}\n\n{END_LINE}\n\n\n"
        )


def generate_recipes(n: int, seed: int) -> Iterator[str]:
    """Yield `n` recipe blocks (each ends with the end line and two blank lines)."""
    if n < 0:
        raise ValueError(f"the number of recipes must be 0 or more, got {n}")
    return islice(_recipes(seed), n)


# ---------------------------------------------------------------------------------------------
# Writing


def _target(recipes: int | None, megabytes: float | None) -> tuple[int | None, int | None]:
    """(recipe count, byte target); exactly one is set. Raises ValueError on bad values."""
    if (recipes is None) == (megabytes is None):
        raise ValueError("give exactly one of recipes and megabytes")
    if recipes is not None:
        if isinstance(recipes, bool) or not isinstance(recipes, int) or recipes <= 0:
            raise ValueError(f"the number of recipes must be a positive integer, got {recipes}")
        return recipes, None
    assert megabytes is not None
    if not math.isfinite(megabytes) or megabytes <= 0:
        raise ValueError(f"megabytes must be a positive number, got {megabytes}")
    return None, max(1, math.ceil(megabytes * MEGABYTE))


def _stream(
    write: Callable[[bytes], object], recipes: int | None, target: int | None, seed: int
) -> CorpusStats:
    """Write recipes until `recipes` are out or `target` bytes are reached; memory is _CHUNK."""
    total = pending = 0
    buf: list[str] = []
    for count, text in enumerate(_recipes(seed), 1):
        buf.append(text)
        n = len(text)  # ASCII: characters are bytes
        pending += n
        total += n
        done = count == recipes if recipes is not None else total >= (target or 0)
        if pending >= _CHUNK or done:
            write("".join(buf).encode("ascii"))
            buf.clear()
            pending = 0
        if done:
            return CorpusStats(recipes=count, bytes=total)
    raise AssertionError("unreachable: the recipe stream is endless")


def write_corpus(
    path: str | os.PathLike,
    *,
    recipes: int | None = None,
    megabytes: float | None = None,
    seed: int = 0,
) -> CorpusStats:
    """Write `recipes` recipes, or the fewest that reach `megabytes` (10**6 bytes each), to `path`.

    The file appears whole or not at all: it is written to `path.tmp-<pid>`, fsynced and renamed.
    Raises ValueError for bad numbers and OSError when `path` cannot be written.
    """
    count, target = _target(recipes, megabytes)
    path = Path(path)
    if path.is_dir():  # found now, not after writing a gigabyte next to it
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            stats = _stream(f.write, count, target, seed)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        # The rename is only durable once the directory entry is on disk too.
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return stats  # e.g. a platform that cannot open directories
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
    return stats


def write_stream(
    out: TextIO, *, recipes: int | None = None, megabytes: float | None = None, seed: int = 0
) -> CorpusStats:
    """Like `write_corpus`, to an open text stream that has a binary `buffer` (stdout)."""
    count, target = _target(recipes, megabytes)
    out.flush()
    stats = _stream(out.buffer.write, count, target, seed)
    out.buffer.flush()
    return stats


# ---------------------------------------------------------------------------------------------
# Command


def _positive(kind: type) -> Callable[[str], Any]:
    """An argparse type: a finite number of `kind` (int or float) above zero."""
    what = "a whole number" if kind is int else "a number"

    def parse(s: str) -> Any:
        try:
            x = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}") from None
        if not math.isfinite(x) or x <= 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, got {s}")
        return x

    return parse


def build_parser() -> Parser:
    parser = command_parser("hpc_rnn.demo_corpus", __doc__)
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--recipes", type=_positive(int), metavar="N", help="number of recipes")
    size.add_argument(
        "--megabytes",
        type=_positive(float),
        metavar="M",
        help="write recipes until the file reaches M megabytes (10**6 bytes)",
    )
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default 0)")
    parser.add_argument(
        "--out", default="-", metavar="FILE", help="output file, - for stdout (default: -)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        args = build_parser().parse_args(argv)
        if args.out == "-":
            try:
                write_stream(
                    sys.stdout, recipes=args.recipes, megabytes=args.megabytes, seed=args.seed
                )
            except BrokenPipeError:
                # The reader left (`| head`): not an error. Point stdout at devnull so that
                # the interpreter's final flush does not raise again.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        try:
            stats = write_corpus(
                args.out, recipes=args.recipes, megabytes=args.megabytes, seed=args.seed
            )
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise UserError(f"cannot write {args.out}: {reason}") from None
        print(
            f"wrote {stats.recipes} recipes, {stats.bytes} bytes to {args.out}",
            file=sys.stderr,
            flush=True,
        )
        return 0

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
