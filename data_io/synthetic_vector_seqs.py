"""Synthetic datasets for the category and vector tasks: planted, learnable structure,
deterministic per seed, generated in milliseconds (vectorised over groups, a loop over steps).

Each group (a user) walks a chain of `steps` items; the chain is cut by time into train / val /
test (the first 60% / next 20% / rest of every group's steps), and every step with at least
`min_length` earlier steps of its own segment is a sample whose history is up to `length` of
them. Grouped CV folds (`n_folds`) cover train + val.

- category: items carry D-dim embeddings = class centroid + item noise; the next item's class
  repeats the last step's class (probability `p_stay`), or is a fixed permutation of it
  (`p_last`) or of the class one step before (`p_prev`), else is drawn from the group's own
  class taste, solved so that the target classes have the imbalanced `shares` (45/25/15/10/5%).
- vector: items are random D-dim vectors; the next item is one of a few likely successors of
  the current item (a sparse random transition matrix), or with probability `explore` one of
  the group's favourite items. The target is the next item's vector; the bank is every item.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from data_io.dataset_types import SPLITS, Dataset
from data_io.errors import DataError
from data_io.vector_seqs import VectorSamples, add_folds, vector_dataset


@dataclass(frozen=True)
class ChainParams:
    """What both generators share: the walks, the samples cut from them and the split."""

    groups: int = 50
    steps: int = 120  # items per group's chain (the CLI's --days)
    length: int = 9  # longest history
    min_length: int = 3
    dim: int = 64
    items: int = 300
    train_frac: float = 0.6
    val_frac: float = 0.2
    n_folds: int = 5
    seed: int = 0

    def check(self) -> None:
        bad = [f"{k}={getattr(self, k)}" for k, low in (("groups", 1), ("length", 1), ("min_length", 1), ("dim", 2),
                                                        ("items", 10), ("n_folds", 0)) if getattr(self, k) < low]
        if self.n_folds == 1:
            bad.append("n_folds=1 (use 0 for none or >= 2)")
        if not (0 < self.train_frac and 0 < self.val_frac and self.train_frac + self.val_frac < 1):
            bad.append(f"train_frac={self.train_frac} val_frac={self.val_frac} (need both > 0, sum < 1)")
        shortest = min(self.val_frac, 1 - self.train_frac - self.val_frac) * self.steps
        if shortest < self.min_length + 1:
            bad.append(f"steps={self.steps} (the smallest split gets {shortest:.0f} steps per group; "
                       f"it needs more than min_length={self.min_length})")
        if bad:
            raise DataError(f"synthetic settings: {', '.join(bad)}; change these options")


@dataclass(frozen=True)
class CategorySynthParams(ChainParams):
    shares: tuple[float, ...] = (0.45, 0.25, 0.15, 0.10, 0.05)  # wanted class shares of the targets
    p_stay: float = 0.45  # next class = the last step's class
    p_last: float = 0.15  # ... or a fixed permutation of the last step's class
    p_prev: float = 0.15  # ... or a fixed permutation of the class one step before; else group taste
    noise: float = 1.3  # item noise norm relative to the class centroid's (~1)


@dataclass(frozen=True)
class VectorSynthParams(ChainParams):
    successors: int = 3  # likely next items per item
    favourites: int = 10  # items each group returns to
    explore: float = 0.25  # probability of jumping to a group favourite instead of a successor


def _draw(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row of `weights`, in proportion to the row."""
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cum[:, -1]
    return np.minimum((cum < u[:, None]).sum(axis=1), weights.shape[1] - 1)


def _samples(p: ChainParams, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, ...]]:
    """Per split: (group, target step, history length) of every sample. A history stays within
    its own split's segment of the chain, so no split sees another's steps."""
    t = np.arange(p.steps)
    bounds = np.floor(np.array([p.train_frac, p.train_frac + p.val_frac]) * p.steps).astype(np.int64)
    split = np.searchsorted(bounds, t, side="right")  # 0 / 1 / 2
    seg_start = np.r_[0, bounds][split]
    g, t = (a.ravel() for a in np.meshgrid(np.arange(p.groups), t, indexing="ij"))
    room = t - seg_start[t]
    keep = room >= p.min_length
    g, t, room = g[keep], t[keep], room[keep]
    length = np.minimum(rng.integers(p.min_length, max(p.length, p.min_length) + 1, len(t)), room)
    which = split[t]
    return {name: (g[which == i], t[which == i], length[which == i]) for i, name in enumerate(SPLITS)}


def _histories(chain: np.ndarray, g: np.ndarray, t: np.ndarray, length: np.ndarray, L: int) -> tuple[np.ndarray, np.ndarray]:
    """Item ids of each history, right-padded ([N, L], pad = -1), and the target item ids."""
    cols = np.arange(L)[None, :]
    idx = t[:, None] - length[:, None] + cols
    items = np.where(cols < length[:, None], chain[g[:, None], np.minimum(idx, t[:, None])], -1)
    return items, chain[g, t]


def _vectors(table: np.ndarray, items: np.ndarray) -> np.ndarray:
    return np.where((items >= 0)[:, :, None], table[np.maximum(items, 0)], 0).astype(np.float32)


