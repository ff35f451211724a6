"""`--stick-to-list`: constrained decoding, so that directions name only their own ingredients.

Once a recipe's ingredient list is closed (the blank line after its table), every food word of
the vocabulary whose comparison key (`quality.singular`) none of the list's ingredient names has
gets no probability for the rest of the recipe. Food words are the ingredient lexicon of the
training corpus (`quality.IngredientLexicon`), the one the consistency and extra-ingredient
scores count, so with this on the directions name no ingredient the list lacks, by construction.

It is a decoding rule, not the model: the figures about what the model learned are the ones
without it (the README reports both).
"""

from __future__ import annotations

import torch

from hpc_rnn import layout, prompt, quality, text
from hpc_rnn.cli import UserError
from hpc_rnn.vocab import Vocab

_BLANK_LINE = [text.NEWLINE, text.NEWLINE]


class ListGuard:
    """Which words a recipe may no longer write, from the words it has so far."""

    def __init__(
        self,
        vocab: Vocab,
        lexicon: quality.IngredientLexicon,
        archive: layout.Archive | None,
        device: torch.device | str,
    ) -> None:
        self._archive = archive
        self._food = {i: quality.singular(w) for i, w in enumerate(vocab.words) if w in lexicon}
        self.none = torch.zeros(len(vocab.words), dtype=torch.bool, device=device)  # no ban

    def banned(self, words: list[str]) -> torch.Tensor | None:
        """[n_words] bool, True for the food words the recipe's own list lacks, once `words`
        (the recipe so far) end with the blank line that closes its ingredient list; else None
        (the list may still grow: nothing is banned)."""
        if words[-2:] != _BLANK_LINE:
            return None
        try:
            (recipe,) = prompt.givens([layout.render(words, self._archive)])
        except UserError:  # a Meal-Master recipe with no title yet: no list either
            return None
        if not recipe.names:
            return None
        listed = quality.listed_keys(recipe.names)
        mask = self.none.clone()
        mask[[i for i, key in self._food.items() if key not in listed]] = True
        return mask


class RowBans:
    """The words each row of a generation batch may no longer write, as one [rows, words] mask
    kept beside the model's state: a row is set once, when its recipe's list closes, and rows
    are selected as the state's are when recipes finish."""

    def __init__(self, guard: ListGuard, recipes: list[list[str]]) -> None:
        self._guard = guard
        self.mask = guard.none.expand(len(recipes), -1).clone()
        self._closed = [False] * len(recipes)
        for row, words in enumerate(recipes):
            self.saw(row, words)

    def saw(self, row: int, words: list[str]) -> None:
        """Row `row`'s recipe is now `words`."""
        if self._closed[row] or words[-1:] != [text.NEWLINE]:
            return
        banned = self._guard.banned(words)
        if banned is not None:
            self.mask[row] = banned
            self._closed[row] = True

    def select(self, rows: list[int]) -> None:
        """Keep rows `rows`, in that order."""
        self.mask = self.mask[rows]
        self._closed = [self._closed[row] for row in rows]
