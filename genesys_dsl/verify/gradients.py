"""One training signal: finite outputs, and a finite, non-zero gradient for every parameter.

The LM loss on random tokens is back-propagated once (float32, as in training).
A parameter without a gradient (None) is not on the path to the loss: it is
computed but unused, or not computed at all. A gradient that is exactly zero can
be honest at initialisation (anything upstream of a zero-initialised projection),
so those parameters are tried again after every weight is nudged by a little noise;
only the ones still at zero are reported.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..syntax.diagnostics import Diagnostic
from .trace import Trace

BATCH = 2
NAMES_SHOWN = 6


def lm_loss(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy."""
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1))


def listed(names: list[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown + (f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else "")


def backward(model, ids) -> tuple[torch.Tensor, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    logits = model(ids)
    loss = lm_loss(logits, ids)
    if torch.isfinite(loss):
        loss.backward()
    return logits, loss


def check_gradients(ctx, batch: int = BATCH) -> tuple[list[Diagnostic], dict]:
    sc = ctx.scale
    model = ctx.build(torch.float32)
    model.train()
    ids = ctx.tokens(batch, sc.context_length)
    logits, loss = backward(model, ids)
    if not (torch.isfinite(logits).all() and torch.isfinite(loss)):
        return [nonfinite_outputs(ctx, model, ids)], {"loss": None, "finite": False}  # NaN is not JSON

    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    missing = [name for name, p in params.items() if p.grad is None]
    nonfinite = [name for name, p in params.items() if p.grad is not None and not torch.isfinite(p.grad).all()]
    zero = [name for name, p in params.items() if p.grad is not None and not p.grad.any()]
    if zero:
        zero = still_zero(model, ids, zero)
    figures = {"loss": loss.item(), "finite": not nonfinite, "parameters": len(params),
               "without_gradient": missing + zero}
    out = []
    if missing:
        out.append(ctx.diagnostic(
            "verify-gradient", f"{len(missing)} parameter tensor(s) get no gradient: {listed(missing)}",
            hint="their outputs never reach the loss: use them or remove them (a `_name = ...` assignment "
                 "is computed but unused)"))
    if zero:
        out.append(ctx.diagnostic(
            "verify-gradient", f"{len(zero)} parameter tensor(s) get an all-zero gradient: {listed(zero)}",
            hint="something between them and the loss multiplies by zero or saturates"))
    if nonfinite:
        out.append(ctx.diagnostic("verify-nonfinite",
                                  f"non-finite gradients (inf or NaN) for {listed(nonfinite)}",
                                  hint="look for divisions, exp or log without a guard in the units using them"))
    return out, figures


def still_zero(model, ids, names: list[str]) -> list[str]:
    """The parameters among `names` whose gradient stays zero once no weight is exactly zero."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            noise = torch.randn(p.shape, generator=generator).to(p)
            p.add_(noise * 0.02)
    backward(model, ids)
    params = dict(model.named_parameters())
    return [n for n in names if params[n].grad is None or not params[n].grad.any()]


def nonfinite_outputs(ctx, model, ids) -> Diagnostic:
    """Name the first call whose output is not finite although its inputs are."""
    finite = lambda t: bool(torch.isfinite(t).all()) if t.is_floating_point() else True  # noqa: E731
    with Trace(model, ctx.primitives, keep=finite) as trace, torch.no_grad():
        model(ids)
    first = next((c for c in trace.calls if all(c.inputs) and not all(c.outputs)), None)
    where = f"; they first appear in {first.name} ({first.what})" if first else ""
    return ctx.diagnostic("verify-nonfinite", f"the forward pass produces inf or NaN{where}",
                          hint="look for a division, exp or log without a guard, or a scale that overflows")
