"""Scale on a real multi-node Ray cluster on this machine (issue 46 b): how many results a second
one sweep driver takes in, and at what CPU cost, with simulated trials through the real path.

    .venv/bin/python bench/scale_cluster.py throughput [--nodes 3] [--cpus-per-node 34] [--seconds 150]
    .venv/bin/python bench/scale_cluster.py node-kill [--victim-cpus 100] [--other-cpus 12]

throughput: `--nodes` `ray start` nodes (tests/raycluster.py), each declaring `--cpus-per-node`
CPUs, so that nodes x CPUs simulated trials (one Ray actor each) run at once, each sleeping
`--epoch-seconds` (0.1: ten results a second) between reports. nextsweep (`sweep --simulate`:
searcher, ASHA, a study write per result, progress, loggers) and then stock Ray Tune (OptunaSearch +
ASHAScheduler over a plain trainable of the same curve, results kept in memory) each drive the
cluster for `--seconds`, each side in its own process. Every second each side samples the
results taken in so far (nextsweep: the intermediate values in its study; stock: a Tune callback)
and its driver process's CPU time. Figures come from the steady window, after `--warmup` seconds
(the actors starting) to 5 s before the end: results a second, the driver's CPU share, and its
CPU-milliseconds per result, which gives the workers one driver serves at one epoch a second.

node-kill (issue 46, item 4): a head and two workers, one of them (the victim) declaring
`--victim-cpus`. A simulated sweep (`--max-failures 1`: each trial checkpoints every epoch) runs
until `--at` of its trials run on the victim at once, then the victim's whole process group is
SIGKILLed (raylet, object store, its trial actors), as when a machine goes. Figures: the sweep's
exit, how the killed node's trials ended, whether any trial's learning curve has a gap or an epoch
told twice, Tune's trial folders against the study's trials (each trial run once, resumed where
it was cut), and how long the sweep took after the kill.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale  # noqa: E402  (bench/, on the path above)

# scale.py's space, with longer trials: 100 epochs (10 s at 10 a second), ASHA's first rung at 10
SPACE = scale.SPACE.replace("asha: {max_epochs: EPOCHS, grace_period: 1, reduction_factor: 2}",
                            "asha: {max_epochs: 100, grace_period: 10, reduction_factor: 3}")
MANY = 1_000_000  # trials asked for: the time budget ends each side


class Sampler(threading.Thread):
    """(wall, driver CPU seconds, results so far) every second until stopped."""

    def __init__(self, count):
        super().__init__(daemon=True)
        self.count, self.samples, self.stopped = count, [], threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            try:
                self.samples.append((time.time(), time.process_time(), self.count()))
            except Exception:  # the study's tables may not exist yet
                continue


def steady(samples: list[tuple], warmup: float, cpus: int, epoch_s: float) -> dict:
    """The figures over the window [first sample + warmup, last sample - 5 s]."""
    t0 = samples[0][0] + warmup
    window = [s for s in samples if t0 <= s[0] <= samples[-1][0] - 5]
    (a_t, a_cpu, a_n), (b_t, b_cpu, b_n) = window[0], window[-1]
    seconds, results, cpu = b_t - a_t, b_n - a_n, b_cpu - a_cpu
    per_result_ms = 1000 * cpu / max(results, 1)
    return {"window_s": round(seconds, 1), "results": results, "results_per_s": round(results / seconds, 1),
            "offered_per_s": round(cpus / epoch_s, 1), "driver_cpu_share": round(cpu / seconds, 3),
            "driver_cpu_ms_per_result": round(per_result_ms, 3),
            "workers_per_driver_at_1_epoch_per_s": int(1000 / per_result_ms) if per_result_ms else None}


def nextsweep_side(a: argparse.Namespace, tmp: Path) -> list[tuple]:
    import sqlalchemy as sa

    from search.sweep import SweepOptions, run_sweep
    (tmp / "space.yaml").write_text(SPACE)
    engine = sa.create_engine(f"sqlite:///{tmp / 'nextsweep.db'}")

    def count() -> int:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM trial_intermediate_values")).scalar_one()
    sampler = Sampler(count)
    sampler.start()
    run_sweep(SweepOptions(space=str(tmp / "space.yaml"), address=a.address, study="throughput", samples=MANY,
                           dir=str(tmp), seed=0, simulate=True, epoch_seconds=a.epoch_seconds,
                           time_budget_s=a.seconds))
    sampler.stopped.set()
    return sampler.samples


def stock_side(a: argparse.Namespace, tmp: Path) -> list[tuple]:
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    ray.cloudpickle.register_pickle_by_value(scale)  # the workers cannot import bench/
    seen = [0]

    class Count(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            seen[0] += 1
    sampler = Sampler(lambda: seen[0])
    sampler.start()
    ray.init(address=a.address, log_to_driver=False)
    space = {"family": tune.choice(["gru", "transformer"]), "d_model": tune.qrandint(16, 96, 8),
             "dropout": tune.uniform(0.0, 0.3), "lr": tune.loguniform(1e-3, 1e-2)}
    tune.Tuner(
        tune.with_resources(scale.StockTrial(a.epoch_seconds, 100), {"cpu": 1}), param_space=space,
        tune_config=tune.TuneConfig(search_alg=OptunaSearch(metric="val_hit5", mode="max", seed=0),
                                    scheduler=ASHAScheduler(time_attr="epoch", max_t=100, grace_period=10,
                                                            reduction_factor=3),
                                    metric="val_hit5", mode="max", num_samples=MANY, time_budget_s=a.seconds,
                                    reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp), name="stock", verbose=0, callbacks=[Count()])).fit()
    sampler.stopped.set()
    return sampler.samples


def throughput(a: argparse.Namespace) -> None:
    from raycluster import ENV, Cluster
    cpus = a.nodes * a.cpus_per_node
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp), cpus=a.cpus_per_node, object_store_mb=256)
        try:
            cluster.start_nodes(a.nodes)
            for name in ("nextsweep", "stock"):
                kept = Path(tmp) / f"{name}.json"
                cmd = [sys.executable, __file__, "throughput", "--side", name, "--address", cluster.address,
                       "--seconds", str(a.seconds), "--epoch-seconds", str(a.epoch_seconds), "--out", str(kept)]
                out = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
                if out.returncode or not kept.exists():
                    sys.exit(f"{name} side failed:\n{out.stderr[-3000:]}")
                samples = json.loads(kept.read_text())
                rows.append({"side": name, "nodes": a.nodes, "concurrent_trials": cpus, "epoch_s": a.epoch_seconds,
                             **steady(samples, a.warmup, cpus, a.epoch_seconds)})
                print(json.dumps(rows[-1]), flush=True)
        finally:
            cluster.stop()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=2) + "\n")


NODE_KILL_SPACE = scale.SPACE.replace("asha: {max_epochs: EPOCHS, grace_period: 1, reduction_factor: 2}",
                                      "asha: {max_epochs: 30, grace_period: 10, reduction_factor: 3}")


def running_on(db: Path, node_id: str) -> int:
    """Trials of the sweep's study running on the node now (their node_id: where they reported first)."""
    import sqlalchemy as sa
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT count(*) FROM trials t JOIN trial_user_attributes u ON u.trial_id = t.trial_id "
                "AND u.key = 'node_id' WHERE t.state = 'RUNNING' AND u.value_json = :node"),
                {"node": json.dumps(node_id)}).scalar_one()
    except sa.exc.OperationalError:  # the tables do not exist yet
        return 0
    finally:
        engine.dispose()


