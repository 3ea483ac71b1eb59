"""Optuna's RDBStorage with its trial reads done as plain SQL (SQLAlchemy Core) instead of
through the ORM; its writes that are plain SQL too are in rdb_writes.py.

Optuna's cached storage syncs before every suggestion: it re-reads the trials that were running
and any new ones (`RDBStorage._get_trials`). Through the ORM that is 7 queries building mapped
objects, ~8 ms on PostgreSQL for one finished trial, a sixth of a suggestion; `get_trial` (each
tell reads the trial back twice) lazy-loads 5 relationships. Here the same rows come as tuples
from two queries (the trials, then their side tables in one UNION ALL, by trial id); the
FrozenTrials built are equal to Optuna's own (tests/test_rdb.py). The driver's most frequent
write, an epoch's intermediate value, goes to rdb_writes.write_step. Everything else is Optuna's
RDBStorage. A results command reads fewer fields of a large study (Fields, read_fields) and counts
over it in rdb_summaries.py.

All of it was written against the tables of optuna 5.0.0 (schema revision TESTED_SCHEMA, naive UTC
datetimes) on SQLite and PostgreSQL: search/storage.py opens and writes through Optuna's own
RDBStorage anywhere else.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Container
from dataclasses import dataclass

import optuna
import sqlalchemy as sa
from optuna import distributions
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState

from search.internals.rdb_writes import write_step

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


@dataclass(frozen=True)
class Fields:
    """What a read fills in beside each trial's number, state, dates and values. Optuna, the
    searcher and the driver read everything (ALL); a results command reading 50,000 trials asks
    for the few user attributes it shows (a sweep stores ~18 a trial), no params and no curves
    (search.study_reads.trials_showing)."""
    user: frozenset[str] | None = None  # the user attributes read (None: all)
    params: bool = True
    system: bool = True
    steps: bool = True  # intermediate values


ALL = Fields()


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
        with self.reader() as conn:
            found = _read(conn, where, ALL)
            if not found:
                studies = models.StudyModel.__table__
                if conn.execute(sa.select(studies.c.study_id).where(studies.c.study_id == study_id)).first() is None:
                    raise KeyError(models.NOT_FOUND_MSG)
        return found

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        """As RDBStorage's (search/internals/rdb_writes.py: write_step)."""
        write_step(self, trial_id, step, intermediate_value)

    def reader(self):
        """A connection for reads. On PostgreSQL in autocommit: without it each read pays two more
        round trips (BEGIN, and the pool's ROLLBACK), and its statements see separate snapshots
        anyway under READ COMMITTED. SQLite keeps its transaction: one snapshot for both reads."""
        conn = self.engine.connect()
        if self.engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        return conn

    def get_trial(self, trial_id: int) -> FrozenTrial:
        """As RDBStorage.get_trial (what the cached storage asks for a trial it holds as running)."""
        found = self.read_whole([trial_id])
        if not found:
            raise KeyError(models.NOT_FOUND_MSG)
        return found[0]

    def read_whole(self, trial_ids: list[int]) -> list[FrozenTrial]:
        """The trials `trial_ids` with every field, ordered by id."""
        with self.reader() as conn:
            return _read(conn, models.TrialModel.__table__.c.trial_id.in_(trial_ids), ALL)

    def read_fields(self, study_id: int, states: Container[TrialState] | None, fields: Fields) -> list[FrozenTrial]:
        """The study's trials in `states` (None: all), ordered by id, holding only `fields`."""
        trials = models.TrialModel.__table__
        where = trials.c.study_id == study_id
        if states is not None:
            where &= trials.c.state.in_(list(states))
        with self.reader() as conn:
            return _read(conn, where, fields)


def _read(conn, where, fields: Fields) -> list[FrozenTrial]:
    """The trials `where` selects, ordered by id, with the `fields` stored beside them."""
    trials = models.TrialModel.__table__
    rows = conn.execute(sa.select(trials.c.trial_id, trials.c.number, trials.c.state, trials.c.datetime_start,
                                  trials.c.datetime_complete).where(where).order_by(trials.c.trial_id)).all()
    params, values, user, system, steps = _read_children(conn, [r.trial_id for r in rows], fields)
    out = []
    for trial_id, number, state, start, complete in rows:  # (a Row's attributes cost 0.1 s at 50,000)
        mine = sorted(params.get(trial_id, ()))  # by param_id, as Optuna
        dists = {name: _distribution(text) for _, name, _, text in mine}
        got = values.get(trial_id)
        out.append(FrozenTrial(
            number=number, state=state, value=None, values=[got[k] for k in sorted(got)] if got else None,
            datetime_start=local_time(start), datetime_complete=local_time(complete),
            params={name: dists[name].to_external_repr(value) for _, name, value, _ in mine},
            distributions=dists, user_attrs=user.get(trial_id, {}), system_attrs=system.get(trial_id, {}),
            intermediate_values=steps.get(trial_id, {}), trial_id=trial_id))
    return out


