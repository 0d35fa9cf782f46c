"""A structural diff of two designs, in units and edits, one readable line each.

    + unit SwiGLU
    - unit MLP
    GatedMLP: ratio 2.667 -> 3.0
    Attention: causal_attention -> retention
    block: + RMSNorm wrapper around Attention(RMSNorm(x))
    block: + x = x + SwiGLU(RMSNorm(x))
    scaffold: positions none -> learned

Comments, docstrings and formatting are not part of the diff. Units are matched by
name (the block with the block); statements by their text, then changed statements
pairwise, reduced to the smallest differing sub-expressions.
"""

from __future__ import annotations

import difflib

from .. import ir
from ..syntax.unparse import expr as text, param as param_text, statement, type_, value as value_text

def diff(a: ir.Design, b: ir.Design) -> list[str]:
    """The edits that turn `a` into `b` (empty when they are the same architecture)."""
    lines: list[str] = []
    lines += _scaffold(a, b)
    names_a = [u.name for u in a.units]
    names_b = [u.name for u in b.units]
    for u in a.units:
        if u.name not in names_b:
            lines.append(f"- unit {u.name}")
    for u in b.units:
        if u.name not in names_a:
            lines.append(f"+ unit {u.name}")
    for ub in b.units:
        ua = next((u for u in a.units if u.name == ub.name and u.is_block == ub.is_block), None)
        if ua is not None:
            lines += _unit(ua, ub)
    return lines


def _label(u: ir.Unit) -> str:
    return "block" if u.is_block else u.name


def _scaffold(a: ir.Design, b: ir.Design) -> list[str]:
    sa = {s.name: s.value for s in (a.scaffold.settings if a.scaffold else [])}
    sb = {s.name: s.value for s in (b.scaffold.settings if b.scaffold else [])}
    out = []
    for name in list(sa) + [n for n in sb if n not in sa]:
        if name not in sb:
            out.append(f"scaffold: - {name}={value_text(sa[name])}")
        elif name not in sa:
            out.append(f"scaffold: + {name}={value_text(sb[name])}")
        elif sa[name] != sb[name] or type(sa[name]) is not type(sb[name]):
            out.append(f"scaffold: {name} {value_text(sa[name])} -> {value_text(sb[name])}")
    return out


def _unit(a: ir.Unit, b: ir.Unit) -> list[str]:
    label = _label(a)
    out = []
    pa = {p.name: p for p in a.params}
    pb = {p.name: p for p in b.params}
    for name, p in pa.items():
        if name not in pb:
            out.append(f"{label}: - param {param_text(p)}")
    for name, p in pb.items():
        if name not in pa:
            out.append(f"{label}: + param {param_text(p)}")
            continue
        q = pa[name]
        if type_(q.type) != type_(p.type):
            out.append(f"{label}: {name}: {type_(q.type)} -> {type_(p.type)}")
        if q.default != p.default or type(q.default) is not type(p.default):
            out.append(f"{label}: {name} {_value(q.default)} -> {_value(p.default)}")
        if _domain(q) != _domain(p):
            out.append(f"{label}: {name} domain {_domain(q) or 'none'} -> {_domain(p) or 'none'}")
    oa = [(o.name, type_(o.type)) for o in a.outputs]
    ob = [(o.name, type_(o.type)) for o in b.outputs]
    if oa != ob:
        from ..syntax.unparse import outputs

        out.append(f"{label}: returns {outputs(a.outputs)} -> {outputs(b.outputs)}")
    out += _body(label, a.body, b.body)
    return out


def _value(v) -> str:
    return "none" if v is None else value_text(v)


def _domain(p: ir.Param) -> str:
    if isinstance(p.domain, ir.Range):
        return f"{value_text(p.domain.low)}..{value_text(p.domain.high)}"
    if isinstance(p.domain, ir.Options):
        return "{" + ", ".join(value_text(v) for v in p.domain.values) + "}"
    return ""


def _line(s) -> str:
    return statement(s, indent="")[-1].split("  #", 1)[0]


