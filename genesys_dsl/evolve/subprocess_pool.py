"""The subprocess executor: each job in a fresh child process, `workers` at a time.

Children are spawned (`python -m genesys_dsl.evolve.worker`), never forked, each in
its own process group so a timeout or shutdown kills everything the job started.
A child applies the job's memory limit to itself; the parent enforces the wall-time
limit. Results travel back as JSON files. Why a job failed is read from what is
left: a result file (the job's own outcome), our kill (timeout), a signal (SIGKILL
we did not send: the kernel's out-of-memory killer; others: crash), or an exit
without a result (crash). Children start and wall-time limits are checked while
`submit()` or `results()` runs, so a caller reads results regularly. Shutdown, and
the end of the parent process, kill every child; a child whose parent dies kills
itself.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from .executor import FAILED, ExecutorError, ExecutorKind, Job, JobResult, settings_for

POLL_SECONDS = 0.02
LOG_TAIL_CHARS = 4000
SETTINGS = {"workers": int, "threads": int, "python": str}
MAX_DEFAULT_WORKERS = 4  # each worker holds torch and a model: memory, not cores, bounds more
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass
class _Child:
    job: Job
    process: subprocess.Popen
    started: float
    result_path: Path
    log_path: Path
    timed_out: bool = False


class SubprocessExecutor:
    """`workers` children at once; each runs one job and exits. `threads` sets the
    OpenMP/MKL threads of each child (default: the CPUs shared evenly) unless the
    environment already sets them; `python` is the interpreter (default: this one)."""

    def __init__(self, workers: int | None = None, threads: int | None = None, python: str | None = None) -> None:
        workers = workers if workers is not None else min(MAX_DEFAULT_WORKERS, os.cpu_count() or 1)
        if workers < 1:
            raise ExecutorError(f"executor 'subprocess': workers must be at least 1, not {workers}")
        if threads is not None and threads < 1:
            raise ExecutorError(f"executor 'subprocess': threads must be at least 1, not {threads}")
        self.workers = workers
        self.threads = threads or max(1, (os.cpu_count() or 1) // workers)
        self.python = python or sys.executable
        self._pending: deque[Job] = deque()
        self._children: dict[str, _Child] = {}
        self._folder = Path(tempfile.mkdtemp(prefix="genesys-jobs-"))
        self._count = 0
        # no orphans: children die with this object or, at the latest, when the interpreter exits
        self._finalizer = weakref.finalize(self, _kill_all, self._children, self._folder)

    # ------------------------------------------------------------------ the protocol

    def submit(self, job: Job) -> None:
        if job.key in self._children or any(j.key == job.key for j in self._pending):
            raise ExecutorError(f"a job with key {job.key!r} is already outstanding")
        if not self._finalizer.alive:
            raise ExecutorError("this executor was shut down")
        self._pending.append(job)
        self._fill()

    def results(self, timeout: float | None = None) -> Iterator[JobResult]:
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while self._pending or self._children:
                self._fill()
                finished = self._reap()
                yield from finished
                if deadline is not None and time.monotonic() >= deadline:
                    return
                if not finished:
                    time.sleep(POLL_SECONDS)
        except GeneratorExit:  # the caller stopped reading: the jobs go on
            raise
        except BaseException:  # Ctrl-C while waiting: leave no child behind
            self.shutdown()
            raise

    def running(self) -> int:
        return len(self._pending) + len(self._children)

    def shutdown(self, cancel: bool = True) -> None:
        """Kill every child and drop queued jobs (cancel), or let the running ones finish."""
        self._pending.clear()
        if not cancel:
            for child in self._children.values():
                child.process.wait()
        self._finalizer()

    def __enter__(self) -> SubprocessExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # ------------------------------------------------------------------ children

    def _fill(self) -> None:
        while self._pending and len(self._children) < self.workers:
            self._start(self._pending.popleft())

    def _start(self, job: Job) -> None:
        self._count += 1
        stem = self._folder / f"job-{self._count}"
        job_path, result_path, log_path = (stem.with_suffix(s) for s in (".json", ".result", ".log"))
        job_path.write_text(json.dumps({"job": job.to_dict(), "parent": os.getpid(), "sys_path": sys.path}),
                            encoding="utf-8")
        env = dict(os.environ)
        for name in THREAD_VARIABLES:
            env.setdefault(name, str(self.threads))
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [self.python, "-m", "genesys_dsl.evolve.worker", str(job_path), str(result_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)  # its own process group: killed as a whole
        self._children[job.key] = _Child(job, process, time.monotonic(), result_path, log_path)

    def _reap(self) -> list[JobResult]:
        finished = []
        now = time.monotonic()
        for key, child in list(self._children.items()):
            limit = child.job.limits.wall_seconds
            if child.process.poll() is None:
                if limit is None or now - child.started < limit:
                    continue
                child.timed_out = True
                _kill(child.process)
            finished.append(self._outcome(child, time.monotonic() - child.started))
            del self._children[key]
        return finished

    def _outcome(self, child: _Child, elapsed: float) -> JobResult:
        key, code = child.job.key, child.process.returncode
        output = _tail(child.log_path)
        if child.result_path.exists():
            data = json.loads(child.result_path.read_text(encoding="utf-8"))
            return JobResult.from_dict({**data, "wall_seconds": elapsed})
        if child.timed_out:
            return JobResult(key, FAILED, "timeout",
                             f"ran longer than its {child.job.limits.wall_seconds:g} s wall-time limit and was killed",
                             wall_seconds=elapsed, traceback=output or None)
        if code is not None and code < 0:
            name = _signal_name(-code)
            if -code == signal.SIGKILL:
                return JobResult(key, FAILED, "oom", "killed by SIGKILL, most likely by the kernel's "
                                 "out-of-memory killer", wall_seconds=elapsed, traceback=output or None)
            return JobResult(key, FAILED, "crash", f"killed by signal {name}", wall_seconds=elapsed,
                             traceback=output or None)
        return JobResult(key, FAILED, "crash", f"exited with status {code} without a result",
                         wall_seconds=elapsed, traceback=output or None)


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _kill_all(children: dict[str, _Child], folder: Path) -> None:
    for child in children.values():
        if child.process.poll() is None:
            _kill(child.process)
    children.clear()
    shutil.rmtree(folder, ignore_errors=True)


def _tail(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text[-LOG_TAIL_CHARS:]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def create(settings: Mapping[str, Any]) -> SubprocessExecutor:
    return SubprocessExecutor(**settings_for("subprocess", settings, SETTINGS))


EXECUTOR = ExecutorKind(
    name="subprocess",
    summary="each job in a fresh child process with wall-time and memory limits; `workers` at once "
            f"(default: one per core, at most {MAX_DEFAULT_WORKERS})",
    create=create,
)
