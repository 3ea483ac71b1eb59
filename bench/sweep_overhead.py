"""Sweep overhead: the share of a sweep's wall time x CPUs spent inside training epochs, and the
median fixed cost per trial, for nextsweep and for stock Ray Tune `OptunaSearch` +
`ASHAScheduler` driving the same trainable on the same data, space and trial count. Each side
runs in its own process, one after the other. Targets: >= 90 % inside epochs, <= 0.3 s a trial.

    .venv/bin/python bench/sweep_overhead.py [--trials 20] [--users 100]

Wall time runs from just before the data is read to the end of the sweep; "inside epochs" sums
the `epoch_s` every trial reported (training and validation of each epoch). Where the rest goes:
the start (to the first batch: Ray's start, the data, nextsweep's no-search baselines), the
wrap-up (last epoch to the sweep's end), and the tail (slot-seconds idle after a slot's last
trial while the other still runs). The fixed cost of a trial
is the gap in its slot (one CPU each) from the previous trial's last epoch to its first batch
(the first epoch's end less its length): stopping one trial, handing out the next, starting or
reusing its worker, fetching and tensorising the data. The first trial of each slot (after
Ray's start) is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPACE = """
name: overhead
data: {synthetic: {users: USERS, days: 120, locations: 300, seed: 0}}
asha: {max_epochs: 6, grace_period: 2, reduction_factor: 2}
params:
  family: {type: categorical, choices: [gru, lstm]}
  d_model: {type: int, low: 32, high: 96, step: 16}
  lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
  batch_size: 128
