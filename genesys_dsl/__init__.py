"""genesys-dsl: discover language-model block architectures with a typed DSL.

The public API, in the order data flows through it:

    design = parse(text, filename)        # GAB text -> typed tree (raises DSLError)
    report = check(design)                # static analysis: report.ok, report.diagnostics
    figures = stats(design, "cpu-xs")     # parameter count and FLOPs per token
    text = unparse(design)                # canonical GAB text
"""

from .check import Report, Stats, check, stats
from .hookspecs import hookimpl
from .ir import Design, same_design, strip_spans
from .scales import scales
from .syntax.diagnostics import Diagnostic, DSLError
from .syntax.parse import parse, parse_file
from .syntax.unparse import unparse

__version__ = "0.1.0"

__all__ = [
    "Report",
    "hookimpl",
    "Stats",
    "check",
    "scales",
    "stats",
    "Design",
    "Diagnostic",
    "DSLError",
    "parse",
    "parse_file",
    "same_design",
    "strip_spans",
    "unparse",
    "__version__",
]
