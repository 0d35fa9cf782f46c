"""A budgeted evolution run on the cpu ladder, and whether it found anything.

    .venv/bin/python benchmarks/bench_evolve.py [--minutes 15] [--config FILE] [--run DIR] [--seeds 3]

Runs `genesys evolve` (the bundled defaults unless --config), then reports designs
proposed, valid, evaluated and promoted per rung, failures by reason, designs per
hour, and compares the best evolved design with the best seed design over several
training seeds at the lowest rung (`genesys compare`'s paired bootstrap interval).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from genesys_dsl.evaluate.fitness import paired_bootstrap
from genesys_dsl.evaluate.run import evaluate
from genesys_dsl.evolve.config import EvolveConfig, load_evolve_config
from genesys_dsl.plugins import store_registry
from genesys_dsl.syntax.parse import parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=15)
    parser.add_argument("--config")
    parser.add_argument("--run", default=f"runs/bench-{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds for the final comparison")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # as the executors' workers do: one thread is faster on a busy machine

    command = [sys.executable, "-m", "genesys_dsl.cli", "evolve", "--run", args.run, "--minutes", str(args.minutes),
               "--quiet"] + (["--config", args.config] if args.config else [])
    print("$", " ".join(command[2:]).replace("genesys_dsl.cli", "genesys"), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - started

    config = load_evolve_config(args.config) if args.config else EvolveConfig()
    store = store_registry().lookup("sqlite").open(args.run)
    designs = store.designs()
    children = [d for d in designs if d.origin != "seed"]
    evaluations = store.evaluations()
    rungs = store.rungs()
    scored = {r: sum(1 for d in designs if r in store.fitness(d.id)) for r in rungs}
    failures = Counter(e.reason for e in evaluations if e.status == "failed")
    print(f"\nrun: {args.run}, {wall / 60:.1f} min wall")
    print(f"designs proposed {store.get_meta('proposals', 0)}, new {len(children)}, "
          f"valid {sum(1 for d in children if d.status != 'invalid')}, "
          f"invalid {sum(1 for d in children if d.status == 'invalid')}, duplicates {len(store.events('duplicate'))}")
    print("scored per rung: " + ", ".join(f"{r} {n}" for r, n in scored.items()))
    print(f"failures by reason: {dict(failures) or 'none'}")
    print(f"designs scored per hour: {sum(scored.values()) / (wall / 3600):.0f}")

    low = rungs[0]
    ranked = sorted((d for d in designs if low in store.fitness(d.id)),
                    key=lambda d: store.fitness(d.id)[low].mean, reverse=True)
    best_seed = next((d for d in ranked if d.origin == "seed"), None)
    best_child = next((d for d in ranked if d.origin != "seed"), None)
    store.close()
    if best_seed is None or best_child is None:
        print("no evolved design was scored: nothing to compare")
        return
    print(f"\nbest seed {best_seed.name} vs best evolved {best_child.name} ({best_child.operator}) "
          f"at {low} over {args.seeds} training seeds:")
    ev = config.evaluation
    results = [evaluate(parse(d.text), ladder=config.run.ladder, rung=low, suites=ev.suites or None,
                        seeds=args.seeds, base_seed=100, train={**ev.train, **ev.rung_train.get(low, {})},
                        options=ev.options, work_dir=Path(args.run) / "bench-compare")
               for d in (best_child, best_seed)]
    child, seed = results
    diff = paired_bootstrap(child.runs, seed.runs)
    print(f"  fitness {best_child.name} {child.fitness()}, {best_seed.name} {seed.fitness()}")
    verdict = ("evolved beats seed" if diff.ci_low > 0 else "seed beats evolved" if diff.ci_high < 0
               else "no significant difference")
    print(f"  diff (evolved - seed) {diff}: {verdict}")
    print(json.dumps({"diff": diff.to_dict(), "verdict": verdict}))


if __name__ == "__main__":
    main()
