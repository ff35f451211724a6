"""--stick-to-list: what a recipe may no longer write once its ingredient list is closed."""

from __future__ import annotations

from collections import Counter

import pytest
from test_layout import meal_master

from hpc_rnn import layout, quality, text
from hpc_rnn.stick import ListGuard
from hpc_rnn.vocab import build_vocab

LIST = """* Exported from MasterCook *

                          Chocolate Cake

Recipe By     :
Serving Size  : 8    Preparation Time :0:00
Categories    : Desserts

  Amount  Measure       Ingredient -- Preparation Method
--------  ------------  --------------------------------
   2      cups          flour
   3                    eggs -- beaten

Mix the flour with the egg, butter and milk.
"""


@pytest.mark.parametrize("archive", ["MasterCook", "Meal-Master"])
def test_food_words_the_list_lacks_are_banned_once_the_list_is_closed(archive: str) -> None:
    recipe = LIST + "\nYield: 1 cake\n\n" + layout.END_LINE + "\n"
    words = text.tokenize(recipe if archive == "MasterCook" else meal_master(recipe))
    vocab = build_vocab(Counter(words), window=50, min_count=1, unk=False)
    assert layout.archive_of(vocab.index).name == archive
    lexicon = quality.IngredientLexicon.from_words(["flour", "egg", "butter", "milk"])
    guard = ListGuard(vocab, lexicon, layout.archive_of(vocab.index), "cpu")
    closed = words.index("mix")  # the blank line after the last row ends just before it
    for end in range(1, closed):
        assert guard.banned(words[:end]) is None, words[:end]
    mask = guard.banned(words[:closed])
    assert mask is not None
    banned = {w for w, b in zip(vocab.words, mask.tolist(), strict=True) if b}
    # "eggs" in the list allows "egg" (one comparison key); words not food are never banned.
    assert banned == {"butter", "milk"}
