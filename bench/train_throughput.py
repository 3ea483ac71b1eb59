"""Training throughput: nextsweep's engine against the common per-sample `torch.utils.data.Dataset`
+ `DataLoader` + padding collate loop, on the same model (architecture, weights, seed), data
(Geolife train split), batch size and loss. Both sides alternate in one process, so the ratio is
measured side by side.

The engine side is the product's own training step (`models.engine`): tensorised length-bucketed
batches, the model as `build_model` makes it (the written-out attention layer, and the native
kernels of models/native where they build: the GRU's recurrence, dropout, attention with dropped
weights) and AdamW over flat parameter groups with clipping in its step (models.optim). The
DataLoader side trains the same weights rebuilt from torch's stock layers (nn.TransformerEncoder,
nn.Dropout, nn.GRU) with stock AdamW and clip_grad_norm_: the loop a user writes by hand. The engine's achieved FLOP/s (matmul FLOPs counted by torch's
FlopCounterMode) is reported as a share of this machine's dense matmul FLOP/s at the model's size,
measured in the same run.

    .venv/bin/python bench/train_throughput.py [--families transformer gru pointer] [--rounds 3]
        [--bf16] [--bf16-matmul] [--compile]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from torch.utils.flop_counter import FlopCounterMode

from data_io import SEQ_FEATURES, load_dataset
from data_io.batches import iter_batches
from data_io.geolife import prepare_geolife
from models import build_model, count_params, split_config
from models.engine import _optimizer, _scheduler, _train_epoch
from models.layers import AttentionStack, Dropout, set_matmul
from models.losses import Loss
from models.networks import RecurrentBody
from models.tasks import get_task

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


class StockRecurrent(nn.Module):
    """RecurrentBody as torch runs it: nn.GRU / nn.LSTM with autograd's backward."""

    def __init__(self, rnn: nn.RNNBase):
        super().__init__()
        self.rnn = rnn

    def forward(self, x, pad):
        return self.rnn(x)[0]


def stock_model(model: nn.Module) -> nn.Module:
    """A copy of `model` with the same weights, its layers swapped for torch's stock ones."""
    stock = copy.deepcopy(model)
    for parent in list(stock.modules()):
        for name, child in list(parent.named_children()):
            setattr(parent, name, _stock_layer(child))
    return stock


def _stock_layer(module: nn.Module) -> nn.Module:
    if isinstance(module, Dropout):
        return nn.Dropout(module.p)
    if isinstance(module, RecurrentBody):
        return StockRecurrent(module.rnn)
    if isinstance(module, AttentionStack):
        first = module.layers[0]
        layer = nn.TransformerEncoderLayer(first.linear1.in_features, first.self_attn.heads, first.linear1.out_features,
                                           first.dropout.p, activation="gelu", batch_first=True, norm_first=True)
        stack = nn.TransformerEncoder(layer, len(module.layers), norm=nn.LayerNorm(first.linear1.in_features),
                                      enable_nested_tensor=False)
        stack.load_state_dict(module.state_dict())
        return stack
    return module


def dataloader_epoch(model, opt, loss_fn, batches) -> tuple[int, float]:
    """The hand-written loop: forward, loss, backward, clip, step."""
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


class EngineSide:
    """The product's training step on a fresh model: models.engine._train_epoch."""

    def __init__(self, cfg: dict, ds, autocast: bool = False, compile_model: bool = False):
        self.mcfg, self.tcfg = split_config({**cfg, "grad_clip": 1.0, "schedule": "constant"})
        self.ds, self.autocast, self.compile = ds, autocast, compile_model

    def model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        model = build_model(self.mcfg, self.ds.info)
        set_matmul(model, self.tcfg.matmul)  # as models.engine does
        return model

    def epoch(self, model: nn.Module, seed: int) -> tuple[int, float]:
        train, tcfg = self.ds["train"], self.tcfg
        run_model = torch.compile(model, dynamic=True) if self.compile else model
        opt = _optimizer(model, tcfg)
        sched = _scheduler(opt, tcfg, 10**6)
        loss = get_task(self.ds.info.task).loss(tcfg, self.ds)
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            _, n = _train_epoch(run_model, train, tcfg, opt, sched, loss, np.random.default_rng(seed), 1, None)
        return n, time.perf_counter() - start


