"""Write a run's report: index.html, a page per design, and the assets they use.

Pages are Jinja2 templates (templates/) with autoescaping on, so every piece of
archived text (names, specs, reasons, transcripts) is HTML-escaped; the data the
scripts draw from is embedded as JSON with `<`, `>` and `&` escaped, and each page's
Content-Security-Policy lets only the report's own script files run. The report
needs no server and loads nothing from the network: it opens from file://.
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from .. import __version__
from ..evolve.store import Store
from .data import ParsedDesigns, design_details, gather, open_run
from .highlight import highlight

DESIGNS = "designs"  # the folder of per-design pages, inside the report folder


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("genesys_dsl.report", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    # pretty-printed JSON as plain text: autoescaping then escapes it for a <pre>
    env.filters["pretty"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return env


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Report the run in `run_dir` into `out_dir` (default RUN/report); the index page's path."""
    store = open_run(run_dir)
    try:
        return render_report(store, run_dir, Path(out_dir) if out_dir is not None else Path(run_dir) / "report")
    finally:
        store.close()


def render_report(store: Store, run_dir: str | Path, out_dir: Path) -> Path:
    """Write the report of `store` (the archive of the run in `run_dir`) into `out_dir`."""
    data = gather(store, run_dir)
    env = _environment()
    designs_dir = out_dir / DESIGNS
    designs_dir.mkdir(parents=True, exist_ok=True)
    _copy_assets(out_dir / "assets")
    by_id = {d["id"]: d for d in data["designs"]}
    common = {"version": __version__, "run": data["run"], "by_id": by_id}

    index = out_dir / "index.html"
    _write(index, env.get_template("index.html.j2").render(
        **common, root="", leaderboard=data["leaderboard"], designs=data["designs"], series=data["series"],
        data={"series": data["series"], "lineage": data["lineage"]}))

    page = env.get_template("design.html.j2")
    written, parsed = set(), ParsedDesigns()
    for design in data["designs"]:
        details = design_details(store, run_dir, design, by_id, parsed)
        _write(designs_dir / design["page"], page.render(
            **common, root="../", d=design, x=details, highlighted=highlight(design["text"]),
            data={"design": design["id"]}))
        written.add(design["page"])
    for stale in designs_dir.glob("*.html"):  # pages of designs this archive does not hold
        if stale.name not in written:
            stale.unlink()
    return index


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _copy_assets(target: Path) -> None:
    """The scripts and styles, with the vendored libraries' licences."""
    target.mkdir(parents=True, exist_ok=True)
    for item in resources.files("genesys_dsl.report").joinpath("assets").iterdir():
        if item.is_file():
            with resources.as_file(item) as path:
                shutil.copyfile(path, target / item.name)


def report_uri(index: Path) -> str:
    """The file:// address of a written report."""
    return index.resolve().as_uri()

