"""`nextsweep sweep`: run a search over a space file (the work is search.sweep.run_sweep)."""

from __future__ import annotations

import argparse

from search.cli.common import set_option, storage, storage_options
from search.samplers import OPTUNA_SAMPLERS
from search.errors import SearchError


def register(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser("sweep", help="run a search: Ray Tune trials, Optuna proposals, ASHA pruning",
                       description="Run a sweep over a space file. Every trial lands in an Optuna study "
                                   "(default: SQLite under --dir) that `nextsweep dashboard` shows.")
    w.add_argument("space", help="space YAML file (e.g. spaces/quickstart.yaml)")
    w.add_argument("--address", help="Ray cluster to join: 'auto' or ray://HOST:PORT (default: start a local Ray)")
    storage_options(w)
    w.add_argument("--study", help="study name (default: SPACE-NAME-YYYYmmdd-HHMMSS); an existing name needs --resume")
    w.add_argument("--samples", type=int, help="trials to train in total, resumes included (default 20; with "
                                              "--time-budget, as many as the budget allows); "
                                                          "budget rejections do not count")
    w.add_argument("--max-concurrent", type=int, help="trials at once (default: as many as the CPUs allow)")
    w.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial (default 1)")
    w.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPUs per trial, fractions allowed (default 0)")
    w.add_argument("--time-budget", help="stop starting and running trials after this long (e.g. 30m, 2h, 900)")
    w.add_argument("--sampler", default="tpe", choices=OPTUNA_SAMPLERS,
                   help="Optuna sampler (default tpe: multivariate, constant liar)")
    w.add_argument("--startup-trials", type=int, metavar="N",
                   help="random trials before tpe, cmaes or gp start modelling (default: the sampler's own, "
                        "10 for tpe); fewer suit short sweeps. tpe's start-up tries each choice of a "
                        "categorical parameter (e.g. the family) once per round")
    w.add_argument("--seed", type=int, default=0, help="sweep seed: sampler seed and per-trial training seeds (default 0)")
    w.add_argument("--resume", action="store_true", help="continue --study after an interruption: no trial lost or repeated")
    w.add_argument("--dir", default="runs", help="sweep directory: SQLite study, Ray results, checkpoints (default runs)")
    w.add_argument("--max-failures", type=int, default=0, help="retries of a trial whose worker died (default 0)")
    set_option(w)
    sim = w.add_argument_group("dry runs and scale (nothing is trained)")
    sim.add_argument("--simulate", action="store_true",
                     help="replace training by a seeded stand-in that sleeps --epoch-seconds per epoch and reports "
                          "a learning curve computed from the config: the whole sweep (searcher, budget check, "
                          "study, ASHA, checkpoints, summary) runs, and the study is marked simulated (retrain, "
                          "confirm and predict refuse it). A cluster's dry run, or a scale test")
    sim.add_argument("--epoch-seconds", type=float, default=0.1, help="--simulate: seconds per epoch (default 0.1)")
    sim.add_argument("--local-cpus", type=int, metavar="N",
                     help="the local Ray declares N CPUs (default: this machine's); sleeping simulated trials need "
                          "none, so N may be far above the real cores")
    w.add_argument("--enqueue", action="append", default=[], metavar="EXPORT.yaml",
                   help="warm start: train the Optuna parameters of this `nextsweep export` file first, before the "
                        "sampler proposes anything (repeatable, in order; they count toward --samples and still "
                        "pass the budget check). A file whose parameters the space cannot propose (unknown name, "
                        "value outside its range or choices) is refused before the sweep starts")
    w.set_defaults(func=cmd_sweep)


def cmd_sweep(a: argparse.Namespace) -> int:
    from search.sweep import UNTIL_BUDGET, SweepOptions, run_sweep
    budget = parse_duration(a.time_budget) if a.time_budget else None
    samples = a.samples if a.samples is not None else (UNTIL_BUDGET if budget else 20)
    opts = SweepOptions(space=a.space, address=a.address, storage=storage(a), study=a.study, samples=samples,
                        max_concurrent=a.max_concurrent, cpus_per_trial=a.cpus_per_trial,
                        gpus_per_trial=a.gpus_per_trial,
                        time_budget_s=budget,
                        sampler=a.sampler, startup_trials=a.startup_trials, seed=a.seed, resume=a.resume, dir=a.dir,
                        max_failures=a.max_failures, enqueue=a.enqueue, overrides=a.overrides,
                        simulate=a.simulate, epoch_seconds=a.epoch_seconds, local_cpus=a.local_cpus)
    run_sweep(opts)
    return 0


def parse_duration(text: str) -> float:
    """'90s', '30m', '2h' or plain seconds -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise SearchError(f"--time-budget {text!r}: use a number of seconds or e.g. 90s, 30m, 2h") from None
