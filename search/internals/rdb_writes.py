"""The writes on Optuna's tables that nextsweep does as plain SQL (SQLAlchemy Core), for
CoreReadRDBStorage (rdb.py) and search/storage.py: an epoch's intermediate value (write_step,
the driver's most frequent write: through Optuna's ORM 4 statements, a flush and ~2 ms of the
driver's CPU; here 3 cached statements, with Optuna's checks), trials stored in bulk
(insert_rows), user attributes upserted in one transaction (set_running_attrs), and on a finished
trial, which Optuna's API refuses (upsert_user_attrs: `nextsweep confirm` has no stock path).
Written against the tables of optuna 5.0.0, as rdb.py's reads; tests/test_rdb.py and
tests/test_storage*.py compare the rows with Optuna's own.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Callable

import optuna
import sqlalchemy as sa
from optuna import distributions
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial


def write_step(rdb: optuna.storages.RDBStorage, trial_id: int, step: int, intermediate_value: float) -> None:
    """As RDBStorage.set_trial_intermediate_value: refused on a finished trial (and a KeyError for
    an unknown one); a step reported again replaces its value."""
    check, update, insert = _step_statements()
    value, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(intermediate_value)
    row = {"tid": trial_id, "at": step, "value": value, "kind": kind}
    with rdb.engine.begin() as conn:
        state = conn.execute(check, row).scalar()
        if state is None:
            raise KeyError(models.NOT_FOUND_MSG)
        rdb.check_trial_is_updatable(trial_id, state)
        if conn.execute(update, row).rowcount == 0:
            conn.execute(insert, row)


@functools.cache
def _step_statements():
    """A trial's state; an intermediate value's update; its insert (bound: tid, at, value, kind)."""
    trials, steps = models.TrialModel.__table__, models.TrialIntermediateValueModel.__table__
    tid, step = sa.bindparam("tid"), sa.bindparam("at")
    value = {"intermediate_value": sa.bindparam("value"), "intermediate_value_type": sa.bindparam("kind")}
    return (sa.select(trials.c.state).where(trials.c.trial_id == tid),
            sa.update(steps).where(steps.c.trial_id == tid, steps.c.step == step).values(**value),
            sa.insert(steps).values(trial_id=tid, step=step, **value))


def insert_rows(rdb: optuna.storages.RDBStorage, study_id: int, trials: list[FrozenTrial],
                numbered: Callable[[int], dict] | None) -> list[tuple[int, int]]:
    """(trial id, number) of each trial, stored as given in one transaction: the study's lock
    taken (Optuna's lock for numbering), a count, the trials' rows, then each side table's rows
    in one statement. `numbered(number)` adds user attributes to each trial from its number."""
    if not trials:  # (an insert of no rows would be one row of defaults)
        return []
    trials_t = models.TrialModel.__table__
    with rdb.engine.begin() as conn:
        _lock_study(conn, study_id)
        first = conn.execute(sa.select(sa.func.count(trials_t.c.trial_id)).where(
            trials_t.c.study_id == study_id)).scalar_one()
        rows = [{"study_id": study_id, "number": first + i, "state": t.state,
                 "datetime_start": _utc(t.datetime_start), "datetime_complete": _utc(t.datetime_complete)}
                for i, t in enumerate(trials)]
        ids = _insert_trial_rows(conn, rows)
        for t, row in zip(trials, rows):
            t.user_attrs.update(numbered(row["number"]) if numbered else {})
        for model, values in _trial_rows(ids, trials).items():
            if values:
                conn.execute(sa.insert(model.__table__), values)
    return [(i, row["number"]) for i, row in zip(ids, rows)]


def set_running_attrs(rdb: optuna.storages.RDBStorage, trial: optuna.Trial, attrs: dict) -> None:
    """Several user attributes of a running trial in one transaction, kept in the trial's own copy
    too (as Trial.set_user_attr keeps it)."""
    upsert_user_attrs(rdb, trial._trial_id, attrs, running_only=True)
    trial._cached_frozen_trial.user_attrs.update(attrs)


def upsert_user_attrs(rdb: optuna.storages.RDBStorage, trial_id: int, attrs: dict, running_only: bool = False) -> None:
    """Insert or update user attribute rows of a trial; `running_only`: refused as Optuna refuses
    a finished trial's, checked without loading the whole trial."""
    with _create_scoped_session(rdb.scoped_session) as session:
        if running_only:
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


def _lock_study(conn, study_id: int) -> None:
    """Hold the lock that numbers the study's trials until the transaction ends. PostgreSQL locks
    the study's row; SQLite ignores FOR UPDATE, and pysqlite starts no transaction for a SELECT:
    two drivers would count the same trials. BEGIN IMMEDIATE takes the database's write lock
    before the count (as Optuna's own INSERT-then-count holds it)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    studies = models.StudyModel.__table__
    if conn.execute(sa.select(studies.c.study_id).where(studies.c.study_id == study_id).with_for_update()
                    ).first() is None:
        raise KeyError(models.NOT_FOUND_MSG)


def _insert_trial_rows(conn, rows: list[dict]) -> list[int]:
    """The ids the trials' `rows` get: from one INSERT ... RETURNING where the backend has it
    (SQLite from 3.35, PostgreSQL), else from one INSERT per trial."""
    trials_t = models.TrialModel.__table__
    if conn.dialect.insert_executemany_returning_sort_by_parameter_order:
        return conn.execute(sa.insert(trials_t).returning(trials_t.c.trial_id, sort_by_parameter_order=True),
                            rows).scalars().all()
    return [conn.execute(sa.insert(trials_t), row).inserted_primary_key[0] for row in rows]


def _trial_rows(ids: list[int], trials: list[FrozenTrial]) -> dict:
    """The rows of the tables beside `trials`, per model, of trials stored under `ids`."""
    rows: dict = {models.TrialParamModel: [], models.TrialUserAttributeModel: [], models.TrialSystemAttributeModel: [],
                  models.TrialValueModel: [], models.TrialIntermediateValueModel: []}
    for tid, t in zip(ids, trials):
        rows[models.TrialParamModel] += [
            {"trial_id": tid, "param_name": name, "param_value": dist.to_internal_repr(t.params[name]),
             "distribution_json": distributions.distribution_to_json(dist)} for name, dist in t.distributions.items()]
        rows[models.TrialUserAttributeModel] += [{"trial_id": tid, "key": k, "value_json": json.dumps(v)}
                                                 for k, v in t.user_attrs.items()]
        rows[models.TrialSystemAttributeModel] += [{"trial_id": tid, "key": k, "value_json": json.dumps(v)}
                                                   for k, v in t.system_attrs.items()]
        for objective, value in enumerate(t.values or []):
            stored, kind = models.TrialValueModel.value_to_stored_repr(value)
            rows[models.TrialValueModel].append({"trial_id": tid, "objective": objective, "value": stored,
                                                 "value_type": kind})
        for step, value in t.intermediate_values.items():
            stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
            rows[models.TrialIntermediateValueModel].append({"trial_id": tid, "step": step, "intermediate_value": stored,
                                                             "intermediate_value_type": kind})
    return rows


def _utc(local: datetime.datetime | None) -> datetime.datetime | None:
    """A datetime -> naive UTC, as TrialModel's datetime setters store it."""
    return None if local is None else local.astimezone(datetime.timezone.utc).replace(tzinfo=None)
