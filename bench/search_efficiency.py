"""Search efficiency: the same CPU time on the same 2 CPUs for each method, several seeds.

Methods (each run is its own process; runs go one after another):
  random     (a) random search, full training, no pruning (over-budget samples redrawn);
  stock      (b) stock Ray Tune OptunaSearch (TPE) + ASHA, over-budget configs answered by a zero
                 (the trainable reports the metric = 0 at once, as a Ray user would write it);
  nextsweep  (c) nextsweep (width fitted to the budget, Optuna study, recording ASHA);
  one_epoch  (d) the one-epoch baseline (Egele et al. 2023, "Is One Epoch All You Need for
                 Multi-Fidelity HPO?"): random configs trained for one epoch during the first
                 --one-epoch-share of the run, then the best of them trained on from their first
                 epoch's checkpoint, best first, for the rest of it: K, the number trained fully,
                 is what that CPU time allows.
Objectives (--objective, repeatable): geolife:val_hit5 and geolife:val_acc1 (spaces/geolife_500k.yaml)
and category:val_f1 (spaces/geolife_category.yaml, macro-F1 over 5 grouped folds).

Reports per objective: final best (mean +- std), the time each method needs to reach (a)'s final
best of the same seed (median over seeds, and per seed), the same counted in training samples
processed (every epoch of every trial, all folds; an epoch on a share of the data counts its share:
host-independent, unlike seconds), how many seeds (c) ends at or above (b)
and at or above (d), and the anytime curve (best so far vs time: median and quartiles over seeds)
as a PNG. Time counts from each run's start (Ray start and data loading included). Before each run
the host's speed is probed (bench/host_speed.py, outside the run's clock) and saved with it as
`probe_s`: times compare only between runs of one speed, so --summary-of refuses to merge runs whose
probes differ by more than 25% (--mixed-hosts to merge them anyway).

The issue's full protocol (3 objectives x 4 methods x 5 seeds x 20 CPU-minutes, each objective with the
settings of the runs bench/RESULTS.md reports) is `--protocol full`: 60 runs, 600 wall-minutes on 2 CPUs.

    .venv/bin/python bench/search_efficiency.py [--objective geolife:val_hit5 ...] [--cpu-minutes 8]
        [--seeds 0 1 2] [--methods ...] [--max-epochs N] [--set asha.grace_period=1]
    .venv/bin/python bench/search_efficiency.py --protocol full [--out bench/out/search_efficiency.json]
    .venv/bin/python bench/search_efficiency.py --summary-of bench/out/search_efficiency.json
    .venv/bin/python bench/search_efficiency.py --summary-of A.json B.json --out merged.json  # methods run apart
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from host_speed import PROBE_TOLERANCE, probe_seconds, probes_differ

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("random", "stock", "nextsweep", "one_epoch")
COLORS = {"random": "tab:gray", "stock": "tab:orange", "nextsweep": "tab:blue", "one_epoch": "tab:green"}
SPACES = {"geolife": "geolife_500k.yaml", "category": "geolife_category.yaml"}
OBJECTIVES = ("geolife:val_hit5", "geolife:val_acc1", "category:val_f1")
# The protocol: every objective x method, 5 seeds, 20 CPU-minutes a run, each objective with the
# settings of the runs bench/RESULTS.md reports for it (Geolife's pointers peak at epoch 1-2).
FULL_SEEDS, FULL_CPU_MINUTES = (0, 1, 2, 3, 4), 20
_GEOLIFE_RUNS = ["--max-epochs", "8", "--set", "asha.grace_period=1", "--startup-trials", "5"]
FULL_SETTINGS = {"geolife:val_hit5": _GEOLIFE_RUNS, "geolife:val_acc1": _GEOLIFE_RUNS,
                 "category:val_f1": ["--startup-trials", "5"]}
CPUS = 2


def space_file(tmp: Path, task: str, metric: str, max_epochs: int | None, sets: list[str] = ()) -> Path:
    from spaces.schema import apply_overrides, parse_override
    src = ROOT / "spaces" / SPACES[task]
    raw = apply_overrides(yaml.safe_load(src.read_text()), [parse_override(t) for t in sets], src)
    raw["data"] = {"geolife": str((ROOT / "spaces" / raw["data"]["geolife"]).resolve())}
    if max_epochs:
        raw["asha"]["max_epochs"] = max_epochs
    if raw["objective"]["metric"] != metric:  # the objective alone: no tie-break on other metrics
        raw["objective"] = {"metric": metric, "mode": "max"}
    path = tmp / "space.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


class DefineByRun:
    """The space as Ray users write it for OptunaSearch: the width drawn like any parameter. With
    `redraw` (random search), draws the space rules out are redrawn from an independent random stream."""

    def __init__(self, compiled, seed: int, redraw: bool):
        self.compiled, self.seed, self.redraw, self.draws = compiled, seed, redraw, None

    def __getstate__(self):  # OptunaSearch pickles its space; the redraw stream is rebuilt
        return {**self.__dict__, "draws": None}

    def __call__(self, trial):
        import optuna
        p = self.compiled.propose(trial)
        while self.redraw and not p.feasible:
            if self.draws is None:  # apart from the study's: seeded seed + number, it replayed them
                entropy = np.random.SeedSequence([self.seed, trial.number, 1]).generate_state(1)[0]
                self.draws = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=int(entropy)))
            t = self.draws.ask()
            p = self.compiled.propose(t)
            self.draws.tell(t, 0.0)
        return {"engine": {**p.config, "seed": self.seed * 100_003 + trial.number}, "cpus": 1, "n_params": p.n_params,
                "feasible": p.feasible}


def naive_budget(config, data, max_params, metric):
    """Over budget, forbidden or unbuildable: report a zero at once and stop, the common hand-written
    Ray way. A config with "from" (a checkpoint directory) continues that trial's training."""
    from ray import tune

    from search.trainable import train_trial
    config = config.get("pick", config)  # the one-epoch baseline's second phase hands out whole configs
    if not trainable_in_budget(config, max_params):
        tune.report({"epoch": 1, metric: 0.0, "epoch_s": 0.0, "last": True})
        return
    train_trial(config, data, start_from=tune.Checkpoint(config["from"]) if config.get("from") else None)


