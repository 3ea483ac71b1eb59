"""History classes and the class copy head of the category task (issue 45, item 3): exact counts,
the mixture against a hand computation, refusals, losses on the mixture, and a short fit where the
next class is the history's most frequent one."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from data_io.vector_seqs import VectorSamples, vector_dataset
from models import ModelError, build_model, count_params, fit
from models.config import ModelConfig, TrainConfig
from models.losses import Loss
from models.tasks import get_task
from spaces import SpaceError, parse_space

TINY = {"family": "gru", "d_model": 4, "layers": 1, "dropout": 0.0, "use_user": False, "use_position": False}
CLASSES = ["a", "b", "c"]


def cat_data(n: int = 40, L: int = 3, D: int = 2, seed: int = 0, known: bool = True, p_major: float = 0.7,
             p_unknown: float = 0.0):
    """Category data with noise inputs; each history step's class is the sample's majority class m
    (probability p_major) or another; the target is the history's most frequent known class."""
    rng = np.random.default_rng(seed)
    raw, classes = {}, {}
    for s in ("train", "val", "test"):
        lengths = rng.integers(1, L + 1, n)
        lengths[0] = L  # train's longest history sets the width: no cut
        real = np.arange(L)[None, :] < lengths[:, None]
        major = rng.integers(0, 3, n)
        other = (major[:, None] + rng.integers(1, 3, (n, L))) % 3
        cls = np.where(rng.random((n, L)) < p_major, major[:, None], other) + 1
        cls = np.where(real & (rng.random((n, L)) >= p_unknown), cls, 0)
        counts = np.stack([(cls == c + 1).sum(1) for c in range(3)], 1)
        target = np.where(counts.max(1) > 0, counts.argmax(1), major)
        x = rng.normal(size=(n, L, D)).astype(np.float32) * real[:, :, None]
        raw[s], classes[s] = VectorSamples(x, lengths, rng.integers(1, 4, n), target), cls
    data = vector_dataset("cls", "category", raw, classes=CLASSES)
    if known:  # by hand, as the data layer will: seq "cls" (class + 1, 0 = unknown) and the info flag
        for s, cls in classes.items():
            assert data[s].seq["vec"].shape[1] == cls.shape[1]
            data[s].seq["cls"] = cls.astype(np.int64)
        data.info.history_classes = True
    return data


def test_flags_off_build_the_same_parameters():
    info = cat_data().info
    names = [n for n, _ in build_model(TINY, info).named_parameters()]
    assert names == ["encoder.proj.weight", "encoder.proj.bias", "encoder.norm.weight", "encoder.norm.bias",
                     "body.rnn.weight_ih_l0", "body.rnn.weight_hh_l0", "body.rnn.bias_ih_l0", "body.rnn.bias_hh_l0",
                     "out_norm.weight", "out_norm.bias", "head.out.weight", "head.out.bias"]


@pytest.mark.parametrize("family", ["gru", "transformer"])
def test_count_params_matches_hand_count(family):
    info = cat_data().info
    d, D, C = 4, 2, 3
    body = 3 * (2 * d * d + 2 * d) + 2 * d if family == "gru" else None  # GRU + out_norm
    cfg = {**TINY, "family": family, "heads": 2, "history_classes": True, "class_copy": True}
    model = build_model(cfg, info)
    assert count_params(cfg, info) == sum(p.numel() for p in model.parameters())
    plain = count_params({**cfg, "history_classes": False, "class_copy": False}, info)
    assert count_params(cfg, info) - plain == (C + 1) * d + 2 * (d * d + d) + d + 1  # class rows; query, key, gate
    if body is not None:  # proj, class rows, norm, body, head, copy head: 12 + 16 + 8 + 128 + 15 + 45
        assert count_params(cfg, info) == (D * d + d) + (C + 1) * d + 2 * d + body + (d * C + C) + 45 == 224


def _known_model(data, gen_logits):
    """Class copy with uniform attention over the known steps, gate 0.75, generated softmax(gen_logits)."""
    model = build_model({**TINY, "class_copy": True}, data.info)
    cc, out = model.class_copy, model.head.out
    with torch.no_grad():
        cc.query.weight.zero_(), cc.query.bias.zero_(), cc.gate.weight.zero_(), cc.gate.bias.fill_(math.log(3.0))
        out.weight.zero_(), out.bias.copy_(gen_logits)
    return model.eval()