def _build(p: ChainParams, task: str, chain: np.ndarray, emb: np.ndarray, target_of, rng: np.random.Generator,
           item_class: np.ndarray | None = None, **kw) -> Dataset:
    """`item_class` (category): each item's class, carried per history step as class + 1."""
    splits = {}
    for name, (g, t, length) in _samples(p, rng).items():
        items, target = _histories(chain, g, t, length, p.length)
        steps = None if item_class is None else np.where(items >= 0, item_class[np.maximum(items, 0)] + 1, 0)
        splits[name] = VectorSamples(_vectors(emb, items), length.astype(np.int64), g + 1, target_of(target),
                                     history_class=steps)
    add_folds(splits, p.n_folds, p.seed, "synthetic")
    params = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(p).items()}
    return vector_dataset(f"synthetic-{task}", task, splits, n_folds=p.n_folds, params=params,
                          source={"synthetic": task}, where="synthetic", **kw)


def _rules_and_taste(shares: np.ndarray, p: CategorySynthParams, rng: np.random.Generator):
    """Two permutation rules over the classes and the mean group taste that makes `shares` the
    chain's stationary class shares: solve m = p_stay m + p_last m[rule_last^-1]
    + p_prev m[rule_prev^-1] + rest * taste. A rule pair that would need a negative taste (it
    sends too much mass into a rare class) is redrawn; after 1000 draws the taste is clipped."""
    rest = 1 - p.p_stay - p.p_last - p.p_prev
    for _ in range(1000):
        rule_last, rule_prev = rng.permutation(len(shares)), rng.permutation(len(shares))
        into_last, into_prev = np.zeros_like(shares), np.zeros_like(shares)
        into_last[rule_last], into_prev[rule_prev] = shares, shares
        taste = ((1 - p.p_stay) * shares - p.p_last * into_last - p.p_prev * into_prev) / rest
        if taste.min() >= 0:
            break
    taste = np.maximum(taste, 0)
    return rule_last, rule_prev, taste / taste.sum()


def synthetic_category(p: CategorySynthParams = CategorySynthParams()) -> Dataset:
    """Next-class data; see the module docstring. Classes are "class_0".. by falling share."""
    p.check()
    k = len(p.shares)
    probs = (p.p_stay, p.p_last, p.p_prev)
    if k < 2 or min(p.shares) <= 0 or min(probs) < 0 or sum(probs) >= 1 or p.items < k:
        raise DataError(f"synthetic settings: shares={p.shares} p_stay={p.p_stay} p_last={p.p_last} p_prev={p.p_prev} "
                        f"items={p.items}: need >= 2 positive shares, rule probabilities >= 0 with sum < 1, "
                        "and at least one item per class")
    rng = np.random.default_rng(p.seed)
    shares = np.asarray(p.shares, dtype=np.float64) / sum(p.shares)
    item_class = np.r_[np.arange(k), _draw(np.tile(shares, (p.items - k, 1)), rng)]
    centroid = rng.normal(size=(k, p.dim)) / np.sqrt(p.dim)
    emb = centroid[item_class] + p.noise * rng.normal(size=(p.items, p.dim)) / np.sqrt(p.dim)
    # Permutation rules: every class, rare ones included, has contexts that predict it.
    rule_last, rule_prev, mean_taste = _rules_and_taste(shares, p, rng)
    taste = rng.dirichlet(np.maximum(10 * k * mean_taste, 1e-3), size=p.groups)
    cls = np.zeros((p.groups, p.steps), dtype=np.int64)
    cls[:, :2] = _draw(taste, rng)[:, None]
    for t in range(2, p.steps):
        u = rng.random(p.groups)
        cls[:, t] = np.select([u < p.p_stay, u < p.p_stay + p.p_last, u < sum(probs)],
                              [cls[:, t - 1], rule_last[cls[:, t - 1]], rule_prev[cls[:, t - 2]]], _draw(taste, rng))
    members = (item_class[None, :] == np.arange(k)[:, None]).astype(np.float64)  # [k, items]
    chain = _draw(members[cls.ravel()], rng).reshape(cls.shape)  # an item of each step's class
    return _build(p, "category", chain, emb, lambda items: item_class[items], rng, item_class,
                  classes=[f"class_{i}" for i in range(k)])


def synthetic_vector(p: VectorSynthParams = VectorSynthParams()) -> Dataset:
    """Next-vector data; see the module docstring. The bank of every split is all item vectors."""
    p.check()
    if not (1 <= p.successors < p.items and 1 <= p.favourites <= p.items and 0 <= p.explore <= 1):
        raise DataError(f"synthetic settings: successors={p.successors} favourites={p.favourites} "
                        f"explore={p.explore}: need 1 <= successors < items, 1 <= favourites <= items, 0 <= explore <= 1")
    rng = np.random.default_rng(p.seed)
    vec = (rng.normal(size=(p.items, p.dim)) / np.sqrt(p.dim)).astype(np.float32)
    # Sparse transitions: successors drawn without the item itself, with Dirichlet weights.
    succ = (np.arange(p.items)[:, None] + 1 + np.argsort(rng.random((p.items, p.items - 1)), axis=1)[:, :p.successors]) % p.items
    succ_w = rng.dirichlet(np.ones(p.successors), size=p.items)
    fav = np.argsort(rng.random((p.groups, p.items)), axis=1)[:, :p.favourites]
    fav_w = rng.dirichlet(np.ones(p.favourites), size=p.groups)
    chain = np.zeros((p.groups, p.steps), dtype=np.int64)
    chain[:, 0] = fav[np.arange(p.groups), _draw(fav_w, rng)]
    for t in range(1, p.steps):
        jump = rng.random(p.groups) < p.explore
        nxt = succ[chain[:, t - 1], _draw(succ_w[chain[:, t - 1]], rng)]
        chain[:, t] = np.where(jump, fav[np.arange(p.groups), _draw(fav_w, rng)], nxt)
    banks = {s: vec for s in SPLITS}
    return _build(p, "vector", chain, vec, lambda items: vec[items], rng, banks=banks)
