"""Declarative YAML search spaces, their validation, compilation to Optuna, and the budget."""

from spaces.budget import ParamCounter, changes_count, check_feasible, count_range
from spaces.compile import FORBIDDEN, OVER_BUDGET, UNBUILDABLE, CompiledSpace, Proposal, record_rejection
from spaces.data import load_space_data
from spaces.schema import Space, SpaceError, load_space, parse_space

__all__ = ["ParamCounter", "check_feasible", "count_range", "CompiledSpace", "FORBIDDEN", "OVER_BUDGET", "UNBUILDABLE", "Proposal", "record_rejection",
           "load_space_data", "Space", "SpaceError", "load_space", "parse_space"]
