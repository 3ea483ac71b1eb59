"""`nextsweep sweep`: Ray Tune runs the trials, Optuna (in RDB storage) proposes them within the
budget, ASHA stops the weak ones on the space's metric. The Optuna study is the source of
truth, which is what makes `--resume` after a killed driver lose and repeat nothing."""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search.asha import asha_signature, asha_text, make_asha, rung_epochs
from search.baselines import baseline_lines, ensure_baselines
from search.samplers import check_startup, make_sampler, resumed_seed
from search.summary import print_summary
from spaces import OVER_BUDGET, UNBUILDABLE, CompiledSpace, check_feasible, load_space, load_space_data
from search.storage import DEFAULT_DIR, SearchError, default_storage, file_stem, open_storage, redact, study_names


@dataclass
class SweepOptions:
    space: str
    address: str | None = None
    storage: str | None = None
    study: str | None = None
    samples: int = 20
    max_concurrent: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    time_budget_s: float | None = None
    sampler: str = "tpe"
    startup_trials: int | None = None  # random trials before the model-based samplers' own (None: theirs)
    seed: int = 0
    resume: bool = False
    dir: str = str(DEFAULT_DIR)
    max_failures: int = 0  # Tune retries of a trial whose worker died
    enqueue: list[str] = field(default_factory=list)  # exports whose params are tried first (--enqueue)
    overrides: list[str] = field(default_factory=list)  # KEY=VALUE fields of the space (--set)


def parse_duration(text: str) -> float:
    """'90s', '30m', '2h' or plain seconds -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise SearchError(f"--time-budget {text!r}: use a number of seconds or e.g. 90s, 30m, 2h") from None


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


def space_signature(space) -> dict:
    """What a resumed study must share with its space: the objective, the budget, ASHA and every
    parameter's declaration (a changed range would mix two different searches in one study)."""
    return {"task": space.task, "folds": space.folds, "forbid": space.forbid,
            "metric": space.metric, "mode": space.mode, "budget": space.max_params, "width": space.width,
            "asha": asha_signature(space.asha),
            "params": {p.name: [p.kind, p.low, p.high, p.step, p.log, p.choices, p.value, p.when]
                       for p in space.params}}


def _check_resumable(study: optuna.Study, space) -> None:
    name = study.user_attrs.get("space_name")
    if name != space.name:
        raise SearchError(f"--resume: study '{study.study_name}' was made from space '{name}', not '{space.name}'")
    old = study.user_attrs.get("space_signature")
    if old is None:  # a study from before signatures were kept: only the name can be checked
        return
    new = json.loads(json.dumps(space_signature(space)))  # as stored: tuples become lists
    flat = lambda sig: {**{k: v for k, v in sig.items() if k != "params"},
                        **{f"params.{k}": v for k, v in sig.get("params", {}).items()}}
    old, new = flat(old), flat(new)
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            sets = study.user_attrs.get("space_overrides") or []
            given = f" (it was started with {' '.join(f'--set {o}' for o in sets) or 'no --set'})" \
                if sets != space.overrides else ""
            raise SearchError(f"--resume: {space.path}: {key} is {new.get(key)!r}, but study '{study.study_name}' "
                              f"ran with {old.get(key)!r}{given}; restore it, or start a new study for the changed space")


def open_study(opts: SweepOptions, space, storage) -> optuna.Study:
    names = study_names(storage)
    url = redact(opts.storage)
    if opts.resume:
        if opts.study not in names:
            raise SearchError(f"--resume: study '{opts.study}' not found in {url}; it holds: {', '.join(names) or 'none'}")
        study = optuna.load_study(study_name=opts.study, storage=storage)
        _check_resumable(study, space)
        n_trials = len(study.get_trials(deepcopy=False))
        study.sampler = make_sampler(opts.sampler, resumed_seed(opts.sampler, opts.seed, n_trials), opts.startup_trials,
                                     rounds_seed=opts.seed)
        return study
    if opts.study in names:
        raise SearchError(f"study '{opts.study}' already exists in {url}; pass --resume to continue it, "
                          "or choose another --study name")
    return optuna.create_study(study_name=opts.study, storage=storage, direction="maximize" if space.mode == "max" else "minimize",
                               sampler=make_sampler(opts.sampler, opts.seed, opts.startup_trials))


