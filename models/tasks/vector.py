"""Next vector: sequences of vectors in, a vector out; selected on retrieval Hit@5, the rank of
the true next vector among the split's candidate bank by cosine similarity (ties counted against
the target), because mean cosine alone can hide a model that retrieves nothing."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from data_io import Dataset, DatasetInfo
from data_io.batches import Batch
from models.bank_pointer import BankScored, PointerEnsemble, loss_problem
from models.config import ModelConfig, ModelError, TrainConfig
from models.metrics import pessimistic_rank
from models.tasks._base import LossFn, Task, check_k, history_order, split_order, last_step, outputs, row_chunks
from models.vector_seq_nets import VectorHead, VectorInputModel


TIE_ATOL = 1e-6  # cosine scores this close to the target's are ties (counted against it)


class VectorTask(Task):
    name = "vector"
    losses = ("cosine", "mse", "infonce", "mix", "bank_nce")
    metrics = ("val_hit5", "val_hit1", "val_hit10", "val_mrr", "val_cos", "val_loss")
    objective = "val_hit5"
    default_loss = "cosine"
    balanced_sampler = False
    copies_history = True
    reads_vectors = True
    metric_labels = {"hit5": "Hit@5", "hit10": "Hit@10"}  # it ranks a bank, not classes

    def build(self, mcfg: ModelConfig, info: DatasetInfo) -> nn.Module:
        for key, what in (("delta", "no last input to add a change to"), ("copy", "no history vector to copy"),
                          ("bank_pointer", "no history vector to point at in the bank")):
            if getattr(mcfg, key) and info.target_dim != info.input_dim:
                raise ModelError(f"{key}=True: targets ({info.target_dim}-dim) and inputs ({info.input_dim}-dim) differ, "
                                 f"so there is {what}; set {key} false")
        return VectorInputModel(mcfg, info, VectorHead(mcfg.d_model, info.target_dim, mcfg.delta), mcfg.copy)

    def loss(self, tcfg: TrainConfig, data: Dataset) -> LossFn:
        bank = F.normalize(torch.from_numpy(data.banks["train"]), dim=-1)
        if tcfg.loss == "bank_nce":
            plain = lambda pred, b: bank_nce(pred, b.target_id, bank.to(pred.device), tcfg.temperature)  # noqa: E731
        else:
            plain = lambda pred, batch: vector_loss(tcfg, pred, batch)  # noqa: E731
        relabel = novel_relabel(bank) if tcfg.novel_target else lambda batch: batch.target_id

        def loss(out, batch: Batch) -> torch.Tensor:
            # a bank pointer's output is known by its type only: the task never sees the model config here
            if isinstance(out, BankScored):
                return pointer_nll(out, relabel(batch), bank.to(out.pred.device), tcfg.loss)
            if tcfg.novel_target:
                raise ModelError("novel_target=True: only a bank pointer can predict a new place; set bank_pointer "
                                 "true or novel_target false")
            return plain(out, batch)
        return loss

    @torch.no_grad()  # a bank pointer's output is scored here, outside the model's forward
    def evaluate(self, model, data: Dataset, split: str, loss: LossFn | None = None,
                 batch_size: int = 512) -> dict[str, float]:
        bank = F.normalize(torch.from_numpy(data.banks[split]), dim=-1)
        ranks, cos, loss_sum, n, pointer = [], [], 0.0, 0, False
        for pred, b in outputs(model, data[split], batch_size):
            if isinstance(pred, BankScored):  # ranked by p; its loss, -log p, over this split's own bank
                rank, c, nll = pointer_retrieve(pred, b.target, b.target_id, bank.to(pred.pred.device))
                loss_sum, pointer = loss_sum + float(nll.sum()), True
            else:
                rank, c = retrieve(pred, b.target, b.target_id, bank.to(pred.device))
                if loss is not None:
                    loss_sum += float(loss(pred, b)) * len(b)
            ranks.append(rank)
            cos.append(c)
            n += len(b)
        out = retrieval_metrics(torch.cat(ranks), torch.cat(cos))
        out["loss"] = loss_sum / n if loss is not None or pointer else out["loss"]
        return out

    @torch.no_grad()
    def top_k(self, model, data: Dataset, split: str, k: int, batch_size: int = 512) -> dict[str, np.ndarray]:
        """Rows of the split's candidate bank (target: the target's row); scores: cosine similarity
        (bank_pointer: log p)."""
        bank = F.normalize(torch.from_numpy(data.banks[split]), dim=-1)
        check_k(k, len(bank), "candidates of the bank")
        rows, ids, scores = [], [], []
        for pred, b in outputs(model, data[split], batch_size):
            top = bank_scores(pred, bank).topk(k, dim=1)
            rows.append(b.index)
            ids.append(top.indices)
            scores.append(top.values.float())
        return {"target": data[split].target_id, "pred": split_order(rows, ids), "score": split_order(rows, scores)}

    def combine(self, outs: list) -> torch.Tensor | PointerEnsemble:
        """The mean of the unit vectors: it ranks the bank by the models' mean cosine, and no model's
        output norm outweighs the others'. Bank pointers: the mean of their p over the bank, once
        the task gives it a bank (PointerEnsemble)."""
        if isinstance(outs[0], BankScored):
            return PointerEnsemble(list(outs))
        return torch.stack([F.normalize(o, dim=-1) for o in outs]).mean(0)

    def reference_scores(self, data: Dataset) -> dict[str, dict[str, float]]:
        """The most frequent train target vector for every sample; and, where inputs and targets
        live in one space, persistence (the last input vector) and history_sum (the sum of the
        history's unit vectors: it retrieves the places a history keeps returning to, a strong bar
        on mobility data, where most next places are in the history), history_items (its own items
        first) and, where the bank has an all-zero row, history_or_new (or_new)."""
        train, val = data["train"], data["val"]
        ids, counts = np.unique(train.target_id, return_counts=True)
        common = data.banks["train"][ids[counts.argmax()]]
        out = {"most_frequent": predicted_vectors(lambda rows: np.broadcast_to(common, (len(rows), len(common))), data)}
        if data.info.input_dim == data.info.target_dim:
            last = last_step(val, "vec")
            out["persistence"] = predicted_vectors(lambda rows: last[rows], data)
            out["history_sum"] = predicted_vectors(lambda rows: history_sum(val.seq["vec"][rows], val.lengths[rows]), data)
            items = lambda rows, bank: history_item_scores(  # noqa: E731
                val.seq["row"][rows], history_sum(val.seq["vec"][rows], val.lengths[rows]), bank)
            out["history_items"] = scored_bank(items, data)
            if (data.banks["val"] == 0).all(-1).any():
                out["history_or_new"] = scored_bank(lambda rows, bank: or_new(items(rows, bank), bank), data)
        return out


def history_sum(vec: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """[N, L, D] histories (first `lengths` steps real) -> [N, D] sums of their unit vectors."""
    norm = np.linalg.norm(vec, axis=-1, keepdims=True)
    unit = np.divide(vec, norm, out=np.zeros_like(vec), where=norm > 0)
    real = np.arange(vec.shape[1])[None, :, None] < lengths[:, None, None]
    return (unit * real).sum(axis=1)


def history_item_scores(rows: np.ndarray, summed: np.ndarray, unit_bank: torch.Tensor) -> torch.Tensor:
    """[N, M] float64 scores of the bank: the history's own items first (seq "row": bank row + 1,
    0 = none), by count, ties to the most recent, then every other row by its cosine to the
    history's summed unit vectors (history_sum)."""
    cos = F.normalize(torch.from_numpy(summed).double(), dim=-1) @ unit_bank.double().T  # in [-1, 1]
    order = history_order(rows, unit_bank.shape[0])
    return torch.from_numpy(order) + cos


