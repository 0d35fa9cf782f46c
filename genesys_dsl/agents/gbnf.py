"""A GBNF grammar for llama.cpp-compatible servers, generated from grammar/gab.lark.

    text = gbnf("unit")        # one `unit Name(...) -> ... { ... }` definition
    text = gbnf("design")      # a whole spec

The grammar is derived from the compiled Lark grammar object (its BNF rules and
terminal patterns), never copied by hand, so it follows every change to the
language. How the Lark constructs map to GBNF:

* Rules become GBNF rules (`_` becomes `-`, leading underscores are dropped: GBNF
  names are letters, digits and `-`). Lark's left-recursive rules (its expansion of
  `x*`, and `sum: sum "+" product`) become repetitions, because llama.cpp refuses
  left recursion; any indirect left recursion is refused here, loudly.
* String terminals are inlined as literals; regexp terminals become a rule each,
  translated from Python's own parse of the regexp: literals, classes, `.`,
  groups, alternation and repetition. A tempered dot `(?:(?!S).)*S` with a literal
  `S` (the docstring) becomes the automaton that stops at the first `S`. Any
  other lookaround, backreference or anchor raises GBNFError naming the terminal.
* `%ignore`d terminals (whitespace, comments) become `ws`, allowed after every
  terminal and at the start.

GBNF has no lexer, so two things Lark's contextual lexer decides are not decided
here: keywords are not reserved (`return` can be read as a name) and adjacent word
tokens need no separator (`returnx` can be read as `return x`). The generated
grammar therefore accepts a little more than the language; never less. What it
lets through, the parser rejects with a located diagnostic.
"""

from __future__ import annotations

import re
from functools import lru_cache

from lark import Lark
from lark.grammar import NonTerminal
from lark.lexer import PatternRE, PatternStr

try:  # Python's regexp parser: what lark itself uses to measure its terminals
    from re import _constants as sre, _parser as sre_parse
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_constants as sre  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

from ..syntax.grammar import grammar_text

START_RULES = ("design", "definition", "block", "unit")


class GBNFError(ValueError):
    """A grammar construct that has no GBNF translation (names the terminal or rule)."""


@lru_cache(maxsize=1)
def lark_grammar() -> Lark:
    """The GAB grammar compiled to BNF (no parser table is needed, only the rules)."""
    return Lark(grammar_text(), parser="lalr", start=list(START_RULES), keep_all_tokens=True,
                maybe_placeholders=False)


@lru_cache(maxsize=None)
@lru_cache(maxsize=None)
def gbnf(start: str = "design", *, comments: bool = True) -> str:
    """GBNF text whose `root` is the rule `start` ("design", "definition", "block" or
    "unit"). `comments=False` leaves the ignored COMMENT terminal out: for decoding,
    where a small model otherwise fills its reply with comment lines until the token
    limit (the language still allows them; only the model may not write them)."""
    if start not in START_RULES:
        raise GBNFError(f"no start rule '{start}'; available: {', '.join(START_RULES)}")
    skip = () if comments else ("COMMENT",)
    return generate(lark_grammar(), start, source="grammar/gab.lark", skip_ignored=skip)


def generate(lark: Lark, start: str, source: str = "a Lark grammar", skip_ignored: tuple[str, ...] = ()) -> str:
    """GBNF for any Lark grammar object whose rules include `start`; the ignored
    terminals named in `skip_ignored` are not allowed between tokens."""
    if not any(rule.origin.name == start for rule in lark.rules):
        raise GBNFError(f"the grammar has no rule '{start}'")
    return _Generator(lark, source, skip_ignored).run(start)


def rule_name(lark_name: str) -> str:
    """A Lark rule or terminal name as a GBNF name: letters, digits and '-'."""
    name = lark_name.lstrip("_").replace("_", "-")
    if not name or not re.fullmatch(r"[A-Za-z0-9-]+", name):
        raise GBNFError(f"the grammar symbol '{lark_name}' has no GBNF name")
    return name


# ------------------------------------------------------------------ escaping


