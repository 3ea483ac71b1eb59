"""A fourth task, declared entirely in this file through the public registries (issue 44): "next
step's sign", a walk's next velocity up or down, from the walk's recent steps. Its Task (inputs,
head, loss, metrics, objective, baselines) goes to models.tasks.register_task and its data kind
(a synthetic generator) to data_io.register_kind; then `nextsweep space check` and a 2-trial
sweep run on it with no change anywhere else in nextsweep."""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import pytest
import torch.nn.functional as F

import data_io
import models.tasks
from models import config
from data_io import SPLITS, Dataset, DatasetInfo, DataKind, SplitArrays, register_kind
from models.metrics import RankMetrics
from models.tasks import Task, outputs, register_task
from models.vector_seq_nets import ClassHead, VectorInputModel
from search.cli import main

NAME = "sign"
LABELS = ["down", "up"]


class SignTask(Task):
    """Two classes from vector inputs: the walk's next velocity is negative (0) or positive (1)."""

    name = NAME
    losses = ("sign_nll",)  # names no shipped task has: registering the task makes them valid
    metrics = ("val_acc1", "val_brier", "val_loss")
    minimized = ("val_brier",)
    objective = "val_acc1"
    default_loss = "sign_nll"
    families = ("gru", "transformer")

    def build(self, mcfg, info):
        return VectorInputModel(mcfg, info, ClassHead(mcfg.d_model, len(info.classes)))

    def loss(self, tcfg, data):
        return lambda logp, batch: F.nll_loss(logp, batch.target)

    def evaluate(self, model, data, split, loss=None, batch_size=512):
        acc, brier = RankMetrics(len(data.info.classes)), []
        for logp, b in outputs(model, data[split], batch_size):
            acc.add(logp, b.target)
            brier.append(((logp[:, 1].exp() - b.target.float()) ** 2).cpu().numpy())
        m = acc.result()
        return {"acc1": m["acc1"], "brier": float(np.concatenate(brier).mean()), "loss": m["loss"]}

    def top_k(self, model, data, split, k, batch_size=512):
        rows, preds, scores = [], [], []
        for logp, b in outputs(model, data[split], batch_size):
            top = logp.topk(k, dim=1)
            rows.append(b.index.cpu().numpy())
            preds.append(top.indices.cpu().numpy())
            scores.append(top.values.float().cpu().numpy())
        order = np.argsort(np.concatenate(rows))
        labels = np.asarray(data.info.classes, dtype=object)
        return {"target": labels[data[split].target], "pred": labels[np.concatenate(preds)[order]],
                "score": np.concatenate(scores)[order]}

    def reference_scores(self, data):
        """The train split's majority sign, and "the velocity keeps its sign" (the last step's)."""
        train, val = data["train"], data["val"]
        majority = int(np.bincount(train.target, minlength=2).argmax())
        last = val.seq["vec"][np.arange(len(val)), val.lengths - 1, 0] > 0
        return {"majority": {"acc1": float(np.mean(val.target == majority))},
                "keeps_sign": {"acc1": float(np.mean(val.target == last.astype(np.int64)))}}


class SignKind(DataKind):
    """Synthetic walks: velocity v_t = 0.8 v_(t-1) + noise; each step's input is (v_t, x_t), the
    target of a window the sign of the next velocity. Whole walks go to train / val / test."""

    name = NAME
    synth_keys = ("groups", "steps", "history", "seed")

    def synthetic(self, settings: dict) -> Dataset:
        groups, steps = settings.get("groups", 40), settings.get("steps", 30)
        hist, seed = settings.get("history", 6), settings.get("seed", 0)
        rng = np.random.default_rng(seed)
        v = np.zeros((groups, steps + 1))
        for t in range(1, steps + 1):
            v[:, t] = 0.8 * v[:, t - 1] + rng.normal(size=groups)
        x = np.cumsum(v, axis=1)
        walk_split = np.array(["train", "train", "train", "val", "test"])[np.arange(groups) % 5]  # 60 / 20 / 20
        splits = {}
        for split in SPLITS:
            g, t = np.divmod(np.arange(groups * (steps - hist)), steps - hist)
            t = t + hist  # the target step; the history is the hist steps before it
            keep = walk_split[g] == split
            g, t = g[keep], t[keep]
            cols = t[:, None] - hist + np.arange(hist)[None, :]
            vec = np.stack([v[g[:, None], cols], x[g[:, None], cols] / 10], axis=-1).astype(np.float32)
            splits[split] = SplitArrays(sample_id=np.arange(len(g), dtype=np.int64), user=(g + 1).astype(np.int64),
                                        target=(v[g, t] > 0).astype(np.int64),
                                        lengths=np.full(len(g), hist, dtype=np.int64), seq={"vec": vec})
        digest = hashlib.sha256(b"".join(s.seq["vec"].tobytes() + s.target.tobytes() for s in splits.values()))
        info = DatasetInfo(name="synthetic-sign", n_locations=len(LABELS), n_users=groups + 1,
                           cardinalities={"user": groups + 1, "position": hist},
                           split_sizes={k: len(s) for k, s in splits.items()}, max_history=hist,
                           params=dict(settings), source={"synthetic": NAME}, fingerprint=digest.hexdigest(),
                           task=NAME, input_dim=2, classes=list(LABELS))
        return Dataset(info, splits)

    def describe(self, info, facts):
        return super().describe(info, facts) + [f"classes      {', '.join(info.classes)}"]


