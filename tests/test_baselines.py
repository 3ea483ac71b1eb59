"""The no-search baselines of each task (issue 13, item 2): hand-made data against hand-computed
predictions and metrics, folds, and a real sweep that stores and reports them."""

import json

import numpy as np
import optuna
import pytest
import yaml

from data_io import DatasetInfo, fold_view
from data_io.dataset_types import Dataset, SplitArrays
from data_io.synthetic_vector_seqs import CategorySynthParams, synthetic_category
from data_io.vector_seqs import VectorSamples, vector_dataset
from models.tasks import get_task
from models.tasks.location import markov_scores
from search.baselines import margin_line

# --- next location: a per-user first-order Markov model with back-off ----------------------
# Rows: (user, history of locations, next location). Locations 2..5; 0 = padding, 1 = unseen.
TRAIN = [(1, [5, 2], 3), (1, [2], 3), (1, [4, 2], 4), (2, [2], 5), (2, [3], 4), (2, [4], 4), (3, [5], 2)]
VAL = [(1, [3, 2], 4),  # (user 1, last 2) seen: 3 (2x) > 4; ties by (last 2) anywhere: 5; then global: 2
       (2, [5], 3),     # (user 2, last 5) unseen: (last 5) -> 2; then user 2's targets 4 (2x) > 5; then 3
       (1, [1], 5),     # last 1 never a context: user 1's targets 3 > 4; then global: 2 and 5 tie
       (4, [3], 4),     # user 4 unknown: (last 3) -> 4; then global 3; 2 and 5 tie
       (4, [1], 1)]     # nothing known: global 4 > 3 > {2, 5} > {0, 1}

def location_split(rows) -> SplitArrays:
    width = max(len(h) for _, h, _ in rows)
    loc = np.array([h + [0] * (width - len(h)) for _, h, _ in rows], dtype=np.int64)
    return SplitArrays(sample_id=np.arange(len(rows)), user=np.array([u for u, _, _ in rows]),
                       target=np.array([t for _, _, t in rows]), lengths=np.array([len(h) for _, h, _ in rows]),
                       seq={"loc": loc})


def location_data() -> Dataset:
    info = DatasetInfo(name="hand", n_locations=6, n_users=5, cardinalities={}, split_sizes={}, max_history=2, params={})
    return Dataset(info, {"train": location_split(TRAIN), "val": location_split(VAL)})


def order(scores: np.ndarray) -> list[list[int]]:
    """The classes of one row best first, tied classes grouped."""
    return [sorted(int(c) for c in np.flatnonzero(scores == v)) for v in sorted(set(scores.tolist()), reverse=True)]


def test_markov_orders_candidates_through_each_backoff_level():
    data = location_data()
    (scores, targets), = list(markov_scores(data["train"], data["val"], 6))
    assert targets.tolist() == [t for _, _, t in VAL]
    assert order(scores[0]) == [[3], [4], [5], [2], [0, 1]]  # user level, then last-location level, then global
    assert order(scores[1]) == [[2], [4], [5], [3], [0, 1]]  # last-location level, then the user's targets
    assert order(scores[2]) == [[3], [4], [2, 5], [0, 1]]    # the user's targets, then global (a tie stays a tie)
    assert order(scores[3]) == [[4], [3], [2, 5], [0, 1]]    # last-location level, then global
    assert order(scores[4]) == [[4], [3], [2, 5], [0, 1]]    # global only


def test_location_baselines_score_like_the_models_do():
    b = get_task("location").baselines(location_data())
    # Pessimistic ranks of the targets [4, 3, 5, 4, 1] in the orders above: a tie counts against the target.
    markov = [2, 4, 4, 1, 6]
    assert b["markov"]["val_acc1"] == pytest.approx(np.mean([r <= 1 for r in markov]))
    assert b["markov"]["val_hit5"] == pytest.approx(np.mean([r <= 5 for r in markov]))
    assert b["markov"]["val_mrr"] == pytest.approx(np.mean([1 / r for r in markov]))
    # Most frequent: train targets 4 (3x) > 3 (2x) > {2, 5} > {0, 1} for every sample.
    freq = [1, 2, 4, 1, 6]
    assert b["most_frequent"]["val_acc1"] == pytest.approx(0.4)
    assert b["most_frequent"]["val_hit5"] == pytest.approx(0.8)
    assert b["most_frequent"]["val_mrr"] == pytest.approx(np.mean([1 / r for r in freq]))
    assert set(b["markov"]) <= {f"val_{k}" for k in ("acc1", "hit5", "hit10", "mrr", "ndcg10", "f1")}


