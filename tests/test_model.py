"""RecurrentLM against the lecture's dense network: one-hot input -> nn.LSTM/nn.GRU -> Linear;
carried state, dropout, parameters. The first layer's two paths: tests/test_recurrence.py."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hpc_rnn.cli import UserError
from hpc_rnn.config import ModelConfig
from hpc_rnn.model import RecurrentLM

N_WORDS = 37
CELLS = ["lstm", "gru"]


def _model(cell: str, *, hidden: int = 16, layers: int = 1, dropout: float = 0.0) -> RecurrentLM:
    torch.manual_seed(0)
    return RecurrentLM(
        N_WORDS, ModelConfig(cell=cell, hidden=hidden, layers=layers, dropout=dropout)
    )


def _tokens(batch: int = 3, steps: int = 11) -> torch.Tensor:
    return torch.randint(0, N_WORDS, (batch, steps), generator=torch.Generator().manual_seed(1))


def _random_state(model: RecurrentLM, batch: int):
    g = torch.Generator().manual_seed(2)
    shape = (model.cfg.layers, batch, model.cfg.hidden)
    h = torch.randn(shape, generator=g)
    return (h, torch.randn(shape, generator=g)) if model.cfg.cell == "lstm" else h


def _loss(logits: torch.Tensor, state) -> torch.Tensor:
    # The final state enters the loss too, so gradients through it are checked as well.
    targets = torch.arange(logits.shape[0] * logits.shape[1]).reshape(logits.shape[:2]) % N_WORDS
    ce = F.cross_entropy(logits.reshape(-1, N_WORDS), targets.reshape(-1))
    states = state if isinstance(state, tuple) else (state,)
    return ce + sum(s.square().mean() for s in states)


def one_hot_reference(model: RecurrentLM) -> tuple[nn.Module, nn.Linear, dict]:
    """The lecture's dense network with `model`'s weights, and which of its parameters
    corresponds to which of the model's (with a transpose for the input weight)."""
    cfg = model.cfg
    cell = {"lstm": nn.LSTM, "gru": nn.GRU}[cfg.cell]
    rnn = cell(N_WORDS, cfg.hidden, num_layers=cfg.layers, batch_first=True)
    out = nn.Linear(cfg.hidden, N_WORDS)
    pairs = {
        "input_weight": (rnn.weight_ih_l0, True),
        "hidden_weight": (rnn.weight_hh_l0, False),
        "input_bias": (rnn.bias_ih_l0, False),
        "hidden_bias": (rnn.bias_hh_l0, False),
        "output.weight": (out.weight, False),
        "output.bias": (out.bias, False),
    }
    for layer in range(1, cfg.layers):
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            pairs[f"upper.{kind}_l{layer - 1}"] = (getattr(rnn, f"{kind}_l{layer}"), False)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, (ref, transposed) in pairs.items():
            ref.copy_(params[name].t() if transposed else params[name])
    return rnn, out, pairs


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [1, 2])
def test_equals_dense_one_hot_network_outputs_and_gradients(cell: str, layers: int) -> None:
    model = _model(cell, layers=layers)
    rnn, out, pairs = one_hot_reference(model)
    tokens = _tokens()
    state = _random_state(model, tokens.shape[0])

    logits, final = model(tokens, state)
    one_hot = F.one_hot(tokens, N_WORDS).float()
    hidden, ref_final = rnn(one_hot, state)
    ref_logits = out(hidden)

    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=0)
    for got, want in zip(final, ref_final, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)

    _loss(logits, final).backward()
    _loss(ref_logits, ref_final).backward()
    params = dict(model.named_parameters())
    assert set(pairs) == set(params), "every parameter has a counterpart in the dense network"
    for name, (ref, transposed) in pairs.items():
        want = ref.grad.t() if transposed else ref.grad
        torch.testing.assert_close(params[name].grad, want, atol=1e-5, rtol=0, msg=name)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("functional", [False, True])
def test_carried_state_continues_the_sequence(cell: str, functional: bool) -> None:
    model = _model(cell, layers=2).eval()
    model._functional = functional
    tokens = _tokens(steps=12)
    with torch.no_grad():
        whole, whole_state = model(tokens)
        first, state = model(tokens[:, :5])
        second, halves_state = model(tokens[:, 5:], state)
        last, last_state = model(tokens, last_only=True)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, atol=1e-5, rtol=0)
    torch.testing.assert_close(halves_state, whole_state, atol=1e-5, rtol=0)
    assert last.shape == (tokens.shape[0], N_WORDS)
    torch.testing.assert_close(last, whole[:, -1])
    torch.testing.assert_close(last_state, whole_state)


@pytest.mark.parametrize("cell", CELLS)
def test_multilayer_dropout_trains_and_eval_is_deterministic(cell: str) -> None:
    model = _model(cell, layers=3, dropout=0.5)
    tokens = _tokens()
    logits_a, state = model(tokens)
    logits_b, _ = model(tokens)
    assert not torch.equal(logits_a, logits_b), "dropout is active in training"
    _loss(logits_a, state).backward()
    assert all(p.grad is not None for p in model.parameters())

    model.eval()
    with torch.no_grad():
        eval_a, _ = model(tokens)
        eval_b, _ = model(tokens)
    assert torch.equal(eval_a, eval_b)


def test_state_parameters_checkpoint_keys_and_init() -> None:
    model = _model("lstm", hidden=16, layers=2)
    h, c = model.init_state(4, "cpu")
    assert h.shape == c.shape == (2, 4, 16)
    assert not h.any() and not c.any()
    assert _model("gru", hidden=16, layers=2).init_state(4, "cpu").shape == (2, 4, 16)

    dense_lstm = 4 * 16 * (N_WORDS + 16 + 2) + 4 * 16 * (16 + 16 + 2)
    assert model.count_parameters() == dense_lstm + 16 * N_WORDS + N_WORDS
    # The identity fed to the fused path is a constant, not a checkpointed weight.
    assert "identity" not in model.state_dict()
    bound = 1 / math.sqrt(16)
    for p in (model.input_weight, model.hidden_weight, model.input_bias, model.hidden_bias):
        assert p.abs().max() <= bound


