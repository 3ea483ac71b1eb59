"""Scale: what one sweep driver handles, with simulated trials through the real path (issue 46).
Each figure runs nextsweep and stock Ray Tune (`OptunaSearch` + `ASHAScheduler` driving the same
simulated curve as a plain trainable) one after the other, each side in its own process.

    .venv/bin/python bench/scale.py bookkeeping [--trials 10000] [--cpus 16] [--epoch-seconds 1]

bookkeeping: `--trials` trials of one `--epoch-seconds` epoch each on `--cpus` CPUs declared to a
local Ray (sleeping trials need no core). The minimum is trials x epoch / cpus; Ray's docs give
715 s for stock Tune at 10,000 x 1 s on 16 CPUs (minimum 625 s); the target for nextsweep, the
whole `sweep --simulate` path, is <= 1.05 x the minimum. Memory: the driver's RSS, sampled
every second, at 1,000 and at 10,000 finished trials (or the last tenth and the end for fewer):
Ray #64231 is a driver that grows with every finished trial.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SPACE = """
name: scale
data: {synthetic: {users: 8, days: 60, locations: 40, seed: 0}}
objective: {metric: val_hit5, mode: max}
budget: {max_params: 40000, width: d_model}
asha: {max_epochs: EPOCHS, grace_period: 1, reduction_factor: 2}
params:
  family: {type: categorical, choices: [gru, transformer]}
  heads: {type: categorical, choices: [2, 4], when: {family: transformer}}
  d_model: {type: int, low: 16, high: 96, step: 8}
  dropout: {type: float, low: 0.0, high: 0.3}
  lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
  batch_size: 128
"""


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler(threading.Thread):
    """(time, RSS MB) of this process every `period` seconds until stopped."""

    def __init__(self, period: float = 1.0):
        super().__init__(daemon=True)
        self.period, self.samples, self.stopped = period, [], threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.samples.append((time.time(), rss_mb()))
            self.stopped.wait(self.period)


def rss_at(samples: list[tuple[float, float]], ends: list[float], counts: list[int]) -> dict[int, float]:
    """The driver's RSS when the n-th trial had finished, for each n in counts."""
    ends = sorted(ends)
    out = {}
    for n in counts:
        if 0 < n <= len(ends):
            at = ends[n - 1]
            out[n] = next((mb for t, mb in samples if t >= at), samples[-1][1])
    return out


def run_nextsweep(space: Path, out: Path, trials: int, cpus: int, epoch_s: float) -> dict:
    from optuna.trial import TrialState

    from search.sweep import SweepOptions, run_sweep
    sampler = RssSampler()
    sampler.start()
    start = time.time()
    study = run_sweep(SweepOptions(space=str(space), study="scale", samples=trials, dir=str(out), seed=0,
                                   simulate=True, epoch_seconds=epoch_s, local_cpus=cpus))
    end = time.time()
    sampler.stopped.set()
    done = [t.datetime_complete.timestamp() for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and "config" in t.user_attrs]
    return {"start": start, "end": end, "finished": len(done), "ends": done, "rss": sampler.samples}


class StockTrial:
    """The stock side's plain trainable: the same simulated curve, one report per epoch."""

    def __init__(self, epoch_s: float, epochs: int):
        self.epoch_s, self.epochs = epoch_s, epochs

    def __call__(self, config: dict) -> None:
        from ray import tune

        from search.simulate import simulated_curve
        curve = simulated_curve({**config, "metric": "val_hit5"}, self.epochs)
        for e, value in enumerate(curve, 1):
            time.sleep(self.epoch_s)
            tune.report({"val_hit5": value, "epoch": e})


