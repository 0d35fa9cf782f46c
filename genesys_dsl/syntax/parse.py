"""Text -> IR.

Lark's LALR parser calls `_Builder` at each reduction (an inline transformer), so IR
nodes are built as the text is read, with no parse tree in between and no recursion:
deep nesting cannot overflow the stack. The builder caps expression depth so later
tree walks stay within Python's recursion limit. Every failure, whatever the input,
is a `DSLError` with a located diagnostic.
"""

from __future__ import annotations

import bisect
import os
import threading
from types import SimpleNamespace
from typing import Any, NamedTuple, NoReturn

from lark import Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from .. import ir
from . import grammar
from .diagnostics import Diagnostic, DSLError
from .grammar import RESERVED, TOKEN_TYPES, lark_parser
from .nodes import constructor

MAX_DEPTH = 200  # nesting of expressions and types; far beyond any real design

# Nodes are built from tokens the grammar matched, without validating them again
# (`nodes.constructor`); `design()` alone goes through model_construct (private attributes).
_new = SimpleNamespace(**{cls.__name__: constructor(cls) for cls in (
    ir.Span, ir.Name, ir.IntLit, ir.FloatLit, ir.BoolLit, ir.BinOp, ir.Neg, ir.Keyword, ir.Call, ir.RestDim,
    ir.SeqType, ir.ScalarType, ir.Range, ir.Options, ir.Param, ir.Output, ir.Signature, ir.Assign, ir.Return,
    ir.Unit, ir.Setting, ir.Scaffold)})


# ------------------------------------------------------------------ comments and problems

# Comments are skipped by the parser but kept in the tree. The parser and its builder
# are built once and shared, so each thread collects the comments of its parse here.
_local = threading.local()


def _collect_comment(token: Token) -> Token:
    _local.comments.append(token)
    return token


class _Abort(Exception):
    """Raised inside the builder; carries a diagnostic out through the parser."""

    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic


def _fail(span: ir.Span, code: str, message: str, hint: str | None = None) -> NoReturn:
    raise _Abort(Diagnostic.at(span, code, message, hint=hint))


# ------------------------------------------------------------------ the builder


class _Expr(NamedTuple):
    """An expression being built: its IR node, how deep it nests, and the text it covers
    counting any parentheses around it (its parent's span takes them in; its own does not)."""

    node: Any
    depth: int
    outer: ir.Span


class _Outputs(NamedTuple):
    items: list[ir.Output]
    end: Any  # what the outputs end with: the type's span, or the closing ')'


class _Body(NamedTuple):
    doc: str | None
    statements: list[Any]
    end: Token  # the closing '}'


def _span(first: Any, last: Any) -> ir.Span:
    """From the start of `first` to the end of `last`, each a token or a span (both
    carry line/column and end_line/end_column)."""
    return _new.Span(line=first.line, column=first.column, end_line=last.end_line, end_column=last.end_column)


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


