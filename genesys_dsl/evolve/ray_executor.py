"""The Ray executor: each job a Ray task, on a local instance or an existing cluster.

Install with `pip install 'genesys-dsl[ray]'`; Ray is imported only when the executor
is created. Without `address`, a local instance starts on loopback (no dashboard, no
usage statistics) and `shutdown()` stops it; with one, the driver joins that cluster
(`ray.init(address=...)`) and `shutdown()` only disconnects. A process already
connected to Ray keeps its connection, and closing it stays its business.

Each job runs in a fresh worker process (`max_calls=1`, as the subprocess executor
spawns a fresh child): no state leaks from one candidate to the next, and the memory
guard dies with the job. A task declares `cpus_per_job` CPUs, `gpus_per_job` GPUs
and, when the job has a memory limit, that much of Ray's `memory` resource, so Ray
places it where those are free. The driver keeps `workers` tasks in flight, enforces
the wall-time limit (`ray.cancel(force=True)` kills the worker: "timeout") and is the
only one that writes anything: workers return the JobResult as plain JSON data.

A worker that is lost (killed, crashed, its node gone, or killed by Ray's memory
monitor) is retried up to `max_retries` times, each attempt with its own wall-time
limit, then recorded as failed: "oom" when Ray's memory monitor killed it, "crash"
otherwise. An exception raised by the job's function is an "error" like everywhere
else (run_job catches it in the worker).
"""

from __future__ import annotations

import logging
import math
import os
import resource
import socket
import sys
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from .executor import FAILED, ExecutorError, ExecutorKind, Job, JobResult, one_line, run_job, settings_for

NAME = "ray"
INSTALL_HINT = "pip install 'genesys-dsl[ray]'"
POLL_SECONDS = 0.1
CONNECT_SECONDS = 10.0  # to see that something listens at a cluster's address
SETTINGS: dict[str, type] = {"address": str, "workers": int, "cpus": int, "cpus_per_job": float,
                             "gpus_per_job": float, "max_retries": int}
