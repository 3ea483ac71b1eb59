"""`nextsweep predict`: export -> retrain --seeds 1 -> predict, the Parquet checked against the
retrained model itself (its argmax, retrain's own Acc@1 / Hit@1), and the errors a user can make."""

import json

import numpy as np
import optuna
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
import yaml
from optuna.trial import TrialState, create_trial

from models import build_model
from models.tasks import get_task
from models.tasks._base import outputs
from search.cli import main
from search.export import export_top
from spaces.data import load_data

pytestmark = pytest.mark.slow  # trains two small models

CASES = {
    "location": ({"synthetic": {"users": 12, "days": 40, "locations": 60, "seed": 2}},
                 {"family": "gru", "d_model": 16, "layers": 1, "lr": 0.005, "epochs": 2, "batch_size": 128,
                  "metric": "val_hit5", "seed": 3}, "acc1"),
    "vector": ({"synthetic": {"groups": 24, "steps": 50, "dim": 12, "items": 80, "seed": 1}},
               {"family": "gru", "d_model": 16, "layers": 1, "loss": "cosine", "lr": 0.005, "epochs": 2,
                "batch_size": 128, "metric": "val_hit5", "seed": 3}, "hit1"),
}


def exported(tmp_path, task: str, spec: dict | None = None, config: dict | None = None):
    """A one-trial study shaped like a sweep's, exported as `export` does."""
    spec, config = spec or CASES[task][0], config or CASES[task][1]
    data = load_data(spec, "test", task)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    study = optuna.create_study(study_name=task, storage=url, direction="maximize")
    for k, v in {"task": task, "data": spec, "fingerprint": data.info.fingerprint, "metric": "val_hit5"}.items():
        study.set_user_attr(k, v)
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.5,
                                 user_attrs={"config": json.dumps(config), "n_params": 1000, "cpus": 1}))
    [path] = export_top(url, task, 1, tmp_path / "ex")
    return path, data


def model_top1(task: str, model, data) -> np.ndarray:
    """The retrained model's own best guess per test sample: argmax of its log-probs, or the bank
    row nearest its output by cosine."""
    bank = F.normalize(torch.from_numpy(data.banks["test"]), dim=-1) if task == "vector" else None
    best = np.full(len(data["test"]), -1)
    for out, b in outputs(model, data["test"], 512):  # batches come sorted by length: b.index is the row
        best[b.index.numpy()] = (F.normalize(out, dim=-1) @ bank.T if bank is not None else out).argmax(1).numpy()
    return best


@pytest.mark.parametrize("task", sorted(CASES))
def test_predict_round_trip(tmp_path, capsys, task):
    path, data = exported(tmp_path, task)
    assert main(["retrain", str(path), "--seeds", "1"]) == 0
    report = json.loads((path.with_suffix("") / "retrain.json").read_text())
    out = tmp_path / "preds" / "p.parquet"
    assert main(["predict", str(path), "--top-k", "3", "--out", str(out)]) == 0
    assert f"wrote {out}: top-3 predictions of {len(data['test']):,} test samples" in capsys.readouterr().out
    table = pq.read_table(out).to_pandas()
    assert list(table.columns) == ["sample_id", "target", "pred_1", "pred_2", "pred_3", "score_1", "score_2", "score_3"]
    assert (table["sample_id"].to_numpy() == data["test"].sample_id).all()
    target = data["test"].target_id if task == "vector" else data["test"].target
    assert (table["target"].to_numpy() == target).all()
    scores = table[["score_1", "score_2", "score_3"]].to_numpy()
    assert (np.diff(scores, axis=1) <= 0).all()  # best first
    saved = torch.load(path.with_suffix("") / "best_model.pt", weights_only=True)
    model = build_model(yaml.safe_load(path.read_text())["config"], data.info)
    model.load_state_dict(saved["state_dict"])
    assert (table["pred_1"].to_numpy() == model_top1(task, model, data)).all()
    key = CASES[task][2]  # Acc@1 (location) / Hit@1 (vector) from the file = retrain's test figure
    assert float((table["pred_1"] == table["target"]).mean()) == pytest.approx(report["runs"][0]["test"][key], abs=1e-12)
    assert not list(out.parent.glob(".*"))  # written through a temp file, none left


