"""Every input either parses or raises DSLError with a located diagnostic.

Never another exception, never a hang, never a RecursionError: specs come from LLMs
and from mutation operators, so the front end must survive anything. Inputs are
strings generated from the grammar itself, a real spec mutated token by token and
byte by byte, and pathological extremes (1 MB lines, deep nesting, NUL, bad UTF-8).
Where a parse succeeds, formatting it must give back the same tree.
"""

from __future__ import annotations

import re
import signal
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark
from lark import Lark

from genesys_dsl import DSLError, ir, parse, same_design, unparse
from genesys_dsl.syntax.grammar import RESERVED, grammar_text
from genesys_dsl.syntax.parse import MAX_DEPTH, parse_file, read_text
from strategies import comments, docstrings, names

LIMIT_S = 5.0  # for inputs of a few KB: generous, it only tells a hang from slowness
BIG_LIMIT_S = 10.0  # for 1 MB inputs and 100,000-term expressions

SPEC = '''\
# A pre-norm transformer block: rotary causal attention, then a gated MLP.
design transformer_mut "Pre-norm Transformer \\"mutation\\" seed:\\trotary attention + gated MLP"
scaffold(positions=none)

block(x: seq[D], ratio: float = 2.667 in 1.0..8.0) -> seq[D] {
    """Attention, then the MLP, each in a residual branch.

    Both branches see RMSNorm-ed inputs."""
    h = x + Attention(RMSNorm(x), heads=8)  # residual around attention
    y, gate = MLP(RMSNorm(h), hidden=multiple_of(ratio * D, 8))
    return h + y + Linear(silu(gate), D) / 2
}

# Causal multi-head self-attention, rotary positions on queries and keys.
unit Attention(
    x: seq[D],
    heads: int = 8 in 1..64,  # number of heads
    # queries and keys are normalised per head
    eps: float = 1e-06 in {1e-06, 1e-05},
    bias: float = -0.5 in -1.0..1.0,
) -> seq[D] {
    q = rotary(HeadRMSNorm(split_heads(Linear(x, D), heads), eps=eps))
    k = rotary(HeadRMSNorm(split_heads(Linear(x, D), heads), eps=eps))
    v = split_heads(Linear(x, D, bias=false), heads)
    a = causal_attention(q, k, v)
    return Linear(merge_heads(a), out=D) * (1 - -bias / 2)
}

unit MLP(x: seq[D], hidden: int = 2048, act: choice = silu in {silu, gelu}) -> (y: seq[D], gate: seq[hidden]) {
    gate = act(Linear(x, out=hidden))
    up = Linear(x, out=hidden)
    return Linear(gate * up, out=D), gate
    # end of MLP
}
# end of file
'''

# ------------------------------------------------------------------ the contract


class _Hang(BaseException):
    """Raised by the alarm; a BaseException because lark wraps `Exception`s raised in callbacks."""