def _body(label: str, a: list, b: list) -> list[str]:
    ta, tb = [_line(s) for s in a], [_line(s) for s in b]
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=ta, b=tb, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        if op == "replace":
            pairs = min(i2 - i1, j2 - j1)
            for k in range(pairs):
                out += _statement(label, a[i1 + k], b[j1 + k])
            for s in a[i1 + pairs:i2]:
                out.append(f"{label}: - {_line(s)}")
            for s in b[j1 + pairs:j2]:
                out.append(f"{label}: + {_line(s)}")
        elif op == "delete":
            out += [f"{label}: - {t}" for t in ta[i1:i2]]
        else:
            out += [f"{label}: + {t}" for t in tb[j1:j2]]
    return out


def _statement(label: str, a, b) -> list[str]:
    if type(a) is not type(b) or (isinstance(a, ir.Assign) and a.targets != b.targets) or (
            isinstance(a, ir.Return) and len(a.values) != len(b.values)):
        return [f"{label}: {_line(a)} -> {_line(b)}"]
    pairs = [(a.value, b.value)] if isinstance(a, ir.Assign) else list(zip(a.values, b.values))
    out = []
    for x, y in pairs:
        out += [f"{label}: {edit}" for edit in expr_edits(x, y)]
    return out


def _same(x, y) -> bool:
    return text(x) == text(y)


def _contains(outer, inner) -> bool:
    from .tree import walk

    want = text(inner)
    return any(text(n) == want for steps, n in walk(outer) if steps)


def _wrapper(outer, inner) -> str | None:
    """How `outer` wraps `inner` (a direct operand), described; None when it does not."""
    if isinstance(outer, ir.Call) and outer.args and _same(outer.args[0], inner):
        return f"{outer.func} wrapper around {text(inner)}"
    if isinstance(outer, ir.BinOp) and (_same(outer.left, inner) or _same(outer.right, inner)):
        other = outer.right if _same(outer.left, inner) else outer.left
        if outer.op == "+" and _contains(other, inner):
            return f"residual {text(other)} around {text(inner)}"
        if outer.op == "*":
            return f"gate {text(other)} on {text(inner)}"
        return f"{outer.op} {text(other)} around {text(inner)}"
    return None


def expr_edits(x, y) -> list[str]:
    """The smallest differences between two expressions, described."""
    if _same(x, y):
        return []
    wrap = _wrapper(y, x)
    if wrap:
        return [f"+ {wrap}"]
    unwrap = _wrapper(x, y)
    if unwrap:
        return [f"- {unwrap}"]
    if isinstance(x, ir.Call) and isinstance(y, ir.Call):
        out = []
        if x.func != y.func:
            out.append(f"{x.func} -> {y.func}")
        if len(x.args) == len(y.args):
            for p, q in zip(x.args, y.args):
                out += expr_edits(p, q)
        else:
            return [f"{text(x)} -> {text(y)}"]
        kx = {k.name: k.value for k in x.keywords}
        ky = {k.name: k.value for k in y.keywords}
        for name, v in kx.items():
            if name not in ky:
                out.append(f"{y.func}: - {name}={text(v)}")
        for name, v in ky.items():
            if name not in kx:
                out.append(f"{y.func}: + {name}={text(v)}")
            elif not _same(kx[name], v):
                if _leaf(kx[name]) and _leaf(v):
                    out.append(f"{y.func}: {name} {text(kx[name])} -> {text(v)}")
                else:
                    out += expr_edits(kx[name], v)
        return out
    if isinstance(x, ir.BinOp) and isinstance(y, ir.BinOp) and x.op == y.op:
        return expr_edits(x.left, y.left) + expr_edits(x.right, y.right)
    if isinstance(x, ir.Neg) and isinstance(y, ir.Neg):
        return expr_edits(x.operand, y.operand)
    return [f"{text(x)} -> {text(y)}"]


def _leaf(e) -> bool:
    return not isinstance(e, (ir.Call, ir.BinOp))
