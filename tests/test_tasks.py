"""The category and vector tasks on the model side: exact counts, refusals, losses against hand
computations, retrieval metrics against a brute-force reference."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from data_io.batches import Batch
from data_io.synthetic_vector_seqs import VectorSynthParams, synthetic_vector
from data_io.vector_seqs import VectorSamples, vector_dataset
from models import ModelError, build_model, count_params
from models.config import FAMILIES, TrainConfig
from models.tasks import get_task
from models.tasks.vector import bank_nce, info_nce, vector_loss

SMALL = {"d_model": 16, "layers": 1, "heads": 2, "dropout": 0.0}


def toy(task: str, n: int = 60, L: int = 6, D: int = 5, Dt: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)

    def split(k):
        lengths = rng.integers(1, L + 1, n)
        x = rng.normal(size=(n, L, D)).astype(np.float32) * (np.arange(L)[None, :, None] < lengths[:, None, None])
        target = rng.integers(0, 3, n) if task == "category" else rng.normal(size=(n, Dt)).astype(np.float32)
        return VectorSamples(x, lengths, rng.integers(1, 6, n), target)
    return vector_dataset("toy", task, {s: split(s) for s in ("train", "val", "test")}, classes=["a", "b", "c"])


@pytest.mark.parametrize("task", ["category", "vector"])
@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "pointer"])
@pytest.mark.parametrize("variant", [{}, {"use_user": False, "use_position": False, "layers": 2}])
def test_count_params_is_exact(task, family, variant):
    data = toy(task)
    cfg = {**SMALL, "family": family, **variant}
    model = build_model(cfg, data.info)
    assert count_params(cfg, data.info) == sum(p.numel() for p in model.parameters())
    out = model(*(lambda b: (b.seq, b.user, b.lengths))(next(iter_batches(data["val"], 8))))
    assert out.shape == ((8, 3) if task == "category" else (8, 4))


def iter_batches(split, n):
    from data_io.batches import iter_batches as it
    return it(split, n)


@pytest.mark.parametrize("task", ["category", "vector"])
def test_pointer_and_tied_head_are_refused(task):
    data = toy(task)
    with pytest.raises(ModelError, match=f"family='pointer': not available for the {task} task"):
        build_model({**SMALL, "family": "pointer"}, data.info)
    with pytest.raises(ModelError, match="tied_head=True"):
        build_model({**SMALL, "family": "gru", "tied_head": True}, data.info)


def test_losses_and_samplers_are_checked_per_task():
    with pytest.raises(ModelError, match="loss='mse': not available for the category task"):
        get_task("category").check_train(TrainConfig(loss="mse", metric="val_f1"))
    with pytest.raises(ModelError, match="sampler='balanced'"):
        get_task("vector").check_train(TrainConfig(loss="cosine", sampler="balanced", metric="val_hit5"))
    with pytest.raises(ModelError, match="metric='val_f1'"):
        get_task("vector").check_train(TrainConfig(loss="cosine", metric="val_f1"))


def test_delta_needs_matching_dimensions():
    with pytest.raises(ModelError, match="delta=True"):
        build_model({**SMALL, "family": "gru", "delta": True}, toy("vector").info)  # 5-dim in, 4-dim out
    data = toy("vector", D=4)
    model = build_model({**SMALL, "family": "gru", "delta": True}, data.info)
    torch.nn.init.zeros_(model.head.out.weight), torch.nn.init.zeros_(model.head.out.bias)
    b = next(iter_batches(data["val"], 8))
    last = b.seq["vec"][torch.arange(8), b.lengths - 1]
    assert torch.equal(model(b.seq, b.user, b.lengths), last)  # a zero change predicts persistence


@pytest.mark.parametrize("family", ["gru", "transformer"])
def test_copy_head_counts_and_matches_hand_computation(family):
    with pytest.raises(ModelError, match="copy=True"):
        build_model({**SMALL, "family": family, "copy": True}, toy("vector").info)  # 5-dim in, 4-dim out
    with pytest.raises(ModelError, match="copy=True: only the vector task"):
        build_model({**SMALL, "family": family, "copy": True}, toy("category").info)
    data = toy("vector", D=4)
    cfg = {**SMALL, "family": family, "copy": True}
    model = build_model(cfg, data.info)
    d = SMALL["d_model"]
    assert count_params(cfg, data.info) == sum(p.numel() for p in model.parameters())
    assert count_params(cfg, data.info) - count_params({**cfg, "copy": False}, data.info) == 2 * (d * d + d) + d + 1
    gen = torch.tensor([3.0, 0.0, -4.0, 0.0])
    with torch.no_grad():  # uniform attention over the real steps, gate sigmoid(log 3) = 0.75, generated vector `gen`
        model.copy.query.weight.zero_(), model.copy.query.bias.zero_(), model.copy.gate.weight.zero_()
        model.copy.gate.bias.fill_(math.log(3.0)), model.head.out.weight.zero_(), model.head.out.bias.copy_(gen)
    model.eval()
    b = next(iter_batches(data["val"], 8))
    with torch.no_grad():
        got = model(b.seq, b.user, b.lengths)
    for i in range(8):
        x = b.seq["vec"][i, :b.lengths[i]].numpy()
        mean_unit = (x / np.linalg.norm(x, axis=1, keepdims=True)).mean(0)
        want = 0.75 * gen.numpy() / 5.0 + 0.25 * mean_unit
        np.testing.assert_allclose(got[i].numpy(), want, rtol=1e-5, atol=1e-6)


def _batch(pred_dim=3, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.randn(n, pred_dim, generator=g)
    ids = torch.tensor([0, 1, 0, 2])  # samples 0 and 2 share a target vector
    target[2] = target[0]
    return torch.randn(n, pred_dim, generator=g), Batch(torch.arange(n), torch.zeros(n, dtype=torch.long), target,
                                                        torch.ones(n, dtype=torch.long), {}, ids)


def test_vector_losses_match_hand_computation():
    pred, b = _batch()
    t = b.target
    mse = sum(float(((pred[i] - t[i]) ** 2).mean()) for i in range(4)) / 4
    cos = [float(pred[i] @ t[i] / (pred[i].norm() * t[i].norm())) for i in range(4)]
    assert math.isclose(float(vector_loss(TrainConfig(loss="mse"), pred, b)), mse, rel_tol=1e-5)
    assert math.isclose(float(vector_loss(TrainConfig(loss="cosine"), pred, b)), 1 - sum(cos) / 4, rel_tol=1e-5)
    # InfoNCE by hand: softmax over the batch's targets at temperature 0.5, the same-target
    # duplicate (0 <-> 2) left out of each other's negatives.
    u, v = F.normalize(pred, dim=-1), F.normalize(t, dim=-1)
    total = 0.0
    for i in range(4):
        negatives = [j for j in range(4) if j == i or int(b.target_id[j]) != int(b.target_id[i])]
        logits = [float(u[i] @ v[j]) / 0.5 for j in negatives]
        total += -(logits[negatives.index(i)] - math.log(sum(math.exp(x) for x in logits)))
    assert math.isclose(float(info_nce(pred, t, b.target_id, 0.5)), total / 4, rel_tol=1e-5)
    mix = vector_loss(TrainConfig(loss="mix", temperature=0.5, mix_weight=0.1), pred, b)
    assert math.isclose(float(mix), 1 - sum(cos) / 4 + 0.1 * total / 4, rel_tol=1e-5)


def test_bank_nce_matches_hand_computation():
    """InfoNCE over the whole bank: a softmax over every candidate's cosine, the target's row right."""
    g = torch.Generator().manual_seed(3)
    pred, bank, ids = torch.randn(3, 4, generator=g), torch.randn(5, 4, generator=g), torch.tensor([4, 0, 4])
    u, w = F.normalize(pred, dim=-1), F.normalize(bank, dim=-1)
    total = 0.0
    for i in range(3):
        logits = [float(u[i] @ w[j]) / 0.2 for j in range(5)]
        total += -(logits[int(ids[i])] - math.log(sum(math.exp(x) for x in logits)))
    assert math.isclose(float(bank_nce(pred, ids, w, 0.2)), total / 3, rel_tol=1e-5)


def test_bank_nce_trains_against_the_training_bank():
    """The vector task's bank_nce loss takes its candidates from the train split's bank."""
    data = synthetic_vector(VectorSynthParams(groups=6, steps=20, dim=8, items=30, n_folds=0, seed=2))
    loss = get_task("vector").loss(TrainConfig(loss="bank_nce", temperature=0.2), data)
    train = data["train"]
    rows = torch.arange(4)
    batch = Batch(rows, torch.zeros(4, dtype=torch.long), torch.from_numpy(train.target[:4]),
                  torch.ones(4, dtype=torch.long), {}, torch.from_numpy(train.target_id[:4]))
    pred = torch.from_numpy(train.target[:4]).clone()  # a perfect prediction: its own row is the best candidate
    unit = F.normalize(torch.from_numpy(data.banks["train"]), dim=-1)
    assert math.isclose(float(loss(pred, batch)), float(bank_nce(pred, batch.target_id, unit, 0.2)), rel_tol=1e-6)
    assert float(loss(pred, batch)) < float(loss(-pred, batch))


def test_focal_alpha_weights_classes():
    from models.losses import Loss
    train = np.array([0, 0, 0, 1])  # class weights 2/3 and 2 (inverse frequency, mean 1)
    logp = torch.log(torch.tensor([[0.7, 0.3], [0.4, 0.6]]))
    target = torch.tensor([0, 1])
    cfg = TrainConfig(loss="focal", focal_gamma=2.0, focal_alpha=True)
    per = [-(0.3 ** 2) * math.log(0.7), -(0.4 ** 2) * math.log(0.6)]
    want = (2 / 3 * per[0] + 2 * per[1]) / (2 / 3 + 2)
    assert math.isclose(float(Loss(cfg, train, 2)(logp, target)), want, rel_tol=1e-5)


def test_retrieval_metrics_match_brute_force():
    data = toy("vector", n=40, Dt=3)
    data.banks["val"] = np.round(data.banks["val"], 0)  # many exact ties in the bank
    v = data["val"]
    v.target = data.banks["val"][v.target_id]
    model = build_model({**SMALL, "family": "gru"}, data.info)
    got = get_task("vector").evaluate(model, data, "val")
    # brute force, one sample at a time, ties counted against the target
    model.eval()
    ranks, cos = [], []
    bank = data.banks["val"]
    with torch.no_grad():
        for i in range(len(v)):
            seq = {"vec": torch.from_numpy(v.seq["vec"][i:i + 1, :v.lengths[i]])}
            p = model(seq, torch.from_numpy(v.user[i:i + 1]), torch.from_numpy(v.lengths[i:i + 1]))[0].numpy()
            # a zero vector has no direction: its cosine with anything is taken as 0
            sims = [float(np.dot(p, c) / (np.linalg.norm(p) * np.linalg.norm(c))) if np.linalg.norm(c) else 0.0
                    for c in bank]
            true = sims[v.target_id[i]]
            ranks.append(sum(1 for j, s in enumerate(sims) if j != v.target_id[i] and (s >= true - 1e-6 or math.isnan(s))) + 1
                         if not math.isnan(true) else len(bank))
            t = v.target[i]
            cos.append(float(np.dot(p, t) / (np.linalg.norm(p) * np.linalg.norm(t))) if np.linalg.norm(t) else 0.0)
    ranks = np.array(ranks)
    assert got["hit1"] == pytest.approx(np.mean(ranks <= 1)) and got["hit5"] == pytest.approx(np.mean(ranks <= 5))
    assert got["mrr"] == pytest.approx(np.mean(1 / ranks), rel=1e-5)
    assert got["cos"] == pytest.approx(np.mean(cos), rel=1e-4)
