"""The benchmark-suite contract: what a suite declares and what it returns.

A suite is registered by a plugin through `register_benchmarks(register)`. It names
its tasks up front (so a bad task name fails before any training) and scores one
design at one scale and seed when `run(context, task_names)` is called. Scores are
plain numbers with the random-guess and best possible score beside them, so fitness
can normalise every task to the same 0 (random) .. 1 (perfect) range whichever way
its metric points.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    from .context import EvalContext


class EvaluationError(Exception):
    """A user mistake in an evaluation request (unknown suite or task, bad corpus...);
    the message names the thing and what exists instead."""


class EvaluationFailed(Exception):
    """The design could not be scored (its training diverged, produced NaN, ran out of
    memory...). `reason` is a short machine-readable word; the message explains."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class TaskInfo:
    """One task of a suite. `random_score` is what a uniform guesser gets and
    `best_score` what a perfect model gets; either may be the larger."""

    name: str
    metric: str  # "accuracy", "bits_per_byte", ...
    random_score: float
    best_score: float
    summary: str = ""


@dataclass(frozen=True)
class TaskScore:
    """The result of one task for one design, scale and seed."""

    suite: str
    task: str
    metric: str
    score: float
    random_score: float
    best_score: float
    details: dict[str, Any] = field(default_factory=dict)  # sizes, tokens, wall time ...

    @property
    def normalized(self) -> float:
        """0 at the random-guess score, 1 at the best score (may leave [0, 1])."""
        return (self.score - self.random_score) / (self.best_score - self.random_score)

    def to_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "task": self.task, "metric": self.metric, "score": self.score,
                "random_score": self.random_score, "best_score": self.best_score,
                "normalized": self.normalized, "details": self.details}


SuiteRunner = Callable[["EvalContext", Sequence[str]], list[TaskScore]]


@dataclass(frozen=True)
class BenchmarkSuite:
    """A named set of tasks. `run(context, task_names)` returns one TaskScore per task
    asked for, in that order; it raises EvaluationFailed when the design cannot be
    scored. `default_tasks` are run when the user names none (all tasks if empty)."""

    name: str
    summary: str
    tasks: tuple[TaskInfo, ...]
    run: SuiteRunner
    default_tasks: tuple[str, ...] = ()
    plugin: str | None = None  # which plugin registered it

    def task(self, name: str) -> TaskInfo:
        for info in self.tasks:
            if info.name == name:
                return info
        import difflib

        names = [t.name for t in self.tasks]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise EvaluationError(f"suite '{self.name}' has no task '{name}'{hint} Its tasks: {', '.join(names)}")

    def chosen(self, names: Sequence[str] | None) -> list[TaskInfo]:
        """The tasks to run: those named (checked), else the defaults, else all."""
        if names:
            return [self.task(n) for n in names]
        if self.default_tasks:
            return [self.task(n) for n in self.default_tasks]
        return list(self.tasks)
