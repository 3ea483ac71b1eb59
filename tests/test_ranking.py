"""The one ranking (search.ranking.ranked): ties on a saturating objective broken by the space's
`then` metrics, confirmed means first; the Pareto front and `export --pareto`; the schema of
objective.then / tolerance. Hand-built studies: every figure is chosen by the test."""

import json
import math
import random
import signal

import optuna
import pytest
import yaml
from optuna.trial import TrialState, create_trial

from search.cli import main
from search.export import read_export
from search.ranking import pareto_front, ranked
from search.study_record import space_signature
from spaces import load_space


def study_of(rows, direction="maximize", then=(), tolerance=None, storage=None, name="s"):
    """rows: (value, {best_metrics}, n_params, confirmed-or-None); trial i is row i."""
    study = optuna.create_study(direction=direction, storage=storage, study_name=name)
    metric = "val_loss" if direction == "minimize" else "val_hit5"
    study.set_user_attr("metric", metric)
    study.set_user_attr("then", list(then))
    study.set_user_attr("data", {"synthetic": {"users": 5}})
    if tolerance is not None:
        study.set_user_attr("tolerance", tolerance)
    for value, best, n_params, confirmed in rows:
        attrs = {"config": json.dumps({"family": "gru", "d_model": 16, "seed": 0}), "n_params": n_params,
                 "best_metrics": {metric: value, **best}}
        if confirmed is not None:
            attrs["confirmed"] = {"metric": metric, **confirmed}
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=value, user_attrs=attrs))
    return study


def numbers(trials):
    return [t.number for t in trials]


def test_without_then_the_order_is_by_value_then_trial_number():
    study = study_of([(0.5, {}, 10, None), (0.7, {}, 10, None), (0.5, {}, 10, None), (0.6, {}, 10, None)])
    assert numbers(ranked(study)) == [1, 3, 0, 2]
    study = study_of([(0.5, {}, 10, None), (0.7, {}, 10, None), (0.6, {}, 10, None)], direction="minimize")
    assert numbers(ranked(study)) == [0, 2, 1]


def test_ties_within_tolerance_go_to_the_then_metrics():
    rows = [(0.7900, {"val_acc1": 0.40}, 10, None),
            (0.7895, {"val_acc1": 0.45}, 10, None),  # within 0.002 of 0.7900: a tie, better Acc@1 wins
            (0.7870, {"val_acc1": 0.60}, 10, None),  # 0.003 below the group's best: its own group
            (0.7860, {"val_acc1": 0.50}, 10, None)]  # within 0.002 of 0.7870: orders behind it by Acc@1
    assert numbers(ranked(study_of(rows, then=["val_acc1"], tolerance=0.002))) == [1, 0, 2, 3]
    assert numbers(ranked(study_of(rows, then=["val_acc1"], tolerance=0.0))) == [0, 1, 2, 3]
    assert numbers(ranked(study_of(rows, then=["val_acc1"], tolerance=0.01))) == [2, 3, 1, 0]
    assert numbers(ranked(study_of(rows, then=["val_acc1"]))) == [1, 0, 2, 3]  # the default tolerance, 0.002


def test_then_metrics_are_lexicographic_in_their_own_direction():
    rows = [(0.80, {"val_acc1": 0.5, "val_loss": 2.0}, 10, None),
            (0.80, {"val_acc1": 0.5, "val_loss": 1.0}, 10, None),  # same Acc@1: the lower loss wins
            (0.80, {"val_acc1": 0.6, "val_loss": 3.0}, 10, None),
            (0.80, {"val_loss": 0.1}, 10, None)]  # no Acc@1 recorded: the worst for it
    assert numbers(ranked(study_of(rows, then=["val_acc1", "val_loss"]))) == [2, 1, 0, 3]


def test_minimised_objective_ties_the_same_way():
    rows = [(1.000, {"val_acc1": 0.3}, 10, None), (1.001, {"val_acc1": 0.4}, 10, None), (1.100, {"val_acc1": 0.9}, 10, None)]
    assert numbers(ranked(study_of(rows, direction="minimize", then=["val_acc1"]))) == [1, 0, 2]


def confirmed(values, then_means=None):
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return {"seeds": list(range(1000, 1000 * (len(values) + 1), 1000)), "values": values, "mean": mean, "std": std,
            "then": {k: {"mean": v, "std": 0.0} for k, v in (then_means or {}).items()}}


