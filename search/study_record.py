"""What a study says about itself: the study's user attributes, as one frozen dataclass (StudyMeta)
with one reader (`read`) and one writer (`write`). Trials' own attributes are not kept here.

The sweep records its study once it is opened (and again on every resume): the space, the task,
the data and its fingerprint, the budget, the objective and its ranking rules, the space's
signature (what a resume must share with it), how the sweep was run, and the optuna-dashboard
note. The no-search baselines are added once they are measured (`write(..., only=("baselines",))`). The attribute keys are the
field names and their values are stored as before, so the dashboard and older studies read the
same; a key a study lacks reads as the field's default.
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import warnings
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path

import optuna

from search.asha import asha_signature, asha_text, data_fractions
from search.errors import SearchError
from search.url_redact import redact
from spaces.facts import DEFAULT_TOLERANCE

DEFAULT_TASK = "location"  # a study from before the task was recorded
DEFAULT_METRIC = "val_hit5"  # the objective of a study from before the metric was recorded (location sweeps' default)
SWEEP_ONLY_IF_SET = ("startup_trials", "data_fractions")  # the sweep records these only where set


@dataclass(frozen=True)
class StudyMeta:
    """A study's user attributes; the field order is the order the sweep writes them in."""
    space_name: str | None = None
    task: str = DEFAULT_TASK
    space_file: str | None = None
    space_overrides: tuple[str, ...] = ()  # the --set KEY=VALUE the sweep was started with
    data: dict | None = None  # the space's data section (paths as text)
    fingerprint: str | None = None  # of the dataset the sweep trained on
    budget: int | None = None  # max parameters
    metric: str = DEFAULT_METRIC  # the objective
    then: tuple[str, ...] = ()  # ranking only (ranking.ranked): kept out of space_signature, so a changed `then` resumes
    tolerance: float = DEFAULT_TOLERANCE  # ranking only; a stored non-finite one reads as the default
    space_signature: dict | None = None  # what a resume must share with the space (None: a study from before)
    samples: int | None = None
    time_budget_s: float | None = None  # --time-budget (None: none)
    sampler: str | None = None
    startup_trials: int | None = None
    seed: int | None = None
    code_version: str | None = None
    command: str | None = None  # the command that (re)runs the sweep, without passwords
    started: str | None = None  # ISO time of the first start (a resume keeps it)
    baselines: dict | None = None  # name -> metrics of the no-search predictors (search.baselines)
    simulated: bool = False  # `sweep --simulate`: the trials trained nothing (search.simulate)
    # asha.fidelity data: the share of the training samples epoch e trained on is [e - 1], so each
    # intermediate value (step e) carries its fraction (search.asha.data_fractions); None: all
    data_fractions: tuple[float, ...] | None = None

    @property
    def signature(self) -> dict:
        return self.space_signature or {}

    @property
    def asha(self) -> list | None:
        """ASHA's settings as asha_signature() stores them, or None."""
        return self.signature.get("asha")

    @property
    def width(self) -> str | None:
        """The parameter fitted to the budget (e.g. d_model), or None."""
        return self.signature.get("width")

    @property
    def mode(self) -> str:
        return self.signature.get("mode", "max")


def refuse_simulated(meta: StudyMeta, study_name: str, command: str) -> None:
    """`command` (retrain, confirm, predict) never works on a simulated study's trials."""
    if meta.simulated:
        raise SearchError(f"study '{study_name}' is a simulated sweep (sweep --simulate): its trials trained nothing, "
                          f"so there is nothing to {command}; run the sweep without --simulate")


def read(study: optuna.Study) -> StudyMeta:
    """The one reader of a study's user attributes."""
    a = study.user_attrs
    known = {f.name: a[f.name] for f in fields(StudyMeta) if f.name in a}
    known["then"] = tuple(a.get("then") or ())
    known["space_overrides"] = tuple(a.get("space_overrides") or ())
    if a.get("data_fractions"):
        known["data_fractions"] = tuple(a["data_fractions"])
    tolerance = a.get("tolerance")
    tolerance = DEFAULT_TOLERANCE if tolerance is None else float(tolerance)
    known["tolerance"] = tolerance if math.isfinite(tolerance) else DEFAULT_TOLERANCE  # swept before the schema refused .nan
    return StudyMeta(**known)


def write(study: optuna.Study, meta: StudyMeta, only: tuple[str, ...] | None = None) -> None:
    """The one writer. By default the sweep's record of `meta`: every field but the baselines
    (startup_trials only where set, `started` only where the study has none yet), then the
    dashboard's view of it (the objective's name, the note). `only`: just these fields (the
    baselines, once measured)."""
    if only is not None:
        for name in only:
            study.set_user_attr(name, _stored(getattr(meta, name)))
        return
    already_started = read(study).started is not None  # a resume keeps the first start
    for f in fields(StudyMeta):
        value = getattr(meta, f.name)
        if f.name == "baselines" or (f.name in SWEEP_ONLY_IF_SET and value is None):
            continue
        if f.name == "started" and already_started:
            continue
        study.set_user_attr(f.name, _stored(value))
    if study.metric_names is None:
        with warnings.catch_warnings():  # experimental in Optuna 5; the dashboard reads it
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([meta.metric])
    from optuna_dashboard import save_note  # imported here: the web app's modules are not needed before
    save_note(study, study_note(study))


