"""`nextsweep export` (the best trials as YAML) and `nextsweep retrain` (several seeds through
the same engine, test metrics as mean +- std)."""

from __future__ import annotations

import json
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import optuna
import torch
import yaml

from models import build_predictor, fit, metric_mode
from models.native import RUNTIME_KEYS, runtime_notice
from models.tasks import TASKS, get_task
from search.outcomes import confirmation, pareto_front, ranked
from search.storage import SearchError, file_stem, load_study, redact
from search.study_record import read
from spaces.data import load_data

EXPORT_VERSION = 1
LABELS = {"acc1": "Acc@1", "hit1": "Hit@1", "hit5": "Acc@5", "hit10": "Acc@10", "mrr": "MRR", "ndcg10": "NDCG@10",
          "f1": "macro-F1", "cos": "cosine", "loss": "loss"}
UNSCALED = ("loss", "cos")  # printed as they are; the other figures are rates, in percent


def export_top(storage_url: str, study_name: str | None, top: int, out: str | Path, pareto: bool = False) -> list[Path]:
    """The `top` best trials by ranked() (confirmed means first), or with `pareto` every trial of
    the Pareto front (value vs parameter count, smallest first; `top` is then ignored)."""
    study = load_study(storage_url, study_name)
    done = ranked(study)
    if not done:
        raise SearchError(f"study '{study.study_name}' has no COMPLETE trial to export yet")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rank_of = {t.number: r for r, t in enumerate(done, 1)}
    stem = file_stem(study.study_name)
    meta = read(study)
    if pareto:
        chosen = pareto_front(done, study.direction == optuna.study.StudyDirection.MAXIMIZE)
        name = lambda t: f"{stem}-pareto-{t.user_attrs['n_params']}params-trial{t.number}.yaml"  # noqa: E731
    else:
        chosen = done[:top]
        name = lambda t: f"{stem}-rank{rank_of[t.number]}-trial{t.number}.yaml"  # noqa: E731
    paths = []
    for t in chosen:
        rank = rank_of[t.number]
        doc = {
            "nextsweep_export": EXPORT_VERSION,
            "study": study.study_name,
            "storage": redact(storage_url),
            "trial": t.number,
            "rank": rank,
            "objective": {meta.metric: t.value},
            "best_epoch": t.user_attrs.get("best_epoch"),
            "val_metrics": t.user_attrs.get("best_metrics", {}),
            "n_params": t.user_attrs.get("n_params"),
            "budget": {"max_params": meta.budget},
            "task": meta.task,
            "data": meta.data,
            "data_from": meta.space_file,
            "fingerprint": t.user_attrs.get("fingerprint", meta.fingerprint),
            "code_version": t.user_attrs.get("code_version"),
            "threads": max(1, int(t.user_attrs.get("cpus", 1))),  # what the trial trained with
            "runtime": {k: t.user_attrs[k] for k in RUNTIME_KEYS if k in t.user_attrs},  # retrain compares
            "config": json.loads(t.user_attrs["config"]),
            "params": t.params,  # Optuna's own values: what `sweep --enqueue` puts first in a new sweep
        }
        if confirmation(t, meta.metric):  # validation mean +- std over new seeds
            doc["confirmed"] = {k: v for k, v in t.user_attrs["confirmed"].items() if k != "runs"}
        path = out / name(t)
        write_atomic(path, yaml.safe_dump(doc, sort_keys=False))
        paths.append(path)
    return paths


def print_front(paths: list[Path]) -> None:
    """The exported Pareto front, smallest model first: what each size costs in objective."""
    docs = [read_export(p) for p in paths]
    metric = next(iter(docs[0]["objective"])) if docs else "value"
    print(f"{'params':>10}  {metric:>9}  {'trial':>5}  {'rank':>4}  file")
    for path, doc in zip(paths, docs):
        print(f"{doc['n_params']:>10,}  {doc['objective'][metric]:>9.4f}  {doc['trial']:>5}  {doc['rank']:>4}  {path.name}")


