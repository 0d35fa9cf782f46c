"""Training and scoring designs: trainer, data, benchmark suites, ladder, fitness."""

from .config import DataConfig, TrainConfig
from .context import EvalContext
from .suite import BenchmarkSuite, EvaluationError, EvaluationFailed, TaskInfo, TaskScore

__all__ = ["BenchmarkSuite", "DataConfig", "EvalContext", "EvaluationError", "EvaluationFailed", "TaskInfo",
           "TaskScore", "TrainConfig"]
