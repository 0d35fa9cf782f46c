"""Fitness: task scores normalised against random guessing, aggregated, with intervals.

Every TaskScore is normalised to 0 (random guess) .. 1 (best possible). A design's
fitness at one seed is the mean over suites of the mean over that suite's tasks, so
a suite with many tasks does not outweigh one with few. Intervals are percentile
bootstraps with a seeded generator: the same scores give the same interval.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from .suite import TaskScore

RESAMPLES = 10_000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    mean: float
    ci_low: float
    ci_high: float
    n: int

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n}

    def __str__(self) -> str:
        return f"{self.mean:+.4f} [{self.ci_low:+.4f}, {self.ci_high:+.4f}]"


def task_key(score: TaskScore) -> str:
    return f"{score.suite}/{score.task}"


def fitness(scores: Iterable[TaskScore], suite_weights: Mapping[str, float] | None = None) -> float:
    """One seed's scores -> one number: weighted mean over suites of mean normalised score."""
    by_suite: dict[str, list[float]] = defaultdict(list)
    for score in scores:
        by_suite[score.suite].append(score.normalized)
    if not by_suite:
        raise ValueError("fitness of no scores")
    weights = {s: (suite_weights or {}).get(s, 1.0) for s in by_suite}
    total = sum(weights.values())
    return sum(weights[s] * float(np.mean(v)) for s, v in by_suite.items()) / total


def bootstrap(values: Sequence[float], *, seed: int = 0, resamples: int = RESAMPLES,
              confidence: float = CONFIDENCE) -> Interval:
    """Mean of `values` with a percentile-bootstrap interval (a point when n = 1)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("bootstrap of no values")
    mean = float(data.mean())
    if data.size == 1:
        return Interval(mean, mean, mean, 1)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Interval(mean, float(low), float(high), int(data.size))


def paired_bootstrap(a: Mapping[int, Sequence[TaskScore]], b: Mapping[int, Sequence[TaskScore]], *,
                     suite_weights: Mapping[str, float] | None = None, seed: int = 0,
                     resamples: int = RESAMPLES, confidence: float = CONFIDENCE) -> Interval:
    """Fitness of a minus fitness of b, paired by training seed and task, with a
    bootstrap interval that resamples seeds and, within each suite, tasks (the same
    draws for both designs). Pairing removes what the two share (a seed's data order,
    a task's difficulty) from the spread; the statistic aggregates like `fitness`."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError("the two designs share no seed to compare")
    per_suite: dict[str, np.ndarray] = {}  # suite -> differences [seed, task]
    for suite in sorted({s.suite for k in seeds for s in a[k]}):
        tasks = sorted({s.task for k in seeds for s in a[k] if s.suite == suite}
                       & {s.task for k in seeds for s in b[k] if s.suite == suite})
        if not tasks:
            continue
        rows = []
        for k in seeds:
            na = {s.task: s.normalized for s in a[k] if s.suite == suite}
            nb = {s.task: s.normalized for s in b[k] if s.suite == suite}
            if any(t not in na or t not in nb for t in tasks):
                raise ValueError(f"seed {k}: suite '{suite}' is missing tasks for one design")
            rows.append([na[t] - nb[t] for t in tasks])
        per_suite[suite] = np.asarray(rows, dtype=float)
    if not per_suite:
        raise ValueError("the two designs share no (seed, task) scores to compare")
    weights = np.asarray([(suite_weights or {}).get(s, 1.0) for s in per_suite], dtype=float)
    weights /= weights.sum()

    def statistic(seed_idx: np.ndarray | None, task_idx: dict[str, np.ndarray] | None) -> np.ndarray | float:
        parts = []
        for suite, diffs in per_suite.items():
            if seed_idx is None:
                parts.append(diffs.mean())
            else:  # [R, seeds] x [R, tasks] -> [R]
                picked = diffs[seed_idx[:, :, None], task_idx[suite][:, None, :]]
                parts.append(picked.mean(axis=(1, 2)))
        return sum(w * p for w, p in zip(weights, parts))

    mean = float(statistic(None, None))
    n = sum(d.size for d in per_suite.values())
    if n == 1:
        return Interval(mean, mean, mean, 1)
    rng = np.random.default_rng(seed)
    seed_idx = rng.integers(0, len(seeds), size=(resamples, len(seeds)))
    task_idx = {s: rng.integers(0, d.shape[1], size=(resamples, d.shape[1])) for s, d in per_suite.items()}
    draws = statistic(seed_idx, task_idx)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return Interval(mean, float(low), float(high), n)