def test_confirmed_trials_rank_first_by_their_mean_and_their_std_is_the_noise():
    rows = [(0.90, {"val_acc1": 0.9}, 10, None),  # best single run, never confirmed: after the confirmed ones
            (0.80, {"val_acc1": 0.1}, 10, confirmed([0.70, 0.74, 0.72], {"val_acc1": 0.30})),  # mean 0.72, std 0.02
            (0.85, {"val_acc1": 0.9}, 10, confirmed([0.71, 0.71], {"val_acc1": 0.50})),  # mean 0.71: tie within 0.02
            (0.84, {"val_acc1": 0.9}, 10, confirmed([0.60, 0.62], {"val_acc1": 0.90})),  # 0.61: outside the noise
            (0.70, {"val_acc1": 0.1}, 10, None)]
    study = study_of(rows, then=["val_acc1"], tolerance=0.0)
    assert numbers(ranked(study)) == [2, 1, 3, 0, 4]  # trial 2's confirmed Acc@1 (0.50) beats trial 1's (0.30)
    assert numbers(ranked(study, use_confirmed=False)) == [0, 2, 3, 1, 4]  # the sweep's own order
    single = study_of([(0.80, {}, 10, confirmed([0.70])), (0.80, {}, 10, confirmed([0.699]))], tolerance=0.002)
    assert numbers(ranked(single)) == [0, 1]  # one seed has no std: the tolerance is the noise


def test_a_confirmed_record_for_another_metric_is_ignored():
    assert numbers(ranked(study_of([(0.8, {}, 10, None), (0.7, {}, 10, confirmed([0.9]))]))) == [1, 0]
    other = {**confirmed([0.9]), "metric": "val_acc1"}  # e.g. made before the objective changed
    study = study_of([(0.8, {}, 10, None)])
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.7,
                                 user_attrs={"config": "{}", "confirmed": other}))
    assert numbers(ranked(study)) == [0, 1]


@pytest.fixture
def no_hang():
    """Safety net only: a ranking that loops fails here instead of hanging the suite (the
    assertions are on the order ranked() returns)."""
    def stop(*_):
        raise TimeoutError("ranked() did not return: it loops")
    before = signal.signal(signal.SIGALRM, stop)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, before)


def test_infinite_values_rank_first_or_last_and_tie_among_themselves(no_hang):
    inf = math.inf
    rows = [(0.5, {"val_acc1": 0.1}, 10, None), (inf, {"val_acc1": 0.2}, 10, None), (0.7, {}, 10, None),
            (inf, {"val_acc1": 0.3}, 10, None), (-inf, {}, 10, None)]
    assert numbers(ranked(study_of(rows))) == [1, 3, 2, 0, 4]  # +inf best when maximizing, the infs by number
    assert numbers(ranked(study_of(rows, then=["val_acc1"]))) == [3, 1, 2, 0, 4]  # equal infs tie: then decides
    assert numbers(ranked(study_of(rows, direction="minimize"))) == [4, 0, 2, 1, 3]  # -inf best when minimizing


def test_nan_confirmed_means_rank_last_of_the_confirmed(no_hang):
    rows = [(0.80, {}, 10, confirmed([math.nan, 0.7])), (0.70, {}, 10, confirmed([0.72, 0.74])),
            (0.75, {}, 10, confirmed([math.nan])), (0.90, {}, 10, None), (0.60, {}, 10, confirmed([math.inf, 0.7]))]
    assert numbers(ranked(study_of(rows))) == [4, 1, 0, 2, 3]  # inf mean (std NaN) first, NaN means by number


def test_a_non_finite_stored_tolerance_ranks_with_the_default(no_hang):
    """Studies swept before the schema refused `tolerance: .nan` still rank (as with 0.002)."""
    rows = [(0.7900, {"val_acc1": 0.40}, 10, None), (0.7895, {"val_acc1": 0.45}, 10, None),
            (0.7870, {"val_acc1": 0.60}, 10, None)]
    for bad in (math.nan, math.inf):
        assert numbers(ranked(study_of(rows, then=["val_acc1"], tolerance=bad))) == [1, 0, 2]


def test_status_and_export_of_an_infinite_leader(tmp_path, capsys, no_hang):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    study_of([(0.5, {}, 10, None), (math.inf, {}, 10, None)], storage=url, name="inf")
    assert main(["status", "--storage", url, "--study", "inf"]) == 0
    assert "best       trial 1: val_hit5 inf" in capsys.readouterr().out
    assert main(["export", "--storage", url, "--study", "inf", "--top", "2", "--out", str(tmp_path / "ex")]) == 0
    assert read_export(tmp_path / "ex" / "inf-rank1-trial1.yaml")["trial"] == 1


