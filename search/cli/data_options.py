"""The options of the `data` commands: preprocessing (location task), the columns of a staypoint
table, the Geolife-derived presets and the vector splits; and their values as data_io's types."""

from __future__ import annotations

import argparse

from data_io import PrepareParams
from data_io.tables import Columns
from data_io.targets import KINDS as TARGET_KINDS


def prep_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("preprocessing")
    g.add_argument("--train-frac", type=float, default=0.6, help="share of each user's tracked days for training (default 0.6)")
    g.add_argument("--val-frac", type=float, default=0.2, help="share for validation (default 0.2); test gets the rest")
    g.add_argument("--window-days", type=int, default=7, help="history = stays in the N previous days (default 7)")
    g.add_argument("--min-history", type=int, default=3, help="drop targets with fewer previous stays (default 3)")
    g.add_argument("--duration-cap", type=int, default=2879, help="cap durations at this many minutes (default 2879)")


def prepare_params(a: argparse.Namespace) -> PrepareParams:
    return PrepareParams(train_frac=a.train_frac, val_frac=a.val_frac, window_days=a.window_days,
                         min_history=a.min_history, duration_cap=a.duration_cap)


def column_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("columns (defaults match the Geolife table)")
    for opt, default, what in [
        ("user", "user_id", "user id (integer)"), ("location", "location_id", "location id (integer)"),
        ("start", None, "start timestamp (instead of --day-col/--minute-col)"),
        ("day", "start_day", "start day number"), ("minute", "start_min", "start minute after midnight"),
        ("duration", "duration", "duration in minutes (set to '' to use an end column)"),
        ("end", None, "end timestamp (with --start-col)"), ("end-day", None, "end day number"),
        ("end-minute", None, "end minute after midnight"), ("weekday", None, "weekday 0=Monday (default: from timestamps, else day %% 7)"),
        ("id", None, "staypoint id, matched by --valid-ids (default: row number)"),
    ]:
        g.add_argument(f"--{opt}-col", default=default, help=what + (f" (default {default})" if default else ""))


def table_columns(a: argparse.Namespace) -> Columns:
    """data_io.tables.Columns from the column options (--start-col replaces --day-col / --minute-col)."""
    return Columns(user=a.user_col, location=a.location_col, start=a.start_col,
                   day=None if a.start_col else a.day_col, minute=None if a.start_col else a.minute_col,
                   duration=a.duration_col or None, end=a.end_col, end_day=a.end_day_col,
                   end_minute=a.end_minute_col, weekday=a.weekday_col, id=a.id_col)


def geolife_derived_options(p: argparse.ArgumentParser, locations: bool, valid_ids: bool = True) -> None:
    p.add_argument("--geolife", help="folder holding the Geolife files (default for the file options below)")
    p.add_argument("--staypoints", help="dataSet_geolife.csv (default: in --geolife)")
    if valid_ids:
        p.add_argument("--valid-ids", help="valid_ids_geolife.csv (default: in --geolife)")
    if locations:
        p.add_argument("--locations", help="locations_geolife.csv with id, lon, lat (default: in --geolife)")
        p.add_argument("--regions", type=int, default=10, help="k-means regions over all locations (default 10)")
    p.add_argument("--dim", type=int, default=64, help="dimension of the location embeddings (default 64)")
    if valid_ids:  # the samples of the protocol: folds over them
        p.add_argument("--folds", type=int, default=5, help="grouped K-fold by user over train + val (default 5, 0 = none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the embedding, the k-means and the folds (default 0)")
    p.add_argument("--out", required=True, help="dataset directory to create")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def vector_split_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("splits and folds")
    g.add_argument("--val-frac", type=float, default=0.2, help="share of the samples for validation (default 0.2)")
    g.add_argument("--test-frac", type=float, default=0.2, help="share for test (default 0.2); train gets the rest")
    g.add_argument("--folds", type=int, default=0, help="grouped K-fold over train + val groups (default 0 = none)")
    g.add_argument("--seed", type=int, default=0, help="seed of the grouped split and folds (default 0)")
    g.add_argument("--bank", help="vector task: candidate bank, .npy [M, D], .npz ('vectors') or Parquet "
                                  "(default: the distinct targets of each split; events: all item vectors)")
    g.add_argument("--bank-col", default="vector", help="the bank's vector column in Parquet (default vector)")
    p.add_argument("--task", required=True, choices=list(TARGET_KINDS),  # the tasks whose data is the vector format
                   help="what to predict: the next class or the next vector")
    p.add_argument("--out", required=True, help="dataset directory to create")
    p.add_argument("--name", help="dataset name (default: the file name)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")

