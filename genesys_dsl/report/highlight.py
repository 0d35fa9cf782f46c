"""GAB syntax highlighting for the report, from the grammar's own lexer.

The text is split by the terminals of grammar/gab.lark (comments and whitespace
kept), so the highlighter cannot drift from the language. Every piece is
HTML-escaped: archived specs are untrusted text. Text the lexer cannot read (an
invalid design's DSL) is shown escaped, without colours.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import pairwise

from lark import Lark
from lark.exceptions import LarkError
from markupsafe import Markup, escape

from ..syntax.grammar import RESERVED, grammar_text

# terminal -> CSS class (the classes are styled in assets/report.css)
_TYPES = {"SEQ", "INT", "FLOAT", "BOOL", "CHOICE"}
_CLASSES = {
    "COMMENT": "c", "DOCSTRING": "s", "STRING": "s",
    "INTEGER": "n", "DECIMAL": "n", "TRUE": "n", "FALSE": "n",
}


@lru_cache(maxsize=1)
def _lexer() -> Lark:
    # the basic lexer turns keyword strings that NAME also matches into keyword tokens,
    # which is what a reader sees (reserved words are never names in a valid spec)
    return Lark(grammar_text(), parser="lalr", lexer="basic", start=["design"])


def highlight(text: str) -> Markup:
    """`text` as escaped HTML with <span class=...> around keywords, types, numbers,
    strings, comments, unit/primitive calls and definition names."""
    try:
        tokens = list(_lexer().lex(text, dont_ignore=True))
    except LarkError:
        return escape(text)
    out: list[str] = []
    pos = 0
    significant = [t for t in tokens if t.type not in ("WS", "COMMENT")]
    after = {id(a): b for a, b in pairwise(significant)}
    before = {id(b): a for a, b in pairwise(significant)}
    for token in tokens:
        start = token.start_pos
        if start is None or start < pos:  # cannot happen with lark's lexer; keep the text whole if it does
            return escape(text)
        out.append(str(escape(text[pos:start])))
        css = _css_class(token, before.get(id(token)), after.get(id(token)))
        piece = str(escape(str(token)))
        out.append(f'<span class="{css}">{piece}</span>' if css else piece)
        pos = start + len(token)
    out.append(str(escape(text[pos:])))
    return Markup("".join(out))


def _css_class(token, previous, following) -> str | None:
    if token.type in _CLASSES:
        return _CLASSES[token.type]
    if token.type in _TYPES:
        return "t"
    if token.type != "NAME":
        return "k" if str(token) in RESERVED else None
    if previous is not None and previous.type in ("UNIT", "DESIGN"):
        return "d"  # the name a unit or the design is defined as
    if following is not None and following.type == "LPAR":
        return "f"  # a call: a primitive or a unit
    return None