NEW_RANK = 5  # history_or_new ranks "somewhere new" fifth: the Hit@5 objective's last slot


def or_new(scores: torch.Tensor, unit_bank: torch.Tensor) -> torch.Tensor:
    """history_or_new: history_item_scores with the bank's all-zero rows ("somewhere new", a place
    unseen in train) ranked after the history's first NEW_RANK - 1 items (or after all of them,
    where it has fewer). A bar for models that predict a new place (novel_target): the history
    baselines alone never retrieve one, and such places are 22.8 % of Geolife's test targets."""
    zero = (unit_bank == 0).all(-1)
    k = min(NEW_RANK - 1, scores.shape[1])
    floor = scores.masked_fill(zero[None, :], float("-inf")).topk(k, dim=1).values[:, -1:]  # the (k)th item's score
    # history items sit >= 2 apart and >= 3 above every other row (history_item_scores): 1 below the
    # (k)th item is above the next, or, if the (k)th is no history item, 2 is above every other row
    at = torch.where(floor >= 3, floor - 1, torch.full_like(floor, 2.0))
    return torch.where(zero[None, :], at, scores)


def scored_bank(score: Callable[[np.ndarray, torch.Tensor], torch.Tensor], data: Dataset, split: str = "val",
                chunk: int = 512) -> dict[str, float]:
    """Hit@K and MRR of bank scores given without a model (`score(rows, unit bank)` -> [rows, M]);
    ties count against the target, as for the models."""
    s, bank = data[split], F.normalize(torch.from_numpy(data.banks[split]), dim=-1)
    ranks = []
    for rows in row_chunks(len(s), chunk):
        scores = score(rows, bank)
        target_id = torch.from_numpy(s.target_id[rows])
        ranks.append(pessimistic_rank(scores, scores.gather(1, target_id[:, None]), TIE_ATOL).double())
    out = retrieval_metrics(torch.cat(ranks), torch.zeros(len(s), dtype=torch.float64))
    return {k: v for k, v in out.items() if k not in ("cos", "loss")}  # no predicted vector: no cosine


