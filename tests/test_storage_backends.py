"""Where our SQL on Optuna's tables may not run as written, the storage still works and stores the
same trials: an old SQLite (no INSERT ... RETURNING before 3.35, 999 bound values before 3.32),
a backend it was not tested on, a schema revision or an Optuna it was not tested with, and
NEXTSWEEP_STOCK=1 (Optuna's own RDBStorage)."""

import datetime
import logging
import sqlite3

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from search.internals import compat, rdb
from search.internals.draft import DraftTrial
from search.internals.rdb import CoreReadRDBStorage
from search.storage import insert_trials, open_storage, set_trial_attrs

optuna.logging.set_verbosity(optuna.logging.WARNING)
START = datetime.datetime(2024, 5, 1, 12, 0, 0)


def history(n: int) -> list[optuna.trial.FrozenTrial]:
    """n finished trials in every state, with parameters, attributes and intermediate values."""
    dists = {"x": optuna.distributions.FloatDistribution(0.0, 1.0),
             "c": optuna.distributions.CategoricalDistribution(["a", "b"]),
             "n": optuna.distributions.IntDistribution(1, 9, log=True)}
    out = []
    for i in range(n):
        state = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL][i % 3]
        out.append(optuna.trial.create_trial(
            state=state, value=float(i) if state == TrialState.COMPLETE else None,
            params={"x": (i % 10) / 10, "c": "ab"[i % 2], "n": 1 + i % 9}, distributions=dists,
            user_attrs={"u": {"i": i}}, system_attrs={"s": [i]}, intermediate_values={1: 0.1 * i, 2: 0.2 * i}))
        out[-1].datetime_start = START + datetime.timedelta(seconds=i)
        out[-1].datetime_complete = START + datetime.timedelta(seconds=i + 1)
    return out


def fields(t: optuna.trial.FrozenTrial, dated: bool) -> tuple:
    return (t.number, t.state, t.values, t.params, t.distributions, t.user_attrs, t.system_attrs,
            t.intermediate_values) + ((t.datetime_start, t.datetime_complete) if dated else ())


def storage_operations(url: str, n: int) -> list[tuple]:
    """What a sweep does with its storage: bulk inserts, a draft, ask and tell, attributes; then
    everything read back by a fresh storage. The fields of each stored trial (the datetimes of
    those stamped now left out)."""
    study = optuna.create_study(study_name="ops", storage=open_storage(url), direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=3))
    numbers = [number for _, number in insert_trials(study, history(n))]
    assert numbers == list(range(n))
    draft = DraftTrial(study)
    draft.suggest_float("x", 0.0, 1.0)
    trial = draft.commit({}, lambda number: {"seed": 100 + number})
    set_trial_attrs(trial, {"n_params": 7, "config": "{}"})
    study.tell(trial, 0.5)
    asked = study.ask()
    asked.suggest_categorical("c", ["a", "b"])
    study.tell(asked, state=TrialState.PRUNED)
    again = optuna.load_study(study_name="ops", storage=open_storage(url))
    return [fields(t, t.number < n) for t in again.trials]


@pytest.fixture
def old_sqlite(monkeypatch):
    """SQLite as 3.31 was: SQLAlchemy reads the driver's sqlite_version_info when it makes an
    engine's dialect (no INSERT ... RETURNING, 999 bound values a statement), and each real
    connection is held to 999 bound values, as SQLite enforced it then."""
    monkeypatch.setattr(sqlite3.dbapi2, "sqlite_version_info", (3, 31, 1))

    def limit(dbapi_conn, _record):
        if isinstance(dbapi_conn, sqlite3.Connection):
            dbapi_conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    sa.event.listen(sa.pool.Pool, "connect", limit)
    yield
    sa.event.remove(sa.pool.Pool, "connect", limit)


def test_old_sqlite_stores_and_reads_what_a_current_one_does(tmp_path, request):
    n = 300  # trial ids read in one query, each bound once per side table: 1,500 bound values
    want = storage_operations(f"sqlite:///{tmp_path / 'new.db'}", n)
    request.getfixturevalue("old_sqlite")
    url = f"sqlite:///{tmp_path / 'old.db'}"
    storage = open_storage(url)
    assert not storage.engine.dialect.insert_returning  # the old SQLite as SQLAlchemy sees it
    assert isinstance(storage, CoreReadRDBStorage)  # our reads and inserts still run
    with storage.engine.connect() as conn:  # and the limit holds for real
        with pytest.raises(sa.exc.OperationalError, match="too many SQL variables"):
            conn.execute(sa.select(sa.literal(1)).where(sa.literal(1).in_(list(range(1000)))))
    assert storage_operations(url, n) == want


def test_a_backend_the_sql_was_not_tested_on_gets_optunas_storage():
    assert rdb.untested_backend("sqlite:////tmp/x.db") is None
    assert rdb.untested_backend("postgresql+psycopg://u@h/db") is None
    for url in ("mysql+pymysql://u@h/db", "mariadb://u@h/db", "oracle://u@h/db"):
        assert rdb.untested_backend(url) == f"the {url.split(':')[0].split('+')[0]} backend"


@pytest.fixture
def warnings_afresh(monkeypatch):
    monkeypatch.setattr(compat, "_warned", set())  # compat warns once per process


def test_a_schema_revision_not_tested_gets_optunas_storage(tmp_path, monkeypatch, caplog, warnings_afresh):
    url = f"sqlite:///{tmp_path / 's.db'}"
    want = storage_operations(f"sqlite:///{tmp_path / 'fast.db'}", 7)
    monkeypatch.setattr(rdb, "TESTED_SCHEMA", "v9.9.9.z")
    with caplog.at_level(logging.WARNING):
        assert type(open_storage(url)) is optuna.storages.RDBStorage
        assert type(open_storage(url)) is optuna.storages.RDBStorage
    warned = [r.getMessage() for r in caplog.records if "v9.9.9.z" in r.getMessage()]
    assert len(warned) == 1 and "v3.2.0.a" in warned[0] and "Optuna's own" in warned[0], warned
    assert storage_operations(url, 7) == want


def test_the_tested_schema_is_optunas_head():
    storage = optuna.storages.RDBStorage("sqlite:///:memory:")
    assert compat.installed("optuna") != compat.TESTED_OPTUNA or storage.get_head_version() == rdb.TESTED_SCHEMA


def test_nextsweep_stock_runs_optunas_own_storage_and_stores_the_same(tmp_path, monkeypatch):
    want = storage_operations(f"sqlite:///{tmp_path / 'fast.db'}", 7)
    monkeypatch.setenv(compat.STOCK_ENV, "1")
    url = f"sqlite:///{tmp_path / 'stock.db'}"
    storage = open_storage(url)
    assert type(storage) is optuna.storages.RDBStorage
    study = optuna.create_study(study_name="kind", storage=storage)
    assert type(study._storage._backend) is optuna.storages.RDBStorage  # cached, as Optuna wraps it
    assert not isinstance(DraftTrial(study), DraftTrial)  # Trial.__new__ is not used: study.ask() is
    assert storage_operations(url, 7) == want
