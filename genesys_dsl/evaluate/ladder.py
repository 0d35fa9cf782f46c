"""From a ladder rung to what one evaluation trains: the scale (fitted to the rung's
parameter target, as verification does) and the trainer's settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from pydantic import ValidationError

from .. import ir
from ..check.stats import stats
from ..ops.registry import Registry
from ..scales import ConfigError, Ladder, Rung, Scale, get_ladder, get_scale
from ..verify.budget import TOLERANCE, fit_budget, resized
from .config import TrainConfig
from .suite import EvaluationError


@dataclass(frozen=True)
class Placement:
    """A design placed on a rung: the scale it trains at and how that was decided."""

    ladder: Ladder
    rung: Rung
    scale: Scale  # the rung's scale, or a resized one that meets its parameter target
    params: int
    flops_per_token: float
    fitted: str | None  # None: the rung's own scale fits; else what changed ("depth", "width", ...)


@dataclass(frozen=True)
class _BudgetContext:  # what verify.budget's search reads
    design: ir.Design
    scale: Scale
    registry: Registry | None


def place(design: ir.Design, ladder: str | Ladder = "cpu", rung: str | None = None, *,
          registry: Registry | None = None, tolerance: float = TOLERANCE) -> Placement:
    """The scale `design` trains at on this rung: the rung's own when the design's
    parameter count is within `tolerance` of the target, else the closest fitted width
    and depth. EvaluationError when no allowed width or depth meets the target."""
    try:
        ladder = get_ladder(ladder) if isinstance(ladder, str) else ladder
        step = ladder.rung(rung)
        scale = get_scale(step.scale)
    except ConfigError as err:
        raise EvaluationError(str(err)) from None
    here = stats(design, scale, registry=registry)  # DSLError for designs invalid at this scale
    if abs(here.params / scale.param_target - 1) <= tolerance:
        return Placement(ladder, step, scale, here.params, here.flops_per_token, None)
    fit = fit_budget(_BudgetContext(design, scale, registry), here, tolerance)
    if fit is None:
        raise EvaluationError(
            f"design '{design.name}' cannot meet the parameter target of rung '{step.name}' "
            f"({scale.param_target:,} +-{tolerance:.0%}): it has {here.params:,} parameters at {scale.describe()} "
            f"and no allowed width or depth fits; change the block's own sizes or pick another rung "
            f"({', '.join(ladder.rung_names)})")
    fitted = resized(scale, fit["d_model"], fit["n_layers"])
    figures = stats(design, fitted, registry=registry)
    return Placement(ladder, step, fitted, figures.params, figures.flops_per_token, fit["changed"])


def train_config(placement: Placement, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """The trainer's settings at a rung: its token budget and `train` table, then overrides."""
    settings: dict[str, Any] = {"tokens": int(placement.rung.tokens_per_param * placement.scale.param_target)}
    settings.update(placement.rung.train)
    settings.update(overrides or {})
    try:
        return TrainConfig(**settings)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise EvaluationError(f"training settings of rung '{placement.rung.name}': {problems}") from None
