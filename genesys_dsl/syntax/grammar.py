"""Finding and loading the grammar.

The grammar lives in the top-level `grammar/` folder of the repository, which is
installed as the package `genesys_dsl.grammar` (see pyproject.toml), so the same
lookup works from an editable install and from a wheel installed anywhere.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from importlib import resources

from lark import Lark

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
def lark_parser() -> Lark:
    """The LALR parser (contextual lexer). Built once per process (about 50 ms)."""
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        start=START_SYMBOLS,
        propagate_positions=True,
        maybe_placeholders=False,
        lexer_callbacks={"COMMENT": _collect_comment},
    )


# Comments are ignored by the parser but collected for the formatter, per thread and
# per parse: `collecting_comments` installs a fresh list for the duration of one parse.
_local = threading.local()


def _collect_comment(token):
    sink = getattr(_local, "sink", None)
    if sink is not None:
        sink.append(token)
    return token


class collecting_comments:
    """Context manager yielding the list of COMMENT tokens seen while parsing."""

    def __enter__(self) -> list:
        self._saved = getattr(_local, "sink", None)
        _local.sink = []
        return _local.sink

    def __exit__(self, *exc) -> None:
        _local.sink = self._saved
