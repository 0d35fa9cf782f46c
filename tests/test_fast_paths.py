"""The front end's and GP's fast paths give exactly what the plain paths give.

Each speed-up (benchmarks/bench_frontend.py, benchmarks/bench_gp.py) replaced a
simple route by a quicker one: lark_cython for Lark's pure-Python parser, direct
node construction for pydantic's, stored analyses and walks for fresh ones, field
reads for dumps. Each test here runs both routes on the same inputs and compares.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings

import genesys_dsl as g
from genesys_dsl import ir
from genesys_dsl.check import reuse, stats
from genesys_dsl.gp import canonical_hash, crossover, mutate
from genesys_dsl.gp.hashing import canonical_form
from genesys_dsl.gp.tree import fresh
from genesys_dsl.syntax.grammar import accelerated
from genesys_dsl.syntax.json_form import loads
from genesys_dsl.syntax.nodes import constructor

from paths import ROOT, seed_paths
from strategies import designs

BAD_INPUTS = [
    "design x\nblock(x: seq[D]) -> seq[D] {\n    return x +\n}\n",
    "design x 'quoted'",
    "design x\nblock(x: seq[D]) -> seq[D] {\n    return x\n",
    "design x\nblock(x: seq[D]) -> seq[D] {\n    for i in x\n}\n",
    "design x\nblock(x: seq[D]) -> seq[D] {\n    return x[0]\n}\n",
    "design x\nunit int(x: seq[D]) -> seq[D] { return x }\n",
    "design x\nblock(x: seq[D]) -> seq[D] {\n    return " + "(" * 300 + "x" + ")" * 300 + "\n}\n",
    "design x\nblock(x: seq[D]) -> seq[D] {\n    return f(1, a=2, 3)\n}\n",
]


@pytest.fixture(scope="module")
def seeds() -> list[ir.Design]:
    return [g.parse_file(p) for p in seed_paths()]


@pytest.fixture(scope="module")
def offspring(seeds) -> list[ir.Design]:
    """Span-less children of every seed, as GP makes them."""
    out = []
    for i, parent in enumerate(seeds):
        out.append(mutate(parent, seed=i).design)
        out.append(mutate(parent, seed=100 + i).design)
        out.append(crossover(parent, seeds[(i + 1) % len(seeds)], seed=i).design)
    return out


# ------------------------------------------------------------------ parsing


def _parse_summary(texts: list[str]) -> list:
    """Each text's IR with spans, or its diagnostics."""
    out = []
    for text in texts:
        try:
            out.append(ir.dumps(g.parse(text, filename="t.gab"), spans=True))
        except g.DSLError as err:
            out.append([(d.code, d.message, d.line, d.column, d.end_line, d.end_column, d.hint)
                        for d in err.diagnostics])
    return out


def test_pure_lark_fallback_reads_specs_and_errors_exactly_as_lark_cython():
    """Without lark_cython (its import fails), pure-Python Lark gives the same trees,
    spans and syntax errors."""
    texts = [p.read_text(encoding="utf-8") for p in seed_paths()] + BAD_INPUTS
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules["lark_cython"] = None  # import lark_cython now raises ImportError
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "tests")!r}]
        from genesys_dsl.syntax.grammar import accelerated
        from test_fast_paths import _parse_summary
        texts = json.load(sys.stdin)
        print(json.dumps({{"accelerated": accelerated(), "out": _parse_summary(texts)}}))
    """)
    run = subprocess.run([sys.executable, "-c", script], input=json.dumps(texts), capture_output=True,
                         text=True, timeout=120, check=True)
    pure = json.loads(run.stdout)
    assert pure["accelerated"] is False
    assert pure["out"] == json.loads(json.dumps(_parse_summary(texts)))


def test_lark_cython_is_used_when_installed():
    pytest.importorskip("lark_cython")
    assert accelerated()


def test_direct_construction_equals_model_construct():
    span = ir.Span(line=1, column=2, end_line=1, end_column=5)
    args = {"span": span, "func": "Linear", "args": [ir.Name(id="x")], "keywords": []}
    fast, reference = constructor(ir.Call)(**args), ir.Call.model_construct(**args)
    assert fast == reference
    assert list(fast.__dict__) == list(reference.__dict__)  # same field order (repr, dumps)
    assert fast.model_fields_set == reference.model_fields_set
    assert fast.model_dump() == reference.model_dump()
    # a mutable default left out is a new list per node, as with model_construct
    a, b = constructor(ir.Call)(func="f"), constructor(ir.Call)(func="f")
    assert a.args == [] and a.args is not b.args


def test_direct_construction_refuses_unknown_and_missing_fields():
    with pytest.raises(TypeError, match="no field"):
        constructor(ir.Name)(id="x", idd="y")
    with pytest.raises(TypeError, match="needs field 'id'"):
        constructor(ir.Name)(span=None)


# ------------------------------------------------------------------ checking with reuse


def _check_summary(design: ir.Design) -> list:
    report = g.check(design)
    out: list = [[(d.severity, d.code, d.message, d.line, d.column, d.hint) for d in report.diagnostics]]
    if report.ok:
        for scale in ("cpu-xs", "70M"):
            s = stats(design, scale)
            out.append((s.params, s.flops_per_token, s.block_params, s.parts))
    return out


def test_reused_analyses_and_walks_give_the_results_of_a_fresh_check(offspring):
    fresh_results = []
    for design in offspring:
        reuse.clear()
        fresh_results.append(_check_summary(design))
    reuse.clear()
    assert [_check_summary(d) for d in offspring] == fresh_results  # second half reuses the first's
    assert [_check_summary(d) for d in offspring] == fresh_results  # everything stored
    analyses, walks = reuse.sizes()
    assert analyses > 0 and walks > 0


def test_a_design_edited_in_place_after_its_check_is_checked_anew(seeds):
    reuse.clear()
    design = fresh(seeds[0])
    twin = fresh(seeds[0])
    before = stats(design, "cpu-xs").params
    unit = next(u for u in design.units if any(p.domain is not None for p in u.params))
    param = next(p for p in unit.params if isinstance(p.domain, ir.Range) and p.type.kind == "float")
    param.default = param.domain.high  # in place, as an operator edits its copy
    edited = stats(design, "cpu-xs").params
    reuse.clear()
    assert edited == stats(fresh(design), "cpu-xs").params != before
    # the stored analysis of the unedited twin does not read the edited design's nodes
    assert stats(twin, "cpu-xs").params == before


def test_reuse_tells_apart_units_whose_callees_changed_signature(seeds):
    """A unit calling `Attention` is analysed again when Attention's signature changes."""
    reuse.clear()
    design = fresh(seeds[0])
    assert g.check(design).ok
    callee = next(u for u in design.units if not u.is_block and any(p.name == "x" for p in u.params))
    for p in callee.params:
        if p.name == "x":
            p.name = "y"  # the block passes x positionally, so only the body breaks
    reuse_report = g.check(design)
    reuse.clear()
    assert [(d.code, d.line) for d in reuse_report.diagnostics] == \
        [(d.code, d.line) for d in g.check(design).diagnostics]
    assert not reuse_report.ok


