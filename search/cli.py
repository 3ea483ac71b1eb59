"""The `nextsweep` command line. Errors a user can cause print one line and exit with code 2."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from data_io import DataError, PrepareParams, read_info
from models import ModelError
from search.storage import SearchError
from spaces import SpaceError

USER_ERRORS: tuple[type[Exception], ...] = (DataError, ModelError, SpaceError, SearchError)


def _prep_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("preprocessing")
    g.add_argument("--train-frac", type=float, default=0.6, help="share of each user's tracked days for training (default 0.6)")
    g.add_argument("--val-frac", type=float, default=0.2, help="share for validation (default 0.2); test gets the rest")
    g.add_argument("--window-days", type=int, default=7, help="history = stays in the N previous days (default 7)")
    g.add_argument("--min-history", type=int, default=3, help="drop targets with fewer previous stays (default 3)")
    g.add_argument("--duration-cap", type=int, default=2879, help="cap durations at this many minutes (default 2879)")


def _params(a: argparse.Namespace) -> PrepareParams:
    return PrepareParams(train_frac=a.train_frac, val_frac=a.val_frac, window_days=a.window_days,
                         min_history=a.min_history, duration_cap=a.duration_cap)


def _column_options(p: argparse.ArgumentParser) -> None:
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


def cmd_prepare_geolife(a: argparse.Namespace) -> int:
    from data_io.geolife import prepare_geolife
    t = time.perf_counter()
    info = prepare_geolife(a.staypoints, a.valid_ids, a.out, a.overwrite)
    print(f"wrote {a.out} in {time.perf_counter() - t:.2f} s")
    print_info(info)
    return 0


def cmd_prepare_table(a: argparse.Namespace) -> int:
    from data_io.dataset import write_dataset
    from data_io.prepare import build_samples
    from data_io.tables import Columns, read_id_list, read_staypoints
    cols = Columns(user=a.user_col, location=a.location_col, start=a.start_col,
                   day=None if a.start_col else a.day_col, minute=None if a.start_col else a.minute_col,
                   duration=a.duration_col or None, end=a.end_col, end_day=a.end_day_col,
                   end_minute=a.end_minute_col, weekday=a.weekday_col, id=a.id_col)
    t = time.perf_counter()
    sp = read_staypoints(a.table, cols)
    ids = read_id_list(a.valid_ids) if a.valid_ids else None
    splits, vocab = build_samples(sp, _params(a), ids, source=a.table)
    source = {"table": str(a.table), "valid_ids": a.valid_ids and str(a.valid_ids)}
    info = write_dataset(a.out, a.name or Path(a.table).stem, splits, vocab, _params(a), source, a.overwrite)
    print(f"wrote {a.out} in {time.perf_counter() - t:.2f} s")
    print_info(info)
    return 0


def cmd_synth(a: argparse.Namespace) -> int:
    return {"location": _synth_location, "category": _synth_vectors, "vector": _synth_vectors}[a.task](a)


def _synth_location(a: argparse.Namespace) -> int:
    from data_io.synthetic import SynthParams, synthesize
    t = time.perf_counter()
    info = synthesize(SynthParams(a.users, a.days, a.locations, a.seed), a.out, _params(a), a.table, a.overwrite)
    print(f"wrote {a.out} in {time.perf_counter() - t:.2f} s")
    print_info(info)
    return 0


def _synth_vectors(a: argparse.Namespace) -> int:
    """--task category / vector: --users groups, --days steps per group, --locations items."""
    from data_io.synthetic_vectors import CategorySynthParams, VectorSynthParams, synthetic_category, synthetic_vector
    if a.table:
        raise DataError("--table: the raw staypoint table exists only for --task location; drop --table")
    make, params = {"category": (synthetic_category, CategorySynthParams),
                    "vector": (synthetic_vector, VectorSynthParams)}[a.task]
    p = params(groups=a.users, steps=a.days, items=a.locations, dim=a.dim, train_frac=a.train_frac,
               val_frac=a.val_frac, n_folds=a.folds, seed=a.seed)
    return _write_vectors(a, lambda: make(p))


def _geolife_derived_options(p: argparse.ArgumentParser, locations: bool) -> None:
    p.add_argument("--geolife", help="folder holding the Geolife files (default for the file options below)")
    p.add_argument("--staypoints", help="dataSet_geolife.csv (default: in --geolife)")
    p.add_argument("--valid-ids", help="valid_ids_geolife.csv (default: in --geolife)")
    if locations:
        p.add_argument("--locations", help="locations_geolife.csv with id, lon, lat (default: in --geolife)")
        p.add_argument("--regions", type=int, default=10, help="k-means regions over all locations (default 10)")
    p.add_argument("--dim", type=int, default=64, help="dimension of the location embeddings (default 64)")
    p.add_argument("--folds", type=int, default=5, help="grouped K-fold by user over train + val (default 5, 0 = none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the embedding, the k-means and the folds (default 0)")
    p.add_argument("--out", required=True, help="dataset directory to create")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def cmd_prepare_geolife_category(a: argparse.Namespace) -> int:
    from data_io.geolife_derived import DerivedParams, geolife_category, geolife_files
    f = geolife_files(a.geolife, staypoints=a.staypoints, valid_ids=a.valid_ids, locations=a.locations)
    p = DerivedParams(dim=a.dim, regions=a.regions, n_folds=a.folds, seed=a.seed)
    return _write_vectors(a, lambda: geolife_category(f["staypoints"], f["valid_ids"], f["locations"], p))


def cmd_prepare_geolife_vector(a: argparse.Namespace) -> int:
    from data_io.geolife_derived import DerivedParams, geolife_files, geolife_vector
    f = geolife_files(a.geolife, staypoints=a.staypoints, valid_ids=a.valid_ids)
    p = DerivedParams(dim=a.dim, n_folds=a.folds, seed=a.seed)
    return _write_vectors(a, lambda: geolife_vector(f["staypoints"], f["valid_ids"], p))


def _vector_split_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("splits and folds")
    g.add_argument("--val-frac", type=float, default=0.2, help="share of the samples for validation (default 0.2)")
    g.add_argument("--test-frac", type=float, default=0.2, help="share for test (default 0.2); train gets the rest")
    g.add_argument("--folds", type=int, default=0, help="grouped K-fold over train + val groups (default 0 = none)")
    g.add_argument("--seed", type=int, default=0, help="seed of the grouped split and folds (default 0)")
    g.add_argument("--bank", help="vector task: candidate bank, .npy [M, D], .npz ('vectors') or Parquet "
                                  "(default: the distinct targets of each split; events: all item vectors)")
    g.add_argument("--bank-col", default="vector", help="the bank's vector column in Parquet (default vector)")
    p.add_argument("--task", required=True, choices=["category", "vector"], help="what to predict: the next class or the next vector")
    p.add_argument("--out", required=True, help="dataset directory to create")
    p.add_argument("--name", help="dataset name (default: the file name)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def _write_vectors(a: argparse.Namespace, build) -> int:
    """Check --out first (no reading for nothing), build the dataset, write it, print its facts."""
    from data_io.vector_io import check_out, vector_facts, write_vector_dataset
    t = time.perf_counter()
    check_out(Path(a.out), a.overwrite)
    ds = build()
    info = write_vector_dataset(a.out, ds, a.overwrite)
    print(f"wrote {a.out} in {time.perf_counter() - t:.2f} s")
    print_info(info, vector_facts(ds))
    return 0


def cmd_prepare_vectors(a: argparse.Namespace) -> int:
    from data_io.vector_io import VectorColumns, vectors_from_files
    from data_io.vectors import VectorParams
    cols = VectorColumns(seq=a.seq_col, group=a.group_col, target=a.target_col, split=a.split_col, dim=a.dim,
                         max_history=a.max_history)
    params = VectorParams(val_frac=a.val_frac, test_frac=a.test_frac, folds=a.folds, seed=a.seed)
    files = [a.input, *(f for f in (a.val, a.test) if f)]
    return _write_vectors(a, lambda: vectors_from_files(a.task, files, cols, params, a.bank, a.bank_col, a.name))


def cmd_prepare_events(a: argparse.Namespace) -> int:
    from data_io.vector_io import EventColumns, events_from_files
    from data_io.vectors import VectorParams
    cols = EventColumns(group=a.group_col, time=a.time_col, item=a.item_col, category=a.category_col,
                        item_id=a.item_id_col, item_vec=a.item_vec_col)
    params = VectorParams(window=a.window, stride=a.stride, min_history=a.min_history, split_by=a.split_by,
                          val_frac=a.val_frac, test_frac=a.test_frac, folds=a.folds, seed=a.seed)
    return _write_vectors(a, lambda: events_from_files(a.task, a.events, a.items, cols, params, a.item_ids, a.bank,
                                                       a.bank_col, a.name))


def _print_vector_info(info, facts: dict | None, path) -> None:
    from data_io.targets import target_kind
    from data_io.vector_io import vector_facts
    s = info.split_sizes
    print(f"dataset      {info.name}")
    print(f"task         {info.task}")
    print(f"samples      train {s['train']:,} / val {s['val']:,} / test {s['test']:,}")
    print(f"inputs       vectors of dimension {info.input_dim}, up to {info.max_history} steps")
    for line in target_kind(info.task).describe(info, vector_facts(path) if facts is None and path else facts):
        print(line)
    print(f"groups       {info.n_users - 1:,}")
    print(f"folds        {f'{info.n_folds} grouped folds over train + val' if info.n_folds else 'none'}")
    print("params       " + ", ".join(f"{k}={v}" for k, v in info.params.items()))
    print(f"source       {info.source}")
    print(f"fingerprint  {info.fingerprint}")


def print_info(info, facts: dict | None = None, path=None) -> None:
    """`facts` (vector datasets, from data_io.vector_facts: class counts or bank sizes) or the
    dataset's `path` to read them from."""
    printer = {"location": _print_location_info, "category": _print_vector_info, "vector": _print_vector_info}
    printer[info.task](info, facts, path)


