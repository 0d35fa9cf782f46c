"""Triton kernels against their torch implementations and flash-linear-attention's kernels,
and whole training steps of seeds with the torch and the triton backend. Needs CUDA.

    .venv/bin/python benchmarks/bench_kernels.py [--scales 14M 125M] [--batch 8]
        [--kernels rms_norm add_rms_norm head_rms_norm causal_conv gla retention ssd]
        [--seeds gla retnet mamba2]
        [--no-kernels] [--no-steps] [--profile]

Kernels: each at the shapes a seed gives it at each scale (D = d_model, L = the scale's
context length, `--batch` sequences), bfloat16, forward and forward+backward; the
median time of triton.testing.do_bench (CUDA events) for the torch implementation
(the one the torch backend copies), ours, and flash-linear-attention's kernel for the
same operation where there is one. Prints milliseconds, the speed-up over torch
(torch / triton) and the ratio to fla (triton / fla; the goal is <= 1.2).

Training steps: `build(seed design, scale, backend=torch|triton)`, one AdamW step on
`--batch` random sequences under bfloat16 autocast, as the trainer runs it. Prints
milliseconds per step and the speed-up. `--profile` also prints the CUDA kernels that
take the most time in the torch backend's step (what the kernels were chosen by).

Without a CUDA device it says so and exits 0. A kernel is added to it with one
`<name>_cases(scale, batch)` function returning `Case`s and an entry in `KERNELS`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from genesys_dsl.compile import build  # noqa: E402
from genesys_dsl.scales import Scale, get_scale  # noqa: E402
from genesys_dsl.syntax.files import read_design  # noqa: E402

DTYPE = torch.bfloat16
FLA_GOAL = 1.2


@dataclass
class Case:
    """One operation at one shape: the implementations to time, given the same inputs.

    Each implementation is a zero-argument callable returning the output (or a tuple of
    outputs); forward+backward differentiates them with respect to `inputs`."""

    kernel: str
    shape: str
    inputs: list[torch.Tensor]
    impls: dict[str, Callable[[], torch.Tensor | tuple[torch.Tensor, ...]]] = field(default_factory=dict)


def leaf(*shape: int, scale: float = 1.0) -> torch.Tensor:
    return (torch.randn(*shape, device="cuda", dtype=DTYPE) * scale).requires_grad_()


def fla_or_none(loader: Callable[[], Callable]) -> Callable | None:
    """flash-linear-attention's function, or None where it is not installed."""
    try:
        return loader()
    except ImportError:
        return None


# ------------------------------------------------------------------ the kernels' cases


def rms_norm_cases(sc: Scale, batch: int) -> list[Case]:
    from genesys_primitives.torch_ops.norms import _rms_norm
    from genesys_primitives.triton_ops.norms import _RMSNormFunction

    fla_rms_norm = fla_or_none(lambda: __import__("fla.modules.norm.layernorm", fromlist=["rms_norm"]).rms_norm)
    d, length = sc.d_model, sc.context_length
    x, weight = leaf(batch, length, d), leaf(d)
    case = Case("rms_norm", f"B={batch} L={length} W={d}", [x, weight], {
        "torch": lambda: _rms_norm(x, weight, 1e-6),
        "triton": lambda: _RMSNormFunction.apply(x, None, weight, 1e-6)[0],
    })
    if fla_rms_norm is not None:
        case.impls["fla"] = lambda: fla_rms_norm(x, weight, None, eps=1e-6)
    return [case]


def add_rms_norm_cases(sc: Scale, batch: int) -> list[Case]:
    """The residual add and the next sub-layer's RMSNorm: (x + r, RMSNorm(x + r))."""
    from genesys_primitives.torch_ops.norms import _rms_norm
    from genesys_primitives.triton_ops.norms import _RMSNormFunction

    fla_rms_norm = fla_or_none(lambda: __import__("fla.modules.norm.layernorm", fromlist=["rms_norm"]).rms_norm)
    d, length = sc.d_model, sc.context_length
    x, r, weight = leaf(batch, length, d), leaf(batch, length, d), leaf(d)

    def torch_add_norm():
        s = x + r
        return _rms_norm(s, weight, 1e-6), s

    case = Case("add_rms_norm", f"B={batch} L={length} W={d}", [x, r, weight], {
        "torch": torch_add_norm,
        "triton": lambda: _RMSNormFunction.apply(x, r, weight, 1e-6),
    })
    if fla_rms_norm is not None:
        case.impls["fla"] = lambda: fla_rms_norm(x, weight, None, residual=r, eps=1e-6, prenorm=True)
    return [case]


