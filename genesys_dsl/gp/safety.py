"""Running operators from plugins without trusting them.

An operator is third-party code: it may raise, return something that is not a
design, return a design that does not check, or edit its parents in place.
`apply_operator` turns each of these into one `OperatorFailure` naming the
operator and its plugin, so the caller (the GP loop) can count the failure and
try another operator instead of crashing. `NotApplicable` is not a failure and
propagates unchanged.
"""

from __future__ import annotations

import random
from typing import Sequence

from ..ir import Design, to_data
from .operator import NotApplicable, Operator, OperatorError


class OperatorFailure(RuntimeError):
    """An operator that raised or produced an invalid tree; names its plugin."""

    def __init__(self, operator: str, plugin: str | None, reason: str):
        self.operator, self.plugin, self.reason = operator, plugin, reason
        super().__init__(f"operator '{operator}' (plugin {plugin or 'unknown'}) failed: {reason}")


def apply_operator(op: Operator, parents: Sequence[Design], rng: random.Random) -> Design:
    """`op(parents, rng)`, checked: a new design with no errors, parents unchanged."""
    if len(parents) != op.arity:  # the caller's mistake, not the plugin's
        raise OperatorError(f"operator '{op.name}' takes {op.arity} parent(s), got {len(parents)}")
    before = [to_data(p) for p in parents]
    try:
        child = op(parents, rng)
    except NotApplicable:
        raise
    except Exception as err:
        raise OperatorFailure(op.name, op.plugin, f"raised {type(err).__name__}: {err}") from err
    if [to_data(p) for p in parents] != before:
        raise OperatorFailure(op.name, op.plugin, "changed its parents in place")
    _require_valid(op, child)
    return child


def _require_valid(op: Operator, child: object) -> None:
    from ..check import check

    if not isinstance(child, Design):
        raise OperatorFailure(op.name, op.plugin, f"returned {type(child).__name__}, not a Design")
    try:
        errors = check(child, []).errors
    except Exception as err:  # a tree so malformed the checker cannot read it
        raise OperatorFailure(op.name, op.plugin, f"returned a tree the checker rejects: {err}") from err
    if errors:
        first = errors[0]
        raise OperatorFailure(op.name, op.plugin, f"returned a design with {len(errors)} error(s), "
                                                  f"first: {first.code}: {first.message}")
