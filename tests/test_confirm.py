"""`nextsweep confirm` on a real local Ray after a real tiny sweep: new seeds, validation only,
mean +- std per the contract, resumable, and export ranking by the confirmed mean."""

import json
import statistics

import pytest

from models import fit
from search.cli import main
from search.confirm import SEED_STRIDE, ConfirmOptions, add_run, run_confirm
from search.export import export_top, read_export
from search.retrain import torch_threads
from search.ranking import ranked
from search.storage import load_study
from search.sweep import SweepOptions, run_sweep
from spaces.data import load_data

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SPACE = """
name: conf
data: {synthetic: {users: 12, days: 40, locations: 60, seed: 2}}
objective: {metric: val_hit5, then: [val_acc1, val_mrr]}
budget: {max_params: 20000}
asha: {max_epochs: 2, grace_period: 2, reduction_factor: 2}
params:
  family: {type: categorical, choices: [gru, transformer]}
  heads: 2
  d_model: {type: int, low: 16, high: 32, step: 8}
  lr: {type: float, low: 3.0e-3, high: 1.0e-2, log: true}
  batch_size: 128
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("confirm")
    (tmp / "space.yaml").write_text(SPACE)
    opts = SweepOptions(space=str(tmp / "space.yaml"), study="c", samples=3, dir=str(tmp), seed=0,
                        storage=f"sqlite:///{tmp / 'db.sqlite'}")
    study = run_sweep(opts)
    assert study.user_attrs["then"] == ["val_acc1", "val_mrr"] and study.user_attrs["tolerance"] == 0.002
    return tmp, opts.storage


def direct_val(study, trial, seed: int) -> dict:
    """The validation metrics of the trial's config trained here with `seed` (one thread, as the run)."""
    data = load_data(study.user_attrs["data"], "test", "location")
    with torch_threads(1):
        result = fit({**json.loads(trial.user_attrs["config"]), "seed": seed}, data)
    return result.best_metrics


def test_confirm_new_seeds_validation_only_and_resumable(swept, capsys):
    tmp, url = swept
    first = run_confirm(ConfirmOptions(storage=url, study="c", top=2, seeds=1, cpus_per_trial=1))
    assert len(first.trials) == 2 and len(first.trained) == 2 and not first.failed
    study = first.study
    top = [t for t in study.trials if t.number in first.trials]
    assert [t.number for t in top] == [t.number for t in ranked(study, use_confirmed=False)[:2]]
    for t in top:
        own = json.loads(t.user_attrs["config"])["seed"]
        c = t.user_attrs["confirmed"]
        assert c["metric"] == "val_hit5" and c["seeds"] == [own + SEED_STRIDE] and own not in c["seeds"]
        val = direct_val(study, t, own + SEED_STRIDE)  # the stored figure is validation, reproduced exactly
        assert c["values"] == [val["val_hit5"]] and c["mean"] == val["val_hit5"] and c["std"] == 0.0
        assert c["then"] == {"val_acc1": {"mean": val["val_acc1"], "std": 0.0},
                             "val_mrr": {"mean": val["val_mrr"], "std": 0.0}}

    second = run_confirm(ConfirmOptions(storage=url, study="c", top=2, seeds=2))
    assert sorted(second.trained) == sorted((n, json.loads(t.user_attrs["config"])["seed"] + 2 * SEED_STRIDE)
                                            for n, t in ((t.number, t) for t in top))  # only the new seed
    for t in (t for t in second.study.trials if t.number in second.trials):
        c = t.user_attrs["confirmed"]
        own = json.loads(t.user_attrs["config"])["seed"]
        assert c["seeds"] == [own + SEED_STRIDE, own + 2 * SEED_STRIDE] and len(c["values"]) == 2
        assert c["mean"] == pytest.approx(statistics.mean(c["values"])) and c["std"] == pytest.approx(statistics.stdev(c["values"]))
        assert c["values"][0] == next(x for x in top if x.number == t.number).user_attrs["confirmed"]["values"][0]
    capsys.readouterr()

    assert main(["confirm", "--storage", url, "--study", "c", "--top", "2", "--seeds", "2"]) == 0  # all done already
    out = capsys.readouterr().out
    assert "0 runs to train, 4 already done" in out and "confirmed mean +- std (seeds)" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] and line.split()[0].isdigit()]
    assert sorted(int(r[0]) for r in rows) == sorted(second.trials) and all(r[3] == "+-" for r in rows)

    study = load_study(url, "c")
    order = ranked(study)
    assert {t.number for t in order[:2]} == set(second.trials)  # confirmed trials first
    doc = read_export(export_top(url, "c", 1, tmp / "ex")[0])
    assert doc["trial"] == order[0].number and doc["confirmed"]["seeds"] == order[0].user_attrs["confirmed"]["seeds"]


def test_confirm_refuses_bad_counts_and_empty_studies(tmp_path, capsys):
    assert main(["confirm", "--storage", f"sqlite:///{tmp_path / 'x.db'}", "--seeds", "0"]) == 2
    assert "--seeds 0: both must be >= 1" in capsys.readouterr().err


def test_add_run_recomputes_from_every_seed():
    r = add_run(None, "val_hit5", ["val_acc1"], 2000, {"val_hit5": 0.5, "val_acc1": 0.2})
    r = add_run(r, "val_hit5", ["val_acc1"], 1000, {"val_hit5": 0.7, "val_acc1": 0.4})
    assert r["seeds"] == [1000, 2000] and r["values"] == [0.7, 0.5]
    assert r["mean"] == pytest.approx(0.6) and r["std"] == pytest.approx(statistics.stdev([0.7, 0.5]))
    assert r["then"]["val_acc1"]["mean"] == pytest.approx(0.3)
