"""Static analysis: names, types, symbolic shapes, ranges, causality, sizes at each scale."""

from .checker import Report, check, diagnostics_dict
from .stats import Stats, stats

__all__ = ["Report", "Stats", "check", "diagnostics_dict", "stats"]
