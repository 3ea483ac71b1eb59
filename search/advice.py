"""Warnings where a sweep looks mis-set, computed from the study on demand (the sweep's summary
and `nextsweep report` print them). Each one names what to change in the space file.

"Top trials" are the best TOP_K COMPLETE trials (search.ranking.ranked); "most" means at least
MOST of them. With fewer than MIN_TOP complete trials nothing about the top trials is said.
"""

from __future__ import annotations

import json
import math
import statistics

import optuna
from optuna.trial import FrozenTrial

from search.asha import cheaper_left_off
from search.baselines import beats_bar, margin_line
from search.outcomes import study_tally
from search.ranking import complete_showing, ranked
from search.samplers import startup_count
from search.study_reads import whole_trials
from search.study_record import read
from spaces import changes_count

TOP_K = 5           # the top trials: the best 5 COMPLETE trials
MIN_TOP = 3         # fewer complete trials than this: too few to say what the top trials share
MOST = 0.6          # "most": at least 60% of the trials considered
EDGE = 0.1          # a value within 10% of its range's span (log span for log params) sits at that end
GRACE_RATIO = 3     # ASHA's first rung before a third of the typical best epoch compares too early
BINDING = 0.9       # a budget is binding when the top trials use at least 90% of it
MIN_SPAN = 2        # integer ranges of fewer than 3 values have no middle: not checked


def sweep_warnings(study: optuna.Study, counts: dict[str, int] | None = None,
                   complete: list[FrozenTrial] | None = None) -> list[str]:
    """One line per problem found; empty for a sweep that looks well set (or too small to judge).
    `counts` (study_tally's) and `complete` (ranking.complete_showing's, or more),
    where the caller has read them already."""
    meta = read(study)
    sig = meta.signature
    counts = counts or study_tally(study)[0]
    out = _rejections(counts) + _budget_fitted(meta, counts)
    if complete is None:
        complete = complete_showing(study)
    top = whole_trials(study, ranked(study, complete=complete)[:TOP_K])
    out += _below_bar(meta.baselines or {}, meta.metric, ranked(study, use_confirmed=False, complete=complete))
    if len(top) < MIN_TOP:
        return out
    max_epochs, grace = (sig.get("asha") or (None, None))[:2]
    epochs = [t.user_attrs["best_epoch"] for t in top if "best_epoch" in t.user_attrs]
    out += _epochs(epochs, max_epochs, grace)
    budget = meta.budget
    for name, decl in (sig.get("params") or {}).items():
        out += _edge(name, decl, top, budget, name == sig.get("width"))
    return out


def _budget_fitted(meta, counts: dict[str, int]) -> list[str]:
    """A time-budgeted sweep that ended inside the sampler's random start-up never used its model."""
    startup = startup_count(meta.sampler or "tpe", meta.startup_trials)
    examined = counts["complete"] + counts["pruned"]
    if not meta.time_budget_s or startup is None or examined >= startup:
        return []
    options = "".join(f", {setting}" for setting, _ in cheaper_left_off((meta.asha or [])[3:]))
    return [f"the time budget fitted {examined} trials, all inside the sampler's {startup} random start-up trials: "
            "the search never proposed from a model; make trials cheaper (a lower asha.grace_period, fewer "
            f"asha.max_epochs{options}) or raise --time-budget (the sweep's plan line says how far)"]


def _below_bar(baselines: dict, metric: str, complete: list[FrozenTrial]) -> list[str]:
    """The searched models lose to (or tie) a rule that needs no search: say it first and plainly."""
    if not complete or beats_bar(baselines, metric, complete) is not False:
        return []
    return [margin_line(baselines, metric, complete) + ": no searched model is better than that rule on validation; "
            "search the options that read the user's history (history_classes and class_copy for category, "
            "bank_pointer for vector, the pointer family for location), or train longer"]


def _most(k: int, n: int) -> bool:
    return n > 0 and k >= MOST * n


def _rejections(counts: dict[str, int]) -> list[str]:
    rejected = counts["over_budget"] + counts["unbuildable"] + counts["forbidden"]
    proposed = sum(counts.values())
    if not _most(rejected, proposed) or proposed < MIN_TOP:
        return []
    return [f"{rejected} of {proposed} proposals were rejected ({counts['over_budget']} over budget, "
            f"{counts['unbuildable']} unbuildable, {counts['forbidden']} forbidden): the space mostly proposes "
            "models that cannot run; narrow the ranges that overshoot, raise budget.max_params, or loosen forbid"]


