"""Executors: every way a job can end comes back as a result with its reason, limits
are enforced in child processes, children never outlive their parent, and executors
from third-party plugins are found like the built-in ones."""

import json
import os
import re
import signal
import subprocess
import sys
import types
from pathlib import Path

import pytest

from genesys_dsl import hookimpl
from genesys_dsl.evolve.executor import ExecutorError, ExecutorKind, Job, JobResult, Limits, run_job
from genesys_dsl.evolve.inprocess import InProcessExecutor
from genesys_dsl.evolve.subprocess_pool import SubprocessExecutor
from genesys_dsl.plugins import PluginError, PluginFailure, build_registry, executor_registry, make_plugin_manager
from paths import ROOT
from processes import alive, job, wait_for

TESTS = Path(__file__).resolve().parent


# ------------------------------------------------------------------ outcomes, in both executors

# jobs that are safe to run in the test process itself
SAFE = [
    job("echo", {"n": 1}),
    job("raises", {"n": 7}),
    job("diverges"),
    job("nan"),
    job("not_a_dict"),
    Job("missing", "executor_jobs:no_such_function"),
    Job("missing_module", "no_such_package.jobs:run"),
]
# jobs only a child process survives
UNSAFE = [
    job("sleeps", {"seconds": 3600}, wall_seconds=1.0),
    job("allocates", {"mb": 4096}, memory_mb=300),
    job("exits", {"status": 3}),
    job("segfaults"),
    job("killed"),
]


@pytest.fixture(scope="module")
def subprocess_results():
    """Every job through one pool of two workers; the pool goes on after each failure."""
    with SubprocessExecutor(workers=2) as executor:
        for j in SAFE + UNSAFE:
            executor.submit(j)
        assert executor.running() == len(SAFE + UNSAFE)
        results = {r.key: r for r in executor.results(timeout=120)}
        assert executor.running() == 0
    return results


@pytest.fixture(scope="module")
def inprocess_results():
    executor = InProcessExecutor()
    for j in SAFE:
        executor.submit(j)
    return {r.key: r for r in executor.results()}


@pytest.fixture(params=["inprocess", "subprocess"])
def results(request):
    return request.getfixturevalue(f"{request.param}_results")


def test_a_returned_value_comes_back_as_json_data(results):
    r = results["echo"]
    assert (r.status, r.reason, r.message) == ("ok", None, None) and r.ok
    assert r.value["echo"] == {"n": 1} and r.wall_seconds > 0


def test_an_exception_is_an_error_with_its_one_line_message_and_the_traceback_kept(results):
    r = results["raises"]
    assert (r.status, r.reason, r.message) == ("failed", "error", "ValueError: bad input 7")
    assert "Traceback" in r.traceback and "second line" in r.traceback and r.value is None


def test_a_failure_that_names_its_reason_keeps_it(results):
    r = results["diverges"]
    assert (r.reason, r.message) == ("diverged", "Diverged: loss went to 1e9 at step 12")


def test_nan_in_the_value_is_a_nonfinite_failure(results):
    r = results["nan"]
    assert (r.status, r.reason) == ("failed", "nonfinite") and "value['loss'] is nan" in r.message


def test_a_value_that_is_not_a_dict_is_an_error(results):
    assert (results["not_a_dict"].reason, results["not_a_dict"].message) == ("error", "returned list, not a dict")


def test_a_function_that_cannot_be_imported_is_an_error_naming_it(results):
    assert results["missing"].reason == "error" and "no_such_function" in results["missing"].message
    assert results["missing_module"].message == "ModuleNotFoundError: No module named 'no_such_package'"


def test_the_inprocess_executor_gives_what_the_subprocess_one_gives(inprocess_results, subprocess_results):
    for key, r in inprocess_results.items():
        other = subprocess_results[key]
        assert (r.status, r.reason, r.message) == (other.status, other.reason, other.message), key
    assert inprocess_results["echo"].value["pid"] == os.getpid() != subprocess_results["echo"].value["pid"]


# ------------------------------------------------------------------ what only a child process survives


