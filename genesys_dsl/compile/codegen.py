"""A checked design -> one standalone, readable PyTorch module (source text).

The file reads top to bottom like hand-written PyTorch: imports, the size helpers
and primitive implementations it uses (copied from the registry's torch
implementations), one `nn.Module` per unit with leaves first, the block, the
language model, and `build_model`. Everything in it comes from validated tree
nodes: identifiers match the IR's name pattern (and are made safe from Python
keywords), numbers are printed with repr, and docstrings are escaped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import ir
from ..check import dims
from ..check.analyze import CallRecord, Callee, UnitInfo, is_hyper, size_of
from ..syntax.unparse import signature_line
from .implementations import Implementation
from .naming import FILE_NAMES, Namespace, safe, snake

SIZE_HELPERS = {
    "floor": ("math.floor", None),
    "ceil": ("math.ceil", None),
    "min": ("min", None),
    "max": ("max", None),
    "round": ("round_half_up", '''\
def round_half_up(x):
    """The nearest integer, halves rounded up (Python's round() rounds halves to even)."""
    return math.floor(x + 0.5)
'''),
    "multiple_of": ("multiple_of", '''\
def multiple_of(x, m):
    """x rounded up to a multiple of m."""
    return math.ceil(x / m) * m
'''),
}

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "//": 2}


class CompileError(RuntimeError):
    """The design cannot be compiled; for a design that passed `check`, a bug."""


def py_literal(v) -> str:
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, (int, float)):
        return repr(v)
    return repr(str(v))  # a choice option: a validated identifier, as a string


def docstring(text: str, indent: str) -> str:
    """A docstring literal; plain triple quotes when safe, an escaped literal otherwise."""
    if '"""' not in text and "\\" not in text and not text.endswith('"') and all(
            c.isprintable() or c == "\n" for c in text):
        body = text.replace("\n", "\n" + indent) if "\n" in text else text
        return f'{indent}"""{body}"""'
    return f"{indent}{text!r}"


# ----------------------------------------------------------------- expressions


@dataclass
class Scope:
    """How a unit's names read in generated code: tensors are locals, sizes are attributes."""

    tensors: dict[str, str] = field(default_factory=dict)  # spec name -> python local
    scalars: dict[str, str] = field(default_factory=dict)  # spec name -> "int" | "float" | "bool" | "choice"
    locals_: dict[str, str] = field(default_factory=dict)  # scalar spec name -> python name
    in_forward: bool = True
    aliases: dict = field(default_factory=dict)  # simplified size -> the local that holds it
    local_sizes: dict = field(default_factory=dict)  # scalar local -> its size in unit symbols
    used_sizes: set[str] = field(default_factory=set)  # names read from self in forward
    size_functions: set[str] = field(default_factory=set)

    def size_name(self, name: str) -> str:
        py = self.locals_[name]
        if self.in_forward:
            self.used_sizes.add(name)
            return f"self.{py}"
        return py


def scalar_kind(e, scope: Scope) -> str:
    if isinstance(e, ir.IntLit):
        return "int"
    if isinstance(e, ir.FloatLit):
        return "float"
    if isinstance(e, ir.BoolLit):
        return "bool"
    if isinstance(e, ir.Name):
        return scope.scalars.get(e.id, "int")
    if isinstance(e, ir.Neg):
        return scalar_kind(e.operand, scope)
    if isinstance(e, ir.BinOp):
        kinds = {scalar_kind(e.left, scope), scalar_kind(e.right, scope)}
        return "float" if "float" in kinds else "int"
    if isinstance(e, ir.Call) and e.func in ("min", "max"):
        return "float" if any(scalar_kind(a, scope) == "float" for a in e.args) else "int"
    return "int"


def is_tensor(e, scope: Scope) -> bool:
    if isinstance(e, ir.Name):
        return e.id in scope.tensors
    if isinstance(e, ir.Neg):
        return is_tensor(e.operand, scope)
    if isinstance(e, ir.BinOp):
        return is_tensor(e.left, scope) or is_tensor(e.right, scope)
    if isinstance(e, ir.Call):
        return e.func not in dims.FUNCTIONS
    return False


def _precedence(text_op: str | None) -> int:
    return _PRECEDENCE.get(text_op, 4) if text_op else 4


# ----------------------------------------------------------------- a unit


class UnitWriter:
    """Writes one unit as an nn.Module class."""

    def __init__(self, unit: ir.Unit, info: UnitInfo, class_name: str, class_names: dict[str, str],
                 impls: dict[str, Implementation]):
        self.unit = unit
        self.info = info
        self.class_name = class_name
        self.class_names = class_names
        self.impls = impls
        self.calls = {_key(c.span): c for c in info.calls}
        self.attrs = Namespace(FILE_NAMES | {"training", "forward", "children", "modules", "parameters"})
        self.scope = Scope()
        self.init_lines: list[str] = []
        self.forward_lines: list[str] = []
        self.size_functions: set[str] = set()

    # -- names
    def declare_names(self) -> None:
        for name in self.info.dim_vars:
            self.scope.scalars[name] = "int"
            self.scope.locals_[name] = self.attrs.claim(name)
        for p in self.unit.params:
            if is_hyper(p):
                self.scope.scalars[p.name] = p.type.kind
                self.scope.locals_[p.name] = self.attrs.claim(p.name)
        locals_ = Namespace(set(FILE_NAMES) | set(self.class_names.values()) | set(self.impls))
        for p in self.unit.params:
            if isinstance(p.type, ir.SeqType):
                self.scope.tensors[p.name] = locals_.claim(p.name)
        self.tensor_locals = locals_

    # -- expressions
    def expr(self, e, *, exact_ints: bool = True) -> tuple[str, str | None]:
        """(text, top-level operator) of an expression in the current context."""
        if isinstance(e, ir.Name):
            if e.id in self.scope.tensors:
                return self.scope.tensors[e.id], None
            return self.scope.size_name(e.id), None
        if isinstance(e, (ir.IntLit, ir.FloatLit, ir.BoolLit)):
            return py_literal(e.value), None
        if isinstance(e, ir.Neg):
            inner, op = self.expr(e.operand, exact_ints=exact_ints)
            return (f"-({inner})" if _precedence(op) < 4 else f"-{inner}"), "neg"
        if isinstance(e, ir.BinOp):
            return self.binop(e, exact_ints)
        if isinstance(e, ir.Call):
            return self.call(e), None
        raise CompileError(f"unexpected node {type(e).__name__}")

    def binop(self, e: ir.BinOp, exact_ints: bool) -> tuple[str, str]:
        op = e.op
        if op == "/" and exact_ints and not is_tensor(e, self.scope) and scalar_kind(e, self.scope) == "int":
            op = "//"  # the checker proved the division exact at every scale
        left, lop = self.expr(e.left, exact_ints=exact_ints)
        right, rop = self.expr(e.right, exact_ints=exact_ints)
        p = _PRECEDENCE[op]
        if _precedence(lop) < p:
            left = f"({left})"
        if _precedence(rop) <= p:
            right = f"({right})"
        return f"{left} {op} {right}", op

    def text(self, e, **kw) -> str:
        return self.expr(e, **kw)[0]

    def call(self, e: ir.Call) -> str:
        if e.func in dims.FUNCTIONS:
            helper, _ = SIZE_HELPERS[e.func]
            self.size_functions.add(e.func)
            exact = e.func in ("min", "max")
            return f"{helper}({', '.join(self.text(a, exact_ints=exact) for a in e.args)})"
        if _key(e.span) in self.fused:
            return self.fused[_key(e.span)]
        record = self.calls.get(_key(e.span))
        if record is None:
            raise CompileError(f"no analysis for the call at line {e.span.line} (a checker bug)")
        if self.scope.in_forward:
            return self.forward_call(e, record)
        raise CompileError("tensor call outside forward")

    # -- calls
    def tensor_args(self, e: ir.Call, callee: Callee) -> list[str]:
        given = dict(zip((p.name for p in callee.params), e.args))
        given.update({k.name: k.value for k in e.keywords})
        return [self.text(given[p.name]) for p in callee.params if isinstance(p.type, ir.SeqType)]

    def scalar_args_given(self, e: ir.Call, callee: Callee) -> list[tuple[str, ir.Node]]:
        given = list(zip(callee.params, e.args)) + [
            (next(p for p in callee.params if p.name == k.name), k.value) for k in e.keywords]
        return [(p.name, node) for p, node in given if is_hyper(p)]

    def forward_call(self, e: ir.Call, record: CallRecord) -> str:
        callee = next(iter(record.targets.values()))
        if record.choice is not None and _key(e.span) not in self.submodules:
            # a choice among functions: __init__ stored the chosen one under the choice's name
            args = self.tensor_args(e, callee)
            args += [f"{name}={self.scalar_value(node, callee, name)}"
                     for name, node in self.scalar_args_given(e, callee)]
            return f"self.{self.scope.locals_[record.choice]}({', '.join(args)})"
        if record.choice is None and callee.primitive is not None and self.impls[callee.name].kind == "function":
            args = self.tensor_args(e, callee)
            for name, node in self.scalar_args_given(e, callee):
                args.append(f"{name}={self.scalar_value(node, callee, name)}")
            return f"{callee.name}({', '.join(args)})"
        attr = self.submodules[_key(e.span)]
        args = self.tensor_args(e, callee)
        return f"self.{attr}({', '.join(args)})"

    def scalar_value(self, node, callee: Callee, name: str) -> str:
        param = next(p for p in callee.params if p.name == name)
        if param.type.kind == "choice" and isinstance(node, ir.Name) and node.id not in self.scope.scalars:
            return py_literal(node.id)
        return self.text(node)

    def construct(self, e: ir.Call, record: CallRecord, option: str) -> str:
        """The constructor call of a unit or module primitive (in __init__ terms)."""
        callee = record.targets[option]
        bindings = record.bindings[option]
        given = dict(self.scalar_args_given(e, callee))
        kwargs = []
        if callee.unit is not None:
            names = list(_unit_dim_vars(callee)) + [p.name for p in callee.params if is_hyper(p)]
        else:
            names = _signature_names(callee)
        for name in names:
            if name in given:
                kwargs.append(f"{safe(name)}={self.scalar_value(given[name], callee, name)}")
            elif name in bindings:
                kwargs.append(f"{safe(name)}={self.size_text(bindings[name])}")
        cls = self.class_names[callee.name] if callee.unit is not None else callee.name
        return f"{cls}({', '.join(kwargs)})"

    def size_text(self, size) -> str:
        """A bound size (in this unit's symbols) as __init__ code."""
        if isinstance(size, tuple) and size[0] == "rest":
            items = [self.size_text(s) for s in size[1:]]
            return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
        if isinstance(size, tuple) and size[0] == "lit":
            return py_literal(size[1])
        return _size_code(size, self.scope, exact=True, functions=self.size_functions)

    # -- statements
    def name_submodules(self) -> None:
        """Attribute names for every call that owns parameters, in source order."""
        self.submodules: dict[tuple, str] = {}
        for s in self.unit.body:
            owners = [c for c in _calls(s.value if isinstance(s, ir.Assign) else s.values)
                      if self.owns_module(c)]
            if isinstance(s, ir.Assign) and len(s.targets) == 1 and len(owners) == 1:
                preferred = [s.targets[0]]
            elif isinstance(s, ir.Return) and len(owners) == 1:
                preferred = ["out"]
            else:
                preferred = [snake(c.func) for c in owners]
            for call, wanted in zip(owners, preferred):
                self.submodules[_key(call.span)] = self.attrs.claim(wanted)

    def owns_module(self, e: ir.Call) -> bool:
        record = self.calls.get(_key(e.span))
        if record is None or e.func in dims.FUNCTIONS:
            return False
        if record.choice is not None:
            return not all(t.primitive is not None and self.impls[t.name].kind == "function"
                           for t in record.targets.values())
        callee = next(iter(record.targets.values()))
        return callee.unit is not None or self.impls[callee.name].kind == "module"

    def residual_norm_call(self, s: ir.Assign, following) -> ir.Call | None:
        """For `t = a + b`, the call `Norm(t)` in the next statement when Norm's implementation
        fuses the add into the norm (a Triton kernel's `forward_residual`)."""
        value = s.value
        if not (len(s.targets) == 1 and isinstance(value, ir.BinOp) and value.op == "+"
                and is_tensor(value.left, self.scope) and is_tensor(value.right, self.scope)):
            return None
        for call in (c for v in ([following.value] if isinstance(following, ir.Assign) else following.values)
                     for c in _calls(v)):
            record = self.calls.get(_key(call.span))
            if record is None or record.choice is not None or _key(call.span) not in self.submodules:
                continue
            callee = next(iter(record.targets.values()))
            impl = self.impls.get(callee.name) if callee.primitive is not None else None
            if impl is None or not impl.residual_norm:
                continue
            given = dict(zip((p.name for p in callee.params), call.args)) | {k.name: k.value for k in call.keywords}
            tensors = [given.get(p.name) for p in callee.params if isinstance(p.type, ir.SeqType)]
            if len(tensors) == 1 and isinstance(tensors[0], ir.Name) and tensors[0].id == s.targets[0]:
                return call
        return None

    def write_statements(self) -> None:
        self.fused: dict[tuple, str] = {}  # the key of a norm call computed ahead -> the local holding it
        body = self.unit.body
        for i, s in enumerate(body):
            if isinstance(s, ir.Assign) and not is_tensor(s.value, self.scope):
                self.scalar_assignment(s)
                continue
            values = [s.value] if isinstance(s, ir.Assign) else s.values
            for call in (c for v in values for c in _calls(v)):
                if _key(call.span) in self.submodules:
                    self.init_submodule(call)
                elif (rec := self.calls.get(_key(call.span))) is not None and rec.choice is not None:
                    self.init_choice_function(rec)
            self.scope.in_forward = True
            for comment in s.comments:
                self.forward_lines.append(comment)
            trailing = f"  {s.trailing_comment}" if s.trailing_comment else ""
            norm = self.residual_norm_call(s, body[i + 1]) if isinstance(s, ir.Assign) and i + 1 < len(body) \
                else None
            if norm is not None:
                # the add and the next statement's norm of its result, in one pass over memory
                left, right = self.text(s.value.left), self.text(s.value.right)
                (t,) = s.targets
                local = self.scope.tensors.get(t) or self.tensor_locals.claim(t)
                self.scope.tensors[t] = local
                self.fused[_key(norm.span)] = normed = self.tensor_locals.claim(f"{t}_normed")
                self.forward_lines.append(f"# the residual add and the next line's {norm.func}({t}), in one pass")
                self.forward_lines.append(f"{local}, {normed} = self.{self.submodules[_key(norm.span)]}"
                                          f".forward_residual({left}, {right}){trailing}")
            elif isinstance(s, ir.Assign):
                rhs = self.text(s.value)
                for t in s.targets:
                    self.scope.tensors[t] = self.tensor_locals.claim(t) if t not in self.scope.tensors \
                        else self.scope.tensors[t]
                lhs = ", ".join(self.scope.tensors[t] for t in s.targets)
                self.forward_lines.append(f"{lhs} = {rhs}{trailing}")
            else:
                self.forward_lines.append(f"return {', '.join(self.text(v) for v in s.values)}{trailing}")

    def scalar_assignment(self, s: ir.Assign) -> None:
        (target,) = s.targets
        self.scope.in_forward = False
        py = self.attrs.claim(target)
        text = self.text(s.value)
        size = size_of(s.value, lambda name, span: self.local_sizes.get(name, name))
        self.scope.scalars[target] = scalar_kind(s.value, self.scope)
        self.scope.locals_[target] = py
        self.defined_locals[py] = target
        if size is not None:
            self.local_sizes[target] = self.scope.local_sizes[target] = size
            # bound sizes equal to this value print as its name: `out=hidden`, not the formula
            self.scope.aliases.setdefault(_alias_key(size), target)
        self.init_lines.append(f"{py} = {text}")

    def init_submodule(self, call: ir.Call) -> None:
        self.scope.in_forward = False
        record = self.calls[_key(call.span)]
        attr = self.submodules[_key(call.span)]
        if record.choice is None:
            self.init_lines.append(f"self.{attr} = {self.construct(call, record, record.callee)}")
            return
        choice = self.scope.locals_[record.choice]
        for i, option in enumerate(record.targets):
            keyword = "if" if i == 0 else "elif"
            self.init_lines.append(f"{keyword} {choice} == {py_literal(option)}:")
            target = record.targets[option]
            if target.primitive is not None and self.impls[target.name].kind == "function":
                self.init_lines.append(f"    self.{attr} = {target.name}")
            else:
                self.init_lines.append(f"    self.{attr} = {self.construct(call, record, option)}")
        self.init_lines.append("else:")
        self.init_lines.append(f"    raise ValueError(f\"{record.choice} must be one of "
                               f"{', '.join(record.targets)}, not {{{choice}!r}}\")")

    def init_choice_function(self, record: CallRecord) -> None:
        """A choice among parameter-free functions: pick the function once, in __init__."""
        choice = self.scope.locals_[record.choice]
        line = f"self.{choice} = {{{', '.join(f'{py_literal(o)}: {o}' for o in record.targets)}}}[{choice}]"
        if line not in self.init_lines:
            self.init_lines.append(line)
            self.choice_functions.add(record.choice)

    # -- the class
    def write(self) -> str:
        self.local_sizes: dict[str, dims.Size] = {}
        self.defined_locals: dict[str, str] = {}  # python local -> spec name
        self.declare_names()
        self.choice_functions: set[str] = set()
        self.name_submodules()
        self.write_statements()
        return self.assemble()

    def assemble(self) -> str:
        u = self.unit
        head = "block" if u.is_block else u.name
        sig = signature_line(head, u.params, u.outputs)
        doc = (u.doc.strip() + "\n\n" if u.doc else "") + sig
        params = [self.scope.locals_[d] for d in self.info.dim_vars]
        params += [f"{self.scope.locals_[p.name]}" for p in u.params if is_hyper(p) and p.default is None]
        params += [f"{self.scope.locals_[p.name]}={py_literal(p.default)}" for p in u.params
                   if is_hyper(p) and p.default is not None]
        stored = [name for name in self._stored_sizes()]
        lines = [f"class {self.class_name}(nn.Module):", docstring(doc, "    ") if "\n" not in doc else
                 _multiline_docstring(doc), "",
                 f"    def __init__(self, {', '.join(params)}):" if params else "    def __init__(self):",
                 "        super().__init__()"]
        symbols = set(self.info.dim_vars) | {p.name for p in u.params if is_hyper(p)}
        lines += [f"        self.{self.scope.locals_[n]} = {self.scope.locals_[n]}" for n in stored if n in symbols]
        for line in self.init_lines:
            lines.append("        " + line)
            local = line.split(" = ", 1)[0]
            if " = " in line and local in self.defined_locals and self.defined_locals[local] in stored:
                lines.append(f"        self.{local} = {local}")
        forward_params = ", ".join(self.scope.tensors[p.name] for p in u.params if isinstance(p.type, ir.SeqType))
        lines += ["", f"    def forward(self, {forward_params}):"]
        lines += ["        " + line for line in self.forward_lines]
        return "\n".join(lines) + "\n"

    def _stored_sizes(self) -> list[str]:
        """Sizes read in forward are stored on the module (choice functions store themselves)."""
        needed = self.scope.used_sizes - self.choice_functions
        order = list(self.info.dim_vars) + [p.name for p in self.unit.params if is_hyper(p)]
        order += [n for n in self.scope.locals_ if n not in order]
        return [n for n in order if n in needed]


def _multiline_docstring(doc: str) -> str:
    if '"""' in doc or "\\" in doc or doc.endswith('"') or not all(c.isprintable() or c == "\n" for c in doc):
        return f"    {doc!r}"
    body = "\n".join(("    " + line) if line else "" for line in doc.split("\n"))
    return f'    """{body.lstrip()}\n    """'


def _key(span) -> tuple:
    return (span.line, span.column, span.end_line, span.end_column) if span else ()


def _calls(node) -> list[ir.Call]:
    """Calls inside an expression (or a list of them) in evaluation order: arguments
    before the call that takes them, left to right (the order data flows)."""
    out: list[ir.Call] = []
    stack: list = [(e, False) for e in reversed(node if isinstance(node, list) else [node])]
    while stack:
        e, children_done = stack.pop()
        if children_done:
            out.append(e)
        elif isinstance(e, ir.Call):
            stack.append((e, True))
            stack.extend((c, False) for c in reversed([*e.args, *(k.value for k in e.keywords)]))
        elif isinstance(e, ir.BinOp):
            stack.extend([(e.right, False), (e.left, False)])
        elif isinstance(e, ir.Neg):
            stack.append((e.operand, False))
    return out


def _unit_dim_vars(callee: Callee) -> list[str]:
    from ..check.analyze import shape_vars

    return [n for n in shape_vars(callee.params) if n not in {p.name for p in callee.params if is_hyper(p)}]


def _signature_names(callee: Callee) -> list[str]:
    """Constructor keywords of a module primitive: bound sizes, then scalar parameters."""
    from ..check.analyze import shape_vars

    scalars = [p.name for p in callee.params if is_hyper(p)]
    return [n for n in shape_vars(callee.params) if n not in scalars] + scalars


def _size_code(size, scope: Scope, *, exact: bool, functions: set[str]) -> str:
    """A symbolic size as Python (in __init__: symbols are constructor arguments or locals)."""
    text, _ = _size_expr(dims.simplify(size), scope, exact, functions)
    return text


def _equal_name(size, scope: Scope) -> str | None:
    """A size, hyperparameter or local whose value always equals `size` (e.g. the head
    size `inner / heads` is `head_size`), so generated code names it instead of a formula."""
    for name in scope.locals_:
        if scope.scalars.get(name) == "int" and dims.equal(size, scope.local_sizes.get(name, name)):
            return name
    return None


def _alias_key(size) -> str:
    return repr(dims.simplify(size))


def _size_expr(e, scope: Scope, exact: bool, functions: set[str]) -> tuple[str, str | None]:
    if isinstance(e, tuple) and e[0] != "lit":
        alias = scope.aliases.get(repr(e)) or _equal_name(e, scope)
        if alias is not None:
            return scope.locals_[alias], None
    if isinstance(e, bool):
        return py_literal(e), None
    if isinstance(e, (int, float)):
        return (repr(e) if e >= 0 else f"({e!r})"), None
    if isinstance(e, str):
        return scope.locals_.get(e, e), None
    op = e[0]
    if op == "lit":
        return py_literal(e[1]), None
    if op == "neg":
        inner, iop = _size_expr(e[1], scope, exact, functions)
        return (f"-({inner})" if iop else f"-{inner}"), "neg"
    if op in ("+", "-", "*", "/"):
        left, lop = _size_expr(e[1], scope, exact, functions)
        right, rop = _size_expr(e[2], scope, exact, functions)
        if op == "/" and exact and not (_has_float(e[1]) or _has_float(e[2])):
            op = "//"
        p = _PRECEDENCE[op]
        if lop in _PRECEDENCE and _PRECEDENCE[lop] < p:
            left = f"({left})"
        if rop in _PRECEDENCE and _PRECEDENCE[rop] <= p:
            right = f"({right})"
        return f"{left} {op} {right}", op
    helper, _ = SIZE_HELPERS[op]
    functions.add(op)
    inner_exact = op in ("min", "max")
    return f"{helper}({', '.join(_size_expr(a, scope, inner_exact, functions)[0] for a in e[1:])})", None


def _has_float(e) -> bool:
    if isinstance(e, float):
        return True
    if isinstance(e, tuple) and e[0] != "lit":
        return any(_has_float(a) for a in e[1:])
    return False