def _epochs(epochs: list[int], max_epochs: int | None, grace: int | None) -> list[str]:
    if len(epochs) < MIN_TOP:
        return []
    n, out = len(epochs), []
    typical = statistics.median(epochs)
    at_end = sum(e == max_epochs for e in epochs)
    if max_epochs and max_epochs > 1 and _most(at_end, n):
        out.append(f"best epoch = asha.max_epochs ({max_epochs}) in {at_end} of the {n} top trials: they were "
                   "still improving when stopped; raise asha.max_epochs")
    first = sum(e == 1 for e in epochs)
    if max_epochs and max_epochs > 1 and _most(first, n):
        out.append(f"best epoch 1 in {first} of the {n} top trials: the learning rate or schedule is too hot to "
                   "compare trials at the first rung; lower lr's range (or add warm-up)")
    if grace and typical > GRACE_RATIO * grace:
        out.append(f"asha.grace_period {grace} is short against the top trials' typical best epoch "
                   f"({typical:g}): ASHA cuts trials on early epochs that say little about their best; "
                   f"raise asha.grace_period towards {max(grace + 1, math.floor(typical / 2))}")
    return out


def _value(t: FrozenTrial, name: str):
    """A parameter's trained value: the sampled one, else the trial's record (the fitted width)."""
    if name in t.params:
        return t.params[name]
    if name in t.user_attrs:
        return t.user_attrs[name]
    return json.loads(t.user_attrs.get("config", "{}")).get(name)


def _edge(name: str, decl: list, top: list[FrozenTrial], budget: int | None, is_width: bool) -> list[str]:
    kind, low, high, _step, log = decl[:5]
    if kind not in ("int", "float") or low is None or high is None or high <= low:
        return []
    if kind == "int" and (high - low) // (_step or 1) < MIN_SPAN:
        return []  # every value of e.g. layers [1, 2] is at an end: saying so tells nothing
    pairs = [(t, v) for t in top if isinstance(v := _value(t, name), (int, float)) and not isinstance(v, bool)]
    values = [v for _, v in pairs]
    if len(values) < MIN_TOP:
        return []
    scale = (lambda x: math.log(x)) if log and low > 0 else (lambda x: x)
    pos = [(scale(min(max(v, low), high)) - scale(low)) / (scale(high) - scale(low)) for v in values]
    n, lower, upper = len(pos), sum(p <= EDGE for p in pos), sum(p >= 1 - EDGE for p in pos)
    used = _budget_use(top, budget)
    if _most(lower, n) and not (kind == "int" and low <= 1):  # no fewer than 1 layer / head: nothing to lower
        where = f"{name}: {lower} of the {n} top trials sit at the lower end of its range [{low}, {high}]"
        # the sweep records the widest width that fits a trial's other choices as width_max
        widest = sum(t.user_attrs.get("width_max") == v for (t, v), p in zip(pairs, pos) if p <= EDGE)
        if is_width and _most(widest, lower):
            return [f"{where}, the widest their other choices fit in the budget{used}: the budget binds, not the "
                    "range; raise budget.max_params to let it grow (lowering its low would not help)"]
        why = (f"the search wants smaller models than the space allows{used}" if is_width
               else "the search wants lower values than the space allows")
        return [f"{where}: {why}; lower its low"]
    if _most(upper, n):
        if not (is_width or changes_count(name)):
            why = "the search wants higher values than the space allows; raise its high"
        elif not budget:
            why = "with no budget, the space is the limit; raise its high"
        elif used and _budget_share(top, budget) >= BINDING:
            why = f"the budget binds as well{used}: raise budget.max_params to let it grow"
        else:
            why = f"the budget is not binding{used}: the space is the limit; raise its high"
        return [f"{name}: {upper} of the {n} top trials sit at the upper end of its range [{low}, {high}]: {why}"]
    return []


def _budget_share(top: list[FrozenTrial], budget: int) -> float:
    sizes = [t.user_attrs["n_params"] for t in top if t.user_attrs.get("n_params")]
    return statistics.median(sizes) / budget if sizes else 0.0


def _budget_use(top: list[FrozenTrial], budget: int | None) -> str:
    share = _budget_share(top, budget) if budget else 0.0
    return f" (the top trials use {share:.0%} of the {budget:,}-parameter budget)" if share else ""
