"""CoreReadRDBStorage reads the trials Optuna's RDBStorage reads, equal field by field, on SQLite
and on a real PostgreSQL server."""

import datetime
import math
import time

import optuna
import pytest
from optuna.trial import TrialState

from search.internals import rdb
from search.internals.rdb import CoreReadRDBStorage

FIELDS = ("number", "state", "values", "params", "distributions", "user_attrs", "system_attrs",
          "intermediate_values", "datetime_start", "datetime_complete", "_trial_id")


def fields(trials):
    """Comparable field by field, NaN included (NaN != NaN). Attributes by key: Optuna reads them
    in no set order (SQLite: by key, through its unique index; ours: as written)."""
    def field(t, f):
        value = getattr(t, f)
        return sorted(value.items()) if f in ("user_attrs", "system_attrs") else value
    return [repr(tuple(field(t, f) for f in FIELDS)) for t in trials]


def fill(study: optuna.Study, objectives: int) -> None:
    """Trials in every state, with every kind of parameter, odd values and attributes."""
    for i in range(9):
        t = study.ask()
        t.suggest_float("x", 0.0, 1.0)
        t.suggest_float("lr", 1e-4, 1e-1, log=True)
        t.suggest_int("n", 1, 9, log=True)
        t.suggest_int("w", 16, 64, step=16)
        t.suggest_categorical("c", ["a", None, 3, True])
        if i % 2:
            t.suggest_float("cond", -1.0, 1.0, step=0.5)
        t.set_user_attr("u", {"i": i, "list": [1.5, "s"]})
        t.storage.set_trial_system_attr(t._trial_id, "s", [i])
        if objectives == 1:  # intermediate values: single objective only
            for step, v in enumerate([0.1 * i, math.inf, math.nan, -math.inf][: i % 5]):
                t.report(v, step)
        if i == 8:
            continue  # left RUNNING
        if i % 3 == 0:
            value = math.inf if i == 3 else float(i)
            study.tell(t, [value, -math.inf][:objectives] if objectives > 1 else value)
        else:
            study.tell(t, state=TrialState.PRUNED if i % 3 == 1 and objectives == 1 else TrialState.FAIL)
    study.enqueue_trial({"x": 0.5})  # stays WAITING


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("objectives", [1, 2])
def test_core_reads_equal_optunas(db, objectives, tmp_path, request, monkeypatch):
    url = f"sqlite:///{tmp_path / 'r.db'}" if db == "sqlite" else request.getfixturevalue("postgres_url")
    theirs, ours = optuna.storages.RDBStorage(url), CoreReadRDBStorage(url)
    name = f"r{objectives}-{tmp_path.name}"
    study = optuna.create_study(study_name=name, storage=theirs, directions=["maximize"] * objectives)
    fill(study, objectives)
    sid = study._study_id
    ids = [t._trial_id for t in study.trials]
    cases = [(None, set(), -1), ((TrialState.COMPLETE, TrialState.PRUNED), set(), -1), (None, set(), ids[4]),
             (None, {ids[1], ids[2], ids[9]}, ids[5]), ((TrialState.RUNNING,), {ids[2]}, ids[0]),
             (None, set(), ids[-1])]
    for chunk in (1000, 3):  # the side tables read in one query, then 3 trials at a time
        monkeypatch.setattr(rdb, "CHUNK", chunk)
        for states, included, above in cases:
            want = theirs._get_trials(sid, states, included, above)
            got = ours._get_trials(sid, states, included, above)
            assert fields(got) == fields(want), (chunk, states, included, above)
    assert fields(ours.get_trial(i) for i in ids) == fields(theirs.get_trial(i) for i in ids)
    with pytest.raises(KeyError):
        ours.get_trial(ids[-1] + 1000)
    assert len(ours._get_trials(sid, None, set(), -1)) == 10
    assert ours._get_trials(sid, None, set(), ids[-1]) == []
    with pytest.raises(KeyError):
        ours._get_trials(sid + 1000, None, set(), -1)
    theirs.engine.dispose()
    ours.engine.dispose()


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_fewer_fields_read_the_same_trials_without_the_rest(db, tmp_path, request):
    """A results command's view (search/study_reads.py): the trials in the states asked for, with
    the chosen user attributes and no params, system attributes nor curves, everything else as
    Optuna reads it; read_whole reads the whole trials."""
    url = f"sqlite:///{tmp_path / 'f.db'}" if db == "sqlite" else request.getfixturevalue("postgres_url")
    theirs, ours = optuna.storages.RDBStorage(url), CoreReadRDBStorage(url)
    study = optuna.create_study(study_name=f"f-{tmp_path.name}", storage=theirs)
    fill(study, 1)
    theirs.set_trial_user_attr(study.trials[8]._trial_id, "dropped", 1)  # the trial left RUNNING
    few = rdb.Fields(user=frozenset({"u", "absent"}), params=False, system=False, steps=False)
    done = (TrialState.COMPLETE, TrialState.PRUNED)
    assert fields(ours.read_fields(study._study_id, None, rdb.ALL)) == fields(theirs._get_trials(study._study_id, None, set(), -1))
    want = theirs._get_trials(study._study_id, done, set(), -1)
    got = ours.read_fields(study._study_id, done, few)
    assert len(got) == 6
    for w in want:
        w.params, w.distributions, w.system_attrs, w.intermediate_values = {}, {}, {}, {}
        w.user_attrs = {k: v for k, v in w.user_attrs.items() if k in ("u", "absent")}
    assert fields(got) == fields(want)
    ids = [t._trial_id for t in study.trials]
    assert fields(ours.read_whole(ids)) == fields(theirs.get_trial(i) for i in ids)
    assert fields([ours.get_trial(ids[1])]) == fields([theirs.get_trial(ids[1])])
    theirs.engine.dispose()
    ours.engine.dispose()


