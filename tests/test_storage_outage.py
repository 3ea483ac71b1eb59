"""A PostgreSQL restart in the middle of a sweep with 64 concurrent (simulated) trials: the
driver waits for the server (search/storage_retry.py) and goes on; every trial it handed out is
recorded once, with its outcome, and none is handed out or run twice (issue 46 item 4)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import sqlalchemy as sa
from optuna.trial import TrialState

from pgserver import postgres_server, restart

REPO = Path(__file__).resolve().parents[1]
CONCURRENT = 64
SPACE = """
name: outage
data: {synthetic: {users: 8, days: 60, locations: 40, seed: 0}}
objective: {metric: val_hit5, mode: max}
asha: {max_epochs: 4, grace_period: 1, reduction_factor: 2}
params:
  family: {type: categorical, choices: [gru, transformer]}
  heads: 2
  d_model: {type: int, low: 16, high: 64, step: 8}
  lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
"""


def progress(url: str) -> tuple[int, int]:
    """(trials running, epochs recorded): 0s before the sweep has made its tables."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return (conn.execute(sa.text("SELECT count(*) FROM trials WHERE state = 'RUNNING'")).scalar_one(),
                    conn.execute(sa.text("SELECT count(*) FROM trial_intermediate_values")).scalar_one())
    except sa.exc.SQLAlchemyError:
        return 0, 0
    finally:
        engine.dispose()


def test_a_postgres_restart_mid_sweep_loses_nothing_and_runs_nothing_twice(tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE)
    samples = 2 * CONCURRENT
    with postgres_server() as url:
        sweep = subprocess.Popen(
            [sys.executable, "-m", "search.cli", "sweep", str(tmp_path / "space.yaml"), "--study", "outage",
             "--storage", url, "--dir", str(tmp_path), "--simulate", "--epoch-seconds", "5", "--local-cpus",
             str(CONCURRENT), "--samples", str(samples)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "RAY_AUTH_MODE": "disabled"})
        deadline = time.time() + 600
        # all 64 handed out and their epochs flowing in: the driver writes to the study then
        while progress(url)[1] < CONCURRENT and sweep.poll() is None and time.time() < deadline:
            time.sleep(0.5)
        if progress(url)[0] < CONCURRENT:
            sweep.kill()
            raise AssertionError(f"the sweep never had {CONCURRENT} trials running at once:\n{sweep.communicate()[1][-3000:]}")
        restart(url, down_s=3)
        out, err = sweep.communicate(timeout=900)
        assert sweep.returncode == 0, err[-3000:]
        assert "storage unreachable" in err and "storage back after" in err, err[-3000:]
        trials = optuna.load_study(study_name="outage", storage=url).get_trials(deepcopy=False)
    trained = [t for t in trials if "config" in t.user_attrs]
    assert len(trained) == samples and len(trials) == samples  # no trial lost, none asked twice
    assert {t.state for t in trained} <= {TrialState.COMPLETE, TrialState.PRUNED}, [t.state for t in trained]
    assert len({t.user_attrs["ray_trial_id"] for t in trained}) == samples  # each Tune trial once
    assert sorted(t.number for t in trials) == list(range(samples))
    for t in trained:  # every epoch each trial ran is recorded, the curve unbroken
        assert sorted(t.intermediate_values) == list(range(1, t.user_attrs["epochs_run"] + 1)), t.number
