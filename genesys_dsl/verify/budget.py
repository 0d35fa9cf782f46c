"""The parameter budget: within 20% of the scale's target, or an automatic fit.

Counts come from `stats` (exact formulas), never from building models, so the
search is cheap. The fit tries depth first (n_layers; the count is linear in it),
then width (d_model in steps of about a sixteenth of it, the scale's depth), then width and depth
together; each stage takes the candidate closest to the target, and the first
stage with one inside the band wins. A candidate must check clean at its scale
(heads must still divide the width, ...): `stats` raises otherwise. Depth and
width stay within a factor of 4 of the scale's own (a 1000-layer "fit" of a tiny
block is no fit).
"""

from __future__ import annotations

from ..check.stats import Stats, stats
from ..scales import Scale
from ..syntax.diagnostics import Diagnostic, DSLError

TOLERANCE = 0.2
WIDTH_STEP = 8  # the finest width step: small designs need it to land inside the band
STRETCH = 4  # the fit keeps depth and width within this factor of the scale's


def count(ctx, d_model: int, n_layers: int) -> Stats | None:
    """Stats at the scale with another width and depth; None when the design is invalid there."""
    try:
        return stats(ctx.design, resized(ctx.scale, d_model, n_layers), registry=ctx.registry)
    except DSLError:
        return None


def resized(sc: Scale, d_model: int, n_layers: int) -> Scale:
    return sc.model_copy(update={"name": f"{sc.name} (d_model={d_model}, n_layers={n_layers})",
                                 "d_model": d_model, "n_layers": n_layers})


def best_depth(figures: Stats, n_layers: int, target: int) -> int:
    """The allowed depth whose count is closest to the target (the count is linear in depth)."""
    scaffold = figures.params - n_layers * figures.block_params
    if figures.block_params <= 0:
        return n_layers
    return min(STRETCH * n_layers, max(1, round((target - scaffold) / figures.block_params)))


def check_budget(ctx, tolerance: float = TOLERANCE) -> tuple[list[Diagnostic], dict]:
    sc = ctx.scale
    target = sc.param_target
    here = count(ctx, sc.d_model, sc.n_layers)
    ratio = here.params / target
    figures = {"params": here.params, "target": target, "ratio": ratio, "tolerance": tolerance}
    if abs(ratio - 1) <= tolerance:
        return [], figures
    fit = fit_budget(ctx, here, tolerance)
    band = f"{1 - tolerance:.1f}-{1 + tolerance:.1f}x"
    what = f"{here.params:,} parameters are {ratio:.2f}x the target {target:,} of {sc.name} (allowed {band})"
    if fit is None:
        return [ctx.diagnostic(
            "verify-param-budget", f"{what}, and no depth (1-{STRETCH * sc.n_layers}) or width (multiples "
                                   f"of {width_step(sc)} up to {STRETCH * sc.d_model}) fits",
            hint="change the block's own sizes (expansion ratios, heads, state sizes)")], figures
    figures["fit"] = fit
    return [ctx.diagnostic(
        "verify-param-budget",
        f"{what}; fitted by {fit['changed']}: d_model={fit['d_model']}, n_layers={fit['n_layers']} gives "
        f"{fit['params']:,} ({fit['ratio']:.2f}x)", severity="warning",
        hint="train it at the fitted settings, or change the block's sizes")], figures


def fit_budget(ctx, here: Stats, tolerance: float) -> dict | None:
    sc = ctx.scale
    target = sc.param_target
    widths = [d for d in candidate_widths(sc) if d != sc.d_model]

    def depth_at(d: int) -> int | None:
        s = count(ctx, d, sc.n_layers)
        return None if s is None else best_depth(s, sc.n_layers, target)

    stages = (  # built lazily: a later stage runs only when the earlier ones found nothing
        ("depth", lambda: [(sc.d_model, best_depth(here, sc.n_layers, target))]),
        ("width", lambda: [(d, sc.n_layers) for d in widths]),
        ("width and depth", lambda: [(d, n) for d in widths if (n := depth_at(d)) is not None]),
    )
    for changed, candidates in stages:
        fits = []
        for d, n in candidates():
            s = count(ctx, d, n)
            if s is not None and abs(s.params / target - 1) <= tolerance:
                fits.append((abs(s.params - target), d, n, s.params))
        if fits:
            _, d, n, params = min(fits)
            return {"changed": changed, "d_model": d, "n_layers": n, "params": params, "ratio": params / target}
    return None


def width_step(sc: Scale) -> int:
    """About a sixteenth of the width, a multiple of WIDTH_STEP: fine at 64, coarse at 1024."""
    return max(WIDTH_STEP, sc.d_model // 16 // WIDTH_STEP * WIDTH_STEP)


def candidate_widths(sc: Scale) -> list[int]:
    """Widths from 1/STRETCH to STRETCH times the scale's, in steps of `width_step`."""
    step = width_step(sc)
    low = max(step, -(-sc.d_model // STRETCH // step) * step)
    return list(range(low, STRETCH * sc.d_model + 1, step))
