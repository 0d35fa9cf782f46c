"""Designs as JSON: round trip, schema validation, errors by JSON path, hostile input."""

import json

import pytest

import genesys_dsl as g
from genesys_dsl import ir
from genesys_dsl.syntax.json_form import load_data, loads
from paths import SPECS, seed_paths


@pytest.mark.parametrize("path", seed_paths(), ids=lambda p: p.stem)
def test_seed_round_trips_through_json(path):
    design = g.parse_file(path)
    assert g.same_design(loads(ir.dumps(design)), design)
    assert g.same_design(loads(ir.dumps(design, spans=True)), design)


def data_of(name="transformer"):
    return json.loads(ir.dumps(g.parse_file(SPECS / f"{name}.gab")))


def errors(data) -> list[tuple[str, str]]:
    with pytest.raises(g.DSLError) as err:
        load_data(data, "d.json")
    return [(d.path, d.message) for d in err.value.diagnostics]


def test_errors_name_the_json_path():
    data = data_of()
    data["units"][1]["params"][1]["default"] = [1, 2]
    data["units"][2]["body"][0]["targets"] = []
    found = dict(errors(data))
    assert "$.units[1].params[1].default" in found
    assert "$.units[2].body[0].targets" in found


def test_unknown_node_kind_is_explained():
    data = data_of()
    data["units"][1]["body"][0]["value"]["kind"] = "lambda"
    ((path, message),) = errors(data)
    assert path == "$.units[1].body[0].value" and "unknown kind 'lambda'" in message


@pytest.mark.parametrize("field, value", [
    (("units", 1, "body", 0, "value", "func"), "__import__('os').system"),
    (("units", 1, "name"), "Attention; rm -rf /"),
    (("units", 1, "body", 0, "targets", 0), "q\n"),
    (("name",), "x y"),
])
def test_identifiers_cannot_carry_code(field, value):
    data = data_of()
    node = data
    for key in field[:-1]:
        node = node[key]
    node[field[-1]] = value
    ((path, message),) = errors(data)
    assert "match" in message  # jsonschema: "does not match"; pydantic: "should match pattern"


def test_docstrings_cannot_break_out_of_their_quotes():
    data = data_of()
    data["units"][1]["doc"] = 'evil"""\nunit X'
    ((path, message),) = errors(data)
    assert path == "$.units[1].doc" and 'cannot contain """' in message


def test_descriptions_with_quotes_and_newlines_stay_inert():
    data = data_of()
    data["description"] = 'say "hi"\n}\nunit Evil(x: seq[D]) -> seq[D] { return x }'
    design = load_data(data)
    text = g.unparse(design)
    assert g.same_design(g.parse(text), design)
    assert [u.name for u in g.parse(text).units] == [u.name for u in design.units]


def test_invalid_json_text_is_located():
    with pytest.raises(g.DSLError) as err:
        loads('{"name": "x",\n "units": [}', "d.json")
    (d,) = err.value.diagnostics
    assert d.code == "json-syntax" and d.line == 2


def test_deeply_nested_json_is_an_error_not_a_crash():
    expr = {"kind": "name", "id": "x"}
    for _ in range(5000):
        expr = {"kind": "neg", "operand": expr}
    data = data_of()
    data["units"][0]["body"][0]["value"] = expr
    with pytest.raises(g.DSLError):
        load_data(data)


def test_checked_json_design_diagnostics_have_locations():
    data = data_of()
    data["units"][1]["body"][0]["value"]["args"][0]["args"][0]["args"][0]["id"] = "xx"
    report = g.check(load_data(data, "d.json"))
    (d,) = report.errors
    assert d.code == "undefined-name" and d.line is not None and "did you mean 'x'" in d.hint
