"""The cheaper layers (models/layers.py) compute what the stock torch layers they replace compute."""

import pytest
import torch
from torch import nn

from models.config import ModelConfig
from models.layers import AttentionStack, Dropout, effective_p, gru_train_forward, set_matmul
from models.networks import RecurrentBody


def _pad(lengths: list[int], width: int) -> torch.Tensor:
    return torch.arange(width)[None, :] >= torch.tensor(lengths)[:, None]


def _stock_stack(d, heads, ff, p, layers) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(d, heads, ff, p, activation="gelu", batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d), enable_nested_tensor=False)


@pytest.mark.parametrize("train", [False, True])
def test_attention_stack_matches_the_stock_transformer_encoder(train):
    torch.manual_seed(0)
    ours = AttentionStack(24, 4, 40, 0.0, 2).double()
    stock = _stock_stack(24, 4, 40, 0.0, 2).double()
    stock.load_state_dict(ours.state_dict())  # same keys and shapes, both ways
    ours.load_state_dict(stock.state_dict())
    ours.train(train), stock.train(train)
    x = torch.randn(3, 7, 24, dtype=torch.float64)
    pad = _pad([7, 4, 1], 7)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    a, b = ours(xa, src_key_padding_mask=pad), stock(xb, src_key_padding_mask=pad)
    real = ~pad
    assert torch.allclose(a[real], b[real], atol=1e-10)
    a[real].square().sum().backward()
    b[real].square().sum().backward()
    assert torch.allclose(xa.grad, xb.grad, atol=1e-10)
    for (name, pa), pb in zip(ours.named_parameters(), stock.parameters()):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-10), name


@pytest.mark.parametrize("dropout", [0.0, 0.1])  # 0.1: the native attention kernel's path
def test_bf16_matmul_trains_the_linear_maps_in_bf16_and_evaluates_in_fp32(dropout):
    """`matmul: bf16` changes training outputs by bf16 rounding only, gives every weight a gradient
    close to fp32's, keeps the state dict as it is, and leaves evaluation exactly fp32."""
    torch.manual_seed(0)
    ours = AttentionStack(32, 4, 64, dropout, 2)
    x, pad = torch.randn(4, 9, 32), _pad([9, 5, 3, 1], 9)
    results = {}
    for matmul in ("fp32", "bf16"):
        set_matmul(ours, matmul)
        ours.train()
        torch.manual_seed(1)  # the same dropout masks for both
        out = ours(x, src_key_padding_mask=pad)
        ours.zero_grad()
        out[~pad].square().sum().backward()
        ours.eval()
        results[matmul] = (out.detach(), {n: p.grad.clone() for n, p in ours.named_parameters()},
                           ours(x, src_key_padding_mask=pad))
    (out32, grads32, eval32), (out16, grads16, eval16) = results["fp32"], results["bf16"]
    real = ~pad
    assert not torch.equal(out16[real], out32[real])  # bf16 did run
    assert torch.allclose(out16[real], out32[real], atol=0.05, rtol=0.02)
    assert out16.dtype == torch.float32
    for name, g in grads32.items():
        assert torch.linalg.norm(grads16[name] - g) <= 0.05 * torch.linalg.norm(g) + 1e-4, name
    assert torch.equal(eval16, eval32)  # validation stays fp32


def test_attention_stack_has_the_stock_parameter_count_and_independent_layers():
    ours, stock = AttentionStack(32, 4, 64, 0.1, 3), _stock_stack(32, 4, 64, 0.1, 3)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in stock.parameters())
    first, second = ours.layers[0].linear1.weight, ours.layers[1].linear1.weight
    assert not torch.equal(first, second)  # the stock stack deep-copies one layer