# what Ray raises for a task whose worker was lost (those this Ray release has)
LOST_WORKER = ("WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "OutOfMemoryError", "ObjectLostError")
TASK_PREFIX = "genesys "  # a running task's process is titled "ray::genesys <job key>"
# Ray reads these when it is imported and passes them on to the processes it starts.
NO_USAGE_STATS = ("RAY_USAGE_STATS_ENABLED", "0")  # no network at run time by default
# Off, Ray binds a local instance to loopback (its default on macOS and Windows);
# on Linux it would otherwise listen on the machine's outward address.
LOOPBACK_ONLY = ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@dataclass
class _Task:
    job: Job
    ref: Any  # ray.ObjectRef of the JobResult's dict
    started: float
    attempt: int  # 1 for the first run, 2 for the first retry, ...


class RayExecutor:
    """`workers` Ray tasks in flight (default: as many as the cluster's CPUs and GPUs
    hold at `cpus_per_job` / `gpus_per_job` each when the executor starts)."""

    def __init__(self, address: str | None = None, workers: int | None = None, cpus: int | None = None,
                 cpus_per_job: float = 1.0, gpus_per_job: float = 0.0, max_retries: int = 1) -> None:
        _check_ranges(workers, cpus, cpus_per_job, gpus_per_job, max_retries)
        if address is not None and cpus is not None:
            raise ExecutorError(f"executor '{NAME}': setting cpus sizes a local Ray instance; a cluster at "
                                f"{address} has the CPUs its nodes were started with")
        if address is not None:
            _refuse_unreachable(address)
        self.address = address
        self.cpus_per_job = cpus_per_job
        self.gpus_per_job = gpus_per_job
        self.max_retries = max_retries
        self._ray = _import_ray(local=address is None)
        self._owns_connection = self._connect(address, cpus)
        self._closed = False
        capacity = self._ray.cluster_resources()
        self._local_capacity = capacity if self._owns_connection and address is None else None
        if self._local_capacity is not None:
            try:
                self._refuse_unplaceable("every job", memory_mb=None)
            except ExecutorError:
                self._ray.shutdown()  # the instance just started is of no use
                raise
        self.workers = workers or _slots(capacity, cpus_per_job, gpus_per_job)
        self._remote = self._ray.remote(max_calls=1)(genesys_job)  # a fresh worker process per job
        self._lost_worker = tuple(getattr(self._ray.exceptions, name) for name in LOST_WORKER
                                  if hasattr(self._ray.exceptions, name))
        self._sys_path = [p or os.getcwd() for p in sys.path]  # "" is the driver's folder, not the worker's
        self._pending: deque[Job] = deque()
        self._tasks: dict[Any, _Task] = {}  # ObjectRef -> its task

    # ------------------------------------------------------------------ the protocol

    def submit(self, job: Job) -> None:
        if self._closed:
            raise ExecutorError("this executor was shut down")
        if any(t.job.key == job.key for t in self._tasks.values()) or any(j.key == job.key for j in self._pending):
            raise ExecutorError(f"a job with key {job.key!r} is already outstanding")
        if self._local_capacity is not None:
            self._refuse_unplaceable(f"job {job.key}", job.limits.memory_mb)
        self._pending.append(job)
        self._fill()

    def results(self, timeout: float | None = None) -> Iterator[JobResult]:
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while self._pending or self._tasks:
                self._fill()
                wait = POLL_SECONDS if deadline is None else max(0.0, min(POLL_SECONDS, deadline - time.monotonic()))
                yield from self._reap(wait)
                if deadline is not None and time.monotonic() >= deadline:
                    return
        except GeneratorExit:  # the caller stopped reading: the tasks go on
            raise
        except BaseException:  # Ctrl-C while waiting: leave no task running
            self.shutdown()
            raise

    def running(self) -> int:
        return len(self._pending) + len(self._tasks)

    def shutdown(self, cancel: bool = True) -> None:
        """Kill the running tasks and drop queued jobs (cancel), or let the running ones
        finish; then stop the local instance this executor started, or disconnect."""
        if self._closed:
            return
        self._pending.clear()
        refs = list(self._tasks)
        if cancel:
            for ref in refs:
                self._ray.cancel(ref, force=True)
        elif refs:
            self._ray.wait(refs, num_returns=len(refs), timeout=None)
        self._tasks.clear()
        self._closed = True
        if self._owns_connection:
            self._ray.shutdown()

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # ------------------------------------------------------------------ connection

    def _connect(self, address: str | None, cpus: int | None) -> bool:
        """Join the cluster or start a local instance; False when this process was
        already connected (the connection is not ours to close)."""
        ray = self._ray
        if ray.is_initialized():
            current = ray.get_runtime_context().gcs_address
            if address not in (None, "auto") and address != current:
                raise ExecutorError(f"executor '{NAME}': this process is already connected to the Ray cluster "
                                    f"at {current}, not {address}")
            return False
        quiet = {"logging_level": logging.ERROR, "log_to_driver": False}  # job output stays in Ray's logs
        try:
            if address is not None:
                ray.init(address=address, **quiet)
            else:
                # "local": a new instance, never the cluster in RAY_ADDRESS or one `ray start` left behind
                ray.init(address="local", num_cpus=cpus or os.cpu_count() or 1, include_dashboard=False, **quiet)
        except Exception as err:  # noqa: BLE001 (ConnectionError, ValueError, RuntimeError...: all mean "no cluster")
            if address is None:
                raise ExecutorError(f"executor '{NAME}': cannot start a local Ray instance: {one_line(err)}") from None
            raise ExecutorError(f"executor '{NAME}': cannot join the Ray cluster at {address}: {one_line(err)} "
                                f"(a cluster with token authentication also needs RAY_AUTH_MODE=token and its "
                                f"token here: `ray get-auth-token`)") from None
        return True

    def _refuse_unplaceable(self, what: str, memory_mb: int | None) -> None:
        """A local instance never grows: a task it cannot place would wait forever."""
        have = self._local_capacity or {}
        needs = [("CPU", self.cpus_per_job, have.get("CPU", 0.0), "setting cpus_per_job"),
                 ("GPU", self.gpus_per_job, have.get("GPU", 0.0), "setting gpus_per_job")]
        if memory_mb:
            needs.append(("MB of memory", memory_mb, int(have.get("memory", 0.0) / 2**20), "its memory limit"))
        for unit, need, available, source in needs:
            if need > available:
                raise ExecutorError(f"executor '{NAME}': {what} needs {need:.10g} {unit} ({source}) but the local "
                                    f"Ray instance has {available:.10g}")

    # ------------------------------------------------------------------ tasks

    def _fill(self) -> None:
        while self._pending and len(self._tasks) < self.workers:
            self._start(self._pending.popleft(), attempt=1)

    def _start(self, job: Job, attempt: int) -> None:
        options: dict[str, Any] = {"num_cpus": self.cpus_per_job, "num_gpus": self.gpus_per_job,
                                   "max_retries": 0,  # retries are ours: each attempt gets its own clock
                                   "name": TASK_PREFIX + job.key}
        if job.limits.memory_mb:
            options["memory"] = job.limits.memory_mb * 2**20
        ref = self._remote.options(**options).remote(job.to_dict(), self._sys_path, self.gpus_per_job > 0)
        self._tasks[ref] = _Task(job, ref, time.monotonic(), attempt)

    def _reap(self, wait: float) -> list[JobResult]:
        """Results of the tasks that finished within `wait` seconds, and of those past
        their wall-time limit (killed)."""
        finished: list[JobResult] = []
        refs = list(self._tasks)
        if refs:
            ready, _ = self._ray.wait(refs, num_returns=1, timeout=wait)
            if ready:
                ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0)
            for ref in ready:
                result = self._outcome(self._tasks.pop(ref))
                if result is not None:
                    finished.append(result)
        now = time.monotonic()
        for ref, task in list(self._tasks.items()):
            limit = task.job.limits.wall_seconds
            if limit is not None and now - task.started >= limit:
                self._ray.cancel(ref, force=True)  # kills the worker process
                del self._tasks[ref]
                finished.append(JobResult(task.job.key, FAILED, "timeout",
                                          f"ran longer than its {limit:g} s wall-time limit and was killed",
                                          wall_seconds=now - task.started))
        return finished

    def _outcome(self, task: _Task) -> JobResult | None:
        """The task's result; None when it was retried."""
        exceptions = self._ray.exceptions
        key, elapsed = task.job.key, time.monotonic() - task.started
        try:
            data = self._ray.get(task.ref)
        except exceptions.RayTaskError as err:  # raised outside run_job (unpickling the job, SystemExit)
            cause = getattr(err, "cause", None)
            return JobResult(key, FAILED, "error", one_line(cause) if cause is not None else one_line(err),
                             wall_seconds=elapsed, traceback=str(err))
        except self._lost_worker as err:
            if task.attempt <= self.max_retries:
                self._start(task.job, task.attempt + 1)
                return None
            oom = type(err).__name__ == "OutOfMemoryError"
            what = "Ray's memory monitor killed it" if oom else "its Ray worker died"
            tries = f"{task.attempt} attempt{'s' if task.attempt > 1 else ''}"
            return JobResult(key, FAILED, "oom" if oom else "crash",
                             f"{what} ({type(err).__name__}; {tries})", wall_seconds=elapsed, traceback=str(err))
        except exceptions.RayError as err:  # the task could not run at all (runtime env, placement)
            return JobResult(key, FAILED, "error", one_line(err), wall_seconds=elapsed, traceback=str(err))
        return JobResult.from_dict({**data, "wall_seconds": elapsed})


