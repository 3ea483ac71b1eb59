"""Data fidelity against epochs alone under one time budget (issue 47, item 1 and the planner's check).

For each seed, one sweep per arm, one after the other on this machine (the arms alternate, so a
drift in the host's speed falls on both): `nextsweep sweep SPACE --time-budget M --seed S` with
`--set asha.fidelity=data` for the data arm and `asha.fidelity=epochs` for the other, every other
setting the same (--set applies to both; --data-set to the data arm alone, after them, e.g.
`--data-set asha.max_epochs=18`). Each run records the configurations it examined
(trials that trained at least one epoch), its tally, its winner's value, and the planner's
estimate from the sweep's header; the summary says, per seed, whether the data arm examined
>= --target configurations and whether its winner beat the epochs arm's.

    .venv/bin/python bench/fidelity_budget.py --data /tmp/syn47 --seeds 0 1 2 3 4 \\
        --set asha.grace_period=1 --set asha.strict=true --out bench/results/issue47/fidelity_15m.json
    .venv/bin/python bench/fidelity_budget.py --summary-of A.json [B.json ...]   # runs of several sessions

A later file's run of an arm and seed replaces an earlier one's in the summary: a new data arm
against saved epochs-alone runs is `--arms data --out NEW.json`, then `--summary-of OLD.json NEW.json`.

The data set is the issue's shape: `nextsweep data synth --out /tmp/syn47 --users 30 --days 480
--locations 400 --seed 0 --window-days 14` (made here when --data does not exist).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "bench" / "results" / "issue47" / "synthetic_500k_space.yaml"
SYNTH = ["--users", "30", "--days", "480", "--locations", "400", "--seed", "0", "--window-days", "14"]
ARMS = ("data", "epochs")
PLAN = re.compile(r"lets the search examine about (\d+) configurations")
WINNER = re.compile(r"^best +trial \d+: \S+ ([0-9.]+)", re.M)  # the sweep's own winner (ranking, tolerance)


def run_one(space: Path, arm: str, seed: int, minutes: float, sets: list[str], logs: Path) -> dict:
    """One sweep; what it examined and found, read back from its study."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(ROOT / ".venv" / "bin" / "nextsweep"), "sweep", str(space), "--time-budget", f"{minutes:g}m",
               "--dir", tmp, "--study", f"{arm}-s{seed}", "--seed", str(seed),
               "--set", f"asha.fidelity={arm}", *(x for s in sets for x in ("--set", s))]
        log = logs / f"{arm}_seed{seed}.log"
        with log.open("w") as out:
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode
        if rc != 0:
            sys.exit(f"{arm} seed {seed} failed (exit {rc}); its log: {log}")
        return read_run(log, f"sqlite:///{tmp}/nextsweep.db", f"{arm}-s{seed}", arm, seed, minutes, sets)


def read_run(log: Path, storage: str, study_name: str, arm: str, seed: int, minutes: float, sets: list[str]) -> dict:
    """A finished sweep's figures from its log (plan, winner) and its study (what it examined)."""
    import optuna

    from search.outcomes import tally
    text = log.read_text()
    plan, winner = PLAN.search(text), WINNER.search(text)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False)
    examined = [t for t in trials if t.intermediate_values or t.state == optuna.trial.TrialState.COMPLETE]
    values = [max(t.intermediate_values.values()) for t in examined if t.intermediate_values]
    return {"arm": arm, "seed": seed, "minutes": minutes, "set": sets, "examined": len(examined),
            "tally": tally(trials), "best": float(winner.group(1)) if winner else None,
            "best_any_epoch": max(values, default=None),
            "epochs_trained": sum(len(t.intermediate_values) for t in examined),
            "plan": int(plan.group(1)) if plan else None, "log": str(log.relative_to(ROOT))
            if log.is_relative_to(ROOT) else str(log)}


