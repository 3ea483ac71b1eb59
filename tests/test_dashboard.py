"""What optuna-dashboard shows of a sweep's study: the objective's name (not "Objective 0"), the
study's note saying what the sweep was; and `nextsweep dashboard` opened in a real headless Chromium."""

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna_dashboard import get_note

from handmade import well_set
from pgserver import free_port
from search.sweep import SweepOptions, _record_study
from spaces import load_space

REPO = Path(__file__).resolve().parents[1]
SPACE = """
name: dash
data: {synthetic: {users: 12, days: 40, locations: 60, seed: 2}}
objective: {metric: val_hit5, mode: max}
budget: {max_params: 20000, width: d_model}
asha: {max_epochs: 4, grace_period: 1, reduction_factor: 2}
params:
  family: {type: categorical, choices: [gru, transformer]}
  d_model: {type: int, low: 16, high: 64, step: 8}
  lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
"""


def recorded_study(tmp_path: Path, name: str = "dash-study") -> tuple[str, optuna.Study]:
    """A study as `nextsweep sweep` opens it (its _record_study), with hand-made trials."""
    (tmp_path / "space.yaml").write_text(SPACE)
    url = f"sqlite:///{tmp_path / 'dash.db'}"
    opts = SweepOptions(space=str(tmp_path / "space.yaml"), storage=url, study=name, samples=6, sampler="random", seed=3)
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    _record_study(study, opts, load_space(opts.space), "a" * 64)
    return url, well_set(study)


def test_sweep_records_metric_name_and_note(tmp_path):
    url, study = recorded_study(tmp_path)
    study = optuna.load_study(study_name=study.study_name, storage=url)
    assert study.metric_names == ["val_hit5"]
    note = get_note(study)
    for text in ["dash-study", "dash (", "| task | location |", "val_hit5 (max)", "20,000 parameters",
                 "max_epochs 4, grace period 1, reduction factor 2", "a" * 12, "random (seed 3)",
                 "nextsweep sweep", "--samples 6", "user attribute `d_model`"]:
        assert text in note, text
    assert study.user_attrs["sampler"] == "random" and study.user_attrs["command"].startswith("nextsweep sweep ")
    started = study.user_attrs["started"]
    opts = SweepOptions(space=str(tmp_path / "space.yaml"), storage=url, study=study.study_name, samples=9)
    _record_study(study, opts, load_space(opts.space), "a" * 64)  # a resume: the note follows, the start stays
    assert "--samples 9" in get_note(study) and study.user_attrs["started"] == started


def test_resume_names_the_metric_of_an_older_study(tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE)
    url = f"sqlite:///{tmp_path / 'old.db'}"
    study = optuna.create_study(study_name="old", storage=url, direction="maximize")
    assert study.metric_names is None  # as studies from before this change were
    opts = SweepOptions(space=str(tmp_path / "space.yaml"), storage=url, study="old", resume=True)
    _record_study(study, opts, load_space(opts.space), "b" * 64)
    assert optuna.load_study(study_name="old", storage=url).metric_names == ["val_hit5"]


def test_storage_password_stays_out_of_the_note(tmp_path):
    from search.study_record import sweep_command
    opts = SweepOptions(space="s.yaml", storage="postgresql://u:secret@h/db", study="x")
    assert "secret" not in sweep_command(opts) and "postgresql://u:***@h/db" in sweep_command(opts)
    opts = SweepOptions(space="s.yaml", storage="sqlite:///x.db", study="x", overrides=["asha.max_epochs=8"],
                        resume=True)
    assert "--set asha.max_epochs=8 --resume" in sweep_command(opts)
    opts = SweepOptions(space="s.yaml", storage="sqlite:///x.db", study="x", startup_trials=4)
    assert "--startup-trials 4" in sweep_command(opts)


def _wait_for_http(url: str, proc: subprocess.Popen, limit_s: float = 120) -> None:
    """Until the server answers; fails at once if it exits (with its output)."""
    deadline = time.monotonic() + limit_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"nextsweep dashboard exited with {proc.returncode}: {proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"nextsweep dashboard did not answer at {url} within {limit_s:.0f} s")
            time.sleep(0.5)


@pytest.mark.browser
@pytest.mark.slow
def test_dashboard_shows_study_and_metric_name_in_chromium(tmp_path):
    from browser import chromium_page
    url, study = recorded_study(tmp_path, name="dash-browser")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "search.cli", "dashboard", "--storage", url, "--port", str(port)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_http(f"{base}/api/studies", proc)
        with chromium_page() as (page, errors):
            page.goto(f"{base}/dashboard/studies/{study._study_id}")
            page.get_by_text("val_hit5").first.wait_for()
            page.get_by_text("dash-browser").first.wait_for()
            text = page.inner_text("body")
            page.goto(f"{base}/dashboard/studies/{study._study_id}/note")  # the study's note: what the sweep was
            page.get_by_text("nextsweep sweep dash-browser").first.wait_for()
            note = page.inner_text("body")
            page.goto(f"{base}/dashboard/studies/{study._study_id}/trials")  # a trial: the width it trained
            page.get_by_text("User Attributes").first.wait_for()
            trial = page.inner_text("body")
        assert "val_hit5" in text and "dash-browser" in text
        assert "Objective 0" not in text
        assert "random (seed 3)" in note and "the width each trial trained" in note
        assert "d_model_frac" in trial and re.search(r"\bd_model\s+40\b", trial)  # trial 0's fitted width
        assert errors.page == []
    finally:
        os.kill(proc.pid, signal.SIGTERM)  # our own process, by its id
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
