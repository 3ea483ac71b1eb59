"""bench/search_efficiency.py's baselines keep to the space's rules.

Random search (a) redraws an over-budget draw from a stream of its own. Seeded like the study's
sampler, that stream replayed the study's draws, so (a) and the one-epoch baseline (d) trained up
to half their configs twice (Geolife 500K, seed 3: 21 distinct configs in the first 40).
Stock TPE (b) answers a draw the space rules out with a zero. A forbidden or unbuildable draw
has no count (-1), and it used to be trained, over budget or not. Runs saved apart merge only when
the settings that bear on their methods agree."""

import json
import sys
from pathlib import Path

import optuna
import pytest

from data_io.geolife import GEOLIFE_SHAPE
from spaces import CompiledSpace, parse_space

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from search_efficiency import (METHODS, OBJECTIVES, DefineByRun, merged_runs, parse,  # noqa: E402
                               protocol_commands, trainable_in_budget)


def _space(forbid: list | None = None):
    raw = {"name": "t", "data": {"synthetic": {"users": 5}}, "budget": {"max_params": 150_000},
           "params": {"family": {"type": "categorical", "choices": ["gru", "lstm"]},
                      "d_model": {"type": "int", "low": 16, "high": 256, "step": 16},
                      "layers": {"type": "int", "low": 1, "high": 3},
                      "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}}
    if forbid:
        raw["forbid"] = forbid
    return parse_space(raw, Path("t.yaml"))


def _draws(space, redraw: bool, n: int = 30) -> list[dict]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    draw = DefineByRun(CompiledSpace(space, GEOLIFE_SHAPE, fit_width=False), seed=0, redraw=redraw)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(draw(trial))
        study.tell(trial, 0.0)
    return out


def test_redrawn_configs_do_not_repeat_the_studys_draws():
    space = _space()
    configs = _draws(space, redraw=True)
    naive = _draws(space, redraw=False)  # the same study stream, not redrawn
    assert sum(not c["feasible"] for c in naive) >= 10  # the redraw path is taken often
    assert all(c["feasible"] and c["n_params"] <= 150_000 for c in configs)
    keys = {json.dumps({k: v for k, v in c["engine"].items() if k != "seed"}, sort_keys=True) for c in configs}
    assert len(keys) == 30  # lr is continuous: a repeat is a replayed draw


def test_stock_tpe_answers_every_ruled_out_draw_with_a_zero():
    configs = _draws(_space(forbid=[{"family": "lstm", "layers": 3}]), redraw=False, n=60)
    forbidden = [c for c in configs if c["engine"]["family"] == "lstm" and c["engine"]["layers"] == 3]
    assert forbidden and all(c["n_params"] == -1 for c in forbidden)
    assert not any(trainable_in_budget(c, 150_000) for c in forbidden)
    assert [trainable_in_budget(c, 150_000) for c in configs] == [c["feasible"] for c in configs]


def _saved(method: str, sets: list[str], startup: int | None = 5, probe: float | None = None) -> dict:
    run = {"method": method, "objective": "geolife:val_hit5", "seed": 0, **({"probe_s": probe} if probe else {})}
    return {"runs": [run], "cpu_minutes": 20.0,
            "max_epochs": 8, "one_epoch_share": 0.5, "set": sets, "startup_trials": startup, "cpu": "x"}


def test_merge_allows_a_method_its_own_settings_and_nothing_else():
    """asha.rank_by and --startup-trials change (c) only: (a) run without them merges with (c) run
    with them, and the merged settings name them. A shared setting that differs stops the merge."""
    rows, settings = merged_runs(["a.json", "c.json"], [_saved("random", ["asha.grace_period=1"], startup=None),
                                                        _saved("nextsweep", ["asha.grace_period=1", "asha.rank_by=epoch"])])
    assert len(rows) == 2 and settings["set"] == ["asha.grace_period=1", "asha.rank_by=epoch"]
    assert settings["startup_trials"] == 5
    with pytest.raises(SystemExit, match="c.json: set is \\['asha.grace_period=2'\\], a.json has"):
        merged_runs(["a.json", "c.json"], [_saved("random", ["asha.grace_period=1"]),
                                           _saved("nextsweep", ["asha.grace_period=2", "asha.rank_by=epoch"])])
    with pytest.raises(SystemExit, match="c2.json: nextsweep_set is \\[\\], c.json has"):
        merged_runs(["c.json", "c2.json"], [_saved("nextsweep", ["asha.rank_by=epoch"]), _saved("nextsweep", [])])


def test_merge_refuses_runs_from_hosts_of_different_speed(capsys):
    """Two hosts with the same CPU string can differ 1.5x: the speed probe beside each run tells them
    apart. Within the tolerance the runs merge; beyond it the merge stops unless told to mix hosts."""
    a, c = _saved("random", [], probe=10.0), _saved("nextsweep", [], probe=12.0)  # one host: up to 1.19x
    assert len(merged_runs(["a.json", "c.json"], [a, c])[0]) == 2
    fast = _saved("nextsweep", [], probe=6.5)
    with pytest.raises(SystemExit, match=r"a.json \(random geolife:val_hit5 0\) ran the speed probe in 10 s, "
                                         r"c.json \(nextsweep geolife:val_hit5 0\) in 6.5 s \(1.54x"):
        merged_runs(["a.json", "c.json"], [a, fast])
    assert len(merged_runs(["a.json", "c.json"], [a, fast], mixed_hosts=True)[0]) == 2
    assert "--mixed-hosts" in capsys.readouterr().out
    merged_runs(["a.json", "c.json"], [a, _saved("nextsweep", [])])  # a run from before the probe: named, not refused
    assert "1 run(s) carry no speed probe" in capsys.readouterr().out
    slow = _saved("random", [], probe=20.0)  # a rerun on the fast host replaces the slow host's run
    merged_runs(["a.json", "c.json", "a2.json"], [slow, fast, _saved("random", [], probe=6.6)], replace=True)


# For each objective, a JSON of runs bench/RESULTS.md reports (every method but (c) keeps these settings).
REPORTED = {"geolife:val_hit5": "search_efficiency_20m_hit5_abcd_intel.json",
            "geolife:val_acc1": "search_efficiency_20m_acc1_abd_seed2_amd.json",
            "category:val_f1": "search_efficiency_20m_f1_abcd_amd.json"}


def test_full_protocol_runs_each_objective_with_the_settings_of_its_reported_runs(monkeypatch, tmp_path):
    results = Path(__file__).resolve().parents[1] / "bench" / "results"
    parsed = {}
    for cmd in protocol_commands(tmp_path / "se.json"):
        monkeypatch.setattr(sys, "argv", cmd[1:])
        a = parse()
        (objective,) = a.objective
        parsed[objective] = a
        assert (a.seeds, a.methods, a.protocol) == ([0, 1, 2, 3, 4], list(METHODS), None)
        assert a.out == str(tmp_path / f"se_{objective.replace(':', '_')}.json")
    assert sorted(parsed) == sorted(OBJECTIVES)
    for objective, name in REPORTED.items():
        saved, a = json.loads((results / name).read_text()), parsed[objective]
        assert {r["objective"] for r in saved["runs"]} == {objective}
        assert (a.cpu_minutes, a.max_epochs, a.set, a.startup_trials, a.one_epoch_share) == tuple(
            saved[k] for k in ("cpu_minutes", "max_epochs", "set", "startup_trials", "one_epoch_share"))


def test_full_protocol_takes_no_other_run_option(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["search_efficiency.py", "--protocol", "full", "--seeds", "0"])
    with pytest.raises(SystemExit) as exc:
        parse()
    assert exc.value.code == 2 and "drop --seeds" in capsys.readouterr().err


def test_cost_is_counted_in_training_samples_too():
    """Issue 47, item 3: every epoch counts the samples it trained (its own count under data
    fidelity; none for a config answered with a zero untrained), and the 1/3 target is judged on
    them beside seconds."""
    from search_efficiency import row_samples, summarise
    assert row_samples({"samples_s": 900.0, "epoch": 1}, 5000) == 5000
    assert row_samples({"samples_s": 900.0, "train_samples": 600}, 5000) == 600
    assert row_samples({"epoch": 1, "val_hit5": 0.0, "epoch_s": 0.0, "last": True}, 5000) == 0
    runs = [{"method": "random", "objective": "geolife:val_hit5", "seed": 0, "trials": 4, "final_best": 0.5,
             "curve": [(10.0, 0.4), (90.0, 0.5)], "curve_samples": [(5000, 0.4), (60000, 0.5)]},
            {"method": "nextsweep", "objective": "geolife:val_hit5", "seed": 0, "trials": 9, "final_best": 0.55,
             "curve": [(40.0, 0.5)], "curve_samples": [(15000, 0.5)]}]
    s = summarise(runs, "geolife:val_hit5", ["random", "nextsweep"])
    assert s["methods"]["nextsweep"]["samples_to_random_best_median"] == 15000
    assert s["target_samples_met"] is True and s["target_time_met"] is False  # 15,000 <= 60,000 / 3; 40 s > 90 s / 3
    del runs[0]["curve_samples"]  # a run saved before samples were counted: no samples verdict
    assert "target_samples_met" not in summarise(runs, "geolife:val_hit5", ["random", "nextsweep"])


def test_fidelity_budget_judges_each_seed_on_both_arms():
    """Issue 47, item 1's verdicts: the data arm's configurations against the target and its
    winner against epochs alone's, per seed; a seed with one arm only is left out; an arm with
    no winner loses; the planner's estimate against what each run examined."""
    from fidelity_budget import summarise
    run = lambda arm, seed, examined, best, plan: {"arm": arm, "seed": seed, "examined": examined,  # noqa: E731
                                                   "best": best, "plan": plan}
    runs = [run("data", 0, 55, 0.72, 63), run("epochs", 0, 20, 0.71, 18),
            run("data", 1, 48, 0.70, 63), run("epochs", 1, 19, None, 18),
            run("data", 2, 52, 0.69, 63)]
    s = summarise(runs, 50)
    assert [r["seed"] for r in s["seeds"]] == [0, 1]
    assert (s["data_wins"], s["target_met_seeds"]) == (2, 1)
    assert s["plan_within_2x"] is True
    runs.append(run("epochs", 2, 8, 0.75, 18))  # 18 / 8 = 2.25: outside 2 x
    s = summarise(runs, 50)
    assert (s["data_wins"], s["target_met_seeds"], s["plan_within_2x"]) == (2, 2, False)


def test_samples_to_a_value_are_bounded_from_runs_saved_without_them():
    """Issue 47, item 3, for runs saved before samples were counted: all epochs of the trials that
    ended by the time the value was reached, the reaching trial's epochs up to it, and of at most
    one other trial (2 at once) none to all but its last."""
    from samples_bounds import epochs_to, verdict
    run = {"method": "nextsweep", "seed": 0, "curve": [(10.0, 0.3), (35.0, 0.5), (60.0, 0.6)],
           "trial_detail": [{"end_s": 20.0, "epochs": 2, "by_epoch": [0.3, 0.25]},
                            {"end_s": 50.0, "epochs": 4, "by_epoch": [0.4, 0.5, 0.45, 0.44]},
                            {"end_s": 70.0, "epochs": 3, "by_epoch": [0.1, 0.6, 0.55]},
                            {"end_s": 90.0, "epochs": 5, "by_epoch": [0.1] * 5}]}
    assert epochs_to(run, 0.5) == (2 + 2, 2 + 2 + 4)  # trial 0 ended; trial 1's 2nd; trial 3's none to 4
    assert epochs_to(run, 0.6) == (2 + 4 + 2, 2 + 4 + 2 + 4)
    assert epochs_to(run, 0.61) is None
    seeds = {0: {"random": (30, 33), "nextsweep": (8, 10)}, 1: {"random": (60, 60), "nextsweep": None},
             2: {"random": (40, 45), "nextsweep": (12, 13)}}
    assert verdict(seeds)["target"] == "met"  # medians (a) 40-45, (c) 12-13 <= 40 / 3; never counts as inf
    seeds[2]["nextsweep"] = (12, 15)
    assert verdict(seeds)["target"] == "undecided"  # 15 > 40 / 3 >= 12
    seeds[2]["nextsweep"] = (16, 17)
    assert verdict(seeds)["target"] == "missed"  # 16 > 45 / 3