def test_a_job_past_its_wall_time_is_killed_and_recorded_as_timeout(subprocess_results):
    r = subprocess_results["sleeps"]
    assert (r.status, r.reason) == ("failed", "timeout") and "1 s wall-time limit" in r.message


def test_a_job_over_its_memory_limit_is_recorded_as_oom(subprocess_results):
    r = subprocess_results["allocates"]
    assert (r.status, r.reason) == ("failed", "oom")
    assert r.message == "MemoryError (the job's memory limit is 300 MB)"


def test_a_child_that_exits_without_a_result_crashed(subprocess_results):
    r = subprocess_results["exits"]
    assert (r.reason, r.message) == ("crash", "exited with status 3 without a result")


def test_a_segfault_is_a_crash_with_the_python_stack_kept(subprocess_results):
    r = subprocess_results["segfaults"]
    assert (r.reason, r.message) == ("crash", "killed by signal SIGSEGV")
    assert "Segmentation fault" in r.traceback and "segfaults" in r.traceback


def test_a_sigkill_we_did_not_send_is_taken_for_the_oom_killer(subprocess_results):
    r = subprocess_results["killed"]
    assert r.reason == "oom" and "SIGKILL" in r.message


def test_two_workers_run_two_jobs_at_once():
    with SubprocessExecutor(workers=2) as executor:
        for key in ("a", "b"):
            executor.submit(Job(key, "executor_jobs:marks_time", {"seconds": 1.5}))
        a, b = (r.value for r in sorted(executor.results(timeout=60), key=lambda r: r.key))
    assert a["start"] < b["end"] and b["start"] < a["end"]  # the two sleeps overlapped


def test_one_worker_runs_jobs_one_after_another():
    with SubprocessExecutor(workers=1) as executor:
        for key in ("a", "b"):
            executor.submit(Job(key, "executor_jobs:marks_time", {"seconds": 0.2}))
        a, b = (r.value for r in sorted(executor.results(timeout=60), key=lambda r: r.key))
    assert a["end"] <= b["start"]


def test_results_stop_at_their_timeout_and_the_job_reports_later(tmp_path):
    with SubprocessExecutor(workers=1) as executor:
        executor.submit(job("sleeps", {"seconds": 1.0}))
        assert list(executor.results(timeout=0.1)) == []
        assert executor.running() == 1
        (r,) = executor.results(timeout=60)
    assert r.ok and r.value == {"slept": 1.0}


def test_shutdown_kills_running_children(tmp_path):
    pid_file = tmp_path / "pid"
    executor = SubprocessExecutor(workers=1)
    executor.submit(job("sleeps", {"pid_file": str(pid_file)}))
    assert wait_for(pid_file.exists)
    pid = int(pid_file.read_text())
    assert alive(pid)
    executor.shutdown()
    assert not alive(pid) and executor.running() == 0
    with pytest.raises(ExecutorError, match="shut down"):
        executor.submit(job("echo"))


