"""A real multi-node Ray cluster on this machine (`ray start` head + workers on loopback): the
sweep spreads over nodes, survives a worker node dying and a driver killed with SIGKILL.
Every node is started in its own process group with --block and torn down by that group.

Each node has one CPU and a trial takes one, so a node runs one trial at a time and three
concurrent trials are on three nodes; the tests never assume which trial lands where. The
worker-failure test kills a node, so it stays the last test of the module."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from holds import finish_then_hold, hold_env, held, release, wait_for
from raycluster import ENV, Cluster

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def space(epochs: int = 5, days: int = 40, batch_size: int = 64) -> str:
    """ASHA's grace period is its max_t and patience is the epoch count: every trial runs all epochs."""
    return f"""
name: cluster
data: {{synthetic: {{users: 12, days: {days}, locations: 60, seed: 3}}}}
budget: {{max_params: 20000}}
asha: {{max_epochs: {epochs}, grace_period: {epochs}}}
params:
  family: {{type: categorical, choices: [gru, lstm]}}
  d_model: {{type: int, low: 16, high: 48, step: 8}}
  lr: {{type: float, low: 1.0e-3, high: 1.0e-2, log: true}}
  batch_size: {batch_size}
  patience: {epochs}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.ids = c.start_nodes(3)
        yield c
    finally:
        c.stop()


def sweep_cmd(tmp: Path, cluster: Cluster, study: str, samples: int, *extra: str, text: str = space()) -> list[str]:
    (tmp / "space.yaml").write_text(text)
    return [sys.executable, "-m", "search.cli", "sweep", str(tmp / "space.yaml"), "--address", cluster.address,
            "--dir", str(tmp), "--study", study, "--samples", str(samples), *extra]


def handed(tmp: Path, study: str) -> list:
    s = optuna.load_study(study_name=study, storage=f"sqlite:///{tmp / 'nextsweep.db'}")
    return [t for t in s.get_trials() if "config" in t.user_attrs]


def tune_trial_dirs(tmp: Path, study: str) -> list[Path]:
    return [p for p in (tmp / study).glob("ray-*/train_trial_*") if p.is_dir()]


def tune_results(tmp: Path, study: str, ray_trial_id: str) -> list[dict]:
    """Every result Tune recorded for one trial, across its retries, in order."""
    (path,) = (tmp / study).glob(f"ray-*/train_trial_{ray_trial_id}_*/result.json")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_cluster_config_is_valid_for_ray_up():
    import copy

    from ray.autoscaler._private.util import prepare_config, validate_config
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "cluster.yaml").read_text())
    validate_config(prepare_config(copy.deepcopy(raw)))
    assert {"head", "cpu_worker", "gpu_worker"} <= set(raw["available_node_types"])
    assert "pip install -q -e ~/nextsweep" in " ".join(raw["setup_commands"])  # pyproject's exact pins
    assert "--dashboard-host=127.0.0.1" in " ".join(raw["head_start_ray_commands"])
    broken = copy.deepcopy(raw)
    broken["available_node_types"]["head"]["node_confg"] = {}
    with pytest.raises(Exception, match="node_confg"):
        validate_config(prepare_config(broken))


def test_sweep_spreads_over_nodes(cluster, tmp_path):
    """Three trials held at once (tests/holds.py) take the three one-CPU nodes: where Ray places
    them is then certain, not a matter of which trial finished first."""
    start = time.time()
    gate = tmp_path / "hold"
    proc = subprocess.Popen(sweep_cmd(tmp_path, cluster, "spread", 6, "--max-concurrent", "3"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**ENV, **hold_env(gate)})
    wait_for(lambda: len(held(handed(tmp_path, "spread"))) == 3, 300, "three trials held at once", proc)
    release(gate)
    out = proc.communicate(timeout=500)[0]
    assert proc.returncode == 0, out[-3000:]
    trials = handed(tmp_path, "spread")
    assert len(trials) == 6 and all(t.state == TrialState.COMPLETE for t in trials)
    nodes = {t.user_attrs["node_id"] for t in trials}
    assert nodes == set(cluster.ids.values())
    print(f"multi-node sweep: {time.time() - start:.0f} s, trials on {len(nodes)} nodes")


TASK_SPACES = {
    "category": """