# --- next category --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def category_data():
    return synthetic_category(CategorySynthParams(groups=30, steps=60, dim=12, items=80, n_folds=3, seed=3))


def most_frequent_reference(train_targets: np.ndarray, val_targets: np.ndarray) -> dict:
    """Brute force: the one most frequent class predicted for every sample."""
    counts = np.bincount(train_targets)
    assert (counts == counts.max()).sum() == 1  # a unique top class here: a tie would be no prediction
    top = int(counts.argmax())
    hit = val_targets == top
    present = set(val_targets.tolist()) | {top}
    f1 = [2 * hit.sum() / (len(val_targets) + hit.sum()) if c == top else 0.0 for c in present]
    return {"val_acc1": hit.mean(), "val_f1": np.mean(f1)}


def test_category_most_frequent_by_hand_and_over_folds(category_data):
    task = get_task("category")
    plain = task.baselines(category_data)["most_frequent"]
    ref = most_frequent_reference(category_data["train"].target, category_data["val"].target)
    assert plain == pytest.approx(ref)
    folds = task.baselines(category_data, folds=3)["most_frequent"]
    per_fold = [most_frequent_reference(fold_view(category_data, f)["train"].target,
                                        fold_view(category_data, f)["val"].target) for f in range(3)]
    assert folds == pytest.approx({k: np.mean([p[k] for p in per_fold]) for k in ref})
    assert folds != pytest.approx(plain)  # the folds' own splits, not the plain one


def test_category_logreg_beats_most_frequent(category_data):
    task = get_task("category")
    b = task.baselines(category_data)
    assert b["logreg"]["val_f1"] > b["most_frequent"]["val_f1"] + 0.15
    assert b["logreg"]["val_acc1"] > b["most_frequent"]["val_acc1"]
    assert b["logreg"]["val_loss"] > 0 and "val_loss" not in b["most_frequent"]  # counts have no likelihood
    assert task.baselines(category_data) == b  # deterministic


# --- category: the user's own history (each step's class known) ----------------------------------
def history_class_data(seed: int = 11) -> Dataset:
    """4 classes with distinct train shares; histories of 1-6 steps, some steps unknown (0)."""
    rng = np.random.default_rng(seed)

    def split(n: int, shares) -> VectorSamples:
        lengths = rng.integers(1, 7, n)
        cls = rng.choice(5, size=(n, 6), p=[0.1, 0.4, 0.2, 0.2, 0.1])  # 0 = unknown
        cls[np.arange(6)[None, :] >= lengths[:, None]] = 0
        return VectorSamples(rng.normal(size=(n, 6, 3)).astype(np.float32), lengths, rng.integers(1, 5, n),
                             rng.choice(4, n, p=shares), history_class=cls)
    splits = {"train": split(200, [0.4, 0.3, 0.2, 0.1]), "val": split(150, [0.25] * 4), "test": split(10, [0.25] * 4)}
    return vector_dataset("hist", "category", splits, classes=list("abcd"))


def ranked_reference(orders: list[list[int]], targets: np.ndarray, n_classes: int) -> dict:
    """Acc@1 and macro-F1 (over the classes that are targets or predicted) of full rankings given
    one sample at a time."""
    rank = np.array([order.index(int(t)) + 1 for order, t in zip(orders, targets)])
    top = np.array([order[0] for order in orders])
    f1 = []
    for c in sorted(set(targets.tolist()) | set(top.tolist())):
        tp, pred, true = np.sum((top == c) & (targets == c)), np.sum(top == c), np.sum(targets == c)
        f1.append(2 * tp / (pred + true) if pred + true else 0.0)
    return {"val_acc1": np.mean(rank == 1), "val_f1": np.mean(f1)}  # the category task's metrics


def test_history_mode_and_last_class_by_brute_force():
    data = history_class_data()
    b = get_task("category").baselines(data)
    train, val = data["train"], data["val"]
    prior = np.bincount(train.target, minlength=4)
    assert len(set(prior.tolist())) == 4  # distinct: the prior leaves no tie
    mode, last = [], []
    for i in range(len(val)):
        steps = [int(c) - 1 for c in val.seq["cls"][i, :val.lengths[i]]]  # -1 = unknown
        latest = {c: t for t, c in enumerate(steps)}
        key = lambda c: (steps.count(c), latest.get(c, -1), prior[c])
        mode.append(sorted(range(4), key=key, reverse=True))
        first = [steps[-1]] if steps[-1] >= 0 else []
        last.append(first + sorted((c for c in range(4) if c not in first), key=lambda c: prior[c], reverse=True))
    for name, orders in (("history_mode", mode), ("last_class", last)):
        want = ranked_reference(orders, val.target, 4)
        assert {k: b[name][k] for k in want} == pytest.approx(want, abs=1e-9), name
    assert "val_loss" not in b["history_mode"]