def test_kfold_retrain_serves_and_measures_the_fold_ensemble(tmp_path, capsys):
    """With folds, best_model.pt keeps every fold's weights, predict serves their ensemble (the mean
    of their probabilities), and retrain's test figures are that same predictor's."""
    spec = {"synthetic": {"groups": 24, "steps": 30, "dim": 12, "items": 60, "n_folds": 3, "seed": 1}}
    config = {"family": "gru", "d_model": 16, "layers": 1, "loss": "ce", "lr": 0.01, "epochs": 2, "batch_size": 64,
              "metric": "val_f1", "folds": 3, "seed": 0}
    path, data = exported(tmp_path, "category", spec, config)
    assert main(["retrain", str(path), "--seeds", "1"]) == 0
    assert "the ensemble of the 3 fold models (what predict serves)" in capsys.readouterr().out
    report = json.loads((path.with_suffix("") / "retrain.json").read_text())
    saved = torch.load(path.with_suffix("") / "best_model.pt", weights_only=True)
    assert len(saved["fold_states"]) == 3 and report["folds"] == 3
    folds = []
    for state in saved["fold_states"]:
        model = build_model(config, data.info)
        model.load_state_dict(state)
        folds.append(model)
    out = tmp_path / "p.parquet"
    assert main(["predict", str(path), "--top-k", "2", "--out", str(out)]) == 0
    table = pq.read_table(out).to_pandas()
    probs = [np.exp(model_scores(m, data, "test")) for m in folds]
    labels = np.asarray(data.info.classes, dtype=object)
    assert (table["pred_1"].to_numpy() == labels[np.mean(probs, 0).argmax(1)]).all()  # the ensemble's choice
    assert np.allclose(np.exp(table["score_1"]), np.mean(probs, 0).max(1), atol=1e-6)
    assert not np.allclose(np.exp(table["score_1"]), probs[0].max(1), atol=1e-3)  # not the first fold alone
    accuracy = float((table["pred_1"] == table["target"]).mean())
    assert accuracy == pytest.approx(report["test"]["acc1"]["mean"], abs=1e-12)  # measured = served
    alone = np.mean([(p.argmax(1) == data["test"].target).mean() for p in probs])
    assert report["test_fold_mean"]["acc1"]["mean"] == pytest.approx(alone, abs=1e-12)
    assert sum(c["predicted"] for c in report["runs"][0]["per_class"].values()) == len(data["test"])


def model_scores(model, data, split) -> np.ndarray:
    """A model's log-probabilities over a split, in the split's row order."""
    scores = np.zeros((len(data[split]), len(data.info.classes)))
    for out, b in outputs(model, data[split], 512):
        scores[b.index.numpy()] = out.numpy()
    return scores


def test_predict_category_labels(tmp_path):
    """Category predictions are class labels; top-1 is the model's argmax label."""
    spec = {"synthetic": {"groups": 24, "steps": 30, "dim": 12, "items": 60, "n_folds": 0, "seed": 1}}
    data = load_data(spec, "test", "category")
    config = {"family": "gru", "d_model": 16, "layers": 1, "loss": "ce", "epochs": 1, "metric": "val_f1", "seed": 0}
    model = build_model(config, data.info)
    top = get_task("category").top_k(model, data, "val", 2)
    labels = np.asarray(data.info.classes, dtype=object)
    assert (top["target"] == labels[data["val"].target]).all()
    assert (top["pred"][:, 0] == labels[model_scores(model, data, "val").argmax(1)]).all()


def test_predict_errors_are_one_line(tmp_path, capsys):
    path, data = exported(tmp_path, "location")
    out = tmp_path / "p.parquet"

    def fails(args, expected):
        assert main(["predict", *map(str, args), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and expected in err, err
        assert not out.exists()

    fails([path], "best_model.pt: model file not found; run `nextsweep retrain")
    doc = yaml.safe_load(path.read_text())
    model = build_model(doc["config"], data.info)
    torch.save({"state_dict": model.state_dict(), "config": doc["config"], "seed": 0}, tmp_path / "m.pt")
    wider = tmp_path / "wider.yaml"
    wider.write_text(yaml.safe_dump({**doc, "config": {**doc["config"], "d_model": 24}}))
    fails([wider, "--model", tmp_path / "m.pt"], "m.pt: does not match the config of")
    (tmp_path / "junk.pt").write_text("not a model")
    fails([path, "--model", tmp_path / "junk.pt"], "junk.pt: not a model saved by `nextsweep retrain`")
    moved = tmp_path / "moved.yaml"
    moved.write_text(yaml.safe_dump({**doc, "fingerprint": "0" * 64}))
    fails([moved, "--model", tmp_path / "m.pt"], "fingerprint: the data now differs from the sweep's")
    fails([path, "--model", tmp_path / "m.pt", "--top-k", "0"], "top-k 0: must be between 1 and the")
    assert main(["predict", str(path), "--model", str(tmp_path / "m.pt"), "--split", "val", "--out", str(out)]) == 0
    assert pq.read_table(out).num_rows == len(data["val"])
