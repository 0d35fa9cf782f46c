"""`genesys report`: the static HTML report of a run, from an archive built through the
Store API (no training): files, leaderboard, per-design pages, chart and lineage data,
escaping of untrusted text, no external resources, the command's errors."""

from __future__ import annotations

import html
import json
import re
import tomllib
import webbrowser
from fnmatch import fnmatch
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from genesys_dsl.cli import main
from genesys_dsl.evolve.sqlite_store import SQLiteStore
from genesys_dsl.evolve.store import DesignRecord, EvaluationResult
from genesys_dsl.gp import crossover, diff, mutate
from genesys_dsl.report import gather, write_report
from genesys_dsl.report.highlight import highlight
from genesys_dsl.syntax.files import read_design
from paths import ROOT, SPECS, seed_paths

EVIL_NAME = "<script>alert(1)</script>"
EVIL_REPLY = "<img src=x onerror=alert(2)>"
RUNGS = ["r0", "r1"]


def _score(task: str, score: float) -> dict:
    return {"suite": "synthetic", "task": task, "metric": "accuracy", "score": score, "normalized": score,
            "random_score": 0.0, "best_score": 1.0}


def _evaluate(store: SQLiteStore, design_id: str, rung: str, seed: int, scores: dict[str, float] | None,
              params: int = 117_000, reason: str = "oom", message: str | None = None) -> None:
    eval_id = store.queue_evaluation(design_id, rung, seed)
    store.start_evaluation(eval_id)
    if scores is None:
        store.finish_evaluation(eval_id, EvaluationResult.failed(reason, message, wall_seconds=1.5))
    else:
        store.finish_evaluation(eval_id, EvaluationResult(
            status="ok", scores=[_score(t, s) for t, s in scores.items()], tokens=20_000, wall_seconds=3.0,
            params=params))


