"""Everything a report shows, read from a run's archive into plain dicts.

The pages (html.py) only lay these dicts out; nothing here writes HTML. All text
comes from the archive or the run folder and is untrusted: it is kept as data here
and escaped where it is written. Transcripts are read only from inside the run
folder, whatever path the archive names.
"""

from __future__ import annotations

import difflib
import json
import re
from collections import Counter, OrderedDict, defaultdict
from pathlib import Path
from typing import Any

from ..evolve import archive_cli
from ..evolve.archive_cli import DEFAULT_STORE, task_summaries
from ..evolve.store import FAILED, OK, Store, StoreError

MAX_TRANSCRIPT_BYTES = 5_000_000  # a transcript bigger than this is named, not shown
_HASH = re.compile(r"[0-9a-f]{8,128}")


class ReportError(Exception):
    """A run folder that cannot be reported: missing, without an archive, unreadable."""


def open_run(run_dir: str | Path, store: str = DEFAULT_STORE) -> Store:
    """The archive of the run in `run_dir`, opened without creating anything."""
    try:
        return archive_cli.open_run(str(run_dir), store)
    except StoreError as err:
        raise ReportError(str(err)) from None


def page_name(design_id: str, order: int) -> str:
    """The file name of a design's page: its hash, or its archive position when the id
    is not a plain hash (ids are archive data, never trusted as file names)."""
    return f"{design_id}.html" if _HASH.fullmatch(design_id) else f"design-{order}.html"


# ------------------------------------------------------------------ the whole run


def gather(store: Store, run_dir: str | Path) -> dict[str, Any]:
    """The report's data: run summary, designs (with everything per design), the
    leaderboard, the fitness series and the lineage graph."""
    run_dir = Path(run_dir)
    rungs = store.rungs()
    records = store.designs()
    evaluations: dict[str, list[dict]] = defaultdict(list)
    for e in store.evaluations():
        evaluations[e.design_id].append(e.to_dict())
    children: dict[str, list[str]] = defaultdict(list)
    for rec in records:
        for parent in rec.parents:
            children[parent].append(rec.id)

    designs = []
    for order, rec in enumerate(records):
        fitness = {r: {"mean": f.mean, "ci_low": f.ci_low, "ci_high": f.ci_high}
                   for r, f in store.fitness(rec.id).items()}
        top = max(fitness, key=rungs.index) if fitness else None
        designs.append({
            **rec.to_dict(), "short": rec.id[:12], "order": order, "page": page_name(rec.id, order),
            "children": children.get(rec.id, []), "fitness": fitness, "top_rung": top,
            "params": _params(evaluations[rec.id], top), "evaluations": evaluations[rec.id],
        })
    by_id = {d["id"]: d for d in designs}
    leaderboard = [_leader(rank, entry, by_id) for rank, entry in
                   enumerate(store.leaderboard(limit=max(len(records), 1)), start=1)]
    return {
        "run": _summary(store, run_dir, rungs, designs),
        "rungs": rungs,
        "designs": designs,
        "leaderboard": leaderboard,
        "series": fitness_series(designs, rungs),
        "lineage": lineage(designs),
    }


class ParsedDesigns:
    """Archived texts parsed once while they are in use (a parent is compared with each
    of its children); the least recently used trees are dropped past `keep`."""

    def __init__(self, keep: int = 512) -> None:
        self._trees: OrderedDict[str, Any] = OrderedDict()
        self._keep = keep

    def __call__(self, design: dict[str, Any]):
        from ..syntax.parse import parse

        key = design["id"]
        if key in self._trees:
            self._trees.move_to_end(key)
        else:
            self._trees[key] = parse(design["text"], filename=f"<{key[:12]}>")
            if len(self._trees) > self._keep:
                self._trees.popitem(last=False)
        return self._trees[key]


def design_details(store: Store, run_dir: str | Path, design: dict[str, Any], by_id: dict[str, dict[str, Any]],
                   parsed: ParsedDesigns | None = None) -> dict[str, Any]:
    """What only a design's own page shows: scores per rung and task with intervals,
    check/verify reports, the diff to each parent, the agent transcript. Read one
    design at a time, so a large run's scores and transcripts are never all in memory."""
    parsed = parsed or ParsedDesigns()
    rungs = store.rungs()
    tasks = task_summaries(store.scores(design["id"]))
    tasks.sort(key=lambda t: (rungs.index(t["rung"]) if t["rung"] in rungs else len(rungs), t["suite"], t["task"]))
    return {
        "tasks": tasks,
        "reports": store.reports(design["id"]),
        "parent_diffs": [parent_diff(by_id[p], design, parsed) for p in design["parents"] if p in by_id],
        "transcript": load_transcript(run_dir, design["transcript"]),
    }


def _params(evaluations: list[dict], rung: str | None) -> int | None:
    """Parameters of the model built at the design's highest rung (else any rung)."""
    ok = [e for e in evaluations if e["status"] == OK and e["params"] is not None]
    at_top = [e for e in ok if e["rung"] == rung]
    return (at_top or ok or [{"params": None}])[0]["params"]


