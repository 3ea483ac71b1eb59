"""Simulated trials (`nextsweep sweep --simulate`): the whole sweep (driver, searcher, budget
check, study writes, ASHA, progress, checkpoints, summary, export) with `fit()` replaced by a
stand-in that sleeps `epoch_seconds` per epoch and reports a learning curve computed from the
config. It measures the machinery at scale on a laptop (sleeping trials need no CPU: declare
many with --local-cpus) and dry-runs a cluster before a weekend's sweep, training nothing.

The curve is a deterministic function of the sampled config and its seed (`simulated_curve`):
each parameter adds a smooth bump (numbers, by their log) or a fixed offset (choices), whose
sum sets the asymptote; a rate from the config's hash sets how fast it is reached, so curves
cross and ASHA has something to get wrong; seeded noise rides on top. The study is marked
simulated, and retrain, confirm and predict refuse it: its figures are never results.

This module imports neither torch nor the models: a simulated worker stays small.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import tempfile
import time
from pathlib import Path

import ray
from ray import tune

SIM_FILE = "simulated.json"  # the checkpoint: the curve so far, so a retried trial resumes
NOISE = 0.01  # std of the per-epoch noise on the simulated metric


def _unit(*parts) -> float:
    """A number in [0, 1) fixed by `parts` (a hash: the same on every machine and run)."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _effect(key: str, value) -> float:
    """One parameter's share of the asymptote's logit: a bump over log|value| for numbers (its
    best region and width fixed by the key), a fixed offset in [-1, 1] for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 2 * _unit(key, value) - 1
    x = math.log10(abs(value) + 1e-12)
    best, width = 4 * _unit(key, "best") - 2, 0.5 + _unit(key, "width")
    return 1.5 * math.exp(-((x - best) / width) ** 2) - 0.5


def simulated_curve(engine: dict, epochs: int) -> list[float]:
    """The value in (0, 1) of each epoch 1..epochs: q (1 - exp(-r e)) + noise, where q is the
    asymptote from the config's parameters and r its rate; `seed`, `epochs` and `metric` of the
    config do not shape it, except that the seed draws the noise."""
    shaping = {k: v for k, v in sorted(engine.items()) if k not in ("seed", "epochs", "metric")}
    q = 1 / (1 + math.exp(-0.6 * sum(_effect(k, v) for k, v in shaping.items())))
    rate = 0.1 + 0.9 * _unit(shaping, "rate")
    noise = random.Random(f"{engine.get('seed', 0)}:{json.dumps(shaping, sort_keys=True, default=str)}")
    return [min(0.999, max(0.001, q * (1 - math.exp(-rate * e)) + noise.gauss(0, NOISE))) for e in range(1, epochs + 1)]


def simulate_trial(config: dict) -> None:
    """The Tune trainable of a simulated trial: config as train_trial's, plus "n_params" (the
    searcher's count), "epoch_seconds" and "minimized" (whether the objective is lower-better).
    An epoch on a share of the data ("fractions") sleeps that share of epoch_seconds."""
    entered, start = time.time(), time.perf_counter()
    engine, at = config["engine"], config.get("checkpoint_at")
    metric, epochs = engine.get("metric", "val_hit5"), int(engine.get("epochs", 1))
    as_reported = lambda v: 1 - v if config.get("minimized") else v  # noqa: E731  (lower-better: 1 - value)
    curve = simulated_curve(engine, epochs)
    node = ray.get_runtime_context().get_node_id()
    shares = list(config.get("fractions") or [])
    for e in range(_resumed(tune.get_checkpoint()) + 1, epochs + 1):
        share = shares[e - 1] if e <= len(shares) else 1.0
        time.sleep(float(config.get("epoch_seconds", 0.0)) * share)
        best = max(range(1, e + 1), key=lambda k: (curve[k - 1], -k))  # the first best epoch so far
        result = {metric: as_reported(curve[e - 1]), "epoch": e, "best_epoch": best,
                  f"best_{metric}": as_reported(curve[best - 1]), "last": e == epochs,
                  "n_params": config.get("n_params", 0), "wall_s": time.perf_counter() - start, "samples_s": 0.0,
                  "node_id": node, "reported_at": time.time(), "started_at": entered,
                  **({"train_fraction": share} if shares else {})}
        if at is None or e in at or e == epochs:
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / SIM_FILE).write_text(json.dumps({"epoch": e}))
                tune.report(result, checkpoint=tune.Checkpoint.from_directory(tmp))
        else:
            tune.report(result)


def _resumed(checkpoint: tune.Checkpoint | None) -> int:
    """Epochs a retried trial already reported (its checkpoint), else 0."""
    if checkpoint is None:
        return 0
    with checkpoint.as_directory() as path:
        return int(json.loads((Path(path) / SIM_FILE).read_text())["epoch"])
