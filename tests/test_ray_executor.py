"""The Ray executor on a local Ray instance with 2 CPUs on loopback, started once for
the module: every way a job ends, a worker killed mid-way (retried, then recorded),
and a small evolution whose evaluations run as Ray tasks while one of them is killed.

Ray's start-up and a fresh worker per job take seconds on two cores, hence `slow`."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from genesys_dsl.cli import main
from genesys_dsl.evolve.commands import with_executor
from genesys_dsl.evolve.config import parse_evolve_config
from genesys_dsl.evolve.executor import ExecutorError, Job, Limits, run_job
from genesys_dsl.evolve.loop import Evolution
from genesys_dsl.evolve.ray_executor import TASK_PREFIX, RayExecutor
from genesys_dsl.plugins import executor_registry, store_registry
from paths import SPECS
from processes import alive, job, wait_for

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="Ray is not installed (pip install 'genesys-dsl[ray]')")


def on_ray(test):
    """A test on the module's Ray instance (slow: Ray starts in seconds, every job in a fresh worker)."""
    return pytest.mark.slow(needs_ray(test))


def read_pid(path: Path) -> int | None:
    return int(path.read_text()) if path.exists() else None


def visible_gpus(payload):
    """A job: which GPUs CUDA would see where it runs."""
    return {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")}


# ------------------------------------------------------------------ the local instance, once


@pytest.fixture(scope="module")
def cluster():
    """The executor that started the module's local Ray instance (2 CPUs, loopback)."""
    executor = RayExecutor(cpus=2)
    yield executor
    executor.shutdown()


@pytest.fixture(scope="module")
def outcomes(cluster):
    """Jobs that end every way, through the module's instance (two at a time)."""
    jobs = [
        job("echo", {"n": 1}),
        job("raises", {"n": 7}),
        job("sleeps", {"seconds": 3600}, wall_seconds=2.0),
        job("allocates", {"mb": 4096}, memory_mb=1500),
        job("killed"),
        Job("gpus", "test_ray_executor:visible_gpus"),
    ]
    for j in jobs:
        cluster.submit(j)
    assert cluster.running() == len(jobs)
    results = {r.key: r for r in cluster.results(timeout=240)}
    assert cluster.running() == 0
    return {"jobs": {j.key: j for j in jobs}, "results": results}


@on_ray
def test_the_local_instance_listens_on_loopback_with_the_cpus_asked_for(cluster):
    import ray

    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    assert ray.cluster_resources()["CPU"] == 2 and cluster.workers == 2


@on_ray
def test_a_job_returns_what_it_returns_in_process_from_another_process(outcomes):
    r = outcomes["results"]["echo"]
    assert r.ok and r.value["echo"] == {"n": 1} and r.value["pid"] != os.getpid()
    for key in ("echo", "raises"):  # the same outcome as running it here
        here, there = run_job(outcomes["jobs"][key]), outcomes["results"][key]
        assert (there.status, there.reason, there.message) == (here.status, here.reason, here.message), key
    assert outcomes["results"]["raises"].message == "ValueError: bad input 7"
    assert "second line" in outcomes["results"]["raises"].traceback


@on_ray
def test_a_job_that_asks_for_no_gpu_sees_none(outcomes):
    assert outcomes["results"]["gpus"].value == {"CUDA_VISIBLE_DEVICES": ""}


@on_ray
def test_a_job_past_its_wall_time_is_cancelled_and_recorded_as_timeout(outcomes):
    r = outcomes["results"]["sleeps"]
    assert (r.status, r.reason) == ("failed", "timeout") and "2 s wall-time limit" in r.message
    assert r.wall_seconds >= 2.0


@on_ray
def test_a_job_over_its_memory_limit_is_recorded_as_oom(outcomes):
    r = outcomes["results"]["allocates"]
    assert (r.status, r.reason, r.message) == ("failed", "oom", "MemoryError (the job's memory limit is 1500 MB)")


@on_ray
def test_a_worker_that_dies_every_time_is_retried_then_recorded_as_a_crash(outcomes):
    r = outcomes["results"]["killed"]
    assert (r.status, r.reason) == ("failed", "crash")
    assert r.message == "its Ray worker died (WorkerCrashedError; 2 attempts)"  # max_retries 1: two attempts


@on_ray
def test_a_worker_killed_mid_way_is_retried_and_the_retry_finishes(cluster, tmp_path):
    pid_file = tmp_path / "pid"
    cluster.submit(job("sleeps", {"pid_file": str(pid_file), "seconds": 1.0}, wall_seconds=120))
    assert wait_for(pid_file.exists, seconds=60)
    first = read_pid(pid_file)
    pid_file.unlink()
    os.kill(first, signal.SIGKILL)
    assert wait_for(lambda: not alive(first), seconds=10)
    (r,) = cluster.results(timeout=120)
    assert r.ok and r.value == {"slept": 1.0}
    assert read_pid(pid_file) not in (None, first)  # a second worker ran it


@on_ray
def test_a_second_executor_shares_the_instance_and_its_shutdown_kills_only_its_tasks(cluster, tmp_path):
    import ray

    pid_file = tmp_path / "pid"
    second = executor_registry().lookup("ray").create({"workers": 1, "max_retries": 0})
    second.submit(job("sleeps", {"pid_file": str(pid_file)}))
    assert wait_for(pid_file.exists, seconds=60)
    pid = read_pid(pid_file)
    assert list(second.results(timeout=0.1)) == [] and second.running() == 1  # results stop at their timeout
    with pytest.raises(ExecutorError, match="key 'sleeps' is already outstanding"):
        second.submit(job("sleeps"))
    second.shutdown()
    assert wait_for(lambda: not alive(pid), seconds=10) and second.running() == 0
    assert ray.is_initialized()  # the instance belongs to the executor that started it
    with pytest.raises(ExecutorError, match="shut down"):
        second.submit(job("echo"))


@on_ray
def test_a_job_the_local_instance_cannot_place_is_refused_naming_what_it_has(cluster):
    with pytest.raises(ExecutorError, match=r"job big needs 10000000 MB of memory \(its memory limit\) but the "
                                            r"local Ray instance has \d+"):
        cluster.submit(Job("big", "executor_jobs:echo", limits=Limits(memory_mb=10_000_000)))


# ------------------------------------------------------------------ an evolution through Ray


def ray_workers_of(pid: int) -> list[int]:
    """Ray worker processes under `pid` (the raylet of a local instance is its child)
    that are running a genesys job now."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::" + TASK_PREFIX + "eval:") and pid in ancestors(int(entry.name)):
            found.append(int(entry.name))
    return found


def ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
        chain.append(pid)
    return chain


def kill_one_evaluation(killed: list[int], stop: threading.Event) -> None:
    """Kill the first Ray worker seen evaluating a design, once."""
    while not stop.is_set():
        workers = ray_workers_of(os.getpid())
        if workers:
            time.sleep(0.5)  # mid-way: the worker has started on the design
            os.kill(workers[0], signal.SIGKILL)
            killed.append(workers[0])
            return
        time.sleep(0.05)


@on_ray
def test_an_evolution_runs_its_evaluations_as_ray_tasks_and_survives_a_killed_one(cluster, tmp_path):
    import ray

    config = parse_evolve_config({
        "run": {"seeds": [str(SPECS / "transformer.gab"), str(SPECS / "llama.gab")], "max_designs": 1,
                "minutes": 10},
        "evaluation": {"suites": ["perplexity"], "verify": False, "budgets": {"cpu-xs": 3},
                       "train": {"tokens": 1024, "batch_size": 4, "checkpoint_every": 0},
                       "options": {"perplexity": {"max_tokens": 128}}},
        "executor": {"name": "ray", "workers": 2, "settings": {"max_retries": 0}},
    }, "test")
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=kill_one_evaluation, args=(killed, stop), daemon=True)
    killer.start()
    evolution = Evolution(config, tmp_path)
    try:
        evolution.run()
    finally:
        stop.set()
        evolution.close()
    assert killed, "no evaluation was seen running in a Ray worker"
    assert evolution.stop_reason == "every rung budget spent"
    store = store_registry().lookup("sqlite").open(str(tmp_path))
    try:
        evaluations = store.evaluations()
        statuses = Counter(e.status for e in evaluations)
        assert set(statuses) == {"ok", "failed"} and statuses["failed"] == 1, statuses
        (crashed,) = [e for e in evaluations if e.status == "failed"]
        assert crashed.reason == "crash"
        assert store.get_design(crashed.design_id).status == "failed"
        for e in evaluations:  # the driver wrote every score the workers sent back
            assert bool(store.scores(e.design_id, e.rung)) == (e.status == "ok")
        assert statuses["ok"] >= 2 and all(e.attempts == 1 for e in evaluations)  # nothing ran twice
    finally:
        store.close()
    assert ray.is_initialized()  # the evolution's executor joined the instance; it did not stop it


# ------------------------------------------------------------------ mistakes, and the end


def test_without_ray_the_executor_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ModuleNotFoundError
    with pytest.raises(ExecutorError, match=r"executor 'ray' needs Ray, which is not installed: "
                                            r"pip install 'genesys-dsl\[ray\]'"):
        executor_registry().lookup("ray").create({})


def test_settings_are_checked_before_ray_is_touched(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    create = executor_registry().lookup("ray").create
    with pytest.raises(ExecutorError, match="unknown setting.* adress; it accepts: address, cpus, cpus_per_job, "
                                            "gpus_per_job, max_retries, workers"):
        create({"adress": "10.0.0.1:6379"})
    with pytest.raises(ExecutorError, match="setting max_retries must be int, not '2'"):
        create({"max_retries": "2"})
    with pytest.raises(ExecutorError, match="cpus_per_job must be more than 0, not 0.0"):
        create({"cpus_per_job": 0})
    with pytest.raises(ExecutorError, match="max_retries must be at least 0, not -1"):
        create({"max_retries": -1})
    with pytest.raises(ExecutorError, match="setting cpus sizes a local Ray instance; a cluster at 10.0.0.1:6379"):
        create({"address": "10.0.0.1:6379", "cpus": 4})


def test_an_address_where_nothing_listens_fails_at_once():
    with socket.socket() as closed:  # a port that was free a moment ago
        closed.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{closed.getsockname()[1]}"
    with pytest.raises(ExecutorError, match=f"no Ray cluster answers at {address} \\(Connection refused\\); "
                                            "start one there with `ray start --head`"):
        executor_registry().lookup("ray").create({"address": address})


def test_the_ray_executor_is_registered_by_the_evolve_plugin():
    kind = executor_registry().lookup("ray")
    assert kind.plugin == "evolve" and "genesys-dsl[ray]" in kind.summary


@pytest.mark.parametrize("argv, message", [
    (["--executor", "subproces"], "unknown executor 'subproces'; did you mean 'subprocess'"),
    (["--executor", "subprocess", "--ray-address", "10.0.0.1:6379"],
     "--ray-address is a setting of the ray executor, not of 'subprocess'"),
])
def test_evolve_executor_flags_are_checked_before_a_run_starts(tmp_path, capsys, argv, message):
    code = main(["evolve", "--run", str(tmp_path / "run"), "--quiet", *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("genesys: error: ") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_evolve_executor_flags_choose_the_executor_and_its_address():
    base = parse_evolve_config({"executor": {"name": "subprocess", "workers": 2, "settings": {"threads": 2}}}, "t")
    ray = with_executor(base, None, "10.0.0.1:6379")
    assert (ray.executor.name, ray.executor.settings, ray.executor.workers) == ("ray", {"address": "10.0.0.1:6379"}, 2)
    assert with_executor(base, "subprocess", None) == base  # its own settings stay
    assert with_executor(base, "inprocess", None).executor.settings == {}  # another executor's are dropped
    local = parse_evolve_config({"executor": {"name": "ray", "settings": {"max_retries": 3}}}, "t")
    assert with_executor(local, "ray", "auto").executor.settings == {"max_retries": 3, "address": "auto"}


@on_ray
def test_shutdown_stops_the_local_instance_it_started(cluster):
    import ray

    cluster.shutdown()
    assert not ray.is_initialized() and cluster.running() == 0
    cluster.shutdown()  # a second time does nothing


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def head(monkeypatch):
    """A one-node cluster started by `ray start --head` (2 CPUs, loopback): its address."""
    # Ray reads these once, before this process first imports it: token authentication
    # (the head's token is this user's ~/.ray/auth_token, so the driver has it too), and
    # loopback (else Ray would dial 127.0.0.1 at the machine's outward address)
    ray_env = {"RAY_AUTH_MODE": "token", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    for name, value in ray_env.items():
        monkeypatch.setenv(name, value)
    import ray

    if ray.is_initialized():  # the module's local instance: this process is to join the head instead
        ray.shutdown()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, **ray_env}
    # its own temp dir (short: Ray's socket paths must fit 107 bytes), so that no later
    # `ray.init()` on this machine finds the dead head's address in /tmp/ray
    temp_dir = tempfile.mkdtemp(prefix="ray-")
    process = subprocess.Popen([str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
                                f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                                "--disable-usage-stats", f"--temp-dir={temp_dir}"], env=env,
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process, f"127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the head and everything it started
        process.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)


@on_ray
def test_an_address_joins_that_cluster_and_shutdown_only_disconnects(head):
    import ray

    process, address = head
    assert wait_for(lambda: listening(int(address.rsplit(":", 1)[1])))
    executor = executor_registry().lookup("ray").create({"address": address})
    assert ray.get_runtime_context().gcs_address == address and executor.workers == 2
    executor.submit(job("echo", {"n": 5}))
    (r,) = executor.results(timeout=120)
    assert r.ok and r.value["echo"] == {"n": 5}
    executor.shutdown()
    assert not ray.is_initialized() and process.poll() is None  # disconnected; the cluster runs on
