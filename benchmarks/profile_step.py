"""The share of a training step's time that each primitive takes, for seeds at scales,
on the CPU or a GPU: the profile the Triton kernels are chosen by.

    .venv/bin/python benchmarks/profile_step.py [--seeds gla retnet mamba2 transformer]
        [--scales 14M 125M] [--batch 1] [--length L] [--device cpu|cuda] [--backend torch]
        [--repeats 3] [--threads 1]

For each seed and scale: `build(seed design, scale, seed=0)`, and one AdamW step on
`--batch` random sequences of the scale's context (or `--length`) exactly as
bench_kernels.py times it (the trainer's optimiser, loss and clipping; bf16 autocast on
CUDA, float32 on the CPU), timed as the fastest of `--repeats` runs after a warm-up
(everything below is timed the same way).

Then one forward pass records every primitive call: modules through forward hooks
(their class is the primitive: Linear, RMSNorm, ssd, ...), functions by wrapping the
generated module's globals (gla, causal_attention, silu, ...); a primitive called inside
another one counts as part of it. Calls of one primitive with the same shapes and
settings (the N blocks make the same calls) are timed once, forward + backward in
isolation on the recorded inputs (gradients of every float input and of the module's
parameters), and counted as many times as they were made. The scaffold's embedding and
LM head, the loss and the optimiser (clipping + AdamW over every parameter) are timed the
same way. "the rest" is the step less all of these: elementwise glue between primitives
(residual adds, reshapes, casts), autograd's bookkeeping, and what isolation does not
see. Isolated calls find warmer caches than the step's, so the rest can be small or
negative; the shares are estimates, the step time is measured.

Prints, per seed and scale, a table: primitive, calls, ms, % of the step. One thread on
the CPU unless `--threads` says otherwise (printed in each title). Same seeds, same
inputs every run.

A separate script rather than a mode of bench_kernels.py: that one compares
implementations of a kernel and needs CUDA and triton; this one attributes a whole
step to primitives on any device with torch alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402
from bench_kernels import training_step  # noqa: E402
from torch import nn  # noqa: E402

from genesys_dsl.compile import build  # noqa: E402
from genesys_dsl.compile.backends import BACKENDS  # noqa: E402
from genesys_dsl.evaluate import TrainConfig  # noqa: E402
from genesys_dsl.evaluate.trainer import lm_loss, make_optimizer  # noqa: E402
from genesys_dsl.ops import registry  # noqa: E402
from genesys_dsl.scales import ConfigError, Scale, get_scale  # noqa: E402
from genesys_dsl.syntax.files import read_design  # noqa: E402

SEEDS = ["gla", "retnet", "mamba2", "transformer"]
SCAFFOLD = {"embedding": "embedding (scaffold)", "lm_head": "LM head (scaffold)"}


# ------------------------------------------------------------------ timing


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def fastest_ms(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """The fastest of `repeats` calls of fn after one warm-up call: on a shared machine the
    least disturbed run; the step and its parts are measured alike, so their ratios hold."""
    fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(1e3 * (time.perf_counter() - start))
    return min(times)


# ------------------------------------------------------------------ recording the calls


@dataclass
class Call:
    """One primitive call as the forward pass made it: what to call again, on copies of its inputs."""

    label: str  # the primitive (a row of the table)
    fn: Callable[..., Any]
    owner: nn.Module | None  # whose parameters the backward differentiates
    args: tuple
    kwargs: dict
    count: int = 1


def describe(value: Any) -> Any:
    """A hashable summary that tells calls apart by what decides their cost."""
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.dtype, value.stride())
    if isinstance(value, (tuple, list)):
        return tuple(describe(v) for v in value)
    return repr(value)


def settings(module: nn.Module | None) -> tuple:
    """A module's parameter shapes and plain attributes (eps, heads, chunk_size, ...)."""
    if module is None:
        return ()
    params = tuple((name, tuple(p.shape)) for name, p in module.named_parameters())
    plain = tuple(sorted((k, repr(v)) for k, v in vars(module).items()
                         if not k.startswith("_") and isinstance(v, (int, float, str, bool, tuple))))
    return params + plain


def detached(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (tuple, list)):
        return type(value)(detached(v) for v in value)
    return value


class Recorder:
    """Distinct top-level primitive calls, by primitive, inputs and settings."""

    def __init__(self) -> None:
        self.calls: dict[tuple, Call] = {}
        self.depth = 0  # > 0 inside a recorded call: nested primitives are part of it

    def record(self, label: str, fn: Callable, owner: nn.Module | None, args: tuple, kwargs: dict) -> None:
        if self.depth:
            return
        key = (label, describe(args), describe(tuple(sorted(kwargs.items()))), settings(owner))
        if key in self.calls:
            self.calls[key].count += 1
        else:
            self.calls[key] = Call(label, fn, owner, detached(args), detached(kwargs))

    def wrap(self, label: str, fn: Callable, owner: nn.Module | None = None) -> Callable:
        def recorded(*args, **kwargs):
            self.record(label, fn, owner, args, kwargs)
            self.depth += 1
            try:
                return fn(*args, **kwargs)
            finally:
                self.depth -= 1

        return recorded


