"""A fit resumed from an epoch's resume state, and a retried trial resumed from its Tune
checkpoint, give exactly what an uninterrupted run gives (no Ray cluster needed)."""

import shutil
from types import SimpleNamespace

import pytest
import torch
from ray import tune

import search.trainable as trainable
from data_io import load_dataset
from models import fit

TIMING = ("epoch_s", "samples_s", "wall_s", "reported_at", "started_at")  # the only values allowed to differ between runs


@pytest.fixture(scope="module")
def data(synth_dir):
    return load_dataset(synth_dir)


@pytest.fixture(autouse=True)
def one_thread():
    """Bit-for-bit equality holds for the same thread count; one is also what a 1-CPU trial uses
    (train_trial sets it for the process, so it is put back after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def untimed(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


# dropout draws from torch's RNG, the balanced sampler and batch order from numpy's; onecycle and
# cosine have scheduler state; the third overfits and stops by patience at epoch 4 of 6.
@pytest.mark.parametrize("cfg", [
    {"family": "gru", "dropout": 0.2, "schedule": "cosine"},
    {"family": "transformer", "heads": 2, "dropout": 0.1, "sampler": "balanced", "schedule": "onecycle"},
    {"family": "lstm", "schedule": "constant", "lr": 2e-2, "metric": "val_loss", "patience": 1, "epochs": 6},
])
def test_resumed_fit_equals_an_uninterrupted_fit(data, cfg, tmp_path):
    cfg = {"d_model": 32, "layers": 1, "batch_size": 64, "epochs": 4, "seed": 7, **cfg}
    full = fit(cfg, data)
    saved = []
    first = fit(cfg, data, on_epoch=lambda r: saved.append(r.resume_state()) or r.epoch == 2)
    assert first.epochs_run == 2
    torch.save(saved[-1], tmp_path / "state.pt")  # what a checkpoint holds, loaded the safe way
    rest = fit(cfg, data, resume=torch.load(tmp_path / "state.pt", weights_only=True))
    assert untimed(rest.history) == untimed(full.history)  # bit for bit, epochs 1-2 kept, 3-4 recomputed
    assert (rest.best_epoch, rest.epochs_run, rest.stopped_by) == (full.best_epoch, full.epochs_run, full.stopped_by)
    assert all(torch.equal(rest.state_dict[k], v) for k, v in full.state_dict.items())


@pytest.mark.parametrize("stop", [{"epochs": 2}, {"epochs": 10, "patience": 1, "metric": "val_loss", "lr": 2e-2}])
def test_resume_after_the_last_epoch_trains_nothing(data, stop):
    # The last epoch's result was reported but the trial died before closing: the retry ends at once.
    cfg = {"family": "lstm", "d_model": 32, "layers": 1, "batch_size": 64, "schedule": "constant", "seed": 7, **stop}
    saved = []
    full = fit(cfg, data, on_epoch=lambda r: saved.append(r.resume_state()))
    assert full.stopped_by == ("patience" if "patience" in stop else "epochs")
    again = fit(cfg, data, resume=saved[-1], on_epoch=lambda r: pytest.fail("trained another epoch"))
    assert untimed(again.history) == untimed(full.history)
    assert (again.best_epoch, again.stopped_by) == (full.best_epoch, full.stopped_by)


class Died(Exception):
    """The worker node going away mid-trial."""


def run_trial(monkeypatch, out, data, config, checkpoint=None, die_after=None, start_from=None):
    """train_trial under a stand-in Tune session: returns (results, checkpoint dirs kept in out)."""
    results, kept = [], []

    def report(result, checkpoint=None):
        if checkpoint is not None:  # Tune persists it before the trainable's temp dir goes
            kept.append(shutil.copytree(checkpoint.path, out / f"epoch{result['epoch']}"))
        results.append(result)
        if result["epoch"] == die_after:
            raise Died

    fake_tune = SimpleNamespace(report=report, get_checkpoint=lambda: checkpoint, Checkpoint=tune.Checkpoint)
    monkeypatch.setattr(trainable, "tune", fake_tune)
    monkeypatch.setattr(trainable, "ray", SimpleNamespace(get_runtime_context=lambda: SimpleNamespace(get_node_id=lambda: "n")))
    try:
        trainable.train_trial(config, data, start_from=start_from)
    except Died:
        pass
    return results, kept


def test_retried_trial_resumes_from_its_checkpoint(monkeypatch, tmp_path, data):
    config = {"engine": {"family": "gru", "d_model": 24, "layers": 1, "batch_size": 64, "epochs": 5, "seed": 11,
                         "dropout": 0.1}, "cpus": 1}
    whole, _ = run_trial(monkeypatch, tmp_path / "whole", data, config)
    before, kept = run_trial(monkeypatch, tmp_path / "before", data, config, die_after=2)
    assert [r["epoch"] for r in before] == [1, 2] and len(kept) == 2  # every reported epoch checkpointed
    after, kept = run_trial(monkeypatch, tmp_path / "after", data, config, checkpoint=tune.Checkpoint.from_directory(kept[-1]))
    assert [r["epoch"] for r in after] == [3, 4, 5]  # resumed, not restarted
    assert untimed(before + after) == untimed(whole)
    assert after[-1]["wall_s"] > before[-1]["wall_s"]  # the first attempt's time still counts
    best = torch.load(kept[-1] / trainable.CHECKPOINT_FILE, weights_only=True)
    assert best["epoch"] == whole[-1]["best_epoch"] and best["config"] == config["engine"]
    expected = fit(config["engine"], data).state_dict
    assert all(torch.equal(best["state_dict"][k], v) for k, v in expected.items())


def test_a_new_trial_continues_another_trials_checkpoint(monkeypatch, tmp_path, data):
    """The one-epoch baseline of bench/search_efficiency.py: a config screened for one epoch is
    trained on by a new trial (no Tune checkpoint of its own), as if it had never stopped."""
    config = {"engine": {"family": "gru", "d_model": 24, "layers": 1, "batch_size": 64, "epochs": 4, "seed": 5},
              "cpus": 1}
    whole, _ = run_trial(monkeypatch, tmp_path / "whole", data, config)
    screen, kept = run_trial(monkeypatch, tmp_path / "screen", data, config, die_after=1)
    first_epoch = tune.Checkpoint.from_directory(kept[0])
    rest, _ = run_trial(monkeypatch, tmp_path / "rest", data, config, start_from=first_epoch)
    assert [r["epoch"] for r in rest] == [2, 3, 4]
    assert untimed(screen + rest) == untimed(whole)


def test_without_retries_checkpoints_are_written_at_the_rungs_and_the_end(monkeypatch, tmp_path, data):
    config = {"engine": {"family": "gru", "d_model": 24, "layers": 1, "batch_size": 64, "epochs": 5, "seed": 11},
              "cpus": 1, "checkpoint_at": [2, 4]}  # ASHA's rungs (search.asha.rung_epochs)
    results, kept = run_trial(monkeypatch, tmp_path / "rungs", data, config)
    assert [r["epoch"] for r in results] == [1, 2, 3, 4, 5]
    assert [p.name for p in kept] == ["epoch2", "epoch4", "epoch5"]
    best = torch.load(kept[-1] / trainable.CHECKPOINT_FILE, weights_only=True)
    assert best["epoch"] == results[-1]["best_epoch"]  # the best model is still kept


def test_rung_epochs_are_ashas_milestones():
    from search.asha import rung_epochs
    from search.asha.scheduler import RecordingASHA
    assert rung_epochs(RecordingASHA(time_attr="epoch", max_t=12, grace_period=2, reduction_factor=3)) == [2, 6]
    assert rung_epochs(RecordingASHA(time_attr="epoch", max_t=6, grace_period=1, reduction_factor=2)) == [1, 2, 4]
    # Hyperband-style brackets (asha.brackets): the second one's first rung is at grace * reduction (3)
    from search.asha import make_asha
    from spaces.schema import Asha
    asha = make_asha(Asha(max_epochs=12, grace_period=1, reduction_factor=3, brackets=2))
    assert len(asha._brackets) == 2 and rung_epochs(asha) == [1, 3, 9]


def test_bracket_choice_is_seeded():
    """With several brackets, the same seed puts the same trials in the same brackets, whatever
    numpy's global random state, which the choice leaves as it found it."""
    from types import SimpleNamespace

    import numpy as np

    from search.asha import make_asha
    from spaces.schema import Asha

    def brackets(seed, global_seed):
        asha = make_asha(Asha(max_epochs=27, grace_period=1, reduction_factor=3, brackets=3), seed=seed)
        asha.set_search_properties("m", "max")
        np.random.seed(global_seed)
        before = np.random.get_state()[1].copy()
        for i in range(40):
            asha.on_trial_add(None, SimpleNamespace(trial_id=f"t{i}"))
        assert (np.random.get_state()[1] == before).all()
        return [asha._brackets.index(asha._trial_info[f"t{i}"]) for i in range(40)]

    first = brackets(seed=5, global_seed=1)
    assert brackets(seed=5, global_seed=2) == first
    assert len(set(first)) > 1  # the choice is drawn, not constant
    assert brackets(seed=6, global_seed=1) != first
