"""Cost of a training step relative to the transformer seed at the same scale.

A step is forward, backward and an AdamW update on a fixed batch of
`context_length` tokens per row. Both models are warmed up, then their steps
alternate (so a change of machine load hits both) and the median time of each is
compared. Peak memory is measured on one more step of each (see memory.py). On
the CPU the steps run with the thread count `verify` sets (one by default: with
several, a small model's time mostly measures how busy the other cores are).
Thresholds follow Genesys: a warning at 1.5x the time or 2x the memory, an
error at 3x or 4x.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import torch

from .. import ir
from ..compile import build
from ..scales import SPECS_PACKAGE
from ..syntax.diagnostics import Diagnostic
from ..syntax.parse import parse
from .gradients import lm_loss
from .memory import peak_bytes

REFERENCE = "transformer.gab"


@dataclass(frozen=True)
class Thresholds:
    """Ratios to the transformer seed at which a design gets a warning or an error."""

    time_warning: float = 1.5
    time_error: float = 3.0
    memory_warning: float = 2.0
    memory_error: float = 4.0

    @classmethod
    def for_device(cls, device_type: str) -> "Thresholds":
        """Genesys's ratios on a GPU. On a CPU, time only warns: at laptop scales a step is
        dominated by per-op dispatch, so a design with more (small) ops looks slower than
        its FLOPs say; memory, counted exactly, keeps its error."""
        return cls() if device_type == "cuda" else cls(time_error=math.inf)


@lru_cache(maxsize=1)
def reference_design() -> ir.Design:
    text = resources.files(SPECS_PACKAGE).joinpath(REFERENCE).read_text(encoding="utf-8")
    return parse(text, filename=REFERENCE)


class Trainer:
    """A model, its AdamW and a fixed batch; `step()` is one training step."""

    def __init__(self, model, ids: torch.Tensor):
        self.model = model.train()
        self.ids = ids
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        lm_loss(self.model(self.ids), self.ids).backward()
        self.optimizer.step()

    def timed_step(self) -> float:
        sync(self.ids.device)
        start = time.perf_counter()
        self.step()
        sync(self.ids.device)
        return time.perf_counter() - start

    def held(self) -> list[torch.Tensor]:
        """What lives between steps: parameters, buffers and the optimizer's state."""
        state = [v for s in self.optimizer.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
        return [*self.model.parameters(), *self.model.buffers(), *state]

    def peak_memory(self) -> int:
        return peak_bytes(self.step, self.ids.device, self.held)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_efficiency(ctx, thresholds: Thresholds = Thresholds(), *, batch: int = 2, steps: int = 3,
                     warmup: int = 1) -> tuple[list[Diagnostic], dict]:
    sc = ctx.scale
    ids = ctx.tokens(batch, sc.context_length)
    design = Trainer(ctx.build(torch.float32), ids)
    reference = Trainer(build(reference_design(), sc, seed=ctx.seed).to(ctx.device), ids)
    times: dict[Trainer, list[float]] = {design: [], reference: []}
    for _ in range(warmup):
        design.step()
        reference.step()
    for _ in range(steps):
        for trainer in (reference, design):
            times[trainer].append(trainer.timed_step())
    memory = {trainer: trainer.peak_memory() for trainer in (reference, design)}
    time_s, reference_time_s = statistics.median(times[design]), statistics.median(times[reference])
    figures = {
        "device": ctx.device.type, "threads": torch.get_num_threads(), "batch": batch,
        "length": sc.context_length, "steps": steps,
        "time_s": time_s, "reference_time_s": reference_time_s, "time_ratio": time_s / reference_time_s,
        "memory_bytes": memory[design], "reference_memory_bytes": memory[reference],
        "memory_ratio": memory[design] / memory[reference],
    }
    out = []
    for what, ratio, warning, error, detail in (
        ("time", figures["time_ratio"], thresholds.time_warning, thresholds.time_error,
         f"{time_s * 1e3:.1f} ms vs {reference_time_s * 1e3:.1f} ms"),
        ("memory", figures["memory_ratio"], thresholds.memory_warning, thresholds.memory_error,
         f"{memory[design] / 2**20:.1f} MiB vs {memory[reference] / 2**20:.1f} MiB peak"),
    ):
        if ratio >= warning:
            severity = "error" if ratio >= error else "warning"
            out.append(ctx.diagnostic(
                f"verify-{what}",
                f"a training step takes {ratio:.2f}x the {what} of the transformer seed at {sc.name} "
                f"({detail} on {ctx.device.type}; warning at {warning}x"
                f"{f', error at {error}x' if math.isfinite(error) else ', no error on CPU'})",
                severity=severity, hint="Genesys discards designs far costlier than the transformer; "
                                        "look for recurrences over single tokens or large intermediate tensors"))
    return out, figures
