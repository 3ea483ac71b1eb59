"""Optuna's RDBStorage with its trial reads, and our bulk trial inserts, done as plain SQL
(SQLAlchemy Core) instead of through the ORM.

Optuna's cached storage syncs before every suggestion: it re-reads the trials that were running
and any new ones (`RDBStorage._get_trials`). Through the ORM that is 7 queries building mapped
objects, ~8 ms on PostgreSQL for one finished trial, a sixth of a suggestion; `get_trial` (each
tell reads the trial back twice) lazy-loads 5 relationships. Here the same rows come as tuples
from two queries (the trials, then their side tables in one UNION ALL, by trial id); the
FrozenTrials built are equal to Optuna's own (tests/test_rdb.py). The driver's most frequent
write, an epoch's intermediate value, is plain SQL too, with Optuna's checks. Everything else is
Optuna's RDBStorage. Also here: user attributes upserted in one transaction (set_running_attrs), and on a
finished trial, which Optuna's API refuses (upsert_user_attrs: `nextsweep confirm` has no stock path).

All of it was written against the tables of optuna 5.0.0 (schema revision TESTED_SCHEMA, naive UTC
datetimes) on SQLite and PostgreSQL: search/storage.py opens and writes through Optuna's own
RDBStorage anywhere else.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Callable, Container

import optuna
import sqlalchemy as sa
from optuna import distributions
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState

TESTED_SCHEMA = "v3.2.0.a"  # RDBStorage.get_head_version() of optuna 5.0.0: the tables this SQL knows
TESTED_BACKENDS = ("sqlite", "postgresql")

_VALUE = models.TrialValueModel.stored_repr_to_value
_STEP_VALUE = models.TrialIntermediateValueModel.stored_repr_to_intermediate_value


def untested_backend(url: str) -> str | None:
    """Why this SQL may not run on the database of `url` (None: it may). MySQL, for one, has no
    INSERT ... RETURNING and was never run against."""
    backend = sa.engine.make_url(url).get_backend_name()
    return None if backend in TESTED_BACKENDS else f"the {backend} backend"


def untested_schema(storage: optuna.storages.RDBStorage) -> str | None:
    """Why this SQL may not run on the tables of `storage` (None: it may)."""
    revision = storage.get_current_version()
    return None if revision == TESTED_SCHEMA else f"schema revision {revision} (tested: {TESTED_SCHEMA})"


class CoreReadRDBStorage(optuna.storages.RDBStorage):
    def _get_trials(self, study_id: int, states: Container[TrialState] | None, included_trial_ids: set[int],
                    trial_id_greater_than: int) -> list[FrozenTrial]:
        """As RDBStorage._get_trials: the study's trials with an id above `trial_id_greater_than`
        or in `included_trial_ids` (those at or below it), in `states`, ordered by id."""
        trials = models.TrialModel.__table__
        included = {i for i in included_trial_ids if i <= trial_id_greater_than}
        where = trials.c.study_id == study_id
        if states is not None:
            where &= trials.c.state.in_(list(states))
        if trial_id_greater_than > -1:
            newer = trials.c.trial_id > trial_id_greater_than
            where &= sa.or_(trials.c.trial_id.in_(included), newer) if included else newer
        with self._reader() as conn:
            found = _read(conn, where)
            if not found:
                studies = models.StudyModel.__table__
                if conn.execute(sa.select(studies.c.study_id).where(studies.c.study_id == study_id)).first() is None:
                    raise KeyError(models.NOT_FOUND_MSG)
        return found

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        """As RDBStorage's: refused on a finished trial, a step reported again replaces its value.
        Every epoch of every running trial comes here, the driver's most frequent write: through
        the ORM it is 4 statements, a flush and ~2 ms of the driver's CPU; here 3 cached ones."""
        check, update, insert = _step_statements()
        value, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(intermediate_value)
        row = {"tid": trial_id, "at": step, "value": value, "kind": kind}
        with self.engine.begin() as conn:
            state = conn.execute(check, row).scalar()
            if state is None:
                raise KeyError(models.NOT_FOUND_MSG)
            self.check_trial_is_updatable(trial_id, state)
            if conn.execute(update, row).rowcount == 0:
                conn.execute(insert, row)

    def _reader(self):
        """A connection for reads. On PostgreSQL in autocommit: without it each read pays two more
        round trips (BEGIN, and the pool's ROLLBACK), and its statements see separate snapshots
        anyway under READ COMMITTED. SQLite keeps its transaction: one snapshot for both reads."""
        conn = self.engine.connect()
        if self.engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        return conn

    def get_trial(self, trial_id: int) -> FrozenTrial:
        """As RDBStorage.get_trial (what the cached storage asks for a trial it holds as running)."""
        with self._reader() as conn:
            found = _read(conn, models.TrialModel.__table__.c.trial_id == trial_id)
        if not found:
            raise KeyError(models.NOT_FOUND_MSG)
        return found[0]


