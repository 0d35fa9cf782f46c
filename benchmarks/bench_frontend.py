"""Front-end throughput: how fast GAB text becomes a (checked) design.

    .venv/bin/python benchmarks/bench_frontend.py [--min-time SECONDS]

Prints, for every spec under specs/ (or the seed spec of tests/test_bad_input.py
when there is none), designs per second for each step of the front end, then the
time per KB of synthetic specs of about 1, 10 and 100 KB and the ratio of the
100 KB to the 1 KB figure: about 1 means parsing time grows linearly with size.

Steps are plain functions from spec text to a result, listed in `steps()`: `parse`
always, `parse+check` when `genesys_dsl.check` is importable. Add a step there.
Peers measured in the same run: parsing with pure-Python Lark (lark_cython off), and
loading the same design from its JSON form.

Every figure is printed twice, from CPU time (time.process_time: what this process
spent, steadier on a shared machine) and from wall time. Each batch starts after a
gc.collect(), so a collection owed by an earlier step is not billed to this one;
collections the step itself causes are counted. Checks here are of parsed designs
(with spans), which never reuse stored analyses (`genesys_dsl.check.reuse`): every
figure is a cold check.
"""

from __future__ import annotations

import argparse
import ast
import gc
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lark  # noqa: E402
import pydantic  # noqa: E402

from genesys_dsl import parse  # noqa: E402

Step = Callable[[str], object]


def steps() -> list[tuple[str, Step]]:
    """The front-end steps to time, each a function of the spec text."""
    found: list[tuple[str, Step]] = [("parse", lambda text: parse(text))]
    from genesys_dsl import ir
    from genesys_dsl.syntax import grammar
    from genesys_dsl.syntax.json_form import loads

    if grammar.accelerated():
        def parse_pure_lark(text: str) -> object:
            grammar.use_lark_cython = False
            try:
                return parse(text)
            finally:
                grammar.use_lark_cython = True

        found.append(("parse, pure Lark (peer)", parse_pure_lark))

    as_json: dict[str, str] = {}  # the peer: the same design read from its JSON form

    def json_load(text: str) -> object:
        if text not in as_json:
            as_json[text] = ir.dumps(parse(text))
        return loads(as_json[text])

    found.append(("json (peer)", json_load))
    try:
        from genesys_dsl import check
    except ImportError:
        pass
    else:
        parsed: dict[str, object] = {}  # GP checks trees it edited: no text to parse

        def check_only(text: str) -> object:
            if text not in parsed:
                parsed[text] = parse(text)
            return check(parsed[text], source=text)

        found.append(("check", check_only))
        found.append(("parse+check", lambda text: check(parse(text), source=text)))
    return found


# ------------------------------------------------------------------ inputs


def seed_spec() -> str:
    """The spec the robustness tests mutate (SPEC in tests/test_bad_input.py), read
    without importing the test module; a small built-in spec if that file is gone."""
    path = ROOT / "tests" / "test_bad_input.py"
    try:
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SPEC" for t in node.targets):
                return ast.literal_eval(node.value)
    except (OSError, SyntaxError, ValueError):
        pass
    return (
        'design fallback "A minimal pre-norm block"\n\n'
        "block(x: seq[D]) -> seq[D] {\n    return x + Linear(silu(Linear(RMSNorm(x), 4 * D)), D)\n}\n"
    )


def spec_inputs() -> list[tuple[str, str]]:
    specs = sorted((ROOT / "specs").glob("**/*.gab"))
    if specs:
        return [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in specs]
    return [("<seed spec of tests/test_bad_input.py>", seed_spec())]


UNIT = '''
# Unit {i}: multi-head attention with a gated output.
unit Mixer{i}(
    x: seq[D],
    heads: int = 4 in 1..16,  # attention heads
    ratio: float = 2.5 in 1.0..4.0,
    act: choice = silu in {{silu, gelu}},
) -> seq[D] {{
    """Mixing unit number {i}, one of many, to make the spec long."""
    q = rotary(split_heads(Linear(x, D), heads))
    k = rotary(split_heads(Linear(x, D), heads))
    v = split_heads(Linear(x, D), heads)
    h = merge_heads(causal_attention(q, k, v))
    g = silu(Linear(RMSNorm(x), multiple_of(ratio * D, 8)))
    return x + Linear(h, D) * Linear(g, D) / 2 - -x
}}
'''


def synthetic_spec(kb: int) -> str:
    """A valid spec of about `kb` KB: a block chaining many similar units."""
    target = kb * 1024
    header = f'design synthetic_{kb}kb "A synthetic spec of about {kb} KB"\n'
    units: list[str] = []
    size = len(header) + 200
    while size < target or not units:
        units.append(UNIT.format(i=len(units)))
        size += len(units[-1])
    calls = "x"
    for i in range(len(units)):
        calls = f"Mixer{i}({calls})" if i < 8 else calls  # keep the block's expression shallow
    block = f"\nblock(x: seq[D]) -> seq[D] {{\n    return {calls}\n}}\n"
    return header + block + "".join(units)


