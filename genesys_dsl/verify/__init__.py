"""Functional verification: run a design's LM and check what static analysis cannot.

    report = verify(design, "cpu-xs")     # report.ok, report.diagnostics, report.figures

Checks, one module each: budget (parameters within 20% of the scale's target, or a
fitted depth/width), causality (future tokens never change past logits; the leaking
unit is named), gradients (finite outputs, a gradient for every parameter) and
efficiency (training-step time and peak memory relative to the transformer seed).
Importing this package imports torch.
"""

from .efficiency import Thresholds
from .report import VerifyReport
from .runner import CHECKS, verify

__all__ = ["CHECKS", "Thresholds", "VerifyReport", "verify"]
