"""Hand-built Optuna studies shaped like a sweep's (the same user attributes), for the tests of
the warnings and the report: each figure is chosen by the test, no training needed."""

from __future__ import annotations

import json
import warnings

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from search.outcomes import REJECTIONS

D_MODEL = (16, 96)
LR = (1e-3, 1e-2)
DISTS = {"family": CategoricalDistribution(["gru", "transformer"]), "d_model_frac": FloatDistribution(0.0, 1.0),
         "lr": FloatDistribution(*LR, log=True), "dropout": FloatDistribution(0.0, 0.3)}


def signature(max_epochs: int, grace: int, budget: int | None) -> dict:
    """As search.study_record.space_signature stores it (the width fitted to the budget)."""
    return {"task": "location", "folds": 0, "forbid": [], "metric": "val_hit5", "mode": "max", "budget": budget,
            "width": "d_model", "asha": [max_epochs, grace, 2],
            "params": {"family": ["categorical", None, None, None, False, ["gru", "transformer"], None, None],
                       "d_model": ["int", *D_MODEL, 8, False, None, None, None],
                       "lr": ["float", *LR, None, True, None, None, None],
                       "dropout": ["float", 0.0, 0.3, None, False, None, None, None]}}


def make_study(storage=None, name: str = "hand", max_epochs: int = 6, grace: int = 2,
               budget: int | None = 40000, baselines: dict | None = None) -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    attrs = {"space_name": "handmade", "task": "location", "space_file": "/tmp/handmade.yaml", "metric": "val_hit5",
             "budget": budget, "fingerprint": "f" * 64, "space_signature": signature(max_epochs, grace, budget),
             "data": {"synthetic": {"users": 5}}, "samples": 10, "sampler": "tpe", "code_version": "0.1.0+test",
             "started": "2026-01-01T00:00:00+00:00"}
    for k, v in attrs.items():
        study.set_user_attr(k, v)
    with warnings.catch_warnings():  # experimental in Optuna 5, stable in use
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["val_hit5"])
    if baselines is not None:
        study.set_user_attr("baselines", baselines)
    return study


def add(study: optuna.Study, value: float | None = None, *, d_model: int = 56, lr: float = 3e-3, best_epoch: int = 4,
        epochs: int | None = None, n_params: int = 20000, family: str = "gru", outcome: str = "complete",
        n: int = 0, extra: dict | None = None) -> None:
    """One trial as the sweep records it. outcome: complete, pruned (by ASHA), failed, or a
    rejection (over_budget, unbuildable, forbidden: state PRUNED, no config, no curve)."""
    frac = (d_model - D_MODEL[0]) / (D_MODEL[1] - D_MODEL[0])
    params = {"family": family, "d_model_frac": frac, "lr": lr, "dropout": 0.1}
    attrs = {"n_params": n_params, "d_model": d_model}
    if outcome in ("over_budget", "unbuildable", "forbidden"):
        attrs["rejected"] = {REJECTIONS[k]: k for k in REJECTIONS}[outcome]  # as spaces records it
        study.add_trial(create_trial(state=TrialState.PRUNED, params=params, distributions=DISTS, user_attrs=attrs,
                                     system_attrs={}))
        return
    epochs = epochs or best_epoch
    peak = value if value is not None else 0.5
    curve = {e: peak - 0.05 * abs(best_epoch - e) for e in range(1, epochs + 1)}  # peaks at best_epoch
    config = {"family": family, "d_model": d_model, "lr": lr, "dropout": 0.1, "seed": n}
    attrs.update(config=json.dumps(config), best_epoch=best_epoch, epochs_run=epochs, wall_s=30.0, cpu_s=30.0,
                 best_metrics={"val_hit5": peak, "val_acc1": peak / 2, "val_mrr": peak / 3})
    attrs.update(extra or {})  # e.g. "confirmed", written by `nextsweep confirm`
    state = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "failed": TrialState.FAIL}[outcome]
    if outcome == "failed":
        attrs["error"] = "RuntimeError: boom"
    study.add_trial(create_trial(state=state, value=value if outcome == "complete" else None, params=params,
                                 distributions=DISTS, user_attrs=attrs, intermediate_values=curve,
                                 system_attrs={}))


def well_set(study: optuna.Study, k: int = 6) -> optuna.Study:
    """k complete trials that trip no warning: widths and lr mid-range, best epochs mid-schedule."""
    for i in range(k):
        add(study, 0.6 + 0.01 * i, d_model=40 + 8 * (i % 3), lr=2e-3 + 1e-3 * (i % 3), best_epoch=4, epochs=6,
            n_params=25000 + 1000 * i, n=i)
    return study
