"""Data-subset fidelity (issue 47, item 1): `asha: {fidelity: data}` trains the epochs before the
later rungs on a seeded per-user share of the training samples; the study records each epoch's
share, the plan counts it, retrain always trains on all of the data."""

import json
from pathlib import Path

import pytest

from data_io import load_dataset
from data_io.synthetic import SynthParams, synthesize
from models import ModelError, fit
from search.asha import asha_signature, cheaper_left_off, data_fractions, rungs
from search.planner import Plan, expected_epochs
from spaces import SpaceError, parse_space

SPACE = """
name: fid
data: {synthetic: {users: 12, days: 40, locations: 60, seed: 2}}
budget: {max_params: 20000}
asha: {max_epochs: 6, grace_period: 1, reduction_factor: 3, fidelity: data}
params:
  family: {type: categorical, choices: [gru, transformer]}
  heads: 2
  d_model: {type: int, low: 16, high: 64, step: 8}
  lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
  batch_size: 128
  patience: 6
"""
CONFIG = {"family": "gru", "d_model": 32, "layers": 1, "lr": 3e-3, "epochs": 3, "batch_size": 64, "seed": 1,
          "patience": 3}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("fid") / "ds"
    synthesize(SynthParams(users=10, days=60, locations=40, seed=3), out)
    return load_dataset(out)


def test_each_rung_passed_multiplies_the_data_by_the_reduction_factor():
    assert rungs(12, 1, 3) == [1, 3, 9]
    assert data_fractions(12, 1, 3) == pytest.approx([1 / 9, 1 / 3, 1 / 3] + [1.0] * 9)
    assert data_fractions(6, 1, 3) == pytest.approx([1 / 3, 1.0, 1.0, 1.0, 1.0, 1.0])  # rungs 1, 3
    assert data_fractions(4, 4, 2) == [1.0] * 4  # one rung: all of the data


def test_the_space_declares_it_checked_like_every_key():
    space = parse_space(__import__("yaml").safe_load(SPACE), Path("fid.yaml"))
    assert space.asha.fidelity == "data"
    raw = __import__("yaml").safe_load(SPACE.replace("fidelity: data", "fidelity: samples"))
    with pytest.raises(SpaceError, match="asha.fidelity.*must be epochs or data, got 'samples'"):
        parse_space(raw, Path("fid.yaml"))
    # the plan's and the end's warnings offer it only where the space leaves it off; asha.pause likewise
    assert [s for s, _ in cheaper_left_off(asha_signature(space.asha)[3:])] == ["asha.pause: true"]
    assert [s for s, _ in cheaper_left_off([])] == ["asha.fidelity: data", "asha.pause: true"]
    assert cheaper_left_off(["fidelity data", "pause"]) == []


def test_fit_trains_each_epoch_on_its_share(data):
    full = fit(CONFIG, data)
    same = fit(CONFIG, data, fractions=[1.0, 1.0, 1.0])
    assert [{k: v for k, v in h.items() if not k.startswith("train_") and not k.endswith("_s")} for h in same.history] \
        == [{k: v for k, v in h.items() if not k.startswith("train_") and not k.endswith("_s")} for h in full.history]
    cut = fit(CONFIG, data, fractions=[1 / 3, 1.0])  # past the list's end: all
    assert [h["train_fraction"] for h in cut.history] == pytest.approx([1 / 3, 1.0, 1.0])
    n = len(data["train"])
    first, rest = cut.history[0]["train_samples"], [h["train_samples"] for h in cut.history[1:]]
    assert n / 3 <= first < n / 3 + data.info.n_users and rest == [n, n]  # every user kept, at least one sample each
    assert cut.history[0]["val_hit5"] != full.history[0]["val_hit5"]  # it trained on less
    assert "train_fraction" not in full.history[0]
    with pytest.raises(ModelError, match="fractions"):
        fit(CONFIG, data, fractions=[0.0, 1.0])


