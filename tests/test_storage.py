"""Study storage: two sweeps sharing one PostgreSQL database, and bad URLs failing fast."""

import subprocess
import sys
import time

import optuna
import pytest

from search.cli import main

SPACE = """
name: shared
data: {synthetic: {users: 8, days: 40, locations: 40, seed: 4}}
budget: {max_params: 15000}
asha: {max_epochs: 2, grace_period: 2}
params:
  family: gru
  d_model: {type: int, low: 16, high: 48, step: 8}
  lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
"""


@pytest.mark.postgres
@pytest.mark.ray
@pytest.mark.slow
def test_two_sweeps_in_one_database_do_not_interfere(tmp_path, postgres_url):
    (tmp_path / "space.yaml").write_text(SPACE)
    procs = {name: subprocess.Popen(
        [sys.executable, "-m", "search.cli", "sweep", str(tmp_path / "space.yaml"), "--storage", postgres_url,
         "--study", name, "--samples", str(n), "--seed", str(n), "--dir", str(tmp_path / name)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for name, n in (("left", 3), ("right", 4))}
    for name, proc in procs.items():  # both ran at the same time against the same database
        out = proc.communicate(timeout=400)[0]
        assert proc.returncode == 0, out[-3000:]
    for name, n in (("left", 3), ("right", 4)):
        study = optuna.load_study(study_name=name, storage=postgres_url)
        trials = [t for t in study.get_trials() if "config" in t.user_attrs]
        assert len(trials) == n and all(t.state.is_finished() for t in trials)
        assert [t.number for t in study.get_trials()] == list(range(len(study.get_trials())))
        assert study.user_attrs["samples"] == n


@pytest.mark.parametrize("url, reason", [
    ("postgresql://nobody@127.0.0.1:1/none", "cannot connect"),
    ("nosuchdb://x/y", "cannot connect"),
])
def test_bad_storage_fails_fast_with_one_line(tmp_path, capsys, url, reason):
    (tmp_path / "space.yaml").write_text(SPACE)
    start = time.time()
    assert main(["sweep", str(tmp_path / "space.yaml"), "--storage", url, "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and reason in err and "Traceback" not in err, err
    assert time.time() - start < 60  # a hang guard (retries, a missing connect timeout), not a speed test: the port refuses at once
    assert not list(tmp_path.glob("*/ray-*")), "no trial may start"


def test_password_is_not_printed(tmp_path, capsys):
    (tmp_path / "space.yaml").write_text(SPACE)
    assert main(["sweep", str(tmp_path / "space.yaml"), "--storage", "postgresql://u:secret@127.0.0.1:1/db"]) == 2
    err = capsys.readouterr().err
    assert "secret" not in err and "u:***@127.0.0.1:1/db" in err


def test_trial_attributes_are_written_in_one_transaction(tmp_path):
    from search.storage import open_storage, set_trial_attrs
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=open_storage(url))
    trial = study.ask()
    trial.set_user_attr("n_params", 1)
    statements = []
    engine = study._storage._backend.engine
    listen = lambda *args: statements.append(args[2])  # noqa: E731 (before_cursor_execute: statement)
    import sqlalchemy
    sqlalchemy.event.listen(engine, "before_cursor_execute", listen)
    set_trial_attrs(trial, {"n_params": 2, "config": "{}", "best": {"val_hit5": 0.5}})
    sqlalchemy.event.remove(engine, "before_cursor_execute", listen)
    assert len(statements) <= 5, statements  # the state, the attributes there, one update, the inserts
    assert trial.user_attrs == {"n_params": 2, "config": "{}", "best": {"val_hit5": 0.5}}
    again = optuna.load_study(study_name=study.study_name, storage=url).trials[0]
    assert again.user_attrs == trial.user_attrs
    study.tell(trial, 1.0)
    with pytest.raises(RuntimeError, match="finished"):
        set_trial_attrs(trial, {"late": 1})  # as Optuna's own set_user_attr refuses


def test_sqlite_commits_do_not_wait_for_the_disk(tmp_path):
    from search.storage import open_storage
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    with storage.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_insert_trials_stores_what_add_trials_stores(tmp_path, db, request):
    from optuna.trial import TrialState

    from search.storage import insert_trials, open_storage
    src = optuna.create_study(direction="maximize")
    for i in range(7):
        t = src.ask()
        t.suggest_float("x", 0.0, 1.0)
        t.suggest_categorical("c", ["a", "b"])
        t.suggest_int("n", 1, 9, log=True)
        t.set_user_attr("u", {"i": i})
        t.storage.set_trial_system_attr(t._trial_id, "s", [i])
        t.report(0.1 * i, 1)
        state = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL][i % 3]
        src.tell(t, float(i) if state == TrialState.COMPLETE else None, state=state)
    url = f"sqlite:///{tmp_path / 'i.db'}" if db == "sqlite" else request.getfixturevalue("postgres_url")
    by_optuna = optuna.create_study(study_name=f"a-{tmp_path.name}", storage=open_storage(url), direction="maximize")
    ours = optuna.create_study(study_name=f"b-{tmp_path.name}", storage=open_storage(url), direction="maximize")
    by_optuna.add_trials(src.trials)
    assert insert_trials(ours, []) == [] and ours.trials == []
    ids = insert_trials(ours, src.trials)
    assert [n for _, n in ids] == list(range(7))
    fields = lambda t: (t.number, t.state, t.values, t.params, t.distributions, t.user_attrs, t.system_attrs,  # noqa: E731
                        t.intermediate_values, t.datetime_start, t.datetime_complete)
    assert [fields(t) for t in ours.trials] == [fields(t) for t in by_optuna.trials]


def test_postgres_connections_are_a_small_fixed_pool(postgres_url):
    """Only the driver talks to the database (workers never do): at most PG_POOL connections per
    process, whatever the cluster's size. Many writes through one storage never open more."""
    import sqlalchemy

    from search.storage import APP_NAME, PG_POOL, open_storage
    probe = sqlalchemy.create_engine(postgres_url, poolclass=sqlalchemy.pool.NullPool)

    def ours() -> int:  # earlier tests' idle pools stay as they are while this one runs
        with probe.connect() as c:
            return c.execute(sqlalchemy.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :a"),
                             {"a": APP_NAME}).scalar()
    before = ours()
    storage = open_storage(postgres_url)
    assert storage.engine.pool.size() == PG_POOL
    study = optuna.create_study(storage=storage, study_name=f"pool-{time.time_ns()}")
    for _ in range(20):
        t = study.ask()
        t.set_user_attr("k", 1)
        study.tell(t, 1.0)
    assert 1 <= ours() - before <= PG_POOL
    storage.engine.dispose()
