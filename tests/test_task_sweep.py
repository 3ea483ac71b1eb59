"""Sweeps of the category and vector tasks end to end: a real local Ray, a real SQLite study,
export and retrain (issue 10)."""

import json

import pytest
from optuna.trial import TrialState

from search.export import export_top, read_export
from search.retrain import retrain
from search.outcomes import tally
from search.sweep import SweepOptions, run_sweep

pytestmark = [pytest.mark.ray, pytest.mark.slow]

CATEGORY = """
name: cat
task: category
data: {synthetic: {groups: 24, steps: 50, dim: 12, items: 80, n_folds: 3, seed: 1}}
folds: 3
budget: {max_params: 20000}
asha: {max_epochs: 3, grace_period: 1, reduction_factor: 2}
forbid: [{loss: weighted_ce, sampler: balanced}]
params:
  family: {type: categorical, choices: [gru, transformer]}
  heads: {type: categorical, choices: [2, 4], when: {family: transformer}}
  d_model: {type: int, low: 16, high: 48, step: 8}
  loss: {type: categorical, choices: [weighted_ce, focal]}
  sampler: {type: categorical, choices: [uniform, balanced]}
  history_classes: {type: categorical, choices: [true, false]}
  class_copy: {type: categorical, choices: [true, false]}
  batch_size: 128
"""

VECTOR = """
name: vec
task: vector
data: {synthetic: {groups: 24, steps: 50, dim: 12, items: 80, seed: 1}}
budget: {max_params: 20000}
asha: {max_epochs: 3, grace_period: 1, reduction_factor: 2}
params:
  family: {type: categorical, choices: [gru, transformer]}
  heads: {type: categorical, choices: [2, 4], when: {family: transformer}}
  d_model: {type: int, low: 16, high: 48, step: 8}
  loss: {type: categorical, choices: [cosine, infonce, mix, bank_nce]}
  bank_pointer: {type: categorical, choices: [true, false]}
  delta: {type: categorical, choices: [true, false]}
  batch_size: 128
"""


@pytest.mark.parametrize("text, metric", [(CATEGORY, "val_f1"), (VECTOR, "val_hit5")])
def test_task_sweep_export_and_retrain(tmp_path, text, metric):
    space = tmp_path / "space.yaml"
    space.write_text(text)
    opts = SweepOptions(space=str(space), study="s", samples=6, dir=str(tmp_path), seed=0,
                        storage=f"sqlite:///{tmp_path / 'db.sqlite'}")
    study = run_sweep(opts)
    trained = [t for t in study.trials if "config" in t.user_attrs and "rejected" not in t.user_attrs]
    assert len(trained) == 6 and {t.state for t in trained} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert study.user_attrs["task"] == study.user_attrs["space_signature"]["task"] == text.split("task: ")[1].split()[0]
    best = study.best_trial
    assert best.value == max(best.intermediate_values.values())  # the best epoch's (fold-mean) value
    assert best.user_attrs["best_metrics"][metric] == pytest.approx(best.value, abs=1e-6)
    if metric == "val_f1":  # 3 folds: the objective is their mean, its spread kept beside it
        assert json.loads(best.user_attrs["config"])["folds"] == 3 and "val_f1_std" in best.user_attrs["best_metrics"]
        for t in trained:
            c = json.loads(t.user_attrs["config"])
            assert not (c["loss"] == "weighted_ce" and c["sampler"] == "balanced")
        assert tally(study.trials)["forbidden"] == sum(t.user_attrs.get("rejected") == "forbidden" for t in study.trials)
    doc = read_export(export_top(opts.storage, "s", 1, tmp_path / "exports")[0])
    assert doc["task"] == study.user_attrs["task"]
    report = retrain(tmp_path / "exports" / next(p.name for p in (tmp_path / "exports").iterdir()), 2, tmp_path / "re")
    assert report["runs"][0]["val"][metric] == best.value  # the trial, reproduced exactly
    key = metric.removeprefix("val_")
    assert 0 <= report["test"][key]["mean"] <= 1
    # the same baselines the sweep's bar holds, scored on the test split beside the model
    history = {"val_f1": {"history_mode", "last_class"}, "val_hit5": {"history_items", "history_sum"}}[metric]
    assert history <= set(report["baselines_test"]) <= set(study.user_attrs["baselines"])
    assert all(0 <= m[key] <= 1 for m in report["baselines_test"].values())
    if metric == "val_f1":
        assert set(report["runs"][0]["per_class"]) == {f"class_{k}" for k in range(5)}
