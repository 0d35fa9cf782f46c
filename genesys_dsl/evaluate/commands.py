"""`genesys eval` and `genesys compare`: train and score designs from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from ..syntax.files import read_design
from .config import DataConfig
from .fitness import bootstrap, paired_bootstrap, task_key
from .suite import EvaluationError

DEFAULT_WORK = ".genesys/eval"  # checkpoints and finished suites, so an interrupted run resumes


def add_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    p = command("eval", cmd_eval, "train a spec at a ladder rung and score it on benchmark suites")
    p.add_argument("spec", metavar="SPEC")
    _evaluation_arguments(p)
    p.add_argument("-o", "--output", metavar="FILE",
                   help="results JSON (default: eval-DESIGN-RUNG.json in the current folder)")

    p = command("compare", cmd_compare, "score two specs over the same seeds; the difference A - B with a "
                                        "paired bootstrap confidence interval (higher is better)")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    _evaluation_arguments(p, default_seeds=3)


def _evaluation_arguments(p: argparse.ArgumentParser, default_seeds: int = 1) -> None:
    p.add_argument("--ladder", default="cpu", help="ladder from specs/scales.toml (default: cpu)")
    p.add_argument("--rung", help="rung of the ladder (default: its lowest)")
    p.add_argument("--suite", action="append", metavar="NAME[:TASK,...]",
                   help="benchmark suite, optionally with its tasks (repeatable; default: the ladder's suites)")
    p.add_argument("--seeds", type=int, default=default_seeds, help=f"training seeds (default: {default_seeds})")
    p.add_argument("--seed", type=int, default=0, help="first seed (default: 0)")
    p.add_argument("--option", action="append", default=[], metavar="SUITE.KEY=VALUE",
                   help="a suite setting, VALUE as JSON or text (repeatable), e.g. synthetic.mqar.seq_len=64")
    p.add_argument("--train", action="append", default=[], metavar="KEY=VALUE",
                   help="a trainer setting overriding the rung's (repeatable), e.g. tokens=200000")
    p.add_argument("--corpus", action="append", default=[], metavar="PATH",
                   help="text file or folder to pretrain on (repeatable; default: the bundled corpus)")
    p.add_argument("--tokenizer", default="byte", help="byte (default) or gpt2")
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads (default: torch's, one per core; on a busy machine 1 is much faster)")
    p.add_argument("--work", default=DEFAULT_WORK, metavar="DIR",
                   help=f"checkpoints and finished suites, for resuming (default: {DEFAULT_WORK})")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _pairs(items: list[str], flag: str) -> list[tuple[str, Any]]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise EvaluationError(f"{flag} takes KEY=VALUE, got '{item}'")
        pairs.append((key.strip(), _value(value.strip())))
    return pairs


def _options(items: list[str]) -> dict[str, dict[str, Any]]:
    """`suite.a.b=v` -> {"suite": {"a": {"b": v}}}."""
    options: dict[str, dict[str, Any]] = {}
    for key, value in _pairs(items, "--option"):
        path = key.split(".")
        if len(path) < 2:
            raise EvaluationError(f"--option needs SUITE.KEY=VALUE, got '{key}'")
        node = options.setdefault(path[0], {})
        for part in path[1:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return options


def _settings(args) -> dict[str, Any]:
    return dict(ladder=args.ladder, rung=args.rung, suites=args.suite, seeds=args.seeds, base_seed=args.seed,
                data=DataConfig(corpus=tuple(args.corpus), tokenizer=args.tokenizer),
                train=dict(_pairs(args.train, "--train")), options=_options(args.option),
                device=args.device, work_dir=args.work, progress=not args.quiet and sys.stderr.isatty())


def _say(args) -> Callable[[str], None] | None:
    if args.quiet:
        return None
    return lambda message: print(f"genesys: {message}", file=sys.stderr)


def _threads(args) -> None:
    if args.threads is not None:
        if args.threads < 1:
            raise EvaluationError(f"--threads must be at least 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)


def cmd_eval(args) -> int:
    from .run import evaluate  # imports torch: only for this command

    _threads(args)
    design = read_design(args.spec)
    result = evaluate(design, on_progress=_say(args), **_settings(args))
    data = result.to_dict()
    output = Path(args.output or f"eval-{design.name}-{result.placement.rung.name}.json")
    output.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if args.format == "json":
        print(json.dumps(data, indent=2))
    else:
        print(summary(data))
        print(f"wrote {output}")
    return 0 if result.ok else 1


def summary(data: dict[str, Any]) -> str:
    """A results JSON as a short table."""
    scale = data["scale"]
    lines = [f"{data['design']} at {data['ladder']}/{data['rung']} (D={scale['d_model']}, N={scale['n_layers']}"
             f"{', fitted by ' + data['fitted'] if data['fitted'] else ''}): {data['params']:,} parameters, "
             f"{data['tokens']:,} tokens, {data['wall_seconds']:.1f} s"]
    width = max([len(k) for k in data["per_task"]] + [4])
    for task, row in data["per_task"].items():
        spread = f" +- {row['std']:.4f}" if row["n"] > 1 else ""
        n = row["normalized"]
        lines.append(f"  {task:<{width}}  {row['metric']:<14} {row['mean']:.4f}{spread}  "
                     f"normalized {n['mean']:.3f} [{n['ci_low']:.3f}, {n['ci_high']:.3f}]")
    fit = data["fitness"]
    if fit:
        lines.append(f"  fitness {fit['mean']:.4f} [{fit['ci_low']:.4f}, {fit['ci_high']:.4f}] over {fit['n']} seed(s)")
    for seed, failure in data["failures"].items():
        lines.append(f"  seed {seed} failed ({failure['reason']}): {failure['message']}")
    return "\n".join(lines)


def cmd_compare(args) -> int:
    from .run import evaluate

    _threads(args)
    designs = [read_design(args.a), read_design(args.b)]
    settings = _settings(args)
    results = [evaluate(d, on_progress=_say(args), **settings) for d in designs]
    a, b = results
    failed = [r.design for r in results if not r.runs]
    if failed:
        raise EvaluationError(f"nothing could be scored for {', '.join(failed)}: "
                              + "; ".join(f"{r.design}: {f['message']}" for r in results for f in r.failures.values()))
    diff = paired_bootstrap(a.runs, b.runs)
    seeds = sorted(set(a.runs) & set(b.runs))
    normalized = [{(k, task_key(s)): s.normalized for k in seeds for s in r.runs[k]} for r in (a, b)]
    rows_a, rows_b = a.per_task(), b.per_task()
    per_task = {}
    for task, row_a in rows_a.items():
        diffs = [normalized[0][k, task] - normalized[1][k, task] for k in seeds if (k, task) in normalized[1]]
        per_task[task] = {"metric": row_a["metric"], "a": row_a["mean"], "b": rows_b[task]["mean"],
                          "diff_normalized": bootstrap(diffs).to_dict()}
    report = {
        "a": {"design": a.design, "spec": args.a, "fitness": a.fitness().to_dict(), "failures": a.failures},
        "b": {"design": b.design, "spec": args.b, "fitness": b.fitness().to_dict(), "failures": b.failures},
        "diff": {"mean": diff.mean, "ci_low": diff.ci_low, "ci_high": diff.ci_high},
        "per_task": per_task,
        "seeds": seeds,
        "ladder": a.placement.ladder.name, "rung": a.placement.rung.name,
    }
    if args.format == "json":
        print(json.dumps(report, indent=2))
        return 0
    print(f"{a.design} - {b.design} at {report['ladder']}/{report['rung']} over seeds {report['seeds']} "
          f"(normalized scores; higher is better)")
    width = max([len(t) for t in per_task] + [4])
    for task, row in per_task.items():
        d = row["diff_normalized"]
        print(f"  {task:<{width}}  {row['metric']:<14} {row['a']:.4f} vs {row['b']:.4f}  "
              f"diff {d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]")
    verdict = ("A is better" if diff.ci_low > 0 else "B is better" if diff.ci_high < 0
               else "no significant difference")
    print(f"  fitness diff {diff.mean:+.4f}, 95% CI [{diff.ci_low:+.4f}, {diff.ci_high:+.4f}]: {verdict}")
    return 0
