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
        gates = gates + bias  # once for all steps, rather than an add per step
        acts = gates.new_empty(steps, batch, width)  # i, f, g, o after their nonlinearity
        sigmoid_if, tanh_g, sigmoid_o = acts.split((2 * hid, hid, hid), dim=2)
        i, f, g, o = acts.split(hid, dim=2)
        cells = gates.new_empty(steps + 1, batch, hid)
        tanh_cells = gates.new_empty(steps, batch, hid)
        hs = gates.new_empty(batch, steps + 1, hid)  # [B, T, H] outputs without a copy
        hs[:, 0] = h0
        cells[0] = c0
        w_t = hidden_weight.t()
        for t in range(steps):
            torch.addmm(gates[t], hs[:, t], w_t, out=acts[t])
            sigmoid_if[t].sigmoid_()
            tanh_g[t].tanh_()
            sigmoid_o[t].sigmoid_()
            c = cells[t + 1]
            torch.mul(f[t], cells[t], out=c)
            c.addcmul_(i[t], g[t])
            torch.tanh(c, out=tanh_cells[t])
            torch.mul(o[t], tanh_cells[t], out=hs[:, t + 1])
        ctx.save_for_backward(acts, cells, tanh_cells, hs, hidden_weight)
        return hs[:, 1:], hs[:, steps].clone(), cells[steps].clone()

    @staticmethod
    def backward(ctx, d_out, d_h, d_c):
        acts, cells, tanh_cells, hs, hidden_weight = ctx.saved_tensors
        steps, batch, width = acts.shape
        hid = width // 4
        i, f, g, o = acts.split(hid, dim=2)
        # The gradient of the gate pre-activations, per step. Each gate's is dc (i, f, g) or dh
        # (o) times a factor the forward already fixed (sigmoid' = s(1 - s), tanh' = 1 - t^2),
        # so the factors are computed for all steps at once and the loop only multiplies.
        d_pre = torch.empty_like(acts)
        d_i, d_f, d_g, d_o = d_pre.split(hid, dim=2)
        torch.mul(i, 1 - i, out=d_i).mul_(g)
        torch.mul(f, 1 - f, out=d_f).mul_(cells[:-1])
        torch.mul(g, g, out=d_g).neg_().add_(1).mul_(i)
        torch.mul(o, 1 - o, out=d_o).mul_(tanh_cells)
        d_ifg = d_pre.view(steps, batch, 4, hid)[:, :, :3]
        # dc gains dh * o * (1 - tanh(c)^2) at each step.
        through_c = torch.mul(tanh_cells, tanh_cells).neg_().add_(1).mul_(o)
        dh = d_h.clone() if d_h is not None else acts.new_zeros(batch, hid)
        dc = d_c.clone() if d_c is not None else acts.new_zeros(batch, hid)
        for t in reversed(range(steps)):
            if d_out is not None:
                dh += d_out[:, t]
            dc.addcmul_(dh, through_c[t])
            d_ifg[t].mul_(dc[:, None])
            d_o[t].mul_(dh)
            dc.mul_(f[t])
            dh = torch.mm(d_pre[t], hidden_weight)
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
