"""`nextsweep export` (the best trials as YAML) and `nextsweep retrain` (several seeds through
the same engine, test metrics as mean +- std)."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import optuna
import torch
import yaml
from optuna.trial import TrialState

from models import build_model, evaluate, fit
from search.storage import SearchError, load_study, redact
from spaces.data import load_data

EXPORT_VERSION = 1
TEST_METRICS = ("acc1", "hit5", "hit10", "mrr", "ndcg10", "f1")


def export_top(storage_url: str, study_name: str | None, top: int, out: str | Path) -> list[Path]:
    study = load_study(storage_url, study_name)
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if "config" in t.user_attrs]
    if not done:
        raise SearchError(f"study '{study.study_name}' has no COMPLETE trial to export yet")
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    done.sort(key=lambda t: t.value, reverse=maximize)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for rank, t in enumerate(done[:top], 1):
        doc = {
            "nextsweep_export": EXPORT_VERSION,
            "study": study.study_name,
            "storage": redact(storage_url),
            "trial": t.number,
            "rank": rank,
            "objective": {study.user_attrs.get("metric", "value"): t.value},
            "best_epoch": t.user_attrs.get("best_epoch"),
            "val_metrics": t.user_attrs.get("best_metrics", {}),
            "n_params": t.user_attrs.get("n_params"),
            "budget": {"max_params": study.user_attrs.get("budget")},
            "data": study.user_attrs.get("data"),
            "data_from": study.user_attrs.get("space_file"),
            "fingerprint": t.user_attrs.get("fingerprint", study.user_attrs.get("fingerprint")),
            "code_version": t.user_attrs.get("code_version"),
            "config": json.loads(t.user_attrs["config"]),
        }
        path = out / f"{study.study_name}-rank{rank}-trial{t.number}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        paths.append(path)
    return paths


def read_export(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SearchError(f"{path}: file not found; give a YAML written by `nextsweep export`")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SearchError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(doc, dict) or doc.get("nextsweep_export") != EXPORT_VERSION:
        raise SearchError(f"{path}: not a nextsweep export (no 'nextsweep_export: {EXPORT_VERSION}'); make one with `nextsweep export`")
    for key in ("config", "data"):
        if not isinstance(doc.get(key), dict):
            raise SearchError(f"{path}: '{key}' is missing or not a mapping; export the trial again")
    return doc


def retrain(path: str | Path, seeds: int, out: str | Path | None, force: bool = False) -> dict:
    path = Path(path)
    doc = read_export(path)
    data = load_data(doc["data"], path)  # paths in it were made absolute when the sweep ran
    if doc.get("fingerprint") and data.info.fingerprint != doc["fingerprint"] and not force:
        raise SearchError(f"{path}: fingerprint: the data now differs from the sweep's ({data.info.fingerprint[:12]} vs "
                          f"{doc['fingerprint'][:12]}); pass --force to retrain on it anyway")
    out = Path(out or path.with_suffix(""))
    out.mkdir(parents=True, exist_ok=True)
    base = int(doc["config"].get("seed", 0))
    runs, best = [], None
    for i in range(seeds):
        config = {**doc["config"], "seed": base + i}
        start = time.perf_counter()
        result = fit(config, data)
        model = build_model(config, data.info)
        model.load_state_dict(result.state_dict)
        test = evaluate(model, data["test"], data.info.n_locations)
        run = {"seed": config["seed"], "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
               "seconds": round(time.perf_counter() - start, 1),
               "val": {k: v for k, v in result.best_metrics.items() if k.startswith("val_")},
               "test": {k: test[k] for k in TEST_METRICS}}
        runs.append(run)
        print(f"seed {run['seed']}: best epoch {run['best_epoch']}, val {config.get('metric', 'val_hit5')} "
              f"{run['val'][config.get('metric', 'val_hit5')]:.4f}, test Acc@1 {test['acc1']:.4f} Acc@5 {test['hit5']:.4f}",
              flush=True)
        metric = config.get("metric", "val_hit5")
        if best is None or run["val"][metric] > best[0]["val"][metric]:
            best = (run, result.state_dict, config)
    summary = {k: {"mean": statistics.mean(r["test"][k] for r in runs),
                   "std": statistics.stdev(r["test"][k] for r in runs) if len(runs) > 1 else 0.0}
               for k in TEST_METRICS}
    report = {"export": str(path), "n_params": doc.get("n_params"), "seeds": [r["seed"] for r in runs],
              "test": summary, "runs": runs, "fingerprint": data.info.fingerprint}
    (out / "retrain.json").write_text(json.dumps(report, indent=2) + "\n")
    torch.save({"state_dict": best[1], "config": best[2], "seed": best[0]["seed"]}, out / "best_model.pt")
    return report


def print_retrain(report: dict, out: Path) -> None:
    names = {"acc1": "Acc@1", "hit5": "Acc@5", "hit10": "Acc@10", "mrr": "MRR", "ndcg10": "NDCG@10", "f1": "macro-F1"}
    print(f"\ntest metrics over {len(report['seeds'])} seeds (mean +- std), {report['n_params']:,} parameters")
    for k, label in names.items():
        s = report["test"][k]
        print(f"  {label:<9} {100 * s['mean']:6.2f} +- {100 * s['std']:.2f}")
    print(f"wrote {out / 'retrain.json'} and {out / 'best_model.pt'}")