# ------------------------------------------------------------------ in the worker


def genesys_job(job_data: dict[str, Any], sys_path: list[str], gpus: bool) -> dict[str, Any]:
    """The Ray task: one job, run as every executor runs it; returns the JobResult's dict."""
    # the driver's import path, after the worker's own (on a cluster, the node's install comes first)
    sys.path.extend(p for p in sys_path if p not in sys.path)
    if not gpus:  # Ray hides only the GPUs it did not assign; a task with none would see them all
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    job = Job.from_dict(job_data)
    with _memory_limit(job.limits.memory_mb):
        return run_job(job).to_dict()


@contextmanager
def _memory_limit(memory_mb: int | None) -> Iterator[None]:
    """The subprocess worker's guard (RLIMIT_DATA: heap and tensors, not shared
    libraries), as a soft limit lifted again afterwards: Ray's own threads go on in
    this process to send the result back."""
    if not memory_mb:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = memory_mb * 2**20 if hard == resource.RLIM_INFINITY else min(memory_mb * 2**20, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


# ------------------------------------------------------------------ settings


def _import_ray(local: bool) -> Any:
    os.environ.setdefault(*NO_USAGE_STATS)
    if local and "ray" not in sys.modules:
        os.environ.setdefault(*LOOPBACK_ONLY)
    try:
        import ray
    except ModuleNotFoundError as err:
        if err.name != "ray" and not (err.name or "").startswith("ray."):
            raise
        raise ExecutorError(f"executor '{NAME}' needs Ray, which is not installed: {INSTALL_HINT}") from None
    except ImportError as err:  # installed but broken (a missing native library, a bad version)
        raise ExecutorError(f"executor '{NAME}': Ray cannot be imported ({one_line(err)}); "
                            f"reinstall it with {INSTALL_HINT}") from None
    return ray


def _refuse_unreachable(address: str) -> None:
    """Ray keeps trying an address where nothing listens for many minutes: a typo in
    --ray-address should fail at once."""
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not port.isdigit():  # "auto", "local": Ray finds those itself
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as err:
        raise ExecutorError(f"executor '{NAME}': no Ray cluster answers at {address} ({err.strerror or err}); "
                            f"start one there with `ray start --head`, or check the address") from None


def _slots(capacity: Mapping[str, float], cpus_per_job: float, gpus_per_job: float) -> int:
    """How many jobs the cluster's CPUs (and GPUs, when jobs ask for them) hold at once."""
    fits = capacity.get("CPU", 0.0) / cpus_per_job if cpus_per_job else math.inf
    if gpus_per_job:
        fits = min(fits, capacity.get("GPU", 0.0) / gpus_per_job)
    return max(1, int(fits)) if math.isfinite(fits) else 1


def _check_ranges(workers: int | None, cpus: int | None, cpus_per_job: float, gpus_per_job: float,
                  max_retries: int) -> None:
    for name, value, least in (("workers", workers, 1), ("cpus", cpus, 1), ("gpus_per_job", gpus_per_job, 0),
                               ("max_retries", max_retries, 0)):
        if value is not None and value < least:
            raise ExecutorError(f"executor '{NAME}': {name} must be at least {least}, not {value}")
    if cpus_per_job <= 0:
        raise ExecutorError(f"executor '{NAME}': cpus_per_job must be more than 0, not {cpus_per_job}")


def create(settings: Mapping[str, Any]) -> RayExecutor:
    # a whole number is a fine float ("cpus_per_job = 2" in TOML)
    settings = {k: float(v) if SETTINGS.get(k) is float and type(v) is int else v for k, v in settings.items()}
    return RayExecutor(**settings_for(NAME, settings, SETTINGS))


EXECUTOR = ExecutorKind(
    name=NAME,
    summary="each job a Ray task with declared CPUs/GPUs/memory, on a local instance or the cluster at `address`; "
            f"lost workers retried `max_retries` times (needs {INSTALL_HINT})",
    create=create,
)
