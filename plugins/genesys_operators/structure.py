"""Structural insertions and deletions.

Insert around a tensor expression `e` (hoisted into a fresh variable `h` when it
is not already a name, so it is computed once):

    norm      RMSNorm(e)                      (a head norm for multi-head tensors)
    gate      h * sigmoid(Linear(h, W))       (W: e's width in the unit's symbols)
    residual  h + U(RMSNorm(h))               (U: a seq[W] -> seq[W] unit of the design, or an MLP)

Delete: replace a wrapper (a one-input call, or elementwise arithmetic) by an
operand of the same type. Residual branches (`x = x + F(N(x))` statements) can be
duplicated or dropped.
"""

from __future__ import annotations

from genesys_dsl import ir
from genesys_dsl.check import dims
from genesys_dsl.check.types import TensorT
from genesys_dsl.gp.tree import (
    analyze, callee, closure, copy, first_valid, fresh, fresh_name, get, interface, names_in,
    positional_prefix, put, registry, shuffled, sites, size_expr, tensor_ranks, unit_names,
)

NORM_FAMILY = {1: "norm", 2: "head_norm"}
DEFAULT_NORM = {1: "RMSNorm", 2: "HeadRMSNorm"}


def _typed_sites(design: ir.Design):
    types = analyze(design)
    for path, node in sites(design):
        unit = design.units[path[0]]
        yield path, node, types[unit.name].type_of(node)


def _parent_path(path):
    return path[:-1] if len(path) > 3 else None


def _family(name: str) -> str | None:
    prim = registry().get(name)
    return prim.family if prim else None


def _taken(design: ir.Design, unit: ir.Unit) -> set[str]:
    return (unit_names(unit) | {u.name for u in design.units} | set(registry().primitives)
            | set(dims.FUNCTIONS))


def hoist(design: ir.Design, path, base: str = "h") -> tuple[str, tuple]:
    """Give the expression at `path` a name (a new assignment before its statement)."""
    node = get(design, path)
    if isinstance(node, ir.Name):
        return node.id, path
    unit = design.units[path[0]]
    name = fresh_name(_taken(design, unit), base)
    unit.body.insert(path[1], ir.Assign(targets=[name], value=node))
    path = (path[0], path[1] + 1, *path[2:])
    put(design, path, ir.Name(id=name))
    return name, path


def _norms_used(design: ir.Design, family: str) -> list[str]:
    used = []
    for _, node in sites(design):
        if isinstance(node, ir.Call) and _family(node.func) == family and node.func not in used:
            used.append(node.func)
    return used


def insert_norm(parents, rng):
    """Wrap a tensor expression in a norm (RMSNorm, or the design's own; a head norm for heads)."""
    (parent,) = parents
    targets = []
    for path, node, t in _typed_sites(parent):
        if not isinstance(t, TensorT) or len(t.dims) not in NORM_FAMILY:
            continue
        family = NORM_FAMILY[len(t.dims)]
        up = _parent_path(path)
        if (isinstance(node, ir.Call) and _family(node.func) == family) or (
                up and isinstance(get(parent, up), ir.Call) and _family(get(parent, up).func) == family):
            continue
        targets.append((path, len(t.dims)))

    def make(path, rank):
        def build():
            child = fresh(parent)
            options = [n for n in _norms_used(child, NORM_FAMILY[rank]) if n != "l2norm"] or [DEFAULT_NORM[rank]]
            put(child, path, ir.Call(func=rng.choice(options), args=[get(child, path)]))
            return child
        return build

    return first_valid((make(*t) for t in shuffled(targets, rng)), parents, "norm insertion")


def _width_sites(design: ir.Design):
    for path, node, t in _typed_sites(design):
        if isinstance(t, TensorT) and len(t.dims) == 1 and size_expr(t.dims[0]) is not None:
            yield path, node, t.dims[0]


def insert_gate(parents, rng):
    """Gate a tensor expression: h * sigmoid(Linear(h, W))."""
    (parent,) = parents
    targets = [(path, width) for path, node, width in _width_sites(parent)]

    def make(path, width):
        def build():
            child = fresh(parent)
            name, path2 = hoist(child, path)
            act = rng.choice(["sigmoid", "silu"])
            gate = ir.Call(func=act, args=[ir.Call(func="Linear", args=[ir.Name(id=name), size_expr(width)])])
            put(child, path2, ir.BinOp(op="*", left=ir.Name(id=name), right=gate))
            return child
        return build

    return first_valid((make(*t) for t in shuffled(targets, rng)), parents, "gate insertion")


def _branch_units(design: ir.Design, inside: str) -> list[str]:
    """Units usable as a residual branch inside unit `inside`: seq[W] -> seq[W], no recursion."""
    out = []
    for u in design.units:
        if u.is_block or u.name == inside:
            continue
        if interface(u.params, u.outputs) != ((1,), (), (1,)) or positional_prefix(u.params) != (("seq", 1),):
            continue
        if inside in closure(design, [u.name]):
            continue
        out.append(u.name)
    return out