def _stored(value):
    return list(value) if isinstance(value, tuple) else value  # as the sweep always stored them: lists


def sweep_meta(opts, space, fingerprint: str) -> StudyMeta:
    """What a sweep run with `opts` (search.sweep.SweepOptions) over `space` records on its study:
    what export and retrain need later, and for `nextsweep report` and the dashboard how the
    sweep was run and the objective's name."""
    return StudyMeta(
        space_name=space.name, task=space.task, space_file=str(Path(opts.space).resolve()),
        space_overrides=tuple(space.overrides),
        data={k: (v if k == "synthetic" else str(v)) for k, v in space.data.items()},
        fingerprint=fingerprint, budget=space.max_params, metric=space.metric, then=tuple(space.then),
        tolerance=space.tolerance, space_signature=space_signature(space), samples=opts.samples,
        time_budget_s=opts.time_budget_s, sampler=opts.sampler, startup_trials=opts.startup_trials, seed=opts.seed,
        code_version=code_version(),
        command=sweep_command(opts), started=datetime.now().astimezone().isoformat(timespec="seconds"),
        simulated=bool(opts.simulate), data_fractions=fractions_of(space.asha))


def fractions_of(asha) -> tuple[float, ...] | None:
    """The space's ASHA's share of the training samples for each epoch (asha.fidelity data), else None."""
    if asha.fidelity != "data":
        return None
    return tuple(data_fractions(asha.max_epochs, asha.grace_period, asha.reduction_factor, asha.brackets))


def space_signature(space) -> dict:
    """What a resumed study must share with its space: the objective, the budget, ASHA and every
    parameter's declaration (a changed range would mix two different searches in one study)."""
    return {"task": space.task, "folds": space.folds, "forbid": space.forbid,
            "metric": space.metric, "mode": space.mode, "budget": space.max_params, "width": space.width,
            "asha": asha_signature(space.asha),
            "params": {p.name: [p.kind, p.low, p.high, p.step, p.log, p.choices, p.value, p.when]
                       for p in space.params}}


def code_version() -> str:
    here = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    from importlib.metadata import PackageNotFoundError, version
    try:
        ver = version("nextsweep")
    except PackageNotFoundError:
        ver = "dev"
    return f"{ver}+{rev}" if rev else ver


def sweep_command(opts) -> str:
    """The command that (re)runs this sweep, without any password of the storage URL."""
    parts = ["nextsweep sweep", opts.space, f"--study {opts.study}", f"--samples {opts.samples}",
             f"--sampler {opts.sampler}", f"--seed {opts.seed}"]
    if opts.startup_trials is not None:
        parts.append(f"--startup-trials {opts.startup_trials}")
    if opts.time_budget_s:
        parts.append(f"--time-budget {opts.time_budget_s:g}")
    if opts.address:
        parts.append(f"--address {opts.address}")
    parts += [f"--set {shlex.quote(kv)}" for kv in opts.overrides] + [f"--enqueue {e}" for e in opts.enqueue]
    parts += [f"--simulate --epoch-seconds {opts.epoch_seconds:g}"] if opts.simulate else []
    parts += [f"--local-cpus {opts.local_cpus}"] if opts.local_cpus else []
    parts += ["--resume"] if opts.resume else []
    return " ".join(parts) + f" --storage '{redact(opts.storage)}'"


def study_note(study: optuna.Study) -> str:
    """The study's note in optuna-dashboard (Markdown): what the sweep was, and what each width column means."""
    m = read(study)
    asha = m.asha or [None, None, None]
    budget = f"{m.budget:,} parameters" if m.budget else "none"
    rows = [("space", f"{m.space_name} ({m.space_file})"), ("task", m.task),
            ("objective", f"{m.metric} ({m.mode})"), ("budget", budget),
            ("ASHA", asha_text(asha)),
            ("data", f"fingerprint {str(m.fingerprint)[:12]}, {json.dumps(m.data)}"),
            ("sampler", f"{m.sampler} (seed {m.seed}"
                         + (f", {m.startup_trials} start-up trials)" if m.startup_trials else ")")),
            ("code", m.code_version),
            ("started", m.started), ("command", f"`{m.command}`")]
    if m.width:
        rows.append((m.width, f"the width each trial trained, fitted to the budget: user attribute `{m.width}` "
                              f"(the parameter `{m.width}_frac` is the sampler's position in the range)"))
    if m.simulated:  # first: nothing in it may be read as a result
        rows.insert(0, ("SIMULATED", "`sweep --simulate`: the trials trained nothing; their values are a stand-in curve"))
    table = "\n".join(f"| {k} | {str(v).replace('|', '/')} |" for k, v in rows)
    return f"## nextsweep sweep `{study.study_name}`\n\n| | |\n|---|---|\n{table}\n"
