"""Triton RMSNorm and per-head RMSNorm, forward and backward, with an optional fused
residual add (see ../norms.py for the primitives and ../torch_ops/norms.py for the
torch implementations these must match).

One kernel pair serves both primitives: a token's features are H groups of E
(RMSNorm is H = 1, E = W), each normalised by its own root mean square. With a
residual, the forward pass adds it first and stores the sum, the pre-norm
residual stream of the next sub-layer, so the add costs no extra pass over memory
(as flash-linear-attention's fused norms do); the backward pass adds the sum's own
gradient to the norm's.
"""

import torch
import torch.nn as nn
import triton
import triton.language as tl

from ..torch_ops.norms import _rms_norm
from . import TritonImpl

_MAX_FEATURES = 16384  # padded features one program normalises: 64 KiB of float32 per row


@triton.jit
def _rms_norm_features(H: tl.constexpr, E: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_E: tl.constexpr):
    """A row's H groups of E features as a [BLOCK_H, BLOCK_E] tile: (group index, offset in the row, mask)."""
    heads = tl.arange(0, BLOCK_H)
    cols = tl.arange(0, BLOCK_E)
    return heads, heads[:, None] * E + cols[None, :], (heads[:, None] < H) & (cols[None, :] < E)


@triton.jit
def _rms_norm_rows(rows, feature, feature_mask, n_rows, H: tl.constexpr, E: tl.constexpr):
    """Offsets and mask of the [rows, H, E] tile of a [n_rows, H * E] tensor."""
    offsets = rows[:, None, None] * (H * E) + feature[None, :, :]
    return offsets, (rows[:, None, None] < n_rows) & feature_mask[None, :, :]


@triton.jit
def _rms_norm_rstd(rows, heads, n_rows, H: tl.constexpr):
    """Offsets and mask of the [rows, groups] tile of the [n_rows, H] reciprocal RMS."""
    return rows[:, None] * H + heads[None, :], (rows[:, None] < n_rows) & (heads[None, :] < H)


