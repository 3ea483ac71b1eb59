"""asha.pause at scale: what one `choose_trial_to_run` costs the sweep driver (it runs at every
controller step with a free slot) when thousands of trials wait at a rung.

    .venv/bin/python bench/pause_index.py --sizes 1000 3000 10000 50000 --scan-up-to 10000

For each size N, N trials reach the epoch-1 rung of a PausingASHA (max_epochs 9, grace 1, factor 3)
with random values, so about N - N/3 of them wait, paused. Then the time of one call that finds
no trial to promote (the common case: a new trial starts), best of 5, for the scheduler's index
(sorted scores and a heap per rung) and, up to --scan-up-to, for the first version's scan of every
waiting trial against its whole rung, O(waiting x rung), reimplemented here as the reference.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ray.tune.experiment import Trial  # noqa: E402

from search.asha.pausing import PausingASHA  # noqa: E402

NO_CONTROLLER = SimpleNamespace(search_alg=SimpleNamespace(is_finished=lambda: False))


def filled(n: int, seed: int = 0) -> PausingASHA:
    asha = PausingASHA(time_attr="epoch", max_t=9, grace_period=1, reduction_factor=3, milestones=[1, 3, 9])
    asha.set_search_properties("best_val_hit5", "max")
    draw = random.Random(seed)
    for i in range(n):
        t = SimpleNamespace(trial_id=f"t{i}", status=Trial.RUNNING)
        asha.on_trial_add(None, t)
        v = draw.random()
        t.status = Trial.PAUSED if asha.on_trial_result(None, t, {"epoch": 1, "best_val_hit5": v}) == asha.PAUSE \
            else Trial.RUNNING
    while (t := asha.choose_trial_to_run(NO_CONTROLLER)) is not None:  # those the later ones put on top
        t.status = Trial.RUNNING
    return asha


def scan(asha: PausingASHA):
    """The first version: every waiting trial, highest rung first, against its whole rung."""
    for trial_id, (milestone, trial) in sorted(asha.waiting.items(), key=lambda kv: -kv[1][0]):
        recorded = asha.rung_values[milestone]
        mine = recorded[trial_id]
        if trial.status == Trial.PAUSED and sum(v > mine for v in recorded.values()) < len(recorded) // asha.rf:
            return trial
    return None


def best_of(f, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        assert f() is None
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 10000, 50000])
    ap.add_argument("--scan-up-to", type=int, default=10000, help="the scan's largest size (it is quadratic)")
    a = ap.parse_args()
    print(f"{'trials':>8} {'waiting':>8} {'index (ms)':>11} {'scan (ms)':>10} {'scan / index':>13}")
    for n in a.sizes:
        asha = filled(n)
        index = best_of(lambda: asha.choose_trial_to_run(NO_CONTROLLER))
        slow = best_of(lambda: scan(asha), repeat=2) if n <= a.scan_up_to else None
        print(f"{n:>8} {len(asha.waiting):>8} {index * 1e3:>11.3f} "
              + (f"{slow * 1e3:>10.1f} {slow / index:>12.0f}x" if slow else f"{'-':>10} {'-':>13}"), flush=True)


if __name__ == "__main__":
    main()
