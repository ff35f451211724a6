"""The recurrent language model: the lecture's one-hot LSTM(256) -> Dense(n_words), without the one-hot.

A one-hot vector times the first layer's input weight is one row of that weight, so the first
layer keeps its input weight as an embedding-like table `input_weight` [n_words, G*H] (the
transpose of `nn.LSTM(input_size=n_words).weight_ih_l0`) and gathers the rows of the input
words. Gate order and equations are PyTorch's, so weights copied from `nn.LSTM`/`nn.GRU` give the
same outputs; the softmax lives in the loss, the model returns logits.
"""

from __future__ import annotations

import math
import warnings

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
        # The gathered rows = one-hot @ W_ih^T without building the one-hot. F.embedding, not
        # indexing: its CPU backward is deterministic, which bitwise-exact resume needs.
        functional = self._functional
        if functional is None:
            functional = tokens.device.type == "cuda"
        if functional:
            gates = F.embedding(tokens, self.input_weight)
            out, final = _first_layer_functional(self, gates, first)
        else:
            # Time-major [T, B, G]: the loop reads and writes one contiguous block per step.
            gates = F.embedding(tokens.t(), self.input_weight)
            out, final = _first_layer_loop(self, gates, first)
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
    """The first layer as a loop over time, from time-major gates [T, B, G]: per word only the
    recurrent matmul is left, which on a CPU beats an identity matmul over every input gate."""
    if model.cfg.cell == "lstm":
        # Both biases simply add to every gate, so they are added once.
        bias = model.input_bias + model.hidden_bias
        out, h, c = _LSTMSequence.apply(gates, bias, state[0][0], state[1][0], model.hidden_weight)
        return out, (h[None], c[None])
    # GRU: b_hn sits inside r * (W_hn h + b_hn), so the hidden bias stays with the matmul.
    gates = gates + model.input_bias
    h = state[0]
    w_hh = model.hidden_weight.t()
    outs = []
    # unbind, not gates[t]: the backward of each indexing would zero-fill a gradient of the
    # whole [T, B, 3H] tensor, T times; unbind's backward stacks the T slices once.
    for x_t in gates.unbind(0):
        x_r, x_z, x_n = x_t.chunk(3, dim=1)
        h_r, h_z, h_n = torch.addmm(model.hidden_bias, h, w_hh).chunk(3, dim=1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = (1 - z) * n + z * h
        outs.append(h)
    return torch.stack(outs, dim=1), h[None]


class _LSTMSequence(torch.autograd.Function):
    """The first LSTM layer over T steps from gathered input gates, with a hand-written backward.

    Autograd's graph of the same loop costs ~20 small ops and a weight-gradient matmul per step;
    here each step writes into preallocated [T, ...] buffers, and the recurrent weight's
    gradient is one [4H, T*B] x [T*B, H] matmul after the loop. Same equations and gate order
    (i, f, g, o) as nn.LSTM; tests compare both directions against it and gradcheck in double.
    """

    @staticmethod
    def forward(ctx, gates, bias, h0, c0, hidden_weight):
        steps, batch, width = gates.shape
        hid = width // 4
        acts = gates.new_empty(steps, batch, width)  # i, f, g, o after their nonlinearity
        cells = gates.new_empty(steps + 1, batch, hid)
        tanh_cells = gates.new_empty(steps, batch, hid)
        hs = gates.new_empty(batch, steps + 1, hid)  # [B, T, H] outputs without a copy
        hs[:, 0] = h0
        cells[0] = c0
        w_t = hidden_weight.t()
        for t in range(steps):
            a = acts[t]
            torch.addmm(gates[t], hs[:, t], w_t, out=a)
            a.add_(bias)
            a[:, : 2 * hid].sigmoid_()
            a[:, 2 * hid : 3 * hid].tanh_()
            a[:, 3 * hid :].sigmoid_()
            c = cells[t + 1]
            torch.mul(a[:, hid : 2 * hid], cells[t], out=c)
            c.addcmul_(a[:, :hid], a[:, 2 * hid : 3 * hid])
            torch.tanh(c, out=tanh_cells[t])
            torch.mul(a[:, 3 * hid :], tanh_cells[t], out=hs[:, t + 1])
        ctx.save_for_backward(acts, cells, tanh_cells, hs, hidden_weight)
        return hs[:, 1:], hs[:, steps].clone(), cells[steps].clone()

    @staticmethod
    def backward(ctx, d_out, d_h, d_c):
        acts, cells, tanh_cells, hs, hidden_weight = ctx.saved_tensors
        steps, batch, width = acts.shape
        hid = width // 4
        d_pre = torch.empty_like(acts)  # gradient of the gate pre-activations, per step
        dh = d_h.clone() if d_h is not None else acts.new_zeros(batch, hid)
        dc = d_c.clone() if d_c is not None else acts.new_zeros(batch, hid)
        scratch = acts.new_empty(batch, hid)
        slope = acts.new_empty(batch, width)
        for t in reversed(range(steps)):
            if d_out is not None:
                dh += d_out[:, t]
            a, d, tanh_c = acts[t], d_pre[t], tanh_cells[t]
            i, f, g, o = a.split(hid, dim=1)
            # dc += dh * o * (1 - tanh(c)^2)
            torch.mul(tanh_c, tanh_c, out=scratch)
            dc.addcmul_(dh, scratch.neg_().add_(1).mul_(o))
            torch.mul(dc, g, out=d[:, :hid])
            torch.mul(dc, cells[t], out=d[:, hid : 2 * hid])
            torch.mul(dc, i, out=d[:, 2 * hid : 3 * hid])
            torch.mul(dh, tanh_c, out=d[:, 3 * hid :])
            dc.mul_(f)
            # Through the nonlinearities: sigmoid' = s - s^2, tanh' = 1 - t^2.
            torch.mul(a, a, out=slope).neg_()
            slope[:, : 2 * hid].add_(a[:, : 2 * hid])
            slope[:, 2 * hid : 3 * hid].add_(1)
            slope[:, 3 * hid :].add_(a[:, 3 * hid :])
            d.mul_(slope)
            dh = torch.mm(d, hidden_weight)
        flat = d_pre.view(steps * batch, width)
        inputs = hs[:, :-1].transpose(0, 1).reshape(steps * batch, hid)
        return d_pre, flat.sum(0), dh, dc, torch.mm(flat.t(), inputs)


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
    with warnings.catch_warnings():
        # cuDNN copies these four into one buffer on every call and warns that it does. The
        # identity is new on every call anyway; the copy is ~5 MB, one step's noise.
        warnings.filterwarnings("ignore", "RNN module weights are not part of single contiguous")
        if model.cfg.cell == "lstm":
            out, h, c = torch._VF.lstm(gates, state, weights, *flags)
            return out, (h, c)
        out, h = torch._VF.gru(gates, state, weights, *flags)
        return out, h
