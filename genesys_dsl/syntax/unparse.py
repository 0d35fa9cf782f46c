"""IR -> canonical GAB text (like `ast.unparse`, but keeping comments).

One formatting for every tree: 4-space indent, one statement per line, the fewest
parentheses that keep the tree, a blank line between units, and a signature on one
line unless it is longer than `LINE_WIDTH` or its parameters carry comments.
`parse(unparse(d))` gives back `d` (spans aside) and `unparse` is idempotent.
"""

from __future__ import annotations

from .. import ir

INDENT = "    "
LINE_WIDTH = 100

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
_UNARY = 3
_ATOM = 4


def value(v: ir.Value) -> str:
    """A literal as written in a spec: true/false, integers, shortest round-trip floats, names."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        text = repr(v)
        return text if any(c in text for c in ".e") else text + ".0"
    return str(v)


def _precedence(e) -> int:
    if isinstance(e, ir.BinOp):
        return _PRECEDENCE[e.op]
    if isinstance(e, ir.Neg):
        return _UNARY
    return _ATOM


def expr(e) -> str:
    """An expression with the minimal parentheses that reproduce its tree."""
    if isinstance(e, ir.Name):
        return e.id
    if isinstance(e, ir.BoolLit):
        return "true" if e.value else "false"
    if isinstance(e, (ir.IntLit, ir.FloatLit)):
        return value(abs(e.value))  # FloatLit(-0.0) is valid (>= 0): print 0.0, not a negation
    if isinstance(e, ir.Call):
        args = [expr(a) for a in e.args] + [f"{k.name}={expr(k.value)}" for k in e.keywords]
        return f"{e.func}({', '.join(args)})"
    if isinstance(e, ir.BinOp):
        p = _PRECEDENCE[e.op]
        left, right = expr(e.left), expr(e.right)
        if _precedence(e.left) < p:
            left = f"({left})"
        if _precedence(e.right) <= p:  # the tree is left-associative
            right = f"({right})"
        return f"{left} {e.op} {right}"
    if isinstance(e, ir.Neg):
        inner = expr(e.operand)
        return f"-({inner})" if _precedence(e.operand) < _UNARY else f"-{inner}"
    if isinstance(e, ir.RestDim):
        return f"*{e.name}"
    raise TypeError(f"not an expression node: {type(e).__name__}")


def type_(t) -> str:
    if isinstance(t, ir.SeqType):
        return f"seq[{', '.join(expr(d) for d in t.dims)}]"
    return t.kind


def param(p: ir.Param) -> str:
    text = f"{p.name}: {type_(p.type)}"
    if p.default is not None:
        text += f" = {value(p.default)}"
    if isinstance(p.domain, ir.Range):
        text += f" in {value(p.domain.low)}..{value(p.domain.high)}"
    elif isinstance(p.domain, ir.Options):
        text += f" in {{{', '.join(value(v) for v in p.domain.values)}}}"
    return text


def outputs(outs: list[ir.Output]) -> str:
    if len(outs) == 1 and outs[0].name is None:
        return type_(outs[0].type)
    return "(" + ", ".join(f"{o.name}: {type_(o.type)}" for o in outs) + ")"


def signature_line(head: str, params: list[ir.Param], outs: list[ir.Output]) -> str:
    """`head(params) -> outputs` on one line, however long."""
    return f"{head}({', '.join(param(p) for p in params)}) -> {outputs(outs)}"


def signature(head: str, params: list[ir.Param], outs: list[ir.Output], indent: str = "") -> str:
    """`head(params) -> outputs`, wrapped one parameter per line when needed."""
    out = outputs(outs)
    one_line = f"{head}({', '.join(param(p) for p in params)}) -> {out}"
    has_comments = any(p.comments or p.trailing_comment for p in params)
    if not has_comments and len(indent + one_line) + 2 <= LINE_WIDTH:
        return one_line
    lines = [f"{head}("]
    for p in params:
        lines += [f"{indent}{INDENT}{c}" for c in p.comments]
        line = f"{indent}{INDENT}{param(p)},"
        lines.append(line + (f"  {p.trailing_comment}" if p.trailing_comment else ""))
    lines.append(f"{indent}) -> {out}")
    return "\n".join(lines)


def statement(s, indent: str = INDENT) -> list[str]:
    lines = [indent + c for c in s.comments]
    if isinstance(s, ir.Assign):
        text = f"{', '.join(s.targets)} = {expr(s.value)}"
    else:
        text = "return " + ", ".join(expr(v) for v in s.values)
    lines.append(indent + text + (f"  {s.trailing_comment}" if s.trailing_comment else ""))
    return lines


def unit(u: ir.Unit) -> str:
    head = "block" if u.is_block else f"unit {u.name}"
    lines = list(u.comments)
    lines.append(signature(head, u.params, u.outputs) + " {")
    if u.doc is not None:
        lines.append(f'{INDENT}"""{u.doc}"""')
    for s in u.body:
        lines += statement(s)
    lines += [INDENT + c for c in u.end_comments]
    lines.append("}")
    return "\n".join(lines)


def _string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def scaffold(s: ir.Scaffold) -> str:
    return "scaffold(" + ", ".join(f"{x.name}={value(x.value)}" for x in s.settings) + ")"


def unparse(design: ir.Design) -> str:
    """The canonical text of a design."""
    header = f"design {design.name}"
    if design.description is not None:
        header += " " + _string(design.description)
    parts = ["\n".join([*design.comments, header] + ([scaffold(design.scaffold)] if design.scaffold else []))]
    parts += [unit(u) for u in design.units]
    if design.end_comments:
        parts.append("\n".join(design.end_comments))
    return "\n\n".join(parts) + "\n"


def unparse_signature(sig: ir.Signature) -> str:
    return signature(sig.name, sig.params, sig.outputs)
