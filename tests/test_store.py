"""The SQLite archive: designs deduped by canonical hash, the crash-safe evaluation
queue, scores, fitness and the leaderboard, run metadata, costs and events; an
archive that survives SIGKILL at any instant; stores from third-party plugins."""

import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

import genesys_dsl as g
from genesys_dsl import hookimpl
from genesys_dsl.evaluate import TaskScore
from genesys_dsl.evolve.sqlite_store import ARCHIVE_FILE, SCHEMA_VERSION, SQLiteStore
from genesys_dsl.evolve.store import DesignRecord, EvaluationResult, StoreError, StoreKind
from genesys_dsl.gp import canonical_hash, mutate
from genesys_dsl.plugins import PluginFailure, build_registry, make_plugin_manager, store_registry
from paths import ROOT, SPECS

TESTS = Path(__file__).resolve().parent
TRANSFORMER = g.parse_file(SPECS / "transformer.gab")
LLAMA = g.parse_file(SPECS / "llama.gab")


@pytest.fixture
def store(tmp_path):
    with SQLiteStore.open(tmp_path / "run") as s:
        yield s


def record(i: int, **fields) -> DesignRecord:
    """A synthetic design whose id is chosen by the test."""
    fields.setdefault("name", f"d{i}")
    return DesignRecord(id=fields.pop("id", f"{i:064x}"), text=f"design d{i}\n", **fields)


def scores(*values: float) -> list[dict]:
    return [TaskScore("synthetic", f"task{i}", "accuracy", v, 0.25, 1.0, {"tokens": 500}).to_dict()
            for i, v in enumerate(values)]


# ------------------------------------------------------------------ designs


def test_a_design_is_archived_once_by_its_canonical_hash(store):
    seed = DesignRecord.from_design(TRANSFORMER)
    assert seed.id == canonical_hash(TRANSFORMER) and seed.name == TRANSFORMER.name
    assert g.same_design(g.parse(seed.text, filename="archived"), TRANSFORMER)
    assert store.add_design(seed) is True
    renamed = TRANSFORMER.model_copy(update={"name": "same_architecture"})
    assert store.add_design(DesignRecord.from_design(renamed, status="invalid")) is False  # nothing written
    (only,) = store.designs()
    assert (only.name, only.status, only.created_at is not None) == (TRANSFORMER.name, "valid", True)


def test_designs_keep_their_lineage_and_come_back_in_insertion_order(store):
    parent = DesignRecord.from_design(TRANSFORMER)
    child = mutate(TRANSFORMER, seed=3)
    store.add_design(parent)
    store.add_design(DesignRecord.from_design(LLAMA))
    rec = DesignRecord.from_design(child.design, name="child", parents=[parent.id], origin="mutation",
                                   operator=child.operator, edits=child.edits, generation=1,
                                   proposal={"motivation": "try"}, transcript="agents/1.jsonl")
    assert store.add_design(rec)
    assert [d.name for d in store.designs()] == [TRANSFORMER.name, LLAMA.name, "child"]
    back = store.get_design(rec.id)
    assert back == DesignRecord(**{**rec.to_dict(), "created_at": back.created_at})
    assert store.children(parent.id) == [rec.id]


def test_parents_must_be_archived_before_their_children(store):
    with pytest.raises(StoreError, match=r"parent\(s\) 0{63}9 are not archived"):
        store.add_design(record(1, parents=[f"{9:064x}"]))
    assert store.designs() == []


def test_status_and_reports(store):
    store.add_design(record(1))
    store.set_status(record(1).id, "invalid", "E: unknown primitive")
    assert [d.id for d in store.designs("invalid")] == [record(1).id] and store.designs("valid") == []
    assert store.get_design("d1").reason == "E: unknown primitive"
    store.add_report(record(1).id, "check", False, {"diagnostics": [{"code": "unknown-name"}]})
    store.add_report(record(1).id, "verify", True, {"params": 1234})
    assert [(r["kind"], r["ok"], r["payload"]) for r in store.reports(record(1).id)] == [
        ("check", False, {"diagnostics": [{"code": "unknown-name"}]}), ("verify", True, {"params": 1234})]
    with pytest.raises(StoreError, match="no design 'nope'"):
        store.set_status("nope", "valid")