def _register_sign() -> None:
    """In the test process, and (as Ray's worker setup hook) in every Ray worker: the trials look
    the task up there by the name the dataset carries."""
    register_task(SignTask())
    register_kind(SignKind())


@pytest.fixture
def sign_task():
    known = list(config.LOSSES), list(config.METRICS), set(config.MINIMIZED)
    _register_sign()
    yield
    models.tasks.TASKS.pop(NAME, None)
    data_io.kinds.KINDS.pop(NAME, None)
    config.LOSSES[:], config.METRICS[:] = known[:2]  # other tests list the valid names
    config.MINIMIZED.intersection_update(known[2])


SPACE = """
name: sign
task: sign
data: {synthetic: {groups: 40, steps: 30, history: 6, seed: 0}}
budget: {max_params: 20000}
asha: {max_epochs: 2, grace_period: 1, reduction_factor: 2}
params:
  family: {type: categorical, choices: [gru, transformer]}
  heads: {type: categorical, choices: [2], when: {family: transformer}}
  d_model: {type: int, low: 16, high: 32, step: 8}
  lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
  batch_size: 64
"""


def test_space_check_of_a_fourth_task(sign_task, tmp_path, capsys):
    space = tmp_path / "sign.yaml"
    space.write_text(SPACE)
    assert main(["space", "check", str(space), "--samples", "20"]) == 0
    out = capsys.readouterr().out
    assert "data         synthetic-sign: 2 classes, train " in out
    assert "objective    val_acc1 (max)" in out and out.rstrip().endswith("ok")
    # its own loss and its own lower-is-better metric, declared only on SignTask above
    space.write_text(SPACE.replace("batch_size: 64", "batch_size: 64\n  loss: sign_nll\nobjective: {metric: val_brier}"))
    assert main(["space", "check", str(space), "--samples", "5"]) == 0
    assert "objective    val_brier (min)" in capsys.readouterr().out


def test_a_fourth_task_refuses_what_it_cannot_train(sign_task, tmp_path, capsys):
    space = tmp_path / "sign.yaml"
    space.write_text(SPACE.replace("batch_size: 64", "batch_size: 64\n  loss: cosine"))
    assert main(["space", "check", str(space), "--samples", "5"]) == 2
    assert "not available for the sign task" in capsys.readouterr().err
    space.write_text(SPACE.replace("{groups: 40,", "{walks: 40,"))
    assert main(["space", "check", str(space), "--samples", "5"]) == 2
    assert "data.synthetic.walks: unknown key 'walks'; allowed: groups, steps, history, seed" in capsys.readouterr().err
    space.write_text(SPACE.replace("{synthetic: {groups: 40, steps: 30, history: 6, seed: 0}}", f"{{geolife: {tmp_path}}}"))
    assert main(["space", "check", str(space), "--samples", "5"]) == 2
    assert "data.geolife: the Geolife files have no sign reading" in capsys.readouterr().err
    assert main(["data", "synth", "--task", NAME, "--out", str(tmp_path / "ds")]) == 2  # a kind without a writer
    assert "--task sign: `data synth` cannot write this task's data" in capsys.readouterr().err


def test_an_unregistered_task_is_refused(tmp_path, capsys):
    space = tmp_path / "sign.yaml"
    space.write_text(SPACE)
    assert main(["space", "check", str(space)]) == 2
    assert "'sign' is not a task" in capsys.readouterr().err


@pytest.mark.ray
@pytest.mark.slow
def test_a_two_trial_sweep_of_a_fourth_task(sign_task, tmp_path, monkeypatch):
    import ray
    from optuna.trial import TrialState
    from ray import cloudpickle  # the pickler Ray ships functions to its workers with

    from search.sweep import SweepOptions, run_sweep
    space = tmp_path / "sign.yaml"
    space.write_text(SPACE)
    # The registries are per process: a task module inside nextsweep is imported by the workers
    # too, but this file is not importable there, so it travels by value and registers the task in
    # each worker before any trial (without the hook, every trial fails: "task 'sign': not supported").
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():  # a Ray an earlier test left has workers without the hook
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": _register_sign})
    try:
        study = run_sweep(SweepOptions(space=str(space), study="sign", samples=2, dir=str(tmp_path), seed=0,
                                       storage=f"sqlite:///{tmp_path / 'db.sqlite'}"))
    finally:
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    trained = [t for t in study.trials if "config" in t.user_attrs and "rejected" not in t.user_attrs]
    assert len(trained) == 2 and {t.state for t in trained} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert study.user_attrs["task"] == NAME
    best = study.best_trial
    assert 0 <= best.value <= 1 and best.user_attrs["best_metrics"]["val_acc1"] == pytest.approx(best.value, abs=1e-6)
    assert 0 <= best.user_attrs["best_metrics"]["val_brier"] <= 1