def run_family(name: str, ds, bs: int, rounds: int, extra: list[str]) -> dict:
    cfg = {**CONFIGS[name], "batch_size": bs}
    train = ds["train"]
    engine = EngineSide(cfg, ds)
    loader = DataLoader(PerSampleDataset(train), batch_size=bs, shuffle=True, collate_fn=collate,
                        generator=torch.Generator().manual_seed(0))
    stock_loss = Loss(engine.tcfg, train.target, ds.info.n_locations)

    def stock_epoch(r):
        model = stock_model(engine.model(r))
        return dataloader_epoch(model, torch.optim.AdamW(model.parameters(), lr=engine.tcfg.lr), stock_loss, iter(loader))
    sides = {"engine": lambda r: engine.epoch(engine.model(r), r), "dataloader": stock_epoch}
    variants = {"bf16": EngineSide(cfg, ds, autocast=True), "compile": EngineSide(cfg, ds, compile_model=True),
                "bf16_matmul": EngineSide({**cfg, "matmul": "bf16"}, ds)}
    for v in extra:
        sides[f"engine_{v}"] = lambda r, side=variants[v]: side.epoch(side.model(r), r)
    rates: dict[str, list[float]] = {k: [] for k in sides}
    for r in range(rounds):
        for side, epoch in sides.items():
            n, secs = epoch(r)
            rates[side].append(n / secs)
    med = {k: statistics.median(v) for k, v in rates.items()}
    flops = epoch_flops(engine) / len(train)
    dense = dense_flops(bs * mean_width(train, bs), engine.mcfg.d_model)
    return {"family": name, "params": count_params(cfg, ds.info), "batch_size": bs, "median_samples_s": med,
            "ratio": med["engine"] / med["dataloader"], "all": rates,
            "engine_gflops": flops * med["engine"] / 1e9, "dense_gflops": dense / 1e9,
            "data_only": {"engine": data_only_rate(engine_batches(train, bs, 0)), "dataloader": data_only_rate(iter(loader))}}


def engine_batches(split, bs, seed):
    for b in iter_batches(split, bs, seed=seed):
        yield b.seq, b.user, b.lengths, b.target


def mean_width(split, bs: int) -> int:
    """Mean number of (padded) steps of the engine's batches."""
    return round(np.mean([seq["loc"].shape[1] for seq, *_ in engine_batches(split, bs, 0)]))


def epoch_flops(engine: EngineSide) -> float:
    """Matmul FLOPs (forward and backward) of one engine epoch."""
    with FlopCounterMode(display=False) as counter:
        engine.epoch(engine.model(0), 0)
    return counter.get_total_flops()


def dense_flops(tokens: int, d: int, reps: int = 20) -> float:
    """This machine's FLOP/s on one dense fp32 matmul the size of the model's token x width x 4 width layer."""
    a, b = torch.randn(tokens, d), torch.randn(d, 4 * d)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * tokens * d * 4 * d * reps / (time.perf_counter() - start)


def data_only_rate(batches) -> float:
    """Samples/s of producing the batches alone (no model): the data path's own cost."""
    n, start = 0, time.perf_counter()
    for _, _, _, target in batches:
        n += len(target)
    return n / (time.perf_counter() - start)


def cpu_name() -> str:
    """This machine's CPU model and its bf16 / AMX support: the figures hold for that CPU only."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "unknown CPU")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    extras = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{name} ({', '.join(extras) or 'no avx512'})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--geolife", default=str(Path(__file__).resolve().parents[2] / "shared/data/geolife"))
    ap.add_argument("--families", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3, help="epochs per side (alternating); the median is kept")
    ap.add_argument("--bf16", action="store_true", help="also time the engine under bf16 autocast")
    ap.add_argument("--bf16-matmul", action="store_true",
                    help="also time the engine with `matmul: bf16` (the attention layers' linear maps in bf16)")
    ap.add_argument("--compile", action="store_true", help="also time the engine on torch.compile(model) "
                                                            "(its first epoch includes the compilation)")
    ap.add_argument("--out", default="bench/out/train_throughput.json")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        prepare_geolife(Path(a.geolife) / "dataSet_geolife.csv", Path(a.geolife) / "valid_ids_geolife.csv", Path(tmp) / "gl")
        ds = load_dataset(Path(tmp) / "gl")
    extra = [v for v in ("bf16", "bf16_matmul", "compile") if getattr(a, v)]
    rows = [run_family(f, ds, a.batch_size, a.rounds, extra) for f in a.families]
    print(f"{cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads, Geolife train ({len(ds['train'])} samples), "
          f"batch {a.batch_size}, median of {a.rounds} alternating epochs per side")
    print(f"{'family':<12}{'params':>9}{'engine/s':>10}{'DataLoader/s':>14}{'ratio':>8}{'engine GF/s':>13}"
          f"{'dense GF/s':>12}{'share':>7}  " + "".join(f"{'engine_' + v + '/s':>17}" for v in extra))
    for r in rows:
        m = r["median_samples_s"]
        print(f"{r['family']:<12}{r['params']:>9,}{m['engine']:>10.0f}{m['dataloader']:>14.0f}{r['ratio']:>7.2f}x"
              f"{r['engine_gflops']:>13.1f}{r['dense_gflops']:>12.1f}{r['engine_gflops'] / r['dense_gflops']:>7.0%}  "
              + "".join(f"{m['engine_' + v]:>17.0f}" for v in extra))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"cpu": cpu_name(), "families": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
