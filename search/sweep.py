"""`nextsweep sweep`: Ray Tune runs the trials, Optuna (in RDB storage) proposes them within the
budget, ASHA stops the weak ones on the space's metric. The Optuna study is the source of
truth, which is what makes `--resume` after a killed driver lose and repeat nothing."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search.outcomes import print_summary
from spaces import OVER_BUDGET, UNBUILDABLE, CompiledSpace, check_feasible, load_space, load_space_data
from search.storage import DEFAULT_DIR, SearchError, default_storage, open_storage, redact, study_names

SAMPLERS = ("tpe", "random", "cmaes", "qmc", "gp")


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
    seed: int = 0
    resume: bool = False
    dir: str = str(DEFAULT_DIR)
    max_failures: int = 0  # Tune retries of a trial whose worker died


def parse_duration(text: str) -> float:
    """'90s', '30m', '2h' or plain seconds -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise SearchError(f"--time-budget {text!r}: use a number of seconds or e.g. 90s, 30m, 2h") from None


def resumed_seed(name: str, seed: int, n_trials: int) -> int:
    """The sampler seed for a study that already holds n_trials: a fresh stream on every resume,
    so TPE's random start-up (and the random sampler) do not propose the first configs again.
    QMC keeps its seed: its sequence position lives in the study, and a new scramble would repeat it."""
    return seed if name == "qmc" or n_trials == 0 else seed + 1_000_003 * n_trials


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":  # constant liar: concurrent trials do not all get the same suggestion
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    raise SearchError(f"--sampler {name!r}: use one of {', '.join(SAMPLERS)}")


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
            "asha": [space.asha.max_epochs, space.asha.grace_period, space.asha.reduction_factor],
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
            raise SearchError(f"--resume: {space.path}: {key} is {new.get(key)!r}, but study '{study.study_name}' "
                              f"ran with {old.get(key)!r}; restore it, or start a new study for the changed space")


def open_study(opts: SweepOptions, space, storage) -> optuna.Study:
    names = study_names(storage)
    url = redact(opts.storage)
    if opts.resume:
        if opts.study not in names:
            raise SearchError(f"--resume: study '{opts.study}' not found in {url}; it holds: {', '.join(names) or 'none'}")
        study = optuna.load_study(study_name=opts.study, storage=storage)
        _check_resumable(study, space)
        n_trials = len(study.get_trials(deepcopy=False))
        study.sampler = make_sampler(opts.sampler, resumed_seed(opts.sampler, opts.seed, n_trials))
        return study
    if opts.study in names:
        raise SearchError(f"study '{opts.study}' already exists in {url}; pass --resume to continue it, "
                          "or choose another --study name")
    return optuna.create_study(study_name=opts.study, storage=storage, direction="maximize" if space.mode == "max" else "minimize",
                               sampler=make_sampler(opts.sampler, opts.seed))


def run_sweep(opts: SweepOptions) -> optuna.Study:
    space = load_space(opts.space)
    if opts.samples < 1:
        raise SearchError(f"--samples {opts.samples}: must be >= 1")
    if opts.resume and not opts.study:
        raise SearchError("--resume needs --study NAME (the study to continue)")
    opts.study = opts.study or f"{space.name}-{datetime.now():%Y%m%d-%H%M%S}"
    opts.storage = opts.storage or default_storage(Path(opts.dir))
    storage = open_storage(opts.storage)  # fails fast on a bad URL, before Ray or data
    data = load_space_data(space)
    compiled = CompiledSpace(space, data.info)
    check_feasible(space, compiled.count)
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
    if todo > 0:
        _run_tune(opts, space, data, compiled, study, orphans, todo)
    print_summary(study, opts.storage)
    return study


def _record_study(study: optuna.Study, opts: SweepOptions, space, fingerprint: str) -> None:
    """What export and retrain need later, kept with the study itself."""
    study.set_user_attr("space_name", space.name)
    study.set_user_attr("task", space.task)
    study.set_user_attr("space_file", str(Path(opts.space).resolve()))
    study.set_user_attr("data", {k: (v if k == "synthetic" else str(v)) for k, v in space.data.items()})
    study.set_user_attr("fingerprint", fingerprint)
    study.set_user_attr("budget", space.max_params)
    study.set_user_attr("metric", space.metric)
    study.set_user_attr("space_signature", space_signature(space))
    study.set_user_attr("samples", opts.samples)


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


def _init_ray(opts: SweepOptions) -> None:
    import ray
    if ray.is_initialized():
        return
    if opts.address:
        ray.init(address=opts.address, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)


def _quiet_ray(local: bool) -> None:
    """Our progress lines replace Tune's tables; keep Ray's own chatter to warnings. A local Ray
    of our own needs no token; on a cluster the nodes' mode rules (token auth, ~/.ray/auth_token)."""
    if local:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    for name in ("ray", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _run_tune(opts, space, data, compiled, study, orphans, todo: int) -> None:
    _quiet_ray(local=not opts.address)
    from ray import tune

    from search.progress import Progress
    from search.searcher import BudgetSearcher, RecordingASHA
    from search.trainable import train_trial

    _init_ray(opts)
    cpus = float(opts.cpus_per_trial)
    asha = RecordingASHA(time_attr="epoch", max_t=space.asha.max_epochs, grace_period=space.asha.grace_period,
                         reduction_factor=space.asha.reduction_factor)
    attrs = {"fingerprint": data.info.fingerprint, "code_version": code_version(), "cpus": cpus}
    searcher = BudgetSearcher(study, compiled, asha, seed=opts.seed * 100_003, cpus=cpus, attrs=attrs, orphans=orphans)
    progress = Progress(searcher, study, todo)
    trainable = tune.with_resources(tune.with_parameters(train_trial, data=data),
                                    {"cpu": cpus, "gpu": float(opts.gpus_per_trial)})
    sweep_dir = (Path(opts.dir) / opts.study).resolve()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    sweep_dir.chmod(0o700)  # Tune pickles the searcher, storage URL (and password) included
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(metric=searcher.metric, mode=space.mode, search_alg=searcher, scheduler=asha,
                                    num_samples=todo, max_concurrent_trials=opts.max_concurrent,
                                    time_budget_s=opts.time_budget_s),
        run_config=tune.RunConfig(name=f"ray-{int(time.time())}", storage_path=str(sweep_dir), verbose=0,
                                  callbacks=[progress], log_to_file=True,
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                  failure_config=tune.FailureConfig(max_failures=opts.max_failures)),
    )
    try:
        tuner.fit()
    finally:
        searcher.close()
