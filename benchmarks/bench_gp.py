"""Genetic programming on the seed library: validity, duplicates, operator spread, speed.

    .venv/bin/python benchmarks/bench_gp.py [--offspring 1000] [--verify-sample 100] [--seed 0]

Draws offspring from the seed specs, 80% mutation and 20% crossover as in Genesys,
and prints the share that pass `check`, the share of a random sample that builds
and passes `verify` at the smallest CPU scale (budget, causality and gradients; the
efficiency check trains the transformer beside each design and is left out), the
duplicate rate by canonical hash, and the spread of operators. In the same run, a
baseline that swaps random subtrees while ignoring types shows what typing buys.

Rates are printed from CPU time (time.process_time, steadier on a shared machine)
and wall time. Check throughput is measured twice: as a GP run gets it (checks reuse
the unit analyses and walks stored while breeding and while checking earlier
offspring: `genesys_dsl.check.reuse`), and cold, the stores emptied before each
design, as the peer. Each timed phase starts after a gc.collect(), so a collection
owed by the previous phase is not billed to it.
"""

from __future__ import annotations

import argparse
import collections
import gc
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import genesys_dsl as g  # noqa: E402
from genesys_dsl import ir  # noqa: E402
from genesys_dsl.check import reuse  # noqa: E402
from genesys_dsl.gp import canonical_hash, crossover, mutate  # noqa: E402


class Clock:
    """CPU and wall seconds since it was made (after settling the garbage collector)."""

    def __init__(self) -> None:
        gc.collect()
        self.cpu, self.wall = time.process_time(), time.perf_counter()

    def rates(self, count: int) -> str:
        cpu, wall = time.process_time() - self.cpu, time.perf_counter() - self.wall
        return f"{count / cpu:.0f}/s CPU time, {count / wall:.0f}/s wall time"


def seeds() -> list[ir.Design]:
    return [g.parse_file(p) for p in sorted((ROOT / "specs").rglob("*.gab"))]


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% confidence interval of a proportion (Wilson score)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def percent(successes: int, n: int) -> str:
    low, high = wilson(successes, n)
    return f"{100 * successes / max(n, 1):5.1f}%  (95% CI {100 * low:.1f}-{100 * high:.1f}%, n={n})"


# ------------------------------------------------------------------ typed GP


def breed(population: list[ir.Design], count: int, rng: random.Random):
    children, operators, failures, seconds = [], collections.Counter(), collections.Counter(), []
    for i in range(count):
        start = time.perf_counter()
        try:
            if rng.random() < 0.8:
                child = mutate(rng.choice(population), seed=rng.randrange(2**31))
            else:
                a, b = rng.sample(population, 2)
                child = crossover(a, b, seed=rng.randrange(2**31))
        except Exception as err:  # noqa: BLE001 - a failed draw is a finding, counted by kind
            failures[type(err).__name__] += 1
            continue
        seconds.append(time.perf_counter() - start)
        children.append(child)
        operators[child.operator] += 1
    return children, operators, failures, seconds


# ------------------------------------------------------------------ untyped baseline


def _expressions(design: ir.Design) -> list[tuple[object, str, object]]:
    """(owner, field, node) for every expression slot in the design's bodies."""
    slots = []
    stack = [(s, "value", s.value) for u in design.units for s in u.body if isinstance(s, ir.Assign)]
    while stack:
        owner, name, node = stack.pop()
        slots.append((owner, name, node))
        if isinstance(node, ir.Call):
            stack += [(node.args, i, a) for i, a in enumerate(node.args)]
            stack += [(k, "value", k.value) for k in node.keywords]
        elif isinstance(node, ir.BinOp):
            stack += [(node, "left", node.left), (node, "right", node.right)]
        elif isinstance(node, ir.Neg):
            stack.append((node, "operand", node.operand))
    return slots


def untyped_swap(a: ir.Design, b: ir.Design, rng: random.Random) -> ir.Design:
    """Replace a random expression of a copy of `a` by a random expression of `b`, types ignored."""
    child = a.model_copy(deep=True)
    owner, name, _ = rng.choice(_expressions(child))
    _, _, donor = rng.choice(_expressions(b))
    donor = donor.model_copy(deep=True)
    if isinstance(owner, list):
        owner[name] = donor
    else:
        setattr(owner, name, donor)
    return child


def checks_clean(design: ir.Design) -> bool:
    try:
        return g.check(g.parse(g.unparse(ir.strip_spans(design)))).ok
    except g.DSLError:
        return False


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offspring", type=int, default=1000)
    parser.add_argument("--verify-sample", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    import torch

    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    population = seeds()
    print(f"{args.offspring} offspring from {len(population)} seed specs, 80% mutation / 20% crossover, "
          f"seed {args.seed}, one core")

    clock = Clock()
    children, operators, failures, seconds = breed(population, args.offspring, rng)
    print(f"\ntyped GP: {len(children)} offspring, {clock.rates(len(children))} "
          f"(median {1e3 * statistics.median(seconds):.1f} ms wall each, operator retries and checks included)")
    if failures:
        print(f"  draws that produced no offspring: {dict(failures)}")

    clock = Clock()
    clean = sum(g.check(c.design).ok for c in children)
    as_in_gp = clock.rates(len(children))
    clock = Clock()
    for c in children:
        reuse.clear()
        g.check(c.design)
    cold = clock.rates(len(children))
    print(f"  pass check (all 8 scales):        {percent(clean, args.offspring)}")
    print(f"  check throughput on the offspring (target 1000/s):\n"
          f"    as in a GP run (reusing stored unit analyses and walks): {as_in_gp}\n"
          f"    cold (stores emptied before each design; peer):          {cold}")

    from genesys_dsl.verify import verify

    sample = rng.sample(children, min(args.verify_sample, len(children)))
    verified = 0
    for child in sample:
        report = verify(child.design, "cpu-xs", checks=("budget", "causality", "gradients"))
        verified += report.ok
    if sample:
        print(f"  build and pass verify at cpu-xs:   {percent(verified, len(sample))}")

    hashes = [canonical_hash(c.design) for c in children]
    seed_hashes = {canonical_hash(d) for d in population}
    repeats = len(hashes) - len(set(hashes))
    print(f"  duplicates (same canonical hash): {repeats} of {len(hashes)} ({100 * repeats / len(hashes):.1f}%); "
          f"{sum(h in seed_hashes for h in hashes)} equal to a seed")
    print("  operators used:")
    for name, n in operators.most_common():
        print(f"    {name:<20} {n:5d}  {100 * n / len(children):5.1f}%")

    clock = Clock()
    baseline_clean = 0
    for _ in range(args.offspring):
        a, b = rng.choice(population), rng.choice(population)
        baseline_clean += checks_clean(untyped_swap(a, b, rng))
    print(f"\nbaseline, random subtree swap ignoring types: {args.offspring} offspring, {clock.rates(args.offspring)}")
    print(f"  pass check (all 8 scales):        {percent(baseline_clean, args.offspring)}")


if __name__ == "__main__":
    main()
