"""Evaluate one design: place it on a rung, then run the chosen suites over seeds.

Results are kept per (seed, suite) under a work folder named after everything that
decides them (design hash, scale, training settings, tasks, options), so running the
same evaluation again after an interruption redoes nothing that finished, and a
different evaluation never picks up another's files.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .. import ir
from ..gp.hashing import canonical_hash
from ..ops.registry import Registry
from ..plugins import NamedRegistry, PluginError, benchmark_registry
from ..scales import Ladder, get_ladder, ConfigError
from .config import DataConfig, TrainConfig
from .context import EvalContext
from .fitness import Interval, bootstrap, fitness, task_key
from .ladder import Placement, place, train_config
from .suite import BenchmarkSuite, EvaluationError, EvaluationFailed, TaskInfo, TaskScore


@dataclass(frozen=True)
class SuiteChoice:
    suite: BenchmarkSuite
    tasks: tuple[TaskInfo, ...]

    @property
    def label(self) -> str:
        return f"{self.suite.name}:{','.join(t.name for t in self.tasks)}"


def choose_suites(requested: Sequence[str] | None, ladder: Ladder,
                  benchmarks: NamedRegistry | None = None) -> list[SuiteChoice]:
    """`name` or `name:task,task` per entry (the ladder's suites when none), checked
    against the registered suites before anything trains."""
    benchmarks = benchmarks if benchmarks is not None else benchmark_registry()
    choices = []
    for entry in requested or ladder.suites:
        name, _, tasks = entry.partition(":")
        try:
            suite = benchmarks.lookup(name.strip())
        except PluginError as err:
            raise EvaluationError(str(err)) from None
        names = [t.strip() for t in tasks.split(",") if t.strip()]
        choices.append(SuiteChoice(suite, tuple(suite.chosen(names))))
    return choices


@dataclass
class EvalResult:
    design: str
    design_hash: str
    placement: Placement
    train: TrainConfig
    suites: list[str]
    runs: dict[int, list[TaskScore]] = field(default_factory=dict)  # seed -> scores
    failures: dict[int, dict[str, str]] = field(default_factory=dict)  # seed -> {"reason", "message"}
    tokens: int = 0
    wall_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.runs) and not self.failures

    def fitness(self) -> Interval | None:
        """Fitness per seed, with a bootstrap interval over seeds (None if nothing scored)."""
        per_seed = [fitness(scores) for scores in self.runs.values() if scores]
        return bootstrap(per_seed) if per_seed else None

    def per_task(self) -> dict[str, dict[str, Any]]:
        grouped: dict[str, list[TaskScore]] = {}
        for scores in self.runs.values():
            for s in scores:
                grouped.setdefault(task_key(s), []).append(s)
        summary = {}
        for key, scores in grouped.items():
            values = [s.score for s in scores]
            summary[key] = {
                "metric": scores[0].metric, "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "min": min(values), "max": max(values), "n": len(values),
                "normalized": bootstrap([s.normalized for s in scores]).to_dict(),
                "random_score": scores[0].random_score, "best_score": scores[0].best_score,
            }
        return summary

    def to_dict(self) -> dict[str, Any]:
        p = self.placement
        fit = self.fitness()
        return {
            "design": self.design, "design_hash": self.design_hash,
            "ladder": p.ladder.name, "rung": p.rung.name,
            "scale": p.scale.model_dump(), "fitted": p.fitted,
            "params": p.params, "flops_per_token": p.flops_per_token,
            "train": self.train.model_dump(), "suites": self.suites,
            "seeds": sorted(set(self.runs) | set(self.failures)),
            "fitness": fit.to_dict() if fit else None,
            "per_task": self.per_task(),
            "runs": {str(k): [s.to_dict() for s in v] for k, v in sorted(self.runs.items())},
            "failures": {str(k): v for k, v in sorted(self.failures.items())},
            "tokens": self.tokens, "wall_seconds": round(self.wall_seconds, 3),
        }


def seed_list(seeds: int | Sequence[int], base_seed: int = 0) -> list[int]:
    if isinstance(seeds, int):
        if seeds < 1:
            raise EvaluationError(f"--seeds must be at least 1, got {seeds}")
        return [base_seed + k for k in range(seeds)]
    return list(seeds)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def evaluate(design: ir.Design, *, ladder: str | Ladder = "cpu", rung: str | None = None,
             suites: Sequence[str] | None = None, seeds: int | Sequence[int] = 1, base_seed: int = 0,
             data: DataConfig | None = None, train: Mapping[str, Any] | None = None,
             options: Mapping[str, Mapping[str, Any]] | None = None, device: str | None = None,
             work_dir: str | Path | None = None, progress: bool = False,
             registry: Registry | None = None, benchmarks: NamedRegistry | None = None,
             on_progress: Callable[[str], None] | None = None) -> EvalResult:
    """Train and score `design` at one rung over seeds. User mistakes raise
    EvaluationError before anything trains; a seed whose training fails is recorded in
    `failures` with its reason and the other seeds still run."""
    import torch

    try:
        ladder = get_ladder(ladder) if isinstance(ladder, str) else ladder
    except ConfigError as err:
        raise EvaluationError(str(err)) from None
    placement = place(design, ladder, rung, registry=registry)
    choices = choose_suites(suites, ladder, benchmarks)
    config = train_config(placement, train)
    data = data or DataConfig()
    options = dict(options or {})
    unknown = set(options) - {c.suite.name for c in choices}
    if unknown:
        raise EvaluationError(f"options given for suite(s) not being run: {', '.join(sorted(unknown))}; "
                              f"running: {', '.join(c.suite.name for c in choices)}")
    design_hash = canonical_hash(design)
    fingerprint = _fingerprint(design_hash, placement, config, data, choices, options)
    base = Path(work_dir) / fingerprint if work_dir is not None else None
    result = EvalResult(design.name, design_hash, placement, config, [c.label for c in choices])
    start = time.perf_counter()
    for seed in seed_list(seeds, base_seed):
        folder = base / f"seed-{seed}" if base is not None else None
        ctx = EvalContext(design=design, scale=placement.scale, seed=seed, device=torch.device(device or default_device()),
                          train=config, data=data, work_dir=folder, progress=progress, options=options)
        scores: list[TaskScore] = []
        for choice in choices:
            if on_progress:
                on_progress(f"seed {seed}: {choice.label}")
            try:
                got = _run_suite(ctx, choice, folder)
            except EvaluationFailed as err:
                result.failures[seed] = {"reason": err.reason, "message": str(err)}
                break
            scores += got
            result.tokens += sum(int(s.details.get("train_tokens", 0)) for s in got)
        if ctx._pretrained is not None:
            result.tokens += ctx._pretrained.result.tokens
        if seed not in result.failures:
            result.runs[seed] = scores
    result.wall_seconds = time.perf_counter() - start
    return result


def _run_suite(ctx: EvalContext, choice: SuiteChoice, folder: Path | None) -> list[TaskScore]:
    """One suite at one seed, from its saved result when an earlier run finished it."""
    saved = folder / f"{choice.suite.name}.json" if folder is not None else None
    if saved is not None and saved.exists():
        return [TaskScore(**{k: v for k, v in row.items() if k != "normalized"})
                for row in json.loads(saved.read_text(encoding="utf-8"))]
    names = [t.name for t in choice.tasks]
    try:
        scores = choice.suite.run(ctx, names)
    except (EvaluationFailed, EvaluationError):
        raise
    except Exception as err:  # a suite plugin's bug fails this design's evaluation, naming the plugin
        raise EvaluationFailed("error", f"suite '{choice.suite.name}' (plugin '{choice.suite.plugin}') "
                                        f"raised {type(err).__name__}: {err}") from err
    got = [s.task for s in scores]
    if got != names:
        raise EvaluationFailed("error", f"suite '{choice.suite.name}' (plugin '{choice.suite.plugin}') returned "
                                        f"scores for {got}, asked for {names}")
    if saved is not None:
        folder.mkdir(parents=True, exist_ok=True)
        temporary = saved.with_suffix(".tmp")
        temporary.write_text(json.dumps([s.to_dict() for s in scores], indent=1), encoding="utf-8")
        os.replace(temporary, saved)  # a kill leaves either the old state or the whole file
    return scores


def _fingerprint(design_hash: str, placement: Placement, config: TrainConfig, data: DataConfig,
                 choices: list[SuiteChoice], options: Mapping[str, Any]) -> str:
    key = {"design": design_hash, "scale": placement.scale.model_dump(), "train": config.model_dump(),
           "data": data.model_dump(), "suites": [c.label for c in choices], "options": options}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