def trainable_in_budget(config: dict, max_params: int) -> bool:
    """False for a draw the space rules out: over budget, forbidden or unbuildable (counted as -1)."""
    return config["feasible"] and 0 <= config["n_params"] <= max_params


class Baseline:
    """The stock Ray Tune side: one Ray instance, the space's data in the object store."""

    def __init__(self, space_path: Path, out: Path, seed: int):
        import ray

        from spaces import CompiledSpace, load_space, load_space_data
        self.space = load_space(space_path)
        self.data = load_space_data(self.space)
        self.compiled = CompiledSpace(self.space, self.data.info, fit_width=False)
        self.out, self.seed, self.metric = out, seed, self.space.metric
        ray.init(address="local", num_cpus=CPUS, include_dashboard=False, log_to_driver=False)

    def trainable(self):
        from ray import tune
        fn = tune.with_parameters(naive_budget, data=self.data, max_params=self.space.max_params, metric=self.metric)
        return tune.with_resources(fn, {"cpu": 1})

    def fit(self, name: str, budget_s: float, search_alg=None, scheduler=None, param_space=None, stop=None,
            num_samples: int = 10_000):
        from ray import tune
        return tune.Tuner(
            self.trainable(), param_space=param_space,
            tune_config=tune.TuneConfig(search_alg=search_alg, scheduler=scheduler, metric=self.metric, mode="max",
                                        num_samples=num_samples, time_budget_s=max(1.0, budget_s),
                                        max_concurrent_trials=CPUS),
            run_config=tune.RunConfig(storage_path=str(self.out.resolve()), name=name, verbose=0, stop=stop),
        ).fit()

    def searcher(self, sampler, redraw: bool):
        from ray.tune.search.optuna import OptunaSearch
        return OptunaSearch(space=DefineByRun(self.compiled, self.seed, redraw=redraw), metric=self.metric,
                            mode="max", sampler=sampler)


