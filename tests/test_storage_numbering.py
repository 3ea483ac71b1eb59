"""Two drivers on one study (two sweeps, a sweep and a `confirm`) never give two trials one number
(the number seeds the trial): on SQLite, where SELECT ... FOR UPDATE locks nothing, and on a real
PostgreSQL server."""

import threading

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from search.storage import insert_trials, open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


def trials(n: int, tag: str) -> list[optuna.trial.FrozenTrial]:
    dist = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    return [optuna.trial.create_trial(state=TrialState.COMPLETE, value=float(i), params={"x": i / n},
                                      distributions=dist, user_attrs={"by": tag}) for i in range(n)]


def url_for(db: str, tmp_path, request) -> str:
    return f"sqlite:///{tmp_path / 'n.db'}" if db == "sqlite" else request.getfixturevalue("postgres_url")


def numbers(url: str, name: str) -> list[int]:
    """The numbers of the study's stored trials, duplicates included (as Optuna's uncached storage
    reads them: a study object keys its cache by number, so it would show one of two)."""
    storage = optuna.storages.RDBStorage(url)
    found = sorted(t.number for t in storage.get_all_trials(storage.get_study_id_from_name(name)))
    storage.engine.dispose()
    return found


DBS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("db", DBS)
def test_a_driver_inserting_while_another_has_counted_gets_other_numbers(db, tmp_path, request):
    """The second driver runs its whole insert right after the first one counted the study's
    trials, before the first one inserts (or, once the first holds the study's lock, waits for it)."""
    url, name = url_for(db, tmp_path, request), f"counted-{tmp_path.name}"
    first, second = open_storage(url), open_storage(url)  # two engines: two drivers
    study = optuna.create_study(study_name=name, storage=first)
    other = optuna.load_study(study_name=name, storage=second)
    insert_trials(study, trials(2, "before"))
    runs: list[threading.Thread] = []

    def after_count(conn, cursor, statement, *args):
        if not runs and statement.lstrip().upper().startswith("SELECT COUNT("):
            runs.append(threading.Thread(target=insert_trials, args=(other, trials(3, "second"))))
            runs[0].start()
            runs[0].join(timeout=1.0)  # done, or waiting for the first driver's lock: both are fine
    sa.event.listen(first.engine, "after_cursor_execute", after_count)
    insert_trials(study, trials(3, "first"))
    sa.event.remove(first.engine, "after_cursor_execute", after_count)
    runs[0].join()
    assert numbers(url, name) == list(range(8))


@pytest.mark.parametrize("db", DBS)
def test_drivers_inserting_at_once_number_their_trials_0_to_n(db, tmp_path, request):
    url, name = url_for(db, tmp_path, request), f"at-once-{tmp_path.name}"
    optuna.create_study(study_name=name, storage=open_storage(url))
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def driver(tag: str) -> None:
        try:
            study = optuna.load_study(study_name=name, storage=open_storage(url))
            barrier.wait()
            for _ in range(8):
                insert_trials(study, trials(3, tag))
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)
    threads = [threading.Thread(target=driver, args=(f"d{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert numbers(url, name) == list(range(4 * 8 * 3))