def retrieve(pred: torch.Tensor, target: torch.Tensor, target_id: torch.Tensor,
             unit_bank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rank of the true target among the bank by cosine, ties against it; cosine to the target)."""
    unit = F.normalize(pred, dim=-1)
    scores = unit @ unit_bank.T  # [B, bank]
    rank = pessimistic_rank(scores, scores.gather(1, target_id[:, None]), TIE_ATOL).double()
    return rank, (unit * F.normalize(target, dim=-1)).sum(-1).double()


def bank_scores(out, unit_bank: torch.Tensor) -> torch.Tensor:
    """[B, M] scores of a bank of unit vectors: cosine to a predicted vector, or a bank pointer's log p."""
    unit_bank = unit_bank.to(out.pred.device if isinstance(out, BankScored) else out.device)
    return out.log_p(unit_bank) if isinstance(out, BankScored) else F.normalize(out, dim=-1) @ unit_bank.T


def pointer_retrieve(out, target: torch.Tensor, target_id: torch.Tensor,
                     unit_bank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A bank pointer's (rank of the target by p, ties against it; cosine of its generated vector to
    the target; -log p of the target)."""
    logp = out.log_p(unit_bank)
    true = logp.gather(1, target_id[:, None])
    rank = pessimistic_rank(logp, true, TIE_ATOL).double()
    cos = (F.normalize(out.pred, dim=-1) * F.normalize(target, dim=-1)).sum(-1).double()
    return rank, cos, -true.squeeze(1).double()


def retrieval_metrics(rank: torch.Tensor, cos: torch.Tensor) -> dict[str, float]:
    out = {f"hit{k}": float((rank <= k).double().mean()) for k in (1, 5, 10)}
    out.update(mrr=float((1 / rank).mean()), cos=float(cos.mean()), loss=float((1 - cos).mean()))
    return out


def predicted_vectors(predict: Callable[[np.ndarray], np.ndarray], data: Dataset, split: str = "val",
                      chunk: int = 512) -> dict[str, float]:
    """The retrieval metrics of vectors predicted without a model (`predict(rows)` -> [rows, D])."""
    s, bank = data[split], F.normalize(torch.from_numpy(data.banks[split]), dim=-1)
    ranks, cos = [], []
    for rows in row_chunks(len(s), chunk):
        rank, c = retrieve(torch.from_numpy(np.array(predict(rows), dtype=np.float32)), torch.from_numpy(s.target[rows]),
                           torch.from_numpy(s.target_id[rows]), bank)
        ranks.append(rank)
        cos.append(c)
    out = retrieval_metrics(torch.cat(ranks), torch.cat(cos))
    out.pop("loss")  # the training loss is the model's; 1 - cos shows as cos
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


def bank_nce(pred: torch.Tensor, target_id: torch.Tensor, unit_bank: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE over the whole candidate bank: a softmax over every bank vector's cosine to the
    prediction, the target's row the right answer. It trains the ranking that Hit@K measures,
    against every candidate rather than a batch's few."""
    return F.cross_entropy(F.normalize(pred, dim=-1) @ unit_bank.T / temperature, target_id)


def pointer_nll(out, target_id: torch.Tensor, unit_bank: torch.Tensor, loss: str) -> torch.Tensor:
    """A bank pointer's loss: -log p of the target's row over the (train) bank."""
    problem = loss_problem(True, loss)
    if problem:
        raise ModelError(problem)
    return -out.log_p(unit_bank).gather(1, target_id[:, None]).mean()


def novel_relabel(unit_bank: torch.Tensor) -> Callable[[Batch], torch.Tensor]:
    """novel_target: a train target that is none of its history's bank rows counts as the bank's
    all-zero row, "somewhere new". Held-out targets at places unseen in train are that row (22.8 %
    of Geolife's test), and train has none of them, so without a stand-in the pointer's novel logit
    only learns to say never; the places a history lacks are the nearest thing train holds."""
    zero = (unit_bank == 0).all(-1).nonzero().flatten()
    if not len(zero):
        raise ModelError("novel_target=True: the train bank has no all-zero row (a place with no known vector) to "
                         "stand for a new place; set novel_target false")
    new = int(zero[0])

    def relabel(batch: Batch) -> torch.Tensor:
        inside = (batch.seq["row"] == batch.target_id[:, None] + 1).any(1)
        return torch.where(inside, batch.target_id, torch.full_like(batch.target_id, new))
    return relabel


def info_nce(pred: torch.Tensor, target: torch.Tensor, target_id: torch.Tensor | None, temperature: float):
    """In-batch InfoNCE: each prediction against every target of the batch; other samples with
    the same target vector are not counted as negatives."""
    logits = F.normalize(pred, dim=-1) @ F.normalize(target, dim=-1).T / temperature
    if target_id is not None:
        same = (target_id[:, None] == target_id[None, :]) & ~torch.eye(len(pred), dtype=torch.bool, device=pred.device)
        logits = logits.masked_fill(same, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(pred), device=pred.device))
