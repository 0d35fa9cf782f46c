"""The embedded archive store: one SQLite file per run, RUN/archive.sqlite.

WAL mode (readers such as `genesys archive` never block the running search),
foreign keys on, and one transaction per state change, so a process killed at any
instant leaves either the whole change or none of it. `synchronous=NORMAL` is safe
against a killed process in WAL mode; only a power cut may lose the last commits.
The schema is versioned with `PRAGMA user_version`; an archive written by a newer
genesys-dsl is refused rather than misread.
"""

from __future__ import annotations

import difflib
import json
import math
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from .store import (
    FAILED, FINISHED, QUEUED, RUNNING, DesignRecord, EvaluationRecord, EvaluationResult, FitnessRecord,
    LeaderboardEntry, ScoreRecord, StoreError, StoreKind, ordered_rungs,
)

ARCHIVE_FILE = "archive.sqlite"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000  # a reader checkpointing the WAL may hold the lock briefly

SCHEMA = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL                       -- JSON
);
CREATE TABLE designs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,    -- insertion order
    id TEXT NOT NULL UNIQUE,                  -- canonical hash
    name TEXT NOT NULL,
    text TEXT NOT NULL,
    origin TEXT NOT NULL,
    operator TEXT,
    edits TEXT NOT NULL,                      -- JSON list of strings
    proposal TEXT,                            -- JSON object
    transcript TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    created_at TEXT NOT NULL,
    generation INTEGER NOT NULL
);
CREATE TABLE parents (
    child TEXT NOT NULL REFERENCES designs(id),
    position INTEGER NOT NULL,
    parent TEXT NOT NULL REFERENCES designs(id),
    PRIMARY KEY (child, position)
);
CREATE INDEX parents_by_parent ON parents(parent);
CREATE TABLE reports (
    id INTEGER PRIMARY KEY,
    design_id TEXT NOT NULL REFERENCES designs(id),
    kind TEXT NOT NULL,
    ok INTEGER NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX reports_by_design ON reports(design_id);
CREATE TABLE evaluations (
    id INTEGER PRIMARY KEY,
    design_id TEXT NOT NULL REFERENCES designs(id),
    rung TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'ok', 'failed')),
    reason TEXT,
    message TEXT,
    tokens INTEGER,
    wall_seconds REAL,
    params INTEGER,
    flops REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    queued_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    UNIQUE (design_id, rung, seed)
);
CREATE INDEX evaluations_by_status ON evaluations(status);
CREATE TABLE scores (
    id INTEGER PRIMARY KEY,
    evaluation_id INTEGER NOT NULL REFERENCES evaluations(id),  -- design, rung and seed come from it
    suite TEXT NOT NULL,
    task TEXT NOT NULL,
    metric TEXT NOT NULL,
    score REAL NOT NULL,
    normalized REAL,
    random_score REAL,
    best_score REAL,
    tokens INTEGER,
    wall_seconds REAL,
    details TEXT NOT NULL,                    -- JSON object
    UNIQUE (evaluation_id, suite, task)
);
CREATE TABLE fitness (
    design_id TEXT NOT NULL REFERENCES designs(id),
    rung TEXT NOT NULL,
    mean REAL NOT NULL,
    ci_low REAL NOT NULL,
    ci_high REAL NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (design_id, rung)
);
CREATE TABLE costs (
    id INTEGER PRIMARY KEY,
    design_id TEXT REFERENCES designs(id),
    role TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    dollars REAL NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,                    -- JSON object
    created_at TEXT NOT NULL
);
CREATE INDEX events_by_kind ON events(kind);
"""

_DESIGN_COLUMNS = ("id, name, text, origin, operator, edits, proposal, transcript, status, reason, created_at, "
                   "generation")
_EVALUATION_COLUMNS = ("id, design_id, rung, seed, status, reason, message, tokens, wall_seconds, params, flops, "
                       "attempts, queued_at, started_at, finished_at")
_SCORE_SELECT = """
    SELECT s.evaluation_id, e.design_id, e.rung, s.suite, s.task, e.seed, s.metric, s.score, s.normalized,
           s.random_score, s.best_score, s.tokens, s.wall_seconds, s.details
    FROM scores s JOIN evaluations e ON e.id = s.evaluation_id
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as err:
        raise StoreError(f"{what} is not storable as JSON: {err}") from None


