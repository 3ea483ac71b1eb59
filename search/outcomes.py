"""Study bookkeeping without Ray: how each trial ended and the tally by outcome (the ranking is
search.ranking; their text for the console is in search.summary).

`status`, the progress lines and the sweep all read outcomes through here, so what counts as
"pruned" or "over budget" is decided in one place (and `nextsweep status` pays no Ray import).
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.study_reads import outcome_groups
from spaces import FORBIDDEN, OVER_BUDGET, UNBUILDABLE

STOPPED = "stopped by the sweep"  # error text prefix of trials the sweep itself cut short
# How a trial ended: tally()'s keys, printed with "_" as " " ("3 over budget").
OUTCOMES = ("complete", "pruned", "failed", "stopped", "running", "over_budget", "unbuildable", "forbidden")
# The stored "rejected" value (spaces: OVER_BUDGET is "over budget") -> its outcome above.
REJECTIONS = {OVER_BUDGET: "over_budget", UNBUILDABLE: "unbuildable", FORBIDDEN: "forbidden"}


def outcome(t: FrozenTrial) -> str | None:
    """One of OUTCOMES, or None for a proposal a killed driver left before its budget check."""
    a = t.user_attrs
    return outcome_of(t.state, a.get("rejected"), str(a.get("error", "")).startswith(STOPPED), "config" in a)


def outcome_of(state: TrialState, rejected, stopped: bool, ran: bool) -> str | None:
    """The rule: from the trial's state, its "rejected" attribute, whether its "error" says the
    sweep stopped it, and whether it holds the "config" it ran."""
    if rejected in REJECTIONS:
        return REJECTIONS[rejected]
    if stopped:
        return "stopped"  # cut short by the time budget or an interrupt, not by ASHA
    if not ran:
        return None
    return {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned",
            TrialState.FAIL: "failed"}.get(state, "running")


def study_tally(study: optuna.Study) -> tuple[dict[str, int], float]:
    """tally() of all the study's trials and their CPU seconds, counted in the database where
    nextsweep's SQL runs (a 50,000-trial study in 0.1 s rather than read whole in seconds)."""
    groups = outcome_groups(study, STOPPED)
    if groups is None:
        trials = study.get_trials(deepcopy=False)
        return tally(trials), sum(t.user_attrs.get("cpu_s", 0.0) for t in trials)
    out, cpu = dict.fromkeys(OUTCOMES, 0), 0.0
    for state, rejected, stopped, ran, n, cpu_s in groups:
        if (o := outcome_of(state, rejected, stopped, ran)) is not None:
            out[o] += n
        cpu += cpu_s
    return out, cpu


def tally(trials: list[FrozenTrial]) -> dict[str, int]:
    """Trials by outcome; budget rejections, unbuildable and forbidden proposals apart from ASHA's pruning."""
    out = dict.fromkeys(OUTCOMES, 0)
    for t in trials:
        if (o := outcome(t)) is not None:
            out[o] += 1
    return out
