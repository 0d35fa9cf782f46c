"""The evolution loop: propose children, score them up a ladder, keep everything.

One driver process owns the archive; executors only run jobs. Each state change is
one store transaction, so a run killed at any point resumes from its archive: the
evaluations it had started are queued again, proposal numbers continue where they
stopped, and every random choice is drawn from the run seed and the proposal number.

A steady-state loop: while workers are free it submits queued evaluations (seeds and
promotions first, oldest first), otherwise it proposes a child; every finished
evaluation updates the design's fitness at that rung and may promote the best
`selection_ratio` of a rung to the next one, within the rung budgets.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import ir
from ..check import check
from ..evaluate.fitness import bootstrap, fitness
from ..evaluate.ladder import place
from ..evaluate.suite import EvaluationError, TaskScore
from ..agents.flow import run_round
from ..gp import GPError, canonical_hash, mutate
from ..gp.diff import diff
from ..plugins import agent_registry, executor_registry, store_registry
from ..scales import ConfigError, Ladder, get_ladder, get_scale
from ..syntax.diagnostics import DSLError
from ..syntax.files import find_specs, read_design
from .config import EvolveConfig
from .executor import Job, JobResult, Limits
from .jobs import EVALUATE
from .search import Candidate, choose_kind, choose_parents, island_of, migrants, proposal_rng
from .store import FAILED, OK, DesignRecord, EvaluationResult

STORE = "sqlite"


@dataclass
class Child:
    """A proposed design and how it came about."""

    design: ir.Design
    operator: str  # the GP operator(s) or the agent backend
    edits: list[str]
    proposal: dict[str, Any] | None = None  # the agent's proposal (title, motivation, plan)
    transcript: str | None = None  # the round's transcript, relative to the run folder
    usage: dict[str, Any] = field(default_factory=dict)  # role -> tokens and cost


@dataclass
class Tally:
    """What the progress display and the final summary show."""

    proposed: int = 0
    valid: int = 0
    invalid: int = 0
    duplicates: int = 0
    evaluated: Counter = field(default_factory=Counter)  # rung -> designs finished there
    promoted: Counter = field(default_factory=Counter)  # rung -> designs promoted to it
    failures: Counter = field(default_factory=Counter)  # reason -> evaluations failed
    best: tuple[float, str, str] | None = None  # (fitness, rung, design name)
    started: float = field(default_factory=time.monotonic)
    elapsed_before: float = 0.0

    def designs_per_minute(self) -> float:
        minutes = (time.monotonic() - self.started) / 60
        return sum(self.evaluated.values()) / minutes if minutes > 0 else 0.0


class Evolution:
    def __init__(self, config: EvolveConfig | None, run_dir: str | Path, *, minutes: float | None = None,
                 on_update: Callable[[Evolution], None] | None = None) -> None:
        """`config` None resumes with the recorded one (or the defaults for a new run).
        `minutes` sets the run's total budget (summed over resumes; recorded, so a later
        resume keeps it), and may differ from the config's. `config.executor` may be
        replaced after construction for this session only (`genesys evolve --executor`)."""
        if config is not None:
            _validate(config)  # names in the config, before a run folder is made
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.store = store_registry().lookup(STORE).open(str(self.run_dir))
        self.config = self._settle_config(config)
        budget = minutes if minutes is not None else self.store.get_meta("minutes", self.config.run.minutes)
        self.store.set_meta("minutes", budget)
        self.config = self.config.model_copy(
            update={"run": self.config.run.model_copy(update={"minutes": budget})})
        self.ladder: Ladder = get_ladder(self.config.run.ladder)
        self.rungs = self.ladder.rung_names
        self.budgets = {r.name: self.config.evaluation.budgets.get(r.name, r.budget) for r in self.ladder.rungs}
        self.on_update = on_update
        self.tally = Tally(elapsed_before=float(self.store.get_meta("elapsed_seconds", 0.0)))
        self.submitted: dict[str, int] = {}  # job key -> evaluation id, this session
        self.submitted_rungs: dict[str, str] = {}  # job key -> its rung
        self.designs: dict[str, ir.Design] = {}
        self.islands: dict[str, int] = dict(self.store.get_meta("islands", {}))
        self.stop_reason = ""
        self._agent_client = None

    # ------------------------------------------------------------ setup

    def _settle_config(self, config: EvolveConfig | None) -> EvolveConfig:
        """A new run records its config; a resumed one must be given the same or none."""
        stored = self.store.get_meta("config")
        if stored is None:
            if config is None:
                config = EvolveConfig()
            self.store.set_meta("config", config.model_dump(mode="json"))
            return config
        recorded = EvolveConfig(**stored)
        if config is not None and _without_budget(config.model_dump(mode="json")) != _without_budget(stored):
            raise ConfigError(f"{self.run_dir} was started with another configuration; resume it without "
                              f"--config, or start a new run with another --run folder")
        return recorded

    def _seed(self) -> None:
        """First start: archive the seed designs and queue them at the lowest rung."""
        if self.store.get_meta("seeded"):
            return
        paths = find_specs(self.config.run.seeds) if self.config.run.seeds else _bundled_seeds()
        for path in paths:
            design = read_design(path)
            with self.store.transaction():
                problem = self._problem(design)
                rec = DesignRecord.from_design(design, origin="seed", operator=None,
                                               status="invalid" if problem else "valid", reason=problem)
                if self.store.add_design(rec) and not problem:
                    self._queue(rec.id, self.rungs[0])
                self.islands.setdefault(rec.id, len(self.islands) % self.config.search.islands)
                self.store.set_meta("islands", self.islands)
        self.store.set_meta("seeded", True)
        self.store.log_event("seeded", {"designs": [str(p) for p in paths]})

    def _queue(self, design_id: str, rung: str) -> None:
        for k in range(self.config.evaluation.seeds):
            self.store.queue_evaluation(design_id, rung, self.config.run.seed + k)

    # ------------------------------------------------------------ the loop

    def run(self) -> Tally:
        executor_kind = executor_registry().lookup(self.config.executor.name)
        settings = dict(self.config.executor.settings)
        if self.config.executor.workers is not None:
            settings["workers"] = self.config.executor.workers
        executor = executor_kind.create(settings)
        self.workers = getattr(executor, "workers", 1)
        requeued = self.store.requeue_running()
        self.store.log_event("started", {"requeued": requeued, "elapsed_before": self.tally.elapsed_before})
        self._seed()
        self._rebuild_tally()
        budget = self.config.run.minutes * 60 - self.tally.elapsed_before
        deadline = time.monotonic() + budget
        last_save = time.monotonic()
        try:
            while True:
                if time.monotonic() >= deadline:
                    self.stop_reason = "time budget spent"
                    break
                self._fill(executor)
                if executor.running() == 0:
                    self.stop_reason = "every rung budget spent" if not self._can_propose() else "nothing to do"
                    break
                for result in executor.results(timeout=min(1.0, max(0.05, deadline - time.monotonic()))):
                    self._finished(result)
                if time.monotonic() - last_save > 5:
                    self._save_elapsed()
                    last_save = time.monotonic()
                if self.on_update:
                    self.on_update(self)
        except KeyboardInterrupt:
            self.stop_reason = "interrupted (resume with the same --run)"
        finally:
            executor.shutdown(cancel=True)
            self._save_elapsed()
            self.store.log_event("stopped", {"reason": self.stop_reason})
            if self.on_update:
                self.on_update(self)
        return self.tally

    def close(self) -> None:
        self.store.close()

    def _save_elapsed(self) -> None:
        self.store.set_meta("elapsed_seconds", self.tally.elapsed_before + time.monotonic() - self.tally.started)

    def _fill(self, executor) -> None:
        """Keep every worker busy. The lowest rung's queued evaluations go first, then
        promoted ones (on at most half the workers, so the lowest rung never stops for
        the dearer rungs; with one worker they wait until no child can be proposed),
        then new proposals."""
        attempts = 0
        while executor.running() < self.workers:
            pending = [e for e in self.store.pending_evaluations() if f"eval:{e.id}" not in self.submitted]
            low = [e for e in pending if e.rung == self.rungs[0]]
            upper = [e for e in pending if e.rung != self.rungs[0]]
            running_upper = sum(1 for rung in self.submitted_rungs.values() if rung != self.rungs[0])
            can_propose = self._can_propose() and attempts < 20  # 20: duplicates or invalid in a row
            if low:
                self._submit(executor, low[0])
            elif upper and (running_upper < self.workers // 2 or not can_propose):
                self._submit(executor, upper[0])
            elif can_propose:
                attempts += 1
                self._propose()
            else:
                return

    def _submit(self, executor, evaluation) -> None:
        rec = self.store.get_design(evaluation.design_id)
        ev = self.config.evaluation
        payload = {
            "design": rec.text, "name": rec.name, "ladder": self.ladder.name, "rung": evaluation.rung,
            "seed": evaluation.seed, "suites": ev.suites, "train": {**ev.train, **ev.rung_train.get(evaluation.rung, {})},
            "options": ev.options, "corpus": ev.corpus, "tokenizer": ev.tokenizer, "verify": ev.verify,
            "threads": self.config.executor.threads, "device": self.config.executor.device,
            "work_dir": str(self.run_dir / "work"),
        }
        limits = Limits(wall_seconds=self.config.executor.wall_seconds, memory_mb=self.config.executor.memory_mb)
        key = f"eval:{evaluation.id}"
        self.store.start_evaluation(evaluation.id)
        executor.submit(Job(key=key, function=EVALUATE, payload=payload, limits=limits))
        self.submitted[key] = evaluation.id
        self.submitted_rungs[key] = evaluation.rung

    # ------------------------------------------------------------ proposals

    def _can_propose(self) -> bool:
        if self.config.run.max_designs is not None and self.tally.proposed >= self.config.run.max_designs:
            return False
        queued_low = {e.design_id for e in self.store.evaluations() if e.rung == self.rungs[0]}
        return len(queued_low) < self.budgets[self.rungs[0]]

    def _candidates(self) -> tuple[list[Candidate], list[Candidate]]:
        pool, seeds = [], []
        for rec in self.store.designs():
            by_rung = self.store.fitness(rec.id)
            island = self.islands.get(rec.id, 0)
            if rec.origin == "seed" and rec.status != "invalid":
                seeds.append(Candidate(rec.id, self._combined(by_rung), self._rung_index(by_rung), island, True))
            if by_rung:
                pool.append(Candidate(rec.id, self._combined(by_rung), self._rung_index(by_rung), island,
                                      rec.origin == "seed"))
        return pool, seeds

    def _combined(self, by_rung: dict) -> float:
        """Fitness over the rungs a design was scored at, weighted (default: 2**rung index)."""
        if not by_rung:
            return 0.0
        weights = {r: self.config.fitness.rung_weights.get(r, 2.0 ** self.rungs.index(r)) for r in by_rung}
        return sum(weights[r] * f.mean for r, f in by_rung.items()) / sum(weights.values())

    def _rung_index(self, by_rung: dict) -> int:
        return max((self.rungs.index(r) for r in by_rung), default=0)

    def _design(self, design_id: str) -> ir.Design:
        if design_id not in self.designs:
            from ..syntax.parse import parse

            rec = self.store.get_design(design_id)
            self.designs[design_id] = parse(rec.text, filename=f"<{rec.name}>")
        return self.designs[design_id]

    def _propose(self) -> None:
        index = int(self.store.get_meta("proposals", 0))
        search = self.config.search
        rng = proposal_rng(self.config.run.seed, index)
        kind = choose_kind(search, rng)
        island = island_of(index, search.islands)
        pool, seeds = self._candidates()
        if not seeds:
            raise ConfigError("no valid seed design to start from; check the [run] seeds of the config")
        parents, reasons = choose_parents(kind, pool, seeds, island, search, rng)
        record = {"index": index, "kind": kind, "island": island, "parents": [p.id for p in parents],
                  "why": reasons}
        child = self._breed(kind, [self._design(p.id) for p in parents], rng, index)
        with self.store.transaction():
            self.store.set_meta("proposals", index + 1)
            self.tally.proposed += 1
            if isinstance(child, str):
                self.store.log_event("no-offspring", {**record, "reason": child})
                self.tally.failures["no-offspring"] += 1
                return
            design = child.design
            design_id = canonical_hash(design)
            if self.store.has_design(design_id):
                self.store.log_event("duplicate", {**record, "design": design_id})
                self.tally.duplicates += 1
                return
            problem = self._problem(design)
            rec = DesignRecord.from_design(
                design, name=self._child_name(design, parents, index), parents=[p.id for p in parents], origin=kind,
                operator=child.operator, edits=child.edits, proposal={"search": record, "agent": child.proposal},
                transcript=child.transcript, generation=self._generation(parents),
                status="invalid" if problem else "valid", reason=problem)
            self.store.add_design(rec)
            for role, usage in child.usage.items():
                self.store.add_cost(rec.id, role, usage.prompt_tokens, usage.completion_tokens, usage.cost)
            self.islands[rec.id] = island
            self.store.set_meta("islands", self.islands)
            self.store.log_event("proposed", {**record, "design": rec.id, "operator": child.operator,
                                              "valid": not problem})
            if problem:
                self.tally.invalid += 1
                self.store.add_report(rec.id, "check", False, {"message": problem})
            else:
                self.tally.valid += 1
                self._queue(rec.id, self.rungs[0])
        if search.islands > 1 and (index + 1) % search.migration_every == 0:
            self._migrate(pool)

    def _agent(self):
        """The configured agent backend's client and round settings, made once."""
        if self._agent_client is None:
            from ..agents.backend import AgentError
            from ..agents.config import AgentsConfig

            try:
                settings = AgentsConfig(backend=self.config.run.backend,
                                        **{"verify": "off", **self.config.run.agent})
            except ValueError as err:
                raise ConfigError(f"[run] agent: {err}") from None
            backend = agent_registry().lookup(settings.backend)
            try:
                client = backend.create(settings.backend_config())
            except AgentError as err:
                raise ConfigError(str(err)) from None
            self._agent_client = (client, settings.flow, backend.name)
        return self._agent_client

    def _breed(self, kind: str, parents: list[ir.Design], rng, index: int) -> Child | str:
        """The child and how it was made; or why none came out. Mutation and crossover
        go through the agent flow (the `gp` backend by default: GP operators as the
        proposer and implementer); scratch is a seed after several GP mutations."""
        if kind == "scratch":
            design, operators, edits = parents[0], [], []
            try:
                for _ in range(self.config.search.scratch_edits):
                    child = mutate(design, seed=rng.getrandbits(64))
                    design = child.design
                    operators.append(child.operator)
                    edits += child.edits
            except GPError as err:
                return str(err)
            return Child(design, "+".join(operators), edits)
        client, flow, backend = self._agent()
        round_parents = parents[:2] if kind == "crossover" and len(parents) == 2 else parents[:1]
        archive = [d.id for d in self.store.designs()]
        result = run_round(round_parents, client, flow, seed=rng.getrandbits(63), backend=backend,
                           archive_hashes=archive)
        transcript = self.run_dir / "transcripts" / f"{index:06d}.json"
        transcript.parent.mkdir(exist_ok=True)
        result.transcript.write(transcript)
        usage = {role: u for role, u in result.transcript.usage.items() if u.requests}
        if not result.ok or result.child is None:
            return f"{backend}: {result.status}: {result.reason}"
        proposal = result.proposal.model_dump(mode="json") if result.proposal is not None else None
        operator = backend
        origin = (proposal or {}).get("origin") or ""
        if origin.startswith("gp:"):  # "gp:<operator>:<seed>": name the GP operator that made it
            operator = origin.split(":")[1]
        return Child(result.child, operator, diff(round_parents[0], result.child), proposal,
                     str(transcript.relative_to(self.run_dir)), usage)

    def _child_name(self, design: ir.Design, parents: list[Candidate], index: int) -> str:
        """The name the proposer gave it, unless that is a parent's name."""
        taken = {self.store.get_design(p.id).name for p in parents}
        return design.name if design.name not in taken else f"{design.name}-{index}"

    def _generation(self, parents: list[Candidate]) -> int:
        return 1 + max((self.store.get_design(p.id).generation for p in parents), default=0)

    def _problem(self, design: ir.Design) -> str | None:
        """Why a design cannot enter the ladder (check errors at any rung's scale, or a
        lowest rung whose parameter target it cannot meet); None when it can."""
        report = check(design, [get_scale(s) for s in self.ladder.scales])
        if not report.ok:
            first = report.errors[0]
            return f"{first.code}: {first.message}"
        try:
            place(design, self.ladder, self.rungs[0])
        except (EvaluationError, DSLError) as err:
            return str(err)
        return None

    def _migrate(self, pool: list[Candidate]) -> None:
        for design_id, island in migrants(pool, self.config.search.islands):
            self.islands[design_id] = island
        self.store.set_meta("islands", self.islands)
        self.store.log_event("migration", {"islands": self.config.search.islands})

    # ------------------------------------------------------------ results

    def _finished(self, result: JobResult) -> None:
        eval_id = self.submitted.pop(result.key, None)
        self.submitted_rungs.pop(result.key, None)
        if eval_id is None:
            return
        outcome = _outcome(result)
        evaluation = self.store.get_evaluation(eval_id)
        with self.store.transaction():
            self.store.finish_evaluation(eval_id, outcome)
            if outcome.status == FAILED:
                self.tally.failures[outcome.reason or "error"] += 1
            verify = (result.value or {}).get("verify")
            if verify is not None:
                self.store.add_report(evaluation.design_id, "verify", outcome.reason != "verify", verify)
            self._settle(evaluation.design_id, evaluation.rung)

    def _settle(self, design_id: str, rung: str) -> None:
        """When every seed of a design at a rung is done: its fitness there, then promotions."""
        mine = [e for e in self.store.evaluations(design_id) if e.rung == rung]
        if any(e.status not in (OK, FAILED) for e in mine):
            return
        self.tally.evaluated[rung] += 1
        ok = [e for e in mine if e.status == OK]
        if not ok:
            self.store.set_status(design_id, "failed", mine[0].reason)
            return
        by_seed: dict[int, list[TaskScore]] = {}
        for s in self.store.scores(design_id, rung):
            by_seed.setdefault(s.seed, []).append(TaskScore(s.suite, s.task, s.metric, s.score, s.random_score,
                                                            s.best_score, s.details))
        per_seed = [fitness(v, self.config.fitness.suite_weights) for v in by_seed.values()]
        interval = bootstrap(per_seed, seed=self.config.run.seed)
        self.store.set_fitness(design_id, rung, interval.mean, interval.ci_low, interval.ci_high)
        self.store.set_status(design_id, "evaluated")
        name = self.store.get_design(design_id).name
        rank = self.rungs.index(rung)
        if self.tally.best is None or (rank, interval.mean) > (self.rungs.index(self.tally.best[1]), self.tally.best[0]):
            self.tally.best = (interval.mean, rung, name)
        self._promote(rung)

    def _promote(self, rung: str) -> None:
        """The best selection_ratio of the designs scored at `rung` move up, within budget."""
        index = self.rungs.index(rung)
        if index + 1 >= len(self.rungs):
            return
        upper = self.rungs[index + 1]
        scored = [(f[rung].mean, d.id) for d in self.store.designs()
                  if rung in (f := self.store.fitness(d.id))]
        climbed = {e.design_id for e in self.store.evaluations() if e.rung == upper}
        allowed = min(self.budgets[upper], math.floor(self.ladder.selection_ratio * len(scored)))
        for _, design_id in sorted(scored, reverse=True):
            if len(climbed) >= allowed:
                break
            if design_id not in climbed:
                self._queue(design_id, upper)
                climbed.add(design_id)
                self.tally.promoted[upper] += 1
                self.store.log_event("promoted", {"design": design_id, "to": upper})

    def _rebuild_tally(self) -> None:
        """Counts from the archive, so a resumed run's display continues where it was."""
        designs = self.store.designs()
        self.tally.proposed = int(self.store.get_meta("proposals", 0))
        self.tally.valid = sum(1 for d in designs if d.origin != "seed" and d.status != "invalid")
        self.tally.invalid = sum(1 for d in designs if d.status == "invalid")
        self.tally.duplicates = len(self.store.events("duplicate"))
        for e in self.store.evaluations():
            if e.status == FAILED:
                self.tally.failures[e.reason or "error"] += 1
        for d in designs:
            by_rung = self.store.fitness(d.id)
            for r in by_rung:
                self.tally.evaluated[r] += 1
                if r != self.rungs[0]:
                    self.tally.promoted[r] += 1
            if by_rung:
                top = max(by_rung, key=self.rungs.index)
                if self.tally.best is None or (self.rungs.index(top), by_rung[top].mean) > (
                        self.rungs.index(self.tally.best[1]), self.tally.best[0]):
                    self.tally.best = (by_rung[top].mean, top, d.name)


