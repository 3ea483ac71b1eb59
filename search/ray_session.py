"""The driver's Ray session, shared by `sweep` and `confirm`: joining a cluster or starting a
local Ray (`init_ray`), and keeping Ray's own console output to warnings (`quiet_ray`). Ray is
imported only when a session starts."""

from __future__ import annotations

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
    for name in ("ray", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.ERROR)
