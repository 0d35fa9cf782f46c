"""Text -> IR.

Lark builds a parse tree (LALR, no recursion, so deep nesting cannot overflow the
stack); `_Builder` turns it into IR nodes bottom-up without recursion either, and
caps expression depth so later tree walks stay within Python's recursion limit.
Every failure, whatever the input, is a `DSLError` with a located diagnostic.
"""

from __future__ import annotations

import bisect
import os
from typing import Any

from lark import Token, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.visitors import Transformer_NonRecursive

from .. import ir
from .diagnostics import Diagnostic, DSLError
from .grammar import RESERVED, collecting_comments, lark_parser

MAX_DEPTH = 200  # nesting of expressions and types; far beyond any real design

_Node = ir.Node


class _Abort(Exception):
    """Raised inside the builder; carries a diagnostic out through lark's VisitError."""

    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic


def _span(meta_or_token: Any) -> ir.Span:
    m = meta_or_token
    return ir.Span(line=m.line, column=m.column, end_line=m.end_line, end_column=m.end_column)


def _tok_span(tok: Token) -> ir.Span:
    return _span(tok)


def _decode_string(token: Token) -> str:
    """Decode a "..." literal. Only \\\\ \\" \\n \\t exist; nothing is evaluated."""
    body, out, i = token.value[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            out.append({"\\": "\\", '"': '"', "n": "\n", "t": "\t"}[body[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@v_args(meta=True)
class _Builder(Transformer_NonRecursive):
    """Parse tree -> IR nodes, bottom-up; `depth` tracks expression nesting."""

    def __init__(self) -> None:
        super().__init__()
        self.depth: dict[int, int] = {}
        self.body_ends: dict[int, tuple[int, int]] = {}  # id(unit) -> position of its closing brace

    # -- helpers
    def _nest(self, node: _Node, children: list, meta) -> _Node:
        d = 1 + max((self.depth.get(id(c), 0) for c in children), default=0)
        if d > MAX_DEPTH:
            raise _Abort(
                Diagnostic.at(
                    _span(meta),
                    "too-deep",
                    f"expression nested more than {MAX_DEPTH} levels deep",
                    hint="split it into several assignments",
                )
            )
        self.depth[id(node)] = d
        return node

    def _ident(self, tok: Token, what: str) -> str:
        if tok.value in RESERVED:
            raise _Abort(
                Diagnostic.at(
                    _tok_span(tok),
                    "reserved-word",
                    f"'{tok.value}' is a reserved word and cannot name {what}",
                    hint=f"rename it, e.g. '{tok.value}_'",
                )
            )
        return tok.value

    # -- expressions
    def int_expr(self, meta, ch):
        return self._nest(ir.IntLit.model_construct(span=_span(meta), value=_int(ch[0])), [], meta)

    def float_expr(self, meta, ch):
        return self._nest(ir.FloatLit.model_construct(span=_span(meta), value=_float(ch[0])), [], meta)

    def true_expr(self, meta, ch):
        return self._nest(ir.BoolLit.model_construct(span=_span(meta), value=True), [], meta)

    def false_expr(self, meta, ch):
        return self._nest(ir.BoolLit.model_construct(span=_span(meta), value=False), [], meta)

    def name_expr(self, meta, ch):
        return self._nest(ir.Name.model_construct(span=_span(meta), id=ch[0].value), [], meta)

    def _binop(op):  # noqa: N805 - a factory for the four operator callbacks
        def build(self, meta, ch):
            node = ir.BinOp.model_construct(span=_span(meta), op=op, left=ch[0], right=ch[1])
            return self._nest(node, ch, meta)

        return build

    add, sub, mul, div = _binop("+"), _binop("-"), _binop("*"), _binop("/")

    def neg(self, meta, ch):
        return self._nest(ir.Neg.model_construct(span=_span(meta), operand=ch[0]), ch, meta)

    def keyword(self, meta, ch):
        node = ir.Keyword.model_construct(span=_span(meta), name=self._ident(ch[0], "an argument"), value=ch[1])
        return self._nest(node, [ch[1]], meta)

    def call(self, meta, ch):
        args = [c for c in ch[1:] if not isinstance(c, ir.Keyword)]
        keywords = [c for c in ch[1:] if isinstance(c, ir.Keyword)]
        seen_keyword = False
        for c in ch[1:]:
            if isinstance(c, ir.Keyword):
                seen_keyword = True
            elif seen_keyword:
                raise _Abort(
                    Diagnostic.at(
                        c.span,
                        "positional-after-keyword",
                        "positional argument follows a keyword argument",
                        hint="put positional arguments first",
                    )
                )
        node = ir.Call.model_construct(span=_span(meta), func=ch[0].value, args=args, keywords=keywords)
        return self._nest(node, ch[1:], meta)

    # -- types
    def rest_dim(self, meta, ch):
        return ir.RestDim.model_construct(span=_span(meta), name=ch[0].value)

    def seq_type(self, meta, ch):
        return self._nest(ir.SeqType.model_construct(span=_span(meta), dims=list(ch)), ch, meta)

    def _scalar(kind):  # noqa: N805
        def build(self, meta, ch):
            return ir.ScalarType.model_construct(span=_span(meta), kind=kind)

        return build

    int_type, float_type, bool_type, choice_type = (
        _scalar("int"), _scalar("float"), _scalar("bool"), _scalar("choice")
    )

    # -- literals (defaults, domains, settings): (value, span) pairs
    def int_lit(self, meta, ch):
        return _int(ch[0]), _span(meta)

    def float_lit(self, meta, ch):
        return _float(ch[0]), _span(meta)

    def neg_int_lit(self, meta, ch):
        return -_int(ch[0]), _span(meta)

    def neg_float_lit(self, meta, ch):
        return -_float(ch[0]), _span(meta)

    def true_lit(self, meta, ch):
        return True, _span(meta)

    def false_lit(self, meta, ch):
        return False, _span(meta)

    def name_lit(self, meta, ch):
        return ch[0].value, _span(meta)

    def default(self, meta, ch):
        return ("default", ch[0])

    def range(self, meta, ch):
        return ir.Range.model_construct(span=_span(meta), low=ch[0][0], high=ch[1][0])

    def options(self, meta, ch):
        return ir.Options.model_construct(span=_span(meta), values=[v for v, _ in ch])

    # -- signatures
    def param(self, meta, ch):
        name = self._ident(ch[0], "a parameter")
        fields: dict[str, Any] = dict(span=_span(meta), name=name, type=ch[1], default=None,
                                      default_span=None, domain=None, comments=[], trailing_comment=None)
        for extra in ch[2:]:
            if isinstance(extra, tuple):
                fields["default"], fields["default_span"] = extra[1]
            else:
                fields["domain"] = extra
        return ir.Param.model_construct(**fields)

    def param_list(self, meta, ch):
        seen: dict[str, ir.Param] = {}
        for p in ch:
            if p.name in seen:
                raise _Abort(
                    Diagnostic.at(p.span, "duplicate-param", f"parameter '{p.name}' is declared twice",
                                  hint="rename one of them")
                )
            seen[p.name] = p
        return list(ch)

    def output(self, meta, ch):
        return ir.Output.model_construct(span=_span(meta), name=self._ident(ch[0], "an output"), type=ch[1])

    def single_output(self, meta, ch):
        return [ir.Output.model_construct(span=_span(meta), name=None, type=ch[0])]

    def named_outputs(self, meta, ch):
        return list(ch)

    def signature(self, meta, ch):
        return ir.Signature.model_construct(span=_span(meta), name=ch[0].value, params=ch[1], outputs=ch[2])

    # -- statements and bodies
    def assign(self, meta, ch):
        targets = [self._ident(t, "a variable") for t in ch[:-1]]
        return ir.Assign.model_construct(span=_span(meta), targets=targets, value=ch[-1],
                                         comments=[], trailing_comment=None)

    def return_stmt(self, meta, ch):
        return ir.Return.model_construct(span=_span(meta), values=list(ch), comments=[], trailing_comment=None)

    def body(self, meta, ch):
        doc = None
        if ch and isinstance(ch[0], Token):
            doc = ch[0].value[3:-3]
            ch = ch[1:]
        return doc, list(ch), _span(meta)

    def _unit(self, meta, name: str, name_span, params, outputs, body, is_block: bool) -> ir.Unit:
        doc, statements, body_span = body
        unit = ir.Unit.model_construct(
            span=_span(meta), name=name, name_span=name_span, is_block=is_block, params=params,
            outputs=outputs, doc=doc, body=statements, comments=[], end_comments=[],
        )
        self.body_ends[id(unit)] = (body_span.end_line, body_span.end_column - 1)
        return unit

    def block(self, meta, ch):
        return self._unit(meta, ir.BLOCK_NAME, None, ch[0], ch[1], ch[2], True)

    def unit(self, meta, ch):
        name = self._ident(ch[0], "a unit")
        return self._unit(meta, name, _tok_span(ch[0]), ch[1], ch[2], ch[3], False)

    def setting(self, meta, ch):
        return ir.Setting.model_construct(span=_span(meta), name=self._ident(ch[0], "a setting"), value=ch[1][0])

    def scaffold(self, meta, ch):
        return ir.Scaffold.model_construct(span=_span(meta), settings=list(ch))

    def design(self, meta, ch):
        name = self._ident(ch[0], "a design")
        rest = list(ch[1:])
        description = _decode_string(rest.pop(0)) if rest and isinstance(rest[0], Token) else None
        scaffold = rest.pop(0) if rest and isinstance(rest[0], ir.Scaffold) else None
        return ir.Design.model_construct(span=_span(meta), name=name, description=description,
                                         scaffold=scaffold, units=rest, comments=[], end_comments=[])


def _int(tok: Token) -> int:
    try:
        return int(tok)
    except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits())
        raise _Abort(Diagnostic.at(_tok_span(tok), "bad-number", f"number {tok.value[:20]}... is too long")) from None


def _float(tok: Token) -> float:
    value = float(tok)
    if value == float("inf"):
        raise _Abort(Diagnostic.at(_tok_span(tok), "bad-number", f"number {tok.value[:20]} is too large"))
    return value


# ------------------------------------------------------------------ errors

_TOKEN_NAMES = {
    "NAME": "a name", "INTEGER": "an integer", "DECIMAL": "a decimal number", "STRING": 'a "string"',
    "DOCSTRING": 'a """docstring"""', "LPAR": "'('", "RPAR": "')'", "LBRACE": "'{'", "RBRACE": "'}'",
    "LSQB": "'['", "RSQB": "']'", "COMMA": "','", "COLON": "':'", "EQUAL": "'='", "PLUS": "'+'",
    "MINUS": "'-'", "STAR": "'*'", "SLASH": "'/'", "__ANON_0": "'->'", "__ANON_1": "'..'",
    "$END": "end of input",
}

# Words an LLM or a Python user is likely to reach for, and what GAB offers instead.
_FOREIGN_WORDS = {
    "def": "define a unit with `unit Name(x: seq[D]) -> seq[D] { ... }`",
    "class": "define a unit with `unit Name(x: seq[D]) -> seq[D] { ... }`",
    "import": "there are no imports: call primitives by name (see `genesys reference`)",
    "from": "there are no imports: call primitives by name (see `genesys reference`)",
    "for": "there are no loops: the scaffold stacks the block N times; write repeated units out",
    "while": "there are no loops: the scaffold stacks the block N times",
    "if": "there are no conditionals: use a `choice` or `bool` hyperparameter",
    "lambda": "there are no lambdas: define a unit",
    "self": "there is no `self`: parameters belong to the call that creates them",
}


def _describe_expected(expected: set[str]) -> str:
    names = sorted({_TOKEN_NAMES.get(e, repr(e.lower()) if e.isupper() and not e.startswith("__") else e)
                    for e in expected})
    if len(names) > 8:
        names = names[:8] + ["..."]
    return ", ".join(names)


def _syntax_diagnostic(err: UnexpectedInput, text: str, filename: str | None) -> Diagnostic:
    line, column = err.line, err.column
    if isinstance(err, UnexpectedCharacters):
        ch = text[err.pos_in_stream] if err.pos_in_stream < len(text) else ""
        shown = repr(ch) if ch.isprintable() and ch not in " " else f"U+{ord(ch):04X}" if ch else "end"
        hint = None
        if ch in ("'",):
            hint = 'strings use double quotes: "..."'
        elif ch == ";":
            hint = "statements end at the end of the line; remove the ';'"
        elif ch in "[]" or ch == ".":
            hint = "indexing and attribute access do not exist; use a primitive (see `genesys reference`)"
        elif ch in "<>!&|%^~@":
            hint = "only + - * / exist"
        return Diagnostic(code="syntax", message=f"unexpected character {shown}", file=filename,
                          line=line, column=column, end_line=line, end_column=column + 1, hint=hint)
    if isinstance(err, UnexpectedToken) and err.token.type != "$END":
        tok = err.token
        value = str(tok.value)
        shown = value if len(value) <= 30 else value[:27] + "..."
        hint = _FOREIGN_WORDS.get(value)
        if hint is None and err.expected:
            hint = f"expected {_describe_expected(set(err.expected))}"
        end_line = tok.end_line or line
        end_column = tok.end_column or column + len(value)
        if end_line != line:
            end_line, end_column = line, column + 1
        return Diagnostic(code="syntax", message=f"unexpected {shown!r}", file=filename, line=line,
                          column=column, end_line=end_line, end_column=end_column, hint=hint)
    # unexpected end of input
    lines = text.split("\n")  # lark numbers lines by "\n" only (not "\r", "\f", U+2028...)
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    last = len(lines)
    expected = getattr(err, "expected", None) or []
    hint = f"expected {_describe_expected(set(expected))}" if expected else None
    if any(e in ("RBRACE",) for e in expected):
        hint = "a '}' is missing" + (f"; {hint}" if hint else "")
    return Diagnostic(code="syntax", message="unexpected end of input", file=filename, line=last,
                      column=len(lines[-1]) + 1, end_line=last, end_column=len(lines[-1]) + 2, hint=hint)


# ------------------------------------------------------------------ comments


def _attach_comments(design: ir.Design, comments: list[Token], body_ends: dict[int, tuple[int, int]]) -> None:
    """Give each comment a home in the tree: trailing on its line's statement or
    parameter, else leading on the next statement, parameter or unit."""
    if not comments:
        return
    slots: list[tuple[tuple[int, int], str, Any]] = []  # (start position, role, owner)
    ends: dict[int, Any] = {}  # line -> statement/param ending on it (trailing comments)
    for unit in design.units:
        slots.append(((unit.span.line, unit.span.column), "unit", unit))
        for p in unit.params:
            slots.append(((p.span.line, p.span.column), "leading", p))
            ends[p.span.end_line] = p
        for s in unit.body:
            slots.append(((s.span.line, s.span.column), "leading", s))
            ends[s.span.end_line] = s
        slots.append((body_ends[id(unit)], "end", unit))
    slots.sort(key=lambda s: s[0])
    starts = [s[0] for s in slots]
    header_line = design.span.line
    for tok in comments:
        text = tok.value.rstrip()
        at = (tok.line, tok.column)
        owner = ends.get(tok.line)
        if owner is not None and (owner.span.end_line, owner.span.end_column) <= at and owner.trailing_comment is None:
            owner.trailing_comment = text
            continue
        i = bisect.bisect_right(starts, at)
        if tok.line < header_line:
            design.comments.append(text)
        elif i == len(slots):
            design.end_comments.append(text)
        else:
            _, role, node = slots[i]
            if role == "end":
                node.end_comments.append(text)
            else:
                node.comments.append(text)


# ------------------------------------------------------------------ entry points


def parse(text: str, filename: str | None = None) -> ir.Design:
    """Parse GAB source into a `Design`; raise `DSLError` (with a location) on any problem."""
    if not isinstance(text, str):
        raise TypeError(f"parse() takes the spec text as str, not {type(text).__name__}")
    tree, comments = _parse_tree(text, filename, "design")
    builder = _Builder()
    design = _build(builder, tree, text, filename)
    _attach_comments(design, comments, builder.body_ends)
    design._source, design._file = text, filename
    return design


def parse_signature(text: str, filename: str | None = None) -> ir.Signature:
    """Parse a bodiless unit header, `name(params) -> outputs` (primitive declarations)."""
    tree, _ = _parse_tree(text, filename, "signature")
    return _build(_Builder(), tree, text, filename)


def _parse_tree(text: str, filename: str | None, start: str) -> tuple[Tree, list[Token]]:
    try:
        with collecting_comments() as comments:
            tree = lark_parser().parse(text, start=start)
        return tree, comments
    except UnexpectedInput as err:
        raise DSLError([_syntax_diagnostic(err, text, filename)], text) from None
    except RecursionError:  # lark's own error paths may recurse on pathological input
        raise DSLError([Diagnostic(code="too-deep", message="input nested too deeply to read",
                                   file=filename, line=1, column=1, end_line=1, end_column=2)], text) from None


def _build(builder: _Builder, tree: Tree, text: str, filename: str | None):
    try:
        return builder.transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, _Abort):
            diagnostic = err.orig_exc.diagnostic
            diagnostic.file = filename
            raise DSLError([diagnostic], text) from None
        raise


def read_text(path: str | os.PathLike) -> str:
    """Read a spec file as UTF-8; undecodable bytes are a located DSLError, not a crash."""
    data = open(path, "rb").read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = data[: err.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8")) + 1  # in characters, not bytes
        raise DSLError([Diagnostic(code="encoding", message=f"byte 0x{data[err.start]:02x} is not valid UTF-8",
                                   file=str(path), line=line, column=column, end_line=line,
                                   end_column=column + 1, hint="save the file as UTF-8")]) from None


def parse_file(path: str | os.PathLike) -> ir.Design:
    return parse(read_text(path), filename=str(path))
