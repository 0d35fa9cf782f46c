"""Choosing parents and survivors: tournament, elitism, Pareto ranking (NSGA-II).

These work on any items with scores, so the evolution loop can rank designs by
fitness alone or by quality against cost (parameters, state size, FLOPs). Every
random choice takes a `random.Random`; ties break by position, so results are
deterministic for a given seed and order.

Objectives are given per item as a tuple; `minimize` says, per objective, whether
smaller is better (default: larger is better for all).
"""

from __future__ import annotations

import math
import random
from typing import Callable, Hashable, Sequence, TypeVar

T = TypeVar("T")
Objectives = Sequence[float]


def tournament(items: Sequence[T], fitness: Callable[[T], float], rng: random.Random, *, size: int = 3) -> T:
    """The fittest of `size` items drawn at random (without replacement)."""
    if not items:
        raise ValueError("tournament over no items")
    contestants = rng.sample(range(len(items)), min(size, len(items)))
    best = max(contestants, key=lambda i: (fitness(items[i]), -i))
    return items[best]


def elite(items: Sequence[T], fitness: Callable[[T], float], count: int) -> list[T]:
    """The `count` fittest items, fittest first (stable for equal fitness)."""
    order = sorted(range(len(items)), key=lambda i: (-fitness(items[i]), i))
    return [items[i] for i in order[:count]]


def _oriented(values: Objectives, minimize: Sequence[bool]) -> tuple[float, ...]:
    """Objectives turned so that larger is always better."""
    return tuple(-v if m else v for v, m in zip(values, minimize))


def dominates(a: Objectives, b: Objectives, minimize: Sequence[bool] | None = None) -> bool:
    """a is at least as good as b in every objective and better in one."""
    minimize = minimize or [False] * len(a)
    a, b = _oriented(a, minimize), _oriented(b, minimize)
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def pareto_fronts(points: Sequence[Objectives], minimize: Sequence[bool] | None = None) -> list[list[int]]:
    """Indices of `points` in non-dominated fronts, best front first (NSGA-II's fast sort)."""
    n = len(points)
    dominated_by_me: list[list[int]] = [[] for _ in range(n)]
    domination_count = [0] * n
    for i in range(n):
        for j in range(i + 1, n):
            if dominates(points[i], points[j], minimize):
                dominated_by_me[i].append(j)
                domination_count[j] += 1
            elif dominates(points[j], points[i], minimize):
                dominated_by_me[j].append(i)
                domination_count[i] += 1
    fronts = [[i for i in range(n) if domination_count[i] == 0]]
    while fronts[-1]:
        following = []
        for i in fronts[-1]:
            for j in dominated_by_me[i]:
                domination_count[j] -= 1
                if domination_count[j] == 0:
                    following.append(j)
        fronts.append(sorted(following))
    return fronts[:-1]


def crowding_distance(points: Sequence[Objectives], front: Sequence[int]) -> dict[int, float]:
    """NSGA-II's crowding distance of each index in `front`: boundary points are infinite."""
    distance = {i: 0.0 for i in front}
    if len(front) <= 2:
        return {i: math.inf for i in front}
    for k in range(len(points[front[0]])):
        ordered = sorted(front, key=lambda i: (points[i][k], i))
        low, high = points[ordered[0]][k], points[ordered[-1]][k]
        distance[ordered[0]] = distance[ordered[-1]] = math.inf
        if high == low:
            continue
        for prev, here, nxt in zip(ordered, ordered[1:], ordered[2:]):
            distance[here] += (points[nxt][k] - points[prev][k]) / (high - low)
    return distance


def nsga2_select(points: Sequence[Objectives], count: int, minimize: Sequence[bool] | None = None) -> list[int]:
    """The indices of `count` survivors: whole fronts first, the last front by crowding."""
    chosen: list[int] = []
    for front in pareto_fronts(points, minimize):
        if len(chosen) + len(front) <= count:
            chosen.extend(front)
            continue
        crowd = crowding_distance(points, front)
        chosen.extend(sorted(front, key=lambda i: (-crowd[i], i))[: count - len(chosen)])
        break
    return chosen


def pareto_rank(points: Sequence[Objectives], minimize: Sequence[bool] | None = None) -> list[int]:
    """Each point's front number (0 = non-dominated)."""
    rank = [0] * len(points)
    for r, front in enumerate(pareto_fronts(points, minimize)):
        for i in front:
            rank[i] = r
    return rank


def deduplicate(items: Sequence[T], key: Callable[[T], Hashable]) -> list[T]:
    """The first item of each key, in order (e.g. key = canonical_hash)."""
    seen: set = set()
    out = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out
