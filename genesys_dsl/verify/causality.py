"""Causality of the whole stack, measured: changing future tokens must not change the past.

For each length L and cut point t, the input ids after t are replaced and the logits
at positions <= t must stay the same. Lengths exceed every chunk size of the mixers
(64 at most) and are not multiples of them, and cut points sit on and beside chunk
boundaries, where chunked scans are easiest to get wrong. The model runs in float64:
roundoff (an FFT convolution mixes all positions at ~1e-16) stays far below the
tolerance, so any difference above it is a real leak.

When the logits leak, the two inputs are run again under a trace, and the leak is
located at the first call (units, primitives, scaffold parts; in the order they
finish) whose output differs before the cut while its inputs did not.
"""

from __future__ import annotations

import torch

from ..syntax.diagnostics import Diagnostic
from .trace import Call, Trace

LENGTHS = (2 * 64 + 37, 64 + 37)  # past two and one chunks of 64, multiples of neither 16, 32 nor 64
TOLERANCE = 1e-9  # relative to the largest magnitude of the compared tensors


def cut_points(length: int) -> list[int]:
    """The first token, both sides of each chunk boundary (16, 32, 64, 128), the middle, the end."""
    wanted = {0, length // 2, length - 2}
    for boundary in (16, 32, 64, 128):
        wanted |= {boundary - 1, boundary}
    return sorted(t for t in wanted if 0 <= t <= length - 2)


def change(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| relative to the larger magnitude of a and b (0 when equal; inf for NaN or inf)."""
    if a.shape != b.shape:
        return float("inf")
    a, b = a.double(), b.double()
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return 0.0 if torch.equal(a.nan_to_num(), b.nan_to_num()) else float("inf")
    scale = max(a.abs().max().item() if a.numel() else 0.0, b.abs().max().item() if b.numel() else 0.0)
    diff = (a - b).abs().max().item() if a.numel() else 0.0
    return diff / scale if scale > 0 else diff


def past(t: torch.Tensor, cut: int, length: int) -> torch.Tensor:
    """Positions <= cut of a [batch, length, ...] tensor; anything else is compared whole
    (a tensor without a time axis that changes is treated as a change of the past)."""
    return t[:, : cut + 1] if t.dim() >= 2 and t.shape[1] == length else t


def perturbed(ids: torch.Tensor, cut: int, vocab: int, generator: torch.Generator) -> torch.Tensor:
    """ids with every token after `cut` replaced by a different one."""
    out = ids.clone()
    shift = torch.randint(1, vocab, (ids.shape[-1] - cut - 1,), generator=generator)
    out[..., cut + 1:] = (ids[..., cut + 1:] + shift) % vocab
    return out


def check_causality(ctx, lengths=LENGTHS, tolerance: float = TOLERANCE) -> tuple[list[Diagnostic], dict]:
    sc = ctx.scale
    longest = max(lengths)
    # the block never sees the context length; only learned positions need a table this long
    model = ctx.build(torch.float64, scale=sc.model_copy(update={"context_length": max(sc.context_length, longest)}))
    model.eval()
    generator = torch.Generator().manual_seed(ctx.seed)
    worst, cuts, leaks = 0.0, 0, []
    for length in lengths:
        base = torch.randint(0, sc.vocab_size, (length,), generator=generator)
        points = cut_points(length)
        # one batch: row 0 is the base sequence, row i + 1 changes it after points[i]
        rows = [base] + [perturbed(base, t, sc.vocab_size, generator) for t in points]
        with torch.no_grad():
            logits = model(torch.stack(rows).to(ctx.device))
        if not torch.isfinite(logits).all():
            return [], {"skipped": "non-finite logits (see verify-nonfinite)"}
        for i, t in enumerate(points):
            c = change(logits[0, : t + 1], logits[i + 1, : t + 1])
            worst = max(worst, c)
            cuts += 1
            if c > tolerance:
                leaks.append((c, length, t, rows[0], rows[i + 1]))
    figures = {"lengths": list(lengths), "cuts": cuts, "max_change": worst, "tolerance": tolerance}
    if not leaks:
        return [], figures
    c, length, t, clean, dirty = min(leaks, key=lambda leak: (leak[2], leak[1]))  # the earliest cut
    source = locate(model, ctx.primitives, clean, dirty, t, tolerance, ctx.device)
    where = f"; it enters at {source.name} ({source.what})" if source else ""
    figures["leak"] = {"length": length, "cut": t, "change": c, "module": source.name if source else None,
                       "what": source.what if source else None}
    message = (f"logits at positions <= {t} change when only tokens after {t} change (length {length}, "
               f"relative change {c:.1e}, {len(leaks)} of {cuts} cut points leak){where}")
    hint = ("a primitive declared causal reads later positions: its output at t must depend only on "
            "inputs at positions <= t")
    return [ctx.diagnostic("verify-causality", message, hint=hint)], figures


def locate(model, primitives: set[str], clean, dirty, cut: int, tolerance: float, device) -> Call | None:
    """The first call whose output changes at positions <= cut while its inputs do not."""
    length = clean.shape[-1]
    traces = []
    for ids in (clean, dirty):
        with Trace(model, primitives, keep=lambda t: t.detach().clone()) as trace, torch.no_grad():
            model(ids[None].to(device))
        traces.append(trace.calls)

    def unchanged(xs: list, ys: list) -> bool:
        return len(xs) == len(ys) and all(
            change(past(x, cut, length), past(y, cut, length)) <= tolerance for x, y in zip(xs, ys))

    for a, b in zip(*traces):
        if a.name != b.name:
            return None  # control flow differs between the runs: no common place to compare
        if unchanged(a.inputs, b.inputs) and not unchanged(a.outputs, b.outputs):
            return a
    return None