def test_history_baselines_need_the_history_classes():
    data = history_class_data()
    for s in data.splits.values():
        del s.seq["cls"]
    assert set(get_task("category").baselines(data)) == {"most_frequent", "logreg"}


# --- next vector: persistence and the history's sum, retrieved from the bank ---------------------------------------
def vector_data(unseen: int | None = None) -> Dataset:
    """8 items, 6 and 7 parallel; item `unseen`, where given, an all-zero vector (a place unseen in train)."""
    rng = np.random.default_rng(5)
    items = rng.normal(size=(8, 3)).astype(np.float32)
    items[7] = 2 * items[6]  # parallel: the same cosine to everything, a tie in retrieval
    if unseen is not None:
        items[unseen] = 0

    def split(n: int, seed: int) -> VectorSamples:
        r = np.random.default_rng(seed)
        hist = r.integers(0, 8, size=(n, 3))
        lengths = r.integers(1, 4, size=n)
        x = items[hist] * (np.arange(3)[None, :, None] < lengths[:, None, None])
        nxt = np.where(r.random(n) < 0.5, hist[np.arange(n), lengths - 1], r.integers(0, 8, size=n))
        return VectorSamples(x=x.astype(np.float32), lengths=lengths, group=r.integers(1, 4, size=n),
                             target=items[nxt])
    splits = {"train": split(30, 1), "val": split(25, 2), "test": split(5, 3)}
    return vector_dataset("tiny", "vector", splits, banks={s: items for s in splits})


def retrieval_reference(pred: np.ndarray, target: np.ndarray, bank: np.ndarray) -> dict:
    """Brute force, one sample and one candidate at a time."""
    unit = lambda v: v / np.linalg.norm(v)
    ranks, cos = [], []
    for p, t in zip(pred, target):
        true = float(unit(p) @ unit(t))
        ranks.append(sum(float(unit(p) @ unit(b)) >= true - 1e-6 for b in bank))
        cos.append(true)
    ranks = np.array(ranks)
    return {"val_hit1": np.mean(ranks <= 1), "val_hit5": np.mean(ranks <= 5), "val_hit10": np.mean(ranks <= 10),
            "val_mrr": np.mean(1 / ranks), "val_cos": np.mean(cos)}


def test_vector_persistence_and_most_frequent_by_brute_force():
    data = vector_data()
    b = get_task("vector").baselines(data)
    val, bank = data["val"], data.banks["val"]
    last = val.seq["vec"][np.arange(len(val)), val.lengths - 1]
    assert b["persistence"] == pytest.approx(retrieval_reference(last, val.target, bank), abs=1e-6)
    ids, counts = np.unique(data["train"].target_id, return_counts=True)
    common = np.repeat(data.banks["train"][ids[counts.argmax()]][None], len(val), 0)
    assert b["most_frequent"] == pytest.approx(retrieval_reference(common, val.target, bank), abs=1e-6)
    unit = lambda v: v / np.linalg.norm(v) if np.linalg.norm(v) > 0 else v
    summed = np.array([sum(unit(val.seq["vec"][i, t]) for t in range(val.lengths[i])) for i in range(len(val))])
    assert b["history_sum"] == pytest.approx(retrieval_reference(summed, val.target, bank), abs=1e-6)
    assert {6, 7} & set(val.target_id.tolist())  # targets with a parallel twin: ties counted against them


