"""The static checker: every kind of mistake is reported, located, with a useful hint."""

import textwrap

import pytest

import genesys_dsl as g

HEADER = 'design t "test"\n'


def report_of(body: str, scales=None):
    text = HEADER + textwrap.dedent(body).lstrip("\n")
    return g.check(g.parse(text, filename="t.gab"), scales)


def codes(body: str, scales=None) -> list[tuple[str, int]]:
    return [(d.code, d.line) for d in report_of(body, scales).diagnostics]


def only(body: str, code: str, scales=None):
    """The single diagnostic with `code`; fails if it is missing or repeated."""
    found = [d for d in report_of(body, scales).diagnostics if d.code == code]
    assert len(found) == 1, report_of(body, scales).render()
    return found[0]


MLP = """
unit MLP(x: seq[D]) -> seq[D] {
    return Linear(silu(Linear(x, 4 * D)), D)
}
"""


def test_clean_design_has_no_diagnostics():
    r = report_of("""
        block(x: seq[D]) -> seq[D] {
            return x + MLP(RMSNorm(x))
        }
    """ + MLP)
    assert r.ok and r.diagnostics == []


def test_undefined_name_suggests_the_close_one():
    d = only("""
        block(x: seq[D]) -> seq[D] {
            hidden = Linear(x, D)
            return x + hiden
        }
    """, "undefined-name")
    assert (d.line, d.column, d.end_column) == (4, 16, 21)
    assert "hiden" in d.message and d.hint == "did you mean 'hidden'?"


def test_unknown_primitive_suggests_the_close_one():
    d = only("""
        block(x: seq[D]) -> seq[D] {
            return x + Linera(x, D)
        }
    """, "unknown-callee")
    assert d.hint == "did you mean 'Linear'?"


def test_every_error_is_reported_not_just_the_first():
    found = codes("""
        block(x: seq[D]) -> seq[D] {
            a = Linear(x, D, biass=true)
            b = RMSNorm(x, 1e-5, 3)
            c = nothing(x)
            return a + b + c + zzz
        }
    """)
    assert {c for c, _ in found} >= {"unknown-keyword", "arity", "unknown-callee", "undefined-name"}
    assert len({line for _, line in found}) >= 4


def test_missing_argument_shows_the_signature():
    d = only("""
        block(x: seq[D]) -> seq[D] {
            return x + Linear(x)
        }
    """, "arity")
    assert "missing argument 'out'" in d.message and d.hint.startswith("signature: Linear(")


def test_duplicate_keyword_argument():
    only("""
        block(x: seq[D]) -> seq[D] {
            return x + Linear(x, D, out=D)
        }
    """, "duplicate-argument")


@pytest.mark.parametrize("expr, fragment", [
    ("Linear(x, 2.5 * D)", "must be an int, but this is a float"),
    ("Linear(x, x)", "must be an int, but this is a tensor"),
    ("Linear(x, D, bias=1)", "must be a bool"),
    ("x + true", "needs tensors or numbers"),
    ("Linear(D, D)", "must be a tensor, but this is an int"),
])
def test_type_errors(expr, fragment):
    d = only(f"""
        block(x: seq[D]) -> seq[D] {{
            return x + {expr}
        }}
    """, "type-mismatch")
    assert fragment in d.message


def test_float_size_hint_names_the_rounding_functions():
    d = only("""
        block(x: seq[D], r: float = 2.5) -> seq[D] {
            return Linear(Linear(x, r * D), D)
        }
    """, "type-mismatch")
    assert "floor(" in d.hint and "multiple_of" in d.hint


def test_symbolic_shape_mismatch():
    d = only("""
        block(x: seq[D]) -> seq[D] {
            return x + Linear(x, 2 * D)
        }
    """, "shape-mismatch")
    assert "seq[D] + seq[2 * D]" in d.message


def test_symbolic_shapes_that_are_equal_pass():
    r = report_of("""
        block(x: seq[D], heads: int = 4 in 1..8) -> seq[D] {
            h = split_heads(x, heads)
            return x + merge_heads(h) + Linear(x, D / heads * heads)
        }
    """)
    assert r.ok, r.render()


def test_shape_mismatch_between_mixer_arguments():
    d = only("""
        block(x: seq[D]) -> seq[D] {
            q = split_heads(Linear(x, D), 4)
            k = split_heads(Linear(x, 2 * D), 4)
            return x + merge_heads(causal_attention(q, k, k))
        }
    """, "shape-mismatch")
    assert "argument 'k' of causal_attention()" in d.message


def test_wrong_rank_hint():
    found = report_of("""
        block(x: seq[D]) -> seq[D] {
            return x + causal_attention(x, x, x)
        }
    """).diagnostics
    assert [d.code for d in found] == ["shape-mismatch"] * 3  # one per argument
    assert "must be seq[H, K]" in found[0].message and "split_heads" in found[0].hint