def write_atomic(path: Path, text: str) -> None:
    """Write a temp file beside `path`, then rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


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
    data = load_data(doc["data"], path, doc.get("task", "location"))  # paths were made absolute by the sweep
    if doc.get("fingerprint") and data.info.fingerprint != doc["fingerprint"] and not force:
        raise SearchError(f"{path}: fingerprint: the data now differs from the sweep's ({data.info.fingerprint[:12]} vs "
                          f"{doc['fingerprint'][:12]}); pass --force to retrain on it anyway")
    out = Path(out or path.with_suffix(""))
    out.mkdir(parents=True, exist_ok=True)
    base = int(doc["config"].get("seed", 0))
    with torch_threads(doc.get("threads")):
        _runtime_notice(doc)
        runs, best = _train_seeds(doc, data, base, seeds)
    report = {"export": str(path), "task": doc.get("task", "location"), "n_params": doc.get("n_params"),
              "seeds": [r["seed"] for r in runs], "folds": len(best[1]) if len(best[1]) > 1 else 0,
              "test": _summary(runs, "test"), "runs": runs, "fingerprint": data.info.fingerprint}
    if "test_fold_mean" in runs[0]:
        report["test_fold_mean"] = _summary(runs, "test_fold_mean")
    (out / "retrain.json").write_text(json.dumps(report, indent=2) + "\n")
    saved = {"state_dict": best[1][0], "config": best[2], "seed": best[0]["seed"]}
    if len(best[1]) > 1:  # predict serves the folds' ensemble, the predictor retrain measured
        saved["fold_states"] = best[1]
    torch.save(saved, out / "best_model.pt")
    return report


def _runtime_notice(doc: dict) -> None:
    """One line where retrain runs on another kernel path or CPU than the trial did (the export's
    "runtime"; older exports have none): the same seeds then give other metrics."""
    recorded = doc.get("runtime")
    notice = runtime_notice(recorded) if isinstance(recorded, dict) else None
    if notice:
        print(f"nextsweep: {notice}", flush=True)


def _summary(runs: list[dict], key: str) -> dict:
    """Each figure of runs[i][key] as mean and std over the seeds."""
    return {k: {"mean": statistics.mean(r[key][k] for r in runs),
                "std": statistics.stdev(r[key][k] for r in runs) if len(runs) > 1 else 0.0}
            for k in runs[0][key]}


@contextmanager
def torch_threads(n: int | None):
    """Train with the trial's thread count: the same seed and threads give bit-identical metrics
    (a float sum's order depends on how many threads split it)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train_seeds(doc: dict, data, base: int, seeds: int) -> tuple[list[dict], tuple]:
    runs, best = [], None
    for i in range(seeds):
        config = {**doc["config"], "seed": base + i}
        start = time.perf_counter()
        result = fit(config, data)
        states = result.fold_states or [result.state_dict]
        test, details, fold_mean = _test_metrics(config, data, states)
        run = {"seed": config["seed"], "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
               "seconds": round(time.perf_counter() - start, 1),
               "val": {k: v for k, v in result.best_metrics.items() if k.startswith("val_")},
               "test": test, **({"test_fold_mean": fold_mean} if fold_mean else {}), **details}
        runs.append(run)
        metric = config.get("metric", "val_hit5")
        shown = ", ".join(f"{k} {v:.4f}" for k, v in test.items() if k != "loss")
        print(f"seed {run['seed']}: best epoch {run['best_epoch']}, val {metric} {run['val'][metric]:.4f}, test {shown}",
              flush=True)
        if best is None or _better(run["val"][metric], best[0]["val"][metric], metric):
            best = (run, states, config)
    return runs, best


def _test_metrics(config: dict, data, states: list[dict]) -> tuple[dict, dict, dict | None]:
    """The best epoch's test metrics and the task's details (e.g. per-class figures) of the
    predictor that predict serves: the model, or with folds the ensemble of the fold models. With
    folds also the mean of each fold model's own test metrics (what the validation objective
    averages), else None."""
    task = get_task(data.info.task)
    served = build_predictor(config, data.info, states)
    test, details = task.evaluate(served, data, "test"), task.details(served, data, "test")
    if len(states) == 1:
        return test, details, None
    alone = [task.evaluate(m, data, "test") for m in served.members]
    return test, details, {k: statistics.mean(m[k] for m in alone) for k in alone[0]}


def _better(value: float, than: float, metric: str) -> bool:
    return value > than if metric_mode(metric) == "max" else value < than


def _print_figures(summary: dict, task: str | None) -> None:
    labels = {**LABELS, **(TASKS[task].metric_labels if task in TASKS else {})}  # e.g. Hit@5 where a task ranks a bank
    for k, s in summary.items():
        scale = 1 if k in UNSCALED else 100
        print(f"  {labels.get(k, k):<9} {scale * s['mean']:6.2f} +- {scale * s['std']:.2f}")


def print_retrain(report: dict, out: Path) -> None:
    folds = report.get("folds", 0)
    served = f", the ensemble of the {folds} fold models (what predict serves)" if folds else ""
    print(f"\ntest metrics over {len(report['seeds'])} seeds (mean +- std), {report['n_params']:,} parameters{served}")
    _print_figures(report["test"], report.get("task"))
    if "test_fold_mean" in report:
        print(f"each fold model alone (mean over the {folds} folds, then over seeds)")
        _print_figures(report["test_fold_mean"], report.get("task"))
    per_class = report["runs"][0].get("per_class")
    if per_class:  # minority over-calling shows as predicted >> support with low precision
        print(f"\nper class (seed {report['runs'][0]['seed']}, test)   support  predicted  precision  recall     F1")
        for name, c in per_class.items():
            print(f"  {name:<28} {c['support']:>7} {c['predicted']:>10} {c['precision']:>10.3f} {c['recall']:>7.3f} {c['f1']:>6.3f}")
    print(f"wrote {out / 'retrain.json'} and {out / 'best_model.pt'}")