def dominated(t, others, sign):
    n, v = t.user_attrs["n_params"], sign * t.value
    return any(u.user_attrs["n_params"] <= n and sign * u.value >= v and (u.user_attrs["n_params"] < n or sign * u.value > v)
               for u in others if u is not t)


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_pareto_front_matches_brute_force(direction):
    rng = random.Random(3)
    sign = 1 if direction == "maximize" else -1
    for _ in range(30):  # small value and size sets: many exact ties of either kind
        rows = [(rng.choice([0.5, 0.6, 0.7, 0.8]), {}, rng.choice([100, 200, 300, 400, 500]), None)
                for _ in range(rng.randint(1, 12))]
        trials = study_of(rows, direction=direction).trials
        front = pareto_front(trials, maximize=direction == "maximize")
        assert numbers(front) == sorted((t.number for t in trials if not dominated(t, trials, sign)),
                                        key=lambda i: (trials[i].user_attrs["n_params"], -sign * trials[i].value, i))
        sizes = [t.user_attrs["n_params"] for t in front]
        assert sizes == sorted(sizes)


def test_export_pareto_writes_the_front_named_by_size(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    rows = [(0.60, {}, 12000, None), (0.70, {}, 30000, None), (0.65, {}, 30000, None), (0.68, {}, 45000, None),
            (0.75, {}, 48000, None), (0.55, {}, 9000, None), (0.60, {}, 20000, None)]
    study = study_of(rows, storage=url, name="p")
    assert main(["export", "--storage", url, "--study", "p", "--pareto", "--out", str(tmp_path / "ex")]) == 0
    out = capsys.readouterr().out
    files = sorted((tmp_path / "ex").glob("*.yaml"), key=lambda p: read_export(p)["n_params"])
    want = [t for t in study.trials if not dominated(t, study.trials, 1)]
    assert [read_export(p)["trial"] for p in files] == [5, 0, 1, 4] == numbers(sorted(want, key=lambda t: t.user_attrs["n_params"]))
    assert [p.name for p in files] == [f"p-pareto-{n}params-trial{t}.yaml" for n, t in
                                       [(9000, 5), (12000, 0), (30000, 1), (48000, 4)]]
    doc = yaml.safe_load(files[2].read_text())
    assert doc["rank"] == 2 and doc["objective"] == {"val_hit5": 0.70}  # its place in the whole ranking
    table = [line.split() for line in out.splitlines() if line.strip() and line.split()[0].replace(",", "").isdigit()]
    assert [(r[0], r[1], r[2]) for r in table] == [("9,000", "0.5500", "5"), ("12,000", "0.6000", "0"),
                                                   ("30,000", "0.7000", "1"), ("48,000", "0.7500", "4")]
    assert not list((tmp_path / "ex").glob(".*"))  # no temp file left behind


def test_export_ranks_confirmed_first(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    study_of([(0.9, {}, 10, None), (0.8, {}, 10, confirmed([0.75, 0.77]))], storage=url, name="c")
    assert main(["export", "--storage", url, "--study", "c", "--top", "2", "--out", str(tmp_path / "ex")]) == 0
    first = read_export(tmp_path / "ex" / "c-rank1-trial1.yaml")
    assert first["confirmed"]["mean"] == pytest.approx(0.76) and first["confirmed"]["seeds"] == [1000, 2000]
    assert read_export(tmp_path / "ex" / "c-rank2-trial0.yaml")["rank"] == 2


def test_summary_and_status_show_the_then_metrics(tmp_path, capsys):
    from search.summary import print_summary
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    study = study_of([(0.79, {"val_acc1": 0.41, "val_mrr": 0.55}, 10, None),
                      (0.7895, {"val_acc1": 0.47, "val_mrr": 0.58}, 10, confirmed([0.78, 0.80]))],
                     then=["val_acc1", "val_mrr"], storage=url, name="st")
    study.set_user_attr("space_name", "x")
    print_summary(study, url)
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.split()[:2] == ["trial", "val_hit5"])
    assert header.split()[2:5] == ["val_acc1", "val_mrr", "confirmed"]
    row = next(line for line in out.splitlines() if line.split()[:1] == ["1"])
    assert row.split()[1:6] == ["0.7895", "0.4700", "0.5800", "0.7900", "+-"]
    assert "best       trial 1: val_hit5 0.7895 (val_acc1 0.4700, val_mrr 0.5800)" in out
    assert main(["status", "--storage", url, "--study", "st"]) == 0
    out = capsys.readouterr().out
    assert "best       trial 1: val_hit5 0.7895 (val_acc1 0.4700, val_mrr 0.5800)" in out
    assert "confirmed  val_hit5 0.7900 +- 0.0141 (2) seeds" in out


def test_summary_commands_quote_the_study_name(capsys):
    """The export / report lines are pasted into a shell: a name with spaces or `;` stays one word."""
    import shlex
    from search.summary import print_summary
    name = "my sweep; rm -rf x"
    print_summary(study_of([(0.5, {}, 10, None)], name=name), "sqlite:///db.sqlite")
    out = capsys.readouterr().out.splitlines()
    words = [shlex.split(line.split(None, 1)[1]) for line in out if line.startswith(("export ", "report "))]
    assert len(words) == 2 and all(w[w.index("--study") + 1] == name for w in words)


SPACE = """
name: t
data: {synthetic: {users: 5, days: 40, locations: 40}}
asha: {max_epochs: 2}
params:
  d_model: {type: int, low: 16, high: 64, step: 8}
"""

BAD_THEN = {
    "not a list": ("objective: {metric: val_hit5, then: val_acc1}", "objective.then: must be a list of metric names"),
    "unknown metric": ("objective: {metric: val_hit5, then: [val_acc1, val_acc2]}",
                       "objective.then[1]: 'val_acc2' is not reported by the location task"),
    "the objective itself": ("objective: {metric: val_hit5, then: [val_hit5]}",
                             "objective.then[0]: 'val_hit5' is already the objective"),
    "twice": ("objective: {metric: val_hit5, then: [val_mrr, val_mrr]}", "objective.then[1]: 'val_mrr' is already listed"),
    "another task's metric": ("task: category\nobjective: {metric: val_f1, then: [val_mrr]}",
                              "objective.then[0]: 'val_mrr' is not reported by the category task"),
    "negative tolerance": ("objective: {metric: val_hit5, then: [val_acc1], tolerance: -0.1}",
                           "objective.tolerance: must be >= 0"),
    "NaN tolerance": ("objective: {metric: val_hit5, then: [val_acc1], tolerance: .nan}",
                      "objective.tolerance: must be a finite number, got nan"),
    "infinite tolerance": ("objective: {metric: val_hit5, then: [val_acc1], tolerance: .inf}",
                           "objective.tolerance: must be a finite number, got inf"),
    "unknown key": ("objective: {metric: val_hit5, than: [val_acc1]}", "objective.than: unknown key 'than'; did you mean 'then'?"),
}


@pytest.mark.parametrize("case", sorted(BAD_THEN))
def test_bad_then_is_one_line_exit_2(tmp_path, capsys, case):
    line, expected = BAD_THEN[case]
    path = tmp_path / "space.yaml"
    text = SPACE + line + "\n"
    if "category" in line:
        text = text.replace("{synthetic: {users: 5, days: 40, locations: 40}}", "{synthetic: {groups: 5}}")
    path.write_text(text)
    assert main(["space", "check", str(path), "--samples", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and str(path) in err and expected in err, err


def test_then_and_tolerance_stay_out_of_the_resume_signature(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(SPACE + "objective: {metric: val_hit5}\n")
    b.write_text(SPACE + "objective: {metric: val_hit5, then: [val_acc1, val_mrr], tolerance: 0.01}\n")
    sa, sb = load_space(a), load_space(b)
    assert (sa.then, sa.tolerance, sb.then, sb.tolerance) == ([], 0.002, ["val_acc1", "val_mrr"], 0.01)
    assert space_signature(sa) == space_signature(sb)  # changing the tie-break does not block --resume


@pytest.mark.parametrize("name", ["geolife_100k", "geolife_500k", "geolife_1m"])
def test_shipped_geolife_location_spaces_break_ties_on_acc1_then_mrr(name):
    from pathlib import Path
    space = load_space(Path(__file__).resolve().parents[1] / "spaces" / f"{name}.yaml")
    assert space.task == "location" and space.metric == "val_hit5" and space.then == ["val_acc1", "val_mrr"]