def _print_location_info(info, facts: dict | None, path) -> None:
    s = info.split_sizes
    print(f"dataset      {info.name}")
    print(f"samples      train {s['train']:,} / val {s['val']:,} / test {s['test']:,}")
    print(f"locations    {info.n_locations:,} classes (0 = padding, 1 = unseen in train)")
    print(f"users        {info.n_users - 1:,}")
    print(f"history      up to {info.max_history} stays")
    print("features     " + ", ".join(f"{k} {v}" for k, v in info.cardinalities.items()))
    print("params       " + ", ".join(f"{k}={v}" for k, v in info.params.items()))
    print(f"source       {info.source}")
    print(f"fingerprint  {info.fingerprint}")


def cmd_info(a: argparse.Namespace) -> int:
    print_info(read_info(a.path), path=a.path)
    return 0


def cmd_space_check(a: argparse.Namespace) -> int:
    from search.summary import asha_text
    from search.sweep import asha_signature
    from spaces import load_space
    from spaces.check import check_space, describe_param
    from spaces.data import load_space_info
    space = load_space(a.file, a.overrides)
    info = load_space_info(space)
    print(f"space        {space.name}  ({a.file})")
    print(f"data         {info.name}: {info.n_locations:,} location classes, train {info.split_sizes['train']:,} samples")
    print(f"objective    {space.metric} ({space.mode}); ASHA {asha_text(asha_signature(space.asha))}")
    budget = f"{space.max_params:,} parameters" if space.max_params else "none"
    print(f"budget       {budget}" + (f"; width fitted: {space.width}" if space.max_params and space.width else ""))
    print("params")
    for p in space.params:
        print(f"  {p.name:<16} {describe_param(p)}")
    r = check_space(space, info, samples=a.samples, seed=a.seed)
    shown = lambda cfg: ", ".join(f"{k}={v}" for k, v in cfg.items() if k in ("family", "layers", "d_model", "emb_dim", "tied_head"))
    print(f"param count  {int(r.n_min):,} ({shown(r.min_config)})")
    print(f"          .. {int(r.n_max):,} ({shown(r.max_config)})")
    if space.max_params:
        print(f"feasible     {r.feasible_fitted:.1%} of {r.samples} random proposals with the width fitted "
              f"(vs {r.feasible_naive:.1%} drawing the width blindly); {r.median_ms:.1f} ms per proposal")
    print("ok")
    return 0


