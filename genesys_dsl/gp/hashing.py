"""`canonical_hash(design)`: one hash per architecture, for deduplicating offspring.

Two designs get the same hash when they differ only in what does not change the
architecture: formatting and spans, comments, docstrings, the description, the
design's name, the order of unit definitions, and the names of local variables.
Locals are alpha-renamed per unit, in order of first definition, to names no
identifier can have (`%0`, `%1`, ...), so renaming never collides. Parameter names,
unit names, call targets, keywords, literals and every other part of the tree count.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from pydantic import BaseModel

from .. import ir

_DROP = frozenset({"span", "name_span", "default_span", "comments", "end_comments", "trailing_comment", "doc"})

# The canonical form is read straight from the nodes' fields: what
# `model_dump(mode="json")` would give, less the fields in _DROP, built in one pass
# (dumping first and filtering after took 1.7 times as long; GP hashes every
# candidate several times). tests/test_fast_paths.py checks both routes agree.


def _plain(value: Any) -> Any:
    """A node's fields as JSON-ready data, without the fields in _DROP."""
    if isinstance(value, BaseModel):
        return {k: _plain(v) for k, v in value.__dict__.items() if k not in _DROP}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if type(value) is float and not math.isfinite(value):
        return None  # as pydantic writes inf and nan in JSON mode
    return value


def _expr(e: Any, mapping: dict[str, str]) -> Any:
    """An expression's canonical data, locals renamed by `mapping`."""
    kind = getattr(e, "kind", None)
    if kind == "name":
        return {"kind": "name", "id": mapping.get(e.id, e.id)}
    if kind == "call":
        return {
            "kind": "call",
            "func": e.func,  # locals cannot be called: a call names a unit, primitive or choice
            "args": [_expr(a, mapping) for a in e.args],
            "keywords": [{"name": k.name, "value": _expr(k.value, mapping)} for k in e.keywords],
        }
    if kind == "binop":
        return {"kind": "binop", "op": e.op, "left": _expr(e.left, mapping), "right": _expr(e.right, mapping)}
    if kind == "neg":
        return {"kind": "neg", "operand": _expr(e.operand, mapping)}
    return _plain(e)


def _canonical_unit(unit: ir.Unit) -> dict:
    data = {k: _plain(v) for k, v in unit.__dict__.items() if k not in _DROP and k != "body"}
    params = {p.name for p in unit.params}
    mapping: dict[str, str] = {}
    body = []
    for s in unit.body:
        if s.kind == "assign":
            value = _expr(s.value, mapping)  # the right side reads the names before this line
            for t in s.targets:
                if t not in params and t not in mapping:
                    mapping[t] = f"%{len(mapping)}"
            body.append({"kind": "assign", "targets": [mapping.get(t, t) for t in s.targets], "value": value})
        else:
            body.append({"kind": "return", "values": [_expr(v, mapping) for v in s.values]})
    data["body"] = body
    return data


def canonical_form(design: ir.Design) -> dict:
    """The part of a design that defines its architecture, as plain data."""
    units = [_canonical_unit(u) for u in design.units]
    units.sort(key=lambda u: (not u["is_block"], u["name"]))
    return {"scaffold": _plain(design.scaffold), "units": units}


def canonical_hash(design: ir.Design) -> str:
    """sha256 (hex) of the canonical form: equal for designs equal up to formatting,
    comments, docstrings, description, name, unit order and local names."""
    text = json.dumps(canonical_form(design), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
