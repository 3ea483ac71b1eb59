"""Searcher latency: milliseconds per suggestion (Optuna ask + the space's proposal with its exact
budget check + the user attributes the sweep writes) against the number of finished trials in
the study, in SQLite and in a PostgreSQL study, side by side in one run:

- nextsweep: `make_sampler("tpe")` (ColumnTPE) on `open_storage` (SQLite WAL / PostgreSQL
  synchronous_commit=off);
- stock: Optuna's TPESampler (same options) on a plain RDBStorage (every commit waits for the disk).

Both use the same budget check, whose median is reported apart (`budget_ms`). Its structure cache
is warm, as in a long sweep whose searcher proposed the history itself (after a --resume it
starts cold). Targets: < 30 ms per suggestion at 5,000 trials, budget check < 2 ms.

    .venv/bin/python bench/searcher_latency.py [--sizes 0 100 1000 5000] [--asks 30]

Each study gets its own database: a throw-away PostgreSQL server (Debian's package) on 127.0.0.1,
or a new SQLite file; the history is loaded in one transaction (`storage.insert_trials`), then
planner statistics are refreshed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import time
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from data_io.geolife import GEOLIFE_SHAPE  # noqa: E402
from search.storage import insert_trials, open_storage  # noqa: E402
from search.samplers import make_sampler  # noqa: E402
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


def measure(storage, sampler, name: str, past: list, asks: int, compiled: CompiledSpace,
            searcher: bool) -> tuple[float, float]:
    """(median ms per suggestion, median ms of its budget check). With `searcher`, the sweep's own
    path (BudgetSearcher.suggest: ask, propose, every attribute the sweep writes); else the usual
    glue: ask, propose, three attributes written one by one."""
    from search.asha.scheduler import RecordingASHA
    from search.searcher import BudgetSearcher
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize", sampler=sampler)
    insert_trials(study, past)  # one transaction (Optuna's add_trials is quadratic on PostgreSQL)
    if hasattr(storage, "engine"):  # a database, not the in-memory study
        analyze(storage)
    ours = BudgetSearcher(study, compiled, RecordingASHA(time_attr="epoch", max_t=12), seed=0, cpus=1.0,
                          attrs={"fingerprint": "x" * 64, "code_version": "bench"}, orphans=[])
    times, budget = [], []
    for i in range(asks):
        start = time.perf_counter()
        if searcher:
            ours.suggest(f"t{i}")
            trial, p = ours.live[f"t{i}"], None
        else:
            trial = study.ask()
            p = compiled.propose(trial)
            for key, value in {"config": json.dumps(p.config), "n_params": p.n_params, "fingerprint": "x" * 64}.items():
                trial.set_user_attr(key, value)
        times.append(time.perf_counter() - start)
        budget.append(ours.budget_s[-1] if searcher else p.budget_seconds)
        study.tell(trial, float(trial.user_attrs["n_params"]) / 5e5)
        ours.live.clear()
    return 1000 * statistics.median(times), 1000 * statistics.median(budget)


def stock_sampler() -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=0, multivariate=True, constant_liar=True)


def analyze(storage) -> None:
    """Fresh planner statistics after the history was loaded in bulk (a live database's
    autovacuum keeps them; without them PostgreSQL plans Optuna's per-parameter query badly)."""
    import sqlalchemy
    with storage.engine.connect() as conn:
        conn.execute(sqlalchemy.text("ANALYZE"))
        conn.commit()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[0, 100, 1000, 5000])
    ap.add_argument("--asks", type=int, default=30, help="suggestions timed per point (median kept)")
    ap.add_argument("--db", nargs="+", choices=["memory", "sqlite", "postgres"],
                    default=["sqlite", "postgres"], help="memory: an in-memory study (no database), for the profile")
    ap.add_argument("--out", default="bench/out/searcher_latency.json")
    a = ap.parse_args()
    compiled = CompiledSpace(load_space(SPACE), INFO)
    past = history(max(a.sizes), compiled)
    tmp = Path("bench/out")
    tmp.mkdir(parents=True, exist_ok=True)
    from pgserver import postgres_server  # the tests' throw-away server (Debian's package)
    rows = []
    for size in a.sizes:
        row = {"trials": size}
        for db_kind in a.db:
            for side in ("nextsweep", "stock"):
                with contextlib.ExitStack() as stack:  # one database per study: no study slows another
                    if db_kind == "memory":  # no database: what the sampler and the searcher cost alone
                        url = None
                    elif db_kind == "sqlite":
                        db = tmp / f"latency-{size}-{side}.db"
                        for f in tmp.glob(db.name + "*"):
                            f.unlink()
                        url = f"sqlite:///{db}"
                    else:
                        url = stack.enter_context(postgres_server())
                    if url is None:
                        storage = optuna.storages.InMemoryStorage()
                    else:
                        storage = open_storage(url) if side == "nextsweep" else optuna.storages.RDBStorage(url)
                    sampler = make_sampler("tpe", 0) if side == "nextsweep" else stock_sampler()
                    ms, budget_ms = measure(storage, sampler, f"lat{size}", past[:size], a.asks, compiled,
                                            searcher=side == "nextsweep")
                    if url is not None:
                        storage.engine.dispose()
                row[f"{db_kind}_{side}_ms"] = ms
                row[f"{db_kind}_{side}_budget_ms"] = budget_ms
        rows.append(row)
        print(f"{size:>6} trials: " + "   ".join(
            f"{db}: nextsweep {row[f'{db}_nextsweep_ms']:6.1f} ms (budget check {row[f'{db}_nextsweep_budget_ms']:.2f}), "
            f"stock {row[f'{db}_stock_ms']:6.1f} ms" for db in a.db), flush=True)
    Path(a.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