def make_run(run: Path) -> dict[str, DesignRecord]:
    """A small archive: two seeds, a mutation (with a hostile name and an agent
    transcript), a crossover, a grandchild whose evaluation failed, an invalid design;
    scores at two rungs with intervals, check/verify reports, costs and events."""
    transformer, llama = read_design(SPECS / "transformer.gab"), read_design(SPECS / "llama.gab")
    child = mutate(transformer, seed=3)
    cross = crossover(transformer, llama, seed=5)
    grandchild = mutate(child.design, seed=11)
    invalid = mutate(llama, seed=7)

    recs = {
        "transformer": DesignRecord.from_design(transformer, origin="seed", status="evaluated"),
        "llama": DesignRecord.from_design(llama, origin="seed", status="evaluated"),
    }
    recs["child"] = DesignRecord.from_design(
        child.design, name=EVIL_NAME, parents=[recs["transformer"].id], origin="mutation", operator=child.operator,
        edits=child.edits, generation=1, status="evaluated", transcript="transcripts/child.transcript.json",
        proposal={"motivation": "try <b>this</b>"})
    recs["cross"] = DesignRecord.from_design(
        cross.design, name="crossed", parents=[recs["transformer"].id, recs["llama"].id], origin="crossover",
        operator=cross.operator, edits=cross.edits, generation=1, status="evaluated")
    recs["grandchild"] = DesignRecord.from_design(
        grandchild.design, name="grandchild", parents=[recs["child"].id], origin="mutation",
        operator=grandchild.operator, edits=grandchild.edits, generation=2, status="failed", reason="oom",
        transcript="../../outside.json")
    recs["invalid"] = DesignRecord.from_design(
        invalid.design, name="broken", parents=[recs["llama"].id], origin="mutation", operator=invalid.operator,
        generation=1, status="invalid", reason="shape-mismatch: <x> is seq[D], not seq[H, E]")

    with SQLiteStore.open(run) as store:
        store.set_meta("rungs", RUNGS)
        store.set_meta("config", {"run": {"seed": 0, "ladder": "cpu"}})
        for rec in recs.values():
            assert store.add_design(rec)
        t, la, c, x, g = (recs[k].id for k in ("transformer", "llama", "child", "cross", "grandchild"))
        for seed, (a, b) in enumerate([(0.40, 0.50), (0.46, 0.54)]):
            _evaluate(store, t, "r0", seed, {"mqar": a, "copy": b})
        _evaluate(store, la, "r0", 0, {"mqar": 0.30, "copy": 0.20}, params=120_000)
        _evaluate(store, c, "r0", 0, {"mqar": 0.60, "copy": 0.70}, params=98_000)
        _evaluate(store, x, "r0", 0, {"mqar": 0.20, "copy": 0.25})
        _evaluate(store, g, "r0", 0, None, message="CUDA out of memory <at> step 3")
        _evaluate(store, t, "r1", 0, {"mqar": 0.55, "copy": 0.65}, params=400_000)
        _evaluate(store, c, "r1", 0, {"mqar": 0.50, "copy": 0.60}, params=380_000)
        store.set_fitness(t, "r0", 0.475, 0.45, 0.50)
        store.set_fitness(la, "r0", 0.25, 0.25, 0.25)
        store.set_fitness(c, "r0", 0.65, 0.65, 0.65)
        store.set_fitness(x, "r0", 0.225, 0.225, 0.225)
        store.set_fitness(t, "r1", 0.60, 0.60, 0.60)
        store.set_fitness(c, "r1", 0.55, 0.55, 0.55)
        store.add_report(recs["invalid"].id, "check", False, {"message": "shape-mismatch <in> block"})
        store.add_report(c, "verify", True, {"ok": True, "scale": "cpu-xs", "figures": {"budget": {"params": 98_000}},
                                             "diagnostics": [{"severity": "warning", "code": "slow-step",
                                                              "message": "step time 2.1x the transformer",
                                                              "line": None, "hint": None}]})
        store.add_cost(c, "proposer", 1200, 300, 0.0042)
        store.log_event("stopped", {"reason": "time budget spent"})

    transcripts = run / "transcripts"
    transcripts.mkdir()
    (transcripts / "child.transcript.json").write_text(json.dumps({
        "format": "genesys-transcript/1", "backend": "openai", "seed": 0, "mode": "mutation",
        "events": [{"step": 1, "role": "proposer", "outcome": "accepted",
                    "request": {"messages": [{"role": "user", "content": "Improve </pre> this design"}]},
                    "reply": {"text": EVIL_REPLY, "model": "tiny"}}]}), encoding="utf-8")
    (run.parent / "outside.json").write_text('{"secret": "not for the report"}', encoding="utf-8")
    return recs


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, Path, dict[str, DesignRecord]]:
    run = tmp_path_factory.mktemp("report") / "run"
    recs = make_run(run)
    index = write_report(run, run / "report")
    return run, index, recs


def _page(index: Path, rec: DesignRecord) -> str:
    return (index.parent / "designs" / f"{rec.id}.html").read_text(encoding="utf-8")


def _embedded_data(page: str) -> dict:
    blob = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S).group(1)
    return json.loads(blob)


