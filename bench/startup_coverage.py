"""How soon (c)'s sampler tries each model family, on the Geolife 500K space, without training.

nextsweep's TPE (the sampler, width fitting and budget rejections of `nextsweep sweep`) proposes
configs one after another; each is told a made-up value by family (pointer best, as on Geolife
val Acc@1) plus noise, so the only question is when TPE first draws the best family. In
search-efficiency seed 4, the five random start-up draws held no pointer and (c) trained its first
pointer at trial 47. Every trial here completes (no pruning) and there is one at a time.
`--independent-startup` draws the start-up as Optuna does, not in rounds (nextsweep before 2026-12-05).

    .venv/bin/python bench/startup_coverage.py --seeds 0 1 2 3 4 5 6 7 8 9 [--independent-startup]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from search.samplers import make_sampler
from spaces import CompiledSpace, load_space, load_space_data, record_rejection

ROOT = Path(__file__).resolve().parents[1]
VALUE = {"pointer": .50, "lstm": .45, "gru": .42, "transformer": .40, "hybrid": .38}  # made up, Geolife's order


def run(compiled: CompiledSpace, seed: int, trials: int, startup: int, noise: float, cover: bool) -> list[str]:
    """The family of each proposal that passed the budget check, in order."""
    study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", seed, startup, cover_startup=cover))
    values, families = np.random.default_rng(seed), []
    while len(families) < trials:
        trial = study.ask()
        proposal = compiled.propose(trial)
        if not proposal.feasible:  # as the searcher does: told at once, never trained
            record_rejection(trial, proposal, compiled.space.max_params)
            study.tell(trial, state=TrialState.FAIL)
            continue
        family = trial.params["family"]
        families.append(family)
        study.tell(trial, VALUE[family] + values.normal(0, noise))
    return families


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--trials", type=int, default=80, help="proposals that pass the budget check, per seed")
    ap.add_argument("--startup-trials", type=int, default=5, help="TPE's random start-up (default 5, as benchmarked)")
    ap.add_argument("--independent-startup", action="store_true",
                    help="start-up draws each categorical independently (as before 2026-12-05) instead of in rounds")
    ap.add_argument("--noise", type=float, default=0.01, help="std of the noise added to each value")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "startup_coverage.json")
    a = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = load_space(ROOT / "spaces" / "geolife_500k.yaml")
    compiled = CompiledSpace(space, load_space_data(space).info)
    rows = []
    print(f"{'seed':>4}  {'start-up families':<45} {'first pointer':>13} {'pointers':>8}")
    for seed in a.seeds:
        fams = run(compiled, seed, a.trials, a.startup_trials, a.noise, not a.independent_startup)
        first = fams.index("pointer") if "pointer" in fams else None
        rows.append({"seed": seed, "families": fams, "first_pointer": first})
        print(f"{seed:>4}  {' '.join(fams[:a.startup_trials]):<45} {first if first is not None else 'never':>13} "
              f"{fams.count('pointer'):>8}", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"trials": a.trials, "cover_startup": not a.independent_startup, "startup_trials": a.startup_trials, "noise": a.noise,
                                 "values": VALUE, "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
