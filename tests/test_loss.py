import pytest
import torch

from hpc_rnn.loss import first_argmax


@pytest.mark.parametrize("words", [1, 5, 64, 200, 6007])
def test_first_argmax_agrees_with_argmax_ties_included(words: int) -> None:
    # Rounded logits tie often, across blocks and inside them; all-equal rows tie everywhere.
    gen = torch.Generator().manual_seed(words)
    logits = torch.randint(0, 4, (3, 7, words), generator=gen).float()
    logits[0, 0] = 0.0
    logits[1, 2, -1] = 9.0  # the maximum in the last, possibly short, block
    assert torch.equal(first_argmax(logits), logits.argmax(-1))
