"""The configuration of an evolution run: a TOML file, every key optional.

`genesys evolve` with no config uses these defaults: the bundled seed designs, the
`gp` agent backend, the `cpu` ladder and a budget that finishes in about 15 minutes
on two cores. docs/evolve.md lists every key.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..scales import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunSection(_Section):
    seed: int = 0  # every choice of the run derives from it
    seeds: list[str] = Field(default_factory=list)  # spec files or folders; empty: the bundled seed designs
    ladder: str = "cpu"
    minutes: float = Field(15.0, gt=0)  # wall-clock budget of the whole run (summed over resumes)
    max_designs: int | None = Field(None, gt=0)  # proposals to make at most (None: until the budget ends)
    backend: str = "gp"  # agent backend that proposes children (`genesys plugins` lists them)
    agent: dict[str, Any] = Field(default_factory=dict)  # the backend's settings (model, base_url, ...)


class SearchSection(_Section):
    scratch: float = Field(0.05, ge=0)  # shares of the three ways to make a child, normalised
    mutation: float = Field(0.80, ge=0)
    crossover: float = Field(0.15, ge=0)
    scratch_edits: int = Field(4, ge=1)  # a "from scratch" child: a seed design after this many mutations
    exploration: float = Field(0.2, ge=0, le=1)  # chance a parent is drawn uniformly, not by fitness
    restart: float = Field(0.05, ge=0, le=1)  # chance a parent is a seed design
    confidence_bonus: float = Field(0.1, ge=0)  # added to a parent's fitness per rung it has climbed
    tournament: int = Field(3, ge=1)  # parents are the best of this many drawn
    islands: int = Field(1, ge=1)
    migration_every: int = Field(20, ge=1)  # proposals between migrations (with islands > 1)

    @model_validator(mode="after")
    def _some_way(self) -> SearchSection:
        if self.scratch + self.mutation + self.crossover <= 0:
            raise ValueError("scratch, mutation and crossover shares cannot all be 0")
        return self


class EvaluationSection(_Section):
    suites: list[str] = Field(default_factory=list)  # empty: the ladder's suites
    seeds: int = Field(1, ge=1)  # training seeds per design and rung
    train: dict[str, Any] = Field(default_factory=dict)  # trainer overrides for every rung
    rung_train: dict[str, dict[str, Any]] = Field(default_factory=dict)  # rung name -> trainer overrides
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)  # suite name -> its settings
    corpus: list[str] = Field(default_factory=list)
    tokenizer: str = "byte"
    verify: bool = True  # causality and gradient checks before training
    budgets: dict[str, int] = Field(default_factory=dict)  # rung name -> designs scored there (overrides the ladder's)


class FitnessSection(_Section):
    rung_weights: dict[str, float] = Field(default_factory=dict)  # rung name -> weight (default: 2**index)
    suite_weights: dict[str, float] = Field(default_factory=dict)


class ExecutorSection(_Section):
    name: str = "subprocess"  # `genesys plugins` lists the executors
    workers: int | None = Field(None, ge=1)  # parallel evaluations (None: the executor's default)
    threads: int = Field(1, ge=1)  # torch CPU threads per worker
    wall_seconds: float | None = Field(1200, gt=0)  # per evaluation
    memory_mb: int | None = Field(6000, gt=0)  # per evaluation
    device: str | None = None  # torch device (default: cuda when available, else cpu)
    settings: dict[str, Any] = Field(default_factory=dict)  # passed on to the executor


class EvolveConfig(_Section):
    run: RunSection = RunSection()
    search: SearchSection = SearchSection()
    evaluation: EvaluationSection = EvaluationSection()
    fitness: FitnessSection = FitnessSection()
    executor: ExecutorSection = ExecutorSection()


def load_evolve_config(path: str | Path | None) -> EvolveConfig:
    """The run configuration from a TOML file (defaults for every missing key)."""
    if path is None:
        return EvolveConfig()
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    return parse_evolve_config(raw, str(path))


def parse_evolve_config(raw: dict[str, Any], where: str) -> EvolveConfig:
    try:
        return EvolveConfig(**raw)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"{where}: {problems}") from None
