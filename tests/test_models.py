"""Model families, exact parameter counts, losses, metrics and the training engine."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from data_io import load_dataset
from data_io.batches import iter_batches
from models import (FAMILIES, ModelError, NonFiniteLoss, TrainConfig, build_model, count_params, evaluate, fit,
                    split_config)
from models.engine import _optimizer, _scheduler
from models.losses import Loss
from models.metrics import RankMetrics

SMALL = {"d_model": 32, "layers": 1, "heads": 2, "batch_size": 64, "dropout": 0.0}


@pytest.fixture(scope="module")
def data(synth_dir):
    return load_dataset(synth_dir)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("variant", [{}, {"tied_head": True}, {"tied_head": True, "emb_dim": 16},
                                     {"emb_dim": 48, "use_user": False, "use_position": False, "layers": 2}])
def test_count_params_is_exact(data, family, variant):
    cfg = {**SMALL, "family": family, **variant}
    model = build_model(cfg, data.info)
    assert count_params(cfg, data.info) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("family", FAMILIES)
def test_tied_head_counted_once(data, family):
    untied = count_params({**SMALL, "family": family}, data.info)
    tied = count_params({**SMALL, "family": family, "tied_head": True}, data.info)
    assert untied - tied == data.info.n_locations * SMALL["d_model"]  # the head's weight matrix


HRM_CYCLES = [{"h_cycles": h, "l_cycles": l} for h, l in [(1, 1), (1, 2), (2, 1), (2, 2), (3, 3)]]


@pytest.mark.parametrize("cfg", [{"family": f} for f in FAMILIES if f != "hrm"]
                         + [{"family": "hrm", **c} for c in HRM_CYCLES], ids=lambda c: "-".join(map(str, c.values())))
def test_every_parameter_gets_a_gradient(data, cfg):
    # A parameter that never gets a gradient only spends the budget (HRM's one-step gradient
    # runs the early cycles under no_grad, whatever their h/l cycle counts).
    cfg = {**SMALL, **cfg}
    torch.manual_seed(0)
    model = build_model(cfg, data.info)
    b = next(iter_batches(data["train"], 32))
    F.nll_loss(model(b.seq, b.user, b.lengths), b.target).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


@pytest.fixture(scope="module")
def user_baseline_acc1(data):
    """Val Acc@1 of predicting each user's most frequent train target (the global one for a user
    absent from train): a model that reads the history must beat it."""
    train, val, n = data["train"], data["val"], data.info.n_locations
    overall = np.bincount(train.target, minlength=n)
    per_user = {u: np.bincount(train.target[train.user == u], minlength=n) for u in np.unique(train.user)}
    pred = np.array([per_user.get(u, overall).argmax() for u in val.user])
    return float((pred == val.target).mean())


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_learns(data, user_baseline_acc1, family):
    result = fit({**SMALL, "family": family, "epochs": 4, "lr": 3e-3, "patience": 5, "metric": "val_acc1"}, data)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.8 * losses[0], losses
    assert user_baseline_acc1 > 0.3  # the fixture's baseline is 0.334; the global mode gets 0.11
    # measured 0.55-0.67 over seeds 0-4 for every family; 0.1 leaves room for platform drift
    assert result.best_metrics["val_acc1"] > user_baseline_acc1 + 0.1, (result.best_metrics, user_baseline_acc1)


def test_same_seed_same_metrics_other_seed_differs(data):
    cfg = {**SMALL, "family": "gru", "epochs": 2, "dropout": 0.1, "seed": 3}
    a, b = fit(cfg, data), fit(cfg, data)
    c = fit({**cfg, "seed": 4}, data)
    assert a.history == [{**h, "epoch_s": a.history[i]["epoch_s"], "samples_s": a.history[i]["samples_s"]}
                         for i, h in enumerate(b.history)]
    assert a.history[-1]["val_loss"] != c.history[-1]["val_loss"]


def test_early_stopping_returns_the_best_epoch(data):
    # A large constant learning rate overfits the small data quickly; patience 2 then stops.
    cfg = {**SMALL, "family": "transformer", "d_model": 64, "epochs": 30, "patience": 2, "lr": 1e-2,
           "schedule": "constant", "metric": "val_loss", "weight_decay": 0.0}
    result = fit(cfg, data)
    assert result.stopped_by == "patience"
    losses = [h["val_loss"] for h in result.history]
    assert result.best_epoch == losses.index(min(losses)) + 1 < result.epochs_run
    model = build_model(cfg, data.info)
    model.load_state_dict(result.state_dict)
    again = evaluate(model, data, "val")
    assert math.isclose(again["loss"], result.best_metrics["val_loss"], rel_tol=1e-5)
    assert not math.isclose(again["loss"], losses[-1], rel_tol=1e-3)


def test_callback_sees_every_epoch_and_can_stop(data):
    seen = []
    result = fit({**SMALL, "family": "lstm", "epochs": 5}, data, on_epoch=lambda r: seen.append(r) or r.epoch == 2)
    assert [r.epoch for r in seen] == [1, 2] and result.stopped_by == "callback"
    keys = {"train_loss", "val_loss", "val_acc1", "val_hit5", "val_hit10", "val_mrr", "val_ndcg10", "val_f1",
            "epoch_s", "samples_s"}
    assert keys <= set(seen[0].metrics)
    assert seen[0].is_best


@pytest.mark.parametrize("loss", ["ce", "label_smoothing", "weighted_ce", "focal"])
@pytest.mark.parametrize("sampler", ["uniform", "balanced"])
def test_losses_and_samplers(data, loss, sampler):
    result = fit({**SMALL, "family": "gru", "epochs": 2, "loss": loss, "sampler": sampler, "lr": 3e-3}, data)
    assert all(math.isfinite(h["train_loss"]) for h in result.history)
    assert result.meta["over_correction"] == (loss == "weighted_ce" and sampler == "balanced")


def test_losses_match_their_formulas():
    p = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.2, 0.3, 0.5], [0.7, 0.2, 0.1]])
    logp, target = p.log(), torch.tensor([0, 2, 1, 0])
    pt = torch.tensor([0.5, 0.3, 0.3, 0.7])  # p of each target
    train_targets = np.array([0, 0, 0, 1])  # counts 3, 1, 0

    def loss(**kw):
        cfg = TrainConfig(**kw)
        return Loss(cfg, train_targets, 3)(logp, target).item()

    ce = -pt.log().mean().item()
    assert math.isclose(loss(loss="ce"), ce, rel_tol=1e-6)
    # label smoothing eps: (1 - eps) * CE + eps * mean over classes of -log p (torch's definition)
    smooth = 0.9 * ce + 0.1 * -logp.mean().item()
    assert math.isclose(loss(loss="label_smoothing", label_smoothing=0.1), smooth, rel_tol=1e-6)
    assert math.isclose(smooth, F.cross_entropy(logp, target, label_smoothing=0.1).item(), rel_tol=1e-6)
    # class weights: inverse train frequency, mean 1 over seen classes (4/(2*3), 4/(2*1)), unseen 1, clipped
    w = torch.tensor([2 / 3, 2.0, 1.0])
    assert torch.allclose(Loss(TrainConfig(loss="weighted_ce"), train_targets, 3).weight, w)
    clipped = Loss(TrainConfig(loss="weighted_ce", weight_clip=1.5), train_targets, 3).weight
    assert torch.allclose(clipped, torch.tensor([2 / 3, 1.5, 1.0]))
    wt = w[target]
    weighted = (-(wt * pt.log()).sum() / wt.sum()).item()
    assert math.isclose(loss(loss="weighted_ce"), weighted, rel_tol=1e-6)
    for gamma in (0.0, 2.0):
        focal = (-(1 - pt).pow(gamma) * pt.log()).mean().item()
        assert math.isclose(loss(loss="focal", focal_gamma=gamma), focal, rel_tol=1e-6)
    assert math.isclose(loss(loss="focal", focal_gamma=0.0), ce, rel_tol=1e-6)


def _lr_curve(schedule: str, steps: int, lr: float = 0.01, **kw) -> list[float]:
    """The learning rate used at each optimiser step, as the engine's optimiser/scheduler give it."""
    cfg = TrainConfig(schedule=schedule, lr=lr, **kw)
    opt = _optimizer(torch.nn.Linear(2, 2), cfg)
    sched = _scheduler(opt, cfg, steps)
    curve = []
    for _ in range(steps):
        assert len({g["lr"] for g in opt.param_groups}) == 1  # decay and no-decay groups move together
        curve.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return curve