def _text(fragment: str) -> str:
    """What a reader sees: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def _rows(page: str, table_id: str) -> list[list[str]]:
    """The body rows of a table, as the text of each cell."""
    table = re.search(rf'<table id="{table_id}".*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    return [[_text(cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)]


# ------------------------------------------------------------------ the pages


def test_report_has_an_index_a_page_per_design_and_its_assets(report):
    run, index, recs = report
    out = index.parent
    assert index == run / "report" / "index.html"
    assert sorted(p.name for p in (out / "designs").glob("*.html")) == sorted(f"{r.id}.html" for r in recs.values())
    for asset in ("report.js", "report.css", "uPlot.iife.min.js", "uPlot.min.css", "dagre.min.js"):
        assert (out / "assets" / asset).stat().st_size > 1000 or asset == "uPlot.min.css"
    page = index.read_text(encoding="utf-8")
    for section in ("leaderboard", "fitness-chart", "lineage-graph", "all-designs"):
        assert f'id="{section}"' in page


def test_leaderboard_rows_follow_the_archive_ranking_with_intervals_and_params(report):
    run, index, recs = report
    page = index.read_text(encoding="utf-8")
    table = re.search(r'<table id="leaderboard".*?</table>', page, re.S).group(0)
    rows = re.findall(r'<tr data-id="([0-9a-f]+)">(.*?)</tr>', table, re.S)
    # highest rung first (r1: transformer 0.60, child 0.55), then r0 by fitness
    expected = ["transformer", "child", "llama", "cross"]
    assert [row[0] for row in rows] == [recs[k].id for k in expected]
    first = _text(rows[0][1])
    assert "0.6000 [0.6000, 0.6000]" in first and "400,000" in first and "r1" in first
    llama = _text(rows[2][1])
    assert "0.2500" in llama and "120,000" in llama
    # every column the brief names is sortable
    keys = re.findall(r'<th data-key="(\w+)"', table)
    assert keys == ["rank", "name", "rung", "fitness", "params", "origin", "generation"]
    # the crossover row names its origin and operator
    assert f"crossover · {recs['cross'].operator}" in _text(rows[3][1])


def test_untrusted_text_is_escaped_everywhere(report):
    run, index, recs = report
    pages = [index.read_text(encoding="utf-8")] + [_page(index, r) for r in recs.values()]
    for page in pages:
        assert "<script>alert(1)" not in page
        assert "<img src=x" not in page
        assert "<b>this</b>" not in page
        assert "<x> is seq" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]  # the leaderboard and the design table
    child = _page(index, recs["child"])
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt; · genesys report</title>" in child
    assert "&lt;img src=x onerror=alert(2)&gt;" in child  # the agent's reply in the transcript
    assert "Improve &lt;/pre&gt; this design" in child
    # the chart data is JSON inside a script element: no '<' may close it early
    blob = re.search(r'id="report-data">(.*?)</script>', pages[0], re.S).group(1)
    assert "<" not in blob and "\\u003cscript\\u003e" in blob
    assert EVIL_NAME in [n["name"] for n in _embedded_data(pages[0])["lineage"]["nodes"]]
    # every page may run only the report's own script files
    for page in pages:
        assert "script-src 'self'" in page and "<script>" not in page


def test_no_page_refers_to_anything_outside_the_report(report):
    run, index, recs = report
    out = index.parent
    for page in out.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        refs = re.findall(r'\b(?:src|href)="([^"]*)"', text)
        assert refs, page
        for ref in refs:
            assert not re.match(r"(?i)(https?:|//|ftp:|data:)", ref), f"{page.name}: {ref}"
            if not ref.startswith("#"):
                target = (page.parent / ref.split("#")[0]).resolve()
                assert target.is_file() and target.is_relative_to(out.resolve()), f"{page.name}: {ref}"
    for sheet in (out / "assets").glob("*.css"):
        assert not re.search(r"url\(|@import", sheet.read_text(encoding="utf-8")), sheet
    for script in (out / "assets").glob("*.js"):
        text = script.read_text(encoding="utf-8")
        assert not re.search(r"\bfetch\(|XMLHttpRequest|importScripts|sourceMappingURL", text), script


def test_fitness_series_per_rung_with_intervals_and_best_so_far(report):
    run, index, recs = report
    data = _embedded_data(index.read_text(encoding="utf-8"))["series"]
    order = list(recs)
    scored = ["transformer", "llama", "child", "cross"]
    assert data["x"] == [order.index(k) for k in scored]
    assert data["names"] == [recs[k].name for k in scored]
    r0, r1 = data["series"]
    assert (r0["rung"], r1["rung"]) == ("r0", "r1")
    assert r0["mean"] == [0.475, 0.25, 0.65, 0.225]
    assert r0["ci_low"][0] == 0.45 and r0["ci_high"][0] == 0.50
    assert r0["best"] == [0.475, 0.475, 0.65, 0.65]
    assert r1["mean"] == [0.60, None, 0.55, None]
    assert r1["best"] == [0.60, 0.60, 0.60, 0.60]


def test_lineage_graph_has_every_design_and_labelled_edges(report):
    run, index, recs = report
    lineage = _embedded_data(index.read_text(encoding="utf-8"))["lineage"]
    assert [n["id"] for n in lineage["nodes"]] == [r.id for r in recs.values()]
    edges = {(e["from"], e["to"]): e["label"] for e in lineage["edges"]}
    ids = {k: r.id for k, r in recs.items()}
    assert edges == {
        (ids["transformer"], ids["child"]): recs["child"].operator,
        (ids["transformer"], ids["cross"]): recs["cross"].operator,
        (ids["llama"], ids["cross"]): recs["cross"].operator,
        (ids["child"], ids["grandchild"]): recs["grandchild"].operator,
        (ids["llama"], ids["invalid"]): recs["invalid"].operator,
    }
    roots = {n["id"] for n in lineage["nodes"]} - {e["to"] for e in lineage["edges"]}
    assert roots == {ids["transformer"], ids["llama"]}


def test_design_page_shows_spec_diff_scores_reports_and_transcript(report):
    run, index, recs = report
    page = _page(index, recs["child"])
    spec = re.search(r'<pre class="gab">(.*?)</pre>', page, re.S).group(1)
    assert _text(spec) == recs["child"].text
    assert '<span class="k">design</span>' in spec and '<span class="f">Linear</span>' in spec
    diff_section = _text(re.search(r'<section id="diff">(.*?)</section>', page, re.S).group(1))
    parent = read_design(SPECS / "transformer.gab")
    from genesys_dsl.syntax.parse import parse
    for edit in diff(parent, parse(recs["child"].text)):
        assert edit in diff_section
    scores = _text(re.search(r'<section id="scores">(.*?)</section>', page, re.S).group(1))
    assert "mqar" in scores and "0.6000 [0.6000, 0.6000]" in scores
    fitness = _text(re.search(r'<section id="fitness">(.*?)</section>', page, re.S).group(1))
    assert "r0" in fitness and "0.6500" in fitness and "r1" in fitness and "0.5500" in fitness
    reports = _text(re.search(r'<section id="reports">(.*?)</section>', page, re.S).group(1))
    assert "verify: passed" in reports and "slow-step" in reports
    transcript = _text(re.search(r'<section id="transcript">(.*?)</section>', page, re.S).group(1))
    assert "step 1: proposer" in transcript and EVIL_REPLY in transcript

    # two seeds at r0 give the transformer's tasks a real interval
    seed_page = _page(index, recs["transformer"])
    assert ["r0", "synthetic", "mqar", "accuracy", "2", "0.4300 [0.4000, 0.4600]", "0.4300 [0.4000, 0.4600]"] \
        in _rows(seed_page, "task-scores")
    assert "A seed: no parent to compare with." in _text(seed_page)

    cross = _text(_page(index, recs["cross"]))
    assert "from transformer" in cross and "from llama" in cross  # a diff to each parent


def test_failures_invalid_designs_and_transcripts_outside_the_run_are_reported(report):
    run, index, recs = report
    grandchild = _text(_page(index, recs["grandchild"]))
    assert "oom: CUDA out of memory <at> step 3" in grandchild
    assert "../../outside.json: outside the run folder; not read" in grandchild
    assert "not for the report" not in grandchild
    broken = _text(_page(index, recs["invalid"]))
    assert "check: failed" in broken and "shape-mismatch <in> block" in broken
    summary = _text(re.search(r'<section id="summary">(.*?)</section>', index.read_text(encoding="utf-8"),
                              re.S).group(1))
    assert "oom 1" in summary and "time budget spent" in summary and "proposer" in summary


def test_a_second_report_into_the_same_folder_drops_pages_of_other_runs(tmp_path, report):
    run, index, recs = report
    out = tmp_path / "out"
    (out / "designs").mkdir(parents=True)
    (out / "designs" / "0123456789ab.html").write_text("old", encoding="utf-8")
    write_report(run, out)
    assert len(list((out / "designs").glob("*.html"))) == len(recs)


def test_gather_reads_an_empty_run(tmp_path):
    SQLiteStore.open(tmp_path).close()
    with SQLiteStore.open(tmp_path) as store:
        data = gather(store, tmp_path)
    assert data["designs"] == [] and data["leaderboard"] == [] and data["series"]["x"] == []
    index = write_report(tmp_path, tmp_path / "r")
    assert "No design has a fitness yet." in index.read_text(encoding="utf-8")


def test_the_package_ships_every_template_and_asset():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    package = ROOT / "genesys_dsl" / "report"
    unshipped = []
    for folder in ("assets", "templates"):
        name = f"genesys_dsl.report.{folder}"
        assert name in setuptools["packages"]
        patterns = setuptools["package-data"][name]
        unshipped += [p.name for p in (package / folder).iterdir()
                      if p.is_file() and not any(fnmatch(p.name, pattern) for pattern in patterns)]
    assert unshipped == []
    assert {"report.js", "uPlot.iife.min.js", "dagre.min.js"} <= {p.name for p in (package / "assets").iterdir()}


# ------------------------------------------------------------------ highlighting


def test_highlighting_keeps_every_seed_spec_verbatim():
    for path in seed_paths():
        text = path.read_text(encoding="utf-8")
        marked = str(highlight(text))
        assert _text(marked) == text, path
        assert '<span class="c">#' in marked or "#" not in text
        assert '<span class="k">block</span>' in marked


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("<>&\"' \n#{}()=:abc12.design block unit return")), max_size=60))
def test_highlighting_escapes_any_text(text):
    marked = str(highlight(text))
    assert _text(marked) == text
    assert re.sub(r'</?span[^>]*>', "", marked).count("<") == 0


# ------------------------------------------------------------------ the command


def test_cli_writes_the_report_and_prints_its_path(report, tmp_path, capsys):
    run, index, recs = report
    out = tmp_path / "html"
    assert main(["report", str(run), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"report: {out / 'index.html'}"
    assert (out / "designs" / f"{recs['child'].id}.html").is_file()


def test_cli_errors_are_one_line_with_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere: no such run folder" in err

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no archive in this folder" in err
    assert list(empty.iterdir()) == []  # nothing created in a folder that is not a run

    afile = tmp_path / "file.txt"
    afile.write_text("x", encoding="utf-8")
    assert main(["report", str(afile)]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_cli_refuses_an_output_that_is_a_file(report, tmp_path, capsys):
    run, _, _ = report
    target = tmp_path / "taken"
    target.write_text("x", encoding="utf-8")
    assert main(["report", str(run), "-o", str(target)]) == 2
    assert "taken: exists and is not a folder" in capsys.readouterr().err


def test_open_uses_a_browser_when_there_is_one(report, tmp_path, capsys, monkeypatch):
    run, _, _ = report
    opened = []

    class Browser:
        def open(self, uri):
            opened.append(uri)
            return True

    monkeypatch.setattr(webbrowser, "get", lambda *a: Browser())
    out = tmp_path / "opened"
    assert main(["report", str(run), "-o", str(out), "--open"]) == 0
    assert opened == [(out / "index.html").resolve().as_uri()]


def test_open_without_a_browser_says_where_the_report_is(report, tmp_path, capsys, monkeypatch):
    run, _, _ = report

    def no_browser(*a):
        raise webbrowser.Error("could not locate runnable browser")

    monkeypatch.setattr(webbrowser, "get", no_browser)
    out = tmp_path / "closed"
    assert main(["report", str(run), "-o", str(out), "--open"]) == 0
    err = capsys.readouterr().err
    assert f"no web browser found here; open {(out / 'index.html').resolve().as_uri()}" in err
