"""Per-unit static analysis: names, types, symbolic shapes, calls.

Each unit is analysed once, on its own, in its own symbols (its dim variables and
hyperparameters). The result, a `UnitInfo`, records every call with the sizes it
binds (as expressions in those symbols) and every size that must be a positive
integer; `check.scale` evaluates those at concrete scales, and `stats` sums the
primitives' formulas over the same records. Errors never stop the analysis: an
expression with an error gets `UNKNOWN`, which silences follow-on errors.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable

from .. import ir
from ..ops.registry import Primitive, Registry
from ..syntax.diagnostics import Diagnostic
from . import dims
from .types import UNKNOWN, CallableT, ChoiceT, ScalarT, TensorT, TupleT, Type, UnknownT, describe, lit

SCALAR_KINDS = ("int", "float", "bool")


# ----------------------------------------------------------------- records


@dataclass
class CallRecord:
    """One call site: to a primitive, a unit, or (through a choice) to one of several."""

    span: ir.Span | None
    callee: str  # the name written at the call site
    targets: dict[str, "Callee"]  # option name -> callee (one entry unless called through a choice)
    bindings: dict[str, dict[str, dims.Size]]  # option name -> signature name -> size in caller symbols
    choice: str | None = None  # the choice hyperparameter called, if any
    _compiled: dict[str, dims.CompiledBindings] = field(default_factory=dict, init=False, repr=False, compare=False)

    def compiled_bindings(self, option: str) -> dims.CompiledBindings:
        """The bindings of `option`, compiled once for every scale."""
        if option not in self._compiled:
            self._compiled[option] = dims.compile_bindings(self.bindings[option])
        return self._compiled[option]

    @cached_property
    def checks_nothing(self) -> bool:
        """Whether a scale check has nothing to do here: every target is a primitive
        without constraints (its bindings are evaluated only for its cost formulas)."""
        return all(t.primitive is not None and not t.primitive.constraints for t in self.targets.values())


@dataclass
class SizeCheck:
    """A size that must be a positive integer (`positive`) or an integer, at every scale."""

    span: ir.Span | None
    size: dims.Size
    what: str
    positive: bool = True
    low: float | None = None
    high: float | None = None
    options: tuple | None = None

    @cached_property
    def evaluate(self) -> dims.Evaluator:
        """`size` compiled once, evaluated at every scale."""
        return dims.compile_size(self.size)

    @cached_property
    def only_positive(self) -> bool:
        """Whether any positive int passes: no declared range or options."""
        return self.positive and self.low is None and self.options is None

    @cached_property
    def key(self) -> str:
        """The size's identity: a bad size is reported once per unit instance."""
        return repr(dims.simplify(self.size))


@dataclass
class UnitInfo:
    unit: ir.Unit
    symbols: list[str] = field(default_factory=list)  # dim variables then hyperparameters
    dim_vars: dict[str, ir.Span | None] = field(default_factory=dict)
    hyper: dict[str, ir.Param] = field(default_factory=dict)
    outputs: list[Type] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    checks: list[SizeCheck] = field(default_factory=list)
    elementwise: list[tuple[TensorT, int]] = field(default_factory=list)  # tensor arithmetic, for FLOPs

    @cached_property
    def distinct_checks(self) -> list[SizeCheck]:
        """`checks` without repeats (the same size within the same bounds): a repeat
        passes or fails with its first occurrence, which alone would be reported."""
        first: dict[tuple, SizeCheck] = {}
        for c in self.checks:  # repr tells apart values that compare equal (1, 1.0, True)
            first.setdefault((repr(c.size), c.positive, repr((c.low, c.high, c.options))), c)
        return list(first.values())

    @cached_property
    def checked_calls(self) -> list[CallRecord]:
        """`calls` a scale check must visit (see `CallRecord.checks_nothing`)."""
        return [c for c in self.calls if not c.checks_nothing]

    @cached_property
    def compiled_elementwise(self) -> list[tuple[tuple[dims.Evaluator, ...], int]]:
        """`elementwise` with the dims compiled once, for every scale."""
        return [(tuple(map(dims.compile_size, t.dims)), per_element) for t, per_element in self.elementwise]


@dataclass(frozen=True)
class Callee:
    """What a call resolves to: a unit of the design or a registered primitive."""

    name: str
    params: list[ir.Param]
    outputs: list[ir.Output]
    primitive: Primitive | None = None
    unit: ir.Unit | None = None

    @property
    def kind(self) -> str:
        return "primitive" if self.primitive else "unit"


