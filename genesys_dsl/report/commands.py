"""`genesys report RUN`: write a run's static HTML report, and open it on request."""

from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path
from typing import Callable


def add_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    p = command("report", cmd_report, "write a static HTML report of an evolution run: leaderboard, fitness over "
                                      "time, lineage graph, a page per design (opens offline from file://)")
    p.add_argument("run", metavar="RUN", help="the run folder (`genesys evolve --run RUN`)")
    p.add_argument("-o", "--output", metavar="DIR", help="folder to write the report into (default: RUN/report)")
    p.add_argument("--open", action="store_true", help="open the report in a web browser when one is available")


def cmd_report(args) -> int:
    from ..cli import EXIT_OK, UsageError
    from . import ReportError, write_report

    out_dir = Path(args.output) if args.output else Path(args.run) / "report"
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a folder; give -o a folder for the report")
    try:
        index = write_report(args.run, out_dir)
    except ReportError as err:
        raise UsageError(str(err)) from None
    print(f"report: {index}")
    if args.open:
        open_in_browser(index)
    return EXIT_OK


def open_in_browser(index: Path) -> bool:
    """Open the report in the user's browser; where there is none, say where it is."""
    from . import report_uri

    uri = report_uri(index)
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        print(f"no web browser found here; open {uri} in one", file=sys.stderr)
        return False
    if not browser.open(uri):
        print(f"the web browser did not start; open {uri} in one", file=sys.stderr)
        return False
    print(f"opened {uri}", file=sys.stderr)
    return True