name: cluster_category
task: category
data: {synthetic: {groups: 24, steps: 50, dim: 12, items: 80, n_folds: 3, seed: 1}}
folds: 3
budget: {max_params: 20000}
asha: {max_epochs: 3, grace_period: 3}
forbid: [{loss: weighted_ce, sampler: balanced}]
params:
  family: {type: categorical, choices: [gru, lstm]}
  d_model: {type: int, low: 16, high: 48, step: 8}
  loss: {type: categorical, choices: [weighted_ce, focal]}
  sampler: {type: categorical, choices: [uniform, balanced]}
  patience: 3
""",
    "vector": """
name: cluster_vector
task: vector
data: {synthetic: {groups: 24, steps: 50, dim: 12, items: 80, seed: 1}}
budget: {max_params: 20000}
asha: {max_epochs: 3, grace_period: 3}
params:
  family: {type: categorical, choices: [gru, lstm]}
  d_model: {type: int, low: 16, high: 48, step: 8}
  loss: {type: categorical, choices: [cosine, infonce]}
  patience: 3
"""}


@pytest.mark.parametrize("task", ["category", "vector"])
def test_task_sweeps_on_the_cluster(cluster, tmp_path, task):
    """The category (3 grouped folds in lockstep) and vector tasks run on the nodes like next-location."""
    out = subprocess.run(sweep_cmd(tmp_path, cluster, task, 3, "--max-concurrent", "3", text=TASK_SPACES[task]),
                         capture_output=True, text=True, env=ENV, timeout=500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    trials = [t for t in handed(tmp_path, task) if "rejected" not in t.user_attrs]
    assert len(trials) == 3 and all(t.state == TrialState.COMPLETE for t in trials)
    assert {t.user_attrs["node_id"] for t in trials} <= set(cluster.ids.values())
    metric = "val_f1" if task == "category" else "val_hit5"
    assert all(t.value > 0 and abs(t.value - t.user_attrs["best_metrics"][metric]) < 1e-6 for t in trials)


def shipped_space_shortened(name: str, geolife: Path) -> str:
    """A shipped real-data space as is (task, data reader, folds, forbid rules, params), cut to
    one epoch of small models so three trials take seconds on one-CPU nodes."""
    doc = yaml.safe_load((Path(__file__).resolve().parents[1] / "spaces" / name).read_text())
    doc["data"] = {"geolife": str(geolife)}
    doc["asha"] = {"max_epochs": 1, "grace_period": 1}
    doc["budget"]["max_params"] = 40_000
    doc["params"]["batch_size"] = 1024
    return yaml.safe_dump(doc, sort_keys=False)  # params keep their order: `when` names earlier ones


@pytest.mark.parametrize("task,space_file", [("category", "geolife_category.yaml"), ("vector", "geolife_vector.yaml")])
def test_real_derived_sweeps_on_the_cluster(cluster, tmp_path, geolife_files, task, space_file):
    """The shipped Geolife-derived spaces (5 user-grouped folds for category) on the three nodes."""
    text = shipped_space_shortened(space_file, geolife_files[0].parent)
    out = subprocess.run(sweep_cmd(tmp_path, cluster, task, 3, "--max-concurrent", "3", text=text),
                         capture_output=True, text=True, env=ENV, timeout=500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    trials = [t for t in handed(tmp_path, task) if "rejected" not in t.user_attrs]
    assert len(trials) == 3 and all(t.state == TrialState.COMPLETE for t in trials), [t.state for t in trials]
    assert {t.user_attrs["node_id"] for t in trials} <= set(cluster.ids.values())
    assert all(t.value > 0 for t in trials)
    if task == "category":
        assert all("val_f1_std" in t.user_attrs["best_metrics"] for t in trials)  # the 5-fold mean was reported


def test_driver_sigkill_then_resume(cluster, tmp_path):
    """The driver is killed with a trial finished and others held mid-run (tests/holds.py)."""
    cmd = sweep_cmd(tmp_path, cluster, "driver", 6, "--max-concurrent", "3")
    gate = tmp_path / "hold"
    first = subprocess.Popen(cmd, stdout=open(tmp_path / "first.log", "w"), stderr=subprocess.STDOUT,
                             env={**ENV, **hold_env(gate)}, start_new_session=True)
    try:
        finish_then_hold(gate, lambda: handed(tmp_path, "driver"), first, finished=1)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(30)
    finally:
        try:
            os.killpg(first.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    before = {t.number: t.state for t in handed(tmp_path, "driver")}
    assert TrialState.RUNNING in before.values()  # the resume below has an interrupted trial to re-run
    second = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=ENV, timeout=500)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    after = handed(tmp_path, "driver")
    assert len(after) == 6 and all(t.state.is_finished() for t in after)
    for number, state in before.items():
        if state.is_finished():
            assert next(t for t in after if t.number == number).state == state
    counts = {s.name: sum(t.state == s for t in after) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    print(f"driver failure: {len(after)} trials, interrupted and re-run {sum(not s.is_finished() for s in before.values())}, {counts}")


def test_worker_node_dies_mid_sweep(cluster, tmp_path):
    epochs = 6
    cmd = sweep_cmd(tmp_path, cluster, "worker", 6, "--max-concurrent", "3", "--max-failures", "1", text=space(epochs))
    start = time.time()
    gate = tmp_path / "hold"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**ENV, **hold_env(gate)})
    workers = {cluster.ids[n]: n for n in ("node_w1", "node_w2")}  # never the head: it holds the cluster

    def held_on_a_worker():
        """(node id, trial number) of a trial held after its first epoch (checkpointed) on a worker
        node: Ray decides which node gets trials, so the victim is chosen here, not beforehand."""
        for t in held(handed(tmp_path, "worker")):
            if t.user_attrs.get("node_id") in workers:
                return t.user_attrs["node_id"], t.number
    victim, number = wait_for(held_on_a_worker, 300, "a trial held on a worker node", proc)
    killed_at = time.time()
    cluster.kill(workers[victim])
    release(gate)  # the victim's retry resumes at epoch 2, past the hold
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out[-3000:]
    trials = handed(tmp_path, "worker")
    assert len(trials) == 6 and all(t.state.is_finished() for t in trials)
    assert len(tune_trial_dirs(tmp_path, "worker")) == len(trials)  # what Tune ran, each counted once
    assert len({t.user_attrs["ray_trial_id"] for t in trials}) == 6
    hit = next(t for t in trials if t.number == number)
    assert hit.state == TrialState.COMPLETE, hit.user_attrs.get("error")  # retried and resumed to the end
    assert sorted(hit.intermediate_values) == list(range(1, epochs + 1))  # its whole learning curve
    rows = tune_results(tmp_path, "worker", hit.user_attrs["ray_trial_id"])
    assert [r["epoch"] for r in rows] == list(range(1, epochs + 1))  # resumed after its checkpoint, not rerun
    nodes = [r["node_id"] for r in rows]
    assert nodes[0] == victim and nodes[-1] != victim  # finished on another node
    resumed_at = next(r["epoch"] for r in rows if r["node_id"] != nodes[0])
    counts = {s.name: sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    names = {i: n for n, i in cluster.ids.items()}
    per_node = {n: sum(names[t.user_attrs["node_id"]] == n for t in trials) for n in cluster.ids}
    print(f"worker failure: {workers[victim]} killed {killed_at - start:.0f} s in, trial {number} resumed at epoch "
          f"{resumed_at} of {epochs} on another node; sweep {time.time() - start:.0f} s, {counts}, first ran on {per_node}")
