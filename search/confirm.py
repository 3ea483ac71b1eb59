"""`nextsweep confirm`: train the top trials of a study again with new seeds, in parallel on Ray,
and keep each trial's validation mean +- std on the trial (user attribute "confirmed").

One seed of this kind of model can move Acc@1 by points, more than the gap between a sweep's
top trials, so the winner is chosen on several. Only the training and validation splits are
used (the test split stays for `retrain`). The record is written after every finished seed, so
an interrupted confirm loses nothing and the same command later trains only the missing seeds.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field

import optuna
import torch

from models import fit
from models.native import runtime_facts, runtime_notice
from search.ranking import confirmation, ranked, then_value
from search.errors import SearchError
from search.storage import load_study, set_finished_trial_attr
from search.study_record import read, refuse_simulated
from search.summary import config_text, confirmed_text, num_text
from spaces.data import load_data

SEED_STRIDE = 1000  # the i-th confirm seed of a trial is its own seed + 1000 * i (i >= 1): never its own


@dataclass
class ConfirmOptions:
    storage: str
    study: str | None = None
    top: int = 5
    seeds: int = 3
    address: str | None = None  # Ray cluster to join; None: a local Ray sized to this machine
    cpus_per_trial: float = 1.0


@dataclass
class ConfirmResult:
    study: optuna.Study  # loaded after the last seed: it shows every "confirmed" record
    trials: list[int]  # the trial numbers confirmed, in the sweep's single-run order
    trained: list[tuple[int, int]] = field(default_factory=list)  # (trial, seed) run by this call
    failed: list[tuple[int, int, str]] = field(default_factory=list)  # (trial, seed, error)


def confirm_seeds(trial_seed: int, n: int) -> list[int]:
    """The N confirm seeds of a trial whose own seed is `trial_seed`."""
    return [trial_seed + SEED_STRIDE * i for i in range(1, n + 1)]


def add_run(record: dict | None, metric: str, then: list[str], seed: int, val: dict[str, float]) -> dict:
    """The "confirmed" record with one more seed's validation metrics (the contract's fields,
    plus "runs": every seed's val_* metrics, from which the rest is recomputed)."""
    runs = [r for r in (record or {}).get("runs", []) if r["seed"] != seed] + [{"seed": seed, **val}]
    runs.sort(key=lambda r: r["seed"])
    values = [float(r[metric]) for r in runs]
    out = {"metric": metric, "seeds": [r["seed"] for r in runs], "values": values, **_mean_std(values), "then": {}}
    for m in then:
        got = [float(r[m]) for r in runs if m in r]
        if got:
            out["then"][m] = _mean_std(got)
    out["runs"] = runs
    return out


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def run_confirm(opts: ConfirmOptions) -> ConfirmResult:
    if opts.top < 1 or opts.seeds < 1:
        raise SearchError(f"--top {opts.top} --seeds {opts.seeds}: both must be >= 1")
    study = load_study(opts.storage, opts.study)
    meta = read(study)
    refuse_simulated(meta, study.study_name, "confirm")
    metric, then = meta.metric, list(meta.then)
    top = ranked(study, use_confirmed=False)[:opts.top]  # the sweep's own order: a new better trial gets in
    if not top:
        raise SearchError(f"study '{study.study_name}' has no COMPLETE trial to confirm yet")
    records = {t.number: confirmation(t, metric) for t in top}
    todo = [(t, s) for t in top for s in confirm_seeds(_seed(t), opts.seeds)
            if s not in (records[t.number] or {}).get("seeds", [])]
    print(f"nextsweep: confirming the top {len(top)} trials of study '{study.study_name}' with {opts.seeds} new seeds "
          f"each on validation: {len(todo)} runs to train, {len(top) * opts.seeds - len(todo)} already done", flush=True)
    result = ConfirmResult(study, [t.number for t in top])
    if todo:
        data = _load_data(study)
        _train(opts, study, todo, data, records, metric, then, result)
    result.study = load_study(opts.storage, study.study_name)  # a fresh read: finished trials are cached
    return result


def _seed(t: optuna.trial.FrozenTrial) -> int:
    return int(json.loads(t.user_attrs["config"]).get("seed", 0))


