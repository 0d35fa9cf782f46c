"""The language-model loss: cross-entropy of the LM head's logits against shifted targets.

`lm_loss(logits, targets)` scores logits a model has made. `fused_lm_loss(hidden,
weight, targets)` makes them itself from the final hidden states and the LM head's
weight, a chunk of tokens at a time, and computes the gradients of the hidden states
and the weight in the same pass (the idea of Liger's and fla's fused linear
cross-entropy). Only a [chunk, V] block of logits ever exists, instead of the whole
[tokens, V] logits and their gradient: at GPT-2's 50257-token vocabulary those are
gigabytes per batch, and most of a CPU training step's time.

Precision. Without autocast everything runs in the inputs' dtype (float32 on the CPU).
Under autocast (bf16 on CUDA, as the trainer runs) the three products (logits, the
hidden states' gradient, the weight's gradient) run in autocast's dtype, as nn.Linear's
would; each chunk's logits are upcast to float32 for the log-sum-exp and the softmax,
and the loss and the weight's gradient are summed over chunks in float32. The gradients
come back in the dtypes of `hidden` and `weight` (a float32 master weight gets a float32
gradient). On the CPU the result is deterministic: the same chunks in the same order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

IGNORE_INDEX = -100  # a target that is not scored
REDUCTIONS = ("mean", "sum")
# The default chunk, measured with benchmarks/bench_loss.py --chunks (docs/results.md).
# CPU, one thread, V = 50257: the fastest chunk was about D/2 tokens (64 at D = 128,
# 128 at D = 256; at D = 512 and 768 everything from 128 to 2048 within 6%): a small [chunk, V]
# block stays in cache through the softmax's passes, but each chunk re-reads the whole
# [V, D] weight three times, which costs more the wider D is. A small vocabulary gets
# at least CPU_MIN_BLOCK logits per chunk, or Python's per-chunk overhead would dominate.
# CUDA, an H200, bf16 autocast, V = 50257, 16384 tokens: 4096 tokens was within 2-4% of
# the fastest (8192 and 16384) at D = 128 and 768, 1024 tokens 13-14% slower; 4096 keeps
# the [chunk, V] float32 block at 0.8 GB.
CPU_MIN_BLOCK = 2**20
CUDA_CHUNK_TOKENS = 4096


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of logits [B, L, V] against already-shifted targets [B, L]
    (-100 = ignored), in float32 whatever the logits' dtype."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction=reduction)


def fused_lm_loss(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, reduction: str = "mean", *,
                  bias: torch.Tensor | None = None, chunk_tokens: int | None = None) -> torch.Tensor:
    """`lm_loss(F.linear(hidden, weight, bias), targets, reduction)` without the logits:
    hidden [..., D], weight [V, D], bias [V] or None, targets [...] (-100 = ignored),
    `chunk_tokens` tokens at a time (None: `default_chunk_tokens`).

    Differentiable in hidden, weight and bias (once: no double backward). When no
    gradient is wanted (torch.no_grad, or no input requires one) it computes the loss
    alone. "mean" over no scored targets is NaN, as F.cross_entropy's."""
    if chunk_tokens is None:
        chunk_tokens = default_chunk_tokens(weight.shape[1], weight.shape[0], hidden.device)
    _check_arguments(hidden, weight, bias, targets, reduction, chunk_tokens)
    differentiable = [t is not None and t.requires_grad for t in (hidden, weight, bias)]
    if torch.is_grad_enabled() and any(differentiable):
        return _FusedLinearCrossEntropy.apply(hidden, weight, bias, targets, reduction, chunk_tokens)
    loss, _ = _chunked(hidden, weight, bias, targets, reduction, chunk_tokens, (False, False, False))
    return loss