@pytest.mark.parametrize("zone", ["America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu", "UTC"])
def test_local_times_as_optunas_across_offset_changes(zone, monkeypatch):
    """_local looks the offset up once per UTC quarter hour; around each zone's 2026 changes (Lord
    Howe's is half an hour, Kathmandu's offset is +5:45) it equals TrialModel's own conversion."""
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    rdb._offset.cache_clear()
    try:
        start = datetime.datetime(2026, 1, 1)
        for minutes in range(0, 366 * 24 * 60, 7):
            utc = start + datetime.timedelta(minutes=minutes, seconds=minutes % 60, microseconds=minutes)
            assert rdb.local_time(utc) == utc.replace(tzinfo=datetime.timezone.utc).astimezone().replace(tzinfo=None), utc
    finally:
        monkeypatch.undo()
        time.tzset()
        rdb._offset.cache_clear()


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_intermediate_values_write_as_optunas(db, tmp_path, request):
    """The same reports through each storage leave the same rows; both refuse a finished trial's
    and an unknown trial's, with the same errors."""
    url = f"sqlite:///{tmp_path / 'w.db'}" if db == "sqlite" else request.getfixturevalue("postgres_url")
    theirs, ours = optuna.storages.RDBStorage(url), CoreReadRDBStorage(url)
    got = {}
    for name, storage in (("theirs", theirs), ("ours", ours)):
        study = optuna.create_study(study_name=f"w-{name}-{tmp_path.name}", storage=storage)
        t = study.ask()
        for step, v in [(0, 0.5), (1, math.inf), (2, -math.inf), (3, math.nan), (1, 0.25), (7, -1.5)]:
            storage.set_trial_intermediate_value(t._trial_id, step, v)  # step 1 twice: replaced
        study.tell(t, 1.0)
        with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
            storage.set_trial_intermediate_value(t._trial_id, 8, 0.1)
        with pytest.raises(KeyError):
            storage.set_trial_intermediate_value(t._trial_id + 1000, 0, 0.1)
        got[name] = repr(theirs.get_trial(t._trial_id).intermediate_values)
    assert got["ours"] == got["theirs"] == repr({0: 0.5, 1: 0.25, 2: -math.inf, 3: math.nan, 7: -1.5})
    theirs.engine.dispose()
    ours.engine.dispose()


def test_open_storage_reads_through_core(tmp_path):
    from search.storage import open_storage
    assert isinstance(open_storage(f"sqlite:///{tmp_path / 'o.db'}"), CoreReadRDBStorage)


@pytest.mark.postgres
def test_postgres_reads_skip_the_transaction_and_leave_the_pool_as_it_was(postgres_url):
    storage = CoreReadRDBStorage(postgres_url)
    with storage.reader() as conn:
        assert conn.connection.driver_connection.autocommit
    with storage.engine.connect() as conn:  # Optuna's own sessions still get transactions
        assert not conn.connection.driver_connection.autocommit
    storage.engine.dispose()