@contextmanager
def recording(model: nn.Module, recorder: Recorder) -> Iterator[None]:
    """Every primitive call of `model` goes to `recorder` inside the block; nothing is left behind.

    Primitive modules are the generated file's classes named like a registered
    primitive; primitive functions are its globals named so. A norm's fused
    `forward_residual` (the triton backend's) is recorded as the norm with the add."""
    names = {p.name for p in registry()}
    generated = type(model).__module__
    namespace = type(model).forward.__globals__  # the generated module's globals
    originals = {name: fn for name, fn in namespace.items()
                 if name in names and callable(fn) and not isinstance(fn, type)}
    handles, fused = [], []
    for module in model.modules():
        kind = type(module)
        if kind.__module__ == generated and kind.__name__ in names:
            def before(mod, args, kwargs, label=kind.__name__):
                recorder.record(label, mod, mod, args, kwargs)
                recorder.depth += 1

            def after(mod, args, kwargs, output):
                recorder.depth -= 1

            handles.append(module.register_forward_pre_hook(before, with_kwargs=True))
            handles.append(module.register_forward_hook(after, with_kwargs=True))
            if callable(getattr(module, "forward_residual", None)):
                module.forward_residual = recorder.wrap(f"{kind.__name__} + residual add",
                                                        module.forward_residual, module)
                fused.append(module)
    for attribute, label in SCAFFOLD.items():
        module = getattr(model, attribute, None)
        if isinstance(module, nn.Module):
            handles.append(module.register_forward_pre_hook(
                lambda mod, args, kwargs, label=label: recorder.record(label, mod, mod, args, kwargs),
                with_kwargs=True))
    namespace.update({name: recorder.wrap(name, fn) for name, fn in originals.items()})
    try:
        yield
    finally:
        namespace.update(originals)
        for handle in handles:
            handle.remove()
        for module in fused:
            del module.forward_residual


# ------------------------------------------------------------------ timing in isolation


def leaves(value: Any) -> tuple[Any, list[torch.Tensor]]:
    """A fresh copy of value whose float tensors require grad, and those tensors."""
    if isinstance(value, torch.Tensor):
        copy = value.detach().clone().requires_grad_(value.is_floating_point())
        return copy, [copy] if value.is_floating_point() else []
    if isinstance(value, (tuple, list)):
        copies, found = [], []
        for v in value:
            c, f = leaves(v)
            copies.append(c)
            found += f
        return type(value)(copies), found
    return value, []


def forward_backward(fn: Callable[..., Any], args: tuple, kwargs: dict, params: list[torch.Tensor],
                     autocast: Callable[[], Any]) -> Callable[[], None]:
    """fn's forward on copies of its inputs and the gradients of its outputs with respect to
    the float inputs and `params`, as the step's backward computes them."""
    (args, kwargs), inputs = leaves((args, kwargs))
    wrt = inputs + [p for p in params if p.requires_grad]

    def outputs():
        with autocast():
            out = fn(*args, **kwargs)
        out = out if isinstance(out, tuple) else (out,)
        return [o for o in out if isinstance(o, torch.Tensor) and o.requires_grad]

    cotangents = [torch.randn_like(o) for o in outputs()]

    def run():
        out = outputs()
        if out and wrt:
            torch.autograd.grad(out, wrt, cotangents, allow_unused=True)

    return run


@dataclass
class Row:
    label: str
    calls: int
    ms: float


def primitive_rows(calls: list[Call], repeats: int, device: torch.device, autocast) -> list[Row]:
    """Each distinct call timed once in isolation, times the number of calls like it; one row per primitive."""
    rows: dict[str, Row] = {}
    for call in calls:
        params = list(call.owner.parameters()) if call.owner is not None else []
        ms = fastest_ms(forward_backward(call.fn, call.args, call.kwargs, params, autocast), repeats, device)
        row = rows.setdefault(call.label, Row(call.label, 0, 0.0))
        row.calls += call.count
        row.ms += call.count * ms
    return list(rows.values())


def loss_row(logits: torch.Tensor, targets: torch.Tensor, repeats: int, device: torch.device) -> Row:
    logits = logits.detach().clone().requires_grad_()

    def run():
        torch.autograd.grad(lm_loss(logits, targets), [logits])

    return Row("loss (cross-entropy)", 1, fastest_ms(run, repeats, device))


