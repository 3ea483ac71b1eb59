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
from dataclasses import asdict

from data_io import DatasetInfo
from models import ModelConfig, ModelError, count_params
from models.build import param_breakdown
from models.config import MODEL_KEYS
from spaces.facts import COUNT_FREE, SpaceError
from spaces.schema import ParamSpec, Space


class ParamCounter:
    """count_params with a cache keyed by the model's structure (the keys that change the count)."""

    def __init__(self, info: DatasetInfo):
        self.info = info
        self.cache: dict[tuple, int] = {}
        self.widest: dict[tuple, int] = {}  # widest_fit's answers, by the structure without its width
        self.calls = 0  # exact counts (a model built on the meta device)
        self.hits = 0
        self.last_refusal = ""  # the engine's reason for the last config it could not build

    def __call__(self, config: dict) -> int:
        model = ModelConfig(**{k: v for k, v in config.items() if k in MODEL_KEYS})
        model.check()  # cheap, and keeps errors exact: heads must still divide d_model on a cache hit
        key = tuple((k, v) for k, v in asdict(model).items() if k not in COUNT_FREE)
        if key in self.cache:
            self.hits += 1
        else:
            self.calls += 1
            self.cache[key] = count_params(model, self.info)
        return self.cache[key]

    def safe(self, config: dict) -> float:
        """Count, or infinity for a config the engine cannot build (e.g. heads not dividing width);
        the last such refusal is kept, for the error when no config can be built."""
        try:
            return self(config)
        except ModelError as exc:
            self.last_refusal = str(exc)
            return math.inf


def int_grid(spec: ParamSpec) -> list[int]:
    """Every value Optuna can suggest for an int parameter: its step grid."""
    return list(range(int(spec.low), int(spec.high) + 1, int(spec.step or 1)))


def width_grid(spec: ParamSpec, config: dict) -> list[int]:
    """The widths the spec allows that the engine can build with the other choices."""
    grid = int_grid(spec)
    mcfg = ModelConfig(**{k: v for k, v in config.items() if k in MODEL_KEYS})
    if spec.name == "d_model" and mcfg.uses_attention:
        return [w for w in grid if w % mcfg.heads == 0]
    return grid


def widest_fit(grid: list[int], name: str, config: dict, max_params: int, count: ParamCounter) -> int:
    """Index of the largest grid width whose model fits; -1 if even the smallest does not.
    Counts grow with width, so a binary search needs about log2(len(grid)) exact counts; a
    structure seen before (same count-changing choices and grid) needs none."""
    structure = tuple(sorted((k, v) for k, v in config.items() if k in MODEL_KEYS and k != name and k not in COUNT_FREE))
    key = (structure, tuple(grid), max_params)
    if key not in count.widest:
        count.widest[key] = _widest_fit(grid, name, config, max_params, count)
    return count.widest[key]


def _widest_fit(grid: list[int], name: str, config: dict, max_params: int, count: ParamCounter) -> int:
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


def _is_width(space: Space, p: ParamSpec) -> bool:
    return p.kind == "int" and p.name in (space.width, "d_model")


def _values(p: ParamSpec) -> list:
    """What the range search tries: a model int's whole step grid (its count need not be monotone:
    emb_dim 0 means d_model), a training int's grid ends, else the listed or extreme values."""
    if p.kind != "int":
        return p.values()
    grid = int_grid(p)
    return grid if p.name in MODEL_KEYS else [grid[0], grid[-1]]


def _complete(space: Space, pick: dict[str, object], largest: bool) -> dict | None:
    """The config `pick` gives, each width set to its smallest or largest value that can be built
    with the other choices (counts grow with the width, and heads must divide d_model).
    None when some width has no buildable value."""
    config = _resolve(space, pick)
    for p in space.params:
        if p.name in config and _is_width(space, p):
            grid = width_grid(p, config)
            if not grid:
                return None
            config[p.name] = grid[-1 if largest else 0]
    return config


def _extreme(space: Space, count: ParamCounter, largest: bool, starts: list[dict]) -> tuple[float, dict, dict]:
    """(count, config, pick) of the smallest (largest) buildable config by coordinate search from
    the best of `starts`: every categorical choice and every value of an int step grid is tried;
    widths follow the other choices (see _complete). Two sweeps reach a fixed point in practice."""
    sign = -1 if largest else 1

    def score(pick: dict) -> tuple[float, dict | None]:  # lower is better; unbuildable is worst
        config = _complete(space, pick, largest)
        n = math.inf if config is None else count.safe(config)
        return (math.inf if math.isinf(n) else sign * n), config

    pick = min(starts, key=lambda s: score(s)[0])
    best, config = score(pick)
    for _ in range(3):
        changed = False
        for p in space.params:
            if _is_width(space, p):
                continue
            for v in _values(p):
                trial = {**pick, p.name: v}
                n, cfg = score(trial)
                if n < best:
                    best, pick, config, changed = n, trial, cfg, True
        if not changed:
            break
    if math.isinf(best):
        return math.inf, _resolve(space, pick), pick
    return sign * best, config, pick


def count_range(space: Space, count: ParamCounter) -> tuple[tuple[float, dict], tuple[float, dict]]:
    """((smallest count, its config), (largest count, its config)) over the configs the engine
    can build; a count is infinite only when no config can be built."""
    first = {p.name: _values(p)[0] for p in space.params}
    last = {p.name: _values(p)[-1] for p in space.params}
    n_min, cmin, pmin = _extreme(space, count, False, [first])
    n_max, cmax, _ = _extreme(space, count, True, [last, pmin])  # pmin: a buildable start if any
    return (n_min, cmin), (n_max, cmax)


def check_feasible(space: Space, count: ParamCounter) -> tuple[float, dict]:
    """Raise SpaceError before any sweep when even the smallest configuration is over budget."""
    (n_min, cfg), _ = count_range(space, count)
    if math.isinf(n_min):
        why = count.last_refusal or "check heads vs d_model"
        raise SpaceError(f"{space.path}: params: no configuration of the space can be built ({why})")
    if space.max_params is not None and n_min > space.max_params:
        parts = ", ".join(f"{name} {n:,}" for name, n in param_breakdown(cfg, count.info)[:3])
        shown = ", ".join(f"{k}={v}" for k, v in cfg.items() if k in MODEL_KEYS)
        raise SpaceError(
            f"{space.path}: budget.max_params: {space.max_params:,} is impossible: the smallest configuration "
            f"has {int(n_min):,} parameters ({shown}); largest parts: {parts}. "
            f"Raise the budget or shrink the ranges of those parameters")
    return n_min, cfg