# ----------------------------------------------------------------- helpers


def size_of(e, resolve) -> dims.Size | None:
    """An IR size expression as a symbolic size; `resolve(name, span)` gives a name's size."""
    if isinstance(e, ir.Name):  # the most frequent first (see UnitAnalyzer.expr)
        return resolve(e.id, e.span)
    if isinstance(e, ir.IntLit):
        return e.value
    if isinstance(e, ir.FloatLit):
        return e.value
    if isinstance(e, ir.Neg):
        inner = size_of(e.operand, resolve)
        return None if inner is None else ("neg", inner)
    if isinstance(e, ir.BinOp):
        a, b = size_of(e.left, resolve), size_of(e.right, resolve)
        return None if a is None or b is None else (e.op, a, b)
    if isinstance(e, ir.Call) and e.func in dims.FUNCTIONS and not e.keywords:
        args = [size_of(a, resolve) for a in e.args]
        return None if any(a is None for a in args) else (e.func, *args)
    return None


def close_match(name: str, candidates: Iterable[str]) -> str | None:
    found = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    match = close_match(name, candidates)
    return f"did you mean '{match}'?" if match else None


def is_hyper(p: ir.Param) -> bool:
    return isinstance(p.type, ir.ScalarType)


def shape_vars(params: list[ir.Param]) -> list[str]:
    """Names a signature binds from its tensor arguments' shapes (bare-name dims, rest dims)."""
    scalars = {p.name for p in params if is_hyper(p)}
    out: list[str] = []
    for p in params:
        if isinstance(p.type, ir.SeqType):
            for d in p.type.dims:
                name = d.name if isinstance(d, ir.RestDim) else d.id if isinstance(d, ir.Name) else None
                if name and name not in scalars and name not in out:
                    out.append(name)
    return out


# ----------------------------------------------------------------- analysis


