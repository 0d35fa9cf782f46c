"""Triton kernels against their torch implementations and flash-linear-attention's kernels,
and whole training steps of seeds with the torch and the triton backend. Needs CUDA,
except `--check`.

    .venv/bin/python benchmarks/bench_kernels.py [--scales 14M 125M] [--batch 8]
        [--kernels rms_norm add_rms_norm head_rms_norm causal_conv gla retention ssd]
        [--seeds gla retnet mamba2]
        [--no-kernels] [--no-steps] [--profile] [--check]

Kernels: each at the shapes a seed gives it at each scale (D = d_model, L = the scale's
context length, `--batch` sequences), bfloat16, forward and forward+backward; the
median time of triton.testing.do_bench (CUDA events) for the torch implementation
(the one the torch backend copies), ours, and flash-linear-attention's kernel for the
same operation where there is one. Prints milliseconds, the speed-up over torch
(torch / triton) and the ratio to fla (triton / fla; the goal is <= 1.2).

Training steps: `build(seed design, scale, backend=torch|triton)`, one AdamW step on
`--batch` random sequences under bfloat16 autocast, as the trainer runs it. Prints
milliseconds per step and the speed-up. `--profile` also prints the CUDA kernels that
take the most time in the torch backend's step (benchmarks/profile_step.py shares the
step out by primitive).

`--check` runs the whole harness once, small, so that a GPU session's minutes are not
lost to a crash in it: float32, D=64, L=40 (not a multiple of any block), batch 2; on
the CPU under Triton's interpreter, on a GPU compiled. Every implementation of every
case runs forward and forward+backward, and triton's output and input gradients are held
to torch's. fla's kernels cannot run on the CPU (their autotuner needs a GPU driver), so
there each fla call is bound to fla's own signature instead, which catches a renamed or
misplaced argument. The gla, retnet and mamba2 seeds (`--seeds`) are built with both
backends and take one training step each (bf16 autocast on CUDA, none on the CPU), with
the same loss from both. Then the GPU run's report is printed from one untimed call of
each (its figures mean nothing). One line per check, `ok` or `FAIL` and what failed;
exit 1 if anything failed.

Without a CUDA device and without `--check` it says so and exits 0. A kernel is added
to it with one `<name>_cases(scale, batch, where)` function returning `Case`s and an
entry in `KERNELS`.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from genesys_dsl.compile import build  # noqa: E402
from genesys_dsl.evaluate import TrainConfig  # noqa: E402
from genesys_dsl.evaluate.trainer import lm_loss, make_optimizer  # noqa: E402
from genesys_dsl.scales import ConfigError, Scale, get_scale  # noqa: E402
from genesys_dsl.syntax.files import read_design  # noqa: E402

FLA_GOAL = 1.2
DO_BENCH = {"warmup": 25, "rep": 100, "return_mode": "median"}  # triton.testing.do_bench's keywords
STEP_SEEDS = ["gla", "retnet", "mamba2"]
# --check: lengths that are no multiple of the kernels' blocks (16-token sub-chunks, 64-token chunks and tiles)
CHECK_SCALE = Scale(name="check", d_model=64, n_layers=1, vocab_size=256, context_length=40, param_target=1)
CHECK_BATCH = 2
# float32, relative to the reference's largest entry; looser on CUDA, where cuBLAS and cuDNN may use TF32
CHECK_TOL = {"cpu": 1e-4, "cuda": 5e-3}
STEP_TOL = {"cpu": 1e-4, "cuda": 2e-2}  # the loss, relative; bf16 autocast on CUDA

Outputs = torch.Tensor | tuple[torch.Tensor, ...]
Timer = Callable[[Callable[[], object]], float]  # a callable -> milliseconds per call


def leaf(*shape: int, device: torch.device | str, dtype: torch.dtype, scale: float = 1.0) -> torch.Tensor:
    return (torch.randn(*shape, device=device, dtype=dtype) * scale).requires_grad_()


@dataclass(frozen=True)
class Where:
    """Where a run's tensors live and in which dtype; the training steps' autocast dtype
    (None: none); whether fla's kernels run there (not on the CPU: --check binds their
    calls to fla's signatures instead)."""

    device: torch.device
    dtype: torch.dtype
    autocast: torch.dtype | None
    fla_runs: bool = True

    def leaf(self, *shape: int, scale: float = 1.0) -> torch.Tensor:
        return leaf(*shape, device=self.device, dtype=self.dtype, scale=scale)


