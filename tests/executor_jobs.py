"""Small job functions for the executor tests: each ends one way a candidate can end."""

import ctypes
import os
import signal
import time


def echo(payload):
    return {"echo": payload, "pid": os.getpid()}


def raises(payload):
    raise ValueError(f"bad input {payload.get('n')}\nsecond line")


class Diverged(Exception):
    """Like genesys_dsl.evaluate.EvaluationFailed: names its own reason."""

    def __init__(self, message):
        super().__init__(message)
        self.reason = "diverged"


def diverges(payload):
    raise Diverged("loss went to 1e9 at step 12")


def sleeps(payload):
    if "pid_file" in payload:  # tells the test which process to look for
        with open(payload["pid_file"] + ".partial", "w") as f:
            f.write(str(os.getpid()))
        os.replace(payload["pid_file"] + ".partial", payload["pid_file"])
    time.sleep(payload.get("seconds", 3600))
    return {"slept": payload.get("seconds")}


def allocates(payload):
    """Asks for more memory than the job's limit allows."""
    block = bytearray(payload["mb"] * 2**20)
    return {"size": len(block)}


def exits(payload):
    os._exit(payload.get("status", 3))


def segfaults(payload):
    ctypes.string_at(0)  # reads address 0: SIGSEGV


def killed(payload):
    os.kill(os.getpid(), signal.SIGKILL)


def nan(payload):
    return {"loss": float("nan"), "steps": 3}


def not_a_dict(payload):
    return [1, 2]


def marks_time(payload):
    """Sleeps, and reports when it started and ended (to see jobs overlap)."""
    start = time.time()
    time.sleep(payload["seconds"])
    return {"start": start, "end": time.time()}