def run_sweep(opts: SweepOptions) -> optuna.Study:
    space = load_space(opts.space, opts.overrides)
    enqueued = read_enqueued(opts.enqueue)
    if opts.samples < 1:
        raise SearchError(f"--samples {opts.samples}: must be >= 1")
    if opts.resume and not opts.study:
        raise SearchError("--resume needs --study NAME (the study to continue)")
    check_startup(opts.sampler, opts.startup_trials)  # before any storage is made
    opts.study = opts.study or f"{space.name}-{datetime.now():%Y%m%d-%H%M%S}"
    opts.storage = opts.storage or default_storage(Path(opts.dir))
    storage = open_storage(opts.storage)  # fails fast on a bad URL, before Ray or data
    data = load_space_data(space)
    compiled = CompiledSpace(space, data.info)
    check_feasible(space, compiled.count)
    check_enqueued(enqueued, compiled, opts.samples)
    study = open_study(opts, space, storage)
    if opts.resume and study.user_attrs.get("fingerprint") not in (None, data.info.fingerprint):
        raise SearchError(f"--resume: the data of space '{space.name}' changed since study '{opts.study}' started "
                          "(fingerprint differs); start a new study")
    _record_study(study, opts, space, data.info.fingerprint)
    orphans, finished = _plan(study, compiled)
    todo = max(0, opts.samples - finished - len(orphans)) + len(orphans)
    print(f"nextsweep: study '{opts.study}' in {redact(opts.storage)}")
    if opts.resume:
        print(f"nextsweep: resuming: {finished} trials finished, {len(orphans)} interrupted (re-run), "
              f"{todo - len(orphans)} new")
    _print_baselines(ensure_baselines(study, space.task, data, space.folds), space.metric)
    _enqueue(study, enqueued, todo - len(orphans))
    if todo > 0:
        _run_tune(opts, space, data, compiled, study, orphans, todo)
    print_summary(study, opts.storage)
    return study


def read_enqueued(paths: list[str]) -> list[tuple[str, dict]]:
    """(file, Optuna params) of each --enqueue export, read before anything starts."""
    from search.export import read_export
    out = []
    for path in paths:
        params = read_export(path).get("params")
        if not isinstance(params, dict) or not params:
            raise SearchError(f"--enqueue {path}: params: missing (an export from before nextsweep kept the trial's "
                              "Optuna parameters); export the trial again with `nextsweep export`")
        out.append((path, params))
    return out


def check_enqueued(enqueued: list[tuple[str, dict]], compiled: CompiledSpace, samples: int) -> None:
    """Every enqueued export must be a proposal this space could make, and fit in --samples."""
    for path, params in enqueued:
        problem = compiled.params_problem(params)
        if problem:
            raise SearchError(f"--enqueue {path}: params.{problem}; enqueue an export of a sweep over this space")
    if len(enqueued) > samples:
        raise SearchError(f"--enqueue: {len(enqueued)} configs but --samples {samples}; raise --samples to at least "
                          f"{len(enqueued)}")


def _enqueue(study: optuna.Study, enqueued: list[tuple[str, dict]], new: int) -> None:
    """Known-good configs first: Optuna hands them out before sampling (the budget check still
    applies, as to any proposal)."""
    if len(enqueued) > new:
        raise SearchError(f"--enqueue: {len(enqueued)} configs but only {new} new trials are left of --samples; "
                          "raise --samples")
    for path, params in enqueued:
        study.enqueue_trial(params, user_attrs={"enqueued_from": str(Path(path).resolve())})
        print(f"nextsweep: enqueued {path}: " + ", ".join(f"{k}={v}" for k, v in params.items()))