def _char(code: int, in_class: bool) -> str:
    c = chr(code)
    if c == "\n":
        return "\\n"
    if c == "\t":
        return "\\t"
    if c == "\r":
        return "\\r"
    if c in '\\"':
        return "\\" + c
    if in_class and c in "[]-^":  # llama.cpp knows \[ and \]; '-' and '^' are safest as hex
        return f"\\x{code:02X}" if c in "-^" else "\\" + c
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02X}"
    return c


def literal(text: str) -> str:
    return '"' + "".join(_char(ord(c), False) for c in text) + '"'


# ------------------------------------------------------------------ regexps


class _Regexp:
    """One terminal's regexp as a GBNF expression; helper rules go to `rules`."""

    def __init__(self, terminal: str, rules: dict[str, str]):
        self.terminal = terminal
        self.rules = rules

    def fail(self, what: str):
        raise GBNFError(f"terminal {self.terminal}: {what} has no GBNF translation; rewrite the "
                        "terminal without it (grammar/gab.lark) or teach genesys_dsl.agents.gbnf to translate it")

    def convert(self, pattern: str, dotall: bool) -> str:
        try:
            parsed = sre_parse.parse(pattern, re.S if dotall else 0)
        except re.error as err:
            raise GBNFError(f"terminal {self.terminal}: bad regexp: {err}") from None
        return self.sequence(list(parsed), dotall)

    def sequence(self, items: list, dotall: bool) -> str:
        out: list[str] = []
        text = ""  # consecutive literal characters, emitted as one literal
        i = 0
        while i < len(items):
            op, arg = items[i]
            tempered = self.tempered_dot(items, i)
            if tempered is not None:
                if text:
                    out.append(literal(text))
                    text = ""
                out.append(self.until(tempered, dotall))
                i += 1 + len(tempered)
                continue
            if op is sre.LITERAL:
                text += chr(arg)
            else:
                if text:
                    out.append(literal(text))
                    text = ""
                out.append(self.item(op, arg, dotall))
            i += 1
        if text:
            out.append(literal(text))
        return " ".join(out) if out else '""'

    def tempered_dot(self, items: list, i: int) -> str | None:
        """`(?:(?!S).)*S` at items[i:], with S a literal: S."""
        op, arg = items[i]
        if op is not sre.MAX_REPEAT or arg[0] != 0 or arg[1] is not sre.MAXREPEAT:
            return None
        body = list(arg[2])
        if len(body) == 1 and body[0][0] is sre.SUBPATTERN:
            body = list(body[0][1][3])
        if len(body) != 2 or body[0][0] is not sre.ASSERT_NOT or body[1][0] is not sre.ANY:
            return None
        direction, look = body[0][1]
        look = list(look)
        if direction != 1 or not look or any(o is not sre.LITERAL for o, _ in look):
            return None
        stop = "".join(chr(a) for _, a in look)
        after = items[i + 1: i + 1 + len(stop)]
        if len(after) != len(stop) or any(o is not sre.LITERAL or chr(a) != c for (o, a), c in zip(after, stop)):
            return None
        return stop

    def until(self, stop: str, dotall: bool) -> str:
        """Rules reading any text up to and including the first `stop` (a KMP automaton)."""
        base = f"{rule_name(self.terminal)}-until"
        names = [f"{base}-{k}" for k in range(len(stop))]
        chars = sorted(set(stop))
        excluded = "".join(_char(ord(c), True) for c in chars) + ("" if dotall else "\\n")
        for k, name in enumerate(names):
            alternatives = [f"[^{excluded}] {names[0]}"]
            for c in chars:
                nxt = _next_state(stop, k, c)
                if c == "\n" and not dotall:
                    continue
                alternatives.append(literal(c) + (f" {names[nxt]}" if nxt < len(stop) else ""))
            self.rules[name] = " | ".join(alternatives)
        return names[0]

    def item(self, op, arg, dotall: bool) -> str:
        if op is sre.NOT_LITERAL:
            return f"[^{_char(arg, True)}]"
        if op is sre.ANY:
            return "." if dotall else "[^\\n]"
        if op is sre.IN:
            return self.char_class(arg)
        if op is sre.SUBPATTERN:
            _, add, remove, sub = arg
            if add & ~re.S or remove:
                self.fail("an inline flag other than (?s)")
            inner = self.sequence(list(sub), dotall or bool(add & re.S))
            return inner if len(sub) == 1 and sub[0][0] is sre.BRANCH else f"({inner})"
        if op is sre.BRANCH:
            return "(" + " | ".join(self.sequence(list(b), dotall) for b in arg[1]) + ")"
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            low, high, sub = arg
            inner = self.sequence(list(sub), dotall)
            sub = list(sub)
            grouped = len(sub) == 1 and (sub[0][0] in (sre.SUBPATTERN, sre.BRANCH) or " " not in inner)
            inner = inner if grouped else f"({inner})"
            if (low, high) == (0, sre.MAXREPEAT):
                return inner + "*"
            if (low, high) == (1, sre.MAXREPEAT):
                return inner + "+"
            if (low, high) == (0, 1):
                return inner + "?"
            return inner + "{" + str(low) + ("," if high is sre.MAXREPEAT else f",{high}") + "}"
        names = {sre.ASSERT: "a lookaround", sre.ASSERT_NOT: "a negative lookaround", sre.AT: "an anchor",
                 sre.GROUPREF: "a backreference"}
        self.fail(names.get(op, f"the regexp construct {op}"))

    def char_class(self, items) -> str:
        negate = ""
        parts: list[str] = []
        for op, arg in items:
            if op is sre.NEGATE:
                negate = "^"
            elif op is sre.LITERAL:
                parts.append(_char(arg, True))
            elif op is sre.RANGE:
                parts.append(f"{_char(arg[0], True)}-{_char(arg[1], True)}")
            elif op is sre.CATEGORY and arg in _CATEGORIES:
                parts.append(_CATEGORIES[arg])
            else:
                self.fail(f"the class item {op} {arg}")
        return f"[{negate}{''.join(parts)}]"