class UnitAnalyzer:
    """Type-checks one unit body against the design's units and the primitive registry."""

    def __init__(self, unit: ir.Unit, design: ir.Design, registry: Registry, file: str | None,
                 out: list[Diagnostic], callees: Callees | None = None):
        self.unit = unit
        self.design = design
        self.registry = registry
        self.callees = callees or Callees(design, registry)
        self.file = file
        self.out = out
        self.info = UnitInfo(unit=unit)
        self.env: dict[str, Type] = {}
        self.defined_at: dict[str, ir.Span | None] = {}
        self.kind_of: dict[str, str] = {}  # name -> "input" | "hyperparameter" | "dim" | "variable"
        self.read: set[str] = set()
        self.arg_cache: dict[int, Type] | None = None  # set while binding one call to several options
        self.depends: set[str] = set()  # names resolved against the design's units and the registry

    # -- diagnostics
    def error(self, span, code, message, hint=None, severity="error"):
        self.out.append(Diagnostic.at(span, code, message, hint=hint, severity=severity, file=self.file))

    # -- signature
    def declare_signature(self) -> None:
        unit = self.unit
        hyper_names = {p.name for p in unit.params if is_hyper(p)}
        for p in unit.params:
            if is_hyper(p):
                self.info.hyper[p.name] = p
                self._check_hyper_declaration(p)
                kind = p.type.kind
                typ = ChoiceT(self._options(p), p.name) if kind == "choice" else ScalarT(kind, p.name)
                self.bind(p.name, typ, p.span, "hyperparameter")
        for name in shape_vars(unit.params):
            if name in hyper_names:
                continue
            span = next((d.span for p in unit.params if isinstance(p.type, ir.SeqType)
                         for d in p.type.dims
                         if (getattr(d, "id", None) or getattr(d, "name", None)) == name), None)
            self.info.dim_vars[name] = span
            self.bind(name, ScalarT("int", name), span, "dim")
            self.read.add(name)  # a dim variable that is never used is not worth a warning
        self.info.symbols = list(self.info.dim_vars) + list(self.info.hyper)
        for p in unit.params:
            if isinstance(p.type, ir.SeqType):
                if p.default is not None or p.domain is not None:
                    self.error(p.default_span or p.span, "bad-default",
                               f"tensor input '{p.name}' cannot have a default or a domain",
                               hint="only int, float, bool and choice hyperparameters take defaults")
                t = self.tensor_type(p.type, f"input '{p.name}'", rest_ok=False)
                self.bind(p.name, t, p.span, "input")
        self.info.outputs = []
        for o in unit.outputs:
            what = f"output '{o.name}'" if o.name else "the output"
            if isinstance(o.type, ir.SeqType):
                self.info.outputs.append(self.tensor_type(o.type, what, rest_ok=False))
            else:
                self.error(o.type.span, "type-mismatch", f"{what} of '{unit.name}' must be a tensor seq[...], "
                           f"not {o.type.kind}", hint="units return tensors; pass scalars as hyperparameters")
                self.info.outputs.append(UNKNOWN)
        names = [o.name for o in unit.outputs if o.name]
        if len(names) != len(set(names)):
            self.error(unit.span, "duplicate-output", f"'{unit.name}' names an output twice")

    def _options(self, p: ir.Param) -> tuple[str, ...]:
        if isinstance(p.domain, ir.Options):
            return tuple(v for v in p.domain.values if isinstance(v, str))
        return ()

    def _check_hyper_declaration(self, p: ir.Param) -> None:
        kind = p.type.kind
        where = p.default_span or p.span

        def fits(v) -> bool:
            if kind == "bool":
                return isinstance(v, bool)
            if kind == "int":
                return isinstance(v, int) and not isinstance(v, bool)
            if kind == "float":
                return isinstance(v, (int, float)) and not isinstance(v, bool)
            return isinstance(v, str)

        if p.default is not None and not fits(p.default):
            self.error(where, "type-mismatch",
                       f"default of '{p.name}' is {_value_kind(p.default)}, but '{p.name}' is {kind}",
                       hint="for a float write e.g. 2.0" if kind == "float" else None)
        domain = p.domain
        if kind == "choice" and not isinstance(domain, ir.Options):
            self.error(p.span, "bad-domain", f"choice '{p.name}' needs its options: "
                       f"`{p.name}: choice = a in {{a, b}}`")
            return
        if domain is None:
            return
        if kind == "bool":
            self.error(domain.span, "bad-domain", f"bool '{p.name}' takes no domain (it is always {{true, false}})")
            return
        values = [domain.low, domain.high] if isinstance(domain, ir.Range) else domain.values
        bad = [v for v in values if not fits(v)]
        if bad:
            self.error(domain.span, "bad-domain",
                       f"domain of {kind} '{p.name}' contains {_value_kind(bad[0])} {ir_value(bad[0])}")
            return
        if isinstance(domain, ir.Range):
            if kind == "choice":
                self.error(domain.span, "bad-domain", "a choice takes a set of options {a, b}, not a range")
                return
            if domain.low > domain.high:
                self.error(domain.span, "bad-domain",
                           f"empty range {ir_value(domain.low)}..{ir_value(domain.high)} for '{p.name}'",
                           hint="write the smaller bound first")
                return
            if p.default is not None and fits(p.default) and not domain.low <= p.default <= domain.high:
                self.error(where, "default-out-of-range",
                           f"default {ir_value(p.default)} of '{p.name}' is outside its range "
                           f"{ir_value(domain.low)}..{ir_value(domain.high)}",
                           hint="widen the range or change the default")
        else:
            if len(set(map(repr, domain.values))) != len(domain.values):
                self.error(domain.span, "bad-domain", f"options of '{p.name}' repeat a value")
            if p.default is not None and fits(p.default) and p.default not in domain.values:
                self.error(where, "default-out-of-range",
                           f"default {ir_value(p.default)} of '{p.name}' is not one of its options "
                           f"{{{', '.join(ir_value(v) for v in domain.values)}}}")

    def tensor_type(self, t: ir.SeqType, what: str, rest_ok: bool) -> TensorT | UnknownT:
        out = []
        for d in t.dims:
            if isinstance(d, ir.RestDim):
                self.error(d.span, "type-mismatch", f"'*{d.name}' (any shape) is only for primitives' signatures",
                           hint="give the dims explicitly, e.g. seq[D] or seq[H, E]")
                return UNKNOWN
            size = self.int_size(d, f"a dim of {what}")
            if size is None:
                return UNKNOWN
            out.append(size)
            self.info.checks.append(SizeCheck(d.span, size, what))
        return TensorT(tuple(out))

    def int_size(self, e, what: str) -> dims.Size | None:
        """A size expression that must be an int (dims, int arguments)."""
        t = self.expr(e)
        if isinstance(t, UnknownT):
            return None
        if isinstance(t, ScalarT) and t.kind == "int":
            return t.value
        hint = "round it with floor(...), ceil(...) or multiple_of(..., 8)" if (
            isinstance(t, ScalarT) and t.kind == "float") else None
        self.error(e.span, "type-mismatch", f"{what} must be an int, but this is {describe(t)}", hint=hint)
        return None

    # -- scope
    def bind(self, name: str, t: Type, span, kind: str) -> None:
        self.env[name] = t
        self.defined_at[name] = span
        self.kind_of[name] = kind

    def lookup(self, name: str, span) -> Type:
        if name in self.env:
            self.read.add(name)
            return self.env[name]
        if self.design.unit(name) is not None or name in self.registry:
            self.depends.add(name)
            return CallableT(name)
        if name in dims.FUNCTIONS:
            self.error(span, "type-mismatch", f"'{name}' is a size function; call it: {name}(...)")
            return UNKNOWN
        self.error(span, "undefined-name", f"name '{name}' is not defined",
                   hint=did_you_mean(name, self.env) or self._undefined_hint(name))
        return UNKNOWN

    def _undefined_hint(self, name: str) -> str | None:
        if name == "D":
            return "D is bound by an input's shape: declare the input as `x: seq[D]`"
        return None

    # -- body
    def run(self) -> UnitInfo:
        self.declare_signature()
        returned = False
        for s in self.unit.body:
            if returned:
                self.error(s.span, "unreachable", "statement after return is never run",
                           hint="move the return to the end of the unit")
                continue
            if isinstance(s, ir.Assign):
                self.assign(s)
            else:
                self.returns(s)
                returned = True
        if not returned:
            self.error(self.unit.name_span or self.unit.span, "missing-return",
                       f"'{self.unit.name}' has no return statement",
                       hint=f"end the body with `return ...` giving {self._outputs_text()}")
        self.warn_unused()
        return self.info

    def _outputs_text(self) -> str:
        return ", ".join(t.show() for t in self.info.outputs)

    def assign(self, s: ir.Assign) -> None:
        t = self.expr(s.value)
        for name in s.targets:
            if self.kind_of.get(name) in ("hyperparameter", "dim"):
                self.error(s.span, "assign-to-constant",
                           f"'{name}' is a {self.kind_of[name]} of '{self.unit.name}' and cannot be reassigned",
                           hint="use a new name")
        if len(s.targets) > 1:
            if isinstance(t, UnknownT):
                items = [UNKNOWN] * len(s.targets)
            elif isinstance(t, TupleT) and len(t.items) == len(s.targets):
                items = list(t.items)
            else:
                got = f"{len(t.items)} values" if isinstance(t, TupleT) else "one value"
                self.error(s.span, "arity", f"{len(s.targets)} names on the left, but the right gives {got}")
                items = [UNKNOWN] * len(s.targets)
        else:
            if isinstance(t, TupleT):
                self.error(s.value.span, "arity",
                           f"the call gives {len(t.items)} values; unpack them: `a, b = ...`")
                t = UNKNOWN
            items = [t]
        for name, item in zip(s.targets, items):
            if isinstance(item, CallableT):
                self.error(s.value.span, "type-mismatch", f"'{item.name}' is a unit or primitive, not a value",
                           hint=f"call it: {item.name}(...)")
                item = UNKNOWN
            if self.kind_of.get(name) in ("variable", "input") and name not in self.read:
                self._warn_unread(name)
            self.read.discard(name)
            self.bind(name, item, s.span, "variable")

    def returns(self, s: ir.Return) -> None:
        got = [self.expr(v) for v in s.values]
        want = self.info.outputs
        if len(got) == 1 and isinstance(got[0], TupleT) and len(want) > 1:
            got = list(got[0].items)
        if len(got) != len(want):
            self.error(s.span, "return-type",
                       f"'{self.unit.name}' returns {len(got)} value(s) but declares {len(want)}",
                       hint=f"return {self._outputs_text()}")
            return
        for i, (g, w, v) in enumerate(zip(got, want, s.values)):
            if isinstance(g, UnknownT) or isinstance(w, UnknownT):
                continue
            label = f"output '{self.unit.outputs[i].name}'" if self.unit.outputs[i].name else "the output"
            if not isinstance(g, TensorT):
                self.error(v.span, "return-type", f"{label} must be {describe(w)}, but this is {describe(g)}")
            elif not _same_shape(g, w):
                self.error(v.span, "shape-mismatch",
                           f"{label} of '{self.unit.name}' is declared {w.show()}, but this is {g.show()}",
                           hint="fix the declared output type or the computation")

    def warn_unused(self) -> None:
        for name in self.kind_of:
            if name not in self.read:
                self._warn_unread(name)

    def _warn_unread(self, name: str) -> None:
        kind = self.kind_of[name]
        if name.startswith("_"):
            return
        if kind == "variable":
            self.error(self.defined_at[name], "unused-variable", f"'{name}' is assigned but never used",
                       severity="warning", hint="remove it, or prefix the name with _")
        elif kind in ("input", "hyperparameter"):
            self.error(self.defined_at[name], "unused-param", f"{kind} '{name}' of '{self.unit.name}' is never used",
                       severity="warning", hint="remove it, or prefix the name with _")

    # -- expressions
    def expr(self, e) -> Type:
        # Most frequent first: isinstance against a pydantic model class that does not match is slow.
        if isinstance(e, ir.Name):
            return self.lookup(e.id, e.span)
        if isinstance(e, ir.Call):
            return self.call(e)
        if isinstance(e, ir.BinOp):
            return self.binop(e)
        if isinstance(e, ir.IntLit):
            return ScalarT("int", e.value)
        if isinstance(e, ir.FloatLit):
            return ScalarT("float", e.value)
        if isinstance(e, ir.BoolLit):
            return ScalarT("bool", e.value)
        if isinstance(e, ir.Neg):
            return self.neg(e)
        raise TypeError(f"unexpected node {type(e).__name__}")

    def neg(self, e: ir.Neg) -> Type:
        t = self.expr(e.operand)
        if isinstance(t, TensorT):
            self.info.elementwise.append((t, 1))
            return t
        if isinstance(t, ScalarT) and t.kind in ("int", "float"):
            return ScalarT(t.kind, ("neg", t.value))
        if not isinstance(t, UnknownT):
            self.error(e.span, "type-mismatch", f"cannot negate {describe(t)}")
        return UNKNOWN

    def binop(self, e: ir.BinOp) -> Type:
        a, b = self.expr(e.left), self.expr(e.right)
        if isinstance(a, UnknownT) or isinstance(b, UnknownT):
            return UNKNOWN
        numeric = lambda t: isinstance(t, ScalarT) and t.kind in ("int", "float")  # noqa: E731
        if isinstance(a, TensorT) and isinstance(b, TensorT):
            if not _same_shape(a, b):
                self.error(e.span, "shape-mismatch", f"shapes differ: {a.show()} {e.op} {b.show()}",
                           hint="elementwise arithmetic needs equal shapes; project one side with Linear(...)")
                return UNKNOWN
            self.info.elementwise.append((a, 1))
            return a
        if isinstance(a, TensorT) and numeric(b) or numeric(a) and isinstance(b, TensorT):
            t = a if isinstance(a, TensorT) else b
            self.info.elementwise.append((t, 1))
            return t
        if numeric(a) and numeric(b):
            kind = "int" if a.kind == b.kind == "int" else "float"
            return ScalarT(kind, (e.op, a.value, b.value))
        bad, side = (a, e.left) if not (isinstance(a, TensorT) or numeric(a)) else (b, e.right)
        hint = f"call it: {bad.name}(...)" if isinstance(bad, CallableT) else None
        self.error(side.span, "type-mismatch", f"'{e.op}' needs tensors or numbers, not {describe(bad)}", hint=hint)
        return UNKNOWN

    # -- calls
    def call(self, e: ir.Call) -> Type:
        name = e.func
        if name in self.env:
            self.read.add(name)
            t = self.env[name]
            if isinstance(t, ChoiceT):
                return self.choice_call(e, t)
            if isinstance(t, UnknownT):
                return UNKNOWN
            self.error(e.span, "not-callable", f"'{name}' is {describe(t)}, not a unit or primitive",
                       hint="only units, primitives and choice hyperparameters can be called")
            self._visit_args(e)
            return UNKNOWN
        if name in dims.FUNCTIONS:
            return self.size_function(e)
        callee = self.callees.get(name)
        self.depends.add(name)
        if callee is None:
            candidates = [u.name for u in self.design.units if not u.is_block] + list(self.registry.primitives)
            self.error(e.span, "unknown-callee", f"no unit or primitive named '{name}'",
                       hint=did_you_mean(name, candidates) or "see `genesys reference` for the primitives")
            self._visit_args(e)
            return UNKNOWN
        outputs, bindings = self.bind_call(e, callee)
        if bindings is not None:
            self.info.calls.append(CallRecord(e.span, name, {name: callee}, {name: bindings}))
        return outputs

    def _visit_args(self, e: ir.Call) -> None:
        for a in e.args:
            self.expr(a)
        for k in e.keywords:
            self.expr(k.value)

    def choice_call(self, e: ir.Call, choice: ChoiceT) -> Type:
        """A call through a choice hyperparameter: it must type-check with every option."""
        self.arg_cache = {}
        try:
            return self._choice_call(e, choice)
        finally:
            self.arg_cache = None

    def argument(self, node) -> Type:
        """An argument's type; evaluated once even when bound to several choice options."""
        if self.arg_cache is None:
            return self.expr(node)
        if id(node) not in self.arg_cache:
            self.arg_cache[id(node)] = self.expr(node)
        return self.arg_cache[id(node)]

    def _choice_call(self, e: ir.Call, choice: ChoiceT) -> Type:
        targets, all_bindings, result = {}, {}, None
        for option in choice.options:
            callee = self.callees.get(option)
            self.depends.add(option)
            if callee is None:
                self.error(e.span, "unknown-callee", f"option '{option}' of choice '{e.func}' is called here, "
                           f"but no unit or primitive has that name")
                return UNKNOWN
            mark = len(self.out)
            outputs, bindings = self.bind_call(e, callee)
            if len(self.out) > mark:
                for d in self.out[mark:]:
                    d.message = f"with {e.func} = {option}: {d.message}"
                return UNKNOWN
            if bindings is None:  # the option's own signature is broken; reported in that unit
                return UNKNOWN
            if result is not None and not _same_type(result, outputs):
                self.error(e.span, "type-mismatch", f"the options of '{e.func}' give different results: "
                           f"{describe(result)} and {describe(outputs)} (with {option})")
                return UNKNOWN
            result = outputs
            targets[option], all_bindings[option] = callee, bindings
        self.info.calls.append(CallRecord(e.span, e.func, targets, all_bindings, choice=e.func))
        return result if result is not None else UNKNOWN

    def size_function(self, e: ir.Call) -> Type:
        arity, _, _ = dims.FUNCTIONS[e.func]
        if e.keywords or len(e.args) != arity:
            self.error(e.span, "arity", f"{e.func}() takes {arity} positional argument(s)")
            self._visit_args(e)
            return UNKNOWN
        ts = [self.expr(a) for a in e.args]
        if any(isinstance(t, UnknownT) for t in ts):
            return UNKNOWN
        for t, a in zip(ts, e.args):
            if not (isinstance(t, ScalarT) and t.kind in ("int", "float")):
                self.error(a.span, "type-mismatch", f"{e.func}() works on sizes and numbers, not {describe(t)}",
                           hint="size functions compute dims; they do not apply to tensors")
                return UNKNOWN
        kind = "float" if e.func in ("min", "max") and any(t.kind == "float" for t in ts) else "int"
        return ScalarT(kind, (e.func, *(t.value for t in ts)))

    def bind_call(self, e: ir.Call, callee: Callee) -> tuple[Type, dict | None]:
        """Match arguments to the callee's signature, unify shapes, give the output type."""
        params = callee.params
        by_name = {p.name: p for p in params}
        given: dict[str, tuple] = {}  # param name -> (expr node, span)
        ok = True
        if len(e.args) > len(params):
            self.error(e.args[len(params)].span, "arity",
                       f"{callee.name}() takes {len(params)} argument(s) but {len(e.args)} were given",
                       hint=f"signature: {signature_text(callee)}")
            for extra in e.args[len(params):]:
                self.argument(extra)
            ok = False
        for p, a in zip(params, e.args):
            given[p.name] = a
        for k in e.keywords:
            if k.name not in by_name:
                self.error(k.span, "unknown-keyword", f"{callee.name}() has no parameter '{k.name}'",
                           hint=did_you_mean(k.name, by_name) or f"signature: {signature_text(callee)}")
                self.argument(k.value)
                ok = False
            elif k.name in given:
                self.error(k.span, "duplicate-argument", f"argument '{k.name}' of {callee.name}() is given twice")
                ok = False
            else:
                given[k.name] = k.value
        bindings: dict[str, dims.Size] = {}
        arg_types: dict[str, Type] = {}
        for p in params:
            node = given.get(p.name)
            if node is None:
                if is_hyper(p) and p.default is not None:
                    bindings[p.name] = lit(p.default) if p.type.kind == "choice" else p.default
                    continue
                self.error(e.span, "arity", f"{callee.name}() is missing argument '{p.name}'",
                           hint=f"signature: {signature_text(callee)}")
                ok = False
                continue
            if is_hyper(p) and p.type.kind == "choice":
                value = self.choice_argument(node, p, callee)
                if value is None:
                    ok = False
                else:
                    bindings[p.name] = value
                continue
            t = self.argument(node)
            arg_types[p.name] = t
            if isinstance(t, UnknownT):
                ok = False
                continue
            if not self.argument_fits(p, t, node, callee):
                ok = False
                continue
            if is_hyper(p):
                bindings[p.name] = t.value
                self.record_scalar_argument(p, t, node, callee)
        if not ok:
            return UNKNOWN, None
        if not self.unify_shapes(e, callee, arg_types, given, bindings):
            return UNKNOWN, None
        outs = []
        for o in callee.outputs:
            out = substitute_type(o.type, bindings)
            if out is None:
                return UNKNOWN, None
            outs.append(out)
            for size in out.dims:
                if not isinstance(size, int):  # a constant int needs no check at any scale
                    self.info.checks.append(SizeCheck(e.span, size, f"output of {callee.name}()"))
        return (outs[0] if len(outs) == 1 else TupleT(tuple(outs))), bindings

    def choice_argument(self, node, p: ir.Param, callee: Callee) -> dims.Size | None:
        options = self._options(p)
        if isinstance(node, ir.Name) and node.id not in self.env:
            if node.id in options:
                return lit(node.id)
            self.error(node.span, "bad-choice", f"'{node.id}' is not an option of '{p.name}' in {callee.name}() "
                       f"(options: {', '.join(options)})", hint=did_you_mean(node.id, options))
            return None
        t = self.argument(node)
        if isinstance(t, UnknownT):
            return None
        if isinstance(t, ChoiceT):
            extra = [o for o in t.options if o not in options]
            if extra:
                self.error(node.span, "bad-choice", f"choice passed to '{p.name}' of {callee.name}() may be "
                           f"{', '.join(extra)}, which '{p.name}' does not accept (options: {', '.join(options)})")
                return None
            return t.value
        self.error(node.span, "type-mismatch", f"'{p.name}' of {callee.name}() is a choice among "
                   f"{{{', '.join(options)}}}, not {describe(t)}")
        return None

    def argument_fits(self, p: ir.Param, t: Type, node, callee: Callee) -> bool:
        label = f"argument '{p.name}' of {callee.name}()"
        if isinstance(p.type, ir.SeqType):
            if isinstance(t, TensorT):
                return True
            self.error(node.span, "type-mismatch", f"{label} must be a tensor, but this is {describe(t)}",
                       hint=f"signature: {signature_text(callee)}")
            return False
        want = p.type.kind
        if isinstance(t, ScalarT) and (t.kind == want or (want == "float" and t.kind == "int")):
            return True
        hint = None
        if want == "int" and isinstance(t, ScalarT) and t.kind == "float":
            hint = "round it with floor(...), ceil(...) or multiple_of(..., 8)"
        elif isinstance(t, TensorT):
            hint = "sizes and hyperparameters go here, not tensors"
        self.error(node.span, "type-mismatch", f"{label} must be {_article(want)}, but this is {describe(t)}",
                   hint=hint)
        return False

    def record_scalar_argument(self, p: ir.Param, t: ScalarT, node, callee: Callee) -> None:
        """Int arguments must be integers at every scale, and stay within declared ranges."""
        if t.kind == "bool":
            return
        low = high = None
        options = None
        if isinstance(p.domain, ir.Range):
            low, high = p.domain.low, p.domain.high
        elif isinstance(p.domain, ir.Options):
            options = tuple(p.domain.values)
        if p.type.kind == "int" or low is not None or options is not None:
            self.info.checks.append(SizeCheck(
                node.span, t.value, f"argument '{p.name}' of {callee.name}()",
                positive=False, low=low, high=high, options=options,
            ))

    def unify_shapes(self, e: ir.Call, callee: Callee, arg_types, given, bindings) -> bool:
        """Bind the callee's dim variables from tensor arguments and check the rest agree."""
        ok = True
        where: dict[str, str] = {}
        tensor_params = [p for p in callee.params if isinstance(p.type, ir.SeqType) and p.name in arg_types]
        deferred = []
        for p in tensor_params:
            t = arg_types[p.name]
            declared = p.type.dims
            if len(declared) == 1 and isinstance(declared[0], ir.RestDim):
                rest = declared[0].name
                if rest in bindings and bindings[rest] != ("rest", *t.dims):
                    prior = TensorT(tuple(bindings[rest][1:]))
                    self.error(given[p.name].span, "shape-mismatch",
                               f"argument '{p.name}' of {callee.name}() must have the shape of "
                               f"'{where[rest]}', {prior.show()}, but has {t.show()}")
                    ok = False
                else:
                    bindings[rest] = ("rest", *t.dims)
                    where[rest] = p.name
                continue
            if len(declared) != len(t.dims):
                self.error(given[p.name].span, "shape-mismatch",
                           f"argument '{p.name}' of {callee.name}() must be {_seq_pattern(p.type)} "
                           f"({len(declared)} feature dim(s)), but is {t.show()}",
                           hint=_rank_hint(len(declared), len(t.dims)))
                ok = False
                continue
            for d, actual in zip(declared, t.dims):
                if isinstance(d, ir.Name) and d.id not in bindings:
                    bindings[d.id] = actual
                    where[d.id] = p.name
                else:
                    deferred.append((p, d, actual))
        if not ok:
            return False
        for p, d, actual in deferred:
            raw = size_of(d, lambda n, s: n)
            if raw is None:
                continue
            expected = dims.substitute(raw, bindings)
            if dims.symbols(expected) - set(self.info.symbols):
                continue  # the signature uses a name no argument binds; reported with the signature
            if not dims.equal(expected, actual):
                t = arg_types[p.name]
                name = d.id if isinstance(d, ir.Name) else None
                origin = f" (set by '{where[name]}')" if name in where else ""
                self.error(given[p.name].span, "shape-mismatch",
                           f"argument '{p.name}' of {callee.name}() has shape {t.show()}, but a dim of "
                           f"{dims.show(actual)} does not match {dims.show(expected)}{origin}",
                           hint=f"signature: {signature_text(callee)}")
                ok = False
        return ok