def _print_baselines(baselines: dict, metric: str) -> None:
    print("nextsweep: no-search baselines on the validation split (the bar a trial must beat):")
    for line in baseline_lines(baselines, metric):
        print(f"  {line}")


def _record_study(study: optuna.Study, opts: SweepOptions, space, fingerprint: str) -> None:
    """What export and retrain need later, kept with the study itself."""
    study.set_user_attr("space_name", space.name)
    study.set_user_attr("task", space.task)
    study.set_user_attr("space_file", str(Path(opts.space).resolve()))
    study.set_user_attr("space_overrides", list(space.overrides))
    study.set_user_attr("data", {k: (v if k == "synthetic" else str(v)) for k, v in space.data.items()})
    study.set_user_attr("fingerprint", fingerprint)
    study.set_user_attr("budget", space.max_params)
    study.set_user_attr("metric", space.metric)
    # ranking only (outcomes.ranked): kept out of space_signature, so a changed `then` resumes
    study.set_user_attr("then", list(space.then))
    study.set_user_attr("tolerance", space.tolerance)
    study.set_user_attr("space_signature", space_signature(space))
    study.set_user_attr("samples", opts.samples)
    # for `nextsweep report` and the dashboard: how the sweep was run, and the objective's name
    study.set_user_attr("sampler", opts.sampler)
    if opts.startup_trials is not None:
        study.set_user_attr("startup_trials", opts.startup_trials)
    study.set_user_attr("seed", opts.seed)
    study.set_user_attr("code_version", code_version())
    study.set_user_attr("command", sweep_command(opts))
    if "started" not in study.user_attrs:
        study.set_user_attr("started", datetime.now().astimezone().isoformat(timespec="seconds"))
    if study.metric_names is None:
        with warnings.catch_warnings():  # experimental in Optuna 5; the dashboard reads it
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([space.metric])
    from optuna_dashboard import save_note  # imported here: the web app's modules are not needed before
    save_note(study, study_note(study))


def sweep_command(opts: SweepOptions) -> str:
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
    parts += ["--resume"] if opts.resume else []
    return " ".join(parts) + f" --storage '{redact(opts.storage)}'"


def study_note(study: optuna.Study) -> str:
    """The study's note in optuna-dashboard (Markdown): what the sweep was, and what each width column means."""
    a = study.user_attrs
    sig = a.get("space_signature", {})
    asha = sig.get("asha") or [None, None, None]
    budget = f"{a['budget']:,} parameters" if a.get("budget") else "none"
    width = sig.get("width")
    rows = [("space", f"{a.get('space_name')} ({a.get('space_file')})"), ("task", a.get("task")),
            ("objective", f"{a.get('metric')} ({sig.get('mode', 'max')})"), ("budget", budget),
            ("ASHA", asha_text(asha)),
            ("data", f"fingerprint {str(a.get('fingerprint'))[:12]}, {json.dumps(a.get('data'))}"),
            ("sampler", f"{a.get('sampler')} (seed {a.get('seed')}"
                         + (f", {a['startup_trials']} start-up trials)" if a.get("startup_trials") else ")")),
            ("code", a.get("code_version")),
            ("started", a.get("started")), ("command", f"`{a.get('command')}`")]
    if width:
        rows.append((width, f"the width each trial trained, fitted to the budget: user attribute `{width}` "
                            f"(the parameter `{width}_frac` is the sampler's position in the range)"))
    table = "\n".join(f"| {k} | {str(v).replace('|', '/')} |" for k, v in rows)
    return f"## nextsweep sweep `{study.study_name}`\n\n| | |\n|---|---|\n{table}\n"