@contextmanager
def _alarm(seconds: float):
    """Interrupt a parse that runs far past its bound (POSIX, main thread only)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise _Hang(f"still running after {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def outcome(run: Callable[[], ir.Design], text: str, limit: float = LIMIT_S) -> ir.Design | DSLError:
    """Run one parse under a time bound: a Design, or a DSLError that passed `check_error`.

    Any other exception propagates and fails the test."""
    start = time.monotonic()
    try:
        with _alarm(3 * limit):
            try:
                result: ir.Design | DSLError = run()
            except DSLError as err:
                result = err
    except _Hang as hang:
        pytest.fail(f"parse hung ({hang}) on input of {len(text)} characters starting {text[:200]!r}")
    elapsed = time.monotonic() - start
    assert elapsed < limit, f"parse took {elapsed:.1f} s (bound {limit} s) on {len(text)} characters"
    if isinstance(result, DSLError):
        check_error(result, text)
    else:
        assert isinstance(result, ir.Design)
    return result


def parse_or_error(text: str, limit: float = LIMIT_S) -> ir.Design | DSLError:
    return outcome(lambda: parse(text, "spec.gab"), text, limit)


_CARET_ROW = re.compile(r"^ *\| *\^+$")


def check_error(err: DSLError, text: str | None) -> None:
    """At least one diagnostic, all located; render() works and points at the place."""
    assert err.diagnostics
    for d in err.diagnostics:
        assert d.severity == "error" and d.code and d.message
        assert d.line is not None and d.column is not None, f"unlocated diagnostic {d}"
        assert d.line >= 1 and d.column >= 1
    assert str(err)
    assert err.render(color=True)
    rendered = err.render()
    rows = rendered.split("\n")
    d = err.diagnostics[0]
    assert f":{d.line}:{d.column}: error[{d.code}]: " in rows[0]
    lines = text.split("\n") if text else []  # lines as the parser numbers them
    if not 1 <= d.line <= len(lines):
        return
    carets = [i for i, row in enumerate(rows) if _CARET_ROW.match(row)]
    assert carets, f"no caret line in:\n{rendered}"
    gutter = f"{d.line:>5} | "
    source_row, caret_row = rows[carets[0] - 1], rows[carets[0]]
    assert source_row.startswith(gutter), f"the caret is not under line {d.line}:\n{rendered}"
    line = lines[d.line - 1].rstrip("\r")
    if len(line) <= 100:
        # a short line is shown whole, one column per character (unprintable ones may be
        # replaced), and the caret sits under the column the diagnostic names
        shown = source_row[len(gutter):]
        assert len(shown) == len(line), f"line {d.line} is not the one shown:\n{rendered}"
        assert all(a == b for a, b in zip(shown, line) if b.isprintable()), rendered
        assert caret_row.index("^") == len(gutter) + d.column - 1, rendered


def check_round_trip(design: ir.Design) -> None:
    """Whatever parses formats to text that parses back to the same tree."""
    text = unparse(design)
    again = parse(text)
    assert same_design(design, again), f"formatting changed the tree; formatted text:\n{text}"
    assert unparse(again) == text


def test_the_seed_spec_parses() -> None:
    design = parse_or_error(SPEC)
    assert isinstance(design, ir.Design)
    assert [u.name for u in design.units] == ["block", "Attention", "MLP"]
    check_round_trip(design)


# ------------------------------------------------------------------ (a) strings from the grammar


def _spaced(words: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A token, mostly with whitespace around it (so neighbours seldom fuse into one word)."""
    space = st.sampled_from([" "] * 6 + ["\n", "\t", ""])
    return st.tuples(space, words, space).map("".join)