def optimizer_row(model: nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig, repeats: int,
                  device: torch.device) -> Row:
    """Clipping and the AdamW update over every parameter, on stand-in gradients."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3

    def run():
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()

    ms = fastest_ms(run, repeats, device)
    optimizer.zero_grad(set_to_none=True)
    return Row("optimizer (clip + AdamW)", 1, ms)


# ------------------------------------------------------------------ a seed's profile


@dataclass
class Profile:
    title: str
    step_ms: float
    rows: list[Row]  # the measured parts, largest first

    @property
    def rest_ms(self) -> float:
        return self.step_ms - sum(r.ms for r in self.rows)

    def table(self) -> str:
        width = max(28, *(len(r.label) + 2 for r in self.rows))
        lines = [self.title, f"{'primitive':<{width}}{'calls':>7}{'ms':>11}{'% of step':>11}",
                 "-" * (width + 29)]
        for r in self.rows:
            lines.append(f"{r.label:<{width}}{r.calls:>7}{r.ms:>11.2f}{100 * r.ms / self.step_ms:>10.1f}%")
        lines.append(f"{'the rest (glue, autograd)':<{width}}{'':>7}{self.rest_ms:>11.2f}"
                     f"{100 * self.rest_ms / self.step_ms:>10.1f}%")
        lines.append(f"{'step (measured)':<{width}}{'':>7}{self.step_ms:>11.2f}{100.0:>10.1f}%")
        return "\n".join(lines)


def profile_seed(seed: str, sc: Scale, *, batch: int, length: int, device: torch.device, backend: str,
                 repeats: int) -> Profile:
    model = build(read_design(ROOT / "specs" / f"{seed}.gab"), sc, seed=0, backend=backend).to(device)
    params = sum(p.numel() for p in model.parameters())
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, sc.vocab_size, (batch, length + 1), generator=gen).to(device)
    autocast_dtype = torch.bfloat16 if device.type == "cuda" else None  # as the trainer
    config = TrainConfig(tokens=batch * length)
    optimizer = make_optimizer(model, config)
    step_ms = fastest_ms(training_step(model, ids, autocast_dtype, optimizer), repeats, device)

    def autocast():
        return torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()

    recorder = Recorder()
    torch.manual_seed(0)  # the cotangents
    with recording(model, recorder), torch.no_grad(), autocast():
        logits = model(ids[:, :-1])
    rows = primitive_rows(list(recorder.calls.values()), repeats, device, autocast)
    rows.append(loss_row(logits, ids[:, 1:], repeats, device))
    rows.append(optimizer_row(model, optimizer, config, repeats, device))
    rows.sort(key=lambda r: -r.ms)
    threads = torch.get_num_threads()
    where = f"cpu, {threads} thread{'s' if threads > 1 else ''}" if device.type == "cpu" else torch.cuda.get_device_name()
    precision = "bf16 autocast" if autocast_dtype else "float32"
    title = (f"{seed} at {sc.describe()}: {params:,} parameters, batch {batch} x {length} tokens, {where}, "
             f"{precision}, {backend} backend; fastest of {repeats}")
    return Profile(title, step_ms, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", default=SEEDS, metavar="NAME")
    parser.add_argument("--scales", nargs="+", default=["14M", "125M"], metavar="NAME")
    parser.add_argument("--batch", type=int, default=1, help="sequences per step (default: 1)")
    parser.add_argument("--length", type=int, help="tokens per sequence (default: the scale's context)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backend", choices=BACKENDS, default="torch")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of everything (default: 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (default: 1)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("profile_step: no CUDA device here; use --device cpu", file=sys.stderr)
        return 2
    if min(args.batch, args.repeats, args.threads, args.length or 1) < 1:
        print("profile_step: --batch, --length, --repeats and --threads must be at least 1", file=sys.stderr)
        return 2
    for seed in args.seeds:
        if not (ROOT / "specs" / f"{seed}.gab").is_file():
            known = sorted(p.stem for p in (ROOT / "specs").glob("*.gab"))
            print(f"profile_step: no seed '{seed}' (specs/{seed}.gab); seeds: {', '.join(known)}", file=sys.stderr)
            return 2
    try:
        scales = [get_scale(name) for name in args.scales]
    except ConfigError as err:
        print(f"profile_step: {err}", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    if args.backend == "triton" and device.type != "cuda":
        print("profile_step: backend 'triton' runs its kernels on a CUDA device; use --device cuda, "
              "or backend torch or auto", file=sys.stderr)
        return 2
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"profile_step: torch {torch.__version__}, {os.cpu_count()} CPU cores, load average {load} (1, 5, 15 min)")
    for sc in scales:
        for seed in args.seeds:
            started = time.perf_counter()
            profile = profile_seed(seed, sc, batch=args.batch, length=args.length or sc.context_length,
                                   device=device, backend=args.backend, repeats=args.repeats)
            print(f"\n{profile.table()}\n({time.perf_counter() - started:.0f} s to profile)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
