"""Category and vector datasets derived from the real Geolife staypoints.

Every sample is exactly a next-location sample of the published protocol (data_io.geolife:
same per-user day split, valid ids and 7-day windows: 7,424 / 3,334 / 3,502 samples). Each
history step becomes a D-dim embedding of its location, learned from the location transition
graph of the *training* split only:

- the graph: symmetrised counts of consecutive train staypoints of one user, plus self-loops,
  normalised as D^-1/2 (A + I) D^-1/2 (= S);
- the embedding: a random-projection sketch (R + S R + S^2 R) / norm, R Gaussian [n, D] from a
  fixed seed (FastRP, Chen et al. 2019). The top-D eigenvectors of S were tried first: at D=64
  they leave 71% of the 1,185 locations with a near-duplicate (cosine > 0.99), which makes
  locations indistinguishable; the sketch keeps every row distinct and neighbours close.
- locations never seen in train (and padding) get the zero vector: no information, and as a
  vector target it is never retrieved, like class "unseen" that a classifier never learns.

geolife-category: the target is the region of the next place: k-means (fixed seed) over the
coordinates of ALL locations (not learned from the splits). Coordinates span the world while most
places lie in Beijing, so k-means runs on per-axis quantile coordinates (raw coordinates give one
region holding 96% of targets); regions without a train target are merged into the nearest one.
Each history place's region is carried too (the class of each step, history_classes), for every
place including those never seen in train: a place's region is a fact of the locations file.
geolife-vector: the target is the next place's embedding; the bank (every split) is the zero
vector plus every train location's row, so Hit@5 compares with a classifier's Acc@5.
Both have grouped CV folds by user over train + val.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from data_io.dataset_types import SPLITS, Dataset
from data_io.errors import DataError
from data_io.geolife import GEOLIFE_COLUMNS, GEOLIFE_PARAMS
from data_io.prepare import Samples, build_samples, split_labels
from data_io.staging import check_output_dir, staged_dir
from data_io.tables import Staypoints, integer_column, number_column, read_frame, read_id_list, read_staypoints
from data_io.vector_seqs import VectorSamples, add_folds, vector_dataset

FILES = {"staypoints": "dataSet_geolife.csv", "valid_ids": "valid_ids_geolife.csv",
         "locations": "locations_geolife.csv"}


@dataclass(frozen=True)
class DerivedParams:
    dim: int = 64
    regions: int = 10
    n_folds: int = 5
    seed: int = 0


def geolife_files(geolife: str | Path | None = None, **given: str | Path | None) -> dict[str, Path]:
    """The files named in `given` (staypoints / valid_ids / locations), each the given path or
    the default file in the `geolife` folder; a missing one raises one line with the fix."""
    out = {}
    for key, path in given.items():
        option = "--" + key.replace("_", "-")
        if path is None and geolife is None:
            raise DataError(f"no {FILES[key]}: give {option} FILE or --geolife DIR (the folder holding {FILES[key]})")
        path = Path(path) if path is not None else Path(geolife) / FILES[key]
        if not path.is_file():
            raise DataError(f"{path}: file not found; give {option} FILE or --geolife DIR holding {FILES[key]}")
        out[key] = path
    return out


def _sorted(sp: Staypoints) -> Staypoints:
    order = np.lexsort((sp.minute, sp.day, sp.user))  # as build_samples sorts
    return Staypoints(*(getattr(sp, f)[order] for f in ("id", "user", "location", "day", "minute", "weekday", "duration")))


def transition_embedding(user: np.ndarray, location: np.ndarray, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted location ids, float32 unit rows [n, dim]) from staypoints sorted by user and time."""
    vocab, code = np.unique(location, return_inverse=True)
    n = len(vocab)
    same = user[1:] == user[:-1]  # a transition never crosses users
    adj = np.zeros((n, n))
    np.add.at(adj, (code[:-1][same], code[1:][same]), 1.0)
    adj = adj + adj.T + np.eye(n)  # self-loops: every location has a degree
    scale = adj.sum(axis=1) ** -0.5
    s = adj * scale[:, None] * scale[None, :]
    r = np.random.default_rng(seed).normal(size=(n, dim))
    emb = r + s @ r + s @ (s @ r)
    return vocab, (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)