def insert_residual(parents, rng):
    """Add a residual branch around a tensor expression: h + U(RMSNorm(h))."""
    (parent,) = parents
    targets = [(path, width) for path, node, width in _width_sites(parent)]

    def make(path, width):
        def build():
            child = fresh(parent)
            unit = child.units[path[0]]
            name, path2 = hoist(child, path)
            norm = rng.choice(_norms_used(child, "norm") or ["RMSNorm"])
            normed = ir.Call(func=norm, args=[ir.Name(id=name)])
            branches = _branch_units(child, unit.name)
            if branches and rng.random() < 0.8:
                branch = ir.Call(func=rng.choice(branches), args=[normed])
            else:
                act = rng.choice(["silu", "gelu", "relu2"])
                branch = ir.Call(func="Linear", args=[
                    ir.Call(func=act, args=[ir.Call(func="Linear", args=[normed, size_expr(width)])]),
                    size_expr(width)])
            put(child, path2, ir.BinOp(op="+", left=ir.Name(id=name), right=branch))
            return child
        return build

    return first_valid((make(*t) for t in shuffled(targets, rng)), parents, "residual insertion")


def _same_type(a, b) -> bool:
    return (isinstance(a, TensorT) and isinstance(b, TensorT) and len(a.dims) == len(b.dims)
            and all(dims.equal(x, y) for x, y in zip(a.dims, b.dims)))


def remove_wrapper(parents, rng):
    """Replace a wrapper (a one-input call such as a norm, or elementwise arithmetic such
    as a residual or a gate) by an operand of the same type."""
    (parent,) = parents
    types = analyze(parent)
    targets = []
    for path, node in sites(parent):
        unit = parent.units[path[0]]
        t = types[unit.name].type_of(node)
        if not isinstance(t, TensorT):
            continue
        keep = []
        if isinstance(node, ir.Call) and node.args and node.func not in unit_names(unit):
            c = callee(parent, node.func)
            if c is not None and len(tensor_ranks(c.params)) == 1 and isinstance(c.params[0].type, ir.SeqType):
                keep = ["a0"]
        elif isinstance(node, ir.BinOp):
            keep = ["l", "r"]
        for step in keep:
            operand = get(parent, (*path, step))
            if _same_type(types[unit.name].type_of(operand), t):
                targets.append((path, step))

    def make(path, step):
        def build():
            child = fresh(parent)
            put(child, path, get(child, (*path, step)))
            return child
        return build

    return first_valid((make(*t) for t in shuffled(targets, rng)), parents, "wrapper removal")


def _residual_statements(unit: ir.Unit) -> list[int]:
    """Indices of `x = x + F(..x..)` statements and of a final `return x + F(..x..)`."""
    out = []
    for si, s in enumerate(unit.body):
        if isinstance(s, ir.Assign):
            if len(s.targets) != 1:
                continue
            target, value = s.targets[0], s.value
        elif len(s.values) == 1:
            value = s.values[0]
            target = getattr(value.left, "id", None) if isinstance(value, ir.BinOp) else None
        else:
            continue
        if (isinstance(value, ir.BinOp) and value.op == "+" and isinstance(value.left, ir.Name)
                and value.left.id == target and target in names_in(value.right)):
            out.append(si)
    return out


def duplicate_branch(parents, rng):
    """Repeat a residual branch: `x = x + F(N(x))` once more, right after itself."""
    (parent,) = parents
    targets = [(ui, si) for ui, u in enumerate(parent.units) for si in _residual_statements(u)]

    def make(ui, si):
        def build():
            child = fresh(parent)
            body = child.units[ui].body
            s = body[si]
            if isinstance(s, ir.Assign):
                body.insert(si + 1, ir.Assign(targets=list(s.targets), value=copy(s.value)))
            else:
                body.insert(si, ir.Assign(targets=[s.values[0].left.id], value=copy(s.values[0])))
            return child
        return build

    return first_valid((make(*t) for t in shuffled(targets, rng)), parents, "branch duplication")


def drop_branch(parents, rng):
    """Drop one residual branch of a unit that has more than one."""
    (parent,) = parents
    targets = [(ui, si) for ui, u in enumerate(parent.units)
               for si in (_residual_statements(u) if len(_residual_statements(u)) > 1 else [])]

    def make(ui, si):
        def build():
            child = fresh(parent)
            body = child.units[ui].body
            s = body[si]
            if isinstance(s, ir.Assign):
                del body[si]
            else:
                body[si] = ir.Return(values=[copy(s.values[0].left)])
            return child
        return build

    return first_valid((make(*t) for t in shuffled(targets, rng)), parents, "branch removal")


__all__ = ["duplicate_branch", "drop_branch", "hoist", "insert_gate", "insert_norm", "insert_residual",
           "remove_wrapper"]
