"""Where studies live: the Optuna RDB storage (SQLite by default, PostgreSQL on a cluster)."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import optuna

from search import errors
from search.internals import compat
from search.storage_retry import retried, retrying
from search.url_redact import redact, scrub

DEFAULT_DIR = Path("runs")
STORAGE_ENV = "NEXTSWEEP_STORAGE"  # a URL with a password stays out of argv (ps, Ray's job list)


def default_storage(sweep_root: Path = DEFAULT_DIR) -> str:
    return f"sqlite:///{(sweep_root / 'nextsweep.db').resolve()}"


def storage_url(url: str | None, file: str | None, sweep_root: Path = DEFAULT_DIR,
                environ: Mapping[str, str] = os.environ) -> str:
    """The storage URL by precedence: --storage, then --storage-file, then $NEXTSWEEP_STORAGE,
    then the SQLite file under the sweep directory."""
    if url:
        return url
    if file:
        return _read_url_file(file)
    if STORAGE_ENV in environ:
        if not environ[STORAGE_ENV].strip():  # e.g. $(cat a-missing-file): not a silent SQLite fallback
            raise errors.SearchError(f"${STORAGE_ENV} is set but empty; set it to the storage URL or unset it")
        return environ[STORAGE_ENV].strip()
    return default_storage(sweep_root)


def _read_url_file(file: str) -> str:
    try:
        text = Path(file).expanduser().read_text().strip()
    except FileNotFoundError:
        text, why = "", "not found"
    except OSError as exc:  # a directory, no permission
        text, why = "", f"cannot be read ({exc.strerror})"
    else:
        why = "is empty"
    if not text:
        raise errors.SearchError(f"--storage-file {file}: {why}; write the storage URL into it "
                          "(e.g. postgresql://user:PASSWORD@127.0.0.1:5432/db)")
    return text


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Connect now, so a wrong or unreachable URL fails before any trial starts."""
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    kwargs = {"connect_args": _connect_args(url), **_pool_args(url)}
    for attempt in range(3):
        try:
            return _rdb_storage(url, kwargs)
        except Exception as exc:  # sqlalchemy / driver errors
            # Two sweeps starting at once on an empty database race to create the tables: the
            # loser sees "already exists" and succeeds on a second try.
            if "already exists" in str(exc) or "UniqueViolation" in type(exc).__name__ + str(exc):
                time.sleep(0.5 + attempt)
                continue
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            reason = scrub(reason, url)  # a driver may echo the URL it was given
            raise errors.SearchError(f"storage {redact(url)}: cannot connect ({reason}); check the URL, "
                              "that the server runs and that its driver is installed") from None
    raise errors.SearchError(f"storage {redact(url)}: could not create the study tables; try again")


def _rdb_storage(url: str, engine_kwargs: dict) -> optuna.storages.RDBStorage:
    """Ours, with the fast paths on Optuna's tables (search/internals/rdb.py), where they were
    tested to hold: the tested Optuna (search/internals/compat.py), backend and schema revision.
    Else Optuna's own, after a warning: slower, the same trials."""
    if not compat.optuna_fast():  # (internals.rdb imports Optuna's private modules: not even that)
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    from search.internals import rdb
    why = rdb.untested_backend(url)
    if why is None:
        storage = retrying(rdb.CoreReadRDBStorage)(url, engine_kwargs=engine_kwargs)
        why = rdb.untested_schema(storage)
        if why is None:
            return storage
        storage.engine.dispose()
    storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)  # (connected: worth a warning)
    compat.warn_once(f"storage: {why}", f"storage: nextsweep's SQL on Optuna's tables was not tested with {why}; "
                                        "Optuna's own storage runs instead (slower, same results)")
    return storage


def core_rdb(storage: optuna.storages.BaseStorage) -> optuna.storages.RDBStorage | None:
    """The storage under `storage` (a study's, which Optuna wraps in a cache) where our SQL may run
    on it (open_storage opened it so), else None."""
    rdb = getattr(storage, "_backend", storage)
    if not compat.optuna_fast():
        return None
    from search.internals.rdb import CoreReadRDBStorage
    return rdb if isinstance(rdb, CoreReadRDBStorage) else None


class _WalSQLite(sqlite3.Connection):
    """SQLite in WAL mode with synchronous=NORMAL: a commit no longer waits for an fsync (~10 ms
    each here, and Optuna commits every parameter and attribute: dozens per trial). A crashed
    process loses nothing; a power cut may lose the last commits, never the file's consistency
    (a resumed sweep re-runs what was not recorded). Readers (the dashboard) no longer block the
    writer. WAL needs a local file system, as SQLite's locking does anyway."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.execute("PRAGMA journal_mode=WAL")
        self.execute("PRAGMA synchronous=NORMAL")


APP_NAME = "nextsweep"  # how PostgreSQL's pg_stat_activity names our connections
PG_POOL = 4  # connections one nextsweep process keeps to PostgreSQL, at most (README "Capacity")


def _pool_args(url: str) -> dict:
    """PostgreSQL: only the driver (or a results command) connects, never the workers: a small
    fixed pool whatever the cluster's size, each connection checked before use."""
    if url.startswith("postgresql"):
        return {"pool_size": PG_POOL, "max_overflow": 0, "pool_pre_ping": True}
    return {}


