"""The report's plots (search/report.py), sized for any study. Past a plot's limit it draws a
sample and says so: the best half by the objective, the rest spread evenly over trial numbers.
Every trial drawn is a Plotly point or line in the page and Optuna's importances grow with the
trials they fit, so a 50,000-trial study drawn whole took minutes and tens of MB (issue 46)."""

from __future__ import annotations

import json
from collections.abc import Callable

import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial

from search.asha import rungs
from search.outcomes import outcome
from search.ranking import pareto_front
from search.report_html import Page, num, table
from search.study_record import StudyMeta

COLOURS = {"complete": "#2a9d4b", "pruned": "#e8a33d", "failed": "#d62728", "stopped": "#7f7f7f", "running": "#1f77b4"}
CURVES = 300  # learning curves drawn at most (one line each)
POINTS = 2000  # trials in a scatter, the importances' fit and the parallel coordinates at most


def sample(trials: list[FrozenTrial], limit: int, worse: Callable[[FrozenTrial], float]) -> list[FrozenTrial]:
    """`trials` by number, or past `limit` of them the limit // 2 best (lowest `worse`) and an even
    spread of the others."""
    if len(trials) <= limit:
        return sorted(trials, key=lambda t: t.number)
    best = sorted(trials, key=worse)[:limit // 2]
    taken = {t.number for t in best}
    rest = [t for t in sorted(trials, key=lambda t: t.number) if t.number not in taken]
    step = len(rest) / (limit - len(best))
    return sorted(best + [rest[int(i * step)] for i in range(limit - len(best))], key=lambda t: t.number)


def _sampled_note(p: Page, shown: int, total: int, what: str) -> None:
    if shown < total:
        p.note(f"{what}: {shown:,} of {total:,} trials drawn (the best {shown // 2:,} and an even spread of the "
               "rest), so the page stays small; `nextsweep export` and the dashboard read every trial")


def _sign(study: optuna.Study) -> int:
    return 1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1


def best_so_far(p: Page, study: optuna.Study, baselines: dict | None, metric: str, done: list[FrozenTrial]) -> None:
    """Each COMPLETE trial's value by trial number (sampled) and the best so far over all of them."""
    import plotly.graph_objects as go
    if done:
        sign, best, steps = _sign(study), None, []
        for t in sorted(done, key=lambda t: t.number):
            if best is None or sign * t.value > sign * best:
                best = t.value
                steps.append((t.number, best))
        last = max(t.number for t in done)
        shown = sample(done, POINTS, lambda t: -sign * t.value)
        fig = go.Figure([
            go.Scatter(x=[t.number for t in shown], y=[t.value for t in shown], mode="markers", name="objective value",
                       marker={"color": "#8fb3d9", "size": 6}),
            go.Scatter(x=[n for n, _ in steps] + [last], y=[v for _, v in steps] + [steps[-1][1]], mode="lines",
                       name="best value", line={"color": "#d62728", "shape": "hv"})])
        for name, figures in (baselines or {}).items():
            if isinstance(figures, dict) and isinstance(figures.get(metric), (int, float)):
                fig.add_hline(y=figures[metric], line_dash="dot", line_color="#555",
                              annotation_text=f"{name} {figures[metric]:.4f}", annotation_position="top left")
        fig.update_layout(xaxis_title="trial", yaxis_title=metric)
        p.figure(fig)
        _sampled_note(p, len(shown), len(done), "objective values")
    else:
        p.note("no COMPLETE trial yet: nothing to draw")
    if not baselines:
        p.note("no reference baselines recorded on this study (studies from before baselines were added have none)")
        return
    keys = sorted({k for v in baselines.values() if isinstance(v, dict) for k in v})
    p.add(table(["baseline", *keys], [(name, *(num(v.get(k)) for k in keys)) for name, v in baselines.items()
                                       if isinstance(v, dict)]))


def curves(p: Page, study: optuna.Study, asha: list | None, trials: list[FrozenTrial], metric: str) -> None:
    import plotly.graph_objects as go
    sign = _sign(study)
    drawn = [t for t in trials if outcome(t) in COLOURS and t.intermediate_values]
    if not drawn:
        p.note("no trial has reported an epoch yet: nothing to draw")
        return
    shown_trials = sample(drawn, CURVES, lambda t: -max(sign * v for v in t.intermediate_values.values()))
    fig, shown = go.Figure(), set()
    for t in shown_trials:
        kind = outcome(t)
        steps = sorted(t.intermediate_values)
        fig.add_trace(go.Scatter(x=steps, y=[t.intermediate_values[s] for s in steps], mode="lines+markers",
                                 name=kind, legendgroup=kind, showlegend=kind not in shown, opacity=0.75,
                                 line={"color": COLOURS[kind], "width": 1.5}, marker={"size": 4},
                                 hovertemplate=f"trial {t.number} ({kind})<br>epoch %{{x}}: %{{y:.4f}}<extra></extra>"))
        shown.add(kind)
    for k, epoch in enumerate(rungs(*asha[:4]) if asha else []):
        fig.add_vline(x=epoch, line_dash="dash", line_color="#999", annotation_text=f"rung {k}")
    fig.update_layout(xaxis_title="epoch", yaxis_title=metric)
    p.figure(fig)
    _sampled_note(p, len(shown_trials), len(drawn), "learning curves")


def pareto(p: Page, study: optuna.Study, budget: int | None, metric: str, done: list[FrozenTrial]) -> None:
    import plotly.graph_objects as go
    sign = _sign(study)
    front = pareto_front(done, sign > 0)
    if not front:
        p.note("no COMPLETE trial with a parameter count yet: nothing to draw")
        return
    label = lambda ts: [f"trial {t.number}" for t in ts]  # noqa: E731
    size = lambda ts: [t.user_attrs["n_params"] for t in ts]  # noqa: E731
    on_front = {t.number for t in front}
    sized = [t for t in done if t.number not in on_front and t.user_attrs.get("n_params")]
    others = sample(sized, POINTS, lambda t: -sign * t.value)
    fig = go.Figure([
        go.Scatter(x=size(others), y=[t.value for t in others], mode="markers", name="complete trials",
                   text=label(others), marker={"color": "#8fb3d9", "size": 8}),
        go.Scatter(x=size(front), y=[t.value for t in front], mode="lines+markers", name="Pareto front",
                   text=label(front), line={"color": "#d62728", "shape": "hv"}, marker={"size": 10})])
    if budget:
        fig.add_vline(x=budget, line_dash="dot", annotation_text="budget")
    fig.update_layout(xaxis_title="parameters", yaxis_title=metric)
    p.figure(fig)
    _sampled_note(p, len(others), len(sized), "trials off the front")
    p.add(table(["trial", "parameters", metric], [(t.number, f"{t.user_attrs['n_params']:,}", num(t.value))
                                                   for t in front]))


def view_study(study: optuna.Study, meta: StudyMeta, done: list[FrozenTrial]) -> optuna.Study:
    """The COMPLETE trials (a sample past POINTS) with the fitted width in place of its
    `<width>_frac` (the value people read), in memory, for Optuna's importance and
    parallel-coordinate plots."""
    width = meta.width
    decl = (meta.signature.get("params") or {}).get(width)
    view = optuna.create_study(direction=study.direction)
    sign = _sign(study)
    for t in sample(done, POINTS, lambda t: -sign * t.value):
        params, dists = dict(t.params), dict(t.distributions)
        value = t.user_attrs.get(width) if width else None
        if decl and f"{width}_frac" in params and isinstance(value, (int, float)):
            del params[f"{width}_frac"], dists[f"{width}_frac"]
            kind = IntDistribution if decl[0] == "int" else FloatDistribution
            params[width], dists[width] = value, kind(min(decl[1], value), max(decl[2], value))
        view.add_trial(optuna.trial.create_trial(value=t.value, params=params, distributions=dists))
    return view


def importances(p: Page, view: optuna.Study, metric: str, done: list[FrozenTrial]) -> None:
    keys = {k for t in done for k in t.params}
    varying = {k for k in keys if len({json.dumps(t.params.get(k)) for t in done}) > 1}
    if len(done) < 2 or not varying:
        p.note(f"not shown: importances need at least 2 COMPLETE trials whose parameters differ "
               f"(this study has {len(done)} COMPLETE)")
        return
    try:
        p.figure(optuna.visualization.plot_param_importances(view, target_name=metric))
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # e.g. too few trials for the evaluator
        p.note(f"not shown: Optuna could not compute importances on these trials ({exc})")
        return
    _sampled_note(p, len(view.get_trials(deepcopy=False)), len(done), "importances fitted")


def parallel(p: Page, view: optuna.Study, metric: str, done: list[FrozenTrial]) -> None:
    if not done:
        p.note("no COMPLETE trial yet: nothing to draw")
        return
    p.figure(optuna.visualization.plot_parallel_coordinate(view, target_name=metric))
    _sampled_note(p, len(view.get_trials(deepcopy=False)), len(done), "parallel coordinates")
