"""The synthetic suite at the smallest CPU scale: how the seed designs compare, with intervals.

    .venv/bin/python benchmarks/bench_suites.py [--seeds 3] [--designs transformer,baselines/mlp_only,...]
                                                [--tasks mqar,...] [--results bench_suites.json]

Scores every design on the "synthetic" suite (MAD's six tasks and MQAR) at cpu-xs over
K training seeds, one CPU thread, and prints per task the mean accuracy +- its spread
(standard deviation over seeds), each design's normalised score (0 = uniform guess,
1 = perfect) with a 95% bootstrap interval over seeds, the CPU time per design and
seed with its ratio to the transformer's (the peer measured in the same run; CPU
time rather than wall time, since other processes share the machine), and each
design minus the transformer with a paired bootstrap interval (seeds and tasks
resampled, the same draws for both designs), overall and per task.

Results are saved per (design, seed) as they finish; a rerun with the same --results
file skips what is done, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "plugins"))

import torch  # noqa: E402

from genesys_dsl.evaluate import EvalContext, TaskScore, TrainConfig  # noqa: E402
from genesys_dsl.evaluate.fitness import bootstrap, fitness, paired_bootstrap  # noqa: E402
from genesys_dsl.plugins import benchmark_registry  # noqa: E402
from genesys_dsl.scales import get_scale  # noqa: E402
from genesys_dsl.syntax.files import read_design  # noqa: E402

DESIGNS = ["transformer", "baselines/mlp_only", "retnet", "mamba2", "gla"]
PEER = "transformer"


def score_one(design: str, seed: int, tasks: list[str] | None) -> tuple[list[TaskScore], float, float]:
    """The design's scores at one seed, with the wall and CPU seconds they took."""
    suite = benchmark_registry().lookup("synthetic")
    ctx = EvalContext(design=read_design(ROOT / "specs" / f"{design}.gab"), scale=get_scale("cpu-xs"), seed=seed,
                      device=torch.device("cpu"), train=TrainConfig(tokens=1))
    wall, cpu = time.perf_counter(), time.process_time()
    scores = suite.run(ctx, tasks or [])
    return scores, time.perf_counter() - wall, time.process_time() - cpu


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--designs", default=",".join(DESIGNS), help="spec names under specs/, comma-separated")
    parser.add_argument("--tasks", default="", help="task names, comma-separated (default: all)")
    parser.add_argument("--results", type=Path, default=ROOT / "build" / "bench_suites.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    designs = [d for d in args.designs.split(",") if d]
    tasks = [t for t in args.tasks.split(",") if t] or None
    done = load(args.results)
    for design in designs:
        for seed in range(args.seeds):
            key = f"{design}@{seed}"
            if key in done:
                continue
            scores, seconds, cpu_seconds = score_one(design, seed, tasks)
            done[key] = {"seconds": seconds, "cpu_seconds": cpu_seconds, "scores": [s.to_dict() for s in scores]}
            args.results.parent.mkdir(parents=True, exist_ok=True)
            args.results.write_text(json.dumps(done, indent=1), encoding="utf-8")
            print(f"  {key}: {cpu_seconds:.0f} s CPU, normalised {fitness(scores):+.3f}", flush=True)
    report(done, designs, args.seeds)


def runs_of(done: dict, design: str, seeds: int) -> dict[int, list[TaskScore]]:
    def score(row: dict) -> TaskScore:
        return TaskScore(**{k: v for k, v in row.items() if k != "normalized"})

    return {s: [score(r) for r in done[f"{design}@{s}"]["scores"]] for s in range(seeds) if f"{design}@{s}" in done}


def report(done: dict, designs: list[str], seeds: int) -> None:
    runs = {d: runs_of(done, d, seeds) for d in designs}
    tasks = [s.task for s in next(iter(next(iter(runs.values())).values()))]
    width = 14
    print(f"\nsynthetic suite at cpu-xs, {seeds} seed(s), accuracy mean +- sd over seeds (random guess in brackets)")
    print(f"{'task':26s}" + "".join(f"{d.split('/')[-1]:>{width}s}" for d in designs))
    for task in tasks:
        cells, chance = [], None
        for d in designs:
            values = [s.score for scores in runs[d].values() for s in scores if s.task == task]
            chance = next(s.random_score for scores in runs[d].values() for s in scores if s.task == task)
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.3f}+-{sd:.3f}")
        print(f"{task + f' ({chance:.3f})':26s}" + "".join(f"{c:>{width}s}" for c in cells))
    print("\nnormalised score (mean over tasks), 95% bootstrap interval over seeds; CPU time per seed")

    def cpu_seconds(design: str) -> float:  # results saved before CPU time was recorded have wall time only
        rows = [done[f"{design}@{s}"] for s in runs[design]]
        return statistics.mean(row.get("cpu_seconds", row["seconds"]) for row in rows)

    peer_seconds = cpu_seconds(PEER) if runs.get(PEER) else None
    for d in designs:
        per_seed = [fitness(scores) for scores in runs[d].values()]
        seconds = cpu_seconds(d)
        ratio = f"  ({seconds / peer_seconds:.2f}x {PEER})" if peer_seconds else ""
        print(f"  {d:22s} {bootstrap(per_seed)}  {seconds:6.0f} s{ratio}")
    if PEER in runs:
        print(f"\neach design minus {PEER}: normalised score, paired bootstrap 95% interval (seeds and tasks)")
        for d in designs:
            if d != PEER:
                print(f"  {d:22s} {paired_bootstrap(runs[d], runs[PEER])}")
        print(f"\nper task, each design minus {PEER}: normalised score, paired bootstrap 95% interval (seeds)")
        for task in tasks:
            for d in designs:
                if d != PEER:
                    print(f"  {task:26s} {d:22s} {paired_bootstrap(only(runs[d], task), only(runs[PEER], task))}")


def only(runs: dict[int, list[TaskScore]], task: str) -> dict[int, list[TaskScore]]:
    return {seed: [s for s in scores if s.task == task] for seed, scores in runs.items()}


if __name__ == "__main__":
    main()
