"""The sweep end to end on synthetic data: a real local Ray, a real SQLite Optuna study."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from holds import finish_then_hold, hold_env
from pgserver import free_port
from search.cli import main
from search.export import export_top, read_export
from search.retrain import retrain
from search.ranking import ranked
from search.sweep import SweepOptions, run_sweep

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SPACE = """
name: tiny
data: {synthetic: {users: 12, days: 40, locations: 60, seed: 2}}
budget: {max_params: 20000}
asha: {max_epochs: 4, grace_period: 1, reduction_factor: 2}
params:
  family: {type: categorical, choices: [gru, transformer]}
  heads: {type: categorical, choices: [2, 4], when: {family: transformer}}
  d_model: {type: int, low: 16, high: 64, step: 8}
  lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
  batch_size: 128
  patience: 4
"""


def write_space(tmp: Path, text: str = SPACE) -> Path:
    path = tmp / "space.yaml"
    path.write_text(text)
    return path


def tune_outcomes(sweep_dir: Path) -> dict[int, dict]:
    """What Tune itself recorded per trial (its result.json files), keyed by training seed."""
    out = {}
    for result_file in sweep_dir.glob("ray-*/*/result.json"):
        rows = [json.loads(line) for line in result_file.read_text().splitlines() if line.strip()]
        params = json.loads((result_file.parent / "params.json").read_text())
        out[params["engine"]["seed"]] = {"epochs": [r["epoch"] for r in rows], "last": rows[-1]["last"] if rows else None}
    return out


def storage_for(kind: str, request, tmp: Path) -> str:
    """The same tests run with the study in SQLite and in a real PostgreSQL server."""
    if kind == "postgres":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp / 'nextsweep.db'}"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def sweep(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    study = f"e2e-{request.param}"
    opts = SweepOptions(space=str(write_space(tmp)), study=study, samples=10, dir=str(tmp), seed=0,
                        storage=storage_for(request.param, request, tmp))
    study = run_sweep(opts)
    return tmp, opts, study


def test_study_matches_what_tune_and_asha_did(sweep):
    tmp, opts, study = sweep
    trials = [t for t in study.get_trials() if "config" in t.user_attrs]
    assert len(trials) == 10
    states = {t.state for t in trials}
    assert TrialState.COMPLETE in states and TrialState.PRUNED in states, states
    tune = tune_outcomes(tmp / opts.study)
    assert (tmp / opts.study).stat().st_mode & 0o777 == 0o700  # Tune's pickles hold the storage URL
    for t in trials:
        ran = tune[json.loads(t.user_attrs["config"])["seed"]]
        # Every epoch Tune saw is an intermediate value of the Optuna trial.
        assert sorted(t.intermediate_values) == ran["epochs"]
        if t.state == TrialState.COMPLETE:  # finished its own schedule: the best epoch's value
            assert ran["last"] is True
            assert t.value == pytest.approx(max(t.intermediate_values.values()))
        else:  # stopped by ASHA before its end
            assert t.state == TrialState.PRUNED and ran["last"] is False
            assert len(ran["epochs"]) < 4
        for key in ("n_params", "best_epoch", "epochs_run", "wall_s", "samples_s", "ray_trial_id",
                    "fingerprint", "code_version", "best_metrics"):
            assert key in t.user_attrs, (key, t.number)
        assert t.user_attrs["n_params"] <= 20000
        assert t.user_attrs["epochs_run"] == len(ran["epochs"])


def test_best_checkpoint_is_kept(sweep):
    tmp, _, study = sweep
    ckpts = list((tmp / sweep[1].study).glob("ray-*/*/checkpoint_*/model.pt"))
    assert ckpts, "no checkpoint written"
    import torch
    best = study.best_trial
    seed = json.loads(best.user_attrs["config"])["seed"]
    for ck in ckpts:
        state = torch.load(ck, weights_only=True)
        if state["config"]["seed"] == seed:
            assert state["epoch"] == best.user_attrs["best_epoch"]
            return
    pytest.fail("the best trial has no checkpoint")


def test_each_trial_keeps_only_its_newest_checkpoint(sweep):
    """Checkpoints at the rungs and the last epoch; the superseded ones deleted (search/checkpoints.py)."""
    tmp, opts, _ = sweep
    trial_dirs = [p for p in (tmp / opts.study).glob("ray-*/train_trial_*") if p.is_dir()]
    kept = {p.name: sorted(c.name for c in p.glob("checkpoint_*")) for p in trial_dirs}
    assert kept and all(len(c) == 1 for c in kept.values()), kept
    assert any(c != ["checkpoint_000000"] for c in kept.values())  # a later one kept, the earlier ones deleted


def test_export_and_retrain_reproduce_the_best(sweep, capsys):
    tmp, opts, study = sweep
    paths = export_top(opts.storage, opts.study, 2, tmp / "exports")
    assert len(paths) == 2
    doc = read_export(paths[0])
    # the product's best (ranked: equal scores go by trial number), not Optuna's best_trial, which
    # picks any of the tied trials: PostgreSQL returns ties in no set order, and this small
    # validation split makes ties common
    best = ranked(study)[0]
    assert doc["trial"] == best.number
    assert doc["fingerprint"] == study.user_attrs["fingerprint"] and doc["budget"]["max_params"] == 20000
    assert doc["config"]["seed"] == json.loads(best.user_attrs["config"])["seed"]
    report = retrain(paths[0], seeds=2, out=tmp / "retrained")
    assert doc["threads"] == 1  # the trial's CPUs: retrain uses the same thread count ...
    assert report["runs"][0]["val"]["val_hit5"] == best.value  # ... so it reproduces the trial exactly
    assert report["runs"][0]["best_epoch"] == best.user_attrs["best_epoch"]
    assert (tmp / "retrained" / "retrain.json").is_file() and (tmp / "retrained" / "best_model.pt").is_file()
    assert set(report["test"]["acc1"]) == {"mean", "std"}


def test_retrain_refuses_changed_data(sweep, tmp_path, capsys):
    tmp, opts, _ = sweep
    doc = yaml.safe_load(export_top(opts.storage, opts.study, 1, tmp_path)[0].read_text())
    doc["data"]["synthetic"]["seed"] = 99
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(doc))
    assert main(["retrain", str(tmp_path / "changed.yaml"), "--seeds", "1"]) == 2
    assert "pass --force" in capsys.readouterr().err


def test_status_and_name_reuse(sweep, capsys):
    tmp, opts, study = sweep
    assert main(["status", "--storage", opts.storage, "--study", opts.study]) == 0
    out = capsys.readouterr().out
    assert f"{study.best_value:.4f}" in out and "CPU-minutes" in out
    assert main(["sweep", opts.space, "--storage", opts.storage, "--study", opts.study, "--samples", "1"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--resume" in err and err.count("\n") == 1


def test_dashboard_serves_the_study(sweep):
    tmp, opts, _ = sweep
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "search.cli", "dashboard", "--storage", opts.storage,
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2).read()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    pytest.fail(f"dashboard did not start: {proc.stdout.read().decode() if proc.poll() is not None else ''}")
                time.sleep(0.5)
        assert f'"{opts.study}"'.encode() in body
    finally:
        proc.terminate()
        proc.wait(10)


def test_failed_trials_are_recorded_and_the_sweep_goes_on(tmp_path):
    space = SPACE.replace("lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}",
                          "lr: 1.0e+30\n  grad_clip: 0.0\n  schedule: constant")
    opts = SweepOptions(space=str(write_space(tmp_path, space)), study="nan", samples=3, dir=str(tmp_path))
    study = run_sweep(opts)
    trials = [t for t in study.get_trials() if "config" in t.user_attrs]
    assert len(trials) == 3
    for t in trials:
        assert t.state == TrialState.FAIL
        assert "non-finite training loss" in t.user_attrs["error"]


def _handed(storage: str, name: str) -> list:
    study = optuna.load_study(study_name=name, storage=storage)
    return [t for t in study.get_trials() if "config" in t.user_attrs]


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_resume_after_sigkill(tmp_path, request, kind):
    """The driver is killed with two trials finished and others held mid-run (tests/holds.py)."""
    space = write_space(tmp_path, SPACE.replace("max_epochs: 4", "max_epochs: 6").replace("grace_period: 1", "grace_period: 6"))
    storage = storage_for(kind, request, tmp_path)
    cmd = [sys.executable, "-m", "search.cli", "sweep", str(space), "--dir", str(tmp_path), "--study", f"r-{kind}",
           "--samples", "6", "--storage", storage]
    gate = tmp_path / "hold"
    first = subprocess.Popen(cmd, stdout=open(tmp_path / "first.log", "w"), stderr=subprocess.STDOUT,
                             start_new_session=True, env={**os.environ, **hold_env(gate)})
    try:
        finish_then_hold(gate, lambda: _handed(storage, f"r-{kind}"), first, finished=2)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(30)
    finally:
        try:
            os.killpg(first.pid, signal.SIGKILL)  # Ray processes the killed driver left behind
        except ProcessLookupError:
            pass
    before = {t.number: t.state for t in _handed(storage, f"r-{kind}")}
    assert TrialState.RUNNING in before.values()
    second = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=400)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "resuming:" in second.stdout
    after = _handed(storage, f"r-{kind}")
    assert len(after) == 6  # the sample count carried over: nothing lost, nothing extra
    assert all(t.state.is_finished() for t in after)
    for number, state in before.items():  # finished trials were not run again
        if state.is_finished():
            assert next(t for t in after if t.number == number).state == state
    ray_ids = [t.user_attrs["ray_trial_id"] for t in after]
    assert len(set(ray_ids)) == 6
