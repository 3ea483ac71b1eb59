"""`nextsweep retrain`: an export's config through the same engine with several seeds, test
metrics as mean +- std, and the best seed's model saved for predict."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import torch

from models import build_predictor, fit, metric_mode
from models.native import runtime_notice
from models.tasks import TASKS, get_task
from search.errors import SearchError
from search.export import read_export, refuse_simulated_export
from spaces.data import load_data

LABELS = {"acc1": "Acc@1", "hit1": "Hit@1", "hit5": "Acc@5", "hit10": "Acc@10", "mrr": "MRR", "ndcg10": "NDCG@10",
          "f1": "macro-F1", "cos": "cosine", "loss": "loss"}
UNSCALED = ("loss", "cos")  # printed as they are; the other figures are rates, in percent


def retrain(path: str | Path, seeds: int, out: str | Path | None, force: bool = False, jobs: int | None = None) -> dict:
    """`seeds` runs of the export at `path`, `jobs` at a time (None: default_jobs)."""
    path = Path(path)
    doc = read_export(path)
    refuse_simulated_export(doc, path, "retrain")
    with _seed_pool(jobs or default_jobs(seeds, doc.get("threads"))) as pool:
        return _retrain(path, doc, seeds, out, force, pool)


def _retrain(path: Path, doc: dict, seeds: int, out: str | Path | None, force: bool, pool) -> dict:
    data = load_data(doc["data"], path, doc.get("task", "location"))  # paths were made absolute by the sweep
    if doc.get("fingerprint") and data.info.fingerprint != doc["fingerprint"] and not force:
        raise SearchError(f"{path}: fingerprint: the data now differs from the sweep's ({data.info.fingerprint[:12]} vs "
                          f"{doc['fingerprint'][:12]}); pass --force to retrain on it anyway")
    out = Path(out or path.with_suffix(""))
    out.mkdir(parents=True, exist_ok=True)
    base = int(doc["config"].get("seed", 0))
    _runtime_notice(doc)
    runs, best = _train_seeds(doc, data, base, seeds, pool)
    report = {"export": str(path), "task": doc.get("task", "location"), "n_params": doc.get("n_params"),
              "metric": doc["config"].get("metric", "val_hit5"),
              "seeds": [r["seed"] for r in runs], "folds": len(best[1]) if len(best[1]) > 1 else 0,
              "test": _summary(runs, "test"), "runs": runs, "fingerprint": data.info.fingerprint}
    if "test_fold_mean" in runs[0]:
        report["test_fold_mean"] = _summary(runs, "test_fold_mean")
    task = get_task(data.info.task)
    report["baselines_test"] = {name: {k: v for k, v in m.items() if k in report["test"]}
                                for name, m in task.baselines_on(data, "test").items()}
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


def default_jobs(seeds: int, threads: int | None) -> int:
    """Seeds trained at once: all of them where they fit twice the CPUs' threads (3 seeds of one
    thread on 2 CPUs share the cores, 1.5 seeds' time, where 2 then 1 would take 2)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(seeds, 2 * cpus // max(1, int(threads or 1))))


@contextmanager
def _seed_pool(jobs: int):
    """The processes the seeds train in (None where `jobs` is 1: in this one), started before the
    data loads so that their start (Python, torch) overlaps it; spawned, since a forked torch may hang."""
    if jobs <= 1:
        yield None
        return
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for _ in range(jobs):  # each submit starts a process while none is idle
            pool.submit(_started)
        yield pool


def _started() -> None:
    """A pool process's first task: by then it has imported this module (and torch) to run it."""


def _train_seeds(doc: dict, data, base: int, seeds: int, pool) -> tuple[list[dict], tuple]:
    """Each seed's run, its fold states and config, in seed order; and the best by validation (the
    first seed on a tie). With a `pool` the seeds train in its processes, each with the trial's
    threads, so their figures equal a run in this process (tests/test_retrain_parallel.py)."""
    configs = [{**doc["config"], "seed": base + i} for i in range(seeds)]
    metric = doc["config"].get("metric", "val_hit5")
    threads = doc.get("threads")
    if pool is None:
        with torch_threads(threads):
            done = [_print_seed(_one_seed(c, data), metric) for c in configs]
    else:
        futures = [pool.submit(_seed_in_process, c, data, threads) for c in configs]
        done = [_print_seed(_unpacked(f.result()), metric) for f in futures]
    best = None
    for run, states, config in done:
        if best is None or _better(run["val"][metric], best[0]["val"][metric], metric):
            best = (run, states, config)
    return [run for run, _, _ in done], best


