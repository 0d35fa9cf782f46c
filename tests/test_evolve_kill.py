"""`genesys evolve` killed with SIGKILL at random points, then resumed: the archive
stays consistent and the resumed run neither loses nor repeats finished work.

Real jobs in real child processes (the subprocess executor), with a training budget
of a few steps so that a whole run takes seconds."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from genesys_dsl.plugins import store_registry

from paths import SPECS

CONFIG = f"""
[run]
seeds = ["{SPECS / 'transformer.gab'}", "{SPECS / 'llama.gab'}", "{SPECS / 'retnet.gab'}"]
max_designs = 5
minutes = 10

[evaluation]
suites = ["perplexity"]
verify = false
budgets = {{ cpu-xs = 8, cpu-s = 1, cpu-m = 1 }}
train = {{ tokens = 2048, batch_size = 4, checkpoint_every = 0 }}
options = {{ perplexity = {{ max_tokens = 256 }} }}

[executor]
name = "subprocess"
workers = 2
threads = 1
"""


def start(config, run_dir):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "genesys_dsl.cli", "evolve", "--config", str(config),
                             "--run", str(run_dir), "--quiet"], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def consistent(run_dir) -> dict:
    """Open the archive as a resumed run would and check it; return its counts."""
    store = store_registry().lookup("sqlite").open(str(run_dir))
    try:
        assert store.integrity_check() == []
        designs = store.designs()
        assert len({d.id for d in designs}) == len(designs)
        evaluations = store.evaluations()
        keys = Counter((e.design_id, e.rung, e.seed) for e in evaluations)
        assert max(keys.values(), default=1) == 1, "an evaluation was queued twice"
        for e in evaluations:
            scores = store.scores(e.design_id, e.rung)
            if e.status == "ok":
                assert scores, f"finished evaluation {e.id} has no scores"
            elif e.status in ("queued", "running"):
                assert not scores, f"unfinished evaluation {e.id} has scores"
        proposals = store.get_meta("proposals", 0)
        made = sum(len(store.events(k)) for k in ("proposed", "duplicate", "no-offspring"))
        assert made == proposals, "a proposal was lost or made twice"
        return {"designs": len(designs), "evaluations": evaluations,
                "started": len(store.events("started"))}
    finally:
        store.close()


def wait_until_started(run_dir, times: int, timeout: float = 120) -> None:
    """Until the run has logged its `times`-th start (imports done, archive open)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (run_dir / "archive.sqlite").exists():
            store = store_registry().lookup("sqlite").open(str(run_dir))
            try:
                if len(store.events("started")) >= times:
                    return
            finally:
                store.close()
        time.sleep(0.2)
    raise AssertionError(f"the run did not start {times} time(s) within {timeout} s")


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume(tmp_path):
    config = tmp_path / "evolve.toml"
    config.write_text(CONFIG)
    run_dir = tmp_path / "run"
    rng = random.Random(7)
    kills = 0
    for attempt in range(3):
        process = start(config, run_dir)
        wait_until_started(run_dir, attempt + 1)
        time.sleep(rng.uniform(0.0, 4.0))  # a random point of the run: proposing, evaluating, writing
        if process.poll() is not None:
            break
        os.killpg(process.pid, signal.SIGKILL)  # the driver and its workers, like a crashed machine
        process.wait()
        kills += 1
        if (run_dir / "archive.sqlite").exists():
            consistent(run_dir)
    process = start(config, run_dir)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert "stopped: every rung budget spent" in out
    final = consistent(run_dir)
    assert final["started"] == kills + 1
    statuses = Counter(e.status for e in final["evaluations"])
    assert set(statuses) <= {"ok", "failed"} and statuses["ok"] >= 3, statuses
    # work finished before a kill was not repeated: only evaluations running at a kill ran twice
    assert sum(e.attempts - 1 for e in final["evaluations"]) <= 2 * kills