def head_rms_norm_cases(sc: Scale, batch: int) -> list[Case]:
    """Per-head RMSNorm at GLA's output shape (D / 64 heads of 64)."""
    from genesys_primitives.torch_ops.norms import _rms_norm
    from genesys_primitives.triton_ops.norms import _RMSNormFunction

    d, length = sc.d_model, sc.context_length
    heads = max(1, d // 64)
    x, weight = leaf(batch, length, heads, d // heads), leaf(heads, d // heads)
    return [Case("head_rms_norm", f"B={batch} L={length} H={heads} E={d // heads}", [x, weight], {
        "torch": lambda: _rms_norm(x, weight, 1e-6),
        "triton": lambda: _RMSNormFunction.apply(x, None, weight, 1e-6)[0],
    })]


def causal_conv_cases(sc: Scale, batch: int) -> list[Case]:
    """Mamba-2's short convolution over its inner width 2D, 4 taps."""
    from genesys_primitives.triton_ops.convs import _CausalConvFunction

    fla_conv = fla_or_none(lambda: __import__("fla.modules.causal_conv1d", fromlist=["causal_conv1d"]).causal_conv1d)
    width, length, taps = 2 * sc.d_model, sc.context_length, 4
    x, weight, bias = leaf(batch, length, width), leaf(width, 1, taps, scale=0.5), leaf(width)

    def torch_conv():
        u = F.pad(x.transpose(1, 2), (taps - 1, 0))  # as torch_ops.convs.causal_conv
        return F.conv1d(u, weight, bias, groups=width).transpose(1, 2)

    case = Case("causal_conv", f"B={batch} L={length} W={width} K={taps}", [x, weight, bias], {
        "torch": torch_conv,
        "triton": lambda: _CausalConvFunction.apply(x, weight, bias),
    })
    if fla_conv is not None:
        case.impls["fla"] = lambda: fla_conv(x, weight.view(width, taps), bias)[0]
    return [case]


def gla_cases(sc: Scale, batch: int) -> list[Case]:
    """The GLA seed's mixer: 4 heads, keys D / 8 and values D / 4 wide, logsigmoid / 16 gates."""
    from genesys_primitives.torch_ops.mixers import gla as torch_gla
    from genesys_primitives.triton_ops.mixers import gla as triton_gla

    fla_gla = fla_or_none(lambda: __import__("fla.ops.gla", fromlist=["chunk_gla"]).chunk_gla)
    d, length, heads = sc.d_model, sc.context_length, 4
    q, k, v = leaf(batch, length, heads, d // 8), leaf(batch, length, heads, d // 8), leaf(batch, length, heads, d // 4)
    g = F.logsigmoid(torch.randn(batch, length, heads, d // 8, device="cuda")).div(16).to(DTYPE).requires_grad_()
    case = Case("gla", f"B={batch} L={length} H={heads} K={d // 8} V={d // 4}", [q, k, v, g], {
        "torch": lambda: torch_gla(q, k, v, g),
        "triton": lambda: triton_gla(q, k, v, g),
    })
    if fla_gla is not None:
        case.impls["fla"] = lambda: fla_gla(q, k, v, g, scale=(d // 8) ** -0.5)[0]
    return [case]


def retention_cases(sc: Scale, batch: int) -> list[Case]:
    """The RetNet seed's mixer: 4 heads, keys D / 4 and values D / 2 wide."""
    from genesys_primitives.torch_ops.mixers import retention as torch_retention
    from genesys_primitives.triton_ops.mixers import retention as triton_retention

    fla_retention = fla_or_none(lambda: __import__("fla.ops.retention", fromlist=["chunk_retention"]).chunk_retention)
    d, length, heads = sc.d_model, sc.context_length, 4
    q, k, v = leaf(batch, length, heads, d // 4), leaf(batch, length, heads, d // 4), leaf(batch, length, heads, d // 2)
    case = Case("retention", f"B={batch} L={length} H={heads} K={d // 4} V={d // 2}", [q, k, v], {
        "torch": lambda: torch_retention(q, k, v),
        "triton": lambda: triton_retention(q, k, v),
    })
    if fla_retention is not None:  # same gamma_h = 1 - 2^(-5 - h) and K^-0.5 scale (tests/test_fla_parity.py)
        case.impls["fla"] = lambda: fla_retention(q, k, v)[0]
    return [case]


def ssd_cases(sc: Scale, batch: int) -> list[Case]:
    """The Mamba-2 seed's scan: 2D channels in heads of 64, state 64, one group of B and C.
    fla has no SSD of its own; its scalar-gate chunk_simple_gla computes the same scan
    (queries C, keys B, values dt x, log-decay dt A), with the same elementwise torch around it."""
    from genesys_primitives.torch_ops.mixers import ssd as torch_ssd
    from genesys_primitives.triton_ops.ssd import ssd as triton_ssd

    fla_simple_gla = fla_or_none(
        lambda: __import__("fla.ops.simple_gla", fromlist=["chunk_simple_gla"]).chunk_simple_gla)
    d, length, state = sc.d_model, sc.context_length, 64
    heads = 2 * d // 64
    torch.manual_seed(0)
    slow = torch_ssd(H=heads, P=64, G=1, N=state).cuda()
    fast = triton_ssd(H=heads, P=64, G=1, N=state).cuda()
    fast.load_state_dict(slow.state_dict())
    x, dt = leaf(batch, length, heads, 64), leaf(batch, length, heads)
    b, c = leaf(batch, length, 1, state), leaf(batch, length, 1, state)
    case = Case("ssd", f"B={batch} L={length} H={heads} P=64 G=1 N={state}", [x, dt, b, c], {
        "torch": lambda: slow(x, dt, b, c),
        "triton": lambda: fast(x, dt, b, c),
    })
    if fla_simple_gla is not None:
        def fla_ssd():
            step = F.softplus(dt.float() + slow.dt_bias)
            y, _ = fla_simple_gla(c.expand(-1, -1, heads, -1).contiguous(), b.expand(-1, -1, heads, -1).contiguous(),
                                  (x * step[..., None]).to(x.dtype), g=-torch.exp(slow.A_log) * step, scale=1.0)
            return y + slow.D[:, None] * x

        case.impls["fla"] = fla_ssd
    return [case]


KERNELS: dict[str, Callable[[Scale, int], list[Case]]] = {
    "rms_norm": rms_norm_cases,
    "add_rms_norm": add_rms_norm_cases,
    "head_rms_norm": head_rms_norm_cases,
    "causal_conv": causal_conv_cases,
    "gla": gla_cases,
    "retention": retention_cases,
    "ssd": ssd_cases,
}


# ------------------------------------------------------------------ timing


def milliseconds(fn: Callable[[], object]) -> float:
    from triton.testing import do_bench

    return do_bench(fn, warmup=25, rep=100, return_mode="median")


def forward_backward(impl, inputs: list[torch.Tensor]) -> Callable[[], object]:
    outputs = impl()
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    cotangents = [torch.randn_like(o) for o in outputs]

    def run():
        out = impl()
        out = out if isinstance(out, tuple) else (out,)
        return torch.autograd.grad(out, inputs, cotangents, allow_unused=True)

    return run


def time_case(case: Case) -> dict[str, dict[str, float]]:
    """mode -> implementation -> ms."""
    times: dict[str, dict[str, float]] = {"fwd": {}, "fwd+bwd": {}}
    for name, impl in case.impls.items():
        with torch.no_grad():
            times["fwd"][name] = milliseconds(impl)
        times["fwd+bwd"][name] = milliseconds(forward_backward(impl, case.inputs))
    return times


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def bench_kernels(names: list[str], scales: list[Scale], batch: int) -> None:
    print(f"\nkernels, {str(DTYPE).removeprefix('torch.')}: median ms; speed-up = torch / triton, "
          f"vs fla = triton / fla (goal <= {FLA_GOAL})")
    header = f"{'kernel':<15}{'shape':<34}{'mode':<9}{'torch':>9}{'triton':>9}{'fla':>9}{'speed-up':>10}{'vs fla':>8}"
    print(header)
    print("-" * len(header))
    for sc in scales:
        for name in names:
            for case in KERNELS[name](sc, batch):
                for mode, t in time_case(case).items():
                    fla = t.get("fla")
                    print(f"{case.kernel:<15}{case.shape:<34}{mode:<9}{t['torch']:>9.3f}{t['triton']:>9.3f}"
                          f"{fla if fla is not None else float('nan'):>9.3f}{ratio(t['torch'], t['triton']):>10}"
                          f"{ratio(t['triton'], fla):>8}")
                del case
                torch.cuda.empty_cache()


# ------------------------------------------------------------------ whole training steps


def training_step(model, ids: torch.Tensor) -> Callable[[], None]:
    """One AdamW step on `ids` under bfloat16 autocast, as genesys_dsl.evaluate.trainer runs it."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(ids[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def bench_steps(seeds: list[str], scales: list[Scale], batch: int, profile: bool) -> None:
    print(f"\ntraining step (AdamW, bf16 autocast, {batch} sequences of the scale's context): "
          "median ms; speed-up = torch / triton")
    header = f"{'seed':<10}{'scale':<8}{'params':>12}{'torch':>10}{'triton':>10}{'speed-up':>10}"
    print(header)
    print("-" * len(header))
    for sc in scales:
        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(0, sc.vocab_size, (batch, sc.context_length + 1), generator=gen).cuda()
        for seed in seeds:
            design = read_design(ROOT / "specs" / f"{seed}.gab")
            times = {}
            for backend in ("torch", "triton"):
                model = build(design, sc, seed=0, backend=backend).cuda()
                params = sum(p.numel() for p in model.parameters())
                step = training_step(model, ids)
                times[backend] = milliseconds(step)
                if profile and backend == "torch":
                    print_profile(step, f"{seed} at {sc.name}, torch backend")
                del model, step
                torch.cuda.empty_cache()
            print(f"{seed:<10}{sc.name:<8}{params:>12,}{times['torch']:>10.2f}{times['triton']:>10.2f}"
                  f"{ratio(times['torch'], times['triton']):>10}")


def print_profile(step: Callable[[], None], title: str, rows: int = 15) -> None:
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            step()
        torch.cuda.synchronize()
    print(f"\nprofile: {title} (3 steps, by CUDA time)")
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", nargs="+", default=["14M", "125M"], metavar="NAME")
    parser.add_argument("--batch", type=int, default=8, help="sequences per step or kernel call (default: 8)")
    parser.add_argument("--kernels", nargs="+", default=list(KERNELS), choices=list(KERNELS), metavar="NAME")
    parser.add_argument("--seeds", nargs="+", default=["gla", "retnet", "mamba2"], metavar="NAME")
    parser.add_argument("--no-kernels", action="store_true", help="skip the kernel comparisons")
    parser.add_argument("--no-steps", action="store_true", help="skip the training steps")
    parser.add_argument("--profile", action="store_true", help="profile the torch backend's training step")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_kernels: no CUDA device here; the Triton kernels are timed on a GPU only "
              "(their CPU parity tests: pytest tests/test_triton_*.py)")
        return 0
    try:
        import triton
    except ImportError:
        print("bench_kernels: triton is not installed (pip install 'genesys-dsl[triton]')", file=sys.stderr)
        return 2
    scales = [get_scale(name) for name in args.scales]
    props = torch.cuda.get_device_properties(0)
    print(f"GPU: {props.name} ({props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs); "
          f"torch {torch.__version__}, triton {triton.__version__}")
    if not args.no_kernels:
        bench_kernels(args.kernels, scales, args.batch)
    if not args.no_steps:
        bench_steps(args.seeds, scales, args.batch, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
