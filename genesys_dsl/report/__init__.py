"""`genesys report`: a static HTML report of an evolution run (leaderboard, fitness
over time, lineage graph, a page per design), readable offline from file://."""

from .data import ReportError, gather, open_run
from .html import render_report, report_uri, write_report

__all__ = ["ReportError", "gather", "open_run", "render_report", "report_uri", "write_report"]
