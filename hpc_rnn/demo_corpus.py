"""Command: synthetic recipes in the MasterCook export layout, for demos, tests and benchmarks.

    python -m hpc_rnn.demo_corpus --recipes 300 --seed 7 --out demo.txt
    python -m hpc_rnn.demo_corpus --megabytes 1000 --out big.txt      # about 1 GB
    python -m hpc_rnn.demo_corpus --recipes 5 --out -                 # to stdout

The layout is the real corpus's: export line, centred title, `Recipe By`, `Serving Size`,
`Categories` two to a line, the ingredient table (amount in 8 columns, measure in 12), optional
`---SECTION---` rows, directions paragraphs (each one long line), `Yield:`, the spaced-dash end
line and two blank lines. Eleven dish types (cakes, cookies, breads, pies, soups, stews, salads,
main dishes, casseroles, sauces, vegetables) each draw from their own ingredient pool and
directions templates.

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
import math
import os
import random
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import NamedTuple, TextIO

from hpc_rnn.cli import Parser, UserError, run_main

MEGABYTE = 1_000_000  # --megabytes counts decimal megabytes, like the rest of the project
_CHUNK = 1 << 20  # bytes buffered between writes

EXPORT_LINE = "* Exported from MasterCook *"
TABLE_HEADER = "  Amount  Measure       Ingredient -- Preparation Method"
TABLE_RULE = "--------  ------------  --------------------------------"
END_LINE = " " * 19 + " ".join(["-"] * 18)
SECTION_INDENT = " " * 24
MEASURES = {
    "cup": "cups",
    "teaspoon": "teaspoons",
    "tablespoon": "tablespoons",
    "pound": "pounds",
    "ounce": "ounces",
    "can": "cans",
    "package": "packages",
    "pinch": "pinches",
    "dash": "dashes",
    "clove": "cloves",
    "quart": "quarts",
    "pint": "pints",
    "slice": "slices",
    "large": "large",
    "medium": "medium",
    "small": "small",
}
_COUNT_MEASURES = ("", "large", "medium", "small")  # "2 medium Onions", not "2 medium Onion"


@dataclass(frozen=True)
class CorpusStats:
    recipes: int
    bytes: int


# ---------------------------------------------------------------------------------------------
# Vocabulary: amounts, preparations, ingredients

# "amount:measure" choices; an empty amount is a "to taste" row.
_PROFILES = {
    "C": "1/4:cup 1/3:cup 1/2:cup 2/3:cup 3/4:cup 1:cup 1_1/2:cup 2:cup",
    "CB": "1:cup 1_1/2:cup 2:cup 2_1/2:cup 3:cup 4:cup",
    "CS": "1/4:cup 1/3:cup 1/2:cup 3/4:cup 1:cup 2:tablespoon 3:tablespoon",
    "T": "1:tablespoon 2:tablespoon 3:tablespoon 4:tablespoon 1:teaspoon 2:teaspoon",
    "TS": "1/4:teaspoon 1/2:teaspoon 3/4:teaspoon 1:teaspoon 1_1/2:teaspoon 2:teaspoon "
    "1:tablespoon",
    "SP": "1/4:teaspoon 1/2:teaspoon 1:teaspoon 1:pinch 1:dash",
    "SEAS": "1/4:teaspoon 1/2:teaspoon 1:teaspoon 1:dash :",
    "DASH": "1:dash 2:dash 3:dash 1/4:teaspoon",
    "LQ": "1/2:cup 1:cup 1_1/2:cup 2:cup 3:cup 4:cup 1:quart 2:quart 1:pint",
    "LB": "1/2:pound 1:pound 1_1/2:pound 2:pound 3:pound 8:ounce 12:ounce 16:ounce",
    "OZ": "4:ounce 6:ounce 8:ounce 12:ounce 16:ounce 1:package",
    "CAN": "1:can 2:can",
    "PKG": "1:package 2:package",
    "PT": "1:pint 2:pint",
    "N": "2: 3: 4: 6:",
    "N1": "1: 2: 3:",
    "EGG": "1: 2: 3: 4:",
    "ONE": "1:",
    "SZ": "1:large 2:large 1:medium 2:medium 3:medium 1:small 2:small 4:small",
    "CLV": "1:clove 2:clove 3:clove 4:clove",
    "SL": "2:slice 4:slice 6:slice 8:slice",
}

_PREPS = {
    "sift": "sifted",
    "pack": "packed",
    "butter": "melted|softened|cold",
    "melt": "melted",
    "soft": "softened|at room temperature",
    "beat": "beaten|lightly beaten",
    "hard": "hard cooked and chopped|hard cooked and sliced",
    "chop": "chopped|finely chopped",
    "onion": "chopped|diced|finely chopped|sliced|minced",
    "garlic": "minced|crushed|pressed",
    "slice": "sliced|thinly sliced",
    "dice": "diced|cubed",
    "cube": "cubed|cut in 1 inch cubes|trimmed",
    "strip": "cut in strips|cut in serving pieces",
    "cutup": "cut up",
    "shred": "shredded|grated",
    "grate": "grated|freshly grated",
    "crumble": "crumbled",
    "nut": "chopped|coarsely chopped|toasted",
    "almond": "sliced|slivered|toasted",
    "fruit": "peeled and sliced|peeled and chopped|cored and diced",
    "drain": "drained|rinsed and drained",
    "undrain": "undrained|chopped",
    "cook": "cooked and diced|cooked and cubed",
    "peel": "peeled and cubed|peeled and diced|peeled and sliced",
    "carrot": "shredded|sliced|diced|peeled and sliced",
    "tomato": "chopped|seeded and chopped|diced",
    "seed": "seeded and chopped|seeded and diced",
    "trim": "trimmed|cut in 1 inch pieces",
    "floret": "cut in florets|chopped",
    "torn": "torn in pieces|shredded",
    "thaw": "thawed|thawed and drained",
    "pit": "pitted|pitted and halved",
    "hull": "hulled and sliced|sliced",
    "mash": "mashed",
    "rinse": "rinsed|sorted and rinsed",
    "shrimp": "peeled and deveined",
    "flake": "flaked",
    "zuc": "sliced|shredded|diced",
    "cuc": "peeled and sliced|sliced|diced",
    "peach": "peeled and sliced|drained",
    "avocado": "peeled and diced",
    "chocolate": "melted|chopped",
    "whip": "whipped",
    "chops": "trimmed",
}


class _Ing(NamedTuple):
    key: str
    ident: str  # one ingredient per recipe per ident ("flour" for both flours)
    opts: tuple[tuple[str, str, bool], ...]  # (row without preparation, direction name, prep ok)
    preps: tuple[str, ...]
    prep_p: float
    tags: tuple[str, ...]
    otags: tuple[str, ...]  # tags plus the "other" lists, used when not featured
    tadj: str  # title word before a dish noun: "Carrot" Cake
    tnoun: str  # title word as the dish itself: Glazed "Carrots"
    cat: str  # a category the ingredient lends its recipe


def _amount_cols(amount: str) -> tuple[str, bool]:
    """The 8 amount columns, and whether the amount is above 1 (plural measure)."""
    if not amount:
        return " " * 8, False
    parts = amount.split("_")
    frac = parts[-1] if "/" in parts[-1] else ""
    whole = parts[0] if "/" not in parts[0] else ""
    n = int(whole) if whole else 0
    return f"{whole:>4} {frac:<3}", n > 1 or (n == 1 and bool(frac))


def _ing(
    key: str,
    form: str,
    profile: str,
    tags: str,
    preps: str = "",
    *,
    plural: str = "",
    mass: str = "",
    qual: str = "",
    title: str = "",
    cat: str = "",
    prep_p: float = 0.5,
) -> _Ing:
    """An ingredient: singular `form`, its `plural` (default: same), the `mass` form written
    after volume and weight measures (default: the plural), a `qual`ifier after a comma."""
    plural = plural or form
    mass = mass or plural
    suffix = f", {qual}" if qual else ""
    opts = []
    for choice in " ".join(_PROFILES[p] for p in profile.split("+")).split():
        amount, measure = choice.split(":")
        cols, many = _amount_cols(amount)
        shown = (plural if many else form) if measure in _COUNT_MEASURES else mass
        if not amount:  # "Salt -- to taste": no amount, no measure
            row = f"{cols}  {'':<12}  {form}{suffix} -- to taste"
            opts.append((row, form.lower(), False))
            continue
        word = MEASURES[measure] if many and measure else measure
        opts.append((f"{cols}  {word:<12}  {shown}{suffix}", shown.lower(), True))
    prep_list = tuple(f" -- {p}" for p in _PREPS[preps].split("|")) if preps else ()
    tadj, _, tnoun = title.partition("/")
    tag_list = tuple(tags.split())
    # "Add the {main*+oveg*}": the other vegetables (not onions and such, cooked first) and
    # toppings leave out the featured ingredients that the sentence names already.
    others = ("oveg",) if "veg" in tag_list and "aromatic" not in tag_list else ()
    others += ("otopping",) if "topping" in tag_list else ()
    return _Ing(
        key,
        mass.lower(),
        tuple(opts),
        prep_list,
        prep_p,
        tag_list,
        tag_list + others,
        tadj,
        tnoun or tadj,
        cat,
    )


# fmt: off
_INGREDIENTS = (
    # Baking
    _ing("flour", "Flour", "CB", "flour dry", "sift", prep_p=0.2),
    _ing("wwflour", "Flour", "CB", "flour dry", qual="whole wheat"),
    _ing("breadflour", "Bread flour", "CB", "flour dry"),
    _ing("sugar", "Sugar", "C", "sugar sweet"),
    _ing("brownsugar", "Brown sugar", "C", "sugar sweet", "pack", title="Brown Sugar"),
    _ing("powdered", "Powdered sugar", "C", "sugar sweet", "sift", prep_p=0.3),
    _ing("honey", "Honey", "CS", "sweet sauce wet", title="Honey"),
    _ing("molasses", "Molasses", "CS", "sweet wet", title="Molasses"),
    _ing("maple", "Maple syrup", "CS", "sweet sauce wet", title="Maple"),
    _ing("soda", "Baking soda", "TS", "leaven dry"),
    _ing("bpowder", "Baking powder", "TS", "leaven dry"),
    _ing("yeast", "Yeast", "PKG+TS", "yeast"),
    _ing("salt", "Salt", "SEAS", "dry season"),
    _ing("pepper", "Pepper", "SEAS", "season"),
    _ing("vanilla", "Vanilla", "TS", "flavor"),
    _ing("almondext", "Almond extract", "TS", "flavor"),
    _ing("cocoa", "Cocoa", "CS", "dry flavor", title="Cocoa", cat="Chocolate"),
    _ing("chocolate", "Chocolate", "OZ", "flavor", "chocolate", qual="semisweet",
         title="Chocolate", cat="Chocolate"),
    _ing("chips", "Chocolate chips", "C", "topping", title="Chocolate Chip", cat="Chocolate"),
    _ing("oats", "Rolled oats", "C", "dry topping", title="Oatmeal/Oats", cat="Grains"),
    _ing("cornmeal", "Cornmeal", "C", "dry", title="Cornmeal", cat="Grains"),
    _ing("shortening", "Shortening", "CS", "fat"),
    _ing("margarine", "Margarine", "CS", "fat wet", "melt"),
    _ing("cornstarch", "Cornstarch", "T", "thick"),
    _ing("coconut", "Coconut", "C", "topping", qual="flaked", title="Coconut"),
    _ing("raisins", "Raisins", "C", "fruit", title="Raisin/Raisins", cat="Fruits"),
    _ing("poppy", "Poppy seeds", "T", "topping", title="Poppy Seed"),
    _ing("sesame", "Sesame seeds", "T", "topping garnish", title="Sesame"),
    _ing("graham", "Graham cracker crumbs", "CB", "crumbs"),
    _ing("crumbs", "Bread crumbs", "CS", "crumbs topping"),
    _ing("crackers", "Cracker crumbs", "CS", "crumbs topping"),
    _ing("pieshell", "Pastry shell", "ONE", "crust", qual="unbaked"),
    # Dairy, eggs, fats
    _ing("butter", "Butter", "CS+T", "fat wet", "butter"),
    _ing("eggs", "Egg", "EGG", "egg", "beat", plural="Eggs", prep_p=0.3),
    _ing("hardeggs", "Egg", "EGG", "topping", "hard", plural="Eggs", prep_p=1.0, title="Egg"),
    _ing("yolks", "Egg yolk", "EGG", "egg", "beat", plural="Egg yolks", prep_p=0.3),
    _ing("milk", "Milk", "C", "dairy liquid wet"),
    _ing("buttermilk", "Buttermilk", "C", "dairy liquid wet", title="Buttermilk"),
    _ing("sourcream", "Sour cream", "C", "dairy wet", title="Sour Cream"),
    _ing("cream", "Heavy cream", "C", "dairy liquid", "whip", prep_p=0.2),
    _ing("creamcheese", "Cream cheese", "OZ", "dairy", "soft", title="Cream Cheese"),
    _ing("yogurt", "Yogurt", "C", "dairy wet", qual="plain"),
    _ing("evap", "Evaporated milk", "CAN+C", "dairy liquid"),
    _ing("cheddar", "Cheddar cheese", "C", "cheese topping", "shred",
         title="Cheddar/Cheese", cat="Cheese"),
    _ing("parmesan", "Parmesan cheese", "CS", "cheese topping", "grate", title="Parmesan"),
    _ing("mozzarella", "Mozzarella cheese", "C", "cheese topping", "shred", title="Mozzarella"),
    _ing("swiss", "Swiss cheese", "C", "cheese topping", "shred", title="Swiss"),
    _ing("feta", "Feta cheese", "CS", "cheese topping", "crumble", title="Feta"),
    _ing("cottage", "Cottage cheese", "C", "dairy"),
    _ing("oil", "Oil", "CS+T", "fat oil wet"),
    _ing("oliveoil", "Olive oil", "T+CS", "fat oil dressing"),
    # Meat and fish: raw cuts are seared, ground meat is browned and drained, cooked is stirred in
    _ing("breasts", "Chicken breast", "N+LB", "meat raw", "strip", plural="Chicken breasts",
         qual="boneless", title="Chicken/Chicken Breasts", cat="Poultry"),
    _ing("chicken", "Chicken", "ONE", "meat raw", "cutup", prep_p=1.0, title="Chicken",
         cat="Poultry"),
    _ing("cookedchicken", "Chicken", "C", "meat cooked", "cook", prep_p=1.0, title="Chicken",
         cat="Poultry"),
    _ing("thighs", "Chicken thigh", "N", "meat raw", plural="Chicken thighs", qual="skinless",
         title="Chicken/Chicken Thighs", cat="Poultry"),
    _ing("turkey", "Turkey", "C", "meat cooked", "cook", prep_p=1.0, title="Turkey",
         cat="Poultry"),
    _ing("groundbeef", "Ground beef", "LB", "meat brown", title="Beef/Hamburger", cat="Beef"),
    _ing("chuck", "Beef chuck", "LB", "meat raw", "cube", prep_p=0.7, title="Beef/Pot Roast",
         cat="Beef"),
    _ing("steak", "Sirloin steak", "LB", "meat raw", "strip", title="Steak", cat="Beef"),
    _ing("porkchops", "Pork chop", "N", "meat raw", "chops", plural="Pork chops",
         title="Pork/Pork Chops", cat="Pork"),
    _ing("tenderloin", "Pork tenderloin", "LB", "meat raw", title="Pork/Pork Tenderloin",
         cat="Pork"),
    _ing("ham", "Ham", "C+LB", "meat cooked", "dice", title="Ham", cat="Pork"),
    _ing("bacon", "Bacon", "SL", "topping", "dice", title="Bacon", cat="Pork"),
    _ing("sausage", "Sausage", "LB", "meat brown", qual="Italian", title="Sausage", cat="Pork"),
    _ing("shrimp", "Shrimp", "LB", "meat raw", "shrimp", title="Shrimp", cat="Seafood"),
    _ing("salmon", "Salmon fillet", "N+LB", "meat raw", plural="Salmon fillets",
         title="Salmon", cat="Seafood"),
    _ing("tuna", "Tuna", "CAN", "meat cooked", "drain", title="Tuna", cat="Seafood"),
    _ing("crab", "Crabmeat", "OZ+C", "meat cooked", "flake", title="Crab", cat="Seafood"),
    _ing("groundturkey", "Ground turkey", "LB", "meat brown", title="Turkey", cat="Poultry"),
    # Vegetables
    _ing("onion", "Onion", "SZ+C", "veg aromatic", "onion", plural="Onions", mass="Onion",
         prep_p=0.8, title="Onion/Onions"),
    _ing("greenonions", "Green onion", "N+CS", "aromatic garnish", "slice",
         plural="Green onions"),
    _ing("redonion", "Red onion", "SZ", "veg aromatic", "onion", plural="Red onions",
         mass="Red onion", prep_p=0.8),
    _ing("garlic", "Garlic", "CLV", "aromatic", "garlic", prep_p=0.8, title="Garlic"),
    _ing("celery", "Celery", "C", "veg aromatic", "chop", prep_p=0.8, title="Celery"),
    _ing("carrots", "Carrot", "SZ+C", "veg", "carrot", plural="Carrots", prep_p=0.8,
         title="Carrot/Carrots", cat="Vegetables"),
    _ing("potatoes", "Potato", "SZ+LB", "veg starch tuber", "peel", plural="Potatoes",
         title="Potato/Potatoes", cat="Vegetables"),
    _ing("sweetpot", "Sweet potato", "SZ+LB", "veg", "peel", plural="Sweet potatoes",
         title="Sweet Potato/Sweet Potatoes", cat="Vegetables"),
    _ing("tomatoes", "Tomato", "SZ+C", "veg", "tomato", plural="Tomatoes",
         title="Tomato/Tomatoes", cat="Vegetables"),
    _ing("cantomatoes", "Tomatoes", "CAN", "simmer", "undrain", qual="canned", title="Tomato"),
    _ing("greenbeans", "Green beans", "LB+C", "veg", "trim", title="Green Bean/Green Beans",
         cat="Vegetables"),
    _ing("broccoli", "Broccoli", "C+LB", "veg", "floret", title="Broccoli", cat="Vegetables"),
    _ing("cauliflower", "Cauliflower", "C+LB", "veg", "floret", title="Cauliflower",
         cat="Vegetables"),
    _ing("mushrooms", "Mushrooms", "C+OZ+LB", "veg", "slice", title="Mushroom/Mushrooms"),
    _ing("zucchini", "Zucchini", "SZ+C", "veg", "zuc", title="Zucchini", cat="Vegetables"),
    _ing("spinach", "Spinach", "PKG+C", "veg", "thaw", title="Spinach", cat="Vegetables"),
    _ing("corn", "Corn", "C+CAN", "veg", "drain", prep_p=0.3, title="Corn"),
    _ing("peas", "Peas", "C+PKG", "veg", "thaw", title="Pea/Peas"),
    _ing("cabbage", "Cabbage", "C+LB", "veg", "shred", title="Cabbage"),
    _ing("greenpepper", "Green pepper", "SZ", "veg aromatic", "seed", plural="Green peppers",
         mass="Green pepper", title="Green Pepper/Green Peppers"),
    _ing("redpepper", "Red bell pepper", "SZ", "veg", "seed", plural="Red bell peppers",
         mass="Red bell pepper", title="Red Pepper/Red Peppers"),
    _ing("cucumber", "Cucumber", "SZ", "veg", "cuc", plural="Cucumbers",
         title="Cucumber/Cucumbers"),
    _ing("lettuce", "Romaine lettuce", "C", "veg", "torn", title="Romaine"),
    _ing("asparagus", "Asparagus", "LB", "veg", "trim", title="Asparagus", cat="Vegetables"),
    _ing("eggplant", "Eggplant", "SZ", "veg", "peel", plural="Eggplants", title="Eggplant",
         cat="Vegetables"),
    _ing("squash", "Butternut squash", "LB+C", "veg", "peel", title="Squash/Butternut Squash"),
    _ing("jalapeno", "Jalapeno pepper", "N1", "aromatic", "seed", plural="Jalapeno peppers"),
    _ing("avocado", "Avocado", "N1", "veg", "avocado", plural="Avocados", prep_p=0.8,
         title="Avocado"),
    _ing("sprouts", "Brussels sprouts", "LB", "veg", "trim", title="Brussels Sprouts",
         cat="Vegetables"),
    # Beans, grains, canned goods, liquids
    _ing("kidney", "Kidney beans", "CAN", "veg", "drain", title="Bean/Beans"),
    _ing("blackbeans", "Black beans", "CAN", "veg", "drain", title="Black Bean/Black Beans"),
    _ing("whitebeans", "White beans", "CAN", "veg", "drain", title="White Bean/White Beans"),
    _ing("lentils", "Lentils", "C", "veg", "rinse", title="Lentil/Lentils"),
    _ing("splitpeas", "Split peas", "C", "veg", "rinse", title="Split Pea"),
    _ing("tomsauce", "Tomato sauce", "CAN+C", "simmer soup"),
    _ing("tompaste", "Tomato paste", "CAN+T", "thick"),
    _ing("mushsoup", "Mushroom soup", "CAN", "soup", qual="condensed"),
    _ing("chicksoup", "Chicken soup", "CAN", "soup", qual="condensed"),
    _ing("chickbroth", "Chicken broth", "LQ+CAN", "liquid simmer"),
    _ing("beefbroth", "Beef broth", "LQ+CAN", "liquid simmer"),
    _ing("water", "Water", "LQ", "liquid simmer"),
    _ing("rice", "Rice", "C", "pasta starch", qual="long grain", title="Rice"),
    _ing("noodles", "Egg noodles", "OZ+C", "pasta starch", title="Noodle/Noodles"),
    _ing("macaroni", "Macaroni", "C+OZ", "pasta starch", qual="elbow", title="Macaroni"),
    _ing("spaghetti", "Spaghetti", "OZ+LB", "pasta starch", title="Spaghetti"),
    _ing("barley", "Barley", "CS", "veg", qual="pearl", title="Barley"),
    _ing("bbq", "Barbecue sauce", "C", "sauce", title="Barbecue"),
    _ing("horseradish", "Horseradish", "T", "sauce", title="Horseradish"),
    # Fruit and nuts
    _ing("apples", "Apple", "SZ+C", "fruit", "fruit", plural="Apples", prep_p=0.8,
         title="Apple/Apples", cat="Fruits"),
    _ing("bananas", "Banana", "SZ", "fruit", "mash", plural="Bananas", prep_p=0.8,
         title="Banana/Bananas", cat="Fruits"),
    _ing("blueberries", "Blueberries", "C+PT", "fruit", title="Blueberry/Blueberries",
         cat="Fruits"),
    _ing("strawberries", "Strawberries", "C+PT", "fruit", "hull",
         title="Strawberry/Strawberries", cat="Fruits"),
    _ing("cranberries", "Cranberries", "C", "fruit", "chop", title="Cranberry/Cranberries",
         cat="Fruits"),
    _ing("cherries", "Cherries", "C+CAN", "fruit", "pit", title="Cherry/Cherries", cat="Fruits"),
    _ing("peaches", "Peaches", "C+CAN", "fruit", "peach", title="Peach/Peaches", cat="Fruits"),
    _ing("pineapple", "Pineapple", "CAN+C", "fruit", "drain", qual="crushed", title="Pineapple",
         cat="Fruits"),
    _ing("pumpkin", "Pumpkin", "C+CAN", "wet", title="Pumpkin"),
    _ing("lemonjuice", "Lemon juice", "T+CS", "acid sauce dressing", title="Lemon"),
    _ing("lemonpeel", "Lemon peel", "TS", "flavor", "grate", prep_p=0.8, title="Lemon"),
    _ing("orangejuice", "Orange juice", "CS+C", "liquid sauce wet", title="Orange"),
    _ing("mandarin", "Mandarin oranges", "CAN", "fruit", "drain", title="Mandarin",
         cat="Fruits"),
    _ing("limejuice", "Lime juice", "T", "acid sauce", title="Lime"),
    _ing("dates", "Dates", "C", "fruit", "chop", title="Date/Dates", cat="Fruits"),
    _ing("applesauce", "Applesauce", "C", "wet", title="Applesauce"),
    _ing("walnuts", "Walnuts", "C", "nut topping", "nut", title="Walnut/Walnuts", cat="Nuts"),
    _ing("pecans", "Pecans", "C", "nut topping", "nut", title="Pecan/Pecans", cat="Nuts"),
    _ing("almonds", "Almonds", "C", "nut topping", "almond", title="Almond/Almonds", cat="Nuts"),
    _ing("peanuts", "Peanuts", "C", "nut topping", "chop", title="Peanut/Peanuts", cat="Nuts"),
    _ing("pb", "Peanut butter", "C", "wet", title="Peanut Butter"),
    # Spices, herbs, condiments
    _ing("cinnamon", "Cinnamon", "TS", "spice dry", title="Cinnamon"),
    _ing("nutmeg", "Nutmeg", "SP", "spice dry"),
    _ing("ginger", "Ginger", "SP", "spice dry", qual="ground", title="Ginger"),
    _ing("allspice", "Allspice", "SP", "spice dry"),
    _ing("paprika", "Paprika", "SP", "spice", title="Paprika"),
    _ing("chilipowder", "Chili powder", "TS+T", "spice"),
    _ing("cumin", "Cumin", "SP", "spice", qual="ground"),
    _ing("oregano", "Oregano", "SP", "herb", qual="dried"),
    _ing("basil", "Basil", "SP", "herb", qual="dried", title="Basil"),
    _ing("thyme", "Thyme", "SP", "herb", qual="dried", title="Thyme"),
    _ing("rosemary", "Rosemary", "SP", "herb", qual="dried", title="Rosemary"),
    _ing("dill", "Dill", "SP", "herb", qual="dried", title="Dill"),
    _ing("sage", "Sage", "SP", "herb", qual="dried", title="Sage"),
    _ing("italian", "Italian seasoning", "TS", "herb", title="Italian"),
    _ing("parsley", "Parsley", "CS+T", "herb garnish", "chop", prep_p=0.8, title="Parsley"),
    _ing("cilantro", "Cilantro", "CS+T", "herb garnish", "chop", prep_p=0.8, title="Cilantro"),
    _ing("bay", "Bay leaf", "N1", "bay", plural="Bay leaves"),
    _ing("cayenne", "Cayenne pepper", "SP", "spice"),
    _ing("redflakes", "Red pepper flakes", "SP", "spice"),
    _ing("curry", "Curry powder", "TS+T", "spice", title="Curry"),
    _ing("soy", "Soy sauce", "T+CS", "sauce", title="Soy"),
    _ing("worcester", "Worcestershire sauce", "T+TS", "sauce"),
    _ing("mustard", "Mustard", "T+TS", "sauce dressing", title="Mustard"),
    _ing("dijon", "Dijon mustard", "T+TS", "sauce dressing", title="Dijon/Mustard"),
    _ing("mayo", "Mayonnaise", "C+CS", "dressing"),
    _ing("ketchup", "Ketchup", "C+CS", "sauce"),
    _ing("vinegar", "Vinegar", "T+CS", "acid dressing sauce", qual="cider"),
    _ing("balsamic", "Balsamic vinegar", "T", "acid dressing sauce", title="Balsamic"),
    _ing("tabasco", "Tabasco sauce", "DASH", "sauce"),
    _ing("whitewine", "White wine", "CS+C", "liquid sauce", title="Wine"),
    _ing("redwine", "Red wine", "CS+C", "liquid simmer sauce", title="Burgundy"),
)
# fmt: on
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


# ---------------------------------------------------------------------------------------------
# Dish types


class _Template(NamedTuple):
    text: str  # str.format text with positional {} slots
    needs: frozenset[str]  # kinds that must be present (slots and [guards])
    names_ingredient: bool
    # One tuple per slot, of (kind, mode) parts: 0 one ingredient, 1 all of them, 2 a value.
    # "{a*+b}" is one list of all a's and one b: "the flour, salt and sugar", not "and ... and".
    slots: tuple[tuple[tuple[str, int], ...], ...]


# A step is "choice | choice | ...": the first choice, from a random start, whose needs this
# recipe meets becomes the sentence. In a choice, "{fat}" is one listed ingredient tagged fat,
# "{dry*}" all of them, "{main*+sugar}" one list of both; "{f1}"/"{f2}" are the featured
# ingredients, "{oveg*}" the other vegetables; "[sec]" or "[@yeast]" only require a kind or a
# variant flag. Per-recipe values that are not ingredients never collide with ingredient names:
_VALUES = ("temp", "bake", "cook", "chill", "short", "pan", "section")
_SLOT = re.compile(r"\{([\w*+]+)\}")


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
    yields: tuple[str, ...]  # "" = "N servings"
    temps: tuple[str, ...]
    bake: tuple[str, ...]
    cook: tuple[str, ...]
    pans: tuple[str, ...]
    sections: tuple[tuple[str, str, tuple[_Ing, ...]], ...]  # (ROW NAME, word in directions, pool)
    section_p: float
    # Per variant: (paragraph, chance, rotations of the choices), less the choices for other
    # variants' [@flag]s.
    steps: tuple[tuple[tuple[int, float, tuple[tuple[_Template, ...], ...]], ...], ...]
    closers: tuple[str, ...]  # fills in when fewer than two sentences came out
    features_first: bool


def _pool(keys: str) -> tuple[_Ing, ...]:
    return tuple(_BY_KEY[k] for k in keys.split())


def _variant(
    base: str,
    features: str,
    extras: str,
    nouns: str = "",
    adjs: str = "",
    flags: str = "",
    cats: str = "",
    second: str = "",
    second_p: float = 0.5,
) -> _Variant:
    """base: groups split by "|", alternatives by spaces, bundles joined by "+"; `second` is the
    pool of the second featured ingredient (default: the first pool)."""
    groups = tuple(
        tuple(tuple(_BY_KEY[k] for k in alt.split("+")) for alt in group.split())
        for group in base.split("|")
        if group.strip()
    )
    return _Variant(
        groups,
        ((_pool(features), 1.0), (_pool(second or features), second_p)),
        _pool(extras),
        tuple(nouns.split("|")),
        tuple(adjs.split("|")),
        tuple(flags.split()),
        tuple(cats.split("|")) if cats else (),
    )


def _variant_steps(
    steps: tuple[tuple[int, float, str], ...], flags: tuple[str, ...]
) -> tuple[tuple[int, float, tuple[tuple[_Template, ...], ...]], ...]:
    # Done once here, not per recipe: generation speed is mostly the number of templates tried.
    out = []
    for para, p, alts in steps:
        kept = tuple(
            t
            for t in map(_template, alts.split(" | "))
            if all(k in flags for k in t.needs if k.startswith("@"))
        )
        if kept:
            # every rotation, so that "first that fits from a random start" slices nothing
            out.append((para, p, tuple(kept[i:] + kept[:i] for i in range(len(kept)))))
    return tuple(out)


def _dish(
    category: str,
    variants: tuple[_Variant, ...],
    titles: str,
    steps: tuple[tuple[int, float, str], ...],
    *,
    servings: str = "4 6 8",
    yields: str = "",
    temps: str = "350",
    bake: str = "30",
    cook: str = "30",
    pans: str = "",
    sections: tuple[tuple[str, str, str], ...] = (),
    section_p: float = 0.08,
    closers: str = "Serve hot.",
    features_first: bool = True,
) -> _Dish:
    pats = tuple(titles.split("|"))
    return _Dish(
        category,
        variants,
        tuple(p for p in pats if "{f2}" not in p and "{F2}" not in p),
        pats,
        tuple(int(s) for s in servings.split()),
        tuple(yields.split("|")) if yields else ("",),
        tuple(temps.split()),
        tuple(bake.split()),
        tuple(cook.split()),
        tuple(pans.split("|")) if pans else ("",),
        tuple((name, word, _pool(keys)) for name, word, keys in sections),
        section_p,
        tuple(_variant_steps(steps, v.flags) for v in variants),
        tuple(closers.split("|")),
        features_first,
    )


_CAKE_FEATURES = (
    "chocolate chips carrots walnuts pecans bananas apples lemonpeel coconut pumpkin raisins "
    "pineapple zucchini applesauce poppy almonds cherries blueberries orangejuice cocoa"
)
_COOKIE_FEATURES = (
    "chips oats pb raisins walnuts pecans coconut molasses ginger lemonpeel almonds dates "
    "cranberries chocolate peanuts"
)
_SOUP_FEATURES = (
    "cookedchicken groundbeef ham sausage potatoes carrots tomatoes splitpeas lentils blackbeans "
    "broccoli mushrooms cabbage corn zucchini cauliflower sweetpot squash spinach kidney "
    "whitebeans shrimp cheddar asparagus barley noodles"
)
_VEG_SIDES = (
    "greenbeans broccoli carrots potatoes asparagus zucchini spinach cauliflower corn mushrooms "
    "sweetpot sprouts peas cabbage eggplant squash"
)
_VEG_FLAVORS = (
    "garlic lemonjuice parmesan honey dill bacon almonds brownsugar rosemary balsamic cheddar "
    "maple dijon thyme basil sesame ginger pecans"
)
_PROTEINS = "breasts thighs porkchops tenderloin steak salmon shrimp"
_MAIN_FLAVORS = (
    "garlic lemonjuice honey dijon rosemary soy paprika curry bbq mushrooms orangejuice parmesan "
    "italian basil ginger apples cranberries balsamic thyme sage horseradish maple limejuice "
    "whitewine"
)

# fmt: off
_DISHES = (
    _dish(
        "Cakes",
        (
            _variant(
                "flour|sugar brownsugar|butter oil shortening margarine|eggs|soda bpowder",
                _CAKE_FEATURES,
                "salt vanilla milk buttermilk sourcream cinnamon nutmeg almondext bpowder soda "
                "allspice",
                nouns="Cake|Cake|Cake|Coffee Cake|Pound Cake",
                adjs="Easy|Moist|Old Fashioned|Grandma's",
                cats="Desserts|Baking",
                second_p=0.4,
            ),
        ),
        "{f1} {noun}|{f1} {noun}|{adj} {f1} {noun}|{f1} {f2} {noun}|{f1} {f2} {noun}",
        (
            (0, 0.85, "Preheat oven to {temp} degrees."),
            (0, 0.6, "Grease a {pan}. | Grease and line a {pan} with waxed paper."),
            (0, 1, "In a large bowl, beat the {fat+sugar} until light and fluffy. | "
                   "Beat the {fat+sugar} together until smooth. | "
                   "In large bowl, blend the {fat+sugar} on low until well mixed."),
            (0, 1, "Beat in the {egg}, one at a time. | Add the {egg} and beat well."),
            (0, 0.8, "Sift together the {dry*}. | In another bowl, combine the {dry*}. | "
                     "Stir together the {dry*} in a separate bowl."),
            (0, 0.7, "Add the dry ingredients alternately with the {dairy}, beating well after "
                     "each addition. | Gradually beat in the dry ingredients."),
            (0, 0.5, "Stir in the {flavor}. | Add the {flavor} and mix well."),
            (0, 1, "Fold in the {main*}. | Stir in the {main*}. | "
                   "Add the {main*} and mix until just combined."),
            (1, 1, "Pour the batter into the prepared pan. | "
                   "Spread the batter evenly in a greased {pan}. | Pour into a greased {pan}."),
            (1, 1, "Bake at {temp} degrees for {bake} minutes, or until a toothpick inserted "
                   "in the center comes out clean. | Bake at {temp} degrees for {bake} minutes. | "
                   "Bake for {bake} minutes, or until the top springs back when lightly touched."),
            (1, 0.7, "Cool in the pan for 10 minutes, then turn out onto a wire rack. | "
                     "Cool completely on a wire rack. | Let cool in the pan before cutting."),
            (2, 1, "For the {section}, beat the {sec*} until smooth. | "
                   "To make the {section}, combine the {sec*} in a small bowl. | "
                   "[sec]Beat the {sec*} together until smooth."),
            (2, 1, "Spread the {section} over the cooled cake. | "
                   "Drizzle the {section} over the warm cake."),
            (2, 0.3, "Cut into squares to serve. | Store covered in the refrigerator."),
        ),
        servings="8 10 12 12 16",
        temps="325 350 350 375",
        bake="25 30 35 40 45 50 60",
        pans="9x13 inch pan|10 inch tube pan|9 inch square pan",
        sections=(
            ("FROSTING", "frosting", "powdered creamcheese butter vanilla milk cocoa"),
            ("GLAZE", "glaze", "powdered lemonjuice milk orangejuice vanilla"),
            ("TOPPING", "topping", "brownsugar cinnamon walnuts pecans butter oats"),
        ),
        section_p=0.2,
        closers="Serve warm or cold.",
        features_first=False,
    ),
    _dish(
        "Cookies",
        (
            _variant(
                "flour|sugar brownsugar sugar+brownsugar|butter shortening margarine|eggs|"
                "soda bpowder",
                _COOKIE_FEATURES,
                "salt vanilla cinnamon milk nutmeg almondext",
                nouns="Cookies|Cookies|Cookies|Drops",
                adjs="Chewy|Grandma's|Easy|Old Fashioned",
                cats="Desserts|Snacks",
                second_p=0.5,
            ),
        ),
        "{f1} {noun}|{adj} {f1} {noun}|{f1} {f2} {noun}|{f1} {f2} {noun}",
        (
            (0, 0.9, "Preheat oven to {temp} degrees."),
            (0, 1, "In a large bowl, beat the {fat} with the {sugar*} until smooth. | "
                   "Beat the {fat+sugar*} until light and fluffy."),
            (0, 1, "Beat in the {egg+flavor}. | Add the {egg} and beat well."),
            (0, 0.9, "Combine the {dry*} and gradually add to the beaten mixture. | "
                     "Stir together the {dry*}; blend into the beaten mixture. | "
                     "Gradually stir in the {flour}."),
            (0, 1, "Stir in the {main*}. | Fold in the {main*}. | Mix in the {main*} by hand."),
            (1, 0.4, "Cover and chill the dough for 1 hour."),
            (1, 1, "Drop by rounded teaspoonfuls onto ungreased cookie sheets. | "
                   "Shape into 1 inch balls and place 2 inches apart on greased cookie sheets. | "
                   "Drop by tablespoonfuls 2 inches apart onto greased cookie sheets."),
            (1, 0.2, "Flatten each ball with a fork."),
            (1, 1, "Bake at {temp} degrees for {bake} minutes, or until lightly browned. | "
                   "Bake for {bake} minutes or until the edges are golden. | "
                   "Bake at {temp} degrees for {bake} minutes."),
            (1, 0.8, "Cool on the sheets for 2 minutes, then remove to wire racks. | "
                     "Remove to wire racks to cool. | Cool completely before storing."),
            (2, 1, "For the {section}, beat the {sec*} until smooth. | "
                   "[sec]Beat the {sec*} together until smooth."),
            (2, 1, "Spread the {section} over the cooled cookies."),
            (2, 0.3, "Store in an airtight container."),
        ),
        servings="1",
        yields="24 cookies|36 cookies|48 cookies|60 cookies",
        temps="350 375",
        bake="8 10 12 15",
        sections=(
            ("FROSTING", "frosting", "powdered butter vanilla milk cocoa creamcheese"),
            ("GLAZE", "glaze", "powdered lemonjuice milk orangejuice"),
        ),
        section_p=0.1,
        closers="Store in an airtight container.",
        features_first=False,
    ),
    _dish(
        "Breads",
        (
            _variant(
                "flour breadflour wwflour|yeast+water yeast+milk|salt|sugar honey brownsugar",
                "oats cheddar raisins dill rosemary cornmeal garlic onion cinnamon sesame "
                "italian parmesan",
                "butter oil shortening eggs",
                nouns="Bread|Bread|Loaf",
                adjs="Easy|Homemade|Country|Grandma's",
                flags="@yeast",
                cats="Baking|Yeast",
                second_p=0.25,
            ),
            _variant(
                "flour|soda bpowder|sugar brownsugar|eggs",
                "bananas zucchini pumpkin cranberries dates applesauce lemonpeel blueberries "
                "orangejuice carrots apples strawberries cornmeal",
                "salt oil butter milk buttermilk cinnamon nutmeg vanilla sourcream",
                nouns="Bread|Bread|Loaf",
                adjs="Easy|Moist|Grandma's|Quick",
                flags="@quick",
                cats="Baking|Breakfast",
                second="walnuts pecans raisins cranberries dates coconut chips",
                second_p=0.5,
            ),
        ),
        "{f1} {noun}|{f1} {noun}|{adj} {f1} {noun}|{f1} {f2} {noun}",
        (
            (0, 1, "[@yeast]Dissolve the {yeast} in the warm {liquid}."),
            (0, 0.8, "[@yeast]Let stand for 5 minutes, until foamy."),
            (0, 1, "[@yeast]Stir in the {sweet+salt+fat}. | "
                   "[@yeast]Stir in the {sweet+salt}."),
            (0, 1, "[@yeast]Add the {flour} one cup at a time, mixing well after each addition. | "
                   "[@yeast]Beat in enough {flour} to make a soft dough."),
            (0, 1, "[@yeast]Mix in the {main*}. | [@yeast]Knead in the {main*}."),
            (1, 1, "[@yeast]Turn out onto a lightly floured surface and knead until smooth and "
                   "elastic, about 8 minutes."),
            (1, 1, "[@yeast]Place in a greased bowl, cover and let rise in a warm place until "
                   "doubled, about 1 hour."),
            (1, 0.9, "[@yeast]Punch down and shape into loaves. | "
                     "[@yeast]Punch down the dough and divide in half."),
            (1, 0.8, "[@yeast]Place in greased loaf pans and let rise until doubled, about 45 "
                     "minutes."),
            (2, 1, "[@yeast]Bake at {temp} degrees for {bake} minutes, or until the loaves sound "
                   "hollow when tapped."),
            (2, 0.6, "[@yeast]Remove from the pans and cool on wire racks. | "
                     "[@yeast]Brush the tops with the {fat} while still warm."),
            (0, 0.9, "[@quick]Preheat oven to {temp} degrees."),
            (0, 0.6, "[@quick]Grease a {pan}."),
            (0, 1, "[@quick]In a large bowl, combine the {dry*}. | "
                   "[@quick]Sift together the {dry*}."),
            (0, 1, "[@quick]In another bowl, beat the {egg} with the {wet*}. | "
                   "[@quick]Beat the {egg+sugar} until thick."),
            (0, 1, "[@quick]Add to the dry ingredients and stir just until moistened."),
            (0, 1, "[@quick]Fold in the {main*}. | [@quick]Stir in the {main*}."),
            (1, 1, "[@quick]Pour into the prepared pan. | "
                   "[@quick]Spoon the batter into a greased {pan}."),
            (1, 1, "[@quick]Bake at {temp} degrees for {bake} minutes, or until a toothpick "
                   "inserted in the center comes out clean. | "
                   "[@quick]Bake for {bake} minutes or until golden and firm to the touch."),
            (1, 0.8, "[@quick]Cool in the pan for 10 minutes before removing to a wire rack. | "
                     "[@quick]Wrap and store overnight before slicing."),
        ),
        servings="1",
        yields="1 loaf|1 loaf|2 loaves",
        temps="350 375 400",
        bake="30 35 40 45 50 60",
        pans="9x5 inch loaf pan|loaf pan",
        closers="Slice and serve warm.",
        features_first=False,
    ),
    _dish(
        "Pies",
        (
            _variant(
                "pieshell pieshell graham+butter|sugar brownsugar",
                "apples pumpkin cherries peaches blueberries pecans strawberries chocolate "
                "coconut sweetpot bananas lemonjuice",
                "cinnamon nutmeg salt butter evap milk vanilla cornstarch flour cream ginger "
                "allspice eggs eggs sourcream",
                nouns="Pie|Pie|Pie|Tart",
                adjs="Old Fashioned|Easy|Grandma's|Holiday",
                cats="Desserts|Holiday|Baking",
                second="pecans walnuts cranberries raisins coconut almonds",
                second_p=0.25,
            ),
        ),
        "{f1} {noun}|{f1} {noun}|{adj} {f1} {noun}|{f1} {f2} {noun}",
        (
            (0, 0.9, "Preheat oven to {temp} degrees."),
            (0, 1, "[crumbs]Combine the {crumbs+fat}; press into a 9 inch pie plate."),
            (0, 1, "[fruit]In a large bowl, toss the {fruit*} with the {sugar*}. | "
                   "Combine the {main*+sugar*+spice*} in a large bowl. | "
                   "In a large bowl, combine the {main*+sugar*}."),
            (0, 0.7, "Beat the {egg} and stir in the {dairy}. | Blend in the {egg}. | "
                     "Stir in the {dairy} until smooth."),
            (0, 0.5, "Stir in the {flavor}. | Add the {acid} and mix well."),
            (1, 1, "Pour into the {crust}. | Spoon the filling into the {crust}. | "
                   "Turn into the prepared crust."),
            (1, 1, "[sec]Combine the {sec*} until crumbly and sprinkle over the filling."),
            (1, 0.5, "Dot with the {fat}."),
            (1, 1, "Bake at {temp} degrees for {bake} minutes, or until the filling is set. | "
                   "Bake for {bake} minutes, or until golden and bubbly."),
            (2, 0.8, "Cool on a wire rack. | "
                     "Cool completely, then chill for at least {chill} hours. | "
                     "Serve warm or cold."),
        ),
        servings="6 8 8 10",
        temps="350 375 400 425",
        bake="35 40 45 50 60",
        sections=(("TOPPING", "topping", "brownsugar oats butter cinnamon pecans walnuts flour"),),
        section_p=0.15,
        closers="Serve warm or cold.",
        features_first=False,
    ),
    _dish(
        "Soups",
        (
            _variant(
                "chickbroth beefbroth water chickbroth+water|onion|salt pepper salt+pepper",
                _SOUP_FEATURES,
                "celery carrots garlic pepper bay thyme parsley butter oliveoil milk cream "
                "tompaste cantomatoes oregano basil cumin chilipowder potatoes sourcream flour "
                "worcester greenpepper dill",
                nouns="Soup|Soup|Soup|Soup|Chowder",
                adjs="Hearty|Creamy|Country|Easy|Homemade",
                cats="Lunch|Winter",
                second="potatoes carrots noodles rice barley corn cheddar mushrooms spinach "
                "tomatoes whitebeans kidney ham sausage",
                second_p=0.6,
            ),
        ),
        "{f1} {noun}|{f1} {noun}|{adj} {f1} {noun}|{f1} {f2} {noun}|{f1} and {f2} {noun}",
        (
            (0, 1, "[brown]Cook the {brown} in a large pot until browned; drain the fat."),
            (0, 1, "In a large pot, melt the {fat} over medium heat. | "
                   "Heat the {oil} in a large saucepan over medium heat."),
            (0, 1, "Add the {aromatic*} and cook until tender, about 5 minutes. | "
                   "Saute the {aromatic*} until soft but not browned. | "
                   "Cook the {aromatic*}, stirring often, until tender."),
            (0, 0.4, "Sprinkle with the {flour} and stir for 1 minute."),
            (1, 1, "Add the {simmer*} and bring to a boil. | "
                   "Stir in the {simmer*} and bring to a boil."),
            (1, 1, "Add the {main*}. | Add the {main*+oveg*}. | Stir in the {main*}."),
            (1, 0.7, "Stir in the {herb*}. | Season with the {spice*}. | "
                     "Add the {herb*+bay}."),
            (1, 1, "Reduce heat, cover and simmer for {cook} minutes, stirring occasionally. | "
                   "Simmer for {cook} minutes, stirring often. | "
                   "Cover and simmer until the vegetables are tender, about {cook} minutes."),
            (2, 0.2, "Puree in a blender until smooth, then return to the pot."),
            (2, 0.9, "Stir in the {dairy} and heat through, but do not boil. | "
                     "Stir in the {cheese} until melted."),
            (2, 0.5, "Remove the {bay} before serving."),
            (2, 0.9, "Season to taste with the {season*}. | Season with the {season*}."),
            (2, 0.8, "Serve hot. | Ladle into bowls and serve hot. | "
                     "Garnish with the {garnish} and serve."),
        ),
        servings="4 6 6 8 10",
        cook="20 25 30 45 60 90",
        sections=(),
        closers="Serve hot.|Ladle into bowls and serve hot.",
    ),
    _dish(
        "Stews",
        (
            _variant(
                "onion|beefbroth chickbroth water redwine cantomatoes|salt",
                "chuck chuck chicken thighs sausage",
                "garlic celery carrots potatoes pepper bay thyme paprika tompaste worcester oil "
                "flour peas rosemary redwine oregano chilipowder cumin parsley",
                nouns="Stew",
                adjs="Hearty|Country|Easy|Old Fashioned",
                cats="Main Dish|Winter",
                second="potatoes carrots mushrooms greenbeans tomatoes kidney sweetpot squash "
                "barley blackbeans whitebeans lentils",
                second_p=0.7,
            ),
        ),
        "{f1} {noun}|{adj} {f1} {noun}|{f1} and {f2} {noun}|{f1} {f2} {noun}",
        (
            (0, 0.6, "[raw]Coat the {raw} with the {flour}. | "
                     "[raw]Dredge the {raw} in the {flour}, shaking off the excess."),
            (0, 1, "Heat the {oil} in a Dutch oven and sear the {f1} on all sides. | "
                   "In a large pot, cook the {f1} in batches until browned. | "
                   "Sear the {f1} in the hot {fat}."),
            (0, 0.9, "Add the {aromatic*} and cook until softened. | "
                     "Stir in the {aromatic*} and cook for 5 minutes."),
            (1, 1, "Add the {simmer*} and bring to a boil. | "
                   "Pour in the {simmer*}, scraping up the browned bits."),
            (1, 0.7, "Stir in the {herb*}. | Add the {spice*+bay}. | "
                     "Season with the {season*}."),
            (1, 1, "Reduce heat, cover and simmer for {cook} minutes. | "
                   "Cover and simmer gently for {cook} minutes, until the meat is tender."),
            (1, 1, "Add the {f2+oveg*} and simmer until the vegetables are tender, about "
                   "30 minutes. | Add the {oveg*} and simmer until tender, about 30 minutes. | "
                   "Add the {f2} and cook 30 minutes longer."),
            (2, 0.5, "Stir in the {thick} and cook until thickened."),
            (2, 0.5, "Remove the {bay} before serving."),
            (2, 0.9, "Serve hot. | Serve with crusty rolls. | Garnish with the {garnish}."),
        ),
        servings="4 6 6 8",
        cook="45 60 90 120",
        sections=(),
        closers="Serve hot.",
    ),
    _dish(
        "Salads",
        (
            _variant(
                "oliveoil oil|vinegar balsamic lemonjuice",
                "cookedchicken potatoes macaroni cucumber tomatoes spinach broccoli cabbage "
                "blackbeans tuna shrimp strawberries apples greenbeans corn lettuce rice "
                "spaghetti mandarin avocado ham crab",
                "celery redonion greenonions greenpepper redpepper parsley dill cilantro salt "
                "pepper sugar walnuts hardeggs bacon parmesan garlic honey basil oregano dijon",
                nouns="Salad",
                adjs="Fresh|Summer|Easy|Garden",
                flags="@vin",
                cats="Side Dishes|Vegetables|Summer",
                second="feta cheddar tomatoes cucumber walnuts almonds bacon cranberries "
                "mandarin avocado corn pecans",
                second_p=0.6,
            ),
            _variant(
                "mayo sourcream yogurt mayo+sourcream|mustard dijon vinegar lemonjuice sugar",
                "cookedchicken potatoes macaroni cabbage tuna shrimp apples ham crab broccoli "
                "turkey rice",
                "celery redonion greenonions greenpepper parsley dill salt pepper hardeggs "
                "bacon walnuts cheddar paprika raisins",
                nouns="Salad",
                adjs="Creamy|Old Fashioned|Easy|Summer",
                flags="@creamy",
                cats="Side Dishes|Lunch|Summer",
                second="hardeggs cheddar bacon raisins walnuts apples celery",
                second_p=0.5,
            ),
        ),
        "{f1} {noun}|{adj} {f1} {noun}|{f1} {f2} {noun}|{f1} and {f2} {noun}",
        (
            (0, 0.9, "Cook the {pasta} according to package directions; drain and cool."),
            (0, 0.6, "[raw]Cook the {raw} until just done; cool and cut in bite size pieces."),
            (0, 0.4, "Cook the {tuber} until just tender; drain and cool."),
            (0, 1, "In a large bowl, combine the {main*+oveg*}. | "
                   "In a large bowl, toss the {main*} with the {oveg*}. | "
                   "Place the {main*} in a large bowl."),
            (1, 1, "[@vin]In a small bowl, whisk together the {dressing*}. | "
                   "[@vin]For the dressing, whisk the {dressing*} until blended. | "
                   "[@creamy]Blend the {dressing*} until smooth. | "
                   "[@creamy]In a small bowl, stir together the {dressing*}."),
            (1, 0.7, "For the {section}, whisk together the {sec*}. | "
                     "[sec]Shake the {sec*} together in a covered jar."),
            (1, 1, "Pour the dressing over the salad and toss to coat. | "
                   "Add the dressing and toss gently. | Fold the dressing into the salad."),
            (1, 0.6, "Sprinkle with the {otopping*}. | "
                     "Top with the {otopping*} just before serving."),
            (2, 0.8, "Cover and chill for at least {chill} hours. | "
                     "Refrigerate until ready to serve. | Serve immediately."),
            (2, 0.3, "Toss again before serving. | Season with the {season*}."),
        ),
        servings="4 6 8 10 12",
        sections=(
            ("DRESSING", "dressing", "oliveoil vinegar balsamic lemonjuice dijon honey sugar "
             "garlic salt pepper"),
        ),
        section_p=0.2,
        closers="Serve chilled.",
    ),
    _dish(
        "Main Dish",
        (
            _variant(
                "salt pepper salt+pepper",
                _PROTEINS,
                "oliveoil oil butter onion garlic chickbroth whitewine flour paprika thyme "
                "parsley rice noodles worcester cornstarch greenonions redpepper mushrooms",
                adjs="Skillet|Easy|Country|Spicy",
                flags="@stove",
                second=_MAIN_FLAVORS,
                second_p=0.8,
            ),
            _variant(
                "salt pepper salt+pepper|oliveoil butter oil",
                _PROTEINS + " chicken chuck",
                "onion garlic paprika thyme rosemary parsley potatoes carrots brownsugar "
                "worcester chickbroth whitewine sage",
                adjs="Baked|Roast|Glazed|Easy",
                flags="@oven",
                second=_MAIN_FLAVORS,
                second_p=0.8,
            ),
            _variant(
                "soy lemonjuice bbq worcester balsamic limejuice orangejuice|oliveoil oil",
                _PROTEINS,
                "garlic honey brownsugar ginger pepper salt dijon oregano cilantro greenonions "
                "rosemary",
                adjs="Grilled|Marinated|Easy|Summer",
                flags="@grill",
                second="garlic honey dijon rosemary ginger maple limejuice soy lemonjuice",
                second_p=0.7,
            ),
        ),
        "{adj} {F1}|{f2} {F1}|{f2} {F1}|{adj} {f2} {F1}|{F1} with {F2}",
        (
            (0, 0.5, "[@stove]Season the {f1} with the {season*}. | "
                     "[@oven]Sprinkle the {f1} with the {spice*}. | "
                     "[@oven]Rub the {f1} with the {herb*}. | "
                     "[@oven]Season the {f1} with the {season*}."),
            (0, 1, "[@grill]In a shallow dish, whisk together the {sauce*}. | "
                   "[@grill]Combine the {sauce*} in a large plastic bag."),
            (0, 1, "[@grill]Add the {f1} and turn to coat; refrigerate for {chill} hours."),
            (0, 1, "[@stove]Heat the {fat} in a large skillet over medium high heat. | "
                   "[@stove]Heat a large nonstick skillet over medium high heat."),
            (0, 1, "[@stove]Cook the {f1} until well browned on both sides, about 5 minutes per "
                   "side. | [@stove]Sear the {f1} until browned on all sides. | "
                   "[@stove]Add the {f1} and cook until golden."),
            (0, 0.5, "[@stove]Remove from the skillet and keep warm."),
            (1, 0.8, "[@stove]Add the {aromatic*} to the skillet and cook until tender. | "
                     "[@stove]Saute the {aromatic*} in the drippings for 3 minutes."),
            (1, 0.9, "[@stove]Stir in the {liquid*} and bring to a boil, scraping up the browned "
                     "bits. | [@stove]Add the {f2+liquid*} and bring to a boil. | "
                     "[@stove]Stir in the {f2} and cook for 2 minutes."),
            (1, 1, "[@stove]Reduce heat, cover and simmer for {cook} minutes, or until the {f1} "
                   "is tender. | [@stove]Return the {f1} to the skillet; cover and simmer for "
                   "{cook} minutes."),
            (1, 0.4, "[@stove]Stir in the {thick} and cook until thickened."),
            (0, 1, "[@oven]Preheat oven to {temp} degrees."),
            (0, 1, "[@oven]Place the {f1} in a greased {pan}. | "
                   "[@oven]Arrange the {f1} in a single layer in a {pan}."),
            (0, 0.8, "[@oven]Combine the {sauce*} and brush over the {f1}. | "
                     "[@oven]Drizzle with the {fat} and sprinkle with the {spice*}. | "
                     "[@oven]Top with the {f2}. | [@oven]Arrange the {oveg*} around the {f1}."),
            (1, 1, "[@oven]Bake, uncovered, at {temp} degrees for {bake} minutes, or until done. "
                   "| [@oven]Roast at {temp} degrees for {bake} minutes, basting occasionally. | "
                   "[@oven]Cover and bake for {bake} minutes; uncover and bake 15 minutes longer."),
            (1, 0.6, "[@oven]Let stand 10 minutes before slicing. | "
                     "[@oven]Transfer to a serving platter and keep warm."),
            (1, 1, "[@grill]Prepare the grill or preheat the broiler."),
            (1, 1, "[@grill]Remove the {f1}, reserving the marinade."),
            (1, 1, "[@grill]Grill over medium heat for {cook} minutes, turning and basting "
                   "occasionally. | [@grill]Broil 4 inches from the heat for {cook} minutes per "
                   "side, basting often."),
            (2, 1, "For the {section}, combine the {sec*} in a small saucepan and simmer until "
                   "slightly thickened. | [sec]Whisk together the {sec*} in a small saucepan. | "
                   "To make the {section}, whisk together the {sec*}."),
            (2, 1, "[sec]Spoon over the {f1} and serve."),
            (2, 0.8, "Garnish with the {garnish} and serve. | "
                     "Serve over the hot cooked {starch}. | Serve immediately."),
        ),
        servings="2 4 4 6 6 8",
        temps="350 375 400 425",
        bake="20 25 30 45 60 90",
        cook="10 15 20 25 30",
        pans="9x13 inch dish|shallow roasting pan|2 quart casserole",
        sections=(
            ("SAUCE", "", "butter flour chickbroth cream whitewine dijon lemonjuice"),
            ("MARINADE", "marinade", "soy oliveoil lemonjuice garlic honey worcester ginger"),
            ("GLAZE", "glaze", "brownsugar honey dijon orangejuice maple"),
        ),
        section_p=0.1,
        closers="Serve immediately.",
    ),
    _dish(
        "Casseroles",
        (
            _variant(
                "mushsoup chicksoup tomsauce|cheddar mozzarella parmesan swiss",
                "groundbeef cookedchicken turkey ham tuna sausage groundturkey",
                "onion garlic celery greenpepper salt pepper sourcream milk butter crumbs "
                "crackers paprika oregano italian mushrooms peas corn worcester creamcheese "
                "basil eggs",
                nouns="Casserole|Casserole|Casserole|Bake",
                adjs="Cheesy|Easy|Creamy|Country",
                cats="Main Dish|Potluck",
                second="noodles rice macaroni broccoli potatoes greenbeans corn spinach "
                "mushrooms zucchini cauliflower sweetpot peas spaghetti",
                second_p=0.8,
            ),
            _variant(
                "mushsoup chicksoup milk+flour+butter|cheddar mozzarella parmesan swiss",
                "broccoli potatoes zucchini greenbeans spinach cauliflower sweetpot eggplant "
                "squash corn",
                "onion garlic salt pepper sourcream crumbs crackers paprika mushrooms almonds "
                "thyme basil eggs creamcheese",
                nouns="Casserole|Casserole|Bake",
                adjs="Cheesy|Easy|Holiday|Creamy",
                cats="Vegetables|Side Dishes|Holiday",
                second="rice noodles mushrooms corn almonds bacon",
                second_p=0.5,
            ),
        ),
        "{f1} {noun}|{adj} {f1} {noun}|{f1} {f2} {noun}|{f1} {f2} {noun}|{f1} and {f2} {noun}",
        (
            (0, 1, "Preheat oven to {temp} degrees."),
            (0, 0.9, "Cook the {pasta} according to package directions and drain."),
            (0, 1, "In a large skillet, cook the {brown} with the {aromatic*} until browned; "
                   "drain the fat. | Cook the {brown} in a large skillet until browned; drain "
                   "well."),
            (0, 0.7, "Saute the {aromatic*} in the {fat} until tender."),
            (0, 1, "In a large bowl, combine the {main*+soup*+dairy*}. | "
                   "Combine the {main*+soup*} in a large bowl. | "
                   "Mix the {main*} with the {soup*}. | Stir in the {main*+dairy*}. | "
                   "In a large bowl, toss the {main*} with the {liquid*}."),
            (0, 0.5, "Season with the {season*}. | Stir in the {herb*}."),
            (1, 1, "Spoon into a greased {pan}. | Pour into a greased {pan}. | "
                   "Spread the mixture in a greased {pan}."),
            (1, 0.9, "Sprinkle with the {cheese*}. | Top with the {cheese*+crumbs}. | "
                     "Sprinkle the {crumbs} over the top."),
            (1, 0.3, "Dot with the {fat}. | Sprinkle with the {spice}."),
            (1, 1, "Bake, uncovered, at {temp} degrees for {bake} minutes or until bubbly. | "
                   "Cover and bake at {temp} degrees for {bake} minutes. | "
                   "Bake for {bake} minutes, or until heated through and bubbly."),
            (2, 0.6, "Let stand 5 minutes before serving. | Serve hot."),
        ),
        servings="4 6 6 8 8 10 12",
        temps="325 350 350 375",
        bake="25 30 35 40 45 60",
        pans="2 quart casserole|9x13 inch dish|8 inch square dish",
        sections=(("TOPPING", "topping", "crumbs crackers butter parmesan almonds paprika"),),
        section_p=0.08,
        closers="Serve hot.",
    ),
    _dish(
        "Sauces",
        (
            _variant(
                "butter|flour|milk chickbroth cream milk+cream",
                "cheddar swiss parmesan mushrooms dill garlic mustard horseradish curry",
                "salt pepper nutmeg paprika worcester lemonjuice parsley whitewine onion",
                nouns="Sauce",
                adjs="Easy|Creamy|Quick|Basic",
                flags="@white",
                cats="Vegetables|Condiments",
                second_p=0.2,
            ),
            _variant(
                "oliveoil|cantomatoes tomsauce cantomatoes+tompaste|garlic",
                "basil mushrooms redpepper sausage italian redwine groundbeef",
                "onion oregano basil salt pepper sugar redflakes parsley thyme bay",
                nouns="Sauce|Sauce|Pasta Sauce",
                adjs="Easy|Homemade|Spicy|Garden",
                flags="@tomato",
                cats="Pasta|Italian",
                second_p=0.3,
            ),
            _variant(
                "sugar brownsugar|butter",
                "chocolate strawberries blueberries lemonjuice cherries maple pb orangejuice "
                "cranberries peaches",
                "vanilla cream cornstarch water salt cinnamon almondext",
                nouns="Sauce|Sauce|Topping",
                adjs="Warm|Easy|Old Fashioned",
                flags="@sweet",
                cats="Desserts",
                second_p=0.2,
            ),
            _variant(
                "ketchup tomsauce|brownsugar honey molasses|vinegar",
                "honey molasses mustard maple brownsugar bbq",
                "worcester onion garlic chilipowder paprika tabasco salt pepper lemonjuice",
                nouns="Barbecue Sauce",
                adjs="Tangy|Spicy|Easy",
                flags="@bbq",
                cats="Condiments|Barbecue",
                second_p=0.1,
            ),
            _variant(
                "oliveoil|vinegar balsamic lemonjuice",
                "dijon honey garlic basil lemonjuice balsamic orangejuice limejuice dill italian",
                "salt pepper sugar oregano parsley",
                nouns="Vinaigrette|Dressing",
                adjs="Easy|Fresh|Tangy",
                flags="@vin",
                cats="Salads|Condiments",
                second_p=0.3,
            ),
        ),
        "{f1} {noun}|{f1} {noun}|{adj} {f1} {noun}|{f1} {f2} {noun}",
        (
            (0, 1, "[@white]Melt the {fat} in a saucepan over low heat. | "
                   "[@white]In a small saucepan, melt the {fat}."),
            (0, 1, "[@white]Whisk in the {flour} and cook for 1 minute, stirring constantly."),
            (0, 1, "[@white]Gradually whisk in the {liquid*}. | "
                   "[@white]Slowly add the {liquid*}, whisking until smooth."),
            (0, 1, "[@white]Cook and stir until thickened and bubbly."),
            (1, 1, "[@white]Stir in the {main*} until smooth. | [@white]Add the {main*} and "
                   "stir over low heat for 2 minutes."),
            (0, 1, "[@tomato]Heat the {oil} in a large saucepan."),
            (0, 1, "[@tomato]Add the {aromatic*} and cook until soft, about 5 minutes."),
            (0, 1, "[@tomato]Stir in the {simmer*+herb*}. | [@tomato]Add the {simmer*}."),
            (1, 1, "[@tomato]Bring to a boil, then reduce heat and simmer, uncovered, for {cook} "
                   "minutes."),
            (1, 1, "[@tomato]Stir in the {main*}. | [@tomato]Add the {main*} and simmer 10 "
                   "minutes longer."),
            (0, 1, "[@sweet]In a small saucepan, combine the {sugar*+fat}. | "
                   "[@sweet]Melt the {fat} with the {sugar*} over low heat."),
            (0, 1, "[@sweet]Add the {main*} and cook, stirring constantly, until smooth. | "
                   "[@sweet]Whisk in the {main*} and bring to a gentle boil."),
            (0, 0.7, "[@sweet]Remove from heat and stir in the {flavor}. | "
                     "[@sweet]Stir in the {dairy} and heat through."),
            (1, 0.8, "[@sweet]Serve warm over pound cake or waffles."),
            (0, 1, "[@bbq]Combine the {sauce*+sweet*} in a saucepan."),
            (0, 0.8, "[@bbq]Add the {aromatic*+spice*}. | [@bbq]Stir in the {spice*}."),
            (1, 1, "[@bbq]Bring to a boil; reduce heat and simmer for {cook} minutes, stirring "
                   "often."),
            (1, 0.8, "[@bbq]Brush over grilled meats during the last minutes of cooking."),
            (0, 1, "[@vin]In a small bowl, whisk together the {acid*+main*}. | "
                   "[@vin]Combine the {acid*+main*+season*} in a jar."),
            (0, 1, "[@vin]Slowly whisk in the {oil} until blended. | "
                   "[@vin]Add the {oil}, cover tightly and shake well."),
            (1, 0.8, "[@vin]Let stand 30 minutes to blend the flavors. | "
                     "[@vin]Refrigerate until ready to use."),
            (2, 0.6, "Season to taste with the {season*}."),
            (2, 0.5, "Store covered in the refrigerator for up to 1 week. | [@white]Serve warm. | "
                     "[@sweet]Serve warm."),
        ),
        servings="4 6 8 8 12",
        yields="1 cup|1 1/2 cups|2 cups|2 cups|3 cups|1 quart",
        cook="10 15 20 30 45",
        closers="Store covered in the refrigerator.",
        features_first=False,
    ),
    _dish(
        "Vegetables",
        (
            _variant(
                "oliveoil butter oil|salt pepper salt+pepper",
                _VEG_SIDES,
                "onion garlic parsley thyme redpepper paprika crumbs",
                adjs="Roasted|Easy|Herbed",
                flags="@roast",
                cats="Side Dishes|Holiday",
                second=_VEG_FLAVORS,
                second_p=0.85,
            ),
            _variant(
                "butter oliveoil|salt pepper salt+pepper",
                _VEG_SIDES,
                "onion garlic chickbroth parsley sugar lemonjuice greenonions redpepper thyme",
                adjs="Sauteed|Glazed|Easy|Buttered",
                flags="@stove",
                cats="Side Dishes|Holiday",
                second=_VEG_FLAVORS,
                second_p=0.85,
            ),
        ),
        "{adj} {F1}|{f2} {F1}|{f2} {F1}|{adj} {f2} {F1}|{F1} with {F2}",
        (
            (0, 1, "[@roast]Preheat oven to {temp} degrees."),
            (0, 1, "[@roast]Toss the {f1} with the {fat+season*}. | "
                   "[@roast]In a large bowl, toss the {f1} with the {fat}."),
            (0, 1, "[@roast]Spread in a single layer on a large sheet pan. | "
                   "[@roast]Arrange in a shallow roasting pan."),
            (1, 1, "[@roast]Roast at {temp} degrees for {bake} minutes, stirring once, until "
                   "tender and browned. | [@roast]Roast for {bake} minutes, or until golden."),
            (1, 0.8, "[@roast]Sprinkle with the {f2} and roast 5 minutes longer. | "
                     "[@roast]Toss with the {f2} before serving."),
            (0, 1, "[@stove]Steam the {f1} until crisp-tender, about {short} minutes. | "
                   "[@stove]Cook the {f1} in a covered saucepan until just tender, about {short} "
                   "minutes; drain."),
            (0, 0.9, "[@stove]Meanwhile, melt the {fat} in a large skillet. | "
                     "[@stove]Heat the {fat} in a large skillet over medium heat."),
            (0, 0.7, "[@stove]Add the {aromatic*} and saute until fragrant."),
            (1, 1, "[@stove]Add the {f1} and toss to coat. | "
                   "[@stove]Stir in the {f1} and cook for 2 minutes."),
            (1, 0.9, "[@stove]Stir in the {f2} and heat through. | "
                     "[@stove]Add the {f2} and cook, stirring, until glazed."),
            (2, 0.9, "Season with the {season*} and serve immediately. | "
                     "Sprinkle with the {garnish} and serve. | Serve immediately."),
        ),
        servings="4 4 6 6 8",
        temps="400 425 425",
        bake="20 25 30 35 40",
        sections=(),
        closers="Serve immediately.",
    ),
)
# fmt: on

_SHORT = ("5", "8", "10")
_MENTION = _template("Add the {main*} and mix well.")
_CAT_BREAK = "\n" + " " * 16  # a third category goes on a line of its own, under the first
_CHILL = ("2", "3", "4")


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
        kinds["chill"] = [_CHILL[int(r() * 3)]]
        kinds["short"] = [_SHORT[int(r() * 3)]]

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


def _positive_int(s: str) -> int:
    try:
        n = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {s!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _positive_float(s: str) -> float:
    try:
        x = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
    if not math.isfinite(x) or x <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {s}")
    return x


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m hpc_rnn.demo_corpus", description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--recipes", type=_positive_int, metavar="N", help="number of recipes")
    size.add_argument(
        "--megabytes",
        type=_positive_float,
        metavar="M",
        help="write recipes until the file reaches M megabytes (10**6 bytes)",
    )
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default 0)")
    parser.add_argument("--out", default="-", metavar="FILE", help="output file, - for stdout")

    def body() -> int:
        args = parser.parse_args(argv)
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
