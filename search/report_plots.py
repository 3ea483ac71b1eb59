"""The report's plots (search/report.py), sized for any study. Past a plot's limit it draws a
sample and says so: the best half by the objective, the rest spread evenly over trial numbers.
Every trial drawn is a Plotly point or line in the page and Optuna's importances grow with the
trials they fit, so a 50,000-trial study drawn whole took minutes and tens of MB (issue 46)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial

from search.asha import rungs
from search.outcomes import outcome
from search.ranking import pareto_front
from search.report_html import Page, num, table
from search.study_reads import step_peaks, trials_by_id, whole_trials
from search.study_record import StudyMeta

COLOURS = {"complete": "#2a9d4b", "pruned": "#e8a33d", "failed": "#d62728", "stopped": "#7f7f7f", "running": "#1f77b4"}
CURVES = 300  # learning curves drawn at most (one line each)
POINTS = 2000  # trials in a scatter, the importances' fit and the parallel coordinates at most


class Peak(NamedTuple):
    """A trial that reported epochs: what sample() needs to choose its curve."""
    trial_id: int
    number: int
    peak: float | None  # its best finite epoch value


def sample(trials: list, limit: int, worse: Callable[[Any], float]) -> list:
    """`trials` (FrozenTrials, or anything with a number) by number, or past `limit` of them the
    limit // 2 best (lowest `worse`) and an even spread of the others."""
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


def curves(p: Page, study: optuna.Study, asha: list | None, metric: str) -> None:
    """The learning curves of the trials that reported an epoch (a sample: their best values and
    their spread are chosen in the database, and only those drawn are read)."""
    import plotly.graph_objects as go
    sign = _sign(study)
    drawn = [Peak(*row) for row in step_peaks(study)]
    if not drawn:
        p.note("no trial has reported an epoch yet: nothing to draw")
        return
    chosen = sample(drawn, CURVES, lambda c: math.inf if c.peak is None else -sign * c.peak)
    fig, shown = go.Figure(), set()
    for t in trials_by_id(study, [c.trial_id for c in chosen]):
        kind = outcome(t)
        if kind not in COLOURS:  # epochs without the config that ran them (a hand-copied trial): no outcome
            continue
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
    _sampled_note(p, len(chosen), len(drawn), "learning curves")


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
    for t in whole_trials(study, sample(done, POINTS, lambda t: -sign * t.value)):
        params, dists = dict(t.params), dict(t.distributions)
        value = t.user_attrs.get(width) if width else None
        if decl and f"{width}_frac" in params and isinstance(value, (int, float)):
            del params[f"{width}_frac"], dists[f"{width}_frac"]
            kind = IntDistribution if decl[0] == "int" else FloatDistribution
            params[width], dists[width] = value, kind(min(decl[1], value), max(decl[2], value))
        view.add_trial(optuna.trial.create_trial(value=t.value, params=params, distributions=dists))
    return view


def importances(p: Page, view: optuna.Study, metric: str, done: list[FrozenTrial]) -> None:
    """Optuna's default importances (fANOVA) of the drawn trials, as bars. Not Optuna's own plot:
    its hover text copies every trial once per parameter (0.9 s of a 2,000-trial report)."""
    import plotly.graph_objects as go
    drawn = view.get_trials(deepcopy=False)
    keys = {k for t in drawn for k in t.params}
    varying = {k for k in keys if len({json.dumps(t.params.get(k)) for t in drawn}) > 1}
    if len(done) < 2 or not varying:
        p.note(f"not shown: importances need at least 2 COMPLETE trials whose parameters differ "
               f"(this study has {len(done)} COMPLETE)")
        return
    try:
        found = optuna.importance.get_param_importances(view)
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # e.g. too few trials for the evaluator
        p.note(f"not shown: Optuna could not compute importances on these trials ({exc})")
        return
    names = list(found)[::-1]  # the most important at the top
    fig = go.Figure(go.Bar(x=[found[n] for n in names], y=names, orientation="h", marker_color="#8fb3d9",
                           text=[f"{found[n]:.2f}" for n in names], hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_layout(xaxis_title=f"importance for {metric} (fANOVA, Optuna's default)", height=120 + 40 * len(names))
    p.figure(fig)
    _sampled_note(p, len(drawn), len(done), "importances fitted")


def parallel(p: Page, view: optuna.Study, metric: str, done: list[FrozenTrial]) -> None:
    """One line a drawn trial through the objective and each parameter (log ones on a log axis, a
    trial without a conditional parameter at "-"). Plotly's parallel coordinates as one trace:
    Optuna's plot draws a line object a trial (0.8 s and 1 MB of page for 2,000 trials)."""
    import plotly.graph_objects as go
    drawn = view.get_trials(deepcopy=False)
    if not done or not drawn:
        p.note("no COMPLETE trial yet: nothing to draw")
        return
    values = [t.value for t in drawn]
    dims = [{"label": metric, "values": values}]
    dims += [_dimension(name, drawn) for name in sorted({k for t in drawn for k in t.params})]
    line = {"color": values, "colorscale": "Blues", "reversescale": _sign(view) < 0, "showscale": True}
    p.figure(go.Figure(go.Parcoords(line=line, dimensions=dims)))
    _sampled_note(p, len(drawn), len(done), "parallel coordinates")


def _dimension(name: str, trials: list[FrozenTrial]) -> dict:
    """A parallel-coordinates axis for parameter `name`: categories as evenly spaced ticks, a log
    parameter on log10 with its values as tick labels; trials without it one step below, at "-".
    The axis spans every trial's distribution of it (a fitted width's may differ per trial)."""
    dists = [t.distributions[name] for t in trials if name in t.params]
    absent = len(dists) < len(trials)
    if isinstance(dists[0], CategoricalDistribution):
        choices = list({json.dumps(c): c for d in dists for c in d.choices}.values())
        code = {json.dumps(c): i for i, c in enumerate(choices)}
        values = [code[json.dumps(t.params[name])] if name in t.params else len(choices) for t in trials]
        labels = [str(c) for c in choices] + ["-"] * absent
        return {"label": name, "values": values, "tickvals": list(range(len(labels))), "ticktext": labels}
    log = getattr(dists[0], "log", False)
    scale = math.log10 if log else float
    low, high = scale(min(d.low for d in dists)), scale(max(d.high for d in dists))
    below = low - (high - low) / 10 if high > low else low - 1
    values = [scale(t.params[name]) if name in t.params else below for t in trials]
    ticks = [low + (high - low) * i / 4 for i in range(5)]
    return {"label": name, "values": values, "range": [below if absent else low, high],
            "tickvals": [below] * absent + ticks,
            "ticktext": ["-"] * absent + [f"{10 ** x if log else x:.3g}" for x in ticks]}
