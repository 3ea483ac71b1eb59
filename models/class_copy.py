"""Class copy head for the category task (class_copy): the class-level analogue of the location
pointer. Next classes often repeat the history's (the most frequent history class is a strong
practitioner's baseline), which a model over place vectors alone cannot see; this head lets it copy
them. Attention of the last state over the history's states, steps of unknown class (cls 0)
masked, puts mass on each step's class; a learned gate mixes that with the generated distribution:
p_c = g softmax(logits)_c + (1 - g) sum_t attn_t [cls_t = c + 1]. A sample without a known class
step copies nothing (g = 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

CLASS_KEYS = ("history_classes", "class_copy")  # the model keys that need each history step's class
FLOOR = 1e-9  # added to the copied probabilities: their log stays finite


class ClassCopy(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.gate = nn.Linear(d, 1)

    def forward(self, logp: torch.Tensor, h: torch.Tensor, last: torch.Tensor, cls: torch.Tensor,
                pad: torch.Tensor) -> torch.Tensor:
        """logp [B, C] generated log-probs, h [B, T, d], last [B, d], cls [B, T] (class + 1, 0 =
        unknown), pad [B, T] -> mixed log-probs [B, C]."""
        known = (cls > 0) & ~pad
        some = known.any(1, keepdim=True)
        scores = (self.key(h) @ self.query(last)[:, :, None]).squeeze(-1) / math.sqrt(h.shape[-1])
        scores = torch.where(some, scores.masked_fill(~known, float("-inf")), 0.0)  # no row all -inf
        attn = scores.softmax(-1) * known
        p_copy = torch.zeros_like(logp).scatter_add(1, (cls - 1).clamp_min(0), attn)
        g = self.gate(last)
        log_gen = torch.where(some, F.logsigmoid(g), 0.0)  # nothing to copy: all mass generated
        log_copy = torch.where(some, F.logsigmoid(-g) + torch.log(p_copy + FLOOR), float("-inf"))
        return torch.logaddexp(log_gen + logp, log_copy).clamp(max=0.0)  # rounding never gives p > 1