def test_patience_acts_on_all_of_the_data_alone(data):
    """Patience never ends a trial on a share (ASHA's rungs judge it there), and a trial that reaches
    all of the data gets `patience` epochs on it: epochs on a share do not count against them."""
    still = {**CONFIG, "lr": 1e-12, "epochs": 6, "patience": 2}  # nothing improves after epoch 1
    assert len(fit(still, data).history) == 3  # epochs 2 and 3 without improvement
    assert len(fit(still, data, fractions=[1 / 3, 1 / 3, 1.0]).history) == 4  # 2 epochs on all of the data
    assert len(fit(still, data, fractions=[1 / 3] * 6).history) == 3  # the share never grows
    edge = {**still, "patience": 1}  # patience runs out at epoch 2, the last before the share grows
    assert len(fit(edge, data).history) == 2
    assert len(fit(edge, data, fractions=[1 / 3, 1 / 3, 1.0]).history) == 3  # one epoch on all of the data
    longer = {**still, "epochs": 8}  # four epochs on 1/9 and 1/3 without improvement: none ends it
    assert len(fit(longer, data, fractions=[1 / 9, 1 / 3, 1 / 3, 1 / 3, 1.0, 1.0, 1.0, 1.0]).history) == 6


def test_the_plan_counts_the_shares():
    full = expected_epochs(12, 1, 3)
    shared = expected_epochs(12, 1, 3, data_fractions(12, 1, 3))
    # every trial runs epoch 1 (on 1/9 of the data), a third 2-3 (on 1/3), a ninth 4-9, a 27th 10-12 (on all)
    assert full == pytest.approx(1 + 2 / 3 + 6 / 9 + 3 / 27)
    assert shared == pytest.approx(1 / 9 + 2 / 3 / 3 + 6 / 9 + 3 / 27)
    plain = Plan({"gru": 10.0}, {"gru": 1.0}, full, 2, 600.0, 10)
    fid = Plan({"gru": 10.0}, {"gru": 1.0}, full, 2, 600.0, 10, {"gru": 0.8}, shared)
    assert fid.trial_s == pytest.approx(1.0 + 10.0 * (0.8 * shared + 0.2 * full))  # validation stays whole
    assert fid.trials > plain.trials
    assert "epochs' worth of training" in fid.lines()[0]


@pytest.mark.ray
@pytest.mark.slow
def test_a_data_fidelity_sweep_records_each_epochs_share_and_retrains_on_all(tmp_path):
    import optuna

    from search.cli import main
    from search.export import export_top, read_export
    from search.retrain import torch_threads
    from spaces import load_space, load_space_data
    (tmp_path / "space.yaml").write_text(SPACE)
    db = f"sqlite:///{tmp_path / 'n.db'}"
    assert main(["sweep", str(tmp_path / "space.yaml"), "--study", "fid", "--storage", db, "--dir", str(tmp_path),
                 "--samples", "6", "--local-cpus", "2"]) == 0
    study = optuna.load_study(study_name="fid", storage=db)
    shares = study.user_attrs["data_fractions"]
    assert shares == pytest.approx(data_fractions(6, 1, 3))
    seen = 0
    for result in (tmp_path / "fid").glob("ray-*/*/result.json"):  # what each trial reported, epoch by epoch
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        assert [r["train_fraction"] for r in rows] == pytest.approx([shares[r["epoch"] - 1] for r in rows])
        seen += len(rows)
    done = [t for t in study.trials if t.state.is_finished() and t.intermediate_values]
    assert seen == sum(len(t.intermediate_values) for t in done) > 0  # every intermediate value has its share
    (path,) = export_top(db, "fid", 1, tmp_path / "exports")
    config = read_export(path)["config"]
    assert "fractions" not in config  # the shares are the sweep's, never the model's
    assert main(["retrain", str(path), "--seeds", "1", "--jobs", "1"]) == 0
    run = json.loads((path.with_suffix("") / "retrain.json").read_text())["runs"][0]
    with torch_threads(read_export(path)["threads"]):  # retrain's threads: the same float sums
        whole = fit({**config, "seed": run["seed"]}, load_space_data(load_space(tmp_path / "space.yaml")))
    assert run["val"] == {k: v for k, v in whole.best_metrics.items() if k.startswith("val_")}  # all of the data
