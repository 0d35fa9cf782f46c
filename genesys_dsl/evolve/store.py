"""The archive-store contract: what an evolution run keeps, and the records it reads back.

A run is a folder; a store keeps the run's archive there (the embedded default is
SQLite, see sqlite_store.py). A design's identity is its canonical hash
(`genesys_dsl.gp.canonical_hash`), so the same architecture is archived once.
Evaluations form a crash-safe queue: queued -> running -> ok | failed, unique per
(design, rung, seed), so a resumed run neither loses nor repeats finished work.

Stores are registered by plugins through `register_stores(register)`.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence

if TYPE_CHECKING:
    from ..ir import Design

# evaluation states, in the order an evaluation moves through them
QUEUED, RUNNING, OK, FAILED = "queued", "running", "ok", "failed"
FINISHED = (OK, FAILED)


class StoreError(Exception):
    """A store that cannot be used (missing, unreadable, newer schema) or a request it
    cannot answer (unknown or ambiguous design id, an evaluation in the wrong state)."""


@dataclass(frozen=True)
class StoreKind:
    """A named store. `open(location)` returns a Store for a run (a folder path),
    creating its archive when there is none. `exists(location)`, when given, says
    whether the folder already holds this store's archive: read-only tools (`genesys
    archive`) use it to refuse a folder instead of creating an empty archive there."""

    name: str
    summary: str
    open: Callable[[str], Store]
    exists: Callable[[str], bool] | None = None
    plugin: str | None = None  # which plugin registered it


# ------------------------------------------------------------------ records


@dataclass
class DesignRecord:
    """One archived design. `id` is its canonical hash; `text` its canonical DSL."""

    id: str
    name: str
    text: str
    parents: list[str] = field(default_factory=list)  # ids, first parent first
    origin: str = "seed"  # "seed", "mutation", "crossover", "scratch"
    operator: str | None = None  # the GP operator or agent that made it
    edits: list[str] = field(default_factory=list)  # the structural diff to the first parent
    proposal: dict[str, Any] | None = None  # an agent's proposal (motivation, plan ...)
    transcript: str | None = None  # where an agent conversation is kept (a path in the run folder)
    status: str = "valid"  # "valid", "invalid", "evaluated", "failed", ...
    reason: str | None = None  # why it has that status (a check error, a failure reason)
    created_at: str | None = None  # ISO 8601, UTC; the store fills it in when None
    generation: int = 0

    @classmethod
    def from_design(cls, design: Design, **fields: Any) -> DesignRecord:
        """A record for `design`: its canonical hash as id, its canonical text, its name."""
        from ..gp import canonical_hash
        from ..syntax.unparse import unparse

        fields.setdefault("name", design.name)
        return cls(id=canonical_hash(design), text=unparse(design), **fields)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EvaluationResult:
    """What one evaluation produced. `scores` are TaskScore dicts
    (`genesys_dsl.evaluate.TaskScore.to_dict()`); a failed one has a `reason`
    ("timeout", "oom", "nonfinite", "diverged", "crash", "error", ...)."""

    status: str  # OK or FAILED
    reason: str | None = None
    scores: list[dict[str, Any]] = field(default_factory=list)
    tokens: int = 0
    wall_seconds: float = 0.0
    params: int | None = None
    flops: float | None = None
    message: str | None = None  # the human-readable explanation of a failure

    def __post_init__(self) -> None:
        if self.status not in FINISHED:
            raise StoreError(f"evaluation status must be '{OK}' or '{FAILED}', not {self.status!r}")
        if self.status == FAILED and not self.reason:
            raise StoreError("a failed evaluation needs a reason (timeout, oom, nonfinite, crash, error ...)")
        if self.status == OK:
            for score in self.scores:
                _check_score(score)

    @classmethod
    def failed(cls, reason: str, message: str | None = None, **fields: Any) -> EvaluationResult:
        return cls(status=FAILED, reason=reason, message=message, **fields)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_SCORE_KEYS = ("suite", "task", "metric", "score")


def _check_score(score: Mapping[str, Any]) -> None:
    missing = [k for k in _SCORE_KEYS if k not in score]
    if missing:
        raise StoreError(f"a task score lacks {', '.join(missing)}: {dict(score)!r}")
    for key in ("score", "normalized"):
        value = score.get(key)
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise StoreError(f"task {score['suite']}/{score['task']}: {key} is {value!r}, not a finite number; "
                             f"record the evaluation as failed with reason 'nonfinite'")


@dataclass(frozen=True)
class EvaluationRecord:
    id: int
    design_id: str
    rung: str
    seed: int
    status: str  # QUEUED, RUNNING, OK, FAILED
    reason: str | None = None
    message: str | None = None
    tokens: int | None = None
    wall_seconds: float | None = None
    params: int | None = None
    flops: float | None = None
    attempts: int = 0  # how many times it was started (more than 1 after a resume)
    queued_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ScoreRecord:
    """One task score of one finished evaluation."""

    evaluation_id: int
    design_id: str
    rung: str
    suite: str
    task: str
    seed: int
    metric: str
    score: float
    normalized: float | None
    random_score: float | None
    best_score: float | None
    tokens: int | None
    wall_seconds: float | None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FitnessRecord:
    design_id: str
    rung: str
    mean: float
    ci_low: float
    ci_high: float
    updated_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LeaderboardEntry:
    """A design ranked by the highest rung it has a fitness at, then that fitness."""

    design: DesignRecord
    rung: str  # the rung this entry is ranked by
    rung_index: int  # its position in the ladder (0 = lowest)
    fitness: FitnessRecord
    by_rung: dict[str, FitnessRecord] = field(default_factory=dict)  # every rung it has a fitness at

    def to_dict(self) -> dict[str, Any]:
        d = self.design
        return {"id": d.id, "name": d.name, "status": d.status, "origin": d.origin, "operator": d.operator,
                "generation": d.generation, "parents": d.parents, "rung": self.rung,
                "mean": self.fitness.mean, "ci_low": self.fitness.ci_low, "ci_high": self.fitness.ci_high,
                "fitness": {r: {"mean": f.mean, "ci_low": f.ci_low, "ci_high": f.ci_high}
                            for r, f in self.by_rung.items()}}


# ------------------------------------------------------------------ the protocol


class Store(Protocol):
    """An evolution run's archive. Every method that changes state is one atomic
    transaction; `transaction()` groups several calls into one. Implementations
    raise StoreError for requests they cannot answer (unknown ids, wrong states)."""

    def close(self) -> None: ...

    def transaction(self) -> AbstractContextManager[None]: ...

    # run metadata: config, RNG state, counters (JSON values)
    def get_meta(self, key: str, default: Any = None) -> Any: ...

    def set_meta(self, key: str, value: Any) -> None: ...

    # designs
    def add_design(self, rec: DesignRecord) -> bool: ...

    def has_design(self, design_id: str) -> bool: ...

    def get_design(self, id_or_prefix: str) -> DesignRecord: ...

    def designs(self, status: str | None = None) -> list[DesignRecord]: ...

    def children(self, design_id: str) -> list[str]: ...

    def set_status(self, design_id: str, status: str, reason: str | None = None) -> None: ...

    def add_report(self, design_id: str, kind: str, ok: bool, payload: dict) -> None: ...

    def reports(self, design_id: str) -> list[dict]: ...

    # evaluations: a crash-safe queue, unique per (design_id, rung, seed)
    def queue_evaluation(self, design_id: str, rung: str, seed: int) -> int: ...

    def start_evaluation(self, eval_id: int) -> None: ...

    def finish_evaluation(self, eval_id: int, result: EvaluationResult) -> None: ...

    def get_evaluation(self, eval_id: int) -> EvaluationRecord: ...

    def pending_evaluations(self) -> list[EvaluationRecord]: ...

    def requeue_running(self) -> int: ...

    def evaluations(self, design_id: str | None = None) -> list[EvaluationRecord]: ...

    def scores(self, design_id: str, rung: str | None = None) -> list[ScoreRecord]: ...

    def set_fitness(self, design_id: str, rung: str, mean: float, ci_low: float, ci_high: float) -> None: ...

    def fitness(self, design_id: str) -> dict[str, FitnessRecord]: ...

    def rungs(self) -> list[str]: ...

    def leaderboard(self, rung: str | None = None, limit: int = 20) -> list[LeaderboardEntry]: ...

    # costs and events
    def add_cost(self, design_id: str | None, role: str, prompt_tokens: int, completion_tokens: int,
                 dollars: float) -> None: ...

    def costs(self) -> list[dict]: ...

    def log_event(self, kind: str, payload: dict) -> None: ...

    def events(self, kind: str | None = None) -> list[dict]: ...


def ordered_rungs(declared: Sequence[str] | None, seen: Sequence[str]) -> list[str]:
    """The ladder's order: the rungs declared in the run's metadata ("rungs") first,
    then any others in the order they were first evaluated (every design starts at
    the lowest rung, so first use follows the ladder)."""
    order = [r for r in declared or [] if isinstance(r, str)]
    return order + [r for r in seen if r not in order]
