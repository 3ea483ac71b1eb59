"""Where studies live: the Optuna RDB storage (SQLite by default, PostgreSQL on a cluster)."""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import unquote

import optuna

from search.rdb import CoreReadRDBStorage, insert_rows

DEFAULT_DIR = Path("runs")
STORAGE_ENV = "NEXTSWEEP_STORAGE"  # a URL with a password stays out of argv (ps, Ray's job list)


class SearchError(Exception):
    """A sweep the user must fix (bad storage URL, study name clash...): one clear line."""


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
            raise SearchError(f"${STORAGE_ENV} is set but empty; set it to the storage URL or unset it")
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
        raise SearchError(f"--storage-file {file}: {why}; write the storage URL into it "
                          "(e.g. postgresql://user:PASSWORD@127.0.0.1:5432/db)")
    return text


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Connect now, so a wrong or unreachable URL fails before any trial starts."""
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    kwargs = {"connect_args": _connect_args(url)}
    for attempt in range(3):
        try:
            return CoreReadRDBStorage(url, engine_kwargs=kwargs)
        except Exception as exc:  # sqlalchemy / driver errors
            # Two sweeps starting at once on an empty database race to create the tables: the
            # loser sees "already exists" and succeeds on a second try.
            if "already exists" in str(exc) or "UniqueViolation" in type(exc).__name__ + str(exc):
                time.sleep(0.5 + attempt)
                continue
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            reason = scrub(reason, url)  # a driver may echo the URL it was given
            raise SearchError(f"storage {redact(url)}: cannot connect ({reason}); check the URL, "
                              "that the server runs and that its driver is installed") from None
    raise SearchError(f"storage {redact(url)}: could not create the study tables; try again")


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


def _connect_args(url: str) -> dict:
    """Driver options: fail fast on an unreachable server, and commits that do not wait for the
    disk (PostgreSQL's synchronous_commit=off for these sessions only: a server crash may lose
    the last ~0.6 s of commits, never consistency)."""
    if url.startswith("postgresql"):
        return {"connect_timeout": 5, "options": "-c synchronous_commit=off"}
    if url.startswith("sqlite:///"):
        return {"factory": _WalSQLite}
    return {}


# scheme://user:PASSWORD@host: the password runs to the last '@' before the path.
_USERINFO = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^\s:/@?#]*:)([^\s/]*)@")
# ?password=...  (libpq and SQLAlchemy both accept it as a query parameter)
_QUERY = re.compile(r"([?&;]password=)([^&;#\s]*)", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` (a URL, or a message holding URLs) with every password replaced by ***."""
    return _QUERY.sub(r"\1***", _USERINFO.sub(r"\1***@", text))


def has_password(url: str) -> bool:
    return redact(url) != url


def scrub(text: str, url: str) -> str:
    """`text` without the passwords of `url`, even where one appears outside a URL."""
    secrets = {m.group(2) for rx in (_USERINFO, _QUERY) for m in rx.finditer(url) if m.group(2)}
    text = redact(text)
    for secret in sorted(secrets | {unquote(s) for s in secrets}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]


def load_study(storage_url: str, name: str | None) -> optuna.Study:
    """An existing study; without a name, the only (or the most recent) one in the storage."""
    storage = open_storage(storage_url)
    names = study_names(storage)
    if not names:
        raise SearchError(f"storage {redact(storage_url)}: holds no study; run `nextsweep sweep` first")
    if name is None:
        name = names[-1]
    elif name not in names:
        raise SearchError(f"study '{name}' not found in {redact(storage_url)}; it holds: {', '.join(names)}")
    return optuna.load_study(study_name=name, storage=storage)


def set_finished_trial_attr(study: optuna.Study, trial_id: int, key: str, value) -> None:
    """Set a user attribute on a trial that has finished (`nextsweep confirm` annotates COMPLETE
    trials). Optuna's API refuses to touch finished trials, so this upserts the attribute row of
    its RDB storage directly (the schema of the pinned optuna 5.0). A study object already open in
    this process may keep showing the old value (Optuna caches finished trials): load it again."""
    rdb = getattr(study._storage, "_backend", study._storage)  # _CachedStorage wraps the RDBStorage
    if not isinstance(rdb, optuna.storages.RDBStorage):
        raise SearchError(f"study '{study.study_name}': annotating finished trials needs an RDB storage (SQLite, PostgreSQL)")
    _upsert_attrs(rdb, trial_id, {key: value})


def set_trial_attrs(trial: optuna.Trial, attrs: dict) -> None:
    """Several user attributes of a running trial in one transaction (Optuna's set_user_attr
    costs ~4 statements and a commit each, and the searcher writes ~10 per trial)."""
    storage = trial.study._storage
    rdb = getattr(storage, "_backend", storage)
    if not isinstance(rdb, optuna.storages.RDBStorage) or not attrs:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return
    _upsert_attrs(rdb, trial._trial_id, attrs, running_only=True)
    trial._cached_frozen_trial.user_attrs.update(attrs)  # as Trial.set_user_attr keeps its copy


def _upsert_attrs(rdb: optuna.storages.RDBStorage, trial_id: int, attrs: dict, running_only: bool = False) -> None:
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    with _create_scoped_session(rdb.scoped_session) as session:
        if running_only:  # what Optuna's set_user_attr checks, without loading the whole trial
            state = session.query(models.TrialModel.state).filter(models.TrialModel.trial_id == trial_id).scalar()
            rdb.check_trial_is_updatable(trial_id, state)
        rows = {r.key: r for r in session.query(models.TrialUserAttributeModel)
                .filter(models.TrialUserAttributeModel.trial_id == trial_id,
                        models.TrialUserAttributeModel.key.in_(list(attrs)))}
        for key, value in attrs.items():
            if key in rows:
                rows[key].value_json = json.dumps(value)
            else:
                session.add(models.TrialUserAttributeModel(trial_id=trial_id, key=key, value_json=json.dumps(value)))


def insert_trials(study: optuna.Study, trials: list[optuna.trial.FrozenTrial],
                  numbered: Callable[[int], dict] | None = None) -> list[tuple[int, int]]:
    """(trial id, number) of each trial, stored as given (state, value, params, attributes,
    intermediate values) in one transaction of ~7 statements whatever their count (search/rdb.py).
    Optuna's create_new_trial(template_trial=...) runs 3 ORM queries per parameter, one a
    study-wide scan.
    `numbered(number)` gives user attributes that depend on the number the trial gets (added to
    the trial's own, in the same transaction)."""
    storage = study._storage
    rdb = getattr(storage, "_backend", storage)
    if not isinstance(rdb, optuna.storages.RDBStorage):
        out = []
        for t in trials:
            trial_id = storage.create_new_trial(study._study_id, template_trial=t)
            number = storage.get_trial(trial_id).number
            for key, value in (numbered(number) if numbered else {}).items():
                t.user_attrs[key] = value
                storage.set_trial_user_attr(trial_id, key, value)
            out.append((trial_id, number))
        return out
    return insert_rows(rdb, study._study_id, trials, numbered)
