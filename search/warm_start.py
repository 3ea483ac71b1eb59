"""Warm starts (`sweep --enqueue EXPORT.yaml`): the exports' Optuna parameters are read and checked
against the space before anything starts, then enqueued so Optuna hands them out before it samples
(the budget check still applies, as to any proposal)."""

from __future__ import annotations

from pathlib import Path

import optuna

from search.errors import SearchError
from spaces import CompiledSpace


def read_enqueued(paths: list[str]) -> list[tuple[str, dict]]:
    """(file, Optuna params) of each --enqueue export, read before anything starts."""
    from search.export import read_export
    out = []
    for path in paths:
        params = read_export(path).get("params")
        if not isinstance(params, dict) or not params:
            raise SearchError(f"--enqueue {path}: params: missing (an export from before nextsweep kept the trial's "
                              "Optuna parameters); export the trial again with `nextsweep export`")
        out.append((path, params))
    return out


def check_enqueued(enqueued: list[tuple[str, dict]], compiled: CompiledSpace, samples: int) -> None:
    """Every enqueued export must be a proposal this space could make, and fit in --samples."""
    for path, params in enqueued:
        problem = compiled.params_problem(params)
        if problem:
            raise SearchError(f"--enqueue {path}: params.{problem}; enqueue an export of a sweep over this space")
    if len(enqueued) > samples:
        raise SearchError(f"--enqueue: {len(enqueued)} configs but --samples {samples}; raise --samples to at least "
                          f"{len(enqueued)}")


def enqueue(study: optuna.Study, enqueued: list[tuple[str, dict]], new: int) -> None:
    """Known-good configs first: Optuna hands them out before sampling (the budget check still
    applies, as to any proposal)."""
    if len(enqueued) > new:
        raise SearchError(f"--enqueue: {len(enqueued)} configs but only {new} new trials are left of --samples; "
                          "raise --samples")
    for path, params in enqueued:
        study.enqueue_trial(params, user_attrs={"enqueued_from": str(Path(path).resolve())})
        print(f"nextsweep: enqueued {path}: " + ", ".join(f"{k}={v}" for k, v in params.items()))