def test_get_design_by_id_prefix_or_name_and_helpful_errors(store):
    store.add_design(record(1, id="ab12" + "0" * 60, name="alpha"))
    store.add_design(record(2, id="ab34" + "0" * 60, name="beta"))
    store.add_design(record(3, id="cd56" + "0" * 60, name="beta"))
    assert store.get_design("ab1").name == "alpha" and store.get_design("alpha").id.startswith("ab12")
    with pytest.raises(StoreError, match=r"'ab' is ambiguous: 2 designs match by id prefix: ab120+ \(alpha, seed\), "
                                         r"ab340+ \(beta, seed\); give more of the id"):
        store.get_design("ab")
    with pytest.raises(StoreError, match="'beta' is ambiguous: 2 designs match by name"):
        store.get_design("beta")
    with pytest.raises(StoreError, match=r"no design 'alpah' .*\(3 designs; .*did you mean 'alpha'\?"):
        store.get_design("alpah")


# ------------------------------------------------------------------ the evaluation queue


def test_the_evaluation_queue_from_queued_to_scored(store):
    store.add_design(record(1))
    d = record(1).id
    first = store.queue_evaluation(d, "cpu-xs", 0)
    assert store.queue_evaluation(d, "cpu-xs", 0) == first  # idempotent
    second = store.queue_evaluation(d, "cpu-xs", 1)
    assert [e.id for e in store.pending_evaluations()] == [first, second]
    store.start_evaluation(first)
    assert [e.id for e in store.pending_evaluations()] == [second]
    store.finish_evaluation(first, EvaluationResult("ok", scores=scores(0.5, 1.0), tokens=1000, wall_seconds=2.5,
                                                    params=117_000, flops=1e6))
    (done, waiting) = store.evaluations(d)
    assert store.get_evaluation(first) == done
    assert (done.status, done.tokens, done.params, done.attempts, done.finished_at is not None) == (
        "ok", 1000, 117_000, 1, True)
    assert waiting.status == "queued"
    rows = store.scores(d, "cpu-xs")
    assert [(s.task, s.seed, s.score, s.normalized, s.tokens, s.wall_seconds) for s in rows] == [
        ("task0", 0, 0.5, pytest.approx(1 / 3), 500, 2.5), ("task1", 0, 1.0, 1.0, 500, 2.5)]
    assert store.scores(d, "cpu-s") == []


def test_failures_are_recorded_with_their_reason_and_no_scores(store):
    store.add_design(record(1))
    e = store.queue_evaluation(record(1).id, "cpu-xs", 0)
    store.start_evaluation(e)
    store.finish_evaluation(e, EvaluationResult.failed("timeout", "ran past 60 s"))
    (ev,) = store.evaluations()
    assert (ev.status, ev.reason, ev.message) == ("failed", "timeout", "ran past 60 s")
    assert store.scores(record(1).id) == []


def test_the_queue_refuses_impossible_transitions(store):
    store.add_design(record(1))
    e = store.queue_evaluation(record(1).id, "cpu-xs", 0)
    store.start_evaluation(e)
    with pytest.raises(StoreError, match=f"evaluation {e} is running, not queued"):
        store.start_evaluation(e)
    store.finish_evaluation(e, EvaluationResult("ok", scores=scores(0.5)))
    with pytest.raises(StoreError, match=f"evaluation {e} already finished \\(ok\\)"):
        store.finish_evaluation(e, EvaluationResult("ok", scores=scores(0.5)))
    assert len(store.scores(record(1).id)) == 1  # nothing half-written by the refused call
    with pytest.raises(StoreError, match="no evaluation 99"):
        store.start_evaluation(99)
    with pytest.raises(StoreError, match="no design"):
        store.queue_evaluation("missing", "cpu-xs", 0)


@pytest.mark.parametrize("make, message", [
    (lambda: EvaluationResult("ok", scores=scores(float("nan"))), "score is nan, not a finite number.*'nonfinite'"),
    (lambda: EvaluationResult("failed"), "a failed evaluation needs a reason"),
    (lambda: EvaluationResult("done"), "status must be 'ok' or 'failed'"),
    (lambda: EvaluationResult("ok", scores=[{"suite": "s"}]), "a task score lacks task, metric, score"),
])
def test_bad_results_are_refused_before_anything_is_written(make, message):
    with pytest.raises(StoreError, match=message):
        make()


def test_requeue_running_puts_interrupted_evaluations_back_in_the_queue(store):
    store.add_design(record(1))
    ids = [store.queue_evaluation(record(1).id, "cpu-xs", s) for s in range(3)]
    store.start_evaluation(ids[0])
    store.start_evaluation(ids[1])
    store.finish_evaluation(ids[1], EvaluationResult("ok", scores=scores(0.4)))
    assert store.requeue_running() == 1
    assert [e.id for e in store.pending_evaluations()] == [ids[0], ids[2]]
    store.start_evaluation(ids[0])
    assert store.evaluations()[0].attempts == 2


# ------------------------------------------------------------------ fitness and the leaderboard


