"""Honest metrics and one direction per metric (review items 1, 3, 4)."""

import math

import pytest
import torch
import yaml

from data_io import load_dataset
from models import ModelError, NonFiniteMetricError, build_model, evaluate, fit, metric_mode
from models.metrics import RankMetrics
from spaces import SpaceError
from spaces.schema import parse_space

SMALL = {"family": "gru", "d_model": 16, "layers": 1, "batch_size": 64, "dropout": 0.0}


def _result(logp, target, n=None):
    acc = RankMetrics(n or logp.shape[1])
    acc.add(logp, target)
    return acc.result()


def test_a_constant_output_scores_nothing():
    logp = torch.full((50, 20), -math.log(20))
    m = _result(logp, torch.randint(0, 20, (50,)))
    assert m["acc1"] == m["hit5"] == m["hit10"] == 0.0  # every target ties with all 20 classes
    assert math.isclose(m["mrr"], 1 / 20)
    assert m["f1"] == 0.0


def test_ties_count_against_the_target():
    # A pointer-style output: 3 visited classes with real scores, the rest all exactly log(1e-10).
    logp = torch.full((2, 10), math.log(1e-10))
    logp[:, :3] = torch.log(torch.tensor([0.5, 0.3, 0.2]))
    m = _result(logp, torch.tensor([1, 7]))  # a visited target (rank 2), an unvisited one (rank 10)
    assert m["acc1"] == 0.0 and m["hit5"] == 0.5 and m["hit10"] == 1.0
    assert math.isclose(m["mrr"], (1 / 2 + 1 / 10) / 2)


def test_nan_scores_are_misses():
    logp = torch.log_softmax(torch.randn(4, 6), 1)
    target = logp.argmax(1)  # every sample right ...
    logp[0, target[0]] = float("nan")  # ... but a NaN target score
    logp[1, (target[1] + 1) % 6] = float("nan")  # ... and a NaN competitor
    m = _result(logp, target)
    assert m["acc1"] == 0.5
    acc = RankMetrics(6)
    acc.add(logp, target)
    assert acc.ranks[0].tolist()[:2] == [6, 2]


def test_acc1_and_macro_f1_share_one_top1():
    # Row 0: target tied at the top (a miss for both); row 1: a unique correct top-1.
    logp = torch.log(torch.tensor([[0.4, 0.4, 0.2], [0.1, 0.7, 0.2]]))
    m = _result(logp, torch.tensor([0, 1]))
    assert m["acc1"] == 0.5
    # class 0: one target, no prediction -> F1 0; class 1: one right prediction -> F1 1
    assert math.isclose(m["f1"], 0.5)


def test_empty_split_is_a_clear_error():
    with pytest.raises(ValueError, match="split is empty"):
        RankMetrics(3).result()


@pytest.fixture(scope="module")
def data(synth_dir):
    return load_dataset(synth_dir)


def test_fit_refuses_an_empty_validation_split(data):
    from data_io import SplitArrays
    v = data["val"]
    empty = SplitArrays(v.sample_id[:0], v.user[:0], v.target[:0], v.lengths[:0], {k: a[:0] for k, a in v.seq.items()})
    data.splits["val"], real_val = empty, v
    try:
        with pytest.raises(ModelError, match="validation split is empty"):
            fit({**SMALL, "epochs": 1}, data)
        with pytest.raises(ModelError, match="empty split"):
            evaluate(build_model(SMALL, data.info), data, "val")
    finally:
        data.splits["val"] = real_val


def test_a_nan_metric_fails_the_fit(data, monkeypatch):
    from models.tasks.location import LocationTask
    real = LocationTask.evaluate

    def nan_loss(*args, **kwargs):
        return {**real(*args, **kwargs), "loss": float("nan")}
    monkeypatch.setattr(LocationTask, "evaluate", nan_loss)
    with pytest.raises(NonFiniteMetricError, match="val_loss is NaN at epoch 1"):
        fit({**SMALL, "epochs": 2, "metric": "val_loss"}, data)


def test_one_direction_per_metric(tmp_path):
    assert metric_mode("val_loss") == "min" and metric_mode("val_hit5") == "max"
    raw = {"name": "x", "data": {"synthetic": {}}, "params": {"lr": 0.001},
           "objective": {"metric": "val_hit5", "mode": "min"}}
    with pytest.raises(SpaceError, match="objective.mode: val_hit5 is better when higher"):
        parse_space(raw, tmp_path / "s.yaml")
    assert parse_space({**raw, "objective": {"metric": "val_loss"}}, tmp_path / "s.yaml").mode == "min"


def test_retrain_keeps_the_best_seed_by_the_metrics_direction(data, synth_dir, tmp_path):
    from search.export import EXPORT_VERSION
    from search.retrain import retrain
    doc = {"nextsweep_export": EXPORT_VERSION, "data": {"path": str(synth_dir)},
           "config": {**SMALL, "epochs": 1, "metric": "val_loss", "lr": 3e-3}}
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(doc))
    report = retrain(path, 3, tmp_path / "out")
    losses = {r["seed"]: r["val"]["val_loss"] for r in report["runs"]}
    kept = torch.load(tmp_path / "out" / "best_model.pt", weights_only=True)
    assert kept["seed"] == min(losses, key=losses.get), losses