def run_random(b: Baseline, budget_s: float) -> dict:
    import optuna
    b.fit("random", budget_s, b.searcher(optuna.samplers.RandomSampler(seed=b.seed), redraw=True))
    return {}


def run_stock(b: Baseline, budget_s: float) -> dict:
    import optuna
    from ray.tune.schedulers import ASHAScheduler
    a = b.space.asha
    asha = ASHAScheduler(time_attr="epoch", max_t=a.max_epochs, grace_period=a.grace_period,
                         reduction_factor=a.reduction_factor, brackets=a.brackets)
    b.fit("stock", budget_s, b.searcher(optuna.samplers.TPESampler(seed=b.seed), redraw=False), asha)
    return {}


def run_one_epoch(b: Baseline, budget_s: float, share: float, start: float) -> dict:
    """One epoch for every random config during `share` of the budget, then the best ones'
    training continued from their first epoch's checkpoint, best first, until the budget ends."""
    import optuna
    first = b.fit("one_epoch_screen", budget_s * share, b.searcher(optuna.samplers.RandomSampler(seed=b.seed),
                                                                     redraw=True), stop={"epoch": 1})
    screened = [(_number(r.metrics.get(b.metric)), {**r.config, "from": r.checkpoint.path}) for r in first
                if r.metrics and "epoch" in r.metrics and r.checkpoint is not None]
    ranked = [config for _, config in sorted(screened, key=lambda x: -x[0])]
    left = budget_s - (time.time() - start)
    if ranked and left > 1:
        b.fit("one_epoch_full", left, param_space=_grid(ranked), num_samples=1)
    full = [p for p in (b.out / "one_epoch_full").glob("**/result.json") if p.stat().st_size > 0]
    return {"screened": len(screened), "trained_fully": len(full)}


def _number(value) -> float:
    return float(value) if value is not None and value == value else 0.0  # NaN (a diverged epoch) ranks last


def _grid(configs: list[dict]) -> dict:
    """A param_space that hands the configs out in order (Tune resolves grid_search in order)."""
    from ray import tune
    return {"pick": tune.grid_search(configs)}


def run_one(method: str, task: str, metric: str, seed: int, cpu_minutes: float, max_epochs: int,
            share: float, sets: list[str] = (), startup: int | None = None) -> dict:
    budget_s = cpu_minutes * 60 / CPUS
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        space = space_file(tmp, task, metric, max_epochs, sets)
        start = time.time()
        extra: dict = {}
        if method == "nextsweep":
            from search.sweep import SweepOptions, run_sweep
            run_sweep(SweepOptions(space=str(space), study=f"eff-{seed}", samples=10_000, dir=str(tmp),
                                   seed=seed, time_budget_s=budget_s, startup_trials=startup))
        else:
            b = Baseline(space, tmp, seed)
            extra = (run_one_epoch(b, budget_s, share, start) if method == "one_epoch" else
                     run_random(b, budget_s) if method == "random" else run_stock(b, budget_s))
        points, trials, detail, per_epoch = [], 0, [], epoch_samples(space)
        for result in tmp.glob("**/result.json"):
            trials += "one_epoch_full" not in result.parts  # (d)'s second phase trains configs already counted
            rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
            points += [(row["timestamp"] - start, row.get(metric, 0.0), row_samples(row, per_epoch)) for row in rows]
            if rows:
                detail.append(trial_detail(result, rows, metric, start))
    points.sort()
    curve, by_samples, best, seen = [], [], 0.0, 0
    for t, v, n in points:
        seen += n
        if v > best:
            best = v
            curve.append((round(t, 1), v))
            by_samples.append((seen, v))
    return {"method": method, "objective": f"{task}:{metric}", "seed": seed, "trials": trials, "final_best": best,
            "curve": curve, "curve_samples": by_samples, "samples": seen, "wall_s": budget_s,
            "trial_detail": sorted(detail, key=lambda d: d["end_s"]), **extra}