def test_leaderboard_ranks_by_highest_rung_then_fitness(store):
    for i in range(1, 5):
        store.add_design(record(i))
        store.queue_evaluation(record(i).id, "cpu-xs", 0)
    store.queue_evaluation(record(4).id, "cpu-s", 0)  # the second rung appears later
    for i, fit in ((1, 0.3), (2, 0.5), (3, 0.1), (4, 0.2)):
        store.set_fitness(record(i).id, "cpu-xs", fit, fit - 0.1, fit + 0.1)
    store.set_fitness(record(4).id, "cpu-s", 0.05, 0.0, 0.1)
    assert store.rungs() == ["cpu-xs", "cpu-s"]
    board = store.leaderboard()
    assert [(e.design.name, e.rung, e.fitness.mean) for e in board] == [
        ("d4", "cpu-s", 0.05), ("d2", "cpu-xs", 0.5), ("d1", "cpu-xs", 0.3), ("d3", "cpu-xs", 0.1)]
    assert list(board[0].by_rung) == ["cpu-xs", "cpu-s"] and board[0].to_dict()["fitness"]["cpu-xs"]["mean"] == 0.2
    assert [e.design.name for e in store.leaderboard("cpu-xs", limit=2)] == ["d2", "d1"]
    store.set_fitness(record(3).id, "cpu-xs", 0.9, 0.8, 1.0)  # updated in place
    assert store.leaderboard("cpu-xs", limit=1)[0].design.name == "d3"
    store.set_meta("rungs", ["cpu-s", "cpu-xs"])  # the run's ladder, when declared, decides the order
    assert store.rungs() == ["cpu-s", "cpu-xs"] and store.leaderboard()[0].rung == "cpu-xs"
    with pytest.raises(StoreError, match="not finite"):
        store.set_fitness(record(1).id, "cpu-xs", float("nan"), 0, 1)


# ------------------------------------------------------------------ metadata, costs, events, atomicity


def test_meta_costs_and_events(store):
    assert store.get_meta("rng", "none") == "none"
    state = {"version": 3, "state": list(range(5))}
    store.set_meta("rng", state)
    store.set_meta("rng", {**state, "version": 4})
    assert store.get_meta("rng")["version"] == 4
    with pytest.raises(StoreError, match="meta 'bad' is not storable as JSON"):
        store.set_meta("bad", {1, 2})
    store.add_design(record(1))
    store.add_cost(record(1).id, "proposer", 1200, 300, 0.004)
    store.add_cost(None, "reviewer", 100, 20, 0.0005)
    assert [(c["design_id"], c["role"], c["dollars"]) for c in store.costs()] == [
        (record(1).id, "proposer", 0.004), (None, "reviewer", 0.0005)]
    store.log_event("start", {"config": "default"})
    store.log_event("promote", {"design": "d1"})
    assert [e["kind"] for e in store.events()] == ["start", "promote"]
    assert [e["payload"] for e in store.events("promote")] == [{"design": "d1"}]


def test_a_transaction_is_all_or_nothing(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.add_design(record(1))
            store.set_meta("next", 2)
            raise RuntimeError("killed half-way")
    assert store.designs() == [] and store.get_meta("next") is None
    with store.transaction():
        store.add_design(record(1))
        with store.transaction():  # nested: joins the outer one
            store.set_meta("next", 2)
    assert len(store.designs()) == 1 and store.get_meta("next") == 2


# ------------------------------------------------------------------ the file


def test_the_archive_persists_with_wal_foreign_keys_and_a_schema_version(tmp_path):
    run = tmp_path / "run"
    with SQLiteStore.open(run) as s:
        s.add_design(record(1))
    assert (run / ARCHIVE_FILE).is_file()
    with SQLiteStore.open(run) as s:
        assert [d.name for d in s.designs()] == ["d1"] and s.integrity_check() == []
        assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s._db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert sqlite3.connect(run / ARCHIVE_FILE).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_unusable_files_are_refused_with_a_reason(tmp_path):
    newer = tmp_path / "newer.sqlite"
    sqlite3.connect(newer).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="written by a newer genesys-dsl"):
        SQLiteStore(newer)
    foreign = tmp_path / "foreign.sqlite"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    with pytest.raises(StoreError, match="not a genesys archive"):
        SQLiteStore(foreign)
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="not a usable SQLite archive"):
        SQLiteStore(garbage)
    with pytest.raises(StoreError, match="no archive here"):
        SQLiteStore(tmp_path / "missing.sqlite", create=False)


# ------------------------------------------------------------------ crash safety


