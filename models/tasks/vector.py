"""Next vector: sequences of vectors in, a vector out; selected on retrieval Hit@5, the rank of
the true next vector among the split's candidate bank by cosine similarity (ties counted against
the target), because mean cosine alone can hide a model that retrieves nothing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from data_io import Dataset, DatasetInfo, SplitArrays
from data_io.batches import Batch
from models.config import ModelConfig, ModelError, TrainConfig
from models.metrics import pessimistic_rank
from models.tasks._base import LossFn, Task, outputs
from models.vector_nets import VectorHead, VectorInputModel


TIE_ATOL = 1e-6  # cosine scores this close to the target's are ties (counted against it)


class VectorTask(Task):
    name = "vector"
    losses = ("cosine", "mse", "infonce", "mix")
    metrics = ("val_hit5", "val_hit1", "val_hit10", "val_mrr", "val_cos", "val_loss")
    objective = "val_hit5"
    default_loss = "cosine"
    balanced_sampler = False

    def build(self, mcfg: ModelConfig, info: DatasetInfo) -> nn.Module:
        if mcfg.delta and info.target_dim != info.input_dim:
            raise ModelError(f"delta=True: targets ({info.target_dim}-dim) and inputs ({info.input_dim}-dim) differ, "
                             "so there is no last input to add a change to; set delta false")
        return VectorInputModel(mcfg, info, VectorHead(mcfg.d_model, info.target_dim, mcfg.delta))

    def loss(self, tcfg: TrainConfig, train: SplitArrays, info: DatasetInfo) -> LossFn:
        return lambda pred, batch: vector_loss(tcfg, pred, batch)

    def evaluate(self, model, data: Dataset, split: str, loss: LossFn | None = None,
                 batch_size: int = 512) -> dict[str, float]:
        bank = F.normalize(torch.from_numpy(data.banks[split]), dim=-1)
        ranks, cos, loss_sum, n = [], [], 0.0, 0
        for pred, b in outputs(model, data[split], batch_size):
            unit = F.normalize(pred, dim=-1)
            scores = unit @ bank.to(unit.device).T  # [B, bank]
            ranks.append(pessimistic_rank(scores, scores.gather(1, b.target_id[:, None]), TIE_ATOL).double())
            cos.append((unit * F.normalize(b.target, dim=-1)).sum(-1).double())
            if loss is not None:
                loss_sum += float(loss(pred, b)) * len(b)
            n += len(b)
        rank, cos_all = torch.cat(ranks), torch.cat(cos)
        out = {f"hit{k}": float((rank <= k).double().mean()) for k in (1, 5, 10)}
        out.update(mrr=float((1 / rank).mean()), cos=float(cos_all.mean()))
        out["loss"] = loss_sum / n if loss is not None else float((1 - cos_all).mean())
        return out


def vector_loss(cfg: TrainConfig, pred: torch.Tensor, batch: Batch) -> torch.Tensor:
    target = batch.target
    if cfg.loss == "mse":
        return F.mse_loss(pred, target)
    cosine = (1 - F.cosine_similarity(pred, target, dim=-1)).mean()
    if cfg.loss == "cosine":
        return cosine
    nce = info_nce(pred, target, batch.target_id, cfg.temperature)
    return nce if cfg.loss == "infonce" else cosine + cfg.mix_weight * nce


def info_nce(pred: torch.Tensor, target: torch.Tensor, target_id: torch.Tensor | None, temperature: float):
    """In-batch InfoNCE: each prediction against every target of the batch; other samples with
    the same target vector are not counted as negatives."""
    logits = F.normalize(pred, dim=-1) @ F.normalize(target, dim=-1).T / temperature
    if target_id is not None:
        same = (target_id[:, None] == target_id[None, :]) & ~torch.eye(len(pred), dtype=torch.bool, device=pred.device)
        logits = logits.masked_fill(same, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(pred), device=pred.device))
