"""Synthetic mobility: the built-in dataset, deterministic per seed, no download.

Each user has a home and a work place. Workdays (Mon-Fri, with absences) go home -> work ->
maybe lunch -> work -> maybe an evening activity -> home; other days hold 1-3 free activities.
Free activities follow exploration and preferential return (Song et al. 2010): with probability
rho * S^-gamma a user explores a new place drawn from their own taste over a Zipf-popular set of
locations, otherwise returns to a place in proportion to past visits. Start times carry a daily
and weekly rhythm with noise, so the next place is learnable but far from certain.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data_io.dataset import write_dataset
from data_io.dataset_types import DatasetInfo
from data_io.errors import DataError
from data_io.prepare import PrepareParams, build_samples
from data_io.tables import Staypoints

RHO, GAMMA = 0.6, 0.21  # exploration parameters of the EPR model


@dataclass(frozen=True)
class SynthParams:
    users: int = 50
    days: int = 120
    locations: int = 300
    seed: int = 0

    def check(self) -> None:
        if self.users < 1 or self.days < 15 or self.locations < 10:
            raise DataError(f"synthetic settings {asdict(self)}: need users >= 1, days >= 15, locations >= 10")


def _sample_rows(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row of `weights`, drawn in proportion to the row (vectorised)."""
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cum[:, -1]
    return np.minimum((cum < u[:, None]).sum(axis=1), weights.shape[1] - 1)


class _Mobility:
    """Per-user state of the exploration / preferential-return process, vectorised over users."""

    def __init__(self, p: SynthParams, rng: np.random.Generator):
        self.rng = rng
        popularity = 1.0 / np.arange(1, p.locations + 1) ** 1.1
        rng.shuffle(popularity)
        self.taste = popularity[None, :] * rng.gamma(0.5, size=(p.users, p.locations))
        self.home = _sample_rows(self.taste, rng)
        work = _sample_rows(self.taste, rng)
        self.work = np.where(work == self.home, (work + 1) % p.locations, work)
        self.visits = np.zeros((p.users, p.locations))
        self.first_weekday = rng.integers(0, 7, p.users)
        self.records: list[tuple[np.ndarray, ...]] = []

    def free_place(self, who: np.ndarray) -> np.ndarray:
        visits = self.visits[who]
        seen = (visits > 0).sum(axis=1)
        explore = (seen == 0) | (self.rng.random(len(who)) < RHO * np.maximum(seen, 1) ** -GAMMA)
        taste = self.taste[who] * (visits == 0)  # explore = a place not visited yet
        taste[taste.sum(axis=1) == 0] = 1.0
        place = np.where(explore, _sample_rows(taste, self.rng), _sample_rows(visits + 1e-12, self.rng))
        self.visits[who, place] += 1
        return place

    def emit(self, mask: np.ndarray, place, day: int, mean_min: float, sd_min: float) -> None:
        who = np.flatnonzero(mask)
        if len(who) == 0:
            return
        loc = self.free_place(who) if place is None else np.asarray(place)[who]
        minute = np.clip(np.round(mean_min + self.rng.normal(0, sd_min, len(who))), 0, 1439)
        self.records.append((who, loc, np.full(len(who), day), minute.astype(np.int64)))

    def day(self, d: int) -> None:
        rng, n = self.rng, len(self.home)
        weekday = (d + self.first_weekday) % 7
        working = (weekday < 5) & (rng.random(n) > 0.08)
        self.emit(working, self.work, d, 510, 30)
        lunch = working & (rng.random(n) < 0.5)
        self.emit(lunch, None, d, 720, 15)
        self.emit(lunch, self.work, d, 790, 15)
        self.emit(working & (rng.random(n) < 0.35), None, d, 1085, 30)
        free = ~working
        n_free = rng.integers(1, 4, n)
        for j in range(3):
            self.emit(free & (j < n_free), None, d, 600 + 180 * j, 40)
        self.emit(np.ones(n, bool), self.home, d, 1200, 40)

    def staypoints(self) -> Staypoints:
        who, loc, day, minute = (np.concatenate(c) for c in zip(*self.records))
        order = np.lexsort((minute, day, who))
        who, loc, day, minute = who[order], loc[order], day[order], minute[order]
        t = day * 1440 + minute
        last = np.r_[who[1:] != who[:-1], True]
        duration = np.where(last, 480, np.r_[t[1:] - t[:-1], 0]).astype(np.float64)
        weekday = (day + self.first_weekday[who]) % 7
        return Staypoints(np.arange(len(who)), who + 1, loc, day, minute, weekday, duration)


def generate_staypoints(p: SynthParams) -> Staypoints:
    p.check()
    mob = _Mobility(p, np.random.default_rng(p.seed))
    for d in range(p.days):
        mob.day(d)
    return mob.staypoints()


def staypoints_frame(sp: Staypoints) -> pd.DataFrame:
    """The same columns as the Geolife table, so `data prepare table` reads it with defaults."""
    return pd.DataFrame({"id": sp.id, "user_id": sp.user, "location_id": sp.location,
                         "start_day": sp.day, "start_min": sp.minute, "duration": sp.duration,
                         "weekday": sp.weekday})


def synthesize(p: SynthParams, out: str | Path, prep: PrepareParams = PrepareParams(),
               table: str | Path | None = None, overwrite: bool = False) -> DatasetInfo:
    """Generate staypoints and write them as a prepared dataset (and optionally the raw table)."""
    sp = generate_staypoints(p)
    splits, vocab = build_samples(sp, prep, source="synthetic")
    if table is not None:
        staypoints_frame(sp).to_csv(table, index=False)
    return write_dataset(out, "synthetic", splits, vocab, prep, {"synthetic": asdict(p)}, overwrite)