def default_chunk_tokens(width: int, vocab: int, device: torch.device) -> int:
    """Tokens per chunk for a [vocab, width] head on `device` (see CPU_MIN_BLOCK, CUDA_CHUNK_TOKENS)."""
    if device.type == "cuda":
        return CUDA_CHUNK_TOKENS
    return max(width // 2, CPU_MIN_BLOCK // vocab, 1)


class _FusedLinearCrossEntropy(torch.autograd.Function):
    """The gradients are computed in the forward pass, while each chunk's logits exist;
    the backward only scales them by the loss's incoming gradient (a scalar)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, reduction, chunk_tokens):
        loss, grads = _chunked(hidden, weight, bias, targets, reduction, chunk_tokens,
                               tuple(ctx.needs_input_grad[:3]))
        ctx.save_for_backward(*grads)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):
        grads = [None if g is None else g * grad_loss.to(g.dtype) for g in ctx.saved_tensors]
        return *grads, None, None, None


def _chunked(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor,
             reduction: str, chunk_tokens: int, wanted: tuple[bool, bool, bool]
             ) -> tuple[torch.Tensor, tuple[torch.Tensor | None, ...]]:
    """The loss, and the gradients of (hidden, weight, bias) that `wanted` asks for
    (of the loss itself; the caller scales them by the loss's incoming gradient)."""
    vocab, width = weight.shape
    compute = _compute_dtype(hidden, weight)
    accumulate = torch.promote_types(compute, torch.float32)
    h = hidden.reshape(-1, width)
    t = targets.reshape(-1)
    scored = t != IGNORE_INDEX
    count = int(scored.sum())
    rows = None
    if count < t.numel():  # ignored rows contribute nothing: leave them out of every product
        rows = scored.nonzero().squeeze(1)
        h, t = h.index_select(0, rows), t.index_select(0, rows)
    _check_targets(t, vocab)
    want_hidden, want_weight, want_bias = wanted
    want_bias = want_bias and bias is not None
    scale = 1.0 / count if reduction == "mean" and count else 1.0
    device = hidden.device
    with torch.autocast(device.type, enabled=False):  # the dtypes below are chosen, not cast
        w = weight.to(compute)
        b = bias.to(accumulate) if bias is not None else None
        total = torch.zeros((), dtype=accumulate, device=device)
        grad_h = torch.empty(h.shape, dtype=compute, device=device) if want_hidden else None
        grad_w = torch.zeros((vocab, width), dtype=accumulate, device=device) if want_weight else None
        grad_b = torch.zeros(vocab, dtype=accumulate, device=device) if want_bias else None
        for start in range(0, t.numel(), chunk_tokens):
            stop = start + chunk_tokens
            h_c, t_c = h[start:stop].to(compute), t[start:stop]
            logits = (h_c @ w.T).to(accumulate)
            if b is not None:
                logits += b
            lse = torch.logsumexp(logits, dim=1)
            total += (lse - logits.gather(1, t_c[:, None]).squeeze(1)).sum()
            if not (want_hidden or want_weight or want_bias):
                continue
            d_logits = logits.sub_(lse[:, None]).exp_()  # the softmax, in the logits' memory
            d_logits[torch.arange(t_c.numel(), device=device), t_c] -= 1.0
            if scale != 1.0:
                d_logits *= scale
            if grad_b is not None:
                grad_b += d_logits.sum(dim=0)
            d_logits = d_logits.to(compute)
            if grad_h is not None:
                torch.mm(d_logits, w, out=grad_h[start:stop])
            if grad_w is not None:
                if compute == accumulate:
                    grad_w.addmm_(d_logits.T, h_c)
                else:  # a low-precision product (float32 inside the GEMM), summed in float32
                    grad_w += (d_logits.T @ h_c).to(accumulate)
    loss = total / count if reduction == "mean" else total
    if grad_h is not None:
        if rows is not None:
            grad_h = torch.zeros(hidden.numel() // width, width, dtype=compute, device=device).index_copy_(
                0, rows, grad_h)
        grad_h = grad_h.reshape(hidden.shape).to(hidden.dtype)
    grads = (grad_h, grad_w.to(weight.dtype) if grad_w is not None else None,
             grad_b.to(bias.dtype) if grad_b is not None else None)
    return loss, grads


def _compute_dtype(hidden: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The products' dtype: autocast's where it is on (what nn.Linear would use), else the inputs'."""
    if torch.is_autocast_enabled(hidden.device.type):
        return torch.get_autocast_dtype(hidden.device.type)
    return torch.promote_types(hidden.dtype, weight.dtype)


def _check_arguments(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor,
                     reduction: str, chunk_tokens: int) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"fused_lm_loss: unknown reduction '{reduction}'; use one of {', '.join(REDUCTIONS)}")
    if chunk_tokens < 1:
        raise ValueError(f"fused_lm_loss: chunk_tokens must be at least 1, not {chunk_tokens}")
    if weight.dim() != 2 or hidden.dim() < 1 or hidden.shape[-1] != weight.shape[1]:
        raise ValueError(f"fused_lm_loss: hidden {tuple(hidden.shape)} and weight {tuple(weight.shape)} do not "
                         f"fit: expected hidden [..., D] and weight [V, D]")
    if targets.shape != hidden.shape[:-1]:
        raise ValueError(f"fused_lm_loss: targets {tuple(targets.shape)} should have hidden's shape without its "
                         f"last dimension, {tuple(hidden.shape[:-1])}")
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"fused_lm_loss: bias {tuple(bias.shape)} should be [{weight.shape[0]}] (one per token)")


def _check_targets(targets: torch.Tensor, vocab: int) -> None:
    outside = (targets < 0) | (targets >= vocab)
    if bool(outside.any()):
        bad = int(targets[outside][0])
        raise ValueError(f"fused_lm_loss: target {bad} is outside the vocabulary of {vocab} tokens "
                         f"(0..{vocab - 1}, or {IGNORE_INDEX} to ignore a position)")
