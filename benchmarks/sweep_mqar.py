"""Sweep the settings of a synthetic task at cpu-xs: which sizes and budgets let a design
with token mixing learn real associative recall within a CPU budget? (The tool behind
the defaults of plugins/genesys_benchmarks/synthetic.py; docs/evaluate.md has its
findings.)

    .venv/bin/python benchmarks/sweep_mqar.py [--task mqar] [--designs transformer,baselines/mlp_only]
        [--seeds 0,1,2] [--grid 'lr=1e-3,3e-3;num_kv_pairs=4,8'] [--set steps=600] [--init-std 0.02]
        [--results build/sweep_mqar.jsonl]

Runs the suite's own training and scoring (`synthetic.run_task`) for every point of
the grid (the cartesian product of the `--grid` axes, on top of the task's defaults and
`--set`; any task's settings, any synthetic task), every design and seed, one CPU
thread each, and prints per point the held-out accuracy per seed, the mean normalised
score (0 = uniform guess, 1 = perfect), for MQAR how far the accuracy is above the
"knows which values occur" plateau (1 / num_kv_pairs; 0 = on it, 1 = perfect), the
training loss of the first seed at eight stages of the run (the jump after the plateau
shows there) and the CPU seconds per run. CPU time, not wall time: the machine is shared.

`--init-std S` redraws the token embedding (tied to the LM head) from N(0, S^2), seeded
by the run's seed, before training: to compare embedding inits. Without it the
scaffold's own init is used.

Each finished run is appended to --results as one JSON line, and a rerun skips the
runs already there, so an interrupted sweep resumes. Runs are keyed by their settings,
not by the code: use a new results file after changing the scaffold or the suite.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "plugins"))

import torch  # noqa: E402

from genesys_benchmarks import synthetic  # noqa: E402
from genesys_dsl.evaluate import EvalContext, TrainConfig  # noqa: E402
from genesys_dsl.scales import get_scale  # noqa: E402
from genesys_dsl.syntax.files import read_design  # noqa: E402


def parse_value(text: str) -> Any:
    """A grid or --set value: int, float, bool or string, as JSON reads it."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_grid(text: str) -> list[dict[str, Any]]:
    """'a=1,2;b=x' -> [{'a': 1, 'b': 'x'}, {'a': 2, 'b': 'x'}]."""
    axes: list[tuple[str, list[Any]]] = []
    for axis in filter(None, text.split(";")):
        name, _, values = axis.partition("=")
        axes.append((name.strip(), [parse_value(v) for v in values.split(",")]))
    return [dict(zip([a for a, _ in axes], combo)) for combo in itertools.product(*[v for _, v in axes])]


def spec_path(design: str) -> Path:
    """A seed's name under specs/ ("transformer", "baselines/mlp_only") or a .gab path."""
    return Path(design) if design.endswith(".gab") else ROOT / "specs" / f"{design}.gab"


def run_one(task: str, design: str, seed: int, options: dict[str, Any], init_std: float | None) -> dict[str, Any]:
    settings = synthetic.task_settings(task, options)
    ctx = EvalContext(design=read_design(spec_path(design)), scale=get_scale("cpu-xs"), seed=seed,
                      device=torch.device("cpu"), train=TrainConfig(tokens=1))
    data = synthetic.task_data(seed, task, settings)
    if init_std is not None:
        original = ctx.model

        def model(**kwargs):
            built = original(**kwargs)
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                torch.nn.init.normal_(built.embedding.weight, std=init_std)
            return built

        ctx.model = model  # type: ignore[method-assign]
    cpu = time.process_time()
    score = synthetic.run_task(ctx, task, settings, data)
    cpu = time.process_time() - cpu
    losses = score.details["loss_curve"]
    return {"task": task, "design": design, "seed": seed, "options": options, "init_std": init_std,
            "accuracy": score.score, "normalized": score.normalized, "random": score.random_score,
            "final_loss": score.details["final_loss"], "losses": losses, "cpu_seconds": round(cpu, 2)}


def plateau(task: str, options: dict[str, Any]) -> float | None:
    """The accuracy of a model that knows which values occur in the context but not
    which key each belongs to (MQAR only: 1 / num_kv_pairs)."""
    if task != "mqar":
        return None
    return 1.0 / synthetic.task_settings(task, options).num_kv_pairs  # type: ignore[attr-defined]


def key_of(row: dict[str, Any]) -> str:
    return json.dumps([row["task"], row["design"], row["seed"], row["options"], row["init_std"]], sort_keys=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mqar")
    parser.add_argument("--designs", default="transformer,baselines/mlp_only",
                        help="seed names under specs/ or .gab paths, comma-separated")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--grid", default="", help="axes 'name=v1,v2;name=v3', crossed")
    parser.add_argument("--set", action="append", default=[], help="name=value applied to every point")
    parser.add_argument("--init-std", type=float, default=None)
    parser.add_argument("--results", type=Path, default=ROOT / "build" / "sweep_mqar.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(1)
    fixed = {k.strip(): parse_value(v) for k, _, v in (s.partition("=") for s in args.set)}
    points = [{**fixed, **p} for p in parse_grid(args.grid)] or [fixed]
    seeds = [int(s) for s in args.seeds.split(",")]
    designs = [d for d in args.designs.split(",") if d]
    args.results.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if args.results.exists():
        for line in args.results.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            done[key_of(row)] = row
    for options in points:
        chance = plateau(args.task, options)
        for design in designs:
            rows = []
            for seed in seeds:
                probe = {"task": args.task, "design": design, "seed": seed, "options": options,
                         "init_std": args.init_std}
                row = done.get(key_of(probe))
                if row is None:
                    row = run_one(args.task, design, seed, options, args.init_std)
                    with args.results.open("a", encoding="utf-8") as out:
                        out.write(json.dumps(row) + "\n")
                rows.append(row)
            print(summary(options, design, rows, chance), flush=True)


def summary(options: dict[str, Any], design: str, rows: list[dict[str, Any]], chance: float | None) -> str:
    accuracy = " ".join(f"{r['accuracy']:.3f}" for r in rows)
    normalized = statistics.mean(r["normalized"] for r in rows)
    above = ""
    if chance is not None:
        above = f" above-plateau {statistics.mean((r['accuracy'] - chance) / (1 - chance) for r in rows):+.2f}"
    curve = ""
    if rows[0]["losses"]:
        losses = rows[0]["losses"]
        curve = " loss " + "/".join(f"{m:.2f}" for m in losses)
    cpu = statistics.mean(r["cpu_seconds"] for r in rows)
    return (f"{json.dumps(options, sort_keys=True)} {design.split('/')[-1]}: acc {accuracy} "
            f"norm {normalized:.2f}{above} cpu {cpu:.1f}s{curve}")


if __name__ == "__main__":
    main()
