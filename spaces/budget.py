"""The hard parameter budget: exact counts (cached), the widest width that fits, and the
parameter-count range of a space.

Why fit the width instead of rejecting: pruning an over-budget sample teaches TPE that big
models are bad (optuna#2969) and pulls the search toward tiny nets, and rejection loops can spin.
Here the structural choices (family, depth, embeddings, head...) are sampled first; the width is
then searched as a fraction of the largest width that fits them, so every width the sampler
picks is feasible and "bigger" always means "closer to the budget", never "rejected".
"""

from __future__ import annotations

import math

from data_io import DatasetInfo
from models import ModelConfig, ModelError, count_params
from models.build import param_breakdown
from models.config import MODEL_KEYS
from spaces.schema import ParamSpec, Space, SpaceError


class ParamCounter:
    """count_params with a cache keyed by the model part of a config."""

    def __init__(self, info: DatasetInfo):
        self.info = info
        self.cache: dict[tuple, int] = {}
        self.calls = 0

    def __call__(self, config: dict) -> int:
        key = tuple(sorted((k, v) for k, v in config.items() if k in MODEL_KEYS))
        if key not in self.cache:
            self.calls += 1
            self.cache[key] = count_params({k: v for k, v in key}, self.info)
        return self.cache[key]

    def safe(self, config: dict) -> float:
        """Count, or infinity for a config the engine cannot build (e.g. heads not dividing width)."""
        try:
            return self(config)
        except ModelError:
            return math.inf


def width_grid(spec: ParamSpec, config: dict) -> list[int]:
    """The widths the spec allows that the engine can build with the other choices."""
    step = int(spec.step or 1)
    grid = range(int(spec.low), int(spec.high) + 1, step)
    mcfg = ModelConfig(**{k: v for k, v in config.items() if k in MODEL_KEYS})
    if spec.name == "d_model" and mcfg.uses_attention:
        return [w for w in grid if w % mcfg.heads == 0]
    return list(grid)


def widest_fit(grid: list[int], name: str, config: dict, max_params: int, count: ParamCounter) -> int:
    """Index of the largest grid width whose model fits; -1 if even the smallest does not.
    Counts grow with width, so a binary search needs about log2(len(grid)) exact counts."""
    lo, hi = -1, len(grid) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count.safe({**config, name: grid[mid]}) <= max_params:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _resolve(space: Space, pick: dict[str, object]) -> dict:
    """The config that `pick` gives, with conditional parameters applied in declared order."""
    config: dict = {}
    for p in space.params:
        if p.active(config):
            config[p.name] = pick[p.name]
    return config


def count_range(space: Space, count: ParamCounter) -> tuple[tuple[float, dict], tuple[float, dict]]:
    """((smallest count, its config), (largest count, its config)) by coordinate search over the
    extreme values of every parameter. Counts are monotone in the numeric parameters, so only
    the categorical interplay needs the search; two sweeps reach a fixed point in practice."""
    result = []
    for sign in (1, -1):
        pick = {p.name: p.values()[0 if sign > 0 else -1] for p in space.params}
        best = sign * count.safe(_resolve(space, pick))
        for _ in range(3):
            changed = False
            for p in space.params:
                for v in p.values():
                    trial = {**pick, p.name: v}
                    n = sign * count.safe(_resolve(space, trial))
                    if n < best:
                        best, pick, changed = n, trial, True
            if not changed:
                break
        result.append((sign * best, _resolve(space, pick)))
    return result[0], result[1]


def check_feasible(space: Space, count: ParamCounter) -> tuple[float, dict]:
    """Raise SpaceError before any sweep when even the smallest configuration is over budget."""
    (n_min, cfg), _ = count_range(space, count)
    if math.isinf(n_min):
        raise SpaceError(f"{space.path}: params: no configuration of the space can be built; check heads vs d_model")
    if space.max_params is not None and n_min > space.max_params:
        parts = ", ".join(f"{name} {n:,}" for name, n in param_breakdown(cfg, count.info)[:3])
        shown = ", ".join(f"{k}={v}" for k, v in cfg.items() if k in MODEL_KEYS)
        raise SpaceError(
            f"{space.path}: budget.max_params: {space.max_params:,} is impossible: the smallest configuration "
            f"has {int(n_min):,} parameters ({shown}); largest parts: {parts}. "
            f"Raise the budget or shrink the ranges of those parameters")
    return n_min, cfg
