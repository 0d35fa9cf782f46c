"""Finding and loading the grammar.

The grammar lives in the top-level `grammar/` folder of the repository, which is
installed as the package `genesys_dsl.grammar` (see pyproject.toml), so the same
lookup works from an editable install and from a wheel installed anywhere.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Callable

from lark import Lark, Token, Transformer

try:  # Lark's LALR lexer and parser compiled with Cython: the same grammar, parse() about 1.3x faster
    import lark_cython
except ImportError:  # pure-Python Lark: the same trees and errors, slower
    lark_cython = None

# What the parser hands the builder for a token: lark's `Token` (a str) or, with
# lark_cython, its own token class (not a str: read `.value`).
TOKEN_TYPES: tuple[type, ...] = (Token,) if lark_cython is None else (Token, lark_cython.Token)

# Whether `parse` uses lark_cython when it is installed. Benchmarks turn it off to time
# pure Lark beside it; the trees and errors are the same either way (tests/test_fast_paths.py).
use_lark_cython = True

GRAMMAR_PACKAGE = "genesys_dsl.grammar"
GRAMMAR_FILE = "gab.lark"
START_SYMBOLS = ["design", "signature"]

# Words with a fixed meaning somewhere in the grammar. The contextual lexer would
# accept most of them as names elsewhere; we reject them at definition sites so a
# spec never reads two ways.
RESERVED = frozenset(
    {"design", "scaffold", "block", "unit", "return", "in", "seq", "int", "float", "bool",
     "choice", "true", "false"}
)


def grammar_text() -> str:
    return resources.files(GRAMMAR_PACKAGE).joinpath(GRAMMAR_FILE).read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def lark_parser(builder: Transformer | None, on_comment: Callable[[Token], Token],
                cython: bool = True) -> Lark:
    """The LALR parser (contextual lexer), which calls `builder` at each reduction.

    No parse tree is built: each callback gets the values of its rule's children,
    every token included (`keep_all_tokens`), so the builder can locate a construct
    from its first and last child. Without a builder, lark builds its parse tree: a
    syntax check. Comments are ignored by the parser and handed to `on_comment`.
    Built once per builder (about 50 ms). With `cython`, uses lark_cython's lexer and
    parser when it is installed (`accelerated()`).
    """
    plugins = {"_plugins": lark_cython.plugins} if cython and lark_cython is not None else {}
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        start=START_SYMBOLS,
        transformer=builder,
        keep_all_tokens=True,
        maybe_placeholders=False,
        lexer_callbacks={"COMMENT": on_comment},
        **plugins,
    )


def accelerated() -> bool:
    """Whether specs are read with lark_cython (else with pure-Python Lark)."""
    return lark_cython is not None and use_lark_cython