class _Builder(Transformer):
    """IR from each reduction, bottom-up. Lark passes every token of the rule, punctuation
    included (the comment on each callback shows its rule), so a construct's span runs from
    its first child to its last, and the items of a comma-separated list are every other child.
    The first problem found stops the build (`_fail`)."""

    # -- helpers
    def _nested(self, node: Any, depth: int) -> _Expr:
        _check_depth(node.span, depth)
        return _Expr(node, depth, node.span)

    def _ident(self, tok: Token, what: str) -> str:
        if tok.value in RESERVED:
            _fail(_span(tok, tok), "reserved-word", f"'{tok.value}' is a reserved word and cannot name {what}",
                  hint=f"rename it, e.g. '{tok.value}_'")
        return tok.value

    # -- expressions
    def int_expr(self, ch):  # INTEGER
        span = _span(ch[0], ch[0])
        return _Expr(_new.IntLit(span=span, value=_int(ch[0])), 1, span)

    def float_expr(self, ch):  # DECIMAL
        span = _span(ch[0], ch[0])
        return _Expr(_new.FloatLit(span=span, value=_float(ch[0])), 1, span)

    def true_expr(self, ch):  # TRUE
        span = _span(ch[0], ch[0])
        return _Expr(_new.BoolLit(span=span, value=True), 1, span)

    def false_expr(self, ch):  # FALSE
        span = _span(ch[0], ch[0])
        return _Expr(_new.BoolLit(span=span, value=False), 1, span)

    def name_expr(self, ch):  # NAME
        span = _span(ch[0], ch[0])
        return _Expr(_new.Name(span=span, id=ch[0].value), 1, span)

    def atom(self, ch):  # "(" expr ")"
        lpar, inner, rpar = ch
        return _Expr(inner.node, inner.depth, _span(lpar, rpar))

    def _binop(op):  # noqa: N805 - a factory for the four operator callbacks
        def build(self, ch):  # expr OP expr
            left, _, right = ch
            node = _new.BinOp(span=_span(left.outer, right.outer), op=op, left=left.node,
                                            right=right.node)
            return self._nested(node, 1 + max(left.depth, right.depth))

        return build

    add, sub, mul, div = _binop("+"), _binop("-"), _binop("*"), _binop("/")

    def neg(self, ch):  # "-" unary
        minus, operand = ch
        node = _new.Neg(span=_span(minus, operand.outer), operand=operand.node)
        return self._nested(node, 1 + operand.depth)

    def keyword(self, ch):  # NAME "=" expr
        name, _, value = ch
        node = _new.Keyword(span=_span(name, value.outer), name=self._ident(name, "an argument"),
                                          value=value.node)
        return self._nested(node, 1 + value.depth)

    def call(self, ch):  # NAME "(" [argument ("," argument)* ","?] ")"
        arguments = ch[2:-1:2]
        args, keywords = [], []
        for a in arguments:
            if isinstance(a.node, ir.Keyword):
                keywords.append(a.node)
                continue
            if keywords:
                _fail(a.node.span, "positional-after-keyword", "positional argument follows a keyword argument",
                      hint="put positional arguments first")
            args.append(a.node)
        node = _new.Call(span=_span(ch[0], ch[-1]), func=ch[0].value, args=args, keywords=keywords)
        return self._nested(node, 1 + max((a.depth for a in arguments), default=0))

    # -- types
    def rest_dim(self, ch):  # "*" NAME
        span = _span(ch[0], ch[1])
        return _Expr(_new.RestDim(span=span, name=ch[1].value), 0, span)

    def seq_type(self, ch):  # "seq" "[" dim ("," dim)* "]"
        dims = ch[2:-1:2]
        node = _new.SeqType(span=_span(ch[0], ch[-1]), dims=[d.node for d in dims])
        _check_depth(node.span, 1 + max(d.depth for d in dims))
        return node

    def _scalar(kind):  # noqa: N805
        def build(self, ch):  # "int" | "float" | "bool" | "choice"
            return _new.ScalarType(span=_span(ch[0], ch[0]), kind=kind)

        return build

    int_type, float_type, bool_type, choice_type = (
        _scalar("int"), _scalar("float"), _scalar("bool"), _scalar("choice")
    )

    # -- literals (defaults, domains, settings): (value, span) pairs
    def int_lit(self, ch):  # INTEGER
        return _int(ch[0]), _span(ch[0], ch[0])

    def float_lit(self, ch):  # DECIMAL
        return _float(ch[0]), _span(ch[0], ch[0])

    def neg_int_lit(self, ch):  # "-" INTEGER
        return -_int(ch[1]), _span(ch[0], ch[1])

    def neg_float_lit(self, ch):  # "-" DECIMAL
        return -_float(ch[1]), _span(ch[0], ch[1])

    def true_lit(self, ch):  # TRUE
        return True, _span(ch[0], ch[0])

    def false_lit(self, ch):  # FALSE
        return False, _span(ch[0], ch[0])

    def name_lit(self, ch):  # NAME
        return ch[0].value, _span(ch[0], ch[0])

    def default(self, ch):  # "=" literal
        return ch[1]

    def domain(self, ch):  # "in" (range | options)
        return ch[1]

    def range(self, ch):  # literal ".." literal
        (low, low_span), _, (high, high_span) = ch
        return _new.Range(span=_span(low_span, high_span), low=low, high=high)

    def options(self, ch):  # "{" literal ("," literal)* ","? "}"
        return _new.Options(span=_span(ch[0], ch[-1]), values=[v for v, _ in ch[1:-1:2]])

    # -- signatures
    def param(self, ch):  # NAME ":" type default? domain?
        name_tok, _, type_, *extras = ch
        name = self._ident(name_tok, "a parameter")
        fields: dict[str, Any] = dict(name=name, type=type_, default=None, default_span=None, domain=None,
                                      comments=[], trailing_comment=None)
        end = type_.span
        for extra in extras:
            if isinstance(extra, tuple):  # a default: (value, span)
                fields["default"], fields["default_span"] = extra
                end = extra[1]
            else:
                fields["domain"] = extra
                end = extra.span
        return _new.Param(span=_span(name_tok, end), **fields)

    def param_list(self, ch):  # "(" [param ("," param)* ","?] ")"
        params = ch[1:-1:2]
        seen: set[str] = set()
        for p in params:
            if p.name in seen:
                _fail(p.span, "duplicate-param", f"parameter '{p.name}' is declared twice",
                      hint="rename one of them")
            seen.add(p.name)
        return params

    def output(self, ch):  # NAME ":" type
        name, _, type_ = ch
        return _new.Output(span=_span(name, type_.span), name=self._ident(name, "an output"),
                                         type=type_)

    def single_output(self, ch):  # type
        type_ = ch[0]
        return _Outputs([_new.Output(span=type_.span, name=None, type=type_)], type_.span)

    def named_outputs(self, ch):  # "(" output ("," output)* ","? ")"
        return _Outputs(ch[1:-1:2], ch[-1])

    def signature(self, ch):  # NAME param_list "->" outputs
        name, params, _, outputs = ch
        return _new.Signature(span=_span(name, outputs.end), name=name.value, params=params,
                                            outputs=outputs.items)

    # -- statements and bodies
    def assign(self, ch):  # NAME ("," NAME)* "=" expr
        value = ch[-1]
        targets = [self._ident(t, "a variable") for t in ch[:-2:2]]
        return _new.Assign(span=_span(ch[0], value.outer), targets=targets, value=value.node,
                                         comments=[], trailing_comment=None)

    def return_stmt(self, ch):  # "return" expr ("," expr)*
        values = ch[1::2]
        return _new.Return(span=_span(ch[0], values[-1].outer), values=[v.node for v in values],
                                         comments=[], trailing_comment=None)

    def body(self, ch):  # "{" DOCSTRING? statement* "}"
        inner = ch[1:-1]
        doc = None
        if inner and isinstance(inner[0], TOKEN_TYPES):
            doc = inner[0].value[3:-3]
            inner = inner[1:]
        return _Body(doc, inner, ch[-1])

    def _unit(self, first: Token, name: str, name_span, params, outputs: _Outputs, body: _Body,
              is_block: bool) -> ir.Unit:
        return _new.Unit(
            span=_span(first, body.end), name=name, name_span=name_span, is_block=is_block, params=params,
            outputs=outputs.items, doc=body.doc, body=body.statements, comments=[], end_comments=[],
        )

    def block(self, ch):  # "block" param_list "->" outputs body
        keyword, params, _, outputs, body = ch
        return self._unit(keyword, ir.BLOCK_NAME, None, params, outputs, body, True)

    def unit(self, ch):  # "unit" NAME param_list "->" outputs body
        keyword, name_tok, params, _, outputs, body = ch
        name = self._ident(name_tok, "a unit")
        return self._unit(keyword, name, _span(name_tok, name_tok), params, outputs, body, False)

    def setting(self, ch):  # NAME "=" literal
        name, _, (value, value_span) = ch
        return _new.Setting(span=_span(name, value_span), name=self._ident(name, "a setting"),
                                          value=value)

    def scaffold(self, ch):  # "scaffold" "(" [setting ("," setting)* ","?] ")"
        return _new.Scaffold(span=_span(ch[0], ch[-1]), settings=ch[2:-1:2])

    def design(self, ch):  # "design" NAME STRING? scaffold? definition+
        keyword, name_tok, *rest = ch
        name = self._ident(name_tok, "a design")
        description = _decode_string(rest.pop(0)) if isinstance(rest[0], TOKEN_TYPES) else None
        scaffold = rest.pop(0) if isinstance(rest[0], ir.Scaffold) else None
        return ir.Design.model_construct(span=_span(keyword, rest[-1].span), name=name, description=description,
                                         scaffold=scaffold, units=rest, comments=[], end_comments=[])