def check_consistent(path: Path) -> dict:
    """The invariants a killed writer must leave intact; returns what is finished."""
    with SQLiteStore(path, create=False) as s:
        assert s.integrity_check() == []
        db = s._db
        one = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
        assert one("SELECT count(*) FROM designs") == one("SELECT count(DISTINCT id) FROM designs")
        assert one("SELECT count(*) FROM designs") == (s.get_meta("next") or 0)  # written together
        assert one("SELECT count(*) FROM designs WHERE generation > 0 AND id NOT IN (SELECT child FROM parents)") == 0
        # every ok evaluation has all its scores; scores only on ok evaluations
        assert one("SELECT count(*) FROM evaluations e WHERE status = 'ok' AND "
                   "(SELECT count(*) FROM scores WHERE evaluation_id = e.id) != 2") == 0
        assert one("SELECT count(*) FROM scores s JOIN evaluations e ON e.id = s.evaluation_id "
                   "WHERE e.status != 'ok'") == 0
        assert one("SELECT count(*) FROM evaluations WHERE status IN ('ok', 'failed')") == len(s.events("evaluated"))
        running = one("SELECT count(*) FROM evaluations WHERE status = 'running'")
        assert s.requeue_running() == running
        assert one("SELECT count(*) FROM evaluations WHERE status = 'running'") == 0
        finished = {e.id: (e.status, e.finished_at) for e in s.evaluations() if e.status in ("ok", "failed")}
        score_rows = db.execute("SELECT * FROM scores ORDER BY id").fetchall()
        return {"finished": finished, "scores": [tuple(r) for r in score_rows], "running": running,
                "designs": one("SELECT count(*) FROM designs")}


def test_the_archive_survives_sigkill_at_random_points(tmp_path):
    rng = random.Random(7)
    run = tmp_path / "run"
    path = run / ARCHIVE_FILE
    before = {"finished": {}, "scores": [], "designs": 0}
    requeued = 0
    for kill in range(6):
        writer = subprocess.Popen([sys.executable, str(TESTS / "store_writer.py"), str(run), str(kill)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert writer.stdout.readline() == "resumed\n", writer.stderr.read()
            time.sleep(rng.uniform(0.1, 0.5))
            assert writer.poll() is None, writer.stderr.read()
            writer.send_signal(signal.SIGKILL)
            writer.wait()
        finally:
            writer.kill()
            writer.wait()
        after = check_consistent(path)
        # nothing finished is lost or redone; designs only grow
        assert {k: after["finished"][k] for k in before["finished"]} == before["finished"]
        assert after["scores"][:len(before["scores"])] == before["scores"]
        assert after["designs"] >= before["designs"]
        requeued += after["running"]
        before = after
    assert before["designs"] > 12 and len(before["finished"]) > 12  # the writer made progress after each resume
    assert requeued > 0  # some kills landed while an evaluation was running


# ------------------------------------------------------------------ registry and third-party stores


def test_sqlite_is_the_registered_default_store(tmp_path):
    kind = store_registry().lookup("sqlite")
    assert kind.plugin == "evolve" and not kind.exists(str(tmp_path))
    with kind.open(str(tmp_path)) as s:
        s.add_design(record(1))
    assert kind.exists(str(tmp_path))


class MemoryStores:
    """A test plugin: a store kind keeping archives in a given folder."""

    def __init__(self, folder):
        self.folder = folder

    @hookimpl
    def register_stores(self, register):
        register(StoreKind("elsewhere", "archives in one folder",
                           open=lambda run: SQLiteStore(self.folder / f"{Path(run).name}.sqlite")))


class Broken:
    @hookimpl
    def register_stores(self, register):
        raise OSError("no database server")


def test_register_stores_from_a_third_party_plugin_and_a_raising_one_named(tmp_path):
    pm = make_plugin_manager({"mine": MemoryStores(tmp_path), "broken": Broken()})
    registry = build_registry(pm, "register_stores")
    assert list(registry) == ["elsewhere"] and registry["elsewhere"].plugin == "mine"
    with registry.lookup("elsewhere").open("runs/one") as s:
        assert s.add_design(record(1))
    assert (tmp_path / "one.sqlite").is_file()
    assert registry.failures == [PluginFailure("broken", "register_stores", "OSError: no database server")]


def test_the_store_how_to_in_docs_plugins_works(tmp_path, monkeypatch):
    text = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = text.split("## `register_stores(register)`\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    namespace: dict = {}
    exec(compile(block, "docs/plugins.md", "exec"), namespace)
    kind = build_registry(make_plugin_manager({"docs": types.SimpleNamespace(**namespace)}),
                          "register_stores").lookup("scratch")
    monkeypatch.setenv("SCRATCH", str(tmp_path / "scratch"))
    assert not kind.exists("runs/first")
    with kind.open("runs/first") as s:
        s.add_design(record(1))
    assert kind.exists("runs/first") and (tmp_path / "scratch" / "genesys" / "first" / ARCHIVE_FILE).is_file()
