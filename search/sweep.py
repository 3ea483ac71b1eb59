"""`nextsweep sweep`: Ray Tune runs the trials, Optuna (in RDB storage) proposes them within the
budget, ASHA stops the weak ones on the space's metric. The Optuna study is the source of
truth, which is what makes `--resume` after a killed driver lose and repeat nothing."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search.searcher import STOPPED
from spaces import CompiledSpace, check_feasible, load_space, load_space_data
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


def open_study(opts: SweepOptions, space, storage) -> optuna.Study:
    names = study_names(storage)
    url = redact(opts.storage)
    if opts.resume:
        if opts.study not in names:
            raise SearchError(f"--resume: study '{opts.study}' not found in {url}; it holds: {', '.join(names) or 'none'}")
        study = optuna.load_study(study_name=opts.study, storage=storage, sampler=make_sampler(opts.sampler, opts.seed))
        if study.user_attrs.get("space_name") != space.name:
            raise SearchError(f"--resume: study '{opts.study}' was made from space "
                              f"'{study.user_attrs.get('space_name')}', not '{space.name}'")
        return study
    if opts.study in names:
        raise SearchError(f"study '{opts.study}' already exists in {url}; pass --resume to continue it, "
                          "or choose another --study name")
    return optuna.create_study(study_name=opts.study, storage=storage, direction="maximize" if space.mode == "max" else "minimize",
                               sampler=make_sampler(opts.sampler, opts.seed))


def tally(study: optuna.Study) -> dict[str, int]:
    """Trials by outcome; budget rejections counted apart from ASHA's pruning."""
    out = {"complete": 0, "pruned": 0, "failed": 0, "stopped": 0, "running": 0, "rejected": 0}
    for t in study.get_trials(deepcopy=False):
        if "rejected" in t.user_attrs:
            out["rejected"] += 1
        elif t.user_attrs.get("error", "").startswith(STOPPED):
            out["stopped"] += 1  # cut short by the time budget or an interrupt, not by ASHA
        elif "config" in t.user_attrs:  # handed to a trainer (not a proposal cut short by a kill)
            key = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}.get(t.state, "running")
            out[key] += 1
    return out


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
    orphans, finished = _plan(study)
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
    study.set_user_attr("space_file", str(Path(opts.space).resolve()))
    study.set_user_attr("data", {k: (v if k == "synthetic" else str(v)) for k, v in space.data.items()})
    study.set_user_attr("fingerprint", fingerprint)
    study.set_user_attr("budget", space.max_params)
    study.set_user_attr("metric", space.metric)
    study.set_user_attr("samples", opts.samples)


def _plan(study: optuna.Study) -> tuple[list, int]:
    """(trials a killed driver left RUNNING, to re-run; trials finished) among those handed to a
    trainer. A trial killed before its budget check never ran: it is closed as FAIL."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if "config" not in t.user_attrs and "rejected" not in t.user_attrs:
            study.tell(t.number, state=TrialState.FAIL)
    handed = [t for t in study.get_trials(deepcopy=False) if "config" in t.user_attrs]
    orphans = [t for t in handed if t.state == TrialState.RUNNING]
    return orphans, len(handed) - len(orphans)


def _init_ray(opts: SweepOptions) -> None:
    import ray
    if ray.is_initialized():
        return
    if opts.address:
        ray.init(address=opts.address, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)


def _quiet_ray() -> None:
    """Our progress lines replace Tune's tables; keep Ray's own chatter to warnings."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    for name in ("ray", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _run_tune(opts, space, data, compiled, study, orphans, todo: int) -> None:
    _quiet_ray()
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
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(metric=space.metric, mode=space.mode, search_alg=searcher, scheduler=asha,
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


def print_summary(study: optuna.Study, storage_url: str, top: int = 5) -> None:
    counts = tally(study)
    print()
    print(f"study      {study.study_name}")
    print(f"storage    {redact(storage_url)}")
    print("trials     " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    done = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                  key=lambda t: t.value, reverse=study.direction == optuna.study.StudyDirection.MAXIMIZE)
    metric = study.user_attrs.get("metric", "value")
    if done:
        print(f"\n{'trial':>5}  {metric:>9}  {'params':>9}  {'epoch':>5}  config")
        for t in done[:top]:
            cfg = ", ".join(f"{k}={_short(v)}" for k, v in t.params.items() if not k.endswith("_frac"))
            width = {k: t.user_attrs[k] for k in ("d_model",) if k in t.user_attrs}
            cfg = ", ".join([*(f"{k}={v}" for k, v in width.items()), cfg])
            print(f"{t.number:>5}  {t.value:>9.4f}  {t.user_attrs.get('n_params', 0):>9,}  "
                  f"{t.user_attrs.get('best_epoch', '-'):>5}  {cfg}")
        best = done[0]
        print(f"\nbest       trial {best.number}: {metric} {best.value:.4f} with {best.user_attrs.get('n_params', 0):,} parameters, "
              f"best epoch {best.user_attrs.get('best_epoch')}")
        print("config     " + ", ".join(f"{k}={_short(v)}" for k, v in json.loads(best.user_attrs["config"]).items()))
        print(f"export     nextsweep export --storage '{redact(storage_url)}' --study {study.study_name} --top 3 --out exports/")
    print(f"dashboard  nextsweep dashboard --storage '{redact(storage_url)}'")
    sys.stdout.flush()


def _short(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
