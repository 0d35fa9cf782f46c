"""Tile sizes and warps of the Triton causal_conv kernels, timed against torch's conv (cuDNN).

    .venv/bin/python benchmarks/sweep_conv_tiles.py [--scales 14M 125M] [--batch 8] [--check]

The kernels take fixed launch parameters (`_causal_conv_launch` in
plugins/genesys_primitives/triton_ops/convs.py), not an autotuner: a tile size changes how
the weight gradient's partial sums are grouped, so an autotuned choice would make training
differ in the last bits from run to run. This sweep is how that fixed choice is made: for
Mamba-2's short convolution at each scale (width 2D, 4 taps, bfloat16, `--batch`
sequences) it times the forward and the backward pass separately for every (tokens,
channels, warps) in the grid below, with the others at the shipped choice, beside torch.
Prints milliseconds (median of triton.testing.do_bench), best first, the shipped
choice marked.

`--check` runs every configuration once on a small shape in float32 (on the CPU under
Triton's interpreter) and holds its output and gradients to torch's, so the sweep's
tile sizes are known to be correct before GPU time is spent on them.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from genesys_dsl.compile.backends import interpreter  # noqa: E402
from genesys_dsl.scales import ConfigError, get_scale  # noqa: E402

TOKENS = (16, 32, 64)
CHANNELS = (64, 128, 256)
WARPS = (4, 8)
TAPS = 4
DO_BENCH = {"warmup": 10, "rep": 40, "return_mode": "median"}  # short: 36 choices a scale, each compiled


def conv_inputs(batch: int, length: int, width: int, device: str, dtype: torch.dtype):
    gen = torch.Generator().manual_seed(0)

    def leaf(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen) * scale).to(device, dtype).requires_grad_()

    return leaf(batch, length, width), leaf(width, 1, TAPS, scale=0.5), leaf(width)


def torch_conv(x, weight, bias):
    from genesys_primitives.torch_ops.convs import _causal_conv

    return _causal_conv(x, weight, bias)


@contextmanager
def launching(convs, choice: tuple[int, int, int], for_backward: bool) -> Iterator[None]:
    """Inside the block the kernels launch with `choice` in one direction, the shipped
    choice in the other (`_causal_conv_launch` swapped, and put back after)."""
    shipped = convs._causal_conv_launch

    def launch(L, C, backward):
        if backward != for_backward:
            return shipped(L, C, backward)
        tokens, channels, warps = choice
        return min(tokens, convs.triton.next_power_of_2(L)), min(channels, convs.triton.next_power_of_2(C)), warps

    convs._causal_conv_launch = launch
    try:
        yield
    finally:
        convs._causal_conv_launch = shipped


def configurations():
    return list(itertools.product(TOKENS, CHANNELS, WARPS))


def gpu_milliseconds(fn: Callable[[], object]) -> float:
    from triton.testing import do_bench

    return do_bench(fn, **DO_BENCH)


def sweep(convs, batch: int, length: int, width: int, device: str = "cuda", dtype: torch.dtype = torch.bfloat16,
          timer: Callable[[Callable[[], object]], float] = gpu_milliseconds) -> None:
    """Print the timings of every launch choice at one shape (the timer and device are
    parameters so that the loop can be tried on the CPU with a stand-in timer)."""
    from triton.runtime.errors import OutOfResources

    x, weight, bias = conv_inputs(batch, length, width, device, dtype)
    dy = torch.randn_like(x)

    def forward():
        return convs._CausalConvFunction.apply(x, weight, bias)

    def backward_of(make: Callable[[], torch.Tensor]) -> Callable[[], object]:
        y = make()
        return lambda: torch.autograd.grad(y, (x, weight, bias), dy, retain_graph=True)

    reference = {"fwd": timer(lambda: torch_conv(x, weight, bias)),
                 "bwd": timer(backward_of(lambda: torch_conv(x, weight, bias)))}
    print(f"\ncausal_conv B={batch} L={length} W={width} K={TAPS}, {str(dtype).removeprefix('torch.')}: "
          f"torch fwd {reference['fwd']:.4f} ms, bwd {reference['bwd']:.4f} ms")
    for direction, backward in (("fwd", False), ("bwd", True)):
        rows = []
        for choice in configurations():
            try:
                with launching(convs, choice, backward):
                    ms = timer(backward_of(forward) if backward else forward)
            except OutOfResources as err:  # too much shared memory or too many registers: say so, go on
                print(f"  {direction} tokens={choice[0]} channels={choice[1]} warps={choice[2]}: "
                      f"{type(err).__name__}: {str(err).splitlines()[0][:120]}")
                continue
            rows.append((ms, choice))
        mine = convs._causal_conv_launch(length, width, backward)
        print(f"  {direction}: {'tokens':>6}{'channels':>9}{'warps':>6}{'ms':>9}{'torch/ours':>11}")
        for ms, choice in sorted(rows)[:8] + [row for row in rows if row[1] == mine and row not in sorted(rows)[:8]]:
            mark = "  <- shipped" if choice == mine else ""
            print(f"  {'':5}{choice[0]:>6}{choice[1]:>9}{choice[2]:>6}{ms:>9.4f}{reference[direction] / ms:>10.2f}x{mark}")


def check(convs) -> bool:
    """Every configuration, once, small, float32: output and gradients equal torch's."""
    x, weight, bias = conv_inputs(2, 40, 72, "cpu", torch.float32)  # tails in both tile dimensions
    dy = torch.randn_like(x)
    expected = torch_conv(x, weight, bias)
    expected_grads = torch.autograd.grad(expected, (x, weight, bias), dy)
    failures = 0
    for backward, choice in itertools.product((False, True), configurations()):
        with launching(convs, choice, backward):
            y = convs._CausalConvFunction.apply(x, weight, bias)
            grads = torch.autograd.grad(y, (x, weight, bias), dy)
        for name, got, want in zip(("output", "dx", "dw", "dbias"), (y, *grads), (expected, *expected_grads)):
            if not torch.allclose(got, want, rtol=1e-4, atol=1e-4):
                failures += 1
                print(f"FAIL {'bwd' if backward else 'fwd'} {choice}: {name} off by {(got - want).abs().max():.3g}")
    print(f"{'ok' if not failures else 'FAIL'}: {2 * len(configurations())} launch choices against torch")
    return not failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", nargs="+", default=["14M", "125M"], metavar="NAME")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--check", action="store_true", help="check every configuration on the CPU, small")
    args = parser.parse_args(argv)
    try:
        scales = [get_scale(name) for name in args.scales]
    except ConfigError as err:
        print(f"sweep_conv_tiles: {err}", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    if args.check:
        with interpreter("genesys_primitives.triton_ops"):
            from genesys_primitives.triton_ops import convs
            return 0 if check(convs) else 1
    if not torch.cuda.is_available():
        print("sweep_conv_tiles: no CUDA device here; --check runs on the CPU")
        return 0
    from genesys_primitives.triton_ops import convs

    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, triton {convs.triton.__version__}")
    for sc in scales:
        sweep(convs, args.batch, sc.context_length, 2 * sc.d_model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
