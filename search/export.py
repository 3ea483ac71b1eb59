"""`nextsweep export`: the best trials as YAML, and reading such a YAML back (read_export)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import yaml

from models.config import RUNTIME_KEYS
from search.errors import SearchError
from search.ranking import complete_showing, confirmation, pareto_front, ranked
from search.storage import file_stem, load_study
from search.study_reads import whole_trials
from search.study_record import read
from search.url_redact import redact

EXPORT_VERSION = 1


def export_top(storage_url: str, study_name: str | None, top: int, out: str | Path, pareto: bool = False) -> list[Path]:
    """The `top` best trials by ranked() (confirmed means first), or with `pareto` every trial of
    the Pareto front (value vs parameter count, smallest first; `top` is then ignored)."""
    study = load_study(storage_url, study_name)
    done = ranked(study, complete=complete_showing(study, ("n_params",)))  # n_params: the Pareto front
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
    for t in whole_trials(study, chosen):
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
        if meta.simulated:  # retrain and predict refuse it: a stand-in curve is not a result
            doc = {"simulated": True, **doc}
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


def refuse_simulated_export(doc: dict, path: Path, command: str) -> None:
    if doc.get("simulated"):
        raise SearchError(f"{path}: exported from a simulated sweep (sweep --simulate): its trial trained nothing, so "
                          f"there is nothing to {command}; export a trial of a real sweep")


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