def gpu_run() -> Where:
    """What the timed run uses: bfloat16 on the GPU, bf16 autocast as the trainer there."""
    return Where(torch.device("cuda"), torch.bfloat16, torch.bfloat16)


def check_run(device: torch.device) -> Where:
    """What --check uses: float32 (the interpreter is exact only there); steps as the trainer runs them."""
    cuda = device.type == "cuda"
    return Where(device, torch.float32, torch.bfloat16 if cuda else None, fla_runs=cuda)


@dataclass
class Case:
    """One operation at one shape: the implementations to time, given the same inputs.

    Each implementation is a zero-argument callable returning the output (or a tuple of
    outputs); forward+backward differentiates them with respect to `inputs`."""

    kernel: str
    shape: str
    inputs: list[torch.Tensor]
    impls: dict[str, Callable[[], Outputs]] = field(default_factory=dict)


class FlaCallBound(Exception):
    """Raised in place of running an fla function that cannot run here, once the call
    has bound to the function's signature."""


def binding_probe(fn: Callable) -> Callable:
    """A stand-in for `fn` that binds its arguments to fn's signature and raises
    FlaCallBound, or TypeError naming the argument that does not bind. An argument
    that only a **kwargs would take counts as not binding: fla's functions take
    **kwargs, and a renamed keyword would otherwise vanish into it."""
    signature = inspect.signature(fn)
    where = f"{fn.__module__}.{fn.__qualname__}"

    def probe(*args, **kwargs):
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as err:
            raise TypeError(f"{where}{signature}: {err}") from None
        for name, value in bound.arguments.items():
            if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD and value:
                raise TypeError(f"{where} has no parameter {', '.join(map(repr, value))} (only its **{name} "
                                f"would take it); its parameters: {', '.join(signature.parameters)}")
        raise FlaCallBound(where)

    return probe


def fla_or_none(loader: Callable[[], Callable], where: Where) -> Callable | None:
    """flash-linear-attention's function, or None where it is not installed; where fla
    cannot run, a stand-in that checks the call against the function's signature."""
    try:
        fn = loader()
    except ImportError:
        return None
    return fn if where.fla_runs else binding_probe(fn)


# ------------------------------------------------------------------ the kernels' cases


def rms_norm_cases(sc: Scale, batch: int, where: Where) -> list[Case]:
    from genesys_primitives.torch_ops.norms import _rms_norm
    from genesys_primitives.triton_ops.norms import _RMSNormFunction

    fla_rms_norm = fla_or_none(lambda: __import__("fla.modules.norm.layernorm", fromlist=["rms_norm"]).rms_norm, where)
    d, length = sc.d_model, sc.context_length
    x, weight = where.leaf(batch, length, d), where.leaf(d)
    case = Case("rms_norm", f"B={batch} L={length} W={d}", [x, weight], {
        "torch": lambda: _rms_norm(x, weight, 1e-6),
        "triton": lambda: _RMSNormFunction.apply(x, None, weight, 1e-6)[0],
    })
    if fla_rms_norm is not None:
        case.impls["fla"] = lambda: fla_rms_norm(x, weight, None, eps=1e-6)
    return [case]


def add_rms_norm_cases(sc: Scale, batch: int, where: Where) -> list[Case]:
    """The residual add and the next sub-layer's RMSNorm: (x + r, RMSNorm(x + r))."""
    from genesys_primitives.torch_ops.norms import _rms_norm
    from genesys_primitives.triton_ops.norms import _RMSNormFunction

    fla_rms_norm = fla_or_none(lambda: __import__("fla.modules.norm.layernorm", fromlist=["rms_norm"]).rms_norm, where)
    d, length = sc.d_model, sc.context_length
    x, r, weight = where.leaf(batch, length, d), where.leaf(batch, length, d), where.leaf(d)

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


