"""A host's speed in one number: the seconds one CPU thread takes to train a fixed small workload
(a GRU and a pointer model, one epoch each on fixed synthetic data, through the product's own
engine), the best of a few repetitions. Two hosts whose /proc/cpuinfo reads the same can differ
1.5-3x (bench/RESULTS.md, sessions 19 and 20), so a benchmark records this beside each run and refuses to
compare runs whose probes differ by more than PROBE_TOLERANCE.

    .venv/bin/python bench/host_speed.py [--reps 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

# One host's probes between runs spread up to 1.19x (0.88-1.05 s, session 20); hosts of one CPU
# string differ 1.5-3x. 25% tells them apart without refusing one host's own runs.
PROBE_TOLERANCE = 0.25
WORKLOAD = [{"family": "gru", "d_model": 64, "layers": 2, "dropout": 0.1},
            {"family": "pointer", "d_model": 64, "layers": 1, "heads": 2, "dropout": 0.1}]


def probe_seconds(reps: int = 3) -> float:
    """The best of `reps` timings of the workload on one thread (data generated once, outside the clock)."""
    import torch  # here: a caller's child processes must not pay torch's import

    from data_io import load_dataset
    from data_io.synthetic import SynthParams, synthesize
    from models import fit
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a trial's share: one CPU (search/trainable.py)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            synthesize(SynthParams(users=20, days=60, locations=200, seed=0), Path(tmp) / "ds")
            data = load_dataset(Path(tmp) / "ds")
            configs = [{**c, "epochs": 1, "batch_size": 64, "seed": 0} for c in WORKLOAD]
            fit(configs[0], data)  # warm-up: the native kernels' first load is not the host's speed
            times = []
            for _ in range(reps):
                start = time.perf_counter()
                for config in configs:
                    fit(config, data)
                times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return round(min(times), 3)


def probes_differ(probes: dict[str, float]) -> str | None:
    """None when every probe is within PROBE_TOLERANCE of the fastest, else why not, in words."""
    fast, slow = min(probes, key=probes.get), max(probes, key=probes.get)
    if probes[slow] <= probes[fast] * (1 + PROBE_TOLERANCE):
        return None
    return (f"{slow} ran the speed probe in {probes[slow]:g} s, {fast} in {probes[fast]:g} s "
            f"({probes[slow] / probes[fast]:.2f}x, more than {1 + PROBE_TOLERANCE:g}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="repetitions; the fastest is kept (default 3)")
    a = ap.parse_args()
    from train_throughput import cpu_name
    print(f"{cpu_name()}: speed probe {probe_seconds(a.reps):g} s (one thread, best of {a.reps})")


if __name__ == "__main__":
    main()
