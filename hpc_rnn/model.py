"""The recurrent language model: the lecture's one-hot LSTM(256) -> Dense(n_words), without the one-hot.

A one-hot vector times the first layer's input weight is one row of that weight, so the first
layer keeps its input weight as an embedding-like table `input_weight` [n_words, G*H] (the
transpose of `nn.LSTM(input_size=n_words).weight_ih_l0`) and gathers the rows of the input
words; `recurrence.first_layer` runs that layer. Layers above it are `nn.LSTM`/`nn.GRU`. Gate
order and equations are PyTorch's, so weights copied from `nn.LSTM`/`nn.GRU` give the same
outputs; the softmax lives in the loss, the model returns logits.

With `copy`, a reported variant beside the lecture's model, the words already read in the
recipe get a learned bias, and with `checklist` every logit moves with what the list still has
unchecked (`hpc_rnn.cache`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hpc_rnn import cache
from hpc_rnn.cache import ModelState
from hpc_rnn.config import ModelConfig
from hpc_rnn.recurrence import GATES, State, first_layer

_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentLM(nn.Module):
    def __init__(self, n_words: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_words = n_words
        width = GATES[cfg.cell] * cfg.hidden
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
        self.copy_scale = nn.Linear(cfg.hidden, cache.N_BIASES) if cfg.copy else None
        if cfg.checklist:
            self.checklist_items = nn.Parameter(torch.empty(n_words, cfg.checklist))
            self.checklist_effect = nn.Parameter(torch.empty(cfg.checklist, n_words))
        # The first layer's path: None picks by device; tests set True (fused) or False (loop).
        self._functional: bool | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's RNN initialisation for the first layer: uniform in ±1/sqrt(hidden)."""
        bound = 1.0 / math.sqrt(self.cfg.hidden)
        for p in (self.input_weight, self.input_bias, self.hidden_weight, self.hidden_bias):
            nn.init.uniform_(p, -bound, bound)
        if self.cfg.checklist:
            # No effect at first, and items of unequal weight so that the K sums learn apart.
            nn.init.uniform_(self.checklist_items, 0.0, 0.1)
            nn.init.zeros_(self.checklist_effect)

    def init_state(self, batch: int, device: torch.device | str) -> State:
        """The zero state a sequence starts from."""
        shape = (self.cfg.layers, batch, self.cfg.hidden)
        h = torch.zeros(shape, device=device, dtype=self.hidden_weight.dtype)
        return (h, torch.zeros_like(h)) if self.cfg.cell == "lstm" else h

    def count_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def forward(
        self, tokens: torch.Tensor, state: ModelState | None = None, *, last_only: bool = False
    ) -> tuple[torch.Tensor, ModelState]:
        """Logits [B, T, n_words] for tokens [B, T] (with `last_only`, [B, n_words] for the last
        position only), and the state after the last token, to carry into the next call."""
        counts = None
        if state is not None and self.copy_scale is not None:
            state, counts = state
        if state is None:
            state = self.init_state(tokens.shape[0], tokens.device)
        lstm = self.cfg.cell == "lstm"
        first = (state[0][:1], state[1][:1]) if lstm else state[:1]
        weights = (self.input_weight, self.input_bias, self.hidden_weight, self.hidden_bias)
        out, final = first_layer(
            self.cfg.cell, tokens, first, *weights, fused=self._functional, training=self.training
        )
        if self.upper is not None:
            upper = (state[0][1:], state[1][1:]) if lstm else state[1:]
            out, upper = self.upper(self.dropout(out), upper)
            if lstm:
                final = (torch.cat([final[0], upper[0]]), torch.cat([final[1], upper[1]]))
            else:
                final = torch.cat([final, upper])
        if last_only:
            out = out[:, -1]
        out = self.dropout(out)
        logits = self.output(out)
        if self.copy_scale is None:
            return logits, final
        checklist = (self.checklist_items, self.checklist_effect) if self.cfg.checklist else None
        logits, counts = cache.add_bias(logits, self.copy_scale(out), tokens, counts, checklist)
        return logits, (final, counts)

    def select_rows(self, state: ModelState, rows: torch.Tensor) -> ModelState:
        return cache.select_rows(state, rows, self.copy_scale is not None)

    def join_rows(self, states: list[ModelState]) -> ModelState:
        return cache.join_rows(states, self.copy_scale is not None)
