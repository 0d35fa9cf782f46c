"""Helpers for tests that start, kill and wait for processes (executors, Ray workers)."""

import time
from pathlib import Path

from genesys_dsl.evolve.executor import Job, Limits


def job(name: str, payload: dict | None = None, **limits) -> Job:
    """A job running tests/executor_jobs.py's function `name`."""
    return Job(key=name, function=f"executor_jobs:{name}", payload=payload or {}, limits=Limits(**limits))


def alive(pid: int) -> bool:
    """Running, or stopped; a zombie (exited, not yet reaped by its new parent) is dead."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_for(predicate, seconds: float = 20.0) -> bool:
    """Poll `predicate` until it holds (True) or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
