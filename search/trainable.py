"""The Tune function trainable: one trial = one `models.fit`, reporting every epoch and
checkpointing the best epoch's weights through Tune, so the best model is never lost."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import ray
import torch
from ray import tune

from data_io import Dataset
from models import EpochReport, count_params, fit

CHECKPOINT_FILE = "model.pt"


def train_trial(config: dict, data: Dataset) -> None:
    """config = {"engine": flat engine config, "cpus": CPUs of this trial}; data comes zero-copy
    from the Ray object store (tune.with_parameters)."""
    torch.set_num_threads(max(1, int(config.get("cpus", 1))))
    engine = config["engine"]
    metric = engine.get("metric", "val_hit5")
    n_params = count_params(engine, data.info)
    start = time.perf_counter()
    node = ray.get_runtime_context().get_node_id()  # which cluster node ran it
    history: list[float] = []

    def on_epoch(rep: EpochReport) -> None:
        history.append(rep.metrics[metric])
        best = history[rep.best_epoch - 1]
        result = {**rep.metrics, "best_epoch": rep.best_epoch, f"best_{metric}": best, "last": rep.last,
                  "n_params": n_params, "wall_s": time.perf_counter() - start, "node_id": node}
        if not rep.is_best:
            tune.report(result)
            return
        with tempfile.TemporaryDirectory() as tmp:
            torch.save({"state_dict": rep.model.state_dict(), "config": engine, "epoch": rep.epoch},
                       Path(tmp) / CHECKPOINT_FILE)
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(tmp))

    fit(engine, data, on_epoch=on_epoch)
