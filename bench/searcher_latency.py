"""Searcher latency: milliseconds per suggestion (Optuna ask + the space's proposal with its exact
budget check + the user attributes the sweep writes) against the number of finished trials in
the study, in SQLite and in a PostgreSQL study, side by side in one run:

- nextsweep: `make_sampler("tpe")` (ColumnTPE) on `open_storage` (SQLite WAL / PostgreSQL
  synchronous_commit=off);
- stock: Optuna's TPESampler (same options) on a plain RDBStorage (every commit waits for the disk).

Both use the same budget check, whose median is reported apart (`budget_ms`). Its structure cache
is warm, as in a long sweep whose searcher proposed the history itself (after a --resume it
starts cold). Targets: < 30 ms per suggestion at 5,000 trials, budget check < 2 ms.

    .venv/bin/python bench/searcher_latency.py [--sizes 0 100 1000 5000] [--postgres URL]

Without --postgres it starts a throw-away PostgreSQL server (Debian's package) on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from data_io.geolife import GEOLIFE_SHAPE  # noqa: E402
from search.storage import open_storage  # noqa: E402
from search.sweep import make_sampler  # noqa: E402
from spaces import CompiledSpace, load_space  # noqa: E402

INFO = GEOLIFE_SHAPE
SPACE = Path(__file__).resolve().parents[1] / "spaces" / "geolife_500k.yaml"


def history(n: int, compiled: CompiledSpace, seed: int = 0) -> list[optuna.trial.FrozenTrial]:
    """n finished trials drawn from the space (random sampler, values from a stand-in)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))
    rng = random.Random(seed)
    for _ in range(n):
        trial = study.ask()
        p = compiled.propose(trial)
        study.tell(trial, p.n_params / 5e5 + rng.gauss(0, 0.05))
    return study.get_trials()


def measure(storage, sampler, name: str, past: list, asks: int, compiled: CompiledSpace) -> tuple[float, float]:
    """(median ms per suggestion, median ms of its budget check)."""
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize", sampler=sampler)
    study.add_trials(past)
    times, budget = [], []
    for i in range(asks):
        start = time.perf_counter()
        trial = study.ask()
        p = compiled.propose(trial)
        for key, value in {"config": json.dumps(p.config), "n_params": p.n_params, "fingerprint": "x" * 64}.items():
            trial.set_user_attr(key, value)
        times.append(time.perf_counter() - start)
        budget.append(p.budget_seconds)
        study.tell(trial, p.n_params / 5e5)
    return 1000 * statistics.median(times), 1000 * statistics.median(budget)


def stock_sampler() -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=0, multivariate=True, constant_liar=True)


def start_postgres():
    from pgserver import postgres_server  # the tests' throw-away server
    ctx = postgres_server()
    return ctx.__enter__(), ctx


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[0, 100, 1000, 5000])
    ap.add_argument("--asks", type=int, default=30, help="suggestions timed per point (median kept)")
    ap.add_argument("--postgres", help="PostgreSQL URL (default: start a throw-away server)")
    ap.add_argument("--out", default="bench/out/searcher_latency.json")
    a = ap.parse_args()
    compiled = CompiledSpace(load_space(SPACE), INFO)
    past = history(max(a.sizes), compiled)
    tmp = Path("bench/out")
    tmp.mkdir(parents=True, exist_ok=True)
    pg, gen = (a.postgres, None) if a.postgres else start_postgres()
    rows = []
    try:
        for size in a.sizes:
            row = {"trials": size}
            for db_kind in ("sqlite", "postgres"):
                for side in ("nextsweep", "stock"):
                    if db_kind == "sqlite":
                        db = tmp / f"latency-{size}-{side}.db"
                        for f in tmp.glob(db.name + "*"):
                            f.unlink()
                        url = f"sqlite:///{db}"
                    else:
                        url = pg
                    storage = open_storage(url) if side == "nextsweep" else optuna.storages.RDBStorage(url)
                    sampler = make_sampler("tpe", 0) if side == "nextsweep" else stock_sampler()
                    ms, budget_ms = measure(storage, sampler, f"lat{size}-{side}-{time.time_ns()}", past[:size],
                                            a.asks, compiled)
                    row[f"{db_kind}_{side}_ms"] = ms
                    row[f"{db_kind}_{side}_budget_ms"] = budget_ms
            rows.append(row)
            print(f"{size:>6} trials: SQLite {row['sqlite_nextsweep_ms']:7.1f} ms (stock {row['sqlite_stock_ms']:7.1f})   "
                  f"PostgreSQL {row['postgres_nextsweep_ms']:7.1f} ms (stock {row['postgres_stock_ms']:7.1f})   "
                  f"budget check {row['sqlite_nextsweep_budget_ms']:.2f} / {row['postgres_nextsweep_budget_ms']:.2f} ms",
                  flush=True)
    finally:
        if gen is not None:
            gen.__exit__(None, None, None)
    Path(a.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
