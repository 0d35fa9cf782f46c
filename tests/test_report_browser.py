"""The report as a browser shows it: headless Chromium loads the pages from file://,
runs their scripts, and we read the DOM it ends with (`--dump-dom`) and keep a
screenshot in test-artifacts/report/ (git-ignored; CI can upload it).

Skipped, saying why, where no Chromium is installed (Debian: `apt-get install -y
chromium`; GENESYS_CHROMIUM names another binary). CI sets GENESYS_REQUIRE_CHROMIUM=1,
which turns a missing Chromium into a failure instead.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from genesys_dsl.report import write_report
from paths import ROOT
from test_report import EVIL_NAME, make_run

ARTIFACTS = Path(os.environ.get("GENESYS_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "report"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic", "--hide-scrollbars",
         "--virtual-time-budget=5000"]


def _chromium() -> str | None:
    named = os.environ.get("GENESYS_CHROMIUM")
    if named:
        return shutil.which(named)
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


CHROMIUM = _chromium()
REQUIRED = os.environ.get("GENESYS_REQUIRE_CHROMIUM") == "1"
pytestmark = pytest.mark.skipif(CHROMIUM is None and not REQUIRED, reason="no Chromium here (Debian: apt-get install -y chromium; "
                                                          "or set GENESYS_CHROMIUM); the report's browser checks "
                                                          "are skipped")


def run_chromium(profile: Path, *args: str) -> str:
    """Chromium with a fresh profile on one page; its stdout."""
    done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if CHROMIUM is None:
        pytest.fail("GENESYS_REQUIRE_CHROMIUM=1 but no Chromium found (chromium, chromium-browser, google-chrome, "
                    "or GENESYS_CHROMIUM)")
    base = tmp_path_factory.mktemp("browser")
    recs = make_run(base / "run")
    index = write_report(base / "run", base / "site")
    return index, recs, base


def dom(site, page: Path, fragment: str = "") -> str:
    index, _, base = site
    profile = base / f"profile-{len(list(base.glob('profile-*')))}"
    return run_chromium(profile, "--dump-dom", page.resolve().as_uri() + fragment)


def rows(document: str, table_id: str) -> list[str]:
    """The data-id of each body row, in the order the page shows them."""
    table = re.search(rf'<table id="{table_id}".*?</table>', document, re.S).group(0)
    return re.findall(r'<tr data-id="([0-9a-f]+)"', table)


def test_index_renders_leaderboard_chart_and_lineage(site):
    index, recs, _ = site
    document = dom(site, index)
    ids = {k: r.id for k, r in recs.items()}
    assert rows(document, "leaderboard") == [ids[k] for k in ("transformer", "child", "llama", "cross")]

    chart = re.search(r'<div id="fitness-chart"[^>]*>(.*?)</section>', document, re.S)
    assert 'data-rendered="uplot"' in chart.group(0) and "<canvas" in chart.group(1)
    legend = [html.unescape(t) for t in re.findall(r'class="u-label">([^<]*)<', chart.group(1))]
    assert legend == ["design", "r0", "best so far at r0", "r1", "best so far at r1"]

    graph = re.search(r'<div id="lineage-graph"[^>]*>(.*?)</div>', document, re.S)
    assert 'data-rendered="6 nodes, 5 edges"' in graph.group(0)
    svg = graph.group(1)
    assert svg.startswith('<svg class="lineage"')
    nodes = re.findall(r'<a href="designs/([^"]+)" class="node (\w+) status-(\w+)">', svg)
    assert {page for page, _, _ in nodes} == {f"{r.id}.html" for r in recs.values()}
    assert ("crossover", "evaluated") in {(o, s) for _, o, s in nodes}
    labels = re.findall(r'<text class="edge-label"[^>]*>([^<]*)</text>', svg)
    assert sorted(labels) == sorted([recs["child"].operator, recs["cross"].operator, recs["cross"].operator,
                                     recs["grandchild"].operator, recs["invalid"].operator])
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg  # drawn as text, not markup
    assert EVIL_NAME not in document


def test_leaderboard_sorts_by_a_column(site):
    index, recs, _ = site
    by_params = sorted(("transformer", "child", "llama", "cross"),
                       key=lambda k: {"transformer": 400_000, "child": 380_000, "llama": 120_000,
                                      "cross": 117_000}[k])
    document = dom(site, index, "#sort=leaderboard:params:asc")
    assert rows(document, "leaderboard") == [recs[k].id for k in by_params]
    assert re.search(r'<th data-key="params" data-type="num" aria-sort="ascending">', document)
    document = dom(site, index, "#sort=leaderboard:name:desc")
    names = {r.id: r.name.lower() for r in recs.values()}
    shown = [names[i] for i in rows(document, "leaderboard")]
    assert shown == sorted(shown, reverse=True)


def test_design_page_renders_spec_diff_scores_and_transcript(site):
    index, recs, _ = site
    page = index.parent / "designs" / f"{recs['child'].id}.html"
    document = dom(site, page)
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt; · genesys report</title>" in document
    assert '<pre class="gab"><span class="c">#' in document and '<span class="k">block</span>' in document
    diff = re.search(r'<section id="diff">(.*?)</section>', document, re.S).group(1)
    assert "from <a" in diff and all(html.escape(e, quote=False) in diff for e in recs["child"].edits)
    assert "0.6500 <span" in document  # the r0 fitness with its interval
    assert "&lt;img src=x onerror=alert(2)&gt;" in document and "<img" not in document


def test_screenshot_is_kept_as_an_artifact(site):
    index, recs, base = site
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shots = {"index.png": index, "design.png": index.parent / "designs" / f"{recs['child'].id}.html"}
    for name, page in shots.items():
        target = ARTIFACTS / name
        target.unlink(missing_ok=True)
        run_chromium(base / f"shot-{name}", "--window-size=1280,1800", f"--screenshot={target}",
                     page.resolve().as_uri())
        data = target.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", data[16:24]) == (1280, 1800)
        assert len(data) > 30_000, "an almost empty screenshot: the page did not render"
        print(f"screenshot: {target}")
