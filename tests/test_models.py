"""Model families, exact parameter counts, losses, metrics and the training engine."""

import math

import pytest
import torch

from data_io import load_dataset
from models import FAMILIES, ModelError, NonFiniteLoss, build_model, count_params, evaluate, fit, split_config
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


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_learns(data, family):
    result = fit({**SMALL, "family": family, "epochs": 3, "lr": 3e-3, "patience": 5}, data)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.8 * losses[0], losses
    assert result.best_metrics["val_acc1"] > 0.15  # the most frequent location alone gets < 0.1


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
    again = evaluate(model, data["val"], data.info.n_locations)
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


@pytest.mark.parametrize("schedule", ["cosine", "onecycle", "constant"])
def test_schedules(data, schedule):
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