def _string_literal(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def _mostly(usual: st.SearchStrategy[str], rare: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """`rare` about one time in ten."""
    return st.sampled_from([False] * 9 + [True]).flatmap(lambda pick_rare: rare if pick_rare else usual)


_KEYWORDS = ["design", "scaffold", "block", "unit", "in", "seq", "int", "float", "bool", "choice", "return",
             "true", "false"]
EXPLICIT = {
    **{word.upper(): _spaced(st.just(word)) for word in _KEYWORDS},
    "NAME": _spaced(_mostly(names, st.sampled_from(sorted(RESERVED) + ["def", "for", "self", "import"]))),
    "INTEGER": _spaced(_mostly(st.integers(0, 10**6).map(str), st.sampled_from(["007", "1" * 5000, "9" * 30]))),
    "DECIMAL": _spaced(
        _mostly(
            st.floats(min_value=0, allow_nan=False, allow_infinity=False).map(repr),
            st.sampled_from(["1e-6", "2.5E+3", "1e400", "1.5e-400", "00.50", "1" * 400 + ".0"]),
        )
    ),
    "STRING": _spaced(st.text(max_size=12).map(_string_literal) | st.sampled_from(['""', '"\\t\\n"'])),
    "DOCSTRING": _spaced(docstrings.map(lambda s: f'"""{s}"""')),
    # Mostly a whole line; now and then without its newline, so it swallows what follows.
    "COMMENT": st.tuples(comments, _mostly(st.just("\n"), st.just(""))).map("".join),
}


def _copies(rule: str, body: str, n: int) -> str:
    helpers = [f"_gen_{rule}_{i}" for i in range(n)]
    return f"%extend {rule}: {' | '.join(helpers)}\n" + "".join(f"{h}: {body}\n" for h in helpers)


# The expression rules branch so much that a uniform choice among their alternatives
# makes strings that grow without bound (hypothesis throws most of them away, slowly).
# For generation only, the non-recursive alternatives get extra copies: the language
# is the same, the strings stay small. (Earley, because the copies are ambiguous.)
_GENERATION_WEIGHTS = (
    _copies("sum", "product", 4)
    + _copies("product", "unary", 4)
    + _copies("unary", "atom", 3)
    + "%extend atom: " + " | ".join(f"_gen_leaf_{i}" for i in range(8)) + "\n"
    + "".join(f"_gen_leaf_{i}: {t}\n" for i, t in enumerate(["NAME"] * 4 + ["INTEGER"] * 2 + ["DECIMAL", "TRUE"]))
)
GRAMMAR = Lark(grammar_text() + "\n" + _GENERATION_WEIGHTS, start="design", parser="earley")


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(from_lark(GRAMMAR, start="design", explicit=EXPLICIT))
def test_strings_from_the_grammar(text: str) -> None:
    result = parse_or_error(text)
    if isinstance(result, ir.Design):
        check_round_trip(result)


# ------------------------------------------------------------------ (b) a real spec, mutated

_TOKEN = re.compile(r'"""[\s\S]*?"""|"(?:[^"\\\n]|\\.)*"|#[^\n]*|\w+|\.\.|->|\s+|.')
_SPECIAL = ["\x00", "\udcff", "\ud800", "\r", "\r\n", "\x0c", "\x0b", "\u2028", "\ufeff", "\t", "\\", '"', '"""',
            "'", "#", "{", "}", "(", ")", "[", "]", ",", ":", "=", "-", "*", "..", "->", ";", "$", "é", "💡",
            "def", "return", "unit", "block", "seq[", "in", "1e999", "9" * 5000]
_inserts = st.one_of(st.sampled_from(_SPECIAL), st.characters(), st.text(max_size=4))
_at = st.integers(0, 10**6)  # a position, taken modulo the length
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("delete token"), _at),
        st.tuples(st.just("duplicate token"), _at),
        st.tuples(st.just("swap tokens"), _at, _at),
        st.tuples(st.just("insert"), _at, _inserts),
        st.tuples(st.just("delete chars"), _at, st.integers(1, 30)),
        st.tuples(st.just("duplicate chars"), _at, st.integers(1, 30)),
    ),
    min_size=1,
    max_size=4,
)


def mutate(text: str, ops: list[tuple]) -> str:
    for op, *args in ops:
        tokens = _TOKEN.findall(text) or [""]
        i = args[0] % len(tokens)
        if op == "delete token":
            del tokens[i]
        elif op == "duplicate token":
            tokens.insert(i, tokens[i])
        elif op == "swap tokens":
            j = args[1] % len(tokens)
            tokens[i], tokens[j] = tokens[j], tokens[i]
        else:
            k = args[0] % (len(text) + 1)
            if op == "insert":
                text = text[:k] + args[1] + text[k:]
            elif op == "delete chars":
                text = text[:k] + text[k + args[1] :]
            else:
                text = text[:k] + text[k : k + args[1]] + text[k:]
            continue
        text = "".join(tokens)
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ops)
def test_mutated_spec(ops: list[tuple]) -> None:
    text = mutate(SPEC, ops)
    result = parse_or_error(text)
    if isinstance(result, ir.Design):
        check_round_trip(result)