def epoch_samples(space: Path) -> int:
    """Training samples one epoch on all the data trains: the train split, or every fold's."""
    from data_io import fold_view
    from spaces import load_space, load_space_data
    loaded = load_space(space)
    data = load_space_data(loaded)
    if loaded.folds:
        return sum(len(fold_view(data, f)["train"]) for f in range(loaded.folds))
    return len(data["train"])


def row_samples(row: dict, per_epoch: int) -> int:
    """The samples a Tune result's epoch trained: its own count (data fidelity), else a whole
    epoch's; none for a config answered at once without training (the stock side's zero)."""
    if "train_samples" in row:
        return int(row["train_samples"])
    return per_epoch if "samples_s" in row else 0


DETAIL_KEYS = ("family", "d_model", "layers", "batch_size", "lr", "loss", "sampler", "schedule")


def trial_detail(result: Path, rows: list[dict], metric: str, start: float) -> dict:
    """One trial's size, shape and value at each epoch, for reading a run afterwards."""
    params = result.with_name("params.json")
    config = json.loads(params.read_text()) if params.exists() else {}
    config = config.get("pick", config)  # (d)'s second phase hands out whole configs
    engine = config.get("engine", {})
    return {"end_s": round(rows[-1]["timestamp"] - start, 1), "epochs": len(rows),
            "best": max(_number(r.get(metric)) for r in rows),
            "by_epoch": [round(_number(r.get(metric)), 4) for r in rows],
            "n_params": rows[-1].get("n_params") or config.get("n_params"),
            "phase": result.parent.parent.name, **{k: engine[k] for k in DETAIL_KEYS if k in engine}}


def time_to(curve: list, target: float) -> float:
    """Seconds until the curve first reaches `target`; inf when it never does."""
    return next((t for t, v in curve if v >= target - 1e-12), math.inf)


def best_at(run: dict, t: float) -> float:
    return max([v for s, v in run["curve"] if s <= t], default=0.0)


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def summarise(rows: list[dict], objective: str, methods: list[str]) -> dict:
    """Per method: final best, time to (a)'s final best of the same seed; (c) against (b), (d)."""
    mine = [r for r in rows if r["objective"] == objective]
    final = {(r["method"], r["seed"]): r["final_best"] for r in mine}
    seeds = sorted({r["seed"] for r in mine})
    out = {"objective": objective, "seeds": seeds, "methods": {}}
    for m in methods:
        runs = sorted((r for r in mine if r["method"] == m), key=lambda r: r["seed"])
        if not runs:
            continue
        reach = [time_to(r["curve"], final[("random", r["seed"])]) if ("random", r["seed"]) in final else math.inf
                 for r in runs]
        bests = [r["final_best"] for r in runs]
        out["methods"][m] = {"final_best_mean": statistics.mean(bests),
                             "final_best_std": statistics.stdev(bests) if len(bests) > 1 else 0.0,
                             "trials_mean": statistics.mean(r["trials"] for r in runs),
                             "time_to_random_best_s": reach, "time_to_random_best_median_s": statistics.median(reach)}
        if all("curve_samples" in r for r in runs):  # runs from before samples were counted have none
            counted = [time_to(r["curve_samples"], final[("random", r["seed"])]) if ("random", r["seed"]) in final
                       else math.inf for r in runs]
            out["methods"][m].update(samples_to_random_best=counted, samples_to_random_best_median=statistics.median(counted))
    if "random" in out["methods"] and "nextsweep" in out["methods"]:
        a, c = out["methods"]["random"]["time_to_random_best_s"], out["methods"]["nextsweep"]["time_to_random_best_s"]
        out["speedup"] = [x / y if y > 0 else math.inf for x, y in zip(a, c)]  # 0 where (c) never got there
        out["speedup_median"] = statistics.median(out["speedup"])
        out["target_time_met"] = out["methods"]["nextsweep"]["time_to_random_best_median_s"] <= \
            out["methods"]["random"]["time_to_random_best_median_s"] / 3
        a_s, c_s = (out["methods"][m].get("samples_to_random_best_median") for m in ("random", "nextsweep"))
        if a_s is not None and c_s is not None:  # the verdict, host-independent
            out["target_samples_met"] = c_s <= a_s / 3
    for rival in ("stock", "one_epoch"):
        if rival in out["methods"] and "nextsweep" in out["methods"]:
            both = [s for s in seeds if (rival, s) in final and ("nextsweep", s) in final]
            out[f"nextsweep_at_or_above_{rival}"] = sum(final[("nextsweep", s)] >= final[(rival, s)] - 1e-12
                                                        for s in both)
    return out