def test_unknown_cell_is_refused_by_the_config() -> None:
    with pytest.raises(UserError, match="--cell must be one of lstm, gru"):
        ModelConfig(cell="rnn")


def _copy_model(cell: str, layers: int = 1, checklist: int = 0) -> RecurrentLM:
    torch.manual_seed(0)
    cfg = ModelConfig(cell=cell, hidden=16, layers=layers, copy=True, checklist=checklist)
    return RecurrentLM(N_WORDS, cfg)


@pytest.mark.parametrize("cell", CELLS)
def test_copy_biases_fall_on_the_words_read_so_far_and_more_on_those_read_once(cell: str) -> None:
    # Output layer and scale weights zero, scale biases (1.5, 0.25): a logit is 1.5 where its
    # word has been read at or before that position in the sequence, 1.75 where it has been
    # read exactly once (an unchecked item of the list), else 0.
    model = _copy_model(cell)
    with torch.no_grad():
        model.output.weight.zero_()
        model.output.bias.zero_()
        model.copy_scale.weight.zero_()
        model.copy_scale.bias.copy_(torch.tensor([1.5, 0.25]))
    tokens = _tokens(batch=3, steps=11)
    logits, _ = model(tokens)
    repeated = 0
    for b in range(3):
        for t in range(11):
            read = tokens[b, : t + 1].tolist()
            bias = {0: 0.0, 1: 1.75}
            expected = torch.tensor([bias.get(read.count(v), 1.5) for v in range(N_WORDS)])
            assert torch.equal(logits[b, t], expected), (b, t)
            repeated += len(set(read)) < len(read)
    assert repeated, "the tokens must repeat a word to tell read once from read twice"
    last, _ = model(tokens, last_only=True)
    assert torch.equal(last, logits[:, -1])


def test_checklist_moves_every_logit_by_what_is_read_once_so_far() -> None:
    # Everything else zero: the logits at a position are the sum of `items` over the words read
    # exactly once up to it, times `effect`. A word read a second time (an ingredient the
    # directions used) leaves the sum.
    model = _copy_model("lstm", checklist=2)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in (model.output.weight, model.output.bias, model.copy_scale.weight):
            p.zero_()
        model.copy_scale.bias.zero_()
        model.checklist_items.copy_(torch.rand(N_WORDS, 2, generator=g))
        model.checklist_effect.copy_(torch.randn(2, N_WORDS, generator=g))
    tokens = _tokens(batch=3, steps=40)
    logits, _ = model(tokens)
    for b in range(3):
        for t in range(40):
            read = tokens[b, : t + 1].tolist()
            once = [v for v in set(read) if read.count(v) == 1]
            expected = model.checklist_items[once].sum(0) @ model.checklist_effect
            torch.testing.assert_close(logits[b, t], expected, rtol=1e-5, atol=1e-5)


def test_checklist_needs_the_copy_bias() -> None:
    with pytest.raises(UserError, match=r"--checklist .* needs --copy"):
        ModelConfig(checklist=4)


@pytest.mark.parametrize("cell, checklist", [("lstm", 0), ("gru", 0), ("lstm", 3)])
def test_copy_state_carries_the_words_read_across_calls(cell: str, checklist: int) -> None:
    # Generation feeds a recipe a word at a time: the words read in earlier calls must keep
    # their bias, so pieces with the carried state give the logits of one call on the whole.
    model = _copy_model(cell, layers=2, checklist=checklist).eval()
    if checklist:
        with torch.no_grad():
            model.checklist_effect.normal_()
    tokens = _tokens(batch=3, steps=12)
    whole, _ = model(tokens)
    state = None
    pieces = []
    for chunk in (tokens[:, :5], tokens[:, 5:6], tokens[:, 6:]):
        out, state = model(chunk, state)
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces, 1), whole, rtol=1e-5, atol=1e-6)
    # And as generation calls it: one word a call, the last position's logits only.
    state = None
    steps = []
    for t in range(tokens.shape[1]):
        out, state = model(tokens[:, t : t + 1], state, last_only=True)
        steps.append(out)
    torch.testing.assert_close(torch.stack(steps, 1), whole, rtol=1e-5, atol=1e-6)
    # Rows selected and joined as generation does keep their own words read.
    picked = model.select_rows(state, torch.tensor([2, 0]))
    joined = model.join_rows([model.select_rows(state, torch.tensor([r])) for r in (2, 0)])
    nxt = torch.tensor([[1], [2]])
    torch.testing.assert_close(model(nxt, picked)[0], model(nxt, joined)[0])
    alone, _ = model(tokens[2:3])
    after, _ = model(nxt[:1], model.select_rows(state, torch.tensor([2])))
    with_next, _ = model(torch.cat([tokens[2:3], nxt[:1]], 1))
    torch.testing.assert_close(after[:, -1], with_next[:, -1], rtol=1e-5, atol=1e-6)
    assert alone.shape == (1, 12, N_WORDS)


def test_copy_scale_learns_and_a_plain_model_has_none() -> None:
    model = _copy_model("lstm")
    logits, state = model(_tokens())
    _loss(logits, state[0]).backward()
    assert model.copy_scale.weight.grad.abs().sum() > 0
    assert _model("lstm").copy_scale is None
    plain = sum(p.numel() for p in _model("lstm").parameters())
    assert model.count_parameters() == plain + 2 * (16 + 1)
