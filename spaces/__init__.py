"""Declarative YAML search spaces, their validation, compilation to Optuna, and the budget.

spaces.facts loads at once; the rest (which loads the model code, and torch) on first use."""

import importlib

from spaces.facts import FORBIDDEN, OVER_BUDGET, UNBUILDABLE, SpaceError, changes_count

_MODEL_NAMES = {"ParamCounter": "spaces.budget", "check_feasible": "spaces.budget", "count_range": "spaces.budget",
                "CompiledSpace": "spaces.compile", "Proposal": "spaces.compile", "record_rejection": "spaces.compile",
                "load_space_data": "spaces.data", "Space": "spaces.schema", "load_space": "spaces.schema",
                "parse_space": "spaces.schema"}


def __getattr__(name: str):
    if name in _MODEL_NAMES:
        return getattr(importlib.import_module(_MODEL_NAMES[name]), name)
    raise AttributeError(f"module 'spaces' has no attribute {name!r}")


__all__ = ["ParamCounter", "changes_count", "check_feasible", "count_range", "CompiledSpace", "FORBIDDEN", "OVER_BUDGET",
           "UNBUILDABLE", "Proposal", "record_rejection", "load_space_data", "Space", "SpaceError", "load_space",
           "parse_space"]