# ------------------------------------------------------------------ GP helpers


def _reference_canonical_form(design: ir.Design) -> dict:
    """canonical_form as first written: dump, filter, rename (the oracle)."""
    drop = {"span", "name_span", "default_span", "comments", "end_comments", "trailing_comment", "doc"}

    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if k not in drop}
        return [clean(x) for x in v] if isinstance(v, list) else v

    def rename(e, mapping):
        kind = e.get("kind")
        if kind == "name":
            return {"kind": "name", "id": mapping.get(e["id"], e["id"])}
        if kind == "call":
            return {"kind": "call", "func": e["func"], "args": [rename(a, mapping) for a in e["args"]],
                    "keywords": [{"name": k["name"], "value": rename(k["value"], mapping)} for k in e["keywords"]]}
        if kind == "binop":
            return {"kind": "binop", "op": e["op"], "left": rename(e["left"], mapping),
                    "right": rename(e["right"], mapping)}
        if kind == "neg":
            return {"kind": "neg", "operand": rename(e["operand"], mapping)}
        return e

    def unit(u):
        params, mapping, body = {p["name"] for p in u["params"]}, {}, []
        for s in u["body"]:
            if s["kind"] == "assign":
                value = rename(s["value"], mapping)
                for t in s["targets"]:
                    if t not in params and t not in mapping:
                        mapping[t] = f"%{len(mapping)}"
                body.append({"kind": "assign", "targets": [mapping.get(t, t) for t in s["targets"]],
                             "value": value})
            else:
                body.append({"kind": "return", "values": [rename(v, mapping) for v in s["values"]]})
        return {**u, "body": body}

    data = clean(design.model_dump(mode="json"))
    units = sorted((unit(u) for u in data["units"]), key=lambda u: (not u["is_block"], u["name"]))
    return {"scaffold": data.get("scaffold"), "units": units}


def test_canonical_form_read_from_fields_equals_the_dumped_form(seeds, offspring):
    for design in seeds + offspring:
        assert canonical_form(design) == _reference_canonical_form(design)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(designs())
def test_canonical_form_of_generated_designs(design):
    assert canonical_form(design) == _reference_canonical_form(design)
    assert canonical_hash(fresh(design)) == canonical_hash(design)


# ------------------------------------------------------------------ JSON


def test_json_fast_path_builds_what_schema_validation_builds(seeds, offspring):
    from genesys_dsl.syntax import json_form

    for design in seeds + offspring:
        text = ir.dumps(design, spans=True)
        data = json.loads(text)
        fast = loads(text)
        assert fast == ir.Design.model_validate(data)
        assert not list(json_form._validator().iter_errors(data))  # the schema accepts it too


def test_json_values_strict_mode_rejects_still_load_as_before(seeds):
    """An int written as 2.0 is an integer to JSON Schema: the schema route loads it."""
    design = next(d for d in seeds if '"kind": "int"' in ir.dumps(d))
    text = ir.dumps(design)
    literal = json.loads(text)
    stack = [literal]
    while stack:  # the first integer literal in the tree, written as a float
        node = stack.pop()
        if isinstance(node, dict) and node.get("kind") == "int" and "value" in node:
            node["value"] = float(node["value"])
            break
        stack.extend(node.values() if isinstance(node, dict) else node if isinstance(node, list) else [])
    assert json.dumps(literal) != text
    assert ir.same_design(loads(json.dumps(literal)), design)