def _finite(x):
    """inf (never reached) as null: strict JSON."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return None if isinstance(x, float) and math.isinf(x) else x


def print_summary(s: dict) -> None:
    print(f"\n{s['objective']} (seeds {' '.join(map(str, s['seeds']))})")
    print(f"{'method':<11}{'trials':>8}{'final best':>22}{'median time to (a) best':>26}  per seed")
    for m, v in s["methods"].items():
        med = v["time_to_random_best_median_s"]
        per = ", ".join("-" if t == math.inf else f"{t:.0f}" for t in v["time_to_random_best_s"])
        print(f"{m:<11}{v['trials_mean']:>8.1f}{v['final_best_mean']:>13.4f} +- {v['final_best_std']:.4f}"
              f"{'not reached' if med == math.inf else f'{med:.0f} s':>26}  {per}")
    if "target_samples_met" in s:
        med = {m: s["methods"][m]["samples_to_random_best_median"] for m in ("random", "nextsweep")}
        print("training samples to (a)'s final best, median: " + ", ".join(
            f"{m} {'not reached' if v == math.inf else f'{v:,.0f}'}" for m, v in med.items())
            + f" (target: (c) <= 1/3 of (a): {'met' if s['target_samples_met'] else 'missed'})")
    if "speedup_median" in s:
        per = ", ".join(f"{x:.2f}x" if x else "not reached" for x in s["speedup"])
        print(f"(c) vs (a), (a)'s time to its final best over (c)'s: median {s['speedup_median']:.2f}x, per seed {per} "
              f"(target: (c)'s median time <= 1/3 of (a)'s: {'met' if s['target_time_met'] else 'missed'})")
    for rival in ("stock", "one_epoch"):
        if f"nextsweep_at_or_above_{rival}" in s:
            print(f"(c) ends at or above {rival} in {s[f'nextsweep_at_or_above_{rival}']} of {len(s['seeds'])} seeds")


def plot(rows: list[dict], objective: str, methods: list[str], path: Path, horizon: float) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    grid = [horizon * i / 200 for i in range(201)]
    low = 1.0
    for m in methods:
        runs = [r for r in rows if r["method"] == m and r["objective"] == objective]
        if not runs:
            continue
        q = [quartiles([best_at(r, g) for r in runs]) for g in grid]
        x = [g / 60 for g in grid]
        ax.plot(x, [b for _, b, _ in q], color=COLORS[m], label=f"{m} (median of {len(runs)} seeds)")
        ax.fill_between(x, [a for a, _, _ in q], [c for _, _, c in q], color=COLORS[m], alpha=0.15)
        low = min(low, min(r["final_best"] for r in runs))
    ax.set_xlabel(f"wall-clock minutes ({CPUS} CPUs)")
    ax.set_ylabel(f"best {objective.split(':')[1]} so far (median, quartiles)")
    ax.set_title(f"{objective}, same CPU time per method")
    ax.set_ylim(max(0.0, low - 0.1), None)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objective", action="append", choices=OBJECTIVES,
                    help="TASK:METRIC, repeatable (default geolife:val_hit5)")
    ap.add_argument("--cpu-minutes", type=float, default=8.0, help=f"CPU-minutes per run on {CPUS} CPUs (default 8)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--max-epochs", type=int, default=0,
                    help="epochs a fully trained config gets (default: the space's)")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="change the space for every method, as `nextsweep sweep --set` does "
                         "(e.g. asha.grace_period=1); repeatable")
    ap.add_argument("--startup-trials", type=int, help="(c)'s TPE start-up, as `nextsweep sweep --startup-trials` "
                    "(default: TPE's 10; (b) keeps stock TPE's)")
    ap.add_argument("--one-epoch-share", type=float, default=0.5,
                    help="share of (d)'s CPU time for the one-epoch screen (default 0.5)")
    ap.add_argument("--protocol", choices=["full"],
                    help="the issue's protocol: 3 objectives x 4 methods x 5 seeds, 20 CPU-minutes a run, each "
                         "objective with the settings of the runs bench/RESULTS.md reports (600 wall-minutes); "
                         "one JSON per objective beside --out, e.g. search_efficiency_category_val_f1.json; takes no "
                         "other run option")
    ap.add_argument("--summary-of", metavar="JSON", nargs="+",
                    help="print the tables and redraw the plots of a saved run (this script's --out), training "
                         "nothing; several JSONs of the same settings (e.g. other methods) are merged into --out")
    ap.add_argument("--replace", action="store_true",
                    help="with --summary-of: a run in a later JSON replaces an earlier JSON's run of the same "
                         "method, objective and seed (a rerun), instead of being refused")
    ap.add_argument("--mixed-hosts", action="store_true",
                    help="with --summary-of: merge runs whose speed probes (bench/host_speed.py) differ by more "
                         f"than {PROBE_TOLERANCE * 100:g}%%, i.e. made on hosts of different speed "
                         "(their times do not compare)")
    ap.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # child: METHOD OBJECTIVE SEED
    ap.add_argument("--out", default="bench/out/search_efficiency.json")
    a = ap.parse_args()
    if a.protocol:
        given = [k for k in RUN_OPTIONS if getattr(a, k) != ap.get_default(k)] + ["summary_of"] * bool(a.summary_of)
        if given:
            ap.error(f"--protocol full sets every run itself; drop --{given[0].replace('_', '-')}")
    a.objective = a.objective or ["geolife:val_hit5"]
    if not (a.one or a.summary_of):  # a bad --set fails here, in one line, before any run starts
        from spaces.schema import SpaceError, load_space
        try:
            for task in {o.split(":")[0] for o in a.objective}:
                load_space(ROOT / "spaces" / SPACES[task], a.set)
        except SpaceError as exc:
            ap.error(str(exc))
    return a


def protocol_commands(out: Path) -> list[list[str]]:
    """This script's command line for each objective of the full protocol, each with its own JSON."""
    return [[sys.executable, __file__, "--objective", o, "--seeds", *map(str, FULL_SEEDS),
             "--cpu-minutes", str(FULL_CPU_MINUTES), "--methods", *METHODS, *FULL_SETTINGS[o],
             "--out", str(out.with_name(f"{out.stem}_{o.replace(':', '_')}.json"))] for o in OBJECTIVES]


