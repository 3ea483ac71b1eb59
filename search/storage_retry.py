"""Waiting out a storage outage. A PostgreSQL restart (or failover, or a network blip) mid-sweep
fails the statements in flight; Optuna wraps that in StorageInternalError and Tune would end the
sweep on it, with trials still running. Every storage call of the driver (the RDBStorage
methods, and our own SQL: search/storage.py) retries instead while the error is a lost or refused
connection, for up to WAIT_S, with one line when the storage goes and one when it is back. A
transaction that failed wrote nothing, so its retry writes it once; a finished trial's outcome
whose commit landed just before the connection went is not told twice. On the fast path only
(search/internals/compat.py): where an untested Optuna runs its own storage, its errors stand.
"""

from __future__ import annotations

import functools
import os
import sys
import time

import optuna

WAIT_S = float(os.environ.get("NEXTSWEEP_STORAGE_WAIT_S", "600"))  # then the error stands
# The storage methods the driver and Optuna's cache call (not the schema ones: a storage that
# cannot be opened fails at once, search/storage.py open_storage)
RETRIED = ("create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
           "get_study_id_from_name", "get_study_name_from_id", "get_study_directions", "get_study_user_attrs",
           "get_study_system_attrs", "get_all_studies", "create_new_trial", "set_trial_param",
           "get_trial_id_from_study_id_trial_number", "get_trial_number_from_id", "get_trial_param",
           "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr",
           "set_trial_system_attr", "get_trial", "get_all_trials", "_get_trials", "get_n_trials")
_down_since: float | None = None  # when the current outage began (one line each way)


def is_outage(exc: BaseException) -> bool:
    """A lost, refused or invalidated connection (or SQLite's busy file) anywhere in the chain."""
    from sqlalchemy import exc as sa_exc
    seen = exc
    while seen is not None:
        if isinstance(seen, (sa_exc.OperationalError, sa_exc.InterfaceError)):
            return True
        if isinstance(seen, sa_exc.DBAPIError) and seen.connection_invalidated:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def retried(fn):
    """`fn`, called again while it fails on an outage, for up to WAIT_S."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        global _down_since
        start, pause = None, 0.25
        while True:
            try:
                out = fn(*args, **kwargs)
            except optuna.exceptions.UpdateFinishedTrialError:
                if start is None:
                    raise
                out = True  # an earlier try's commit landed before its connection went
            except Exception as exc:
                if not is_outage(exc) or (start is not None and time.monotonic() - start > WAIT_S):
                    raise
                start = start or time.monotonic()
                if _down_since is None:
                    _down_since = start
                    _say(f"storage unreachable ({_reason(exc)}); the sweep waits for it, up to {WAIT_S:.0f} s")
                time.sleep(pause)
                pause = min(2 * pause, 5.0)
                continue
            if _down_since is not None:
                _say(f"storage back after {time.monotonic() - _down_since:.1f} s; going on")
                _down_since = None
            return out
    return call


def retrying(cls: type) -> type:
    """`cls` (an RDBStorage) with every RETRIED method waiting out outages; a module-level class,
    so a pickled storage (Tune saves its searcher) loads again."""
    name = f"Retrying{cls.__name__}"
    if name not in globals():
        sub = type(name, (cls,), {m: retried(getattr(cls, m)) for m in RETRIED if hasattr(cls, m)})
        sub.__module__, sub.__qualname__ = __name__, name
        globals()[name] = sub
    return globals()[name]


def _reason(exc: BaseException) -> str:
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    text = str(root).strip().splitlines()
    return text[0][:160] if text else type(root).__name__


def _say(text: str) -> None:
    print(f"nextsweep: {text}", file=sys.stderr, flush=True)
