"""The in-process executor: jobs run one at a time in the calling process.

No isolation: a job that segfaults takes the caller with it, and neither limit can
be enforced (Python cannot stop a running function from outside, and a memory
limit would bind the whole process). A job runs when `results()` asks for it, so
`results(timeout=...)` stops only between jobs. Use it for debugging and for tests;
use `subprocess` for real runs.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Iterator, Mapping

from .executor import ExecutorError, ExecutorKind, Job, JobResult, run_job, settings_for


class InProcessExecutor:
    workers = 1

    def __init__(self) -> None:
        self._queue: deque[Job] = deque()

    def submit(self, job: Job) -> None:
        if any(j.key == job.key for j in self._queue):
            raise ExecutorError(f"a job with key {job.key!r} is already outstanding")
        self._queue.append(job)

    def results(self, timeout: float | None = None) -> Iterator[JobResult]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._queue and (deadline is None or time.monotonic() < deadline):
            yield run_job(self._queue.popleft())

    def running(self) -> int:
        return len(self._queue)

    def shutdown(self, cancel: bool = True) -> None:
        """Drop the queued jobs (there is never one running outside `results()`)."""
        self._queue.clear()

    def __enter__(self) -> InProcessExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def create(settings: Mapping[str, Any]) -> InProcessExecutor:
    settings_for("inprocess", settings, {})
    return InProcessExecutor()


EXECUTOR = ExecutorKind(
    name="inprocess",
    summary="runs each job in the calling process, one at a time (no isolation, no limits: for debugging)",
    create=create,
)