def head_rms_norm_cases(sc: Scale, batch: int, where: Where) -> list[Case]:
    """Per-head RMSNorm at GLA's output shape (D / 64 heads of 64)."""
    from genesys_primitives.torch_ops.norms import _rms_norm
    from genesys_primitives.triton_ops.norms import _RMSNormFunction

    d, length = sc.d_model, sc.context_length
    heads = max(1, d // 64)
    x, weight = where.leaf(batch, length, heads, d // heads), where.leaf(heads, d // heads)
    return [Case("head_rms_norm", f"B={batch} L={length} H={heads} E={d // heads}", [x, weight], {
        "torch": lambda: _rms_norm(x, weight, 1e-6),
        "triton": lambda: _RMSNormFunction.apply(x, None, weight, 1e-6)[0],
    })]


def causal_conv_cases(sc: Scale, batch: int, where: Where) -> list[Case]:
    """Mamba-2's short convolution over its inner width 2D, 4 taps."""
    from genesys_primitives.triton_ops.convs import _CausalConvFunction

    fla_conv = fla_or_none(lambda: __import__("fla.modules.causal_conv1d", fromlist=["causal_conv1d"]).causal_conv1d, where)
    width, length, taps = 2 * sc.d_model, sc.context_length, 4
    x, weight, bias = where.leaf(batch, length, width), where.leaf(width, 1, taps, scale=0.5), where.leaf(width)

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


def gla_cases(sc: Scale, batch: int, where: Where) -> list[Case]:
    """The GLA seed's mixer: 4 heads, keys D / 8 and values D / 4 wide, logsigmoid / 16 gates."""
    from genesys_primitives.torch_ops.mixers import gla as torch_gla
    from genesys_primitives.triton_ops.mixers import gla as triton_gla

    fla_gla = fla_or_none(lambda: __import__("fla.ops.gla", fromlist=["chunk_gla"]).chunk_gla, where)
    d, length, heads = sc.d_model, sc.context_length, 4
    q, k, v = where.leaf(batch, length, heads, d // 8), where.leaf(batch, length, heads, d // 8), where.leaf(batch, length, heads, d // 4)
    g = F.logsigmoid(torch.randn(batch, length, heads, d // 8, device=where.device)).div(16).to(where.dtype)
    g.requires_grad_()
    case = Case("gla", f"B={batch} L={length} H={heads} K={d // 8} V={d // 4}", [q, k, v, g], {
        "torch": lambda: torch_gla(q, k, v, g),
        "triton": lambda: triton_gla(q, k, v, g),
    })
    if fla_gla is not None:
        case.impls["fla"] = lambda: fla_gla(q, k, v, g, scale=(d // 8) ** -0.5)[0]
    return [case]


def retention_cases(sc: Scale, batch: int, where: Where) -> list[Case]:
    """The RetNet seed's mixer: 4 heads, keys D / 4 and values D / 2 wide."""
    from genesys_primitives.torch_ops.mixers import retention as torch_retention
    from genesys_primitives.triton_ops.mixers import retention as triton_retention

    fla_retention = fla_or_none(lambda: __import__("fla.ops.retention", fromlist=["chunk_retention"]).chunk_retention, where)
    d, length, heads = sc.d_model, sc.context_length, 4
    q, k, v = where.leaf(batch, length, heads, d // 4), where.leaf(batch, length, heads, d // 4), where.leaf(batch, length, heads, d // 2)
    case = Case("retention", f"B={batch} L={length} H={heads} K={d // 4} V={d // 2}", [q, k, v], {
        "torch": lambda: torch_retention(q, k, v),
        "triton": lambda: triton_retention(q, k, v),
    })
    if fla_retention is not None:  # same gamma_h = 1 - 2^(-5 - h) and K^-0.5 scale (tests/test_fla_parity.py)
        case.impls["fla"] = lambda: fla_retention(q, k, v)[0]
    return [case]


def ssd_cases(sc: Scale, batch: int, where: Where) -> list[Case]:
    """The Mamba-2 seed's scan: 2D channels in heads of 64, state 64, one group of B and C.
    fla has no SSD of its own; its scalar-gate chunk_simple_gla computes the same scan
    (queries C, keys B, values dt x, log-decay dt A), with the same elementwise torch around it."""
    from genesys_primitives.torch_ops.mixers import ssd as torch_ssd
    from genesys_primitives.triton_ops.ssd import ssd as triton_ssd

    fla_simple_gla = fla_or_none(
        lambda: __import__("fla.ops.simple_gla", fromlist=["chunk_simple_gla"]).chunk_simple_gla, where)
    d, length, state = sc.d_model, sc.context_length, 64
    heads = 2 * d // 64
    torch.manual_seed(0)
    slow = torch_ssd(H=heads, P=64, G=1, N=state).to(where.device)
    fast = triton_ssd(H=heads, P=64, G=1, N=state).to(where.device)
    fast.load_state_dict(slow.state_dict())
    x, dt = where.leaf(batch, length, heads, 64), where.leaf(batch, length, heads)
    b, c = where.leaf(batch, length, 1, state), where.leaf(batch, length, 1, state)
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


KERNELS: dict[str, Callable[[Scale, int, Where], list[Case]]] = {
    "rms_norm": rms_norm_cases,
    "add_rms_norm": add_rms_norm_cases,
    "head_rms_norm": head_rms_norm_cases,
    "causal_conv": causal_conv_cases,
    "gla": gla_cases,
    "retention": retention_cases,
    "ssd": ssd_cases,
}


def make_cases(name: str, sc: Scale, batch: int, where: Where) -> list[Case]:
    torch.manual_seed(0)  # the same inputs every run
    return KERNELS[name](sc, batch, where)


def runnable(case: Case, where: Where) -> dict[str, Callable[[], Outputs]]:
    """The case's implementations that can run here (fla's need a GPU)."""
    return {name: impl for name, impl in case.impls.items() if where.fla_runs or name != "fla"}


def free_memory(where: Where) -> None:
    if where.device.type == "cuda":
        torch.cuda.empty_cache()


# ------------------------------------------------------------------ timing


def milliseconds(fn: Callable[[], object]) -> float:
    """The median of triton.testing.do_bench (CUDA events): the timed run's timer."""
    from triton.testing import do_bench

    return do_bench(fn, **DO_BENCH)


def one_call(fn: Callable[[], object]) -> float:
    """One call's wall time: --check's stand-in timer (it runs the report, not a measurement)."""
    start = time.perf_counter()
    fn()
    return 1e3 * (time.perf_counter() - start)


def as_tuple(outputs: Outputs) -> tuple[torch.Tensor, ...]:
    return outputs if isinstance(outputs, tuple) else (outputs,)


def forward_backward(impl: Callable[[], Outputs], inputs: list[torch.Tensor],
                     cotangents: list[torch.Tensor] | None = None) -> Callable[[], tuple]:
    """A call of impl and the gradients of its outputs against `cotangents` (random ones by
    default) with respect to `inputs`: returns (outputs, gradients)."""
    if cotangents is None:
        cotangents = [torch.randn_like(o) for o in as_tuple(impl())]

    def run():
        out = as_tuple(impl())
        return out, torch.autograd.grad(out, inputs, cotangents, allow_unused=True)

    return run


def time_case(case: Case, where: Where, timer: Timer) -> dict[str, dict[str, float]]:
    """mode -> implementation -> ms. fla's last: before it runs, ours and torch's are printed
    to stderr, so that an fla autotune that outlasts the time limit, or crashes the CUDA
    context (as chunk_simple_gla's backward did once on an H100), does not take them along."""
    times: dict[str, dict[str, float]] = {"fwd": {}, "fwd+bwd": {}}
    impls = runnable(case, where)
    for name in sorted(impls, key=lambda name: name == "fla"):
        if name == "fla":
            so_far = ", ".join(f"{mode} {impl} {ms:.3f}" for mode, row in times.items() for impl, ms in row.items())
            print(f"  {case.kernel} {case.shape}: {so_far} ms; now fla's", file=sys.stderr, flush=True)
        with torch.no_grad():
            times["fwd"][name] = timer(impls[name])
        times["fwd+bwd"][name] = timer(forward_backward(impls[name], case.inputs))
    return times


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def bench_kernels(names: list[str], scales: list[Scale], batch: int, where: Where, timer: Timer) -> None:
    print(f"\nkernels, {str(where.dtype).removeprefix('torch.')}: median ms; speed-up = torch / triton, "
          f"vs fla = triton / fla (goal <= {FLA_GOAL})")
    header = f"{'kernel':<15}{'shape':<34}{'mode':<9}{'torch':>9}{'triton':>9}{'fla':>9}{'speed-up':>10}{'vs fla':>8}"
    print(header)
    print("-" * len(header))
    for sc in scales:
        for name in names:
            for case in make_cases(name, sc, batch, where):
                for mode, t in time_case(case, where, timer).items():
                    fla = t.get("fla")
                    print(f"{case.kernel:<15}{case.shape:<34}{mode:<9}{t['torch']:>9.3f}{t['triton']:>9.3f}"
                          f"{fla if fla is not None else float('nan'):>9.3f}{ratio(t['torch'], t['triton']):>10}"
                          f"{ratio(t['triton'], fla):>8}")
                del case
                free_memory(where)


# ------------------------------------------------------------------ whole training steps


def training_step(model: torch.nn.Module, ids: torch.Tensor, autocast: torch.dtype | None,
                  optimizer: torch.optim.Optimizer | None = None) -> Callable[[], torch.Tensor]:
    """One optimiser step on `ids` ([batch, length + 1], on the model's device) as
    genesys_dsl.evaluate.trainer runs it: the forward under `autocast` (bf16 on CUDA,
    None on the CPU), the float32 loss, backward, gradient clipping, AdamW (the trainer's
    `make_optimizer` unless one is given). The loss is taken on the logits, where the
    trainer fuses it with the LM head (genesys_dsl/evaluate/loss.py): the same for both
    backends, and what profile_step.py attributes to the head and the loss separately.
    The returned callable gives the loss."""
    config = TrainConfig(tokens=ids[:, 1:].numel())
    optimizer = optimizer or make_optimizer(model, config)
    context = torch.autocast(ids.device.type, dtype=autocast) if autocast else contextlib.nullcontext()

    def step() -> torch.Tensor:
        with context:
            logits = model(ids[:, :-1])
        loss = lm_loss(logits, ids[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    return step


def random_ids(sc: Scale, batch: int, where: Where) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, sc.vocab_size, (batch, sc.context_length + 1), generator=gen).to(where.device)


def bench_steps(seeds: list[str], scales: list[Scale], batch: int, where: Where, timer: Timer,
                profile: bool) -> None:
    autocast = f"{str(where.autocast).removeprefix('torch.')} autocast" if where.autocast else "float32"
    print(f"\ntraining step (AdamW, {autocast}, {batch} sequences of the scale's context): "
          "median ms; speed-up = torch / triton")
    header = f"{'seed':<10}{'scale':<8}{'params':>12}{'torch':>10}{'triton':>10}{'speed-up':>10}"
    print(header)
    print("-" * len(header))
    for sc in scales:
        ids = random_ids(sc, batch, where)
        for seed in seeds:
            design = read_design(ROOT / "specs" / f"{seed}.gab")
            times = {}
            for backend in ("torch", "triton"):
                model = build(design, sc, seed=0, backend=backend).to(where.device)
                params = sum(p.numel() for p in model.parameters())
                step = training_step(model, ids, where.autocast)
                times[backend] = timer(step)
                if profile and backend == "torch":
                    print_profile(step, f"{seed} at {sc.name}, torch backend", where)
                del model, step
                free_memory(where)
            print(f"{seed:<10}{sc.name:<8}{params:>12,}{times['torch']:>10.2f}{times['triton']:>10.2f}"
                  f"{ratio(times['torch'], times['triton']):>10}")


def print_profile(step: Callable[[], object], title: str, where: Where, rows: int = 15) -> None:
    """The kernels (CUDA) or operators (CPU) that take the most time in 3 steps."""
    from torch.profiler import ProfilerActivity, profile

    cuda = where.device.type == "cuda"
    step()
    with profile(activities=[ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
        if cuda:
            torch.cuda.synchronize()
    print(f"\nprofile: {title} (3 steps, by {'CUDA' if cuda else 'CPU'} time)")
    print(prof.key_averages().table(sort_by="cuda_time_total" if cuda else "cpu_time_total", row_limit=rows))


# ------------------------------------------------------------------ --check


def mismatch(actual: torch.Tensor | None, expected: torch.Tensor | None, tol: float) -> str | None:
    """Why `actual` is not `expected` to `tol` relative to expected's largest entry (at least 1)."""
    if actual is None or expected is None:
        return None if actual is expected else f"{'no' if actual is None else 'a'} gradient where torch has " \
                                               f"{'one' if actual is None else 'none'}"
    if actual.shape != expected.shape or actual.dtype != expected.dtype:
        return f"{tuple(actual.shape)} {actual.dtype}, torch gives {tuple(expected.shape)} {expected.dtype}"
    bound = tol * max(1.0, expected.abs().max().item())
    error = (actual.float() - expected.float()).abs().max().item()
    return None if error <= bound else f"differs from torch by up to {error:.3g} (tolerance {bound:.3g})"


def compare(result: tuple, reference: tuple, tol: float) -> str | None:
    """The first output or input gradient of (outputs, gradients) that differs from the reference's."""
    (outputs, grads), (want_outputs, want_grads) = result, reference
    if len(outputs) != len(want_outputs):
        return f"{len(outputs)} outputs, torch gives {len(want_outputs)}"
    for what, got, want in [*((f"output {i}", g, w) for i, (g, w) in enumerate(zip(outputs, want_outputs))),
                            *((f"gradient of input {i}", g, w) for i, (g, w) in enumerate(zip(grads, want_grads)))]:
        problem = mismatch(got, want, tol)
        if problem:
            return f"{what} {problem}"
    return None


def report(ok: bool, what: str, detail: str) -> bool:
    print(f"{'ok  ' if ok else 'FAIL'}  {what:<28} {detail}")
    return ok


def check_case(case: Case, where: Where) -> bool:
    """Each implementation forward and forward+backward once; triton's (and, where it runs,
    fla's) outputs and input gradients against torch's; fla's calls bound where it cannot run."""
    tol = CHECK_TOL[where.device.type]
    passed = True
    reference = None
    gen = torch.Generator().manual_seed(1)
    for name, impl in case.impls.items():
        what = f"{case.kernel} {name}"
        try:
            with torch.no_grad():
                impl()
            if reference is None:  # torch's, first in every case
                cotangents = [torch.randn(o.shape, generator=gen, dtype=torch.float32).to(o)
                              for o in as_tuple(impl())]
            result = forward_backward(impl, case.inputs, cotangents)()
        except FlaCallBound as bound:
            passed &= report(True, what, f"binds to {bound} (fla cannot run here)")
            continue
        except Exception as err:  # noqa: BLE001 - every failure is reported, not only the first
            passed &= report(False, what, f"raised {type(err).__name__}: {err}")
            continue
        if reference is None:
            reference = result
            passed &= report(True, what, f"forward and backward at {case.shape}")
            continue
        problem = compare(result, reference, tol)
        passed &= report(problem is None, what, problem or f"matches torch (outputs and input gradients, "
                                                             f"tolerance {tol:g})")
    return passed


def check_steps(seeds: list[str], where: Where) -> bool:
    """Each seed built with both backends at CHECK_SCALE takes one training step: finite,
    and the same loss from both (they have the same weights)."""
    tol = STEP_TOL[where.device.type]
    ids = random_ids(CHECK_SCALE, CHECK_BATCH, where)
    passed = True
    for seed in seeds:
        losses: dict[str, float] = {}
        for backend in ("torch", "triton"):
            what = f"step {seed} {backend}"
            try:
                model = build(read_design(ROOT / "specs" / f"{seed}.gab"), CHECK_SCALE, seed=0,
                              backend=backend).to(where.device)
                losses[backend] = training_step(model, ids, where.autocast)().item()
            except Exception as err:  # noqa: BLE001 - reported, and the check goes on
                passed &= report(False, what, f"raised {type(err).__name__}: {err}")
                continue
            if not math.isfinite(losses[backend]):
                passed &= report(False, what, f"the loss is {losses[backend]}")
            elif backend == "triton" and "torch" in losses and \
                    abs(losses["triton"] - losses["torch"]) > tol * abs(losses["torch"]):
                passed &= report(False, what, f"loss {losses['triton']:.6f}, torch's {losses['torch']:.6f}")
            else:
                passed &= report(True, what, f"one AdamW step, loss {losses[backend]:.6f}")
    return passed


def check_do_bench() -> bool:
    """The timed run's one call into triton.testing that --check cannot make here."""
    from triton.testing import do_bench

    try:
        inspect.signature(do_bench).bind(lambda: None, **DO_BENCH)
    except TypeError as err:
        return report(False, "harness do_bench", f"triton.testing.do_bench{inspect.signature(do_bench)}: {err}")
    return report(True, "harness do_bench", f"the call binds to triton.testing.do_bench ({DO_BENCH})")


def check(kernels: list[str], seeds: list[str], where: Where) -> bool:
    """--check: see the module's docstring. True when everything passed."""
    print(f"check on {where.device.type}, {str(where.dtype).removeprefix('torch.')}: "
          f"{CHECK_SCALE.describe()}, batch {CHECK_BATCH}")
    passed = check_do_bench()
    for name in kernels:
        try:
            cases = make_cases(name, CHECK_SCALE, CHECK_BATCH, where)
        except Exception as err:  # noqa: BLE001 - reported, and the check goes on
            passed &= report(False, name, f"building the case raised {type(err).__name__}: {err}")
            continue
        for case in cases:
            passed &= check_case(case, where)
    passed &= check_steps(seeds, where)
    print("\nthe timed run's report, each figure one untimed call (meaningless as a timing):")
    try:
        if kernels:
            bench_kernels(kernels, [CHECK_SCALE], CHECK_BATCH, where, one_call)
        if seeds:
            bench_steps(seeds, [CHECK_SCALE], CHECK_BATCH, where, one_call, profile=True)
    except Exception as err:  # noqa: BLE001 - reported, and the check goes on
        passed &= report(False, "report", f"raised {type(err).__name__}: {err}")
    print(f"\ncheck: {'everything passed' if passed else 'FAILED (the lines marked FAIL)'}")
    return passed


# ------------------------------------------------------------------ the command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", nargs="+", default=["14M", "125M"], metavar="NAME")
    parser.add_argument("--batch", type=int, default=8, help="sequences per step or kernel call (default: 8)")
    parser.add_argument("--kernels", nargs="+", default=list(KERNELS), choices=list(KERNELS), metavar="NAME")
    parser.add_argument("--seeds", nargs="+", default=STEP_SEEDS, metavar="NAME")
    parser.add_argument("--no-kernels", action="store_true", help="skip the kernel comparisons")
    parser.add_argument("--no-steps", action="store_true", help="skip the training steps")
    parser.add_argument("--profile", action="store_true", help="profile the torch backend's training step")
    parser.add_argument("--check", action="store_true",
                        help="run every case and step once, small and in float32, and check the results "
                             "(on the CPU under Triton's interpreter); --scales and --batch do not apply")
    args = parser.parse_args(argv)
    for seed in args.seeds:
        if not (ROOT / "specs" / f"{seed}.gab").is_file():
            known = sorted(p.stem for p in (ROOT / "specs").glob("*.gab"))
            print(f"bench_kernels: no seed '{seed}' (specs/{seed}.gab); seeds: {', '.join(known)}", file=sys.stderr)
            return 2
    try:  # checked with --check too, so that a typo in the GPU run's command shows up here
        scales = [get_scale(name) for name in args.scales]
    except ConfigError as err:
        print(f"bench_kernels: {err}", file=sys.stderr)
        return 2
    kernels = [] if args.no_kernels else args.kernels
    seeds = [] if args.no_steps else args.seeds
    try:
        import triton
    except ImportError:
        print("bench_kernels: triton is not installed (pip install 'genesys-dsl[triton]')", file=sys.stderr)
        return 2
    if args.check:
        return 0 if run_check(kernels, seeds) else 1
    if not torch.cuda.is_available():
        print("bench_kernels: no CUDA device here; the Triton kernels are timed on a GPU only "
              "(`--check` runs the harness on the CPU; the kernels' parity tests: pytest tests/test_triton_*.py)")
        return 0
    props = torch.cuda.get_device_properties(0)
    print(f"GPU: {props.name} ({props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs); "
          f"torch {torch.__version__}, triton {triton.__version__}")
    if kernels:
        bench_kernels(kernels, scales, args.batch, gpu_run(), milliseconds)
    if seeds:
        bench_steps(seeds, scales, args.batch, gpu_run(), milliseconds, args.profile)
    return 0


def run_check(kernels: list[str], seeds: list[str]) -> bool:
    """--check on the GPU where there is one (compiled kernels), else on the CPU inside
    Triton's interpreter, with the kernel modules and fla imported afresh there."""
    from genesys_dsl.compile.backends import interpreter

    if torch.cuda.is_available():
        return check(kernels, seeds, check_run(torch.device("cuda")))
    with interpreter("genesys_primitives.triton_ops", "fla"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Triton is not supported on current platform")  # fla, said once here
        return check(kernels, seeds, check_run(torch.device("cpu")))


if __name__ == "__main__":
    sys.exit(main())
