"""The shared context encoder, the six sequence bodies, and the next-location model around them.

Histories are right-padded (batch.lengths says where each ends); every body returns one vector
per position and the model reads the last real one. Output: log-probabilities over locations.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.config import ModelConfig
from models.layers import AttentionStack, Dropout, gru_train_forward

SEQ_EMBEDDINGS = ("tod", "weekday", "dur", "days_before")


class ContextEncoder(nn.Module):
    """Location embedding plus optional user / time / weekday / duration / recency / position
    embeddings, summed; each feature can be switched off."""

    def __init__(self, cfg: ModelConfig, cards: dict[str, int]):
        super().__init__()
        e, d = cfg.emb, cfg.d_model
        self.loc = nn.Embedding(cards["loc"], e, padding_idx=0)
        names = [n for n in SEQ_EMBEDDINGS + ("user", "position") if getattr(cfg, f"use_{n}")]
        self.cards = {n: cards[n] for n in names}
        self.extra = nn.ModuleDict({n: nn.Embedding(cards[n], e) for n in names})
        self.proj = nn.Linear(e, d) if e != d else nn.Identity()
        self.norm = nn.LayerNorm(d)
        self.drop = Dropout(cfg.dropout)
        for emb in [self.loc, *self.extra.values()]:  # small init: a tied head starts near uniform
            nn.init.normal_(emb.weight, std=0.02)
        with torch.no_grad():
            self.loc.weight[0].zero_()

    def forward(self, seq: dict[str, torch.Tensor], user: torch.Tensor, lengths: torch.Tensor):
        tables, rows = [self.loc.weight], [seq["loc"]]
        for name, emb in self.extra.items():
            if name == "user":
                idx = user[:, None]
            elif name == "position":  # steps back from the end: 0 = the latest stay
                idx = lengths[:, None] - 1 - torch.arange(seq["loc"].shape[1], device=lengths.device)[None, :]
            else:
                idx = seq[name]
            tables.append(emb.weight)
            rows.append(idx.clamp(0, self.cards[name] - 1))
        return self.drop(self.norm(self.proj(_SummedLookup.apply(len(tables), *tables, *rows))))


class _SummedLookup(torch.autograd.Function):
    """sum_k tables[k][rows[k]], the rows broadcast to [B, T] (a user's [B, 1]): the embeddings'
    sum as F.embedding computes it, with the first table's row 0 as its padding_idx. Its backward
    is one index_add_ per table, ~40 us cheaper each than embedding's dense backward on the CPU."""

    @staticmethod
    def forward(ctx, n: int, *args):
        tables, rows = args[:n], args[n:]
        out = F.embedding(rows[0], tables[0])
        for table, idx in zip(tables[1:], rows[1:]):
            out += F.embedding(idx, table)  # broadcasts [B, 1, d] over T
        ctx.n, ctx.shapes = n, [t.shape for t in tables]
        ctx.save_for_backward(*rows)
        return out

    @staticmethod
    def backward(ctx, grad):
        grads = []
        for shape, idx in zip(ctx.shapes, ctx.saved_tensors):
            g = grad if idx.shape[1] == grad.shape[1] else grad.sum(1, keepdim=True)
            grads.append(g.new_zeros(shape).index_add_(0, idx.reshape(-1), g.reshape(-1, shape[1])))
        grads[0][0] = 0  # padding_idx=0: the padding row never learns
        return None, *grads, *([None] * ctx.n)


def _attention_stack(cfg: ModelConfig, layers: int) -> AttentionStack:
    return AttentionStack(cfg.d_model, cfg.heads, max(1, round(cfg.d_model * cfg.ff_ratio)), cfg.dropout, layers)


class TransformerBody(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.stack = _attention_stack(cfg, cfg.layers)

    def forward(self, x, pad):
        return self.stack(x, src_key_padding_mask=pad)


class RecurrentBody(nn.Module):
    def __init__(self, cfg: ModelConfig, cell: type[nn.RNNBase]):
        super().__init__()
        self.rnn = cell(cfg.d_model, cfg.d_model, cfg.layers, batch_first=True,
                        dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.drop = Dropout(cfg.dropout)  # between layers, when training a GRU on the CPU

    def forward(self, x, pad):  # right padding: outputs up to lengths-1 never see the pads
        if self.training and isinstance(self.rnn, nn.GRU) and x.device.type == "cpu":
            return gru_train_forward(self.rnn, x, self.drop)  # same function, cheaper backward
        return self.rnn(x)[0]


class HybridBody(nn.Module):
    """GRU layers, then one pre-norm self-attention layer over their outputs."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.rnn = RecurrentBody(cfg, nn.GRU)
        self.attn = _attention_stack(cfg, 1)

    def forward(self, x, pad):
        return self.attn(self.rnn(x, pad), src_key_padding_mask=pad)


class HRMBody(nn.Module):
    """Hierarchical Reasoning Model: a fast low-level module iterated `l_cycles` times inside
    each of `h_cycles` cycles of a slow high-level module. As in the HRM paper, only the final
    low- and high-level steps carry gradients (one-step gradient), so memory stays constant.

    The initial states are fixed, not learned (as in the paper): under the one-step gradient a
    learned initial state gets no gradient whenever an earlier step overwrites it, so it would
    only count against the parameter budget. They are zeros, so the first step sees just x."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.high = _attention_stack(cfg, cfg.layers)
        self.low = _attention_stack(cfg, cfg.layers)
        self.steps, self.per_cycle = cfg.h_cycles * cfg.l_cycles, cfg.l_cycles

    def forward(self, x, pad):
        zh = zl = torch.zeros_like(x)
        with torch.no_grad():
            for step in range(1, self.steps):
                zl = self.low(zl + zh + x, src_key_padding_mask=pad)
                if step % self.per_cycle == 0:
                    zh = self.high(zh + zl, src_key_padding_mask=pad)
        zl = self.low(zl + zh + x, src_key_padding_mask=pad)
        return self.high(zh + zl, src_key_padding_mask=pad)


def make_body(cfg: ModelConfig) -> nn.Module:
    if cfg.family in ("transformer", "pointer"):
        return TransformerBody(cfg)
    if cfg.family == "gru":
        return RecurrentBody(cfg, nn.GRU)
    if cfg.family == "lstm":
        return RecurrentBody(cfg, nn.LSTM)
    if cfg.family == "hybrid":
        return HybridBody(cfg)
    return HRMBody(cfg)


class CopyHead(nn.Module):
    """Pointer part: attention of the last state over the history gives a distribution over the
    locations already visited; a learned gate mixes it with the generated distribution."""

    def __init__(self, d: int):
        super().__init__()
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.gate = nn.Linear(d, 1)

    def forward(self, h, last, locs, pad, gen_logp, n_classes):
        scores = (self.key(h) @ self.query(last)[:, :, None]).squeeze(-1) / math.sqrt(h.shape[-1])
        attn = scores.masked_fill(pad, float("-inf")).softmax(-1)
        p_copy = torch.zeros(len(last), n_classes, dtype=attn.dtype, device=attn.device)
        p_copy = p_copy.scatter_add(1, locs, attn)
        g = self.gate(last)
        return torch.logaddexp(F.logsigmoid(g) + gen_logp, F.logsigmoid(-g) + torch.log(p_copy + 1e-10))


class NextLocationModel(nn.Module):
    def __init__(self, cfg: ModelConfig, cards: dict[str, int]):
        super().__init__()
        self.n_classes = cards["loc"]
        self.encoder = ContextEncoder(cfg, cards)
        self.body = make_body(cfg)
        self.out_norm = nn.LayerNorm(cfg.d_model) if cfg.family in ("gru", "lstm") else nn.Identity()
        if cfg.tied_head:  # logits = h . location embedding (+ bias): saves classes x width
            self.to_emb = nn.Linear(cfg.d_model, cfg.emb) if cfg.emb != cfg.d_model else nn.Identity()
            self.bias = nn.Parameter(torch.zeros(self.n_classes))
            self.head = None
        else:
            self.head = nn.Linear(cfg.d_model, self.n_classes)
        self.copy = CopyHead(cfg.d_model) if cfg.family == "pointer" else None

    def logits(self, last: torch.Tensor) -> torch.Tensor:
        if self.head is not None:
            return self.head(last)
        return self.to_emb(last) @ self.encoder.loc.weight.T + self.bias

    def forward(self, seq: dict[str, torch.Tensor], user: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        pad = torch.arange(seq["loc"].shape[1], device=lengths.device)[None, :] >= lengths[:, None]
        h = self.body(self.encoder(seq, user, lengths), pad)
        last = self.out_norm(h[torch.arange(len(lengths), device=h.device), lengths - 1])
        logp = self.logits(last).log_softmax(-1)
        if self.copy is not None:
            logp = self.copy(h, last, seq["loc"], pad, logp, self.n_classes)
        return logp
