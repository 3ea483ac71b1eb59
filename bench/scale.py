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

    .venv/bin/python bench/scale.py study [--trials 50000] [--storage URL]

study: one study grown to `--trials` finished trials (SQLite in a temporary folder, or the
PostgreSQL `--storage`). A real `sweep --simulate` of 100 trials seeds it; copies of those trials
(parameters, curves and attributes; values jittered) grow it (stored in bulk, search.storage.insert_trials); a
driver SIGKILLed mid-run and `--resume` timed from its launch to its first hand-out; a
`--resume` of 200 more simulated trials then measures the searcher's hand-out (Tune's request to
the trial's config: sampler, budget check, study writes) at that size. Then the wall time of
`status`, `export --top 10` and `report` (each a fresh process, as a user runs them), the report's
size, and optuna-dashboard's study page and trial list in headless Chromium.

    .venv/bin/python bench/scale.py connections [--trials 400] [--cpus 64] [--storage URL]

connections: a `sweep --simulate` on PostgreSQL (a throw-away server, or `--storage`) with
`--cpus` concurrent trials, the server's connections to its database counted every 0.2 s: only
the driver writes the study, through a pool of fixed size, whatever the number of workers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
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


def grow(storage: str, name: str, target: int, chunk: int = 2000) -> float:
    """Copies of the study's finished trials until it holds `target` of them; seconds taken."""
    import random

    import optuna
    from optuna.trial import TrialState

    from search.storage import insert_trials, open_storage
    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    seeds = [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    rng, start, have = random.Random(0), time.time(), len(study.get_trials(deepcopy=False))
    while have < target:
        batch = []
        for i in range(min(chunk, target - have)):
            t = seeds[(have + i) % len(seeds)]
            batch.append(optuna.trial.create_trial(
                state=t.state, value=None if t.value is None else t.value + rng.gauss(0, 0.01), params=t.params,
                distributions=t.distributions, user_attrs=dict(t.user_attrs),
                intermediate_values={k: v + rng.gauss(0, 0.01) for k, v in t.intermediate_values.items()}))
        insert_trials(study, batch)  # one transaction per chunk (Optuna's add_trials: ~20 ms a trial)
        have += len(batch)
        print(f"  grown to {have:,} trials ({time.time() - start:.0f} s)", file=sys.stderr, flush=True)
    return time.time() - start


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    if out.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return time.perf_counter() - start


DASHBOARD_WAIT_S = 60  # the target is 5 s


def dashboard_load(storage: str, study_id: int) -> dict:
    """Seconds until optuna-dashboard's study page shows the metric, and its trial list a trial."""
    import socket
    import urllib.request
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from browser import chromium_page
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "search.cli", "dashboard", "--storage", storage, "--port",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{base}/api/studies", timeout=5)
                break
            except OSError:
                time.sleep(0.1)
        out = {}
        with chromium_page() as (page, _errors):
            for key, path, text in (("study_page_s", "", "val_hit5"), ("trial_list_s", "/trials", "User Attributes")):
                start = time.perf_counter()
                try:
                    page.goto(f"{base}/dashboard/studies/{study_id}{path}", timeout=1000 * DASHBOARD_WAIT_S)
                    page.get_by_text(text).first.wait_for(timeout=1000 * DASHBOARD_WAIT_S)
                    out[key] = round(time.perf_counter() - start, 2)
                except Exception:  # playwright's TimeoutError: the page never showed it
                    out[key] = f"not shown within {DASHBOARD_WAIT_S} s"
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def finished(storage: str, name: str) -> int:
    import optuna
    from optuna.trial import TrialState

    from search.storage import open_storage
    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def first_handout(storage: str, name: str, after: float) -> float:
    """When the first trial was handed out (its handed_out_at) at or after `after`."""
    import optuna

    from search.storage import open_storage
    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    return min(t.user_attrs["handed_out_at"] for t in study.get_trials(deepcopy=False)
               if t.user_attrs.get("handed_out_at", 0) >= after)


def kill_and_resume(cli: list[str], space: Path, storage: str, a: argparse.Namespace, env: dict) -> tuple[int, float]:
    """SIGKILL a resumed sweep's driver (its whole process group: the local Ray dies with it, as
    when the driver's machine goes) once its trials run, then time a `--resume` from its launch to
    its first hand-out (orphans are re-run first): (finished trials at the kill, seconds)."""
    import signal
    base = [*cli, "sweep", str(space), "--study", a.study, "--storage", storage, "--simulate", "--local-cpus",
            str(a.cpus), "--samples", str(a.trials), "--resume"]
    before = finished(storage, a.study)
    doomed = subprocess.Popen([*base, "--epoch-seconds", "1"], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while finished(storage, a.study) < before + a.cpus and doomed.poll() is None:
        time.sleep(0.5)
    if doomed.poll() is not None:
        sys.exit(f"the resumed sweep ended before it could be killed:\n{doomed.stderr.read()[-3000:]}")
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait()
    at = finished(storage, a.study)
    start = time.time()
    resumed = subprocess.Popen([*base, "--epoch-seconds", "0"], env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while finished(storage, a.study) == at and resumed.poll() is None:
        time.sleep(0.1)
    took = first_handout(storage, a.study, start) - start
    os.killpg(resumed.pid, signal.SIGKILL)  # the probe below resumes again, from a killed driver as well
    resumed.wait()
    return at, took


def large_study(a: argparse.Namespace) -> None:
    if a.postgres:  # a throw-away server (tests/pgserver.py), stopped after
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from pgserver import postgres_server
        with postgres_server() as url:
            a.storage = url
            return _large_study(a)
    return _large_study(a)


def _large_study(a: argparse.Namespace) -> None:
    import numpy as np
    import optuna

    from search.storage import open_storage
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "space.yaml").write_text(SPACE.replace("EPOCHS", "4"))
        storage = a.storage or f"sqlite:///{tmp}/nextsweep.db"
        cli = [sys.executable, "-m", "search.cli"]
        env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
        sweep = lambda n, resume: subprocess.run(  # noqa: E731
            [*cli, "sweep", str(tmp / "space.yaml"), "--study", a.study, "--storage", storage, "--simulate", "--epoch-seconds",
             "0", "--local-cpus", str(a.cpus), "--samples", str(n), *(["--resume"] if resume else [])],
            capture_output=True, text=True, env=env, check=True)
        sweep(100, False)
        grow_s = grow(storage, a.study, a.trials - a.probe)
        killed_at, resume_s = kill_and_resume(cli, tmp / "space.yaml", storage, a, env)
        sweep(a.trials, True)
        study = optuna.load_study(study_name=a.study, storage=open_storage(storage))
        trials = study.get_trials(deepcopy=False)
        probed = [t.user_attrs for t in trials[a.trials - a.probe:] if "handout_ms" in t.user_attrs]
        probe, probe_cpu = [u["handout_ms"] for u in probed], [u.get("handout_cpu_ms", math.nan) for u in probed]
        where = ["--storage", storage, "--study", a.study]
        row = {"storage": storage.split(":")[0], "trials": len(trials), "grow_s": round(grow_s, 1),
               "driver_killed_at_finished": killed_at, "resume_first_handout_s": round(resume_s, 2),
               "handout_cpu_ms": {"median": round(float(np.median(probe_cpu)), 2),
                                  "p99": round(float(np.percentile(probe_cpu, 99)), 2)},
               "handout_ms": {"n": len(probe), "median": round(float(np.median(probe)), 2),
                              "p99": round(float(np.percentile(probe, 99)), 2)},
               "status_s": round(timed([*cli, "status", *where]), 2),
               "export_top10_s": round(timed([*cli, "export", *where, "--top", "10", "--out", str(tmp / "ex")]), 2),
               "report_s": round(timed([*cli, "report", *where, "--out", str(tmp / "r.html")]), 2)}
        row["report_mb"] = round((tmp / "r.html").stat().st_size / 2**20, 2)
        print(json.dumps(row), file=sys.stderr, flush=True)  # kept if the dashboard step fails
        row["dashboard"] = dashboard_load(storage, study._study_id)
    print(json.dumps(row, indent=2))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(row, indent=2) + "\n")


def pg_connections(url: str, stop: threading.Event, seen: list[int]) -> None:
    """Append the number of other connections to the URL's database every 0.2 s until `stop`."""
    import sqlalchemy as sa
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    # autocommit: inside one transaction pg_stat_activity is a snapshot, and would stay at its first read
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        while not stop.is_set():
            seen.append(conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                                             "current_database() AND pid <> pg_backend_pid()")).scalar_one())
            stop.wait(0.2)
    engine.dispose()