def _one_seed(config: dict, data) -> tuple[dict, list, dict]:
    start = time.perf_counter()
    result = fit(config, data)
    states = result.fold_states or [result.state_dict]
    test, details, fold_mean = _test_metrics(config, data, states)
    run = {"seed": config["seed"], "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
           "seconds": round(time.perf_counter() - start, 1),
           "val": {k: v for k, v in result.best_metrics.items() if k.startswith("val_")},
           "test": test, **({"test_fold_mean": fold_mean} if fold_mean else {}), **details}
    return run, states, config


def _seed_in_process(config: dict, data, threads: int | None) -> tuple[dict, bytes, dict]:
    """_one_seed in a pool's process; the weights come back as torch.save bytes (tensors through
    multiprocessing would travel as shared-memory handles, freed with the process)."""
    with torch_threads(threads):
        run, states, config = _one_seed(config, data)
    buffer = io.BytesIO()
    torch.save(states, buffer)
    return run, buffer.getvalue(), config


def _unpacked(done: tuple[dict, bytes, dict]) -> tuple[dict, list, dict]:
    run, states, config = done
    return run, torch.load(io.BytesIO(states), weights_only=True), config


def _print_seed(done: tuple[dict, list, dict], metric: str) -> tuple[dict, list, dict]:
    run = done[0]
    shown = ", ".join(f"{k} {v:.4f}" for k, v in run["test"].items() if k != "loss")
    print(f"seed {run['seed']}: best epoch {run['best_epoch']}, val {metric} {run['val'][metric]:.4f}, test {shown}",
          flush=True)
    return done


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


def _print_against_baselines(report: dict) -> None:
    """The no-search baselines on the same test split, and whether the model's mean beats the best."""
    baselines, metric = report.get("baselines_test"), report.get("metric", "")
    key = metric.removeprefix("val_")
    if not baselines or key not in report["test"]:
        return
    labels = {**LABELS, **(TASKS[report["task"]].metric_labels if report.get("task") in TASKS else {})}
    print(f"\nno-search baselines on the same test split (fitted on train), by {labels.get(key, key)}")
    for name, m in sorted(baselines.items(), key=lambda nm: -_signed(nm[1].get(key), metric)):
        print(f"  {name:<16} {_figure(m.get(key), key)}")
    scored = [(name, m[key]) for name, m in baselines.items() if key in m]
    if scored:
        name, bar = max(scored, key=lambda nm: _signed(nm[1], metric))
        mine = report["test"][key]["mean"]
        gap = _signed(mine, metric) - _signed(bar, metric)
        verdict = "beats" if gap > 0 else "does NOT beat"
        print(f"  the model's mean {verdict} the best baseline, {name}, by {_figure(gap, key, signed=True)}")


def _signed(value: float | None, metric: str) -> float:
    if value is None:
        return float("-inf")
    return value if metric_mode(metric) == "max" else -value


def _figure(v: float | None, key: str, signed: bool = False) -> str:
    if v is None:
        return "-"
    scale = 1 if key in UNSCALED else 100
    return f"{scale * v:+.2f}" if signed else f"{scale * v:6.2f}"


def print_retrain(report: dict, out: Path) -> None:
    folds = report.get("folds", 0)
    served = f", the ensemble of the {folds} fold models (what predict serves)" if folds else ""
    print(f"\ntest metrics over {len(report['seeds'])} seeds (mean +- std), {report['n_params']:,} parameters{served}")
    _print_figures(report["test"], report.get("task"))
    if "test_fold_mean" in report:
        print(f"each fold model alone (mean over the {folds} folds, then over seeds)")
        _print_figures(report["test_fold_mean"], report.get("task"))
    _print_against_baselines(report)
    per_class = report["runs"][0].get("per_class")
    if per_class:  # minority over-calling shows as predicted >> support with low precision
        print(f"\nper class (seed {report['runs'][0]['seed']}, test)   support  predicted  precision  recall     F1")
        for name, c in per_class.items():
            print(f"  {name:<28} {c['support']:>7} {c['predicted']:>10} {c['precision']:>10.3f} {c['recall']:>7.3f} {c['f1']:>6.3f}")
    print(f"wrote {out / 'retrain.json'} and {out / 'best_model.pt'}")
