"""The executor contract: where candidate evaluations run.

A job is plain data: a key, a function named "package.module:function", a JSON
payload and limits. The function is imported by name where the job runs (this
process, a fresh child process, later a Ray worker), called as function(payload),
and returns a JSON-able dict. Every outcome comes back as a JobResult; nothing a
job does raises in the caller:

    ok                        the function returned a JSON-able dict of finite values
    failed "error"            it raised (message: the exception's one line, traceback kept)
    failed <its reason>       it raised EvaluationFailed(reason, message) ("diverged", ...)
    failed "nonfinite"        its value holds NaN or infinity
    failed "oom"              it ran out of memory (MemoryError, or killed for memory)
    failed "timeout"          it ran past its wall-time limit and was killed
    failed "crash"            its process died without a result (segfault, os._exit)

Executors are registered by plugins through `register_executors(register)`.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import time
import traceback as tb
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Mapping, Protocol

OK, FAILED = "ok", "failed"
_FUNCTION = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_OOM_MESSAGES = ("can't allocate memory", "out of memory", "cannot allocate memory")


class ExecutorError(Exception):
    """A user mistake with an executor: unknown or bad settings, a malformed job."""


@dataclass(frozen=True)
class ExecutorKind:
    """A named executor. `create(settings)` returns an Executor."""

    name: str
    summary: str
    create: Callable[[Mapping[str, Any]], Executor]
    plugin: str | None = None  # which plugin registered it


@dataclass(frozen=True)
class Limits:
    """What one job may use. None: no limit."""

    wall_seconds: float | None = None
    memory_mb: int | None = None  # the process's data size (heap), interpreter and libraries included

    def __post_init__(self) -> None:
        for name in ("wall_seconds", "memory_mb"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value > 0):
                raise ExecutorError(f"limit {name} must be a positive number or None, not {value!r}")


@dataclass(frozen=True)
class Job:
    key: str  # unique among the jobs outstanding in one executor; comes back on the result
    function: str  # "package.module:function", imported where the job runs
    payload: dict[str, Any] = field(default_factory=dict)  # JSON-able; the function's one argument
    limits: Limits = Limits()

    def __post_init__(self) -> None:
        if not _FUNCTION.match(self.function):
            raise ExecutorError(f"job {self.key}: function must be named 'package.module:function', "
                                f"not {self.function!r}")
        try:
            json.dumps(self.payload, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ExecutorError(f"job {self.key}: payload is not JSON: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        return cls(key=data["key"], function=data["function"], payload=data["payload"],
                   limits=Limits(**data.get("limits") or {}))


@dataclass(frozen=True)
class JobResult:
    key: str
    status: str  # OK or FAILED
    reason: str | None = None  # "timeout", "oom", "crash", "error", "nonfinite", or the function's own
    message: str | None = None  # one line for people
    value: dict[str, Any] | None = None  # what the function returned (ok only)
    wall_seconds: float = 0.0
    traceback: str | None = None  # the full traceback or crash output, for the archive (never printed)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobResult:
        return cls(**{k: data.get(k) for k in ("key", "status", "reason", "message", "value", "traceback")},
                   wall_seconds=float(data.get("wall_seconds") or 0.0))


class Executor(Protocol):
    """Runs jobs; results come back as jobs finish, failures included."""

    workers: int  # how many jobs it runs at once

    def submit(self, job: Job) -> None: ...

    def results(self, timeout: float | None = None) -> Iterator[JobResult]:
        """Yield results as jobs finish, until every submitted job has reported (or
        `timeout` seconds have passed: the rest keep running and come later)."""
        ...

    def running(self) -> int:
        """Jobs submitted whose results have not been yielded yet (queued or running)."""
        ...

    def shutdown(self, cancel: bool = True) -> None:
        """Stop: kill running jobs and drop queued ones (cancel), or wait for them."""
        ...


# ------------------------------------------------------------------ running one job here


def resolve(function: str) -> Callable[[dict], Any]:
    """The callable a job names ("package.module:qualname")."""
    module_name, _, qualname = function.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{function} is not callable")
    return target


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def classify(err: BaseException) -> str:
    """The failure reason of an exception raised by a job's function."""
    if isinstance(err, MemoryError) or (isinstance(err, RuntimeError)
                                        and any(m in str(err).lower() for m in _OOM_MESSAGES)):
        return "oom"
    reason = getattr(err, "reason", None)  # EvaluationFailed and its kin name their own reason
    if isinstance(reason, str) and reason:
        return reason
    return "error"


def first_nonfinite(value: Any, path: str = "value") -> str | None:
    """Where in a JSON-like value the first NaN or infinity is, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path} is {value}"
    if isinstance(value, Mapping):
        for k, v in value.items():
            found = first_nonfinite(v, f"{path}[{k!r}]")
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = first_nonfinite(v, f"{path}[{i}]")
            if found:
                return found
    return None


def checked_value(key: str, value: Any) -> JobResult | dict[str, Any]:
    """The function's return value as plain JSON data, or the failed result it earns."""
    if not isinstance(value, dict):
        return JobResult(key, FAILED, "error", f"returned {type(value).__name__}, not a dict")
    where = first_nonfinite(value)
    if where:
        return JobResult(key, FAILED, "nonfinite", f"returned a non-finite number: {where}")
    try:
        return json.loads(json.dumps(value, allow_nan=False))  # the same data every executor gives back
    except (TypeError, ValueError) as err:
        return JobResult(key, FAILED, "error", f"returned a value that is not JSON: {err}")


def run_job(job: Job) -> JobResult:
    """Run `job` in this process and turn every outcome into a JobResult."""
    start = time.perf_counter()
    try:
        value = resolve(job.function)(job.payload)
    except Exception as err:  # the job's failure, reported, never raised
        reason, message = classify(err), one_line(err)
        if reason == "oom" and job.limits.memory_mb:
            message += f" (the job's memory limit is {job.limits.memory_mb} MB)"
        return JobResult(job.key, FAILED, reason, message, wall_seconds=time.perf_counter() - start,
                         traceback=tb.format_exc())
    elapsed = time.perf_counter() - start
    checked = checked_value(job.key, value)
    if isinstance(checked, JobResult):
        return JobResult(**{**asdict(checked), "wall_seconds": elapsed})
    return JobResult(job.key, OK, value=checked, wall_seconds=elapsed)


# ------------------------------------------------------------------ settings


def settings_for(executor: str, settings: Mapping[str, Any], known: Mapping[str, type]) -> dict[str, Any]:
    """`settings` checked against the names and types an executor accepts."""
    unknown = sorted(set(settings) - set(known))
    if unknown:
        accepted = ", ".join(sorted(known)) or "none"
        raise ExecutorError(f"executor '{executor}': unknown setting(s) {', '.join(unknown)}; it accepts: {accepted}")
    checked = {}
    for name, value in settings.items():
        kind = known[name]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            raise ExecutorError(f"executor '{executor}': setting {name} must be {kind.__name__}, not {value!r}")
        checked[name] = value
    return checked
