"""Model families, exact parameter counts, losses, metrics and the training engine (no Ray/Optuna)."""

from models.build import build_model, build_predictor, count_params
from models.config import (FAMILIES, LOSSES, SAMPLERS, SCHEDULES, ModelConfig, ModelError,
                           NonFiniteLoss, NonFiniteMetricError, TrainConfig, metric_mode, split_config)
from models.engine import EpochReport, FitResult, evaluate, fit

__all__ = ["build_model", "build_predictor", "count_params", "FAMILIES", "LOSSES", "SAMPLERS", "SCHEDULES", "ModelConfig",
           "ModelError", "NonFiniteLoss", "NonFiniteMetricError", "TrainConfig", "metric_mode", "split_config", "EpochReport", "FitResult",
           "evaluate", "fit"]