def _connect_args(url: str) -> dict:
    """Driver options: fail fast on an unreachable server, and commits that do not wait for the
    disk (PostgreSQL's synchronous_commit=off for these sessions only: a server crash may lose
    the last ~0.6 s of commits, never consistency)."""
    if url.startswith("postgresql"):
        return {"connect_timeout": 5, "options": "-c synchronous_commit=off", "application_name": APP_NAME}
    if url.startswith("sqlite:///"):
        return {"factory": _WalSQLite}
    return {}


def file_stem(study_name: str) -> str:
    """A study name as one plain file name: '/' or '../' would leave --out and a leading dot would
    hide the file, so runs of other characters become '_' and the ends lose '.', '_' and '-'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", study_name).strip("._-") or "study"


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:  # not get_all_study_summaries: it reads every trial
    return [s.study_name for s in sorted(storage.get_all_studies(), key=lambda s: s._study_id)]


def load_study(storage_url: str, name: str | None) -> optuna.Study:
    """An existing study; without a name, the only (or the most recent) one in the storage."""
    storage = open_storage(storage_url)
    names = study_names(storage)
    if not names:
        raise errors.SearchError(f"storage {redact(storage_url)}: holds no study; run `nextsweep sweep` first")
    if name is None:
        name = names[-1]
    elif name not in names:
        raise errors.SearchError(f"study '{name}' not found in {redact(storage_url)}; it holds: {', '.join(names)}")
    return optuna.load_study(study_name=name, storage=storage)


def set_finished_trial_attr(study: optuna.Study, trial_id: int, key: str, value) -> None:
    """Set a user attribute on a trial that has finished (`nextsweep confirm` annotates COMPLETE
    trials). Optuna's API refuses to touch finished trials, so this upserts the attribute row of
    its RDB storage directly (the schema of the pinned optuna 5.0: search/internals/rdb.py). A study
    object already open in this process may keep showing the old value (Optuna caches finished
    trials): load it again."""
    rdb = getattr(study._storage, "_backend", study._storage)  # _CachedStorage wraps the RDBStorage
    if not isinstance(rdb, optuna.storages.RDBStorage):
        raise errors.SearchError(f"study '{study.study_name}': annotating finished trials needs an RDB storage (SQLite, PostgreSQL)")
    from search.internals.rdb_writes import upsert_user_attrs
    retried(upsert_user_attrs)(rdb, trial_id, {key: value})


def set_trial_attrs(trial: optuna.Trial, attrs: dict) -> None:
    """Several user attributes of a running trial in one transaction (Optuna's set_user_attr
    costs ~4 statements and a commit each, and the searcher writes ~10 per trial)."""
    rdb = core_rdb(trial.study._storage)
    if rdb is None or not attrs:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return
    from search.internals.rdb_writes import set_running_attrs
    retried(set_running_attrs)(rdb, trial, attrs)


def insert_trials(study: optuna.Study, trials: list[optuna.trial.FrozenTrial],
                  numbered: Callable[[int], dict] | None = None) -> list[tuple[int, int]]:
    """(trial id, number) of each trial, stored as given (state, value, params, attributes,
    intermediate values) in one transaction of ~7 statements whatever their count (internals/rdb_writes.py).
    Optuna's create_new_trial(template_trial=...) runs 3 ORM queries per parameter, one a
    study-wide scan.
    `numbered(number)` gives user attributes that depend on the number the trial gets (added to
    the trial's own, in the same transaction). Where our SQL may not run (core_rdb), Optuna's own
    create_new_trial stores them one by one."""
    rdb = core_rdb(study._storage)
    if rdb is None:
        return [_insert_one(study, t, numbered) for t in trials]
    from search.internals.rdb_writes import insert_rows
    return retried(insert_rows)(rdb, study._study_id, trials, numbered)


def _insert_one(study: optuna.Study, t: optuna.trial.FrozenTrial, numbered: Callable[[int], dict] | None) -> tuple[int, int]:
    """insert_trials through Optuna's own storage API, one trial (`numbered` for a running one:
    a finished trial takes no more attributes)."""
    storage = study._storage
    trial_id = storage.create_new_trial(study._study_id, template_trial=t)
    number = storage.get_trial(trial_id).number
    for key, value in (numbered(number) if numbered else {}).items():
        t.user_attrs[key] = value
        storage.set_trial_user_attr(trial_id, key, value)
    return trial_id, number