def test_mixture_matches_hand_computation():
    data, gen = cat_data(), torch.tensor([1.0, 0.0, -1.0])
    model = _known_model(data, gen)
    cls = torch.tensor([[1, 2, 1], [3, 0, 2]])  # sample 1: one unknown step, then padding (its 2 is ignored)
    seq = {"vec": torch.randn(2, 3, 2, generator=torch.Generator().manual_seed(0)), "cls": cls}
    with torch.no_grad():
        p = model(seq, torch.ones(2, dtype=torch.long), torch.tensor([3, 2])).exp()
    copied = torch.tensor([[2 / 3, 1 / 3, 0.0], [0.0, 0.0, 1.0]])
    want = 0.75 * gen.softmax(-1) + 0.25 * copied
    torch.testing.assert_close(p, want, rtol=0, atol=1e-6)
    torch.testing.assert_close(p.sum(-1), torch.ones(2), rtol=0, atol=1e-6)


def test_no_known_class_gives_the_generated_distribution():
    data, gen = cat_data(), torch.tensor([0.5, 2.0, -1.0])
    model = _known_model(data, gen)
    seq = {"vec": torch.randn(2, 3, 2, generator=torch.Generator().manual_seed(1)), "cls": torch.tensor([[0, 0, 0],
                                                                                                        [2, 0, 0]])}
    with torch.no_grad():
        logp = model(seq, torch.ones(2, dtype=torch.long), torch.tensor([3, 1]))
    assert torch.isfinite(logp).all()
    torch.testing.assert_close(logp[0], gen.log_softmax(-1), rtol=0, atol=1e-6)  # copy mass 0, no NaN
    torch.testing.assert_close(logp[1].exp(), 0.75 * gen.softmax(-1) + 0.25 * torch.tensor([0.0, 1.0, 0.0]),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("loss", ["focal", "label_smoothing", "weighted_ce", "ce"])
def test_losses_on_the_mixture_are_finite(loss):
    """The output stays log-probabilities (<= 0, summing to 1), also where the copy is certain, so
    focal's (1 - p)^gamma with a fractional gamma and label smoothing's mean log-prob stay finite."""
    data = cat_data()
    model = build_model({**TINY, "history_classes": True, "class_copy": True}, data.info)
    with torch.no_grad():
        model.class_copy.gate.bias.fill_(-30.0)  # all mass copied: p = 1 on the one known class
    seq = {"vec": torch.randn(2, 3, 2), "cls": torch.tensor([[2, 0, 0], [1, 3, 1]])}
    logp = model(seq, torch.ones(2, dtype=torch.long), torch.tensor([1, 3]))
    assert (logp <= 0).all() and torch.isfinite(logp).all()
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(2), rtol=0, atol=1e-5)
    value = Loss(TrainConfig(loss=loss, focal_gamma=1.5), data["train"].target, 3)(logp, torch.tensor([1, 2]))
    assert math.isfinite(float(value.detach()))
    value.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("key", ["history_classes", "class_copy"])
def test_refusals(key):
    with pytest.raises(ModelError, match=f"^{key}=True: the dataset has no class per history step; .* set {key} false"):
        build_model({**TINY, key: True}, cat_data(known=False).info)
    for task in ("vector", "location"):
        with pytest.raises(ModelError, match=f"^{key}=True: only the category task .* false for the {task} task"):
            get_task(task).check_model(ModelConfig(**{key: True}))
    build_model({**TINY, key: True}, cat_data().info)  # a dataset with history classes builds


@pytest.mark.parametrize("key", ["history_classes", "class_copy"])
def test_spaces_refuse_class_keys_for_other_tasks(key, tmp_path):
    spaces = Path(__file__).parents[1] / "spaces"
    for name, ok in (("synthetic_vector", False), ("quickstart", False), ("synthetic_category", True)):
        raw = yaml.safe_load((spaces / f"{name}.yaml").read_text())
        raw["params"][key] = {"type": "categorical", "choices": [True, False]}
        if ok:
            assert parse_space(raw, tmp_path / "s.yaml").param(key).values() == [True, False]
            continue
        task = raw.get("task", "location")
        with pytest.raises(SpaceError, match=f"params.{key}: true is not available for the {task} task"):
            parse_space(raw, tmp_path / "s.yaml")


def test_class_copy_learns_the_history_majority():
    """Inputs are noise, so only the history's classes tell the next class: a plain model stays
    near chance, the class copy head finds the majority class."""
    torch.manual_seed(0)
    data = cat_data(n=300, L=6, D=4, seed=3, p_major=0.6, p_unknown=0.1)
    cfg = {**TINY, "d_model": 16, "loss": "weighted_ce", "metric": "val_f1", "lr": 3e-3, "batch_size": 32,
           "epochs": 4, "seed": 0, "weight_decay": 0.0}
    plain = fit(cfg, data, device="cpu").best_metrics["val_f1"]
    copy = fit({**cfg, "class_copy": True}, data, device="cpu").best_metrics["val_f1"]
    both = fit({**cfg, "class_copy": True, "history_classes": True}, data, device="cpu").best_metrics["val_f1"]
    assert plain < 0.5 and min(copy, both) > 0.8, (plain, copy, both)  # seen: ~0.37, ~0.89, ~0.94
