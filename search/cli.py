"""The `nextsweep` command line. Errors a user can cause print one line and exit with code 2."""

from __future__ import annotations

import argparse
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
    from data_io.synthetic import SynthParams, synthesize
    t = time.perf_counter()
    info = synthesize(SynthParams(a.users, a.days, a.locations, a.seed), a.out, _params(a), a.table, a.overwrite)
    print(f"wrote {a.out} in {time.perf_counter() - t:.2f} s")
    print_info(info)
    return 0


def print_info(info) -> None:
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
    print_info(read_info(a.path))
    return 0


def cmd_space_check(a: argparse.Namespace) -> int:
    from spaces import load_space
    from spaces.check import check_space, describe_param
    from spaces.data import load_space_info
    space = load_space(a.file)
    info = load_space_info(space)
    print(f"space        {space.name}  ({a.file})")
    print(f"data         {info.name}: {info.n_locations:,} location classes, train {info.split_sizes['train']:,} samples")
    print(f"objective    {space.metric} ({space.mode}); ASHA max_epochs {space.asha.max_epochs}, "
          f"grace {space.asha.grace_period}, reduction {space.asha.reduction_factor:g}")
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
                        sampler=a.sampler, seed=a.seed, resume=a.resume, dir=a.dir, max_failures=a.max_failures)
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
    from search.export import export_top
    for path in export_top(_storage(a), a.study, a.top, a.out):
        print(f"wrote {path}")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nextsweep", description=(
        "Hyperparameter search for next-location models under a hard parameter budget."))
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="prepare, generate and inspect datasets").add_subparsers(dest="data_command", required=True)
    prep = data.add_parser("prepare", help="turn a staypoint table into a dataset").add_subparsers(dest="preset", required=True)

    g = prep.add_parser("geolife", help="the Geolife benchmark protocol (exact published split)")
    g.add_argument("--staypoints", required=True, help="dataSet_geolife.csv")
    g.add_argument("--valid-ids", required=True, help="valid_ids_geolife.csv")
    g.add_argument("--out", required=True, help="dataset directory to create")
    g.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    g.set_defaults(func=cmd_prepare_geolife)

    t = prep.add_parser("table", help="any staypoint / check-in table (CSV or Parquet)")
    t.add_argument("table", help="CSV (.csv, .csv.gz, .tsv) or Parquet (.parquet) file")
    t.add_argument("--out", required=True, help="dataset directory to create")
    t.add_argument("--name", help="dataset name (default: the file name)")
    t.add_argument("--valid-ids", help="file of staypoint ids that may be targets (matched against --id-col)")
    t.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    _column_options(t)
    _prep_options(t)
    t.set_defaults(func=cmd_prepare_table)

    s = data.add_parser("synth", help="generate the built-in synthetic mobility dataset")
    s.add_argument("--out", required=True, help="dataset directory to create")
    s.add_argument("--users", type=int, default=50, help="number of users (default 50)")
    s.add_argument("--days", type=int, default=120, help="days per user (default 120)")
    s.add_argument("--locations", type=int, default=300, help="number of places (default 300)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--table", help="also write the raw staypoint table to this CSV")
    s.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
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
    w.add_argument("--seed", type=int, default=0, help="sweep seed: sampler seed and per-trial training seeds (default 0)")
    w.add_argument("--resume", action="store_true", help="continue --study after an interruption: no trial lost or repeated")
    w.add_argument("--dir", default="runs", help="sweep directory: SQLite study, Ray results, checkpoints (default runs)")
    w.add_argument("--max-failures", type=int, default=0, help="retries of a trial whose worker died (default 0)")
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

    e = sub.add_parser("export", help="write the best trials as YAML files that `retrain` reads")
    _study_options(e)
    e.add_argument("--top", type=int, default=3, help="how many of the best COMPLETE trials (default 3)")
    e.add_argument("--out", required=True, help="folder for the YAML files")
    e.set_defaults(func=cmd_export)

    r = sub.add_parser("retrain", help="train an exported config with several seeds; test metrics mean +- std")
    r.add_argument("config", help="YAML written by `nextsweep export`")
    r.add_argument("--seeds", type=int, default=5, help="number of seeds, starting at the trial's own (default 5)")
    r.add_argument("--out", help="output folder (default: the YAML's path without .yaml)")
    r.add_argument("--force", action="store_true", help="retrain even if the data's fingerprint changed")
    r.set_defaults(func=cmd_retrain)
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


if __name__ == "__main__":
    sys.exit(main())
