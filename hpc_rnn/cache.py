"""The copy bias (`ModelConfig.copy`): a neural cache over the recipe read so far, with a checklist.

Every word already read in this recipe gets a bias added to its logit, and a word read exactly
once gets a second one; both are learned linear functions of the output state (a neural cache,
Grave, Joulin and Usunier 2017). A plain LSTM has to learn to hold the ingredient list across
the 100-200 words before the directions name it, and on CPU budgets it does not
(../shared/notes/whole-recipe-context.md); the first bias lets it point at the list instead.
An ingredient is read once in the list and again when the directions use it, so "read once" is
the list's unchecked items, learned without telling the model where the list is: the checklist
of Kiddon, Zettlemoyer and Choi (2016) in two scalars (measured in the README).
The model's state then carries, besides the recurrent state, how often each word was read.
"""

from __future__ import annotations

import torch

from hpc_rnn.recurrence import State

# The state a forward call returns and takes: the recurrent state, and with the copy bias also
# how often each word was read so far ([B, n_words], uint8, saturating at 2: "more than once").
ModelState = State | tuple[State, torch.Tensor]

# The biases' count: on words read at all, and on words read once.
N_BIASES = 2


def add_bias(
    logits: torch.Tensor,
    scale: torch.Tensor,
    tokens: torch.Tensor,
    counts: torch.Tensor | None,
    checklist: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`logits` ([B, T, V], or [B, V] for the last position only) plus the biases `scale`
    ([..., 2]: on words read, and on words read once) on the words of `tokens` [B, T] up to each
    position, `counts` (how often each was read before them) included; and the counts after
    `tokens` (`_read_counts`), the state's part that the next call takes.

    With `checklist` (`items` [V, K], `effect` [K, V]), every logit also moves with what is
    still unchecked: the K sums of `items` over the words read once so far, times `effect`.

    `logits` is changed in place: it is the output layer's fresh result, which that layer's
    backward does not keep."""
    n_words = logits.shape[-1]
    steps = tokens.shape[1]
    after = _read_counts(tokens, counts, n_words)
    last_only = logits.dim() == 2
    if last_only:
        logits, scale = logits[:, None], scale[:, None]
    if counts is not None and steps == 1:
        # Generation's step of one token: a word's bias follows from its count after that token
        # (0, 1 or 2: none, both biases, the first), so no positions to find, no columns to pick.
        on_read, on_once = scale[..., :1], scale[..., 1:]
        by_count = torch.cat([torch.zeros_like(on_read), on_read + on_once, on_read], dim=-1)
        logits.add_(by_count.gather(2, after[:, None].long()))
        words = None
    else:
        first, second = _first_two_positions(tokens, counts, n_words)
        # Only the words read get a bias, so the masks below need only their columns: read from
        # nothing, the T tokens hold at most T words, [B, T, T] instead of [B, T, V] (a whole
        # recipe's are 30x smaller); after earlier pieces (--bptt), those pieces' words too.
        # The words read come first in each row; the rest are words never read.
        read_by_end = first < steps  # a word read before these tokens has first = -1
        width = min(steps, n_words) if counts is None else int(read_by_end.sum(1).max())
        words = read_by_end.to(torch.uint8).argsort(dim=1, descending=True, stable=True)
        words = words[:, :width]
        at = torch.arange(steps - logits.shape[1], steps, device=tokens.device)[None, :, None]
        # Word v is read at position t once its first position is at most t, and read once
        # until its second position.
        read = first.gather(1, words)[:, None] <= at
        once = read & (second.gather(1, words)[:, None] > at)
        bias = read * scale[..., :1] + once * scale[..., 1:]
        logits.scatter_add_(2, words[:, None].expand(-1, logits.shape[1], -1), bias)
    if checklist is not None:
        items, effect = checklist
        if words is None:
            once, rows = (after == 1)[:, None], items
        else:
            rows = items[words]
        logits.add_(torch.matmul(once.to(items.dtype), rows) @ effect)
    return (logits[:, 0] if last_only else logits), after


def _read_counts(tokens: torch.Tensor, counts: torch.Tensor | None, n_words: int) -> torch.Tensor:
    """[B, n_words] uint8: how often each word was read by the end of `tokens`, those `counts`
    before included, saturating at 2."""
    if counts is not None and tokens.shape[1] == 1:
        # Generation's step: one word a row changes, so copy the counts and set that one.
        rows, word = torch.arange(len(tokens), device=tokens.device), tokens[:, 0]
        after = counts.clone()
        after[rows, word] = (counts[rows, word] + 1).clamp_(max=2)
        return after
    seen = torch.zeros(tokens.shape[0], n_words, dtype=torch.long, device=tokens.device)
    seen.scatter_add_(1, tokens, torch.ones_like(tokens))
    if counts is not None:
        seen += counts
    return seen.clamp_(max=2).to(torch.uint8)


def _first_two_positions(
    tokens: torch.Tensor, counts: torch.Tensor | None, n_words: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, n_words] each: the first and the second position of each word in `tokens` [B, T]; T
    for one absent, -1 for one `counts` says was read before these tokens."""
    batch, steps = tokens.shape
    positions = torch.arange(steps, device=tokens.device).expand(batch, steps)
    absent = torch.full((batch, n_words), steps, dtype=torch.long, device=tokens.device)
    first = absent.scatter_reduce(1, tokens, positions, reduce="amin")
    firsts = first.gather(1, tokens) == positions
    second = absent.scatter_reduce(1, tokens, positions.masked_fill(firsts, steps), reduce="amin")
    if counts is None:
        return first, second
    # A word read once before: its first position here is its second.
    second = torch.where(counts == 1, first, second).masked_fill(counts >= 2, -1)
    return first.masked_fill(counts >= 1, -1), second


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


def detach(state: ModelState) -> ModelState:
    """The state without its history, so that the next update's gradient stops at it."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    return tuple(detach(part) for part in state)  # type: ignore[return-value]
