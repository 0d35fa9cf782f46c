"""Symbolic size expressions.

A size (a tensor dim, or an int/float hyperparameter value) is a small expression
tree over symbols: constants (int, Fraction, float), symbol names (`"D"`, `"heads"`),
and tuples `(op, a, b)` for + - * /, `("neg", a)`, `(fn, *args)` for the size
builtins, and `("lit", name)` for a choice option. Two sizes are equal when they agree at a few fixed pseudo-random points
(exact Fractions): a cheap, dependable test for identities such as
`D / heads * heads == D` without a computer-algebra dependency.
"""

from __future__ import annotations

import math
import random
from fractions import Fraction
from typing import Any, Callable, Mapping, Union

Size = Union[int, Fraction, float, str, tuple]

BINARY = ("+", "-", "*", "/")


class SizeError(ArithmeticError):
    """Evaluation failed: division by zero, or a value no size can have."""


def _multiple_of(x, m):
    if m <= 0:
        raise SizeError("multiple_of needs a positive multiple")
    return math.ceil(Fraction(x) / m) * m if not isinstance(x, float) else math.ceil(x / m) * m


# Builtin size functions: name -> (arity, implementation, doc). They apply to
# sizes and hyperparameters only, never to tensors.
FUNCTIONS: dict[str, tuple[int, Callable[..., Any], str]] = {
    "floor": (1, lambda x: math.floor(x), "largest integer <= x"),
    "ceil": (1, lambda x: math.ceil(x), "smallest integer >= x"),
    "round": (1, lambda x: int(math.floor(x + Fraction(1, 2))) if not isinstance(x, float) else math.floor(x + 0.5),
              "nearest integer (halves round up)"),
    "multiple_of": (2, _multiple_of, "x rounded up to a multiple of m, e.g. multiple_of(8 * D / 3, 64)"),
    "min": (2, lambda a, b: min(a, b), "the smaller of two sizes"),
    "max": (2, lambda a, b: max(a, b), "the larger of two sizes"),
}


def simplify(e: Size) -> Size:
    """Fold constants and drop neutral elements, so messages read `2 * D`, not `(1 + 1) * D`."""
    if not isinstance(e, tuple) or e[0] == "lit":
        return e
    op, *args = e
    args = [simplify(a) for a in args]
    if all(_is_const(a) for a in args):
        try:
            return _normalise(_apply(op, args))
        except (SizeError, ArithmeticError, ValueError, TypeError):
            return (op, *args)
    if op in BINARY:
        a, b = args
        if op == "+" and _is_zero(a):
            return b
        if op in "+-" and _is_zero(b):
            return a
        if op == "*" and _is_one(a):
            return b
        if op in "*/" and _is_one(b):
            return a
    return (op, *args)


def _is_const(e: Size) -> bool:
    return isinstance(e, (int, float, Fraction)) and not isinstance(e, bool)


def _is_zero(e: Size) -> bool:
    return _is_const(e) and e == 0


def _is_one(e: Size) -> bool:
    return _is_const(e) and e == 1


def _normalise(v):
    if isinstance(v, Fraction) and v.denominator == 1:
        return int(v)
    return v


def _apply(op: str, args: list) -> Any:
    if op == "neg":
        return -args[0]
    if op in BINARY:
        a, b = args
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if b == 0:
            raise SizeError("division by zero")
        if isinstance(a, float) or isinstance(b, float):
            return a / b
        return Fraction(a) / Fraction(b)
    arity, fn, _ = FUNCTIONS[op]
    return fn(*args)


def evaluate(e: Size, env: Mapping[str, Any]) -> Any:
    """The value of a size under concrete bindings (ints stay exact as Fractions)."""
    if isinstance(e, tuple):
        if e[0] == "lit":
            return e[1]
        return _normalise(_apply(e[0], [evaluate(a, env) for a in e[1:]]))
    if isinstance(e, str):
        return env[e]
    return e


def substitute(e: Size, bindings: Mapping[str, Size]) -> Size:
    if isinstance(e, tuple) and e[0] == "lit":
        return e
    if isinstance(e, tuple):
        return (e[0], *(substitute(a, bindings) for a in e[1:]))
    if isinstance(e, str):
        return bindings.get(e, e)
    return e


def symbols(e: Size) -> set[str]:
    if isinstance(e, tuple) and e[0] == "lit":
        return set()
    if isinstance(e, tuple):
        out: set[str] = set()
        for a in e[1:]:
            out |= symbols(a)
        return out
    return {e} if isinstance(e, str) else set()


N_PROBES = 3
_rng = random.Random(20261127)
_values: dict[str, list[int]] = {}


def _probe(name: str) -> list[int]:
    if name not in _values:
        # Large random integers with many small factors, so that exact divisions
        # that hold for all sizes (D / heads * heads) also hold at the probes.
        _values[name] = [_rng.randrange(1, 60) * 720720 for _ in range(N_PROBES)]
    return _values[name]


def equal(a: Size, b: Size) -> bool:
    """Whether two sizes are the same for every binding of their symbols."""
    if a == b:
        return True
    names = symbols(a) | symbols(b)
    for i in range(N_PROBES):
        env = {n: _probe(n)[i] for n in names}
        try:
            if evaluate(a, env) != evaluate(b, env):
                return False
        except (SizeError, ArithmeticError, ValueError, TypeError):
            return False
    return True


_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


def show(e: Size) -> str:
    """A size as it would be written in a spec."""
    return _show(simplify(e))


def _show(e: Size) -> str:
    if isinstance(e, tuple):
        op = e[0]
        if op == "lit":
            return str(e[1])
        if op in _PREC:
            left, right = _show(e[1]), _show(e[2])
            if isinstance(e[1], tuple) and e[1][0] in _PREC and _PREC[e[1][0]] < _PREC[op]:
                left = f"({left})"
            if isinstance(e[2], tuple) and e[2][0] in _PREC and _PREC[e[2][0]] <= _PREC[op]:
                right = f"({right})"
            return f"{left} {op} {right}"
        if op == "neg":
            inner = _show(e[1])
            return f"-({inner})" if isinstance(e[1], tuple) and e[1][0] in _PREC else f"-{inner}"
        return f"{op}({', '.join(_show(a) for a in e[1:])})"
    if isinstance(e, Fraction):
        return f"{e.numerator}/{e.denominator}"
    if isinstance(e, bool):
        return "true" if e else "false"
    return str(e)


def show_value(v: Any) -> str:
    """A concrete value for messages: 42, 10.67, true, silu."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Fraction):
        return str(int(v)) if v.denominator == 1 else f"{float(v):.4g}"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)
