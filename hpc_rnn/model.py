"""The recurrent language model: the lecture's one-hot LSTM(256) -> Dense(n_words), without the one-hot.

A one-hot vector times the first layer's input weight is one row of that weight, so the first
layer keeps its input weight as an embedding-like table `input_weight` [n_words, G*H] (the
transpose of `nn.LSTM(input_size=n_words).weight_ih_l0`) and gathers the rows of the input
words. Gate order and equations are PyTorch's, so weights copied from `nn.LSTM`/`nn.GRU` give the
same outputs; the softmax lives in the loss, the model returns logits.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from hpc_rnn.config import ModelConfig

# LSTM: (h, c), each [layers, batch, hidden]; GRU: h [layers, batch, hidden].
State = tuple[torch.Tensor, torch.Tensor] | torch.Tensor

_GATES = {"lstm": 4, "gru": 3}  # gate blocks per cell: LSTM i,f,g,o; GRU r,z,n
_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentLM(nn.Module):
    def __init__(self, n_words: int, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.cell not in _GATES:
            raise ValueError(f"unknown cell {cfg.cell!r}: choose one of {', '.join(_GATES)}")
        if cfg.layers < 1:
            raise ValueError(f"a model needs at least one layer, got {cfg.layers}")
        self.cfg = cfg
        self.n_words = n_words
        width = _GATES[cfg.cell] * cfg.hidden
        self.input_weight = nn.Parameter(torch.empty(n_words, width))
        self.input_bias = nn.Parameter(torch.empty(width))
        self.hidden_weight = nn.Parameter(torch.empty(width, cfg.hidden))
        self.hidden_bias = nn.Parameter(torch.empty(width))
        self.upper = (
            _CELLS[cfg.cell](
                cfg.hidden,
                cfg.hidden,
                num_layers=cfg.layers - 1,
                batch_first=True,
                # nn.LSTM warns about dropout with one layer: it only acts between its own layers.
                dropout=cfg.dropout if cfg.layers > 2 else 0.0,
            )
            if cfg.layers > 1
            else None
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.output = nn.Linear(cfg.hidden, n_words)
        # None picks the first layer's path by device; tests set True/False to compare the two.
        self._functional: bool | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's RNN initialisation for the first layer: uniform in ±1/sqrt(hidden)."""
        bound = 1.0 / math.sqrt(self.cfg.hidden)
        for p in (self.input_weight, self.input_bias, self.hidden_weight, self.hidden_bias):
            nn.init.uniform_(p, -bound, bound)

    def init_state(self, batch: int, device: torch.device | str) -> State:
        """The zero state a sequence starts from."""
        shape = (self.cfg.layers, batch, self.cfg.hidden)
        h = torch.zeros(shape, device=device, dtype=self.hidden_weight.dtype)
        return (h, torch.zeros_like(h)) if self.cfg.cell == "lstm" else h

    def count_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def forward(
        self, tokens: torch.Tensor, state: State | None = None, *, last_only: bool = False
    ) -> tuple[torch.Tensor, State]:
        """Logits [B, T, n_words] for tokens [B, T] (with `last_only`, [B, n_words] for the last
        position only), and the state after the last token, to carry into the next call."""
        if state is None:
            state = self.init_state(tokens.shape[0], tokens.device)
        lstm = self.cfg.cell == "lstm"
        first = (state[0][:1], state[1][:1]) if lstm else state[:1]
        # = one-hot @ W_ih^T without building the one-hot. F.embedding, not indexing: its CPU
        # backward is deterministic, which bitwise-exact resume needs.
        gates = F.embedding(tokens, self.input_weight)
        functional = self._functional
        if functional is None:
            functional = tokens.device.type == "cuda"
        run_first = _first_layer_functional if functional else _first_layer_loop
        out, final = run_first(self, gates, first)
        if self.upper is not None:
            upper = (state[0][1:], state[1][1:]) if lstm else state[1:]
            out, upper = self.upper(self.dropout(out), upper)
            if lstm:
                final = (torch.cat([final[0], upper[0]]), torch.cat([final[1], upper[1]]))
            else:
                final = torch.cat([final, upper])
        if last_only:
            out = out[:, -1]
        return self.output(self.dropout(out)), final


def _first_layer_loop(
    model: RecurrentLM, gates: torch.Tensor, state: State
) -> tuple[torch.Tensor, State]:
    """The first layer as a Python loop over time: per word only the recurrent matmul is left,
    which on a CPU beats running an identity matmul over every input gate."""
    outs = []
    w_hh = model.hidden_weight.t()
    if model.cfg.cell == "lstm":
        # Both biases simply add to every gate, so they are added once for all time steps.
        gates = gates + (model.input_bias + model.hidden_bias)
        h, c = state[0][0], state[1][0]
        # unbind, not gates[:, t]: the backward of each indexing would zero-fill a gradient of
        # the whole [B, T, 4H] tensor, T times; unbind's backward stacks the T slices once.
        for x_t in gates.unbind(1):
            i, f, g, o = torch.addmm(x_t, h, w_hh).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        return torch.stack(outs, dim=1), (h[None], c[None])
    # GRU: b_hn sits inside r * (W_hn h + b_hn), so the hidden bias stays with the matmul.
    gates = gates + model.input_bias
    h = state[0]
    for x_t in gates.unbind(1):
        x_r, x_z, x_n = x_t.chunk(3, dim=1)
        h_r, h_z, h_n = torch.addmm(model.hidden_bias, h, w_hh).chunk(3, dim=1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = (1 - z) * n + z * h
        outs.append(h)
    return torch.stack(outs, dim=1), h[None]


def _first_layer_functional(
    model: RecurrentLM, gates: torch.Tensor, state: State
) -> tuple[torch.Tensor, State]:
    """The first layer through PyTorch's fused RNN (cuDNN on a GPU), with the gathered gates as
    input and the identity as input weight: identity @ gates + b_ih + W_hh h + b_hh."""
    # cuDNN cannot start from precomputed gates, hence the identity input weight. It is made per
    # call (a memset) rather than kept as a buffer that DDP would broadcast every step.
    identity = torch.eye(gates.shape[-1], device=gates.device, dtype=model.hidden_weight.dtype)
    weights = [identity, model.hidden_weight, model.input_bias, model.hidden_bias]
    # Arguments: has_biases, num_layers, dropout, train, bidirectional, batch_first.
    flags = (True, 1, 0.0, model.training, False, True)
    if model.cfg.cell == "lstm":
        out, h, c = torch._VF.lstm(gates, state, weights, *flags)
        return out, (h, c)
    out, h = torch._VF.gru(gates, state, weights, *flags)
    return out, h
