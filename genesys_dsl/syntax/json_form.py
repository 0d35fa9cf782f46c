"""Designs as JSON: loading with JSON Schema validation, errors by JSON path.

A JSON design is untrusted data (LLM output, a file from elsewhere). It is checked
against the schema of `genesys schema` first, so every problem is reported with
the path of the offending value (`$.units[1].body[0].value.func`), and only then
turned into IR nodes. (A design pydantic accepts in strict mode is taken as it is:
the schema is pydantic's own, and strict mode accepts no value the schema rejects.)
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jsonschema
from pydantic import ValidationError

from .. import ir
from .diagnostics import Diagnostic, DSLError

MAX_ERRORS = 20


@lru_cache(maxsize=1)
def _validator() -> jsonschema.protocols.Validator:
    schema = ir.json_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _json_path(parts) -> str:
    path = "$"
    for p in parts:
        path += f"[{p}]" if isinstance(p, int) else f".{p}"
    return path


def load_data(data: Any, filename: str | None = None) -> ir.Design:
    """Validate a decoded JSON value and build the design; DSLError names each bad path."""
    try:
        return _load_data(data, filename)
    except RecursionError:
        raise DSLError([Diagnostic(code="too-deep", message="design nested too deeply", file=filename,
                                   path="$")]) from None


def _load_data(data: Any, filename: str | None) -> ir.Design:
    # Most designs are valid: pydantic in strict mode (no coercion, the same types the
    # schema allows) checks them in Rust, about a hundred times faster than jsonschema in
    # Python. Only a design it rejects goes through jsonschema, which names the paths.
    try:
        return ir.Design.model_validate(data, strict=True)
    except (ValidationError, RecursionError):
        pass
    diagnostics = []
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    for err in errors[:MAX_ERRORS]:
        best = _most_specific(err)
        diagnostics.append(Diagnostic(code="json-schema", message=_short(best.message), file=filename,
                                      path=_json_path(best.absolute_path)))
    if diagnostics:
        raise DSLError(diagnostics)
    try:
        return ir.Design.model_validate(data)
    except ValidationError as err:  # rules the schema cannot express (e.g. docstring quotes)
        raise DSLError([
            Diagnostic(code="json-schema", message=e["msg"], file=filename, path=_json_path(e["loc"]))
            for e in err.errors()[:MAX_ERRORS]
        ]) from None


def _most_specific(err: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For a failed tagged union, the error inside the branch whose `kind` matches.

    The schema's unions are `oneOf` over node types told apart by `kind`; jsonschema
    reports every branch, so drop the branches that fail on `kind` itself."""
    while err.context:
        wrong_kind = {
            e.relative_schema_path[0] for e in err.context
            if e.validator == "const" and list(e.relative_path)[-1:] == ["kind"]
        }
        relevant = [e for e in err.context if e.relative_schema_path[0] not in wrong_kind]
        if not relevant:
            kinds = sorted({e.validator_value for e in err.context if e.validator == "const"})
            got = err.instance.get("kind") if isinstance(err.instance, dict) else None
            return jsonschema.ValidationError(
                f"unknown kind {got!r}; expected one of {', '.join(map(repr, kinds))}",
                path=err.absolute_path,
            )
        err = jsonschema.exceptions.best_match(relevant)
    return err


def _short(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."


def loads(text: str, filename: str | None = None) -> ir.Design:
    """Parse JSON text into a design (see `load_data`)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DSLError([Diagnostic(code="json-syntax", message=f"not valid JSON: {err.msg}", file=filename,
                                   line=err.lineno, column=err.colno, end_line=err.lineno,
                                   end_column=err.colno + 1)], text) from None
    except RecursionError:
        raise DSLError([Diagnostic(code="too-deep", message="JSON nested too deeply", file=filename,
                                   line=1, column=1, end_line=1, end_column=2)], text) from None
    return load_data(data, filename)
