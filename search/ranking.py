"""The one ranking of a study's trials (ranked: confirmed means first, ties within noise ordered
by the space's `then` metrics), the size / value Pareto front, and a trial's confirmed record.
Without Ray, so `nextsweep status` and `export` stay light."""

from __future__ import annotations

import math
from itertools import groupby

import optuna
from optuna.trial import FrozenTrial, TrialState

from models.config import metric_mode
from search.study_reads import trials_showing
from search.study_record import read


def complete_showing(study: optuna.Study, extra: tuple[str, ...] = ()) -> list[FrozenTrial]:
    """The study's COMPLETE trials holding the user attributes ranked() reads (best_metrics only
    where the study breaks ties by `then`) and `extra`, no more: what a results command ranks."""
    then = ("best_metrics",) if read(study).then else ()
    return trials_showing(study, ("config", "confirmed", *then, *extra), states=(TrialState.COMPLETE,))


def ranked(study: optuna.Study, use_confirmed: bool = True, complete: list[FrozenTrial] | None = None
           ) -> list[FrozenTrial]:
    """COMPLETE trials that ran a config (of `complete` where given: complete_showing()'s are
    enough), best first. The rule:

    1. A trial's score is its confirmed mean (user attribute "confirmed" of `nextsweep confirm`,
       for the study's metric) where it has one and `use_confirmed`, else its value (one run).
    2. Confirmed trials come first: a mean over several seeds outranks any single run (confirm
       more trials to compare them). The rest follow; each block is ranked by steps 3 and 4.
    3. Sorted by score in the study's direction, trials are cut into tie groups: a group starts
       at its best trial and takes each next trial whose score is within the leader's noise of
       the leader's score. Noise: the leader's confirmed std (2 or more seeds), else the study's
       `tolerance` (objective.tolerance of the space; DEFAULT_TOLERANCE = 0.002 when unset).
    4. Each group is ordered by the study's `then` metrics in turn (each in its own direction;
       the confirmed mean where confirmed, else the trial's best_metrics; missing = worst), then
       by score, then by trial number. Without `then` this is plain order by score.
    5. Non-finite scores: +inf is the best score when maximizing (-inf when minimizing) and equal
       infinities tie; a NaN score (a confirmed mean over a diverged seed) ranks last in its block,
       each NaN its own group, by trial number. A stored non-finite tolerance counts as the default.
    """
    if complete is None:
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    done = [t for t in complete if t.state == TrialState.COMPLETE and "config" in t.user_attrs]
    meta = read(study)  # a stored non-finite tolerance reads as the default
    metric, then, tolerance = meta.metric, list(meta.then), meta.tolerance
    sign = 1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1
    sure = [t for t in done if use_confirmed and confirmation(t, metric)]
    rest = [t for t in done if not (use_confirmed and confirmation(t, metric))]
    return [t for block in (sure, rest) for t in _rank_block(block, metric, sign, then, tolerance, use_confirmed)]


def pareto_front(trials: list[FrozenTrial], maximize: bool = True) -> list[FrozenTrial]:
    """The trials no other one dominates on (parameter count, value), smallest first. u dominates
    t when u has no more parameters and no worse a value, and is strictly better in one of them
    (equal pairs are both kept). The value is the trial's own run (what every trial has)."""
    sign = 1 if maximize else -1
    sized = sorted((t for t in trials if t.user_attrs.get("n_params") is not None),
                   key=lambda t: (t.user_attrs["n_params"], -sign * t.value, t.number))
    front, best_smaller = [], -math.inf
    for _, same in groupby(sized, key=lambda t: t.user_attrs["n_params"]):  # a size's best must beat all smaller
        same = list(same)
        top = sign * same[0].value
        if top > best_smaller:
            front += [t for t in same if sign * t.value == top]
        best_smaller = max(best_smaller, top)
    return front


def confirmation(t: FrozenTrial, metric: str | None) -> dict | None:
    """The trial's "confirmed" record for `metric` with at least one seed, else None."""
    c = t.user_attrs.get("confirmed")
    return c if isinstance(c, dict) and c.get("metric") == metric and c.get("values") else None


def score(t: FrozenTrial, metric: str | None, use_confirmed: bool = True) -> float:
    """What ranked() compares: the confirmed mean where there is one, else the trial's value."""
    c = confirmation(t, metric) if use_confirmed else None
    return float(c["mean"]) if c else float(t.value)


def then_value(t: FrozenTrial, name: str, metric: str | None, use_confirmed: bool = True) -> float | None:
    """A tie-breaking metric of a trial: its confirmed mean, else its best epoch's value, else None."""
    c = confirmation(t, metric) if use_confirmed else None
    if c and name in (c.get("then") or {}):
        return float(c["then"][name]["mean"])
    value = t.user_attrs.get("best_metrics", {}).get(name)
    return None if value is None else float(value)


def _rank_block(trials: list[FrozenTrial], metric, sign: int, then: list[str], tolerance: float,
                use_confirmed: bool) -> list[FrozenTrial]:
    goods = {t.number: sign * score(t, metric, use_confirmed) for t in trials}  # higher is better
    good = lambda t: goods[t.number]  # noqa: E731

    def noise(t: FrozenTrial) -> float:
        c = confirmation(t, metric) if use_confirmed else None
        return float(c["std"]) if c and len(c["values"]) >= 2 else tolerance

    def tie_key(t: FrozenTrial) -> tuple:
        values = [then_value(t, m, metric, use_confirmed) for m in then]
        return (*(_worst_if_nan(-math.inf if v is None else (v if metric_mode(m) == "max" else -v))
                  for m, v in zip(then, values)), good(t), -t.number)

    def order(t: FrozenTrial) -> tuple:  # NaN compares false with everything: sort it last, explicitly
        return (not math.isnan(good(t)), _worst_if_nan(good(t)), -t.number)

    def ties(leader: FrozenTrial, t: FrozenTrial) -> bool:  # inf - inf is NaN: equal scores tie outright
        return good(t) == good(leader) or good(leader) - good(t) <= noise(leader)

    out, ordered, start = [], sorted(trials, key=order, reverse=True), 0
    while start < len(ordered):  # the leader always opens its group, so `start` moves on every round
        end = start + 1
        while end < len(ordered) and ties(ordered[start], ordered[end]):
            end += 1
        out += sorted(ordered[start:end], key=tie_key, reverse=True)
        start = end
    return out


def _worst_if_nan(v: float) -> float:
    return -math.inf if math.isnan(v) else v
