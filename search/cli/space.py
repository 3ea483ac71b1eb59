"""`nextsweep space check`: validate a space file, show its parameter-count range and feasible share."""

from __future__ import annotations

import argparse

from search.cli.common import set_option


def register(sub: argparse._SubParsersAction) -> None:
    space = sub.add_parser("space", help="search spaces").add_subparsers(dest="space_command", required=True)
    c = space.add_parser("check", help="validate a space, show its parameter-count range and feasible share")
    c.add_argument("file", help="space YAML file (e.g. spaces/quickstart.yaml)")
    c.add_argument("--samples", type=int, default=300, help="random proposals for the feasible share (default 300)")
    c.add_argument("--seed", type=int, default=0, help="seed of the random proposals (default 0)")
    c.add_argument("--time-budget", help="also plan a sweep of this long (e.g. 15m) on this machine: time an epoch of "
                   "each family on the data, say how many configurations the budget lets the search examine")
    c.add_argument("--cpus-per-trial", type=float, default=1.0, help="with --time-budget: threads of a trial (default 1)")
    c.add_argument("--startup-trials", type=int, help="with --time-budget: the sampler's random start-up trials "
                   "(default: TPE's, 10)")
    set_option(c)
    c.set_defaults(func=cmd_space_check)


def cmd_space_check(a: argparse.Namespace) -> int:
    from data_io import get_kind
    from search.asha import asha_signature, asha_text
    from spaces import load_space
    from spaces.check import check_space, describe_param
    from spaces.data import load_space_info
    space = load_space(a.file, a.overrides)
    info = load_space_info(space)
    print(f"space        {space.name}  ({a.file})")
    print(f"data         {info.name}: {get_kind(info.task).headline(info)}, train {info.split_sizes['train']:,} samples")
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
    if a.time_budget:
        _print_plan(space, a)
    print("ok")
    return 0


def _print_plan(space, a: argparse.Namespace) -> None:
    import os

    from search.cli.sweep import parse_duration
    from search.planner import plan_budget
    from search.samplers import startup_count
    from search.errors import SearchError
    from spaces import CompiledSpace, load_space_data
    budget = parse_duration(a.time_budget)
    if budget <= 0 or a.cpus_per_trial <= 0 or (a.startup_trials is not None and a.startup_trials < 1):
        raise SearchError(f"--time-budget {a.time_budget}, --cpus-per-trial {a.cpus_per_trial:g}, --startup-trials "
                          f"{a.startup_trials}: each must be above 0 (start-up trials: 1 or more)")
    data = load_space_data(space)
    slots = int((os.cpu_count() or 1) // max(a.cpus_per_trial, 1e-3))
    plan = plan_budget(CompiledSpace(space, data.info), data, slots=slots, threads=a.cpus_per_trial,
                       budget_s=budget, startup=startup_count("tpe", a.startup_trials))
    if plan is None:
        print("plan         no configuration of the space could be timed (each probe fit failed)")
        return
    for i, line in enumerate(plan.lines()):
        print(f"{'plan' if i == 0 else '':<12} {line}")
    if plan.warning():
        print(f"warning      {plan.warning()}")
