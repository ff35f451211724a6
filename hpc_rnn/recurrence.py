"""How the model's first recurrent layer runs: one function, `first_layer`, and two ways of
computing it from the rows its input words gather from the input weight.

- The loop (the CPU's way): a Python loop over time in which only the recurrent matmul is left
  per word, which on a CPU beats the fused kernel's identity matmul over every input gate. For
  the LSTM it is `_LSTMSequence`, with a hand-written backward; the GRU goes through autograd.
- The fused kernel (a GPU's way): PyTorch's RNN operator, which is cuDNN on a GPU. It cannot
  start from gathered gates, so it gets them as its input and the identity as its input weight.

Both follow PyTorch's equations and gate order (LSTM i, f, g, o; GRU r, z, n), so they equal
`nn.LSTM`/`nn.GRU` with the same weights; tests/test_recurrence.py holds them to each other and
to numerical gradients. What each path costs: docs/benchmarks.md.
"""

from __future__ import annotations

import warnings

import torch
from torch.nn import functional as F

# LSTM: (h, c), each [layers, batch, hidden]; GRU: h [layers, batch, hidden].
State = tuple[torch.Tensor, torch.Tensor] | torch.Tensor

GATES = {"lstm": 4, "gru": 3}  # gate blocks per cell: LSTM i,f,g,o; GRU r,z,n


def first_layer(
    cell: str,
    tokens: torch.Tensor,
    state: State,
    input_weight: torch.Tensor,
    input_bias: torch.Tensor,
    hidden_weight: torch.Tensor,
    hidden_bias: torch.Tensor,
    *,
    fused: bool | None = None,
    training: bool = True,
) -> tuple[torch.Tensor, State]:
    """The first layer over tokens [B, T] from `state` (one layer: [1, B, H] each): its outputs
    [B, T, H] and its final state.

    `input_weight` [n_words, G*H] is the transpose of nn.LSTM's `weight_ih_l0`, so a word's row
    is its one-hot times that weight. `fused` picks the path: None takes the fused kernel on a
    GPU and the loop elsewhere, True or False force one (tests compare them). `training` is the
    module's mode, which the fused kernel needs to keep what its backward uses.
    """
    if fused is None:
        fused = tokens.device.type == "cuda"
    # F.embedding rather than indexing: its CPU backward is deterministic, which bitwise-exact
    # resume needs.
    if fused:
        gates = F.embedding(tokens, input_weight)
        return _fused(cell, gates, state, input_bias, hidden_weight, hidden_bias, training)
    # Time-major [T, B, G]: the loop reads and writes one contiguous block per step.
    gates = F.embedding(tokens.t(), input_weight)
    if cell == "lstm":
        # Both biases simply add to every gate, so they are added once.
        out, h, c = _LSTMSequence.apply(
            gates, input_bias + hidden_bias, state[0][0], state[1][0], hidden_weight
        )
        return out, (h[None], c[None])
    return _gru_loop(gates, state, input_bias, hidden_weight, hidden_bias)


def _gru_loop(
    gates: torch.Tensor,
    state: torch.Tensor,
    input_bias: torch.Tensor,
    hidden_weight: torch.Tensor,
    hidden_bias: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    # b_hn sits inside r * (W_hn h + b_hn), so the hidden bias stays with the matmul.
    gates = gates + input_bias
    h = state[0]
    w_hh = hidden_weight.t()
    outs = []
    # unbind, not gates[t]: the backward of each indexing would zero-fill a gradient of the
    # whole [T, B, 3H] tensor, T times; unbind's backward stacks the T slices once.
    for x_t in gates.unbind(0):
        x_r, x_z, x_n = x_t.chunk(3, dim=1)
        h_r, h_z, h_n = torch.addmm(hidden_bias, h, w_hh).chunk(3, dim=1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = (1 - z) * n + z * h
        outs.append(h)
    return torch.stack(outs, dim=1), h[None]


class _LSTMSequence(torch.autograd.Function):
    """The first LSTM layer over T steps from gathered input gates, with a hand-written backward.

    Autograd's graph of the same loop builds a score of small ops and a weight-gradient matmul
    per step; here each step writes into preallocated [T, ...] buffers, and the recurrent
    weight's gradient is one [4H, T*B] x [T*B, H] matmul after the loop.
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
        # The gate gradient goes to the embedding's backward as it is, without a copy.
        return d_pre, flat.sum(0), dh, dc, torch.mm(flat.t(), inputs)


def _fused(
    cell: str,
    gates: torch.Tensor,
    state: State,
    input_bias: torch.Tensor,
    hidden_weight: torch.Tensor,
    hidden_bias: torch.Tensor,
    training: bool,
) -> tuple[torch.Tensor, State]:
    """identity @ gates + b_ih + W_hh h + b_hh through PyTorch's fused RNN, gates [B, T, G]."""
    # The identity stands where the input weight goes. It is made per call (a memset) rather
    # than kept as a buffer that DDP would broadcast every step.
    identity = torch.eye(gates.shape[-1], device=gates.device, dtype=hidden_weight.dtype)
    weights = [identity, hidden_weight, input_bias, hidden_bias]
    # Arguments: has_biases, num_layers, dropout, train, bidirectional, batch_first.
    flags = (True, 1, 0.0, training, False, True)
    with warnings.catch_warnings():
        # cuDNN copies these four into one buffer on every call and warns that it does. The
        # identity is new on every call anyway, and the copy is small next to a step.
        warnings.filterwarnings("ignore", "RNN module weights are not part of single contiguous")
        if cell == "lstm":
            out, h, c = torch._VF.lstm(gates, state, weights, *flags)
            return out, (h, c)
        out, h = torch._VF.gru(gates, state, weights, *flags)
        return out, h
