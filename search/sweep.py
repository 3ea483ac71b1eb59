"""`nextsweep sweep`: Ray Tune runs the trials, Optuna (in RDB storage) proposes them within the
budget, ASHA stops the weak ones on the space's metric. The Optuna study is the source of
truth, which is what makes `--resume` after a killed driver lose and repeat nothing.

Here: the sweep's options, opening (or resuming) its study, the plan of a resume, and the Tune
wiring. What the study records about itself is in search.study_record, the warm start in
search.warm_start, the Ray session in search.ray_session."""

from __future__ import annotations

import gc
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search.asha import make_asha, rung_epochs
from search.baselines import baseline_lines, ensure_baselines
from search.ray_session import init_ray, pending_trials, quiet_ray
from search.samplers import check_startup, make_sampler, resumed_seed, startup_count
from search.errors import SearchError
from search.storage import DEFAULT_DIR, default_storage, file_stem, open_storage, study_names
from search.url_redact import redact
from search.study_record import code_version, fractions_of, read, space_signature, sweep_meta, write
from search.summary import print_summary
from search.warm_start import check_enqueued, enqueue, read_enqueued
from spaces import OVER_BUDGET, UNBUILDABLE, CompiledSpace, check_feasible, load_space, load_space_data


UNTIL_BUDGET = 100_000  # --samples when only --time-budget is given: the budget decides how many


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
    simulate: bool = False  # trials sleep and report a stand-in curve (search.simulate): trains nothing
    epoch_seconds: float = 0.1  # --simulate: seconds each simulated epoch sleeps
    local_cpus: int | None = None  # CPUs the local Ray declares (None: this machine's)


def _check_resources(opts: SweepOptions) -> None:
    if opts.local_cpus is not None and opts.address:
        raise SearchError(f"--local-cpus {opts.local_cpus}: declares the CPUs of a local Ray; a cluster (--address) "
                          "declares its own with `ray start --num-cpus N`; drop one of them")
    if opts.local_cpus is not None and opts.local_cpus < 1:
        raise SearchError(f"--local-cpus {opts.local_cpus}: must be >= 1")
    if opts.epoch_seconds < 0:
        raise SearchError(f"--epoch-seconds {opts.epoch_seconds:g}: must be >= 0")


def _check_resumable(study: optuna.Study, space, simulate: bool) -> None:
    meta = read(study)
    if meta.simulated != simulate:
        raise SearchError(f"--resume: study '{study.study_name}' is {'a simulated' if meta.simulated else 'a real'} "
                          f"sweep; resume it {'with' if meta.simulated else 'without'} --simulate")
    name = meta.space_name
    if name != space.name:
        raise SearchError(f"--resume: study '{study.study_name}' was made from space '{name}', not '{space.name}'")
    old = meta.space_signature
    if old is None:  # a study from before signatures were kept: only the name can be checked
        return
    new = json.loads(json.dumps(space_signature(space)))  # as stored: tuples become lists
    flat = lambda sig: {**{k: v for k, v in sig.items() if k != "params"},
                        **{f"params.{k}": v for k, v in sig.get("params", {}).items()}}
    old, new = flat(old), flat(new)
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            sets = list(meta.space_overrides)
            given = f" (it was started with {' '.join(f'--set {o}' for o in sets) or 'no --set'})" \
                if sets != list(space.overrides) else ""
            raise SearchError(f"--resume: {space.path}: {key} is {new.get(key)!r}, but study '{study.study_name}' "
                              f"ran with {old.get(key)!r}{given}; restore it, or start a new study for the changed space")


def open_study(opts: SweepOptions, space, storage) -> optuna.Study:
    names = study_names(storage)
    url = redact(opts.storage)
    if opts.resume:
        if opts.study not in names:
            raise SearchError(f"--resume: study '{opts.study}' not found in {url}; it holds: {', '.join(names) or 'none'}")
        study = optuna.load_study(study_name=opts.study, storage=storage)
        _check_resumable(study, space, opts.simulate)
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
    _check_resources(opts)
    if space.asha.pause and opts.max_concurrent:  # Tune's ConcurrencyLimiter counts paused trials as running
        raise SearchError(f"--max-concurrent {opts.max_concurrent} with asha.pause: trials waiting paused would "
                          "hold the places and the sweep would stall; drop one (--cpus-per-trial also limits trials at once)")
    check_startup(opts.sampler, opts.startup_trials)  # before any storage is made
    opts.study = opts.study or f"{space.name}-{datetime.now():%Y%m%d-%H%M%S}"
    opts.storage = opts.storage or default_storage(Path(opts.dir))
    storage = open_storage(opts.storage)  # fails fast on a bad URL, before Ray or data
    data = load_space_data(space)
    compiled = CompiledSpace(space, data.info)
    check_feasible(space, compiled.count)
    check_enqueued(enqueued, compiled, opts.samples)
    study = open_study(opts, space, storage)
    if opts.resume and read(study).fingerprint not in (None, data.info.fingerprint):
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
    enqueue(study, enqueued, todo - len(orphans))
    if todo > 0:
        gc.freeze()  # what is read so far (a resumed study's trials) lives all sweep: full collections skip it
        try:
            _run_tune(opts, space, data, compiled, study, orphans, todo)
        finally:
            gc.unfreeze()  # collectable again once the sweep is over (a process running several sweeps)
    print_summary(study, opts.storage)
    return study


