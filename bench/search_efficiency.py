"""Search efficiency on Geolife (spaces/geolife_500k.yaml, epochs capped), the same wall-clock
budget on the same 2 CPUs for each method:
  (a) random search, full training, no pruning (over-budget samples redrawn);
  (b) stock Ray Tune OptunaSearch (TPE) + ASHA, over-budget configs "pruned" the naive way
      (the trainable reports Hit@5 = 0 at once, as a Ray user would write it);
  (c) nextsweep (width fitted to the budget, Optuna study, recording ASHA).
Reports best val Hit@5 over time (PNG), and the time each method needs to reach (a)'s final
best of the same seed, mean over seeds. Each run is its own process; runs go one after another.

    .venv/bin/python bench/search_efficiency.py [--minutes 4] [--seeds 0 1 2] [--max-epochs 8]
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

import yaml

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("random", "stock", "nextsweep")
CPUS = 2


def space_file(tmp: Path, max_epochs: int) -> Path:
    raw = yaml.safe_load((ROOT / "spaces" / "geolife_500k.yaml").read_text())
    raw["data"] = {"geolife": str((ROOT / "spaces" / raw["data"]["geolife"]).resolve())}
    raw["asha"]["max_epochs"] = max_epochs
    path = tmp / "space.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


class DefineByRun:
    """The space as Ray users write it for OptunaSearch: the width drawn like any parameter. With
    `redraw` (random search), over-budget draws are redrawn from an independent random stream."""

    def __init__(self, compiled, seed: int, redraw: bool):
        self.compiled, self.seed, self.redraw, self.draws = compiled, seed, redraw, None

    def __getstate__(self):  # OptunaSearch pickles its space; the redraw stream is rebuilt
        return {**self.__dict__, "draws": None}

    def __call__(self, trial):
        import optuna
        p = self.compiled.propose(trial)
        while self.redraw and not p.feasible:
            if self.draws is None:
                self.draws = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=self.seed + trial.number))
            t = self.draws.ask()
            p = self.compiled.propose(t)
            self.draws.tell(t, 0.0)
        return {"engine": {**p.config, "seed": self.seed * 100_003 + trial.number}, "cpus": 1, "n_params": p.n_params}


def naive_budget(config, data, max_params):
    """Over budget: report a zero at once and stop, the common hand-written Ray way."""
    from ray import tune

    from search.trainable import train_trial
    if config["n_params"] > max_params:
        tune.report({"epoch": 1, "val_hit5": 0.0, "epoch_s": 0.0, "last": True})
        return
    train_trial(config, data)


def run_tune_baseline(method: str, space_path: Path, out: Path, seed: int, budget_s: float) -> None:
    import optuna
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.optuna import OptunaSearch

    from spaces import CompiledSpace, load_space, load_space_data

    space = load_space(space_path)
    data = load_space_data(space)
    compiled = CompiledSpace(space, data.info, fit_width=False)
    define = DefineByRun(compiled, seed, redraw=method == "random")
    if method == "random":  # random draws, redrawn until one fits; full training (no scheduler)
        sampler, scheduler = optuna.samplers.RandomSampler(seed=seed), FIFOScheduler()
    else:
        sampler = optuna.samplers.TPESampler(seed=seed)
        scheduler = ASHAScheduler(time_attr="epoch", max_t=space.asha.max_epochs, grace_period=space.asha.grace_period,
                                  reduction_factor=space.asha.reduction_factor)
    ray.init(address="local", num_cpus=CPUS, include_dashboard=False, log_to_driver=False)
    tune.Tuner(
        tune.with_resources(tune.with_parameters(naive_budget, data=data, max_params=space.max_params), {"cpu": 1}),
        tune_config=tune.TuneConfig(search_alg=OptunaSearch(space=define, metric="val_hit5", mode="max", sampler=sampler),
                                    scheduler=scheduler, metric="val_hit5", mode="max", num_samples=10_000,
                                    time_budget_s=budget_s),
        run_config=tune.RunConfig(storage_path=str(out.resolve()), name=method, verbose=0),
    ).fit()


def run_one(method: str, seed: int, minutes: float, max_epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        space = space_file(tmp, max_epochs)
        start = time.time()
        if method == "nextsweep":
            from search.sweep import SweepOptions, run_sweep
            run_sweep(SweepOptions(space=str(space), study=f"eff-{seed}", samples=10_000, dir=str(tmp),
                                   seed=seed, time_budget_s=minutes * 60))
        else:
            run_tune_baseline(method, space, tmp, seed, minutes * 60)
        points, trials = [], 0
        for result in tmp.glob("**/result.json"):
            trials += 1
            for line in result.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    points.append((row["timestamp"] - start, row.get("val_hit5", 0.0)))
    points.sort()
    curve, best = [], 0.0
    for t, v in points:
        if v > best:
            best = v
            curve.append((round(t, 1), v))
    return {"method": method, "seed": seed, "trials": trials, "final_best": best, "curve": curve,
            "wall_s": minutes * 60}


def time_to(curve: list, target: float) -> float | None:
    return next((t for t, v in curve if v >= target - 1e-12), None)


def plot(rows: list[dict], path: Path, horizon: float) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    grid = [horizon * i / 200 for i in range(201)]
    for method, color in zip(METHODS, ("tab:gray", "tab:orange", "tab:blue")):
        runs = [r for r in rows if r["method"] == method]
        if not runs:
            continue
        mean = [statistics.mean(max([v for t, v in r["curve"] if t <= g], default=0.0) for r in runs) for g in grid]
        ax.plot([g / 60 for g in grid], mean, color=color, label=f"{method} (mean of {len(runs)} seeds)")
    ax.set_xlabel("wall-clock minutes (2 CPUs)")
    ax.set_ylabel("best val Hit@5 so far")
    ax.set_title("Geolife, geolife_500k space, same budget per method")
    ax.set_ylim(0.5, None)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=4.0, help="wall minutes per run on 2 CPUs (default 4 = 8 CPU-minutes)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--max-epochs", type=int, default=8)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # child: METHOD SEED
    ap.add_argument("--out", default="bench/out/search_efficiency.json")
    a = ap.parse_args()
    if a.one:
        print(json.dumps(run_one(a.one[0], int(a.one[1]), a.minutes, a.max_epochs)))
        return
    rows = []
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    for seed in a.seeds:
        for method in a.methods:
            out = subprocess.run([sys.executable, __file__, "--one", method, str(seed), "--minutes", str(a.minutes),
                                  "--max-epochs", str(a.max_epochs)], capture_output=True, text=True, env=env)
            if out.returncode != 0:
                sys.exit(f"{method} seed {seed} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"seed {seed} {method:<10} trials {r['trials']:>4}  final best val Hit@5 {r['final_best']:.4f}", flush=True)
    summary = []
    for method in a.methods:
        runs = [r for r in rows if r["method"] == method]
        reach = []
        for r in runs:
            target = next(x["final_best"] for x in rows if x["method"] == "random" and x["seed"] == r["seed"])
            reach.append(time_to(r["curve"], target))
        reached = [t for t in reach if t is not None]
        summary.append({"method": method, "final_best_mean": statistics.mean(r["final_best"] for r in runs),
                        "final_best_std": statistics.stdev(r["final_best"] for r in runs) if len(runs) > 1 else 0.0,
                        "trials_mean": statistics.mean(r["trials"] for r in runs),
                        "time_to_random_best_s": reach,
                        "time_to_random_best_mean_s": statistics.mean(reached) if len(reached) == len(reach) else None})
    print(f"\n{'method':<11}{'trials':>8}{'final best Hit@5':>20}{'time to (a) best':>20}  per seed")
    for s in summary:
        mean_t = f"{s['time_to_random_best_mean_s']:.0f} s" if s["time_to_random_best_mean_s"] is not None else "not always"
        per = ", ".join("-" if t is None else f"{t:.0f}" for t in s["time_to_random_best_s"])
        print(f"{s['method']:<11}{s['trials_mean']:>8.1f}{s['final_best_mean']:>13.4f} +- {s['final_best_std']:.4f}{mean_t:>14}  {per}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"runs": rows, "summary": summary, "minutes": a.minutes,
                                       "max_epochs": a.max_epochs}, indent=2) + "\n")
    plot(rows, Path(a.out).with_suffix(".png"), a.minutes * 60)


if __name__ == "__main__":
    main()
