"""Genetic programming on design trees.

    child = mutate(design, seed=1)             # Offspring(design, operator, edits)
    child = crossover(a, b, seed=2)
    canonical_hash(design)                     # the same for the same architecture
    diff(a, b)                                 # ["GatedMLP: ratio 2.667 -> 3.0", ...]

Operators come from plugins (`register_operators`); the built-in ones are in the
`genesys_operators` plugin. `mutate` and `crossover` draw an operator by weight
among those of the right arity (or take the named one), and retry with other draws
and operators when one does not apply or its child does not check clean at the
reference scale (cpu-xs) or exceeds the bloat limits. The same seed gives the same
offspring.
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass, field
from typing import Sequence

from ..ir import Design
from .bloat import DEFAULT_LIMITS, Limits, bloat_problem, using_limits
from .diff import diff
from .hashing import canonical_hash
from .operator import NotApplicable, Operator, OperatorError

__all__ = [
    "GPError",
    "Limits",
    "NotApplicable",
    "Offspring",
    "Operator",
    "OperatorError",
    "canonical_hash",
    "crossover",
    "diff",
    "mutate",
    "operators",
]

MAX_ATTEMPTS = 24


class GPError(RuntimeError):
    """No operator could produce a valid offspring from these parents."""


@dataclass
class Offspring:
    design: Design
    operator: str
    edits: list[str] = field(default_factory=list)


def operators(arity: int | None = None) -> dict[str, Operator]:
    """The registered operators (of one arity), by name, in name order."""
    from ..plugins import operator_registry

    found = operator_registry()
    return {n: found[n] for n in sorted(found) if arity is None or found[n].arity == arity}


def _apply(op: Operator, parents: Sequence[Design], rng: random.Random) -> Design:
    try:
        from .safety import apply_operator
    except ImportError:
        return op(parents, rng)
    return apply_operator(op, parents, rng)


def _breed(parents: Sequence[Design], arity: int, seed, op: str | Operator | None,
           limits: Limits) -> Offspring:
    pool = operators(arity)
    if op is not None:
        chosen = op if isinstance(op, Operator) else pool.get(op)
        if chosen is None:
            known = ", ".join(pool) or "none"
            raise GPError(f"no operator '{op}' of arity {arity} (registered: {known})")
        if chosen.arity != arity:
            raise GPError(f"operator '{chosen.name}' has arity {chosen.arity}, not {arity}")
        pool = {chosen.name: chosen}
    pool = {n: o for n, o in pool.items() if o.weight > 0 or op is not None}
    if not pool:
        raise GPError(f"no operators of arity {arity} are registered")
    rng = random.Random(seed)
    parent_hashes = {canonical_hash(p) for p in parents}
    reasons: dict[str, str] = {}
    strikes: dict[str, int] = {}
    for _ in range(MAX_ATTEMPTS):
        live = [o for o in pool.values() if strikes.get(o.name, 0) < 3]
        if not live:
            break
        total = sum(o.weight for o in live)
        chosen = rng.choices(live, weights=[o.weight for o in live])[0] if total > 0 else rng.choice(live)
        sub = random.Random(rng.getrandbits(64))
        try:
            with using_limits(limits):
                child = _apply(chosen, parents, sub)
        except NotApplicable as err:
            reasons[chosen.name] = f"not applicable: {err}"
            strikes[chosen.name] = 3  # it will not apply to these parents on another draw either
            continue
        except Exception as err:  # a failing plugin operator: warn, and use another one
            warnings.warn(str(err), RuntimeWarning, stacklevel=3)
            reasons[chosen.name] = str(err)
            strikes[chosen.name] = 3
            continue
        problem = _problem(child, parent_hashes, limits)
        if problem:
            reasons[chosen.name] = problem
            strikes[chosen.name] = strikes.get(chosen.name, 0) + 1
            continue
        return Offspring(child, chosen.name, diff(parents[0], child))
    detail = "; ".join(f"{n}: {r}" for n, r in reasons.items()) or "no attempts"
    raise GPError(f"no operator produced a valid offspring in {MAX_ATTEMPTS} attempts ({detail})")


def _problem(child: Design, parent_hashes: set[str], limits: Limits) -> str | None:
    if not isinstance(child, Design):
        return f"returned {type(child).__name__}, not a Design"
    if canonical_hash(child) in parent_hashes:
        return "returned a copy of a parent"
    return bloat_problem(child, limits)


def mutate(design: Design, *, seed, op: str | Operator | None = None,
           limits: Limits = DEFAULT_LIMITS) -> Offspring:
    """One mutation of `design` (a new design; `design` is unchanged)."""
    return _breed([design], 1, seed, op, limits)


def crossover(a: Design, b: Design, *, seed, op: str | Operator | None = None,
              limits: Limits = DEFAULT_LIMITS) -> Offspring:
    """One child of `a` and `b` (edits are relative to `a`)."""
    return _breed([a, b], 2, seed, op, limits)
