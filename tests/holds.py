"""Stopping a sweep at a point the test chooses instead of racing it: with
search.trainable.HOLD_ENV set, every trial waits after its hold epoch until the test releases it
by its Ray trial id (or releases all). A state the test waits for (two trials finished, one
mid-run) then stays put until the test acts, however fast or slow the machine is."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from optuna.trial import TrialState

from search.trainable import HOLD_ENV


def hold_env(folder: Path, epoch: int = 1) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    return {HOLD_ENV: f"{epoch}:{folder}"}


def release(folder: Path, trials=None) -> None:
    """Lets the given trials (FrozenTrials with a ray_trial_id) go on; all trials when None."""
    for name in ["all"] if trials is None else [t.user_attrs["ray_trial_id"] for t in trials]:
        (folder / name).touch()


def held(trials, epoch: int = 1) -> list:
    """The trials waiting at the hold: running, with exactly the hold epoch's value recorded."""
    return [t for t in trials if t.state == TrialState.RUNNING and len(t.intermediate_values) == epoch
            and "ray_trial_id" in t.user_attrs]


def wait_for(pred, timeout: float, what: str, proc: subprocess.Popen):
    """pred()'s first truthy value; fails at once if the sweep proc exits first. With holds the
    state waited for cannot pass by between two polls; the timeout only bounds a broken build."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            value = pred()
        except Exception:  # the study may not exist yet
            value = None
        if value:
            return value
        if proc.poll() is not None:
            out = proc.stdout.read()[-3000:] if proc.stdout else ""
            raise AssertionError(f"the sweep exited (code {proc.returncode}) before {what}: {out}")
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def finish_then_hold(gate: Path, trials, proc: subprocess.Popen, finished: int, timeout: float = 300) -> list:
    """Releases held trials one at a time until `finished` of them have finished, then returns
    the trials held mid-run (at least one): a state that stays put until the test acts.
    `trials()` reads the study's handed-out trials."""
    for _ in range(finished):
        first = wait_for(lambda: held(trials())[:1], timeout, "a trial at the hold", proc)[0]
        release(gate, [first])
        wait_for(lambda: any(t.number == first.number and t.state.is_finished() for t in trials()),
                 timeout, f"released trial {first.number} to finish", proc)
    return wait_for(lambda: held(trials()), timeout, "a trial held mid-run", proc)
