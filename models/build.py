"""Building models from configs, and exact parameter counts without allocating weights."""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode

from data_io import DatasetInfo
from models.config import ModelConfig, split_config
from models.tasks import get_task


def _model_config(config: ModelConfig | dict) -> ModelConfig:
    if isinstance(config, ModelConfig):
        config.check()
        return config
    return split_config(config)[0]


def build_model(config: ModelConfig | dict, info: DatasetInfo) -> torch.nn.Module:
    """The dataset's task's model for a config (a ModelConfig or a flat dict that may also hold
    training keys)."""
    mcfg = _model_config(config)
    task = get_task(info.task)
    task.check_model(mcfg)
    return task.build(mcfg, info)


class FoldEnsemble(torch.nn.Module):
    """The fold models of a k-fold fit served as one predictor: each sees the batch, the task
    combines their outputs (Task.combine)."""

    def __init__(self, members: list[torch.nn.Module], task):
        super().__init__()
        self.members = torch.nn.ModuleList(members)
        self.task = task

    def forward(self, seq, user, lengths):
        return self.task.combine([m(seq, user, lengths) for m in self.members])


def build_predictor(config: ModelConfig | dict, info: DatasetInfo, states: list[dict]) -> torch.nn.Module:
    """The model that retrain measures and predict serves: one state's model, or with several
    states (a k-fold fit's folds) their ensemble. A state that does not fit the config raises
    torch's RuntimeError."""
    members = []
    for state in states:
        model = build_model(config, info)
        model.load_state_dict(state)
        members.append(model)
    return members[0] if len(members) == 1 else FoldEnsemble(members, get_task(info.task))


class _NoInit(TorchFunctionMode):
    """Skips weight initialisation: on the meta device it writes nothing, yet its Python-level
    decompositions (normal_, uniform_...) cost about 2/3 of building a model for counting."""
    SKIP = {getattr(torch.nn.init, f) for f in ("normal_", "uniform_", "constant_", "zeros_", "ones_", "trunc_normal_",
                                                  "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
                                                  "kaiming_normal_", "orthogonal_")} | \
           {torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.zero_, torch.Tensor.fill_}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.SKIP:
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def count_params(config: ModelConfig | dict, info: DatasetInfo) -> int:
    """Exact trainable parameter count (a tied head counted once), built on the meta device so
    no weight memory is allocated, and without initialising weights (~2.5 ms a model)."""
    with torch.device("meta"), _NoInit():
        model = build_model(config, info)
    return sum(p.numel() for p in model.parameters())


def param_breakdown(config: ModelConfig | dict, info: DatasetInfo) -> list[tuple[str, int]]:
    """Parameters per part of the model (e.g. 'encoder.loc 1187x64'), largest first."""
    with torch.device("meta"):
        model = build_model(config, info)
    parts: dict[str, list] = {}
    for name, p in model.named_parameters():
        parts.setdefault(".".join(name.split(".")[:2]), []).append(p)
    rows = []
    for part, ps in parts.items():
        label = f"{part} {'x'.join(map(str, ps[0].shape))}" if len(ps) == 1 else part
        rows.append((label, sum(p.numel() for p in ps)))
    return sorted(rows, key=lambda r: -r[1])
