"""The no-search reference predictors of a study (study user attribute "baselines"): computed once
before the first trial, printed by `sweep` and `status`, and the bar the summary measures the best
trial against. What each task's baselines are lives with the task (models/tasks)."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial

from data_io import Dataset
from models import metric_mode
from search.study_record import StudyMeta, read, write


def ensure_baselines(study: optuna.Study, task: str, data: Dataset, folds: int) -> dict[str, dict[str, float]]:
    """The study's baselines, evaluated and stored first if it lacks them (a new study, or one
    from before baselines were kept); scored per fold and averaged when the space uses folds."""
    if read(study).baselines is None:
        from models.tasks import get_task  # imported here: the results commands read baselines without torch
        found = get_task(task).baselines(data, folds)
        rounded = {name: {k: round(v, 6) for k, v in m.items()} for name, m in found.items()}
        write(study, StudyMeta(baselines=rounded), only=("baselines",))
    return read(study).baselines


def baseline_lines(baselines: dict[str, dict[str, float]], metric: str, others: int = 2) -> list[str]:
    """One line per baseline: the objective first, then up to `others` more of its metrics."""
    lines = []
    for name, m in baselines.items():
        rest = [f"{k} {v:.4f}" for k, v in m.items() if k != metric][:others]
        head = f"{metric} {m[metric]:.4f}" if metric in m else f"no {metric}"
        lines.append(f"{name:<14} {head}" + (f"  ({', '.join(rest)})" if rest else ""))
    return lines


def best_baseline(baselines: dict[str, dict[str, float]], metric: str) -> tuple[str, float] | None:
    """(name, value) of the baseline best on `metric` in its direction, or None if none reports it."""
    scored = [(name, m[metric]) for name, m in baselines.items() if metric in m]
    if not scored:
        return None
    pick = max if metric_mode(metric) == "max" else min
    return pick(scored, key=lambda nv: nv[1])


def beats_bar(baselines: dict[str, dict[str, float]], metric: str, complete: list[FrozenTrial]) -> bool | None:
    """Whether the best complete trial is strictly better than every baseline on the objective
    (None without baselines that report it)."""
    bar = best_baseline(baselines, metric)
    if bar is None:
        return None
    sign = 1 if metric_mode(metric) == "max" else -1
    return bool(complete) and max(sign * t.value for t in complete) > sign * bar[1]


def margin_line(baselines: dict[str, dict[str, float]], metric: str, complete: list[FrozenTrial]) -> str | None:
    """How far the best complete trial is past the best baseline on the objective (signed so that
    positive is better), or a plain statement that no trial beats it; None without baselines."""
    bar = best_baseline(baselines, metric)
    if bar is None:
        return None
    name, value = bar
    sign = 1 if metric_mode(metric) == "max" else -1
    if not complete:
        return f"no trial beats the best no-search baseline {name} ({metric} {value:.4f}): no trial completed"
    best = max(complete, key=lambda t: sign * t.value)
    gap = sign * (best.value - value)
    if not beats_bar(baselines, metric, complete):
        return (f"no trial beats the best no-search baseline {name} ({metric} {value:.4f}): the best, trial "
                f"{best.number}, has {best.value:.4f} ({sign * gap:+.4f})")
    rel = f" ({100 * gap / abs(value):.1f}%)" if value else ""
    return (f"the best {metric}, trial {best.number}'s {best.value:.4f}, beats the best no-search baseline {name} "
            f"({value:.4f}) by {gap:.4f}{rel}")