def cmd_sweep(a: argparse.Namespace) -> int:
    from search.sweep import SweepOptions, parse_duration, run_sweep
    opts = SweepOptions(space=a.space, address=a.address, storage=_storage(a), study=a.study, samples=a.samples,
                        max_concurrent=a.max_concurrent, cpus_per_trial=a.cpus_per_trial,
                        gpus_per_trial=a.gpus_per_trial,
                        time_budget_s=parse_duration(a.time_budget) if a.time_budget else None,
                        sampler=a.sampler, startup_trials=a.startup_trials, seed=a.seed, resume=a.resume, dir=a.dir,
                        max_failures=a.max_failures,
                        enqueue=a.enqueue, overrides=a.overrides)
    run_sweep(opts)
    return 0


def _storage(a: argparse.Namespace) -> str:
    from search.storage import STORAGE_ENV, has_password, storage_url
    if a.storage and has_password(a.storage):  # argv is public: ps, Ray's job entrypoint
        print(f"nextsweep: warning: the password in --storage is visible to other users (ps); "
              f"use --storage-file PATH or ${STORAGE_ENV} instead", file=sys.stderr)
    return storage_url(a.storage, a.storage_file, Path(a.dir))


def cmd_status(a: argparse.Namespace) -> int:
    from search.status import print_status
    print_status(_storage(a), a.study)
    return 0