@pytest.mark.parametrize("param, code", [
    ("heads: int = 100 in 1..64", "default-out-of-range"),
    ("heads: int = 3 in {1, 2, 4}", "default-out-of-range"),
    ("heads: int = 8 in 64..1", "bad-domain"),
    ("heads: int = 8 in 1.5..64.0", "bad-domain"),
    ("heads: int = 2.5", "type-mismatch"),
    ("act: choice = silu", "bad-domain"),
    ("flag: bool = true in 1..2", "bad-domain"),
])
def test_hyperparameter_declarations(param, code):
    only(f"""
        block(x: seq[D], {param}) -> seq[D] {{
            return x
        }}
    """.replace("return x", "return x + Linear(x, D)"), code)


def test_recursion_between_units():
    found = codes("""
        block(x: seq[D]) -> seq[D] {
            return A(x)
        }
        unit A(x: seq[D]) -> seq[D] {
            return B(x)
        }
        unit B(x: seq[D]) -> seq[D] {
            return A(x)
        }
    """)
    assert ("recursion", 9) in found


def test_unused_unit_and_variable_are_warnings():
    r = report_of("""
        block(x: seq[D]) -> seq[D] {
            spare = Linear(x, D)
            return x + Linear(x, D)
        }
    """ + MLP)
    assert r.ok
    assert sorted(d.code for d in r.warnings) == ["unused-unit", "unused-variable"]


def test_underscore_silences_unused():
    r = report_of("""
        block(x: seq[D], _unused: int = 3) -> seq[D] {
            _spare = Linear(x, D)
            return x
        }
    """)
    assert r.diagnostics == []


def test_missing_return():
    d = only("""
        block(x: seq[D]) -> seq[D] {
            y = x
        }
        unit U(x: seq[D]) -> seq[D] {
            y = Linear(x, D)
        }
    """.replace("block(x: seq[D]) -> seq[D] {\n            y = x\n        }",
                "block(x: seq[D]) -> seq[D] {\n            return U(x)\n        }"), "missing-return")
    assert "'U' has no return" in d.message


def test_return_of_the_wrong_shape():
    d = only("""
        block(x: seq[D]) -> seq[D] {
            return Linear(x, 2 * D)
        }
    """, "shape-mismatch")
    assert "declared seq[D]" in d.message


def test_return_count_and_unreachable_code():
    found = codes("""
        block(x: seq[D]) -> seq[D] {
            return x, x
            y = x
        }
    """)
    assert ("return-type", 3) in found and ("unreachable", 4) in found


def test_multiple_outputs_unpack():
    r = report_of("""
        block(x: seq[D]) -> seq[D] {
            a, b = Split(x)
            return a + b
        }
        unit Split(x: seq[D]) -> (left: seq[D], right: seq[D]) {
            return Linear(x, D), Linear(x, D)
        }
    """)
    assert r.ok, r.render()
    found = codes("""
        block(x: seq[D]) -> seq[D] {
            a = Split(x)
            return a
        }
        unit Split(x: seq[D]) -> (left: seq[D], right: seq[D]) {
            return Linear(x, D), Linear(x, D)
        }
    """)
    assert ("arity", 3) in found


def test_acausal_primitive_inside_the_block():
    d = only("""
        block(x: seq[D]) -> seq[D] {
            return x + Mixer(x)
        }
        unit Mixer(x: seq[D]) -> seq[D] {
            h = split_heads(x, 4)
            return merge_heads(full_attention(h, h, h))
        }
    """, "acausal-in-block")
    assert d.line == 7 and "causal_attention" in d.hint


def test_dims_that_do_not_divide_at_a_scale():
    d = only("""
        block(x: seq[D], heads: int = 12 in 1..64) -> seq[D] {
            return x + merge_heads(split_heads(x, heads))
        }
    """, "dim-not-integer")
    assert "D / heads" in d.message and "cpu-xs" in d.message and "heads=12" in d.message
    # 768 is divisible by 12: the 125M scale is fine, and not listed
    assert "125M" not in d.message


def test_dims_checked_only_at_requested_scales():
    body = """
        block(x: seq[D], heads: int = 12 in 1..64) -> seq[D] {
            return x + merge_heads(split_heads(x, heads))
        }
    """
    assert report_of(body, ["125M"]).ok
    assert not report_of(body, ["cpu-xs"]).ok


def test_non_positive_dim():
    only("""
        block(x: seq[D]) -> seq[D] {
            return x + Linear(Linear(x, D - 64), D)
        }
    """, "dim-not-positive", scales=["cpu-xs"])


def test_primitive_constraint_at_scale():
    d = only("""
        block(x: seq[D], kv: int = 3 in 1..8) -> seq[D] {
            q = split_heads(x, 4)
            k = split_heads(Linear(x, kv * D / 4), kv)
            return x + merge_heads(causal_attention(q, k, k))
        }
    """, "constraint", scales=["cpu-xs"])
    assert "4 query heads are not a multiple of 3 key/value heads" in d.message


def test_argument_outside_primitive_range():
    d = only("""
        block(x: seq[D]) -> seq[D] {
            return x + causal_conv(x, 99)
        }
    """, "out-of-range", scales=["cpu-xs"])
    assert "2..16" in d.message


