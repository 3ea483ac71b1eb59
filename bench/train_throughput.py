"""Training throughput: the engine's tensorised, length-bucketed batches vs. the common
per-sample `torch.utils.data.Dataset` + `DataLoader` + padding collate loop, on the same model,
data (Geolife train split), batch size, loss and optimiser. Both sides run alternately in one
process, so the ratio is measured side by side.

    .venv/bin/python bench/train_throughput.py [--families transformer gru pointer] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from data_io import SEQ_FEATURES, load_dataset
from data_io.batches import iter_batches
from data_io.geolife import prepare_geolife
from models import build_model, count_params, split_config
from models.losses import Loss

CONFIGS = {
    "transformer": {"family": "transformer", "d_model": 96, "layers": 3, "heads": 4, "dropout": 0.3},
    "gru": {"family": "gru", "d_model": 112, "layers": 2, "dropout": 0.2},
    "pointer": {"family": "pointer", "d_model": 128, "layers": 2, "heads": 4, "tied_head": True},
}


class PerSampleDataset(TorchDataset):
    """The usual way: one dict of variable-length tensors per sample, built in __getitem__."""

    def __init__(self, split):
        self.items = [{"user": int(split.user[i]), "target": int(split.target[i]),
                       **{f: split.seq[f][i, :split.lengths[i]].tolist() for f in SEQ_FEATURES}}
                      for i in range(len(split))]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        item = self.items[i]
        return {k: torch.tensor(v) for k, v in item.items()}


def collate(samples):
    seq = {f: pad_sequence([s[f] for s in samples], batch_first=True) for f in SEQ_FEATURES}
    lengths = torch.tensor([len(s["loc"]) for s in samples])
    return seq, torch.stack([s["user"] for s in samples]), lengths, torch.stack([s["target"] for s in samples])


def train_epoch(model, opt, loss_fn, batches) -> tuple[int, float]:
    model.train()
    n, start = 0, time.perf_counter()
    for seq, user, lengths, target in batches:
        loss = loss_fn(model(seq, user, lengths), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        n += len(target)
    return n, time.perf_counter() - start


def engine_batches(split, bs, seed):
    for b in iter_batches(split, bs, seed=seed):
        yield b.seq, b.user, b.lengths, b.target


def run_family(name: str, ds, bs: int, rounds: int) -> dict:
    cfg = {**CONFIGS[name], "batch_size": bs}
    mcfg, tcfg = split_config(cfg)
    train = ds["train"]
    loader = DataLoader(PerSampleDataset(train), batch_size=bs, shuffle=True, collate_fn=collate,
                        generator=torch.Generator().manual_seed(0))
    sides = {"engine": lambda r: engine_batches(train, bs, r), "dataloader": lambda r: iter(loader)}
    rates: dict[str, list[float]] = {k: [] for k in sides}
    for r in range(rounds):
        for side, batches in sides.items():
            torch.manual_seed(r)
            model = build_model(mcfg, ds.info)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
            n, secs = train_epoch(model, opt, Loss(tcfg, train.target, ds.info.n_locations), batches(r))
            rates[side].append(n / secs)
    eng, dl = max(rates["engine"]), max(rates["dataloader"])
    return {"family": name, "params": count_params(cfg, ds.info), "batch_size": bs,
            "engine_samples_s": eng, "dataloader_samples_s": dl, "ratio": eng / dl, "all": rates,
            "data_only": {side: data_only_rate(batches(0)) for side, batches in sides.items()}}


def data_only_rate(batches) -> float:
    """Samples/s of producing the batches alone (no model): the data path's own cost."""
    n, start = 0, time.perf_counter()
    for _, _, _, target in batches:
        n += len(target)
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--geolife", default=str(Path(__file__).resolve().parents[2] / "shared/data/geolife"))
    ap.add_argument("--families", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2, help="epochs per side (alternating); best is kept")
    ap.add_argument("--out", default="bench/out/train_throughput.json")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        prepare_geolife(Path(a.geolife) / "dataSet_geolife.csv", Path(a.geolife) / "valid_ids_geolife.csv", Path(tmp) / "gl")
        ds = load_dataset(Path(tmp) / "gl")
    rows = [run_family(f, ds, a.batch_size, a.rounds) for f in a.families]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, Geolife train ({len(ds['train'])} samples), batch {a.batch_size}")
    print(f"{'family':<12}{'params':>9}{'engine/s':>11}{'DataLoader/s':>14}{'ratio':>8}{'data path only':>22}")
    for r in rows:
        d = r["data_only"]
        print(f"{r['family']:<12}{r['params']:>9,}{r['engine_samples_s']:>11.0f}{r['dataloader_samples_s']:>14.0f}"
              f"{r['ratio']:>7.2f}x{d['engine']:>10.0f} vs {d['dataloader']:.0f}/s")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