def archive_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / ARCHIVE_FILE


def archive_exists(run_dir: str | Path) -> bool:
    return archive_path(run_dir).is_file()


class SQLiteStore:
    """A run's archive in one SQLite file. Use `SQLiteStore.open(run_dir)` (creates the
    folder and the archive when missing) or `SQLiteStore(path, create=False)`. A store
    is used from the thread that opened it; other processes may read it meanwhile."""

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise StoreError(f"{self.path}: no archive here")
        self._depth = 0  # nesting of transaction()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except (OSError, sqlite3.Error) as err:
            raise StoreError(f"{self.path}: cannot open the archive: {err}") from None
        self._db.row_factory = sqlite3.Row
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as err:
            self._db.close()
            raise StoreError(f"{self.path}: not a usable SQLite archive: {err}") from None

    @classmethod
    def open(cls, run_dir: str | Path) -> SQLiteStore:
        """The archive of the run in `run_dir`, created (with the folder) when missing."""
        return cls(archive_path(run_dir))

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: archive schema {version} was written by a newer genesys-dsl "
                             f"(this one reads schema {SCHEMA_VERSION}); upgrade genesys-dsl to open it")
        if version == SCHEMA_VERSION:
            return
        tables = self._db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        if tables:
            raise StoreError(f"{self.path}: a SQLite file that is not a genesys archive (it has tables "
                             f"but no schema version)")
        with self.transaction():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic state change; nested uses join the outermost transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlocks
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._db.execute("ROLLBACK")
            raise
        self._depth = 0
        self._db.execute("COMMIT")

    def integrity_check(self) -> list[str]:
        """SQLite's own consistency check plus foreign keys: [] when the file is sound."""
        problems = [row[0] for row in self._db.execute("PRAGMA integrity_check") if row[0] != "ok"]
        problems += [f"{row[0]} row {row[1]} references a missing {row[2]}"
                     for row in self._db.execute("PRAGMA foreign_key_check")]
        return problems

    # ------------------------------------------------------------------ metadata

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        encoded = _dumps(value, f"meta '{key}'")
        with self.transaction():
            self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, encoded))

    # ------------------------------------------------------------------ designs

    def add_design(self, rec: DesignRecord) -> bool:
        """Archive `rec`; False (and nothing written) when its hash is already archived."""
        row = (rec.id, rec.name, rec.text, rec.origin, rec.operator, _dumps(rec.edits, "edits"),
               None if rec.proposal is None else _dumps(rec.proposal, "proposal"), rec.transcript, rec.status,
               rec.reason, rec.created_at or _now(), rec.generation)
        with self.transaction():
            if self.has_design(rec.id):
                return False
            missing = [p for p in rec.parents if not self.has_design(p)]
            if missing:
                raise StoreError(f"design {rec.id[:12]} ({rec.name}): parent(s) {', '.join(missing)} are not "
                                 f"archived; add parents before their children")
            self._db.execute(f"INSERT INTO designs ({_DESIGN_COLUMNS}) VALUES ({', '.join('?' * 12)})", row)
            self._db.executemany("INSERT INTO parents (child, position, parent) VALUES (?, ?, ?)",
                                 [(rec.id, i, p) for i, p in enumerate(rec.parents)])
        return True

    def has_design(self, design_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM designs WHERE id = ?", (design_id,)).fetchone() is not None

    def _design(self, row: sqlite3.Row) -> DesignRecord:
        parents = [r[0] for r in self._db.execute(
            "SELECT parent FROM parents WHERE child = ? ORDER BY position", (row["id"],))]
        return DesignRecord(
            id=row["id"], name=row["name"], text=row["text"], parents=parents, origin=row["origin"],
            operator=row["operator"], edits=json.loads(row["edits"]),
            proposal=None if row["proposal"] is None else json.loads(row["proposal"]),
            transcript=row["transcript"], status=row["status"], reason=row["reason"],
            created_at=row["created_at"], generation=row["generation"])

    def get_design(self, id_or_prefix: str) -> DesignRecord:
        """By full id, unique id prefix, or unique name; StoreError listing the candidates otherwise."""
        if not id_or_prefix:
            raise StoreError("an empty design id: give an id, an id prefix or a name")
        query = f"SELECT {_DESIGN_COLUMNS} FROM designs WHERE "
        row = self._db.execute(query + "id = ?", (id_or_prefix,)).fetchone()
        if row is not None:
            return self._design(row)
        for how, clause, args in (("id prefix", "substr(id, 1, ?) = ?", (len(id_or_prefix), id_or_prefix)),
                                  ("name", "name = ?", (id_or_prefix,))):
            rows = self._db.execute(query + clause + " ORDER BY seq", args).fetchall()
            if len(rows) == 1:
                return self._design(rows[0])
            if rows:
                listed = ", ".join(f"{r['id'][:12]} ({r['name']}, {r['origin']})" for r in rows[:10])
                more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
                raise StoreError(f"design '{id_or_prefix}' is ambiguous: {len(rows)} designs match by {how}: "
                                 f"{listed}{more}; give more of the id")
        names = [r[0] for r in self._db.execute("SELECT DISTINCT name FROM designs")]
        close = difflib.get_close_matches(id_or_prefix, names, n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        count = self._db.execute("SELECT count(*) FROM designs").fetchone()[0]
        raise StoreError(f"no design '{id_or_prefix}' in {self.path} ({count} designs; give an id, an id prefix "
                         f"or a name, see `genesys archive RUN top`){hint}")

    def designs(self, status: str | None = None) -> list[DesignRecord]:
        if status is None:
            rows = self._db.execute(f"SELECT {_DESIGN_COLUMNS} FROM designs ORDER BY seq")
        else:
            rows = self._db.execute(f"SELECT {_DESIGN_COLUMNS} FROM designs WHERE status = ? ORDER BY seq",
                                    (status,))
        return [self._design(r) for r in rows.fetchall()]

    def children(self, design_id: str) -> list[str]:
        """Ids of the designs that have `design_id` as a parent, oldest first."""
        rows = self._db.execute("SELECT p.child FROM parents p JOIN designs d ON d.id = p.child "
                                "WHERE p.parent = ? ORDER BY d.seq", (design_id,))
        return [r[0] for r in rows]

    def _require_design(self, design_id: str) -> None:
        if not self.has_design(design_id):
            raise StoreError(f"no design {design_id!r} in {self.path}")

    def set_status(self, design_id: str, status: str, reason: str | None = None) -> None:
        with self.transaction():
            self._require_design(design_id)
            self._db.execute("UPDATE designs SET status = ?, reason = ? WHERE id = ?", (status, reason, design_id))

    def add_report(self, design_id: str, kind: str, ok: bool, payload: dict) -> None:
        encoded = _dumps(payload, f"{kind} report")
        with self.transaction():
            self._require_design(design_id)
            self._db.execute("INSERT INTO reports (design_id, kind, ok, payload, created_at) VALUES (?, ?, ?, ?, ?)",
                             (design_id, kind, int(bool(ok)), encoded, _now()))

    def reports(self, design_id: str) -> list[dict]:
        rows = self._db.execute("SELECT kind, ok, payload, created_at FROM reports WHERE design_id = ? ORDER BY id",
                                (design_id,))
        return [{"kind": r["kind"], "ok": bool(r["ok"]), "payload": json.loads(r["payload"]),
                 "created_at": r["created_at"]} for r in rows]

    # ------------------------------------------------------------------ evaluations

    def queue_evaluation(self, design_id: str, rung: str, seed: int) -> int:
        """The id of the evaluation of (design, rung, seed), queued now if it is new."""
        with self.transaction():
            self._require_design(design_id)
            self._db.execute("INSERT INTO evaluations (design_id, rung, seed, status, queued_at) "
                             "VALUES (?, ?, ?, ?, ?) ON CONFLICT (design_id, rung, seed) DO NOTHING",
                             (design_id, rung, int(seed), QUEUED, _now()))
            return self._db.execute("SELECT id FROM evaluations WHERE design_id = ? AND rung = ? AND seed = ?",
                                    (design_id, rung, int(seed))).fetchone()[0]

    def _evaluation_status(self, eval_id: int) -> str:
        row = self._db.execute("SELECT status FROM evaluations WHERE id = ?", (eval_id,)).fetchone()
        if row is None:
            raise StoreError(f"no evaluation {eval_id} in {self.path}")
        return row[0]

    def start_evaluation(self, eval_id: int) -> None:
        with self.transaction():
            status = self._evaluation_status(eval_id)
            if status != QUEUED:
                raise StoreError(f"evaluation {eval_id} is {status}, not {QUEUED}: it cannot start")
            self._db.execute("UPDATE evaluations SET status = ?, started_at = ?, attempts = attempts + 1 "
                             "WHERE id = ?", (RUNNING, _now(), eval_id))

    def finish_evaluation(self, eval_id: int, result: EvaluationResult) -> None:
        """Record the outcome and every task score of an evaluation, all or nothing."""
        if result.status == FAILED and result.scores:
            raise StoreError(f"evaluation {eval_id}: a failed evaluation carries no scores")
        rows = []
        for s in result.scores:
            details = dict(s.get("details") or {})
            rows.append((eval_id, s["suite"], s["task"], s["metric"], float(s["score"]), s.get("normalized"),
                         s.get("random_score"), s.get("best_score"), details.get("tokens", result.tokens),
                         details.get("wall_seconds", result.wall_seconds), _dumps(details, "score details")))
        with self.transaction():
            status = self._evaluation_status(eval_id)
            if status in FINISHED:
                raise StoreError(f"evaluation {eval_id} already finished ({status})")
            self._db.execute(
                "UPDATE evaluations SET status = ?, reason = ?, message = ?, tokens = ?, wall_seconds = ?, "
                "params = ?, flops = ?, finished_at = ? WHERE id = ?",
                (result.status, result.reason, result.message, int(result.tokens), float(result.wall_seconds),
                 result.params, result.flops, _now(), eval_id))
            try:
                self._db.executemany(
                    "INSERT INTO scores (evaluation_id, suite, task, metric, score, normalized, random_score, "
                    "best_score, tokens, wall_seconds, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            except sqlite3.IntegrityError:
                raise StoreError(f"evaluation {eval_id}: a task is scored twice") from None

    def _evaluations(self, where: str = "", args: tuple = ()) -> list[EvaluationRecord]:
        rows = self._db.execute(f"SELECT {_EVALUATION_COLUMNS} FROM evaluations {where} ORDER BY id", args)
        return [EvaluationRecord(**dict(r)) for r in rows]

    def get_evaluation(self, eval_id: int) -> EvaluationRecord:
        found = self._evaluations("WHERE id = ?", (eval_id,))
        if not found:
            raise StoreError(f"no evaluation {eval_id} in {self.path}")
        return found[0]

    def pending_evaluations(self) -> list[EvaluationRecord]:
        return self._evaluations("WHERE status = ?", (QUEUED,))

    def requeue_running(self) -> int:
        """On resume: evaluations a dead process left running go back to the queue."""
        with self.transaction():
            return self._db.execute("UPDATE evaluations SET status = ?, started_at = NULL WHERE status = ?",
                                    (QUEUED, RUNNING)).rowcount

    def evaluations(self, design_id: str | None = None) -> list[EvaluationRecord]:
        if design_id is None:
            return self._evaluations()
        return self._evaluations("WHERE design_id = ?", (design_id,))

    def scores(self, design_id: str, rung: str | None = None) -> list[ScoreRecord]:
        where, args = "WHERE e.design_id = ?", (design_id,)
        if rung is not None:
            where, args = where + " AND e.rung = ?", (design_id, rung)
        rows = self._db.execute(f"{_SCORE_SELECT} {where} ORDER BY s.id", args)
        return [ScoreRecord(**{**dict(r), "details": json.loads(r["details"])}) for r in rows]

    # ------------------------------------------------------------------ fitness

    def set_fitness(self, design_id: str, rung: str, mean: float, ci_low: float, ci_high: float) -> None:
        values = [float(mean), float(ci_low), float(ci_high)]
        if not all(math.isfinite(v) for v in values):
            raise StoreError(f"design {design_id[:12]} at {rung}: fitness {values} is not finite")
        with self.transaction():
            self._require_design(design_id)
            self._db.execute("INSERT INTO fitness (design_id, rung, mean, ci_low, ci_high, updated_at) "
                             "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (design_id, rung) DO UPDATE SET "
                             "mean = excluded.mean, ci_low = excluded.ci_low, ci_high = excluded.ci_high, "
                             "updated_at = excluded.updated_at", (design_id, rung, *values, _now()))

    def fitness(self, design_id: str) -> dict[str, FitnessRecord]:
        """Rung -> fitness of one design, in ladder order."""
        found = {r["rung"]: FitnessRecord(**dict(r)) for r in self._db.execute(
            "SELECT design_id, rung, mean, ci_low, ci_high, updated_at FROM fitness WHERE design_id = ?",
            (design_id,))}
        return {rung: found[rung] for rung in self.rungs() if rung in found}

    def rungs(self) -> list[str]:
        """Every rung of this run, lowest first (see `ordered_rungs`)."""
        seen = [r[0] for r in self._db.execute(
            "SELECT rung FROM (SELECT rung, min(id) AS first FROM evaluations GROUP BY rung) ORDER BY first")]
        seen += [r[0] for r in self._db.execute(
            "SELECT rung FROM (SELECT rung, min(rowid) AS first FROM fitness GROUP BY rung) ORDER BY first")]
        return ordered_rungs(self.get_meta("rungs"), list(dict.fromkeys(seen)))

    def leaderboard(self, rung: str | None = None, limit: int | None = 20) -> list[LeaderboardEntry]:
        """With a rung: the designs with a fitness there, best first. Without: every design
        with a fitness, by the highest rung it reached, then its fitness there."""
        order = {r: i for i, r in enumerate(self.rungs())}
        by_design: dict[str, dict[str, FitnessRecord]] = {}
        for r in self._db.execute("SELECT design_id, rung, mean, ci_low, ci_high, updated_at FROM fitness"):
            by_design.setdefault(r["design_id"], {})[r["rung"]] = FitnessRecord(**dict(r))
        seq = {r[0]: r[1] for r in self._db.execute("SELECT id, seq FROM designs")}
        ranked = []
        for design_id, fitness in by_design.items():
            top = rung if rung is not None else max(fitness, key=order.__getitem__)
            if top in fitness:
                ranked.append((-order[top], -fitness[top].mean, seq[design_id], design_id, top))
        ranked.sort()
        if limit is not None and limit > 0:
            ranked = ranked[:limit]
        entries = []
        for _, _, _, design_id, top in ranked:
            fitness = by_design[design_id]
            entries.append(LeaderboardEntry(
                design=self.get_design(design_id), rung=top, rung_index=order[top], fitness=fitness[top],
                by_rung={r: fitness[r] for r in order if r in fitness}))
        return entries

    # ------------------------------------------------------------------ costs and events

    def add_cost(self, design_id: str | None, role: str, prompt_tokens: int, completion_tokens: int,
                 dollars: float) -> None:
        with self.transaction():
            if design_id is not None:
                self._require_design(design_id)
            self._db.execute("INSERT INTO costs (design_id, role, prompt_tokens, completion_tokens, dollars, "
                             "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                             (design_id, role, int(prompt_tokens), int(completion_tokens), float(dollars), _now()))

    def costs(self) -> list[dict]:
        rows = self._db.execute("SELECT design_id, role, prompt_tokens, completion_tokens, dollars, created_at "
                                "FROM costs ORDER BY id")
        return [dict(r) for r in rows]

    def log_event(self, kind: str, payload: dict) -> None:
        encoded = _dumps(payload, f"event '{kind}'")
        with self.transaction():
            self._db.execute("INSERT INTO events (kind, payload, created_at) VALUES (?, ?, ?)", (kind, encoded, _now()))

    def events(self, kind: str | None = None) -> list[dict]:
        if kind is None:
            rows = self._db.execute("SELECT id, kind, payload, created_at FROM events ORDER BY id")
        else:
            rows = self._db.execute("SELECT id, kind, payload, created_at FROM events WHERE kind = ? ORDER BY id",
                                    (kind,))
        return [{"id": r["id"], "kind": r["kind"], "payload": json.loads(r["payload"]), "created_at": r["created_at"]}
                for r in rows]


STORE = StoreKind(
    name="sqlite",
    summary=f"one SQLite file per run (RUN/{ARCHIVE_FILE}), WAL mode, crash-safe; the embedded default",
    open=lambda location: SQLiteStore.open(location),
    exists=archive_exists,
)
