"""The GBNF grammar generated from grammar/gab.lark: it accepts every seed spec (read
back by an independent GBNF reader, so the generated *text* is what is tested),
rejects broken text, obeys llama.cpp's syntax, and fails loudly on what it cannot
translate."""

import re

import pytest
from lark import Lark

from genesys_dsl import ir
from genesys_dsl.agents.gbnf import GBNFError, gbnf, generate, lark_grammar
from genesys_dsl.agents.gbnf_read import GBNFRecognizer
from genesys_dsl.syntax.files import read_design
from genesys_dsl.syntax.unparse import unit as unit_text
from paths import seed_paths

RULE = re.compile(r"^([A-Za-z0-9-]+) ::= (.*)$")


@pytest.fixture(scope="module")
def designs():
    return GBNFRecognizer(gbnf("design"))


@pytest.fixture(scope="module")
def units():
    return GBNFRecognizer(gbnf("unit"))


@pytest.fixture(scope="module")
def blocks():
    return GBNFRecognizer(gbnf("block"))


def rules(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        match = RULE.match(line)
        assert match, f"not one rule per line: {line!r}"
        out[match.group(1)] = match.group(2)
    return out


@pytest.mark.parametrize("path", seed_paths(), ids=lambda p: p.name)
def test_every_seed_spec_is_accepted(designs, path):
    assert designs.accepts(path.read_text(encoding="utf-8"))


def test_every_unit_and_block_of_the_seeds_is_accepted_by_the_one_unit_grammars(units, blocks):
    for path in seed_paths():
        for u in read_design(path).units:
            recognizer = blocks if u.is_block else units
            assert recognizer.accepts(unit_text(u)), f"{path.name}: {u.name}"


def test_a_unit_reply_with_comments_odd_spacing_and_a_docstring_with_quotes(units):
    reply = ('  unit Gate(x:seq[D],k:int=4 in 2..8,)->seq[D]{"""a "quoted" word"""  # why\n'
             "  y=silu(Linear(x,D))*x\n\n  return y-1.5e-3*x}")
    assert units.accepts(reply)


BROKEN = {
    "python": "def forward(self, x):\n    return self.linear(x)\n",
    "prose": "Here is the unit you asked for.",
    "unbalanced": "unit U(x: seq[D]) -> seq[D] {\n    return Linear(x, D\n}",
    "no name": "unit (x: seq[D]) -> seq[D] { return x }",
    "no body": "unit U(x: seq[D]) -> seq[D]",
    "truncated": "unit U(x: seq[D], heads: int = 8 in 1..",
    "unterminated docstring": 'unit U(x: seq[D]) -> seq[D] { """never closed\n return x }',
    "docstring with three quotes inside": 'unit U(x: seq[D]) -> seq[D] { """a """ b""" return x }',
    "trailing prose": "unit U(x: seq[D]) -> seq[D] { return x } That's it!",
    "two operators": "unit U(x: seq[D]) -> seq[D] { return x + * x }",
    "a whole design": "design d\nblock(x: seq[D]) -> seq[D] { return x }",
}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_text_is_rejected_by_the_unit_grammar(units, name):
    assert not units.accepts(BROKEN[name])


def test_a_design_needs_its_header_and_a_definition(designs):
    assert designs.accepts("design d\nblock(x: seq[D]) -> seq[D] { return x }")
    assert not designs.accepts("block(x: seq[D]) -> seq[D] { return x }")
    assert not designs.accepts("design d")


def test_the_grammar_follows_llama_cpp_syntax():
    for start in ("design", "definition", "block", "unit"):
        text = gbnf(start)
        found = rules(text)
        assert "root" in found
        for name, body in found.items():
            # llama.cpp refuses left recursion: no rule may begin with itself
            assert not re.match(rf"\(?{re.escape(name)}\b", body), name
            stripped = re.sub(r'"(\\.|[^"\\])*"|\[(\\.|[^\]\\])*\]', " ", body)
            for ref in re.findall(r"[A-Za-z0-9-]+", stripped):
                assert ref in found, f"{name} uses undefined rule {ref}"


def test_the_grammar_is_generated_from_the_lark_rules_and_terminals():
    text = gbnf("design")
    lark = lark_grammar()
    for terminal in lark.terminals:
        if type(terminal.pattern).__name__ == "PatternStr":
            escaped = terminal.pattern.value.replace("\\", "\\\\").replace('"', '\\"')
            assert f'"{escaped}"' in text, terminal.name
    reached = {r.origin.name for r in lark.rules} - {"signature"}
    defined = rules(text)
    assert {n.lstrip("_").replace("_", "-") for n in reached} <= set(defined)


def test_an_unknown_start_rule_lists_the_available_ones():
    with pytest.raises(GBNFError, match="available: design, definition, block, unit"):
        gbnf("statement")


def test_a_lookaround_it_cannot_translate_fails_naming_the_terminal():
    lark = Lark("start: A\nA: /(?<=x)y/", parser="lalr")
    with pytest.raises(GBNFError, match="terminal A: a lookaround has no GBNF translation"):
        generate(lark, "start")


def test_a_tempered_dot_becomes_an_automaton_that_stops_at_the_first_delimiter():
    lark = Lark(r"""start: (WORD | BLOCK_COMMENT)+
WORD: /[a-z]+/
BLOCK_COMMENT: /\/\*(?:(?!\*\/).)*\*\//s
%ignore " "
""", parser="lalr")
    recognizer = GBNFRecognizer(generate(lark, "start"))
    assert recognizer.accepts("ab /* x * y / z */ cd")
    assert recognizer.accepts("/**/")
    assert recognizer.accepts("/* two\nlines */")
    assert not recognizer.accepts("/* a */ b */")
    assert not recognizer.accepts("/*/")


def test_the_block_rule_is_the_root_of_the_block_grammar(blocks):
    block = read_design(seed_paths()[0]).block
    assert blocks.accepts(unit_text(block))
    assert not blocks.accepts(unit_text(ir.Unit(name="U", params=block.params, outputs=block.outputs,
                                                body=block.body)))


def test_the_decoding_grammar_leaves_comments_out_so_a_model_cannot_ramble_in_them():
    decoding = GBNFRecognizer(gbnf("unit", comments=False))
    unit = "unit Gate(x: seq[D]) -> seq[D] {\n    return x * sigmoid(Linear(x, D))\n}\n"
    assert decoding.accepts(unit)
    assert not decoding.accepts("# Rewrite the unit\n" + unit)
    assert not decoding.accepts(unit.replace("{\n", "{  # keep it simple\n"))
    assert "COMMENT" not in gbnf("unit", comments=False) and "#" in gbnf("unit").split("\n", 1)[1]
