"""ASHA, the early stopping of weak trials: its factory, its rungs (computed once, from its
settings, for the sweep's checkpoints and the report) and its signature and text (what a study
records of it, in words). Imports no Ray: the scheduler itself, RecordingASHA, is in
search/asha/scheduler.py, imported by make_asha; the strict rule's bracket is a fast path on Ray's
internals (search/internals/bracket.py); asha.pause's PausingASHA is in search/asha/pausing.py."""

from __future__ import annotations

import numpy as np


def rungs(max_epochs: int, grace: int, rf: float, brackets: int = 1) -> list[int]:
    """The epochs at which ASHA may stop a trial, from its settings: the milestones of Ray's brackets
    (ray/tune/schedulers/async_hyperband.py, _Bracket), by Ray's own float formula so the log's edges
    fall as they do there. Bracket s has rungs grace * rf**(k + s) for k < log_rf(max_epochs / grace) - s + 1."""
    if rf <= 1 or grace <= 0 or max_epochs < grace:
        return []
    x = np.log(max_epochs / grace) / np.log(rf)
    return sorted({int(grace * rf ** (k + s)) for s in range(brackets) for k in range(int(x - s + 1))})


def data_fractions(max_epochs: int, grace: int, rf: float, brackets: int = 1) -> list[float]:
    """asha.fidelity data: the share of the training samples each epoch 1..max_epochs trains on.
    An epoch with k + 1 rungs at or after it trains on rf**-k of them, so passing a rung multiplies
    the data by rf and the last rung's stretch trains on all of it (rungs 1, 3, 9 with rf 3: epoch
    1 on 1/9, epochs 2-3 on 1/3, the rest on all). A function of the epoch alone: every trial at a
    rung trained on the same shares."""
    marks = rungs(max_epochs, grace, rf, brackets)
    return [float(rf) ** -max(0, sum(r >= e for r in marks) - 1) for e in range(1, max_epochs + 1)]


# The options that cut an average trial's cost: (its asha_signature word, the setting, why), for the
# plan's and the end-of-sweep warnings when a budget fits few trials
CHEAPER = (("fidelity", "asha.fidelity: data", "the early rungs on a share of the data"),
           ("pause", "asha.pause: true", "no trial going on past a rung unopposed (Ray's rule lets the first "
                                         "ones run to max_epochs)"))


def cheaper_left_off(options: list) -> list[tuple[str, str]]:
    """(setting, why) of each CHEAPER option that an asha_signature's options (its [3:]) leave off."""
    used = {str(o).split()[0] for o in options}
    return [(setting, why) for word, setting, why in CHEAPER if word not in used]


def rung_epochs(asha) -> list[int]:
    """The rungs of a scheduler made by make_asha (or RecordingASHA), from the settings it was given."""
    return rungs(*asha.settings)


def make_asha(a, seed: int = 0, metric: str | None = None):
    """The space's ASHA; `metric` (the per-epoch objective) is what it ranks by when asha.rank_by is epoch."""
    from search.asha.scheduler import RecordingASHA  # imported here: Ray
    if a.pause:
        from search.asha.pausing import PausingASHA
        return PausingASHA(time_attr="epoch", max_t=a.max_epochs, grace_period=a.grace_period,
                           reduction_factor=a.reduction_factor, seed=seed,
                           milestones=rungs(a.max_epochs, a.grace_period, a.reduction_factor),
                           rank_metric=metric if a.rank_by == "epoch" else None)
    return RecordingASHA(time_attr="epoch", max_t=a.max_epochs, grace_period=a.grace_period,
                         reduction_factor=a.reduction_factor, brackets=a.brackets, seed=seed,
                         strict=a.strict, rank_metric=metric if a.rank_by == "epoch" else None)


def asha_signature(a) -> list:
    """[max_epochs, grace, reduction], then brackets, "strict", "rank_by epoch", "fidelity data" and "pause"
    where an option is not its default: studies from before these options resume."""
    extra = ((["strict"] if a.strict else []) + (["rank_by epoch"] if a.rank_by == "epoch" else [])
             + (["fidelity data"] if a.fidelity == "data" else []) + (["pause"] if a.pause else []))
    return [a.max_epochs, a.grace_period, a.reduction_factor] + ([a.brackets] + extra if a.brackets != 1 or extra else [])


def asha_text(asha: list) -> str:
    """A space signature's ASHA (asha_signature) in words."""
    return (f"max_epochs {asha[0]}, grace period {asha[1]}, reduction factor {asha[2]:g}"
            + (f", {asha[3]} brackets" if len(asha) > 3 and asha[3] != 1 else "")
            + (", strict promotions" if "strict" in asha[3:] else "")
            + (", ranked by the rung epoch's own value" if "rank_by epoch" in asha[3:] else "")
            + (", data fidelity (the epochs before the later rungs train on a share of the data)"
               if "fidelity data" in asha[3:] else "")
            + (", paused promotions (a trial below its rung's top waits, paused, for rivals)" if "pause" in asha[3:] else ""))