def _print_baselines(baselines: dict, metric: str) -> None:
    print("nextsweep: no-search baselines on the validation split (the bar a trial must beat):")
    for line in baseline_lines(baselines, metric):
        print(f"  {line}")


def _record_study(study: optuna.Study, opts: SweepOptions, space, fingerprint: str) -> None:
    """What export and retrain need later, kept with the study itself (search.study_record)."""
    write(study, sweep_meta(opts, space, fingerprint))


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


def _run_tune(opts, space, data, compiled, study, orphans, todo: int) -> None:
    quiet_ray(local=not opts.address)
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from search.checkpoints import checkpoint_setup
    from search.progress import Progress
    from search.searcher import BudgetSearcher
    from search.simulate import simulate_trial
    from search.trainable import train_trial

    init_ray(opts)
    cpus = float(opts.cpus_per_trial)
    if opts.time_budget_s:
        _announce_plan(opts, compiled, data, cpus)
    asha = make_asha(space.asha, seed=opts.seed, metric=space.metric)
    attrs = {"fingerprint": data.info.fingerprint, "code_version": code_version(), "cpus": cpus}
    # Checkpoints every epoch only where a retry resumes from them; else where ASHA may stop a trial.
    checkpoint_at = None if opts.max_failures else rung_epochs(asha)
    extra = {"epoch_seconds": opts.epoch_seconds, "minimized": space.mode == "min"} if opts.simulate else {}
    if (fractions := fractions_of(space.asha)) is not None:  # asha.fidelity data
        extra["fractions"] = list(fractions)
    searcher = BudgetSearcher(study, compiled, asha, seed=opts.seed * 100_003, cpus=cpus, attrs=attrs, orphans=orphans,
                              checkpoint_at=checkpoint_at, extra=extra)
    progress = Progress(searcher, study, todo, open_ended=opts.samples >= UNTIL_BUDGET and bool(opts.time_budget_s))
    # a simulated trial sleeps instead of fit(): it needs neither the data nor torch in its worker
    trainable = simulate_trial if opts.simulate else tune.with_parameters(train_trial, data=data)
    trainable = tune.with_resources(trainable, {"cpu": cpus, "gpu": float(opts.gpus_per_trial)})
    sweep_dir = (Path(opts.dir) / file_stem(opts.study)).resolve()  # a name with '/' stays inside --dir
    sweep_dir.mkdir(parents=True, exist_ok=True)
    sweep_dir.chmod(0o700)  # Tune pickles the searcher, storage URL (and password) included
    kept, callbacks = checkpoint_setup(checkpoint_at)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(metric=searcher.metric, mode=space.mode, search_alg=searcher, scheduler=asha,
                                    num_samples=todo, max_concurrent_trials=opts.max_concurrent,
                                    time_budget_s=opts.time_budget_s,
                                    reuse_actors=True),  # no new worker process (~1 s) per trial
        run_config=tune.RunConfig(name=f"ray-{int(time.time())}", storage_path=str(sweep_dir), verbose=0,
                                  callbacks=[progress, CSVLoggerCallback(), JsonLoggerCallback(), *callbacks],
                                  log_to_file=True, checkpoint_config=kept,
                                  failure_config=tune.FailureConfig(max_failures=opts.max_failures)),
    )
    try:
        with pending_trials(cpus):
            tuner.fit()
    finally:
        searcher.close()


def _announce_plan(opts: SweepOptions, compiled: CompiledSpace, data, cpus: float) -> None:
    """What the time budget buys (search.planner), before the first trial; a warning where it
    fits too few trials for the sampler to leave its random start-up."""
    import ray

    from search.planner import plan_budget
    slots = int(ray.cluster_resources().get("CPU", 1) // max(cpus, 1e-3))
    plan = plan_budget(compiled, data, slots=min(slots, opts.max_concurrent or slots), threads=cpus,
                       budget_s=opts.time_budget_s, startup=startup_count(opts.sampler, opts.startup_trials),
                       epoch_seconds=opts.epoch_seconds if opts.simulate else None, seed=opts.seed)
    if plan is None:
        print("nextsweep: plan: no configuration of the space could be timed (each probe fit failed); no plan")
        return
    for line in plan.lines():
        print(f"nextsweep: plan: {line}")
    if plan.warning():
        print(f"nextsweep: warning: {plan.warning()}", flush=True)
