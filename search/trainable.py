"""The Tune function trainable: one trial = one `models.fit`, reporting every epoch. A checkpoint
holds the best epoch's weights and the latest epoch's full training state (a trial Tune retries
after a worker died resumes, not restarts). It is written where it can matter: at every epoch
when Tune may retry trials (--max-failures), else at ASHA's rungs (where a trial may be stopped:
its best model so far is kept) and at the last epoch. Tune reuses the worker between trials
(reuse_actors), so nothing here may outlive one call."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import ray
import torch
from ray import tune

from data_io import Dataset
from models import EpochReport, count_params, fit
from models.native import runtime_facts

CHECKPOINT_FILE = "model.pt"  # {"state_dict": best epoch's weights, "config", "epoch": best epoch}
RESUME_FILE = "resume.pt"  # {"fit": EpochReport.resume_state() of the latest epoch, "wall_s"}
# A test hook, "EPOCH:DIR": each trial waits after reporting EPOCH until DIR/<its Ray trial id> or
# DIR/all exists, so a test kills a driver or a node at a point it chose, not between two polls.
HOLD_ENV = "NEXTSWEEP_HOLD"


def should_checkpoint(rep: EpochReport, at: list[int] | None) -> bool:
    """When an epoch's result carries a checkpoint: every epoch when `at` is None (a retry then
    resumes right after the last result Tune and the searcher saw), else at the epochs `at`
    lists and the last one. The trial keeps only the newest checkpoint (search/checkpoints.py)."""
    return at is None or rep.last or rep.epoch in at


def train_trial(config: dict, data: Dataset, start_from: tune.Checkpoint | None = None) -> None:
    """config = {"engine": flat engine config, "cpus": CPUs of this trial, "checkpoint_at":
    epochs to checkpoint, or None for every epoch, and with asha.fidelity data "fractions": the
    share of the training samples of each epoch}; data comes zero-copy from the Ray object
    store (tune.with_parameters). `start_from`: another trial's checkpoint of the same engine
    config to continue from (bench/search_efficiency.py's one-epoch baseline); a retry's own
    checkpoint comes first."""
    entered = time.time()  # wall clock: when the worker began this trial (bench/sweep_overhead.py)
    torch.set_num_threads(max(1, int(config.get("cpus", 1))))
    facts = runtime_facts()  # this worker's kernel path, CPU and threads: the searcher records them
    engine = config["engine"]
    metric = engine.get("metric", "val_hit5")
    n_params = count_params(engine, data.info)
    resume, spent = load_resume(tune.get_checkpoint() or start_from)
    start = time.perf_counter() - spent  # wall_s counts the earlier attempts' epochs too
    node = ray.get_runtime_context().get_node_id()  # which cluster node ran it
    history: list[float] = [h[metric] for h in resume["history"]] if resume else []

    def on_epoch(rep: EpochReport) -> None:
        history.append(rep.metrics[metric])
        best = history[rep.best_epoch - 1]
        result = {**rep.metrics, "best_epoch": rep.best_epoch, f"best_{metric}": best, "last": rep.last,
                  "n_params": n_params, "wall_s": time.perf_counter() - start, "node_id": node,
                  "reported_at": time.time(), "started_at": entered, **facts}  # wall clock: this epoch's end
        if not should_checkpoint(rep, config.get("checkpoint_at")):
            tune.report(result)
            hold(rep.epoch)
            return
        state = rep.resume_state()
        with tempfile.TemporaryDirectory() as tmp:
            torch.save({"state_dict": state["best_state"], "config": engine, "epoch": state["best_epoch"],
                        "fold_states": [run["best_state"] for run in state["runs"]]},  # one model per CV fold
                       Path(tmp) / CHECKPOINT_FILE)
            torch.save({"fit": state, "wall_s": result["wall_s"]}, Path(tmp) / RESUME_FILE)
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(tmp))
        hold(rep.epoch)

    fit(engine, data, on_epoch=on_epoch, resume=resume, fractions=config.get("fractions"))


def hold(epoch: int) -> None:
    """Waits here, after the epoch's result (and checkpoint) went to the driver, where HOLD_ENV asks."""
    spec = os.environ.get(HOLD_ENV)
    if not spec or epoch != int(spec.split(":", 1)[0]):
        return
    folder = Path(spec.split(":", 1)[1])
    me = folder / tune.get_context().get_trial_id()
    while not (me.exists() or (folder / "all").exists()):
        time.sleep(0.2)


def load_resume(checkpoint: tune.Checkpoint | None) -> tuple[dict | None, float]:
    """(the fit state to resume, seconds already spent) from a trial's checkpoint, or (None, 0)."""
    if checkpoint is None:
        return None, 0.0
    with checkpoint.as_directory() as path:
        saved = torch.load(Path(path) / RESUME_FILE, weights_only=True, map_location="cpu")
    return saved["fit"], float(saved["wall_s"])