def run_protocol(out: Path) -> None:
    """The objectives one after another, unattended; a failed one stops the rest (its runs so far are kept)."""
    for cmd in protocol_commands(out):
        print(" ".join(cmd[1:]), flush=True)
        if subprocess.run(cmd).returncode != 0:
            sys.exit(f"the protocol stopped at: {' '.join(cmd[1:])}")


def main() -> None:
    a = parse()
    if a.one:
        task, metric = a.one[1].split(":")
        row = run_one(a.one[0], task, metric, int(a.one[2]), a.cpu_minutes, a.max_epochs, a.one_epoch_share,
                      a.set, a.startup_trials)
        print(json.dumps(row))
        return
    if a.protocol:
        run_protocol(Path(a.out))
        return
    if a.summary_of:
        saved = [json.loads(Path(p).read_text()) for p in a.summary_of]
        rows, settings = merged_runs(a.summary_of, saved, a.replace, a.mixed_hosts)
        out = Path(a.summary_of[0]) if len(saved) == 1 else Path(a.out)
        report(rows, sorted({r["objective"] for r in rows}), list(METHODS), settings, out)
        return
    n = len(a.objective) * len(a.methods) * len(a.seeds)
    print(f"{n} runs x {a.cpu_minutes / CPUS:g} wall-minutes = {n * a.cpu_minutes / CPUS:g} minutes", flush=True)
    rows, env = [], {**os.environ, "RAY_AUTH_MODE": "disabled"}
    partial = Path(a.out).with_suffix(".partial.json")
    partial.parent.mkdir(parents=True, exist_ok=True)
    for objective in a.objective:
        for seed in a.seeds:
            for method in a.methods:
                cmd = [sys.executable, __file__, "--one", method, objective, str(seed), "--cpu-minutes",
                       str(a.cpu_minutes), "--max-epochs", str(a.max_epochs),
                       "--one-epoch-share", str(a.one_epoch_share), *(f"--set={t}" for t in a.set),
                       *(["--startup-trials", str(a.startup_trials)] if a.startup_trials else [])]
                probe = probe_seconds()  # before the run, outside its clock: the host's speed, beside its figures
                out = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if out.returncode != 0:
                    sys.exit(f"{method} {objective} seed {seed} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
                rows.append({**json.loads(out.stdout.strip().splitlines()[-1]), "probe_s": probe})
                partial.write_text(json.dumps(_finite({"runs": rows}), indent=2) + "\n")  # kept if a later run fails
                r = rows[-1]
                more = f"  (screened {r['screened']}, trained fully {r['trained_fully']})" if "screened" in r else ""
                print(f"{objective} seed {seed} {method:<10} trials {r['trials']:>4}  "
                      f"final best {r['final_best']:.4f}{more}  (speed probe {probe:g} s)", flush=True)
    from train_throughput import cpu_name  # not at the top: a run's child must not import torch before its clock
    partial.unlink()
    report(rows, a.objective, a.methods, {"cpu_minutes": a.cpu_minutes, "max_epochs": a.max_epochs,
                                          "one_epoch_share": a.one_epoch_share, "set": a.set,
                                          "startup_trials": a.startup_trials, "cpu": cpu_name()}, Path(a.out))


SETTINGS = ("cpu_minutes", "max_epochs", "one_epoch_share", "set", "startup_trials")
RUN_OPTIONS = ("objective", "seeds", "methods", *SETTINGS)  # what --protocol full sets itself
# Settings that change one method's runs only: files may differ in them where they hold none of its
# runs. asha.strict and asha.rank_by are nextsweep's own ASHA rules (stock ASHA has neither).
ONE_METHOD = {"one_epoch_share": "one_epoch", "startup_trials": "nextsweep", "nextsweep_set": "nextsweep"}
NEXTSWEEP_SETS = ("asha.strict=", "asha.rank_by=")


def scoped_settings(doc: dict) -> dict:
    """A saved JSON's settings that bear on the methods its runs hold."""
    methods = {r["method"] for r in doc["runs"]}
    sets = doc.get("set") or []
    own = [t for t in sets if t.startswith(NEXTSWEEP_SETS)]
    values = {**{k: doc.get(k) for k in SETTINGS}, "set": [t for t in sets if t not in own], "nextsweep_set": own}
    return {k: v for k, v in values.items() if ONE_METHOD.get(k) in (None, *methods)}


def merged_runs(paths: list[str], saved: list[dict], replace: bool = False,
                mixed_hosts: bool = False) -> tuple[list[dict], dict]:
    """The runs of several saved JSONs made with the same settings (e.g. methods run in separate
    runs of this script), each (method, objective, seed) once; with `replace`, the last file's. And
    the settings they share (a method's own from the files holding its runs, else the first file's).
    Runs whose speed probes say they ran on hosts of different speed are refused unless `mixed_hosts`."""
    rows: dict[tuple, dict] = {}
    origin: dict[tuple, str] = {}  # the file each kept run comes from
    seen: dict[str, tuple[str, object]] = {}
    for path, doc in zip(paths, saved):
        for key, value in scoped_settings(doc).items():
            first, had = seen.setdefault(key, (path, value))
            if value != had:
                sys.exit(f"{path}: {key} is {value!r}, {first} has {had!r}; merge only runs made with the same "
                         f"settings (a method's own settings may differ in files without its runs)")
        for r in doc["runs"]:
            key = (r["method"], r["objective"], r["seed"])
            if key in rows and not replace:
                sys.exit(f"{path}: {' '.join(map(str, key))} is also in an earlier file; give each run once, "
                         f"or --replace to let the later file's run stand")
            rows[key], origin[key] = r, path
    check_hosts({f"{origin[k]} ({' '.join(map(str, k))})": r for k, r in rows.items()}, mixed_hosts)
    settings = {k: saved[0].get(k) for k in (*SETTINGS, "cpu")}
    settings.update({k: v for k, (_, v) in seen.items() if k != "nextsweep_set"})
    settings["set"] = settings["set"] + seen.get("nextsweep_set", (None, []))[1]
    return list(rows.values()), settings


def check_hosts(runs: dict[str, dict], mixed_hosts: bool) -> None:
    """Refuse (or, with `mixed_hosts`, name) runs made on hosts of different speed; say how many runs
    carry no probe (made before the probe existed), as their hosts cannot be checked."""
    probes = {name: r["probe_s"] for name, r in runs.items() if r.get("probe_s")}
    bare = len(runs) - len(probes)
    if bare:
        print(f"note: {bare} run(s) carry no speed probe (made before bench/host_speed.py): their hosts are unchecked")
    why = probes_differ(probes) if probes else None
    if why and not mixed_hosts:
        sys.exit(f"{why}: runs from hosts of different speed do not compare; merge runs from one host, "
                 f"or give --mixed-hosts to merge them anyway")
    if why:
        print(f"note (--mixed-hosts): {why}")


def report(rows: list[dict], objectives: list[str], methods: list[str], settings: dict, out: Path) -> None:
    """Print each objective's summary, write the JSON (runs, summaries, settings) and the plots."""
    summaries = [summarise(rows, o, methods) for o in objectives]
    for s in summaries:
        print_summary(s)
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {**{k: settings[k] for k in ("cpu_minutes", "max_epochs", "one_epoch_share")},
                "set": settings.get("set", []), "startup_trials": settings.get("startup_trials"),  # older runs: none
                "cpu": settings.get("cpu")}  # times hold for that CPU only; older runs: none
    out.write_text(json.dumps(_finite({"runs": rows, "summary": summaries, **settings}), indent=2) + "\n")
    if importlib.util.find_spec("matplotlib") is None:  # the plots only; `make bench` installs it
        print(f"no plots: matplotlib is not installed (`make bench` installs it); the figures are in {out}")
        return
    for o in objectives:
        png = out.with_name(f"{out.stem}_{o.replace(':', '_')}.png")
        plot(rows, o, methods, png, settings["cpu_minutes"] * 60 / CPUS)


if __name__ == "__main__":
    main()