def test_call_site_hyperparameters_reach_the_unit_instance():
    body = """
        block(x: seq[D]) -> seq[D] {
            return x + Heads(x, heads={n})
        }}
        unit Heads(x: seq[D], heads: int = 4 in 1..64) -> seq[D] {{
            return merge_heads(split_heads(x, heads))
        }}
    """.replace("{\n", "{{\n", 1)
    assert report_of(body.format(n=8), ["cpu-xs"]).ok
    d = only(body.format(n=6), "dim-not-integer", scales=["cpu-xs"])
    assert d.line == 6 and "heads=6" in d.message


def test_choice_call_checks_every_option():
    r = report_of("""
        block(x: seq[D], act: choice = silu in {silu, gelu, relu}) -> seq[D] {
            return x + act(x)
        }
    """)
    assert r.ok, r.render()
    d = only("""
        block(x: seq[D], mix: choice = silu in {silu, Linear}) -> seq[D] {
            return x + mix(x)
        }
    """, "arity")
    assert d.message.startswith("with mix = Linear:")


def test_choice_argument_must_be_an_option():
    d = only("""
        block(x: seq[D]) -> seq[D] {
            return x + M(x, act=tanh)
        }
        unit M(x: seq[D], act: choice = silu in {silu, gelu}) -> seq[D] {
            return act(x)
        }
    """, "bad-choice")
    assert "options: silu, gelu" in d.message


def test_block_signature_rules():
    only("""
        block(x: seq[H, E]) -> seq[H, E] {
            return x
        }
    """, "block-signature")
    found = codes("""
        unit A(x: seq[D]) -> seq[D] {
            return x
        }
    """)
    assert ("no-block", 1) in found


def test_duplicate_units_and_shadowed_primitives():
    found = {c for c, _ in codes("""
        block(x: seq[D]) -> seq[D] {
            return A(x) + Linear(x, D)
        }
        unit A(x: seq[D]) -> seq[D] { return x }
        unit A(x: seq[D]) -> seq[D] { return x }
        unit RMSNorm(x: seq[D]) -> seq[D] { return x }
    """)}
    assert {"duplicate-unit", "shadows-primitive"} <= found


def test_scaffold_settings_are_validated():
    text = HEADER + "scaffold(positions=learnt, final_norm=silu, tie_embedding=true)\n" + textwrap.dedent("""
        block(x: seq[D]) -> seq[D] {
            return x
        }
    """)
    r = g.check(g.parse(text, filename="t.gab"))
    messages = [d.message for d in r.diagnostics if d.code == "bad-scaffold"]
    assert len(messages) == 3
    assert any("did you mean" in (d.hint or "") for d in r.diagnostics if d.code == "bad-scaffold")


@pytest.mark.parametrize("setting, ok", [
    ("final_norm_eps=1e-05", True),
    ("final_norm=LayerNorm, final_norm_eps=0.5", False),  # outside LayerNorm's eps range
    ("final_norm_eps=true", False),
])
def test_final_norm_eps_is_checked_against_the_norm(setting, ok):
    text = HEADER + f"scaffold({setting})\nblock(x: seq[D]) -> seq[D] {{\n    return x\n}}\n"
    assert g.check(g.parse(text)).ok == ok


def test_reassigning_a_hyperparameter_is_an_error():
    only("""
        block(x: seq[D], heads: int = 4) -> seq[D] {
            heads = 8
            return merge_heads(split_heads(x, heads))
        }
    """, "assign-to-constant")


def test_rendered_diagnostic_points_at_the_source():
    r = report_of("""
        block(x: seq[D]) -> seq[D] {
            return x + Linear(x, 2 * D)
        }
    """)
    text = r.render()
    assert "t.gab:3:12: error[shape-mismatch]" in text
    assert "    3 |     return x + Linear(x, 2 * D)" in text
    assert "      |            " + "^" * len("x + Linear(x, 2 * D)") + "\n" in text


def test_design_without_spans_is_checked_through_its_canonical_text():
    design = g.parse(HEADER + "block(x: seq[D]) -> seq[D] {\n    return x + undefined_thing\n}\n")
    stripped = g.strip_spans(design)
    r = g.check(stripped)
    assert [(d.code, d.line) for d in r.diagnostics] == [("undefined-name", 4)]
    assert r.diagnostics[0].file == "<t>"


def test_check_is_deterministic():
    body = """
        block(x: seq[D]) -> seq[D] {
            a = Linear(x, D, biass=true)
            return a + b
        }
    """
    assert report_of(body).to_json() == report_of(body).to_json()


def test_choice_over_units_with_broken_signatures_reports_not_crashes():
    r = report_of("""
        block(x: seq[D], f: choice = B in {B, C}) -> seq[D] {
            return x + f(x)
        }
        unit B(x: seq[D]) -> seq[foo(D)] {
            return x
        }
        unit C(x: seq[D]) -> seq[foo(D)] {
            return x
        }
    """)
    assert [d.code for d in r.errors] == ["unknown-callee", "unknown-callee"]