@triton.jit
def _rms_norm_fwd_kernel(X, R, S, Y, W, RSTD, n_rows, eps,
                         H: tl.constexpr, E: tl.constexpr, HAS_RESIDUAL: tl.constexpr, ACC: tl.constexpr,
                         BLOCK_M: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_E: tl.constexpr):
    """BLOCK_M rows of [H, E]: y = w * cast(x / sqrt(mean(x^2) + eps)) per group (x += r first)."""
    rows = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    heads, feature, feature_mask = _rms_norm_features(H, E, BLOCK_H, BLOCK_E)
    offsets, mask = _rms_norm_rows(rows, feature, feature_mask, n_rows, H, E)
    x = tl.load(X + offsets, mask=mask, other=0.0)
    if HAS_RESIDUAL:
        x = (x + tl.load(R + offsets, mask=mask, other=0.0)).to(S.dtype.element_ty)
        tl.store(S + offsets, x, mask=mask)
    h = x.to(ACC)
    rstd = 1.0 / tl.sqrt(tl.sum(h * h, axis=2) / E + eps)
    p_rstd, m_rstd = _rms_norm_rstd(rows, heads, n_rows, H)
    tl.store(RSTD + p_rstd, rstd, mask=m_rstd)
    x_hat = (h * rstd[:, :, None]).to(x.dtype)  # cast back before the gain, as the torch version
    w = tl.load(W + feature, mask=feature_mask, other=0.0)
    tl.store(Y + offsets, (w[None, :, :] * x_hat).to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _rms_norm_bwd_kernel(X, W, RSTD, DY, DS, DX, DW, n_rows, n_tiles,
                         H: tl.constexpr, E: tl.constexpr, HAS_DS: tl.constexpr, ACC: tl.constexpr,
                         BLOCK_M: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_E: tl.constexpr):
    """dx = rstd * (g - x_hat * mean(g * x_hat)) with g = w * dy (+ ds); this program's
    share of dw = sum(dy * x_hat) over its tiles, written to its own row of DW."""
    program = tl.program_id(0)
    programs = tl.num_programs(0)
    heads, feature, feature_mask = _rms_norm_features(H, E, BLOCK_H, BLOCK_E)
    w = tl.load(W + feature, mask=feature_mask, other=0.0).to(ACC)
    dw = tl.zeros([BLOCK_H, BLOCK_E], dtype=ACC)
    for tile in range(program, n_tiles, programs):
        rows = (tile * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
        offsets, mask = _rms_norm_rows(rows, feature, feature_mask, n_rows, H, E)
        x = tl.load(X + offsets, mask=mask, other=0.0)
        p_rstd, m_rstd = _rms_norm_rstd(rows, heads, n_rows, H)
        rstd = tl.load(RSTD + p_rstd, mask=m_rstd, other=0.0)
        x_hat = x.to(ACC) * rstd[:, :, None]
        dy = tl.load(DY + offsets, mask=mask, other=0.0).to(ACC)
        dw += tl.sum(dy * x_hat.to(x.dtype).to(ACC), axis=0)
        g = dy * w[None, :, :]
        dx = (g - x_hat * (tl.sum(g * x_hat, axis=2) / E)[:, :, None]) * rstd[:, :, None]
        if HAS_DS:
            dx += tl.load(DS + offsets, mask=mask, other=0.0).to(ACC)
        tl.store(DX + offsets, dx.to(DX.dtype.element_ty), mask=mask)
    tl.store(DW + program * (H * E) + feature, dw, mask=feature_mask)


def _rms_norm_launch(rows, features):
    """Block sizes and warps for rows of `features` = (H, E): about 4096 elements a program."""
    block_h, block_e = triton.next_power_of_2(features[0]), triton.next_power_of_2(features[1])
    block_m = min(64, triton.next_power_of_2(max(1, 4096 // (block_h * block_e))))
    warps = min(8, triton.next_power_of_2(max(1, block_m * block_h * block_e // 512)))
    return block_m, block_h, block_e, warps


class _RMSNormFunction(torch.autograd.Function):
    """(y, s): y = RMSNorm of s = x (+ residual) per group of the weight's last dim; s is
    returned only with a residual (None otherwise)."""

    @staticmethod
    def forward(ctx, x, residual, weight, eps):
        H, E = (1, weight.shape[0]) if weight.dim() == 1 else weight.shape
        x2 = x.reshape(-1, H * E).contiguous()
        n_rows = x2.shape[0]
        acc = tl.float64 if x.dtype == torch.float64 else tl.float32
        if residual is not None:
            r2 = residual.reshape(-1, H * E).contiguous()
            s2 = torch.empty_like(x2, dtype=torch.promote_types(x.dtype, residual.dtype))
        else:
            r2 = s2 = x2  # unused by the kernel
        normed = s2 if residual is not None else x2
        y2 = torch.empty_like(x2, dtype=torch.promote_types(normed.dtype, weight.dtype))
        rstd = torch.empty(n_rows, H, dtype=torch.float64 if acc == tl.float64 else torch.float32, device=x.device)
        block_m, block_h, block_e, warps = _rms_norm_launch(n_rows, (H, E))
        _rms_norm_fwd_kernel[(triton.cdiv(n_rows, block_m),)](
            x2, r2, s2, y2, weight, rstd, n_rows, eps, H=H, E=E, HAS_RESIDUAL=residual is not None, ACC=acc,
            BLOCK_M=block_m, BLOCK_H=block_h, BLOCK_E=block_e, num_warps=warps)
        ctx.save_for_backward(normed, weight, rstd)
        ctx.shape, ctx.has_residual, ctx.acc = x.shape, residual is not None, acc
        s = s2.view(x.shape) if residual is not None else None
        return y2.view(x.shape), s

    @staticmethod
    def backward(ctx, dy, ds):
        normed, weight, rstd = ctx.saved_tensors
        H, E = (1, weight.shape[0]) if weight.dim() == 1 else weight.shape
        n_rows = normed.shape[0]
        dy2 = dy.reshape(-1, H * E).contiguous()
        ds2 = ds.reshape(-1, H * E).contiguous() if ds is not None else dy2
        dx = torch.empty_like(normed)
        block_m, block_h, block_e, warps = _rms_norm_launch(n_rows, (H, E))
        n_tiles = triton.cdiv(n_rows, block_m)
        # a fixed number of programs, each summing its tiles' dw: a deterministic reduction
        slots = torch.cuda.get_device_properties(dy.device).multi_processor_count * 2 if dy.is_cuda else 4
        programs = max(1, min(n_tiles, slots))
        dw = torch.empty(programs, H * E, dtype=rstd.dtype, device=dy.device)
        _rms_norm_bwd_kernel[(programs,)](
            normed, weight, rstd, dy2, ds2, dx, dw, n_rows, n_tiles, H=H, E=E, HAS_DS=ds is not None, ACC=ctx.acc,
            BLOCK_M=block_m, BLOCK_H=block_h, BLOCK_E=block_e, num_warps=warps)
        dx = dx.view(ctx.shape)
        return dx, (dx if ctx.has_residual else None), dw.sum(0).view_as(weight).to(weight.dtype), None


def _rms_norm_kernels_take(x):
    """Whether the kernels run on x: compiled ones need a CUDA tensor; interpreted ones
    (defined under TRITON_INTERPRET=1) take CPU tensors."""
    return x.is_cuda or not isinstance(_rms_norm_fwd_kernel, triton.runtime.JITFunction)


class RMSNorm(nn.Module):
    """RMSNorm (Zhang & Sennrich 2019) over the W features; gain initialised to ones. Triton
    kernels (the torch computation on a tensor they cannot take)."""

    def __init__(self, W: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(W))

    def forward(self, x):
        if not _rms_norm_kernels_take(x):
            return _rms_norm(x, self.weight, self.eps)
        return _RMSNormFunction.apply(x, None, self.weight, self.eps)[0]

    def forward_residual(self, x, residual):
        """(x + residual, RMSNorm(x + residual)) from one pass over memory."""
        if x.shape != residual.shape or not _rms_norm_kernels_take(x):  # the kernel adds equal shapes only
            s = x + residual
            return s, self(s)
        y, s = _RMSNormFunction.apply(x, residual, self.weight, self.eps)
        return s, y


class HeadRMSNorm(nn.Module):
    """RMSNorm of each head over its E features, with a gain of shape [H, E] (ones). Triton
    kernels (the torch computation on a tensor they cannot take)."""

    def __init__(self, H: int, E: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(H, E))

    def forward(self, x):
        if not _rms_norm_kernels_take(x):
            return _rms_norm(x, self.weight, self.eps)
        return _RMSNormFunction.apply(x, None, self.weight, self.eps)[0]


def _fits(padded: int, what: str) -> str | None:
    if padded > _MAX_FEATURES:
        return f"{what} pads to {padded} features, above the {_MAX_FEATURES} one program normalises"
    return None


def _rms_norm_supports(b) -> str | None:
    return _fits(triton.next_power_of_2(b["W"]), f"W = {b['W']}")


def _head_rms_norm_supports(b) -> str | None:
    return _fits(triton.next_power_of_2(b["H"]) * triton.next_power_of_2(b["E"]), f"H * E = {b['H']} * {b['E']}")


_KERNELS = ("genesys_primitives.torch_ops.norms:_rms_norm",) + tuple(  # the torch helper: the fallback
    f"genesys_primitives.triton_ops.norms:{name}" for name in (
        "_rms_norm_features", "_rms_norm_rows", "_rms_norm_rstd", "_rms_norm_fwd_kernel", "_rms_norm_bwd_kernel",
        "_rms_norm_launch", "_RMSNormFunction", "_rms_norm_kernels_take"))

IMPLEMENTATIONS: dict[str, TritonImpl] = {
    "RMSNorm": TritonImpl("genesys_primitives.triton_ops.norms:RMSNorm", uses=_KERNELS,
                          supports=_rms_norm_supports, residual_norm=True),
    "HeadRMSNorm": TritonImpl("genesys_primitives.triton_ops.norms:HeadRMSNorm", uses=_KERNELS,
                              supports=_head_rms_norm_supports),
}
