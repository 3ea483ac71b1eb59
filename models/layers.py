"""Cheaper equivalents of the stock layers the models use: dropout, and the pre-norm transformer
encoder layer and stack written out around it.

Torch's CPU dropout draws one double per element through `bernoulli_` (~10 ns each): it was a
third of a transformer training step. `Dropout` draws 8 keep/drop decisions per 64-bit random
number, about 6x cheaper for the forward and backward together. `EncoderLayer` and
`AttentionStack` have the parameters and state_dict keys of nn.TransformerEncoderLayer(norm_first,
gelu, batch_first) and nn.TransformerEncoder, and compute the same function (tests compare them),
so that their four dropouts can be this one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_LEVELS = 256  # one random byte per decision


def effective_p(p: float) -> float:
    """The drop probability `Dropout(p)` applies: p rounded to a multiple of 1/256."""
    return round(p * _LEVELS) / _LEVELS


class Dropout(nn.Module):
    """nn.Dropout(p) with the mask drawn from random bytes: an element is dropped when its byte is
    below round(256 p), and the kept ones are scaled by 1 / (1 - effective_p(p)), so the expectation
    is exact. It uses torch's default generator, so torch.manual_seed and resume reproduce it."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.cut = round(p * _LEVELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.cut == 0:
            return x
        return x * keep_mask(x, self.cut).to(x.dtype).mul_(_LEVELS / (_LEVELS - self.cut))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def keep_mask(x: torch.Tensor, cut: int) -> torch.Tensor:
    """A bool tensor shaped like x, each element True with probability 1 - cut/256."""
    n = x.numel()
    # the full int64 range: random_() alone stops at 2**63 - 1, which biases every eighth byte
    words = torch.empty((n + 7) // 8, dtype=torch.int64, device=x.device).random_(-2**63, 2**63 - 1)
    return words.view(torch.uint8)[:n].view(x.shape) >= cut


class SelfAttention(nn.Module):
    """nn.MultiheadAttention(d, heads, dropout, batch_first=True) as self-attention: the same
    parameters (in_proj_weight, in_proj_bias, out_proj) and initialisation."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d, d))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * d))
        self.out_proj = nn.Linear(d, d)
        self.drop = Dropout(dropout)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).view(b, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        if self.training and self.drop.cut:  # SDPA's CPU kernels would drop with bernoulli_
            scores = (q * (1 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)
            weights = scores.masked_fill(pad[:, None, None, :], float("-inf")).softmax(-1)
            out = self.drop(weights) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=~pad[:, None, None, :])
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))


class EncoderLayer(nn.Module):
    """nn.TransformerEncoderLayer(d, heads, ff, dropout, "gelu", batch_first=True, norm_first=True)."""

    def __init__(self, d: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.self_attn = SelfAttention(d, heads, dropout)
        self.linear1 = nn.Linear(d, ff)
        self.linear2 = nn.Linear(ff, d)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.dropout, self.dropout1, self.dropout2 = Dropout(dropout), Dropout(dropout), Dropout(dropout)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout1(self.self_attn(self.norm1(x), pad))
        return x + self.dropout2(self.linear2(self.dropout(F.gelu(self.linear1(self.norm2(x))))))


class AttentionStack(nn.Module):
    """nn.TransformerEncoder over EncoderLayers, with its final LayerNorm. Unlike the stock stack,
    whose layers are deep copies of one, each layer gets its own initialisation."""

    def __init__(self, d: int, heads: int, ff: int, dropout: float, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(d, heads, ff, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, src_key_padding_mask: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, src_key_padding_mask)
        return self.norm(x)


class _GRUSteps(torch.autograd.Function):
    """One GRU layer's recurrence over precomputed input gates gi = x W_ih^T + b_ih ([T, B, 3d]),
    with torch's gate equations and a zero initial state, and a hand-written backward through time.
    Autograd records ~30 small ops per step; here a step costs 6 ops forward and 3 backward,
    because everything that does not depend on the recurrence is computed once over all steps."""

    @staticmethod
    def forward(ctx, gi: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
        steps, b, d3 = gi.shape
        d = d3 // 3
        hs = gi.new_zeros(steps + 1, b, d)  # hs[t + 1] = h_t
        gh = gi.new_empty(steps, b, d3)  # h_{t-1} W_hh^T + b_hh
        rz = gi.new_empty(steps, b, 2 * d)  # reset and update gates
        n = gi.new_empty(steps, b, d)
        w_t = w_hh.t()
        for t in range(steps):
            torch.addmm(b_hh, hs[t], w_t, out=gh[t])
            torch.add(gi[t, :, :2 * d], gh[t, :, :2 * d], out=rz[t]).sigmoid_()
            torch.addcmul(gi[t, :, 2 * d:], rz[t, :, :d], gh[t, :, 2 * d:], out=n[t]).tanh_()
            torch.lerp(n[t], hs[t], rz[t, :, d:], out=hs[t + 1])  # n + z (h_prev - n)
        ctx.save_for_backward(gh, rz, n, hs, w_hh)
        return hs[1:]

    @staticmethod
    def backward(ctx, d_out: torch.Tensor):
        gh, rz, n, hs, w_hh = ctx.saved_tensors
        steps, b, d = d_out.shape
        r, z = rz[..., :d], rz[..., d:]
        # d(gate pre-activation) = dh_t * factor: the factors of r, z and W_hn h, for all steps at once
        dn = (1 - z) * (1 - n * n)
        factor = torch.stack([dn * gh[..., 2 * d:] * r * (1 - r), (hs[:-1] - n) * z * (1 - z), dn * r], dim=2)
        dh_all = torch.empty_like(d_out)
        d_gh = torch.empty_like(factor)  # [T, B, 3, d]
        dh = d_out[-1]
        for t in reversed(range(steps)):
            dh_all[t] = dh
            torch.mul(dh[:, None, :], factor[t], out=d_gh[t])
            if t:
                dh = torch.addmm(torch.addcmul(d_out[t - 1], dh, z[t]), d_gh[t].view(b, 3 * d), w_hh)
        d_gi = d_gh.clone()
        d_gi[:, :, 2] = dh_all * dn  # the input side of n is not multiplied by r
        flat = d_gh.view(-1, 3 * d)
        return d_gi.view(steps, b, 3 * d), flat.t() @ hs[:-1].reshape(-1, d), flat.sum(0)


def gru_train_forward(rnn: nn.GRU, x: torch.Tensor, drop: Dropout) -> torch.Tensor:
    """rnn(x)[0] (batch first, zero initial state) with `drop` between layers, through _GRUSteps."""
    h = x.transpose(0, 1)  # time-major: each step's slice is contiguous
    for k in range(rnn.num_layers):
        if k:
            h = drop(h)
        gi = F.linear(h, getattr(rnn, f"weight_ih_l{k}"), getattr(rnn, f"bias_ih_l{k}"))
        w_hh = getattr(rnn, f"weight_hh_l{k}")  # the recurrence in the weights' dtype, under autocast too
        h = _GRUSteps.apply(gi.to(w_hh.dtype).contiguous(), w_hh, getattr(rnn, f"bias_hh_l{k}"))
    return h.transpose(0, 1)
