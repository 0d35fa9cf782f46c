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
def lark_parser(builder: Transformer | None, on_comment: Callable[[Token], Token]) -> Lark:
    """The LALR parser (contextual lexer), which calls `builder` at each reduction.

    No parse tree is built: each callback gets the values of its rule's children,
    every token included (`keep_all_tokens`), so the builder can locate a construct
    from its first and last child. Without a builder, lark builds its parse tree: a
    syntax check. Comments are ignored by the parser and handed to `on_comment`.
    Built once per builder (about 50 ms).
    """
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        start=START_SYMBOLS,
        transformer=builder,
        keep_all_tokens=True,
        maybe_placeholders=False,
        lexer_callbacks={"COMMENT": on_comment},
    )
