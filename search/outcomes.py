"""Study bookkeeping without Ray: how each trial ended and the tally by outcome (the ranking is
search.ranking; their text for the console is in search.summary).

`status`, the progress lines and the sweep all read outcomes through here, so what counts as
"pruned" or "over budget" is decided in one place (and `nextsweep status` pays no Ray import).
"""

from __future__ import annotations

from optuna.trial import FrozenTrial, TrialState

from spaces import FORBIDDEN, OVER_BUDGET, UNBUILDABLE

STOPPED = "stopped by the sweep"  # error text prefix of trials the sweep itself cut short
# How a trial ended: tally()'s keys, printed with "_" as " " ("3 over budget").
OUTCOMES = ("complete", "pruned", "failed", "stopped", "running", "over_budget", "unbuildable", "forbidden")
# The stored "rejected" value (spaces: OVER_BUDGET is "over budget") -> its outcome above.
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