def test_schedule_curves_match_their_formulas():
    n, lr = 100, 0.01
    # cosine: linear warmup over int(warmup_frac * n) steps, then half a cosine down to 0
    warm = 10
    cosine = [lr * (s + 1) / warm if s < warm else lr * 0.5 * (1 + math.cos(math.pi * (s - warm) / (n - warm)))
              for s in range(n)]
    assert _lr_curve("cosine", n, lr, warmup_frac=0.1) == pytest.approx(cosine, rel=1e-6, abs=1e-12)
    assert _lr_curve("constant", n, lr) == pytest.approx([lr] * n)
    # onecycle (torch defaults): max_lr / 25 -> max_lr at step 0.3 n - 1 -> max_lr / (25 * 1e4), cosine both ways
    curve, peak = _lr_curve("onecycle", n, lr), int(0.3 * n) - 1
    lo, end = lr / 25, lr / 25 / 1e4
    anneal = lambda a, b, t: b + (a - b) / 2 * (1 + math.cos(math.pi * t))
    onecycle = [anneal(lo, lr, s / peak) if s <= peak else anneal(lr, end, (s - peak) / (n - 1 - peak))
                for s in range(n)]
    assert curve == pytest.approx(onecycle, rel=1e-6)
    assert curve[0] == pytest.approx(lr / 25) and max(curve) == curve[peak] == pytest.approx(lr)
    assert curve[-1] == pytest.approx(lr / (25 * 1e4))


