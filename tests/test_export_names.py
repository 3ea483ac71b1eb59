"""Study names in file names: `nextsweep export` writes inside --out whatever the study is called
(a name with '/', '../' or a leading dot never leaves the folder nor hides the file)."""

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from search.cli import main
from search.export import read_export


def one_trial_study(url: str, name: str) -> None:
    study = optuna.create_study(direction="maximize", storage=url, study_name=name)
    study.set_user_attr("metric", "val_hit5")
    study.set_user_attr("data", {"synthetic": {"users": 5}})
    attrs = {"config": json.dumps({"family": "gru", "d_model": 16, "seed": 0}), "n_params": 1000,
             "best_metrics": {"val_hit5": 0.5}}
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.5, user_attrs=attrs))


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


NAMES = [("../evil/x", "evil_x-rank1-trial0.yaml"), ("a/b", "a_b-rank1-trial0.yaml"),
         ("/abs/x", "abs_x-rank1-trial0.yaml"), (".hidden", "hidden-rank1-trial0.yaml"),
         ("..", "study-rank1-trial0.yaml"), ("ok-name_1.2", "ok-name_1.2-rank1-trial0.yaml")]


@pytest.mark.parametrize("name, file", NAMES)
@pytest.mark.parametrize("pareto", [False, True])
def test_export_lands_inside_out_whatever_the_study_name(tmp_path, capsys, name, file, pareto):
    (tmp_path / "db").mkdir()
    url = f"sqlite:///{tmp_path / 'db' / 'db.sqlite'}"
    one_trial_study(url, name)
    work = tmp_path / "work"
    out = work / "sub" / "ex"
    (out.parent / "evil").mkdir(parents=True)  # where "../evil/x" would land were the name taken as a path
    args = ["export", "--storage", url, "--study", name, "--out", str(out)] + (["--pareto"] if pareto else [])
    assert main(args) == 0, capsys.readouterr().err
    want = out / (file.replace("rank1", "pareto-1000params") if pareto else file)
    assert files_under(work) == [want]
    assert read_export(want)["study"] == name  # the YAML keeps the real name
    assert f"wrote {want}" in capsys.readouterr().out


@pytest.mark.ray
@pytest.mark.slow
def test_a_sweep_keeps_tunes_files_inside_dir_whatever_the_study_name(tmp_path):
    """Ray Tune's folder for the study (its pickles hold the storage URL) is named like the exports."""
    from search.sweep import SweepOptions, run_sweep
    space = tmp_path / "runs" / "space.yaml"
    space.parent.mkdir()
    space.write_text((Path(__file__).resolve().parents[1] / "spaces" / "quickstart.yaml").read_text())
    run_sweep(SweepOptions(space=str(space), study="../escaped", samples=1, dir=str(tmp_path / "runs")))
    assert not (tmp_path / "escaped").exists()
    assert list((tmp_path / "runs" / "escaped").glob("ray-*"))
