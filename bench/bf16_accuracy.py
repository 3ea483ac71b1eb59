"""Does bf16 training hold accuracy? The same config trained in fp32 and in bf16 (validation in fp32
either way), on the Geolife train split, for several seeds. Two bf16 modes: `bf16_matmul` (the
product's `matmul: bf16`: only the attention layers' linear maps in bf16) and `autocast` (every
training epoch under `torch.autocast("cpu", torch.bfloat16)`). Prints each fit's best epoch
(selected on val Hit@5, the default objective), its validation metrics, and each metric's best
over the epochs, with mean +- std over seeds.

    .venv/bin/python bench/bf16_accuracy.py [--family pointer] [--epochs 12] [--seeds 3]
        [--modes fp32 bf16_matmul autocast]
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
    ap.add_argument("--modes", nargs="+", default=["fp32", "bf16_matmul"], choices=["fp32", "bf16_matmul", "autocast"])
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
    modes = {"fp32": (fp32_epoch, {}), "bf16_matmul": (fp32_epoch, {"matmul": "bf16"}), "autocast": (bf16_epoch, {})}
    rows = []
    for mode in a.modes:
        epoch_fn, extra = modes[mode]
        engine._train_epoch = epoch_fn
        for seed in range(a.seeds):
            start = time.perf_counter()
            cfg = {**CONFIGS[a.family], "batch_size": 64, "epochs": a.epochs, "patience": a.epochs, "seed": seed, **extra}
            fit = engine.fit(cfg, ds)
            m = fit.best_metrics
            rows.append({"mode": mode, "seed": seed, "best_epoch": fit.best_epoch, "val_acc1": m["val_acc1"],
                         "val_hit5": m["val_hit5"], "max_val_acc1": max(h["val_acc1"] for h in fit.history),
                         "max_val_hit5": max(h["val_hit5"] for h in fit.history),
                         "seconds": time.perf_counter() - start})
            print(f"{mode} seed {seed}: best epoch {fit.best_epoch}, val Acc@1 {m['val_acc1']:.4f}, "
                  f"val Hit@5 {m['val_hit5']:.4f}; best over epochs: Acc@1 {rows[-1]['max_val_acc1']:.4f}, "
                  f"Hit@5 {rows[-1]['max_val_hit5']:.4f} ({rows[-1]['seconds']:.0f} s)", flush=True)
    engine._train_epoch = fp32_epoch
    for mode in a.modes:
        mine = [r for r in rows if r["mode"] == mode]
        shown = ", ".join(f"{label} {statistics.mean(r[k] for r in mine):.4f} +- {statistics.pstdev(r[k] for r in mine):.4f}"
                          for k, label in (("val_acc1", "val Acc@1"), ("val_hit5", "val Hit@5"),
                                           ("max_val_acc1", "best Acc@1"), ("max_val_hit5", "best Hit@5")))
        print(f"{mode}: {shown} ({len(mine)} seeds)")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