@functools.lru_cache(maxsize=4096)
def _distribution(text: str) -> distributions.BaseDistribution:
    """Decoded once per distinct JSON: a study's trials share a few (Optuna never mutates one)."""
    return distributions.json_to_distribution(text)


@functools.lru_cache(maxsize=65536)
def _scalar(text: str):
    return json.loads(text)


def stored_json(text: str):
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


def _read_children(conn, ids: list[int], fields: Fields) -> tuple[dict, ...]:
    """The `fields` (values always) of the trials `ids`, one query per _chunk() of them, as five
    dicts by trial id: params (a list of (param_id, name, value, distribution)), values, user and
    system attributes and intermediate values (dicts). A trial without such rows has no entry.
    Rows come as the driver's tuples: SQLAlchemy's per-row processing doubled a 50,000-trial read,
    and these columns need none (the enums are read as text, below)."""
    values_enum = models.TrialValueModel.TrialValueType
    steps_enum = models.TrialIntermediateValueModel.TrialIntermediateValueType
    params, values, user, system, steps = {}, {}, {}, {}, {}
    chunk, query = _chunk(conn.dialect), _children(fields)
    for start in range(0, len(ids), chunk):
        for trial_id, kind, n, name, num, text in conn.execute(query, {"ids": ids[start:start + chunk]}).cursor:
            if kind == USER:
                _of(user, trial_id, dict)[name] = stored_json(text)
            elif kind == VALUE:
                _of(values, trial_id, dict)[n] = _VALUE(num, values_enum[text])
            elif kind == PARAM:
                _of(params, trial_id, list).append((n, name, num, text))
            elif kind == SYSTEM:
                _of(system, trial_id, dict)[name] = stored_json(text)
            else:
                _of(steps, trial_id, dict)[n] = _STEP_VALUE(num, steps_enum[text])
    return params, values, user, system, steps


def _of(by_trial: dict, trial_id: int, new: type):
    """by_trial[trial_id], made with new() if absent."""
    found = by_trial.get(trial_id)
    if found is None:
        found = by_trial[trial_id] = new()
    return found


@functools.cache
def _children(fields: Fields):
    """UNION ALL of the side tables `fields` names as (trial_id, kind, number, name, float, text)
    for the trial ids bound as `ids`, in no set order: _read orders the params by id, and Optuna's
    own reads set none for the rest (SQLite gives a trial's attributes by key, through their
    unique index). Built once per `fields`: composing it costs more than running it."""
    m = models
    ids = sa.bindparam("ids", expanding=True)
    no_int, no_name, no_num = sa.cast(sa.null(), sa.Integer), sa.cast(sa.null(), sa.String), sa.cast(sa.null(), sa.Float)

    def part(t, kind, n, name, num, text):
        return sa.select(t.c.trial_id, sa.literal_column(str(kind), sa.Integer).label("kind"), n.label("n"),
                         name.label("name"), num.label("num"), sa.cast(text, sa.Text).label("text")
                         ).where(t.c.trial_id.in_(ids))

    p, v, u = m.TrialParamModel.__table__, m.TrialValueModel.__table__, m.TrialUserAttributeModel.__table__
    s, i = m.TrialSystemAttributeModel.__table__, m.TrialIntermediateValueModel.__table__
    user = part(u, USER, no_int, u.c.key, no_num, u.c.value_json)
    parts = [part(v, VALUE, v.c.objective, no_name, v.c.value, v.c.value_type),
             user if fields.user is None else user.where(u.c.key.in_(sorted(fields.user)))]
    if fields.params:
        parts.append(part(p, PARAM, p.c.param_id, p.c.param_name, p.c.param_value, p.c.distribution_json))
    if fields.system:
        parts.append(part(s, SYSTEM, no_int, s.c.key, no_num, s.c.value_json))
    if fields.steps:
        parts.append(part(i, STEP, i.c.step, no_name, i.c.intermediate_value, i.c.intermediate_value_type))
    return sa.union_all(*parts)


def local_time(utc: datetime.datetime | None) -> datetime.datetime | None:
    """Stored naive UTC -> naive local time, as TrialModel's datetime properties."""
    return None if utc is None else utc + _offset(utc.replace(minute=utc.minute - utc.minute % 15, second=0, microsecond=0))


@functools.lru_cache(maxsize=4096)
def _offset(quarter: datetime.datetime) -> datetime.timedelta:
    """Local time's offset from UTC at `quarter` (naive UTC, on a quarter hour), looked up once per
    quarter hour: astimezone() per trial was a fifth of a 50,000-trial read. Offsets are whole
    quarter hours and change at local whole or half hours, so on UTC quarter hours too."""
    return quarter.replace(tzinfo=datetime.timezone.utc).astimezone().replace(tzinfo=None) - quarter
