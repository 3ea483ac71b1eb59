"""`--set KEY=VALUE` overrides of a space and `sweep --enqueue EXPORT.yaml` warm starts (issue 13,
item 7): overrides validated like the file, bad input one line and exit 2 before anything starts,
and exported trials trained first in a real sweep."""

import json
from pathlib import Path

import optuna
import pytest
import yaml

from search.cli import main
from spaces import load_space

SPACE = """
name: tiny
data: {synthetic: {users: 12, days: 40, locations: 60, seed: 2}}
asha: {max_epochs: 2, grace_period: 2, reduction_factor: 2}
params:
  family: {type: categorical, choices: [gru, transformer]}
  heads: {type: categorical, choices: [2, 4], when: {family: transformer}}
  d_model: {type: int, low: 16, high: 64, step: 8}
  lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
  batch_size: 128
  patience: 4
"""
BUDGET = "budget: {max_params: 20000}\n"


@pytest.fixture
def space(tmp_path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return path


def test_set_overrides_change_the_loaded_space(space):
    s = load_space(space, ["asha.max_epochs=20", "budget.max_params=100000", "params.lr.high=0.05",
                           "params.lr.low=1e-4", "params.batch_size=512", "params.family.choices=[transformer]"])
    assert s.asha.max_epochs == 20 and s.asha.grace_period == 2
    assert s.max_params == 100000 and s.width == "d_model"  # a budget the file did not have
    assert (s.param("lr").low, s.param("lr").high) == (1e-4, 0.05)
    assert s.param("batch_size").value == 512 and s.param("family").choices == ["transformer"]
    assert s.overrides[0] == "asha.max_epochs=20"
    assert space.read_text() == SPACE  # the file itself is untouched
    assert load_space(space).asha.max_epochs == 2


def test_space_check_shows_the_overridden_space(space, capsys):
    assert main(["space", "check", str(space), "--samples", "5", "--set", "asha.max_epochs=7",
                 "--set", "budget.max_params=30000"]) == 0
    out = capsys.readouterr().out
    assert "ASHA max_epochs 7" in out and "budget       30,000 parameters" in out


@pytest.mark.parametrize("override, named, why", [
    ("asha.max_epoch=20", "--set asha.max_epoch:", "did you mean 'max_epochs'"),
    ("asha.max_epochs=0", "--set asha.max_epochs:", "must be >= 1"),
    ("params.batch_size=abc", "--set params.batch_size:", "must be an integer"),
    ("params.batch_size.low=3", "--set params.batch_size.low:", "not a mapping"),
    ("params.lr.high=1e-9", "--set params.lr.high:", "empty range"),
    ("params.depth=3", "--set params.depth:", "unknown key 'depth'"),
    ("params.family.choices=[gru, transformer, mamba]", "--set params.family.choices:", "'mamba' is not supported"),
    # not the key it set, but what it broke: the file and the --set both named
    ("params.family.choices=[gru]", "space.yaml with --set params.family.choices: params.heads.when.family:",
     "never taken"),
    ("asha.grace_period=9", "--set asha.grace_period:", "exceeds max_epochs 2"),
    ("max_epochs", "--set 'max_epochs':", "expected KEY=VALUE"),
])
def test_a_bad_set_is_one_line_and_exit_2(space, tmp_path, capsys, override, named, why):
    db = tmp_path / "db.sqlite"
    assert main(["sweep", str(space), "--set", override, "--storage", f"sqlite:///{db}", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nextsweep: error: ") and named in err and why in err and err.count("\n") == 1, err
    assert not db.exists() and not (tmp_path / "tiny").exists()  # refused before storage, data or Ray


def export_doc(params) -> dict:
    """What `nextsweep export` writes, reduced to what --enqueue reads."""
    doc = {"nextsweep_export": 1, "trial": 0, "config": {"family": "gru"}, "data": {"synthetic": {}}}
    return doc if params is None else {**doc, "params": params}


@pytest.mark.parametrize("params, key", [
    ({"family": "gru", "lr": 0.5}, "params.lr: 0.5 is outside its range"),
    ({"family": "lstm"}, "params.family: 'lstm' is not one of its choices"),
    ({"family": "gru", "depth": 2}, "params.depth: not a parameter the space samples"),
    ({"family": "gru", "d_model_frac": 0.5}, "params.d_model_frac: not a parameter"),  # no budget: d_model itself
    ({"family": "gru", "d_model": 20}, "params.d_model: 20 is not on its grid"),
    (None, "params: missing"),
])
def test_a_bad_export_is_refused_before_anything_starts(space, tmp_path, capsys, params, key):
    export = tmp_path / "best.yaml"
    export.write_text(yaml.safe_dump(export_doc(params)))
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert main(["sweep", str(space), "--enqueue", str(export), "--storage", storage, "--study", "s",
                 "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nextsweep: error: --enqueue {export}: {key}") and err.count("\n") == 1, err
    assert optuna.get_all_study_names(storage) == []  # nothing created in the storage
    assert not (tmp_path / "s").exists()


def test_enqueue_of_a_missing_file_names_it(space, tmp_path, capsys):
    assert main(["sweep", str(space), "--enqueue", str(tmp_path / "nope.yaml"), "--dir", str(tmp_path)]) == 2
    assert "nope.yaml: file not found" in capsys.readouterr().err
    assert not (tmp_path / "nextsweep.db").exists()


@pytest.mark.ray
@pytest.mark.slow
def test_enqueued_exports_are_the_first_trials(tmp_path, capsys):
    from search.export import export_top
    from search.sweep import SweepOptions, run_sweep
    path = tmp_path / "space.yaml"
    path.write_text(SPACE + BUDGET)
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    run_sweep(SweepOptions(space=str(path), study="first", samples=2, dir=str(tmp_path), seed=0, storage=storage))
    exports = export_top(storage, "first", 2, tmp_path / "exports")
    docs = [yaml.safe_load(p.read_text()) for p in exports]
    assert len(docs) == 2 and all("d_model_frac" in d["params"] for d in docs)  # the fitted width's own parameter
    capsys.readouterr()
    argv = ["sweep", str(path), "--study", "warm", "--samples", "3", "--seed", "7", "--storage", storage,
            "--dir", str(tmp_path), "--set", "asha.max_epochs=1", "--set", "asha.grace_period=1"]
    assert main(argv + ["--enqueue", str(exports[0]), "--enqueue", str(exports[1])]) == 0
    assert f"enqueued {exports[0]}" in capsys.readouterr().out
    warm = optuna.load_study(study_name="warm", storage=storage)
    trained = [t for t in warm.trials if "config" in t.user_attrs]
    assert len(trained) == 3
    for t, doc in zip(warm.trials[:2], docs):  # in order, before anything the sampler proposed
        assert t.params == doc["params"] and t.user_attrs["enqueued_from"] == str(Path(exports[docs.index(doc)]))
        config = json.loads(t.user_attrs["config"])
        assert config["epochs"] == 1  # the --set space ...
        same = lambda c: {k: v for k, v in c.items() if k not in ("epochs", "seed")}
        assert same(config) == same(doc["config"])  # ... trains the exported config, width included
    assert warm.user_attrs["space_overrides"] == ["asha.max_epochs=1", "asha.grace_period=1"]
    # A resume sees the effective space: a changed --set is caught by the space check.
    assert main(["sweep", str(path), "--study", "warm", "--resume", "--samples", "3", "--storage", storage,
                 "--dir", str(tmp_path), "--set", "asha.max_epochs=2", "--set", "asha.grace_period=1"]) == 2
    err = capsys.readouterr().err
    assert "asha is [2, 1" in err and "--set asha.max_epochs=1" in err and err.count("\n") == 1, err
