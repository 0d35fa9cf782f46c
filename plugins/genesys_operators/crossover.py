"""Typed crossover between two parents.

Expression level: a tensor expression of parent A of its unit's own width `seq[W]`
is replaced by such an expression of parent B. What the B expression reads comes
along: the assignments it depends on (renamed to fresh names), the units it calls
(renamed on collision); B's input becomes A's input, B's width A's width, and B's
hyperparameters their defaults.

Unit level: a unit of A is replaced, at every call, by a unit of B with the same
interface, brought along with the units it calls.
"""

from __future__ import annotations

from genesys_dsl import ir
from genesys_dsl.check import dims
from genesys_dsl.check.analyze import is_hyper
from genesys_dsl.gp.tree import (
    analyze, copy, first_valid, fresh, fresh_name, get, import_units, inputs, interface,
    positional_prefix, put, registry, rename_unit_refs, roots, shuffled, sites, unit_names, value_expr,
    walk,
)


def _stream_sites(design: ir.Design):
    """(path, unit) of every call or arithmetic expression of type seq[W], W the unit's width."""
    types = analyze(design)
    out = []
    for path, node in sites(design):
        if not isinstance(node, (ir.Call, ir.BinOp)):
            continue
        ut = types[design.units[path[0]].name]
        if ut.is_stream(ut.type_of(node)):
            out.append((path, ut.width()))
    return out


class _Skip(Exception):
    pass


def _last_def(unit: ir.Unit, name: str, pos: int) -> int | None:
    for j in range(pos - 1, -1, -1):
        s = unit.body[j]
        if isinstance(s, ir.Assign) and name in s.targets:
            return j
    return None


def transplant(src: ir.Design, path, dst: ir.Design, dst_unit: ir.Unit, dst_width: str):
    """The expression at `path` of `src`, rewritten to live in `dst_unit` of `dst`:
    (assignments to insert before the use, the expression). Imports called units
    into `dst`. Raises _Skip when it reads something that has no counterpart."""
    unit = src.units[path[0]]
    pos = path[1]
    node = get(src, path)
    ins = inputs(unit)
    width = ins[0].type.dims[0].id
    stream = ins[0].name
    hyper = {p.name: p for p in unit.params if is_hyper(p)}
    dims_of = {d.id for p in ins for d in p.type.dims if isinstance(d, ir.Name)}
    others = {p.name for p in ins[1:]} | (dims_of - {width})
    needed: set[int] = set()

    def need(e, at: int) -> None:
        for n in _reads(e, hyper):
            j = _last_def(unit, n, at)
            if j is not None:
                if j not in needed:
                    needed.add(j)
                    need(unit.body[j].value, j)
            elif n in others:
                raise _Skip
            elif n in hyper and hyper[n].default is None:
                raise _Skip

    need(node, pos)
    order = sorted(needed)
    called = [n for j in order for n in _called(unit.body[j].value, src)] + _called(node, src)
    called += [p.default for p in hyper.values() if isinstance(p.default, str) and src.unit(p.default)]
    mapping = import_units(dst, src, list(dict.fromkeys(called))) if called else {}
    taken = (unit_names(dst_unit) | {u.name for u in dst.units} | set(registry().primitives)
             | set(dims.FUNCTIONS))
    renamed: dict[tuple[int, str], str] = {}
    dst_stream = inputs(dst_unit)[0].name

    def resolve(n: str, at: int):
        j = _last_def(unit, n, at)
        if j is not None:
            return ir.Name(id=renamed[(j, n)])
        if n == stream:
            return ir.Name(id=dst_stream)
        if n == width:
            return ir.Name(id=dst_width)
        if n in hyper:
            return value_expr(hyper[n].default)
        return ir.Name(id=mapping.get(n, n))  # a unit or option name

    def rewrite(e, at: int):
        if isinstance(e, ir.Name):
            return resolve(e.id, at)
        if isinstance(e, ir.Call):
            func = e.func
            if func in hyper:  # a choice called: its default option
                func = hyper[func].default
            func = mapping.get(func, func)
            return ir.Call(func=func, args=[rewrite(a, at) for a in e.args],
                           keywords=[ir.Keyword(name=k.name, value=rewrite(k.value, at)) for k in e.keywords])
        if isinstance(e, ir.BinOp):
            return ir.BinOp(op=e.op, left=rewrite(e.left, at), right=rewrite(e.right, at))
        if isinstance(e, ir.Neg):
            return ir.Neg(operand=rewrite(e.operand, at))
        return copy(e)

    statements = []
    for j in order:
        s = unit.body[j]
        value = rewrite(s.value, j)
        targets = []
        for t in s.targets:
            new = fresh_name(taken, t)
            taken.add(new)
            renamed[(j, t)] = new
            targets.append(new)
        statements.append(ir.Assign(targets=targets, value=value))
    return statements, rewrite(node, pos)


def _reads(e, hyper) -> list[str]:
    out = []
    for n in _walk(e):
        if isinstance(n, ir.Name):
            out.append(n.id)
        elif isinstance(n, ir.Call) and n.func in hyper:
            out.append(n.func)
    return out


def _walk(e):
    return (n for _, n in walk(e))


def _called(e, design: ir.Design) -> list[str]:
    return [n.func if isinstance(n, ir.Call) else n.id for n in _walk(e)
            if (isinstance(n, ir.Call) and design.unit(n.func) is not None)
            or (isinstance(n, ir.Name) and design.unit(n.id) is not None)]


def subtree_crossover(parents, rng):
    """Replace a seq[W] expression of A by a seq[W] expression of B, with what it needs."""
    a, b = parents
    in_a = _stream_sites(a)
    in_b = [(p, w) for p, w in _stream_sites(b)]
    pairs = [(pa, wa, pb) for pa, wa in in_a for pb, _ in in_b]

    def make(pa, wa, pb):
        def build():
            child = fresh(a)
            unit = child.units[pa[0]]
            try:
                statements, e = transplant(b, pb, child, unit, wa)
            except _Skip:
                return None
            unit.body[pa[1]:pa[1]] = statements
            put(child, (pa[0], pa[1] + len(statements), *pa[2:]), e)
            return child
        return build

    return first_valid((make(*t) for t in shuffled(pairs, rng)[:64]), parents, "subtree crossover")


def unit_crossover(parents, rng):
    """Replace a unit of A, at every call, by a unit of B with the same interface."""
    a, b = parents
    pairs = []
    for ua in a.units:
        if ua.is_block:
            continue
        for ub in b.units:
            if ub.is_block:
                continue
            if (interface(ua.params, ua.outputs) == interface(ub.params, ub.outputs)
                    and positional_prefix(ua.params) == positional_prefix(ub.params)):
                pairs.append((ua.name, ub.name))

    def make(old, new):
        def build():
            child = fresh(a)
            name = import_units(child, b, [new])[new]
            if name == old:
                return None
            accepted = {p.name for p in child.unit(name).params}
            for u in child.units:
                if u.name == name:
                    continue
                rename_unit_refs(u, {old: name})
                for _, _, root in roots(u):
                    for _, node in walk(root):
                        if isinstance(node, ir.Call) and node.func == name:
                            node.keywords = [k for k in node.keywords if k.name in accepted]
            return child
        return build

    return first_valid((make(*t) for t in shuffled(pairs, rng)), parents, "unit crossover")


__all__ = ["subtree_crossover", "transplant", "unit_crossover"]