def test_attention_dropout_in_training_drops_attention_weights():
    torch.manual_seed(0)
    stack = AttentionStack(16, 2, 32, 0.5, 1)
    x, pad = torch.randn(2, 5, 16), _pad([5, 3], 5)
    stack.eval()
    base = stack(x, src_key_padding_mask=pad)
    stack.train()
    torch.manual_seed(1)
    one = stack(x, src_key_padding_mask=pad)
    torch.manual_seed(1)
    again = stack(x, src_key_padding_mask=pad)
    assert torch.equal(one, again)  # the masks come from torch's seeded generator
    assert not torch.allclose(one, base)


def test_dropout_rate_scale_and_gradient():
    drop = Dropout(0.3)
    torch.manual_seed(0)
    x = torch.ones(1_000_000, requires_grad=True)
    y = drop(x)
    kept = y != 0
    p = effective_p(0.3)
    assert p == 77 / 256
    share = 1 - kept.double().mean().item()
    assert abs(share - p) < 5 * (p * (1 - p) / x.numel()) ** 0.5  # five binomial sigmas
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d y / d x = mask / (1 - p)
    drop.eval()
    assert drop(x) is x
    assert Dropout(0.0).train()(x) is x


def test_dropout_add_to_is_the_residual_plus_the_same_dropped_input():
    drop = Dropout(0.4)
    res, x = torch.randn(6, 50), torch.randn(6, 50, requires_grad=True)
    torch.manual_seed(3)
    fused = drop.add_to(res, x)
    fused.sum().backward()
    fused_grad, x.grad = x.grad, None
    torch.manual_seed(3)
    plain = res + drop(x)
    plain.sum().backward()
    assert torch.allclose(fused, plain, atol=1e-6) and not torch.allclose(fused, res + x)
    assert torch.equal(fused_grad, x.grad)  # the mask / (1 - p) in both
    drop.eval()
    assert torch.equal(drop.add_to(res, x), res + x)


def test_dropout_draws_a_fresh_mask_per_call_shaped_like_the_input():
    drop = Dropout(0.5)
    x = torch.ones(4, 3, 5)
    first, second = drop(x), drop(x)
    assert first.shape == x.shape
    assert not torch.equal(first, second)


@pytest.mark.parametrize("layers", [1, 2])
def test_gru_train_forward_matches_nn_gru_values_and_gradients(layers):
    torch.manual_seed(0)
    rnn = nn.GRU(6, 6, layers, batch_first=True).double()
    x = torch.randn(3, 5, 6, dtype=torch.float64, requires_grad=True)
    ours = gru_train_forward(rnn, x, Dropout(0.0))
    stock = rnn(x)[0]
    assert torch.allclose(ours, stock, atol=1e-12)
    weights = torch.randn_like(stock)  # a loss that weighs every step's output differently
    g_ours = torch.autograd.grad((ours * weights).sum(), [x, *rnn.parameters()])
    g_stock = torch.autograd.grad((stock * weights).sum(), [x, *rnn.parameters()])
    for name, a, b in zip(["x", *dict(rnn.named_parameters())], g_ours, g_stock):
        assert torch.allclose(a, b, atol=1e-12), name


def test_gru_train_forward_passes_gradcheck():
    torch.manual_seed(1)
    rnn = nn.GRU(3, 3, 1, batch_first=True).double()
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, *w: gru_train_forward(rnn, x, Dropout(0.0)), (x, *rnn.parameters()))


def test_recurrent_body_trains_a_gru_through_the_cheaper_backward_with_dropout_between_layers():
    cfg = ModelConfig(family="gru", d_model=8, layers=2, dropout=0.5)
    body = RecurrentBody(cfg, nn.GRU)
    x, pad = torch.randn(2, 4, 8), _pad([4, 2], 4)
    body.eval()
    assert torch.equal(body(x, pad), body.rnn(x)[0])
    body.train()
    torch.manual_seed(3)
    dropped = body(x, pad)
    torch.manual_seed(3)
    assert torch.equal(dropped, body(x, pad))
    assert not torch.allclose(dropped, body.rnn.eval()(x)[0])
