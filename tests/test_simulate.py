"""Simulated trials (issue 46, items 1-2): the real sweep path with a seeded stand-in for fit(),
many declared CPUs on a local Ray, and studies marked so that no command takes them for results."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState

from search.cli import main
from search.simulate import simulated_curve

SPACE = """
name: sim
data: {synthetic: {users: 8, days: 60, locations: 40, seed: 0}}
objective: {metric: val_hit5, mode: max}
budget: {max_params: 40000, width: d_model}
asha: {max_epochs: 4, grace_period: 1, reduction_factor: 2}
params:
  family: {type: categorical, choices: [gru, transformer]}
  heads: {type: categorical, choices: [2, 4], when: {family: transformer}}
  d_model: {type: int, low: 16, high: 96, step: 8}
  dropout: {type: float, low: 0.0, high: 0.3}
  lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
  batch_size: 128
"""


def test_the_curve_is_a_function_of_the_config_and_its_seed():
    cfg = {"family": "gru", "d_model": 32, "lr": 3e-3, "dropout": 0.1, "seed": 5, "epochs": 6, "metric": "val_hit5"}
    curve = simulated_curve(cfg, 6)
    assert curve == simulated_curve(dict(reversed(list(cfg.items()))), 6)  # key order does not matter
    assert len(curve) == 6 and all(0 < v < 1 for v in curve)
    assert curve != simulated_curve({**cfg, "seed": 6}, 6)  # the seed draws the noise only
    assert abs(curve[-1] - simulated_curve({**cfg, "seed": 6}, 6)[-1]) < 0.1
    finals = {simulated_curve({**cfg, "lr": lr}, 6)[-1] for lr in (1e-3, 3e-3, 1e-2)}
    assert len(finals) == 3  # the parameters shape it: something to search for
    assert simulated_curve({**cfg, "epochs": 9}, 6) == curve  # the first epochs do not depend on the length


@pytest.mark.ray
def test_a_simulated_sweep_of_200_trials_on_32_declared_cpus(tmp_path, capsys):
    import ray
    from search.sweep import SweepOptions, run_sweep
    space = tmp_path / "sim.yaml"
    space.write_text(SPACE)
    if ray.is_initialized():  # the local Ray must be this sweep's, with its 32 declared CPUs
        ray.shutdown()
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    try:
        study = run_sweep(SweepOptions(space=str(space), study="sim", samples=200, dir=str(tmp_path), seed=0,
                                       storage=db, simulate=True, epoch_seconds=0.02, local_cpus=32))
        assert ray.cluster_resources()["CPU"] == 32
    finally:
        ray.shutdown()
    out = capsys.readouterr().out
    trained = [t for t in study.trials if "config" in t.user_attrs and "rejected" not in t.user_attrs]
    assert len(trained) == 200 and study.user_attrs["simulated"] is True
    assert {t.state for t in trained} == {TrialState.COMPLETE, TrialState.PRUNED}  # ASHA pruned some
    for t in trained:  # every reported value is the seed's curve: the searcher and the study lost nothing
        cfg = json.loads(t.user_attrs["config"])
        curve = simulated_curve(cfg, cfg["epochs"])
        steps = sorted(t.intermediate_values)
        assert steps == list(range(1, len(steps) + 1))
        assert [t.intermediate_values[s] for s in steps] == pytest.approx(curve[:len(steps)], abs=1e-12)
        if t.state == TrialState.COMPLETE:
            assert len(steps) == cfg["epochs"] and t.value == pytest.approx(max(curve), abs=1e-12)
            assert t.user_attrs["best_epoch"] == 1 + curve.index(max(curve))
    assert "study      sim" in out and "simulated  the trials trained nothing" in out
    from search.study_record import study_note
    assert "SIMULATED" in study_note(study)


@pytest.mark.ray
def test_simulated_studies_are_never_taken_for_results(tmp_path, capsys):
    import ray
    space = tmp_path / "sim.yaml"
    space.write_text(SPACE)
    if ray.is_initialized():
        ray.shutdown()
    db = ["--storage", f"sqlite:///{tmp_path / 'db.sqlite'}"]
    try:
        assert main(["sweep", str(space), "--study", "s", "--samples", "6", "--simulate", "--epoch-seconds", "0",
                     "--local-cpus", "4", *db]) == 0
        assert "--simulate" in optuna.load_study(study_name="s", storage=db[1]).user_attrs["command"]
        capsys.readouterr()
        assert main(["confirm", "--study", "s", "--top", "1", "--seeds", "1", *db]) == 2
        assert "study 's' is a simulated sweep (sweep --simulate)" in capsys.readouterr().err
        assert main(["export", "--study", "s", "--top", "1", "--out", str(tmp_path / "ex"), *db]) == 0
        exported = next((tmp_path / "ex").glob("*.yaml"))
        for command in (["retrain", str(exported)], ["predict", str(exported), "--out", str(tmp_path / "p.parquet")]):
            assert main(command) == 2
            assert "exported from a simulated sweep" in capsys.readouterr().err
        assert main(["sweep", str(space), "--study", "s", "--samples", "8", "--resume", *db]) == 2
        assert "is a simulated sweep; resume it with --simulate" in capsys.readouterr().err
    finally:
        ray.shutdown()
    assert main(["sweep", str(space), "--local-cpus", "8", "--address", "auto", *db]) == 2
    assert "--local-cpus 8: declares the CPUs of a local Ray" in capsys.readouterr().err


def test_a_time_budget_without_samples_runs_until_the_budget(monkeypatch, tmp_path):
    """`--time-budget 30m` alone means "use the 30 minutes", not "stop after 20 trials"."""
    import search.sweep
    seen = []
    monkeypatch.setattr(search.sweep, "run_sweep", lambda opts: seen.append(opts))
    space = tmp_path / "sim.yaml"
    space.write_text(SPACE)
    for extra, want in ((["--time-budget", "30m"], search.sweep.UNTIL_BUDGET), ([], 20),
                        (["--time-budget", "30m", "--samples", "7"], 7)):
        assert main(["sweep", str(space), *extra]) == 0
        assert seen[-1].samples == want