_byte_ops = st.lists(
    st.one_of(
        st.tuples(st.just("delete"), _at, st.integers(1, 8)),
        st.tuples(st.just("insert"), _at, st.binary(min_size=1, max_size=4)),
        st.tuples(st.just("flip"), _at, st.integers(1, 255)),
    ),
    min_size=1,
    max_size=3,
)


def mutate_bytes(data: bytes, ops: list[tuple]) -> bytes:
    for op, at, arg in ops:
        k = at % (len(data) + 1)
        if op == "delete":
            data = data[:k] + data[k + arg :]
        elif op == "insert":
            data = data[:k] + arg + data[k:]
        elif k < len(data):
            data = data[:k] + bytes([data[k] ^ arg]) + data[k + 1 :]
    return data


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mutants") / "mutant.gab"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_byte_ops)
def test_mutated_bytes(ops: list[tuple], spec_file: Path) -> None:
    data = mutate_bytes(SPEC.encode("utf-8"), ops)
    # Undecodable bytes kept as lone surrogates: the parser must still cope.
    text = data.decode("utf-8", errors="surrogateescape")
    parse_or_error(text)
    # From a file: bad UTF-8 is a located 'encoding' error, good UTF-8 parses as usual.
    spec_file.write_bytes(data)
    try:
        expected = data.decode("utf-8")
    except UnicodeDecodeError as bad:
        before = data[: bad.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8")) + 1
        with pytest.raises(DSLError) as caught:
            read_text(spec_file)
        check_error(caught.value, None)
        (d,) = caught.value.diagnostics
        assert (d.code, d.file, d.line, d.column) == ("encoding", str(spec_file), line, column)
        assert "not valid UTF-8" in d.message
    else:
        assert read_text(spec_file) == expected
        result = outcome(lambda: parse_file(spec_file), expected)
        if isinstance(result, DSLError):
            assert all(d.file == str(spec_file) for d in result.diagnostics)


def test_bad_utf8_is_located_in_characters() -> None:
    spec_file_data = "design D # é\n  ü ".encode("utf-8") + b"\xff"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bad.gab"
        path.write_bytes(spec_file_data)
        with pytest.raises(DSLError) as caught:
            parse_file(path)
    (d,) = caught.value.diagnostics
    assert (d.code, d.line, d.column) == ("encoding", 2, 5)
    assert "0xff" in d.message


# ------------------------------------------------------------------ extremes

MB = 1_000_000
HEAD = "design D\nblock(x: seq[D]) -> seq[D] {\n    y = "
TAIL = "\n    return y\n}\n"


def _expr(e: str) -> str:
    return HEAD + e + TAIL


def _dim(d: str) -> str:
    return "design D\nblock(x: seq[" + d + "]) -> seq[D] {\n    return x\n}\n"


# (name, text, the diagnostic code expected, or None when it parses)
EXTREMES = [
    ("1 MB comment", _expr("x  # " + "c" * MB), None),
    ("1 MB name", _expr("x" * MB), None),
    ("1 MB description", 'design D "' + "d" * MB + '"' + _expr("x")[len("design D"):], None),
    ("1 MB docstring", _expr("x").replace("{\n", '{\n"""' + "d" * MB + '"""\n', 1), None),
    ("1 MB integer", _expr("1" * MB), "bad-number"),
    ("1 MB integer default", "design D\nblock(n: int = " + "1" * MB + ") -> int {\n    return n\n}\n", "bad-number"),
    ("1 MB decimal", _expr("1" * MB + ".5"), "bad-number"),
    ("1 MB unterminated description", 'design D "' + "d" * MB, "syntax"),
    ("1 MB unterminated docstring", _expr("x").replace("{\n", '{\n"""' + "d" * MB, 1), "syntax"),
    ("1 MB of quotes", '"' * MB, "syntax"),
    ("1 MB of NUL", "\x00" * MB, "syntax"),
    ("1 MB of whitespace, then junk", " " * MB + "$", "syntax"),
    ("1 MB of open parentheses", _expr("(" * MB), "syntax"),
    ("NUL in code", _expr("x\x00"), "syntax"),
    ("NUL in a comment", _expr("x  # \x00"), None),
    ("NUL in the description", 'design D "\x00"' + _expr("x")[len("design D"):], None),
    ("lone surrogate in code", _expr("x\udcff"), "syntax"),
    ("empty input", "", "syntax"),
    ("10,000 nested parentheses", _expr("(" * 10_000 + "x" + ")" * 10_000), None),
    ("10,000 nested sums", _expr("(x + " * 10_000 + "x" + ")" * 10_000), "too-deep"),
    ("10,000 nested calls", _expr("f(" * 10_000 + "x" + ")" * 10_000), "too-deep"),
    ("10,000 nested keyword calls", _expr("f(a=" * 10_000 + "x" + ")" * 10_000), "too-deep"),
    ("10,000 unary minus", _expr("-" * 10_000 + "x"), "too-deep"),
    ("10,000 parenthesised unary minus", _expr("-(" * 10_000 + "x" + ")" * 10_000), "too-deep"),
    ("10,000 unclosed parentheses", _expr("(" * 10_000), "syntax"),
    ("100,000-term sum", _expr("+".join(["x"] * 100_000)), "too-deep"),
    ("10,000 nested seq[", "design D\nblock(x: " + "seq[" * 10_000 + "D" + "]" * 10_000 + ") -> seq[D] {}", "syntax"),
    ("seq dim nested 10,000 deep", _dim("-(" * 10_000 + "D" + ")" * 10_000), "too-deep"),
    ("seq dim with 10,000 nested calls", _dim("f(" * 10_000 + "D" + ")" * 10_000), "too-deep"),
    ("seq with 10,000 dims", _dim(", ".join(["D"] * 10_000)), None),
    ("10,000 nested braces", _expr("x").replace("{", "{" * 10_000, 1), "syntax"),
    ("10,000 nested option sets", "design D\nblock(n: int in " + "{" * 10_000 + "1" + "}" * 10_000 + ") -> int {}",
     "syntax"),
]


@pytest.mark.parametrize("text, code", [pytest.param(t, c, id=n) for n, t, c in EXTREMES])
def test_extreme_input(text: str, code: str | None) -> None:
    result = parse_or_error(text, limit=BIG_LIMIT_S)
    if code is None:
        assert isinstance(result, ir.Design), f"expected a design, got {result!r}"
    else:
        assert isinstance(result, DSLError), "expected a DSLError"
        assert result.diagnostics[0].code == code, result.render()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda n: _expr("-" * (n - 1) + "x"), id="unary minus"),
        pytest.param(lambda n: _expr("(x + " * (n - 1) + "x" + ")" * (n - 1)), id="sums"),
        pytest.param(lambda n: _expr("f(" * (n - 1) + "x" + ")" * (n - 1)), id="calls"),
        pytest.param(lambda n: _dim("-" * (n - 2) + "D"), id="seq dim"),
    ],
)
def test_nesting_up_to_the_limit_is_fine_and_one_more_level_is_too_deep(make) -> None:
    design = parse_or_error(make(MAX_DEPTH))
    assert isinstance(design, ir.Design)
    check_round_trip(design)
    loaded = ir.Design.model_validate(ir.to_data(design))  # deep trees survive JSON too
    assert same_design(design, loaded)
    error = parse_or_error(make(MAX_DEPTH + 1))
    assert isinstance(error, DSLError) and error.diagnostics[0].code == "too-deep"


def test_render_shows_the_line_the_parser_counted() -> None:
    # \f, \r, U+2028... are line breaks to str.splitlines() but not to the parser.
    for brk in ("\x0c", "\r", "\u2028", "\x85"):
        error = parse_or_error(f'design D "a{brk}b" # c{brk}d\nblock(x: seq[D]) -> seq[D] {{\n    y = x $\n}}\n')
        assert isinstance(error, DSLError)
        assert (error.diagnostics[0].line, error.diagnostics[0].column) == (3, 11)
        assert "    3 |     y = x $\n" in error.render()
