"""Model and training configurations: flat dicts (what a search space yields) <-> dataclasses."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, fields

FAMILIES = ("transformer", "gru", "lstm", "hybrid", "pointer", "hrm")
# LOSSES, METRICS and MINIMIZED: every registered task's names (each task allows some of them);
# models.tasks.register_task adds a new task's through allow(), so a task brings its own.
LOSSES = ["ce", "label_smoothing", "weighted_ce", "focal", "mse", "cosine", "infonce", "mix", "bank_nce"]
SAMPLERS = ("uniform", "balanced")
SCHEDULES = ("cosine", "onecycle", "constant")
MATMULS = ("fp32", "bf16")  # TrainConfig.matmul
METRICS = ["val_hit5", "val_acc1", "val_hit10", "val_mrr", "val_ndcg10", "val_f1", "val_loss", "val_hit1", "val_cos"]
MINIMIZED = {"val_loss"}  # the one source of truth for which way a metric is better
RUNTIME_KEYS = ("kernels", "cpu_model", "torch_threads")  # models.native.runtime_facts(): a run's record keeps them
FEATURES = ("user", "tod", "weekday", "dur", "days_before", "position")


class ModelError(Exception):
    """A configuration the engine cannot build or train: names the key, the value and the fix."""


class NonFiniteLoss(RuntimeError):
    """Training produced a NaN/inf loss; the fit stops and the caller records the failure."""


class NonFiniteMetricError(RuntimeError):
    """The selection metric came out NaN: no epoch can be called best, so the trial fails."""


@dataclass
class ModelConfig:
    family: str = "transformer"
    d_model: int = 64  # width of the sequence model
    emb_dim: int = 0  # embedding width; 0 = d_model
    layers: int = 2
    heads: int = 4
    ff_ratio: float = 2.0  # feed-forward width / d_model
    dropout: float = 0.1
    tied_head: bool = False  # output layer shares the location embedding
    use_user: bool = True
    use_tod: bool = True
    use_weekday: bool = True
    use_dur: bool = True
    use_days_before: bool = True
    use_position: bool = True
    h_cycles: int = 2  # hrm: cycles of the slow high-level module
    l_cycles: int = 2  # hrm: fast low-level steps per cycle
    delta: bool = False  # vector task: predict the change from the last input vector
    copy: bool = False  # vector task: gate in an attention-weighted sum of the history's input vectors
    bank_pointer: bool = False  # vector task: score the bank as a gated mix of a softmax and a pointer at history rows
    history_classes: bool = False  # category: add an embedding of each history step's class (0 = unknown) to the input
    class_copy: bool = False  # category: gate in an attention-weighted distribution over the history's classes
    unknown_flag: bool = False  # category / vector: a learned input vector marks history steps whose vector is all zero

    @property
    def emb(self) -> int:
        return self.emb_dim or self.d_model

    def check(self) -> None:
        _choice("family", self.family, FAMILIES)
        for key in ("d_model", "layers", "h_cycles", "l_cycles"):
            if getattr(self, key) < 1:
                raise ModelError(f"{key}={getattr(self, key)}: must be >= 1")
        if self.emb_dim < 0:
            raise ModelError(f"emb_dim={self.emb_dim}: must be >= 0 (0 = same as d_model)")
        if not 0 <= self.dropout < 1:
            raise ModelError(f"dropout={self.dropout}: must be in [0, 1)")
        if self.ff_ratio <= 0:
            raise ModelError(f"ff_ratio={self.ff_ratio}: must be > 0")
        if self.uses_attention and (self.heads < 1 or self.d_model % self.heads):
            raise ModelError(f"heads={self.heads}: must divide d_model={self.d_model} for family {self.family}")

    @property
    def uses_attention(self) -> bool:
        return self.family in ("transformer", "hybrid", "pointer", "hrm")


@dataclass
class TrainConfig:
    loss: str = "ce"
    label_smoothing: float = 0.1  # loss = label_smoothing
    focal_gamma: float = 2.0  # loss = focal
    focal_alpha: bool = False  # loss = focal: weight classes by their (clipped) inverse frequency
    temperature: float = 0.1  # loss = infonce / mix / bank_nce: softmax temperature over the candidates
    mix_weight: float = 0.1  # loss = mix: cosine + mix_weight x InfoNCE
    novel_target: bool = False  # bank_pointer: train a target outside the history's bank rows as "somewhere new"
    weight_clip: float = 10.0  # loss = weighted_ce: class weights are clipped to this
    sampler: str = "uniform"
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 128
    schedule: str = "cosine"
    warmup_frac: float = 0.05  # cosine: share of steps spent warming up
    pct_start: float = 0.3  # onecycle: share of steps rising to lr (the peak, max_lr)
    div_factor: float = 25.0  # onecycle: start lr = lr / div_factor
    final_div_factor: float = 1e4  # onecycle: end lr = start lr / final_div_factor
    grad_clip: float = 1.0  # max gradient norm; 0 = off
    epochs: int = 20
    patience: int = 5  # stop after this many epochs without improving `metric`
    metric: str = "val_hit5"
    seed: int = 0
    folds: int = 0  # > 1: train the dataset's grouped CV folds in lockstep, select on their mean
    matmul: str = "fp32"  # "bf16": the attention layers' linear maps train in bfloat16 (models.layers.set_matmul)

    def check(self) -> None:
        _choice("loss", self.loss, LOSSES)
        _choice("sampler", self.sampler, SAMPLERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("metric", self.metric, METRICS)
        _choice("matmul", self.matmul, MATMULS)
        if self.lr <= 0 or self.batch_size < 1 or self.epochs < 1 or self.patience < 1:
            raise ModelError(f"lr={self.lr}, batch_size={self.batch_size}, epochs={self.epochs}, "
                             f"patience={self.patience}: all must be positive")
        if not 0 <= self.label_smoothing < 1:
            raise ModelError(f"label_smoothing={self.label_smoothing}: must be in [0, 1)")
        if not 0 < self.pct_start < 1 or self.div_factor <= 0 or self.final_div_factor <= 0:
            raise ModelError(f"pct_start={self.pct_start}, div_factor={self.div_factor}, final_div_factor="
                             f"{self.final_div_factor}: pct_start must be in (0, 1), the factors > 0")
        if self.temperature <= 0 or self.mix_weight < 0:
            raise ModelError(f"temperature={self.temperature}, mix_weight={self.mix_weight}: temperature must be > 0, "
                             "mix_weight >= 0")
        if self.folds < 0 or self.folds == 1:
            raise ModelError(f"folds={self.folds}: use 0 (the train/val split) or >= 2")

    @property
    def maximize(self) -> bool:
        return metric_mode(self.metric) == "max"


MODEL_KEYS = tuple(f.name for f in fields(ModelConfig))
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig))


def metric_mode(metric: str) -> str:
    """'max' or 'min': the direction in which `metric` gets better."""
    _choice("metric", metric, METRICS)
    return "min" if metric in MINIMIZED else "max"


def allow(losses: tuple[str, ...], metrics: tuple[str, ...], minimized: tuple[str, ...] = ()) -> None:
    """Make a task's loss and metric names known (and which of its metrics are better lower)."""
    LOSSES.extend(x for x in losses if x not in LOSSES)
    METRICS.extend(x for x in metrics if x not in METRICS)
    MINIMIZED.update(minimized)


def _choice(key: str, value, allowed: tuple) -> None:
    if value not in allowed:
        raise ModelError(f"{key}={value!r}: not supported; use one of {', '.join(allowed)}")


def split_config(flat: dict) -> tuple[ModelConfig, TrainConfig]:
    """A flat {name: value} dict -> (ModelConfig, TrainConfig); unknown keys are an error."""
    unknown = [k for k in flat if k not in MODEL_KEYS and k not in TRAIN_KEYS]
    if unknown:
        near = difflib.get_close_matches(unknown[0], MODEL_KEYS + TRAIN_KEYS, n=1)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise ModelError(f"unknown config key '{unknown[0]}'{hint}")
    model = ModelConfig(**{k: v for k, v in flat.items() if k in MODEL_KEYS})
    train = TrainConfig(**{k: v for k, v in flat.items() if k in TRAIN_KEYS})
    model.check()
    train.check()
    return model, train


def to_flat(model: ModelConfig, train: TrainConfig) -> dict:
    return {**asdict(model), **asdict(train)}