# ------------------------------------------------------------------ timing


class Timing(NamedTuple):
    cpu: float  # seconds per run, from process CPU time
    wall: float  # seconds per run, from the wall clock


def per_run(step: Step, text: str, min_time: float) -> Timing:
    """Seconds per run: the best batch mean over about `min_time` seconds (CPU and wall)."""
    step(text)  # warm-up (builds the parser, loads the registry)
    gc.collect()
    start = time.perf_counter()
    step(text)
    once = time.perf_counter() - start
    batch = max(1, int(0.1 / once)) if once > 0 else 1000
    best_cpu = best_wall = float("inf")
    deadline = time.perf_counter() + min_time
    rounds = 0
    while rounds < 3 or time.perf_counter() < deadline:
        gc.collect()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(batch):
            step(text)
        best_cpu = min(best_cpu, (time.process_time() - cpu) / batch)
        best_wall = min(best_wall, (time.perf_counter() - wall) / batch)
        rounds += 1
    return Timing(best_cpu, best_wall)


def rate(count: float, t: Timing) -> str:
    """`count` runs per second, CPU / wall."""
    return f"{count / t.cpu:>7.1f} /{count / t.wall:>7.1f}"


def pin_to_one_core() -> str:
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        return f"pinned to CPU {min(os.sched_getaffinity(0))}"
    except (AttributeError, OSError):
        return "not pinned (no sched_setaffinity here)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-time", type=float, default=0.5, help="seconds to time each measurement (0.5)")
    args = parser.parse_args(argv)

    pinned = pin_to_one_core()
    from genesys_dsl.syntax.grammar import accelerated

    print(f"python {platform.python_version()} ({platform.python_implementation()}), lark {lark.__version__}"
          f"{' with lark_cython' if accelerated() else ' (pure Python: lark_cython not installed)'}, "
          f"pydantic {pydantic.VERSION}; {platform.machine()}, {pinned}")
    todo = steps()
    names = [name for name, _ in todo]
    print(f"steps: {', '.join(names)}")
    width_cell = max(16, *(len(n) for n in names))

    print("\nspecs (designs per second, CPU time / wall time)")
    width = max(len(n) for n, _ in spec_inputs())
    print(f"  {'spec':<{width}}  {'KB':>6}  " + "  ".join(f"{n:>{width_cell}}" for n in names))
    totals = {name: Timing(0.0, 0.0) for name in names}  # seconds for one pass over every spec
    for label, text in spec_inputs():
        cells = []
        for name, step in todo:
            try:
                t = per_run(step, text, args.min_time)
                totals[name] = Timing(totals[name].cpu + t.cpu, totals[name].wall + t.wall)
                cells.append(f"{rate(1, t):>{width_cell}}")
            except Exception as err:  # a broken spec should not stop the benchmark
                cells.append(f"{type(err).__name__:>{width_cell}}")
        print(f"  {label:<{width}}  {len(text.encode()) / 1024:>6.1f}  " + "  ".join(cells))
    count = len(spec_inputs())
    print(f"  {'all specs (target: 500/s)':<{width}}  {'':>6}  "
          + "  ".join(f"{rate(count, totals[n]):>{width_cell}}" for n in names))
    if "parse, pure Lark (peer)" in totals:
        peer, ours = totals["parse, pure Lark (peer)"], totals["parse"]
        print(f"\n  parse with lark_cython vs pure Lark: {peer.cpu / ours.cpu:.2f}x faster (CPU), "
              f"{peer.wall / ours.wall:.2f}x (wall)")
    if "json (peer)" in totals:
        peer, ours = totals["json (peer)"], totals["parse"]
        print(f"  loading the JSON form is {ours.cpu / peer.cpu:.2f}x as fast as parsing the text (CPU), "
              f"{ours.wall / peer.wall:.2f}x (wall)")

    print("\nsynthetic specs (milliseconds per KB, CPU time / wall time)")
    print(f"  {'size':>8}  {'units':>6}  " + "  ".join(f"{n:>{width_cell}}" for n in names))
    per_kb: dict[str, dict[int, float]] = {n: {} for n in names}
    for kb in (1, 10, 100):
        text = synthetic_spec(kb)
        size_kb = len(text.encode()) / 1024
        cells = []
        for name, step in todo:
            try:
                t = per_run(step, text, args.min_time)
                per_kb[name][kb] = t.cpu / size_kb
                cells.append(f"{t.cpu / size_kb * 1e3:>7.3f} /{t.wall / size_kb * 1e3:>7.3f}".rjust(width_cell))
            except Exception as err:
                cells.append(f"{type(err).__name__:>{width_cell}}")
        print(f"  {size_kb:>6.1f}KB  {text.count('unit Mixer'):>6}  " + "  ".join(cells))
    ratios = [
        f"{name} {t[100] / t[1]:.2f}" for name, t in per_kb.items() if 1 in t and 100 in t
    ]
    print(f"\n  CPU time per KB, 100 KB / 1 KB: {', '.join(ratios)}  (about 1 = linear growth)")


if __name__ == "__main__":
    main()
