"""Searcher latency: milliseconds per suggestion (Optuna ask + the space's proposal with its exact
budget check + the user attributes the sweep writes) against the number of finished trials in
the study, in SQLite and in a PostgreSQL study. Target: < 50 ms at 5,000 trials.

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
from search.sweep import make_sampler  # noqa: E402
from spaces import CompiledSpace, load_space  # noqa: E402

INFO = GEOLIFE_SHAPE
SPACE = Path(__file__).resolve().parents[1] / "spaces" / "geolife_500k.yaml"


def history(n: int, seed: int = 0) -> list[optuna.trial.FrozenTrial]:
    """n finished trials drawn from the space (random sampler, values from a stand-in)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))
    compiled, rng = CompiledSpace(load_space(SPACE), INFO), random.Random(seed)
    for _ in range(n):
        trial = study.ask()
        p = compiled.propose(trial)
        study.tell(trial, p.n_params / 5e5 + rng.gauss(0, 0.05))
    return study.get_trials()


def measure(storage: str, name: str, past: list, asks: int) -> float:
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize", sampler=make_sampler("tpe", 0))
    study.add_trials(past)
    compiled = CompiledSpace(load_space(SPACE), INFO)
    times = []
    for i in range(asks):
        start = time.perf_counter()
        trial = study.ask()
        p = compiled.propose(trial)
        for key, value in {"config": json.dumps(p.config), "n_params": p.n_params, "fingerprint": "x" * 64}.items():
            trial.set_user_attr(key, value)
        times.append(time.perf_counter() - start)
        study.tell(trial, p.n_params / 5e5)
    return 1000 * statistics.median(times)


def start_postgres():
    from pgserver import postgres_server  # the tests' throw-away server
    ctx = postgres_server()
    return ctx.__enter__(), ctx


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[0, 100, 1000, 5000])
    ap.add_argument("--asks", type=int, default=15, help="suggestions timed per point (median kept)")
    ap.add_argument("--postgres", help="PostgreSQL URL (default: start a throw-away server)")
    ap.add_argument("--out", default="bench/out/searcher_latency.json")
    a = ap.parse_args()
    past = history(max(a.sizes))
    tmp = Path("bench/out")
    tmp.mkdir(parents=True, exist_ok=True)
    pg, gen = (a.postgres, None) if a.postgres else start_postgres()
    rows = []
    try:
        for size in a.sizes:
            db = tmp / f"latency-{size}.db"
            db.unlink(missing_ok=True)
            row = {"trials": size, "sqlite_ms": measure(f"sqlite:///{db}", f"lat{size}", past[:size], a.asks),
                   "postgres_ms": measure(pg, f"lat{size}-{int(time.time())}", past[:size], a.asks)}
            rows.append(row)
            print(f"{size:>6} trials: SQLite {row['sqlite_ms']:7.1f} ms   PostgreSQL {row['postgres_ms']:7.1f} ms", flush=True)
    finally:
        if gen is not None:
            gen.__exit__(None, None, None)
    Path(a.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
