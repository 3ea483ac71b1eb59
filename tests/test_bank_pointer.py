"""The vector task's pointer over the candidate bank (bank_pointer, issue 45 item 3): exact counts,
p against a hand computation, no NaN where nothing can be copied, ensembles, refusals, and a
short fit on data whose next place is always one of the history's places."""

import math

import numpy as np
import optuna
import pytest
import torch
import torch.nn.functional as F

from data_io.vector_seqs import VectorSamples, vector_dataset
from models import ModelError, build_model, count_params, fit
from models.bank_pointer import PointerOutput
from models.build import FoldEnsemble
from models.config import split_config
from models.tasks import get_task
from spaces import CompiledSpace, SpaceError, parse_space

SMALL = {"family": "gru", "d_model": 16, "layers": 1, "heads": 2, "dropout": 0.0}
SPLITS = ("train", "val", "test")


def exact_rows(x: np.ndarray, lengths: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """Bank row + 1 of each real, non-zero history step whose vector is exactly a bank row; else 0."""
    match = (x[:, :, None, :] == bank[None, None, :, :]).all(-1)  # [N, L, M]
    real = (np.arange(x.shape[1])[None, :] < lengths[:, None]) & (np.abs(x).sum(-1) > 0)
    return np.where(match.any(-1) & real, match.argmax(-1) + 1, 0).astype(np.int64)


def places(n: int = 600, n_places: int = 120, dim: int = 8, L: int = 5, seed: int = 0):
    """Histories of 2..L random places of one shared bank; the next place is always one of them."""
    rng = np.random.default_rng(seed)
    bank = rng.normal(size=(n_places, dim)).astype(np.float32)

    def split(m):
        lengths = rng.integers(2, L + 1, m)
        hist = rng.integers(0, n_places, (m, L))
        x = bank[hist] * (np.arange(L)[None, :, None] < lengths[:, None, None])
        target = hist[np.arange(m), rng.integers(0, lengths)]
        return VectorSamples(x.astype(np.float32), lengths, rng.integers(1, 5, m), bank[target])
    ds = vector_dataset("places", "vector", {"train": split(n), "val": split(n // 3), "test": split(n // 3)},
                        banks={s: bank for s in SPLITS})
    for s in SPLITS:
        ds[s].seq["row"] = exact_rows(ds[s].seq["vec"], ds[s].lengths, ds.banks[s])
    return ds


def test_count_is_exact_and_plain_models_are_untouched():
    info = places(n=30).info
    cfg, d = {**SMALL, "bank_pointer": True}, SMALL["d_model"]
    assert count_params(cfg, info) == sum(p.numel() for p in build_model(cfg, info).parameters())
    # query, key, gate, tau, and the novel-place logit
    assert count_params(cfg, info) - count_params(SMALL, info) == 2 * (d * d + d) + (d + 1) + 1 + (d + 1)
    torch.manual_seed(3)
    plain = build_model(SMALL, info)
    torch.manual_seed(3)
    pointer = build_model(cfg, info)
    assert not [n for n in plain.state_dict() if "bank_pointer" in n]
    shared = pointer.state_dict()
    for name, value in plain.state_dict().items():  # built last: the plain parts draw the same weights
        assert torch.equal(value, shared[name]), name


def test_refusals():
    info = places(n=30).info
    other = vector_dataset("x", "vector", {s: VectorSamples(np.ones((4, 2, 3), np.float32), np.full(4, 2),
                                                            np.ones(4, np.int64), np.eye(4, 2, dtype=np.float32))
                                           for s in SPLITS})  # 3-dim in, 2-dim out
    with pytest.raises(ModelError, match="bank_pointer=True: targets"):
        build_model({**SMALL, "bank_pointer": True}, other.info)
    cat = vector_dataset("c", "category", {s: VectorSamples(np.ones((4, 2, 3), np.float32), np.full(4, 2),
                                                            np.ones(4, np.int64), np.arange(4) % 2) for s in SPLITS},
                         classes=["a", "b"])
    with pytest.raises(ModelError, match="bank_pointer=True: only the vector task"):
        build_model({**SMALL, "bank_pointer": True}, cat.info)
    model = build_model({**SMALL, "bank_pointer": True}, info)
    with pytest.raises(ModelError, match="no seq 'row'"):
        model({"vec": torch.ones(1, 2, 8)}, torch.ones(1, dtype=torch.long), torch.tensor([2]))
    with pytest.raises(ModelError, match="bank_pointer=True trains with loss bank_nce; set loss bank_nce"):
        fit({**SMALL, "bank_pointer": True, "loss": "cosine", "epochs": 1}, places(n=30))


def hand_model(info, gate_bias: float, gen: torch.Tensor, tau: float):
    """A bank pointer whose attention is uniform over copyable steps, gate sigmoid(gate_bias),
    generated vector `gen`, temperature `tau`."""
    model = build_model({**SMALL, "bank_pointer": True}, info).eval()
    ptr = model.bank_pointer
    with torch.no_grad():
        ptr.query.weight.zero_(), ptr.query.bias.zero_(), ptr.gate.weight.zero_(), ptr.gate.bias.fill_(gate_bias)
        ptr.log_tau.fill_(math.log(tau)), model.head.out.weight.zero_(), model.head.out.bias.copy_(gen)
    return model


def test_p_matches_a_hand_computation_and_no_copy_means_generated():
    bank = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 2]], np.float32)
    off = [[0.5, 0.5, 0.5], [0.3, 0.3, 0.1], [0.2, 0.1, 0.4]]  # vectors that are no bank row
    x = np.array([[bank[0], bank[2], off[0]], [off[1], off[2], [0, 0, 0]]], np.float32)
    samples = VectorSamples(x, np.array([3, 2]), np.array([1, 1]), bank[[2, 3]])
    data = vector_dataset("hand", "vector", {s: samples for s in SPLITS}, banks={s: bank for s in SPLITS})
    gen = torch.tensor([2.0, 0.0, 1.0])
    model = hand_model(data.info, math.log(3.0), gen, 0.5)  # g = 0.75
    # sample 0: its steps at rows 0 and 2 can be copied, its last cannot; sample 1: nothing can be
    seq = {"vec": torch.from_numpy(x), "row": torch.from_numpy(exact_rows(x, samples.lengths, bank))}
    assert seq["row"].tolist() == [[1, 3, 0], [0, 0, 0]]
    with torch.no_grad():
        out = model(seq, torch.tensor([1, 1]), torch.tensor([3, 2]))
        logp = out.log_p(F.normalize(torch.from_numpy(bank), dim=-1))
    unit = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    cos = unit @ (gen.numpy() / np.linalg.norm(gen.numpy()))
    generated = np.exp(cos / 0.5) / np.exp(cos / 0.5).sum()
    want0 = 0.75 * generated + 0.25 * np.array([0.5, 0.0, 0.5, 0.0])
    np.testing.assert_allclose(logp[0].numpy(), np.log(want0 + 1e-9), rtol=1e-5)
    np.testing.assert_allclose(logp[1].numpy(), np.log(generated + 1e-9), rtol=1e-5)  # the generated alone
    assert out.gate[1].item() == 1.0 and out.attn[1].abs().sum().item() == 0.0 and torch.isfinite(out.attn).all()
    assert out.attn[0].tolist() == pytest.approx([0.5, 0.5, 0.0])
    # the task ranks the bank by p (targets: row 2, row 3), ties against the target
    data["val"].seq["row"] = seq["row"].numpy()
    metrics = get_task("vector").evaluate(model, data, "val")
    ranks = [int((want0 >= want0[2]).sum()), int((generated >= generated[3]).sum())]
    assert ranks == [2, 3]  # row 0 is nearer the generated vector than either target
    assert metrics["hit1"] == 0 and metrics["hit5"] == 1 and metrics["mrr"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert metrics["loss"] == pytest.approx(-(math.log(want0[2] + 1e-9) + math.log(generated[3] + 1e-9)) / 2, rel=1e-5)
    top = get_task("vector").top_k(model, data, "val", 2)
    assert top["pred"].tolist() == [np.argsort(-p)[:2].tolist() for p in (want0, generated)] == [[0, 2]] * 2
    assert top["score"][0] == pytest.approx(np.log(want0[[0, 2]] + 1e-9), rel=1e-5)


def test_an_ensemble_averages_p():
    data = places(n=30)
    torch.manual_seed(0)
    members = [build_model({**SMALL, "bank_pointer": True}, data.info).eval() for _ in range(2)]
    task = get_task("vector")
    b = {k: torch.from_numpy(v[:4]) for k, v in data["val"].seq.items()}
    user, lengths = torch.from_numpy(data["val"].user[:4]), torch.from_numpy(data["val"].lengths[:4])
    bank = F.normalize(torch.from_numpy(data.banks["val"]), dim=-1)
    with torch.no_grad():
        outs = [m(b, user, lengths) for m in members]
        both = FoldEnsemble(members, task)(b, user, lengths)
        assert isinstance(outs[0], PointerOutput)
        want = (outs[0].probs(bank) + outs[1].probs(bank)) / 2
        torch.testing.assert_close(both.log_p(bank), torch.log(want + 1e-9))
    metrics = task.evaluate(FoldEnsemble(members, task), data, "val")
    assert set(metrics) == {"hit1", "hit5", "hit10", "mrr", "cos", "loss"}


def test_a_short_fit_points_at_the_history():
    torch.manual_seed(0)
    data = places()
    train = {**SMALL, "lr": 3e-3, "batch_size": 32, "epochs": 3, "metric": "val_hit5", "seed": 0}
    pointer = fit({**train, "bank_pointer": True, "loss": "bank_nce"}, data, device="cpu")
    plain = fit({**train, "loss": "bank_nce"}, data, device="cpu")
    assert pointer.best_metrics["val_hit5"] >= 0.95, pointer.best_metrics
    assert pointer.best_metrics["val_hit5"] > plain.best_metrics["val_hit5"], (pointer.best_metrics, plain.best_metrics)
    assert math.isfinite(pointer.best_metrics["val_loss"])


def vector_space(params: dict, task: str = "vector") -> dict:
    return {"name": "bp", "task": task, "data": {"synthetic": {"groups": 8, "steps": 20, "dim": 8, "items": 30}},
            "params": {"d_model": 16, "layers": 1, "family": "gru", **params}}


def test_spaces_know_bank_pointer(tmp_path):
    with pytest.raises(SpaceError, match="params.bank_pointer: true is not available for the category task"):
        parse_space(vector_space({"bank_pointer": {"type": "categorical", "choices": [True, False]}}, "category"),
                    tmp_path / "s.yaml")
    with pytest.raises(SpaceError, match="bank_pointer=True trains with loss bank_nce; set loss bank_nce"):
        parse_space(vector_space({"bank_pointer": True}), tmp_path / "s.yaml")  # the default loss: cosine
    space = parse_space(vector_space({"bank_pointer": {"type": "categorical", "choices": [True, False]},
                                      "loss": {"type": "categorical", "choices": ["cosine", "bank_nce"]}}),
                        tmp_path / "s.yaml")
    compiled = CompiledSpace(space, places(n=30).info)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    proposals = [compiled.propose(study.ask()) for _ in range(30)]
    for p in proposals:  # a pointer with another loss is never trained
        mismatched = p.config["bank_pointer"] and p.config["loss"] != "bank_nce"
        assert (p.rejected == "cannot be built") == mismatched, p
        assert not mismatched or "set loss bank_nce" in p.extra["error"]
    assert any(p.feasible and p.config["bank_pointer"] for p in proposals)


def test_an_all_zero_bank_row_scores_by_the_novel_logit():
    """Geolife's bank holds the zero vector (a place unseen in train): no cosine, so its generated
    logit is the learned `novel` (here a constant) instead of 0 / tau."""
    bank = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    x = np.array([[bank[1], bank[2]]], np.float32)
    samples = VectorSamples(x, np.array([2]), np.array([1]), bank[[0]])
    data = vector_dataset("zero", "vector", {s: samples for s in SPLITS}, banks={s: bank for s in SPLITS})
    gen = torch.tensor([1.0, 0.0, 0.0])
    model = hand_model(data.info, 50.0, gen, 0.5)  # g ~ 1: the generated distribution alone
    with torch.no_grad():
        model.bank_pointer.novel.weight.zero_(), model.bank_pointer.novel.bias.fill_(3.0)
        seq = {"vec": torch.from_numpy(x), "row": torch.from_numpy(exact_rows(x, samples.lengths, bank))}
        p = model(seq, torch.tensor([1]), torch.tensor([2])).probs(F.normalize(torch.from_numpy(bank), dim=-1))
    logits = np.array([3.0, 1 / 0.5, 0.0])
    np.testing.assert_allclose(p[0].numpy(), np.exp(logits) / np.exp(logits).sum(), rtol=1e-5)
    assert seq["row"].tolist() == [[2, 3]]  # history rows are never the zero row


def test_unknown_flag_marks_only_all_zero_steps():
    info = places(n=30).info
    torch.manual_seed(0)
    model = build_model({**SMALL, "unknown_flag": True}, info).eval()
    assert count_params({**SMALL, "unknown_flag": True}, info) - count_params(SMALL, info) == SMALL["d_model"]
    enc = model.encoder
    x = torch.zeros(1, 2, info.input_dim)
    x[0, 0, 0] = 1.0
    with torch.no_grad():
        marked = enc({"vec": x}, torch.tensor([1]), torch.tensor([2]))
        enc.unknown.zero_()
        plain = enc({"vec": x}, torch.tensor([1]), torch.tensor([2]))
    assert torch.equal(marked[0, 0], plain[0, 0]) and not torch.allclose(marked[0, 1], plain[0, 1])
    with pytest.raises(ModelError, match="unknown_flag=True: only tasks with vector inputs"):
        get_task("location").check_model(split_config({"unknown_flag": True})[0])


def test_novel_target_trains_targets_outside_the_history_as_somewhere_new():
    """Train has no target at a place unseen in train (the all-zero row), so the novel logit only
    learns "never"; novel_target relabels every train target that is none of the history's rows as
    that row. By hand on a batch; then a short fit on data whose held-out targets are all new places
    retrieves them, where the same fit without it retrieves none."""
    from data_io.batches import Batch
    from models.tasks.vector import novel_relabel
    bank = F.normalize(torch.tensor([[0.0, 0], [1, 0], [0, 1], [1, 1]]), dim=-1)
    rows = torch.tensor([[2, 3], [3, 0], [4, 4]])  # bank rows + 1; 0 = none
    batch = Batch(torch.arange(3), torch.ones(3, dtype=torch.long), torch.zeros(3), torch.tensor([2, 1, 2]),
                  {"row": rows}, target_id=torch.tensor([2, 1, 3]))
    assert novel_relabel(bank)(batch).tolist() == [2, 0, 3]
    with pytest.raises(ModelError, match="no all-zero row"):
        novel_relabel(bank[1:])
    with pytest.raises(ModelError, match="novel_target=True: only the vector task"):
        get_task("category").check_train(split_config({"novel_target": True, "loss": "ce", "metric": "val_f1"})[1])

    data = places(n=600)
    bank = np.concatenate([np.zeros((1, 8), np.float32), data.banks["train"]])
    new = VectorSamples(data["val"].seq["vec"], data["val"].lengths, np.ones(len(data["val"]), np.int64),
                        np.zeros((len(data["val"]), 8), np.float32))  # every held-out target a new place
    train = data["train"]
    half = np.arange(len(train)) % 2 == 0  # half the train targets are a place outside the history
    outside = np.where(half[:, None], bank[1 + (train.target_id + 1) % 120], train.target)
    ds = vector_dataset("new", "vector", {"train": VectorSamples(train.seq["vec"], train.lengths, np.ones(len(train), np.int64), outside),
                                          "val": new, "test": new}, banks={s: bank for s in SPLITS})
    for s in SPLITS:
        ds[s].seq["row"] = exact_rows(ds[s].seq["vec"], ds[s].lengths, ds.banks[s])
    cfg = {**SMALL, "lr": 1e-2, "batch_size": 32, "epochs": 4, "metric": "val_hit1", "seed": 0, "bank_pointer": True,
           "loss": "bank_nce"}
    assert fit({**cfg, "novel_target": True}, ds, device="cpu").best_metrics["val_hit5"] == 1.0
    assert fit(cfg, ds, device="cpu").best_metrics["val_hit5"] == 0.0
    with pytest.raises(ModelError, match="only a bank pointer can predict a new place"):
        fit({**cfg, "bank_pointer": False, "novel_target": True}, ds, device="cpu")
