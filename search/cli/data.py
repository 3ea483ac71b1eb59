"""`nextsweep data`: prepare (geolife, geolife-category, geolife-vector, table, vectors, events),
synth and info. The parsers and the commands; the work is data_io's, what they print data_info's."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from data_io import get_kind, read_info
from data_io.kinds import KINDS
from search.cli.data_info import print_info
from search.cli.data_options import (column_options, geolife_derived_options, prep_options, prepare_params,
                                     table_columns, vector_split_options)


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="prepare, generate and inspect datasets").add_subparsers(dest="data_command", required=True)
    prep = data.add_parser("prepare", help="turn a staypoint table into a dataset").add_subparsers(dest="preset", required=True)
    _register_geolife(prep)
    _register_table(prep)
    _register_vectors(prep)
    _register_events(prep)
    _register_synth(data)
    ge = data.add_parser("geolife-events", help="write Geolife as an events table + item vectors (the form of your "
                                                "own check-ins), for `data prepare events`",
                         description="events.csv: user, time (minutes), place, region (k-means over all location "
                                     "coordinates); items.parquet: id, vector (the place embedding fitted on the "
                                     "protocol's train days; zero for places never seen there).")
    geolife_derived_options(ge, locations=True, valid_ids=False)
    ge.set_defaults(func=cmd_geolife_events)
    i = data.add_parser("info", help="print a dataset's DatasetInfo")
    i.add_argument("path", help="dataset directory")
    i.set_defaults(func=cmd_info)


def _register_geolife(prep: argparse._SubParsersAction) -> None:
    g = prep.add_parser("geolife", help="the Geolife benchmark protocol (exact published split)")
    g.add_argument("--staypoints", required=True, help="dataSet_geolife.csv")
    g.add_argument("--valid-ids", required=True, help="valid_ids_geolife.csv")
    g.add_argument("--out", required=True, help="dataset directory to create")
    g.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    g.set_defaults(func=cmd_prepare_geolife)

    gc = prep.add_parser("geolife-category", help="Geolife, category task: the region of the next place",
                         description="The published Geolife samples; inputs: train-fitted location embeddings; "
                                     "target: the k-means region (over all location coordinates) of the next place.")
    geolife_derived_options(gc, locations=True)
    gc.set_defaults(func=cmd_prepare_geolife_category)
    gv = prep.add_parser("geolife-vector", help="Geolife, vector task: the embedding of the next place",
                         description="The published Geolife samples; inputs: train-fitted location embeddings; "
                                     "target: the next place's embedding; bank: every train location + unseen (zero).")
    geolife_derived_options(gv, locations=False)
    gv.set_defaults(func=cmd_prepare_geolife_vector)


def _register_table(prep: argparse._SubParsersAction) -> None:
    t = prep.add_parser("table", help="any staypoint / check-in table (CSV or Parquet)")
    t.add_argument("table", help="CSV (.csv, .csv.gz, .tsv) or Parquet (.parquet) file")
    t.add_argument("--out", required=True, help="dataset directory to create")
    t.add_argument("--name", help="dataset name (default: the file name)")
    t.add_argument("--valid-ids", help="file of staypoint ids that may be targets (matched against --id-col)")
    t.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    column_options(t)
    prep_options(t)
    t.set_defaults(func=cmd_prepare_table)


def _register_vectors(prep: argparse._SubParsersAction) -> None:
    v = prep.add_parser("vectors", help="sequences of given vectors, one sample per row (Parquet or .npz)",
                        description="Samples: a Parquet list-of-vectors column (or a flat list with --dim) or an "
                                    ".npz array [N, L, D] (+ 'lengths'), a group and a target per sample. One file "
                                    "split by --split-col or by groups, or three files (INPUT = train, --val, --test).")
    v.add_argument("input", help="Parquet (.parquet) or NumPy (.npz) samples; the train file with --val/--test")
    v.add_argument("--val", help="validation samples (with --test: one file per split)")
    v.add_argument("--test", help="test samples")
    v.add_argument("--seq-col", default="x", help="sequence column / array (default x)")
    v.add_argument("--dim", type=int, help="floats per step when --seq-col is a flat list<float>")
    v.add_argument("--group-col", default="group", help="group (user / chain) column (default group)")
    v.add_argument("--target-col", default="target", help="label (category) or target vector (vector) column (default target)")
    v.add_argument("--split-col", help="column holding train / val / test (default: split by groups)")
    v.add_argument("--step-class-col", help="category: a list column (.npz: [N, L] array) with the class of each "
                                            "history step, in the target's labels; models can read and copy "
                                            "them (unknown or unlisted labels count as unknown)")
    v.add_argument("--max-history", type=int, help="keep the last N steps of each sequence (default: all); one "
                                                   "long sequence otherwise sizes every sample and the model")
    vector_split_options(v)
    v.set_defaults(func=cmd_prepare_vectors)


def _register_events(prep: argparse._SubParsersAction) -> None:
    ev = prep.add_parser("events", help="an events table + item embeddings, cut into windows per group",
                         description="Each group's events in time order give samples: the history is up to "
                                     "--window item vectors, the target the next event's category (category) or "
                                     "item vector (vector; bank = all item vectors).")
    ev.add_argument("events", help="events table: CSV (.csv, .csv.gz, .tsv) or Parquet")
    ev.add_argument("--items", required=True, help="item vectors: Parquet (id + vector columns), .npz ('ids', "
                                                   "'vectors') or .npy (ids from --item-ids, else the row number)")
    ev.add_argument("--item-ids", help="ids of the rows of an .npy --items file (.npy, or a one-column CSV / Parquet)")
    ev.add_argument("--item-id-col", default="id", help="id column of a Parquet --items file (default id)")
    ev.add_argument("--item-vec-col", default="vector", help="vector column of a Parquet --items file (default vector)")
    ev.add_argument("--group-col", default="group", help="group (user) column (default group)")
    ev.add_argument("--time-col", default="time", help="timestamp or order column (default time)")
    ev.add_argument("--item-col", default="item", help="item id column (default item)")
    ev.add_argument("--category-col", default="category", help="category task: the event's class (default category)")
    ev.add_argument("--window", type=int, default=20, help="longest history, in events (default 20)")
    ev.add_argument("--stride", type=int, default=1, help="use every N-th target of a group (default 1)")
    ev.add_argument("--min-history", type=int, default=1, help="targets need this many earlier events (default 1)")
    ev.add_argument("--split-by", default="group", choices=["group", "time"],
                    help="group: whole groups per split; time: each group's first / middle / last events (default group)")
    vector_split_options(ev)
    ev.set_defaults(func=cmd_prepare_events)


def _register_synth(data: argparse._SubParsersAction) -> None:
    s = data.add_parser("synth", help="generate the built-in synthetic mobility dataset")
    s.add_argument("--out", required=True, help="dataset directory to create")
    s.add_argument("--users", type=int, default=50, help="number of users (default 50)")
    s.add_argument("--days", type=int, default=120, help="days per user (default 120)")
    s.add_argument("--locations", type=int, default=300, help="number of places (default 300)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--table", help="also write the raw staypoint table to this CSV")
    s.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    s.add_argument("--task", default="location", choices=list(KINDS),
                   help="location (default): staypoints; category / vector: sequences of D-dim item vectors, "
                        "--users groups, --days steps per group, --locations items (see data_io/synthetic_vector_seqs.py)")
    s.add_argument("--dim", type=int, default=64, help="category / vector: item vector dimension (default 64)")
    s.add_argument("--folds", type=int, default=5, help="category / vector: grouped K-fold over train + val (default 5)")
    prep_options(s)
    s.set_defaults(func=cmd_synth)


def cmd_prepare_geolife(a: argparse.Namespace) -> int:
    from data_io.geolife import prepare_geolife
    t = time.perf_counter()
    info = prepare_geolife(a.staypoints, a.valid_ids, a.out, a.overwrite)
    print(f"wrote {a.out} in {time.perf_counter() - t:.2f} s")
    print_info(info)
    return 0


def cmd_prepare_table(a: argparse.Namespace) -> int:
    from data_io.dataset import prepare_table
    cols = table_columns(a)
    t = time.perf_counter()
    info = prepare_table(a.table, cols, prepare_params(a), a.out, a.name, a.valid_ids, a.overwrite)
    print(f"wrote {a.out} in {time.perf_counter() - t:.2f} s")
    print_info(info)
    return 0


def cmd_synth(a: argparse.Namespace) -> int:
    """What --users / --days / --locations mean is the task's data kind's (data_io.kinds)."""
    cli = {"users": a.users, "days": a.days, "locations": a.locations, "dim": a.dim, "folds": a.folds, "seed": a.seed,
           "train_frac": a.train_frac, "val_frac": a.val_frac, "prepare": prepare_params(a), "table": a.table}
    t = time.perf_counter()
    info, facts = get_kind(a.task).synthesize(Path(a.out), cli, a.overwrite)
    print(f"wrote {a.out} in {time.perf_counter() - t:.2f} s")
    print_info(info, facts)
    return 0


def cmd_prepare_geolife_category(a: argparse.Namespace) -> int:
    from data_io.geolife_derived import DerivedParams, geolife_category, geolife_files
    f = geolife_files(a.geolife, staypoints=a.staypoints, valid_ids=a.valid_ids, locations=a.locations)
    p = DerivedParams(dim=a.dim, regions=a.regions, n_folds=a.folds, seed=a.seed)
    return _write_vectors(a, lambda: geolife_category(f["staypoints"], f["valid_ids"], f["locations"], p))


def cmd_geolife_events(a: argparse.Namespace) -> int:
    from data_io.geolife_derived import DerivedParams, geolife_events, geolife_files
    f = geolife_files(a.geolife, staypoints=a.staypoints, locations=a.locations)
    t = time.perf_counter()
    n = geolife_events(f["staypoints"], f["locations"], a.out, DerivedParams(dim=a.dim, regions=a.regions, seed=a.seed),
                       a.overwrite)
    print(f"wrote {a.out}/events.csv ({n['events']:,} stays) and {a.out}/items.parquet ({n['items']:,} places, "
          f"{n['unseen_items']:,} never seen in train: zero vectors) in {time.perf_counter() - t:.2f} s")
    print(f"next: nextsweep data prepare events {a.out}/events.csv --items {a.out}/items.parquet --task category "
          "--group-col user --time-col time --item-col place --category-col region --out DIR")
    return 0


def cmd_prepare_geolife_vector(a: argparse.Namespace) -> int:
    from data_io.geolife_derived import DerivedParams, geolife_files, geolife_vector
    f = geolife_files(a.geolife, staypoints=a.staypoints, valid_ids=a.valid_ids)
    p = DerivedParams(dim=a.dim, n_folds=a.folds, seed=a.seed)
    return _write_vectors(a, lambda: geolife_vector(f["staypoints"], f["valid_ids"], p))


def _write_vectors(a: argparse.Namespace, build) -> int:
    """Check --out first (no reading for nothing), build the dataset, write it, print its facts."""
    from data_io.staging import check_output_dir
    from data_io.vector_seq_files import write_vector_dataset
    t = time.perf_counter()
    check_output_dir(Path(a.out), a.overwrite)
    ds = build()
    info = write_vector_dataset(a.out, ds, a.overwrite)
    print(f"wrote {a.out} in {time.perf_counter() - t:.2f} s")
    print_info(info, get_kind(info.task).facts(ds))
    return 0


def cmd_prepare_vectors(a: argparse.Namespace) -> int:
    from data_io.vector_seq_files import VectorColumns, vectors_from_files
    from data_io.vector_seqs import VectorParams
    cols = VectorColumns(seq=a.seq_col, group=a.group_col, target=a.target_col, split=a.split_col, dim=a.dim,
                         max_history=a.max_history, step_class=a.step_class_col)
    params = VectorParams(val_frac=a.val_frac, test_frac=a.test_frac, folds=a.folds, seed=a.seed)
    files = [a.input, *(f for f in (a.val, a.test) if f)]
    return _write_vectors(a, lambda: vectors_from_files(a.task, files, cols, params, a.bank, a.bank_col, a.name))


def cmd_prepare_events(a: argparse.Namespace) -> int:
    from data_io.vector_seq_files import EventColumns, events_from_files
    from data_io.vector_seqs import VectorParams
    cols = EventColumns(group=a.group_col, time=a.time_col, item=a.item_col, category=a.category_col,
                        item_id=a.item_id_col, item_vec=a.item_vec_col)
    params = VectorParams(window=a.window, stride=a.stride, min_history=a.min_history, split_by=a.split_by,
                          val_frac=a.val_frac, test_frac=a.test_frac, folds=a.folds, seed=a.seed)
    return _write_vectors(a, lambda: events_from_files(a.task, a.events, a.items, cols, params, a.item_ids, a.bank,
                                                       a.bank_col, a.name))


def cmd_info(a: argparse.Namespace) -> int:
    print_info(read_info(a.path), path=a.path)
    return 0

