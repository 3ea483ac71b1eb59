"""Does bf16 autocast training hold accuracy? The same config trained with fp32 and with its training
epochs under `torch.autocast("cpu", torch.bfloat16)` (validation in fp32 either way), on the Geolife
train split, for several seeds; prints each fit's best epoch (selected on val Hit@5, the default
objective) and the mean +- std of its validation metrics.

    .venv/bin/python bench/bf16_accuracy.py [--family pointer] [--epochs 12] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

import models.engine as engine
from data_io import load_dataset
from data_io.geolife import prepare_geolife

from train_throughput import CONFIGS  # the engine bench's configs: the same models


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--geolife", default=str(Path(__file__).resolve().parents[2] / "shared/data/geolife"))
    ap.add_argument("--family", default="pointer", choices=list(CONFIGS))
    ap.add_argument("--epochs", type=int, default=12, help="epochs per fit (patience = epochs: no early stop)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default="bench/out/bf16_accuracy.json")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        prepare_geolife(Path(a.geolife) / "dataSet_geolife.csv", Path(a.geolife) / "valid_ids_geolife.csv",
                        Path(tmp) / "gl")
        ds = load_dataset(Path(tmp) / "gl")
    fp32_epoch = engine._train_epoch

    def bf16_epoch(*args, **kwargs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return fp32_epoch(*args, **kwargs)
    rows = []
    for mode, epoch_fn in (("fp32", fp32_epoch), ("bf16", bf16_epoch)):
        engine._train_epoch = epoch_fn
        for seed in range(a.seeds):
            start = time.perf_counter()
            cfg = {**CONFIGS[a.family], "batch_size": 64, "epochs": a.epochs, "patience": a.epochs, "seed": seed}
            fit = engine.fit(cfg, ds)
            m = fit.best_metrics
            rows.append({"mode": mode, "seed": seed, "best_epoch": fit.best_epoch, "val_acc1": m["val_acc1"],
                         "val_hit5": m["val_hit5"], "seconds": time.perf_counter() - start})
            print(f"{mode} seed {seed}: best epoch {fit.best_epoch}, val Acc@1 {m['val_acc1']:.4f}, "
                  f"val Hit@5 {m['val_hit5']:.4f} ({rows[-1]['seconds']:.0f} s)", flush=True)
    engine._train_epoch = fp32_epoch
    for mode in ("fp32", "bf16"):
        acc = [r["val_acc1"] for r in rows if r["mode"] == mode]
        hit = [r["val_hit5"] for r in rows if r["mode"] == mode]
        print(f"{mode}: val Acc@1 {statistics.mean(acc):.4f} +- {statistics.pstdev(acc):.4f}, "
              f"val Hit@5 {statistics.mean(hit):.4f} +- {statistics.pstdev(hit):.4f} ({len(acc)} seeds)")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
