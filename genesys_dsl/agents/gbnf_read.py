"""Read GBNF text back and recognise strings with it, offline.

    GBNFRecognizer(gbnf("unit")).accepts(text)     # True / False

This tests the *generated text* (not the Lark grammar it came from): the GBNF is
parsed with its own small grammar, translated into a character-level Lark
grammar (every literal and class a terminal) and run with Lark's Earley parser,
which, like llama.cpp's sampler, follows every reading of an ambiguous grammar.
It covers the GBNF that genesys_dsl.agents.gbnf writes: rules one per line (or
continued after `::=`, `|` and inside parentheses), literals, classes, `.`, rule
references, groups and the repetitions `* + ? {m} {m,} {m,n}`.
"""

from __future__ import annotations

import re
from functools import cached_property

from lark import Lark, Tree
from lark.exceptions import LarkError

_GBNF_GRAMMAR = r"""
rule: RULENAME "::=" alternatives
alternatives: sequence ("|" sequence)*
sequence: item*
item: atom QUANTIFIER?
?atom: LITERAL -> literal
     | CLASS -> char_class
     | RULENAME -> ref
     | "." -> any_char
     | "(" alternatives ")" -> group
RULENAME: /[A-Za-z0-9-]+/
LITERAL: /"(\\.|[^"\\])*"/
CLASS: /\[(\\.|[^\]\\])*\]/
QUANTIFIER: /[*+?]|\{[0-9]+(,[0-9]*)?\}/
COMMENT: /#[^\n]*/
%import common.WS
%ignore WS
%ignore COMMENT
"""


class GBNFReadError(ValueError):
    """GBNF text this reader cannot read."""


def _decode(body: str) -> list[str]:
    """The characters of a literal's or class's body, escapes decoded; a class range
    keeps its '-' as the separate item "-" only when escaped ('\\x2D')."""
    out, i = [], 0
    simple = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "[": "[", "]": "]"}
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        kind = body[i + 1]
        if kind in simple:
            out.append(simple[kind])
            i += 2
        elif kind in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[kind]
            out.append(chr(int(body[i + 2: i + 2 + width], 16)))
            i += 2 + width
        else:
            raise GBNFReadError(f"unknown escape \\{kind}")
    return out


def _regex_char(c: str) -> str:
    """One character inside a Lark /regexp/. Lark itself decodes \\xNN escapes before
    compiling, so punctuation is escaped with a backslash and only characters that
    are not special in a regexp are written as \\xNN."""
    if c.isalnum() and c.isascii():
        return c
    if c == "\\":
        return "\\" * 4
    if c.isascii() and c.isprintable() and c != " ":
        return "\\" + c
    return f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}"


def _class_regex(raw: str) -> str:
    """A GBNF class `[...]` as a Python regexp class."""
    body = raw[1:-1]
    negate = body.startswith("^")
    if negate:
        body = body[1:]
    # ranges are marked by an unescaped '-' between two items
    items: list[str] = []
    i = 0
    tokens: list[tuple[str, bool]] = []  # (char, is a range dash)
    while i < len(body):
        if body[i] == "\\":
            width = {"x": 4, "u": 6, "U": 10}.get(body[i + 1], 2)
            tokens.append((_decode(body[i: i + width])[0], False))
            i += width
        else:
            tokens.append((body[i], body[i] == "-" and 0 < i < len(body) - 1))
            i += 1
    j = 0
    while j < len(tokens):
        c, _ = tokens[j]
        if j + 2 < len(tokens) and tokens[j + 1][1]:
            items.append(f"{_regex_char(c)}-{_regex_char(tokens[j + 2][0])}")
            j += 3
        else:
            items.append(_regex_char(c))
            j += 1
    return f"[{'^' if negate else ''}{''.join(items)}]"


def _rule_texts(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each rule: a rule starts with `name ::=` at the start
    of a line; other lines continue the rule before them."""
    rules: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(r"[A-Za-z0-9-]+\s*::=", line):
            rules.append((number, line))
        elif rules:
            rules[-1] = (rules[-1][0], rules[-1][1] + "\n" + line)
        elif line.strip() and not line.lstrip().startswith("#"):
            raise GBNFReadError(f"line {number}: text before the first rule")
    return rules


class GBNFRecognizer:
    """Recognises text with a GBNF grammar (its `root` rule)."""

    def __init__(self, gbnf_text: str):
        reader = Lark(_GBNF_GRAMMAR, parser="lalr", start="rule")
        self.rules: dict[str, Tree] = {}
        for number, text in _rule_texts(gbnf_text):
            try:
                tree = reader.parse(text)
            except LarkError as err:
                raise GBNFReadError(f"line {number}: not GBNF this reader knows: {err}") from None
            self.rules[str(tree.children[0])] = tree.children[1]
        if "root" not in self.rules:
            raise GBNFReadError("the grammar has no 'root' rule")
        self.names = {name: f"r{i}" for i, name in enumerate(self.rules)}
        self.terminals: dict[str, str] = {}  # regexp -> Lark terminal name

    @cached_property
    def lark_text(self) -> str:
        lines = [f"{self.names[name]}: {self.alternatives(body)}" for name, body in self.rules.items()]
        lines += [f"{name}: /{regexp}/" for regexp, name in self.terminals.items()]
        return "start: r{}\n".format(list(self.rules).index("root")) + "\n".join(lines) + "\n"

    @cached_property
    def parser(self) -> Lark:
        return Lark(self.lark_text, parser="earley", lexer="dynamic", ambiguity="resolve")

    def accepts(self, text: str) -> bool:
        try:
            self.parser.parse(text)
        except LarkError:
            return False
        return True

    # -- translation
    def alternatives(self, tree: Tree) -> str:
        return " | ".join(self.sequence(s) for s in tree.children)

    def sequence(self, tree: Tree) -> str:
        items = [self.item(i) for i in tree.children]
        items = [i for i in items if i]
        return " ".join(items)  # an empty alternative is an empty Lark expansion

    def item(self, tree: Tree) -> str:
        atom = self.atom(tree.children[0])
        if len(tree.children) == 1:
            return atom
        q = str(tree.children[1])
        if q in "*+" and tree.children[0].data == "char_class":
            # a run of one class is one regexp terminal: far fewer Earley steps. Lark
            # matches it greedily, which reads GAB as GBNF does except where the
            # grammar would have to split a run of word characters between two tokens
            run = self.terminal(_class_regex(str(tree.children[0].children[0])) + "+")
            return run if q == "+" else f"{run}?"  # Earley refuses zero-width terminals
        if q in "*+?":
            return f"({atom}){q}"
        low, _, high = q[1:-1].partition(",")
        if "," not in q:
            return f"({atom}) ~ {low}"
        if not high:
            return f"({atom}) ~ {low} ({atom})*"
        return f"({atom}) ~ {low}..{high}"

    def atom(self, tree) -> str:
        kind = tree.data
        if kind == "literal":
            chars = _decode(str(tree.children[0])[1:-1])
            if not chars:
                return ""
            return self.terminal("".join(_regex_char(c) for c in chars))
        if kind == "char_class":
            return self.terminal(_class_regex(str(tree.children[0])))
        if kind == "any_char":
            return self.terminal("(?s:.)")
        if kind == "ref":
            name = str(tree.children[0])
            if name not in self.names:
                raise GBNFReadError(f"rule '{name}' is used but not defined")
            return self.names[name]
        return f"({self.alternatives(tree.children[0])})"

    def terminal(self, regexp: str) -> str:
        if regexp not in self.terminals:
            self.terminals[regexp] = f"T{len(self.terminals)}"
        return self.terminals[regexp]