def location_embedding(sp: Staypoints, dim: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The embedding of the protocol's train locations, from train staypoints only."""
    s = _sorted(sp)
    train = split_labels(s, GEOLIFE_PARAMS) == 0
    if dim < 1:
        raise DataError(f"--dim {dim}: the embedding needs at least 1 dimension")
    return transition_embedding(s.user[train], s.location[train], dim, seed)


@dataclass
class _Base:
    samples: dict[str, Samples]  # the next-location samples (location codes 0 pad, 1 unseen, 2..)
    table: np.ndarray  # [n_codes, D]: the embedding of each location code (0 and 1: zero)
    target_location: dict[str, np.ndarray]  # raw location id of each target
    history_location: dict[str, np.ndarray]  # raw location id of each history record (flat, as Samples.seq)


def _base(staypoints: Path, valid_ids: Path, p: DerivedParams) -> _Base:
    sp = read_staypoints(staypoints, GEOLIFE_COLUMNS)
    samples, vocab_info = build_samples(sp, GEOLIFE_PARAMS, read_id_list(valid_ids), source=staypoints)
    vocab, emb = location_embedding(sp, p.dim, p.seed)
    assert len(vocab) + 2 == vocab_info["n_locations"]  # the same train vocabulary, codes 2..
    table = np.vstack([np.zeros((2, p.dim), np.float32), emb])
    by_id = np.argsort(sp.id, kind="stable")
    target_location = {k: sp.location[by_id[np.searchsorted(sp.id[by_id], v.sample_id)]] for k, v in samples.items()}
    ordered = _sorted(sp).location  # history_rows index the staypoints sorted as build_samples sorts them
    history_location = {k: ordered[v.history_rows] for k, v in samples.items()}
    return _Base(samples, table, target_location, history_location)


def _padded(s: Samples, flat: np.ndarray) -> np.ndarray:
    """A flat per-history-record column as a right-padded [N, L] matrix (padding 0)."""
    lengths = np.diff(s.offsets)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    cols = np.arange(len(rows)) - np.repeat(s.offsets[:-1], lengths)
    out = np.zeros((len(lengths), int(lengths.max())), dtype=np.int64)
    out[rows, cols] = flat
    return out


def _splits(b: _Base, targets: dict[str, np.ndarray], p: DerivedParams, where: str,
            step_class: dict[str, np.ndarray] | None = None) -> dict[str, VectorSamples]:
    """The vector-task splits, aligned with the next-location samples (sample_id = staypoint id),
    with grouped folds by user over train + val; history embeddings by location code (padding
    code 0 = zero vector) and, given `step_class` (flat, class + 1), each step's class."""
    out = {}
    for name, s in b.samples.items():
        x, lengths = b.table[_padded(s, s.seq["loc"])], np.diff(s.offsets).astype(np.int64)
        history_class = None if step_class is None else _padded(s, step_class[name])
        out[name] = VectorSamples(x, lengths, s.user, targets[name], sample_id=s.sample_id, history_class=history_class)
    add_folds(out, p.n_folds, p.seed, where)
    return out


def _meta(files: dict[str, Path], p: DerivedParams, keys: tuple[str, ...]) -> tuple[dict, dict]:
    params = {k: v for k, v in asdict(p).items() if k in keys} | {"protocol": GEOLIFE_PARAMS.to_dict()}
    return params, {"preset": "geolife"} | {k: str(v) for k, v in files.items()}


def geolife_vector(staypoints: str | Path, valid_ids: str | Path, p: DerivedParams = DerivedParams()) -> Dataset:
    """Next-place embedding vectors; see the module docstring."""
    files = geolife_files(staypoints=staypoints, valid_ids=valid_ids)
    b = _base(files["staypoints"], files["valid_ids"], p)
    splits = _splits(b, {k: b.table[s.target] for k, s in b.samples.items()}, p, str(files["staypoints"]))
    params, source = _meta(files, p, ("dim", "n_folds", "seed"))
    return vector_dataset("geolife-vector", "vector", splits, banks={k: b.table[1:] for k in SPLITS},
                          n_folds=p.n_folds, params=params, source=source, where=str(files["staypoints"]))


def read_locations(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(location ids, [n, 2] lon/lat) from locations_geolife.csv."""
    path = Path(path)
    frame = read_frame(path)
    ids = integer_column(frame, path, "id", "--locations")
    lonlat = np.c_[number_column(frame, path, "lon", "--locations"), number_column(frame, path, "lat", "--locations")]
    return ids, lonlat


def _quantiles(x: np.ndarray) -> np.ndarray:
    """Each column as its mid-rank in [0, 1] (ties share a rank, so file order does not matter)."""
    out = np.empty_like(x, dtype=np.float64)
    for j in range(x.shape[1]):
        v = np.sort(x[:, j])
        out[:, j] = (np.searchsorted(v, x[:, j], "left") + np.searchsorted(v, x[:, j], "right")) / (2 * len(v))
    return out


def kmeans(x: np.ndarray, k: int, seed: int, iters: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """(label per row, centres): k-means++ seeding, then Lloyd until the labels stop changing."""
    rng = np.random.default_rng(seed)
    centres = x[[rng.integers(len(x))]]
    for _ in range(k - 1):
        d = ((x[:, None] - centres[None]) ** 2).sum(-1).min(1)
        centres = np.vstack([centres, x[rng.choice(len(x), p=d / d.sum())]])
    label = None
    for _ in range(iters):
        new = ((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        if label is not None and (new == label).all():
            break
        label = new
        sums = np.zeros_like(centres)
        np.add.at(sums, label, x)
        counts = np.bincount(label, minlength=k)[:, None]
        centres = np.where(counts > 0, sums / np.maximum(counts, 1), centres)
    return label, centres


def location_regions(locations: str | Path, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(location ids, region per location, centres) by k-means on quantile coordinates."""
    ids, lonlat = read_locations(locations)
    if not 2 <= k <= len(np.unique(lonlat, axis=0)):
        raise DataError(f"--regions {k}: need 2 .. {len(np.unique(lonlat, axis=0))} (distinct places in {locations})")
    q = _quantiles(lonlat)
    label, centres = kmeans(q, k, seed)
    return ids, label, centres


def _region_classes(region: np.ndarray, centres: np.ndarray, train_regions: np.ndarray) -> np.ndarray:
    """Class per region: regions without a train target join the nearest region that has one
    (else no model could learn them); classes are numbered by falling train share."""
    counts = np.bincount(train_regions, minlength=len(centres))
    have = np.flatnonzero(counts > 0)
    nearest = have[((centres[:, None] - centres[have][None]) ** 2).sum(-1).argmin(1)]
    merged = np.where(counts > 0, np.arange(len(centres)), nearest)
    order = have[np.argsort(-counts[have], kind="stable")]
    rank = np.empty(len(centres), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[merged]


def geolife_category(staypoints: str | Path, valid_ids: str | Path, locations: str | Path,
                     p: DerivedParams = DerivedParams()) -> Dataset:
    """Region of the next place, as "region_0" (most frequent in train) ..; see the module docstring."""
    files = geolife_files(staypoints=staypoints, valid_ids=valid_ids, locations=locations)
    b = _base(files["staypoints"], files["valid_ids"], p)
    ids, region, centres = location_regions(files["locations"], p.regions, p.seed)
    by_id = np.argsort(ids, kind="stable")

    def region_of(loc: np.ndarray) -> np.ndarray:
        pos = np.minimum(np.searchsorted(ids[by_id], loc), len(ids) - 1)
        missing = ids[by_id][pos] != loc
        if missing.any():
            raise DataError(f"{files['locations']}: location id {int(loc[missing][0])} of {files['staypoints']} is not in "
                            "its id column; give the locations file of the same dataset")
        return region[by_id[pos]]

    regions = {k: region_of(v) for k, v in b.target_location.items()}
    cls = _region_classes(region, centres, regions["train"])
    step_class = {k: cls[region_of(v)] + 1 for k, v in b.history_location.items()}  # every place has a region
    splits = _splits(b, {k: cls[r] for k, r in regions.items()}, p, str(files["staypoints"]), step_class)
    params, source = _meta(files, p, ("dim", "regions", "n_folds", "seed"))
    classes = [f"region_{i}" for i in range(int(cls.max()) + 1)]
    return vector_dataset("geolife-category", "category", splits, classes=classes, n_folds=p.n_folds,
                          params=params, source=source, where=str(files["staypoints"]))


def geolife_events(staypoints: str | Path, locations: str | Path, out: str | Path, p: DerivedParams = DerivedParams(),
                   overwrite: bool = False) -> dict[str, int]:
    """Geolife as the tables a user's own check-ins come in (for `data prepare events`):
    `events.csv` (user, time = minutes since day 0, place, region: one row per stay) and
    `items.parquet` (id, vector: the train-fitted embedding of each place, zero for places never
    seen in the protocol's train days). Written atomically; returns the row counts."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    files = geolife_files(staypoints=staypoints, locations=locations)
    out = Path(out)
    check_output_dir(out, overwrite)
    sp = read_staypoints(files["staypoints"], GEOLIFE_COLUMNS)
    ids, region, _ = location_regions(files["locations"], p.regions, p.seed)
    pos = np.minimum(np.searchsorted(ids, sp.location, sorter=np.argsort(ids)), len(ids) - 1)
    at = np.argsort(ids)[pos]
    if (ids[at] != sp.location).any():
        raise DataError(f"{files['locations']}: location id {int(sp.location[ids[at] != sp.location][0])} of "
                        f"{files['staypoints']} is not in its id column; give the locations file of the same dataset")
    events = pd.DataFrame({"user": sp.user, "time": sp.day.astype(np.int64) * 1440 + sp.minute, "place": sp.location,
                           "region": [f"region_{r}" for r in region[at]]})
    vocab, emb = location_embedding(sp, p.dim, p.seed)
    places = np.unique(sp.location)
    vectors = np.zeros((len(places), p.dim), dtype=np.float32)
    seen = np.isin(places, vocab)
    vectors[seen] = emb[np.searchsorted(vocab, places[seen])]
    with staged_dir(out) as tmp:
        events.to_csv(tmp / "events.csv", index=False)
        pq.write_table(pa.table({"id": places, "vector": list(vectors)}), tmp / "items.parquet")
    return {"events": len(events), "items": len(places), "unseen_items": int((~seen).sum())}