def test_vector_history_items_by_brute_force():
    """The history's own bank rows by count, ties to the most recent, then the rest of the bank by
    cosine to the history's summed unit vectors; ties (the parallel twins 6 and 7 outside the
    history) count against the target."""
    data = vector_data()
    got = get_task("vector").baselines(data)["history_items"]
    val, bank = data["val"], data.banks["val"]
    unit = lambda v: v / np.linalg.norm(v) if np.linalg.norm(v) > 0 else v
    ranks = []
    for i in range(len(val)):
        steps = [int(np.flatnonzero((bank == val.seq["vec"][i, t]).all(1))[0]) for t in range(val.lengths[i])]
        summed = unit(sum(unit(val.seq["vec"][i, t]) for t in range(val.lengths[i])))
        latest = {r: t for t, r in enumerate(steps)}
        key = lambda r: (steps.count(r), latest.get(r, -1), float(summed @ unit(bank[r])))
        keys = [key(r) for r in range(len(bank))]
        true = keys[int(val.target_id[i])]
        ahead = sum(k[:2] > true[:2] or (k[:2] == true[:2] and k[2] >= true[2] - 1e-6) for k in keys)
        ranks.append(ahead)
    ranks = np.array(ranks)
    want = {"val_hit1": np.mean(ranks <= 1), "val_hit5": np.mean(ranks <= 5), "val_hit10": np.mean(ranks <= 10),
            "val_mrr": np.mean(1 / ranks)}
    assert got == pytest.approx(want, abs=1e-9)


# --- the summary's margin line ----------------------------------------------------------------
def test_margin_line_follows_the_metric_direction():
    def trial(number: int, value: float) -> optuna.trial.FrozenTrial:
        t = optuna.trial.create_trial(value=value)
        t.number = number
        return t
    base = {"markov": {"val_hit5": 0.5, "val_loss": 2.0}, "most_frequent": {"val_hit5": 0.3, "val_loss": 3.0}}
    assert margin_line(base, "val_hit5", [trial(4, 0.56)]) == ("the best val_hit5, trial 4's 0.5600, beats the best "
                                                               "no-search baseline markov (0.5000) by 0.0600 (12.0%)")
    assert margin_line(base, "val_hit5", [trial(2, 0.45), trial(3, 0.4)]) == (
        "no trial beats the best no-search baseline markov (val_hit5 0.5000): the best, trial 2, has 0.4500 (-0.0500)")
    assert margin_line(base, "val_loss", [trial(1, 1.5)]).startswith("the best val_loss, trial 1's 1.5000, beats the "
                                                                     "best no-search baseline markov (2.0000) by 0.5000")
    assert margin_line(base, "val_loss", [trial(1, 2.5)]).startswith("no trial beats")
    assert margin_line(base, "val_hit5", []).startswith("no trial beats")
    assert margin_line({}, "val_hit5", [trial(1, 0.9)]) is None


def test_baselines_are_evaluated_once_per_study():
    from search.baselines import ensure_baselines
    study = optuna.create_study(direction="maximize")
    first = ensure_baselines(study, "location", location_data(), 0)
    assert study.user_attrs["baselines"] == first and first["markov"]["val_acc1"] == pytest.approx(0.2)
    other = location_data()
    other.splits["train"] = other["val"]  # different data: a resumed study keeps what it started with
    assert ensure_baselines(study, "location", other, 0) == first


# --- a real sweep -----------------------------------------------------------------------------
SPACE = """
name: tiny
data: {synthetic: {users: 12, days: 40, locations: 60, seed: 2}}
budget: {max_params: 20000}
asha: {max_epochs: 2, grace_period: 1, reduction_factor: 2}
params:
  family: {type: categorical, choices: [gru, transformer]}
  heads: {type: categorical, choices: [2, 4], when: {family: transformer}}
  d_model: {type: int, low: 16, high: 64, step: 8}
  lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
  batch_size: 128
  patience: 4
"""