def _outcome(result: JobResult) -> EvaluationResult:
    """An executor's JobResult as the archive's EvaluationResult."""
    value = result.value or {}
    if result.status != "ok":
        return EvaluationResult.failed(result.reason or "error", result.message, wall_seconds=result.wall_seconds)
    if value.get("status") != "ok":
        return EvaluationResult.failed(value.get("reason") or "error", value.get("message"),
                                       wall_seconds=result.wall_seconds, tokens=int(value.get("tokens") or 0))
    scores = value.get("scores", [])
    if any(not math.isfinite(s.get("score", math.nan)) for s in scores):
        return EvaluationResult.failed("nonfinite", "a task score is not a finite number",
                                       wall_seconds=result.wall_seconds)
    return EvaluationResult(status=OK, scores=scores, tokens=int(value.get("tokens") or 0),
                            wall_seconds=float(value.get("wall_seconds") or result.wall_seconds),
                            params=value.get("params"), flops=value.get("flops"))


def _validate(config: EvolveConfig) -> None:
    """Unknown ladder, backend, executor, suite or task names fail at start, not minutes in."""
    from ..evaluate.run import choose_suites

    ladder = get_ladder(config.run.ladder)
    agent_registry().lookup(config.run.backend)
    executor_registry().lookup(config.executor.name)
    choose_suites(config.evaluation.suites or None, ladder)


def _without_budget(config: dict[str, Any]) -> dict[str, Any]:
    """A config as compared on resume: the time budget may change between sessions."""
    return {**config, "run": {k: v for k, v in config["run"].items() if k != "minutes"}}


def _bundled_seeds() -> list[Path]:
    """The seed designs shipped with genesys-dsl (baselines are references, not seeds)."""
    from importlib import resources

    root = Path(str(resources.files("genesys_dsl.specs")))
    return sorted(p for p in root.glob("*.gab"))
