"""Where studies live: the Optuna RDB storage (SQLite by default, PostgreSQL on a cluster)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import optuna

DEFAULT_DIR = Path("runs")


class SearchError(Exception):
    """A sweep the user must fix (bad storage URL, study name clash...): one clear line."""


def default_storage(sweep_root: Path = DEFAULT_DIR) -> str:
    return f"sqlite:///{(sweep_root / 'nextsweep.db').resolve()}"


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Connect now, so a wrong or unreachable URL fails before any trial starts."""
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    kwargs = {"connect_args": {"connect_timeout": 5}} if url.startswith("postgresql") else {}
    for attempt in range(3):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except Exception as exc:  # sqlalchemy / driver errors
            # Two sweeps starting at once on an empty database race to create the tables: the
            # loser sees "already exists" and succeeds on a second try.
            if "already exists" in str(exc) or "UniqueViolation" in type(exc).__name__ + str(exc):
                time.sleep(0.5 + attempt)
                continue
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SearchError(f"storage {redact(url)}: cannot connect ({reason}); check the URL, "
                              "that the server runs and that its driver is installed") from None
    raise SearchError(f"storage {redact(url)}: could not create the study tables; try again")


def redact(url: str) -> str:
    """The URL without its password, for messages and printed summaries."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


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