PARENT = """
import sys
sys.path.insert(0, {tests!r})
from genesys_dsl.evolve.executor import Job
from genesys_dsl.evolve.subprocess_pool import SubprocessExecutor
executor = SubprocessExecutor(workers=1)
executor.submit(Job("s", "executor_jobs:sleeps", {{"pid_file": {pid_file!r}}}))
for result in executor.results():
    print(result)
"""


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_no_child_outlives_an_interrupted_or_killed_parent(tmp_path, how):
    pid_file = tmp_path / "pid"
    parent = subprocess.Popen([sys.executable, "-c", PARENT.format(tests=str(TESTS), pid_file=str(pid_file))],
                              stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(pid_file.exists), parent.stderr.read() if parent.poll() is not None else "no pid"
        child = int(pid_file.read_text())
        parent.send_signal(how)
        parent.wait(timeout=20)
        assert wait_for(lambda: not alive(child), seconds=5), f"child {child} outlived its parent ({how.name})"
        if how == signal.SIGINT:
            assert "KeyboardInterrupt" in parent.stderr.read()
    finally:
        parent.kill()
        parent.wait()


# ------------------------------------------------------------------ mistakes


def test_a_malformed_job_is_refused_before_it_runs():
    with pytest.raises(ExecutorError, match="'package.module:function', not 'os.system'"):
        Job("k", "os.system")
    with pytest.raises(ExecutorError, match="job k: payload is not JSON"):
        Job("k", "executor_jobs:echo", {"x": object()})
    with pytest.raises(ExecutorError, match="limit wall_seconds must be a positive number"):
        Limits(wall_seconds=0)


@pytest.mark.parametrize("make", [InProcessExecutor, SubprocessExecutor])
def test_a_key_already_outstanding_is_refused(make):
    with make() as executor:
        executor.submit(job("sleeps", {"seconds": 0}))
        with pytest.raises(ExecutorError, match="key 'sleeps' is already outstanding"):
            executor.submit(job("sleeps", {"seconds": 0}))


def test_executors_are_registered_and_settings_are_checked():
    registry = executor_registry()
    assert {"inprocess", "subprocess"} <= set(registry) and registry["subprocess"].plugin == "evolve"
    pool = registry.lookup("subprocess").create({"workers": 2})
    assert pool.workers == 2 and pool.threads >= 1
    pool.shutdown()
    with pytest.raises(ExecutorError, match="unknown setting.* workres; it accepts: python, threads, workers"):
        registry.lookup("subprocess").create({"workres": 2})
    with pytest.raises(ExecutorError, match="setting workers must be int, not '2'"):
        registry.lookup("subprocess").create({"workers": "2"})
    with pytest.raises(ExecutorError, match="workers must be at least 1"):
        registry.lookup("subprocess").create({"workers": 0})
    with pytest.raises(ExecutorError, match="'inprocess': unknown setting.*it accepts: none"):
        registry.lookup("inprocess").create({"workers": 2})
    with pytest.raises(PluginError, match="unknown executor 'subproces'; did you mean 'subprocess'.*inprocess"):
        registry.lookup("subproces")


# ------------------------------------------------------------------ third-party executors


class SerialExecutors:
    """A test plugin: an executor that runs jobs here, like inprocess."""

    @hookimpl
    def register_executors(self, register):
        register(ExecutorKind("serial", "jobs here, one by one", lambda settings: InProcessExecutor()))


class Broken:
    @hookimpl
    def register_executors(self, register):
        raise RuntimeError("no cluster configured")


def test_register_executors_from_a_third_party_plugin_and_a_raising_one_named():
    pm = make_plugin_manager({"mine": SerialExecutors(), "broken": Broken()})
    registry = build_registry(pm, "register_executors")
    assert list(registry) == ["serial"] and registry["serial"].plugin == "mine"
    executor = registry.lookup("serial").create({})
    executor.submit(job("echo", {"n": 2}))
    assert [r.value["echo"] for r in executor.results()] == [{"n": 2}]
    assert registry.failures == [PluginFailure("broken", "register_executors", "RuntimeError: no cluster configured")]


def docs_section(heading: str) -> list[str]:
    """The python blocks under one '## ' heading of docs/plugins.md."""
    text = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_executor_how_to_in_docs_plugins_works():
    (block,) = docs_section("`register_executors(register)`")
    namespace: dict = {}
    exec(compile(block, "docs/plugins.md", "exec"), namespace)
    registry = build_registry(make_plugin_manager({"docs": types.SimpleNamespace(**namespace)}),
                              "register_executors")
    executor = registry.lookup("threads").create({"workers": 2})
    for j in (job("echo", {"n": 3}), job("raises", {"n": 4}), job("nan")):
        executor.submit(j)
    results = {r.key: r for r in executor.results(timeout=30)}
    executor.shutdown()
    assert results["echo"].value["echo"] == {"n": 3}
    assert (results["raises"].reason, results["nan"].reason) == ("error", "nonfinite")


def test_run_job_results_are_plain_json():
    r = run_job(job("echo", {"n": [1, 2]}))
    assert JobResult.from_dict(json.loads(json.dumps(r.to_dict()))) == r