def run_stock(space_file: Path, out: Path, trials: int, cpus: int, epoch_s: float) -> dict:
    """The usual glue: OptunaSearch over the space's parameters + ASHAScheduler."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from spaces import load_space
    space = load_space(space_file)
    param_space = {"family": tune.choice(["gru", "transformer"]), "d_model": tune.qrandint(16, 96, 8),
                   "dropout": tune.uniform(0.0, 0.3), "lr": tune.loguniform(1e-3, 1e-2)}
    sampler = RssSampler()
    sampler.start()
    start = time.time()
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    tuner = tune.Tuner(
        tune.with_resources(StockTrial(epoch_s, space.asha.max_epochs), {"cpu": 1}), param_space=param_space,
        tune_config=tune.TuneConfig(search_alg=OptunaSearch(metric="val_hit5", mode="max", seed=0),
                                    scheduler=ASHAScheduler(time_attr="epoch", max_t=space.asha.max_epochs,
                                                            grace_period=1, reduction_factor=2),
                                    metric="val_hit5", mode="max", num_samples=trials),
        run_config=tune.RunConfig(storage_path=str(out.resolve()), name="stock", verbose=0))
    grid = tuner.fit()
    end = time.time()
    sampler.stopped.set()
    ends = sorted(r.metrics.get("timestamp", end) for r in grid if r.metrics)
    return {"start": start, "end": end, "finished": len(grid), "ends": ends, "rss": sampler.samples}


def side(name: str, trials: int, cpus: int, epoch_s: float, epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "space.yaml").write_text(SPACE.replace("EPOCHS", str(epochs)))
        run = (run_nextsweep if name == "nextsweep" else run_stock)(tmp / "space.yaml", tmp, trials, cpus, epoch_s)
    marks = [max(1, trials // 10), trials] if trials < 10_000 else [1_000, 10_000]
    rss = rss_at(run["rss"], run["ends"], marks)
    return {"side": name, "trials": trials, "finished": run["finished"], "cpus": cpus, "epoch_s": epoch_s,
            "wall_s": run["end"] - run["start"], "rss_mb": {str(k): round(v, 1) for k, v in rss.items()},
            "rss_peak_mb": round(max(mb for _, mb in run["rss"]), 1)}


def bookkeeping(a: argparse.Namespace) -> None:
    rows = []
    for name in ("nextsweep", "stock"):
        env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
        cmd = [sys.executable, __file__, "bookkeeping", "--side", name, "--trials", str(a.trials), "--cpus",
               str(a.cpus), "--epoch-seconds", str(a.epoch_seconds)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if out.returncode:
            sys.exit(f"{name} side failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    minimum = a.trials * a.epoch_seconds / a.cpus
    print(f"bookkeeping: {a.trials} trials x {a.epoch_seconds:g} s on {a.cpus} declared CPUs; minimum {minimum:.0f} s")
    print(f"{'side':<11}{'finished':>9}{'wall s':>9}{'x minimum':>11}{'driver RSS MB':>30}")
    for r in rows:
        rss = ", ".join(f"{k} trials {v:.0f}" for k, v in r["rss_mb"].items())
        print(f"{r['side']:<11}{r['finished']:>9}{r['wall_s']:>9.1f}{r['wall_s'] / minimum:>11.3f}   {rss}")
        r["minimum_s"], r["ratio"] = minimum, r["wall_s"] / minimum
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="figure", required=True)
    b = sub.add_parser("bookkeeping", help="many one-epoch trials on many declared CPUs: wall time against the minimum")
    b.add_argument("--trials", type=int, default=10_000)
    b.add_argument("--cpus", type=int, default=16)
    b.add_argument("--epoch-seconds", type=float, default=1.0)
    b.add_argument("--side", choices=["nextsweep", "stock"], help=argparse.SUPPRESS)
    b.add_argument("--out", default="bench/out/scale_bookkeeping.json")
    a = ap.parse_args()
    if a.side:  # child process: one side, its figures as the last stdout line
        print(json.dumps(side(a.side, a.trials, a.cpus, a.epoch_seconds, epochs=1)))
        return
    bookkeeping(a)


if __name__ == "__main__":
    main()
