"""Optuna's RDBStorage with its trial reads done as plain SQL (SQLAlchemy Core) instead of
through the ORM; its writes that are plain SQL too are in rdb_writes.py.

Optuna's cached storage syncs before every suggestion: it re-reads the trials that were running
and any new ones (`RDBStorage._get_trials`). Through the ORM that is 7 queries building mapped
objects, ~8 ms on PostgreSQL for one finished trial, a sixth of a suggestion; `get_trial` (each
tell reads the trial back twice) lazy-loads 5 relationships. Here the same rows come as tuples
from two queries (the trials, then their side tables in one UNION ALL, by trial id); the
FrozenTrials built are equal to Optuna's own (tests/test_rdb.py). The driver's most frequent
write, an epoch's intermediate value, goes to rdb_writes.write_step. Everything else is Optuna's
RDBStorage.

All of it was written against the tables of optuna 5.0.0 (schema revision TESTED_SCHEMA, naive UTC
datetimes) on SQLite and PostgreSQL: search/storage.py opens and writes through Optuna's own
RDBStorage anywhere else.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Container

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
        """As RDBStorage's (search/internals/rdb_writes.py: write_step)."""
        write_step(self, trial_id, step, intermediate_value)

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


def _local(utc: datetime.datetime | None) -> datetime.datetime | None:
    """Stored naive UTC -> naive local time, as TrialModel's datetime properties."""
    return None if utc is None else utc.replace(tzinfo=datetime.timezone.utc).astimezone().replace(tzinfo=None)
