"""Bloat control: every operator's output must stay within size limits.

Genetic programming grows trees unless something stops it. A design is rejected
when it has too many units, a unit with too many statements, an expression nested
too deeply, or too many (or too few) parameters at the reference scale (cpu-xs),
relative to that scale's parameter target (the transformer seed's count).
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator

from .. import ir

REFERENCE_SCALE = "cpu-xs"


@dataclass(frozen=True)
class Limits:
    max_units: int = 12  # the block included
    max_statements: int = 32  # per unit
    max_depth: int = 14  # nesting of one expression
    max_param_ratio: float = 4.0  # parameters at the reference scale / its param_target
    # ...and at least this: an all-but-empty block (e.g. a mixer removed) is not worth
    # training, and verify's budget fit could not bring it to its scale
    min_param_ratio: float = 0.4
    scale: str = REFERENCE_SCALE


DEFAULT_LIMITS = Limits()

_CURRENT: ContextVar[Limits] = ContextVar("genesys_gp_limits", default=DEFAULT_LIMITS)


def current_limits() -> Limits:
    """The limits in effect: DEFAULT_LIMITS, or those `mutate`/`crossover` were given."""
    return _CURRENT.get()


@contextmanager
def using_limits(limits: Limits) -> Iterator[Limits]:
    """Operators called inside see `limits` as `current_limits()`."""
    token = _CURRENT.set(limits)
    try:
        yield limits
    finally:
        _CURRENT.reset(token)


def _depth(e) -> int:
    from .tree import depth

    return depth(e)


def bloat_problem(design: ir.Design, limits: Limits | None = None) -> str | None:
    """Why `design` is too big (by `limits`, default: the current ones), or None. Assumes nothing about validity: a design that
    does not check clean at the reference scale is reported as such."""
    from ..check import stats
    from ..scales import get_scale
    from ..syntax.diagnostics import DSLError

    limits = limits or current_limits()
    if len(design.units) > limits.max_units:
        return f"{len(design.units)} units (limit {limits.max_units})"
    for u in design.units:
        if len(u.body) > limits.max_statements:
            return f"unit '{u.name}' has {len(u.body)} statements (limit {limits.max_statements})"
        for s in u.body:
            for e in ([s.value] if isinstance(s, ir.Assign) else s.values):
                d = _depth(e)
                if d > limits.max_depth:
                    return f"an expression of '{u.name}' is nested {d} deep (limit {limits.max_depth})"
    scale = get_scale(limits.scale)
    try:
        figures = stats(design, scale)
    except DSLError as err:
        return f"does not check clean at {scale.name}: {err}"
    cap = limits.max_param_ratio * scale.param_target
    if figures.params > cap:
        return f"{figures.params:,} parameters at {scale.name} (limit {int(cap):,})"
    floor = limits.min_param_ratio * scale.param_target
    if figures.params < floor:
        return f"{figures.params:,} parameters at {scale.name} (at least {int(floor):,})"
    return None
