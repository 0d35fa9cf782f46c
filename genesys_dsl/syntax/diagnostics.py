"""Located diagnostics, the error type users see, and compiler-style rendering.

Every problem a user (or an LLM) can cause is a `Diagnostic`: severity, a stable
`code`, a message, a location and a hint. Syntax errors raise `DSLError`, which
carries the same diagnostics, so callers handle one shape of error everywhere.
"""

from __future__ import annotations

from typing import Iterable, Literal

from pydantic import BaseModel

from ..ir import Span

Severity = Literal["error", "warning"]


class Diagnostic(BaseModel):
    severity: Severity = "error"
    code: str
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    end_line: int | None = None
    end_column: int | None = None
    hint: str | None = None
    path: str | None = None  # JSON path, for designs given as JSON

    @classmethod
    def at(
        cls,
        span: Span | None,
        code: str,
        message: str,
        *,
        hint: str | None = None,
        severity: Severity = "error",
        file: str | None = None,
    ) -> "Diagnostic":
        where = (
            dict(
                line=span.line,
                column=span.column,
                end_line=span.end_line,
                end_column=span.end_column,
            )
            if span
            else {}
        )
        return cls(severity=severity, code=code, message=message, hint=hint, file=file, **where)

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def sort_key(self) -> tuple:
        return (self.file or "", self.line or 0, self.column or 0, self.code)


class DSLError(Exception):
    """A design that cannot be read: bad syntax, bad JSON, a file that is not a spec.

    `diagnostics` holds at least one located diagnostic; `source` the text they point into.
    """

    def __init__(self, diagnostics: Iterable[Diagnostic], source: str | None = None):
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        if not self.diagnostics:
            raise ValueError("DSLError needs at least one diagnostic")
        self.source = source
        super().__init__(render_plain(self.diagnostics[0]))

    def render(self, color: bool = False) -> str:
        return render_all(self.diagnostics, self.source, color=color)


def render_plain(d: Diagnostic) -> str:
    where = d.file or "<input>"
    if d.line is not None:
        where += f":{d.line}:{d.column}"
    elif d.path:
        where += f": {d.path}"
    return f"{where}: {d.severity}[{d.code}]: {d.message}"


_STYLE = {"error": "\x1b[1;31m", "warning": "\x1b[1;33m", "hint": "\x1b[1;36m", "end": "\x1b[0m"}


def render(d: Diagnostic, source: str | None, *, color: bool = False) -> str:
    """file:line:col: severity[code]: message, then the source line, a caret, the hint."""

    def paint(text: str, style: str) -> str:
        return f"{_STYLE[style]}{text}{_STYLE['end']}" if color else text

    head = render_plain(d)
    head = head.replace(f"{d.severity}[", paint(d.severity, d.severity) + "[", 1)
    lines = [head]
    source_lines = source.split("\n") if source is not None else []  # lines as the lexer counts them
    if d.line is not None and 1 <= d.line <= len(source_lines):
        text = source_lines[d.line - 1].rstrip("\r")
        shown, offset = _clip(text, d.column or 1)
        gutter = f"{d.line:>5} | "
        lines.append(gutter + shown)
        if d.end_line == d.line and d.end_column and d.end_column > (d.column or 1):
            width = d.end_column - (d.column or 1)
        else:
            width = 1
        width = max(1, min(width, len(shown) - offset + 1))
        lines.append(" " * (len(gutter) - 2) + "| " + " " * offset + paint("^" * width, d.severity))
    if d.hint:
        lines.append("  " + paint("hint", "hint") + ": " + d.hint)
    return "\n".join(lines)


def _clip(text: str, column: int, width: int = 100) -> tuple[str, int]:
    """Show at most `width` characters of a long line, keeping the column visible."""
    # one printable character per source character keeps the caret aligned
    text = "".join(c if c.isprintable() else " " if c == "\t" else "?" for c in text)
    start = max(0, min(column - 1 - width // 2, len(text) - width)) if len(text) > width else 0
    shown = text[start : start + width]
    return ("..." + shown if start else shown), (column - 1 - start + (3 if start else 0))


def render_all(diagnostics: Iterable[Diagnostic], source: str | None, *, color: bool = False) -> str:
    return "\n".join(render(d, source, color=color) for d in diagnostics)
