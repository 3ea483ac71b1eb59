"""The results commands: status, dashboard, export, confirm, report, retrain, predict. Each reads a
study (or an export of one); the work is in search.status, dashboard, export, retrain,
confirm, report and predict."""

from __future__ import annotations

import argparse
from pathlib import Path

from search.cli.common import storage, storage_options, study_options


def register(sub: argparse._SubParsersAction) -> None:
    """The parsers in `nextsweep --help`'s order: status, dashboard, export, confirm, report, retrain, predict."""
    _register_status_dashboard_export(sub)
    _register_confirm_report(sub)
    _register_retrain_predict(sub)


def _register_status_dashboard_export(sub: argparse._SubParsersAction) -> None:
    st = sub.add_parser("status", help="trials by state, best value and its parameters, CPU time")
    study_options(st)
    st.set_defaults(func=cmd_status)

    d = sub.add_parser("dashboard", help="serve optuna-dashboard for the studies (loopback only by default)")
    storage_options(d)
    d.add_argument("--dir", default="runs", help="sweep directory holding the default SQLite file (default runs)")
    d.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    d.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    d.set_defaults(func=cmd_dashboard)

    e = sub.add_parser("export", help="write the best trials as YAML files that `retrain` reads", description=(
        "Rank: trials confirmed by `nextsweep confirm` come first, by their validation mean over seeds; then the "
        "others by their one run. Trials whose objective is within its noise of a better one (the confirmed std, "
        "else the space's objective.tolerance, default 0.002) are ordered by the space's objective.then metrics. "
        "status, the sweep's summary and report use the same ranking."))
    study_options(e)
    e.add_argument("--top", type=int, default=3, help="how many of the best COMPLETE trials (default 3)")
    e.add_argument("--pareto", action="store_true",
                   help="export the Pareto front instead of --top: every trial that no other beats with as few or "
                        "fewer parameters; files are named STUDY-pareto-<N>params-trial<T>.yaml")
    e.add_argument("--out", required=True, help="folder for the YAML files")
    e.set_defaults(func=cmd_export)


def _register_confirm_report(sub: argparse._SubParsersAction) -> None:
    cf = sub.add_parser("confirm", help="train the top trials again with new seeds; validation mean +- std",
                        description="Re-train the top --top trials (the sweep's own ranking) with --seeds new seeds "
                                    "each (the trial's seed + 1000 * i, never its own) on the training split, "
                                    "measured on validation only, in parallel on Ray. Each trial keeps the result "
                                    "(user attribute 'confirmed') after every seed; running the same command again "
                                    "trains only the missing seeds. export then ranks confirmed trials first.")
    study_options(cf)
    cf.add_argument("--top", type=int, default=5, help="how many of the best COMPLETE trials (default 5)")
    cf.add_argument("--seeds", type=int, default=3, help="new seeds per trial (default 3)")
    cf.add_argument("--address", help="Ray cluster to join: 'auto' or ray://HOST:PORT (default: start a local Ray)")
    cf.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per run (default 1)")
    cf.set_defaults(func=cmd_confirm)

    rp = sub.add_parser("report", help="one self-contained HTML page reviewing a study (opens offline)",
                        description="Settings, outcomes, warnings, best so far against the baselines, learning "
                                    "curves with ASHA's rungs, objective against size (Pareto front), importances, "
                                    "parallel coordinates and the top trials with confirmed and retrained figures.")
    study_options(rp)
    rp.add_argument("--out", default="report.html", help="HTML file to write (default report.html)")
    rp.add_argument("--exports", metavar="DIR", help="folder of `nextsweep export` whose retrain.json files to show")
    rp.add_argument("--top", type=int, default=10, help="rows of the top-trials table (default 10)")
    rp.set_defaults(func=cmd_report)


def _register_retrain_predict(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("retrain", help="train an exported config with several seeds; test metrics mean +- std")
    r.add_argument("config", help="YAML written by `nextsweep export`")
    r.add_argument("--seeds", type=int, default=5, help="number of seeds, starting at the trial's own (default 5)")
    r.add_argument("--out", help="output folder (default: the YAML's path without .yaml)")
    r.add_argument("--force", action="store_true", help="retrain even if the data's fingerprint changed")
    r.add_argument("--jobs", type=int, help="seeds trained at once, each in its own process with the trial's threads "
                   "(default: every seed, up to twice the CPUs; 1: one after another in this process); "
                   "the figures are the same either way")
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


def cmd_status(a: argparse.Namespace) -> int:
    from search.status import print_status
    print_status(storage(a), a.study)
    return 0


def cmd_dashboard(a: argparse.Namespace) -> int:
    from search.dashboard import run_dashboard
    run_dashboard(storage(a), a.host, a.port)
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from search.export import export_top, print_front
    paths = export_top(storage(a), a.study, a.top, a.out, pareto=a.pareto)
    if a.pareto:
        print_front(paths)
    for path in paths:
        print(f"wrote {path}")
    return 0


def cmd_confirm(a: argparse.Namespace) -> int:
    from search.confirm import ConfirmOptions, print_confirmed, run_confirm
    opts = ConfirmOptions(storage=storage(a), study=a.study, top=a.top, seeds=a.seeds, address=a.address,
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
    print(f"wrote {write_report(storage(a), a.study, a.out, a.exports, a.top)}")
    return 0


def cmd_retrain(a: argparse.Namespace) -> int:
    from search.retrain import print_retrain, retrain
    from search.errors import SearchError
    if a.seeds < 1:
        raise SearchError(f"--seeds {a.seeds}: must be >= 1")
    out = Path(a.out) if a.out else Path(a.config).with_suffix("")
    if a.jobs is not None and a.jobs < 1:
        raise SearchError(f"--jobs {a.jobs}: must be >= 1")
    print_retrain(retrain(a.config, a.seeds, out, a.force, a.jobs), out)
    return 0

