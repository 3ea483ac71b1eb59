"""Training samples to (a)'s final best, bounded, from search-efficiency runs saved before samples
were counted (issue 47, item 3).

bench/search_efficiency.py counts each run's training samples since session 25 (`curve_samples`).
Its earlier runs kept, per trial, how many epochs it trained and when its last one ended
(`trial_detail`), and when the best improved (`curve`), but not when each epoch ended. With 2 CPUs
and one per trial, at most two trials train at once, so the epochs trained by the time t at
which a run first reaches a value are bounded: all epochs of the trials that ended by t, the k
epochs of the trial that reached it, and of at most one other trial between none and all but its
last. An epoch trains the objective's whole training split (every fold's), a constant per
objective, so the bounds in epochs times that count are the bounds in samples.

    .venv/bin/python bench/samples_bounds.py bench/results/search_efficiency_20m_f1_a_seed?_s21.json \\
        bench/results/search_efficiency_20m_f1_c_seed?_s20.json

Per objective: each seed's (a) samples to its own final best and (c) samples to it (low-high),
the medians, and the issue's verdict ((c) <= 1/3 of (a), medians of 5 seeds): met or missed where
both bounds agree, else undecided.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import tempfile
from pathlib import Path

from search_efficiency import epoch_samples, space_file, time_to

SLOTS = 2  # trials at once in these runs: 2 CPUs, one a trial


def epochs_to(run: dict, target: float) -> tuple[int, int] | None:
    """(fewest, most) epochs trained, all trials together, when `run` first reached `target`;
    None where it never did."""
    t = time_to(run["curve"], target)
    if math.isinf(t):
        return None
    value = next(v for s, v in run["curve"] if s == t)
    trials = run["trial_detail"]
    reached = [i for i, d in enumerate(trials)  # by_epoch is rounded to 4 places, times to 0.1 s
               if d["end_s"] >= t - 0.05 and any(abs(x - value) < 6e-5 for x in d["by_epoch"])]
    if not reached:
        raise ValueError(f"{run['method']} seed {run['seed']}: no trial holds the value {value} reached at {t} s")
    spans = []
    for r in reached:
        k = 1 + next(i for i, x in enumerate(trials[r]["by_epoch"]) if abs(x - value) < 6e-5)
        ended = sum(d["epochs"] for i, d in enumerate(trials) if i != r and d["end_s"] <= t)
        running = [d["epochs"] - 1 for i, d in enumerate(trials) if i != r and d["end_s"] > t]
        spans.append((ended + k, ended + k + (max(running) if running and SLOTS > 1 else 0)))
    return min(s[0] for s in spans), max(s[1] for s in spans)


def seed_bounds(runs: list[dict]) -> dict[int, dict]:
    """Per seed with both methods: (a)'s epochs to its own final best, (c)'s to it."""
    by = {(r["method"], int(r["seed"])): r for r in runs}
    out = {}
    for seed in sorted({s for m, s in by if m == "random" and ("nextsweep", s) in by}):
        target = by["random", seed]["final_best"]
        out[seed] = {"target": target, "random": epochs_to(by["random", seed], target),
                     "nextsweep": epochs_to(by["nextsweep", seed], target)}
    return out


def verdict(seeds: dict[int, dict]) -> dict:
    """Medians of the bounds over seeds ((c) never reaching counts as infinite) and the 1/3 verdict."""
    bound = lambda m, i: [s[m][i] if s[m] else math.inf for s in seeds.values()]  # noqa: E731
    a_lo, a_hi = statistics.median(bound("random", 0)), statistics.median(bound("random", 1))
    c_lo, c_hi = statistics.median(bound("nextsweep", 0)), statistics.median(bound("nextsweep", 1))
    said = "met" if c_hi <= a_lo / 3 else "missed" if c_lo > a_hi / 3 else "undecided"
    return {"random_median": (a_lo, a_hi), "nextsweep_median": (c_lo, c_hi), "target": said}


def main() -> None:
    runs = [r for p in sys.argv[1:] for r in json.loads(Path(p).read_text())["runs"]]
    docs = {r["objective"]: json.loads(Path(p).read_text()) for p in sys.argv[1:]
            for r in json.loads(Path(p).read_text())["runs"]}
    for objective in sorted({r["objective"] for r in runs}):
        doc = docs[objective]
        task, metric = objective.split(":")
        with tempfile.TemporaryDirectory() as tmp:
            per_epoch = epoch_samples(space_file(Path(tmp), task, metric, doc.get("max_epochs"), doc.get("set") or []))
        seeds = seed_bounds([r for r in runs if r["objective"] == objective])
        print(f"{objective}: one epoch trains {per_epoch:,} samples; samples (thousands), low-high")
        print("seed  (a) to its final best   (c) to it")
        span = lambda b: "never" if b is None else f"{b[0] * per_epoch / 1e3:,.0f}-{b[1] * per_epoch / 1e3:,.0f}"  # noqa: E731
        for seed, s in seeds.items():
            print(f"{seed:>4}  {span(s['random']):>22}   {span(s['nextsweep'])}")
        v = verdict(seeds)
        print(f"median  {span(v['random_median']):>20}   {span(v['nextsweep_median'])}"
              f"   target (c) <= 1/3 of (a): {v['target']}")


if __name__ == "__main__":
    main()