_CATEGORIES = {
    sre.CATEGORY_DIGIT: "0-9",
    sre.CATEGORY_WORD: "A-Za-z0-9_",
    sre.CATEGORY_SPACE: " \\t\\n\\r\\x0B\\x0C",
}


def _next_state(stop: str, k: int, c: str) -> int:
    """KMP: how much of `stop` is matched after reading `c` with `stop[:k]` matched."""
    seen = stop[:k] + c
    for size in range(min(len(seen), len(stop)), 0, -1):
        if seen.endswith(stop[:size]):
            return size
    return 0


# ------------------------------------------------------------------ rules


class _Generator:
    def __init__(self, lark: Lark, source: str, skip_ignored: tuple[str, ...] = ()):
        self.lark, self.source, self.skip_ignored = lark, source, skip_ignored
        self.terminals = {t.name: t for t in lark.terminals}
        self.by_origin: dict[str, list[list]] = {}
        for rule in lark.rules:
            self.by_origin.setdefault(rule.origin.name, []).append(list(rule.expansion))
        self.rules: dict[str, str] = {}  # GBNF name -> body, in order of first use
        self.gbnf_names: dict[str, str] = {}  # GBNF name -> Lark symbol, to catch clashes

    def name(self, symbol: str) -> str:
        name = rule_name(symbol)
        if self.gbnf_names.setdefault(name, symbol) != symbol:
            raise GBNFError(f"the grammar symbols '{symbol}' and '{self.gbnf_names[name]}' have the same "
                            f"GBNF name '{name}'")
        return name

    def run(self, start: str) -> str:
        self.check_left_recursion()
        self.rules["root"] = f"ws {self.name(start)}"
        todo = [start]
        done: set[str] = set()
        while todo:
            origin = todo.pop(0)
            if origin in done:
                continue
            done.add(origin)
            self.rules[self.name(origin)] = self.rule(origin, todo)
        self.rules["ws"] = self.whitespace()
        header = (f"# GBNF (root: {start}) generated from {self.source} by genesys_dsl.agents.gbnf; "
                  "do not edit\n")
        return header + "".join(f"{name} ::= {body}\n" for name, body in self.rules.items())

    def rule(self, origin: str, todo: list[str]) -> str:
        expansions = self.by_origin[origin]
        recursive = [e[1:] for e in expansions if e and isinstance(e[0], NonTerminal) and e[0].name == origin]
        base = [e for e in expansions if not (e and isinstance(e[0], NonTerminal) and e[0].name == origin)]
        if recursive and not base:
            raise GBNFError(f"rule '{origin}' only refers to itself")

        def seq(expansion: list) -> str:
            return " ".join(self.symbol(s, todo) for s in expansion) or '""'

        body = " | ".join(seq(e) for e in base)
        if not recursive:
            return body
        # A -> A x | y   is   A ::= y x*   (llama.cpp refuses left recursion)
        head = f"({body})" if len(base) > 1 else body
        return f"{head} ({' | '.join(seq(r) for r in recursive)})*"

    def symbol(self, symbol, todo: list[str]) -> str:
        if isinstance(symbol, NonTerminal):
            todo.append(symbol.name)
            return self.name(symbol.name)
        terminal = self.terminals[symbol.name]
        if isinstance(terminal.pattern, PatternStr):
            return literal(terminal.pattern.value) + " ws"
        name = self.name(symbol.name)
        if name not in self.rules:
            self.rules[name] = self.regexp(symbol.name)
        return f"{name} ws"

    def regexp(self, terminal: str) -> str:
        pattern = self.terminals[terminal].pattern
        if not isinstance(pattern, PatternRE):
            raise GBNFError(f"terminal {terminal}: unknown pattern type {type(pattern).__name__}")
        if set(pattern.flags) - {"s"}:
            raise GBNFError(f"terminal {terminal}: the regexp flags {sorted(set(pattern.flags) - {'s'})} "
                            "have no GBNF translation")
        return _Regexp(terminal, self.rules).convert(pattern.value, "s" in pattern.flags)

    def whitespace(self) -> str:
        """`ws`: any run of the ignored terminals. `X+` inside the repetition is read as `X`,
        so a run of spaces has one reading (llama.cpp tracks every reading)."""
        items = []
        for name in self.lark.ignore_tokens:
            if name in self.skip_ignored:
                continue
            pattern = self.terminals[name].pattern
            if isinstance(pattern, PatternStr):
                items.append(literal(pattern.value))
                continue
            dotall = "s" in pattern.flags
            parsed = list(sre_parse.parse(pattern.value, re.S if dotall else 0))
            if len(parsed) == 1 and parsed[0][0] is sre.MAX_REPEAT and parsed[0][1][:2] == (1, sre.MAXREPEAT):
                parsed = list(parsed[0][1][2])
            items.append(_Regexp(name, self.rules).sequence(parsed, dotall))
        return "(" + " | ".join(items) + ")*" if items else '""'

    def check_left_recursion(self) -> None:
        """Indirect left recursion cannot be rewritten as a repetition: refuse it."""
        nullable = self.nullable()
        first: dict[str, set[str]] = {}
        for origin, expansions in self.by_origin.items():
            heads = set()
            for e in expansions:
                for s in e:
                    if isinstance(s, NonTerminal) and s.name != origin:
                        heads.add(s.name)
                    if not (isinstance(s, NonTerminal) and s.name in nullable):
                        break
            first[origin] = heads
        for origin in first:
            seen, todo = set(), list(first[origin])
            while todo:
                n = todo.pop()
                if n == origin:
                    raise GBNFError(f"rule '{origin}' is indirectly left-recursive; GBNF (llama.cpp) "
                                    "cannot express that")
                if n not in seen:
                    seen.add(n)
                    todo += first.get(n, ())

    def nullable(self) -> set[str]:
        out: set[str] = set()
        changed = True
        while changed:
            changed = False
            for origin, expansions in self.by_origin.items():
                if origin not in out and any(all(isinstance(s, NonTerminal) and s.name in out for s in e)
                                             for e in expansions):
                    out.add(origin)
                    changed = True
        return out


if __name__ == "__main__":
    import sys

    print(gbnf(sys.argv[1] if len(sys.argv) > 1 else "design"), end="")