def _load_data(study: optuna.Study):
    """The sweep's dataset, read as retrain reads it, and refused if it changed since the sweep."""
    meta = read(study)
    where = meta.space_file or f"study '{study.study_name}'"
    if not isinstance(meta.data, dict):
        raise SearchError(f"study '{study.study_name}' does not record its data; it was not made by `nextsweep sweep`")
    data = load_data(meta.data, where, meta.task)
    want = meta.fingerprint
    if want and data.info.fingerprint != want:
        raise SearchError(f"study '{study.study_name}': the data of {where} changed since the sweep "
                          f"(fingerprint {data.info.fingerprint[:12]} vs {want[:12]}); confirm on the sweep's data")
    return data


def fit_val(config: dict, data, threads: int) -> tuple[dict[str, float], dict]:
    """One run of a trial's config (a Ray task): the best epoch's validation metrics, and the
    worker's runtime_facts() to compare with the trial's."""
    torch.set_num_threads(threads)
    result = fit(config, data)
    return {k: float(v) for k, v in result.best_metrics.items() if k.startswith("val_")}, runtime_facts()


def _say_runtime(t: optuna.trial.FrozenTrial, facts: dict, said: set[str]) -> None:
    """One line where a run's worker has another kernel path or CPU than the trial had; each
    distinct line once (the top trials of a sweep mostly ran on the same machines)."""
    notice = runtime_notice(t.user_attrs, facts)
    if notice and notice not in said:
        said.add(notice)
        print(f"nextsweep: {notice}", flush=True)


def _train(opts: ConfirmOptions, study, todo, data, records: dict, metric: str, then: list[str],
           result: ConfirmResult) -> None:
    from search.ray_session import init_ray, quiet_ray
    quiet_ray(local=not opts.address)
    import ray
    init_ray(opts)
    threads = max(1, int(opts.cpus_per_trial))
    task = ray.remote(fit_val).options(num_cpus=float(opts.cpus_per_trial))
    data_ref = ray.put(data)  # loaded once here, shared zero-copy with every run
    pending = {task.remote({**json.loads(t.user_attrs["config"]), "seed": s}, data_ref, threads): (t, s)
               for t, s in todo}
    said: set[str] = set()
    while pending:
        [ref], _ = ray.wait(list(pending), num_returns=1)
        t, seed = pending.pop(ref)
        try:
            val, facts = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            why = str(exc.cause if getattr(exc, "cause", None) else exc).strip().splitlines()[-1]
            result.failed.append((t.number, seed, why))
            print(f"trial {t.number:>4}  seed {seed:>6}  FAILED: {why}", flush=True)
            continue
        _say_runtime(t, facts, said)
        records[t.number] = add_run(records[t.number], metric, then, seed, val)
        set_finished_trial_attr(study, t._trial_id, "confirmed", records[t.number])
        result.trained.append((t.number, seed))
        print(f"trial {t.number:>4}  seed {seed:>6}  {metric} {val[metric]:.4f}  "
              f"({len(result.trained)}/{len(todo)} done)", flush=True)


def print_confirmed(result: ConfirmResult) -> None:
    """The confirmed trials in the new ranking: one run's objective beside the mean +- std."""
    study = result.study
    meta = read(study)
    metric, then = meta.metric, list(meta.then)
    rows = [t for t in ranked(study) if t.number in result.trials]
    print(f"\n{'trial':>5}  {metric + ' (1 run)':>16}  {'confirmed mean +- std (seeds)':>30}  "
          + "".join(f"{m:>9}  " for m in then) + f"{'params':>9}  config")
    for t in rows:
        shown = "".join(f"{num_text(then_value(t, m, metric)):>9}  " for m in then)
        print(f"{t.number:>5}  {t.value:>16.4f}  {confirmed_text(t, metric):>30}  {shown}"
              f"{t.user_attrs.get('n_params', 0):>9,}  {config_text(t)}")
    if result.failed:
        print(f"\n{len(result.failed)} runs failed (listed above); run the same command again to retry them")
    print("\nexport ranks confirmed trials first, by their mean (see `nextsweep export --help`)")
