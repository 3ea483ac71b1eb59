"""Hand-set baselines of the category and vector tasks on the Geolife-derived data, trained with
the same engine as a sweep and scored on the test split over several seeds (mean +- std):

- category: the users' seed configuration (transformer, 4 layers, 8 heads, width 64, dropout
  0.1, weighted CE, OneCycle with max_lr = 100 x base, batch 1024), 5 grouped folds like
  spaces/geolife_category.yaml, best (fold-mean) epoch restored as every nextsweep fit does;
- vector: a GRU trained 20 epochs without early stopping and without restoring the best epoch
  (the last epoch is what is scored, as in the users' hand runs), and, for comparison, the same
  run with the best epoch restored.

    .venv/bin/python bench/task_baselines.py [--seeds 3] [--only category vector]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from models import build_model, fit
from models.tasks import get_task
from spaces.data import load_data

GEOLIFE = Path(__file__).resolve().parents[2] / "shared/data/geolife"
CATEGORY = {"family": "transformer", "layers": 4, "heads": 8, "d_model": 64, "ff_ratio": 2.0, "dropout": 0.1,
            "loss": "weighted_ce", "schedule": "onecycle", "lr": 1e-2, "div_factor": 100.0, "batch_size": 1024,
            "epochs": 12, "patience": 4, "folds": 5, "metric": "val_f1"}
VECTOR = {"family": "gru", "layers": 1, "d_model": 128, "dropout": 0.1, "loss": "cosine", "lr": 1e-3,
          "batch_size": 128, "epochs": 20, "patience": 20, "metric": "val_hit5"}


def scored(config: dict, data, states: list[dict]) -> dict[str, float]:
    """Test metrics, the mean over the given models (the CV folds' models, or one)."""
    task, per_model = get_task(data.info.task), []
    for state in states:
        model = build_model(config, data.info)
        model.load_state_dict(state)
        per_model.append(task.evaluate(model, data, "test"))
    return {k: statistics.mean(m[k] for m in per_model) for k in per_model[0]}


def run_seed(name: str, config: dict, data) -> dict:
    last = {}

    def keep_last(rep):  # the last epoch's weights: what a run without best-epoch restore keeps
        if rep.last:
            last["state"] = {k: v.detach().clone() for k, v in rep.model.state_dict().items()}
    result = fit(config, data, on_epoch=keep_last if name == "vector" else None)
    out = {"seed": config["seed"], "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
           "val_best": result.best_metrics[config["metric"]], "test_best": scored(config, data, result.fold_states)}
    if name == "vector":
        out["val_last"] = result.history[-1][config["metric"]]
        out["test_last"] = scored(config, data, [last["state"]])
    print(json.dumps(out), flush=True)
    return out


def summary(runs: list[dict], key: str) -> dict[str, str]:
    return {k: f"{100 * statistics.mean(r[key][k] for r in runs):.2f} +- "
               f"{100 * (statistics.stdev(r[key][k] for r in runs) if len(runs) > 1 else 0):.2f}"
            for k in runs[0][key] if k != "loss"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--geolife", default=str(GEOLIFE))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--only", nargs="+", default=["category", "vector"], choices=["category", "vector"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="bench/out/task_baselines.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    report = {}
    for name in a.only:
        data = load_data({"geolife": Path(a.geolife)}, "bench/task_baselines.py", name)
        base = CATEGORY if name == "category" else VECTOR
        runs = [run_seed(name, {**base, "seed": s}, data) for s in range(a.seeds)]
        report[name] = {"config": base, "runs": runs, "test_best": summary(runs, "test_best")}
        if name == "vector":
            report[name]["test_last"] = summary(runs, "test_last")
        print(name, json.dumps({k: v for k, v in report[name].items() if k.startswith("test")}), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
