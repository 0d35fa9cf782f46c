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


@dataclass
class Cost:
    params: int = 0
    flops: float = 0.0
    children: list[tuple[str, "Cost"]] = field(default_factory=list)  # (label, cost) per call


@dataclass
class ScaleProblem:
    span: ir.Span | None
    code: str
    message: str
    hint: str | None = None


def _integral(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, Fraction) and v.denominator == 1:
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


class ScaleWalker:
    def __init__(self, infos: dict[str, UnitInfo], scale: Scale, skip: set[str]):
        self.infos = infos
        self.scale = scale
        self.skip = skip  # units in a call cycle: not instantiated
        self.problems: dict[tuple, ScaleProblem] = {}
        self.memo: dict[tuple, Cost] = {}

    def problem(self, span, code, message, hint=None) -> None:
        self.flagged = True
        key = (code, span.line if span else 0, span.column if span else 0)
        self.problems.setdefault(key, ScaleProblem(span, code, message, hint))

    def block_env(self, info: UnitInfo) -> dict[str, Any]:
        env: dict[str, Any] = {name: self.scale.d_model for name in info.dim_vars}
        for name, p in info.hyper.items():
            env[name] = p.default
        return env

    def walk(self, name: str, env: dict[str, Any]) -> Cost:
        key = (name, tuple(sorted((k, repr(v)) for k, v in env.items())))
        if key not in self.memo:
            self.memo[key] = self._walk(self.infos[name], env)
        return self.memo[key]

    def _walk(self, info: UnitInfo, env: dict[str, Any]) -> Cost:
        cost = Cost()
        failed: set[str] = set()  # a bad size is reported once per unit, where it first appears
        for check in info.checks:
            self.size_check(check, env, failed)
        for t, per_element in info.elementwise:
            numel = self.numel(t.dims, env)
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

    def numel(self, sizes, env) -> int | None:
        total = 1
        for s in sizes:
            try:
                v = _integral(dims.evaluate(s, env))
            except (dims.SizeError, ArithmeticError, KeyError, TypeError, ValueError):
                return None
            if v is None:
                return None
            total *= v
        return total

    def _where(self, size, env) -> str:
        names = sorted(dims.symbols(size))
        bound = ", ".join(f"{n}={dims.show_value(env[n])}" for n in names if n in env)
        return f"at scale {self.scale.name}" + (f" ({bound})" if bound else "")

    def size_check(self, check: SizeCheck, env, failed: set[str]) -> None:
        key = repr(dims.simplify(check.size))
        if key in failed:
            return
        self.flagged = False
        self._size_check(check, env)
        if self.flagged:
            failed.add(key)

    def _size_check(self, check: SizeCheck, env) -> None:
        try:
            value = dims.evaluate(check.size, env)
        except (dims.SizeError, ZeroDivisionError) as err:
            self.problem(check.span, "bad-size", f"{check.what} cannot be computed {self._where(check.size, env)}: "
                         f"{err}")
            return
        except (KeyError, TypeError, ValueError):
            return  # an unbound name or a mistyped value: already reported by the analysis
        shown = f"{dims.show(check.size)} = {dims.show_value(value)}"
        if dims.symbols(check.size) == set() or shown.split(" = ")[0] == dims.show_value(value):
            shown = dims.show_value(value)
        if check.positive or check.low is None and check.options is None:
            if isinstance(value, (int, float, Fraction)) and not isinstance(value, bool):
                if _integral(value) is None:
                    self.problem(check.span, "dim-not-integer",
                                 f"{check.what}: {shown} is not an integer {self._where(check.size, env)}",
                                 hint="choose hyperparameters that divide the width, or round with "
                                      "floor(...) / multiple_of(..., 8)")
                    return
                if check.positive and value <= 0:
                    self.problem(check.span, "dim-not-positive",
                                 f"{check.what}: {shown} is not positive {self._where(check.size, env)}")
                    return
        if check.low is not None and not (check.low <= value <= check.high):
            self.problem(check.span, "out-of-range",
                         f"{check.what}: {shown} is outside {dims.show_value(check.low)}.."
                         f"{dims.show_value(check.high)} {self._where(check.size, env)}")
        if check.options is not None and value not in check.options:
            self.problem(check.span, "out-of-range",
                         f"{check.what}: {shown} is not one of {{{', '.join(map(dims.show_value, check.options))}}} "
                         f"{self._where(check.size, env)}")

    def bindings(self, sizes: dict[str, Any], env) -> dict[str, Any] | None:
        out = {}
        for name, size in sizes.items():
            try:
                if isinstance(size, tuple) and size[0] == "rest":
                    values = [_integral(dims.evaluate(s, env)) for s in size[1:]]
                    if any(v is None for v in values):
                        return None
                    out[name] = tuple(values)
                else:
                    v = dims.evaluate(size, env)
                    iv = _integral(v)
                    out[name] = iv if iv is not None and not isinstance(v, float) else v
            except (dims.SizeError, ArithmeticError, KeyError, TypeError, ValueError):
                return None
        return out

    def call(self, call: CallRecord, env) -> tuple[str, Cost] | None:
        option = call.callee
        if call.choice is not None:
            option = env.get(call.choice)
            if option not in call.targets:
                return None
        callee = call.targets[option]
        b = self.bindings(call.bindings[option], env)
        if b is None:
            return None
        if callee.primitive is not None:
            return callee.name, self.primitive_cost(callee.primitive, b, call)
        if callee.name in self.skip:
            return None
        return callee.name, self.walk(callee.name, b)

    def primitive_cost(self, prim: Primitive, b: dict[str, Any], call: CallRecord) -> Cost:
        b = dict(b, L=self.scale.context_length)
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
        try:
            return Cost(params=int(prim.params(b)), flops=float(prim.flops(b)))
        except (ArithmeticError, KeyError, TypeError, ValueError):
            return Cost()


def _format(template: str, values: dict[str, str]) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        return template


def to_diagnostics(problems, file: str | None) -> list[Diagnostic]:
    return [Diagnostic.at(p.span, p.code, p.message, hint=p.hint, file=file) for p in problems]
