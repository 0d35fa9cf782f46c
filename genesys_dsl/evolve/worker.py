"""One job in its own process: `python -m genesys_dsl.evolve.worker JOB.json RESULT.json`.

Started by the subprocess executor in a fresh interpreter (never forked: torch and
fork do not mix). It applies the job's memory limit to itself, runs the job, and
writes the JobResult as JSON to a temporary name renamed into place, so the parent
reads a whole result or none. If the parent dies, the worker kills its own process
group rather than run on as an orphan.
"""

from __future__ import annotations

import faulthandler
import json
import os
import resource
import signal
import sys
import threading
import time
from pathlib import Path

PARENT_POLL_SECONDS = 0.5


def _limit_memory(memory_mb: int | None) -> None:
    # RLIMIT_DATA bounds the heap and private mappings (what tensors use) but not the
    # shared libraries' address space, which RLIMIT_AS would count against the job.
    if memory_mb:
        limit = int(memory_mb) * 2**20
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def _die_with_parent(parent: int) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os.killpg(os.getpgrp(), signal.SIGKILL)  # the worker and anything it started

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def main(job_path: str, result_path: str) -> None:
    faulthandler.enable()  # a segfault leaves a Python stack in the log the parent reads
    data = json.loads(Path(job_path).read_text(encoding="utf-8"))
    _die_with_parent(int(data["parent"]))
    sys.path[:0] = [p for p in data.get("sys_path", []) if p not in sys.path]  # as multiprocessing's spawn does
    from .executor import Job, run_job

    job = Job.from_dict(data["job"])
    _limit_memory(job.limits.memory_mb)
    result = run_job(job)
    text = json.dumps(result.to_dict())  # the value was checked to be strict JSON
    partial = Path(result_path + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, result_path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the result is written: skip interpreter teardown, which can crash in native code
