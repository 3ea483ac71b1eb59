"""The engine on the category and vector tasks: CV folds in lockstep, best-epoch restore on a
set built to over-fit, space checks per task, forbid rules (review of issue 10)."""

import numpy as np
import optuna
import pytest
import torch

from data_io.folds import fold_view
from data_io.synthetic_vector_seqs import CategorySynthParams, VectorSynthParams, synthetic_category, synthetic_vector
from models import build_model, evaluate, fit
from search.outcomes import tally
from search.asha.scheduler import RecordingASHA
from search.searcher import BudgetSearcher
from spaces import CompiledSpace, SpaceError, load_space, load_space_data, parse_space

CAT = {"family": "gru", "d_model": 24, "layers": 1, "dropout": 0.0, "loss": "weighted_ce", "metric": "val_f1",
       "lr": 3e-3, "batch_size": 128, "epochs": 3}


@pytest.fixture(scope="module")
def cat():
    return synthetic_category(CategorySynthParams(groups=24, steps=50, dim=12, items=80, n_folds=3, seed=1))


@pytest.fixture(scope="module")
def vec():
    return synthetic_vector(VectorSynthParams(groups=24, steps=50, dim=12, items=80, seed=1))


def test_folds_train_in_lockstep_and_report_the_mean(cat):
    torch.set_num_threads(1)
    together = fit({**CAT, "folds": 3, "seed": 7}, cat)
    alone = [fit({**CAT, "seed": 7 + f}, fold_view(cat, f)) for f in range(3)]
    for epoch, row in enumerate(together.history):
        per_fold = [a.history[epoch]["val_f1"] for a in alone]
        assert row["val_f1"] == pytest.approx(np.mean(per_fold), abs=1e-12)  # what ASHA ranks
        assert row["val_f1_std"] == pytest.approx(np.std(per_fold), abs=1e-12)
    assert len(together.fold_states) == 3
    for f, state in enumerate(together.fold_states):  # every fold keeps the best (mean) epoch's weights
        model = build_model(CAT, cat.info)
        model.load_state_dict(state)
        assert evaluate(model, fold_view(cat, f))["f1"] == alone[f].history[together.best_epoch - 1]["val_f1"]


def test_over_training_never_loses_the_peak():
    # Built to over-fit: few groups, noisy item vectors, a wide model at a high constant lr.
    data = synthetic_category(CategorySynthParams(groups=10, steps=50, dim=12, items=80, n_folds=0, seed=1, noise=3.0))
    cfg = {**CAT, "d_model": 128, "layers": 2, "lr": 1e-2, "batch_size": 32, "schedule": "constant", "epochs": 12,
           "patience": 12, "weight_decay": 0.0, "grad_clip": 0.0, "metric": "val_loss", "loss": "ce"}
    result = fit(cfg, data)
    losses = [h["val_loss"] for h in result.history]
    assert result.best_epoch == losses.index(min(losses)) + 1 <= 3
    assert losses[-1] > 1.5 * min(losses), losses  # the set really over-fits
    model = build_model(cfg, data.info)
    model.load_state_dict(result.state_dict)
    assert evaluate(model, data)["loss"] == pytest.approx(min(losses), rel=1e-6)  # the peak, restored


def test_vector_fit_beats_persistence(vec):
    result = fit({"family": "gru", "d_model": 32, "layers": 1, "loss": "cosine", "metric": "val_hit5", "lr": 3e-3,
                  "batch_size": 64, "epochs": 6, "dropout": 0.0}, vec)
    v, bank = vec["val"], vec.banks["val"]
    last = v.seq["vec"][np.arange(len(v)), v.lengths - 1]
    unit = lambda a: a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    scores = unit(last) @ unit(bank).T
    true = scores[np.arange(len(v)), v.target_id]
    persistence = float(np.mean((scores >= true[:, None] - 1e-6).sum(1) <= 5))
    assert result.best_metrics["val_hit5"] > persistence + 0.1, (result.best_metrics, persistence)


SPACE = """
name: cat
task: category
data: {synthetic: {groups: 24, steps: 50, dim: 12, items: 80, n_folds: 3, seed: 1}}
folds: 3
budget: {max_params: 20000}
forbid: [{loss: weighted_ce, sampler: balanced}]
params:
  family: {type: categorical, choices: [gru, transformer]}
  heads: {type: categorical, choices: [2, 4], when: {family: transformer}}
  d_model: {type: int, low: 16, high: 48, step: 8}
  loss: {type: categorical, choices: [weighted_ce, focal]}
  sampler: {type: categorical, choices: [uniform, balanced]}
"""


def load(tmp_path, text=SPACE):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return load_space(path)


def test_forbidden_combinations_never_reach_a_trainer(tmp_path):
    space = load(tmp_path)
    compiled = CompiledSpace(space, load_space_data(space).info)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    s = BudgetSearcher(study, compiled, RecordingASHA(time_attr="epoch", max_t=3), seed=0, cpus=1, attrs={}, orphans=[])
    handed = [s.suggest(f"t{i}")["engine"] for i in range(25)]
    assert not any(c["loss"] == "weighted_ce" and c["sampler"] == "balanced" for c in handed)
    assert all(c["folds"] == 3 and c["metric"] == "val_f1" for c in handed)
    forbidden = [t for t in study.trials if t.user_attrs.get("rejected") == "forbidden"]
    assert forbidden and all(t.params["loss"] == "weighted_ce" and t.params["sampler"] == "balanced" for t in forbidden)
    assert tally(study.trials)["forbidden"] == len(forbidden) == s.rejected["forbidden"]


@pytest.mark.parametrize("edit, message", [
    (("\nfolds: 3", "\nfolds: 4"), "folds: 4, but the dataset has 3 grouped folds"),
    (("[gru, transformer]", "[gru, pointer, transformer]"), "'pointer' is not available for the category task"),
    (("forbid: [{loss: weighted_ce, sampler: balanced}]", "forbid: [{loss: mse}]"), "value 'mse' is never taken"),
    (("folds: 3\n", "folds: 3\nobjective: {metric: val_hit5}\n"), "'val_hit5' is not reported by the category task"),
    (("task: category", "task: vector"), "params.loss: 'weighted_ce' is not available for the vector task"),
])
def test_space_checks_per_task(tmp_path, edit, message):
    with pytest.raises(SpaceError, match=message):
        load_space_data(load(tmp_path, SPACE.replace(*edit)))


def test_a_space_naming_another_tasks_dataset_is_refused(tmp_path, cat):
    from data_io.vector_seq_files import write_vector_dataset
    write_vector_dataset(tmp_path / "ds", cat)
    raw = {"name": "x", "task": "vector", "data": {"path": str(tmp_path / "ds")}, "params": {"lr": 0.001}}
    with pytest.raises(SpaceError, match="holds a category dataset, but the space's task is vector"):
        load_space_data(parse_space(raw, tmp_path / "s.yaml"))
