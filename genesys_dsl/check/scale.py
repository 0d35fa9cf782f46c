"""Checks and costs at a concrete scale.

Walks the instance tree (block -> the units it calls, with their hyperparameters
-> ... -> primitives) with every size evaluated: dims must be positive integers,
int arguments integers within their declared ranges, primitive constraints must
hold; the primitives' formulas are summed into parameter and FLOP counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from .. import ir
from ..ops.registry import Primitive
from ..scales import Scale
from ..syntax.diagnostics import Diagnostic
from . import dims
from .analyze import CallRecord, SizeCheck, UnitInfo
from .reuse import Session, store_walk, stored_walk


@dataclass
class Cost:
    params: int = 0
    flops: float = 0.0
    children: list[tuple[str, "Cost"]] = field(default_factory=list)  # (label, cost) per call


NO_COST = Cost()  # what a walk that only checks gives (never changed)


@dataclass
class ScaleProblem:
    span: ir.Span | None
    code: str
    message: str
    hint: str | None = None


class ScaleWalker:
    """One scale: walks the instance tree from the block, evaluating every recorded size.

    The records' sizes are compiled once per check (`SizeCheck.evaluate`, ...), so each
    scale costs only their evaluation; messages are written only for sizes that fail.
    """

    def __init__(self, infos: dict[str, UnitInfo], scale: Scale, skip: set[str], *, costs: bool = True,
                 reuse: Session | None = None):
        self.infos = infos
        self.scale = scale
        self.skip = skip  # units in a call cycle: not instantiated
        self.costs = costs  # False when only checking: the formulas are then not evaluated
        self.reuse = reuse  # walks shared with other designs' checks (`check.reuse`), if given
        self.problems: dict[tuple, ScaleProblem] = {}
        self.reported = 0  # problems found so far, repeats included: tells a clean walk
        self.memo: dict[tuple, Cost] = {}
        self.dirty: set[tuple] = set()  # memo entries whose walk found a problem

    def problem(self, span, code, message, hint=None) -> None:
        key = (code, span.line if span else 0, span.column if span else 0)
        self.problems.setdefault(key, ScaleProblem(span, code, message, hint))
        self.reported += 1

    def block_env(self, info: UnitInfo) -> dict[str, Any]:
        env: dict[str, Any] = {name: self.scale.d_model for name in info.dim_vars}
        for name, p in info.hyper.items():
            env[name] = p.default
        return env

    def walk(self, name: str, env: dict[str, Any]) -> Cost:
        key = (name, tuple(sorted((k, repr(v)) for k, v in env.items())))
        if key in self.memo:
            if key in self.dirty:
                self.reported += 1  # so the walks that reach it again are not taken as clean
            return self.memo[key]
        shared = self.reuse.walk_key(name, key[1], self.scale.context_length, self.costs) if self.reuse else None
        cost = stored_walk(shared) if shared is not None else None
        if cost is None:
            before = self.reported
            cost = self._walk(self.infos[name], env)
            if self.reported != before:
                self.dirty.add(key)
            elif shared is not None:
                store_walk(shared, cost)
        self.memo[key] = cost
        return cost

    def _walk(self, info: UnitInfo, env: dict[str, Any]) -> Cost:
        failed: set[str] = set()  # a bad size is reported once per unit, where it first appears
        for check in info.distinct_checks:
            if failed and check.key in failed:
                continue
            if not self.size_check(check, env):
                failed.add(check.key)
        if not self.costs:  # only checking: nothing to sum, and nothing to keep
            for call in info.checked_calls:
                self.call(call, env)
            return NO_COST
        cost = Cost()
        for evaluators, per_element in info.compiled_elementwise:
            numel = self.numel(evaluators, env)
            if numel is not None:
                cost.flops += per_element * numel
        for call in info.calls:
            child = self.call(call, env)
            if child is not None:
                label, c = child
                cost.params += c.params
                cost.flops += c.flops
                cost.children.append((label, c))
        return cost

    def numel(self, evaluators, env) -> int | None:
        total = 1
        for evaluate in evaluators:
            try:
                v = dims.integral(evaluate(env))
            except dims.EVALUATION_ERRORS:
                return None
            if v is None:
                return None
            total *= v
        return total

    def _where(self, size, env) -> str:
        names = sorted(dims.symbols(size))
        bound = ", ".join(f"{n}={dims.show_value(env[n])}" for n in names if n in env)
        return f"at scale {self.scale.name}" + (f" ({bound})" if bound else "")

    def size_check(self, check: SizeCheck, env) -> bool:
        """Whether the size is fine here; if not, the problem is recorded."""
        try:
            value = check.evaluate(env)
        except (dims.SizeError, ZeroDivisionError) as err:
            self.problem(check.span, "bad-size", f"{check.what} cannot be computed {self._where(check.size, env)}: "
                         f"{err}")
            return False
        except (KeyError, TypeError, ValueError):
            return True  # an unbound name or a mistyped value: already reported by the analysis
        if type(value) is int and value > 0 and check.only_positive:
            return True  # by far the most common case, decided without the checks below
        ok = True
        if check.positive or check.low is None and check.options is None:
            if isinstance(value, (int, float, Fraction)) and not isinstance(value, bool):
                if dims.integral(value) is None:
                    self.problem(check.span, "dim-not-integer",
                                 f"{check.what}: {_shown(check, value)} is not an integer "
                                 f"{self._where(check.size, env)}",
                                 hint="choose hyperparameters that divide the width, or round with "
                                      "floor(...) / multiple_of(..., 8)")
                    return False
                if check.positive and value <= 0:
                    self.problem(check.span, "dim-not-positive",
                                 f"{check.what}: {_shown(check, value)} is not positive {self._where(check.size, env)}")
                    return False
        if check.low is not None and not (check.low <= value <= check.high):
            self.problem(check.span, "out-of-range",
                         f"{check.what}: {_shown(check, value)} is outside {dims.show_value(check.low)}.."
                         f"{dims.show_value(check.high)} {self._where(check.size, env)}")
            ok = False
        if check.options is not None and value not in check.options:
            self.problem(check.span, "out-of-range",
                         f"{check.what}: {_shown(check, value)} is not one of "
                         f"{{{', '.join(map(dims.show_value, check.options))}}} {self._where(check.size, env)}")
            ok = False
        return ok

    def bindings(self, call: CallRecord, option: str, env) -> dict[str, Any] | None:
        """The callee's names bound to values here; None if a size cannot be evaluated."""
        compiled = call.compiled_bindings(option)
        out = dict(compiled.constants)
        try:
            for name, symbol in compiled.copies:
                out[name] = env[symbol]
            for name, evaluate in compiled.sizes:
                out[name] = dims.bound_value(evaluate(env))
            for name, evaluators in compiled.rests:
                values = tuple(dims.integral(e(env)) for e in evaluators)
                if None in values:
                    return None
                out[name] = values
        except dims.EVALUATION_ERRORS:
            return None
        return out

    def call(self, call: CallRecord, env) -> tuple[str, Cost] | None:
        option = call.callee
        if call.choice is not None:
            option = env.get(call.choice)
            if option not in call.targets:
                return None
        callee = call.targets[option]
        b = self.bindings(call, option, env)
        if b is None:
            return None
        if callee.primitive is not None:
            return callee.name, self.primitive_cost(callee.primitive, b, call)
        if callee.name in self.skip:
            return None
        return callee.name, self.walk(callee.name, b)

    def primitive_cost(self, prim: Primitive, b: dict[str, Any], call: CallRecord) -> Cost:
        b["L"] = self.scale.context_length  # `b` is this call's own, from `bindings`
        for c in prim.constraints:
            try:
                holds = c.holds(b)
            except (ArithmeticError, KeyError, TypeError, ValueError):
                holds = False
            if not holds:
                shown = {k: dims.show_value(v) for k, v in b.items() if not isinstance(v, tuple)}
                self.problem(call.span, "constraint",
                             f"{prim.name}(): {_format(c.message, shown)} at scale {self.scale.name}",
                             hint=_format(c.hint, shown) if c.hint else None)
        if not self.costs:
            return NO_COST
        try:
            return Cost(params=int(prim.params(b)), flops=float(prim.flops(b)))
        except (ArithmeticError, KeyError, TypeError, ValueError):
            return Cost()


def _shown(check: SizeCheck, value: Any) -> str:
    """A checked size and its value for a message: `D / heads = 10.67`, or just `10.67`."""
    shown = f"{dims.show(check.size)} = {dims.show_value(value)}"
    if dims.symbols(check.size) == set() or shown.split(" = ")[0] == dims.show_value(value):
        shown = dims.show_value(value)
    return shown


def _format(template: str, values: dict[str, str]) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        return template


def to_diagnostics(problems, file: str | None) -> list[Diagnostic]:
    return [Diagnostic.at(p.span, p.code, p.message, hint=p.hint, file=file) for p in problems]
