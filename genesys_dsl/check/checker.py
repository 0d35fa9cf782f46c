"""`check(design) -> Report`: every static problem of a design, located.

Order of work: design-level rules (one block, its signature, unit names, scaffold),
then each unit on its own (`analyze`), then the call graph (recursion, unused
units, acausal primitives reachable from the block), then every scale (`scale`).
All problems are collected; nothing stops at the first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .. import ir
from ..ops.registry import Registry
from ..scales import Scale, get_scale, scales as configured_scales
from ..syntax.diagnostics import Diagnostic, render_all
from . import reuse
from .analyze import Callees, UnitAnalyzer, UnitInfo, did_you_mean
from .scale import ScaleWalker, to_diagnostics

SCAFFOLD_SETTINGS = {
    "positions": "none | learned: learned absolute position embeddings added to token embeddings (GPT-2)",
    "final_norm": "the norm primitive applied after the last block (default RMSNorm)",
    "tie_embeddings": "true | false: share the token embedding with the LM head (default true)",
    "final_norm_eps": "the final norm's eps (default: the norm primitive's own default)",
}


@dataclass
class Report:
    """The result of `check`: `ok` when there is no error (warnings allowed)."""

    diagnostics: list[Diagnostic]
    source: str | None = None
    file: str | None = None
    infos: dict[str, UnitInfo] = field(default_factory=dict, repr=False)
    design: ir.Design | None = field(default=None, repr=False)
    cyclic: set[str] = field(default_factory=set, repr=False)
    reuse: reuse.Session | None = field(default=None, repr=False, compare=False)  # for stats' walks

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if not d.is_error]

    def render(self, color: bool = False) -> str:
        return render_all(self.diagnostics, self.source, color=color)

    def to_dict(self) -> dict:
        return diagnostics_dict(self.diagnostics)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


DIAGNOSTIC_FIELDS = ("severity", "code", "message", "file", "line", "column", "end_line", "end_column", "hint")


def diagnostics_dict(diagnostics: list[Diagnostic]) -> dict:
    """The machine-readable form of `genesys check --format json`."""
    return {
        "ok": not any(d.is_error for d in diagnostics),
        "diagnostics": [
            {**{k: getattr(d, k) for k in DIAGNOSTIC_FIELDS}, **({"path": d.path} if d.path else {})}
            for d in diagnostics
        ],
    }


def check(
    design: ir.Design,
    scales: list[str | Scale] | None = None,
    *,
    registry: Registry | None = None,
    source: str | None = None,
    file: str | None = None,
) -> Report:
    """Check a design statically; `scales` (default: every configured scale) are
    where sizes are evaluated. A design without source spans (built in code or
    loaded from JSON) with anything to report is checked through its canonical text,
    so every diagnostic still has a line and column."""
    from ..ops import registry as default_registry
    from ..syntax.parse import parse
    from ..syntax.unparse import unparse

    registry = registry or default_registry()
    source = source if source is not None else design._source
    file = file if file is not None else design._file
    scale_list = list(configured_scales().values()) if scales is None else [get_scale(s) for s in scales]
    if design.span is None:
        file = file or f"<{design.name}>"
        # Most GP offspring are clean: check the tree as it is, and only when there is
        # something to report, check its canonical text so every diagnostic has a place.
        report = Checker(design, registry, file, None, reuse=True).run(scale_list)
        if not report.diagnostics:
            return report
        source = unparse(design)
        design = parse(source, filename=file)
    return Checker(design, registry, file, source).run(scale_list)


class Checker:
    """`reuse`: share clean unit analyses and walks with earlier checks (`check.reuse`);
    only for span-less designs, whose diagnostics are never shown from this pass."""

    def __init__(self, design: ir.Design, registry: Registry, file: str | None, source: str | None,
                 *, reuse: bool = False):
        self.design = design
        self.registry = registry
        self.file = file
        self.source = source
        self.reuse = reuse
        self.out: list[Diagnostic] = []

    def error(self, span, code, message, hint=None, severity="error") -> None:
        self.out.append(Diagnostic.at(span, code, message, hint=hint, severity=severity, file=self.file))

    def run(self, scale_list: list[Scale]) -> Report:
        self.design_rules()
        infos: dict[str, UnitInfo] = {}
        callees = Callees(self.design, self.registry)
        session = reuse.Session(self.design, self.registry, callees) if self.reuse else None
        for unit in self.design.units:
            if unit.name in infos:
                continue  # duplicate, reported by design_rules
            info = session.analysis(unit) if session is not None else None
            if info is None:
                mark = len(self.out)
                analyzer = UnitAnalyzer(unit, self.design, self.registry, self.file, self.out, callees)
                info = analyzer.run()
                if session is not None and len(self.out) == mark:
                    session.store(unit, info, analyzer.depends)
            infos[unit.name] = info
        cyclic = self.call_graph(infos)
        if cyclic:
            session = None  # walks are reused by what a unit calls, which a cycle leaves undefined
        block = self.design.block
        if block is not None and block.name in infos and len(infos[block.name].dim_vars) == 1:
            for scale in scale_list:
                walker = ScaleWalker(infos, scale, cyclic, costs=False, reuse=session)
                walker.walk(block.name, walker.block_env(infos[block.name]))
                self.out.extend(to_diagnostics(walker.problems.values(), self.file))
        diagnostics = _merge_scale_duplicates(self.out)
        return Report(sorted(diagnostics, key=Diagnostic.sort_key), self.source, self.file, infos,
                      self.design, cyclic, session)

    # -- design-level rules
    def design_rules(self) -> None:
        blocks = [u for u in self.design.units if u.is_block]
        if not blocks:
            self.error(self.design.span, "no-block", f"design '{self.design.name}' has no block",
                       hint="add `block(x: seq[D]) -> seq[D] { ... }`, the unit the scaffold stacks")
        for extra in blocks[1:]:
            self.error(extra.span, "duplicate-unit", "a design has exactly one block")
        if blocks:
            self.block_signature(blocks[0])
        seen: dict[str, ir.Unit] = {}
        for unit in self.design.units:
            if unit.is_block:
                continue
            if unit.name in seen:
                self.error(unit.name_span, "duplicate-unit", f"unit '{unit.name}' is defined twice "
                           f"(first at line {seen[unit.name].span.line})", hint="rename one of them")
            seen.setdefault(unit.name, unit)
            if unit.name in self.registry:
                self.error(unit.name_span, "shadows-primitive",
                           f"unit '{unit.name}' has the name of a primitive", hint="rename the unit")
        self.scaffold_rules()

    def block_signature(self, block: ir.Unit) -> None:
        tensors = [p for p in block.params if isinstance(p.type, ir.SeqType)]
        shape_ok = (
            len(tensors) == 1
            and len(tensors[0].type.dims) == 1
            and isinstance(tensors[0].type.dims[0], ir.Name)
        )
        out_ok = (
            len(block.outputs) == 1
            and isinstance(block.outputs[0].type, ir.SeqType)
            and shape_ok
            and [getattr(d, "id", None) for d in block.outputs[0].type.dims] == [tensors[0].type.dims[0].id]
        )
        if not (shape_ok and out_ok):
            self.error(block.span if not block.params else block.params[0].span, "block-signature",
                       "the block must take one input `x: seq[D]` and return `seq[D]`",
                       hint="the scaffold feeds each block [batch, length, D] and expects the same back; "
                            "hyperparameters may follow the input")

    def scaffold_rules(self) -> None:
        if self.design.scaffold is None:
            return
        seen = set()
        for s in self.design.scaffold.settings:
            if s.name in seen:
                self.error(s.span, "bad-scaffold", f"scaffold setting '{s.name}' is given twice")
            seen.add(s.name)
            if s.name not in SCAFFOLD_SETTINGS:
                self.error(s.span, "bad-scaffold", f"unknown scaffold setting '{s.name}'",
                           hint=did_you_mean(s.name, SCAFFOLD_SETTINGS) or "settings: " + ", ".join(SCAFFOLD_SETTINGS))
            elif s.name == "positions" and s.value not in ("none", "learned"):
                self.error(s.span, "bad-scaffold", "positions must be `none` or `learned`")
            elif s.name == "tie_embeddings" and not isinstance(s.value, bool):
                self.error(s.span, "bad-scaffold", "tie_embeddings must be true or false")
            elif s.name == "final_norm":
                prim = self.registry.get(s.value) if isinstance(s.value, str) else None
                if prim is None or prim.family != "norm":
                    norms = [p.name for p in self.registry if p.family == "norm"]
                    self.error(s.span, "bad-scaffold", f"final_norm must name a norm primitive ({', '.join(norms)})",
                               hint=did_you_mean(str(s.value), norms))
            elif s.name == "final_norm_eps":
                self.final_norm_eps_rule(s)

    def final_norm_eps_rule(self, s: ir.Setting) -> None:
        """A positive number inside the eps domain of the final norm primitive."""
        if isinstance(s.value, bool) or not isinstance(s.value, (int, float)) or s.value <= 0:
            self.error(s.span, "bad-scaffold", "final_norm_eps must be a positive number, e.g. 1e-05")
            return
        norm_name = next((x.value for x in self.design.scaffold.settings if x.name == "final_norm"), "RMSNorm")
        norm = self.registry.get(norm_name) if isinstance(norm_name, str) else None
        eps = next((p for p in norm.signature.params if p.name == "eps"), None) if norm else None
        if norm is not None and eps is None:
            self.error(s.span, "bad-scaffold", f"{norm_name} has no eps to set")
        elif eps is not None and isinstance(eps.domain, ir.Range) and not eps.domain.low <= s.value <= eps.domain.high:
            self.error(s.span, "bad-scaffold", f"final_norm_eps {s.value!r} is outside {norm_name}'s eps range "
                       f"{eps.domain.low!r}..{eps.domain.high!r}")

    # -- call graph
    def call_graph(self, infos: dict[str, UnitInfo]) -> set[str]:
        """Report recursion, unused units and acausal primitives; return the units in cycles."""
        edges = {
            name: [(c, t.name) for c in info.calls for t in c.targets.values() if t.unit is not None]
            for name, info in infos.items()
        }
        cyclic: set[str] = set()
        state: dict[str, int] = {}  # 1 = on the stack, 2 = done
        stack: list[str] = []

        def visit(name: str) -> None:  # depth is bounded by the number of units
            state[name] = 1
            stack.append(name)
            for call, callee in edges.get(name, []):
                if callee not in infos:
                    continue
                if state.get(callee) == 1:
                    cycle = stack[stack.index(callee):] + [callee]
                    cyclic.update(cycle)
                    self.error(call.span, "recursion", f"units call each other in a cycle: {' -> '.join(cycle)}",
                               hint="a design is a finite tree of units; break the cycle")
                elif state.get(callee) is None:
                    visit(callee)
            stack.pop()
            state[name] = 2

        block = self.design.block
        if block is not None and block.name in infos:
            visit(block.name)
            reachable = set(state)
            self.acausal(infos, reachable)
        else:
            reachable = set()
        for unit in self.design.units:
            if unit.name not in state and not unit.is_block:
                visit(unit.name)
            if not unit.is_block and unit.name not in reachable and block is not None:
                self.error(unit.name_span, "unused-unit", f"unit '{unit.name}' is never called from the block",
                           severity="warning", hint="call it, or remove it")
        return cyclic

    def acausal(self, infos: dict[str, UnitInfo], reachable: set[str]) -> None:
        for name in sorted(reachable):
            for call in infos[name].calls:
                for option, target in call.targets.items():
                    prim = target.primitive
                    if prim is not None and prim.temporal == "acausal":
                        via = f" (via choice '{call.choice}' = {option})" if call.choice else ""
                        self.error(call.span, "acausal-in-block",
                                   f"{prim.name} mixes in future tokens{via}; a block must be causal",
                                   hint="use a causal primitive of the same family (e.g. causal_attention)")


def _merge_scale_duplicates(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """The same scale problem at the same place is reported once, naming every scale."""
    out: list[Diagnostic] = []
    index: dict[tuple, Diagnostic] = {}
    for d in diagnostics:
        if " at scale " not in d.message:
            out.append(d)
            continue
        key = (d.code, d.line, d.column, d.end_line, d.end_column)
        if key in index:
            first = index[key]
            scale = d.message.split(" at scale ", 1)[1].split(" ", 1)[0]
            if "; also at " in first.message:
                first.message += f", {scale}"
            else:
                first.message += f"; also at {scale}"
            continue
        index[key] = d
        out.append(d)
    return out