"""
CPUS = 2


def trial_rows(root: Path) -> list[list[dict]]:
    out = []
    for result in root.glob("**/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if rows:
            out.append(rows)
    return out


def fixed_costs(trials: list[list[dict]], slots: int) -> list[float]:
    """Per trial, the idle time of its slot before its first batch (see the module docstring):
    trials in order of their first batch each take the slot that freed last before it."""
    spans = sorted((rows[0]["reported_at"] - rows[0]["epoch_s"], rows[-1]["reported_at"]) for rows in trials)
    free, gaps = [], []  # end times of the trials whose slot is free again
    for i, (first_batch, end) in enumerate(spans):
        ended = [e for e in free if e <= first_batch]
        if i >= slots and ended:
            prev = max(ended)
            free.remove(prev)
            gaps.append(first_batch - prev)
        free.append(end)
    return gaps


MARKS: dict[str, float] = {}  # phase -> wall-clock time it ended, in this (child) process


def mark_after(owner, name: str, phase: str, first_call: bool = False) -> None:
    """Wrap owner.name to record when it returns (or, with first_call, when it is first called)."""
    fn = getattr(owner, name)

    def wrapped(*args, **kwargs):
        if first_call:
            MARKS.setdefault(phase, time.time())
        out = fn(*args, **kwargs)
        if not first_call:
            MARKS.setdefault(phase, time.time())
        return out
    setattr(owner, name, wrapped)


def run_nextsweep(space: Path, out: Path, trials: int) -> tuple[float, float]:
    """(start, end) wall-clock times of the sweep."""
    import search.sweep
    from search.searcher import BudgetSearcher
    from search.sweep import SweepOptions, run_sweep
    mark_after(search.sweep, "load_space_data", "data")
    mark_after(search.sweep, "ensure_baselines", "baselines")
    mark_after(search.sweep, "init_ray", "ray_init")
    mark_after(BudgetSearcher, "suggest", "first_suggest", first_call=True)
    start = time.time()
    run_sweep(SweepOptions(space=str(space), study="overhead", samples=trials, dir=str(out)))
    return start, time.time()


def where_time_goes(runs: list[list[dict]], start: float, end: float, slots: int) -> dict:
    """Slot-seconds outside epochs, split into: before the first batch (Ray's start, data,
    baselines), after the last epoch (the driver's wrap-up), the tail (a slot idle after its last
    trial while another runs), and the rest (between a slot's trials)."""
    spans = [(rows[0]["reported_at"] - rows[0]["epoch_s"], rows[-1]["reported_at"]) for rows in runs]
    first, last = min(s for s, _ in spans), max(e for _, e in spans)
    slot_ends = sorted(e for _, e in spans)[-slots:]  # each slot's last trial ends at one of these
    return {"startup_s": first - start, "wrapup_s": end - last, "tail_slot_s": sum(last - e for e in slot_ends),
            "startup_phases_s": startup_phases(runs, start)}


def startup_phases(runs: list[list[dict]], start: float) -> dict[str, float]:
    """The start split at the marks this process recorded and the first trial's own times: each
    phase's seconds, in order (a missing mark, e.g. stock's baselines, merges into the next)."""
    first = min(runs, key=lambda rows: rows[0]["reported_at"] - rows[0]["epoch_s"])[0]
    ends = {**MARKS, "worker_entered": first["started_at"], "first_batch": first["reported_at"] - first["epoch_s"]}
    order = ["data", "baselines", "ray_init", "first_suggest", "worker_entered", "first_batch"]
    out, prev = {}, start
    for phase in order:
        if phase in ends:
            out[phase] = ends[phase] - prev
            prev = ends[phase]
    return out


class DefineByRun:
    """The space as an OptunaSearch define-by-run function (a class: OptunaSearch pickles it)."""

    def __init__(self, compiled):
        self.compiled = compiled

    def __call__(self, trial):
        return {"engine": {**self.compiled.propose(trial).config, "seed": trial.number}, "cpus": 1}


def run_stock(space_file: Path, out: Path, trials: int) -> float:
    """The usual glue: OptunaSearch over a define-by-run space + ASHAScheduler, same trainable."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from search.trainable import train_trial
    from spaces import CompiledSpace, load_space, load_space_data

    space = load_space(space_file)
    start = time.time()  # from before the data is read, as for nextsweep
    data = load_space_data(space)
    MARKS["data"] = time.time()
    define = DefineByRun(CompiledSpace(space, data.info, fit_width=False))
    mark_after(OptunaSearch, "suggest", "first_suggest", first_call=True)
    ray.init(address="local", num_cpus=CPUS, include_dashboard=False, log_to_driver=False)
    MARKS["ray_init"] = time.time()
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(train_trial, data=data), {"cpu": 1}),
        tune_config=tune.TuneConfig(search_alg=OptunaSearch(space=define, metric="val_hit5", mode="max", seed=0),
                                    scheduler=ASHAScheduler(time_attr="epoch", max_t=space.asha.max_epochs,
                                                            grace_period=space.asha.grace_period,
                                                            reduction_factor=space.asha.reduction_factor),
                                    metric="val_hit5", mode="max", num_samples=trials),
        run_config=tune.RunConfig(storage_path=str(out.resolve()), name="stock", verbose=0),
    )
    tuner.fit()
    return start, time.time()


def side(name: str, trials: int, users: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "space.yaml").write_text(SPACE.replace("USERS", str(users)))
        start, end = (run_nextsweep if name == "nextsweep" else run_stock)(tmp / "space.yaml", tmp, trials)
        runs = trial_rows(tmp)
    wall = end - start
    epochs = [r["epoch_s"] for rows in runs for r in rows]
    inside, gaps = sum(epochs), fixed_costs(runs, CPUS)
    return {"side": name, "wall_s": wall, "epoch_s": inside, "trials": len(runs), "cpus": CPUS,
            "share": inside / (wall * CPUS), "median_epoch_s": statistics.median(epochs),
            "fixed_s": gaps, "median_fixed_s": statistics.median(gaps) if gaps else None,
            **where_time_goes(runs, start, end, CPUS)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20, help="trials per side (default 20)")
    ap.add_argument("--users", type=int, default=100, help="synthetic users (sets the epoch length)")
    ap.add_argument("--side", choices=["nextsweep", "stock"], help=argparse.SUPPRESS)
    ap.add_argument("--out", default="bench/out/sweep_overhead.json")
    a = ap.parse_args()
    if a.side:  # child process: one side, result as the last stdout line
        print(json.dumps(side(a.side, a.trials, a.users)))
        return
    rows = []
    for name in ("nextsweep", "stock"):
        env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
        out = subprocess.run([sys.executable, __file__, "--side", name, "--trials", str(a.trials), "--users", str(a.users)],
                             capture_output=True, text=True, env=env, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'side':<11}{'trials':>7}{'wall s':>9}{'in epochs s':>13}{'share of wall x CPUs':>22}"
          f"{'median epoch s':>16}{'median fixed s/trial':>22}{'start s':>9}{'wrap-up s':>11}{'tail slot-s':>13}")
    for r in rows:
        print(f"{r['side']:<11}{r['trials']:>7}{r['wall_s']:>9.1f}{r['epoch_s']:>13.1f}{r['share']:>21.1%}"
              f"{r['median_epoch_s']:>16.2f}{r['median_fixed_s']:>22.2f}{r['startup_s']:>9.1f}{r['wrapup_s']:>11.1f}"
              f"{r['tail_slot_s']:>13.1f}")
    print("start, phase by phase (seconds to the end of each):")
    for r in rows:
        print(f"  {r['side']:<9} " + ", ".join(f"{k} {v:.1f}" for k, v in r["startup_phases_s"].items()))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