def node_kill(a: argparse.Namespace) -> None:
    import optuna
    from raycluster import ENV, Cluster
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cluster = Cluster(tmp, cpus=a.other_cpus, object_store_mb=256)
        try:
            cluster.start_nodes(2)
            cluster.cpus = a.victim_cpus
            cluster.start("node_w2")
            victim = cluster.wait_nodes(3)["node_w2"]
            (tmp / "space.yaml").write_text(NODE_KILL_SPACE)
            cmd = [sys.executable, "-m", "search.cli", "sweep", str(tmp / "space.yaml"), "--study", "nodekill",
                   "--dir", str(tmp), "--address", cluster.address, "--simulate", "--epoch-seconds",
                   str(a.epoch_seconds), "--samples", str(a.samples), "--max-failures", "1"]
            start = time.time()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
            peak = 0
            while (peak := max(peak, running_on(tmp / "nextsweep.db", victim))) < a.at and proc.poll() is None:
                time.sleep(1)
            at_kill = running_on(tmp / "nextsweep.db", victim)
            killed = time.time()
            cluster.kill("node_w2")
            out = proc.communicate(timeout=3600)[0]
            end = time.time()
        finally:
            cluster.stop()
        study = optuna.load_study(study_name="nodekill", storage=f"sqlite:///{tmp / 'nextsweep.db'}")
        trials = [t for t in study.get_trials() if "config" in t.user_attrs]
        hit = [t for t in trials if t.user_attrs.get("node_id") == victim]
        gaps = [t.number for t in trials if sorted(t.intermediate_values) != list(range(1, len(t.intermediate_values) + 1))]
        row = {"victim_cpus": a.victim_cpus, "other_cpus": 2 * a.other_cpus, "samples": a.samples,
               "epoch_s": a.epoch_seconds, "running_on_victim_at_kill": at_kill, "killed_at_s": round(killed - start, 1),
               "sweep_exit": proc.returncode, "after_kill_s": round(end - killed, 1), "trials": len(trials),
               "unfinished": sum(not t.state.is_finished() for t in trials),
               "victim_trials": {s: sum(t.state.name == s for t in hit) for s in ("COMPLETE", "PRUNED", "FAIL")},
               "curves_with_gaps": gaps, "ray_trial_ids_unique": len({t.user_attrs["ray_trial_id"] for t in trials}) == len(trials),
               "tune_trial_dirs": len([p for p in (tmp / "nodekill").glob("ray-*/*_trial_*") if p.is_dir()]),
               "sweep_tail": out.strip().splitlines()[-3:]}
    print(json.dumps(row, indent=2))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(row, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="figure", required=True)
    t = sub.add_parser("throughput", help="results a second one driver takes in from nodes x CPUs simulated trials")
    t.add_argument("--nodes", type=int, default=3)
    t.add_argument("--cpus-per-node", type=int, default=34)
    t.add_argument("--seconds", type=float, default=150.0, help="each side's time budget")
    t.add_argument("--warmup", type=float, default=60.0, help="seconds left out at the start (actors starting)")
    t.add_argument("--epoch-seconds", type=float, default=0.1)
    t.add_argument("--out", default="bench/out/scale_throughput.json")
    t.add_argument("--side", choices=["nextsweep", "stock"], help=argparse.SUPPRESS)
    t.add_argument("--address", help=argparse.SUPPRESS)
    k = sub.add_parser("node-kill", help="a worker node with --at trials running on it SIGKILLed mid-sweep")
    k.add_argument("--victim-cpus", type=int, default=100, help="CPUs the killed node declares")
    k.add_argument("--other-cpus", type=int, default=12, help="CPUs the head and the other worker each declare")
    k.add_argument("--at", type=int, default=100, help="trials running on the victim when it is killed")
    k.add_argument("--samples", type=int, default=300)
    k.add_argument("--epoch-seconds", type=float, default=1.0)
    k.add_argument("--out", default="bench/out/scale_node_kill.json")
    a = ap.parse_args()
    if a.figure == "node-kill":
        node_kill(a)
        return
    if a.side:  # child process: one side; its samples into --out
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        with tempfile.TemporaryDirectory() as tmp:
            samples = (nextsweep_side if a.side == "nextsweep" else stock_side)(a, Path(tmp))
        Path(a.out).write_text(json.dumps(samples))
        return
    throughput(a)


if __name__ == "__main__":
    main()
