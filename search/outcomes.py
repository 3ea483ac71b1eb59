"""Study bookkeeping without Ray: how each trial ended, the tally by outcome and the summary.

`status`, the progress lines and the sweep all read outcomes through here, so what counts as
"pruned" or "over budget" is decided in one place (and `nextsweep status` pays no Ray import).
"""

from __future__ import annotations

import json
import sys

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.storage import has_password, redact
from spaces import FORBIDDEN, OVER_BUDGET, UNBUILDABLE

STOPPED = "stopped by the sweep"  # error text prefix of trials the sweep itself cut short
OUTCOMES = ("complete", "pruned", "failed", "stopped", "running", "over_budget", "unbuildable", "forbidden")
REJECTIONS = {OVER_BUDGET: "over_budget", UNBUILDABLE: "unbuildable", FORBIDDEN: "forbidden"}


def outcome(t: FrozenTrial) -> str | None:
    """One of OUTCOMES, or None for a proposal a killed driver left before its budget check."""
    rejected = t.user_attrs.get("rejected")
    if rejected in REJECTIONS:
        return REJECTIONS[rejected]
    if t.user_attrs.get("error", "").startswith(STOPPED):
        return "stopped"  # cut short by the time budget or an interrupt, not by ASHA
    if "config" not in t.user_attrs:
        return None
    return {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned",
            TrialState.FAIL: "failed"}.get(t.state, "running")


def tally(trials: list[FrozenTrial]) -> dict[str, int]:
    """Trials by outcome; budget rejections, unbuildable and forbidden proposals apart from ASHA's pruning."""
    out = dict.fromkeys(OUTCOMES, 0)
    for t in trials:
        if (o := outcome(t)) is not None:
            out[o] += 1
    return out


def tally_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items())


def ranked(study: optuna.Study) -> list[FrozenTrial]:
    """COMPLETE trials that ran a config, best first in the study's direction."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if "config" in t.user_attrs]
    return sorted(done, key=lambda t: t.value, reverse=study.direction == optuna.study.StudyDirection.MAXIMIZE)


def print_summary(study: optuna.Study, storage_url: str, top: int = 5) -> None:
    print()
    print(f"study      {study.study_name}")
    print(f"storage    {redact(storage_url)}")
    print("trials     " + tally_line(tally(study.get_trials(deepcopy=False))))
    done = ranked(study)
    metric = study.user_attrs.get("metric", "value")
    if done:
        print(f"\n{'trial':>5}  {metric:>9}  {'params':>9}  {'epoch':>5}  config")
        for t in done[:top]:
            cfg = ", ".join(f"{k}={_short(v)}" for k, v in t.params.items() if not k.endswith("_frac"))
            width = {k: t.user_attrs[k] for k in ("d_model",) if k in t.user_attrs}
            cfg = ", ".join([*(f"{k}={v}" for k, v in width.items()), cfg])
            print(f"{t.number:>5}  {t.value:>9.4f}  {t.user_attrs.get('n_params', 0):>9,}  "
                  f"{t.user_attrs.get('best_epoch', '-'):>5}  {cfg}")
        best = done[0]
        print(f"\nbest       trial {best.number}: {metric} {best.value:.4f} with {best.user_attrs.get('n_params', 0):,} parameters, "
              f"best epoch {best.user_attrs.get('best_epoch')}")
        print("config     " + ", ".join(f"{k}={_short(v)}" for k, v in json.loads(best.user_attrs["config"]).items()))
        print(f"export     nextsweep export {_storage_arg(storage_url)} --study {study.study_name} --top 3 --out exports/")
    print(f"dashboard  nextsweep dashboard {_storage_arg(storage_url)}")
    sys.stdout.flush()


def _storage_arg(url: str) -> str:
    """A storage option the user can paste: never the password, never a redacted URL."""
    return "--storage-file PATH (or $NEXTSWEEP_STORAGE)" if has_password(url) else f"--storage '{url}'"


def _short(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