@pytest.mark.parametrize("schedule", ["cosine", "onecycle", "constant"])
def test_schedules_run_in_fit(data, schedule):
    # fit's step count must match its batches (OneCycleLR raises when stepped past total_steps)
    assert fit({**SMALL, "family": "gru", "epochs": 1, "schedule": schedule}, data).epochs_run == 1


def test_non_finite_loss_stops_with_a_clear_error(data):
    with pytest.raises(NonFiniteLoss, match="non-finite training loss"):
        fit({**SMALL, "family": "transformer", "epochs": 2, "lr": 1e30, "grad_clip": 0.0,
             "schedule": "constant"}, data)


def test_bad_configs_name_the_key():
    with pytest.raises(ModelError, match="did you mean 'dropout'"):
        split_config({"dropuot": 0.1})
    with pytest.raises(ModelError, match="family='cnn'"):
        split_config({"family": "cnn"})
    with pytest.raises(ModelError, match="heads=3: must divide d_model=32"):
        split_config({"d_model": 32, "heads": 3})
    with pytest.raises(ModelError, match="matmul='fp16': not supported; use one of fp32, bf16"):
        split_config({"matmul": "fp16"})


@pytest.mark.parametrize("family", ["pointer", "transformer"])
def test_bf16_matmul_fits_and_learns(data, user_baseline_acc1, family):
    """`matmul: bf16` trains the attention families through fit() as well as fp32 does on this data."""
    result = fit({**SMALL, "family": family, "epochs": 4, "lr": 3e-3, "metric": "val_acc1", "matmul": "bf16",
                  "dropout": 0.1}, data)
    assert result.best_metrics["val_acc1"] > user_baseline_acc1 + 0.1, result.best_metrics


def test_metrics_on_a_known_example():
    logp = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]))
    target = torch.tensor([0, 2, 1, 0])  # ranks 1, 2, 2, 1
    acc = RankMetrics(3)
    acc.add(logp, target)
    m = acc.result()
    assert m["acc1"] == 0.5 and m["hit5"] == 1.0
    assert math.isclose(m["mrr"], (1 + 0.5 + 0.5 + 1) / 4)
    assert math.isclose(m["ndcg10"], (2 + 2 / math.log2(3)) / 4)
    # predictions 0,1,2,0 vs targets 0,2,1,0: F1 class0 = 1, class1 = 0, class2 = 0
    assert math.isclose(m["f1"], 1 / 3)