def summarise(runs: list[dict], target: int) -> dict:
    """Per seed: the data arm's count against the target, and whose winner is better."""
    by = {(r["arm"], r["seed"]): r for r in runs}
    seeds = sorted({s for a, s in by if a == "data" and ("epochs", s) in by})
    rows = [{"seed": s, "data_examined": by["data", s]["examined"], "epochs_examined": by["epochs", s]["examined"],
             "data_best": by["data", s]["best"], "epochs_best": by["epochs", s]["best"],
             "data_wins": (by["data", s]["best"] or 0) > (by["epochs", s]["best"] or 0)} for s in seeds]
    ratios = [r["plan"] / r["examined"] for r in runs if r["plan"] and r["examined"]]
    return {"seeds": rows, "data_wins": sum(r["data_wins"] for r in rows),
            "target_met_seeds": sum(r["data_examined"] >= target for r in rows), "target": target,
            "plan_over_ran": [round(x, 2) for x in ratios],
            "plan_within_2x": all(0.5 <= x <= 2 for x in ratios)}


def print_summary(s: dict) -> None:
    print("seed  data: examined  best      epochs: examined  best      data wins")
    for r in s["seeds"]:
        print(f"{r['seed']:>4}  {r['data_examined']:>14}  {_value(r['data_best'])}  {r['epochs_examined']:>16}  "
              f"{_value(r['epochs_best'])}  {'yes' if r['data_wins'] else 'no'}")
    n = len(s["seeds"])
    print(f"data arm examined >= {s['target']} configurations in {s['target_met_seeds']} of {n} seeds; "
          f"its winner beat epochs alone in {s['data_wins']} of {n}")
    print(f"plan / ran per run: {s['plan_over_ran']} (within 2 x: {'yes' if s['plan_within_2x'] else 'no'})")


def _value(v: float | None) -> str:
    return "  none" if v is None else f"{v:.4f}"


def space_at(data: Path, tmp: Path) -> Path:
    """The issue's space with its data path set to `data`, made when missing."""
    if not data.exists():
        subprocess.run([str(ROOT / ".venv" / "bin" / "nextsweep"), "data", "synth", "--out", str(data), *SYNTH],
                       check=True)
    raw = yaml.safe_load(SPACE.read_text())
    raw["data"] = {"path": str(data.resolve())}
    path = tmp / "space.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/tmp/syn47"), help="the synthetic set (made when missing)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    ap.add_argument("--adopt", nargs=5, metavar=("LOG", "STORAGE", "STUDY", "ARM", "SEED"),
                    help="record a sweep run by hand with the same settings (its log and study) into --out")
    ap.add_argument("--minutes", type=float, default=15.0, help="each sweep's --time-budget (default 15)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="for both arms; repeatable")
    ap.add_argument("--data-set", action="append", default=[], metavar="KEY=VALUE",
                    help="for the data arm alone, after --set (e.g. asha.max_epochs=18); repeatable")
    ap.add_argument("--target", type=int, default=50, help="configurations the data arm should examine")
    ap.add_argument("--summary-of", nargs="+", metavar="JSON", help="merge saved runs and print, training nothing")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "fidelity_budget.json")
    a = ap.parse_args()
    if a.summary_of:
        runs = [r for p in a.summary_of for r in json.loads(Path(p).read_text())["runs"]]
        print_summary(summarise(runs, a.target))
        return
    a.out.parent.mkdir(parents=True, exist_ok=True)
    logs = a.out.with_suffix("")
    logs.mkdir(exist_ok=True)
    runs = json.loads(a.out.read_text())["runs"] if a.out.exists() else []  # a file adds up runs
    if a.adopt:
        log, storage, study, arm, seed = a.adopt
        runs.append(read_run(Path(log), storage, study, arm, int(seed), a.minutes, a.set))
        a.out.write_text(json.dumps({"runs": runs, "summary": summarise(runs, a.target)}, indent=2) + "\n")
        return
    with tempfile.TemporaryDirectory() as tmp:
        space = space_at(a.data, Path(tmp))
        for seed in a.seeds:
            for arm in a.arms:
                runs.append(run_one(space, arm, seed, a.minutes, a.set + (a.data_set if arm == "data" else []), logs))
                r = runs[-1]
                print(f"seed {seed} {arm:<6} examined {r['examined']:>3}  best {r['best']}  plan {r['plan']}",
                      flush=True)
                a.out.write_text(json.dumps({"runs": runs, "summary": summarise(runs, a.target)}, indent=2) + "\n")
    print_summary(summarise(runs, a.target))


if __name__ == "__main__":
    main()
