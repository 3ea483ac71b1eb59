"""Next location: location ids with context codes in, log-probabilities over locations out."""

from __future__ import annotations

from typing import Iterator

import numpy as np
from torch import nn

from data_io import Dataset, DatasetInfo, SplitArrays
from models.config import FAMILIES, ModelConfig, ModelError, TrainConfig
from models.losses import Loss
from models.metrics import RankMetrics
from models.networks import NextLocationModel
from models.tasks._base import LossFn, Task, check_k, class_top_k, last_step, most_frequent, outputs, rank_scores, row_chunks

CELLS = 2_000_000  # score-matrix cells per chunk of the Markov baseline (4 count levels of them)
CARDS = ("loc", "user", "tod", "weekday", "dur", "days_before", "position")


class LocationTask(Task):
    name = "location"
    losses = ("ce", "label_smoothing", "weighted_ce", "focal")
    metrics = ("val_hit5", "val_acc1", "val_hit10", "val_mrr", "val_ndcg10", "val_f1", "val_loss")
    objective = "val_hit5"
    default_loss = "ce"
    ties_head = True
    families = FAMILIES

    def build(self, mcfg: ModelConfig, info: DatasetInfo) -> nn.Module:
        cards = dict(info.cardinalities)
        missing = set(CARDS) - set(cards)
        if missing:
            raise ModelError(f"dataset info lacks cardinalities {sorted(missing)}; prepare the dataset again")
        cards["position"] = max(1, cards["position"])
        return NextLocationModel(mcfg, cards)

    def loss(self, tcfg: TrainConfig, data: Dataset) -> LossFn:
        return class_loss(tcfg, data["train"], data.info.n_locations)

    def evaluate(self, model, data: Dataset, split: str, loss=None, batch_size: int = 512) -> dict[str, float]:
        acc = RankMetrics(data.info.n_locations)
        for logp, b in outputs(model, data[split], batch_size):
            acc.add(logp, b.target)
        return acc.result()

    def top_k(self, model, data: Dataset, split: str, k: int, batch_size: int = 512) -> dict[str, np.ndarray]:
        """Location ids as the dataset codes them (0 = padding, 1 = unseen in train); scores: log-probs."""
        check_k(k, data.info.n_locations, "location classes")
        pred, score = class_top_k(model, data[split], k, batch_size)
        return {"target": data[split].target, "pred": pred, "score": score}

    def reference_scores(self, data: Dataset) -> dict[str, dict[str, float]]:
        train, val, n = data["train"], data["val"], data.info.n_locations
        return {"most_frequent": most_frequent(train.target, val.target, n),
                "markov": rank_scores(markov_scores(train, val, n), n)}


def markov_scores(train: SplitArrays, val: SplitArrays, n: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A per-user first-order Markov model with back-off, counted on `train`, as (scores, targets)
    chunks over `val`: candidates rank by their count after (user, last location); ties, and
    contexts never seen, fall back to the count after (last location) anywhere, then to the
    user's own target counts, then to the global ones. Scores are the dense ranks of that order."""
    def contexts(s: SplitArrays) -> list[np.ndarray]:
        last = last_step(s, "loc")
        return [s.user * n + last, last, s.user, np.zeros_like(last)]
    train_ctx, val_ctx = contexts(train), contexts(val)
    for rows in row_chunks(len(val), max(1, CELLS // n)):
        levels = np.stack([context_counts(t, train.target, v[rows], n) for t, v in zip(train_ctx, val_ctx)])
        yield lexicographic(levels), val.target[rows]


def context_counts(train_ctx: np.ndarray, train_next: np.ndarray, query_ctx: np.ndarray, n: int) -> np.ndarray:
    """[len(query_ctx), n]: how often each class followed each query's context in train."""
    ctx, inverse = np.unique(query_ctx, return_inverse=True)
    pos = np.minimum(np.searchsorted(ctx, train_ctx), len(ctx) - 1)
    seen = ctx[pos] == train_ctx
    table = np.bincount(pos[seen] * n + train_next[seen], minlength=len(ctx) * n).reshape(len(ctx), n)
    return table[inverse.ravel()]


def lexicographic(levels: np.ndarray) -> np.ndarray:
    """[k, r, n] keys, first most important -> [r, n] scores ordering each row's candidates by the
    first key, ties by the next ...; equal keys give equal scores (ties stay ties)."""
    order = np.lexsort(levels[::-1], axis=-1)  # ascending; np.lexsort sorts on the last key first
    ordered = np.take_along_axis(levels, order[None], axis=-1)
    new = (np.diff(ordered, axis=-1) != 0).any(0)
    dense = np.concatenate([np.zeros((len(order), 1)), np.cumsum(new, axis=1)], axis=1)
    scores = np.empty_like(dense)
    np.put_along_axis(scores, order, dense, axis=1)
    return scores


def class_loss(tcfg: TrainConfig, train: SplitArrays, n_classes: int) -> LossFn:
    """A class loss over log-probs (class weights from the training targets)."""
    fn = None

    def loss(logp, batch):
        nonlocal fn
        if fn is None:  # on the output's device, made once
            fn = Loss(tcfg, train.target, n_classes).to(logp.device)
        return fn(logp, batch.target)
    return loss
