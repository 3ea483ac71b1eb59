"""Model families, exact parameter counts, losses, metrics and the training engine (no Ray/Optuna).

The configs load at once; the engine and the builders (everything that imports torch) on first
use, so `nextsweep status`, `export` and `report` never pay torch's import (~1 s).
"""

import importlib

from models.config import (FAMILIES, LOSSES, SAMPLERS, SCHEDULES, ModelConfig, ModelError,
                           NonFiniteLoss, NonFiniteMetricError, TrainConfig, metric_mode, split_config)

_TORCH_NAMES = {"build_model": "models.build", "build_predictor": "models.build", "count_params": "models.build",
                "EpochReport": "models.engine", "FitResult": "models.engine", "evaluate": "models.engine",
                "fit": "models.engine"}


def __getattr__(name: str):
    if name in _TORCH_NAMES:
        return getattr(importlib.import_module(_TORCH_NAMES[name]), name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")


__all__ = ["build_model", "build_predictor", "count_params", "FAMILIES", "LOSSES", "SAMPLERS", "SCHEDULES", "ModelConfig",
           "ModelError", "NonFiniteLoss", "NonFiniteMetricError", "TrainConfig", "metric_mode", "split_config", "EpochReport", "FitResult",
           "evaluate", "fit"]
