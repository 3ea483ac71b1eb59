"""The driver's Ray session, shared by `sweep` and `confirm`: joining a cluster or starting a
local Ray (`init_ray`), and keeping Ray's own console output to warnings (`quiet_ray`). Ray is
imported only when a session starts."""

from __future__ import annotations

import contextlib
import logging
import os


def init_ray(opts) -> None:
    """Join `opts.address` (a cluster), or start a local Ray where it is None: sized to this
    machine, or to `opts.local_cpus` where set."""
    import ray
    if ray.is_initialized():
        return
    if opts.address:  # the nodes' raylets start the workers: a test's hold travels in the job's env
        from search.trainable import HOLD_ENV
        hold = {"env_vars": {HOLD_ENV: os.environ[HOLD_ENV]}} if HOLD_ENV in os.environ else None
        ray.init(address=opts.address, log_to_driver=False, runtime_env=hold)
    else:  # --local-cpus declares more (or fewer) CPUs than the machine has: sleeping simulated trials need none
        cpus = getattr(opts, "local_cpus", None) or os.cpu_count()
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)


def quiet_ray(local: bool) -> None:
    """Our progress lines replace Tune's tables; keep Ray's own chatter to warnings. A local Ray
    of our own needs no token; on a cluster the nodes' mode rules (token auth, ~/.ray/auth_token)."""
    if local:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # The sweep names its loggers (search/sweep.py: Tune's JSON and CSV, not TensorBoard's, whose
    # flushes fsync 4 times a trial: 35 ms of the driver's loop each on this disk)
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    for name in ("ray", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def pending_trials(cpus_per_trial: float):
    """Let Tune place as many trials at once as the cluster's CPUs hold. For a custom searcher its
    default is one trial pending placement at a time (TUNE_MAX_PENDING_TRIALS_PG), so the slots
    of a large cluster filled one actor start after another: 64 declared CPUs never had 64
    trials running. A value the user set stays."""
    import ray
    key = "TUNE_MAX_PENDING_TRIALS_PG"
    if key in os.environ:
        yield
        return
    os.environ[key] = str(max(1, int(ray.cluster_resources().get("CPU", 1) / max(cpus_per_trial, 1e-3))))
    try:
        yield
    finally:
        os.environ.pop(key, None)