def _plan(study: optuna.Study, compiled: CompiledSpace) -> tuple[list, int]:
    """(trials a killed driver left RUNNING, to re-run; trials finished) among those handed to a
    trainer. A trial killed before its budget check never ran: it is closed as FAIL; one killed
    after its rejection was recorded is closed as the rejection it is; an interrupted trial
    whose config no longer passes the budget is closed as rejected instead of re-run."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if "rejected" not in t.user_attrs and "config" not in t.user_attrs:
            study.tell(t.number, state=TrialState.FAIL)
            continue
        if "rejected" not in t.user_attrs:
            why = _recheck(compiled, json.loads(t.user_attrs["config"]))
            if why is None:
                continue  # re-run below
            optuna.trial.Trial(study, t._trial_id).set_user_attr("rejected", why)
        study.tell(t.number, state=TrialState.PRUNED)  # the state every rejection gets
    handed = [t for t in study.get_trials(deepcopy=False) if "config" in t.user_attrs and "rejected" not in t.user_attrs]
    orphans = [t for t in handed if t.state == TrialState.RUNNING]
    return orphans, len(handed) - len(orphans)


def _recheck(compiled: CompiledSpace, config: dict) -> str | None:
    """None when the config can still be built within the budget, else the rejection."""
    n = compiled.count.safe(config)
    if n == float("inf"):
        return UNBUILDABLE
    budget = compiled.space.max_params
    return OVER_BUDGET if budget is not None and n > budget else None


def init_ray(opts: SweepOptions) -> None:
    import ray
    if ray.is_initialized():
        return
    if opts.address:  # the nodes' raylets start the workers: a test's hold travels in the job's env
        from search.trainable import HOLD_ENV
        hold = {"env_vars": {HOLD_ENV: os.environ[HOLD_ENV]}} if HOLD_ENV in os.environ else None
        ray.init(address=opts.address, log_to_driver=False, runtime_env=hold)
    else:
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)


def quiet_ray(local: bool) -> None:
    """Our progress lines replace Tune's tables; keep Ray's own chatter to warnings. A local Ray
    of our own needs no token; on a cluster the nodes' mode rules (token auth, ~/.ray/auth_token)."""
    if local:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    for name in ("ray", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _run_tune(opts, space, data, compiled, study, orphans, todo: int) -> None:
    quiet_ray(local=not opts.address)
    from ray import tune

    from search.progress import Progress
    from search.searcher import BudgetSearcher
    from search.trainable import train_trial

    init_ray(opts)
    cpus = float(opts.cpus_per_trial)
    asha = make_asha(space.asha, seed=opts.seed, metric=space.metric)
    attrs = {"fingerprint": data.info.fingerprint, "code_version": code_version(), "cpus": cpus}
    # Checkpoints every epoch only where a retry resumes from them; else where ASHA may stop a trial.
    checkpoint_at = None if opts.max_failures else rung_epochs(asha)
    searcher = BudgetSearcher(study, compiled, asha, seed=opts.seed * 100_003, cpus=cpus, attrs=attrs, orphans=orphans,
                              checkpoint_at=checkpoint_at)
    progress = Progress(searcher, study, todo)
    trainable = tune.with_resources(tune.with_parameters(train_trial, data=data),
                                    {"cpu": cpus, "gpu": float(opts.gpus_per_trial)})
    sweep_dir = (Path(opts.dir) / file_stem(opts.study)).resolve()  # a name with '/' stays inside --dir
    sweep_dir.mkdir(parents=True, exist_ok=True)
    sweep_dir.chmod(0o700)  # Tune pickles the searcher, storage URL (and password) included
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(metric=searcher.metric, mode=space.mode, search_alg=searcher, scheduler=asha,
                                    num_samples=todo, max_concurrent_trials=opts.max_concurrent,
                                    time_budget_s=opts.time_budget_s,
                                    reuse_actors=True),  # no new worker process (~1 s) per trial
        run_config=tune.RunConfig(name=f"ray-{int(time.time())}", storage_path=str(sweep_dir), verbose=0,
                                  callbacks=[progress], log_to_file=True,
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                  failure_config=tune.FailureConfig(max_failures=opts.max_failures)),
    )
    try:
        tuner.fit()
    finally:
        searcher.close()