def cmd_dashboard(a: argparse.Namespace) -> int:
    from search.status import run_dashboard
    run_dashboard(_storage(a), a.host, a.port)
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from search.export import export_top, print_front
    paths = export_top(_storage(a), a.study, a.top, a.out, pareto=a.pareto)
    if a.pareto:
        print_front(paths)
    for path in paths:
        print(f"wrote {path}")
    return 0


def cmd_confirm(a: argparse.Namespace) -> int:
    from search.confirm import ConfirmOptions, print_confirmed, run_confirm
    opts = ConfirmOptions(storage=_storage(a), study=a.study, top=a.top, seeds=a.seeds, address=a.address,
                          cpus_per_trial=a.cpus_per_trial)
    print_confirmed(run_confirm(opts))
    return 0


def cmd_predict(a: argparse.Namespace) -> int:
    from search.predict import default_model, predict
    n = predict(a.config, a.out, a.model, a.split, a.top_k)
    print(f"wrote {a.out}: top-{a.top_k} predictions of {n:,} {a.split} samples by {a.model or default_model(a.config)}")
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    import optuna
    from search.report import write_report
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created in memory" lines for its plots
    print(f"wrote {write_report(_storage(a), a.study, a.out, a.exports, a.top)}")
    return 0


def cmd_retrain(a: argparse.Namespace) -> int:
    from search.export import print_retrain, retrain
    from search.storage import SearchError
    if a.seeds < 1:
        raise SearchError(f"--seeds {a.seeds}: must be >= 1")
    out = Path(a.out) if a.out else Path(a.config).with_suffix("")
    print_retrain(retrain(a.config, a.seeds, out, a.force), out)
    return 0


def _storage_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--storage", help="Optuna RDB URL. Where it holds a password use --storage-file or "
                                     "$NEXTSWEEP_STORAGE instead: a command line is visible in ps. Precedence: "
                                     "--storage, --storage-file, $NEXTSWEEP_STORAGE, sqlite:///DIR/nextsweep.db")
    g.add_argument("--storage-file", metavar="PATH", help="read the storage URL from this file "
                                                          "(e.g. ~/.nextsweep_pg_url on the cluster's head)")


