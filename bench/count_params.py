"""Exact parameter counting speed (meta device, no weights allocated) for each family, up to
5M parameters, on the Geolife vocabulary. Target: under 20 ms per count.

    .venv/bin/python bench/count_params.py
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from data_io.geolife import GEOLIFE_SHAPE
from models import FAMILIES, count_params

INFO = GEOLIFE_SHAPE


def main() -> None:
    rows = []
    count_params({"family": "gru"}, INFO)  # import / first-call warm-up
    for family in FAMILIES:
        for d_model, layers in ((64, 1), (256, 2), (512, 4)):
            cfg = {"family": family, "d_model": d_model, "layers": layers, "heads": 8, "ff_ratio": 4.0}
            times = []
            for _ in range(7):
                t = time.perf_counter()
                n = count_params(cfg, INFO)
                times.append(time.perf_counter() - t)
            rows.append({"family": family, "d_model": d_model, "layers": layers, "params": n,
                         "median_ms": 1000 * statistics.median(times), "max_ms": 1000 * max(times)})
    print(f"{'family':<12}{'d_model':>8}{'layers':>7}{'params':>12}{'median ms':>11}{'max ms':>8}")
    for r in rows:
        print(f"{r['family']:<12}{r['d_model']:>8}{r['layers']:>7}{r['params']:>12,}{r['median_ms']:>11.2f}{r['max_ms']:>8.2f}")
    Path("bench/out").mkdir(parents=True, exist_ok=True)
    Path("bench/out/count_params.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
