"""Tools for operators that edit design trees.

Operators work on copies (`fresh`) and address expressions by *paths*, so a site
found on one copy can be edited on another:

    path = (unit index, statement index, slot, *steps)

`slot` is -1 for an assignment's value and i for a return's i-th value; a step is
"a<i>" (i-th positional argument), "k<i>" (i-th keyword's value), "l", "r" (binary
operands) or "o" (the operand of a negation).

`analyze` types every expression of every unit with the checker's own unit
analysis; `seeds` gives the seed library shipped as package data; `import_units`
brings units (with everything they call) from one design into another, renaming
on collision; `tidy` removes dead assignments and units no longer called.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Callable, Iterable, Iterator, Sequence

from .. import ir
from ..check.analyze import Callee, Callees, UnitAnalyzer, is_hyper, resolve_callee
from ..check.types import TensorT, Type
from .operator import NotApplicable

Path = tuple

# ----------------------------------------------------------------- copies


def fresh(design: ir.Design) -> ir.Design:
    """A deep copy without spans (so checking goes through the canonical text)."""
    return ir.strip_spans(design)


def registry():
    from ..ops import registry as default_registry

    return default_registry()


# ----------------------------------------------------------------- paths


def children(e) -> Iterator[tuple[str, object]]:
    if isinstance(e, ir.Call):
        for i, a in enumerate(e.args):
            yield f"a{i}", a
        for i, k in enumerate(e.keywords):
            yield f"k{i}", k.value
    elif isinstance(e, ir.BinOp):
        yield "l", e.left
        yield "r", e.right
    elif isinstance(e, ir.Neg):
        yield "o", e.operand


def walk(e, steps: tuple = ()) -> Iterator[tuple[tuple, object]]:
    """Every sub-expression of `e` (itself first) with its steps from `e`."""
    yield steps, e
    for step, child in children(e):
        yield from walk(child, steps + (step,))


def roots(unit: ir.Unit) -> Iterator[tuple[int, int, object]]:
    """(statement index, slot, expression) of every top-level expression of a body."""
    for si, s in enumerate(unit.body):
        if isinstance(s, ir.Assign):
            yield si, -1, s.value
        else:
            for vi, v in enumerate(s.values):
                yield si, vi, v


def sites(design: ir.Design) -> Iterator[tuple[Path, object]]:
    """Every expression of every unit body, with its path."""
    for ui, unit in enumerate(design.units):
        for si, slot, root in roots(unit):
            for steps, node in walk(root):
                yield (ui, si, slot, *steps), node


def _step(e, step: str):
    if step[0] == "a":
        return e.args[int(step[1:])]
    if step[0] == "k":
        return e.keywords[int(step[1:])].value
    return {"l": lambda: e.left, "r": lambda: e.right, "o": lambda: e.operand}[step]()


def get(design: ir.Design, path: Path):
    ui, si, slot, *steps = path
    s = design.units[ui].body[si]
    node = s.value if slot == -1 else s.values[slot]
    for step in steps:
        node = _step(node, step)
    return node


def put(design: ir.Design, path: Path, new) -> None:
    """Replace the expression at `path` by `new`, in place."""
    ui, si, slot, *steps = path
    s = design.units[ui].body[si]
    if not steps:
        if slot == -1:
            s.value = new
        else:
            s.values[slot] = new
        return
    parent = get(design, (ui, si, slot, *steps[:-1]))
    last = steps[-1]
    if last[0] == "a":
        parent.args[int(last[1:])] = new
    elif last[0] == "k":
        parent.keywords[int(last[1:])].value = new
    else:
        setattr(parent, {"l": "left", "r": "right", "o": "operand"}[last], new)


def depth(e) -> int:
    """Nesting depth of an expression (a name or literal is 1)."""
    return 1 + max((depth(c) for _, c in children(e)), default=0)


def copy(node):
    return node.model_copy(deep=True)


# ----------------------------------------------------------------- names


def names_in(e) -> list[str]:
    """Names read by an expression (not call targets), in order, with repeats."""
    return [n.id for _, n in walk(e) if isinstance(n, ir.Name)]


def unit_names(unit: ir.Unit) -> set[str]:
    """Every name a unit declares: parameters, dims bound by input shapes, locals."""
    out = {p.name for p in unit.params}
    for p in unit.params:
        if isinstance(p.type, ir.SeqType):
            out.update(d.id for d in p.type.dims if isinstance(d, ir.Name))
    for s in unit.body:
        if isinstance(s, ir.Assign):
            out.update(s.targets)
    return out


def fresh_name(taken: Iterable[str], base: str) -> str:
    taken = set(taken)
    if base not in taken:
        return base
    i = 2
    while f"{base}{i}" in taken:
        i += 1
    return f"{base}{i}"


def inputs(unit: ir.Unit) -> list[ir.Param]:
    return [p for p in unit.params if isinstance(p.type, ir.SeqType)]


# ----------------------------------------------------------------- typing


@dataclass
class UnitTypes:
    unit: ir.Unit
    index: int
    types: dict[int, Type] = field(default_factory=dict)  # id(expression) -> type
    dim_vars: list[str] = field(default_factory=list)
    hyper: dict[str, ir.Param] = field(default_factory=dict)

    def type_of(self, e) -> Type | None:
        return self.types.get(id(e))

    def width(self) -> str | None:
        """The dim variable of the unit's first input when it is `seq[W]`, else None."""
        ins = inputs(self.unit)
        if ins and len(ins[0].type.dims) == 1 and isinstance(ins[0].type.dims[0], ir.Name):
            return ins[0].type.dims[0].id
        return None

    def is_stream(self, t) -> bool:
        """A tensor of the unit's own width, `seq[W]` for the first input's W."""
        w = self.width()
        return isinstance(t, TensorT) and w is not None and len(t.dims) == 1 and t.dims[0] == w


