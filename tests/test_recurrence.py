"""The first recurrent layer's two paths: the hand-written LSTM backward against numerical
gradients, and the loop against the fused kernel, outputs, final state and every gradient.
(Equality with nn.LSTM/nn.GRU through the whole model is tests/test_model.py's.)"""

from __future__ import annotations

import pytest
import torch

from hpc_rnn.recurrence import GATES, _LSTMSequence, first_layer

N_WORDS, BATCH, STEPS, HIDDEN = 23, 3, 7, 8


def _inputs(cell: str) -> tuple[torch.Tensor, tuple, list[torch.Tensor]]:
    """Tokens [B, T], a random one-layer state, and the four first-layer weights."""
    g = torch.Generator().manual_seed(4)
    width = GATES[cell] * HIDDEN
    tokens = torch.randint(0, N_WORDS, (BATCH, STEPS), generator=g)
    weights = [
        torch.randn(shape, generator=g) * 0.5
        for shape in ((N_WORDS, width), (width,), (width, HIDDEN), (width,))
    ]
    h = torch.randn(1, BATCH, HIDDEN, generator=g)
    state = (h, torch.randn(1, BATCH, HIDDEN, generator=g)) if cell == "lstm" else h
    return tokens, state, weights


@pytest.mark.parametrize("outputs", ["all", "sequence only"])
def test_hand_written_lstm_backward_matches_numerical_gradients(outputs: str) -> None:
    g = torch.Generator().manual_seed(3)
    steps, batch, hidden = 5, 3, 4
    args = [
        torch.randn(shape, generator=g, dtype=torch.double, requires_grad=True)
        for shape in ((steps, batch, 4 * hidden), (4 * hidden,), (batch, hidden), (batch, hidden))
    ]
    args.append(torch.randn(4 * hidden, hidden, generator=g, dtype=torch.double) * 0.5)
    args[-1].requires_grad_()

    def run(*a: torch.Tensor):
        out, h, c = _LSTMSequence.apply(*a)
        # "sequence only" leaves the final state unused, as training does: no gradient flows in.
        return (out, h, c) if outputs == "all" else out

    assert torch.autograd.gradcheck(run, args)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_loop_and_fused_kernel_agree_forward_and_backward(cell: str) -> None:
    tokens, state, weights = _inputs(cell)
    found = {}
    for fused in (False, True):
        leaves = [w.clone().requires_grad_() for w in weights]
        start = tuple(s.clone().requires_grad_() for s in state) if cell == "lstm" else None
        first = start if start is not None else state.clone().requires_grad_()
        out, final = first_layer(cell, tokens, first, *leaves, fused=fused)
        assert out.shape == (BATCH, STEPS, HIDDEN)
        finals = final if cell == "lstm" else (final,)
        # Every output position and the final state carry gradient, each with its own weight.
        probe = torch.linspace(-1, 1, out.numel()).reshape(out.shape)
        ((out * probe).sum() + sum(f.square().sum() for f in finals)).backward()
        starts = start if start is not None else (first,)
        grads = [p.grad for p in (*leaves, *starts)]
        found[fused] = [out.detach(), *(f.detach() for f in finals), *grads]
    for loop, kernel in zip(found[False], found[True], strict=True):
        torch.testing.assert_close(loop, kernel, atol=1e-5, rtol=1e-5)


def test_the_cpu_takes_the_hand_written_loop_unless_told() -> None:
    tokens, state, weights = _inputs("lstm")
    leaves = [w.requires_grad_() for w in weights]
    by_device, _ = first_layer("lstm", tokens, state, *leaves)
    forced, _ = first_layer("lstm", tokens, state, *leaves, fused=True)
    assert "LSTMSequence" in type(by_device.grad_fn).__name__
    assert "LSTMSequence" not in type(forced.grad_fn).__name__