def _rank_hint(want: int, got: int) -> str | None:
    if want == 2 and got == 1:
        return "split the features into heads with split_heads(x, heads)"
    if want == 1 and got == 2:
        return "merge the heads with merge_heads(x)"
    return None


def _seq_pattern(t: ir.SeqType) -> str:
    from ..syntax.unparse import type_

    return type_(t)


def _article(kind: str) -> str:
    return {"int": "an int", "float": "a float", "bool": "a bool"}.get(kind, kind)


def _value_kind(v) -> str:
    if isinstance(v, bool):
        return "a bool"
    if isinstance(v, int):
        return "an int"
    if isinstance(v, float):
        return "a float"
    return "a name"


def ir_value(v) -> str:
    from ..syntax.unparse import value

    return value(v)


def _same_shape(a: TensorT, b: TensorT) -> bool:
    return len(a.dims) == len(b.dims) and all(dims.equal(x, y) for x, y in zip(a.dims, b.dims))


def _same_type(a: Type, b: Type) -> bool:
    if isinstance(a, TensorT) and isinstance(b, TensorT):
        return _same_shape(a, b)
    if isinstance(a, TupleT) and isinstance(b, TupleT):
        return len(a.items) == len(b.items) and all(_same_type(x, y) for x, y in zip(a.items, b.items))
    return type(a) is type(b)