def _read(conn, where) -> list[FrozenTrial]:
    """The trials `where` selects, ordered by id, with everything stored beside them."""
    trials = models.TrialModel.__table__
    rows = conn.execute(sa.select(trials.c.trial_id, trials.c.number, trials.c.state, trials.c.datetime_start,
                                  trials.c.datetime_complete).where(where).order_by(trials.c.trial_id)).all()
    parts = {r.trial_id: _Parts() for r in rows}
    _read_children(conn, [r.trial_id for r in rows], parts)
    return [parts[r.trial_id].frozen(r) for r in rows]


class _Parts:
    """One trial's rows from the tables beside `trials`."""

    def __init__(self):
        self.params, self.values, self.user, self.system, self.steps = [], {}, {}, {}, {}

    def frozen(self, row) -> FrozenTrial:
        params = sorted(self.params)  # by param_id, as Optuna
        dists = {name: _distribution(text) for _, name, _, text in params}
        values = [self.values[k] for k in sorted(self.values)] if self.values else None
        return FrozenTrial(
            number=row.number, state=row.state, value=None, values=values,
            datetime_start=_local(row.datetime_start), datetime_complete=_local(row.datetime_complete),
            params={name: dists[name].to_external_repr(value) for _, name, value, _ in params},
            distributions=dists, user_attrs=self.user, system_attrs=self.system,
            intermediate_values=self.steps, trial_id=row.trial_id)


@functools.lru_cache(maxsize=4096)
def _distribution(text: str) -> distributions.BaseDistribution:
    """Decoded once per distinct JSON: a study's trials share a few (Optuna never mutates one)."""
    return distributions.json_to_distribution(text)


@functools.lru_cache(maxsize=65536)
def _scalar(text: str):
    return json.loads(text)


def _json(text: str):
    """A stored attribute: a scalar (immutable, so shared) decoded once per distinct text; a dict
    or list afresh, since callers may change it. Half a large study's read was these decodes."""
    return json.loads(text) if text[:1] in "{[" else _scalar(text)


PARAM, VALUE, USER, SYSTEM, STEP = range(5)  # the side tables, as numbered in _children's rows
CHUNK = 1000  # trial ids per side-table query at most (each bound once per side table)


def _chunk(dialect) -> int:
    """Trial ids per side-table query: 5 bound values each, under the backend's limit on bound
    values a statement (SQLAlchemy's figure for it: 999 before SQLite 3.32, 32,700 otherwise); the
    kinds are inline constants, not bound."""
    return max(1, min(CHUNK, dialect.insertmanyvalues_max_parameters // 5))


def _read_children(conn, ids: list[int], parts: dict[int, _Parts]) -> None:
    """Params, values, attributes and intermediate values of the trials `ids`, one query per
    _chunk() of them."""
    values_enum = models.TrialValueModel.TrialValueType
    steps_enum = models.TrialIntermediateValueModel.TrialIntermediateValueType
    chunk = _chunk(conn.dialect)
    for start in range(0, len(ids), chunk):
        for trial_id, kind, _, n, name, num, text in conn.execute(_children(), {"ids": ids[start:start + chunk]}):
            p = parts[trial_id]
            if kind == PARAM:
                p.params.append((n, name, num, text))
            elif kind == VALUE:
                p.values[n] = _VALUE(num, values_enum[text])
            elif kind == USER:
                p.user[name] = _json(text)
            elif kind == SYSTEM:
                p.system[name] = _json(text)
            else:
                p.steps[n] = _STEP_VALUE(num, steps_enum[text])


@functools.cache
def _children():
    """UNION ALL of the side tables as (trial_id, kind, row id, number, name, float, text) for the
    trial ids bound as `ids`, in the order each table's rows were written (as Optuna's
    relationships read them). Built once: composing it costs more than running it."""
    m = models
    ids = sa.bindparam("ids", expanding=True)
    no_int, no_name, no_num = sa.cast(sa.null(), sa.Integer), sa.cast(sa.null(), sa.String), sa.cast(sa.null(), sa.Float)

    def part(t, kind, n, name, num, text):
        return sa.select(t.c.trial_id, sa.literal_column(str(kind), sa.Integer).label("kind"),
                         next(iter(t.primary_key.columns)).label("k"), n.label("n"), name.label("name"),
                         num.label("num"), sa.cast(text, sa.Text).label("text")).where(t.c.trial_id.in_(ids))

    p, v, u = m.TrialParamModel.__table__, m.TrialValueModel.__table__, m.TrialUserAttributeModel.__table__
    s, i = m.TrialSystemAttributeModel.__table__, m.TrialIntermediateValueModel.__table__
    return sa.union_all(
        part(p, PARAM, p.c.param_id, p.c.param_name, p.c.param_value, p.c.distribution_json),
        part(v, VALUE, v.c.objective, no_name, v.c.value, v.c.value_type),
        part(u, USER, no_int, u.c.key, no_num, u.c.value_json),
        part(s, SYSTEM, no_int, s.c.key, no_num, s.c.value_json),
        part(i, STEP, i.c.step, no_name, i.c.intermediate_value, i.c.intermediate_value_type),
    ).order_by(sa.literal_column("kind"), sa.literal_column("k"))


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


def _local(utc: datetime.datetime | None) -> datetime.datetime | None:
    """Stored naive UTC -> naive local time, as TrialModel's datetime properties."""
    return None if utc is None else utc.replace(tzinfo=datetime.timezone.utc).astimezone().replace(tzinfo=None)