def _leader(rank: int, entry, by_id: dict[str, dict[str, Any]]) -> dict[str, Any]:
    design = by_id[entry.design.id]
    return {"rank": rank, "id": design["id"], "short": design["short"], "name": design["name"],
            "page": design["page"], "rung": entry.rung, "rung_index": entry.rung_index,
            "mean": entry.fitness.mean, "ci_low": entry.fitness.ci_low, "ci_high": entry.fitness.ci_high,
            "params": design["params"], "origin": design["origin"], "operator": design["operator"],
            "generation": design["generation"], "status": design["status"]}


def _summary(store: Store, run_dir: Path, rungs: list[str], designs: list[dict]) -> dict[str, Any]:
    evaluations = [e for d in designs for e in d["evaluations"]]
    stops = store.events("stopped")
    costs: dict[str, dict[str, float]] = defaultdict(lambda: {"prompt_tokens": 0, "completion_tokens": 0,
                                                              "dollars": 0.0, "calls": 0})
    for c in store.costs():
        row = costs[c["role"]]
        row["prompt_tokens"] += c["prompt_tokens"]
        row["completion_tokens"] += c["completion_tokens"]
        row["dollars"] += c["dollars"]
        row["calls"] += 1
    return {
        "folder": str(run_dir),
        "title": run_dir.resolve().name,
        "rungs": rungs,
        "designs": len(designs),
        "by_status": dict(Counter(d["status"] for d in designs).most_common()),
        "by_origin": dict(Counter(d["origin"] for d in designs).most_common()),
        "scored_per_rung": {r: sum(r in d["fitness"] for d in designs) for r in rungs},
        "evaluations": dict(Counter(e["status"] for e in evaluations).most_common()),
        "failures": dict(Counter(e["reason"] or "error" for e in evaluations if e["status"] == FAILED).most_common()),
        "tokens": sum(e["tokens"] or 0 for e in evaluations),
        "wall_seconds": sum(e["wall_seconds"] or 0.0 for e in evaluations),
        "elapsed_seconds": store.get_meta("elapsed_seconds"),
        "stopped": stops[-1]["payload"].get("reason") if stops else None,
        "costs": dict(costs),
        "config": store.get_meta("config"),
    }


# ------------------------------------------------------------------ charts


def fitness_series(designs: list[dict], rungs: list[str]) -> dict[str, Any]:
    """Fitness against design number (archive order), per rung: each design's mean and
    interval where it has one, and the best mean so far. Only designs with a fitness
    somewhere are points on the x axis."""
    scored = [d for d in designs if d["fitness"]]
    series = []
    for rung in rungs:
        means, lows, highs, best, top = [], [], [], [], None
        for d in scored:
            f = d["fitness"].get(rung)
            means.append(f and f["mean"])
            lows.append(f and f["ci_low"])
            highs.append(f and f["ci_high"])
            if f is not None and (top is None or f["mean"] > top):
                top = f["mean"]
            best.append(top)
        series.append({"rung": rung, "mean": means, "ci_low": lows, "ci_high": highs, "best": best})
    return {"x": [d["order"] for d in scored], "names": [d["name"] for d in scored], "series": series}


def lineage(designs: list[dict]) -> dict[str, Any]:
    """Parents -> children, each edge labelled with the operator (or origin) that made
    the child; seeds are the roots."""
    nodes = [{"id": d["id"], "name": d["name"], "page": d["page"], "origin": d["origin"], "status": d["status"],
              "rung": d["top_rung"], "fitness": d["fitness"][d["top_rung"]]["mean"] if d["top_rung"] else None}
             for d in designs]
    known = {d["id"] for d in designs}
    edges = [{"from": p, "to": d["id"], "label": d["operator"] or d["origin"], "position": i}
             for d in designs for i, p in enumerate(d["parents"]) if p in known]
    return {"nodes": nodes, "edges": edges}


# ------------------------------------------------------------------ per design


def parent_diff(parent: dict[str, Any], child: dict[str, Any], parsed: ParsedDesigns) -> dict[str, Any]:
    """The structural diff (`genesys diff`) and the line diff of the canonical texts."""
    from ..gp import diff
    from ..syntax.diagnostics import DSLError

    try:
        edits = diff(parsed(parent), parsed(child))
        problem = None
    except DSLError as err:  # an archived text that no longer parses: say so, keep the line diff
        edits, problem = [], str(err)
    lines = list(difflib.unified_diff(parent["text"].splitlines(), child["text"].splitlines(),
                                      fromfile=parent["name"], tofile=child["name"], lineterm=""))
    return {"parent": parent["id"], "name": parent["name"], "page": parent["page"], "edits": edits,
            "problem": problem, "text_diff": lines}


def load_transcript(run_dir: str | Path, ref: str | None) -> dict[str, Any] | None:
    """The agent transcript the archive points at: {"path", "data"} or {"path", "error"}."""
    if not ref:
        return None
    root = Path(run_dir).resolve()
    path = (root / ref).resolve()
    if not path.is_relative_to(root):
        return {"path": ref, "error": "outside the run folder; not read"}
    try:
        size = path.stat().st_size
        if size > MAX_TRANSCRIPT_BYTES:
            return {"path": ref, "error": f"{size:,} bytes, more than the {MAX_TRANSCRIPT_BYTES:,} a report shows"}
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"path": ref, "error": "no such file in the run folder"}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return {"path": ref, "error": f"unreadable: {err}"}
    return {"path": ref, "data": data}
