"""`retrain` trains its seeds at once, each in its own process with the trial's threads: the
figures and the kept model are those of a run of one seed after another."""

import torch
import yaml

from search.export import EXPORT_VERSION
from search.retrain import default_jobs, retrain

CONFIG = {"family": "gru", "d_model": 16, "layers": 1, "batch_size": 64, "dropout": 0.1, "epochs": 2, "lr": 3e-3,
          "metric": "val_hit5", "seed": 4}


def test_parallel_seeds_equal_sequential_ones(synth_dir, tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump({"nextsweep_export": EXPORT_VERSION, "data": {"path": str(synth_dir)},
                                    "threads": 1, "config": CONFIG}))
    one = retrain(path, 3, tmp_path / "one", jobs=1)
    many = retrain(path, 3, tmp_path / "many", jobs=3)
    drop = lambda r: [{k: v for k, v in run.items() if k != "seconds"} for run in r["runs"]]  # noqa: E731
    assert [r["seed"] for r in many["runs"]] == [4, 5, 6]
    assert drop(many) == drop(one)
    assert many["test"] == one["test"]
    assert len({r["val"]["val_hit5"] for r in one["runs"]}) > 1  # the seeds differ: the comparison means something
    kept = [torch.load(tmp_path / d / "best_model.pt", weights_only=True) for d in ("one", "many")]
    assert kept[0]["seed"] == kept[1]["seed"]
    assert all(torch.equal(a, b) for a, b in zip(kept[0]["state_dict"].values(), kept[1]["state_dict"].values()))


def test_default_jobs_runs_every_seed_up_to_twice_the_cpus(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda _: {0, 1})
    assert default_jobs(3, 1) == 3  # three one-thread seeds share two cores
    assert default_jobs(9, 1) == 4
    assert default_jobs(3, 2) == 2
    assert default_jobs(1, 1) == 1


def test_jobs_below_one_is_refused(tmp_path, capsys):
    from search.cli import main
    assert main(["retrain", str(tmp_path / "e.yaml"), "--jobs", "0"]) == 2
    assert capsys.readouterr().err.strip() == "nextsweep: error: --jobs 0: must be >= 1"
