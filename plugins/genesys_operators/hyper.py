"""Hyperparameter moves within declared domains.

An int or float range: a step (+-1, x2, /2 for ints; x0.5 .. x2 for floats) or a
resample (log-uniform over wide ranges); an option set or a choice: another option;
a bool: flipped. At a unit's declaration (its default) or at one call site (a
keyword argument, added when the call relied on the default).
"""

from __future__ import annotations

import math
import random

from genesys_dsl import ir
from genesys_dsl.check.analyze import is_hyper
from genesys_dsl.gp.tree import (
    callee, first_valid, fresh, get, literal_value, shuffled, sites, unit_names, value_expr,
)


def _round(v: float) -> float:
    return float(f"{v:.4g}")


def _wide(low, high) -> bool:
    return low > 0 and high / low > 100


def _resample(kind: str, low, high, rng: random.Random):
    if _wide(low, high) or (kind == "int" and low >= 0 and high - low > 256):
        lo = math.log(max(low, 1 if kind == "int" else low))
        v = math.exp(rng.uniform(lo, math.log(high)))
    else:
        v = rng.uniform(low, high)
    return min(max(round(v), low), high) if kind == "int" else _round(min(max(v, low), high))


def _step(kind: str, current, low, high, rng: random.Random):
    if kind == "int":
        moves = [current - 1, current + 1, current * 2, current // 2]
        moves = [m for m in moves if low <= m <= high and m != current]
        return rng.choice(moves) if moves else None
    factor = rng.choice([0.5, 0.8, 0.9, 1.1, 1.25, 2.0] if not _wide(low, high) else [0.1, 0.5, 2.0, 10.0])
    return _round(min(max(current * factor, low), high))


def move(p: ir.Param, current, rng: random.Random):
    """Another value for hyperparameter `p` within its domain, or None."""
    kind = p.type.kind
    if kind == "bool":
        return not current if isinstance(current, bool) else None
    domain = p.domain
    if isinstance(domain, ir.Options):
        others = [v for v in domain.values if not (v == current and type(v) is type(current))]
        return rng.choice(others) if others else None
    if isinstance(domain, ir.Range) and kind in ("int", "float"):
        low, high = domain.low, domain.high
        if current is None or isinstance(current, (bool, str)) or rng.random() < 0.3:
            new = _resample(kind, low, high, rng)
        else:
            new = _step(kind, current, low, high, rng)
        if new is None:
            return None
        new = int(new) if kind == "int" else float(new)
        return None if new == current else new
    return None


def _movable(p: ir.Param) -> bool:
    return is_hyper(p) and (p.type.kind == "bool" or p.domain is not None)


def hyper_default(parents, rng):
    """Move the default of one hyperparameter of one unit within its domain."""
    (parent,) = parents
    targets = [(ui, pi) for ui, u in enumerate(parent.units) for pi, p in enumerate(u.params)
               if _movable(p) and p.default is not None]

    def make(ui, pi):
        def build():
            child = fresh(parent)
            p = child.units[ui].params[pi]
            new = move(p, p.default, rng)
            if new is None:
                return None
            p.default = new
            return child
        return build

    return first_valid((make(*t) for t in shuffled(targets, rng)), parents, "hyperparameter default")


def _call_targets(design: ir.Design):
    """(path, parameter) for each call-site hyperparameter that may be set by keyword."""
    out = []
    locals_of = {ui: unit_names(u) for ui, u in enumerate(design.units)}
    for path, node in sites(design):
        if not isinstance(node, ir.Call) or node.func in locals_of[path[0]]:
            continue
        c = callee(design, node.func)
        if c is None:
            continue
        positional = {p.name for p in c.params[:len(node.args)]}
        given = {k.name: k.value for k in node.keywords}
        for p in c.params:
            if not _movable(p) or p.name in positional:
                continue
            if p.name in given and literal_value(given[p.name]) is None and not (
                    p.type.kind == "choice" and isinstance(given[p.name], ir.Name)
                    and given[p.name].id not in locals_of[path[0]]):
                continue  # passed on from the caller's own hyperparameter
            if p.name not in given and p.default is None:
                continue
            out.append((path, p.name))
    return out


def hyper_callsite(parents, rng):
    """Set one hyperparameter at one call site (a keyword argument) to another value in its domain."""
    (parent,) = parents
    targets = _call_targets(parent)

    def make(path, name):
        def build():
            child = fresh(parent)
            call = get(child, path)
            p = next(p for p in callee(child, call.func).params if p.name == name)
            kw = next((k for k in call.keywords if k.name == name), None)
            if kw is None:
                current = p.default
            elif p.type.kind == "choice":
                current = kw.value.id
            else:
                current = literal_value(kw.value)
            new = move(p, current, rng)
            if new is None:
                return None
            if kw is None:
                call.keywords.append(ir.Keyword(name=name, value=value_expr(new)))
            else:
                kw.value = value_expr(new)
            return child
        return build

    return first_valid((make(*t) for t in shuffled(targets, rng)), parents, "call-site hyperparameter")