class _Typer(UnitAnalyzer):
    """The checker's unit analysis, remembering the type of every expression."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.types: dict[int, Type] = {}

    def expr(self, e):
        t = super().expr(e)
        self.types[id(e)] = t
        return t


def analyze(design: ir.Design) -> dict[str, UnitTypes]:
    """Unit name -> the types of its expressions (in the unit's own symbols)."""
    reg = registry()
    callees = Callees(design, reg)
    out: dict[str, UnitTypes] = {}
    for ui, unit in enumerate(design.units):
        if unit.name in out:
            continue
        typer = _Typer(unit, design, reg, None, [], callees)
        info = typer.run()
        out[unit.name] = UnitTypes(unit, ui, typer.types, list(info.dim_vars), dict(info.hyper))
    return out


def callee(design: ir.Design, name: str) -> Callee | None:
    return resolve_callee(name, design, registry())


def size_expr(size):
    """A symbolic size (check.dims) as a GAB expression, or None."""
    if isinstance(size, bool):
        return None
    if isinstance(size, int):
        return ir.IntLit(value=size) if size >= 0 else ir.Neg(operand=ir.IntLit(value=-size))
    if isinstance(size, Fraction):
        if size.denominator == 1:
            return size_expr(int(size))
        return None
    if isinstance(size, float):
        return ir.FloatLit(value=size) if size >= 0 else ir.Neg(operand=ir.FloatLit(value=-size))
    if isinstance(size, str):
        return ir.Name(id=size)
    if isinstance(size, tuple):
        op, *args = size
        parts = [size_expr(a) for a in args]
        if op == "lit" or any(p is None for p in parts):
            return None
        if op in ("+", "-", "*", "/"):
            return ir.BinOp(op=op, left=parts[0], right=parts[1])
        if op == "neg":
            return ir.Neg(operand=parts[0])
        return ir.Call(func=op, args=parts)
    return None


def value_expr(v):
    """A parameter value (default) as an expression."""
    if isinstance(v, bool):
        return ir.BoolLit(value=v)
    if isinstance(v, int):
        return ir.IntLit(value=v) if v >= 0 else ir.Neg(operand=ir.IntLit(value=-v))
    if isinstance(v, float):
        return ir.FloatLit(value=v) if v >= 0 else ir.Neg(operand=ir.FloatLit(value=-v))
    return ir.Name(id=v)


def literal_value(e):
    """The value of a literal expression (with an optional negation), or None."""
    if isinstance(e, ir.BoolLit):
        return e.value
    if isinstance(e, (ir.IntLit, ir.FloatLit)):
        return e.value
    if isinstance(e, ir.Neg) and isinstance(e.operand, (ir.IntLit, ir.FloatLit)):
        return -e.operand.value
    return None


# ----------------------------------------------------------------- units


def referenced(unit: ir.Unit) -> list[str]:
    """Identifiers a unit may use as units: call targets, names, choice options."""
    out: list[str] = []
    for p in unit.params:
        if isinstance(p.default, str):
            out.append(p.default)
        if isinstance(p.domain, ir.Options):
            out += [v for v in p.domain.values if isinstance(v, str)]
    for _, _, root in roots(unit):
        for _, n in walk(root):
            if isinstance(n, ir.Call):
                out.append(n.func)
            elif isinstance(n, ir.Name):
                out.append(n.id)
    return out


def closure(design: ir.Design, names: Iterable[str]) -> list[str]:
    """`names` and every unit they use, transitively; callees before callers."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        u = design.unit(name)
        if u is None:
            return
        for ref in referenced(u):
            if design.unit(ref) is not None:
                visit(ref)
        order.append(name)

    for n in names:
        visit(n)
    return order


def rename_unit_refs(unit: ir.Unit, mapping: dict[str, str]) -> None:
    """Rename references to units (calls, choice options, names that are not locals)."""
    if not mapping:
        return
    local = unit_names(unit)
    for p in unit.params:
        if isinstance(p.default, str) and p.default in mapping:
            p.default = mapping[p.default]
        if isinstance(p.domain, ir.Options):
            p.domain.values = [mapping.get(v, v) if isinstance(v, str) else v for v in p.domain.values]
    for _, _, root in roots(unit):
        for _, n in walk(root):
            if isinstance(n, ir.Call) and n.func in mapping and n.func not in local:
                n.func = mapping[n.func]
            elif isinstance(n, ir.Name) and n.id in mapping and n.id not in local:
                n.id = mapping[n.id]


def _structure(unit: ir.Unit) -> str:
    data = unit.model_dump(mode="json", exclude={"doc", "comments", "end_comments", "span", "name_span"})
    return repr(ir._drop_spans(data))


def import_units(dst: ir.Design, src: ir.Design, names: Sequence[str]) -> dict[str, str]:
    """Copy units `names` of `src` and everything they call into `dst` (in place).

    A unit whose twin (same definition) is already in `dst` under the same name is
    reused; otherwise a name that is taken (by a unit or a primitive) gets a suffix.
    Returns src name -> name in dst for every unit brought along."""
    reg = registry()
    mapping: dict[str, str] = {}
    for name in closure(src, names):
        u = copy(src.unit(name))
        u.comments, u.end_comments = [], []
        rename_unit_refs(u, mapping)
        existing = dst.unit(u.name)
        if existing is not None and _structure(existing) == _structure(u):
            mapping[name] = u.name
            continue
        taken = {x.name for x in dst.units} | set(reg.primitives)
        new = fresh_name(taken, u.name)
        u.name = new
        mapping[name] = new
        dst.units.append(u)
    return mapping


# ----------------------------------------------------------------- tidying


def remove_dead_code(unit: ir.Unit) -> None:
    """Drop assignments nothing reads (the language has no side effects)."""
    live: set[str] = set()
    keep = []
    for s in reversed(unit.body):
        if isinstance(s, ir.Return):
            live |= {n for v in s.values for n in names_in(v)}
            keep.append(s)
            continue
        if not any(t in live or t.startswith("_") for t in s.targets):
            continue
        if s.targets == [getattr(s.value, "id", None)]:  # `x = x` does nothing
            continue
        live -= set(s.targets)
        live |= set(names_in(s.value))
        keep.append(s)
    unit.body = list(reversed(keep))


def prune_units(design: ir.Design) -> None:
    """Remove units the block no longer reaches."""
    block = design.block
    if block is None:
        return
    reach: set[str] = set()
    todo = [block]
    while todo:
        u = todo.pop()
        for ref in referenced(u):
            if ref not in reach and design.unit(ref) is not None:
                reach.add(ref)
                todo.append(design.unit(ref))
    design.units = [u for u in design.units if u.is_block or u.name in reach]


def tidy(design: ir.Design) -> ir.Design:
    for u in design.units:
        remove_dead_code(u)
    prune_units(design)
    return design


# ----------------------------------------------------------------- seeds


@lru_cache(maxsize=1)
def _seed_texts() -> tuple[tuple[str, str], ...]:
    from importlib import resources

    root = resources.files("genesys_dsl.specs")
    out = []
    for folder in (root, root.joinpath("baselines")):
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".gab"):
                out.append((entry.name, entry.read_text(encoding="utf-8")))
    return tuple(out)


def seeds() -> tuple[ir.Design, ...]:
    """The seed library (specs shipped as package data), parsed, without spans.
    Shared: copy before editing (`import_units` does)."""
    return _seed_designs()


@lru_cache(maxsize=1)
def _seed_designs() -> tuple[ir.Design, ...]:
    from ..syntax.parse import parse

    return tuple(fresh(parse(text, filename=name)) for name, text in _seed_texts())


# ----------------------------------------------------------------- signatures


def tensor_ranks(params: list[ir.Param]) -> tuple[int, ...]:
    return tuple(len(p.type.dims) for p in params if isinstance(p.type, ir.SeqType))


def required_scalars(params: list[ir.Param]) -> tuple[tuple[str, str], ...]:
    return tuple((p.name, p.type.kind) for p in params if is_hyper(p) and p.default is None)


def interface(params: list[ir.Param], outputs: list[ir.Output]) -> tuple:
    """What a call site relies on: tensor inputs by rank, required scalars, output ranks."""
    outs = tuple(len(o.type.dims) if isinstance(o.type, ir.SeqType) else 0 for o in outputs)
    return tensor_ranks(params), required_scalars(params), outs


def positional_prefix(params: list[ir.Param]) -> tuple:
    """Kinds of the parameters a call may pass positionally (those without defaults)."""
    return tuple(("seq", len(p.type.dims)) if isinstance(p.type, ir.SeqType) else (p.name, p.type.kind)
                 for p in params if not (is_hyper(p) and p.default is not None))


# ----------------------------------------------------------------- search


Thunk = Callable[[], "ir.Design | None"]


def first_valid(candidates: Iterable[Thunk], parents: Sequence[ir.Design], what: str,
                tries: int = 12) -> ir.Design:
    """The first candidate that checks clean at the reference scale, is within the
    bloat limits and differs from every parent; NotApplicable if none of the first
    `tries` does. A candidate thunk may return None (or raise NotApplicable) to skip."""
    from .bloat import bloat_problem
    from .hashing import canonical_hash

    parent_hashes = {canonical_hash(p) for p in parents}
    attempts = 0
    last = None
    for make in candidates:
        if attempts >= tries:
            break
        attempts += 1
        try:
            child = make()
        except NotApplicable:
            continue
        if child is None:
            continue
        child = tidy(child)
        if canonical_hash(child) in parent_hashes:
            continue
        last = bloat_problem(child)
        if last is None:
            return child
    if not attempts:
        raise NotApplicable(f"nothing to apply {what} to")
    raise NotApplicable(f"no valid {what}" + (f" (last rejected: {last})" if last else ""))


def shuffled(items: Sequence, rng: random.Random) -> list:
    items = list(items)
    rng.shuffle(items)
    return items
