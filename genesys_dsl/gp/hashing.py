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
from typing import Any

from .. import ir

_DROP = frozenset({"span", "name_span", "default_span", "comments", "end_comments", "trailing_comment", "doc"})


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k not in _DROP}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _rename(expr: Any, mapping: dict[str, str]) -> Any:
    kind = expr.get("kind")
    if kind == "name":
        return {"kind": "name", "id": mapping.get(expr["id"], expr["id"])}
    if kind == "call":
        return {
            "kind": "call",
            "func": expr["func"],  # locals cannot be called: a call names a unit, primitive or choice
            "args": [_rename(a, mapping) for a in expr["args"]],
            "keywords": [{"name": k["name"], "value": _rename(k["value"], mapping)} for k in expr["keywords"]],
        }
    if kind == "binop":
        return {"kind": "binop", "op": expr["op"], "left": _rename(expr["left"], mapping),
                "right": _rename(expr["right"], mapping)}
    if kind == "neg":
        return {"kind": "neg", "operand": _rename(expr["operand"], mapping)}
    return expr


def _canonical_unit(unit: dict) -> dict:
    params = {p["name"] for p in unit["params"]}
    mapping: dict[str, str] = {}
    body = []
    for s in unit["body"]:
        if s["kind"] == "assign":
            value = _rename(s["value"], mapping)  # the right side reads the names before this line
            for t in s["targets"]:
                if t not in params and t not in mapping:
                    mapping[t] = f"%{len(mapping)}"
            body.append({"kind": "assign", "targets": [mapping.get(t, t) for t in s["targets"]], "value": value})
        else:
            body.append({"kind": "return", "values": [_rename(v, mapping) for v in s["values"]]})
    return {**unit, "body": body}


def canonical_form(design: ir.Design) -> dict:
    """The part of a design that defines its architecture, as plain data."""
    data = _clean(design.model_dump(mode="json"))
    units = [_canonical_unit(u) for u in data["units"]]
    units.sort(key=lambda u: (not u["is_block"], u["name"]))
    return {"scaffold": data.get("scaffold"), "units": units}


def canonical_hash(design: ir.Design) -> str:
    """sha256 (hex) of the canonical form: equal for designs equal up to formatting,
    comments, docstrings, description, name, unit order and local names."""
    text = json.dumps(canonical_form(design), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
