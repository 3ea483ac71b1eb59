"""Models over given per-step vectors (category and vector tasks): a vector encoder in front of
the same sequence bodies as next-location, and a class or vector head on the last state.

With `copy` (vector task, inputs and targets in one space) the vector head is a pointer in vector
space: attention of the last state over the history's states weighs the history's unit input
vectors, and a learned gate mixes that sum with the generated unit vector,
pred = sigmoid(g) unit(out(last)) + sigmoid(-g) sum_t attn_t unit(x_t). Near-orthogonal place
vectors make a few weighted history vectors retrieve those places, as a next-location pointer
copies ids.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from data_io import DatasetInfo
from models.bank_pointer import BankPointer, PointerOutput
from models.class_copy import ClassCopy
from models.config import ModelConfig
from models.layers import Dropout
from models.networks import make_body


class VectorEncoder(nn.Module):
    """Projection of the D-dim inputs to the model width, plus optional group (user), position
    and (history_classes) history-step class embeddings and (unknown_flag) a learned vector on
    steps whose input is all zero, summed, normalised."""

    def __init__(self, cfg: ModelConfig, info: DatasetInfo):
        super().__init__()
        d = cfg.d_model
        self.proj = nn.Linear(info.input_dim, d)
        self.user = nn.Embedding(info.n_users, d) if cfg.use_user else None
        self.n_pos = max(1, info.max_history)
        self.position = nn.Embedding(self.n_pos, d) if cfg.use_position else None
        for emb in (self.user, self.position):
            if emb is not None:
                nn.init.normal_(emb.weight, std=0.02)
        self.cls = _class_embedding(len(info.classes), d) if cfg.history_classes else None
        self.norm = nn.LayerNorm(d)
        self.drop = Dropout(cfg.dropout)
        # an all-zero input vector is a place with no known vector (e.g. unseen in train): mark it
        self.unknown = nn.Parameter(0.02 * torch.randn(d)) if cfg.unknown_flag else None

    def forward(self, seq: dict[str, torch.Tensor], user: torch.Tensor, lengths: torch.Tensor):
        x = self.proj(seq["vec"])
        if self.user is not None:
            x = x + self.user(user.clamp(0, self.user.num_embeddings - 1))[:, None, :]
        if self.position is not None:  # steps back from the end: 0 = the latest step
            steps = lengths[:, None] - 1 - torch.arange(x.shape[1], device=x.device)[None, :]
            x = x + self.position(steps.clamp(0, self.n_pos - 1))
        if self.cls is not None:  # class + 1 of each step; 0 (unknown, padding) adds nothing
            x = x + self.cls(seq["cls"])
        if self.unknown is not None:
            x = x + (seq["vec"] == 0).all(-1, keepdim=True) * self.unknown
        return self.drop(self.norm(x))


def _class_embedding(n_classes: int, d: int) -> nn.Embedding:
    emb = nn.Embedding(n_classes + 1, d, padding_idx=0)
    nn.init.normal_(emb.weight, std=0.02)
    with torch.no_grad():
        emb.weight[0].zero_()
    return emb


class ClassHead(nn.Module):
    def __init__(self, d: int, n_classes: int):
        super().__init__()
        self.out = nn.Linear(d, n_classes)

    def forward(self, last, seq, lengths):
        return self.out(last).log_softmax(-1)


class VectorHead(nn.Module):
    """The next vector; with `delta`, the last input vector plus a predicted change."""

    def __init__(self, d: int, target_dim: int, delta: bool):
        super().__init__()
        self.out = nn.Linear(d, target_dim)
        self.delta = delta

    def forward(self, last, seq, lengths):
        pred = self.out(last)
        if self.delta:
            pred = pred + seq["vec"][torch.arange(len(lengths), device=pred.device), lengths - 1]
        return pred


class VectorCopy(nn.Module):
    """Pointer part of the vector head: attention of the last state over the history weighs the
    history's unit input vectors; a learned gate mixes their sum with the generated unit vector."""

    def __init__(self, d: int):
        super().__init__()
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.gate = nn.Linear(d, 1)

    def forward(self, pred, h, last, vec, pad):
        scores = (self.key(h) @ self.query(last)[:, :, None]).squeeze(-1) / math.sqrt(h.shape[-1])
        attn = scores.masked_fill(pad, float("-inf")).softmax(-1)
        copied = (attn[:, :, None] * F.normalize(vec, dim=-1)).sum(1)
        g = torch.sigmoid(self.gate(last))
        return g * F.normalize(pred, dim=-1) + (1 - g) * copied


class VectorInputModel(nn.Module):
    def __init__(self, cfg: ModelConfig, info: DatasetInfo, head: nn.Module, copy: bool = False):
        super().__init__()
        self.encoder = VectorEncoder(cfg, info)
        self.body = make_body(cfg)
        self.out_norm = nn.LayerNorm(cfg.d_model) if cfg.family in ("gru", "lstm") else nn.Identity()
        self.head = head
        self.copy = VectorCopy(cfg.d_model) if copy else None
        self.bank_pointer = BankPointer(cfg.d_model) if cfg.bank_pointer else None  # last: no RNG use moves
        self.class_copy = ClassCopy(cfg.d_model) if cfg.class_copy else None

    def forward(self, seq: dict[str, torch.Tensor], user: torch.Tensor,
                lengths: torch.Tensor) -> torch.Tensor | PointerOutput:
        pad = torch.arange(seq["vec"].shape[1], device=lengths.device)[None, :] >= lengths[:, None]
        h = self.body(self.encoder(seq, user, lengths), pad)
        last = self.out_norm(h[torch.arange(len(lengths), device=h.device), lengths - 1])
        out = self.head(last, seq, lengths)
        if self.copy is not None:
            out = self.copy(out, h, last, seq["vec"], pad)
        if self.bank_pointer is not None:  # the task scores a bank with it (models.bank_pointer)
            out = self.bank_pointer(out, h, last, pad, seq)
        if self.class_copy is not None:
            out = self.class_copy(out, h, last, seq["cls"], pad)
        return out
