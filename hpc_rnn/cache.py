"""The copy bias (`ModelConfig.copy`): a neural cache over the recipe read so far.

Every word already read in this recipe gets a bias s(h_t) added to its logit, s a learned linear
function of the output state (Grave, Joulin and Usunier 2017). A plain LSTM has to learn to hold
the ingredient list across the 100-200 words before the directions name it, and on CPU budgets it
does not (../shared/notes/whole-recipe-context.md); the bias lets it point at the list instead.
The model's state then carries, besides the recurrent state, which words were read.
"""

from __future__ import annotations

import torch

from hpc_rnn.recurrence import State

# The state a forward call returns and takes: the recurrent state, and with the copy bias also
# the words read so far ([B, n_words], bool).
ModelState = State | tuple[State, torch.Tensor]


def add_bias(
    logits: torch.Tensor, scale: torch.Tensor, tokens: torch.Tensor, seen: torch.Tensor | None
) -> torch.Tensor:
    """`logits` ([B, T, V], or [B, V] for the last position only) plus `scale` on the words read
    up to each position: those of `tokens` [B, T] up to it and those `seen` before them."""
    n_words = logits.shape[-1]
    if logits.dim() == 2:
        read = words_read(tokens, seen, n_words)
    else:
        # Word v counts at position t once its first position in the tokens is at most t.
        steps = torch.arange(tokens.shape[1], device=tokens.device)
        read = _first_positions(tokens, seen, n_words)[:, None, :] <= steps[None, :, None]
    # where() keeps only the bool mask for the backward, not a float copy of it.
    return torch.where(read, logits + scale, logits)


def words_read(tokens: torch.Tensor, seen: torch.Tensor | None, n_words: int) -> torch.Tensor:
    """[B, n_words] bool: the words read by the end of `tokens`, those `seen` before included."""
    read = torch.zeros(tokens.shape[0], n_words, dtype=torch.bool, device=tokens.device)
    read.scatter_(1, tokens, True)
    return read if seen is None else read | seen


def _first_positions(tokens: torch.Tensor, seen: torch.Tensor | None, n_words: int) -> torch.Tensor:
    """[B, n_words]: the first position of each word in `tokens` [B, T]; T for a word absent,
    -1 for one already `seen` before these tokens."""
    batch, steps = tokens.shape
    first = torch.full((batch, n_words), steps, dtype=torch.long, device=tokens.device)
    positions = torch.arange(steps, device=tokens.device).expand(batch, steps)
    first = first.scatter_reduce(1, tokens, positions, reduce="amin")
    return first if seen is None else first.masked_fill(seen, -1)


def select_rows(state: ModelState, rows: torch.Tensor, copy: bool) -> ModelState:
    """The state of some rows of a batch (generation drops the recipes that ended)."""
    if copy:
        rnn, seen = state
        return select_rows(rnn, rows, False), seen[rows]
    # The batch is dimension 1 of a recurrent state: [layers, B, hidden].
    if isinstance(state, tuple):
        return (state[0][:, rows], state[1][:, rows])
    return state[:, rows]


def join_rows(states: list[ModelState], copy: bool) -> ModelState:
    """The states of separate calls as one batch."""
    if copy:
        rnn = join_rows([s[0] for s in states], False)
        return rnn, torch.cat([s[1] for s in states])
    if isinstance(states[0], tuple):
        return (torch.cat([s[0] for s in states], 1), torch.cat([s[1] for s in states], 1))
    return torch.cat(states, 1)