def substitute_type(t, bindings) -> TensorT | None:
    """A callee's declared output type in the caller's symbols."""
    if not isinstance(t, ir.SeqType):
        return None
    out: list = []
    for d in t.dims:
        if isinstance(d, ir.RestDim):
            bound = bindings.get(d.name)
            if not bound:
                return None
            out.extend(bound[1:])
            continue
        size = size_of(d, lambda n, s: n)
        if size is None:
            return None
        out.append(dims.simplify(dims.substitute(size, bindings)))
    return TensorT(tuple(out))


class Callees:
    """What names resolve to when called in a design: looked up once per check."""

    def __init__(self, design: ir.Design, registry: Registry):
        self.design = design
        self.registry = registry
        self._resolved: dict[str, Callee | None] = {}

    def get(self, name: str) -> Callee | None:
        if name not in self._resolved:
            self._resolved[name] = resolve_callee(name, self.design, self.registry)
        return self._resolved[name]


def resolve_callee(name: str, design: ir.Design, registry: Registry) -> Callee | None:
    unit = design.unit(name)
    if unit is not None:
        return Callee(name, unit.params, unit.outputs, unit=unit)
    prim = registry.get(name)
    if prim is not None:
        return Callee(name, prim.signature.params, prim.signature.outputs, primitive=prim)
    return None


def signature_text(callee: Callee) -> str:
    from ..syntax.unparse import outputs, param

    return f"{callee.name}({', '.join(param(p) for p in callee.params)}) -> {outputs(callee.outputs)}"
