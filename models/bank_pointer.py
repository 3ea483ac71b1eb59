"""Pointer over the candidate bank (vector task, bank_pointer=True).

One predicted vector retrieves one neighbourhood of the bank, yet users keep returning to several
of their history's places. As the location task's pointer family copies ids, bank row j scores
    p_j = g softmax_j(cos(pred, bank_j) / tau) + (1 - g) sum_t attn_t [row_t == j + 1],
a gated mix of a generated distribution (learned temperature tau) and attention over the history
steps whose vectors are bank rows (seq "row": row + 1, 0 = none). A sample with no such step
keeps the generated distribution alone (g = 1). A bank row that is the all-zero vector (a place
unseen in train, as Geolife's bank holds it: the location task's "unseen" class) has no cosine;
its generated logit is a learned function of the last state instead (`novel`), so the model can
say "somewhere new", as a next-location classifier scores its unseen class. The bank differs per
split, so the model cannot hold it: forward returns a PointerOutput the task scores against a bank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.config import ModelError

EPS = 1e-9  # log(p + EPS): a row neither generated nor copied stays finite
TAU0 = 0.1  # initial temperature of the generated softmax


@dataclass
class PointerOutput:
    """What a bank-pointer model outputs for a batch; `log_p(unit_bank)` scores a bank."""
    pred: torch.Tensor  # [B, D] generated vector
    gate: torch.Tensor  # [B, 1] weight of the generated distribution (1 where nothing can be copied)
    attn: torch.Tensor  # [B, T] attention over history steps, 0 at steps not in the bank
    rows: torch.Tensor  # [B, T] bank row + 1 of each step, 0 = none
    log_tau: torch.Tensor  # scalar, log of the generated softmax's temperature
    novel: torch.Tensor  # [B, 1] generated logit of the bank's all-zero rows (an unseen place)

    def probs(self, unit_bank: torch.Tensor) -> torch.Tensor:
        """[B, M] probabilities of the rows of a bank of unit vectors."""
        if self.rows.numel() and int(self.rows.max()) > len(unit_bank):
            raise ModelError(f"bank_pointer: a history step points at bank row {int(self.rows.max()) - 1}, the bank "
                             f"has {len(unit_bank)} rows; seq 'row' must index this split's bank: prepare the data again")
        logits = F.normalize(self.pred, dim=-1) @ unit_bank.T / self.log_tau.exp()
        zero = (unit_bank == 0).all(-1)  # normalised zero rows stay zero: no direction to compare
        gen = torch.where(zero[None, :], self.novel.to(logits.dtype), logits).softmax(-1)
        copied = gen.new_zeros(len(gen), len(unit_bank) + 1).scatter_add_(1, self.rows, self.attn.to(gen.dtype))
        return self.gate * gen + (1 - self.gate) * copied[:, 1:]

    def log_p(self, unit_bank: torch.Tensor) -> torch.Tensor:
        return torch.log(self.probs(unit_bank) + EPS)


@dataclass
class PointerEnsemble:
    """Several models' PointerOutputs for one batch (a k-fold fit's folds) served as one: the
    mean of their probabilities; `pred` the mean of their unit vectors."""
    members: list

    @property
    def pred(self) -> torch.Tensor:
        return torch.stack([F.normalize(m.pred, dim=-1) for m in self.members]).mean(0)

    def probs(self, unit_bank: torch.Tensor) -> torch.Tensor:
        return torch.stack([m.probs(unit_bank) for m in self.members]).mean(0)

    def log_p(self, unit_bank: torch.Tensor) -> torch.Tensor:
        return torch.log(self.probs(unit_bank) + EPS)


BankScored = (PointerOutput, PointerEnsemble)  # outputs scored by log_p(bank), not by cosine


class BankPointer(nn.Module):
    """Attention of the last state over the history's states (only at steps with a bank row), a
    gate on the last state, and the generated softmax's learned temperature."""

    def __init__(self, d: int):
        super().__init__()
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.gate = nn.Linear(d, 1)
        self.log_tau = nn.Parameter(torch.full((), math.log(TAU0)))
        self.novel = nn.Linear(d, 1)

    def forward(self, pred, h, last, pad, seq: dict[str, torch.Tensor]) -> PointerOutput:
        if "row" not in seq:
            raise ModelError("bank_pointer=True: the batches carry no seq 'row' (each history step's bank row); "
                             "prepare the dataset again with this nextsweep, or set bank_pointer false")
        copyable = (seq["row"] > 0) & ~pad
        scores = (self.key(h) @ self.query(last)[:, :, None]).squeeze(-1) / math.sqrt(h.shape[-1])
        # a finite fill: a sample with no copyable step gets a uniform softmax, zeroed here, not NaN
        attn = scores.masked_fill(~copyable, torch.finfo(scores.dtype).min).softmax(-1) * copyable
        g = torch.where(copyable.any(-1, keepdim=True), torch.sigmoid(self.gate(last)), 1.0)
        return PointerOutput(pred, g, attn, seq["row"] * copyable, self.log_tau, self.novel(last))


LOSS = "bank_nce"  # the loss name a bank pointer trains with: its NLL over the train bank


def loss_problem(bank_pointer: bool, loss: str) -> str | None:
    """Why a model with this bank_pointer setting cannot train with `loss` (for the task, the
    space checks and proposals), or None."""
    if bank_pointer and loss != LOSS:
        return f"bank_pointer=True trains with loss {LOSS}; set loss {LOSS}"
    return None