_BUILDER = _Builder()


def _check_depth(span: ir.Span, depth: int) -> None:
    if depth > MAX_DEPTH:
        _fail(span, "too-deep", f"expression nested more than {MAX_DEPTH} levels deep",
              hint="split it into several assignments")


def _int(tok: Token) -> int:
    try:
        return int(tok.value)
    except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits())
        _fail(_span(tok, tok), "bad-number", f"number {tok.value[:20]}... is too long")


def _float(tok: Token) -> float:
    value = float(tok.value)
    if value == float("inf"):
        _fail(_span(tok, tok), "bad-number", f"number {tok.value[:20]} is too large")
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


def _attach_comments(design: ir.Design, comments: list[Token]) -> None:
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
        slots.append(((unit.span.end_line, unit.span.end_column - 1), "end", unit))  # the closing brace, last
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
    design, comments = _build(text, filename, "design")
    _attach_comments(design, comments)
    design._source, design._file = text, filename
    return design


def parse_signature(text: str, filename: str | None = None) -> ir.Signature:
    """Parse a bodiless unit header, `name(params) -> outputs` (primitive declarations)."""
    signature, _ = _build(text, filename, "signature")
    return signature


def _build(text: str, filename: str | None, start: str) -> tuple[Any, list[Token]]:
    """The IR of `text` read from the rule `start`, and the comments in it."""
    outer, _local.comments = getattr(_local, "comments", None), []
    try:
        return _read(text, start), _local.comments
    except UnexpectedInput as err:
        raise DSLError([_syntax_diagnostic(err, text, filename)], text) from None
    except RecursionError:  # lark's own error paths may recurse on pathological input
        raise DSLError([Diagnostic(code="too-deep", message="input nested too deeply to read",
                                   file=filename, line=1, column=1, end_line=1, end_column=2)], text) from None
    except _Abort as abort:
        abort.diagnostic.file = filename
        raise DSLError([abort.diagnostic], text) from None
    finally:
        _local.comments = outer


def _read(text: str, start: str) -> Any:
    cython = grammar.use_lark_cython
    try:
        return lark_parser(_BUILDER, _collect_comment, cython).parse(text, start=start)
    except _Abort:
        # The builder stops at the first problem, but a syntax error anywhere in the text
        # comes first: read the rest too, building nothing (this raises UnexpectedInput).
        lark_parser(None, _collect_comment, cython).parse(text, start=start)
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
