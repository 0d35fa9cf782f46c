"""`genesys archive RUN ...`: read an evolution run's archive.

    top [--rung R] [-n N]     the leaderboard: highest rung reached, then fitness
    show ID                   spec, fitness and scores per rung and task, lineage, diff to the parent(s)
    lineage ID                ancestors as a tree, with the operator and edits of each step
    export --format json|csv  every design with its fitness and scores

ID is a design's canonical hash, a unique prefix of it, or a unique name. Every
command reads only: it never creates an archive, and works while a run writes.
`--format json` gives programs and agents the same content.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

from .store import DesignRecord, FitnessRecord, ScoreRecord, Store, StoreError

DEFAULT_STORE = "sqlite"


# ------------------------------------------------------------------ opening a run


def open_run(run: str, store_name: str = DEFAULT_STORE) -> Store:
    """The archive in the run folder `run`; StoreError naming what is wrong otherwise."""
    from ..plugins import store_registry

    path = Path(run)
    if not path.exists():
        raise StoreError(f"{run}: no such run folder")
    if not path.is_dir():
        raise StoreError(f"{run}: not a folder (a run is the folder `genesys evolve --run` writes)")
    kind = store_registry().lookup(store_name)
    if kind.exists is not None and not kind.exists(str(path)):
        raise StoreError(f"{run}: no archive in this folder (store '{kind.name}'); is it a run folder made by "
                         f"`genesys evolve`?")
    return kind.open(str(path))


# ------------------------------------------------------------------ formatting


def interval(f: FitnessRecord | dict | None) -> str:
    if f is None:
        return "-"
    mean, low, high = (f["mean"], f["ci_low"], f["ci_high"]) if isinstance(f, dict) else (f.mean, f.ci_low, f.ci_high)
    return f"{mean:+.4f} [{low:+.4f}, {high:+.4f}]"


def table(header: tuple[str, ...], rows: list[tuple], right: set[int] = frozenset()) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(row) -> str:
        return "  ".join(str(x).rjust(w) if i in right else str(x).ljust(w)
                         for i, (x, w) in enumerate(zip(row, widths))).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def short(design_id: str) -> str:
    return design_id[:12]


def made_by(d: DesignRecord) -> str:
    return d.origin + (f" by {d.operator}" if d.operator else "")


def emit(text: str, output: str | None) -> None:
    if output in (None, "-"):
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        Path(output).write_text(text, encoding="utf-8")


# ------------------------------------------------------------------ top


def top(store: Store, rung: str | None, limit: int) -> list[dict[str, Any]]:
    if rung is not None and rung not in store.rungs():
        raise StoreError(f"no rung '{rung}' in this run; its rungs: {', '.join(store.rungs()) or 'none yet'}")
    return [{"rank": i + 1, **entry.to_dict()} for i, entry in enumerate(store.leaderboard(rung, limit=limit))]


def cmd_top(store: Store, args) -> int:
    rows = top(store, args.rung, args.n)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    elif not rows:
        print(f"no design has a fitness yet ({len(store.designs())} designs archived)")
    else:
        print(table(("rank", "id", "name", "rung", "fitness [95% interval]", "made by", "gen"),
                    [(r["rank"], short(r["id"]), r["name"], r["rung"], interval(r), made_by(_design_of(r)),
                      r["generation"]) for r in rows], right={0, 6}))
    return 0


def _design_of(row: dict) -> DesignRecord:
    return DesignRecord(id=row["id"], name=row["name"], text="", origin=row["origin"], operator=row["operator"])


# ------------------------------------------------------------------ show


def task_summaries(scores: list[ScoreRecord]) -> list[dict[str, Any]]:
    """Per rung and task: the mean over seeds with a bootstrap interval."""
    from ..evaluate.fitness import bootstrap

    grouped: dict[tuple[str, str, str], list[ScoreRecord]] = defaultdict(list)
    for s in scores:
        grouped[(s.rung, s.suite, s.task)].append(s)
    summaries = []
    for (rung, suite, task), rows in grouped.items():
        raw = bootstrap([r.score for r in rows])
        normalized = [r.normalized for r in rows if r.normalized is not None]
        summaries.append({"rung": rung, "suite": suite, "task": task, "metric": rows[0].metric,
                          "seeds": sorted(r.seed for r in rows), "score": raw.to_dict(),
                          "normalized": bootstrap(normalized).to_dict() if normalized else None})
    return summaries


def parent_diffs(store: Store, design: DesignRecord) -> dict[str, list[str]]:
    """The structural edits from each parent to `design`."""
    from ..gp import diff
    from ..syntax.parse import parse

    child = parse(design.text, filename=short(design.id))
    diffs = {}
    for parent_id in design.parents:
        parent = store.get_design(parent_id)
        diffs[parent_id] = diff(parse(parent.text, filename=short(parent.id)), child)
    return diffs


def details(store: Store, design: DesignRecord) -> dict[str, Any]:
    evaluations = store.evaluations(design.id)
    rungs = store.rungs()
    tasks = task_summaries(store.scores(design.id))
    tasks.sort(key=lambda t: (rungs.index(t["rung"]) if t["rung"] in rungs else len(rungs), t["suite"], t["task"]))
    return {
        "design": design.to_dict(),
        "fitness": {r: f.to_dict() for r, f in store.fitness(design.id).items()},
        "tasks": tasks,
        "evaluations": [e.to_dict() for e in evaluations],
        "reports": store.reports(design.id),
        "parents": [{"id": p, "name": store.get_design(p).name} for p in design.parents],
        "children": store.children(design.id),
        "diff": parent_diffs(store, design),
    }


def render_details(info: dict[str, Any]) -> str:
    d = info["design"]
    lines = [f"design {d['id']}",
             f"  name {d['name']}, {d['origin']}" + (f" by {d['operator']}" if d["operator"] else "")
             + f", generation {d['generation']}, status {d['status']}" + (f" ({d['reason']})" if d["reason"] else ""),
             f"  parents: {', '.join(short(p['id']) + ' (' + p['name'] + ')' for p in info['parents']) or 'none'}",
             f"  children: {len(info['children'])}"]
    if d["proposal"]:
        lines.append(f"  proposal: {json.dumps(d['proposal'])}")
    if d["transcript"]:
        lines.append(f"  transcript: {d['transcript']}")
    for report in info["reports"]:
        lines.append(f"  {report['kind']}: {'ok' if report['ok'] else 'failed'}")
    lines += ["", "fitness"]
    width = max((len(rung) for rung in info["fitness"]), default=0)
    lines += [f"  {rung.ljust(width)}  {interval(f)}" for rung, f in info["fitness"].items()] or ["  none yet"]
    lines += ["", "scores (mean over seeds [95% interval])"]
    if info["tasks"]:
        rows = [(t["rung"], f"{t['suite']}/{t['task']}", t["metric"], len(t["seeds"]), interval(t["score"]),
                 interval(t["normalized"])) for t in info["tasks"]]
        lines += ["  " + line for line in
                  table(("rung", "task", "metric", "seeds", "score", "normalized"), rows, right={3}).splitlines()]
    else:
        lines.append("  none yet")
    counts: dict[str, int] = defaultdict(int)
    for e in info["evaluations"]:
        counts[e["status"] if e["status"] != "failed" else f"failed ({e['reason']})"] += 1
    lines.append(f"evaluations: {', '.join(f'{n} {s}' for s, n in counts.items()) or 'none'}")
    for parent in info["parents"]:
        edits = info["diff"][parent["id"]]
        lines += ["", f"diff from parent {short(parent['id'])} ({parent['name']})"]
        lines += [f"  {edit}" for edit in edits] or ["  no structural difference"]
    lines += ["", "spec", *("  " + line if line else "" for line in d["text"].rstrip("\n").splitlines())]
    return "\n".join(lines)


def cmd_show(store: Store, args) -> int:
    info = details(store, store.get_design(args.id))
    print(json.dumps(info, indent=2) if args.format == "json" else render_details(info))
    return 0


# ------------------------------------------------------------------ lineage


def lineage(store: Store, design_id: str, seen: set[str] | None = None) -> dict[str, Any]:
    """The ancestry of a design as nested parents; a design met twice (a crossover of
    relatives) is given in full once and referred to after."""
    seen = set() if seen is None else seen
    d = store.get_design(design_id)
    node: dict[str, Any] = {"id": d.id, "name": d.name, "origin": d.origin, "operator": d.operator,
                            "generation": d.generation, "edits": d.edits,
                            "fitness": {r: f.to_dict() for r, f in store.fitness(d.id).items()}}
    if d.id in seen:
        return {**node, "edits": [], "repeated": True, "parents": []}
    seen.add(d.id)
    node["parents"] = [lineage(store, p, seen) for p in d.parents]
    return node


def render_lineage(node: dict[str, Any]) -> str:
    lines: list[str] = []

    def walk(n: dict[str, Any], lead: str, branch: str, below: str) -> None:
        best = list(n["fitness"].items())[-1] if n["fitness"] else None
        label = f"{short(n['id'])} {n['name']}  [{n['origin']}" + (f" by {n['operator']}" if n["operator"] else "")
        label += f", gen {n['generation']}]" + (f"  {best[0]} {interval(best[1])}" if best else "")
        lines.append(lead + branch + label + ("  (shown above)" if n.get("repeated") else ""))
        inner = lead + below
        for edit in n["edits"]:
            lines.append(inner + ("│    " if n["parents"] else "     ") + edit)
        for i, parent in enumerate(n["parents"]):
            last = i == len(n["parents"]) - 1
            walk(parent, inner, "└─ " if last else "├─ ", "   " if last else "│  ")

    walk(node, "", "", "")
    return "\n".join(lines)


def cmd_lineage(store: Store, args) -> int:
    tree = lineage(store, store.get_design(args.id).id)
    print(json.dumps(tree, indent=2) if args.format == "json" else render_lineage(tree))
    return 0


# ------------------------------------------------------------------ export


def export_rows(store: Store) -> list[dict[str, Any]]:
    rows = []
    for d in store.designs():
        rows.append({**d.to_dict(),
                     "fitness": {r: {"mean": f.mean, "ci_low": f.ci_low, "ci_high": f.ci_high}
                                 for r, f in store.fitness(d.id).items()},
                     "scores": [s.to_dict() for s in store.scores(d.id)]})
    return rows


def export_csv(store: Store, rows: list[dict[str, Any]]) -> str:
    """One row per design: its fields, fitness per rung, and the mean score per rung and task."""
    rungs = store.rungs()
    tasks = sorted({(s["rung"], s["suite"], s["task"]) for r in rows for s in r["scores"]},
                   key=lambda t: (rungs.index(t[0]) if t[0] in rungs else len(rungs), t[1], t[2]))
    fixed = ["id", "name", "status", "reason", "origin", "operator", "generation", "parents", "edits", "created_at"]
    header = fixed + [f"{stat}@{rung}" for rung in rungs for stat in ("fitness", "ci_low", "ci_high")]
    header += [f"{suite}/{task}@{rung}" for rung, suite, task in tasks]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for r in rows:
        line = [r[k] for k in fixed[:7]] + [" ".join(r["parents"]), "; ".join(r["edits"]), r["created_at"]]
        for rung in rungs:
            f = r["fitness"].get(rung)
            line += [f["mean"], f["ci_low"], f["ci_high"]] if f else ["", "", ""]
        means: dict[tuple, list[float]] = defaultdict(list)
        for s in r["scores"]:
            means[(s["rung"], s["suite"], s["task"])].append(s["score"])
        line += [sum(means[t]) / len(means[t]) if means[t] else "" for t in tasks]
        writer.writerow(line)
    return out.getvalue()


def cmd_export(store: Store, args) -> int:
    rows = export_rows(store)
    if args.format == "json":
        text = json.dumps({"run": args.run, "rungs": store.rungs(), "designs": rows}, indent=2)
    else:
        text = export_csv(store, rows)
    emit(text, args.output)
    if args.output not in (None, "-"):
        print(f"wrote {args.output} ({len(rows)} designs)", file=sys.stderr)
    return 0


# ------------------------------------------------------------------ the command


def cmd_archive(args) -> int:
    from ..cli import UsageError

    try:
        store = open_run(args.run, args.store)
        try:
            return args.archive_command(store, args)
        finally:
            store.close()
    except StoreError as err:  # a wrong folder or id: one line, exit 2
        raise UsageError(str(err)) from None


def add_archive_command(command: Callable[[str, Callable, str], argparse.ArgumentParser]) -> None:
    """Register `genesys archive` through the CLI's `command(name, func, help)`."""
    p = command("archive", cmd_archive, "read an evolution run's archive: leaderboard, designs, lineage, export")
    p.add_argument("run", metavar="RUN", help="the run folder (`genesys evolve --run RUN`)")
    p.add_argument("--store", default=DEFAULT_STORE, metavar="NAME",
                   help=f"the archive store the run used (default: {DEFAULT_STORE})")
    sub = p.add_subparsers(dest="archive", metavar="SUBCOMMAND", required=True)

    def subcommand(name: str, func: Callable, help: str, formats=("text", "json")) -> argparse.ArgumentParser:
        s = sub.add_parser(name, help=help, description=help)
        s.set_defaults(archive_command=func)
        s.add_argument("--format", choices=formats, default=formats[0])
        return s

    s = subcommand("top", cmd_top, "the best designs: highest rung reached first, then fitness")
    s.add_argument("--rung", metavar="R", help="rank by fitness at this rung only")
    s.add_argument("-n", type=int, default=20, metavar="N", help="how many (default: 20)")
    s = subcommand("show", cmd_show, "one design: spec, fitness and scores per rung and task, diff to its parents")
    s.add_argument("id", metavar="ID", help="a design id, a unique prefix of it, or a unique name")
    s = subcommand("lineage", cmd_lineage, "a design's ancestors as a tree, with each step's operator and edits")
    s.add_argument("id", metavar="ID", help="a design id, a unique prefix of it, or a unique name")
    s = subcommand("export", cmd_export, "every design with its fitness and scores", formats=("json", "csv"))
    s.add_argument("-o", "--output", metavar="FILE", help="where to write (default: stdout)")
