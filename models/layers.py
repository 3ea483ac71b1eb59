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

from models import native

_LEVELS = 256  # one random byte per decision


def effective_p(p: float) -> float:
    """The drop probability `Dropout(p)` applies: p rounded to a multiple of 1/256."""
    return round(p * _LEVELS) / _LEVELS


class Dropout(nn.Module):
    """nn.Dropout(p) with the mask drawn from random bytes: an element is dropped when its byte is
    below round(256 p), and the kept ones are scaled by 1 / (1 - effective_p(p)), so the expectation
    is exact. It uses torch's default generator, so torch.manual_seed and resume reproduce it. On
    float32 CPU tensors the native kernel draws each byte from a hash of one seed from that generator
    (other masks than the PyTorch path's for the same seed, the same statistics)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.cut = round(p * _LEVELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.cut == 0:
            return x
        if _native_ok(x):
            return _NativeDropout.apply(x, None, self.cut, self._scale)
        return x * self._mask(x)

    def add_to(self, residual: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """residual + self(x), as one op (addcmul, or the native pass) when dropping."""
        if not self.training or self.cut == 0:
            return residual + x
        if x.shape == residual.shape and _native_ok(x, residual):  # the kernel does not broadcast
            return _NativeDropout.apply(x, residual, self.cut, self._scale)
        return torch.addcmul(residual, x, self._mask(x))

    @property
    def _scale(self) -> float:
        return _LEVELS / (_LEVELS - self.cut)

    def _mask(self, x: torch.Tensor) -> torch.Tensor:
        """The keep mask in x's dtype, scaled by 1 / (1 - p) (faster here than torch.where on scalars)."""
        return (random_bytes(x) >= self.cut).to(x.dtype).mul_(self._scale)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _native_ok(*xs: torch.Tensor) -> bool:
    """Whether the native kernels take these tensors: float32 on the CPU, and the kernels built here."""
    return all(x.dtype == torch.float32 and x.device.type == "cpu" for x in xs) and native.kernels() is not None


def _seed() -> int:
    """A kernel's mask seed, drawn from torch's default generator (so manual_seed and resume repeat it)."""
    return int(torch.empty((), dtype=torch.int64).random_())


class _NativeDropout(torch.autograd.Function):
    """(residual +) x * keep * scale in one native pass (models/native/dropout.c). The mask is a hash
    of a seed drawn from torch's default generator, so torch.manual_seed and resume reproduce it,
    and the backward redraws it from the seed instead of keeping it."""

    @staticmethod
    def forward(ctx, x, residual, cut: int, scale: float):
        ctx.args = (_seed(), cut, scale)
        return _apply_dropout(x, residual, *ctx.args)

    @staticmethod
    def backward(ctx, d_out):
        return _apply_dropout(d_out, None, *ctx.args), d_out if ctx.needs_input_grad[1] else None, None, None


def _apply_dropout(x: torch.Tensor, residual: torch.Tensor | None, seed: int, cut: int, scale: float) -> torch.Tensor:
    x = x.contiguous()
    residual = None if residual is None else residual.contiguous()
    out = torch.empty_like(x)
    threads = torch.get_num_threads() if x.numel() >= 1 << 15 else 1  # a thread per 32K elements at least
    native.kernels().dropout_apply(threads, x.numel(), seed, cut, scale, x.data_ptr(),
                                   None if residual is None else residual.data_ptr(), out.data_ptr())
    return out