@pytest.mark.ray
@pytest.mark.slow
def test_sweep_stores_prints_and_measures_against_baselines(tmp_path, capsys):
    from search.sweep import SweepOptions, run_sweep
    from spaces import load_space, load_space_data
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    opts = SweepOptions(space=str(path), study="b", samples=2, dir=str(tmp_path), seed=0,
                        storage=f"sqlite:///{tmp_path / 'db.sqlite'}")
    study = run_sweep(opts)
    out = capsys.readouterr().out
    stored = study.user_attrs["baselines"]
    expected = get_task("location").baselines(load_space_data(load_space(path)))
    assert set(stored) == {"markov", "most_frequent"}
    assert stored["markov"] == pytest.approx(expected["markov"], abs=1e-6)
    start, summary = out.split("\nstudy ", 1)
    assert "no-search baselines" in start and f"markov         val_hit5 {stored['markov']['val_hit5']:.4f}" in start
    best = max(t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
    bar = max(b["val_hit5"] for b in stored.values())
    line = next(x for x in summary.splitlines() if x.startswith("baseline"))
    if best > bar:
        assert f"beats the best no-search baseline markov ({bar:.4f}) by {best - bar:.4f}" in line
    else:
        assert "no trial beats the best no-search baseline markov" in line
    json.dumps(stored)  # plain JSON in the study
    yaml.safe_dump(stored)


PLANTED = """
name: planted
task: category
data:
  synthetic: {groups: 40, steps: 60, dim: 8, items: 40, n_folds: 0, seed: 3, p_stay: 0.9, p_last: 0.05, p_prev: 0.0,
              noise: 3.0}
objective: {metric: val_f1, mode: max}
budget: {max_params: 5000}
asha: {max_epochs: 1, grace_period: 1, reduction_factor: 2}
params:
  family: gru
  d_model: {type: int, low: 8, high: 16, step: 8}
  lr: {type: float, low: 1.0e-4, high: 2.0e-4, log: true}
  batch_size: 256
"""


@pytest.mark.ray
def test_a_sweep_that_loses_to_the_history_says_so_first(tmp_path, capsys):
    """Planted rule: the next class is the last step's (90%). One epoch of a tiny model at a low
    learning rate cannot learn it; the summary, the warnings and the report say the winner loses
    to last_class, with the margin, and the report says it before anything else."""
    from search.report import write_report
    from search.sweep import SweepOptions, run_sweep
    path = tmp_path / "space.yaml"
    path.write_text(PLANTED)
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    study = run_sweep(SweepOptions(space=str(path), study="p", samples=2, dir=str(tmp_path), seed=0, storage=db))
    out = capsys.readouterr().out
    stored = study.user_attrs["baselines"]
    assert {"history_mode", "last_class"} <= set(stored) and stored["last_class"]["val_f1"] > 0.8
    best = max((t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and "config" in t.user_attrs),
               key=lambda t: t.value)
    summary = out.split("\nstudy ", 1)[1]
    margin = f"({best.value - stored['last_class']['val_f1']:+.4f})"
    line = next(x for x in summary.splitlines() if x.startswith("baseline"))
    assert line.startswith("baseline   no trial beats the best no-search baseline last_class") and margin in line
    assert summary.index("baseline   ") < summary.index("export     ")  # right under the winner
    warnings = summary.split("warnings (the sweep may be mis-set)", 1)[1]
    assert "no searched model is better than that rule on validation" in warnings
    write_report(db, "p", tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    first = html.index("<h2")  # the first section
    assert "Against the no-search baselines" in html[first:first + 120]
    assert "no trial beats the best no-search baseline last_class" in html


def test_vector_history_or_new_by_brute_force():
    """With an all-zero bank row (a place unseen in train), history_or_new ranks it after the
    history's first four items (after all of them where it has fewer), then the rest by cosine;
    the other baselines never retrieve it, and without such a row it is not offered."""
    assert "history_or_new" not in get_task("vector").baselines(vector_data())
    data = vector_data(unseen=2)  # place 2 has no vector: its targets are "somewhere new", its steps no bank row
    bank = data.banks["val"]
    got = get_task("vector").baselines(data)
    val = data["val"]
    assert (val.target_id == 2).sum() >= 2 and got["history_or_new"] != got["history_items"]
    unit = lambda v: v / np.linalg.norm(v) if np.linalg.norm(v) > 0 else v
    ranks = []
    for i in range(len(val)):
        steps = [int(np.flatnonzero((bank == val.seq["vec"][i, t]).all(1))[0]) for t in range(val.lengths[i])
                 if val.seq["vec"][i, t].any()]
        latest = {r: t for t, r in enumerate(steps)}
        items = sorted(set(steps), key=lambda r: (steps.count(r), latest[r]), reverse=True)
        summed = unit(sum(unit(val.seq["vec"][i, t]) for t in range(val.lengths[i])))
        order = items[:4] + [2] + items[4:]
        target = int(val.target_id[i])
        if target in order:
            ranks.append(order.index(target) + 1)
        else:  # the rest of the bank by cosine, ties (the parallel twins) against the target
            cos = {r: float(summed @ unit(bank[r])) for r in range(len(bank)) if r not in order}
            ranks.append(len(order) + sum(c >= cos[target] - 1e-6 for c in cos.values()))
    ranks = np.array(ranks)
    want = {"val_hit1": np.mean(ranks <= 1), "val_hit5": np.mean(ranks <= 5), "val_hit10": np.mean(ranks <= 10),
            "val_mrr": np.mean(1 / ranks)}
    assert got["history_or_new"] == pytest.approx(want, abs=1e-9)
