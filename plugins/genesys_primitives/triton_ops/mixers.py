"""Triton kernels for the sequence mixers: chunked gated linear attention (a log-decay per
key channel) here, and retention and Mamba-2's SSD through the scalar-decay kernels of
ssd.py. Drop-ins for ../torch_ops/mixers.py (the contract is in __init__.py).

GLA computes S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t, o_t = q_t S_t / sqrt(K), chunk by
chunk, like the scalar-decay kernels of ssd.py (see there for the scheme) except that the
decay differs per channel, so within a chunk the scores are
A_ts = sum_k q_tk k_sk exp(c_tk - c_sk) (s <= t, c the inclusive cumulative log-decay in
the chunk). That is a [chunk, chunk, K tile] product, formed directly rather than as a
matrix product of q exp(c) and k exp(-c), which would overflow for strong decays; so the
chunk is 16 tokens (flash-linear-attention splits its 64-token chunks into such 16-token
sub-chunks for the same reason). The state at every 16th token is kept for the backward.

Backward, as for the scalar decay: dS walked backwards (kernel), dv (kernel), dq and dk
(kernel), and the gradient of the log-decays from dL/dG_t = q_t * dq_t - k_t * dk_t per
channel (G the global cumulative log-decay): the dq/dk kernel writes that product, and a
torch reverse cumulative sum over time turns it into dg (the one step that is not a kernel).
"""

import math

import torch
import triton
import triton.language as tl

from . import TritonImpl
from .ssd import _chunk_scalar_decay_triton


