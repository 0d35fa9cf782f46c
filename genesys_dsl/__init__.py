"""genesys-dsl: discover language-model block architectures with a typed DSL.

The public API, in the order data flows through it:

    design = parse(text, filename)        # GAB text -> typed tree (raises DSLError)
    report = check(design)                # static analysis: report.ok, report.diagnostics
    figures = stats(design, "cpu-xs")     # parameter count and FLOPs per token
    text = unparse(design)                # canonical GAB text
    source = compile_source(design)       # one standalone PyTorch module (needs only torch)
    model = build(design, "cpu-xs")       # the LM at a scale: model(input_ids) -> logits
"""

__version__ = "0.1.0"  # before the imports: submodules read it

from .check import Report, Stats, check, stats
from .compile import build, compile_source
from .hookspecs import hookimpl
from .ir import Design, same_design, strip_spans
from .scales import scales
from .syntax.diagnostics import Diagnostic, DSLError
from .syntax.parse import parse, parse_file
from .syntax.unparse import unparse


__all__ = [
    "Report",
    "build",
    "compile_source",
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
