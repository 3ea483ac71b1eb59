"""Hand-set reference configurations on Geolife (validation only): parameter count and the
best epoch's val metrics within 10 epochs. The model-selection metric is val Acc@1 here.

    .venv/bin/python bench/geolife_reference.py [--only pointer transformer]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from data_io import load_dataset
from data_io.geolife import prepare_geolife
from models import count_params, fit

COMMON = {"epochs": 10, "batch_size": 64, "metric": "val_acc1", "seed": 0}
CONFIGS = {
    "pointer": {"family": "pointer", "d_model": 128, "layers": 2, "heads": 4, "ff_ratio": 2.0,
                "dropout": 0.1, "tied_head": True, "lr": 2e-3},
    "transformer": {"family": "transformer", "d_model": 96, "layers": 3, "heads": 4, "ff_ratio": 2.0,
                    "dropout": 0.3, "lr": 1e-3, "weight_decay": 0.05, "loss": "label_smoothing"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--geolife", default=str(Path(__file__).resolve().parents[2] / "shared/data/geolife"))
    ap.add_argument("--only", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--out", default="bench/out/geolife_reference.json")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        prepare_geolife(Path(a.geolife) / "dataSet_geolife.csv", Path(a.geolife) / "valid_ids_geolife.csv", Path(tmp) / "gl")
        ds = load_dataset(Path(tmp) / "gl")
    rows = []
    for name in a.only:
        cfg = {**COMMON, **CONFIGS[name]}
        r = fit(cfg, ds, on_epoch=lambda rep: print(f"  {name} epoch {rep.epoch}: val Acc@1 {rep.metrics['val_acc1']:.4f}", flush=True))
        m = r.best_metrics
        rows.append({"name": name, "config": cfg, "params": count_params(cfg, ds.info), "best_epoch": r.best_epoch,
                     **{k: m[k] for k in ("val_acc1", "val_hit5", "val_hit10", "val_mrr")}})
    print(f"{'config':<13}{'params':>9}{'best ep':>9}{'val Acc@1':>11}{'val Hit@5':>11}{'val MRR':>9}")
    for r in rows:
        print(f"{r['name']:<13}{r['params']:>9,}{r['best_epoch']:>9}{r['val_acc1']:>11.2%}{r['val_hit5']:>11.2%}{r['val_mrr']:>9.3f}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