@triton.jit
def _gla_fwd_h_kernel(k, v, g, h, T, NT, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                      BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    """h[b, h, i] = the state at the start of chunk i (a K x V tile of it)."""
    i_k, i_v, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    state = tl.zeros([BK, BV], dtype=tl.float32)
    for i_t in range(NT):
        p_h = h + (i_bh * NT + i_t).to(tl.int64) * K * V + o_k[:, None] * V + o_v[None, :]
        tl.store(p_h, state, mask=m_k[:, None] & m_v[None, :])
        o_t = i_t * BT + tl.arange(0, BT)
        m_t = o_t < T
        row = (i_b * T + o_t).to(tl.int64)
        p_qk = (row[:, None] * H + i_h) * K + o_k[None, :]
        m_qk = m_t[:, None] & m_k[None, :]
        # padded positions load g = 0, k = v = 0: they neither decay nor write the state
        b_g = tl.load(g + p_qk, mask=m_qk, other=0.0).to(tl.float32)
        b_c = tl.cumsum(b_g, 0)
        b_last = tl.sum(b_g, 0)
        b_k = tl.load(k + p_qk, mask=m_qk, other=0.0)
        b_v = tl.load(v + (row[:, None] * H + i_h) * V + o_v[None, :], mask=m_t[:, None] & m_v[None, :], other=0.0)
        b_kd = (b_k * tl.exp(b_last[None, :] - b_c)).to(b_v.dtype)  # decayed to the chunk's end
        state = state * tl.exp(b_last)[:, None] + tl.dot(tl.trans(b_kd), b_v)


@triton.jit
def _gla_fwd_o_kernel(q, k, v, g, h, o, scale, T, NT, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                      BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    """o for one chunk and V tile: from the chunk's start state, plus the chunk itself."""
    i_v, i_t, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_t = i_t * BT + tl.arange(0, BT)
    m_t = o_t < T
    row = (i_b * T + o_t).to(tl.int64)
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < V
    causal = o_t[:, None] >= o_t[None, :]
    b_o = tl.zeros([BT, BV], dtype=tl.float32)
    b_A = tl.zeros([BT, BT], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < K
        p_qk = (row[:, None] * H + i_h) * K + o_k[None, :]
        m_qk = m_t[:, None] & m_k[None, :]
        b_q = tl.load(q + p_qk, mask=m_qk, other=0.0)
        b_k = tl.load(k + p_qk, mask=m_qk, other=0.0)
        b_c = tl.cumsum(tl.load(g + p_qk, mask=m_qk, other=0.0).to(tl.float32), 0)
        p_h = h + (i_bh * NT + i_t).to(tl.int64) * K * V + o_k[:, None] * V + o_v[None, :]
        b_h = tl.load(p_h, mask=m_k[:, None] & m_v[None, :], other=0.0)
        b_o = tl.dot((b_q * tl.exp(b_c)).to(b_q.dtype), b_h.to(b_q.dtype), b_o)
        # decay[t, s, k] = exp(c_tk - c_sk) for s <= t: the exponent is <= 0 wherever it is kept
        decay = tl.exp(tl.where(causal[:, :, None], b_c[:, None, :] - b_c[None, :, :], float("-inf")))
        b_A += tl.sum(b_q.to(tl.float32)[:, None, :] * b_k.to(tl.float32)[None, :, :] * decay, 2)
    b_v = tl.load(v + (row[:, None] * H + i_h) * V + o_v[None, :], mask=m_t[:, None] & m_v[None, :], other=0.0)
    b_o = tl.dot(b_A.to(b_v.dtype), b_v, b_o) * scale
    tl.store(o + (row[:, None] * H + i_h) * V + o_v[None, :], b_o.to(o.dtype.element_ty),
             mask=m_t[:, None] & m_v[None, :])


@triton.jit
def _gla_bwd_dh_kernel(q, g, do, dh, scale, T, NT, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                       BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    """dh[b, h, i] = the gradient of the state at the end of chunk i (zero for the last)."""
    i_k, i_v, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    dstate = tl.zeros([BK, BV], dtype=tl.float32)
    for i_back in range(NT):
        i_t = NT - 1 - i_back
        p_dh = dh + (i_bh * NT + i_t).to(tl.int64) * K * V + o_k[:, None] * V + o_v[None, :]
        tl.store(p_dh, dstate, mask=m_k[:, None] & m_v[None, :])
        o_t = i_t * BT + tl.arange(0, BT)
        m_t = o_t < T
        row = (i_b * T + o_t).to(tl.int64)
        p_qk = (row[:, None] * H + i_h) * K + o_k[None, :]
        m_qk = m_t[:, None] & m_k[None, :]
        b_g = tl.load(g + p_qk, mask=m_qk, other=0.0).to(tl.float32)
        b_c = tl.cumsum(b_g, 0)
        b_last = tl.sum(b_g, 0)
        b_q = tl.load(q + p_qk, mask=m_qk, other=0.0)
        b_do = tl.load(do + (row[:, None] * H + i_h) * V + o_v[None, :], mask=m_t[:, None] & m_v[None, :], other=0.0)
        b_qd = (b_q * tl.exp(b_c) * scale).to(b_do.dtype)
        dstate = dstate * tl.exp(b_last)[:, None] + tl.dot(tl.trans(b_qd), b_do)


@triton.jit
def _gla_bwd_dv_kernel(q, k, g, do, dh, dv, scale, T, NT, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                       BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    """dv_s = sum_{t >= s} A_ts do_t + (k_s decayed to the chunk's end) dS_end."""
    i_v, i_t, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_t = i_t * BT + tl.arange(0, BT)
    m_t = o_t < T
    row = (i_b * T + o_t).to(tl.int64)
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < V
    causal = o_t[:, None] >= o_t[None, :]
    b_do = tl.load(do + (row[:, None] * H + i_h) * V + o_v[None, :], mask=m_t[:, None] & m_v[None, :], other=0.0)
    b_dv = tl.zeros([BT, BV], dtype=tl.float32)
    b_A = tl.zeros([BT, BT], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < K
        p_qk = (row[:, None] * H + i_h) * K + o_k[None, :]
        m_qk = m_t[:, None] & m_k[None, :]
        b_q = tl.load(q + p_qk, mask=m_qk, other=0.0)
        b_k = tl.load(k + p_qk, mask=m_qk, other=0.0)
        b_g = tl.load(g + p_qk, mask=m_qk, other=0.0).to(tl.float32)
        b_c = tl.cumsum(b_g, 0)
        b_last = tl.sum(b_g, 0)
        p_dh = dh + (i_bh * NT + i_t).to(tl.int64) * K * V + o_k[:, None] * V + o_v[None, :]
        b_dh = tl.load(p_dh, mask=m_k[:, None] & m_v[None, :], other=0.0)
        b_kd = (b_k * tl.exp(b_last[None, :] - b_c)).to(b_do.dtype)
        b_dv = tl.dot(b_kd, b_dh.to(b_do.dtype), b_dv)
        decay = tl.exp(tl.where(causal[:, :, None], b_c[:, None, :] - b_c[None, :, :], float("-inf")))
        b_A += tl.sum(b_q.to(tl.float32)[:, None, :] * b_k.to(tl.float32)[None, :, :] * decay, 2)
    b_dv = tl.dot(tl.trans(b_A * scale).to(b_do.dtype), b_do, b_dv)
    tl.store(dv + (row[:, None] * H + i_h) * V + o_v[None, :], b_dv.to(dv.dtype.element_ty),
             mask=m_t[:, None] & m_v[None, :])


@triton.jit
def _gla_bwd_dqk_kernel(q, k, v, g, h, do, dh, dq, dk, dg, scale, T, NT, H: tl.constexpr, K: tl.constexpr,
                        V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    """dq, dk (a K tile of them) and q * dq - k * dk, the gradient of the cumulative log-decay."""
    i_k, i_t, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_t = i_t * BT + tl.arange(0, BT)
    m_t = o_t < T
    row = (i_b * T + o_t).to(tl.int64)
    o_k = i_k * BK + tl.arange(0, BK)
    m_k = o_k < K
    p_qk = (row[:, None] * H + i_h) * K + o_k[None, :]
    m_qk = m_t[:, None] & m_k[None, :]
    b_dA = tl.zeros([BT, BT], dtype=tl.float32)  # dA[t, s] = do_t . v_s
    b_dq = tl.zeros([BT, BK], dtype=tl.float32)
    b_dk = tl.zeros([BT, BK], dtype=tl.float32)
    for i_v in range(tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        p_vo = (row[:, None] * H + i_h) * V + o_v[None, :]
        b_v = tl.load(v + p_vo, mask=m_t[:, None] & m_v[None, :], other=0.0)
        b_do = tl.load(do + p_vo, mask=m_t[:, None] & m_v[None, :], other=0.0)
        p_state = (i_bh * NT + i_t).to(tl.int64) * K * V + o_k[:, None] * V + o_v[None, :]
        b_h = tl.load(h + p_state, mask=m_k[:, None] & m_v[None, :], other=0.0).to(b_v.dtype)
        b_dh = tl.load(dh + p_state, mask=m_k[:, None] & m_v[None, :], other=0.0).to(b_v.dtype)
        b_dA = tl.dot(b_do, tl.trans(b_v), b_dA)
        b_dq = tl.dot(b_do, tl.trans(b_h), b_dq)
        b_dk = tl.dot(b_v, tl.trans(b_dh), b_dk)
    b_q = tl.load(q + p_qk, mask=m_qk, other=0.0).to(tl.float32)
    b_k = tl.load(k + p_qk, mask=m_qk, other=0.0).to(tl.float32)
    b_g = tl.load(g + p_qk, mask=m_qk, other=0.0).to(tl.float32)
    b_c = tl.cumsum(b_g, 0)
    b_last = tl.sum(b_g, 0)
    # the diagonal (a token with itself) is undecayed, so it adds nothing to the log-decay's
    # gradient: it is kept out of q * dq - k * dk, where it would cancel only up to rounding
    before = o_t[:, None] > o_t[None, :]
    b_diag = tl.sum(tl.where(o_t[:, None] == o_t[None, :], b_dA, 0.0), 1) * scale
    decay = tl.exp(tl.where(before[:, :, None], b_c[:, None, :] - b_c[None, :, :], float("-inf")))
    weighted = b_dA[:, :, None] * decay * scale  # [t, s, k]
    b_dq = b_dq * tl.exp(b_c) * scale + tl.sum(weighted * b_k[None, :, :], 1)
    b_dk = b_dk * tl.exp(b_last[None, :] - b_c) + tl.sum(weighted * b_q[:, None, :], 0)
    tl.store(dg + p_qk, b_q * b_dq - b_k * b_dk, mask=m_qk)
    b_dq += b_diag[:, None] * b_k
    b_dk += b_diag[:, None] * b_q
    tl.store(dq + p_qk, b_dq.to(dq.dtype.element_ty), mask=m_qk)
    tl.store(dk + p_qk, b_dk.to(dk.dtype.element_ty), mask=m_qk)


class _GlaChunk(torch.autograd.Function):
    """gla's o = scale q S by the kernels above; q, k, g [B, L, H, K], v [B, L, H, V]."""

    @staticmethod
    def forward(ctx, q, k, v, g, scale):
        q, k, v, g = (t.contiguous() for t in (q, k, v, g))
        batch, length, heads, size = q.shape
        value = v.shape[3]
        chunk = 16  # the [chunk, chunk, BK] intra-chunk product has to fit in registers
        chunks = triton.cdiv(length, chunk)
        block_k = min(32, max(16, triton.next_power_of_2(size)))
        block_v = min(64, max(16, triton.next_power_of_2(value)))
        dims = {"H": heads, "K": size, "V": value, "BT": chunk, "BK": block_k, "BV": block_v}
        h = torch.empty(batch, heads, chunks, size, value, dtype=torch.float32, device=q.device)
        _gla_fwd_h_kernel[(triton.cdiv(size, block_k), triton.cdiv(value, block_v), batch * heads)](
            k, v, g, h, length, chunks, **dims)
        o = torch.empty_like(v)
        _gla_fwd_o_kernel[(triton.cdiv(value, block_v), chunks, batch * heads)](
            q, k, v, g, h, o, scale, length, chunks, **dims)
        ctx.save_for_backward(q, k, v, g, h)
        ctx.scale, ctx.dims, ctx.chunks = scale, dims, chunks
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, g, h = ctx.saved_tensors
        do = do.contiguous()
        dims, chunks, scale = ctx.dims, ctx.chunks, ctx.scale
        batch, length, heads, size = q.shape
        value = v.shape[3]
        tiles_k, tiles_v = triton.cdiv(size, dims["BK"]), triton.cdiv(value, dims["BV"])
        dh = torch.empty_like(h)
        _gla_bwd_dh_kernel[(tiles_k, tiles_v, batch * heads)](q, g, do, dh, scale, length, chunks, **dims)
        dv = torch.empty_like(v)
        _gla_bwd_dv_kernel[(tiles_v, chunks, batch * heads)](q, k, g, do, dh, dv, scale, length, chunks, **dims)
        dq, dk = torch.empty_like(q), torch.empty_like(k)
        dg = torch.empty(q.shape, dtype=torch.float32, device=q.device)
        _gla_bwd_dqk_kernel[(tiles_k, chunks, batch * heads)](
            q, k, v, g, h, do, dh, dq, dk, dg, scale, length, chunks, **dims)
        # d loss / d g_t = sum over s >= t of (q_s * dq_s - k_s * dk_s), per channel
        dg = dg.flip(1).cumsum(1).flip(1)
        return dq, dk, dv, dg.to(g.dtype), None


def gla(q, k, v, g, *, chunk_size=16):
    """gla (see torch_ops.mixers.gla) by Triton kernels. They chunk by 16 whatever
    chunk_size says (the result is the same; see _GlaChunk.forward for why 16)."""
    # tl.dot takes one dtype: q and k in v's, which is also the output's (as in torch_ops)
    return _GlaChunk.apply(q.to(v.dtype), k.to(v.dtype), v, g, 1 / math.sqrt(q.shape[-1]))


def retention(q, k, v, *, chunk_size=64):
    """retention (see torch_ops.mixers.retention) by the scalar-decay Triton kernels of ssd.py."""
    batch, length, heads, size = q.shape
    h = torch.arange(heads, dtype=torch.float32, device=q.device)
    log_gamma = torch.log1p(-torch.exp2(-5 - h))  # gamma_h = 1 - 2^(-5 - h)
    return _chunk_scalar_decay_triton(q.to(v.dtype), k.to(v.dtype), v, log_gamma.expand(batch, length, heads),
                                      1 / math.sqrt(size), chunk_size)


# ------------------------------------------------------------------------------ registry

_HERE = "genesys_primitives.triton_ops.mixers:"
_SSD = "genesys_primitives.triton_ops.ssd:"
_SCALAR = tuple(_SSD + name for name in (
    "_scalar_decay_fwd_h_kernel", "_scalar_decay_fwd_o_kernel", "_scalar_decay_bwd_dh_kernel",
    "_scalar_decay_bwd_dv_kernel", "_scalar_decay_bwd_dqk_kernel", "_ChunkScalarDecay",
    "_chunk_scalar_decay_triton"))
_GLA = tuple(_HERE + name for name in (
    "_gla_fwd_h_kernel", "_gla_fwd_o_kernel", "_gla_bwd_dh_kernel", "_gla_bwd_dv_kernel",
    "_gla_bwd_dqk_kernel", "_GlaChunk"))

IMPLEMENTATIONS: dict[str, TritonImpl] = {
    "gla": TritonImpl(_HERE + "gla", uses=_GLA),
    "retention": TritonImpl(_HERE + "retention", uses=_SCALAR),
    "ssd": TritonImpl(_SSD + "ssd", uses=_SCALAR),
}
