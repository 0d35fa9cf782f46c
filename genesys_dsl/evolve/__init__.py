"""The evolution loop, its archive (stores) and where evaluations run (executors)."""

from .executor import Executor, ExecutorError, ExecutorKind, Job, JobResult, Limits
from .store import DesignRecord, EvaluationResult, Store, StoreError, StoreKind

__all__ = ["DesignRecord", "EvaluationResult", "Executor", "ExecutorError", "ExecutorKind", "Job", "JobResult",
           "Limits", "Store", "StoreError", "StoreKind"]
