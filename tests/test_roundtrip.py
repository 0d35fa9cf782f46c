"""Text <-> tree <-> JSON round trips, and formatting that keeps every comment.

Users rely on: `genesys fmt` never changing what a design means nor losing a comment,
formatting twice giving the same text, and the JSON form loading back as the same
design.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from genesys_dsl import ir, parse, parse_file, same_design, unparse
from strategies import designs

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted(ROOT.glob("specs/**/*.gab"))


def _strict(a: Any, b: Any) -> bool:
    """Equality that also tells true from 1 and 1.0 from 1 (`==` does not)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_strict(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_strict(x, y) for x, y in zip(a, b))
    return a == b


def assert_same(a: ir.Design, b: ir.Design, context: str = "") -> None:
    assert same_design(a, b), f"trees differ{context}\n--- first\n{ir.dumps(a)}\n--- second\n{ir.dumps(b)}"
    assert _strict(ir.to_data(a, spans=False), ir.to_data(b, spans=False)), f"value types differ{context}"


def assert_round_trips(design: ir.Design) -> str:
    """parse(unparse(d)) == d, unparse is idempotent, and the JSON form loads back."""
    text = unparse(design)
    again = parse(text)
    assert_same(design, again, f" after parse(unparse(d)); text:\n{text}")
    assert unparse(again) == text, "unparse is not idempotent"
    for d in (design, again):
        loaded = ir.Design.model_validate(ir.to_data(d))
        assert_same(d, loaded, " after the JSON round trip")
        assert ir.to_data(loaded) == ir.to_data(d)  # spans survive too
    return text


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(designs())
def test_generated_designs_round_trip(design: ir.Design) -> None:
    assert_round_trips(design)


@pytest.mark.parametrize(
    "path",
    SPECS or [pytest.param(None, marks=pytest.mark.skip(reason="no .gab files under specs/ yet"))],
    ids=lambda p: str(p.relative_to(ROOT)) if isinstance(p, Path) else "none",
)
def test_spec_files_round_trip(path: Path) -> None:
    design = parse_file(path)
    text = assert_round_trips(design)
    assert unparse(parse(text, filename=str(path))) == text  # formatting a formatted spec changes nothing


# ------------------------------------------------------------------ comments

MESSY = """\
# header comment 1
# header comment 2
design   Commented "with \\"comments\\""   scaffold( positions = rotary ,)
# leading comment of the block
block(x: seq[D], heads: int = 4) -> seq[D] {
  \"\"\"Doc, with a # that is not a comment.\"\"\"
      # leading comment of h
  h = Attention(x,
      heads=heads)   # trailing on h
  return h # trailing on return
        # end-of-block comment
}
unit Attention(
    # leading on x
    x: seq[D],  # trailing on x
    heads: int = 8 in 1..64,   # trailing on heads
    # leading on scale, 1 of 2
    # leading on scale, 2 of 2
    scale: float = 1e-6
) -> seq[D] {
    y = causal_attention(x, x, x)
    return y
    # end of unit
}   # end of file 1

# end of file 2   \t
"""

FORMATTED = """\
# header comment 1
# header comment 2
design Commented "with \\"comments\\""
scaffold(positions=rotary)

# leading comment of the block
block(x: seq[D], heads: int = 4) -> seq[D] {
    \"\"\"Doc, with a # that is not a comment.\"\"\"
    # leading comment of h
    h = Attention(x, heads=heads)  # trailing on h
    return h  # trailing on return
    # end-of-block comment
}

unit Attention(
    # leading on x
    x: seq[D],  # trailing on x
    heads: int = 8 in 1..64,  # trailing on heads
    # leading on scale, 1 of 2
    # leading on scale, 2 of 2
    scale: float = 1e-06,
) -> seq[D] {
    y = causal_attention(x, x, x)
    return y
    # end of unit
}

# end of file 1
# end of file 2
"""


def test_formatting_keeps_every_comment_in_place() -> None:
    design = parse(MESSY)
    assert design.comments == ["# header comment 1", "# header comment 2"]
    block, attention = design.units
    assert block.comments == ["# leading comment of the block"]
    assert block.body[0].comments == ["# leading comment of h"]
    assert block.body[0].trailing_comment == "# trailing on h"
    assert block.body[1].trailing_comment == "# trailing on return"
    assert block.end_comments == ["# end-of-block comment"]
    x, heads, scale = attention.params
    assert (x.comments, x.trailing_comment) == (["# leading on x"], "# trailing on x")
    assert (heads.comments, heads.trailing_comment) == ([], "# trailing on heads")
    assert scale.comments == ["# leading on scale, 1 of 2", "# leading on scale, 2 of 2"]
    assert attention.end_comments == ["# end of unit"]
    assert design.end_comments == ["# end of file 1", "# end of file 2"]  # trailing whitespace dropped

    assert unparse(design) == FORMATTED
    assert_same(design, parse(FORMATTED))
    assert unparse(parse(FORMATTED)) == FORMATTED


def test_a_comment_in_a_parameter_list_forces_one_parameter_per_line() -> None:
    text = "design D\n\nblock(x: seq[D], n: int = 2) -> seq[D] {\n    return x\n}\n"
    design = parse(text)
    assert unparse(design) == text  # short and without comments: one line
    design.units[0].params[1].trailing_comment = "# how many"
    formatted = unparse(design)
    assert "    n: int = 2,  # how many\n) -> seq[D] {" in formatted
    assert_same(design, parse(formatted))


def test_comments_in_odd_places_are_kept() -> None:
    # Comments inside an expression or a one-line signature have no slot of their own:
    # they move to the nearest statement or parameter, but none is lost.
    text = """\
design D
block(x: seq[D]) -> seq[D] {  # on the signature line
    y = f(x,  # inside a call
          x)
    return y
}
"""
    design = parse(text)
    formatted = unparse(design)
    for comment in ("# on the signature line", "# inside a call"):
        assert formatted.count(comment) == 1
    assert_same(design, parse(formatted))
    assert unparse(parse(formatted)) == formatted