def connections(a: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from pgserver import postgres_server
    with tempfile.TemporaryDirectory() as tmp, (contextlib.nullcontext(a.storage) if a.storage
                                                 else postgres_server()) as url:
        (Path(tmp) / "space.yaml").write_text(SPACE.replace("EPOCHS", "4"))
        stop, seen = threading.Event(), []
        watcher = threading.Thread(target=pg_connections, args=(url, stop, seen), daemon=True)
        watcher.start()
        start = time.time()
        subprocess.run([sys.executable, "-m", "search.cli", "sweep", str(Path(tmp) / "space.yaml"), "--study", "conn",
                        "--storage", url, "--dir", tmp, "--simulate", "--epoch-seconds", str(a.epoch_seconds),
                        "--local-cpus", str(a.cpus), "--samples", str(a.trials)],
                       check=True, capture_output=True, text=True, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
        stop.set()
        watcher.join()
    row = {"trials": a.trials, "concurrent_trials": a.cpus, "epoch_s": a.epoch_seconds,
           "wall_s": round(time.time() - start, 1), "max_connections": max(seen), "samples": len(seen)}
    print(json.dumps(row, indent=2))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(row, indent=2) + "\n")


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
    st = sub.add_parser("study", help="one study grown to --trials: hand-out latency, status/export/report, dashboard")
    st.add_argument("--trials", type=int, default=50_000)
    st.add_argument("--probe", type=int, default=200, help="simulated trials handed out at that size")
    st.add_argument("--storage", help="a PostgreSQL URL (default: SQLite in a temporary folder)")
    st.add_argument("--postgres", action="store_true", help="on a throw-away PostgreSQL server started here")
    st.add_argument("--study", default="scale-study")
    st.add_argument("--cpus", type=int, default=8)
    st.add_argument("--out", default="bench/out/scale_study.json")
    c = sub.add_parser("connections", help="PostgreSQL connections of a simulated sweep with many concurrent trials")
    c.add_argument("--trials", type=int, default=400)
    c.add_argument("--cpus", type=int, default=64)
    c.add_argument("--epoch-seconds", type=float, default=0.5)
    c.add_argument("--storage", help="a PostgreSQL URL (default: a throw-away server)")
    c.add_argument("--out", default="bench/out/scale_connections.json")
    a = ap.parse_args()
    if a.figure == "connections":
        return connections(a)
    if a.figure == "study":
        return large_study(a)
    if a.side:  # child process: one side, its figures as the last stdout line
        print(json.dumps(side(a.side, a.trials, a.cpus, a.epoch_seconds, epochs=1)))
        return
    bookkeeping(a)


if __name__ == "__main__":
    main()