class _NativeAttention(torch.autograd.Function):
    """The attention core of SelfAttention in training with dropout, in C (models/native/attention.c):
    from the in-projection's output [B, T, 3d] to the heads' merged output [B, T, d], with no head
    split or merge copies. Saves the softmax weights and a seed (drawn from torch's generator); the
    backward redraws the dropout mask from the seed."""

    @staticmethod
    def forward(ctx, qkv: torch.Tensor, pad: torch.Tensor, heads: int, cut: int, scale: float) -> torch.Tensor:
        qkv = qkv.contiguous()
        b, t, d3 = qkv.shape
        pad = pad.to(torch.uint8).contiguous()
        weights, out = qkv.new_empty(b, heads, t, t), qkv.new_empty(b, t, d3 // 3)
        ctx.args = (torch.get_num_threads(), b, t, heads, d3 // 3 // heads, cut, scale, _seed())
        native.kernels().attention_forward(*ctx.args, *(x.data_ptr() for x in (qkv, pad, weights, out)))
        ctx.save_for_backward(qkv, weights)
        return out

    @staticmethod
    def backward(ctx, d_out: torch.Tensor):
        qkv, weights = ctx.saved_tensors
        d_out, d_qkv = d_out.contiguous(), torch.empty_like(qkv)
        native.kernels().attention_backward(*ctx.args, *(x.data_ptr() for x in (qkv, weights, d_out, d_qkv)))
        return d_qkv, None, None, None, None


def random_bytes(x: torch.Tensor) -> torch.Tensor:
    """A uint8 tensor shaped like x of uniform random bytes, drawn 8 per 64-bit number."""
    n = x.numel()
    # the full int64 range: random_() alone stops at 2**63 - 1, which biases every eighth byte
    words = torch.empty((n + 7) // 8, dtype=torch.int64, device=x.device).random_(-2**63, 2**63 - 1)
    return words.view(torch.uint8)[:n].view(x.shape)


def bf16_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear computed in bfloat16 from fp32 input and weights, returned in fp32; its backward's
    matmuls run in bf16 too. What autocast does to this one op, with everything around it (norms,
    softmax, dropout, the native kernels, the heads) left in fp32."""
    bf16 = torch.bfloat16
    return F.linear(x.to(bf16), weight.to(bf16), None if bias is None else bias.to(bf16)).float()


def set_matmul(model: nn.Module, matmul: str) -> None:
    """Make the attention layers' linear maps (in and out projections, feed-forward) train in
    `matmul` ("fp32" or "bf16"); evaluation always runs them in fp32."""
    for m in model.modules():
        if isinstance(m, (SelfAttention, EncoderLayer)):
            m.bf16 = matmul == "bf16"


class SelfAttention(nn.Module):
    """nn.MultiheadAttention(d, heads, dropout, batch_first=True) as self-attention: the same
    parameters (in_proj_weight, in_proj_bias, out_proj) and initialisation."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.bf16 = False  # set_matmul
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d, d))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * d))
        self.out_proj = nn.Linear(d, d)
        self.drop = Dropout(dropout)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        linear = bf16_linear if self.training and self.bf16 else F.linear
        qkv = linear(x, self.in_proj_weight, self.in_proj_bias)
        if self.training and self.drop.cut and _native_ok(qkv):
            out = _NativeAttention.apply(qkv, pad, self.heads, self.drop.cut, self.drop._scale)
            return linear(out, self.out_proj.weight, self.out_proj.bias)
        q, k, v = qkv.view(b, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        if self.training and self.drop.cut:  # SDPA's CPU kernels would drop with bernoulli_
            scores = (q * (1 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)
            weights = scores.masked_fill(pad[:, None, None, :], float("-inf")).softmax(-1)
            out = self.drop(weights) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=~pad[:, None, None, :])
        return linear(out.transpose(1, 2).reshape(b, t, d), self.out_proj.weight, self.out_proj.bias)


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
        self.bf16 = False  # set_matmul

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        x = self.dropout1.add_to(x, self.self_attn(self.norm1(x), pad))
        linear = bf16_linear if self.training and self.bf16 else F.linear
        h = F.gelu(linear(self.norm2(x), self.linear1.weight, self.linear1.bias))
        return self.dropout2.add_to(x, linear(self.dropout(h), self.linear2.weight, self.linear2.bias))


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
    Autograd records ~30 small ops per step; here a step is 5 in-place ops forward and 3 backward,
    because everything that does not depend on the recurrence is computed once over all steps.
    These steps are latency-bound (a 64 x 112 x 336 matmul is ~30 us, each elementwise op 5-10 us),
    so each op saved counts: the biases enter the step's matmul as its addend, and nothing is
    allocated or copied inside the loops."""

    @staticmethod
    def forward(ctx, gi: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
        steps, b, d3 = gi.shape
        d = d3 // 3
        # g[t] = [r, z pre-activations: gi + b_hh + h W^T | W_hn h + b_hn]; r, z become the gates in place
        g = torch.cat([gi[..., :2 * d] + b_hh[:2 * d], b_hh[2 * d:].expand(steps, b, d)], dim=2)
        hs = gi.new_zeros(steps + 1, b, d)  # hs[t + 1] = h_t
        n = gi.new_empty(steps, b, d)
        w_t = w_hh.t()
        # per-step views made by unbind in one call each (Python indexing costs ~1 us a view)
        g_t, rz, r, z, ghn = (x.unbind(0) for x in (g, g[..., :2 * d], g[..., :d], g[..., d:2 * d], g[..., 2 * d:]))
        gin, n_t, h = gi[..., 2 * d:].unbind(0), n.unbind(0), hs.unbind(0)
        for t in range(steps):
            g_t[t].addmm_(h[t], w_t)
            rz[t].sigmoid_()
            torch.addcmul(gin[t], r[t], ghn[t], out=n_t[t]).tanh_()
            torch.lerp(n_t[t], h[t], z[t], out=h[t + 1])  # n + z (h_prev - n)
        ctx.save_for_backward(g, n, hs, w_hh)
        return hs[1:]

    @staticmethod
    def backward(ctx, d_out: torch.Tensor):
        g, n, hs, w_hh = ctx.saved_tensors
        steps, b, d = d_out.shape
        r, z, ghn = g[..., :d], g[..., d:2 * d], g[..., 2 * d:]
        # d(gate pre-activation) = dh_t * factor: the factors of r, z and W_hn h, for all steps at once
        dn = (1 - z) * (1 - n * n)
        factor = g.new_empty(steps, b, 3, d)
        torch.mul(dn * ghn, r * (1 - r), out=factor[:, :, 0])
        torch.mul(hs[:-1] - n, z * (1 - z), out=factor[:, :, 1])
        torch.mul(dn, r, out=factor[:, :, 2])
        dh = d_out.clone(memory_format=torch.contiguous_format)  # dh[t] = dL/dh_t, completed from t + 1 in the loop
        d_gh = torch.empty_like(factor)  # [T, B, 3, d]
        dh_t, dh_col, z_t, f_t, d_t = dh.unbind(0), dh[:, :, None, :].unbind(0), z.unbind(0), factor.unbind(0), d_gh.unbind(0)
        d_flat = d_gh.view(steps, b, 3 * d).unbind(0)
        for t in reversed(range(steps)):
            torch.mul(dh_col[t], f_t[t], out=d_t[t])
            if t:
                dh_t[t - 1].addcmul_(dh_t[t], z_t[t]).addmm_(d_flat[t], w_hh)
        flat = d_gh.view(-1, 3 * d)
        d_w, d_b = flat.t() @ hs[:-1].reshape(-1, d), flat.sum(0)
        torch.mul(dh, dn, out=d_gh[:, :, 2])  # the input side of n is not multiplied by r
        return d_gh.view(steps, b, 3 * d), d_w, d_b


class _NativeGRUSteps(torch.autograd.Function):
    """_GRUSteps with both loops in C (models/native/gru.c): float32 on the CPU. A step is one
    sgemm and one pass over its gates, against ~5 op dispatches (forward) and 3 (backward)."""

    @staticmethod
    def forward(ctx, gi: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
        steps, b, d3 = gi.shape
        w_hh, b_hh = w_hh.contiguous(), b_hh.contiguous()
        g, n, hs = torch.empty_like(gi), gi.new_empty(steps, b, d3 // 3), gi.new_zeros(steps + 1, b, d3 // 3)
        native.kernels().gru_forward(native.blas("sgemm_"), _threads(b), steps, b, d3 // 3,
                                     *(x.data_ptr() for x in (gi, w_hh, b_hh, g, n, hs)))
        ctx.save_for_backward(g, n, hs, w_hh)
        return hs[1:]

    @staticmethod
    def backward(ctx, d_out: torch.Tensor):
        g, n, hs, w_hh = ctx.saved_tensors
        steps, b, d = d_out.shape
        d_out = d_out.contiguous()
        dh, d_gi, d_gh = d_out.new_empty(b, d), torch.empty_like(g), torch.empty_like(g)
        native.kernels().gru_backward(native.blas("sgemm_"), _threads(b), steps, b, d,
                                      *(x.data_ptr() for x in (w_hh, g, n, hs, d_out, dh, d_gi, d_gh)))
        flat = d_gh.view(-1, 3 * d)
        return d_gi, flat.t() @ hs[:-1].reshape(-1, d), flat.sum(0)


def _threads(b: int) -> int:
    """Threads for a batch of b sequences: torch's, with at least 16 sequences each (a floor, not tuned)."""
    return max(1, min(torch.get_num_threads(), b // 16))


def _recurrence(gi: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
    """h_1..h_T of one layer: in C where it can run (float32, CPU, a compiler here), else _GRUSteps."""
    if _native_ok(gi, w_hh, b_hh):
        return _NativeGRUSteps.apply(gi, w_hh, b_hh)
    return _GRUSteps.apply(gi, w_hh, b_hh)


def gru_train_forward(rnn: nn.GRU, x: torch.Tensor, drop: Dropout) -> torch.Tensor:
    """rnn(x)[0] (batch first, zero initial state) with `drop` between layers, through _recurrence."""
    h = x.transpose(0, 1)  # time-major: each step's slice is contiguous
    for k in range(rnn.num_layers):
        if k:
            h = drop(h)
        gi = F.linear(h, getattr(rnn, f"weight_ih_l{k}"), getattr(rnn, f"bias_ih_l{k}"))
        w_hh = getattr(rnn, f"weight_hh_l{k}")  # the recurrence in the weights' dtype, under autocast too
        h = _recurrence(gi.to(w_hh.dtype).contiguous(), w_hh, getattr(rnn, f"bias_hh_l{k}"))
    return h.transpose(0, 1)