def _study_options(p: argparse.ArgumentParser) -> None:
    _storage_options(p)
    p.add_argument("--dir", default="runs", help="sweep directory holding the default SQLite file (default runs)")
    p.add_argument("--study", help="study name (default: the newest study in the storage)")


def _set_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                   help="override a field of the space file, validated like the file (repeatable): a dotted key "
                        "and a YAML value, e.g. --set asha.max_epochs=20, --set budget.max_params=100000, "
                        "--set params.lr.high=0.01, --set params.batch_size=512, "
                        "--set params.family.choices=[gru,transformer]. A --resume must repeat the same --set")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nextsweep", description=(
        "Hyperparameter search for small sequence models (next location, next category, next vector) under a hard parameter budget."))
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="prepare, generate and inspect datasets").add_subparsers(dest="data_command", required=True)
    prep = data.add_parser("prepare", help="turn a staypoint table into a dataset").add_subparsers(dest="preset", required=True)

    g = prep.add_parser("geolife", help="the Geolife benchmark protocol (exact published split)")
    g.add_argument("--staypoints", required=True, help="dataSet_geolife.csv")
    g.add_argument("--valid-ids", required=True, help="valid_ids_geolife.csv")
    g.add_argument("--out", required=True, help="dataset directory to create")
    g.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    g.set_defaults(func=cmd_prepare_geolife)

    gc = prep.add_parser("geolife-category", help="Geolife, category task: the region of the next place",
                         description="The published Geolife samples; inputs: train-fitted location embeddings; "
                                     "target: the k-means region (over all location coordinates) of the next place.")
    _geolife_derived_options(gc, locations=True)
    gc.set_defaults(func=cmd_prepare_geolife_category)
    gv = prep.add_parser("geolife-vector", help="Geolife, vector task: the embedding of the next place",
                         description="The published Geolife samples; inputs: train-fitted location embeddings; "
                                     "target: the next place's embedding; bank: every train location + unseen (zero).")
    _geolife_derived_options(gv, locations=False)
    gv.set_defaults(func=cmd_prepare_geolife_vector)

    t = prep.add_parser("table", help="any staypoint / check-in table (CSV or Parquet)")
    t.add_argument("table", help="CSV (.csv, .csv.gz, .tsv) or Parquet (.parquet) file")
    t.add_argument("--out", required=True, help="dataset directory to create")
    t.add_argument("--name", help="dataset name (default: the file name)")
    t.add_argument("--valid-ids", help="file of staypoint ids that may be targets (matched against --id-col)")
    t.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    _column_options(t)
    _prep_options(t)
    t.set_defaults(func=cmd_prepare_table)

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
    v.add_argument("--max-history", type=int, help="keep the last N steps of each sequence (default: all); one "
                                                   "long sequence otherwise sizes every sample and the model")
    _vector_split_options(v)
    v.set_defaults(func=cmd_prepare_vectors)

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
    _vector_split_options(ev)
    ev.set_defaults(func=cmd_prepare_events)

    s = data.add_parser("synth", help="generate the built-in synthetic mobility dataset")
    s.add_argument("--out", required=True, help="dataset directory to create")
    s.add_argument("--users", type=int, default=50, help="number of users (default 50)")
    s.add_argument("--days", type=int, default=120, help="days per user (default 120)")
    s.add_argument("--locations", type=int, default=300, help="number of places (default 300)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--table", help="also write the raw staypoint table to this CSV")
    s.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    s.add_argument("--task", default="location", choices=["location", "category", "vector"],
                   help="location (default): staypoints; category / vector: sequences of D-dim item vectors, "
                        "--users groups, --days steps per group, --locations items (see data_io/synthetic_vectors.py)")
    s.add_argument("--dim", type=int, default=64, help="category / vector: item vector dimension (default 64)")
    s.add_argument("--folds", type=int, default=5, help="category / vector: grouped K-fold over train + val (default 5)")
    _prep_options(s)
    s.set_defaults(func=cmd_synth)

    i = data.add_parser("info", help="print a dataset's DatasetInfo")
    i.add_argument("path", help="dataset directory")
    i.set_defaults(func=cmd_info)

    space = sub.add_parser("space", help="search spaces").add_subparsers(dest="space_command", required=True)
    c = space.add_parser("check", help="validate a space, show its parameter-count range and feasible share")
    c.add_argument("file", help="space YAML file (e.g. spaces/quickstart.yaml)")
    c.add_argument("--samples", type=int, default=300, help="random proposals for the feasible share (default 300)")
    c.add_argument("--seed", type=int, default=0, help="seed of the random proposals (default 0)")
    _set_option(c)
    c.set_defaults(func=cmd_space_check)
    w = sub.add_parser("sweep", help="run a search: Ray Tune trials, Optuna proposals, ASHA pruning",
                       description="Run a sweep over a space file. Every trial lands in an Optuna study "
                                   "(default: SQLite under --dir) that `nextsweep dashboard` shows.")
    w.add_argument("space", help="space YAML file (e.g. spaces/quickstart.yaml)")
    w.add_argument("--address", help="Ray cluster to join: 'auto' or ray://HOST:PORT (default: start a local Ray)")
    _storage_options(w)
    w.add_argument("--study", help="study name (default: SPACE-NAME-YYYYmmdd-HHMMSS); an existing name needs --resume")
    w.add_argument("--samples", type=int, default=20, help="trials to train in total, resumes included (default 20); "
                                                          "budget rejections do not count")
    w.add_argument("--max-concurrent", type=int, help="trials at once (default: as many as the CPUs allow)")
    w.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial (default 1)")
    w.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPUs per trial, fractions allowed (default 0)")
    w.add_argument("--time-budget", help="stop starting and running trials after this long (e.g. 30m, 2h, 900)")
    w.add_argument("--sampler", default="tpe", choices=["tpe", "random", "cmaes", "qmc", "gp"],
                   help="Optuna sampler (default tpe: multivariate, constant liar)")
    w.add_argument("--startup-trials", type=int, metavar="N",
                   help="random trials before tpe, cmaes or gp start modelling (default: the sampler's own, "
                        "10 for tpe); fewer suit short sweeps. tpe's start-up tries each choice of a "
                        "categorical parameter (e.g. the family) once per round")
    w.add_argument("--seed", type=int, default=0, help="sweep seed: sampler seed and per-trial training seeds (default 0)")
    w.add_argument("--resume", action="store_true", help="continue --study after an interruption: no trial lost or repeated")
    w.add_argument("--dir", default="runs", help="sweep directory: SQLite study, Ray results, checkpoints (default runs)")
    w.add_argument("--max-failures", type=int, default=0, help="retries of a trial whose worker died (default 0)")
    _set_option(w)
    w.add_argument("--enqueue", action="append", default=[], metavar="EXPORT.yaml",
                   help="warm start: train the Optuna parameters of this `nextsweep export` file first, before the "
                        "sampler proposes anything (repeatable, in order; they count toward --samples and still "
                        "pass the budget check). A file whose parameters the space cannot propose (unknown name, "
                        "value outside its range or choices) is refused before the sweep starts")
    w.set_defaults(func=cmd_sweep)

    st = sub.add_parser("status", help="trials by state, best value and its parameters, CPU time")
    _study_options(st)
    st.set_defaults(func=cmd_status)

    d = sub.add_parser("dashboard", help="serve optuna-dashboard for the studies (loopback only by default)")
    _storage_options(d)
    d.add_argument("--dir", default="runs", help="sweep directory holding the default SQLite file (default runs)")
    d.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    d.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    d.set_defaults(func=cmd_dashboard)

    e = sub.add_parser("export", help="write the best trials as YAML files that `retrain` reads", description=(
        "Rank: trials confirmed by `nextsweep confirm` come first, by their validation mean over seeds; then the "
        "others by their one run. Trials whose objective is within its noise of a better one (the confirmed std, "
        "else the space's objective.tolerance, default 0.002) are ordered by the space's objective.then metrics. "
        "status, the sweep's summary and report use the same ranking."))
    _study_options(e)
    e.add_argument("--top", type=int, default=3, help="how many of the best COMPLETE trials (default 3)")
    e.add_argument("--pareto", action="store_true",
                   help="export the Pareto front instead of --top: every trial that no other beats with as few or "
                        "fewer parameters; files are named STUDY-pareto-<N>params-trial<T>.yaml")
    e.add_argument("--out", required=True, help="folder for the YAML files")
    e.set_defaults(func=cmd_export)

    cf = sub.add_parser("confirm", help="train the top trials again with new seeds; validation mean +- std",
                        description="Re-train the top --top trials (the sweep's own ranking) with --seeds new seeds "
                                    "each (the trial's seed + 1000 * i, never its own) on the training split, "
                                    "measured on validation only, in parallel on Ray. Each trial keeps the result "
                                    "(user attribute 'confirmed') after every seed; running the same command again "
                                    "trains only the missing seeds. export then ranks confirmed trials first.")
    _study_options(cf)
    cf.add_argument("--top", type=int, default=5, help="how many of the best COMPLETE trials (default 5)")
    cf.add_argument("--seeds", type=int, default=3, help="new seeds per trial (default 3)")
    cf.add_argument("--address", help="Ray cluster to join: 'auto' or ray://HOST:PORT (default: start a local Ray)")
    cf.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per run (default 1)")
    cf.set_defaults(func=cmd_confirm)

    rp = sub.add_parser("report", help="one self-contained HTML page reviewing a study (opens offline)",
                        description="Settings, outcomes, warnings, best so far against the baselines, learning "
                                    "curves with ASHA's rungs, objective against size (Pareto front), importances, "
                                    "parallel coordinates and the top trials with confirmed and retrained figures.")
    _study_options(rp)
    rp.add_argument("--out", default="report.html", help="HTML file to write (default report.html)")
    rp.add_argument("--exports", metavar="DIR", help="folder of `nextsweep export` whose retrain.json files to show")
    rp.add_argument("--top", type=int, default=10, help="rows of the top-trials table (default 10)")
    rp.set_defaults(func=cmd_report)

    r = sub.add_parser("retrain", help="train an exported config with several seeds; test metrics mean +- std")
    r.add_argument("config", help="YAML written by `nextsweep export`")
    r.add_argument("--seeds", type=int, default=5, help="number of seeds, starting at the trial's own (default 5)")
    r.add_argument("--out", help="output folder (default: the YAML's path without .yaml)")
    r.add_argument("--force", action="store_true", help="retrain even if the data's fingerprint changed")
    r.set_defaults(func=cmd_retrain)

    pr = sub.add_parser("predict", help="a retrained model's top-k predictions for a split, as Parquet",
                        description="Columns: sample_id, target, pred_1..k, score_1..k. Predictions are location "
                                    "ids as the dataset codes them (location; scores: log-probabilities), class "
                                    "labels (category; log-probabilities) or rows of the split's candidate bank "
                                    "(vector; cosine similarities).")
    pr.add_argument("config", help="YAML written by `nextsweep export`")
    pr.add_argument("--model", help="weights (default: best_model.pt in the retrain folder, the YAML's path without .yaml)")
    pr.add_argument("--split", default="test", choices=["train", "val", "test"], help="which split (default test)")
    pr.add_argument("--top-k", type=int, default=5, help="predictions per sample (default 5)")
    pr.add_argument("--out", required=True, help="Parquet file to write")
    pr.set_defaults(func=cmd_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        print(f"nextsweep: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nextsweep: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0


if __name__ == "__main__":
    sys.exit(main())
