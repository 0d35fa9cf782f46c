"""Chunk sizes of the torch backend's chunked scans, at the shapes the CPU ladder trains on.

    .venv/bin/python benchmarks/sweep_torch_chunks.py [--seeds gla retnet mamba2 hybrid gated_deltanet rwkv6]
        [--shapes synthetic perplexity cpu-s] [--chunks 8 16 32 64] [--rounds 5] [--threads 1] [--no-steps]

The chunked scans (retention and ssd's scalar decay, gla and wkv6's per-channel decay,
the (gated) delta rule) compute the same result, up to rounding, whatever their chunk;
the chunk decides only their speed. This is how the CPU defaults in
plugins/genesys_primitives/torch_ops/mixers.py (`_chunk_tokens`) were chosen:

1. Each seed is built at a shape an evaluation on the cpu ladder trains it at (`synthetic`:
   cpu-xs, 32 sequences of 32 tokens, as the synthetic suite's tasks; `perplexity`:
   cpu-xs, 16 of 128, as the rung's pretraining; `cpu-s`: 16 of 256), one forward pass
   records its mixer calls (benchmarks/profile_step.py's recorder), and each call is timed
   forward + backward in isolation at every `--chunks` size (rounds alternate between the
   sizes; the median of `--rounds` after two warm-ups). Prints ms per chunk size (a chunk
   asked for is used as it is, padding included), at the default now, and at the previous
   defaults (64 tokens for the scalar decay and the delta rule, 16 for the per-channel
   decay, padded past the sequence when it was shorter), with the speed-up.
2. A whole training step of each seed at each shape (benchmarks/bench_kernels.py's
   `training_step`: AdamW, clipping) with the previous chunks against the defaults,
   alternating, median of `--rounds`: the figure that decides an evaluation's time.
One torch thread by default, as the executors' workers run.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402
from bench_kernels import training_step  # noqa: E402
from profile_step import Call, Recorder, forward_backward, recording  # noqa: E402

from genesys_dsl.compile import build  # noqa: E402
from genesys_dsl.evaluate import TrainConfig  # noqa: E402
from genesys_dsl.evaluate.trainer import make_optimizer  # noqa: E402
from genesys_dsl.scales import get_scale  # noqa: E402
from genesys_dsl.syntax.files import read_design  # noqa: E402

SEEDS = ["gla", "retnet", "mamba2", "hybrid", "gated_deltanet", "rwkv6"]
SHAPES = {  # name -> (scale, sequences, tokens)
    "synthetic": ("cpu-xs", 32, 32),
    "perplexity": ("cpu-xs", 16, 128),
    "cpu-s": ("cpu-s", 16, 256),
}
PREVIOUS = {"retention": 64, "ssd": 64, "gated_delta_rule": 64, "delta_rule": 64, "gla": 16, "wkv6": 16}
CHUNKED = tuple(PREVIOUS)


def chunk_of(call: Call, chunk: int | None) -> Callable:
    """The recorded primitive with its chunk set (None: its default)."""
    if call.owner is not None:  # a module: the chunk is an attribute
        def run(*args, **kwargs):
            kept = call.owner.chunk_size
            call.owner.chunk_size = chunk
            try:
                return call.fn(*args, **kwargs)
            finally:
                call.owner.chunk_size = kept
        return run
    return functools.partial(call.fn, chunk_size=chunk) if chunk is not None else call.fn


def median_ms(runs: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Each run's median time over `rounds`, the runs alternating (order reversed every other round)."""
    names = list(runs)
    for _ in range(2):  # warm-up: the first calls allocate what later ones reuse
        for name in names:
            runs[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            start = time.perf_counter()
            runs[name]()
            times[name].append(1e3 * (time.perf_counter() - start))
    return {name: statistics.median(t) for name, t in times.items()}


def seed_model(seed: str, scale: str):
    return build(read_design(ROOT / "specs" / f"{seed}.gab"), get_scale(scale), seed=0, backend="torch")


def batch_ids(scale: str, sequences: int, tokens: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, get_scale(scale).vocab_size, (sequences, tokens + 1), generator=gen)


def mixer_calls(model, ids: torch.Tensor) -> list[Call]:
    recorder = Recorder()
    with recording(model, recorder), torch.no_grad():
        model(ids[:, :-1])
    return [call for call in recorder.calls.values() if call.label in CHUNKED]


def sweep_calls(seeds: list[str], shapes: list[str], chunks: list[int], rounds: int) -> None:
    print("1. each chunked mixer call, forward + backward, median ms by chunk; the default now (which never pads "
          "past the sequence) and the previous one")
    header = f"{'seed':<16}{'shape':<12}{'primitive':<18}" + "".join(f"{c:>9}" for c in chunks) + \
        f"{'default':>9}{'previous':>10}{'speed-up':>10}"
    print(header)
    print("-" * len(header))
    for seed in seeds:
        for shape in shapes:
            scale, sequences, tokens = SHAPES[shape]
            model = seed_model(seed, scale)
            for call in mixer_calls(model, batch_ids(scale, sequences, tokens)):
                params = list(call.owner.parameters()) if call.owner is not None else []

                def timed(chunk):
                    return forward_backward(chunk_of(call, chunk), call.args, call.kwargs, params, nullcontext)

                runs = {str(c): timed(c) for c in chunks}
                runs["default"] = timed(None)
                runs["previous"] = timed(PREVIOUS[call.label])
                ms = median_ms(runs, rounds)
                cells = "".join(f"{ms[str(c)]:>9.2f}" for c in chunks)
                print(f"{seed:<16}{shape:<12}{call.label:<18}{cells}{ms['default']:>9.2f}{ms['previous']:>10.2f}"
                      f"{ms['previous'] / ms['default']:>9.2f}x")


@contextmanager
def previous_chunks(model) -> Iterator[None]:
    """The model's chunked primitives at their previous default chunks inside the block."""
    namespace = type(model).forward.__globals__
    functions = {name: namespace[name] for name in CHUNKED if callable(namespace.get(name))
                 and not isinstance(namespace[name], type)}
    modules = [m for m in model.modules() if type(m).__name__ in CHUNKED and hasattr(m, "chunk_size")]
    namespace.update({name: functools.partial(fn, chunk_size=PREVIOUS[name]) for name, fn in functions.items()})
    kept = [m.chunk_size for m in modules]
    for m in modules:
        m.chunk_size = PREVIOUS[type(m).__name__]
    try:
        yield
    finally:
        namespace.update(functions)
        for m, chunk in zip(modules, kept):
            m.chunk_size = chunk


def sweep_steps(seeds: list[str], shapes: list[str], rounds: int) -> None:
    print("\n2. a whole training step (AdamW, clipping), median ms: previous chunks against the defaults now")
    header = f"{'seed':<16}{'shape':<12}{'previous':>10}{'now':>10}{'speed-up':>10}"
    print(header)
    print("-" * len(header))
    for seed in seeds:
        for shape in shapes:
            scale, sequences, tokens = SHAPES[shape]
            model = seed_model(seed, scale)
            ids = batch_ids(scale, sequences, tokens)
            step = training_step(model, ids, None, make_optimizer(model, TrainConfig(tokens=ids[:, 1:].numel())))

            def previous(step=step, model=model):
                with previous_chunks(model):
                    step()

            ms = median_ms({"previous": previous, "now": step}, rounds)
            print(f"{seed:<16}{shape:<12}{ms['previous']:>10.1f}{ms['now']:>10.1f}{ms['previous'] / ms['now']:>9.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", default=SEEDS, metavar="NAME")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--chunks", nargs="+", type=int, default=[8, 16, 32, 64], metavar="C")
    parser.add_argument("--rounds", type=int, default=5, help="timed calls of each variant (default: 5)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-steps", action="store_true", help="skip the whole training steps")
    args = parser.parse_args(argv)
    unknown = [seed for seed in args.seeds if not (ROOT / "specs" / f"{seed}.gab").is_file()]
    if unknown:
        known = sorted(path.stem for path in (ROOT / "specs").glob("*.gab"))
        print(f"sweep_torch_chunks: no seed {', '.join(map(repr, unknown))} in specs/; seeds: {', '.join(known)}",
              file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} thread(s), CPU")
    sweep_calls(args.seeds, args.shapes, args.chunks, args.rounds)
    if not args.no_steps:
        sweep_steps(args.seeds, args.shapes, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
