"""Data benchmarks: Geolife prepare time (vectorised vs. a row-by-row pandas loop, same run),
synthetic generation time, and padding of bucketed vs. plain shuffled batches.

    .venv/bin/python bench/data_prep.py [--geolife ../shared/data/geolife] [--out bench/out/data_prep.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from data_io import load_dataset
from data_io.batches import batch_order, padding_fraction
from data_io.geolife import prepare_geolife
from data_io.synthetic import SynthParams, generate_staypoints, synthesize


def row_by_row_counts(staypoints: Path, valid_ids: Path) -> dict[str, int]:
    """The protocol as commonly written: iterrows over each user's split (reference only)."""
    df = pd.read_csv(staypoints).sort_values(["user_id", "start_day", "start_min"], kind="stable")
    valid = set(pd.read_csv(valid_ids).id)
    counts = {"train": 0, "val": 0, "test": 0}
    for _, user in df.groupby("user_id"):
        max_day = user.start_day.max()
        label = np.where(user.start_day < 0.6 * max_day, "train", np.where(user.start_day < 0.8 * max_day, "val", "test"))
        for name in counts:
            part = user[label == name].reset_index(drop=True)
            first = part.start_day.min()
            for i, row in part.iterrows():
                if row.start_day - first < 7 or row.id not in valid:
                    continue
                hist = part.iloc[:i]
                hist = hist[hist.start_day >= row.start_day - 7]
                counts[name] += len(hist) >= 3
    return counts


def timed(fn, *args, repeat: int = 3):
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - t)
    return best, result


def padding(lengths: np.ndarray, batch_size: int, seed: int = 0) -> tuple[float, float]:
    perm = np.random.default_rng(seed).permutation(len(lengths))
    plain = [perm[i:i + batch_size] for i in range(0, len(perm), batch_size)]
    bucketed = batch_order(lengths, batch_size, np.random.default_rng(seed))
    return padding_fraction(lengths, bucketed), padding_fraction(lengths, plain)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--geolife", default=str(Path(__file__).resolve().parents[2] / "shared/data/geolife"))
    ap.add_argument("--out", default="bench/out/data_prep.json")
    ap.add_argument("--batch-size", type=int, default=128)
    a = ap.parse_args()
    sp, vi = Path(a.geolife) / "dataSet_geolife.csv", Path(a.geolife) / "valid_ids_geolife.csv"
    res: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        res["geolife_prepare_s"], _ = timed(lambda: prepare_geolife(sp, vi, Path(tmp) / "gl", overwrite=True))
        res["geolife_row_by_row_s"], counts = timed(row_by_row_counts, sp, vi, repeat=1)
        res["row_by_row_counts"] = counts
        res["synthetic_generate_50x120_s"], _ = timed(generate_staypoints, SynthParams(users=50, days=120))
        res["synthetic_dataset_50x120_s"], _ = timed(lambda: synthesize(SynthParams(), Path(tmp) / "syn", overwrite=True))
        for name in ("gl", "syn"):
            lengths = load_dataset(Path(tmp) / name)["train"].lengths
            res[f"padding_{name}_bucketed"], res[f"padding_{name}_plain"] = padding(lengths, a.batch_size)
    res["batch_size"] = a.batch_size
    rows = [
        ("Geolife prepare (vectorised, best of 3)", f"{res['geolife_prepare_s']:.3f} s"),
        ("Geolife row-by-row pandas loop (same run)", f"{res['geolife_row_by_row_s']:.2f} s"),
        ("speed-up", f"{res['geolife_row_by_row_s'] / res['geolife_prepare_s']:.0f}x"),
        ("synthetic generate 50 users x 120 days", f"{res['synthetic_generate_50x120_s']:.3f} s"),
        ("synthetic generate + prepare + write", f"{res['synthetic_dataset_50x120_s']:.3f} s"),
        (f"padding, Geolife train, bucketed (bs {a.batch_size})", f"{res['padding_gl_bucketed']:.1%}"),
        ("padding, Geolife train, each batch to its longest", f"{res['padding_gl_plain']:.1%}"),
        ("padding, synthetic train, bucketed", f"{res['padding_syn_bucketed']:.1%}"),
        ("padding, synthetic train, each batch to its longest", f"{res['padding_syn_plain']:.1%}"),
    ]
    width = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
