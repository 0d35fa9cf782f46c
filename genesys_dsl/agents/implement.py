"""One implementer attempt: read a unit from a reply, splice it into the design,
check it, optionally verify it. Every problem comes back as diagnostics (the JSON
the implementer is shown), never as an exception.

Locations: a problem in the reply's own text (syntax, wrong unit) counts lines from
the start of the reply (`"file": "reply"`); a problem the checker finds in the
spliced design points into the design's canonical text (`"file": "design"`), with
the offending line quoted under `"source"`, since the model never saw that text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .. import ir
from ..check import check, diagnostics_dict
from ..syntax.diagnostics import Diagnostic, DSLError
from ..syntax.parse import parse
from ..syntax.unparse import unparse
from .backend import AgentReply
from .config import FlowSettings
from .replies import fenced_blocks, reply_problem

DESIGN_FILE = "design"
REPLY_FILE = "reply"
_DEFINITION_START = re.compile(r"^[ \t]*(unit\b|block[ \t]*\(|design\b)", re.M)


@dataclass
class Attempt:
    """The outcome of one attempt: the new design, or why not."""

    design: ir.Design | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    sources: dict[int, str] = field(default_factory=dict)  # index of a diagnostic -> the design line

    @property
    def ok(self) -> bool:
        return self.design is not None

    def to_json(self) -> list[dict]:
        """The diagnostics as `genesys check --format json` gives them, plus quoted lines."""
        out = diagnostics_dict(self.diagnostics)["diagnostics"]
        for i, line in self.sources.items():
            out[i]["source"] = line
        return out


def unit_label(name: str) -> str:
    return "the block" if name == ir.BLOCK_NAME else f"unit {name}"


def read_unit(reply: AgentReply, expected: str) -> tuple[ir.Unit | None, list[Diagnostic]]:
    """The one definition a reply holds, checked to be `expected` ("block" or a unit name)."""
    problem = reply_problem(reply)
    if problem is not None and problem.code == "empty-reply":
        return None, [problem]
    text, before = _locate(reply.text)
    if not _DEFINITION_START.search(text):
        return None, [p for p in (problem,) if p] + [Diagnostic(
            code="no-definition", file=REPLY_FILE, message="the reply holds no GAB definition",
            hint=f"answer with the definition of {unit_label(expected)} only")]
    wrapped = text if text.lstrip().startswith("design") else "design reply\n" + text
    shift = before - (0 if wrapped is text else 1)
    try:
        units = parse(wrapped, filename=REPLY_FILE).units
    except DSLError as err:
        return None, [p for p in (problem,) if p] + [_shifted(d, shift) for d in err.diagnostics]
    if len(units) != 1:
        names = ", ".join(u.name for u in units)
        return None, [Diagnostic(code="several-definitions", file=REPLY_FILE,
                                 message=f"the reply defines {len(units)} units ({names}); write one at a time",
                                 hint=f"answer with the definition of {unit_label(expected)} only")]
    unit = units[0]
    if (expected == ir.BLOCK_NAME) != unit.is_block or (not unit.is_block and unit.name != expected):
        got = "the block" if unit.is_block else f"unit {unit.name}"
        return None, [Diagnostic(code="wrong-unit", file=REPLY_FILE, message=f"the reply defines {got}, "
                                 f"not {unit_label(expected)}",
                                 hint=f"answer with the definition of {unit_label(expected)}")]
    return ir.strip_spans(ir.Design(name="reply", units=[unit])).units[0], []


def _locate(text: str) -> tuple[str, int]:
    """The definition in a reply and how many reply lines come before it: the first
    fenced block that holds one, else the text from the first `unit`/`block` line;
    either up to the last `}`."""
    for block in fenced_blocks(text):
        match = _DEFINITION_START.search(block)
        if match:
            start = text.find(block)
            return _trim(block, match.start()), text.count("\n", 0, start) + block.count("\n", 0, match.start())
    match = _DEFINITION_START.search(text)
    if not match:
        return text, 0
    return _trim(text, match.start()), text.count("\n", 0, match.start())


def _trim(text: str, start: int) -> str:
    end = text.rfind("}")
    return text[start: end + 1] if end >= start else text[start:]


def _shifted(d: Diagnostic, lines: int) -> Diagnostic:
    if d.line is None:
        return d
    return d.model_copy(update={"line": d.line + lines, "end_line": (d.end_line or d.line) + lines,
                                "file": REPLY_FILE})


def splice(design: ir.Design, unit: ir.Unit) -> ir.Design:
    """A copy of `design` with `unit` replacing the unit of its name (or the block), or
    added after the others."""
    child = ir.strip_spans(design)
    unit = unit.model_copy(deep=True)
    for i, old in enumerate(child.units):
        if (unit.is_block and old.is_block) or (not unit.is_block and not old.is_block and old.name == unit.name):
            unit.comments = unit.comments or old.comments
            child.units[i] = unit
            return child
    child.units.append(unit)
    return child


def check_design(design: ir.Design, settings: FlowSettings, *, verify_now: bool) -> Attempt:
    """`design` checked at the configured scales, and verified when asked."""
    text = unparse(design)
    try:
        parsed = parse(text, filename=DESIGN_FILE)
    except DSLError as err:  # the printer and parser disagree: report, do not crash
        return _with_sources(Attempt(None, list(err.diagnostics)), text)
    report = check(parsed, list(settings.scales), file=DESIGN_FILE)
    if not report.ok:
        return _with_sources(Attempt(None, report.errors), text)
    if verify_now:
        from ..verify import verify  # imports torch: only when verifying

        verified = verify(parsed, settings.scales[0], checks=tuple(settings.verify_checks))
        if not verified.ok:
            return _with_sources(Attempt(None, verified.errors), text)
    return Attempt(ir.strip_spans(parsed))


def _with_sources(attempt: Attempt, text: str) -> Attempt:
    lines = text.splitlines()
    for i, d in enumerate(attempt.diagnostics):
        if d.file == DESIGN_FILE and d.line is not None and 0 < d.line <= len(lines):
            attempt.sources[i] = lines[d.line - 1]
    return attempt


def attempt_unit(design: ir.Design, reply: AgentReply, expected: str, settings: FlowSettings) -> Attempt:
    """Read `expected` from the reply, splice it into `design`, check (and verify)."""
    unit, problems = read_unit(reply, expected)
    if unit is None:
        return Attempt(None, problems)
    child = splice(design, unit)
    return check_design(child, settings, verify_now=settings.verify == "unit")
