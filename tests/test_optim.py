"""FlatAdamW (models/optim.py) trains as torch's AdamW after clip_grad_norm_ does, and resumes."""

import pytest
import torch
from torch import nn

from models.optim import DetachedGradient, FlatAdamW


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Embedding(30, 16), nn.Linear(16, 24), nn.LayerNorm(24), nn.GELU(), nn.Linear(24, 5))


def _stock(model: nn.Module, lr: float, wd: float, fused: bool | None = None) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.dim() > 1]
    rest = [p for p in model.parameters() if p.dim() <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}], lr=lr,
                             fused=fused)


def _snapshot(model: nn.Module, opt: torch.optim.Optimizer, sched) -> dict:
    """Copies of what a resume checkpoint holds, safe from the training that goes on."""
    state = opt.state_dict()
    state["state"] = {k: {n: t.clone() for n, t in s.items()} for k, s in state["state"].items()}
    return {"model": {k: v.clone() for k, v in model.state_dict().items()}, "opt": state, "sched": sched.state_dict()}


def _loss(model: nn.Module, step: int, big: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(step)
    x, y = torch.randint(0, 30, (32, 6), generator=g), torch.randint(0, 5, (32,), generator=g)
    return nn.functional.cross_entropy(model(x).mean(1) * big, y)


@pytest.mark.parametrize("max_norm,big", [(0.5, 20.0), (100.0, 1.0), (0.0, 20.0)])
def test_flat_adamw_follows_adamw_after_clip_grad_norm(max_norm, big):
    ours, stock = _model(), _model()
    opt_a, opt_b = FlatAdamW(ours, 3e-3, 0.05, max_norm), _stock(stock, 3e-3, 0.05)
    clipped = 0
    for step in range(12):
        opt_a.zero_grad()
        _loss(ours, step, big).backward()
        opt_a.step()
        opt_b.zero_grad()
        _loss(stock, step, big).backward()
        if max_norm:
            clipped += float(nn.utils.clip_grad_norm_(stock.parameters(), max_norm)) > max_norm
        opt_b.step()
    assert (clipped > 0) == (big > 1 and max_norm > 0)  # the cases clip, or do not, as meant
    for (name, a), b in zip(ours.named_parameters(), stock.parameters()):
        assert torch.allclose(a, b, atol=2e-5), name


def test_parameters_and_gradients_stay_views_of_the_flat_tensors():
    model = _model()
    opt = FlatAdamW(model, 1e-3, 0.01, 1.0)
    flats = [g["params"][0] for g in opt.param_groups]
    assert len(flats) == 2 and sum(f.numel() for f in flats) == sum(p.numel() for p in model.parameters())
    for step in range(3):
        opt.zero_grad()
        _loss(model, step, 1.0).backward()
        opt.step()
    total = sum(float(f.grad.square().sum()) for f in flats)
    assert total > 0 and total == pytest.approx(sum(float(p.grad.square().sum()) for p in model.parameters()))
    for p in model.parameters():  # each parameter and gradient lives inside its group's flat storage
        assert any(p.untyped_storage().data_ptr() == f.untyped_storage().data_ptr() for f in flats)
        assert any(p.grad.untyped_storage().data_ptr() == f.grad.untyped_storage().data_ptr() for f in flats)


@pytest.mark.parametrize("misuse", ["set_to_none", "to_float64"])
def test_a_gradient_detached_from_the_flat_tensor_stops_the_step(misuse):
    model = _model()
    opt = FlatAdamW(model, 1e-3, 0.01, 1.0)
    _loss(model, 0, 1.0).backward()
    opt.step()  # the views as set: no error
    if misuse == "set_to_none":
        model.zero_grad(set_to_none=True)
    else:
        model.to(torch.float64)
    _loss(model, 1, 1.0).backward()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(DetachedGradient, match="'0.weight'"):
        opt.step()
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))  # nothing half-stepped


def test_state_dict_resumes_bit_for_bit_with_a_scheduler():
    model = _model()
    opt = FlatAdamW(model, 1e-2, 0.01, 1.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=10)  # moves lr and beta1
    for step in range(10):
        if step == 4:
            saved = _snapshot(model, opt, sched)
        opt.zero_grad()
        _loss(model, step, 20.0).backward()
        opt.step()
        sched.step()
    again = _model(seed=1)  # other weights until the state is loaded
    opt2 = FlatAdamW(again, 1e-2, 0.01, 1.0)
    sched2 = torch.optim.lr_scheduler.OneCycleLR(opt2, max_lr=1e-2, total_steps=10)
    again.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    for step in range(4, 10):
        opt2.zero_grad()
        _loss(again, step, 20.0).backward()
        opt2.step()
        sched2.step()
    for a, b in zip(model.parameters(), again.parameters()):
        assert torch.equal(a, b)


def test_loads_the_per_parameter_state_of_adamw_and_goes_on_as_it_would():
    """Resume checkpoints written before FlatAdamW hold fused AdamW's state over two groups of
    parameters; loaded, the flat optimizer continues that run's trajectory."""
    stock = _model()
    opt = _stock(stock, 1e-2, 0.05, fused=True)  # as the engine built it then
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=10)
    for step in range(10):
        if step == 4:
            saved = _snapshot(stock, opt, sched)
        opt.zero_grad()
        _loss(stock, step, 20.0).backward()
        nn.utils.clip_grad_norm_(stock.parameters(), 1.0)
        opt.step()
        sched.step()
    ours = _model(seed=1)
    flat = FlatAdamW(ours, 1e-2, 0.05, 1.0)
    sched2 = torch.optim.lr_scheduler.OneCycleLR(flat, max_lr=1e-2, total_steps=10)
    ours.load_state_dict(saved["model"])
    flat.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    assert [g["weight_decay"] for g in flat.param_groups] == [0.05, 0.0]
    for step in range(4, 10):
        flat.zero_grad()
        _loss(ours, step, 20.0).backward()
        flat.step()
        sched2.step()
    for (name, a), b in zip(ours.named_parameters(), stock.parameters()):
        assert torch.allclose(a, b, atol=2e-5), name
    with pytest.raises(ValueError, match="another model"):
        FlatAdamW(nn.Sequential(nn.Embedding(31, 16), nn.Linear(16, 24), nn.LayerNorm(24), nn.GELU(), nn.Linear(24, 5)),
                  1e-2, 0.05).load_state_dict(saved["opt"])
