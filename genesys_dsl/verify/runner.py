"""`verify(design, scale)`: build the design's LM and run every functional check on it.

Each check builds its own fresh model from the seed, so a check that breaks its
model (or crashes) cannot disturb the others. Anything a model raises becomes a
`verify-crash` diagnostic naming the check; KeyboardInterrupt passes through.

On the CPU the checks run on one thread by default: the models are small, and
torch's thread pool stalls (10x slower, measured) when other processes share the cores.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from .. import ir
from ..check import check
from ..compile import build
from ..ops.registry import Registry
from ..scales import Scale, get_scale
from ..syntax.diagnostics import Diagnostic, Severity
from .budget import check_budget
from .causality import check_causality
from .efficiency import Thresholds, check_efficiency
from .gradients import check_gradients
from .report import VerifyReport

CHECKS = ("budget", "causality", "gradients", "efficiency")


@dataclass
class Context:
    """What every check needs: the checked design at one scale, and how to build it."""

    design: ir.Design
    scale: Scale
    registry: Registry | None
    seed: int
    device: torch.device
    file: str | None

    @property
    def primitives(self) -> set[str]:
        from ..ops import registry as default_registry

        return {p.name for p in (self.registry or default_registry())}

    def build(self, dtype: torch.dtype, scale: Scale | None = None):
        # float64 (the causality check) has no Triton kernels: the torch backend's scans
        backend = "torch" if dtype == torch.float64 else None
        model = build(self.design, scale or self.scale, seed=self.seed, registry=self.registry, backend=backend)
        return model.to(device=self.device, dtype=dtype)

    def tokens(self, batch: int, length: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed)
        return torch.randint(0, self.scale.vocab_size, (batch, length), generator=generator).to(self.device)

    def diagnostic(self, code: str, message: str, *, hint: str | None = None,
                   severity: Severity = "error") -> Diagnostic:
        return Diagnostic(severity=severity, code=code, message=message, hint=hint, file=self.file)


def verify(design: ir.Design, scale: str | Scale | Mapping[str, Any], *, seed: int = 0,
           registry: Registry | None = None, device: str | torch.device = "cpu",
           thresholds: Thresholds | None = None, checks: tuple[str, ...] = CHECKS,
           efficiency_steps: int = 3, batch_size: int = 2, threads: int | None = 1) -> VerifyReport:
    """Run the functional checks on the design's LM at `scale` (a name or settings).

    `checks` selects among CHECKS; `thresholds` sets the efficiency ratios; `threads`
    is torch's CPU thread count while checking (None: leave it). The default thresholds
    are `Thresholds.for_device(device)`. A design that does not
    check clean at the scale gets check's errors back, and nothing runs. Unknown
    scales raise ConfigError, like everywhere else."""
    sc = get_scale(scale)
    unknown = set(checks) - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown check(s) {sorted(unknown)}; available: {', '.join(CHECKS)}")
    static = check(design, [sc], registry=registry)
    report = VerifyReport(diagnostics=[], source=static.source, file=static.file, design=static.design,
                          scale=sc.name)
    if not static.ok:
        report.diagnostics = static.errors
        return report
    ctx = Context(static.design, sc, registry, seed, torch.device(device), static.file)
    thresholds = thresholds or Thresholds.for_device(ctx.device.type)
    jobs = {
        "budget": lambda: check_budget(ctx),
        "causality": lambda: check_causality(ctx),
        "gradients": lambda: check_gradients(ctx, batch=batch_size),
        "efficiency": lambda: check_efficiency(ctx, thresholds, batch=batch_size, steps=efficiency_steps),
    }
    with cpu_threads(threads if ctx.device.type == "cpu" else None):
        for name in (c for c in CHECKS if c in checks):
            start = time.perf_counter()
            try:
                diagnostics, figures = jobs[name]()
            except Exception as err:  # noqa: BLE001 - a failing design is a finding, not a crash of the caller
                diagnostics, figures = [crashed(ctx, name, err)], {"crashed": f"{type(err).__name__}: {err}"}
            report.diagnostics += diagnostics
            report.figures[name] = {**figures, "seconds": round(time.perf_counter() - start, 3)}
    return report


@contextmanager
def cpu_threads(n: int | None):
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def crashed(ctx: Context, check_name: str, err: Exception) -> Diagnostic:
    message = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return ctx.diagnostic("verify-crash", f"the {check_name} check failed: {type(err).__name__}: {message}",
                          hint="the model raised an exception while running; run `genesys compile` and "
                               "call the model to see the traceback")
